/*
 * The PostgreSQL store: the state of a pair (or more) of hosts in one
 * database they share, with one leader writing at a time (ha.c,
 * docs/ha.md).
 *
 * Pitfalls this file exists to get right:
 * - The loop never waits on the database.  The connection is made with
 *   PQconnectStart/PQconnectPoll and used with PQsendQueryParams,
 *   PQconsumeInput, PQisBusy and PQflush, its socket watched by libevent.
 *   Queries go as they come in pipeline mode (libpq 14+), each with a sync
 *   point, and their results come back in order (a NULL between results
 *   with none before it is the gap at a sync point, not an answer).  A
 *   write returns OH_OK once queued, and store_when_committed() reports
 *   when it is committed (store.h).
 * - The migration is a multi-statement simple query, which pipeline mode
 *   refuses: the connection enters it only after.
 * - libpq may change sockets while connecting (another address of the
 *   host): the events are made anew for PQsocket() at every step.
 * - A COMMIT in a failed transaction "succeeds" with the tag ROLLBACK: it
 *   counts as a failure.
 * - Fencing: every state table has a statement trigger, oh_fence(), that
 *   refuses a write unless this session is the one the leader row names
 *   with the epoch it set when it took the lead.  The trigger takes the
 *   leader row FOR SHARE, so a standby taking over waits for a write in
 *   flight to commit and then sees it.  A refused write fails every write
 *   queued behind it and tells ha.c, which steps down.
 * - A database that is down or unreachable at start-up is retried with
 *   backoff; the host runs on (standby, /healthz says why).  A non-blocking
 *   connect has no timeout of its own (connect_timeout is for PQconnectdb):
 *   ev_give_up ends an attempt that hangs.
 * - The schema is created and migrated by the host, under a transaction
 *   advisory lock so that two hosts starting together do it once, with its
 *   version in oh_schema.  A migration is appended, never edited.
 */
#include "store.h"
#include "store_pg.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "oh/defs.h"

#define PG_RETRY_MIN_S 0.25
#define PG_RETRY_MAX_S 5.0
/* A connection attempt gives up after the conninfo's connect_timeout, or
 * this long: libpq applies connect_timeout only to blocking connects. */
#define PG_CONNECT_TIMEOUT_S 10
/* Parameters of one query at most (an audit record has 13). */
#define PG_MAX_PARAMS 16

/* Each entry runs once, in order, when oh_schema.version is below its
 * number (its index + 1).  The leader row, the state tables with their
 * fencing trigger, and oh_lead() (ha.c) for taking and renewing the lead:
 * - the caller already leads (this session, the row's pid): renew;
 * - the session advisory lock is free: the last leader's session has
 *   ended (a crash closes it at once), so take it with a new epoch;
 * - the row's deadline passed lease_s + margin ago: the leader is cut off
 *   and has stopped acting (ha.c); end its session, so its lock goes and
 *   the next try takes it. */
static const char *const migrations[] = {
		"CREATE TABLE oh_leader(id int PRIMARY KEY CHECK (id = 1), node_id text,"
		" advertise_url text, epoch bigint NOT NULL DEFAULT 0,"
		" expires_at timestamptz NOT NULL DEFAULT '-infinity', pid int);"
		"INSERT INTO oh_leader(id) VALUES (1);"
		"CREATE TABLE oh_leases(key text PRIMARY KEY, holder text NOT NULL,"
		" expires_at double precision NOT NULL);"
		"CREATE TABLE oh_jobs(id text PRIMARY KEY, module text NOT NULL, doc text NOT NULL,"
		" seq bigserial);"
		"CREATE TABLE oh_job_runs(job text NOT NULL, due bigint NOT NULL, node_id text,"
		" at timestamptz NOT NULL DEFAULT now(), UNIQUE (job, due));"
		"CREATE FUNCTION oh_fence() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
		" IF NOT EXISTS (SELECT 1 FROM oh_leader WHERE id = 1 AND pid = pg_backend_pid()"
		"  AND epoch::text = current_setting('oh.epoch', true) FOR SHARE) THEN"
		"  RAISE EXCEPTION 'fenced: this session does not hold the lead (epoch %)',"
		"   coalesce(current_setting('oh.epoch', true), 'none') USING ERRCODE = 'OHF01';"
		" END IF; RETURN NULL; END $f$;"
		"CREATE TRIGGER oh_fence BEFORE INSERT OR UPDATE OR DELETE ON oh_leases"
		" FOR EACH STATEMENT EXECUTE FUNCTION oh_fence();"
		"CREATE TRIGGER oh_fence BEFORE INSERT OR UPDATE OR DELETE ON oh_jobs"
		" FOR EACH STATEMENT EXECUTE FUNCTION oh_fence();"
		"CREATE TRIGGER oh_fence BEFORE INSERT OR UPDATE OR DELETE ON oh_job_runs"
		" FOR EACH STATEMENT EXECUTE FUNCTION oh_fence();"
		"CREATE FUNCTION oh_lead(p_node text, p_url text, p_lease float8, p_margin float8)"
		" RETURNS TABLE(epoch bigint, node_id text, advertise_url text, mine boolean)"
		" LANGUAGE plpgsql AS $f$ #variable_conflict use_column\n DECLARE r oh_leader%ROWTYPE; BEGIN"
		" SELECT * INTO r FROM oh_leader l WHERE l.id = 1 FOR UPDATE;"
		" IF r.pid = pg_backend_pid() AND r.node_id = p_node"
		"  AND r.epoch::text = current_setting('oh.epoch', true) THEN"
		"  UPDATE oh_leader l SET expires_at = clock_timestamp() + p_lease * interval '1 second'"
		"   WHERE l.id = 1;"
		"  RETURN QUERY SELECT r.epoch, r.node_id, r.advertise_url, true; RETURN;"
		" END IF;"
		" IF pg_try_advisory_lock(7319001) THEN"
		"  UPDATE oh_leader l SET node_id = p_node, advertise_url = p_url, epoch = l.epoch + 1,"
		"   pid = pg_backend_pid(), expires_at = clock_timestamp() + p_lease * interval '1 second'"
		"   WHERE l.id = 1 RETURNING * INTO r;"
		"  PERFORM set_config('oh.epoch', r.epoch::text, false);"
		"  RETURN QUERY SELECT r.epoch, r.node_id, r.advertise_url, true; RETURN;"
		" END IF;"
		" IF r.pid IS NOT NULL AND r.expires_at + p_margin * interval '1 second' < clock_timestamp() THEN"
		"  PERFORM pg_terminate_backend(r.pid);"
		" END IF;"
		" RETURN QUERY SELECT r.epoch, r.node_id, r.advertise_url, false; END $f$;",
		/* 2: plugins' documents (oh_doc_*). */
		"CREATE TABLE oh_docs(module text NOT NULL, collection text NOT NULL, key text NOT NULL,"
		" doc text NOT NULL, PRIMARY KEY (module, collection, key));"
		"CREATE TRIGGER oh_fence BEFORE INSERT OR UPDATE OR DELETE ON oh_docs"
		" FOR EACH STATEMENT EXECUTE FUNCTION oh_fence();",
		/* 3: the audit trail (audit.c), as SQLite's (store_sqlite.c): seq
		 * given in commit order, since only the leader's one session
		 * writes; the same two indexes. */
		"CREATE TABLE oh_audit(seq bigserial PRIMARY KEY, ts double precision NOT NULL,"
		" kind text NOT NULL, action text, actor text, requested_by text, token text, device_id text,"
		" module text, req_id text, code text, latency_ms double precision, error text, detail text);"
		"CREATE INDEX oh_audit_device ON oh_audit(device_id, seq);"
		"CREATE INDEX oh_audit_actor ON oh_audit(actor, seq);"
		"CREATE TRIGGER oh_fence BEFORE INSERT OR UPDATE OR DELETE ON oh_audit"
		" FOR EACH STATEMENT EXECUTE FUNCTION oh_fence();",
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

struct pg_query {
	struct pg_query *next;
	const char *sql; /* static, or text */
	char *text;      /* owned: a query built per call (the audit's filters) */
	char *multi;     /* owned: a multi-statement text (migration), sent as a simple query */
	int n;
	char *params[PG_MAX_PARAMS]; /* owned copies */
	pg_result_fn fn;
	void *ud;
	uint64_t seq;  /* a write's place; 0 for reads */
	bool advances; /* its success commits the writes up to seq */
	bool commit;   /* a COMMIT: the tag ROLLBACK is a failure */
};

struct waiter {
	struct waiter *next;
	uint64_t seq;
	store_done_fn fn;
	void *ud;
};

enum pg_state {
	PG_DOWN,
	PG_CONNECTING,
	PG_MIGRATING,
	PG_READY
};

struct pg_store {
	struct event_base *base;
	char *conninfo; /* owned */
	char *node_id;  /* owned: written with each job run */
	PGconn *conn;
	enum pg_state state;
	struct event *ev_read, *ev_write, *ev_retry;
	struct event *ev_give_up; /* the connection attempt's deadline */
	double backoff_s;
	char error[256];
	struct pg_query *head, *tail; /* the first in_flight are sent */
	struct pg_query *unsent;      /* the first not sent yet, or NULL */
	int in_flight;
	bool pipeline;    /* libpq's pipeline mode: queries go without waiting */
	PGresult *result; /* the in-flight query's last result so far */
	uint64_t seq_queued, seq_done;
	struct waiter *waiters, *waiters_tail;
	int txn_depth;
	bool writable;
	PGresult *leases, *jobs; /* prefetched, handed out once */
	PGresult *docs;          /* prefetched at take-over, for the plugins' took_lead */
	void (*on_state)(void *ud, bool up);
	void (*on_failed)(void *ud, const char *message);
	void *ev_ud;
	void (*prefetch_done)(void *ud, bool ok);
	void *prefetch_ud;
};

static void pg_connect(struct pg_store *pg);

int store_pg_check_conninfo(const char *conninfo, const char *file, char *err, size_t errlen)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
	if(!opts) {
		snprintf(err, errlen, "%s: store.conninfo: %s", file, msg ? msg : "out of memory");
		PQfreemem(msg);
		return -1;
	}
	int rc = 0;
	for(PQconninfoOption *o = opts; o->keyword; o++) {
		if(!strcmp(o->keyword, "password") && o->val) {
			snprintf(err, errlen,
					"%s: store.conninfo: holds a password; give it the way PostgreSQL tools "
					"take one (PGPASSWORD, PGPASSFILE, ~/.pgpass, or a client certificate "
					"with sslmode), never in this file",
					file);
			rc = -1;
		}
	}
	PQconninfoFree(opts);
	return rc;
}

/* ---- the connection ------------------------------------------------------------ */

static void set_error(struct pg_store *pg, const char *msg)
{
	snprintf(pg->error, sizeof pg->error, "%s", msg ? msg : "");
	/* libpq's messages end in a newline. */
	size_t n = strlen(pg->error);
	while(n && (pg->error[n - 1] == '\n' || pg->error[n - 1] == ' '))
		pg->error[--n] = '\0';
}

static void query_free(struct pg_query *q)
{
	for(int i = 0; i < q->n; i++)
		free(q->params[i]);
	free(q->text);
	free(q->multi);
	free(q);
}

static void drop_events(struct pg_store *pg)
{
	if(pg->ev_read)
		event_free(pg->ev_read);
	if(pg->ev_write)
		event_free(pg->ev_write);
	pg->ev_read = pg->ev_write = NULL;
}

/* Tells the waiters up to seq_done (all of them, failed, when rc). */
static void wake_waiters(struct pg_store *pg, int rc)
{
	while(pg->waiters && (rc || pg->waiters->seq <= pg->seq_done)) {
		struct waiter *w = pg->waiters;
		pg->waiters = w->next;
		if(!pg->waiters)
			pg->waiters_tail = NULL;
		w->fn(rc, w->ud);
		free(w);
	}
}

/* The queued writes' owners are told by their waiters from here on: a
 * write's result (the audit's seq) is no longer theirs to read. */
static void forget_writes(struct pg_store *pg)
{
	for(struct pg_query *q = pg->head; q; q = q->next) {
		if(q->seq)
			q->fn = NULL;
	}
}

/* A write failed or could not be made: nothing queued after it can be
 * trusted, and this host may no longer be the leader. */
static void writes_failed(struct pg_store *pg, const char *why)
{
	forget_writes(pg);
	pg->seq_done = pg->seq_queued;
	pg->txn_depth = 0;
	wake_waiters(pg, OH_ERR_IO);
	if(pg->on_failed)
		pg->on_failed(pg->ev_ud, why);
}

/* Fails every queued query (the connection is gone). */
static void fail_queue(struct pg_store *pg)
{
	bool writes = false;
	while(pg->head) {
		struct pg_query *q = pg->head;
		pg->head = q->next;
		writes |= q->seq != 0;
		if(q->fn)
			q->fn(NULL, q->ud);
		query_free(q);
	}
	pg->tail = NULL;
	pg->unsent = NULL;
	pg->in_flight = 0;
	pg->pipeline = false;
	if(pg->result) {
		PQclear(pg->result);
		pg->result = NULL;
	}
	if(writes || pg->waiters)
		writes_failed(pg, "the connection to PostgreSQL was lost");
}

static void schedule_retry(struct pg_store *pg)
{
	double s = pg->backoff_s;
	pg->backoff_s = pg->backoff_s * 2 > PG_RETRY_MAX_S ? PG_RETRY_MAX_S : pg->backoff_s * 2;
	struct timeval tv = {(time_t)s, (suseconds_t)((s - (time_t)s) * 1e6)};
	evtimer_add(pg->ev_retry, &tv);
}

static void lost(struct pg_store *pg, const char *why)
{
	bool was_up = pg->state == PG_READY;
	set_error(pg, why);
	if(pg->state != PG_DOWN)
		log_warn("store", "PostgreSQL: %s; retrying", pg->error);
	drop_events(pg);
	if(pg->conn) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
	pg->state = PG_DOWN;
	fail_queue(pg);
	if(was_up && pg->on_state)
		pg->on_state(pg->ev_ud, false);
	schedule_retry(pg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	pg_connect(arg);
}

static void on_give_up(evutil_socket_t fd, short what, void *arg)
{
	struct pg_store *pg = arg;
	if(pg->state == PG_CONNECTING || pg->state == PG_MIGRATING)
		lost(pg, "timeout expired while connecting");
}

/* The conninfo's connect_timeout (seconds), or PG_CONNECT_TIMEOUT_S. */
static double connect_timeout(PGconn *conn)
{
	double s = PG_CONNECT_TIMEOUT_S;
	PQconninfoOption *opts = PQconninfo(conn);
	for(PQconninfoOption *o = opts; o && o->keyword; o++) {
		if(!strcmp(o->keyword, "connect_timeout") && o->val && atoi(o->val) > 0)
			s = atoi(o->val);
	}
	PQconninfoFree(opts);
	return s;
}

static void on_io(evutil_socket_t fd, short what, void *arg);

/* Watches the socket for what libpq wants next (reads always, writes when
 * asked). */
static void watch(struct pg_store *pg, bool want_write)
{
	int fd = PQsocket(pg->conn);
	if(fd < 0) {
		lost(pg, "no socket");
		return;
	}
	if(!pg->ev_read || event_get_fd(pg->ev_read) != fd) {
		drop_events(pg);
		pg->ev_read = event_new(pg->base, fd, EV_READ | EV_PERSIST, on_io, pg);
		pg->ev_write = event_new(pg->base, fd, EV_WRITE, on_io, pg);
		if(!pg->ev_read || !pg->ev_write) {
			lost(pg, "out of memory");
			return;
		}
		event_add(pg->ev_read, NULL);
	}
	if(want_write)
		event_add(pg->ev_write, NULL);
}

static void send_next(struct pg_store *pg);

static void migrated(struct pg_store *pg)
{
	evtimer_del(pg->ev_give_up);
	pg->state = PG_READY;
	/* From here on queries go as they come, each with its sync point, and
	 * their results are read back in order: a batch of writes (a job
	 * firing, BEGIN ... COMMIT) costs one round trip instead of one each. */
	pg->pipeline = PQenterPipelineMode(pg->conn) == 1;
	pg->backoff_s = PG_RETRY_MIN_S;
	pg->error[0] = '\0';
	log_info("store", "PostgreSQL: connected (%s), schema version %zu", PQdb(pg->conn), N_MIGRATIONS);
	if(pg->on_state)
		pg->on_state(pg->ev_ud, true);
}

static bool on_migrated(PGresult *r, void *ud)
{
	struct pg_store *pg = ud;
	if(!r)
		return false;
	if(PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		char why[300];
		snprintf(why, sizeof why, "schema migration failed: %s", PQresultErrorMessage(r));
		log_error("store", "PostgreSQL: %s", why);
		/* The connection stays unusable; try again later. */
		set_error(pg, why);
		return false;
	}
	migrated(pg);
	return false;
}

/* The whole migration as one simple query: one transaction, under a lock. */
static char *migration_text(void)
{
	size_t n = 512;
	for(size_t i = 0; i < N_MIGRATIONS; i++)
		n += strlen(migrations[i]) + 128;
	char *t = malloc(n);
	if(!t)
		return NULL;
	size_t off = (size_t)snprintf(t, n,
			"BEGIN; SELECT pg_advisory_xact_lock(7319000);"
			" CREATE TABLE IF NOT EXISTS oh_schema(version int NOT NULL);"
			" INSERT INTO oh_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM oh_schema);");
	for(size_t i = 0; i < N_MIGRATIONS; i++)
		off += (size_t)snprintf(t + off, n - off,
				" DO $m$ BEGIN IF (SELECT version FROM oh_schema) < %zu THEN %s"
				" UPDATE oh_schema SET version = %zu; END IF; END $m$;",
				i + 1, migrations[i], i + 1);
	snprintf(t + off, n - off, " COMMIT;");
	return t;
}

static void connected(struct pg_store *pg)
{
	if(PQsetnonblocking(pg->conn, 1)) {
		lost(pg, PQerrorMessage(pg->conn));
		return;
	}
	pg->state = PG_MIGRATING;
	struct pg_query *q = calloc(1, sizeof *q);
	if(q)
		q->multi = migration_text();
	if(!q || !q->multi) {
		free(q);
		lost(pg, "out of memory");
		return;
	}
	q->fn = on_migrated;
	q->ud = pg;
	/* First in line, ahead of anything queued meanwhile (nothing of
	 * this connection is sent yet). */
	q->next = pg->head;
	pg->head = q;
	if(!pg->tail)
		pg->tail = q;
	pg->unsent = q;
	send_next(pg);
}

static void connect_step(struct pg_store *pg)
{
	switch(PQconnectPoll(pg->conn)) {
	case PGRES_POLLING_READING:
		watch(pg, false);
		break;
	case PGRES_POLLING_WRITING:
		watch(pg, true);
		break;
	case PGRES_POLLING_OK:
		watch(pg, false);
		if(pg->conn)
			connected(pg);
		break;
	default:
		lost(pg, PQerrorMessage(pg->conn));
		break;
	}
}

/* The server's notices ("relation already exists, skipping") go to the
 * log, not to stderr raw. */
static void on_notice(void *arg, const char *message)
{
	log_debug("store", "PostgreSQL: %.*s", (int)strcspn(message, "\n"), message);
}

static void pg_connect(struct pg_store *pg)
{
	pg->conn = PQconnectStart(pg->conninfo);
	if(pg->conn)
		PQsetNoticeProcessor(pg->conn, on_notice, pg);
	if(!pg->conn || PQstatus(pg->conn) == CONNECTION_BAD) {
		lost(pg, pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
		return;
	}
	pg->state = PG_CONNECTING;
	double t = connect_timeout(pg->conn);
	struct timeval tv = {(time_t)t, 0};
	evtimer_add(pg->ev_give_up, &tv);
	connect_step(pg);
}

/* ---- queries ------------------------------------------------------------------- */

static void flush_out(struct pg_store *pg)
{
	int rc = PQflush(pg->conn);
	if(rc < 0)
		lost(pg, PQerrorMessage(pg->conn));
	else if(rc > 0)
		event_add(pg->ev_write, NULL);
}

static void send_next(struct pg_store *pg)
{
	while(pg->unsent && pg->state >= PG_MIGRATING && (pg->pipeline || !pg->in_flight)) {
		struct pg_query *q = pg->unsent;
		int ok = q->multi ? PQsendQuery(pg->conn, q->multi)
				  : PQsendQueryParams(pg->conn, q->sql, q->n, NULL,
						    (const char *const *)q->params, NULL, NULL, 0);
		/* A sync point per query: an error aborts that query alone (and,
		 * inside BEGIN ... COMMIT, the transaction, as without pipelining). */
		if(ok && pg->pipeline)
			ok = PQpipelineSync(pg->conn);
		if(!ok) {
			lost(pg, PQerrorMessage(pg->conn));
			return;
		}
		pg->unsent = q->next;
		pg->in_flight++;
	}
	if(pg->conn)
		flush_out(pg);
}

static bool result_failed(const struct pg_query *q, PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	if(st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return true;
	return q->commit && !strcmp(PQcmdStatus(r), "ROLLBACK");
}

/* The in-flight query is answered (r: its last result, taken). */
static void finish(struct pg_store *pg, PGresult *r)
{
	struct pg_query *q = pg->head;
	pg->head = q->next;
	if(!pg->head)
		pg->tail = NULL;
	pg->in_flight--;
	bool failed = !r || result_failed(q, r);
	if(q->seq && failed) {
		char why[300];
		snprintf(why, sizeof why, "a write was refused: %s", r ? PQresultErrorMessage(r) : "no result");
		set_error(pg, why);
		log_error("store", "PostgreSQL: %s", pg->error);
		writes_failed(pg, pg->error);
	} else if(q->seq && q->advances) {
		pg->seq_done = q->seq;
		wake_waiters(pg, OH_OK);
	}
	bool kept = q->fn && q->fn(r, q->ud);
	if(r && !kept)
		PQclear(r);
	query_free(q);
}

static void read_results(struct pg_store *pg)
{
	if(!PQconsumeInput(pg->conn)) {
		lost(pg, PQerrorMessage(pg->conn));
		return;
	}
	int idle = 0;
	while(pg->conn && pg->in_flight && !PQisBusy(pg->conn)) {
		PGresult *r = PQgetResult(pg->conn);
		if(r && PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r); /* the end of a query's sync point: nothing to tell */
			continue;
		}
		if(r) {
			idle = 0;
			/* Keep the last one, or the first error of a multi-statement. */
			if(pg->result && PQresultStatus(pg->result) == PGRES_FATAL_ERROR) {
				PQclear(r);
			} else {
				if(pg->result)
					PQclear(pg->result);
				pg->result = r;
			}
			continue;
		}
		/* Every query has a result before its end: a NULL with none is
		 * the gap around a sync point, not an answer. */
		if(!pg->result) {
			if(++idle > 1)
				break;
			continue;
		}
		PGresult *last = pg->result;
		pg->result = NULL;
		finish(pg, last);
		if(pg->state == PG_READY || pg->state == PG_MIGRATING)
			send_next(pg);
	}
	/* Notices and notifications are not used; drop them. */
	PGnotify *n;
	while(pg->conn && (n = PQnotifies(pg->conn)))
		PQfreemem(n);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct pg_store *pg = arg;
	if(pg->state == PG_CONNECTING) {
		connect_step(pg);
		return;
	}
	if(!pg->conn)
		return;
	if(what & EV_WRITE)
		flush_out(pg);
	if(pg->conn && (what & EV_READ))
		read_results(pg);
}

static struct pg_query *enqueue(struct pg_store *pg, const char *sql, int n, const char *const *params)
{
	if(pg->state != PG_READY || n > PG_MAX_PARAMS)
		return NULL;
	struct pg_query *q = calloc(1, sizeof *q);
	if(!q)
		return NULL;
	q->sql = sql;
	q->n = n;
	for(int i = 0; i < n; i++) {
		if(params[i] && !(q->params[i] = strdup(params[i]))) {
			query_free(q);
			return NULL;
		}
	}
	if(pg->tail)
		pg->tail->next = q;
	else
		pg->head = q;
	pg->tail = q;
	if(!pg->unsent)
		pg->unsent = q;
	return q;
}

int pg__query(struct pg_store *pg, const char *sql, int n, const char *const *params, pg_result_fn fn, void *ud)
{
	if(pg->state != PG_READY)
		return OH_ERR_NO_CONN;
	struct pg_query *q = enqueue(pg, sql, n, params);
	if(!q)
		return OH_ERR_NOMEM;
	q->fn = fn;
	q->ud = ud;
	send_next(pg);
	return OH_OK;
}

/* A state write: refused on a standby and while the database is away.
 * fn (may be NULL) gets its result, unless a write fails before. */
static int pg_write_fn(struct pg_store *pg, const char *sql, int n, const char *const *params,
		pg_result_fn fn, void *ud)
{
	struct pg_query *q = pg->writable && pg->state == PG_READY ? enqueue(pg, sql, n, params) : NULL;
	if(!q) {
		forget_writes(pg);
		return pg->writable && pg->state == PG_READY ? OH_ERR_NOMEM : OH_ERR_IO;
	}
	q->fn = fn;
	q->ud = ud;
	q->seq = ++pg->seq_queued;
	q->advances = pg->txn_depth == 0;
	q->commit = !strcmp(sql, "COMMIT");
	send_next(pg);
	return OH_OK;
}

static int pg_write(struct pg_store *pg, const char *sql, int n, const char *const *params)
{
	return pg_write_fn(pg, sql, n, params, NULL, NULL);
}

/* ---- store.h ------------------------------------------------------------------- */

static bool on_audit_rows(PGresult *r, void *ud);

void *store_pg_open(const struct config *cfg, struct event_base *base, char *err, size_t errlen)
{
	struct pg_store *pg = calloc(1, sizeof *pg);
	if(!pg || !(pg->conninfo = strdup(cfg->store.conninfo)) || !(pg->node_id = strdup(cfg->ha.node_id)) ||
			!(pg->ev_retry = evtimer_new(base, on_retry, pg)) ||
			!(pg->ev_give_up = evtimer_new(base, on_give_up, pg))) {
		snprintf(err, errlen, "store: out of memory");
		if(pg) {
			free(pg->conninfo);
			free(pg->node_id);
			if(pg->ev_retry)
				event_free(pg->ev_retry);
		}
		free(pg);
		return NULL;
	}
	pg->base = base;
	pg->backoff_s = PG_RETRY_MIN_S;
	snprintf(pg->error, sizeof pg->error, "connecting");
	pg_connect(pg);
	return pg;
}

static void pg_close(void *b)
{
	struct pg_store *pg = b;
	/* Their owners (ha.c) are gone already: nobody is told of the end. */
	pg->on_state = NULL;
	pg->on_failed = NULL;
	pg->prefetch_done = NULL;
	for(struct pg_query *q = pg->head; q; q = q->next) {
		/* An audit read's owner (a page, an export) was told by http.c,
		 * freed before the store, that its client is gone: it frees
		 * itself when told the read failed. */
		if(q->fn != on_audit_rows)
			q->fn = NULL;
	}
	drop_events(pg);
	if(pg->conn)
		PQfinish(pg->conn);
	pg->conn = NULL;
	pg->state = PG_DOWN;
	fail_queue(pg);
	PQclear(pg->leases);
	PQclear(pg->jobs);
	PQclear(pg->docs);
	event_free(pg->ev_retry);
	event_free(pg->ev_give_up);
	free(pg->conninfo);
	free(pg->node_id);
	free(pg);
}

static int pg_lease_put(void *b, const struct store_lease *l)
{
	char exp[32];
	snprintf(exp, sizeof exp, "%.17g", l->expires_at);
	const char *p[] = {l->key, l->holder, exp};
	return pg_write(b,
			"INSERT INTO oh_leases(key, holder, expires_at) VALUES ($1, $2, $3)"
			" ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at",
			3, p);
}

static int pg_lease_delete(void *b, const char *key)
{
	const char *p[] = {key};
	return pg_write(b, "DELETE FROM oh_leases WHERE key = $1", 1, p);
}

/* Hands out a prefetched result once (rows: the column count expected). */
static PGresult *take(PGresult **slot)
{
	PGresult *r = *slot;
	*slot = NULL;
	return r;
}

static int pg_lease_load(void *b, store_lease_fn fn, void *ud)
{
	PGresult *r = take(&((struct pg_store *)b)->leases);
	for(int i = 0; r && i < PQntuples(r); i++) {
		struct store_lease l = {
				PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), strtod(PQgetvalue(r, i, 2), NULL)};
		fn(&l, ud);
	}
	PQclear(r);
	return OH_OK;
}

static int pg_job_put(void *b, const char *id, const char *module, const char *doc)
{
	const char *p[] = {id, module, doc};
	return pg_write(b,
			"INSERT INTO oh_jobs(id, module, doc) VALUES ($1, $2, $3)"
			" ON CONFLICT (id) DO UPDATE SET module = EXCLUDED.module, doc = EXCLUDED.doc",
			3, p);
}

static int pg_job_delete(void *b, const char *id)
{
	const char *p[] = {id};
	return pg_write(b, "DELETE FROM oh_jobs WHERE id = $1", 1, p);
}

static int pg_job_load(void *b, store_job_fn fn, void *ud)
{
	PGresult *r = take(&((struct pg_store *)b)->jobs);
	for(int i = 0; r && i < PQntuples(r); i++)
		fn(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
				(size_t)PQgetlength(r, i, 2), ud);
	PQclear(r);
	return OH_OK;
}

static int pg_job_run(void *b, const char *id, int64_t due)
{
	struct pg_store *pg = b;
	char d[24];
	snprintf(d, sizeof d, "%lld", (long long)due);
	const char *p[] = {id, d, pg->node_id};
	return pg_write(pg, "INSERT INTO oh_job_runs(job, due, node_id) VALUES ($1, $2, $3)", 3, p);
}

/* The device cache is not shared: every host reads the device topics
 * itself, and the broker's retained messages warm a host that starts. */
static int pg_device_put(void *b, const char *id, const char *doc, size_t len, double last_seen)
{
	return OH_OK;
}

static int pg_device_delete(void *b, const char *id)
{
	return OH_OK;
}

static int pg_device_load(void *b, store_device_fn fn, void *ud)
{
	return OH_OK;
}

static int pg_doc_put(void *b, const char *module, const char *collection, const char *key, const char *doc)
{
	const char *p[] = {module, collection, key, doc};
	return pg_write(b,
			"INSERT INTO oh_docs(module, collection, key, doc) VALUES ($1, $2, $3, $4)"
			" ON CONFLICT (module, collection, key) DO UPDATE SET doc = EXCLUDED.doc",
			4, p);
}

static int pg_doc_delete(void *b, const char *module, const char *collection, const char *key)
{
	const char *p[] = {module, collection, key};
	return pg_write(b, "DELETE FROM oh_docs WHERE module = $1 AND collection = $2 AND key = $3", 3, p);
}

/* A plugin reads its documents when it loads, before this host knows
 * whether it leads and before the database may even answer: nothing to
 * hand out then.  A leader prefetches them when it takes the lead and its
 * plugins read them again from their took_lead hook (docs/ha.md). */
static int pg_doc_load(void *b, const char *module, const char *collection, store_doc_fn fn, void *ud)
{
	PGresult *r = ((struct pg_store *)b)->docs;
	for(int i = 0; r && i < PQntuples(r); i++) {
		if(strcmp(PQgetvalue(r, i, 0), module) || strcmp(PQgetvalue(r, i, 1), collection))
			continue;
		json_t *doc = json_loads(PQgetvalue(r, i, 3), 0, NULL);
		if(doc)
			fn(PQgetvalue(r, i, 2), doc, ud);
		json_decref(doc);
	}
	return OH_OK;
}

/* ---- the audit trail ------------------------------------------------------------ */

/* The record's seq, into the caller's struct store_audit: it is kept
 * until the commit, whose result comes after this one (audit.c,
 * durable_later), or forgotten (forget_writes) when a write fails. */
static bool on_audit_seq(PGresult *r, void *ud)
{
	if(r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		*(long long *)ud = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	return false;
}

/* Records go as the others' writes do, into the batch's BEGIN ... COMMIT,
 * which the pipeline sends without waiting: a batch costs one round trip,
 * and publish.c holds the acks behind it until it is committed. */
static int pg_audit_insert(void *b, struct store_audit *r)
{
	char ts[32], lat[32];
	snprintf(ts, sizeof ts, "%.17g", r->ts);
	snprintf(lat, sizeof lat, "%.17g", r->latency_ms);
	const char *p[] = {ts, r->kind, r->action, r->actor, r->requested_by, r->token, r->device_id,
			r->module, r->req_id, r->code, r->latency_ms >= 0 ? lat : NULL, r->error, r->detail};
	r->seq = 0; /* given by the database, a round trip later (on_audit_seq) */
	return pg_write_fn(b,
			"INSERT INTO oh_audit(ts, kind, action, actor, requested_by, token, device_id, module,"
			" req_id, code, latency_ms, error, detail)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING seq",
			13, p, on_audit_seq, &r->seq);
}

/* Like SQLite's: the oldest first, by the primary key, never the newest
 * row.  How many went is not waited for: the next turn comes on the
 * timer. */
static int pg_audit_prune(void *b, double before, long long max_rows, size_t batch, size_t *removed)
{
	struct {
		bool on;
		const char *sql;
		char v[32];
	} del[] = {{before > 0,
				   "DELETE FROM oh_audit WHERE seq IN (SELECT seq FROM (SELECT seq, ts FROM oh_audit"
				   " ORDER BY seq LIMIT $2) o WHERE ts < $1 AND seq < (SELECT max(seq) FROM oh_audit))",
				   ""},
			{max_rows > 0,
					"DELETE FROM oh_audit WHERE seq IN (SELECT seq FROM oh_audit WHERE seq <="
					" (SELECT coalesce(max(seq), 0) FROM oh_audit) - $1 ORDER BY seq LIMIT $2)",
					""}};
	char n[24];
	snprintf(n, sizeof n, "%zu", batch);
	snprintf(del[0].v, sizeof del[0].v, "%.17g", before);
	snprintf(del[1].v, sizeof del[1].v, "%lld", max_rows);
	int rc = OH_OK;
	for(size_t i = 0; !rc && i < sizeof del / sizeof del[0]; i++) {
		const char *p[] = {del[i].v, n};
		if(del[i].on)
			rc = pg_write(b, del[i].sql, 2, p);
	}
	return rc;
}

struct audit_read {
	store_audit_fn fn;
	store_audit_done_fn done;
	void *ud;
};

static bool on_audit_rows(PGresult *r, void *ud)
{
	struct audit_read *q = ud;
	bool ok = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 14;
	int n = ok ? PQntuples(r) : 0;
	for(int i = 0; i < n; i++) {
		struct store_audit a = {.seq = strtoll(PQgetvalue(r, i, 0), NULL, 10),
				.ts = strtod(PQgetvalue(r, i, 1), NULL)};
		const char **text[] = {&a.kind, &a.action, &a.actor, &a.requested_by, &a.token, &a.device_id,
				&a.module, &a.req_id, &a.code, &a.error, &a.detail};
		for(int c = 0; c < 11; c++)
			*text[c] = PQgetisnull(r, i, c + 2) ? NULL : PQgetvalue(r, i, c + 2);
		a.latency_ms = PQgetisnull(r, i, 13) ? -1 : strtod(PQgetvalue(r, i, 13), NULL);
		q->fn(&a, q->ud);
	}
	if(r && !ok)
		log_error("store", "PostgreSQL: cannot read the audit trail: %s", PQresultErrorMessage(r));
	q->done(ok ? OH_OK : OH_ERR_IO, (size_t)n, q->ud);
	free(q);
	return false;
}

/* A read, so a standby answers it too (the table is shared); the rows
 * come a round trip later, to on_audit_rows. */
static int pg_audit_query(void *b, const struct store_audit_filter *f, size_t limit, store_audit_fn fn,
		store_audit_done_fn done, void *ud)
{
	struct pg_store *pg = b;
	char sql[640], num[STORE_AUDIT_ARGS_MAX][32];
	struct store_audit_arg args[STORE_AUDIT_ARGS_MAX];
	const char *p[STORE_AUDIT_ARGS_MAX];
	size_t len = (size_t)snprintf(sql, sizeof sql,
			"SELECT seq, ts, kind, action, actor, requested_by, token, device_id, module, req_id, code,"
			" error, detail, latency_ms FROM oh_audit WHERE true");
	int n = store__audit_where(f, limit, '$', sql, sizeof sql, len, args);
	/* Every value travels as text. */
	for(int i = 0; i < n; i++) {
		if(args[i].type == 'd')
			snprintf(num[i], sizeof num[i], "%.17g", args[i].real);
		else if(args[i].type == 'i')
			snprintf(num[i], sizeof num[i], "%lld", args[i].integer);
		p[i] = args[i].type == 's' ? args[i].text : num[i];
	}
	struct audit_read *q = malloc(sizeof *q);
	char *text = strdup(sql);
	struct pg_query *pq = q && text ? enqueue(pg, text, n, p) : NULL;
	if(!pq) {
		free(q);
		free(text);
		return pg->state == PG_READY ? OH_ERR_NOMEM : OH_ERR_NO_CONN;
	}
	*q = (struct audit_read){fn, done, ud};
	pq->text = text;
	pq->fn = on_audit_rows;
	pq->ud = q;
	send_next(pg);
	return OH_OK;
}

static int pg_begin(void *b, bool relaxed)
{
	struct pg_store *pg = b;
	if(pg->txn_depth > 0) {
		pg->txn_depth++;
		return OH_OK;
	}
	int rc = pg_write(pg, "BEGIN", 0, NULL);
	if(!rc)
		pg->txn_depth = 1;
	return rc;
}

static int pg_commit(void *b)
{
	struct pg_store *pg = b;
	if(pg->txn_depth <= 0 || --pg->txn_depth > 0)
		return OH_OK;
	return pg_write(pg, "COMMIT", 0, NULL);
}

static bool pg_pending(void *b)
{
	struct pg_store *pg = b;
	return pg->seq_done < pg->seq_queued;
}

static void pg_when_committed(void *b, store_done_fn fn, void *ud)
{
	struct pg_store *pg = b;
	struct waiter *w = pg_pending(pg) ? calloc(1, sizeof *w) : NULL;
	if(!w) {
		/* Nothing pending (or no memory to wait: then say it failed). */
		fn(pg_pending(pg) ? OH_ERR_NOMEM : OH_OK, ud);
		return;
	}
	w->seq = pg->seq_queued;
	w->fn = fn;
	w->ud = ud;
	if(pg->waiters_tail)
		pg->waiters_tail->next = w;
	else
		pg->waiters = w;
	pg->waiters_tail = w;
}

const struct store_ops store_pg_ops = {
		.name = "postgresql",
		.close = pg_close,
		.lease_put = pg_lease_put,
		.lease_delete = pg_lease_delete,
		.lease_load = pg_lease_load,
		.job_put = pg_job_put,
		.job_delete = pg_job_delete,
		.job_load = pg_job_load,
		.job_run = pg_job_run,
		.device_put = pg_device_put,
		.device_delete = pg_device_delete,
		.device_load = pg_device_load,
		.doc_put = pg_doc_put,
		.doc_delete = pg_doc_delete,
		.doc_load = pg_doc_load,
		.audit_insert = pg_audit_insert,
		.audit_query = pg_audit_query,
		.audit_prune = pg_audit_prune,
		.begin = pg_begin,
		.commit = pg_commit,
		.pending = pg_pending,
		.when_committed = pg_when_committed,
};

/* ---- store_pg.h ---------------------------------------------------------------- */

void pg__reset(struct pg_store *pg, const char *why)
{
	if(pg->state != PG_DOWN)
		lost(pg, why);
}

bool pg__ready(const struct pg_store *pg)
{
	return pg->state == PG_READY;
}

const char *pg__error(const struct pg_store *pg)
{
	return pg->error;
}

void pg__on_events(struct pg_store *pg, void (*state)(void *ud, bool up),
		void (*failed)(void *ud, const char *message), void *ud)
{
	pg->on_state = state;
	pg->on_failed = failed;
	pg->ev_ud = ud;
}

void pg__set_writable(struct pg_store *pg, bool on)
{
	pg->writable = on;
}

/* Three answers, in order: the leases, the jobs, the plugins' documents. */
static bool on_prefetch(PGresult *r, void *ud)
{
	struct pg_store *pg = ud;
	bool ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
	PGresult **slot = !ok                          ? NULL
			: PQnfields(r) == 4            ? &pg->docs
			: !strcmp(PQfname(r, 0), "id") ? &pg->jobs
						       : &pg->leases;
	if(slot) {
		PQclear(*slot);
		*slot = r;
	}
	if((!slot || slot == &pg->docs) && pg->prefetch_done) {
		void (*done)(void *, bool) = pg->prefetch_done;
		pg->prefetch_done = NULL;
		done(pg->prefetch_ud, ok);
	}
	return slot != NULL;
}

int pg__prefetch(struct pg_store *pg, void (*done)(void *ud, bool ok), void *ud)
{
	pg->prefetch_done = done;
	pg->prefetch_ud = ud;
	int rc = pg__query(pg, "SELECT key, holder, expires_at FROM oh_leases", 0, NULL, on_prefetch, pg);
	if(!rc)
		rc = pg__query(pg, "SELECT id, module, doc FROM oh_jobs ORDER BY seq", 0, NULL, on_prefetch,
				pg);
	if(!rc)
		rc = pg__query(pg, "SELECT module, collection, key, doc FROM oh_docs", 0, NULL, on_prefetch,
				pg);
	return rc;
}
