/* The model service's tokenizers (tokenizer.h), one per encoding, loaded
 * once and shared by threads: at start-up in the thread pool once the server
 * listens (tt_tokenizer_set_preload), or by the first call that needs one.
 *
 * Loading o200k_base takes tens of milliseconds (about 95 ms of CPU before
 * the first welcome when it was done before listening: tests/bench/README.md,
 * "Cold start"), so it no longer happens on the way to listening. A thread
 * asking for an encoding another thread is loading waits for that load
 * (exact counts, as before, for a call made in the first milliseconds);
 * one that fails is not tried again (estimates instead). The set is
 * reference-counted: a preload in the pool keeps it alive after its owner
 * lets it go. */
#ifndef TT_TOKENIZER_SET_H
#define TT_TOKENIZER_SET_H

#include <uv.h>

#include "agents/llm/tokenizer.h"

typedef struct tt_tokenizer_set tt_tokenizer_set;

/* A set reading its rank files from dir (NULL: TT_TOKENIZER_DEFAULT_DIR),
 * nothing loaded yet; NULL without memory. */
tt_tokenizer_set *tt_tokenizer_set_new(const char *dir);
/* The owner's reference; the last one frees every tokenizer. NULL: no-op. */
void tt_tokenizer_set_release(tt_tokenizer_set *ts);
const char *tt_tokenizer_set_dir(const tt_tokenizer_set *ts);

/* The tokenizer of enc, loading it now when nobody has (blocks meanwhile),
 * waiting when another thread is loading it; NULL for
 * TT_TOKENIZER_ESTIMATE or when it cannot be loaded (*rc: why, else 0).
 * Any thread. */
const tt_tokenizer *tt_tokenizer_set_get(tt_tokenizer_set *ts, tt_tokenizer_encoding enc, int *rc);

/* 1 when enc is loaded (never blocks, never loads). */
int tt_tokenizer_set_loaded(tt_tokenizer_set *ts, tt_tokenizer_encoding enc);

/* 1 the first time it is asked about enc having failed to load (the caller
 * logs it once), else 0. */
int tt_tokenizer_set_report_failure(tt_tokenizer_set *ts, tt_tokenizer_encoding enc);

/* Load the encodings of the n models in loop's thread pool (encodings
 * already loaded, or of no tokenizer, are skipped): 0, or a libuv error
 * (then each loads on first use). */
int tt_tokenizer_set_preload(tt_tokenizer_set *ts, uv_loop_t *loop, const char *const *models,
                             size_t n);

#endif
