/* The document analyst: a five-step agent whose run takes minutes, longer
 * than a request-response gateway's timeout allows. Extract the text, list
 * key themes, tag, summarise, and name the team's documents most similar to
 * it by embedding (the tenant's documents, by title). Each step
 * streams and is persisted, so a run of minutes is normal and survives a
 * reconnect or a restart.
 *
 * session.open input: {"document": "...", "format": "text" | "markdown" |
 * "html", "title": "..."}; the run starts at once. A later say with a new
 * document analyses that one. */
#define _GNU_SOURCE /* strcasestr */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agents/engine/engine.h"
#include "agents/retrieval/retrieval.h"
#include "protocol/errors.h"
#include "protocol/names.h"
#include "protocol/utf8.h"
#include "state/registry.h"

#define DOC_MAX (2u << 20)    /* bytes of document accepted */
#define TEXT_MAX (200u << 10) /* bytes of extracted text sent to the model */
#define RELATED_MAX 3         /* similar documents named */
#define RELATED_FLOOR 0.5f    /* their least cosine similarity to the analysed text */

static int doc_validate(const json_t *input, char *err, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)input, key, v)
    {
        int ok = json_is_string(v);
        if (strcmp(key, "format") == 0)
            ok = ok && (strcmp(json_string_value(v), "text") == 0 ||
                        strcmp(json_string_value(v), "markdown") == 0 ||
                        strcmp(json_string_value(v), "html") == 0);
        else if (strcmp(key, "document") == 0)
            ok = ok && json_string_length(v) > 0 && json_string_length(v) <= DOC_MAX;
        else if (strcmp(key, "title") == 0)
            ok = ok && json_string_length(v) <= 200;
        else
            ok = 0;
        if (!ok) {
            snprintf(err, n,
                     "input.%.*s: the analyst takes document (1 byte to 2 MiB), "
                     "format (text, markdown or html) and title (up to 200 bytes)",
                     tt_utf8_cut(key, 32), key);
            return TT_EINVAL;
        }
    }
    if (!json_object_get(input, "document")) {
        snprintf(err, n, "input.document is required: the text to analyse");
        return TT_EINVAL;
    }
    return 0;
}

/* HTML to text: tags dropped, script and style content dropped, the common
 * entities decoded, block ends turned into newlines. */
static char *html_to_text(const char *html)
{
    size_t n = strlen(html);
    char *out = malloc(n + 1), *w = out;
    if (!out)
        return NULL;
    static const struct {
        const char *name, *text;
    } entities[] = {{"&amp;", "&"},   {"&lt;", "<"},  {"&gt;", ">"},
                    {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", " "}};
    for (const char *p = html; *p;) {
        if (*p == '<') {
            const char *closing = strncasecmp(p, "<script", 7) == 0  ? "</script"
                                  : strncasecmp(p, "<style", 6) == 0 ? "</style"
                                                                     : NULL;
            int block = strncasecmp(p, "</p", 3) == 0 || strncasecmp(p, "<br", 3) == 0 ||
                        strncasecmp(p, "</h", 3) == 0 || strncasecmp(p, "</li", 4) == 0 ||
                        strncasecmp(p, "</div", 5) == 0;
            const char *end = strchr(p, '>');
            if (closing && end) {
                const char *close = strcasestr(end, closing); /* its content is not text */
                end = close ? strchr(close, '>') : NULL;
            }
            if (!end)
                break;
            if (block)
                *w++ = '\n';
            p = end + 1;
            continue;
        }
        int decoded = 0;
        for (size_t i = 0; *p == '&' && i < sizeof entities / sizeof *entities; i++) {
            size_t len = strlen(entities[i].name);
            if (strncmp(p, entities[i].name, len) == 0) {
                *w++ = entities[i].text[0];
                p += len;
                decoded = 1;
                break;
            }
        }
        if (!decoded)
            *w++ = *p++;
    }
    *w = '\0';
    return out;
}

static const char *data_str(tt_run *run, const char *key)
{
    return json_string_value(json_object_get(tt_run_data(run), key));
}

static void data_set(tt_run *run, const char *key, json_t *v)
{
    json_object_set_new(tt_run_data(run), key, v);
    tt_run_touch(run);
}

static int step_extract(tt_run *run)
{
    tt_session *s = tt_run_session(run);
    const char *doc = data_str(run, "request"); /* a later say: the new document */
    const char *format = "text";
    if (!doc) {
        doc = json_string_value(json_object_get(s->input, "document"));
        const char *f = json_string_value(json_object_get(s->input, "format"));
        format = f ? f : "text";
    }
    if (!doc)
        return TT_EINVAL;
    char *text = strcmp(format, "html") == 0 ? html_to_text(doc) : strdup(doc);
    if (!text)
        return TT_ENOMEM;
    size_t len = strlen(text);
    if (len > TEXT_MAX) {
        len = TEXT_MAX;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--; /* never cut a UTF-8 sequence */
        text[len] = '\0';
    }
    size_t words = 0;
    for (size_t i = 0; i < len; i++)
        words += (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\n') && text[i] != ' ' &&
                 text[i] != '\n';
    data_set(run, "text", json_string(text));
    free(text);
    json_object_del(tt_run_data(run), "request");
    char label[64];
    snprintf(label, sizeof label, "extracted %zu words", words);
    tt_run_progress(run, 1, 5, label);
    tt_run_goto(run, "themes");
    return 0;
}

static int model_step(tt_run *run, const char *prompt, json_t *schema, int stream,
                      tt_run_model_done done)
{
    const tt_prompt *p = tt_agent_prompt(tt_run_env(run), prompt);
    if (!p)
        return TT_ENOTFOUND;
    tt_run_model_opts o = {
        .system = p, .user = data_str(run, "text"), .schema = schema, .stream = stream};
    return tt_run_model(run, &o, done);
}

static void themes_done(tt_run *run, const char *text, json_t *parsed, const tt_llm_result *u)
{
    data_set(run, "themes", json_string(text));
    tt_run_progress(run, 2, 5, "themes");
    tt_run_goto(run, "tags");
}

static int step_themes(tt_run *run)
{
    return model_step(run, "docs.themes", NULL, 1, themes_done);
}

static void tags_done(tt_run *run, const char *text, json_t *parsed, const tt_llm_result *u)
{
    json_t *tags = json_object_get(parsed, "tags");
    data_set(run, "tags", json_incref(tags));
    char line[512] = "Tags:";
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        size_t w = strlen(line);
        snprintf(line + w, sizeof line - w, "%s %s", i ? "," : "", json_string_value(t));
    }
    tt_run_say(run, line);
    tt_run_progress(run, 3, 5, "tags");
    tt_run_goto(run, "summary");
}

static int step_tags(tt_run *run)
{
    json_t *schema = json_pack("{s:s, s:{s:{s:s, s:i, s:i, s:{s:s, s:i, s:i}}}, s:[s], s:b}",
                               "type", "object", "properties", "tags", "type", "array", "minItems",
                               1, "maxItems", 12, "items", "type", "string", "minLength", 1,
                               "maxLength", 60, "required", "tags", "additionalProperties", 0);
    int rc = model_step(run, "docs.tags", schema, 0, tags_done);
    json_decref(schema);
    return rc;
}

static void summary_done(tt_run *run, const char *text, json_t *parsed, const tt_llm_result *u)
{
    data_set(run, "summary", json_string(text));
    tt_run_progress(run, 4, 5, "summary");
    tt_run_goto(run, "related");
}

static int step_summary(tt_run *run)
{
    return model_step(run, "docs.summary", NULL, 1, summary_done);
}

/* Related documents: the tenant's documents (the Documents API's, every
 * collection) most similar to the analysed text by embedding, named by
 * title (agents/retrieval/retrieval.h, tt_retrieval_similar). */
static void related_end(tt_run *run, json_t *top, const char *none)
{
    char text[1024] = "Similar documents: ";
    size_t i;
    json_t *d;
    json_array_foreach(top, i, d)
    {
        size_t w = strlen(text);
        char title[TT_TITLE_MAX + 1];
        snprintf(title, sizeof title, "%s", json_string_value(json_object_get(d, "title")));
        tt_name_strip(title);
        snprintf(text + w, sizeof text - w, "%s\"%s\"", i ? ", " : "", title);
    }
    data_set(run, "related", json_incref(top));
    tt_run_progress(run, 5, 5, "similar documents");
    tt_run_finish(run, json_array_size(top) ? text : none);
}

static void on_similar(int status, json_t *answer, void *ud)
{
    tt_run *run = ud;
    tt_run_wait_end(run);
    json_t *docs = json_object_get(answer, "documents"), *top = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) json_array_append_new(
        top,
        json_pack("{s:O, s:O, s:O, s:O}", "document_id", json_object_get(d, "document_id"), "title",
                  json_object_get(d, "title"), "collection", json_object_get(d, "collection"),
                  "similarity", json_object_get(d, "similarity")));
    related_end(run, top,
                status == 200 ? "No similar documents among your team's documents."
                              : "Similar documents could not be looked for (the embeddings "
                                "call failed).");
    json_decref(top);
    json_decref(answer);
}

static void cancel_similar(void *job)
{
    tt_retrieval_cancel(job);
}

static int step_related(tt_run *run)
{
    tt_session *s = tt_run_session(run);
    tt_retrieval *r = tt_run_env(run)->retrieval;
    tt_llm_attribution attr;
    tt_agent_attribution(s, NULL, &attr); /* the embedding is the analyst's call */
    tt_retrieval_similar_q q = {.tenant = s->tenant,
                                .text = data_str(run, "text"),
                                .k = RELATED_MAX,
                                .min_similarity = RELATED_FLOOR,
                                .attr = &attr};
    tt_retrieval_job *job = NULL;
    int rc = r && q.text ? tt_retrieval_similar(r, &q, on_similar, run, &job) : TT_ENOTFOUND;
    if (rc == 0) {
        tt_run_wait(run, cancel_similar, job);
        return 0;
    }
    json_t *none = json_array();
    related_end(run, none, "No similar documents: no embeddings model is configured.");
    json_decref(none);
    return 0;
}

static const tt_step_def steps[] = {
    {"extract", step_extract}, {"themes", step_themes},   {"tags", step_tags},
    {"summary", step_summary}, {"related", step_related},
};

static const tt_engine_def doc_def = {
    .steps = steps,
    .n_steps = sizeof steps / sizeof steps[0],
    .first = "extract",
    .start_on_open = 1,
};

const tt_agent_ops tt_agent_doc_analyst =
    TT_ENGINE_AGENT("doc-analyst",
                    "Extracts a document's text, key themes, tags and summary, and names "
                    "your team's most similar documents.",
                    1, &doc_def, doc_validate);
