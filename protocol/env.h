/* Reading the environment a caller was given: one NULL-terminated array of
 * "NAME=value" strings, as main() receives it (never getenv(), so tests and
 * callers pass exactly what is read).
 *
 * Files name the variables that hold secrets (a route's "key_env", an HTTP
 * tool's "secret_env"); a name is checked before it is looked up, so "A=B"
 * cannot read part of A's value and "" cannot match a stray "=x" entry. */
#ifndef TT_ENV_H
#define TT_ENV_H

/* The longest variable name accepted, in bytes. */
#define TT_ENV_NAME_MAX 128

/* 1 when name is a variable name: [A-Za-z_][A-Za-z0-9_]*, 1 to
 * TT_ENV_NAME_MAX bytes; else 0. */
int tt_env_name_valid(const char *name);

/* The value of the first entry of envp (may be NULL) named name, pointing
 * into envp; NULL when name is not a valid name or the variable is not set. */
const char *tt_env_get(char *const *envp, const char *name);

#endif
