/* libFuzzer target for server/config.c: the input is a JSON configuration
 * file, loaded as `tether --config FILE` would. Checked: the result is 0 or
 * TT_EINVAL (TT_ENOMEM allowed) with a NUL-terminated message, and a
 * configuration that loads has every value inside its documented range. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "server/config.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tt_fuzz_config_%d.json", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char flag[96];
    snprintf(flag, sizeof flag, "--config=%s", path);
    char *argv[] = {"tether", flag, NULL};
    char *envp[] = {NULL};
    tt_config cfg;
    char err[512];
    memset(err, 'x', sizeof err);
    int exit_now = 0;
    int rc = tt_config_load(&cfg, 2, argv, envp, &exit_now, err, sizeof err);
    CHECK(rc == 0 || rc == TT_EINVAL || rc == TT_ENOMEM);
    if (rc == 0) {
        CHECK(cfg.port >= 1 && cfg.port <= 65535);
        CHECK(cfg.max_frame_bytes >= 1024);
        CHECK(cfg.heartbeat_s >= 1);
        CHECK(strlen(cfg.host) < sizeof cfg.host);
        tt_config_free(&cfg);
    } else {
        CHECK(memchr(err, 0, sizeof err) != NULL);
    }
    unlink(path);
    return 0;
}
