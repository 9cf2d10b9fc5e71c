/* Prompt templates: files under agents/prompts/, each starting with
 *   <!-- prompt: NAME version: N -->
 * and holding {{variable}} placeholders. The name and version go into every
 * provider call's log line. Templates are filled only with values the server
 * chooses (dates, summaries it computed): user text never goes into a
 * system prompt, it travels in user turns. */
#ifndef TT_PROMPT_H
#define TT_PROMPT_H

#include <stddef.h>

#define TT_PROMPT_MAX (64 * 1024)

typedef struct tt_prompt {
    char name[64];
    int version;
    char tag[80]; /* "name@version" */
    char *text;   /* the template after the header line (owned) */
} tt_prompt;

/* Load dir/file. TT_ENOTFOUND when missing, TT_EINVAL when the header line is
 * absent or malformed, TT_ETOOLARGE past TT_PROMPT_MAX. */
int tt_prompt_load(const char *dir, const char *file, tt_prompt *out);
void tt_prompt_free(tt_prompt *p);

/* Fill the template: vars is a NULL-terminated list of name, value pairs.
 * An unknown placeholder is left as is. Caller frees the result. */
char *tt_prompt_render(const tt_prompt *p, const char *const *vars);

#endif
