/* AWS credentials for Bedrock targets, read once at start-up (when routes
 * are loaded), never per call.
 *
 * Order, as the AWS CLI and SDKs look: the environment (AWS_ACCESS_KEY_ID
 * and AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN when set), then the
 * shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 * $HOME/.aws/credentials), section [AWS_PROFILE] (default "default"), keys
 * aws_access_key_id, aws_secret_access_key, aws_session_token. The file is
 * at most TT_AWS_CREDS_FILE_MAX bytes. Nothing else (SSO, instance roles,
 * credential_process) is looked at. */
#ifndef TT_AWS_CREDS_H
#define TT_AWS_CREDS_H

#include <stddef.h>

#define TT_AWS_CREDS_FILE_MAX (1u << 20)
#define TT_AWS_CRED_MAX 4096 /* bytes of one value (session tokens run to ~1-2 KiB) */

typedef struct tt_aws_creds {
    char *key_id;
    char *secret;
    char *token; /* NULL without a session token */
} tt_aws_creds;

/* Fill out from envp (NULL-terminated "NAME=value"). Returns 0; TT_ENOTFOUND
 * when no credentials are anywhere (err says where it looked); TT_EINVAL
 * for a file that cannot be read or a profile missing a key (err says
 * which); TT_ENOMEM. Values never appear in err. */
int tt_aws_creds_load(char **envp, tt_aws_creds *out, char *err, size_t n);

/* The region from AWS_REGION, else AWS_DEFAULT_REGION; NULL when neither. */
const char *tt_aws_region_env(char **envp);

/* Wipe and free; out is zeroed (twice is harmless). */
void tt_aws_creds_free(tt_aws_creds *c);

#endif
