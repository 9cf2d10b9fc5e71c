/* agents/llm/route.c: routes files, keys from the environment, the default
 * route from the environment alone, and cost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/llm/route.h"
#include "protocol/errors.h"

static char *test_env[] = {"OPENAI_API_KEY=sk-a", "KEY_B=sk-b", "EMPTY_KEY=", NULL};

static int parse_text(const char *text, const char *where, char **envp, tt_routes *r, char *err)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    if (!obj)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    int rc = tt_routes_parse(obj, where, envp, r, err, 256);
    json_decref(obj);
    return rc;
}

static void test_route_parse_full_file(void **state)
{
    const char *text =
        "{\"routes\": {\"fast\": ["
        "  {\"provider\": \"openai\", \"base_url\": \"http://127.0.0.1:9999/a/v1/\","
        "   \"model\": \"gpt-4o-mini\", \"key_env\": \"OPENAI_API_KEY\", \"region\": \"a\","
        "   \"timeout_ms\": {\"connect\": 1000, \"first_byte\": 2000, \"idle\": 3000,"
        "                   \"total\": 4000}},"
        "  {\"provider\": \"anthropic\", \"base_url\": \"https://b.example/\","
        "   \"model\": \"claude-3-5-haiku-latest\", \"key_env\": \"KEY_B\", \"region\": \"b\"}],"
        " \"local\": [{\"provider\": \"openai\", \"base_url\": \"http://localhost:8000/v1\","
        "              \"model\": \"llama3:8b\"}]},"
        " \"prices\": {\"gpt-4o-mini\": {\"prompt_per_mtok\": 0.15, \"completion_per_mtok\": 0.6},"
        "             \"llama3:8b\": {\"prompt_per_mtok\": 0, \"completion_per_mtok\": 0}},"
        " \"limits\": {\"max_prompt_tokens\": 1000, \"max_completion_tokens\": 200},"
        " \"retry\": {\"max_attempts\": 6, \"base_ms\": 100, \"max_backoff_ms\": 1000,"
        "           \"max_total_ms\": 5000},"
        " \"breaker\": {\"failures\": 3, \"cooldown_ms\": 10000}}";
    tt_routes r;
    char err[256] = "";
    assert_int_equal(parse_text(text, NULL, test_env, &r, err), 0);
    assert_int_equal(r.n_routes, 2);
    tt_route *fast = tt_routes_find(&r, "fast");
    assert_non_null(fast);
    assert_ptr_equal(fast, &r.routes[0]); /* file order is kept */
    assert_int_equal(fast->n_targets, 2);
    tt_route_target *a = &fast->targets[0], *b = &fast->targets[1];
    assert_int_equal(a->provider, TT_LLM_OPENAI);
    assert_string_equal(a->base_url, "http://127.0.0.1:9999/a/v1"); /* '/' dropped */
    assert_string_equal(a->model, "gpt-4o-mini");
    assert_string_equal(a->key_env, "OPENAI_API_KEY");
    assert_string_equal(a->api_key, "sk-a");
    assert_string_equal(a->region, "a");
    assert_int_equal(a->timeouts.connect_ms, 1000);
    assert_int_equal(a->timeouts.first_byte_ms, 2000);
    assert_int_equal(a->timeouts.idle_ms, 3000);
    assert_int_equal(a->timeouts.total_ms, 4000);
    assert_int_equal(b->provider, TT_LLM_ANTHROPIC);
    assert_string_equal(b->base_url, "https://b.example");
    assert_string_equal(b->api_key, "sk-b");
    assert_int_equal(b->timeouts.connect_ms, TT_ROUTE_TIMEOUT_CONNECT);
    assert_int_equal(b->timeouts.total_ms, TT_ROUTE_TIMEOUT_TOTAL);
    assert_int_equal(fast->breakers[0].state, TT_BREAKER_CLOSED);
    assert_int_equal(fast->breakers[1].state, TT_BREAKER_CLOSED);

    tt_route *local = tt_routes_find(&r, "local");
    assert_non_null(local);
    assert_string_equal(local->targets[0].key_env, "");
    assert_string_equal(local->targets[0].api_key, ""); /* no key for a local server */
    assert_string_equal(local->targets[0].region, "");
    assert_null(tt_routes_find(&r, "slow"));
    assert_null(tt_routes_find(&r, NULL));

    assert_int_equal(r.prices.n, 2);
    assert_int_equal(r.max_prompt_tokens, 1000);
    assert_int_equal(r.max_completion_tokens, 200);
    assert_int_equal(r.retry.max_attempts, 6);
    assert_int_equal(r.retry.base_ms, 100);
    assert_int_equal(r.retry.max_backoff_ms, 1000);
    assert_int_equal(r.retry.max_total_ms, 5000);
    assert_int_equal(r.retry.breaker_failures, 3);
    assert_int_equal(r.retry.breaker_cooldown_ms, 10000);
    tt_routes_free(&r);
    tt_routes_free(&r); /* harmless */
}

static void test_route_parse_minimal_gets_defaults(void **state)
{
    tt_routes r;
    char err[256] = "";
    const char *text = "{\"routes\": {\"default\": [{\"provider\": \"anthropic\","
                       " \"model\": \"claude-3-5-haiku-latest\","
                       " \"timeout_ms\": {\"total\": 30000}}]}}";
    assert_int_equal(parse_text(text, NULL, test_env, &r, err), 0);
    const tt_route_target *t = &r.routes[0].targets[0];
    assert_string_equal(t->base_url, TT_ROUTE_ANTHROPIC_BASE);
    /* Timeouts left to their defaults shrink to fit a smaller total. */
    assert_int_equal(t->timeouts.connect_ms, TT_ROUTE_TIMEOUT_CONNECT);
    assert_int_equal(t->timeouts.first_byte_ms, 30000);
    assert_int_equal(t->timeouts.idle_ms, 30000);
    assert_int_equal(r.max_prompt_tokens, TT_ROUTE_DEFAULT_MAX_PROMPT);
    assert_int_equal(r.max_completion_tokens, TT_ROUTE_DEFAULT_MAX_COMPLETION);
    tt_retry_policy def;
    tt_retry_policy_default(&def);
    /* Field by field: the struct has padding, which an optimised build leaves unset. */
    assert_int_equal(r.retry.max_attempts, def.max_attempts);
    assert_int_equal(r.retry.base_ms, def.base_ms);
    assert_int_equal(r.retry.max_backoff_ms, def.max_backoff_ms);
    assert_int_equal(r.retry.max_total_ms, def.max_total_ms);
    assert_int_equal(r.retry.breaker_failures, def.breaker_failures);
    assert_int_equal(r.retry.breaker_cooldown_ms, def.breaker_cooldown_ms);
    assert_int_equal(r.prices.n, 0);
    tt_routes_free(&r);
}

#define TARGET "{\"provider\": \"openai\", \"model\": \"m\"}"
#define WITH(extra)                                                                                \
    "{\"routes\": {\"fast\": [{\"provider\": \"openai\", \"model\": \"m\"" extra "}]}}"
#define TOP(extra) "{\"routes\": {\"fast\": [" TARGET "]}, " extra "}"

static void expect_refused(const char *text, const char *why)
{
    tt_routes r;
    char err[256] = "";
    assert_int_equal(parse_text(text, NULL, test_env, &r, err), TT_EINVAL);
    if (!strstr(err, why))
        fail_msg("expected '%s' in '%s'\nfor %s", why, err, text);
    assert_int_equal(r.n_routes, 0); /* nothing half-loaded */
    assert_null(r.routes);
}

static void test_route_parse_refuses_bad_structure(void **state)
{
    expect_refused("[]", "top level: must be an object");
    expect_refused("{}", "routes: is required");
    expect_refused("{\"routes\": {}}", "routes: must be an object of 1 to 256 model aliases");
    expect_refused("{\"routes\": []}", "routes: must be an object of 1 to");
    expect_refused(TOP("\"extra\": 1"), "top level: unknown key \"extra\"");
    expect_refused("{\"routes\": {\"a b\": [" TARGET "]}}",
                   "routes: alias \"a b\" must be 1 to 64 bytes");
    expect_refused("{\"routes\": {\"\": [" TARGET "]}}", "routes: alias \"\" must be");
    expect_refused("{\"routes\": {\"fast\": " TARGET "}}",
                   "routes.fast: must be an array of 1 to 8 targets");
    expect_refused("{\"routes\": {\"fast\": []}}", "routes.fast: must be an array of 1 to 8");
    expect_refused("{\"routes\": {\"fast\": [" TARGET "," TARGET "," TARGET "," TARGET "," TARGET
                   "," TARGET "," TARGET "," TARGET "," TARGET "]}}",
                   "routes.fast: must be an array of 1 to 8 targets");
    expect_refused("{\"routes\": {\"fast\": [" TARGET ", \"x\"]}}",
                   "routes.fast[1]: must be an object");
    expect_refused("{\"routes\": {\"fast\": [" TARGET "]}, \"routes\": {}}", "routes:");
}

static void test_route_parse_refuses_bad_targets(void **state)
{
    expect_refused(WITH(", \"modle\": \"x\""), "routes.fast[0]: unknown key \"modle\"");
    expect_refused("{\"routes\": {\"fast\": [{\"model\": \"m\"}]}}",
                   "routes.fast[0].provider: is required");
    expect_refused("{\"routes\": {\"fast\": [{\"provider\": 1, \"model\": \"m\"}]}}",
                   "routes.fast[0].provider: must be a string");
    expect_refused("{\"routes\": {\"fast\": [{\"provider\": \"bedrock\", \"model\": \"m\"}]}}",
                   "routes.fast[0].region: is required for bedrock (or set AWS_REGION)");
    expect_refused("{\"routes\": {\"fast\": [{\"provider\": \"openai\"}]}}",
                   "routes.fast[0].model: is required");
    expect_refused("{\"routes\": {\"fast\": [{\"provider\": \"openai\", \"model\": \"\"}]}}",
                   "routes.fast[0].model: must be 1 to 256 bytes");
    expect_refused("{\"routes\": {\"fast\": [{\"provider\": \"openai\", \"model\": \"a b\"}]}}",
                   "routes.fast[0].model: must be 1 to 256 bytes");
    expect_refused(WITH(", \"base_url\": \"ftp://x/v1\""),
                   "routes.fast[0].base_url: must be an http:// or https:// URL");
    expect_refused(WITH(", \"base_url\": \"http://\""), "routes.fast[0].base_url: must be");
    expect_refused(WITH(", \"base_url\": \"https:///v1\""), "routes.fast[0].base_url: must be");
    expect_refused(WITH(", \"base_url\": \"http://a b/v1\""), "routes.fast[0].base_url: must be");
    expect_refused(WITH(", \"base_url\": \"api.openai.com\""), "not \"api.openai.com\"");
    expect_refused(WITH(", \"base_url\": 5"), "routes.fast[0].base_url: must be a string");
    expect_refused(WITH(", \"key_env\": \"1KEY\""),
                   "routes.fast[0].key_env: must be an environment variable name");
    expect_refused(WITH(", \"key_env\": \"KEY-B\""), "routes.fast[0].key_env: must be an env");
    expect_refused(WITH(", \"key_env\": \"MISSING_KEY\""),
                   "routes.fast[0].key_env: environment variable MISSING_KEY is not set");
    expect_refused(WITH(", \"key_env\": \"EMPTY_KEY\""),
                   "routes.fast[0].key_env: environment variable EMPTY_KEY is empty");
    expect_refused(WITH(", \"region\": \"eu west\""), "routes.fast[0].region: must be at most");
    expect_refused(WITH(", \"timeout_ms\": 5"), "routes.fast[0].timeout_ms: must be an object");
    expect_refused(WITH(", \"timeout_ms\": {\"read\": 5}"),
                   "routes.fast[0].timeout_ms: unknown key \"read\"");
    expect_refused(WITH(", \"timeout_ms\": {\"connect\": 0}"),
                   "routes.fast[0].timeout_ms.connect: must be an integer from 1 to 3600000");
    expect_refused(WITH(", \"timeout_ms\": {\"idle\": 1.5}"),
                   "routes.fast[0].timeout_ms.idle: must be an integer");
    expect_refused(WITH(", \"timeout_ms\": {\"total\": 3600001}"),
                   "routes.fast[0].timeout_ms.total: must be an integer from 1 to 3600000");
    expect_refused(WITH(", \"timeout_ms\": {\"first_byte\": 5000, \"total\": 4000}"),
                   "routes.fast[0].timeout_ms.first_byte: must not exceed total (4000)");
    /* The second target of a route is named by its index. */
    expect_refused("{\"routes\": {\"fast\": [" TARGET ", {\"provider\": \"openai\","
                   " \"model\": \"m\", \"key_env\": \"NOPE\"}]}}",
                   "routes.fast[1].key_env: environment variable NOPE is not set");
}

static void test_route_parse_refuses_bad_sections(void **state)
{
    expect_refused(TOP("\"prices\": []"), "prices: must be an object");
    expect_refused(TOP("\"prices\": {\"m\": 1}"), "prices.m: must be an object");
    expect_refused(TOP("\"prices\": {\"m\": {\"prompt_per_mtok\": 1}}"),
                   "prices.m.completion_per_mtok: is required");
    expect_refused(
        TOP("\"prices\": {\"m\": {\"prompt_per_mtok\": -1, \"completion_per_mtok\": 1}}"),
        "prices.m.prompt_per_mtok: must be a number of USD from 0 to 1000000");
    expect_refused(
        TOP("\"prices\": {\"m\": {\"prompt_per_mtok\": \"1\", \"completion_per_mtok\": 1}}"),
        "prices.m.prompt_per_mtok: must be a number");
    expect_refused(TOP("\"prices\": {\"m\": {\"prompt_per_mtok\": 1, \"completion_per_mtok\": 1,"
                       " \"cached_per_mtok\": 1}}"),
                   "prices.m: unknown key \"cached_per_mtok\"");
    expect_refused(TOP("\"prices\": {\"a b\": {}}"), "prices: model \"a b\" must be");
    expect_refused(TOP("\"limits\": {\"max_prompt_tokens\": 0}"),
                   "limits.max_prompt_tokens: must be an integer from 1 to");
    expect_refused(TOP("\"limits\": {\"max_tokens\": 5}"), "limits: unknown key \"max_tokens\"");
    expect_refused(TOP("\"retry\": {\"max_attempts\": 0}"),
                   "retry.max_attempts: must be an integer from 1 to 16");
    expect_refused(TOP("\"retry\": {\"max_attempts\": 17}"), "retry.max_attempts: must be");
    expect_refused(TOP("\"retry\": {\"base_ms\": 500, \"max_backoff_ms\": 100}"),
                   "retry.max_backoff_ms: must not be below base_ms (500)");
    expect_refused(TOP("\"retry\": {\"jitter\": true}"), "retry: unknown key \"jitter\"");
    expect_refused(TOP("\"retry\": 3"), "retry: must be an object");
    expect_refused(TOP("\"breaker\": {\"failures\": 0}"),
                   "breaker.failures: must be an integer from 1 to 1000");
    expect_refused(TOP("\"breaker\": {\"cooldown_ms\": \"30s\"}"), "breaker.cooldown_ms: must be");
}

static void test_route_parse_names_embedding_path(void **state)
{
    tt_routes r;
    char err[256] = "";
    assert_int_equal(parse_text(WITH(", \"provider\": \"x\""), "llm", test_env, &r, err),
                     TT_EINVAL);
    /* (duplicate "provider": jansson keeps the last) */
    assert_string_equal(err, "llm.routes.fast[0].provider: must be \"openai\", "
                             "\"anthropic\" or \"bedrock\", not \"x\"");
    assert_int_equal(parse_text("[]", "llm", test_env, &r, err), TT_EINVAL);
    assert_string_equal(err, "llm: must be an object");
    /* Control bytes in a quoted value are not echoed. */
    assert_int_equal(parse_text(WITH(", \"region\": \"a\\u0001b\""), NULL, test_env, &r, err),
                     TT_EINVAL);
    assert_non_null(strstr(err, "not \"a?b\""));
}

/* "semantic_cache" (route_semcache.c): defaults, per route, refusals naming the path. */
static void test_route_parse_semantic_cache(void **state)
{
    tt_routes r;
    char err[256] = "";
    assert_int_equal(parse_text(TOP("\"semantic_cache\": {\"embed_route\": \"fast\", "
                                    "\"routes\": {\"fast\": {\"threshold\": 0.8, "
                                    "\"tools\": true}}}"),
                                NULL, test_env, &r, err),
                     0);
    assert_true(r.semcache.configured);
    assert_string_equal(r.semcache.embed_route, "fast");
    assert_true(r.semcache.threshold == TT_ROUTE_SEMCACHE_THRESHOLD);
    assert_int_equal(r.semcache.ttl_s, TT_ROUTE_CACHE_TTL_S);
    assert_int_equal(r.semcache.max_entries, TT_ROUTE_SEMCACHE_MAX_ENTRIES);
    assert_int_equal(r.semcache.lookup_timeout_ms, TT_ROUTE_SEMCACHE_LOOKUP_MS);
    assert_int_equal(r.routes[0].sem_mode, 1);
    assert_true(r.routes[0].sem_threshold == 0.8);
    assert_int_equal(r.routes[0].sem_tools, 1);
    assert_int_equal(r.routes[0].sem_multi_turn, 0);
    tt_routes_free(&r);
    /* absent: off, every route */
    assert_int_equal(parse_text(TOP("\"retry\": {}"), NULL, test_env, &r, err), 0);
    assert_false(r.semcache.configured);
    assert_int_equal(r.routes[0].sem_mode, 0);
    tt_routes_free(&r);
    expect_refused(TOP("\"semantic_cache\": {}"), "semantic_cache.embed_route: must name a route");
    expect_refused(TOP("\"semantic_cache\": {\"embed_route\": \"nope\"}"),
                   "semantic_cache.embed_route: must name a route");
    expect_refused(TOP("\"semantic_cache\": {\"embed_route\": \"fast\", \"threshold\": 0.2}"),
                   "semantic_cache.threshold: must be a number from 0.5 to 1");
    expect_refused(TOP("\"semantic_cache\": {\"embed_route\": \"fast\", \"size\": 1}"),
                   "semantic_cache: unknown key \"size\"");
    expect_refused(TOP("\"semantic_cache\": {\"embed_route\": \"fast\", \"routes\": "
                       "{\"slow\": {}}}"),
                   "semantic_cache.routes.slow: not a route");
    expect_refused(TOP("\"semantic_cache\": {\"embed_route\": \"fast\", \"routes\": "
                       "{\"fast\": {\"multi_turn\": 1}}}"),
                   "semantic_cache.routes.fast.multi_turn: must be true or false");
    expect_refused(TOP("\"semantic_cache\": {\"embed_route\": \"fast\", "
                       "\"lookup_timeout_ms\": 0}"),
                   "semantic_cache.lookup_timeout_ms: must be an integer from 10 to 60000");
}

static void test_route_load_file(void **state)
{
    char path[] = "/tmp/tt_routes_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"routes\": {\"fast\": [{\"provider\": \"openai\", \"model\": \"m\","
                       " \"key_env\": \"KEY_B\"}]}}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    tt_routes r;
    char err[512] = "";
    assert_int_equal(tt_routes_load_file(path, test_env, &r, err, sizeof err), 0);
    assert_string_equal(r.routes[0].targets[0].api_key, "sk-b");
    tt_routes_free(&r);

    /* Refusals name the file and the path. */
    char *no_env[] = {NULL};
    assert_int_equal(tt_routes_load_file(path, no_env, &r, err, sizeof err), TT_EINVAL);
    char want[512];
    snprintf(want, sizeof want,
             "routes file %s: routes.fast[0].key_env: environment variable KEY_B is not set", path);
    assert_string_equal(err, want);

    /* Duplicate keys and bad JSON are refused with a line number. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    json = "{\"routes\": {\"a\": [], \"a\": []}}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    assert_int_equal(tt_routes_load_file(path, test_env, &r, err, sizeof err), TT_EINVAL);
    assert_non_null(strstr(err, "duplicate"));
    assert_non_null(strstr(err, "(line 1)"));
    unlink(path);
    assert_int_equal(tt_routes_load_file(path, test_env, &r, err, sizeof err), TT_EINVAL);
    assert_non_null(strstr(err, path));
    assert_int_equal(r.n_routes, 0);
}

static void test_route_from_env_none(void **state)
{
    tt_routes r;
    char err[256] = "";
    char *env[] = {"PATH=/bin", "OPENAI_API_KEY=", NULL}; /* empty counts as unset */
    assert_int_equal(tt_routes_from_env(env, &r, err, sizeof err), 0);
    assert_int_equal(r.n_routes, 0);
    assert_null(tt_routes_find(&r, "default"));
    tt_routes_free(&r);
}

static void test_route_from_env_openai_only(void **state)
{
    tt_routes r;
    char err[256] = "";
    char *env[] = {"OPENAI_API_KEY=sk-o", NULL};
    assert_int_equal(tt_routes_from_env(env, &r, err, sizeof err), 0);
    assert_int_equal(r.n_routes, 1);
    tt_route *d = tt_routes_find(&r, "default");
    assert_non_null(d);
    assert_int_equal(d->n_targets, 1);
    assert_int_equal(d->targets[0].provider, TT_LLM_OPENAI);
    assert_string_equal(d->targets[0].base_url, "https://api.openai.com/v1");
    assert_string_equal(d->targets[0].model, "gpt-4o-mini");
    assert_string_equal(d->targets[0].api_key, "sk-o");
    int priced = 0;
    assert_true(tt_route_cost(&r.prices, "gpt-4o-mini", 1000000, 0, &priced) > 0.149);
    assert_true(priced);
    tt_routes_free(&r);
}

static void test_route_from_env_both_with_base_urls(void **state)
{
    tt_routes r;
    char err[256] = "";
    char *env[] = {"ANTHROPIC_API_KEY=sk-ant", "ANTHROPIC_BASE_URL=http://127.0.0.1:9/ant/",
                   "OPENAI_BASE_URL=http://127.0.0.1:9/oai/v1", "OPENAI_API_KEY=sk-o", NULL};
    assert_int_equal(tt_routes_from_env(env, &r, err, sizeof err), 0);
    tt_route *d = tt_routes_find(&r, "default");
    assert_non_null(d);
    assert_int_equal(d->n_targets, 2); /* OpenAI first, Anthropic its failover */
    assert_string_equal(d->targets[0].base_url, "http://127.0.0.1:9/oai/v1");
    assert_int_equal(d->targets[1].provider, TT_LLM_ANTHROPIC);
    assert_string_equal(d->targets[1].base_url, "http://127.0.0.1:9/ant");
    assert_string_equal(d->targets[1].model, "claude-3-5-haiku-latest");
    assert_string_equal(d->targets[1].api_key, "sk-ant");
    tt_routes_free(&r);

    char *anth[] = {"ANTHROPIC_API_KEY=sk-ant", NULL};
    assert_int_equal(tt_routes_from_env(anth, &r, err, sizeof err), 0);
    assert_int_equal(r.routes[0].n_targets, 1);
    assert_string_equal(r.routes[0].targets[0].base_url, "https://api.anthropic.com");
    tt_routes_free(&r);
}

/* OPENAI_MODEL / ANTHROPIC_MODEL name the default route's models (a local
 * OpenAI-compatible server serves its own). */
static void test_route_from_env_models_from_the_environment(void **state)
{
    tt_routes r;
    char err[256] = "";
    char *env[] = {"OPENAI_API_KEY=ollama",
                   "OPENAI_BASE_URL=http://127.0.0.1:11434/v1",
                   "OPENAI_MODEL=llama3.2",
                   "ANTHROPIC_API_KEY=sk-ant",
                   "ANTHROPIC_MODEL=claude-sonnet-4-5",
                   NULL};
    assert_int_equal(tt_routes_from_env(env, &r, err, sizeof err), 0);
    tt_route *d = tt_routes_find(&r, "default");
    assert_string_equal(d->targets[0].model, "llama3.2");
    assert_string_equal(d->targets[1].model, "claude-sonnet-4-5");
    tt_routes_free(&r);
    char *empty[] = {"OPENAI_API_KEY=sk-o", "OPENAI_MODEL=", NULL}; /* empty: the default */
    assert_int_equal(tt_routes_from_env(empty, &r, err, sizeof err), 0);
    assert_string_equal(r.routes[0].targets[0].model, TT_ROUTE_OPENAI_MODEL);
    tt_routes_free(&r);
}

/* The example routes file of the repository (a local Ollama / vLLM server)
 * loads: the README points users at it. */
static void test_route_example_file_loads(void **state)
{
    tt_routes r;
    char err[512] = "";
    char *env[] = {NULL};
    if (tt_routes_load_file(EXAMPLE_ROUTES, env, &r, err, sizeof err) != 0)
        fail_msg("%s", err);
    tt_route *d = tt_routes_find(&r, "default");
    assert_non_null(d);
    assert_int_equal(d->n_targets, 2);
    assert_string_equal(d->targets[0].base_url, "http://127.0.0.1:11434/v1");
    assert_string_equal(d->targets[0].api_key, ""); /* a local server takes no key */
    assert_non_null(tt_routes_find(&r, "embed"));
    tt_routes_free(&r);
}

static void test_route_from_env_refuses_bad_base_url(void **state)
{
    tt_routes r;
    char err[256] = "";
    char *env[] = {"OPENAI_API_KEY=sk-o", "OPENAI_BASE_URL=localhost:8000/v1", NULL};
    assert_int_equal(tt_routes_from_env(env, &r, err, sizeof err), TT_EINVAL);
    assert_string_equal(err, "OPENAI_BASE_URL: must be an http:// or https:// URL with a host, "
                             "not \"localhost:8000/v1\"");
    assert_int_equal(r.n_routes, 0);
    /* A base URL without its key is not used, so not checked. */
    char *env2[] = {"ANTHROPIC_BASE_URL=nonsense", NULL};
    assert_int_equal(tt_routes_from_env(env2, &r, err, sizeof err), 0);
    assert_int_equal(r.n_routes, 0);
}

static void test_route_cost(void **state)
{
    tt_routes r;
    char err[256] = "";
    assert_int_equal(
        parse_text(TOP("\"prices\": {\"gpt-4o-mini\": {\"prompt_per_mtok\": 0.15,"
                       " \"completion_per_mtok\": 0.6}, \"big\": {\"prompt_per_mtok\": 3,"
                       " \"completion_per_mtok\": 15}}"),
                   NULL, test_env, &r, err),
        0);
    int priced = -1;
    double c = tt_route_cost(&r.prices, "gpt-4o-mini", 2000000, 500000, &priced);
    assert_true(priced == 1);
    assert_true(c > 0.6 - 1e-9 && c < 0.6 + 1e-9); /* 2 * 0.15 + 0.5 * 0.6 */
    c = tt_route_cost(&r.prices, "big", 1234, 567, NULL);
    assert_true(c > 0.012207 - 1e-9 && c < 0.012207 + 1e-9);
    /* Unreported counts (-1) count as nothing. */
    c = tt_route_cost(&r.prices, "big", -1, 1000000, &priced);
    assert_true(c > 15 - 1e-9 && c < 15 + 1e-9);
    c = tt_route_cost(&r.prices, "unknown-model", 1000, 1000, &priced);
    assert_true(c == 0);
    assert_int_equal(priced, 0);
    assert_true(tt_route_cost(&r.prices, NULL, 1000, 1000, &priced) == 0);
    assert_int_equal(priced, 0);
    tt_routes_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_parse_full_file),
        cmocka_unit_test(test_route_parse_minimal_gets_defaults),
        cmocka_unit_test(test_route_parse_refuses_bad_structure),
        cmocka_unit_test(test_route_parse_refuses_bad_targets),
        cmocka_unit_test(test_route_parse_refuses_bad_sections),
        cmocka_unit_test(test_route_parse_names_embedding_path),
        cmocka_unit_test(test_route_parse_semantic_cache),
        cmocka_unit_test(test_route_load_file),
        cmocka_unit_test(test_route_from_env_none),
        cmocka_unit_test(test_route_from_env_openai_only),
        cmocka_unit_test(test_route_from_env_both_with_base_urls),
        cmocka_unit_test(test_route_from_env_models_from_the_environment),
        cmocka_unit_test(test_route_example_file_loads),
        cmocka_unit_test(test_route_from_env_refuses_bad_base_url),
        cmocka_unit_test(test_route_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
