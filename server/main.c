/* tether: parse the configuration, start the server, run the loop.
 *
 *   tether [options]        serve (see --help)
 *   tether hash-key KEY     print the SHA-256 to use with --api-key-hash
 *   tether --check-config [options]    (or: tether doctor [options])
 *                           what would be used, found where; exit 0 if it would start
 *
 * Exit codes: 0 stopped cleanly, 1 a start-up failure, 2 a bad option,
 * 3-7 the data directory (server/datadir.h; README.md, "Exit codes"). */
#include <stdio.h>
#include <string.h>

#include "server/doctor.h"
#include "server/logging.h"
#include "server/server.h"

extern char **environ;

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "hash-key") == 0) {
        char hex[65];
        tt_sha256_hex(argv[2], strlen(argv[2]), hex);
        printf("%s\n", hex);
        return 0;
    }
    static tt_server srv; /* large (auth keys); kept off the stack */
    char err[512];
    int exit_now = 0, check = 0;
    for (int i = 1; i < argc; i++) { /* taken out before the options are parsed */
        if (strcmp(argv[i], "--check-config") == 0 || (i == 1 && strcmp(argv[i], "doctor") == 0)) {
            check = 1;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof *argv);
            argc--;
            i--;
        }
    }
    if (tt_config_load(&srv.cfg, argc, argv, environ, &exit_now, err, sizeof err) != 0) {
        fprintf(stderr, "tether: %s\n", err);
        return 2;
    }
    if (exit_now)
        return 0;
    if (check) {
        int bad = tt_doctor(&srv.cfg, stdout);
        tt_config_free(&srv.cfg);
        return bad;
    }
    tt_log_set_level(srv.cfg.log_level);
    tt_log_set_redact(strcmp(srv.cfg.log_redact, "on") == 0);
    int rc = tt_server_start(&srv);
    if (rc == 0)
        uv_run(&srv.loop, UV_RUN_DEFAULT);
    tt_server_free(&srv);
    if (rc == 0)
        tt_log(TT_INFO, "stopped", NULL);
    return rc == 0 ? 0 : srv.exit_code ? srv.exit_code : 1;
}
