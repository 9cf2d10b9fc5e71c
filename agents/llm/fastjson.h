/* The hot path of a streamed reply: one text delta read out of a provider's
 * chunk without building a jansson tree (issue 18: json_loadb was a fifth of
 * the server's CPU per relayed chunk).
 *
 * The scan is strict and conservative: it accepts only what jansson's
 * json_loadb(data, len, 0) accepts too, and gives the same text. Whatever it
 * is not sure of — a chunk that is not the plain text-delta shape, a key
 * with an escape, a duplicated key that matters, \u0000, a lone surrogate,
 * invalid UTF-8, a control byte, a number that could overflow, nesting deeper
 * than TT_FASTJSON_DEPTH_MAX, trailing bytes, any syntax error — answers
 * "not handled" (0), and the caller parses the chunk with jansson as before,
 * which then handles it (or reports it malformed) exactly as it always did. */
#ifndef TT_FASTJSON_H
#define TT_FASTJSON_H

#include <stddef.h>

#define TT_FASTJSON_DEPTH_MAX 32

/* A JSON string's contents as found in the chunk: raw points at the bytes
 * between the quotes (still escaped when escaped is set); decoded_len is the
 * length once unescaped (= raw_len when not escaped). */
typedef struct tt_fastjson_str {
    const char *raw;
    size_t raw_len;
    size_t decoded_len;
    int escaped;
} tt_fastjson_str;

/* What a plain text-delta chunk says. has_text: the delta's text is a string
 * (possibly empty); when not set, the chunk carries nothing to emit. */
typedef struct tt_fastjson_delta {
    int has_text;
    tt_fastjson_str text;
} tt_fastjson_delta;

/* An OpenAI chat.completion.chunk whose only content is text: a "choices"
 * array of at most one object with an integer "index" of 0 (or none) whose
 * "delta" is an object with "content" a string or null and no "tool_calls",
 * and "finish_reason" null or absent; no "error" key; "usage" null or absent.
 * 1: handled, *out filled; 0: not handled (parse it with jansson). */
int tt_fastjson_openai_delta(const char *data, size_t len, tt_fastjson_delta *out);

/* An Anthropic content_block_delta event's text_delta:
 * {"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}
 * (keys in any order, others ignored). *index gets the block's index.
 * 1: handled; 0: not handled (parse it with jansson). */
int tt_fastjson_anthropic_text(const char *data, size_t len, long long *index,
                               tt_fastjson_delta *out);

/* Unescape s into dst (at least s->decoded_len bytes; not NUL-terminated).
 * Only for strings the scan accepted, so it cannot fail. */
void tt_fastjson_decode(const tt_fastjson_str *s, char *dst);

#endif
