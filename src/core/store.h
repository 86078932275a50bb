/*
 * Durable state behind one small interface: leases, scheduled jobs, the
 * runs of jobs, the last known document of each device, plugins'
 * documents and the audit trail (audit.c).
 *
 * Two backends implement it (struct store_ops): SQLite (store_sqlite.c),
 * one file in state_dir, every write committed before the call returns;
 * and PostgreSQL (store_pg.c), shared by hosts that fail over to each
 * other (docs/ha.md), where a write is queued on a non-blocking
 * connection and committed a round trip later.
 *
 * Callers write as before and get OH_OK when the write is committed
 * (SQLite) or queued (PostgreSQL).  What must not be seen before the
 * state it depends on is durable, the acknowledgement of a lease or the
 * command of a job whose next run was just stored, waits for
 * store_when_committed(): publish.c holds the host's publishes and http.c
 * its replies while writes are in flight, in order, so leases.c and
 * scheduler.c need not know which backend they talk to.  A PostgreSQL
 * write that fails means this host is no longer the leader (ha.c): the
 * held output is dropped, never sent, and the host steps down.
 *
 * Calls run on the event loop and never wait long for other processes:
 * while one holds the SQLite database (a backup, the sqlite3 shell), a
 * write fails after a few milliseconds with OH_ERR_IO and changes nothing,
 * and the caller refuses what it was asked (a lease, a job) or tries again
 * later (the scheduler's runs).  Only the *_load calls, made at start-up
 * (SQLite) or when this host becomes the leader (PostgreSQL, from rows
 * fetched beforehand without blocking), may wait.
 *
 * Adding a table: one op in struct store_ops, its SQL in each backend, a
 * wrapper below; on PostgreSQL the table also gets the fencing trigger
 * (store_pg.c, "migrations"), so a deposed leader's write is refused.
 */
#ifndef OH_STORE_H
#define OH_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct event_base;
struct config;

struct store_lease {
	const char *key;
	const char *holder;
	double expires_at; /* wall-clock seconds */
};

typedef void (*store_lease_fn)(const struct store_lease *l, void *ud);
/* A job's document as stored (JSON text, borrowed; not NUL-terminated):
 * the scheduler reads it, mostly without a tree (json_text.h). */
typedef void (*store_job_fn)(const char *id, const char *module, const char *doc, size_t len, void *ud);
typedef void (*store_device_fn)(
		const char *id, const char *doc /* borrowed */, size_t len, double last_seen, void *ud);
typedef void (*store_doc_fn)(const char *key, json_t *doc /* borrowed */, void *ud);

/*
 * The audit trail (audit.c, docs/audit.md): one row per record, numbered
 * by seq, which only grows (never reused: pruning keeps the newest row).
 * The strings are borrowed for the call; NULL is stored as NULL.  detail is
 * JSON text or NULL; latency_ms < 0 means none.
 */
struct store_audit {
	long long seq; /* set by store_audit_insert; read by queries */
	double ts;     /* wall-clock seconds */
	const char *kind, *action, *actor, *requested_by, *token, *device_id, *module, *req_id, *code, *error,
			*detail;
	double latency_ms;
};
/* Filters of a query: NULL strings and since/until <= 0 filter nothing;
 * before_seq > 0 keeps rows below it (the keyset cursor).  Rows come newest
 * first. */
struct store_audit_filter {
	const char *kind, *action, *actor, *device_id, *code, *module;
	double since, until;
	long long before_seq;
};
typedef void (*store_audit_fn)(const struct store_audit *r, void *ud);

/* A value of an audit query, in placeholder order (store__audit_where). */
struct store_audit_arg {
	char type; /* 's' text, 'd' real, 'i' integer */
	const char *text;
	double real;
	long long integer;
};
#define STORE_AUDIT_ARGS_MAX 10
/*
 * For the backends, so that both filter alike: appends to sql (size bytes,
 * len used) the conditions of f, each " AND col op <mark>N" (N from 1), then
 * " ORDER BY seq DESC LIMIT <mark>N"; the values go, in order, into args
 * (STORE_AUDIT_ARGS_MAX).  Returns how many.
 */
int store__audit_where(const struct store_audit_filter *f, size_t limit, char mark, char *sql, size_t size,
		size_t len, struct store_audit_arg *args);
/* The end of a query: rc, and how many rows went to its store_audit_fn. */
typedef void (*store_audit_done_fn)(int rc, size_t n, void *ud);
/* rc: OH_OK when every write made before store_when_committed() is
 * committed; OH_ERR_IO when one failed (then none of the later ones are
 * to be trusted either). */
typedef void (*store_done_fn)(int rc, void *ud);

/* One backend.  b is the backend's own state.  NULL for an optional op. */
struct store_ops {
	const char *name; /* "sqlite", "postgresql" */
	void (*close)(void *b);
	int (*lease_put)(void *b, const struct store_lease *lease);
	int (*lease_delete)(void *b, const char *key);
	int (*lease_load)(void *b, store_lease_fn fn, void *ud);
	/* doc: the job or document as compact JSON text (store.c serialises it
	 * once for every backend). */
	int (*job_put)(void *b, const char *id, const char *module, const char *doc);
	int (*job_delete)(void *b, const char *id);
	int (*job_load)(void *b, store_job_fn fn, void *ud);
	/* Records that job id ran for due; OH_ERR_EXISTS when it already did
	 * (PostgreSQL: a UNIQUE (job, due) constraint).  NULL: one host only,
	 * nothing to guard against. */
	int (*job_run)(void *b, const char *id, int64_t due);
	int (*device_put)(void *b, const char *id, const char *doc, size_t len, double last_seen);
	int (*device_delete)(void *b, const char *id);
	int (*device_load)(void *b, store_device_fn fn, void *ud);
	int (*doc_put)(void *b, const char *module, const char *collection, const char *key, const char *doc);
	int (*doc_delete)(void *b, const char *module, const char *collection, const char *key);
	int (*doc_load)(void *b, const char *module, const char *collection, store_doc_fn fn, void *ud);
	/* The audit trail; NULL: this backend has none yet (the audit is off,
	 * audit.c says so at start-up). */
	int (*audit_insert)(void *b, struct store_audit *r);
	int (*audit_query)(void *b, const struct store_audit_filter *f, size_t limit, store_audit_fn fn,
			store_audit_done_fn done, void *ud);
	int (*audit_prune)(void *b, double before, long long max_rows, size_t batch, size_t *removed);
	int (*begin)(void *b, bool relaxed);
	int (*commit)(void *b);
	/* Writes queued and not yet committed; NULL: never any. */
	bool (*pending)(void *b);
	/* Calls fn once what was written so far is committed; NULL: at once. */
	void (*when_committed)(void *b, store_done_fn fn, void *ud);
	/* Frees what the backend caches and can read again (SQLite's page
	 * cache); NULL: nothing cached. */
	void (*release_memory)(void *b);
};

/* Opens the configured backend: SQLite under cfg->state_dir, or a
 * PostgreSQL connection made in the background on base (a database that
 * is down is retried; store_status says why).  err gets a message on
 * failure. */
struct store *store_open(const struct config *cfg, struct event_base *base, char *err, size_t errlen);
/* The SQLite store under dir (unit tests, tools). */
struct store *store_open_dir(const char *dir, char *err, size_t errlen);
void store_close(struct store *s);
/* "sqlite" or "postgresql". */
const char *store_backend(const struct store *s);
/* The backend's state (borrowed: store_pg.c's, for ha.c), or NULL. */
void *store_backend_state(struct store *s, const struct store_ops *ops);

int store_lease_put(struct store *s, const struct store_lease *lease);
int store_lease_delete(struct store *s, const char *key);
/* Calls fn for every stored lease. */
int store_lease_load(struct store *s, store_lease_fn fn, void *ud);

/* Jobs are stored as JSON documents keyed by id, with the executing module. */
int store_job_put(struct store *s, const char *id, const char *module, const json_t *doc);
int store_job_delete(struct store *s, const char *id);
int store_job_load(struct store *s, store_job_fn fn, void *ud);
/* See struct store_ops.job_run. */
int store_job_run(struct store *s, const char *id, int64_t due);

/*
 * The registry's last merged document per device (JSON text, borrowed for
 * the call) and when it was last heard from, for a warm start.  Written in
 * relaxed batches: it is a cache the devices refresh, not a promise.
 */
int store_device_put(struct store *s, const char *id, const char *doc, size_t len, double last_seen);
int store_device_delete(struct store *s, const char *id);
int store_device_load(struct store *s, store_device_fn fn, void *ud);

/*
 * Plugins' documents (oh_doc_* in include/oh/host.h): JSON objects keyed by
 * (module, collection, key), e.g. the NDI plugin's routes and presets.
 * Strings are borrowed.  Any backend stores them as three text keys and
 * one JSON text, and loads one module's collection, in no promised order.
 */
int store_doc_put(struct store *s, const char *module, const char *collection, const char *key,
		const json_t *doc);
int store_doc_delete(struct store *s, const char *module, const char *collection, const char *key);
int store_doc_load(struct store *s, const char *module, const char *collection, store_doc_fn fn, void *ud);

/* The audit trail.  insert: into the open transaction (or on its own),
 * setting r->seq (on PostgreSQL a round trip later, before the commit is
 * reported: r must live until then, audit.c's durable_later).  query: at most limit rows to fn (r borrowed for the call),
 * then done once; at once on SQLite, when the rows arrive on PostgreSQL
 * (the loop never waits for them).  Neither is called when it returns an
 * error.  prune: at most batch of the
 * oldest rows older than before (wall-clock seconds, <= 0: none by age;
 * never the newest row) or beyond the newest max_rows (<= 0: no cap).
 * OH_ERR_IO from a backend without them. */
bool store_has_audit(const struct store *s);
int store_audit_insert(struct store *s, struct store_audit *r);
int store_audit_query(struct store *s, const struct store_audit_filter *f, size_t limit, store_audit_fn fn,
		store_audit_done_fn done, void *ud);
int store_audit_prune(struct store *s, double before, long long max_rows, size_t batch, size_t *removed);

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

/* Whether a transaction is open (store_begin without its commit yet). */
bool store_in_txn(const struct store *s);
/* The one handler told when the outermost transaction ends: ok says
 * whether its writes were committed (audit.c, to publish what waited for
 * them).  fn NULL: none. */
void store_on_commit(struct store *s, void (*fn)(void *ud, bool ok), void *ud);

/* Frees the backend's caches (s may be NULL): oh_memory_trim after a burst,
 * whose audit records grew SQLite's page cache to its 2 MB. */
void store_release_memory(struct store *s);

/* Whether writes are queued and not yet committed (s may be NULL). */
bool store_pending(const struct store *s);
/* Calls fn(rc, ud) once every write made so far is committed (at once when
 * none is pending).  See the top. */
void store_when_committed(struct store *s, store_done_fn fn, void *ud);

/* ---- the backends (store_sqlite.c, store_pg.c) -------------------------------- */

extern const struct store_ops store_sqlite_ops;
void *store_sqlite_open(const char *dir, char *err, size_t errlen);
extern const struct store_ops store_pg_ops;
void *store_pg_open(const struct config *cfg, struct event_base *base, char *err, size_t errlen);
/* Refuses a conninfo libpq cannot parse or that carries a password, naming
 * store.conninfo; 0 when it is fine. */
int store_pg_check_conninfo(const char *conninfo, const char *file, char *err, size_t errlen);

#endif
