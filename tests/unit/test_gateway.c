/* server/gateway_parse.c (OpenAI's body into a model request: roles, tool
 * calls, tools, refusals in OpenAI's error shape, the message cap) and
 * server/gateway.c through tt_gateway_start/tt_gateway_writeable against a
 * scripted provider (fake_upstream.h): a plain completion, a streamed one
 * (chunks, usage, [DONE]), failures before and after output, a body parsed
 * in the thread pool, and a client that leaves. The lws calls the gateway
 * makes are replaced at link time (see CMakeLists.txt) by a recording HTTP
 * response: its status, content type and length, and its body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_upstream.h"
#include "server/gateway.h"
#include "server/gateway_parse.h"
#include "server/server.h"

/* --- the recording response -------------------------------------------------- */

typedef struct response {
    unsigned status;
    char content_type[64];
    lws_filepos_t content_len;
    int chunked;        /* transfer-encoding: chunked was sent */
    int headers;        /* lws_finalize_write_http_header() calls */
    int wants_writable; /* a writable callback was asked for */
    int final;          /* the last write said LWS_WRITE_HTTP_FINAL */
    char body[256 * 1024];
    size_t len;
} response;

int __wrap_lws_callback_on_writable(struct lws *wsi)
{
    ((response *)wsi)->wants_writable = 1;
    return 1;
}

int __wrap_lws_add_http_common_headers(struct lws *wsi, unsigned int code, const char *content_type,
                                       lws_filepos_t content_len, unsigned char **p,
                                       unsigned char *end)
{
    response *r = (response *)wsi;
    r->status = code;
    snprintf(r->content_type, sizeof r->content_type, "%s", content_type);
    r->content_len = content_len;
    return 0;
}

int __wrap_lws_add_http_header_status(struct lws *wsi, unsigned int code, unsigned char **p,
                                      unsigned char *end)
{
    response *r = (response *)wsi;
    r->status = code;
    r->content_len = LWS_ILLEGAL_HTTP_CONTENT_LEN;
    return 0;
}

int __wrap_lws_add_http_header_by_token(struct lws *wsi, enum lws_token_indexes token,
                                        const unsigned char *value, int length, unsigned char **p,
                                        unsigned char *end)
{
    response *r = (response *)wsi;
    if (token == WSI_TOKEN_HTTP_CONTENT_TYPE)
        snprintf(r->content_type, sizeof r->content_type, "%.*s", length, (const char *)value);
    if (token == WSI_TOKEN_HTTP_TRANSFER_ENCODING)
        r->chunked = length == 7 && memcmp(value, "chunked", 7) == 0;
    return 0;
}

int __wrap_lws_finalize_write_http_header(struct lws *wsi, unsigned char *start, unsigned char **p,
                                          unsigned char *end)
{
    ((response *)wsi)->headers++;
    return 0;
}

/* The gateway builds its headers with this one and sends them in front of
 * the body's first bytes (the builders above write nothing, so they add no
 * bytes to what is recorded). */
int __wrap_lws_finalize_http_header(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    ((response *)wsi)->headers++;
    return 0;
}

int __wrap_lws_write(struct lws *wsi, unsigned char *buf, size_t len, enum lws_write_protocol proto)
{
    response *r = (response *)wsi;
    assert_int_equal(r->headers, 1);
    assert_false(r->final);
    assert_true(r->len + len < sizeof r->body);
    memcpy(r->body + r->len, buf, len);
    r->len += len;
    r->body[r->len] = '\0';
    r->final = proto == LWS_WRITE_HTTP_FINAL;
    return (int)len;
}

/* --- the fixture -------------------------------------------------------------- */

typedef struct fixture {
    char routes[64];
    tt_server srv;
    upstream up;
    response res;
    tt_gateway_req *g;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->srv.cfg.gateway_max_messages = 8;
    FILE *out = up_begin(&f->srv.loop, &f->up, f->routes, sizeof f->routes, "tt_gateway_routes");
    assert_non_null(out);
    fprintf(out,
            "{\"routes\":{\"solo\":[{\"provider\":\"openai\",\"base_url\":"
            "\"http://127.0.0.1:%d/v1\",\"model\":\"m-a\",\"region\":\"a\"}]},"
            "\"retry\":{\"max_attempts\":1}}",
            f->up.port);
    fclose(out);
    tt_llm_service_options o = {.loop = &f->srv.loop, .routes_file = f->routes};
    char err[256] = "";
    if (tt_llm_service_new(&o, &f->srv.agent_env.llm, err, sizeof err) != 0)
        fail_msg("routes: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tt_gateway_free(f->g);
    tt_llm_service_close(f->srv.agent_env.llm);
    assert_int_equal(up_end(&f->srv.loop, &f->up), 0);
    unlink(f->routes);
    free(f);
    return 0;
}

static void on_deadline(uv_timer_t *t)
{
}

/* Start the request and serve its writable callbacks until the response is
 * complete (1) or dropped (-1), at most 5 s. */
static int serve(fixture *f, const char *body, size_t len)
{
    f->g = tt_gateway_start(&f->srv, (struct lws *)&f->res, body, len);
    assert_non_null(f->g);
    uv_timer_t deadline;
    uv_timer_init(&f->srv.loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    int rc = 0;
    while (rc == 0 && uv_is_active((uv_handle_t *)&deadline)) {
        if (f->res.wants_writable) {
            f->res.wants_writable = 0;
            rc = tt_gateway_writeable(f->g);
        } else {
            uv_run(&f->srv.loop, UV_RUN_ONCE);
        }
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&f->srv.loop, UV_RUN_NOWAIT);
    assert_int_not_equal(rc, 0);
    tt_gateway_free(f->g);
    f->g = NULL;
    return rc;
}

static json_t *serve_json(fixture *f, const char *body)
{
    assert_int_equal(serve(f, body, strlen(body)), 1);
    assert_true(f->res.final);
    assert_string_equal(f->res.content_type, "application/json");
    assert_int_equal(f->res.content_len, f->res.len);
    json_t *out = json_loads(f->res.body, 0, NULL);
    assert_non_null(out);
    return out;
}

/* The error object of an OpenAI error body: {"error": {message, type, param: null, code}}. */
static json_t *error_of(json_t *body, const char *type, const char *code)
{
    json_t *e = json_object_get(body, "error");
    assert_true(json_is_object(e));
    assert_non_null(json_string_value(json_object_get(e, "message")));
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    assert_true(json_is_null(json_object_get(e, "param")));
    if (code)
        assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    return e;
}

/* A chunked body without its framing; it must end with the zero-length chunk
 * (malloc'd). */
static char *dechunk(const char *body)
{
    char *out = calloc(1, strlen(body) + 1);
    size_t n = 0;
    for (const char *p = body;;) {
        char *eol;
        unsigned long len = strtoul(p, &eol, 16);
        assert_memory_equal(eol, "\r\n", 2);
        p = eol + 2;
        if (len == 0) {
            assert_string_equal(p, "\r\n"); /* the end, nothing after it */
            return out;
        }
        assert_true(strlen(p) >= len + 2);
        memcpy(out + n, p, len);
        n += len;
        p += len;
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
    }
}

/* The data lines of a chunked SSE body, in order (new reference: strings). */
static json_t *sse_data(const char *chunked)
{
    json_t *out = json_array();
    char *body = dechunk(chunked);
    for (const char *p = body; *p;) {
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        assert_memory_equal(p, "data: ", 6);
        json_array_append_new(out, json_stringn(p + 6, (size_t)(end - p - 6)));
        p = end + 2;
    }
    free(body);
    return out;
}

#define USER_HI "{\"role\":\"user\",\"content\":\"hi\"}"

/* --- gateway_parse.c ------------------------------------------------------------ */

static void test_gateway_parse_converts_roles_content_and_tool_calls(void **state)
{
    const char *body =
        "{\"model\":\"solo\",\"temperature\":0.5,\"max_tokens\":7,\"max_completion_tokens\":9,"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":["
        "{\"role\":\"developer\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"image_url\"},{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
        "\"function\",\"function\":{\"name\":\"calc\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"2\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"calc\",\"description\":"
        "\"adds\",\"parameters\":{\"type\":\"object\"}}}]}";
    tt_gateway_parsed p;
    tt_gateway_parse(body, strlen(body), 8, &p);
    assert_int_equal(p.status, 0);
    assert_null(p.error);
    assert_string_equal(p.model, "solo");
    assert_true(p.stream);
    assert_true(p.include_usage);
    const tt_llm_request *r = &p.req;
    assert_string_equal(r->model, "solo");
    assert_string_equal(r->tag, "gateway");
    assert_int_equal(r->max_tokens, 9); /* max_completion_tokens wins */
    assert_true(r->temperature > 0.49 && r->temperature < 0.51);
    assert_int_equal(r->n_messages, 4);
    assert_string_equal(r->messages[0].role, "system");
    assert_string_equal(r->messages[0].content, "be brief");
    assert_string_equal(r->messages[1].role, "user");
    assert_string_equal(r->messages[1].content, "ab"); /* text parts only, joined */
    assert_string_equal(r->messages[2].role, "assistant");
    assert_null(r->messages[2].content);
    json_t *call = json_array_get(r->messages[2].tool_calls, 0);
    assert_int_equal(json_array_size(r->messages[2].tool_calls), 1);
    assert_string_equal(json_string_value(json_object_get(call, "id")), "c1");
    assert_string_equal(json_string_value(json_object_get(call, "name")), "calc");
    assert_string_equal(json_string_value(json_object_get(call, "arguments")), "{\"x\":1}");
    assert_string_equal(r->messages[3].role, "tool");
    assert_string_equal(r->messages[3].tool_call_id, "c1");
    assert_string_equal(r->messages[3].content, "2");
    assert_int_equal(r->n_tools, 1);
    assert_string_equal(r->tools[0].name, "calc");
    assert_string_equal(r->tools[0].description, "adds");
    assert_true(json_is_object(r->tools[0].parameters));
    tt_gateway_parsed_free(&p);
}

static void test_gateway_parse_defaults_without_optional_fields(void **state)
{
    const char *body = "{\"model\":\"solo\",\"messages\":[" USER_HI "]}";
    tt_gateway_parsed p;
    tt_gateway_parse(body, strlen(body), 8, &p);
    assert_int_equal(p.status, 0);
    assert_false(p.stream);
    assert_false(p.include_usage);
    assert_int_equal(p.req.max_tokens, 0);
    assert_true(p.req.temperature < 0); /* the provider's own */
    assert_int_equal(p.req.n_tools, 0);
    assert_int_equal(p.req.stream, 0); /* a plain request is a plain upstream call */
    tt_gateway_parsed_free(&p);
}

/* Each body is refused with a 400 in OpenAI's error shape. */
static void test_gateway_parse_refuses_bad_bodies_in_openai_shape(void **state)
{
    const char *bad[] = {
        NULL,
        "",
        "not json",
        "[1,2]",
        "{\"model\":\"solo\",\"model\":\"x\",\"messages\":[" USER_HI "]}",
        "{\"messages\":[" USER_HI "]}",
        "{\"model\":7,\"messages\":[" USER_HI "]}",
        "{\"model\":\"solo\"}",
        "{\"model\":\"solo\",\"messages\":[]}",
        "{\"model\":\"solo\",\"messages\":{}}",
        "{\"model\":\"solo\",\"messages\":[" USER_HI "],\"stream\":\"yes\"}",
        "{\"model\":\"solo\",\"messages\":[" USER_HI "],\"tools\":{}}",
        "{\"model\":\"solo\",\"messages\":[" USER_HI "],\"max_tokens\":1.5}",
        "{\"model\":\"solo\",\"messages\":[" USER_HI "],\"temperature\":\"hot\"}",
        "{\"model\":\"solo\",\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}",
        "{\"model\":\"solo\",\"messages\":[{\"content\":\"hi\"}]}",
        "{\"model\":\"solo\",\"messages\":[1]}",
        "{\"model\":\"solo\",\"messages\":[" USER_HI "],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"description\":\"no name\"}}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tt_gateway_parsed p;
        tt_gateway_parse(bad[i], bad[i] ? strlen(bad[i]) : 0, 8, &p);
        if (p.status != 400)
            fail_msg("body %zu was not refused: %s", i, bad[i] ? bad[i] : "(null)");
        error_of(p.error, "invalid_request_error", NULL);
        tt_gateway_parsed_free(&p);
    }
}

static void test_gateway_parse_refuses_more_messages_than_the_cap(void **state)
{
    char body[1024];
    int n = snprintf(body, sizeof body, "{\"model\":\"solo\",\"messages\":[");
    for (int i = 0; i < 4; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "%s" USER_HI, i ? "," : "");
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    tt_gateway_parsed p;
    tt_gateway_parse(body, strlen(body), 4, &p);
    assert_int_equal(p.status, 0); /* at the cap */
    tt_gateway_parsed_free(&p);
    tt_gateway_parse(body, strlen(body), 3, &p);
    assert_int_equal(p.status, 400);
    json_t *e = error_of(p.error, "invalid_request_error", "too_many_messages");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "at most 3"));
    tt_gateway_parsed_free(&p);
}

static void test_gateway_model_allow_list(void **state)
{
    assert_true(tt_gateway_model_allowed("*", "gpt-4o"));
    assert_true(tt_gateway_model_allowed("gpt-4o, o3-mini", "o3-mini"));
    assert_true(tt_gateway_model_allowed(" gpt-4o ,x", "gpt-4o"));
    assert_false(tt_gateway_model_allowed("gpt-4o", "gpt-4")); /* whole names only */
    assert_false(tt_gateway_model_allowed("gpt-4", "gpt-4o"));
    assert_false(tt_gateway_model_allowed("", "gpt-4o")); /* aliases only */
    assert_false(tt_gateway_model_allowed("a,,b", ""));
    assert_false(tt_gateway_model_allowed("gpt-4o*", "gpt-4o-mini")); /* no patterns */
}

/* --- gateway.c ----------------------------------------------------------------- */

static void test_gateway_plain_completion_is_one_json_response(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_JSON_TEXT("Hello"));
    json_t *res = serve_json(f, "{\"model\":\"solo\",\"messages\":[" USER_HI "]}");
    assert_int_equal(f->res.status, 200);
    assert_string_equal(json_string_value(json_object_get(res, "object")), "chat.completion");
    assert_memory_equal(json_string_value(json_object_get(res, "id")), "chatcmpl_", 9);
    assert_string_equal(json_string_value(json_object_get(res, "model")), "m-a");
    json_t *choice = json_array_get(json_object_get(res, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    json_t *message = json_object_get(choice, "message");
    assert_string_equal(json_string_value(json_object_get(message, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(message, "content")), "Hello");
    json_t *usage = json_object_get(res, "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 11);
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 2);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), 13);
    json_decref(res);

    assert_int_equal(f->up.n_requests, 1);
    json_t *sent = json_loads(f->up.bodies[0], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(sent, "model")), "m-a");
    assert_true(json_is_false(json_object_get(sent, "stream"))); /* not a stream upstream */
    json_t *msgs = json_object_get(sent, "messages");
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "content")),
                        "hi");
    json_decref(sent);
}

static void test_gateway_streamed_completion_sends_chunks_usage_and_done(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    const char *body = "{\"model\":\"solo\",\"stream\":true,\"stream_options\":"
                       "{\"include_usage\":true},\"messages\":[" USER_HI "]}";
    assert_int_equal(serve(f, body, strlen(body)), 1);
    assert_int_equal(f->res.status, 200);
    assert_string_equal(f->res.content_type, "text/event-stream");
    assert_true(f->res.content_len == LWS_ILLEGAL_HTTP_CONTENT_LEN);
    assert_true(f->res.chunked); /* so the connection stays open */
    assert_true(f->res.final);
    json_t *data = sse_data(f->res.body);
    assert_int_equal(json_array_size(data), 5);
    json_t *c[4];
    for (size_t i = 0; i < 4; i++) {
        c[i] = json_loads(json_string_value(json_array_get(data, i)), 0, NULL);
        assert_non_null(c[i]);
        assert_string_equal(json_string_value(json_object_get(c[i], "object")),
                            "chat.completion.chunk");
        assert_string_equal(json_string_value(json_object_get(c[i], "id")),
                            json_string_value(json_object_get(c[0], "id")));
    }
    json_t *d0 = json_object_get(json_array_get(json_object_get(c[0], "choices"), 0), "delta");
    json_t *d1 = json_object_get(json_array_get(json_object_get(c[1], "choices"), 0), "delta");
    json_t *fin = json_array_get(json_object_get(c[2], "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(d0, "content")), "Hel");
    assert_null(json_object_get(d1, "role")); /* the role comes once */
    assert_string_equal(json_string_value(json_object_get(d1, "content")), "lo");
    assert_string_equal(json_string_value(json_object_get(fin, "finish_reason")), "stop");
    assert_int_equal(json_object_size(json_object_get(fin, "delta")), 0);
    assert_int_equal(json_array_size(json_object_get(c[3], "choices")), 0);
    json_t *usage = json_object_get(c[3], "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), 13);
    assert_string_equal(json_string_value(json_array_get(data, 4)), "[DONE]");
    for (size_t i = 0; i < 4; i++)
        json_decref(c[i]);
    json_decref(data);
}

/* A tool call streamed in fragments at the provider's index (here 1: some
 * servers do not count from 0) is one call in the plain response. */
#define SSE_TOOL_FRAGMENT(frag)                                                                    \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[" frag "]},"                      \
    "\"finish_reason\":null}]}\n\n"
#define SSE_TOOL_CALL_AT_INDEX_1                                                                   \
    SSE_TOOL_FRAGMENT("{\"index\":1,\"id\":\"c1\",\"type\":\"function\",\"function\":"             \
                      "{\"name\":\"calc\",\"arguments\":\"{\\\"x\\\"\"}}")                         \
    SSE_TOOL_FRAGMENT("{\"index\":1,\"function\":{\"arguments\":\":1}\"}}")                        \
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"        \
    "data: [DONE]\n\n"

/* A plain upstream answer with a tool call. */
#define JSON_TOOL_CALL(id)                                                                         \
    "{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"calc\","                    \
    "\"arguments\":\"{\\\"x\\\":1}\"}}"
#define JSON_TOOL_ANSWER_HEAD                                                                      \
    "{\"choices\":[{\"index\":0,\"finish_reason\":\"tool_calls\",\"message\":{\"role\":"           \
    "\"assistant\",\"content\":null,\"tool_calls\":["

static void test_gateway_plain_tool_call_makes_one_call(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, JSON_TOOL_ANSWER_HEAD JSON_TOOL_CALL("c1") "]}}]}");
    json_t *res = serve_json(f, "{\"model\":\"solo\",\"messages\":[" USER_HI "]}");
    assert_int_equal(f->res.status, 200);
    json_t *choice = json_array_get(json_object_get(res, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "tool_calls");
    json_t *calls = json_object_get(json_object_get(choice, "message"), "tool_calls");
    assert_int_equal(json_array_size(calls), 1);
    json_t *call = json_array_get(calls, 0);
    assert_string_equal(json_string_value(json_object_get(call, "id")), "c1");
    assert_string_equal(json_string_value(json_object_get(call, "type")), "function");
    json_t *fn = json_object_get(call, "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "calc");
    assert_string_equal(json_string_value(json_object_get(fn, "arguments")), "{\"x\":1}");
    json_decref(res);
}

/* Past 128 tool calls a plain response is not built: the call is stopped. */
static void test_gateway_plain_response_with_too_many_tool_calls_is_a_502(void **state)
{
    fixture *f = *state;
    static char sse[64 * 1024];
    size_t n = 0;
    n += (size_t)snprintf(sse + n, sizeof sse - n, "%s", JSON_TOOL_ANSWER_HEAD);
    for (int i = 0; i < 129; i++)
        n += (size_t)snprintf(sse + n, sizeof sse - n, "%s" JSON_TOOL_CALL("c"), i ? "," : "");
    snprintf(sse + n, sizeof sse - n, "]}}]}");
    up_script(&f->up, UP_REPLY, 200, sse);
    json_t *res = serve_json(f, "{\"model\":\"solo\",\"messages\":[" USER_HI "]}");
    assert_int_equal(f->res.status, 502);
    error_of(res, "upstream_error", "too_large");
    json_decref(res);
}

static void test_gateway_streamed_tool_call_is_relayed_at_its_index(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, SSE_TOOL_CALL_AT_INDEX_1);
    const char *body = "{\"model\":\"solo\",\"stream\":true,\"messages\":[" USER_HI "]}";
    assert_int_equal(serve(f, body, strlen(body)), 1);
    json_t *data = sse_data(f->res.body);
    assert_int_equal(json_array_size(data), 4);
    json_t *first = json_loads(json_string_value(json_array_get(data, 0)), 0, NULL);
    json_t *delta = json_object_get(json_array_get(json_object_get(first, "choices"), 0), "delta");
    json_t *tc = json_array_get(json_object_get(delta, "tool_calls"), 0);
    assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
    assert_int_equal(json_integer_value(json_object_get(tc, "index")), 1);
    assert_string_equal(json_string_value(json_object_get(tc, "id")), "c1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(tc, "function"), "name")),
                        "calc");
    assert_non_null(strstr(json_string_value(json_array_get(data, 2)), "\"tool_calls\""));
    assert_string_equal(json_string_value(json_array_get(data, 3)), "[DONE]");
    json_decref(first);
    json_decref(data);
}

static void test_gateway_stream_without_include_usage_has_no_usage_chunk(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_SSE_TEXT("Hel", "lo"));
    const char *body = "{\"model\":\"solo\",\"stream\":true,\"messages\":[" USER_HI "]}";
    assert_int_equal(serve(f, body, strlen(body)), 1);
    json_t *data = sse_data(f->res.body);
    assert_int_equal(json_array_size(data), 4);
    assert_null(strstr(f->res.body, "\"usage\""));
    assert_string_equal(json_string_value(json_array_get(data, 3)), "[DONE]");
    json_decref(data);
}

static void test_gateway_stream_cut_after_output_ends_with_an_error_chunk(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_CUT, 200, UP_SSE_PARTIAL("Hel"));
    const char *body = "{\"model\":\"solo\",\"stream\":true,\"messages\":[" USER_HI "]}";
    assert_int_equal(serve(f, body, strlen(body)), 1);
    assert_int_equal(f->res.status, 200); /* the headers were out */
    json_t *data = sse_data(f->res.body);
    assert_int_equal(json_array_size(data), 3);
    assert_non_null(strstr(json_string_value(json_array_get(data, 0)), "\"Hel\""));
    json_t *err = json_loads(json_string_value(json_array_get(data, 1)), 0, NULL);
    error_of(err, "upstream_error", "network");
    assert_string_equal(json_string_value(json_array_get(data, 2)), "[DONE]");
    assert_int_equal(f->up.n_requests, 1); /* no retry once bytes are out */
    json_decref(err);
    json_decref(data);
}

static void test_gateway_upstream_refusal_before_output_picks_the_status(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 400, "{\"error\":{\"message\":\"no such thing\"}}");
    up_script(&f->up, UP_REPLY, 429, "{\"error\":{\"message\":\"slow down\"}}");
    up_script(&f->up, UP_REPLY, 500, "{\"error\":{\"message\":\"boom\"}}");
    const unsigned want[] = {400, 429, 502};
    for (size_t i = 0; i < 3; i++) {
        memset(&f->res, 0, sizeof f->res);
        json_t *res =
            serve_json(f, "{\"model\":\"solo\",\"stream\":true,\"messages\":[" USER_HI "]}");
        assert_int_equal(f->res.status, want[i]);
        error_of(res, "upstream_error", NULL);
        json_decref(res);
    }
}

static void test_gateway_unknown_model_is_a_404_without_a_call(void **state)
{
    fixture *f = *state;
    json_t *res = serve_json(f, "{\"model\":\"gpt-nope\",\"messages\":[" USER_HI "]}");
    assert_int_equal(f->res.status, 404);
    json_t *e = error_of(res, "invalid_request_error", "model_not_found");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "gpt-nope"));
    assert_int_equal(f->up.n_requests, 0);
    json_decref(res);
}

static void test_gateway_bad_body_is_a_400_without_a_call(void **state)
{
    fixture *f = *state;
    json_t *res = serve_json(f, "{\"model\":\"solo\",\"messages\":[]}");
    assert_int_equal(f->res.status, 400);
    error_of(res, "invalid_request_error", NULL);
    assert_int_equal(f->up.n_requests, 0);
    json_decref(res);
}

static void test_gateway_without_a_model_service_is_a_503(void **state)
{
    fixture *f = *state;
    tt_llm_service_close(f->srv.agent_env.llm);
    f->srv.agent_env.llm = NULL;
    json_t *res = serve_json(f, "{\"model\":\"solo\",\"messages\":[" USER_HI "]}");
    assert_int_equal(f->res.status, 503);
    error_of(res, "server_error", "no_model_configured");
    json_decref(res);
}

static void test_gateway_stopping_server_refuses_with_a_503(void **state)
{
    fixture *f = *state;
    f->srv.stopping = 1;
    json_t *res = serve_json(f, "{\"model\":\"solo\",\"messages\":[" USER_HI "]}");
    assert_int_equal(f->res.status, 503);
    error_of(res, "server_error", "shutting_down");
    assert_int_equal(f->up.n_requests, 0);
    json_decref(res);
}

/* A body over TT_GATEWAY_PARSE_INLINE_MAX, parsed in the pool. */
static char *large_body(void)
{
    size_t pad = TT_GATEWAY_PARSE_INLINE_MAX + 1024;
    char *body = malloc(pad + 128);
    int n = sprintf(body, "{\"model\":\"solo\",\"messages\":[{\"role\":\"user\",\"content\":\"");
    memset(body + n, 'x', pad);
    strcpy(body + n + pad, "\"}]}");
    return body;
}

static void test_gateway_large_body_is_parsed_in_the_pool_and_answered(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_REPLY, 200, UP_JSON_TEXT("ok"));
    char *body = large_body();
    f->g = tt_gateway_start(&f->srv, (struct lws *)&f->res, body, strlen(body));
    free(body); /* the gateway keeps its own copy */
    tt_gateway_req *g = f->g;
    f->g = NULL;
    uv_timer_t deadline;
    uv_timer_init(&f->srv.loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    int rc = 0;
    while (rc == 0 && uv_is_active((uv_handle_t *)&deadline)) {
        if (f->res.wants_writable) {
            f->res.wants_writable = 0;
            rc = tt_gateway_writeable(g);
        } else {
            uv_run(&f->srv.loop, UV_RUN_ONCE);
        }
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&f->srv.loop, UV_RUN_NOWAIT);
    tt_gateway_free(g);
    assert_int_equal(rc, 1);
    assert_int_equal(f->res.status, 200);
    json_t *res = json_loads(f->res.body, 0, NULL);
    json_t *message =
        json_object_get(json_array_get(json_object_get(res, "choices"), 0), "message");
    assert_string_equal(json_string_value(json_object_get(message, "content")), "ok");
    json_decref(res);
    assert_int_equal(f->up.n_requests, 1);
    assert_true(strlen(f->up.bodies[0]) > TT_GATEWAY_PARSE_INLINE_MAX);
}

static void test_gateway_client_leaving_while_the_body_is_parsed_is_safe(void **state)
{
    fixture *f = *state;
    char *body = large_body();
    tt_gateway_req *g = tt_gateway_start(&f->srv, (struct lws *)&f->res, body, strlen(body));
    free(body);
    tt_gateway_free(g); /* the job is still in the pool: it frees itself */
    for (int i = 0; i < 200 && f->up.n_requests == 0; i++) {
        uv_run(&f->srv.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(f->up.n_requests, 0); /* no call for a request that is gone */
    assert_int_equal(f->res.headers, 0);
}

static void test_gateway_client_leaving_mid_stream_cancels_the_call(void **state)
{
    fixture *f = *state;
    up_script(&f->up, UP_STALL, 200, UP_SSE_PARTIAL("Hel"));
    const char *body = "{\"model\":\"solo\",\"stream\":true,\"messages\":[" USER_HI "]}";
    f->g = tt_gateway_start(&f->srv, (struct lws *)&f->res, body, strlen(body));
    uv_timer_t deadline;
    uv_timer_init(&f->srv.loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    while (!strstr(f->res.body, "Hel") && uv_is_active((uv_handle_t *)&deadline)) {
        if (f->res.wants_writable) {
            f->res.wants_writable = 0;
            assert_int_equal(tt_gateway_writeable(f->g), 0);
        } else {
            uv_run(&f->srv.loop, UV_RUN_ONCE);
        }
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    assert_non_null(strstr(f->res.body, "Hel"));
    assert_false(f->res.final);
    tt_gateway_free(f->g); /* the connection is gone: the call is cancelled, nothing leaks */
    f->g = NULL;
    uv_run(&f->srv.loop, UV_RUN_NOWAIT);
    assert_false(f->res.final);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gateway_parse_converts_roles_content_and_tool_calls),
        cmocka_unit_test(test_gateway_parse_defaults_without_optional_fields),
        cmocka_unit_test(test_gateway_parse_refuses_bad_bodies_in_openai_shape),
        cmocka_unit_test(test_gateway_parse_refuses_more_messages_than_the_cap),
        T(test_gateway_model_allow_list),
        T(test_gateway_plain_completion_is_one_json_response),
        T(test_gateway_streamed_completion_sends_chunks_usage_and_done),
        T(test_gateway_plain_tool_call_makes_one_call),
        T(test_gateway_plain_response_with_too_many_tool_calls_is_a_502),
        T(test_gateway_streamed_tool_call_is_relayed_at_its_index),
        T(test_gateway_stream_without_include_usage_has_no_usage_chunk),
        T(test_gateway_stream_cut_after_output_ends_with_an_error_chunk),
        T(test_gateway_upstream_refusal_before_output_picks_the_status),
        T(test_gateway_unknown_model_is_a_404_without_a_call),
        T(test_gateway_bad_body_is_a_400_without_a_call),
        T(test_gateway_without_a_model_service_is_a_503),
        T(test_gateway_stopping_server_refuses_with_a_503),
        T(test_gateway_large_body_is_parsed_in_the_pool_and_answered),
        T(test_gateway_client_leaving_while_the_body_is_parsed_is_safe),
        T(test_gateway_client_leaving_mid_stream_cancels_the_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
