/* PostgreSQL for the server (--database-url, --durability): the connection
 * (state/pg.h) and archive mode (state/archive.h) started, watched and
 * reported. Without --database-url nothing here runs.
 *
 * Start-up: the server waits for the first connection (and the schema's
 * migrations) before it serves, at most the connection attempt's timeout
 * (TT_DB_CONNECT_TIMEOUT_MS). A database that cannot be reached, refuses the
 * credentials, or holds a newer schema stops the start-up with a message
 * naming the reason, and exit 1: a wrong URL is found at once, not after the
 * first events were meant to be archived.
 *
 * Later: a database that goes away is a state (down, then connecting with
 * backoff), logged at each change, counted (tether_db_*), and shown in
 * /readyz's detail; the server keeps serving from LMDB (archive mode) and
 * the archive lag grows, then drains when the database is back. */
#ifndef TT_DATABASE_H
#define TT_DATABASE_H

#include "protocol/buf.h"

#define TT_DB_CONNECT_TIMEOUT_MS 5000

struct tt_server;

/* Open the archive and connect; wait for the first connection. 0 when no
 * database is configured. After the registry exists. */
int tt_database_start(struct tt_server *srv);
/* Close the connection and the archive (after the registry's last commit). */
void tt_database_close(struct tt_server *srv);
/* /readyz's detail lines ("database: up", "archive_lag_events: N", ...). */
int tt_database_readyz(const struct tt_server *srv, tt_buf *out);
/* The tether_db_* and tether_archive_* metrics. */
int tt_database_metrics(const struct tt_server *srv, tt_buf *out);

#endif
