/* PCRE2 (the 8-bit library), loaded when first needed rather than when the
 * process starts (see pcre2_lazy.h). Each PCRE2 function Tether calls is
 * defined here under its own name (pcre2.h maps pcre2_compile to
 * pcre2_compile_8, and so on) and forwards to the one dlsym() found, so
 * callers include <pcre2.h> and call PCRE2 as usual. The binary does not
 * list libpcre2-8.so.0 as needed: every library the loader maps and
 * relocates costs each start-up (tests/bench/README.md, "Cold start").
 *
 * These definitions are not exported (an executable exports only what a
 * library it links refers to), so PCRE2's own calls stay inside PCRE2. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>

#include "agents/llm/pcre2_lazy.h"
#include "protocol/dl.h"
#include "protocol/errors.h"

#define LIBPCRE2_SONAME "libpcre2-8.so.0"

static struct {
    pcre2_code *(*compile)(PCRE2_SPTR, PCRE2_SIZE, uint32_t, int *, PCRE2_SIZE *,
                           pcre2_compile_context *);
    void (*code_free)(pcre2_code *);
    int (*get_error_message)(int, PCRE2_UCHAR *, PCRE2_SIZE);
    int (*jit_compile)(pcre2_code *, uint32_t);
    int (*pattern_info)(const pcre2_code *, uint32_t, void *);
    int (*match)(const pcre2_code *, PCRE2_SPTR, PCRE2_SIZE, PCRE2_SIZE, uint32_t,
                 pcre2_match_data *, pcre2_match_context *);
    pcre2_match_data *(*match_data_create)(uint32_t, pcre2_general_context *);
    pcre2_match_data *(*match_data_create_from_pattern)(const pcre2_code *,
                                                        pcre2_general_context *);
    void (*match_data_free)(pcre2_match_data *);
    PCRE2_SIZE *(*get_ovector_pointer)(pcre2_match_data *);
    pcre2_match_context *(*match_context_create)(pcre2_general_context *);
    void (*match_context_free)(pcre2_match_context *);
    int (*set_match_limit)(pcre2_match_context *, uint32_t);
} P;

static const tt_dl_sym syms[] = {
    TT_DL_SYM(__typeof__(P), compile, "pcre2_compile_8"),
    TT_DL_SYM(__typeof__(P), code_free, "pcre2_code_free_8"),
    TT_DL_SYM(__typeof__(P), get_error_message, "pcre2_get_error_message_8"),
    TT_DL_SYM(__typeof__(P), jit_compile, "pcre2_jit_compile_8"),
    TT_DL_SYM(__typeof__(P), pattern_info, "pcre2_pattern_info_8"),
    TT_DL_SYM(__typeof__(P), match, "pcre2_match_8"),
    TT_DL_SYM(__typeof__(P), match_data_create, "pcre2_match_data_create_8"),
    TT_DL_SYM(__typeof__(P), match_data_create_from_pattern,
              "pcre2_match_data_create_from_pattern_8"),
    TT_DL_SYM(__typeof__(P), match_data_free, "pcre2_match_data_free_8"),
    TT_DL_SYM(__typeof__(P), get_ovector_pointer, "pcre2_get_ovector_pointer_8"),
    TT_DL_SYM(__typeof__(P), match_context_create, "pcre2_match_context_create_8"),
    TT_DL_SYM(__typeof__(P), match_context_free, "pcre2_match_context_free_8"),
    TT_DL_SYM(__typeof__(P), set_match_limit, "pcre2_set_match_limit_8"),
};

static tt_dl_lib lib = {.soname = LIBPCRE2_SONAME,
                        .syms = syms,
                        .n_syms = sizeof syms / sizeof syms[0],
                        .table = &P,
                        .lock = PTHREAD_MUTEX_INITIALIZER};

int tt_pcre2_load(void)
{
    return tt_dl_load(&lib);
}

int tt_pcre2_loaded(void)
{
    return tt_dl_loaded(&lib);
}

const char *tt_pcre2_error(void)
{
    return tt_dl_error(&lib);
}

/* ---- PCRE2's functions: compiling loads it; the rest need what it made --- */

pcre2_code *pcre2_compile(PCRE2_SPTR pattern, PCRE2_SIZE length, uint32_t options, int *errorcode,
                          PCRE2_SIZE *erroroffset, pcre2_compile_context *ccontext)
{
    if (tt_pcre2_load() == 0)
        return P.compile(pattern, length, options, errorcode, erroroffset, ccontext);
    *errorcode = TT_PCRE2_UNAVAILABLE;
    *erroroffset = 0;
    return NULL;
}

/* PCRE2's message; when it cannot be loaded, why (truncated as PCRE2 does:
 * PCRE2_ERROR_NOMEMORY when it does not fit). */
int pcre2_get_error_message(int code, PCRE2_UCHAR *buffer, PCRE2_SIZE size)
{
    if (code != TT_PCRE2_UNAVAILABLE && tt_pcre2_load() == 0)
        return P.get_error_message(code, buffer, size);
    if (size == 0)
        return PCRE2_ERROR_NOMEMORY;
    int n = snprintf((char *)buffer, size, "PCRE2 cannot be loaded: %s", tt_pcre2_error());
    return n < 0 || (size_t)n >= size ? PCRE2_ERROR_NOMEMORY : n;
}

void pcre2_code_free(pcre2_code *code)
{
    if (code && tt_pcre2_loaded())
        P.code_free(code);
}

int pcre2_jit_compile(pcre2_code *code, uint32_t options)
{
    return tt_pcre2_loaded() ? P.jit_compile(code, options) : PCRE2_ERROR_NULL;
}

int pcre2_pattern_info(const pcre2_code *code, uint32_t what, void *where)
{
    return tt_pcre2_loaded() ? P.pattern_info(code, what, where) : PCRE2_ERROR_NULL;
}

int pcre2_match(const pcre2_code *code, PCRE2_SPTR subject, PCRE2_SIZE length,
                PCRE2_SIZE startoffset, uint32_t options, pcre2_match_data *match_data,
                pcre2_match_context *mcontext)
{
    if (!tt_pcre2_loaded())
        return PCRE2_ERROR_NULL; /* no pattern can exist yet */
    return P.match(code, subject, length, startoffset, options, match_data, mcontext);
}

pcre2_match_data *pcre2_match_data_create(uint32_t ovecsize, pcre2_general_context *gcontext)
{
    return tt_pcre2_load() ? NULL : P.match_data_create(ovecsize, gcontext);
}

pcre2_match_data *pcre2_match_data_create_from_pattern(const pcre2_code *code,
                                                       pcre2_general_context *gcontext)
{
    return tt_pcre2_loaded() ? P.match_data_create_from_pattern(code, gcontext) : NULL;
}

void pcre2_match_data_free(pcre2_match_data *match_data)
{
    if (match_data && tt_pcre2_loaded())
        P.match_data_free(match_data);
}

PCRE2_SIZE *pcre2_get_ovector_pointer(pcre2_match_data *match_data)
{
    return tt_pcre2_loaded() ? P.get_ovector_pointer(match_data) : NULL;
}

pcre2_match_context *pcre2_match_context_create(pcre2_general_context *gcontext)
{
    return tt_pcre2_load() ? NULL : P.match_context_create(gcontext);
}

void pcre2_match_context_free(pcre2_match_context *mcontext)
{
    if (mcontext && tt_pcre2_loaded())
        P.match_context_free(mcontext);
}

int pcre2_set_match_limit(pcre2_match_context *mcontext, uint32_t value)
{
    return tt_pcre2_loaded() ? P.set_match_limit(mcontext, value) : PCRE2_ERROR_NULL;
}
