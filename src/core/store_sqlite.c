/*
 * The SQLite store (store.h's default backend): one file, {state_dir}/state.db, in WAL mode with full
 * synchronous commits, so a lease acknowledged to a client survives kill -9
 * and power loss alike.  Statements are prepared once.  Every failure names
 * the file and says what SQLite said, since "database disk image is
 * malformed" alone does not tell an operator which file to restore.
 *
 * The store runs on the event loop, so it must not wait on other processes:
 * a backup or the sqlite3 shell holding the database would otherwise stall
 * every request for the busy timeout, per statement.  A write waits at most
 * STORE_BUSY_MS for the lock and then fails with OH_ERR_IO, which callers
 * already handle (a lease or job is refused, the scheduler retries, the
 * registry's cache catches up); the outage is logged once when it starts
 * and once when it ends.  Opening and loading, before the loop runs, may
 * wait longer (STORE_BUSY_START_MS).
 */
#include "store.h"

#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "oh/defs.h"
#include "state_lock.h"

/* How long one statement may wait for another process's lock. */
#define STORE_BUSY_MS 5
/* The same while opening and loading at start-up, off the loop's clock. */
#define STORE_BUSY_START_MS 2000

enum stmt_id {
	LEASE_PUT,
	LEASE_DEL,
	LEASE_ALL,
	JOB_PUT,
	JOB_DEL,
	JOB_ALL,
	DEVICE_PUT,
	DEVICE_DEL,
	DEVICE_ALL,
	DOC_PUT,
	DOC_DEL,
	DOC_ALL,
	AUDIT_PUT,
	AUDIT_PRUNE_AGE,
	AUDIT_PRUNE_ROWS,
	N_STMTS
};

static const char *const stmt_sql[N_STMTS] = {
		[LEASE_PUT] = "INSERT OR REPLACE INTO leases(key, holder, expires_at) VALUES(?1, ?2, ?3)",
		[LEASE_DEL] = "DELETE FROM leases WHERE key = ?1",
		[LEASE_ALL] = "SELECT key, holder, expires_at FROM leases",
		[JOB_PUT] = "INSERT OR REPLACE INTO jobs(id, module, doc) VALUES(?1, ?2, ?3)",
		[JOB_DEL] = "DELETE FROM jobs WHERE id = ?1",
		[JOB_ALL] = "SELECT id, module, doc FROM jobs ORDER BY rowid",
		[DEVICE_PUT] = "INSERT OR REPLACE INTO devices(id, doc, last_seen) VALUES(?1, ?2, ?3)",
		[DEVICE_DEL] = "DELETE FROM devices WHERE id = ?1",
		[DEVICE_ALL] = "SELECT id, doc, last_seen FROM devices",
		[DOC_PUT] = "INSERT OR REPLACE INTO docs(module, collection, key, doc) VALUES(?1, ?2, ?3, ?4)",
		[DOC_DEL] = "DELETE FROM docs WHERE module = ?1 AND collection = ?2 AND key = ?3",
		[DOC_ALL] = "SELECT key, doc FROM docs WHERE module = ?1 AND collection = ?2 ORDER BY rowid",
		[AUDIT_PUT] = "INSERT INTO audit(ts, kind, action, actor, requested_by, token, device_id, module,"
			      " req_id, code, latency_ms, error, detail)"
			      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
		/* The oldest first, a batch at a time, each by the primary key:
		 * the oldest rows by seq that are older than the cutoff (seq and ts
		 * grow together; a clock stepped back keeps a row a little longer),
		 * never the newest (so seq is never given again), or past the
		 * newest max_rows (rows above max(seq) - max_rows are at most
		 * max_rows). */
		[AUDIT_PRUNE_AGE] =
				"DELETE FROM audit WHERE seq IN (SELECT seq FROM (SELECT seq, ts FROM audit"
				" ORDER BY seq LIMIT ?2) WHERE ts < ?1 AND seq < (SELECT MAX(seq) FROM audit))",
		[AUDIT_PRUNE_ROWS] = "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE seq <="
				     " (SELECT IFNULL(MAX(seq), 0) FROM audit) - ?1 ORDER BY seq LIMIT ?2)",
};

struct sqlite_store {
	sqlite3 *db;
	sqlite3_stmt *stmts[N_STMTS];
	char *path;      /* {state_dir}/state.db, for messages */
	int txn_depth;   /* store_begin() nesting */
	bool relaxed;    /* the open transaction commits without fsync */
	bool locked_out; /* the last write found the database locked */
};

static void sq_close(void *b);

/* What to do about it, for the errors an operator can act on. */
static const char *hint(sqlite3 *db)
{
	switch(db ? sqlite3_errcode(db) : SQLITE_OK) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return " (restore it from a backup, or move it away to start with no leases and jobs)";
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
		return " (check the permissions of the file and its directory)";
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return " (another process holds the database: a backup, the sqlite3 shell?)";
	default:
		return "";
	}
}

void *store_sqlite_open(const char *dir, char *err, size_t errlen)
{
	if(state_dir_create(dir, err, errlen))
		return NULL;
	struct sqlite_store *s = calloc(1, sizeof *s);
	size_t n = strlen(dir) + sizeof "/state.db";
	if(!s || !(s->path = malloc(n))) {
		snprintf(err, errlen, "state_dir: out of memory");
		free(s);
		return NULL;
	}
	snprintf(s->path, n, "%s/state.db", dir);
	const char *path = s->path;
	if(sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "state_dir: cannot open %s: %s%s", path, sqlite3_errmsg(s->db),
				hint(s->db));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, STORE_BUSY_START_MS);
	const char *schema =
			"PRAGMA journal_mode=WAL;"
			"PRAGMA synchronous=FULL;"
			"CREATE TABLE IF NOT EXISTS leases(key TEXT PRIMARY KEY, holder TEXT NOT NULL,"
			" expires_at REAL NOT NULL);"
			"CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, module TEXT NOT NULL,"
			" doc TEXT NOT NULL);"
			"CREATE TABLE IF NOT EXISTS host(key TEXT PRIMARY KEY, value TEXT);"
			"CREATE TABLE IF NOT EXISTS devices(id TEXT PRIMARY KEY, doc TEXT NOT NULL,"
			" last_seen REAL NOT NULL);"
			"CREATE TABLE IF NOT EXISTS docs(module TEXT NOT NULL, collection TEXT NOT NULL,"
			" key TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY(module, collection, key));"
			/* seq is the rowid: max + 1, so never given twice as long as
			      * the newest row stays, which pruning never removes (no
			      * AUTOINCREMENT: its counter row was one more page written
			      * per batch).  Every index costs each record
			      * (docs/performance.md): only the filters with many values
			      * have one.  kind, action, code and module have a handful,
			      * and time follows seq, so a scan down seq finds a page of
			      * them soon enough. */
			"CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY,"
			" ts REAL NOT NULL, kind TEXT NOT NULL, action TEXT, actor TEXT, requested_by TEXT,"
			" token TEXT, device_id TEXT, module TEXT, req_id TEXT, code TEXT, latency_ms REAL,"
			" error TEXT, detail TEXT);"
			"CREATE INDEX IF NOT EXISTS audit_device ON audit(device_id, seq);"
			"CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor, seq);"
			/* A real write now, so the first one that matters (a job firing
		 * right after start-up) does not pay for setting up the WAL. */
			"INSERT OR REPLACE INTO host(key, value) VALUES('opened_at', datetime('now'));";
	char *msg = NULL;
	if(sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "state_dir: cannot open %s: %s%s", path,
				msg ? msg : sqlite3_errmsg(s->db), hint(s->db));
		sqlite3_free(msg);
		goto fail;
	}
	for(int i = 0; i < N_STMTS; i++) {
		if(sqlite3_prepare_v2(s->db, stmt_sql[i], -1, &s->stmts[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "state_dir: cannot open %s: %s%s", path, sqlite3_errmsg(s->db),
					hint(s->db));
			goto fail;
		}
	}
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	return s;

fail:
	sq_close(s);
	return NULL;
}

static void sq_close(void *b)
{
	struct sqlite_store *s = b;
	if(!s)
		return;
	for(int i = 0; i < N_STMTS; i++)
		sqlite3_finalize(s->stmts[i]);
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

static bool is_busy(int rc)
{
	rc &= 0xff; /* extended codes, e.g. SQLITE_BUSY_SNAPSHOT */
	return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

/* Logs a failed write: a lock held elsewhere once per outage (it can last
 * as long as a backup, with writes failing all along), the rest each time. */
static int write_failed(struct sqlite_store *s, int rc, const char *what, const char *msg)
{
	if(!is_busy(rc)) {
		log_error("store", "%s: %s failed: %s%s", s->path, what, msg, hint(s->db));
	} else if(!s->locked_out) {
		log_warn("store",
				"%s is locked by another process (a backup, the sqlite3 shell?): "
				"writes are refused until it lets go",
				s->path);
		s->locked_out = true;
	}
	return OH_ERR_IO;
}

static void write_worked(struct sqlite_store *s)
{
	if(s->locked_out) {
		log_info("store", "%s is writable again", s->path);
		s->locked_out = false;
	}
}

/* Runs a prepared write statement to completion. */
static int step_done(struct sqlite_store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if(rc != SQLITE_DONE)
		return write_failed(s, rc, "write", sqlite3_errmsg(s->db));
	/* Inside a transaction only the commit tells. */
	if(!s->txn_depth)
		write_worked(s);
	return OH_OK;
}

/* Reads may wait as long as at start-up: they run then, and in WAL mode
 * another process's write lock does not block them anyway. */
static void load_begin(struct sqlite_store *s)
{
	sqlite3_busy_timeout(s->db, STORE_BUSY_START_MS);
}

static void load_end(struct sqlite_store *s)
{
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
}

static int sq_lease_put(void *b, const struct store_lease *l)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[LEASE_PUT];
	sqlite3_bind_text(st, 1, l->key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, l->holder, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 3, l->expires_at);
	return step_done(s, st);
}

static int sq_lease_delete(void *b, const char *key)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[LEASE_DEL];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	return step_done(s, st);
}

/* Ends a read of every row; rc is the last sqlite3_step() result. */
static int load_done(struct sqlite_store *s, sqlite3_stmt *st, int rc, const char *what)
{
	load_end(s);
	if(rc != SQLITE_DONE)
		log_error("store", "%s: cannot read the %s: %s%s", s->path, what, sqlite3_errmsg(s->db),
				hint(s->db));
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? OH_OK : OH_ERR_IO;
}

static int sq_lease_load(void *b, void (*fn)(const struct store_lease *, void *), void *ud)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[LEASE_ALL];
	int rc;
	load_begin(s);
	while((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_lease l = {
				.key = (const char *)sqlite3_column_text(st, 0),
				.holder = (const char *)sqlite3_column_text(st, 1),
				.expires_at = sqlite3_column_double(st, 2),
		};
		if(l.key && l.holder)
			fn(&l, ud);
	}
	return load_done(s, st, rc, "leases");
}

static int sq_job_put(void *b, const char *id, const char *module, const char *doc)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[JOB_PUT];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, module, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, doc, -1, SQLITE_TRANSIENT);
	return step_done(s, st);
}

static int sq_job_delete(void *b, const char *id)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[JOB_DEL];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	return step_done(s, st);
}

static int sq_job_load(void *b, store_job_fn fn, void *ud)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[JOB_ALL];
	int rc;
	load_begin(s);
	while((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *module = (const char *)sqlite3_column_text(st, 1);
		const char *text = (const char *)sqlite3_column_text(st, 2);
		if(id && module && text)
			fn(id, module, text, (size_t)sqlite3_column_bytes(st, 2), ud);
		else
			log_warn("store", "skipping unreadable job %s", id ? id : "?");
	}
	return load_done(s, st, rc, "jobs");
}

static int sq_device_put(void *b, const char *id, const char *doc, size_t len, double last_seen)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[DEVICE_PUT];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, doc, (int)len, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, last_seen);
	return step_done(s, st);
}

static int sq_device_delete(void *b, const char *id)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[DEVICE_DEL];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	return step_done(s, st);
}

static int sq_device_load(void *b,
		void (*fn)(const char *id, const char *doc, size_t len, double last_seen, void *ud), void *ud)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[DEVICE_ALL];
	int rc;
	load_begin(s);
	while((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *doc = (const char *)sqlite3_column_text(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		if(id && doc)
			fn(id, doc, len, sqlite3_column_double(st, 2), ud);
	}
	return load_done(s, st, rc, "devices");
}

static int sq_doc_put(void *b, const char *module, const char *collection, const char *key, const char *doc)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[DOC_PUT];
	sqlite3_bind_text(st, 1, module, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, collection, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, doc, -1, SQLITE_TRANSIENT);
	return step_done(s, st);
}

static int sq_doc_delete(void *b, const char *module, const char *collection, const char *key)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[DOC_DEL];
	sqlite3_bind_text(st, 1, module, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, collection, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
	return step_done(s, st);
}

static int sq_doc_load(void *b, const char *module, const char *collection, store_doc_fn fn, void *ud)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[DOC_ALL];
	int rc;
	load_begin(s);
	sqlite3_bind_text(st, 1, module, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, collection, -1, SQLITE_TRANSIENT);
	while((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		const char *text = (const char *)sqlite3_column_text(st, 1);
		json_error_t err;
		json_t *doc = text ? json_loads(text, 0, &err) : NULL;
		if(key && doc)
			fn(key, doc, ud);
		else
			log_warn("store", "skipping unreadable %s/%s document %s", module, collection,
					key ? key : "?");
		json_decref(doc);
	}
	sqlite3_clear_bindings(st);
	return load_done(s, st, rc, "documents");
}

/* ---- the audit trail ------------------------------------------------------------ */

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
	if(v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static int sq_audit_insert(void *b, struct store_audit *r)
{
	struct sqlite_store *s = b;
	sqlite3_stmt *st = s->stmts[AUDIT_PUT];
	sqlite3_bind_double(st, 1, r->ts);
	const char *text[] = {r->kind, r->action, r->actor, r->requested_by, r->token, r->device_id,
			r->module, r->req_id, r->code};
	for(int i = 0; i < 9; i++)
		bind_text_or_null(st, i + 2, text[i]);
	if(r->latency_ms >= 0)
		sqlite3_bind_double(st, 11, r->latency_ms);
	else
		sqlite3_bind_null(st, 11);
	bind_text_or_null(st, 12, r->error);
	bind_text_or_null(st, 13, r->detail);
	int rc = step_done(s, st);
	if(!rc)
		r->seq = (long long)sqlite3_last_insert_rowid(s->db);
	return rc;
}

static int sq_audit_prune(void *b, double before, long long max_rows, size_t batch, size_t *removed)
{
	struct sqlite_store *s = b;
	*removed = 0;
	int rc = OH_OK;
	if(before > 0) {
		sqlite3_stmt *st = s->stmts[AUDIT_PRUNE_AGE];
		sqlite3_bind_double(st, 1, before);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)batch);
		if(!(rc = step_done(s, st)))
			*removed += (size_t)sqlite3_changes(s->db);
	}
	if(!rc && max_rows > 0 && *removed < batch) {
		sqlite3_stmt *st = s->stmts[AUDIT_PRUNE_ROWS];
		sqlite3_bind_int64(st, 1, max_rows);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)(batch - *removed));
		if(!(rc = step_done(s, st)))
			*removed += (size_t)sqlite3_changes(s->db);
	}
	return rc;
}

/* The columns of a query, in struct store_audit's order. */
#define AUDIT_COLUMNS                                                                                        \
	"seq, ts, kind, action, actor, requested_by, token, device_id, module, req_id, code, error,"         \
	" detail, latency_ms"

static int sq_audit_query(void *b, const struct store_audit_filter *f, size_t limit, store_audit_fn fn,
		store_audit_done_fn done, void *ud)
{
	struct sqlite_store *s = b;
	char sql[640];
	struct store_audit_arg args[STORE_AUDIT_ARGS_MAX];
	size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT " AUDIT_COLUMNS " FROM audit WHERE 1");
	int n = store__audit_where(f, limit, '?', sql, sizeof sql, len, args);
	sqlite3_stmt *st = NULL;
	if(sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("store", "%s: cannot read the audit trail: %s", s->path, sqlite3_errmsg(s->db));
		return OH_ERR_IO;
	}
	for(int i = 0; i < n; i++) {
		if(args[i].type == 's')
			sqlite3_bind_text(st, i + 1, args[i].text, -1, SQLITE_STATIC);
		else if(args[i].type == 'd')
			sqlite3_bind_double(st, i + 1, args[i].real);
		else
			sqlite3_bind_int64(st, i + 1, (sqlite3_int64)args[i].integer);
	}
	size_t rows = 0;
	int rc;
	while((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit r = {.seq = sqlite3_column_int64(st, 0), .ts = sqlite3_column_double(st, 1)};
		const char **text[] = {&r.kind, &r.action, &r.actor, &r.requested_by, &r.token, &r.device_id,
				&r.module, &r.req_id, &r.code, &r.error, &r.detail};
		for(int i = 0; i < 11; i++)
			*text[i] = (const char *)sqlite3_column_text(st, i + 2);
		r.latency_ms = sqlite3_column_type(st, 13) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 13);
		rows++;
		fn(&r, ud);
	}
	if(rc != SQLITE_DONE)
		log_error("store", "%s: cannot read the audit trail: %s%s", s->path, sqlite3_errmsg(s->db),
				hint(s->db));
	sqlite3_finalize(st);
	done(rc == SQLITE_DONE ? OH_OK : OH_ERR_IO, rows, ud);
	return OH_OK;
}

static int begin_plain(void *b)
{
	struct sqlite_store *s = b;
	if(s->txn_depth++ > 0)
		return OH_OK;
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
	if(rc != SQLITE_OK) {
		write_failed(s, rc, "begin", msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		s->txn_depth--;
		return OH_ERR_IO;
	}
	return OH_OK;
}

static int begin_relaxed(void *b)
{
	struct sqlite_store *s = b;
	if(s->txn_depth == 0) {
		/* WAL with synchronous=NORMAL: committed to the OS at once, so a
		 * killed process loses nothing; synced at the next checkpoint or
		 * FULL commit. */
		sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
		s->relaxed = true;
	}
	int rc = begin_plain(s);
	if(rc && s->txn_depth == 0 && s->relaxed) {
		/* No transaction to end: the writes that follow need FULL. */
		sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		s->relaxed = false;
	}
	return rc;
}

static int sq_commit(void *b)
{
	struct sqlite_store *s = b;
	if(s->txn_depth <= 0 || --s->txn_depth > 0)
		return OH_OK;
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
	if(rc != SQLITE_OK) {
		rc = write_failed(s, rc, "commit", msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	} else {
		write_worked(s);
	}
	if(s->relaxed) {
		sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		s->relaxed = false;
	}
	return rc;
}

static int sq_begin(void *b, bool relaxed)
{
	return relaxed ? begin_relaxed(b) : begin_plain(b);
}

/* Pages of statements still running stay; the rest is read again when
 * needed. */
static void sq_release_memory(void *b)
{
	struct sqlite_store *s = b;
	sqlite3_db_release_memory(s->db);
}

const struct store_ops store_sqlite_ops = {
		.name = "sqlite",
		.close = sq_close,
		.lease_put = sq_lease_put,
		.lease_delete = sq_lease_delete,
		.lease_load = sq_lease_load,
		.job_put = sq_job_put,
		.job_delete = sq_job_delete,
		.job_load = sq_job_load,
		.device_put = sq_device_put,
		.device_delete = sq_device_delete,
		.device_load = sq_device_load,
		.doc_put = sq_doc_put,
		.doc_delete = sq_doc_delete,
		.doc_load = sq_doc_load,
		.audit_insert = sq_audit_insert,
		.audit_query = sq_audit_query,
		.audit_prune = sq_audit_prune,
		.begin = sq_begin,
		.commit = sq_commit,
		.release_memory = sq_release_memory,
};
