/*
 * Durable state behind one small interface: leases, scheduled jobs, the
 * last known document of each device, plugins' documents and the audit
 * trail (audit.c).
 * The SQLite backend (store_sqlite.c) is the only one today; a PostgreSQL
 * backend for a pair of hosts would implement the same operations.
 * Every write is committed before the call returns.
 *
 * Calls run on the event loop and never wait long for other processes:
 * while one holds the database (a backup, the sqlite3 shell), a write fails
 * after a few milliseconds with OH_ERR_IO and changes nothing, and the
 * caller refuses what it was asked (a lease, a job) or tries again later
 * (the scheduler's runs).  Only the *_load calls, made at start-up, wait
 * up to 2 s.
 */
#ifndef OH_STORE_H
#define OH_STORE_H

#include <jansson.h>
#include <stdbool.h>

struct store;

struct store_lease {
	const char *key;
	const char *holder;
	double expires_at; /* wall-clock seconds */
};

/* Opens (creating) the store under dir; err gets a message on failure. */
struct store *store_open(const char *dir, char *err, size_t errlen);
void store_close(struct store *s);

int store_lease_put(struct store *s, const struct store_lease *lease);
int store_lease_delete(struct store *s, const char *key);
/* Calls fn for every stored lease. */
int store_lease_load(struct store *s, void (*fn)(const struct store_lease *l, void *ud), void *ud);

/* Jobs are stored as JSON documents keyed by id, with the executing module. */
int store_job_put(struct store *s, const char *id, const char *module, const json_t *doc);
int store_job_delete(struct store *s, const char *id);
int store_job_load(struct store *s,
		void (*fn)(const char *id, const char *module, json_t *doc /* borrowed */, void *ud), void *ud);

/*
 * The registry's last merged document per device (JSON text, borrowed for
 * the call) and when it was last heard from, for a warm start.  Written in
 * relaxed batches: it is a cache the devices refresh, not a promise.
 */
int store_device_put(struct store *s, const char *id, const char *doc, size_t len, double last_seen);
int store_device_delete(struct store *s, const char *id);
int store_device_load(struct store *s,
		void (*fn)(const char *id, const char *doc /* borrowed */, size_t len, double last_seen,
				void *ud),
		void *ud);

/*
 * Plugins' documents (oh_doc_* in include/oh/host.h): JSON objects keyed by
 * (module, collection, key), e.g. the NDI plugin's routes and presets.
 * Strings are borrowed.  Any backend stores them as three text keys and
 * one JSON text, and loads one module's collection, in no promised order.
 */
int store_doc_put(struct store *s, const char *module, const char *collection, const char *key,
		const json_t *doc);
int store_doc_delete(struct store *s, const char *module, const char *collection, const char *key);
int store_doc_load(struct store *s, const char *module, const char *collection,
		void (*fn)(const char *key, json_t *doc /* borrowed */, void *ud), void *ud);

/*
 * Groups writes into one transaction, so a batch of job updates costs one
 * synchronous commit instead of one each.  Calls nest; only the outermost
 * commit writes.  A failed write inside still leaves the others to commit.
 */
/* OH_ERR_IO (nothing opened, nothing to commit) when the database is
 * locked or failing. */
int store_begin(struct store *s);
/* Like store_begin, for bookkeeping the host can afford to lose on a power
 * cut (never on a process crash): the commit skips the fsync.  Used when
 * jobs fire, where an fsync per batch was most of the lateness. */
int store_begin_relaxed(struct store *s);
/* OH_ERR_IO when the outermost commit failed: then none of the
 * transaction's writes were kept. */
int store_commit(struct store *s);

/*
 * The audit trail (audit.c, docs/audit.md): one row per record, numbered
 * by seq, which only grows (never reused: pruning keeps the newest row).  The
 * strings are borrowed for the call; NULL is stored as NULL.  detail is
 * JSON text or NULL; latency_ms < 0 means none.
 */
struct store_audit {
	long long seq; /* set by store_audit_insert; read by queries */
	double ts;     /* wall-clock seconds */
	const char *kind, *action, *actor, *requested_by, *token, *device_id, *module, *req_id, *code, *error,
			*detail;
	double latency_ms;
};
/* Inserts r inside the open transaction (or on its own) and sets r->seq. */
int store_audit_insert(struct store *s, struct store_audit *r);
/* Filters of a query: NULL strings and since/until <= 0 filter nothing;
 * before_seq > 0 keeps rows below it (the keyset cursor).  Rows come newest
 * first. */
struct store_audit_filter {
	const char *kind, *action, *actor, *device_id, *code, *module;
	double since, until;
	long long before_seq;
};
/* Calls fn for at most limit rows (r borrowed for the call); *n_out (may
 * be NULL) gets how many. */
int store_audit_query(struct store *s, const struct store_audit_filter *f, size_t limit,
		void (*fn)(const struct store_audit *r, void *ud), void *ud, size_t *n_out);
/* Deletes at most batch of the oldest rows that are older than before
 * (wall-clock seconds, <= 0: none by age; never the newest row) or beyond the newest max_rows
 * (<= 0: no cap); *removed gets how many went. */
int store_audit_prune(struct store *s, double before, long long max_rows, size_t batch, size_t *removed);

/* Whether a transaction is open (store_begin without its commit yet). */
bool store_in_txn(const struct store *s);
/* The one handler told when the outermost transaction ends: ok says
 * whether its writes were committed (audit.c, to publish what waited for
 * them).  fn NULL: none. */
void store_on_commit(struct store *s, void (*fn)(void *ud, bool ok), void *ud);

#endif
