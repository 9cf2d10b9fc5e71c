/* libFuzzer target for server/limits_conf.c: the input is a --limits JSON
 * file. Checked: the result is 0 or TT_EINVAL (TT_ENOMEM allowed) with a
 * NUL-terminated message starting with the JSON path ("limits"), nothing is
 * kept from a refused file, and a file that loads has every limit inside its
 * documented range, its overrides sorted and each found by its own name. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "server/limits_conf.h"
#include "fuzz_check.h"

static void in_range(const tt_scope_limits *l)
{
    CHECK(l->rpm >= 0 && l->rpm <= 1000000000);
    CHECK(l->tpm >= 0 && l->tpm <= 1000000000);
    int64_t usd_max = (int64_t)(1e6 * TT_NUSD_PER_USD);
    CHECK(l->daily_nusd >= 0 && l->daily_nusd <= usd_max);
    CHECK(l->monthly_nusd >= 0 && l->monthly_nusd <= usd_max);
    CHECK(l->total_nusd >= 0 && l->total_nusd <= usd_max);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!root)
        return 0;
    tt_limits_conf c = {0};
    c.defaults[TT_SCOPE_KEY].rpm = 7; /* a flag's default, kept where the file says nothing */
    char err[512];
    memset(err, 'x', sizeof err);
    int rc = tt_limits_conf_parse(&c, root, err, sizeof err);
    CHECK(rc == 0 || rc == TT_EINVAL || rc == TT_ENOMEM);
    if (rc == TT_EINVAL) {
        CHECK(memchr(err, 0, sizeof err) != NULL);
        CHECK(strncmp(err, "limits", 6) == 0);
        CHECK(c.n_over == 0 && c.defaults[TT_SCOPE_KEY].rpm == 7);
    }
    if (rc == 0) {
        CHECK(c.n_over <= TT_LIMITS_OVERRIDES_MAX);
        for (int k = 0; k < TT_SCOPE__LAST; k++)
            in_range(&c.defaults[k]);
        for (size_t i = 0; i < c.n_over; i++) {
            in_range(&c.over[i].lim);
            CHECK(c.over[i].kind < TT_SCOPE__LAST);
            CHECK(tt_limits_conf_get(&c, c.over[i].kind, c.over[i].name) == &c.over[i].lim);
            if (i > 0)
                CHECK(c.over[i - 1].kind < c.over[i].kind ||
                      (c.over[i - 1].kind == c.over[i].kind &&
                       strcmp(c.over[i - 1].name, c.over[i].name) < 0));
        }
    }
    tt_limits_conf_free(&c);
    json_decref(root);
    return 0;
}
