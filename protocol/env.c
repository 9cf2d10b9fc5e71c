/* Variable names and look-ups in an environment array (env.h). */
#include <string.h>

#include "protocol/env.h"

int tt_env_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > TT_ENV_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (const char *c = name; *c; c++) {
        int word = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                   (*c >= '0' && *c <= '9') || *c == '_';
        if (!word)
            return 0;
    }
    return 1;
}

const char *tt_env_get(char *const *envp, const char *name)
{
    if (!tt_env_name_valid(name))
        return NULL;
    size_t len = strlen(name);
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    }
    return NULL;
}
