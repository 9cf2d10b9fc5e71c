/* Where the files the server ships with are found: the web page, the prompt
 * templates and the tokenizer rank files. An option given (--web-dir,
 * --prompts-dir, --tokenizer-dir, their env or file keys) is used as is;
 * an empty one (the default) is looked up relative to the executable, so the
 * binary works from any directory:
 *
 *   installed:  <exe dir>/../share/tether/{web,prompts,tokenizer}
 *               (TETHER_INSTALL_REL, from CMake's install directories);
 *   build dir:  the executable is the one CMake built (TETHER_BUILD_DIR):
 *               web and prompts from the source tree (TETHER_SOURCE_DIR),
 *               the ranks from <build>/share/tether/tokenizer, made at build
 *               time (agents/llm/tokenizer_ranks.mjs).
 *
 * Nothing is read from the working directory unless an option says so, and
 * never from node_modules. A resource found nowhere stays empty: no web page
 * (404s), no prompts (the start-up fails and says where it looked), no ranks
 * (token estimates). */
#ifndef TT_PATHS_H
#define TT_PATHS_H

#include <stddef.h>

#include "server/config.h"

typedef enum tt_path_kind {
    TT_PATH_WEB,
    TT_PATH_PROMPTS,
    TT_PATH_TOKENIZER,
    TT_PATH__N
} tt_path_kind;

typedef struct tt_paths {
    char exe[1024];                /* this executable, from /proc/self/exe ("" if unknown) */
    const char *how[TT_PATH__N];   /* "option", "installed", "build dir" or "not found" */
    char looked[TT_PATH__N][1024]; /* for "not found": where it looked */
} tt_paths;

/* The option name of kind ("web-dir", ...). */
const char *tt_path_option(tt_path_kind kind);

/* Fill cfg's empty web_dir, prompts_dir and tokenizer_dir as above; what was
 * done goes to out (may be NULL). Never fails: a missing resource is told by
 * out->how[kind] == "not found". */
void tt_paths_resolve(tt_config *cfg, tt_paths *out);

/* cfg's field for kind. */
char *tt_path_field(tt_config *cfg, tt_path_kind kind);

#endif
