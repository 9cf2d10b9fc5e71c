/* Library folders of tenants and users (see names.h). */
#include "agents/photos/names.h"

#include <stdio.h>
#include <string.h>

#include "agents/photos/path.h"
#include "protocol/errors.h"

int tt_photos_owner_check(const char *name, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    size_t n = name ? strlen(name) : 0;
    *why = n == 0                   ? "the name is empty"
           : n > TT_PHOTOS_NAME_MAX ? "the name is longer than a folder name may be"
           : name[0] == '.'         ? "the name starts with '.'"
                                    : NULL;
    for (size_t i = 0; !*why && i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '@'))
            *why = "the name holds a character other than ASCII letters, digits, '-', '_', '.', "
                   "'@'";
    }
    return *why ? TT_EINVAL : TT_OK;
}

int tt_photos_library_path(const char *root, const char *tenant, const char *user, char *out,
                           size_t n, const char **why)
{
    const char *reason;
    if (tenant && tt_photos_owner_check(tenant, &reason)) {
        *why = reason;
        return TT_EINVAL;
    }
    if (tt_photos_owner_check(user, &reason)) {
        *why = reason;
        return TT_EINVAL;
    }
    *why = NULL;
    int len = tenant ? snprintf(out, n, "%s/%s/%s", root, tenant, user)
                     : snprintf(out, n, "%s/%s", root, user);
    return len < 0 || (size_t)len >= n ? TT_ETOOLARGE : TT_OK;
}
