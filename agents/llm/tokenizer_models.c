/* Which encoding a model uses, and the estimate for models we cannot count
 * exactly (tokenizer.h). Nothing here needs rank data or allocates, so the
 * estimate works even when node_modules is missing. */
#include <stdint.h>
#include <string.h>

#include "agents/llm/tokenizer.h"
#include "protocol/errors.h"

static const char *const NAMES[TT_TOKENIZER__LAST] = {
    [TT_TOKENIZER_ESTIMATE] = "estimate",
    [TT_TOKENIZER_CL100K_BASE] = "cl100k_base",
    [TT_TOKENIZER_O200K_BASE] = "o200k_base",
};

const char *tt_tokenizer_encoding_name(tt_tokenizer_encoding enc)
{
    return (int)enc >= 0 && (int)enc < TT_TOKENIZER__LAST ? NAMES[enc] : "?";
}

int tt_tokenizer_encoding_parse(const char *name, tt_tokenizer_encoding *out)
{
    if (!name || !out)
        return TT_EINVAL;
    for (int e = 0; e < TT_TOKENIZER__LAST; e++) {
        if (strcmp(name, NAMES[e]) == 0) {
            *out = (tt_tokenizer_encoding)e;
            return 0;
        }
    }
    return TT_EINVAL;
}

/* tiktoken's model.py (MODEL_TO_ENCODING, MODEL_PREFIX_TO_ENCODING), as
 * prefixes, first match wins: the gpt-4 variants that moved to o200k come
 * before plain "gpt-4". A prefix matches at a name boundary only: the model
 * name ends there or goes on with '-', ':' or '@' ("gpt-4o-mini",
 * "gpt-4o:ft-org"), unless the prefix itself ends in '-' or '.'. So "o1"
 * does not claim "o1x", and a future "gpt-4.7" is not taken for gpt-4. */
static const struct {
    const char *prefix;
    tt_tokenizer_encoding enc;
} MODELS[] = {
    {"gpt-4o", TT_TOKENIZER_O200K_BASE},
    {"chatgpt-4o", TT_TOKENIZER_O200K_BASE},
    {"gpt-4.1", TT_TOKENIZER_O200K_BASE},
    {"gpt-4.5", TT_TOKENIZER_O200K_BASE},
    {"gpt-5", TT_TOKENIZER_O200K_BASE},
    {"gpt-5.", TT_TOKENIZER_O200K_BASE},  /* gpt-5.1, gpt-5.2-codex, ... */
    {"gpt-oss", TT_TOKENIZER_O200K_BASE}, /* o200k_harmony: same ranks and regex */
    {"o1", TT_TOKENIZER_O200K_BASE},
    {"o3", TT_TOKENIZER_O200K_BASE},
    {"o4-mini", TT_TOKENIZER_O200K_BASE},
    {"codex-mini", TT_TOKENIZER_O200K_BASE},
    {"omni-moderation", TT_TOKENIZER_O200K_BASE},
    {"gpt-4", TT_TOKENIZER_CL100K_BASE}, /* gpt-4-turbo, gpt-4-0613, gpt-4-32k */
    {"gpt-3.5-turbo", TT_TOKENIZER_CL100K_BASE},
    {"gpt-35-turbo", TT_TOKENIZER_CL100K_BASE}, /* Azure's spelling */
    {"text-embedding-3-small", TT_TOKENIZER_CL100K_BASE},
    {"text-embedding-3-large", TT_TOKENIZER_CL100K_BASE},
    {"text-embedding-ada-002", TT_TOKENIZER_CL100K_BASE},
    {"davinci-002", TT_TOKENIZER_CL100K_BASE},
    {"babbage-002", TT_TOKENIZER_CL100K_BASE},
};

static int prefix_matches(const char *model, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(model, prefix, n) != 0)
        return 0;
    char last = prefix[n - 1], after = model[n];
    return last == '-' || last == '.' || after == '\0' || after == '-' || after == ':' ||
           after == '@';
}

tt_tokenizer_encoding tt_tokenizer_encoding_for_model(const char *model)
{
    if (!model)
        return TT_TOKENIZER_ESTIMATE;
    if (strncmp(model, "openai/", 7) == 0) /* OpenRouter, LiteLLM */
        model += 7;
    if (strncmp(model, "ft:", 3) == 0) /* fine-tunes: "ft:gpt-4o-mini:org::id" */
        model += 3;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        if (prefix_matches(model, MODELS[i].prefix))
            return MODELS[i].enc;
    return TT_TOKENIZER_ESTIMATE;
}

/* ---- the estimate ----------------------------------------------------- */

#define SHORT_RUN 12 /* letters and digits: longer runs are charged as data */

static int is_letter(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int is_space(uint8_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* A run of ASCII letters and digits. */
static size_t estimate_alnum(const uint8_t *s, size_t n)
{
    size_t cost = 0;
    if (n > SHORT_RUN) {
        size_t letters = 0;
        for (size_t i = 0; i < n; i++)
            if (is_digit(s[i]))
                cost++;
            else
                letters++;
        return cost + (3 * letters + 3) / 4;
    }
    for (size_t i = 0; i < n;) {
        if (is_digit(s[i])) {
            cost++;
            i++;
            continue;
        }
        size_t j = i + 1; /* a segment ends at a digit or a lower-to-upper step */
        while (j < n && is_letter(s[j]) && !(s[j] <= 'Z' && s[j - 1] >= 'a'))
            j++;
        cost += (j - i + 2) / 3;
        i = j;
    }
    return cost;
}

/* Bytes in the UTF-8 sequence at s (2, 3 or 4), or 0 if none starts there.
 * Only the lead byte and the continuation bytes are checked: an overlong or
 * surrogate form costs as much as a real character, which is all we need. */
static size_t utf8_seq_len(const uint8_t *s, size_t n)
{
    size_t need = s[0] >= 0xC2 && s[0] <= 0xDF   ? 2
                  : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                  : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                 : 0;
    if (need == 0 || need > n)
        return 0;
    for (size_t k = 1; k < need; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return need;
}

size_t tt_tokenizer_estimate(const char *text, size_t len)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t cost = 0, i = 0;
    if (!text)
        return 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t j = i;
        if (is_letter(c) || is_digit(c)) {
            while (j < len && (is_letter(s[j]) || is_digit(s[j])))
                j++;
            cost += estimate_alnum(s + i, j - i);
        } else if (is_space(c)) {
            while (j < len && is_space(s[j])) {
                size_t k = j + 1;
                while (k < len && s[k] == s[j])
                    k++;
                int joins_word =
                    s[j] == ' ' && k - j == 1 && k < len && !is_space(s[k]) && !is_digit(s[k]);
                if (!joins_word)
                    cost += (k - j + 7) / 8;
                j = k;
            }
        } else if (c < 0x80) {
            while (j < len && s[j] < 0x80 && !is_letter(s[j]) && !is_digit(s[j]) && !is_space(s[j]))
                j++;
            cost += (3 * (j - i) + 3) / 4;
        } else {
            size_t quarters = 0; /* 6, 10, 16 quarter-tokens per 2-, 3-, 4-byte character */
            while (j < len && s[j] >= 0x80) {
                size_t w = utf8_seq_len(s + j, len - j);
                quarters += w == 2 ? 6 : w == 3 ? 10 : w == 4 ? 16 : 4;
                j += w ? w : 1;
            }
            cost += (quarters + 3) / 4;
        }
        i = j;
    }
    return cost; /* never above len: no rule charges more than a token per byte */
}

static size_t estimate_str(const char *s)
{
    return s ? tt_tokenizer_estimate(s, strlen(s)) : 0;
}

int tt_tokenizer_estimate_chat(const tt_tokenizer_msg *msgs, size_t n, size_t *out)
{
    if (!out || (!msgs && n > 0))
        return TT_EINVAL;
    *out = 0;
    size_t total = TT_TOKENIZER_ESTIMATE_REPLY_PRIMER;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role)
            return TT_EINVAL;
        total += TT_TOKENIZER_ESTIMATE_PER_MESSAGE + estimate_str(msgs[i].role) +
                 estimate_str(msgs[i].content);
        if (msgs[i].name)
            total += TT_TOKENIZER_ESTIMATE_PER_NAME + estimate_str(msgs[i].name);
    }
    *out = total;
    return 0;
}
