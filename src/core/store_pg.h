/*
 * What the PostgreSQL store (store_pg.c) offers beyond store.h, for the
 * leadership among hosts (ha.c): queries of its own on the same
 * non-blocking connection, the connection's state, and whether this host
 * may write (a standby's writes are refused here, before the database
 * would refuse them).
 */
#ifndef OH_STORE_PG_H
#define OH_STORE_PG_H

#include <libpq-fe.h>
#include <stdbool.h>

struct pg_store;

/* r: the query's last result (an error result when it failed), or NULL
 * when the connection was lost first.  Return true to keep r (then the
 * callee PQclear()s it), false to let the store free it. */
typedef bool (*pg_result_fn)(PGresult *r, void *ud);

/* Queues sql with n text parameters (copied; NULL is SQL NULL) behind
 * what is already queued; fn (may be NULL) gets the result.  OH_ERR_NO_CONN
 * while the connection is not ready, OH_ERR_NOMEM. */
int pg__query(struct pg_store *pg, const char *sql, int n, const char *const *params, pg_result_fn fn,
		void *ud);
/* Drops the connection (a query that never answers: the network ate it)
 * and connects again; why (borrowed) is logged and shown. */
void pg__reset(struct pg_store *pg, const char *why);
/* Connected with the schema migrated. */
bool pg__ready(const struct pg_store *pg);
/* Why it is not ready (the server's or libpq's words), or "". */
const char *pg__error(const struct pg_store *pg);
/* fn(ud, true) when the connection is ready, fn(ud, false) when it is lost;
 * failed(ud, message) when a write was refused or failed. */
void pg__on_events(struct pg_store *pg, void (*state)(void *ud, bool up),
		void (*failed)(void *ud, const char *message), void *ud);
/* Whether writes go to the database (the leader) or are refused with
 * OH_ERR_IO (a standby). */
void pg__set_writable(struct pg_store *pg, bool on);
/* Fetches the leases and jobs that store_lease_load and store_job_load
 * then hand out (once each), and calls done(ud, ok) when both are here. */
int pg__prefetch(struct pg_store *pg, void (*done)(void *ud, bool ok), void *ud);

#endif
