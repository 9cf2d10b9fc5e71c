/* The origin policy (see origin.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "protocol/errors.h"
#include "server/origin.h"

/* The authority of an http(s) origin ("host[:port]"), or NULL. */
static const char *origin_authority(const char *origin)
{
    if (strncasecmp(origin, "http://", 7) == 0)
        return origin + 7;
    if (strncasecmp(origin, "https://", 8) == 0)
        return origin + 8;
    return NULL;
}

/* The host name of an authority, without port or IPv6 brackets, into out.
 * Returns 0, or -1 when it is empty, too long or malformed. */
static int authority_host(const char *authority, char *out, size_t n)
{
    const char *start = authority, *end;
    if (*authority == '[') {
        start = authority + 1;
        end = strchr(start, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return -1;
    } else {
        end = strchr(authority, ':');
        if (!end)
            end = authority + strlen(authority);
    }
    size_t len = (size_t)(end - start);
    if (len == 0 || len >= n)
        return -1;
    memcpy(out, start, len);
    out[len] = '\0';
    return 0;
}

static int is_loopback_name(const char *name)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (strcasecmp(name, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, name, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, name, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/* Is name one of the comma-separated --host list ("[::1]" matching "::1")? */
static int host_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, ",");
        const char *h = p;
        size_t hl = len;
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        }
        if (hl == n && strncasecmp(h, name, n) == 0)
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int tt_origin_host_served(const tt_config *cfg, const char *host)
{
    char name[TT_ORIGIN_HEADER_MAX], other[TT_ORIGIN_HEADER_MAX];
    if (!host || authority_host(host, name, sizeof name) != 0)
        return 0;
    if (is_loopback_name(name) || host_listed(cfg->host, name))
        return 1;
    for (size_t i = 0; i < cfg->n_allowed_origins; i++) {
        const char *authority = origin_authority(cfg->allowed_origins[i]);
        if (authority && authority_host(authority, other, sizeof other) == 0 &&
            strcasecmp(name, other) == 0)
            return 1;
    }
    return 0;
}

static int origin_listed(const tt_config *cfg, const char *origin)
{
    for (size_t i = 0; i < cfg->n_allowed_origins; i++) {
        if (strcasecmp(origin, cfg->allowed_origins[i]) == 0)
            return 1;
    }
    return 0;
}

int tt_origin_check(const tt_config *cfg, int open_mode, const char *host, const char *origin,
                    char *why, size_t n)
{
    if (open_mode && !tt_origin_host_served(cfg, host)) {
        snprintf(why, n,
                 "Host '%.64s' is not a name this server answers to in open mode (loopback, "
                 "--host, or the host of an --allowed-origin)",
                 host ? host : "");
        return TT_EFORBIDDEN;
    }
    if (!origin || origin_listed(cfg, origin))
        return 0;
    const char *authority = origin_authority(origin);
    if (authority && host && strcasecmp(authority, host) == 0 && tt_origin_host_served(cfg, host))
        return 0;
    snprintf(why, n,
             "Origin '%.64s' may not use this server: only same-origin pages and "
             "--allowed-origin",
             origin);
    return TT_EFORBIDDEN;
}

int tt_origin_valid(const char *value)
{
    char name[TT_ORIGIN_HEADER_MAX];
    const char *authority = origin_authority(value);
    if (!authority || strlen(value) >= TT_ORIGIN_HEADER_MAX || strpbrk(authority, "/?#@ \t"))
        return 0;
    if (authority_host(authority, name, sizeof name) != 0)
        return 0;
    const char *port = authority[0] == '[' ? strchr(authority, ']') + 1 : strchr(authority, ':');
    if (!port || *port == '\0')
        return 1;
    if (*port != ':' || port[1] == '\0' || strspn(port + 1, "0123456789") != strlen(port + 1))
        return 0;
    return 1;
}
