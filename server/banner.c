/* The start-up banner: a few lines of plain words on stderr for the person
 * who just started the server (where to open it, the mode, where the data
 * lives, which model routes are configured), besides the JSON log lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

/* The address a browser on this machine reaches host at, for the URL. */
static void url_host(const char *host, char *out, size_t n)
{
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        snprintf(out, n, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(out, n, "[::1]");
    else if (strchr(host, ':'))
        snprintf(out, n, "[%s]", host);
    else
        snprintf(out, n, "%s", host);
}

static void print_routes(FILE *f, json_t *aliases)
{
    if (json_array_size(aliases) == 0) {
        fprintf(f, "  models: none, so only the echo agent works (set OPENAI_API_KEY or "
                   "ANTHROPIC_API_KEY, or give --routes FILE)\n");
        return;
    }
    fprintf(f, "  models: ");
    size_t i;
    json_t *v;
    json_array_foreach(aliases, i, v)
    {
        fprintf(f, "%s%s", i ? ", " : "", json_string_value(v));
    }
    fprintf(f, "\n");
}

void tt_server_banner(const tt_server *srv, FILE *f)
{
    char host[300];
    url_host(srv->cfg.host, host, sizeof host);
    char *data = realpath(srv->cfg.data_dir, NULL);
    fprintf(f, "tether " TETHER_VERSION " is running\n");
    fprintf(f, "  open http://%s:%d in a browser\n", host, srv->cfg.port);
    if (srv->auth.n_keys == 0)
        fprintf(f, "  mode: open (no API keys): loopback clients only, as user \"local\"\n");
    else
        fprintf(f, "  mode: API keys (%zu): sign in on the page with a key\n", srv->auth.n_keys);
    fprintf(f, "  data: %s\n", data ? data : srv->cfg.data_dir);
    free(data);
    json_t *aliases = tt_llm_service_aliases(srv->agent_env.llm);
    print_routes(f, aliases);
    json_decref(aliases);
    fflush(f);
}
