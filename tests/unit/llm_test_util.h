/* Shared by the adapter tests (test_openai.c, test_anthropic.c): an event
 * recorder, the ways to feed a recorded body (whole, byte by byte, random
 * pieces, CRLF), and fixture loading. Static helpers in a header because
 * each test is its own program. */
#ifndef TT_LLM_TEST_UTIL_H
#define TT_LLM_TEST_UTIL_H

/* ---- helpers: an event recorder and the ways to feed a body ------------- */

typedef struct buf {
    char *s;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_printf(buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    buf_add(b, tmp, (size_t)n);
}

/* Newlines and backslashes escaped so one event is one line. */
static void buf_escaped(buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            buf_add(b, "\\n", 2);
        else if (s[i] == '\\')
            buf_add(b, "\\\\", 2);
        else
            buf_add(b, &s[i], 1);
    }
}

#define MAX_CALLS 8

typedef struct rec {
    buf log;             /* one line per event */
    buf text;            /* all TEXT joined */
    buf args[MAX_CALLS]; /* each call's arguments joined */
    int errors, finishes;
    tt_llm_error error;
} rec;

static void on_event(const tt_llm_event *ev, void *ud)
{
    rec *r = ud;
    /* ERROR and FINISH are always last. */
    assert_int_equal(r->errors + r->finishes, 0);
    switch (ev->kind) {
    case TT_LLM_EV_TEXT:
        assert_true(ev->text_len > 0);
        buf_add(&r->log, "text ", 5);
        buf_escaped(&r->log, ev->text, ev->text_len);
        buf_add(&r->text, ev->text, ev->text_len);
        break;
    case TT_LLM_EV_TOOL_CALL:
        assert_true(ev->tool_index >= 0 && ev->tool_index < MAX_CALLS);
        buf_printf(&r->log, "tool %d", ev->tool_index);
        if (ev->tool_id)
            buf_printf(&r->log, " id=%s", ev->tool_id);
        if (ev->tool_name)
            buf_printf(&r->log, " name=%s", ev->tool_name);
        buf_add(&r->log, " args=", 6);
        buf_escaped(&r->log, ev->args, ev->args_len);
        buf_add(&r->args[ev->tool_index], ev->args ? ev->args : "", ev->args_len);
        break;
    case TT_LLM_EV_USAGE:
        buf_printf(&r->log, "usage %lld %lld", (long long)ev->prompt_tokens,
                   (long long)ev->completion_tokens);
        break;
    case TT_LLM_EV_FINISH:
        r->finishes++;
        buf_printf(&r->log, "finish %s", ev->finish_reason);
        break;
    case TT_LLM_EV_ERROR:
        r->errors++;
        r->error = ev->error;
        buf_printf(&r->log, "error %s %d %s", tt_llm_error_name(ev->error.cls),
                   ev->error.http_status, ev->error.message);
        break;
    default:
        fail_msg("unknown event kind %d", ev->kind);
    }
    buf_add(&r->log, "\n", 1);
}

static void rec_free(rec *r)
{
    free(r->log.s);
    free(r->text.s);
    for (int i = 0; i < MAX_CALLS; i++)
        free(r->args[i].s);
    memset(r, 0, sizeof *r);
}

static const char *log_of(const rec *r)
{
    return r->log.s ? r->log.s : "";
}

static char *fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/llm/%s", FIXTURES, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s", path);
    buf b = {0};
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(&b, tmp, n);
    fclose(f);
    *len = b.len;
    return b.s;
}

/* The same bytes with every LF turned into CRLF. */
static char *to_crlf(const char *s, size_t len, size_t *out_len)
{
    buf b = {0};
    for (size_t i = 0; i < len; i++)
        buf_add(&b, s[i] == '\n' ? "\r\n" : &s[i], s[i] == '\n' ? 2 : 1);
    *out_len = b.len;
    return b.s;
}

enum { WHOLE, BYTES, RANDOM };

/* Feed data in the given pieces; stop feeding at the first ERROR as a caller
 * would, then finish. feed's and finish's results must agree with the events. */
static void run(tt_llm_provider prov, int stream, int structured, const char *data, size_t len,
                int mode, unsigned seed, rec *r)
{
    tt_llm_parser *p = NULL;
    assert_int_equal(tt_llm_parser_new(prov, stream, on_event, r, &p), 0);
    if (structured)
        tt_llm_parser_structured(p);
    size_t at = 0;
    int stopped = 0;
    while (at < len && !stopped) {
        size_t n = len - at;
        if (mode == BYTES) {
            n = 1;
        } else if (mode == RANDOM) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % 97;
            n = k < n ? k : n;
        }
        stopped = tt_llm_parser_feed(p, data + at, n);
        assert_int_equal(stopped != 0, r->errors > 0);
        at += n;
    }
    int rc = tt_llm_parser_finish(p);
    assert_int_equal(rc != 0, r->errors > 0);
    assert_int_equal(r->errors + r->finishes, 1);
    /* finish again is harmless */
    assert_int_equal(tt_llm_parser_finish(p) != 0, rc != 0);
    tt_llm_parser_free(p);
}

/* Every way of cutting the stream gives the expected events. */
static void check_stream(tt_llm_provider prov, int structured, const char *data, size_t len,
                         const char *expected)
{
    rec r = {0};
    run(prov, 1, structured, data, len, WHOLE, 0, &r);
    assert_string_equal(log_of(&r), expected);
    rec_free(&r);
    run(prov, 1, structured, data, len, BYTES, 0, &r);
    assert_string_equal(log_of(&r), expected);
    rec_free(&r);
    for (unsigned seed = 1; seed <= 25; seed++) {
        run(prov, 1, structured, data, len, RANDOM, seed, &r);
        assert_string_equal(log_of(&r), expected);
        rec_free(&r);
    }
    size_t crlf_len;
    char *crlf = to_crlf(data, len, &crlf_len);
    run(prov, 1, structured, crlf, crlf_len, BYTES, 0, &r);
    assert_string_equal(log_of(&r), expected);
    rec_free(&r);
    run(prov, 1, structured, crlf, crlf_len, RANDOM, 7, &r);
    assert_string_equal(log_of(&r), expected);
    rec_free(&r);
    free(crlf);
}

static void check_fixture(tt_llm_provider prov, int structured, const char *name,
                          const char *expected)
{
    size_t len;
    char *data = fixture(name, &len);
    check_stream(prov, structured, data, len, expected);
    free(data);
}

/* Every proper prefix of a complete stream ends in NETWORK "stream ended
 * early", after a prefix of the complete stream's events. */
static void check_every_prefix(tt_llm_provider prov, const char *name)
{
    size_t len;
    char *data = fixture(name, &len);
    rec full = {0};
    run(prov, 1, 0, data, len, WHOLE, 0, &full);
    assert_int_equal(full.finishes, 1);
    for (size_t cut = 0; cut < len; cut++) {
        rec r = {0};
        run(prov, 1, 0, data, cut, WHOLE, 0, &r);
        assert_int_equal(r.errors, 1);
        assert_int_equal(r.error.cls, TT_LLM_ERR_NETWORK);
        assert_string_equal(r.error.message, "stream ended early");
        const char *last = strstr(log_of(&r), "error network");
        assert_non_null(last);
        size_t before = (size_t)(last - log_of(&r));
        assert_true(before <= full.log.len);
        assert_memory_equal(log_of(&r), full.log.s, before);
        rec_free(&r);
    }
    rec_free(&full);
    free(data);
}

static void run_body(tt_llm_provider prov, int structured, const char *name, rec *r)
{
    size_t len;
    char *data = fixture(name, &len);
    run(prov, 0, structured, data, len, RANDOM, 3, r);
    free(data);
}

static void check_json_equal(const char *body, const char *golden_name)
{
    size_t len;
    char *golden = fixture(golden_name, &len);
    json_error_t err;
    json_t *want = json_loadb(golden, len, 0, &err);
    if (!want)
        fail_msg("%s: %s", golden_name, err.text);
    json_t *got = json_loads(body, 0, &err);
    if (!got)
        fail_msg("body: %s", err.text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS);
        print_error("got:\n%s\nwant:\n%s\n", g, w);
        free(g);
        free(w);
        fail();
    }
    json_decref(got);
    json_decref(want);
    free(golden);
}

/* ---- request bodies: the same requests for every provider ----------------- */

/* The golden tool exchange: two system messages, a question, the assistant's
 * two tool calls and their results, a follow-up; order[i] is the index in
 * that list of the i-th message sent (a provider's test moves the second
 * system message to check where it goes). The body must equal golden. */
static inline void check_tool_exchange_body(tt_llm_provider prov, const char *model,
                                            const int order[7], const char *golden)
{
    json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{\"location\":"
                                "{\"type\":\"string\"}},\"required\":[\"location\"]}",
                                0, NULL);
    json_t *calls = json_loads("[{\"id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":"
                               "\"{\\\"location\\\":\\\"Paris\\\"}\"},"
                               "{\"id\":\"call_2\",\"name\":\"get_time\",\"arguments\":\"\"}]",
                               0, NULL);
    assert_non_null(schema);
    assert_non_null(calls);
    const tt_llm_message all[7] = {
        {.role = "system", .content = "You are a helpful assistant."},
        {.role = "system", .content = "Answer briefly."},
        {.role = "user", .content = "What's the weather and the time in Paris?"},
        {.role = "assistant", .content = "I'll check both.", .tool_calls = calls},
        {.role = "tool", .content = "18°C, cloudy", .tool_call_id = "call_1"},
        {.role = "tool", .content = "14:05", .tool_call_id = "call_2"},
        {.role = "user", .content = "Thanks. And tomorrow?"},
    };
    tt_llm_message msgs[7];
    for (int i = 0; i < 7; i++)
        msgs[i] = all[order[i]];
    tt_llm_tool tools[] = {
        {.name = "get_weather",
         .description = "Current weather for a place.",
         .parameters = schema},
        {.name = "get_time", .description = "Local time."},
    };
    tt_llm_request req = {.model = model,
                          .messages = msgs,
                          .n_messages = 7,
                          .tools = tools,
                          .n_tools = 2,
                          .max_tokens = 512,
                          .temperature = 0.25,
                          .stream = 1};
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(tt_llm_build_body(prov, &req, &body, &len), 0);
    assert_int_equal(len, strlen(body));
    check_json_equal(body, golden);
    free(body);
    json_decref(schema);
    json_decref(calls);
}

/* A request for structured output (a photo's title and tags); the body must
 * equal golden. */
static inline void check_structured_body(tt_llm_provider prov, const char *model,
                                         const char *golden)
{
    json_t *schema = json_loads(
        "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\"},\"tags\":{\"type\":"
        "\"array\",\"items\":{\"type\":\"string\"}}},\"required\":[\"title\",\"tags\"],"
        "\"additionalProperties\":false}",
        0, NULL);
    assert_non_null(schema);
    tt_llm_message msgs[] = {{.role = "user", .content = "Describe the photo."}};
    tt_llm_request req = {.model = model,
                          .messages = msgs,
                          .n_messages = 1,
                          .temperature = -1,
                          .response_schema = schema};
    char *body = NULL;
    assert_int_equal(tt_llm_build_body(prov, &req, &body, NULL), 0);
    check_json_equal(body, golden);
    free(body);
    json_decref(schema);
}

#endif
