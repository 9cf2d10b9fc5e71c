/* Tools: built-ins, HTTP tools from a file, argument validation before any
 * execution (see tools.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/schema/schema.h"
#include "agents/tools.h"
#include "protocol/buf.h"
#include "protocol/env.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "protocol/utf8.h"

#define EXPR_MAX 256
#define EXPR_DEPTH 32

struct tt_tool {
    char *name;
    char *description;
    json_t *parameters;
    int builtin; /* 1: current_time, 2: calculate; 0: HTTP */
    char *url;
    char *method;
    int64_t timeout_ms;
    char *secret_header;     /* "Name: value" line, or NULL */
    int approval;            /* 1: each call waits for the user's decision */
    int idempotent;          /* 1: safe to send again with the same Idempotency-Key */
    int64_t approval_ttl_ms; /* how long a call waits for its decide (0: the server's default) */
    json_t *editable;        /* the argument names a decide may edit (array), or NULL */
};

/* --- the calculator ------------------------------------------------------------ */

typedef struct calc {
    const char *p;
    int depth;
    const char *err;
} calc;

static double expr(calc *c);

static void skip(calc *c)
{
    while (*c->p == ' ')
        c->p++;
}

static double primary(calc *c)
{
    skip(c);
    if (++c->depth > EXPR_DEPTH) {
        c->err = "nested too deeply";
        return 0;
    }
    double v = 0;
    if (*c->p == '(') {
        c->p++;
        v = expr(c);
        skip(c);
        if (*c->p != ')')
            c->err = "missing )";
        else
            c->p++;
    } else if (*c->p == '-') {
        c->p++;
        v = -primary(c);
    } else if ((*c->p >= '0' && *c->p <= '9') || *c->p == '.') {
        char *end;
        v = strtod(c->p, &end);
        c->p = end;
    } else {
        c->err = "expected a number or (";
    }
    c->depth--;
    return v;
}

static double power(calc *c)
{
    double base = primary(c);
    skip(c);
    if (*c->p == '^') {
        c->p++;
        return pow(base, power(c)); /* right-associative */
    }
    return base;
}

static double term(calc *c)
{
    double v = power(c);
    for (skip(c); !c->err && (*c->p == '*' || *c->p == '/'); skip(c)) {
        char op = *c->p++;
        double r = power(c);
        if (op == '/' && r == 0)
            c->err = "division by zero";
        v = op == '*' ? v * r : (r != 0 ? v / r : 0);
    }
    return v;
}

static double expr(calc *c)
{
    double v = term(c);
    for (skip(c); !c->err && (*c->p == '+' || *c->p == '-'); skip(c)) {
        char op = *c->p++;
        double r = term(c);
        v = op == '+' ? v + r : v - r;
    }
    return v;
}

int tt_tool_calculate(const char *text, double *out, char *why, size_t n)
{
    if (strlen(text) > EXPR_MAX) {
        snprintf(why, n, "expression longer than %d characters", EXPR_MAX);
        return TT_EINVAL;
    }
    calc c = {text, 0, NULL};
    double v = expr(&c);
    skip(&c);
    if (!c.err && *c.p)
        c.err = "unexpected character";
    if (!c.err && !isfinite(v))
        c.err = "the result is not a finite number";
    if (c.err) {
        snprintf(why, n, "%s at offset %d", c.err, (int)(c.p - text));
        return TT_EINVAL;
    }
    *out = v;
    return 0;
}

/* --- built-ins ---------------------------------------------------------------- */

static void run_builtin(const tt_tool *t, json_t *args, tt_tool_done_fn done, void *ud)
{
    char why[128];
    if (t->builtin == 3) { /* run by the chat agent, which knows the session (chat_tools.c) */
        done(ud, 0, NULL, "retrieve runs inside an assistant's session only");
        return;
    }
    if (t->builtin == 1) {
        json_int_t offset = json_integer_value(json_object_get(args, "utc_offset_minutes"));
        time_t now = time(NULL) + (time_t)offset * 60;
        struct tm tm;
        gmtime_r(&now, &tm);
        char buf[40];
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        json_t *r = json_pack("{s:s, s:I}", "time", buf, "utc_offset_minutes", offset);
        done(ud, 1, r, NULL);
        json_decref(r);
        return;
    }
    double v;
    if (tt_tool_calculate(json_string_value(json_object_get(args, "expression")), &v, why,
                          sizeof why) != 0) {
        done(ud, 0, NULL, why);
        return;
    }
    json_t *r = json_pack("{s:f}", "result", v);
    done(ud, 1, r, NULL);
    json_decref(r);
}

/* --- HTTP tools ------------------------------------------------------------------ */

typedef struct http_call {
    tt_tool_done_fn done;
    void *ud;
    int64_t timeout_ms;
    int status;
    tt_buf body; /* up to TT_TOOL_RESULT_MAX */
    int too_large;
} http_call;

static void on_headers(tt_http_req *r, int status, void *ud)
{
    ((http_call *)ud)->status = status;
}

static int on_data(tt_http_req *r, const char *buf, size_t len, void *ud)
{
    http_call *hc = ud;
    int rc = tt_buf_append(&hc->body, buf, len);
    if (rc == TT_ETOOLARGE)
        hc->too_large = 1;
    return rc != 0;
}

/* Why the call failed, in words the model and the user can act on; NULL
 * when the status and transport say it succeeded. */
static const char *failure(tt_http_req *r, const http_call *hc, tt_llm_error_class cls,
                           const char *detail, char *why, size_t n)
{
    if (hc->too_large)
        snprintf(why, n, "the tool's response is larger than %d bytes", TT_TOOL_RESULT_MAX);
    else if (cls == TT_LLM_ERR_TIMEOUT)
        snprintf(why, n, "the tool did not answer within %lld ms (%s)", (long long)hc->timeout_ms,
                 detail);
    else if (cls != TT_LLM_ERR_NONE)
        snprintf(why, n, "the tool could not be reached: %s", detail);
    else if (hc->status >= 300 && hc->status < 400) {
        const char *to = tt_http_header(r, "Location");
        snprintf(why, n, "the tool answered HTTP %d, a redirect to %.160s, not followed",
                 hc->status, to && *to ? to : "(no Location header)");
    } else if (hc->status < 200 || hc->status >= 300)
        snprintf(why, n, "the tool answered HTTP %d", hc->status);
    else
        return NULL;
    return why;
}

static void on_done(tt_http_req *r, tt_llm_error_class cls, const char *detail, void *ud)
{
    http_call *hc = ud;
    char why[300];
    const char *error = failure(r, hc, cls, detail, why, sizeof why);
    json_t *result = NULL;
    if (!error && !(result = json_loadb(tt_buf_str(&hc->body), hc->body.len, 0, NULL))) {
        snprintf(why, sizeof why, "the tool's response (HTTP %d, %zu bytes) is not JSON",
                 hc->status, hc->body.len);
        error = why;
    }
    hc->done(hc->ud, result != NULL, result, error);
    json_decref(result);
    tt_buf_free(&hc->body);
    free(hc);
}

/* The "Idempotency-Key: KEY" line into out (empty without a key); -1 when
 * the key is too long or holds a byte a header cannot carry. */
static int idem_header(const char *key, char *out, size_t n)
{
    out[0] = '\0';
    if (!key)
        return 0;
    size_t len = strlen(key);
    if (len == 0 || len > TT_TOOL_IDEM_KEY_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (key[i] < 0x21 || key[i] > 0x7e)
            return -1;
    }
    snprintf(out, n, "Idempotency-Key: %s", key);
    return 0;
}

static void run_http(const tt_toolbox *box, const tt_tool *t, json_t *args, const char *idem_key,
                     tt_tool_done_fn done, void *ud)
{
    char idem[TT_TOOL_IDEM_KEY_MAX + 24];
    if (idem_header(idem_key, idem, sizeof idem) != 0) {
        done(ud, 0, NULL, "the idempotency key is not 1..128 printable ASCII characters");
        return;
    }
    http_call *hc = calloc(1, sizeof *hc);
    char *body = json_dumps(args, JSON_COMPACT);
    if (!hc || !body) {
        free(hc);
        free(body);
        done(ud, 0, NULL, "out of memory");
        return;
    }
    hc->done = done;
    hc->ud = ud;
    tt_buf_init(&hc->body, TT_TOOL_RESULT_MAX);
    hc->timeout_ms = t->timeout_ms;
    /* The secret last: the header list ends at the first NULL. */
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                             idem[0] ? idem : t->secret_header, idem[0] ? t->secret_header : NULL,
                             NULL};
    tt_http_timeouts to = {t->timeout_ms, t->timeout_ms, t->timeout_ms, t->timeout_ms};
    static const tt_http_callbacks cb = {on_headers, on_data, on_done};
    if (tt_http_start(box->http, t->method, t->url, headers, body, strlen(body), &to, &cb, hc,
                      NULL) != 0) {
        free(hc);
        done(ud, 0, NULL, "the tool call could not start");
    }
    free(body);
}

/* The model's arguments as JSON, valid against the tool's schema, or NULL
 * with why. */
static json_t *parse_args(const tt_tool *t, const char *args_json, char *why, size_t n)
{
    json_error_t jerr;
    json_t *args =
        json_loads(args_json && *args_json ? args_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
    if (!args) {
        snprintf(why, n, "invalid arguments: not JSON (%s)", jerr.text);
        return NULL;
    }
    char verr[TT_SCHEMA_ERR_MAX];
    if (tt_schema_validate(t->parameters, args, verr, sizeof verr) != 0) {
        snprintf(why, n, "invalid arguments, not executed: %s", verr);
        json_decref(args);
        return NULL;
    }
    return args;
}

int tt_tool_check_args(const tt_tool *t, const char *args_json, char *why, size_t n)
{
    json_t *args = parse_args(t, args_json, why, n);
    json_decref(args);
    return args ? 0 : TT_EINVAL;
}

void tt_tool_call(const tt_toolbox *box, const tt_tool *t, const char *args_json,
                  const char *idem_key, tt_tool_done_fn done, void *ud)
{
    char why[TT_SCHEMA_ERR_MAX + 64];
    json_t *args = parse_args(t, args_json, why, sizeof why);
    if (!args) {
        done(ud, 0, NULL, why);
        return;
    }
    if (t->builtin)
        run_builtin(t, args, done, ud);
    else
        run_http(box, t, args, idem_key, done, ud);
    json_decref(args);
}

/* --- loading ----------------------------------------------------------------------- */

static int add_builtins(tt_toolbox *box)
{
    box->tools[0] = (tt_tool){
        .name = strdup("current_time"),
        .description = strdup("The current date and time, optionally shifted to a UTC offset."),
        .parameters = json_pack("{s:s, s:{s:{s:s, s:i, s:i}}, s:b}", "type", "object", "properties",
                                "utc_offset_minutes", "type", "integer", "minimum", -840, "maximum",
                                840, "additionalProperties", 0),
        .builtin = 1};
    box->tools[1] =
        (tt_tool){.name = strdup("calculate"),
                  .description = strdup("Evaluate an arithmetic expression: numbers, + - * / ^ and "
                                        "parentheses."),
                  .parameters = json_pack("{s:s, s:{s:{s:s, s:i, s:i}}, s:[s], s:b}", "type",
                                          "object", "properties", "expression", "type", "string",
                                          "minLength", 1, "maxLength", EXPR_MAX, "required",
                                          "expression", "additionalProperties", 0),
                  .builtin = 2};
    box->tools[2] = (tt_tool){
        .name = strdup("retrieve"),
        .description = strdup("Search the documents of the assistant's collection for passages "
                              "about a query; answer from them and cite them."),
        .parameters = json_pack(
            "{s:s, s:{s:{s:s, s:i, s:i}, s:{s:s, s:i, s:i}}, s:[s], s:b}", "type", "object",
            "properties", "query", "type", "string", "minLength", 1, "maxLength", 4096, "k", "type",
            "integer", "minimum", 1, "maximum", 20, "required", "query", "additionalProperties", 0),
        .builtin = 3};
    box->n = 3;
    for (size_t i = 0; i < 3; i++) {
        if (!box->tools[i].name || !box->tools[i].description || !box->tools[i].parameters)
            return TT_ENOMEM;
    }
    return 0;
}

/* "approval_ttl_s" (1 .. 30 days) and "editable" (names of properties of
 * the parameters, at most 32, each once) go with "approval": true. */
static int check_hitl(const char *name, const json_t *params, int approval, const json_t *ttl,
                      const json_t *editable, char *err, size_t n)
{
    const char *why = NULL;
    json_t *props = json_object_get(params, "properties");
    if ((ttl || editable) && !approval)
        why = "approval_ttl_s and editable go with \"approval\": true";
    else if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
                     json_integer_value(ttl) > TT_TOOL_APPROVAL_TTL_MAX_S))
        why = "approval_ttl_s must be from 1 to 2592000 (30 days)";
    else if (editable && (!json_is_array(editable) || json_array_size(editable) == 0 ||
                          json_array_size(editable) > 32))
        why = "editable must be an array of 1 to 32 argument names";
    size_t i, k;
    json_t *v;
    json_array_foreach(why ? NULL : editable, i, v)
    {
        for (k = 0; k < i && !why; k++)
            if (json_equal(json_array_get(editable, k), v))
                why = "editable names an argument twice";
        if (!why && (!json_is_string(v) || !json_object_get(props, json_string_value(v))))
            why = "editable must name properties of the parameters";
    }
    if (why)
        snprintf(err, n, "tool %.*s: %s", tt_utf8_cut(name, 64), name, why);
    return why ? TT_EINVAL : 0;
}

static int load_http_tool(json_t *def, char **envp, tt_tool *t, char *err, size_t n)
{
    const char *name, *desc = "", *url, *method = "POST", *hdr = NULL, *secret_env = NULL;
    json_t *params;
    json_int_t timeout = 10000;
    int approval = 0, idempotent = 0;
    json_t *ttl = NULL, *editable = NULL;
    json_error_t jerr;
    if (json_unpack_ex(def, &jerr, JSON_STRICT,
                       "{s:s, s?s, s:o, s:s, s?s, s?I, s?s, s?s, s?b, s?b, s?o, s?o}", "name",
                       &name, "description", &desc, "parameters", &params, "url", &url, "method",
                       &method, "timeout_ms", &timeout, "secret_header", &hdr, "secret_env",
                       &secret_env, "approval", &approval, "idempotent", &idempotent,
                       "approval_ttl_s", &ttl, "editable", &editable) != 0) {
        snprintf(err, n, "tools: %s", jerr.text);
        return TT_EINVAL;
    }
    const char *why = "it is empty";
    if (!*name || tt_name_chars_check(name, strlen(name), &why) != 0) {
        char shown[96];
        snprintf(err, n,
                 "tool %s: the name must be UTF-8 without control, bidi or invisible "
                 "characters: %s",
                 tt_name_display(name, shown, sizeof shown), why);
        return TT_EINVAL;
    }
    char serr[TT_SCHEMA_ERR_MAX];
    if (tt_schema_check(params, serr, sizeof serr) != 0) {
        tt_utf8_snprintf(err, n, "tool %.*s: parameters: %s", tt_utf8_cut(name, 64), name, serr);
        return TT_EINVAL;
    }
    if (check_hitl(name, params, approval, ttl, editable, err, n) != 0)
        return TT_EINVAL;
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0) || timeout < 1 ||
        timeout > 600000 || (!hdr != !secret_env)) {
        snprintf(err, n,
                 "tool %.*s: url must be http(s), method POST or PUT, timeout_ms "
                 "1..600000, secret_header and secret_env together",
                 tt_utf8_cut(name, 64), name);
        return TT_EINVAL;
    }
    if (secret_env && !tt_env_name_valid(secret_env)) {
        snprintf(err, n,
                 "tool %.*s: secret_env must be an environment variable name "
                 "([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
                 tt_utf8_cut(name, 64), name, TT_ENV_NAME_MAX);
        return TT_EINVAL;
    }
    const char *secret = secret_env ? tt_env_get(envp, secret_env) : NULL;
    if (secret_env && (!secret || !*secret || strpbrk(secret, "\r\n"))) {
        snprintf(err, n, "tool %.*s: environment variable %.*s is not set", tt_utf8_cut(name, 64),
                 name, tt_utf8_cut(secret_env, 64), secret_env);
        return TT_EINVAL;
    }
    *t = (tt_tool){.name = strdup(name),
                   .description = strdup(desc),
                   .parameters = json_incref(params),
                   .url = strdup(url),
                   .method = strdup(method),
                   .timeout_ms = timeout,
                   .approval = approval,
                   .idempotent = idempotent,
                   .approval_ttl_ms = (int64_t)json_integer_value(ttl) * 1000,
                   .editable = json_incref(editable)};
    if (hdr) {
        size_t len = strlen(hdr) + strlen(secret) + 3;
        t->secret_header = malloc(len);
        if (t->secret_header)
            snprintf(t->secret_header, len, "%s: %s", hdr, secret);
    }
    return t->name && t->description && t->url && t->method && (!hdr || t->secret_header)
               ? 0
               : TT_ENOMEM;
}

int tt_tools_load(const char *file, char **envp, tt_http *http, tt_toolbox *out, char *err,
                  size_t n)
{
    memset(out, 0, sizeof *out);
    out->http = http;
    out->tools = calloc(TT_TOOLS_MAX, sizeof *out->tools);
    int rc = out->tools ? add_builtins(out) : TT_ENOMEM;
    json_t *root = NULL;
    if (rc == 0 && file && *file) {
        json_error_t jerr;
        root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
        json_t *list = json_object_get(root, "tools");
        if (!json_is_array(list)) {
            snprintf(err, n, "%s: must hold {\"tools\": [...]} (%s)", file, jerr.text);
            rc = TT_EINVAL;
        }
        size_t i;
        json_t *def;
        json_array_foreach(list, i, def)
        {
            if (rc)
                break;
            if (out->n == TT_TOOLS_MAX) {
                snprintf(err, n, "%s: at most %d tools", file, TT_TOOLS_MAX);
                rc = TT_EINVAL;
            } else if ((rc = load_http_tool(def, envp, &out->tools[out->n], err, n)) == 0) {
                if (tt_tools_find(out, out->tools[out->n].name) != NULL) {
                    const char *dup = out->tools[out->n].name;
                    tt_utf8_snprintf(err, n, "%s: tool %.*s is defined twice", file,
                                     tt_utf8_cut(dup, 64), dup);
                    rc = TT_EINVAL;
                }
                out->n++;
            }
        }
    }
    json_decref(root);
    if (rc)
        tt_tools_free(out);
    return rc;
}

void tt_tools_free(tt_toolbox *box)
{
    for (size_t i = 0; box->tools && i < TT_TOOLS_MAX; i++) {
        tt_tool *t = &box->tools[i];
        free(t->name);
        free(t->description);
        json_decref(t->parameters);
        free(t->url);
        free(t->method);
        free(t->secret_header);
        json_decref(t->editable);
    }
    free(box->tools);
    memset(box, 0, sizeof *box);
}

const tt_tool *tt_tools_find(const tt_toolbox *box, const char *name)
{
    for (size_t i = 0; name && i < box->n; i++) {
        if (strcmp(box->tools[i].name, name) == 0)
            return &box->tools[i];
    }
    return NULL;
}

const char *tt_tool_name(const tt_tool *t)
{
    return t->name;
}

int tt_tool_needs_approval(const tt_tool *t)
{
    return t->approval;
}

int tt_tool_is_retrieve(const tt_tool *t)
{
    return t->builtin == 3;
}

int tt_tool_is_http(const tt_tool *t)
{
    return t->builtin == 0;
}

int64_t tt_tool_approval_ttl_ms(const tt_tool *t)
{
    return t->approval_ttl_ms;
}

json_t *tt_tool_editable(const tt_tool *t)
{
    return t->editable;
}

int tt_tool_idempotent(const tt_tool *t)
{
    return t->idempotent;
}

const char *tt_tool_description(const tt_tool *t)
{
    return t->description;
}

json_t *tt_tool_parameters(const tt_tool *t)
{
    return t->parameters;
}
