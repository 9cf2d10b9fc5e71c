/* What went wrong with a model call, in the terms retry and failover use
 * (llm.h, tt_llm_error_class): HTTP statuses, providers' error JSON (in a
 * body or in the middle of a stream), and Retry-After.
 *
 * The provider's own error.message is kept (truncated) for logs and the
 * user; the body is never copied otherwise, since a proxy's page or an echo of
 * the request has no place in an error shown to a client. */
#include <ctype.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>

#include "agents/llm/adapter.h"
#include "protocol/utf8.h"

int tt_llm_error_retryable(tt_llm_error_class c)
{
    switch (c) {
    case TT_LLM_ERR_RATE_LIMITED:
    case TT_LLM_ERR_OVERLOADED:
    case TT_LLM_ERR_SERVER:
    case TT_LLM_ERR_TIMEOUT:
    case TT_LLM_ERR_NETWORK:
        return 1;
    default:
        return 0;
    }
}

const char *tt_llm_error_name(tt_llm_error_class c)
{
    switch (c) {
    case TT_LLM_ERR_NONE:
        return "none";
    case TT_LLM_ERR_RATE_LIMITED:
        return "rate_limited";
    case TT_LLM_ERR_OVERLOADED:
        return "overloaded";
    case TT_LLM_ERR_SERVER:
        return "server";
    case TT_LLM_ERR_TIMEOUT:
        return "timeout";
    case TT_LLM_ERR_NETWORK:
        return "network";
    case TT_LLM_ERR_CONTEXT_LENGTH:
        return "context_length";
    case TT_LLM_ERR_BAD_REQUEST:
        return "bad_request";
    case TT_LLM_ERR_AUTH:
        return "auth";
    case TT_LLM_ERR_CONTENT_FILTER:
        return "content_filter";
    case TT_LLM_ERR_MALFORMED:
        return "malformed";
    case TT_LLM_ERR_CANCELLED:
        return "cancelled";
    default:
        return "unknown";
    }
}

/* ---- Retry-After -------------------------------------------------------- */

/* An HTTP-date is read by libcurl's curl_getdate(), which is lenient: it
 * takes weekday, date, time and zone in any order, parts missing, zones other
 * than GMT, a weekday that contradicts the date, days the month does not have
 * (31 Feb rolls over into March) and trailing words. We accept exactly the
 * three forms of RFC 9110 section 5.6.7, with a four-digit year up to 9999:
 * the instant curl read, written back in one of those forms, must be the
 * value itself (trailing spaces aside). Anything else is garbage (-1), and
 * the caller falls back to its own backoff. A leap second (":60") is refused
 * too: curl rolls it into the next minute, so it does not read back. */
enum { IMF_FIXDATE, RFC850, ASCTIME, HTTP_DATE_FORMS };

static const char *const MONTHS[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const DAYS[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const LONG_DAYS[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};

/* The instant in one form, with our own names (strftime's depend on the locale):
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
 *   RFC 850      Sunday, 06-Nov-94 08:49:37 GMT
 *   asctime      Sun Nov  6 08:49:37 1994 */
static void write_http_date(int form, const struct tm *tm, char *buf, size_t n)
{
    int year = tm->tm_year + 1900;
    const char *mon = MONTHS[tm->tm_mon];
    if (form == IMF_FIXDATE)
        snprintf(buf, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[tm->tm_wday], tm->tm_mday, mon,
                 year, tm->tm_hour, tm->tm_min, tm->tm_sec);
    else if (form == RFC850)
        snprintf(buf, n, "%s, %02d-%s-%02d %02d:%02d:%02d GMT", LONG_DAYS[tm->tm_wday], tm->tm_mday,
                 mon, year % 100, tm->tm_hour, tm->tm_min, tm->tm_sec);
    else
        snprintf(buf, n, "%s %s %2d %02d:%02d:%02d %04d", DAYS[tm->tm_wday], mon, tm->tm_mday,
                 tm->tm_hour, tm->tm_min, tm->tm_sec, year);
}

/* RFC 9110: a two-digit year more than 50 years ahead is in the past century
 * (curl instead puts 70-99 in the 1900s and 00-69 in the 2000s). Moves *tm
 * (weekday included) and *t to that century; -1 when the day does not exist
 * there (29 Feb). */
static int rfc850_century(struct tm *tm, int64_t now_ms, time_t *t)
{
    int64_t now_year = 1970 + now_ms / 1000 / 86400 / 365; /* close enough */
    int64_t year = now_year - now_year % 100 + (tm->tm_year + 1900) % 100;
    if (year > now_year + 50)
        year -= 100;
    else if (year < now_year - 50)
        year += 100;
    int mon = tm->tm_mon;
    tm->tm_year = (int)(year - 1900);
    *t = timegm(tm);
    return tm->tm_mon == mon ? 0 : -1;
}

/* 0 when value is the instant t written in one of the three forms; *out is
 * then that instant in milliseconds since the epoch. */
static int read_back(const char *value, time_t t, int64_t now_ms, int64_t *out)
{
    char back[128];
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
        return -1;
    for (int form = 0; form < HTTP_DATE_FORMS; form++) {
        struct tm in_form = tm;
        time_t at = t;
        /* The weekday is checked in the century the rule picks. */
        if (form == RFC850 && rfc850_century(&in_form, now_ms, &at) != 0)
            continue;
        write_http_date(form, &in_form, back, sizeof back);
        if (strcmp(back, value) == 0) {
            *out = (int64_t)at * 1000;
            return 0;
        }
    }
    return -1;
}

/* An HTTP-date as milliseconds since the epoch. */
static int parse_http_date(const char *s, int64_t now_ms, int64_t *out)
{
    char value[64];
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= sizeof value)
        return -1; /* the longest form is 33 bytes */
    memcpy(value, s, len);
    value[len] = '\0';
    time_t t = curl_getdate(value, NULL);
    if (t == -1)
        return -1;
    /* curl reports 1969-12-31 23:59:59 as 0, keeping -1 for failure. */
    return read_back(value, t, now_ms, out) == 0 ||
                   (t == 0 && read_back(value, -1, now_ms, out) == 0)
               ? 0
               : -1;
}

int64_t tt_llm_parse_retry_after(const char *value, int64_t now_ms)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        int64_t secs = 0;
        const char *s = value;
        for (; isdigit((unsigned char)*s); s++) {
            if (secs > (INT64_MAX / 1000 - 9) / 10)
                return -1; /* absurdly far: treat as garbage */
            secs = secs * 10 + (*s - '0');
        }
        while (*s == ' ' || *s == '\t')
            s++;
        return *s == '\0' ? secs * 1000 : -1;
    }
    int64_t at;
    if (parse_http_date(value, now_ms, &at) != 0)
        return -1;
    return at > now_ms ? at - now_ms : 0;
}

/* ---- error JSON --------------------------------------------------------- */

static int has_ci(const char *hay, const char *needle)
{
    if (!hay)
        return 0;
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

static int mem_has_ci(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}

static int is(const char *s, const char *word)
{
    return s && strcmp(s, word) == 0;
}

/* The fields of an error, wherever this server put them:
 * OpenAI {"error":{"message","type","code"}}, Anthropic {"type":"error",
 * "error":{"type","message"}}, Ollama {"error":"text"}, a gateway's
 * {"message"} or {"detail"}, or any of those as the first element of an array. */
typedef struct err_fields {
    const char *type, *code, *message, *inner_code;
    char code_buf[32];
} err_fields;

static void fields_of(json_t *root, err_fields *f)
{
    memset(f, 0, sizeof *f);
    if (json_is_array(root))
        root = json_array_get(root, 0);
    if (!json_is_object(root))
        return;
    json_t *e = json_object_get(root, "error");
    if (json_is_string(e)) {
        f->message = json_string_value(e);
        return;
    }
    if (!json_is_object(e)) {
        f->message = json_string_value(json_object_get(root, "message"));
        if (!f->message)
            f->message = json_string_value(json_object_get(root, "detail"));
        return;
    }
    f->type = json_string_value(json_object_get(e, "type"));
    f->message = json_string_value(json_object_get(e, "message"));
    json_t *code = json_object_get(e, "code");
    if (json_is_string(code)) {
        f->code = json_string_value(code);
    } else if (json_is_integer(code)) {
        snprintf(f->code_buf, sizeof f->code_buf, "%lld", (long long)json_integer_value(code));
        f->code = f->code_buf;
    }
    /* Azure:
     * {"error":{"code":"content_filter","innererror":{"code":"ResponsibleAIPolicyViolation"}}} */
    json_t *inner = json_object_get(e, "innererror");
    f->inner_code = json_string_value(json_object_get(inner, "code"));
}

static int says_context_length(const err_fields *f)
{
    return is(f->code, "context_length_exceeded") || is(f->type, "context_length_exceeded") ||
           is(f->type, "exceed_context_size_error") || /* llama.cpp */
           has_ci(f->message, "maximum context length") ||
           has_ci(f->message, "prompt is too long") ||
           has_ci(f->message, "input is too long") || /* Bedrock */
           has_ci(f->message, "exceeds the available context size");
}

static int says_content_filter(const err_fields *f)
{
    return is(f->code, "content_filter") || is(f->code, "content_policy_violation") ||
           is(f->code, "invalid_prompt") || is(f->inner_code, "ResponsibleAIPolicyViolation");
}

/* No HTTP status to go by (an error in the middle of a 200 stream): the
 * error's type or code decides. Unknown errors there are the server's. */
static tt_llm_error_class class_of_fields(const err_fields *f)
{
    const char *t[2] = {f->type, f->code};
    for (int i = 0; i < 2; i++) {
        const char *s = t[i];
        if (is(s, "rate_limit_error") || is(s, "rate_limit_exceeded") || is(s, "rate_limit") ||
            is(s, "tokens") || is(s, "requests"))
            return TT_LLM_ERR_RATE_LIMITED;
        if (is(s, "overloaded_error") || is(s, "overloaded"))
            return TT_LLM_ERR_OVERLOADED;
        if (is(s, "server_error") || is(s, "api_error") || is(s, "internal_error"))
            return TT_LLM_ERR_SERVER;
        if (is(s, "timeout_error") || is(s, "timeout"))
            return TT_LLM_ERR_TIMEOUT;
        if (is(s, "authentication_error") || is(s, "permission_error") ||
            is(s, "invalid_api_key") || is(s, "insufficient_permissions"))
            return TT_LLM_ERR_AUTH;
        if (is(s, "invalid_request_error") || is(s, "not_found_error") ||
            is(s, "request_too_large") || is(s, "model_not_found"))
            return TT_LLM_ERR_BAD_REQUEST;
    }
    return TT_LLM_ERR_SERVER;
}

static tt_llm_error_class class_of_status(int status, const err_fields *f)
{
    if (status == 429)
        return TT_LLM_ERR_RATE_LIMITED;
    if (status == 529)
        return TT_LLM_ERR_OVERLOADED;
    if (status == 503 && (is(f->type, "overloaded_error") || has_ci(f->message, "overloaded") ||
                          has_ci(f->code, "overloaded")))
        return TT_LLM_ERR_OVERLOADED;
    if (status >= 500)
        return TT_LLM_ERR_SERVER;
    if (status == 408)
        return TT_LLM_ERR_TIMEOUT;
    if (status == 401 || status == 403)
        return TT_LLM_ERR_AUTH;
    return TT_LLM_ERR_BAD_REQUEST; /* 400, 404, 413, 422, other 4xx; a stray 1xx-3xx */
}

static void classify(int status, const err_fields *f, tt_llm_error *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = status;
    out->retry_after_ms = -1;
    int client = status == 0 || (status >= 400 && status < 500 && status != 429 && status != 408 &&
                                 status != 401 && status != 403);
    if (client && says_context_length(f))
        out->cls = TT_LLM_ERR_CONTEXT_LENGTH;
    else if (client && says_content_filter(f))
        out->cls = TT_LLM_ERR_CONTENT_FILTER;
    else if (status == 0)
        out->cls = class_of_fields(f);
    else
        out->cls = class_of_status(status, f);

    if (f->message && *f->message)
        tt_utf8_copy(out->message, sizeof out->message, f->message);
    else if (status)
        tt_utf8_snprintf(out->message, sizeof out->message, "HTTP %d%s%s", status,
                         f->type ? " " : "", f->type ? f->type : "");
    else
        tt_utf8_copy(out->message, sizeof out->message, f->type ? f->type : "provider error");
}

void tt_llm_classify_json(tt_llm_provider p, int status, json_t *root, tt_llm_error *out)
{
    err_fields f;
    fields_of(root, &f);
    classify(status, &f, out);
}

void tt_llm_classify_http(tt_llm_provider p, int status, const char *retry_after, const char *body,
                          size_t len, int64_t now_ms, tt_llm_error *out)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    tt_llm_classify_json(p, status, root, out);
    json_decref(root);
    /* A proxy's plain-text or HTML 503 can say it too. */
    if (status == 503 && out->cls == TT_LLM_ERR_SERVER && body &&
        mem_has_ci(body, len, "overloaded"))
        out->cls = TT_LLM_ERR_OVERLOADED;
    out->retry_after_ms = tt_llm_parse_retry_after(retry_after, now_ms);
}
