/* Prompt templates: files under agents/prompts/, each starting with
 *   <!-- prompt: NAME version: N -->  or  <!-- prompt: NAME version: N max_tokens: M -->
 * and holding {{variable}} placeholders. max_tokens (1 to
 * TT_PROMPT_MAX_TOKENS_MAX) is the output cap of the model step that uses
 * the template (a two-sentence summary asks for a few hundred tokens, not
 * the route's max_completion_tokens, which still caps it); without it the
 * route's cap applies. The name and version go into every
 * provider call's log line. Templates are filled only with values the server
 * chooses (dates, summaries it computed): user text never goes into a
 * system prompt, it travels in user turns. The code is in agent.c, beside
 * the registry of the templates loaded at start-up (agent.h). */
#ifndef TT_PROMPT_H
#define TT_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#define TT_PROMPT_MAX (64 * 1024)
#define TT_PROMPT_MAX_TOKENS_MAX 1000000

typedef struct tt_prompt {
    char name[64];
    int version;
    char tag[80];       /* "name@version" */
    char *text;         /* the template after the header line (owned) */
    int64_t max_tokens; /* the header's output cap for its step; 0: none (the route's) */
} tt_prompt;

/* Load dir/file. TT_ENOTFOUND when missing, TT_EINVAL when the header line is
 * absent or malformed (a max_tokens that is not a whole number in range), TT_ETOOLARGE past
 * TT_PROMPT_MAX. */
int tt_prompt_load(const char *dir, const char *file, tt_prompt *out);
void tt_prompt_free(tt_prompt *p);

/* Fill the template: vars is a NULL-terminated list of name, value pairs.
 * An unknown placeholder is left as is. Caller frees the result. */
char *tt_prompt_render(const tt_prompt *p, const char *const *vars);

/* Untrusted text (a user's request, a document, a tool's result) goes to a
 * model between delimiter tags, with a reminder that it is data. These are
 * the tags; the system prompts name them. */
#define TT_DATA_TAG_USER "user_data"
#define TT_DATA_TAG_TOOL "tool_result"

/* text[0..len) with every '<' that could open or close a delimiter tag
 * written as "&lt;": "</user_data>", "< / USER-DATA >", "<tool_result",
 * nested tags, and a tag cut short at the end ("</user_d", "<"). Other
 * text is unchanged. Caller frees; NULL when out of memory. */
char *tt_prompt_escape_data(const char *text, size_t len);

/* "<tag>\n" + tt_prompt_escape_data(text) + "\n</tag>": the one way untrusted
 * text is wrapped for a model, so it cannot leave its delimiters. Caller
 * frees; NULL when out of memory. */
char *tt_prompt_wrap_data(const char *tag, const char *text, size_t len);

#endif
