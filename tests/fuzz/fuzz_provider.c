/* libFuzzer target for the provider adapters (agents/llm/adapter.c,
 * openai.c, anthropic.c, classify.c): byte 0 picks the provider, streamed or
 * plain, and where the body is cut in two; the rest is a response body fed
 * as the network would deliver it.
 *
 * Checked: events are well formed (text and argument fragments have the
 * length they claim, tool indexes are non-negative), nothing follows an
 * ERROR or FINISH, and finish() ends every body with exactly one FINISH or
 * ERROR. The error classifier also runs on the input as an HTTP error body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/adapter.h"
#include "protocol/errors.h"
#include "fuzz_check.h"

typedef struct seen {
    int ended;
} seen;

static void on_event(const tt_llm_event *ev, void *ud)
{
    seen *s = ud;
    CHECK(!s->ended);
    switch (ev->kind) {
    case TT_LLM_EV_TEXT:
        CHECK(ev->text || ev->text_len == 0);
        break;
    case TT_LLM_EV_TOOL_CALL:
        CHECK(ev->tool_index >= 0);
        CHECK(ev->args || ev->args_len == 0);
        break;
    case TT_LLM_EV_FINISH:
        CHECK(ev->finish_reason != NULL);
        s->ended = 1;
        break;
    case TT_LLM_EV_ERROR:
        CHECK(ev->error.cls > TT_LLM_ERR_NONE && ev->error.cls < TT_LLM_ERR__LAST);
        CHECK(memchr(ev->error.message, 0, sizeof ev->error.message) != NULL);
        s->ended = 1;
        break;
    case TT_LLM_EV_USAGE:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tt_llm_provider prov = (data[0] & 1) ? TT_LLM_ANTHROPIC : TT_LLM_OPENAI;
    int stream = (data[0] >> 1) & 1;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    size_t cut = len ? (data[0] >> 2) % (len + 1) : 0;

    seen s = {0};
    tt_llm_parser *p = NULL;
    if (tt_llm_parser_new(prov, stream, on_event, &s, &p) != 0)
        return 0;
    int stop = tt_llm_parser_feed(p, body, cut);
    if (!stop)
        stop = tt_llm_parser_feed(p, body + cut, len - cut);
    if (!s.ended)
        tt_llm_parser_finish(p);
    CHECK(s.ended); /* every body ends with exactly one FINISH or ERROR */
    tt_llm_parser_free(p);

    char *text = malloc(len + 1);
    if (text) {
        memcpy(text, body, len);
        text[len] = '\0';
        tt_llm_error e;
        tt_llm_classify_http(prov, 400 + data[0] % 200, text, text, len, 1700000000000LL, &e);
        CHECK(e.cls > TT_LLM_ERR_NONE && e.cls < TT_LLM_ERR__LAST);
        free(text);
    }
    return 0;
}
