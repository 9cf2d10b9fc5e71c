/* A session's transcript in the store, append-only (see transcript.h). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "state/transcript.h"

static uint64_t last_index(const tt_session *s)
{
    return s->transcript_first + json_array_size(s->transcript) - 1;
}

int tt_transcript_prepare(const tt_session *s, tt_transcript_batch *b)
{
    assert(s->transcript_first >= 1 && s->transcript_stored_first <= s->transcript_first);
    assert(s->transcript_stored <= last_index(s));
    memset(b, 0, sizeof *b);
    b->first = s->transcript_first;
    b->from = s->transcript_stored + 1 > s->transcript_first ? s->transcript_stored + 1
                                                             : s->transcript_first;
    uint64_t last = last_index(s);
    if (last < b->from)
        return 0;
    size_t n = (size_t)(last - b->from + 1);
    b->texts = calloc(n, sizeof *b->texts);
    b->lens = calloc(n, sizeof *b->lens);
    if (!b->texts || !b->lens)
        return TT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(s->transcript, (size_t)(b->from - s->transcript_first) + i);
        b->texts[i] = json_dumps(entry, JSON_COMPACT);
        if (!b->texts[i])
            return TT_ENOMEM;
        b->lens[i] = strlen(b->texts[i]);
        b->n++;
    }
    return 0;
}

int tt_transcript_write(tt_store_txn *txn, const tt_session *s, const tt_transcript_batch *b)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n; i++)
        rc = tt_store_put_transcript(txn, s->id, b->from + i, b->texts[i], b->lens[i]);
    if (rc == 0 && b->first > s->transcript_stored_first)
        rc = tt_store_trim_transcript(txn, s->id, b->first);
    return rc;
}

void tt_transcript_committed(tt_session *s, const tt_transcript_batch *b)
{
    if (b->n)
        s->transcript_stored = b->from + b->n - 1;
    s->transcript_stored_first = b->first;
}

void tt_transcript_batch_free(tt_transcript_batch *b)
{
    for (size_t i = 0; b->texts && i < b->n; i++)
        free(b->texts[i]);
    free(b->texts);
    free(b->lens);
    memset(b, 0, sizeof *b);
}

int tt_transcript_record_put(const tt_session *s, json_t *record)
{
    json_int_t first = (json_int_t)s->transcript_first;
    json_int_t count = (json_int_t)json_array_size(s->transcript);
    if (json_object_set_new(record, "transcript_first", json_integer(first)) != 0 ||
        json_object_set_new(record, "transcript_count", json_integer(count)) != 0)
        return TT_ENOMEM;
    return 0;
}

int tt_transcript_record_get(tt_session *s, json_t *record, int version)
{
    if (version == 1) {
        /* Inline (absent: empty), nothing in the transcript database yet. */
        json_t *inline_entries = json_object_get(record, "transcript");
        if (json_is_array(inline_entries)) {
            json_decref(s->transcript);
            s->transcript = json_incref(inline_entries);
        }
        s->transcript_first = s->transcript_stored_first = 1;
        s->transcript_stored = 0;
        return 0;
    }
    json_int_t first = 0, count = -1;
    if (json_unpack(record, "{s:I, s:I}", "transcript_first", &first, "transcript_count", &count) !=
            0 ||
        first < 1 || count < 0 || first > INT64_MAX - count)
        return TT_EINVAL;
    json_array_clear(s->transcript);
    s->transcript_first = s->transcript_stored_first = (uint64_t)first;
    s->transcript_stored = (uint64_t)(first + count - 1);
    return 0;
}

typedef struct load_ctx {
    json_t *into;
    uint64_t next; /* the index the next entry must have */
} load_ctx;

static int load_one(uint64_t index, const char *json, size_t len, void *arg)
{
    load_ctx *lc = arg;
    json_t *entry = json_loadb(json, len, 0, NULL);
    if (index != lc->next || !json_is_object(entry)) {
        json_decref(entry);
        return TT_EINVAL;
    }
    lc->next++;
    return json_array_append_new(lc->into, entry) ? TT_ENOMEM : 0;
}

int tt_transcript_load(tt_session *s, tt_store *st)
{
    if (s->transcript_stored < s->transcript_stored_first)
        return 0; /* empty, or a version-1 record (entries inline) */
    size_t count = (size_t)(s->transcript_stored - s->transcript_stored_first + 1);
    load_ctx lc = {s->transcript, s->transcript_stored_first};
    int rc =
        tt_store_read_transcript(st, s->id, s->transcript_stored_first - 1, count, load_one, &lc);
    if (rc == 0 && json_array_size(s->transcript) != count)
        rc = TT_EINVAL;
    return rc;
}
