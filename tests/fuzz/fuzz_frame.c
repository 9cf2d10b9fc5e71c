/* libFuzzer target for protocol/frame.c: the input is one client WebSocket
 * text frame, decoded as the server does with a 1 MiB text limit.
 *
 * Checked: the result is 0 or TT_EINVAL (TT_ENOMEM allowed); a refusal leaves
 * a NUL-terminated reason; a success has a known type, every required field
 * of that type, and every string within its limit; and a frame that decoded
 * still decodes to the same type after a jansson round trip (what we accept
 * does not depend on the client's whitespace or escapes). tt_msg_free() runs
 * whatever the result, so LeakSanitizer sees every path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/frame.h"
#include "fuzz_check.h"

#define MAX_TEXT (1u << 20)

static void check_str(const char *s, size_t max, int required)
{
    if (!s) {
        CHECK(!required);
        return;
    }
    CHECK(strlen(s) <= max);
}

static void check_msg(const tt_msg *m)
{
    CHECK(m->type >= 0 && m->type < TT_MSG__LAST);
    CHECK(json_is_object(m->root));
    CHECK(strcmp(tt_msg_type_name(m->type), "unknown") != 0);
    check_str(m->id, TT_ID_MAX, 0);
    switch (m->type) {
    case TT_MSG_HELLO:
        check_str(m->token, TT_TOKEN_MAX, 0);
        check_str(m->client, TT_ID_MAX, 0);
        break;
    case TT_MSG_SESSION_OPEN:
        check_str(m->agent, TT_NAME_MAX, 1);
        CHECK(!m->input || json_is_object(m->input));
        CHECK(!m->metadata || json_is_object(m->metadata));
        break;
    case TT_MSG_SAY:
        check_str(m->session, TT_NAME_MAX, 1);
        check_str(m->text, MAX_TEXT, 1);
        check_str(m->client_msg_id, TT_ID_MAX, 0);
        break;
    case TT_MSG_ANSWER:
        check_str(m->session, TT_NAME_MAX, 1);
        check_str(m->question_id, TT_ID_MAX, 1);
        CHECK(m->value != NULL);
        break;
    case TT_MSG_DECIDE:
        check_str(m->session, TT_NAME_MAX, 1);
        check_str(m->approval_id, TT_ID_MAX, 1);
        CHECK(strcmp(tt_decision_name(m->decision), "unknown") != 0);
        check_str(m->comment, MAX_TEXT, 0);
        break;
    case TT_MSG_SESSION_ATTACH:
    case TT_MSG_SESSION_DETACH:
    case TT_MSG_SESSION_CLOSE:
    case TT_MSG_CANCEL:
    case TT_MSG_ACK:
    case TT_MSG_SESSION_DELETE:
        check_str(m->session, TT_NAME_MAX, 1);
        break;
    case TT_MSG_SESSION_RENAME:
        check_str(m->session, TT_NAME_MAX, 1);
        check_str(m->title, TT_TITLE_WIRE_MAX, 1);
        break;
    case TT_MSG_PING:
    case TT_MSG_SESSION_LIST:
        break;
    default:
        CHECK(!"unreachable type");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tt_msg m;
    char err[256];
    memset(err, 'x', sizeof err); /* so a missing NUL shows */
    int rc = tt_msg_decode((const char *)data, size, MAX_TEXT, &m, err, sizeof err);
    CHECK(rc == 0 || rc == TT_EINVAL || rc == TT_ENOMEM);
    if (rc == TT_EINVAL)
        CHECK(memchr(err, '\0', sizeof err) != NULL);
    if (rc == 0) {
        check_msg(&m);
        char *again = json_dumps(m.root, JSON_COMPACT | JSON_ENCODE_ANY);
        CHECK(again != NULL);
        tt_msg m2;
        int rc2 = tt_msg_decode(again, strlen(again), MAX_TEXT, &m2, err, sizeof err);
        CHECK(rc2 == 0);
        CHECK(m2.type == m.type);
        tt_msg_free(&m2);
        free(again);
    }
    tt_msg_free(&m);
    return 0;
}
