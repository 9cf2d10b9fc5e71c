/* The table of scopes (see scopes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/utf8.h"
#include "server/scopes.h"

const char *tt_scope_kind_name(tt_scope_kind k)
{
    static const char *const names[TT_SCOPE__LAST] = {"tenant",  "user",    "key", "agent",
                                                      "feature", "session", "run", "ip"};
    return (unsigned)k < TT_SCOPE__LAST ? names[k] : "?";
}

int tt_scopes_init(tt_scopes *s)
{
    *s = (tt_scopes){.t = calloc(TT_SCOPES_CAP, sizeof(tt_scope))};
    return s->t ? 0 : TT_ENOMEM;
}

void tt_scopes_free(tt_scopes *s)
{
    free(s->t);
    *s = (tt_scopes){0};
}

static uint32_t hash_of(tt_scope_kind k, const char *name)
{
    uint32_t h = 2166136261u ^ (uint32_t)k;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

tt_scope *tt_scopes_find(const tt_scopes *s, tt_scope_kind k, const char *name)
{
    uint32_t h = hash_of(k, name);
    for (uint32_t i = 0; i < TT_SCOPES_PROBE; i++) {
        tt_scope *e = &s->t[(h + i) & (TT_SCOPES_CAP - 1)];
        if (e->used && e->hash == h && e->kind == k && strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

tt_scope *tt_scopes_get(tt_scopes *s, tt_scope_kind k, const char *name, const char *tenant,
                        const tt_scope_limits *lim, uint64_t now_ms,
                        int (*keep)(const tt_scope *e, uint64_t now_ms))
{
    uint32_t h = hash_of(k, name);
    tt_scope *pick = NULL;
    for (uint32_t i = 0; i < TT_SCOPES_PROBE; i++) {
        tt_scope *e = &s->t[(h + i) & (TT_SCOPES_CAP - 1)];
        if (e->used && e->hash == h && e->kind == k && strcmp(e->name, name) == 0) {
            e->seen_ms = now_ms;
            return e;
        }
        if (!e->used) {
            if (!pick || pick->used)
                pick = e;
        } else if ((!pick || (pick->used && e->seen_ms < pick->seen_ms)) &&
                   !(keep && keep(e, now_ms))) {
            pick = e;
        }
    }
    if (!pick) {
        s->untracked++;
        return NULL;
    }
    s->n += !pick->used;
    *pick = (tt_scope){.hash = h, .kind = (uint8_t)k, .used = 1, .lim = *lim, .seen_ms = now_ms};
    tt_utf8_copy(pick->name, sizeof pick->name, name);
    tt_utf8_copy(pick->tenant, sizeof pick->tenant, tenant ? tenant : "");
    return pick;
}

void tt_scope_join(char *out, size_t n, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (n == 0)
        return;
    la = la < n - 1 ? la : n - 1;
    memcpy(out, a, la);
    if (la + 1 < n)
        out[la++] = '/';
    lb = lb < n - 1 - la ? lb : n - 1 - la;
    memcpy(out + la, b, lb);
    out[la + lb] = '\0';
}
