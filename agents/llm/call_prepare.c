/* The heavy part of getting a model call ready (see call_prepare.h). */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>

#include "agents/llm/adapter.h"
#include "agents/llm/call_prepare.h"

void tt_call_prep_run(tt_call_prep *p)
{
    p->rc = 0;
    if (p->steps & TT_PREP_HASH)
        tt_call_request_hash(p->req, p->input_hash);
    if (p->steps & TT_PREP_FIT)
        p->dropped = tt_call_request_fit(p->req, p->tok, p->cache, p->max_prompt_tokens);
    if (p->steps & TT_PREP_TRIM)
        p->dropped = tt_call_request_trim(p->req, p->tok, p->cache, 3, 4);
    if (p->steps & TT_PREP_BODY) {
        tt_llm_request view;
        p->rc = tt_call_request_view(p->req, p->model, p->max_completion_tokens, &view);
        if (p->rc == 0)
            p->rc = tt_llm_build_body(p->provider, &view, &p->body, &p->body_len);
        tt_call_request_view_free(&view);
        p->body_sha256[0] = '\0';
        if (p->rc == 0 && p->provider == TT_LLM_BEDROCK) {
            unsigned char d[SHA256_DIGEST_LENGTH];
            SHA256((const unsigned char *)p->body, p->body_len, d);
            for (size_t i = 0; i < sizeof d; i++)
                snprintf(p->body_sha256 + 2 * i, 3, "%02x", d[i]);
        }
    }
}

int tt_call_prep_offloaded(const tt_call_request *req)
{
    return req->text_bytes > TT_CALL_PREPARE_INLINE_MAX;
}
