/* libFuzzer target for agents/llm/eventstream.c and the Bedrock stream
 * parser above it (bedrock.c through adapter.h).
 *
 * Input: byte 0 picks where the stream is cut in two, byte 1 the cap
 * (max_message = 16 + 16 x byte), the rest is the stream. The framing is
 * parsed whole, cut in two, and one byte at a time: all three must deliver
 * the same messages (count and a hash of type, event, exception and
 * payload) and end with the same result code; every message fits the cap;
 * errors are sticky and leave nothing allocated. Then the same bytes go
 * through the Bedrock adapter's stream parser in two pieces, which must end
 * with exactly one FINISH or ERROR and nothing after it. Any disagreement
 * aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/adapter.h"
#include "agents/llm/eventstream.h"
#include "protocol/errors.h"
#include "fuzz_check.h"

typedef struct seen {
    uint64_t hash;
    size_t n;
    size_t cap;
} seen;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3u; /* FNV-1a */
    *h ^= n;
}

static void mix_str(uint64_t *h, const tt_es_str *s)
{
    if (s->p)
        mix(h, s->p, s->len);
    else
        mix(h, "-", 1);
}

static int on_message(const tt_es_message *m, void *ud)
{
    seen *s = ud;
    CHECK(m->payload_len + TT_ES_MIN_MESSAGE <= s->cap);
    CHECK(m->payload != NULL || m->payload_len == 0);
    mix_str(&s->hash, &m->message_type);
    mix_str(&s->hash, &m->event_type);
    mix_str(&s->hash, &m->exception_type);
    mix(&s->hash, m->payload, m->payload_len);
    s->n++;
    return 0;
}

/* step > 0: pieces of step bytes; step 0: two pieces cut at cut. */
static int parse(const uint8_t *buf, size_t len, size_t cap, size_t step, size_t cut, seen *s)
{
    tt_eventstream p;
    tt_eventstream_init(&p, cap, on_message, s);
    int rc = 0;
    if (step) {
        for (size_t i = 0; i < len && rc == 0; i += step)
            rc = tt_eventstream_feed(&p, (const char *)buf + i, len - i < step ? len - i : step);
    } else {
        rc = tt_eventstream_feed(&p, (const char *)buf, cut);
        if (rc == 0)
            rc = tt_eventstream_feed(&p, (const char *)buf + cut, len - cut);
    }
    if (rc) {
        CHECK(rc == TT_EINVAL || rc == TT_ETOOLARGE || rc == TT_ENOMEM);
        CHECK(tt_eventstream_feed(&p, "x", 1) == rc); /* sticky */
        CHECK(p.msg == NULL);
    }
    tt_eventstream_free(&p);
    return rc;
}

static void on_event(const tt_llm_event *ev, void *ud)
{
    int *ends = ud;
    CHECK(*ends == 0); /* nothing after the end */
    if (ev->kind == TT_LLM_EV_FINISH || ev->kind == TT_LLM_EV_ERROR)
        (*ends)++;
}

static void adapter(const uint8_t *buf, size_t len, size_t cut)
{
    tt_llm_parser *p = NULL;
    int ends = 0;
    CHECK(tt_llm_parser_new(TT_LLM_BEDROCK, 1, on_event, &ends, &p) == 0);
    if (tt_llm_parser_feed(p, (const char *)buf, cut) == 0)
        tt_llm_parser_feed(p, (const char *)buf + cut, len - cut);
    tt_llm_parser_finish(p);
    tt_llm_parser_free(p);
    CHECK(ends == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t *buf = data + 2;
    size_t len = size - 2;
    size_t cut = (size_t)data[0] * len / 255;
    size_t cap = TT_ES_MIN_MESSAGE + (size_t)data[1] * 16;

    seen whole = {0xcbf29ce484222325u, 0, cap};
    int rc = parse(buf, len, cap, len ? len : 1, 0, &whole);
    seen two = {0xcbf29ce484222325u, 0, cap};
    CHECK(parse(buf, len, cap, 0, cut, &two) == rc);
    CHECK(two.n == whole.n && two.hash == whole.hash);
    seen bytes = {0xcbf29ce484222325u, 0, cap};
    CHECK(parse(buf, len, cap, 1, 0, &bytes) == rc);
    CHECK(bytes.n == whole.n && bytes.hash == whole.hash);
    adapter(buf, len, cut);
    return 0;
}
