/* libpq loaded on first use (pq_lazy.c): a server without --database-url
 * never maps libpq and its dependencies (Kerberos, LDAP, GnuTLS...), which
 * cost milliseconds of every start-up.
 *
 * Any libpq function Tether calls loads it (dlopen, dlsym) if needed; a
 * thread calling while another loads it waits. If libpq cannot be loaded,
 * PQconnectStart() and PQconninfoParse() return NULL (libpq's answer when
 * out of memory) and the rest, which need a connection or result that cannot
 * exist then, do nothing: a connection fails to start, nothing crashes. */
#ifndef TT_PQ_LAZY_H
#define TT_PQ_LAZY_H

/* Load libpq now if needed (blocks while it loads): 0, or TT_EIO. */
int tt_pq_load(void);
/* 1 once libpq is loaded (never blocks). */
int tt_pq_loaded(void);
/* Why it could not be loaded ("" when loaded). */
const char *tt_pq_error(void);

#endif
