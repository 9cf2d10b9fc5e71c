/* Finding the shipped files relative to the executable (see paths.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/paths.h"

#ifndef TETHER_INSTALL_REL
#define TETHER_INSTALL_REL "../share/tether"
#endif

typedef struct resource {
    const char *option;
    const char *installed; /* under <exe dir>/TETHER_INSTALL_REL */
    const char *build;     /* "src:" under the source tree, else under the build dir */
} resource;

static const resource RESOURCES[TT_PATH__N] = {
    [TT_PATH_WEB] = {"web-dir", "web", "src:web"},
    [TT_PATH_PROMPTS] = {"prompts-dir", "prompts", "src:agents/prompts"},
    [TT_PATH_TOKENIZER] = {"tokenizer-dir", "tokenizer", "share/tether/tokenizer"},
};

const char *tt_path_option(tt_path_kind kind)
{
    return RESOURCES[kind].option;
}

char *tt_path_field(tt_config *cfg, tt_path_kind kind)
{
    return kind == TT_PATH_WEB       ? cfg->web_dir
           : kind == TT_PATH_PROMPTS ? cfg->prompts_dir
                                     : cfg->tokenizer_dir;
}

/* src after what dst (size n) holds, cut to fit. */
static void append(char *dst, size_t n, const char *src)
{
    size_t at = strnlen(dst, n - 1), len = strnlen(src, n - 1 - at);
    memcpy(dst + at, src, len);
    dst[at + len] = '\0';
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory of this executable, resolved ("" if unknown). */
static void exe_dir(tt_paths *out, char *dir, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", out->exe, sizeof out->exe - 1);
    out->exe[len > 0 ? len : 0] = '\0';
    snprintf(dir, n, "%s", out->exe);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        dir[0] = '\0';
}

/* Is dir the build directory this binary was compiled in? */
static int in_build_dir(const char *dir)
{
#ifdef TETHER_BUILD_DIR
    char a[PATH_MAX], b[PATH_MAX];
    return dir[0] && realpath(dir, a) && realpath(TETHER_BUILD_DIR, b) && strcmp(a, b) == 0;
#else
    (void)dir;
    return 0;
#endif
}

static void resolve_one(tt_config *cfg, tt_path_kind kind, const char *dir, int build,
                        tt_paths *out)
{
    char *field = tt_path_field(cfg, kind);
    size_t cap = sizeof cfg->web_dir;
    char cand[2][1024] = {"", ""};
    const resource *r = &RESOURCES[kind];
    if (dir[0])
        snprintf(cand[0], sizeof cand[0], "%s/%s/%s", dir, TETHER_INSTALL_REL, r->installed);
#if defined(TETHER_SOURCE_DIR) && defined(TETHER_BUILD_DIR)
    if (build && strncmp(r->build, "src:", 4) == 0)
        snprintf(cand[1], sizeof cand[1], "%s/%s", TETHER_SOURCE_DIR, r->build + 4);
    else if (build)
        snprintf(cand[1], sizeof cand[1], "%s/%s", TETHER_BUILD_DIR, r->build);
#else
    (void)build;
#endif
    const char *how = "not found";
    for (int i = 0; i < 2; i++) {
        char real[PATH_MAX];
        if (cand[i][0] && is_dir(cand[i]) && realpath(cand[i], real) && strlen(real) < cap) {
            memcpy(field, real, strlen(real) + 1);
            how = i == 0 ? "installed" : "build dir";
            break;
        }
    }
    if (out) {
        out->how[kind] = how;
        char *l = out->looked[kind];
        size_t cap_l = sizeof out->looked[kind];
        append(l, cap_l, cand[0]); /* a cut list is still a hint */
        append(l, cap_l, cand[1][0] ? ", " : "");
        append(l, cap_l, cand[1]);
    }
}

void tt_paths_resolve(tt_config *cfg, tt_paths *out)
{
    tt_paths local;
    if (!out)
        out = &local;
    memset(out, 0, sizeof *out);
    char dir[1024];
    exe_dir(out, dir, sizeof dir);
    int build = in_build_dir(dir);
    for (int k = 0; k < TT_PATH__N; k++) {
        if (tt_path_field(cfg, (tt_path_kind)k)[0])
            out->how[k] = "option";
        else
            resolve_one(cfg, (tt_path_kind)k, dir, build, out);
    }
}
