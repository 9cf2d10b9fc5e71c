/* agents/llm/aws_creds.c and Bedrock targets in routes (route.c): the
 * environment wins over the shared credentials file; the file's profile
 * (AWS_PROFILE, else "default") is found among others, with comments and
 * spaces; a profile missing its secret, a file over 1 MiB, and no
 * credentials at all are refused with a message that names the file and
 * never a value; a Bedrock target takes its region from the target or
 * AWS_REGION, gets the public endpoint by default, and refuses key_env. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agents/llm/aws_creds.h"
#include "agents/llm/route.h"
#include "protocol/errors.h"

static char dir[] = "/tmp/tt-aws-creds-XXXXXX";
static char file[256];

static void write_file(const char *text)
{
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/credentials", dir);
    return 0;
}

static int teardown(void **state)
{
    unlink(file);
    rmdir(dir);
    return 0;
}

static void test_env_wins(void **state)
{
    char fenv[300];
    snprintf(fenv, sizeof fenv, "AWS_SHARED_CREDENTIALS_FILE=%s", file);
    write_file("[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n");
    char *env[] = {"AWS_ACCESS_KEY_ID=ENVKEY", "AWS_SECRET_ACCESS_KEY=envsecret",
                   "AWS_SESSION_TOKEN=tok", fenv, NULL};
    tt_aws_creds c;
    char err[300] = "";
    assert_int_equal(tt_aws_creds_load(env, &c, err, sizeof err), 0);
    assert_string_equal(c.key_id, "ENVKEY");
    assert_string_equal(c.secret, "envsecret");
    assert_string_equal(c.token, "tok");
    tt_aws_creds_free(&c);
    tt_aws_creds_free(&c); /* twice is harmless */
    assert_null(c.key_id);
}

static void test_file_profile(void **state)
{
    char fenv[300];
    snprintf(fenv, sizeof fenv, "AWS_SHARED_CREDENTIALS_FILE=%s", file);
    write_file("# comment\n[default]\naws_access_key_id=D\naws_secret_access_key=d\n\n"
               "[ work ]\r\n  aws_access_key_id =  WORKKEY  \r\n; another comment\r\n"
               "aws_secret_access_key = work/secret+x\r\naws_session_token = T0K\r\n"
               "[later]\naws_access_key_id = L\n");
    char *env[] = {fenv, "AWS_PROFILE=work", "AWS_ACCESS_KEY_ID=", NULL};
    tt_aws_creds c;
    char err[300] = "";
    assert_int_equal(tt_aws_creds_load(env, &c, err, sizeof err), 0);
    assert_string_equal(c.key_id, "WORKKEY");
    assert_string_equal(c.secret, "work/secret+x");
    assert_string_equal(c.token, "T0K");
    tt_aws_creds_free(&c);
    char *env2[] = {fenv, NULL}; /* "default" */
    assert_int_equal(tt_aws_creds_load(env2, &c, err, sizeof err), 0);
    assert_string_equal(c.key_id, "D");
    assert_null(c.token);
    tt_aws_creds_free(&c);
}

static void test_refusals(void **state)
{
    char fenv[300], home[300];
    snprintf(fenv, sizeof fenv, "AWS_SHARED_CREDENTIALS_FILE=%s", file);
    tt_aws_creds c;
    char err[400] = "";
    write_file("[default]\naws_access_key_id = ONLYKEY\n");
    char *env[] = {fenv, NULL};
    assert_int_equal(tt_aws_creds_load(env, &c, err, sizeof err), TT_EINVAL);
    assert_non_null(strstr(err, "profile [default] has no aws_secret_access_key"));
    assert_null(strstr(err, "ONLYKEY"));
    assert_null(c.key_id);
    char *env2[] = {fenv, "AWS_PROFILE=nope", NULL};
    assert_int_equal(tt_aws_creds_load(env2, &c, err, sizeof err), TT_EINVAL);
    assert_non_null(strstr(err, "profile [nope] has no aws_access_key_id"));
    /* over 1 MiB */
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < TT_AWS_CREDS_FILE_MAX / 8 + 1; i++)
        fputs("#comment", f);
    fclose(f);
    assert_int_equal(tt_aws_creds_load(env, &c, err, sizeof err), TT_EINVAL);
    assert_non_null(strstr(err, "larger than 1 MiB"));
    /* nothing anywhere: HOME/.aws/credentials is named */
    snprintf(home, sizeof home, "HOME=%s", dir);
    char *env3[] = {home, "AWS_ACCESS_KEY_ID=only-half", NULL};
    assert_int_equal(tt_aws_creds_load(env3, &c, err, sizeof err), TT_ENOTFOUND);
    assert_non_null(strstr(err, "no AWS credentials"));
    assert_non_null(strstr(err, "/.aws/credentials"));
}

static int parse(const char *text, char **env, tt_routes *r, char *err)
{
    json_t *obj = json_loads(text, 0, NULL);
    assert_non_null(obj);
    int rc = tt_routes_parse(obj, NULL, env, r, err, 300);
    json_decref(obj);
    return rc;
}

static void test_bedrock_targets(void **state)
{
    char *env[] = {"AWS_ACCESS_KEY_ID=K", "AWS_SECRET_ACCESS_KEY=S", "AWS_REGION=eu-west-1",
                   "HOME=/nonexistent", NULL};
    tt_routes r;
    char err[300] = "";
    assert_int_equal(parse("{\"routes\":{\"b\":[{\"provider\":\"bedrock\",\"model\":\"m:0\"},"
                           "{\"provider\":\"bedrock\",\"model\":\"m:0\",\"region\":\"us-east-2\","
                           "\"base_url\":\"http://127.0.0.1:9/x\"}]}}",
                           env, &r, err),
                     0);
    tt_route_target *t = r.routes[0].targets;
    assert_int_equal(t[0].provider, TT_LLM_BEDROCK);
    assert_string_equal(t[0].region, "eu-west-1");
    assert_string_equal(t[0].base_url, "https://bedrock-runtime.eu-west-1.amazonaws.com");
    assert_string_equal(t[0].aws_key_id, "K");
    assert_string_equal(t[0].aws_secret, "S");
    assert_null(t[0].aws_token);
    assert_string_equal(t[1].region, "us-east-2");
    assert_string_equal(t[1].base_url, "http://127.0.0.1:9/x");
    tt_routes_free(&r);

    assert_int_equal(parse("{\"routes\":{\"b\":[{\"provider\":\"bedrock\",\"model\":\"m\","
                           "\"key_env\":\"X\"}]}}",
                           env, &r, err),
                     TT_EINVAL);
    assert_non_null(strstr(err, "routes.b[0].key_env: is not used by bedrock"));
    assert_int_equal(r.n_routes, 0);
    assert_int_equal(parse("{\"routes\":{\"b\":[{\"provider\":\"bedrock\",\"model\":\"m\","
                           "\"region\":\"us_east.1\"}]}}",
                           env, &r, err),
                     TT_EINVAL);
    assert_non_null(strstr(err, "routes.b[0].region: must be an AWS region"));
    /* refused after the credentials were read: nothing leaks (ASan build) */
    assert_int_equal(parse("{\"routes\":{\"b\":[{\"provider\":\"bedrock\",\"model\":\"m\","
                           "\"timeout_ms\":{\"connect\":-1}}]}}",
                           env, &r, err),
                     TT_EINVAL);
    char *nocreds[] = {"AWS_REGION=eu-west-1", "HOME=/nonexistent", NULL};
    assert_int_equal(parse("{\"routes\":{\"b\":[{\"provider\":\"bedrock\",\"model\":\"m\"}]}}",
                           nocreds, &r, err),
                     TT_EINVAL);
    assert_non_null(strstr(err, "routes.b[0]: no AWS credentials"));
    assert_int_equal(r.n_routes, 0); /* nothing half-loaded */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_wins),
        cmocka_unit_test(test_file_profile),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bedrock_targets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
