/* protocol/frame.c: strict decoding of client frames, every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/errors.h"
#include "protocol/event.h"
#include "protocol/frame.h"

#define MAX_TEXT 1024

static int decode(const char *text, tt_msg *m, char *err)
{
    return tt_msg_decode(text, strlen(text), MAX_TEXT, m, err, 160);
}

static void expect_ok(const char *text, tt_msg_type type)
{
    tt_msg m;
    char err[160] = "";
    int rc = decode(text, &m, err);
    if (rc)
        fail_msg("%s -> %s", text, err);
    assert_int_equal(m.type, type);
    tt_msg_free(&m);
}

/* Refused with TT_EINVAL and a message containing `why`. */
static void expect_bad(const char *text, const char *why)
{
    tt_msg m;
    char err[160] = "";
    assert_int_equal(decode(text, &m, err), TT_EINVAL);
    if (!strstr(err, why))
        fail_msg("%s: expected '%s' in '%s'", text, why, err);
    tt_msg_free(&m);
}

static void test_frame_decodes_every_type(void **state)
{
    expect_ok("{\"type\":\"hello\",\"token\":\"t\",\"client\":\"x/1\"}", TT_MSG_HELLO);
    expect_ok("{\"type\":\"hello\"}", TT_MSG_HELLO);
    expect_ok("{\"type\":\"ping\",\"id\":\"p\"}", TT_MSG_PING);
    expect_ok("{\"type\":\"session.open\",\"agent\":\"echo\",\"input\":{},\"metadata\":{}}",
              TT_MSG_SESSION_OPEN);
    expect_ok("{\"type\":\"session.attach\",\"session\":\"s_1\",\"after\":41}",
              TT_MSG_SESSION_ATTACH);
    expect_ok("{\"type\":\"session.detach\",\"session\":\"s_1\"}", TT_MSG_SESSION_DETACH);
    expect_ok("{\"type\":\"session.list\",\"id\":\"r3\"}", TT_MSG_SESSION_LIST);
    expect_ok("{\"type\":\"session.close\",\"session\":\"s_1\"}", TT_MSG_SESSION_CLOSE);
    expect_ok("{\"type\":\"say\",\"session\":\"s\",\"text\":\"hi\",\"client_msg_id\":\"c7\"}",
              TT_MSG_SAY);
    expect_ok("{\"type\":\"answer\",\"session\":\"s\",\"question_id\":\"q\",\"value\":[1,{}]}",
              TT_MSG_ANSWER);
    expect_ok("{\"type\":\"decide\",\"session\":\"s\",\"approval_id\":\"a\",\"decision\":"
              "\"revise\",\"comment\":\"more\"}",
              TT_MSG_DECIDE);
    expect_ok("{\"type\":\"cancel\",\"session\":\"s\"}", TT_MSG_CANCEL);
    expect_ok("{\"type\":\"ack\",\"session\":\"s\",\"seq\":57}", TT_MSG_ACK);
    expect_ok("{\"type\":\"session.rename\",\"session\":\"s\",\"title\":\"Trip\"}",
              TT_MSG_SESSION_RENAME);
    expect_ok("{\"type\":\"session.delete\",\"session\":\"s\"}", TT_MSG_SESSION_DELETE);
}

static void test_frame_fields_are_typed(void **state)
{
    tt_msg m;
    char err[160];
    assert_int_equal(decode("{\"type\":\"decide\",\"id\":\"r9\",\"session\":\"s_a\","
                            "\"approval_id\":\"a1\",\"decision\":\"reject\"}",
                            &m, err),
                     0);
    assert_string_equal(m.id, "r9");
    assert_string_equal(m.session, "s_a");
    assert_string_equal(m.approval_id, "a1");
    assert_int_equal(m.decision, TT_DECIDE_REJECT);
    assert_null(m.comment);
    tt_msg_free(&m);

    assert_int_equal(decode("{\"type\":\"session.attach\",\"session\":\"s\",\"after\":"
                            "9007199254740991}",
                            &m, err),
                     0);
    assert_true(m.after == 9007199254740991ULL);
    tt_msg_free(&m);
}

static void test_frame_rejects_malformed_json(void **state)
{
    expect_bad("", "invalid JSON");
    expect_bad("{", "invalid JSON");
    expect_bad("{\"type\":\"ping\"} trailing", "invalid JSON");
    expect_bad("{\"type\":\"ping\",\"type\":\"ping\"}", "invalid JSON"); /* duplicate key */
    expect_bad("\xff\xfe", "invalid JSON");
    expect_bad("{\"type\":\"say\",\"session\":\"s\",\"text\":\"\xc3\x28\"}", "invalid JSON");
}

static void test_frame_rejects_non_objects(void **state)
{
    expect_bad("[]", "JSON object");
    expect_bad("\"ping\"", "JSON object");
    expect_bad("42", "JSON object");
    expect_bad("null", "JSON object");
}

static void test_frame_rejects_bad_type(void **state)
{
    expect_bad("{}", "'type'");
    expect_bad("{\"type\":7}", "'type'");
    expect_bad("{\"type\":\"launch\"}", "unknown message type");
    expect_bad("{\"type\":\"SAY\"}", "unknown message type");
}

static void test_frame_rejects_missing_fields(void **state)
{
    expect_bad("{\"type\":\"say\",\"session\":\"s\"}", "'text' is required");
    expect_bad("{\"type\":\"say\",\"text\":\"x\"}", "'session' is required");
    expect_bad("{\"type\":\"session.open\"}", "'agent' is required");
    expect_bad("{\"type\":\"ack\",\"session\":\"s\"}", "'seq' is required");
    expect_bad("{\"type\":\"answer\",\"session\":\"s\",\"question_id\":\"q\"}",
               "'value' is required");
    expect_bad("{\"type\":\"decide\",\"session\":\"s\",\"approval_id\":\"a\"}",
               "'decision' is required");
}

static void test_frame_rejects_wrong_types(void **state)
{
    expect_bad("{\"type\":\"say\",\"session\":1,\"text\":\"x\"}", "'session' must be a string");
    expect_bad("{\"type\":\"say\",\"session\":\"s\",\"text\":null}", "'text' must be a string");
    expect_bad("{\"type\":\"session.attach\",\"session\":\"s\",\"after\":-1}",
               "non-negative integer");
    expect_bad("{\"type\":\"session.attach\",\"session\":\"s\",\"after\":\"4\"}",
               "non-negative integer");
    expect_bad("{\"type\":\"session.attach\",\"session\":\"s\",\"after\":1.5}",
               "non-negative integer");
    expect_bad("{\"type\":\"session.open\",\"agent\":\"echo\",\"input\":[]}",
               "'input' must be an object");
    expect_bad("{\"type\":\"decide\",\"session\":\"s\",\"approval_id\":\"a\",\"decision\":"
               "\"maybe\"}",
               "approve, reject or revise");
    expect_bad("{\"type\":\"ping\",\"id\":5}", "'id' must be a string");
}

static void test_frame_rejects_unknown_fields(void **state)
{
    expect_bad("{\"type\":\"say\",\"sesion\":\"s\",\"text\":\"x\"}", "unknown field 'sesion'");
    expect_bad("{\"type\":\"ping\",\"extra\":true}", "unknown field 'extra'");
}

static void test_frame_enforces_limits(void **state)
{
    char big[MAX_TEXT + 100];
    int n = snprintf(big, sizeof big, "{\"type\":\"say\",\"session\":\"s\",\"text\":\"");
    memset(big + n, 'a', MAX_TEXT + 1);
    strcpy(big + n + MAX_TEXT + 1, "\"}");
    expect_bad(big, "'text' is too long");

    char sid[200];
    n = snprintf(sid, sizeof sid, "{\"type\":\"cancel\",\"session\":\"");
    memset(sid + n, 's', TT_NAME_MAX + 1);
    strcpy(sid + n + TT_NAME_MAX + 1, "\"}");
    expect_bad(sid, "'session' is too long");

    expect_bad("{\"type\":\"cancel\",\"session\":\"\"}", "must not be empty");
    expect_bad("{\"type\":\"say\",\"session\":\"s\",\"text\":\"a\\u0000b\"}", "NUL");
}

static void test_frame_limits_nesting(void **state)
{
    char deep[512];
    int n = snprintf(deep, sizeof deep,
                     "{\"type\":\"answer\",\"session\":\"s\","
                     "\"question_id\":\"q\",\"value\":");
    for (int i = 0; i < TT_JSON_DEPTH_MAX + 2; i++)
        deep[n++] = '[';
    for (int i = 0; i < TT_JSON_DEPTH_MAX + 2; i++)
        deep[n++] = ']';
    strcpy(deep + n, "}");
    expect_bad(deep, "nested too deeply");
}

static void test_frame_keeps_id_on_failure(void **state)
{
    tt_msg m;
    char err[160];
    assert_int_equal(decode("{\"type\":\"say\",\"id\":\"r7\"}", &m, err), TT_EINVAL);
    assert_non_null(m.id);
    assert_string_equal(m.id, "r7");
    tt_msg_free(&m);
}

static void test_event_encoding_orders_keys(void **state)
{
    tt_frame f;
    assert_int_equal(tt_event_encode("delta", "s_1", 12, 0,
                                     json_pack("{s:s, s:s}", "message_id", "m", "text", "hi "), 16,
                                     &f),
                     0);
    assert_string_equal(tt_frame_text(&f), "{\"type\":\"delta\",\"session\":\"s_1\",\"seq\":12,"
                                           "\"ts\":\"1970-01-01T00:00:00.000Z\","
                                           "\"message_id\":\"m\",\"text\":\"hi \"}");
    assert_int_equal(f.len, strlen(tt_frame_text(&f)));
    tt_frame_release(&f);
}

static void test_error_reply_survives_invalid_utf8(void **state)
{
    json_t *r = tt_reply_error("r1", "bad_request", "\xff bad", 0);
    assert_non_null(json_object_get(r, "message"));
    assert_string_equal(json_string_value(json_object_get(r, "re")), "r1");
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_decodes_every_type),
        cmocka_unit_test(test_frame_fields_are_typed),
        cmocka_unit_test(test_frame_rejects_malformed_json),
        cmocka_unit_test(test_frame_rejects_non_objects),
        cmocka_unit_test(test_frame_rejects_bad_type),
        cmocka_unit_test(test_frame_rejects_missing_fields),
        cmocka_unit_test(test_frame_rejects_wrong_types),
        cmocka_unit_test(test_frame_rejects_unknown_fields),
        cmocka_unit_test(test_frame_enforces_limits),
        cmocka_unit_test(test_frame_limits_nesting),
        cmocka_unit_test(test_frame_keeps_id_on_failure),
        cmocka_unit_test(test_event_encoding_orders_keys),
        cmocka_unit_test(test_error_reply_survives_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
