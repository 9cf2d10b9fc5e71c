/* `tether --check-config`: what the server would use, found where, checked
 * without starting it (see doctor.h). */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agents/agent.h"
#include "agents/llm/tokenizer.h"
#include "protocol/errors.h"
#include "server/datadir.h"
#include "server/doctor.h"
#include "server/limits_conf.h"
#include "server/paths.h"
#include "server/tls.h"

static void line(FILE *out, const char *status, const char *what, const char *fmt, const char *a,
                 const char *b)
{
    fprintf(out, "%-5s %-10s ", status, what);
    fprintf(out, fmt, a, b);
    fputc('\n', out);
}

static int check_web(FILE *out, const tt_config *cfg, const tt_paths *p)
{
    char index[1100];
    snprintf(index, sizeof index, "%s/index.html", cfg->web_dir);
    if (cfg->web_dir[0] && access(index, R_OK) == 0) {
        line(out, "ok", "web", "%s (%s)", cfg->web_dir, p->how[TT_PATH_WEB]);
        return 0;
    }
    line(out, "FAIL", "web", "no index.html in %s (give --web-dir)",
         cfg->web_dir[0] ? cfg->web_dir : p->looked[TT_PATH_WEB], "");
    return 1;
}

static int check_prompts(FILE *out, const tt_config *cfg, const tt_paths *p)
{
    if (!cfg->prompts_dir[0]) {
        line(out, "FAIL", "prompts", "not found (looked in %s; give --prompts-dir)",
             p->looked[TT_PATH_PROMPTS], "");
        return 1;
    }
    tt_agent_env *env = calloc(1, sizeof *env);
    char err[512] = "";
    int rc = env ? tt_agent_load_prompts(env, cfg->prompts_dir, err, sizeof err) : TT_ENOMEM;
    if (rc == 0 && !tt_agent_prompt(env, "chat.system")) {
        snprintf(err, sizeof err, "no chat.system template");
        rc = TT_ENOTFOUND;
    }
    char count[32];
    snprintf(count, sizeof count, "%zu", env ? env->n_prompts : 0);
    if (env)
        tt_agent_free_prompts(env);
    free(env);
    if (rc) {
        line(out, "FAIL", "prompts", "%s: %s", cfg->prompts_dir, err);
        return 1;
    }
    fprintf(out, "%-5s %-10s %s (%s): %s templates\n", "ok", "prompts", cfg->prompts_dir,
            p->how[TT_PATH_PROMPTS], count);
    return 0;
}

/* Missing ranks are a warning: token counts fall back to estimates. */
static void check_tokenizer(FILE *out, const tt_config *cfg, const tt_paths *p)
{
    static const tt_tokenizer_encoding encs[] = {TT_TOKENIZER_O200K_BASE, TT_TOKENIZER_CL100K_BASE};
    for (size_t i = 0; i < sizeof encs / sizeof encs[0]; i++) {
        const char *name = tt_tokenizer_encoding_name(encs[i]);
        tt_tokenizer *tok = NULL;
        int rc = cfg->tokenizer_dir[0] ? tt_tokenizer_load(encs[i], cfg->tokenizer_dir, &tok)
                                       : TT_ENOTFOUND;
        tt_tokenizer_free(tok);
        if (rc == 0)
            fprintf(out, "%-5s %-10s %s in %s (%s)\n", "ok", "tokenizer", name, cfg->tokenizer_dir,
                    p->how[TT_PATH_TOKENIZER]);
        else
            fprintf(out, "%-5s %-10s %s: %s in %s; exact counts fall back to estimates\n", "warn",
                    "tokenizer", name, tt_strerror(rc),
                    cfg->tokenizer_dir[0] ? cfg->tokenizer_dir : p->looked[TT_PATH_TOKENIZER]);
    }
}

static int check_data(FILE *out, const tt_config *cfg)
{
    tt_datadir_report r;
    tt_datadir_check(cfg->data_dir, &r);
    if (r.state == TT_DATADIR_OK) {
        line(out, "ok", "data dir", "%s (%s)", cfg->data_dir,
             r.exists ? "exists, readable and writable" : "will be created");
        return 0;
    }
    fprintf(out, "%-5s %-10s %s: %s (%s", "FAIL", "data dir", cfg->data_dir, r.message, r.path);
    if (r.pid > 0)
        fprintf(out, ", pid %ld", r.pid);
    fprintf(out, "; exit code %d at start-up)\n", (int)r.state);
    return 1;
}

/* Each address of --host resolved (not bound: a running server may hold it). */
static int check_listen(FILE *out, const tt_config *cfg)
{
    char list[sizeof cfg->host], *save = NULL;
    snprintf(list, sizeof list, "%s", cfg->host[0] ? cfg->host : "0.0.0.0,::");
    int bad = 0;
    for (char *h = strtok_r(list, ", ", &save); h; h = strtok_r(NULL, ", ", &save)) {
        size_t n = strlen(h);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
            h[n - 1] = '\0';
            h++;
        }
        struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *res = NULL;
        int gai = getaddrinfo(h, NULL, &hints, &res);
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            char host[NI_MAXHOST];
            if (getnameinfo(a->ai_addr, a->ai_addrlen, host, sizeof host, NULL, 0,
                            NI_NUMERICHOST) == 0)
                fprintf(out, "%-5s %-10s %s%s%s:%d\n", "ok", "listen",
                        a->ai_family == AF_INET6 ? "[" : "", host,
                        a->ai_family == AF_INET6 ? "]" : "", cfg->port);
        }
        if (res)
            freeaddrinfo(res);
        if (gai) {
            line(out, "FAIL", "listen", "%s: %s", h, gai_strerror(gai));
            bad = 1;
        }
    }
    return bad;
}

static int check_tls(FILE *out, const tt_config *cfg)
{
    if (!cfg->tls_cert[0] && !cfg->tls_key[0]) {
        line(out, "ok", "tls", "off (plain HTTP and ws://)", "", "");
        return 0;
    }
    char why[512], about[512] = "";
    const char *bad =
        tt_tls_check_files(cfg->tls_cert, cfg->tls_key, why, sizeof why, about, sizeof about);
    if (bad)
        line(out, "FAIL", "tls", "%s", bad, "");
    else
        line(out, "ok", "tls", "%s (%s)", cfg->tls_cert, about);
    return bad != NULL;
}

static int check_limits(FILE *out, const tt_config *cfg)
{
    if (!cfg->limits_file[0])
        return 0;
    tt_limits_conf c = {0};
    char why[640];
    int rc = tt_limits_conf_load(&c, cfg->limits_file, why, sizeof why);
    if (rc)
        line(out, "FAIL", "limits", "%s", why, "");
    char named[32];
    snprintf(named, sizeof named, "%zu", c.n_over);
    if (rc == 0)
        line(out, "ok", "limits", "%s (%s named scopes)", cfg->limits_file, named);
    tt_limits_conf_free(&c);
    return rc != 0;
}

int tt_doctor(tt_config *cfg, FILE *out)
{
    tt_paths p;
    tt_paths_resolve(cfg, &p);
    fprintf(out, "tether %s: configuration check\n", TETHER_VERSION);
    line(out, "ok", "binary", "%s", p.exe[0] ? p.exe : "(unknown)", "");
    int bad = check_web(out, cfg, &p);
    bad |= check_prompts(out, cfg, &p);
    check_tokenizer(out, cfg, &p);
    bad |= check_data(out, cfg);
    bad |= check_listen(out, cfg);
    bad |= check_tls(out, cfg);
    bad |= check_limits(out, cfg);
    size_t keys = cfg->n_api_keys + cfg->n_api_key_hashes;
    fprintf(out, "%-5s %-10s %s\n", keys ? "ok" : "warn", "auth",
            keys ? "API keys configured" : "open mode: no API keys, loopback clients only");
    fprintf(out, "%s\n", bad ? "problems found: the server would not start" : "ready to start");
    return bad ? 1 : 0;
}
