/* Unit tests for agents/llm/cache.c: the canonical request (keys sorted at
 * every depth, 1.0 is 1, a tool call's arguments text by its JSON value),
 * what goes into the key (tenant, route, model, temperature, max_tokens; not
 * stream), which calls are cached (temperature 0, a route's "always" or
 * "enabled": false), and a recorded answer replayed event by event from an
 * in-memory store, with the counters per route. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agents/llm/cache.h"
#include "protocol/errors.h"
#include "mem_cache_store.h"

/* A request from JSON text: {"messages": [...], "tools": [...]} and the rest. */
static void request(const char *messages, const char *tools, double temp, int stream,
                    tt_call_request *out)
{
    json_t *m = json_loads(messages, 0, NULL), *t = tools ? json_loads(tools, 0, NULL) : NULL;
    assert_non_null(m);
    tt_llm_message msgs[4] = {{0}};
    size_t n = json_array_size(m);
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(m, i);
        msgs[i] = (tt_llm_message){json_string_value(json_object_get(x, "role")),
                                   json_string_value(json_object_get(x, "content")),
                                   json_object_get(x, "tool_calls"), NULL};
    }
    tt_llm_tool tl[2] = {{0}};
    size_t nt = json_array_size(t);
    for (size_t i = 0; i < nt && i < 2; i++) {
        json_t *x = json_array_get(t, i);
        tl[i] = (tt_llm_tool){json_string_value(json_object_get(x, "name")), NULL,
                              json_object_get(x, "parameters")};
    }
    tt_llm_request req = {.messages = msgs,
                          .n_messages = n,
                          .tools = tl,
                          .n_tools = nt,
                          .max_tokens = 100,
                          .temperature = temp,
                          .stream = stream};
    assert_int_equal(tt_call_request_copy(&req, out), 0);
    json_decref(m);
    json_decref(t);
}

static void key(const tt_call_request *r, const char *tenant, const char *model,
                unsigned char out[TT_LLM_CACHE_KEY_LEN])
{
    assert_int_equal(tt_llm_cache_key(r, tenant, "default", model, out), 0);
}

static void test_canonical_key_order_and_numbers(void **state)
{
    (void)state;
    tt_call_request a, b;
    request("[{\"role\":\"user\",\"content\":\"hi\"}]",
            "[{\"name\":\"calc\",\"parameters\":{\"type\":\"object\",\"properties\":{\"x\":"
            "{\"type\":\"number\",\"minimum\":1,\"maximum\":2.5}}}}]",
            0, 0, &a);
    request("[{\"content\":\"hi\",\"role\":\"user\"}]",
            "[{\"parameters\":{\"properties\":{\"x\":{\"maximum\":2.5,\"minimum\":1.0,"
            "\"type\":\"number\"}},\"type\":\"object\"},\"name\":\"calc\"}]",
            0.0, 1, &b);
    char *ta, *tb;
    size_t la, lb;
    assert_int_equal(tt_llm_cache_canonical(&a, "acme", "default", "", &ta, &la), 0);
    assert_int_equal(tt_llm_cache_canonical(&b, "acme", "default", "", &tb, &lb), 0);
    assert_string_equal(ta, tb); /* stream is not in the key either */
    assert_non_null(strstr(ta, "\"minimum\":1,"));
    assert_non_null(strstr(ta, "\"maximum\":2.5"));
    assert_non_null(strstr(ta, "\"temperature\":0,"));
    /* Sorted: "max_tokens" < "messages" < "model" < "response_format" < ... */
    assert_true(strstr(ta, "\"max_tokens\"") < strstr(ta, "\"messages\""));
    assert_true(strstr(ta, "\"messages\"") < strstr(ta, "\"model\""));
    free(ta);
    free(tb);
    unsigned char ka[TT_LLM_CACHE_KEY_LEN], kb[TT_LLM_CACHE_KEY_LEN];
    key(&a, "acme", "", ka);
    key(&b, "acme", "", kb);
    assert_memory_equal(ka, kb, sizeof ka);
    tt_call_request_free(&a);
    tt_call_request_free(&b);
}

static void test_key_separates(void **state)
{
    (void)state;
    tt_call_request a, warm, other;
    request("[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, 0, 0, &a);
    request("[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, 0.5, 0, &warm);
    request("[{\"role\":\"user\",\"content\":\"hi!\"}]", NULL, 0, 0, &other);
    unsigned char k[6][TT_LLM_CACHE_KEY_LEN];
    key(&a, "acme", "", k[0]);
    key(&a, "umbrella", "", k[1]); /* another tenant */
    key(&a, "acme", "gpt-4o", k[2]);
    key(&warm, "acme", "", k[3]);
    key(&other, "acme", "", k[4]);
    assert_int_equal(tt_llm_cache_key(&a, "acme", "other-route", "", k[5]), 0);
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            assert_memory_not_equal(k[i], k[j], TT_LLM_CACHE_KEY_LEN);
    a.max_tokens = 101;
    unsigned char k2[TT_LLM_CACHE_KEY_LEN];
    key(&a, "acme", "", k2);
    assert_memory_not_equal(k2, k[0], sizeof k2);
    tt_call_request_free(&a);
    tt_call_request_free(&warm);
    tt_call_request_free(&other);
}

static void test_tool_call_arguments_by_value(void **state)
{
    (void)state;
    tt_call_request a, b, c;
    request("[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"f\","
            "\"arguments\":\"{\\\"a\\\":1,\\\"b\\\":[2.0]}\"}]}]",
            NULL, 0, 0, &a);
    request("[{\"role\":\"assistant\",\"tool_calls\":[{\"arguments\":"
            "\"{ \\\"b\\\": [2], \\\"a\\\": 1.0 }\",\"name\":\"f\",\"id\":\"c1\"}]}]",
            NULL, 0, 0, &b);
    request("[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"f\","
            "\"arguments\":\"{\\\"a\\\":2}\"}]}]",
            NULL, 0, 0, &c);
    unsigned char ka[TT_LLM_CACHE_KEY_LEN], kb[TT_LLM_CACHE_KEY_LEN], kc[TT_LLM_CACHE_KEY_LEN];
    key(&a, "t", "", ka);
    key(&b, "t", "", kb);
    key(&c, "t", "", kc);
    assert_memory_equal(ka, kb, sizeof ka);
    assert_memory_not_equal(ka, kc, sizeof ka);
    tt_call_request_free(&a);
    tt_call_request_free(&b);
    tt_call_request_free(&c);
}

typedef struct seen {
    char text[256];
    int events, tools;
    char tool[64];
} seen;

static void on_event(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    (void)c;
    seen *s = ud;
    s->events++;
    if (ev->kind == TT_LLM_EV_TEXT)
        strncat(s->text, ev->text, ev->text_len);
    if (ev->kind == TT_LLM_EV_TOOL_CALL) {
        s->tools++;
        if (ev->tool_name)
            snprintf(s->tool, sizeof s->tool, "%s", ev->tool_name);
    }
}

static int usage_hits;
static void on_usage(const tt_llm_usage *u, void *ud)
{
    (void)ud;
    assert_int_equal(u->cache_hit, 1);
    assert_true(u->cost_usd == 0);
    assert_int_equal(u->prompt_tokens, 0);
    assert_string_equal(u->attr->tenant, "acme");
    usage_hits++;
}

static void load_routes(const char *text, tt_routes *r)
{
    json_t *o = json_loads(text, 0, NULL);
    char err[256];
    char *envp[] = {NULL};
    int rc = tt_routes_parse(o, NULL, envp, r, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    json_decref(o);
}

static tt_llm_event text_ev(const char *s)
{
    return (tt_llm_event){.kind = TT_LLM_EV_TEXT, .text = s, .text_len = strlen(s)};
}

static void expiry_and_corruption(tt_llm_cache *cache, const tt_routes *routes, mem *mp,
                                  const tt_llm_request *req, const tt_call_request *cr);

static void test_record_and_replay(void **state)
{
    (void)state;
    mem m = {.now = 1000000};
    tt_llm_cache *cache;
    tt_llm_cache_store ops = {mem_get, mem_put, &m, mem_now};
    assert_int_equal(tt_llm_cache_new(&ops, &cache), 0);
    tt_routes routes;
    load_routes("{\"routes\": {\"default\": [{\"provider\": \"openai\", \"model\": \"m\"}],"
                "\"warm\": [{\"provider\": \"openai\", \"model\": \"m\"}],"
                "\"off\": [{\"provider\": \"openai\", \"model\": \"m\"}]},"
                "\"cache\": {\"ttl_s\": 60, \"routes\": {\"warm\": {\"always\": true, "
                "\"ttl_s\": 5}, \"off\": {\"enabled\": false}}}}",
                &routes);
    tt_llm_service_options opt = {.usage = on_usage};
    tt_llm_cache_bind(cache, &opt, &routes);
    tt_llm_attribution attr = {.tenant = "acme"};
    tt_llm_request req = {.temperature = 0, .attr = &attr};
    tt_llm_request warm = {.temperature = 0.9, .attr = &attr};
    /* Which calls: temperature 0; any on "always"; none on "off". */
    assert_null(tt_llm_cache_call_new(cache, &routes, &routes.routes[0], NULL, &warm));
    assert_null(tt_llm_cache_call_new(cache, &routes, &routes.routes[2], NULL, &req));
    tt_llm_cache_call *w = tt_llm_cache_call_new(cache, &routes, &routes.routes[1], NULL, &warm);
    assert_non_null(w);
    tt_llm_cache_call_free(w);

    tt_call_request cr;
    request("[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, 0, 1, &cr);
    tt_llm_cache_call *cc = tt_llm_cache_call_new(cache, &routes, &routes.routes[0], NULL, &req);
    assert_non_null(cc);
    tt_llm_cache_call_key(cc, &cr);
    tt_llm_result r = {
        .prompt_tokens = 7, .completion_tokens = 3, .cost_usd = 0.5, .finish_reason = "tool_calls"};
    assert_int_equal(tt_llm_cache_replay(cc, NULL, on_event, NULL, &r, NULL), 0); /* a miss */
    /* Attempt 0 failed after some output; attempt 1 is the one kept. */
    tt_llm_event e = text_ev("lost ");
    tt_llm_cache_record(cc, 0, &e);
    e = text_ev("Hello, ");
    tt_llm_cache_record(cc, 1, &e);
    e = text_ev("world");
    tt_llm_cache_record(cc, 1, &e);
    tt_llm_event tool = {.kind = TT_LLM_EV_TOOL_CALL,
                         .tool_index = 0,
                         .tool_id = "call_1",
                         .tool_name = "lookup",
                         .args = "{\"q\":1}",
                         .args_len = 7};
    tt_llm_cache_record(cc, 1, &tool);
    snprintf(r.model, sizeof r.model, "gpt-x");
    tt_llm_cache_store_result(cc, &r);
    tt_llm_cache_call_free(cc);
    assert_int_equal(m.puts, 1);
    assert_int_equal(m.expires, m.now + 60000); /* the default TTL of the file */

    tt_llm_cache_call *again = tt_llm_cache_call_new(cache, &routes, &routes.routes[0], NULL, &req);
    tt_llm_cache_call_key(again, &cr);
    seen s = {0};
    tt_llm_result hit = {0};
    assert_int_equal(tt_llm_cache_replay(again, NULL, on_event, &s, &hit, NULL), 1);
    assert_string_equal(s.text, "Hello, world");
    assert_int_equal(s.events, 3);
    assert_int_equal(s.tools, 1);
    assert_string_equal(s.tool, "lookup");
    assert_int_equal(hit.cached, 1);
    assert_true(hit.cost_usd == 0);
    assert_int_equal(hit.prompt_tokens, 7);
    assert_string_equal(hit.model, "gpt-x");
    assert_string_equal(hit.finish_reason, "tool_calls");
    assert_int_equal(usage_hits, 1);
    tt_llm_cache_call_free(again);
    expiry_and_corruption(cache, &routes, &m, &req, &cr);
    tt_call_request_free(&cr);
    free(m.data);
    tt_routes_free(&routes);
    tt_llm_cache_free(cache);
}

/* After test_record_and_replay's hit: an expired entry and a damaged one
 * are misses; the counters per route. */
static void expiry_and_corruption(tt_llm_cache *cache, const tt_routes *routes, mem *mp,
                                  const tt_llm_request *req, const tt_call_request *cr)
{
    seen s = {0};
    tt_llm_result hit = {0};
    tt_llm_cache_call *again;
    /* Expired: a miss. Counters per route. */
    mp->now += 60000;
    again = tt_llm_cache_call_new(cache, routes, &routes->routes[0], NULL, req);
    tt_llm_cache_call_key(again, cr);
    assert_int_equal(tt_llm_cache_replay(again, NULL, on_event, &s, &hit, NULL), 0);
    tt_llm_cache_call_free(again);
    uint64_t hits, misses;
    tt_llm_cache_route_stats(cache, 0, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 2);
    assert_string_equal(tt_llm_cache_route_alias(cache, 1), "warm");

    /* A stored answer that is not well formed is a miss, never passed on. */
    mp->now -= 60000;
    mp->data[mp->len - 3] = 'Q';
    mp->len -= 2;
    again = tt_llm_cache_call_new(cache, routes, &routes->routes[0], NULL, req);
    tt_llm_cache_call_key(again, cr);
    memset(&s, 0, sizeof s);
    assert_int_equal(tt_llm_cache_replay(again, NULL, on_event, &s, &hit, NULL), 0);
    assert_int_equal(s.events, 0);
    tt_llm_cache_stats st;
    tt_llm_cache_stats_get(cache, &st);
    assert_int_equal(st.corrupt, 1);
    tt_llm_cache_call_free(again);
}

/* The caller pauses the replay at its first event (the gateway's output
 * buffer is full) and resumes it later: the rest comes then, once. */
typedef struct pausing {
    tt_llm_cache_call *cc;
    int events;
} pausing;

static void pause_first(tt_llm_call *c, const tt_llm_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    pausing *p = ud;
    if (++p->events == 1)
        assert_int_equal(tt_llm_cache_pause(p->cc, 1), 0);
}

static void test_replay_paused_and_resumed(void **state)
{
    (void)state;
    mem m = {.now = 5000};
    tt_llm_cache *cache;
    tt_llm_cache_store ops = {mem_get, mem_put, &m, mem_now};
    assert_int_equal(tt_llm_cache_new(&ops, &cache), 0);
    tt_routes routes;
    load_routes("{\"routes\": {\"default\": [{\"provider\": \"openai\", \"model\": \"m\"}]}}",
                &routes);
    tt_llm_service_options opt = {0};
    tt_llm_cache_bind(cache, &opt, &routes);
    tt_llm_request req = {.temperature = 0};
    tt_call_request cr;
    request("[{\"role\":\"user\",\"content\":\"count\"}]", NULL, 0, 1, &cr);
    tt_llm_cache_call *cc = tt_llm_cache_call_new(cache, &routes, &routes.routes[0], NULL, &req);
    tt_llm_cache_call_key(cc, &cr);
    const char *words[] = {"one ", "two ", "three"};
    for (int i = 0; i < 3; i++) {
        tt_llm_event e = text_ev(words[i]);
        tt_llm_cache_record(cc, 0, &e);
    }
    tt_llm_result r = {.finish_reason = "stop"};
    tt_llm_cache_store_result(cc, &r);
    tt_llm_cache_call_free(cc);

    cc = tt_llm_cache_call_new(cache, &routes, &routes.routes[0], NULL, &req);
    tt_llm_cache_call_key(cc, &cr);
    pausing p = {.cc = cc};
    tt_llm_result out = {0};
    assert_int_equal(tt_llm_cache_replay(cc, NULL, pause_first, &p, &out, NULL), 2);
    assert_int_equal(p.events, 1);
    assert_int_equal(out.cached, 0); /* not over yet */
    assert_int_equal(tt_llm_cache_pause(cc, 1), 0);
    assert_int_equal(tt_llm_cache_pause(cc, 0), 1); /* the rest, and the end */
    assert_int_equal(p.events, 3);
    assert_int_equal(out.cached, 1);
    assert_int_equal(tt_llm_cache_pause(cc, 0), 0); /* nothing left */
    tt_llm_cache_call_free(cc);
    tt_call_request_free(&cr);
    free(m.data);
    tt_routes_free(&routes);
    tt_llm_cache_free(cache);
}

static void test_routes_cache_settings(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"routes\": {\"a\": [{\"provider\": \"openai\", \"model\": \"m\"}]}, \"cache\": "
        "{\"ttl_s\": 0}}",
        "{\"routes\": {\"a\": [{\"provider\": \"openai\", \"model\": \"m\"}]}, \"cache\": "
        "{\"routes\": {\"b\": {}}}}",
        "{\"routes\": {\"a\": [{\"provider\": \"openai\", \"model\": \"m\"}]}, \"cache\": "
        "{\"routes\": {\"a\": {\"always\": 1}}}}",
        "{\"routes\": {\"a\": [{\"provider\": \"openai\", \"model\": \"m\"}]}, \"cache\": "
        "{\"size\": 5}}",
    };
    const char *why[] = {"cache.ttl_s: must be an integer", "cache.routes: \"b\" is not a route",
                         "cache.routes.a.always: must be true or false",
                         "cache: unknown key \"size\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *o = json_loads(bad[i], 0, NULL);
        tt_routes r;
        char err[256] = "";
        char *envp[] = {NULL};
        assert_int_equal(tt_routes_parse(o, NULL, envp, &r, err, sizeof err), TT_EINVAL);
        if (!strstr(err, why[i]))
            fail_msg("%s: %s", bad[i], err);
        json_decref(o);
    }
    tt_routes r;
    load_routes("{\"routes\": {\"a\": [{\"provider\": \"openai\", \"model\": \"m\"}]}}", &r);
    assert_int_equal(r.cache.enabled, 1);
    assert_int_equal(r.cache.ttl_s, 43200); /* 12 h */
    assert_int_equal(r.routes[0].cache_mode, 0);
    tt_routes_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_key_order_and_numbers),
        cmocka_unit_test(test_key_separates),
        cmocka_unit_test(test_tool_call_arguments_by_value),
        cmocka_unit_test(test_record_and_replay),
        cmocka_unit_test(test_replay_paused_and_resumed),
        cmocka_unit_test(test_routes_cache_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
