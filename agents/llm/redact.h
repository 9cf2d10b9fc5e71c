/* PII redaction: find e-mail addresses, phone numbers, payment card numbers
 * (Luhn-checked), IBANs (mod-97-checked) and configured extra patterns in a
 * text, and replace each by a stable placeholder (`[EMAIL_1]`, `[CARD_2]`):
 * the same value gets the same placeholder within one mapping, and the
 * mapping turns placeholders in a model's reply back into the values, whole
 * or as a stream cut anywhere.
 *
 * Matching is on bytes (ASCII patterns, PCRE2 without UTF), so any input is
 * accepted, invalid UTF-8 included, and a replacement never splits a
 * multi-byte sequence (every match starts and ends on an ASCII byte).
 * A tt_redact is read-only once made and may be shared by threads; a
 * mapping belongs to one call or session at a time. */
#ifndef TT_REDACT_H
#define TT_REDACT_H

#include <stddef.h>

#include <jansson.h>

#include "protocol/buf.h"

#define TT_REDACT_INPUT_MAX (1024 * 1024) /* bytes of one text redacted */
#define TT_REDACT_MAP_MAX 512             /* distinct values in one mapping */
#define TT_REDACT_VALUE_MAX 256           /* bytes of one replaced value */
#define TT_REDACT_EXTRA_MAX 16            /* configured extra patterns */
#define TT_REDACT_LABEL_MAX 16            /* bytes of a placeholder's label (A-Z, 0-9) */
/* `[` + label + `_` + up to 4 digits + `]` */
#define TT_REDACT_PLACEHOLDER_MAX (TT_REDACT_LABEL_MAX + 7)

typedef enum tt_redact_kind {
    TT_REDACT_EMAIL,
    TT_REDACT_PHONE,
    TT_REDACT_CARD,
    TT_REDACT_IBAN,
    TT_REDACT_EXTRA, /* the first extra pattern; the n-th is TT_REDACT_EXTRA + n */
} tt_redact_kind;

typedef struct tt_redact tt_redact;
typedef struct tt_redact_map tt_redact_map;

/* The detectors, with n extra patterns (PCRE2 syntax, matched on bytes)
 * labelled labels[i] (1..TT_REDACT_LABEL_MAX of A-Z, 0-9; not one of the
 * built-in labels). NULL with a message in err on a bad pattern or label. */
tt_redact *tt_redact_new(const char *const *patterns, const char *const *labels, size_t n,
                         char *err, size_t err_len);
void tt_redact_free(tt_redact *r);

/* The shared detectors without extra patterns, made once (thread-safe);
 * NULL only if memory ran out. Never freed. */
const tt_redact *tt_redact_default(void);
/* 0 when the built-in detectors cannot match s: every one of them needs an
 * '@' (e-mail) or an ASCII digit (phone, card, IBAN), and s has neither. The
 * log checks this first, so a line without either neither runs nor (the first
 * time, at start-up) compiles the patterns. */
int tt_redact_default_may_match(const char *s, size_t n);

/* A mapping, with one reference; _ref adds one, _free drops one and frees
 * at the last. References are counted without atomics: take and drop them
 * on one thread (the loop), whichever thread uses the mapping meanwhile. */
tt_redact_map *tt_redact_map_new(void);
tt_redact_map *tt_redact_map_ref(tt_redact_map *m);
void tt_redact_map_free(tt_redact_map *m);
size_t tt_redact_map_count(const tt_redact_map *m);

/* Appends text[0..n) to out with every detected value replaced, new values
 * added to m. Returns the number of replacements, or -1 (out and m as
 * they were) if n > TT_REDACT_INPUT_MAX, m is full, or out's cap is
 * reached. */
int tt_redact_text(const tt_redact *r, tt_redact_map *m, const char *text, size_t n, tt_buf *out);

/* Appends text with every placeholder of m replaced by its value; text
 * that only looks like a placeholder is kept. 0, or -1 when out is full. */
int tt_redact_restore(const tt_redact_map *m, const char *text, size_t n, tt_buf *out);

/* The restore of a stream cut anywhere: bytes that might begin a
 * placeholder (`[` and up to TT_REDACT_PLACEHOLDER_MAX - 1 bytes after it)
 * are held until the next piece or the end. */
typedef struct tt_redact_stream {
    const tt_redact_map *map;
    char held[TT_REDACT_PLACEHOLDER_MAX];
    size_t n_held;
    int json; /* values written as JSON string text (tool call arguments) */
} tt_redact_stream;

void tt_redact_stream_init(tt_redact_stream *s, const tt_redact_map *m);
/* The same for JSON text whose placeholders sit inside strings: the values
 * are escaped (`"`, `\`, control bytes). */
void tt_redact_stream_init_json(tt_redact_stream *s, const tt_redact_map *m);

/* Every string inside v (objects and arrays, to TT_REDACT_JSON_DEPTH_MAX
 * levels; keys are kept) redacted in place into m. The number of
 * replacements, or -1 (v may be partly redacted then: do not send it). */
#define TT_REDACT_JSON_DEPTH_MAX 64
int tt_redact_json(const tt_redact *r, tt_redact_map *m, json_t *v, int depth);
/* Appends what can be restored of held + text[0..n) to out. 0 or -1. */
int tt_redact_stream_feed(tt_redact_stream *s, const char *text, size_t n, tt_buf *out);
/* Appends what is still held (the stream ended). 0 or -1. */
int tt_redact_stream_end(tt_redact_stream *s, tt_buf *out);

/* Checks used by the detectors, exposed for tests: digits only. */
int tt_redact_luhn_ok(const char *digits, size_t n);
/* IBAN without spaces: country letters, check digits, BBAN (A-Z0-9). */
int tt_redact_iban_ok(const char *iban, size_t n);

#endif
