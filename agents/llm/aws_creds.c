/* AWS credentials from the environment and the shared credentials file
 * (see aws_creds.h). An INI file: "[name]" sections, "key = value" lines,
 * '#' and ';' comments; keys outside the profile are ignored. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/llm/aws_creds.h"
#include "protocol/env.h"
#include "protocol/errors.h"

static char *env_nonempty(char **envp, const char *name)
{
    const char *v = tt_env_get(envp, name);
    return v && *v ? (char *)v : NULL;
}

const char *tt_aws_region_env(char **envp)
{
    const char *r = env_nonempty(envp, "AWS_REGION");
    return r ? r : env_nonempty(envp, "AWS_DEFAULT_REGION");
}

void tt_aws_creds_free(tt_aws_creds *c)
{
    char *v[3] = {c->key_id, c->secret, c->token};
    for (int i = 0; i < 3; i++) {
        if (v[i]) {
            OPENSSL_cleanse(v[i], strlen(v[i]));
            free(v[i]);
        }
    }
    memset(c, 0, sizeof *c);
}

static int set(char **slot, const char *v, size_t n)
{
    if (n > TT_AWS_CRED_MAX || memchr(v, '\r', n) || memchr(v, '\n', n))
        return TT_EINVAL;
    if (*slot) {
        OPENSSL_cleanse(*slot, strlen(*slot));
        free(*slot);
    }
    *slot = strndup(v, n);
    return *slot ? 0 : TT_ENOMEM;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r'))
        (*n)--;
}

/* One line of the file; *in is set while inside [profile]. */
static int ini_line(const char *l, size_t n, const char *profile, int *in, tt_aws_creds *c)
{
    trim(&l, &n);
    if (n == 0 || l[0] == '#' || l[0] == ';')
        return 0;
    if (l[0] == '[') {
        const char *name = l + 1;
        size_t k = n >= 2 && l[n - 1] == ']' ? n - 2 : 0;
        trim(&name, &k);
        *in = k == strlen(profile) && memcmp(name, profile, k) == 0;
        return 0;
    }
    const char *eq = memchr(l, '=', n);
    if (!*in || !eq)
        return 0;
    const char *key = l, *val = eq + 1;
    size_t kn = (size_t)(eq - l), vn = n - kn - 1;
    trim(&key, &kn);
    trim(&val, &vn);
#define KEY(s) (kn == strlen(s) && memcmp(key, s, kn) == 0)
    if (KEY("aws_access_key_id"))
        return set(&c->key_id, val, vn);
    if (KEY("aws_secret_access_key"))
        return set(&c->secret, val, vn);
    if (KEY("aws_session_token"))
        return set(&c->token, val, vn);
#undef KEY
    return 0;
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? TT_ENOTFOUND : TT_EIO;
    char *b = malloc(TT_AWS_CREDS_FILE_MAX + 1);
    size_t n = b ? fread(b, 1, TT_AWS_CREDS_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!b)
        return TT_ENOMEM;
    if (bad || n > TT_AWS_CREDS_FILE_MAX) {
        free(b);
        return bad ? TT_EIO : TT_ETOOLARGE;
    }
    *out = b;
    *len = n;
    return 0;
}

static int from_file(const char *path, const char *profile, tt_aws_creds *c, char *err, size_t n)
{
    char *b = NULL;
    size_t len = 0;
    int rc = read_file(path, &b, &len);
    if (rc == TT_ENOTFOUND)
        return rc;
    if (rc) {
        snprintf(err, n, "AWS credentials file %s: %s", path,
                 rc == TT_ETOOLARGE ? "larger than 1 MiB" : "cannot be read");
        return rc == TT_ENOMEM ? rc : TT_EINVAL;
    }
    int in = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        const char *nl = memchr(b + at, '\n', len - at);
        size_t k = nl ? (size_t)(nl - (b + at)) : len - at;
        rc = ini_line(b + at, k, profile, &in, c);
        at += k + 1;
    }
    OPENSSL_cleanse(b, len);
    free(b);
    if (rc == 0 && (!c->key_id || !c->secret)) {
        snprintf(err, n, "AWS credentials file %s: profile [%s] has no %s", path, profile,
                 c->key_id ? "aws_secret_access_key" : "aws_access_key_id");
        rc = TT_EINVAL;
    } else if (rc == TT_EINVAL) {
        snprintf(err, n, "AWS credentials file %s: a value in [%s] is too long", path, profile);
    }
    return rc;
}

int tt_aws_creds_load(char **envp, tt_aws_creds *out, char *err, size_t n)
{
    memset(out, 0, sizeof *out);
    const char *id = env_nonempty(envp, "AWS_ACCESS_KEY_ID");
    const char *secret = env_nonempty(envp, "AWS_SECRET_ACCESS_KEY");
    const char *token = env_nonempty(envp, "AWS_SESSION_TOKEN");
    int rc;
    if (id && secret) {
        rc = set(&out->key_id, id, strlen(id));
        if (rc == 0)
            rc = set(&out->secret, secret, strlen(secret));
        if (rc == 0 && token)
            rc = set(&out->token, token, strlen(token));
        if (rc == TT_EINVAL)
            snprintf(err, n,
                     "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN is "
                     "too long or has a line break");
    } else {
        char path[4096];
        const char *file = env_nonempty(envp, "AWS_SHARED_CREDENTIALS_FILE");
        const char *home = env_nonempty(envp, "HOME");
        const char *profile = env_nonempty(envp, "AWS_PROFILE");
        if (file)
            snprintf(path, sizeof path, "%s", file);
        else
            snprintf(path, sizeof path, "%s/.aws/credentials", home ? home : "");
        rc = from_file(path, profile ? profile : "default", out, err, n);
        if (rc == TT_ENOTFOUND)
            snprintf(err, n,
                     "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                     "write %s",
                     path);
    }
    if (rc)
        tt_aws_creds_free(out);
    return rc;
}
