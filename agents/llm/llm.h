/* Model providers behind one normalized stream (ARCHITECTURE.md, principle 5).
 *
 * A request (tt_llm_request) is written once, in provider-neutral terms. An
 * adapter (openai.c, anthropic.c) turns it into its wire format and turns the
 * provider's response — streamed SSE or a plain JSON body — back into
 * tt_llm_event values. Retry, backoff, failover and token budgets live above
 * the adapters (retry.h, call.h) and never look at a wire format.
 *
 * This header holds the shared types only. */
#ifndef TT_LLM_H
#define TT_LLM_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef enum tt_llm_provider {
    TT_LLM_OPENAI,    /* OpenAI-compatible chat completions (OpenAI, Azure-style, vLLM, llama.cpp,
                         Ollama) */
    TT_LLM_ANTHROPIC, /* Anthropic Messages */
    TT_LLM_BEDROCK,   /* AWS Bedrock Runtime Converse / ConverseStream (bedrock.h) */
    TT_LLM_PROVIDER__LAST
} tt_llm_provider;

/* What went wrong, as far as retry and failover care. */
typedef enum tt_llm_error_class {
    TT_LLM_ERR_NONE,
    TT_LLM_ERR_RATE_LIMITED,   /* 429; retry_after_ms when the provider said */
    TT_LLM_ERR_OVERLOADED,     /* 529, 503 "overloaded" */
    TT_LLM_ERR_SERVER,         /* other 5xx */
    TT_LLM_ERR_TIMEOUT,        /* connect / first byte / between chunks / total */
    TT_LLM_ERR_NETWORK,        /* reset, refused, DNS, TLS */
    TT_LLM_ERR_CONTEXT_LENGTH, /* prompt too long for the model */
    TT_LLM_ERR_BAD_REQUEST,    /* 400 other than context length, 404, 422 */
    TT_LLM_ERR_AUTH,           /* 401, 403 */
    TT_LLM_ERR_CONTENT_FILTER, /* refused by the provider's filter */
    TT_LLM_ERR_MALFORMED,      /* a response we could not parse */
    TT_LLM_ERR_CANCELLED,      /* aborted on request */
    TT_LLM_ERR__LAST
} tt_llm_error_class;

/* Is an error of this class worth another attempt (same or other target)? */
int tt_llm_error_retryable(tt_llm_error_class c);
const char *tt_llm_error_name(tt_llm_error_class c);

typedef struct tt_llm_error {
    tt_llm_error_class cls;
    int http_status;        /* 0 when no HTTP status was received */
    int64_t retry_after_ms; /* -1 when the provider gave none */
    char message[256];      /* provider's message, truncated; never user text */
} tt_llm_error;

typedef enum tt_llm_event_kind {
    TT_LLM_EV_TEXT,      /* text delta */
    TT_LLM_EV_TOOL_CALL, /* tool-call delta: index, maybe id and name, argument fragment */
    TT_LLM_EV_USAGE,     /* token counts (may come more than once; last wins per field) */
    TT_LLM_EV_FINISH,    /* the model stopped: finish_reason */
    TT_LLM_EV_ERROR      /* a classified error; no more events follow */
} tt_llm_event_kind;

/* Pointers are valid only during the callback that receives the event. */
typedef struct tt_llm_event {
    tt_llm_event_kind kind;
    const char *text; /* TEXT: the fragment (UTF-8, not NUL-terminated) */
    size_t text_len;
    int tool_index;        /* TOOL_CALL: which call this fragment belongs to */
    const char *tool_id;   /* TOOL_CALL: set on the call's first fragment, else NULL */
    const char *tool_name; /* TOOL_CALL: set on the call's first fragment, else NULL */
    const char *args;      /* TOOL_CALL: a fragment of the JSON arguments text */
    size_t args_len;
    int64_t prompt_tokens; /* USAGE; -1 when not reported */
    int64_t completion_tokens;
    const char *finish_reason; /* FINISH: "stop", "length", "tool_calls", "content_filter" */
    tt_llm_error error;        /* ERROR */
} tt_llm_event;

typedef void (*tt_llm_event_fn)(const tt_llm_event *ev, void *ud);

/* A message of the conversation. role: "system", "user", "assistant", "tool". */
typedef struct tt_llm_message {
    const char *role;
    const char *content;      /* may be NULL for an assistant turn that only calls tools */
    json_t *tool_calls;       /* assistant: [{id, name, arguments (JSON text)}] or NULL; borrowed */
    const char *tool_call_id; /* tool: which call this answers */
} tt_llm_message;

typedef struct tt_llm_tool {
    const char *name;
    const char *description;
    json_t *parameters; /* JSON Schema object; borrowed */
} tt_llm_tool;

/* Who a call is for and what it serves: carried by the call, written in each
 * of its log lines and handed to the service's usage hook (call.h), so the
 * server can price, count and limit it by tenant, user, API key, agent and
 * feature. Strings are copied into the call; "" when unknown. */
#define TT_ATTR_FIELD_MAX 128
typedef struct tt_llm_attribution {
    char tenant[TT_ATTR_FIELD_MAX];
    char user[TT_ATTR_FIELD_MAX];
    char key_id[TT_ATTR_FIELD_MAX]; /* the API key's public id (never the key) */
    char agent[TT_ATTR_FIELD_MAX];  /* the agent's name, or "gateway" */
    char session[TT_ATTR_FIELD_MAX];
    char feature[TT_ATTR_FIELD_MAX]; /* a free label (config, session input, header) */
    char ip[64]; /* the client's IP (its tokens per minute are charged); never logged or stored */
} tt_llm_attribution;

/* An opt-in to the semantic cache (semcache.h), e.g. an assistant's
 * "semantic_cache" in the agents file: threshold 0 is the route's (or the
 * routes file's default); multi_turn and tools: also for conversations with
 * more than one user message, and for calls offering tools. */
typedef struct tt_llm_semantic {
    int enabled;
    double threshold;
    int multi_turn, tools;
} tt_llm_semantic;

typedef struct tt_llm_request {
    const char *model;
    const tt_llm_message *messages;
    size_t n_messages;
    const tt_llm_tool *tools;
    size_t n_tools;
    int64_t max_tokens; /* completion cap; 0: the adapter's default (Anthropic requires one) */
    double temperature; /* < 0: not sent */
    int stream;
    json_t *response_schema; /* ask for JSON matching this schema (structured output), or NULL */
    const char *tag;         /* a label for the log line, e.g. "chat.system@1"; not sent */
    const tt_llm_attribution *attr; /* who pays (copied by the call), or NULL; not sent */
    int cache; /* 1: the response cache may answer whatever the temperature (cache.h); not sent */
    const tt_llm_semantic *semantic; /* the semantic cache opted in (semcache.h), or NULL */
    /* PII redaction (redact.h, route_redact.c): the call's first preparation
     * redacts the messages' content into redact_map with redactor; NULL: none */
    struct tt_redact_map *redact_map;
    const struct tt_redact *redactor;
} tt_llm_request;

#endif
