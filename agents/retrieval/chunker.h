/* Text into overlapping chunks by tokens (retrieval.h). Pure: any thread.
 *
 * The text is cut into units that never straddle a boundary worth keeping:
 * blocks (paragraphs, split at blank lines; a Markdown heading line, "#"
 * to "######", is a block of its own), and only a block over the chunk
 * size is cut further, into sentences (after . ! ? followed by a space or a
 * line end), then words, then, for a "word" over the size (a long hash,
 * base64), pieces of `size` bytes on UTF-8 boundaries (a byte-level BPE
 * never makes more tokens than bytes). Each unit is counted with the
 * tokenizer (or tt_tokenizer_estimate when none is loaded).
 *
 * Units are packed in order until the next would pass `size` tokens. The
 * next chunk starts with the last units of the one before whose tokens sum
 * to at most `overlap` (always at least one new unit: every chunk moves on).
 * A heading starts a new chunk, without overlap, when the chunk being
 * filled is already at least half full, so a section is not split across
 * two chunks when it fits in one.
 *
 * A chunk is a span of the text (offset and length, the separators between
 * its units kept); its token count is the sum of its units' counts (each
 * exact with a tokenizer; at the joins of units the count of the whole span
 * can differ by a token or so). */
#ifndef TT_CHUNKER_H
#define TT_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#include "agents/llm/tokenizer.h"

#define TT_CHUNK_TOKENS_DEFAULT 1000
#define TT_CHUNK_OVERLAP_DEFAULT 200
#define TT_CHUNK_TOKENS_MIN 16
#define TT_CHUNK_TOKENS_MAX 8192
#define TT_CHUNKS_PER_DOC_MAX 20000 /* a document cut into more is refused */

typedef struct tt_chunk_opts {
    uint32_t size;    /* tokens per chunk, TT_CHUNK_TOKENS_MIN..MAX */
    uint32_t overlap; /* tokens repeated from the chunk before, 0..size/2 */
} tt_chunk_opts;

typedef struct tt_chunk_span {
    size_t off, len; /* bytes of the text */
    uint32_t tokens;
    int heading; /* starts with a heading line */
} tt_chunk_span;

/* 0 when opts are within the bounds above, else TT_EINVAL with *why. */
int tt_chunk_opts_check(const tt_chunk_opts *opts, const char **why);

/* The chunks of text[0..len) into *out (malloc'ed, *n of them; none for a
 * text of blanks only). tok NULL: estimated counts. Errors: TT_EINVAL (bad
 * opts), TT_ETOOLARGE (over TT_CHUNKS_PER_DOC_MAX chunks), TT_ENOMEM, a
 * tokenizer's error. */
int tt_chunk_text(const tt_tokenizer *tok, const char *text, size_t len, const tt_chunk_opts *opts,
                  tt_chunk_span **out, size_t *n);

#endif
