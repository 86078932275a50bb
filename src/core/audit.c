/*
 * The audit trail's writer: records are batched and committed together
 * (group commit), pruned in small batches on a timer, and told to the
 * Activity page over /api/events once they are durable.
 *
 * What not to "simplify":
 *   - One record per commit was one fsync per command: records wait in
 *     `pending` for a batch, committed every AUDIT_BATCH_MS or at
 *     AUDIT_BATCH_MAX records, without an fsync (WAL, synchronous=NORMAL:
 *     a killed process loses nothing the commit returned; a power cut may
 *     lose what the next checkpoint had not synced, docs/audit.md).
 *   - An ack must not be seen before its record is stored: acks published
 *     while records wait are queued here and published once every record
 *     before them is committed, in their order.  Another transaction's
 *     commit (the registry's) is not theirs.  A store that will not take
 *     the records (locked, failing) gets them again later, but the acks go
 *     at once: the command plane does not stop for the audit.
 *   - A record made inside someone's transaction (a lease, a job) goes
 *     into it, with every record still pending before it, so seq order is
 *     commit order and a keyset reader never skips one committed late.
 *     If that transaction fails, the caller's record is gone with its
 *     change (it never happened) and the others wait for the next batch.
 *   - Records are shown live only after their commit: a page never shows
 *     one the store does not have.
 */
#include "audit.h"

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store.h"
#include "strmap.h"
#include "timeutil.h"

/* Longest wait of a record (and of an ack behind it) for its commit. */
#define AUDIT_BATCH_MS 5
/* A batch this large is committed at once. */
#define AUDIT_BATCH_MAX 2048
/* Records kept for a store that refuses writes (a backup holding it);
 * beyond, the oldest are dropped, counted and logged. */
#define AUDIT_PENDING_MAX 100000
/* Retention: rows deleted per turn, and how often to look. */
#define AUDIT_PRUNE_BATCH 500
#define AUDIT_PRUNE_PERIOD_S 5
/* Commands in flight remembered for their outcome's latency; past it the
 * outcome's record has no latency. */
#define AUDIT_INFLIGHT_MAX 200000

struct pend {
	struct store_audit r; /* strings point into text */
	bool retry;           /* a batch record: tried again when its commit fails */
	char text[];
};

struct deferred {
	struct deferred *next;
	size_t len;
	char *topic;
	char payload[];
};

struct inflight {
	double mono;
	const char *token, *requested_by; /* NULL: unknown; point into text */
	char text[];
};

struct audit {
	struct host *host;
	struct pend **pending; /* not yet written, oldest first */
	size_t n_pending, cap_pending;
	struct pend **staged; /* written into the open transaction */
	size_t n_staged, cap_staged;
	struct deferred *acks, **acks_tail;
	struct event *ev_flush, *ev_prune;
	struct strmap *inflight; /* "{module}/{req_id}" -> struct inflight */
	struct metric *m_records, *m_lost, *m_batches, *m_pruned;
	bool flushing;
	audit_stored_fn stored; /* told of each committed record (events.c) */
	const char *requester;  /* audit_set_requester: borrowed */
};

/* ---- records in memory ---------------------------------------------------------- */

static size_t text_len(const char *s)
{
	if(!s)
		return 0;
	size_t n = strlen(s);
	return (n > AUDIT_TEXT_MAX ? AUDIT_TEXT_MAX : n) + 1;
}

/* Copies s (cut to AUDIT_TEXT_MAX, at a UTF-8 boundary) to *p. */
static const char *text_copy(char **p, const char *s)
{
	if(!s)
		return NULL;
	size_t n = strlen(s);
	if(n > AUDIT_TEXT_MAX) {
		n = AUDIT_TEXT_MAX;
		while(n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	char *out = *p;
	memcpy(out, s, n);
	out[n] = '\0';
	*p += n + 1;
	return out;
}

static struct pend *pend_new(const struct audit_rec *in)
{
	char *detail = in->detail ? json_dumps(in->detail, JSON_COMPACT) : NULL;
	const char *src[] = {in->kind, in->action, in->actor, in->requested_by, in->token, in->device_id,
			in->module, in->req_id, in->code, in->error};
	size_t n = detail ? strlen(detail) + 1 : 0;
	for(size_t i = 0; i < sizeof src / sizeof src[0]; i++)
		n += text_len(src[i]);
	struct pend *p = malloc(sizeof *p + n);
	if(!p) {
		free(detail);
		return NULL;
	}
	p->retry = true;
	char *at = p->text;
	p->r = (struct store_audit){
			.ts = time_now_wall(),
			.kind = text_copy(&at, in->kind),
			.action = text_copy(&at, in->action),
			.actor = text_copy(&at, in->actor),
			.requested_by = text_copy(&at, in->requested_by),
			.token = text_copy(&at, in->token),
			.device_id = text_copy(&at, in->device_id),
			.module = text_copy(&at, in->module),
			.req_id = text_copy(&at, in->req_id),
			.code = text_copy(&at, in->code),
			.error = text_copy(&at, in->error),
			.latency_ms = in->latency_ms,
	};
	if(detail) {
		/* Whole: cutting JSON would break it (callers keep it small). */
		strcpy(at, detail);
		p->r.detail = at;
		free(detail);
	}
	return p;
}

static int push(struct pend ***arr, size_t *n, size_t *cap, struct pend *p)
{
	if(*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct pend **grown = realloc(*arr, c * sizeof *grown);
		if(!grown)
			return OH_ERR_NOMEM;
		*arr = grown;
		*cap = c;
	}
	(*arr)[(*n)++] = p;
	return OH_OK;
}

/* ---- the batch -------------------------------------------------------------------- */

static void arm_flush(struct audit *a, int ms)
{
	if(event_pending(a->ev_flush, EV_TIMEOUT, NULL))
		return;
	struct timeval tv = {0, ms * 1000};
	event_add(a->ev_flush, &tv);
}

/* Writes every pending record into the open transaction. */
static void stage_pending(struct audit *a)
{
	struct store *s = a->host->store;
	size_t i = 0;
	for(; i < a->n_pending; i++) {
		struct pend *p = a->pending[i];
		if(store_audit_insert(s, &p->r) || push(&a->staged, &a->n_staged, &a->cap_staged, p))
			break;
	}
	/* What could not be written waits for the next batch. */
	memmove(a->pending, a->pending + i, (a->n_pending - i) * sizeof *a->pending);
	a->n_pending -= i;
}

static void publish_deferred(struct audit *a)
{
	struct deferred *d = a->acks;
	a->acks = NULL;
	a->acks_tail = &a->acks;
	while(d) {
		struct deferred *next = d->next;
		host_publish(a->host, d->topic, d->payload, d->len, 1, false);
		free(d);
		d = next;
	}
}

/* A batch a round trip from its commit (PostgreSQL's queued writes). */
struct durable {
	struct audit *a;
	size_t n;
	struct pend *p[];
};

/* Told and counted only once committed; on a failure (this host lost the
 * lead, or is closing: a may be gone) dropped, as its change is. */
static void on_durable(int rc, void *ud)
{
	struct durable *d = ud;
	for(size_t i = 0; i < d->n; i++) {
		if(!rc && d->a->stored)
			d->a->stored(d->a->host, &d->p[i]->r);
		free(d->p[i]);
	}
	if(!rc)
		metrics_add(d->a->m_records, NULL, (double)d->n);
	free(d);
}

static void durable_later(struct audit *a)
{
	struct durable *d = malloc(sizeof *d + a->n_staged * sizeof d->p[0]);
	if(!d) {
		for(size_t i = 0; i < a->n_staged; i++)
			free(a->staged[i]);
		metrics_add(a->m_lost, NULL, (double)a->n_staged);
		return;
	}
	d->a = a;
	d->n = a->n_staged;
	memcpy(d->p, a->staged, d->n * sizeof d->p[0]);
	store_when_committed(a->host->store, on_durable, d);
}

/* The store's commit handler: the staged records are durable (ok), queued
 * for a commit (PostgreSQL: durable_later), or not. */
static void on_commit(void *ud, bool ok)
{
	struct audit *a = ud;
	if(!a->n_staged && !a->acks)
		return;
	size_t lost = 0, kept = 0;
	if(ok && a->n_staged && store_pending(a->host->store)) {
		/* Queued, not committed yet (PostgreSQL): shown once it is. */
		durable_later(a);
		a->n_staged = 0;
	}
	for(size_t i = 0; i < a->n_staged; i++) {
		struct pend *p = a->staged[i];
		if(ok) {
			if(a->stored)
				a->stored(a->host, &p->r);
			free(p);
		} else if(p->retry && !push(&a->pending, &a->n_pending, &a->cap_pending, p)) {
			kept++;
		} else {
			/* The record of a change that failed with it, or no memory. */
			if(p->retry)
				lost++;
			free(p);
		}
	}
	if(ok && a->n_staged)
		metrics_add(a->m_records, NULL, (double)a->n_staged);
	if(lost)
		metrics_add(a->m_lost, NULL, (double)lost);
	if(kept)
		arm_flush(a, 100); /* the store said why; try again soon, not at once */
	a->n_staged = 0;
	/* Only now may the acks go, once every record before them is stored:
	 * another transaction (the registry's, a job's run) may commit while
	 * records still wait for their batch.  A batch that failed keeps them
	 * waiting for its retry; flush_now lets them go if that fails too. */
	if(!a->n_pending)
		publish_deferred(a);
}

static void flush_now(struct audit *a)
{
	struct store *s = a->host->store;
	if(a->flushing || store_in_txn(s))
		return; /* the open transaction's commit publishes */
	if(!a->n_pending) {
		publish_deferred(a);
		return;
	}
	a->flushing = true;
	if(store_begin_relaxed(s)) {
		/* Locked by another process: records wait (bounded), acks do not. */
		a->flushing = false;
		publish_deferred(a);
		arm_flush(a, 100);
		return;
	}
	metrics_add(a->m_batches, NULL, 1);
	size_t before = a->n_pending;
	stage_pending(a);
	bool stuck = a->n_pending == before; /* not one record would go in */
	store_commit(s);                     /* on_commit does the rest */
	a->flushing = false;
	if(a->n_pending) {
		/* The command plane does not stop for the audit: what cannot be
		 * written now is retried, and the acks go meanwhile. */
		if(stuck || a->n_pending >= before)
			publish_deferred(a);
		arm_flush(a, stuck ? 100 : AUDIT_BATCH_MS);
	}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	flush_now(arg);
}

void audit_flush(struct host *h)
{
	if(h->audit && (h->audit->n_pending || h->audit->acks))
		flush_now(h->audit);
}

void audit_record(struct host *h, const struct audit_rec *r)
{
	struct audit *a = h->audit;
	/* A standby records nothing: it cannot write, and the leader records
	 * what both see (the devices). */
	if(!a || !ha_acting(h))
		return;
	struct pend *p = pend_new(r);
	if(!p || push(&a->pending, &a->n_pending, &a->cap_pending, p)) {
		free(p);
		metrics_add(a->m_lost, NULL, 1);
		return;
	}
	if(store_in_txn(h->store) && !a->flushing) {
		/* With the caller's change: it is not retried on its own. */
		p->retry = false;
		stage_pending(a);
		return;
	}
	if(a->n_pending > AUDIT_PENDING_MAX) {
		free(a->pending[0]);
		memmove(a->pending, a->pending + 1, --a->n_pending * sizeof *a->pending);
		metrics_add(a->m_lost, NULL, 1);
		log_warn("audit", "more than %d records wait for the store; dropping the oldest",
				AUDIT_PENDING_MAX);
	}
	if(a->n_pending >= AUDIT_BATCH_MAX)
		flush_now(a);
	else
		arm_flush(a, AUDIT_BATCH_MS);
}

bool audit_defer_publish(struct host *h, const char *topic, const char *payload, size_t len)
{
	struct audit *a = h->audit;
	if(!a || (!a->n_pending && !a->n_staged && !a->acks))
		return false;
	size_t tl = strlen(topic) + 1;
	struct deferred *d = malloc(sizeof *d + len + tl);
	if(!d)
		return false; /* published now: late records beat lost acks */
	d->next = NULL;
	d->len = len;
	memcpy(d->payload, payload, len);
	d->topic = d->payload + len;
	memcpy(d->topic, topic, tl);
	*a->acks_tail = d;
	a->acks_tail = &d->next;
	if(!store_in_txn(h->store))
		arm_flush(a, AUDIT_BATCH_MS);
	return true;
}

void audit_on_stored(struct host *h, audit_stored_fn fn)
{
	if(h->audit)
		h->audit->stored = fn;
}

void audit_set_requester(struct host *h, const char *requested_by)
{
	if(h->audit)
		h->audit->requester = requested_by;
}

const char *audit_requester(const struct host *h)
{
	return h->audit ? h->audit->requester : NULL;
}

/* ---- commands in flight -------------------------------------------------------------- */

/* "{module}/{req_id}" into buf; false when it does not fit (no entry).
 * Per command twice, so no printf. */
static bool inflight_key(char *buf, size_t len, const char *module, const char *req_id)
{
	size_t m = strlen(module), r = strlen(req_id);
	if(m + 1 + r + 1 > len)
		return false;
	memcpy(buf, module, m);
	buf[m] = '/';
	memcpy(buf + m + 1, req_id, r + 1);
	return true;
}

/* s (NULL: "") into buf, cut to fit. */
static void copy_or_empty(char *buf, size_t len, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if(n >= len)
		n = len - 1;
	memcpy(buf, s ? s : "", n);
	buf[n] = '\0';
}

void audit_command_started(struct host *h, const char *module, const char *req_id, const char *token,
		const char *requested_by)
{
	struct audit *a = h->audit;
	char key[160];
	if(!a || !module || !req_id || strmap_size(a->inflight) >= AUDIT_INFLIGHT_MAX ||
			!inflight_key(key, sizeof key, module, req_id))
		return;
	/* One block per command: a burst keeps tens of thousands in flight. */
	size_t tl = text_len(token), rl = text_len(requested_by);
	struct inflight *f = malloc(sizeof *f + tl + rl);
	if(!f)
		return;
	char *at = f->text;
	f->mono = time_now_mono();
	f->token = text_copy(&at, token);
	f->requested_by = text_copy(&at, requested_by);
	int err = 0;
	struct inflight *old = strmap_put(a->inflight, key, f, &err);
	if(err)
		free(f);
	free(old);
}

void audit_command_ended(struct host *h, const char *module, const char *req_id, double *latency_ms,
		char *token, size_t token_len, char *requested_by, size_t rb_len)
{
	struct audit *a = h->audit;
	char key[160];
	*latency_ms = -1;
	token[0] = requested_by[0] = '\0';
	if(!a || !module || !req_id || !strmap_size(a->inflight) ||
			!inflight_key(key, sizeof key, module, req_id))
		return;
	struct inflight *f = strmap_remove(a->inflight, key);
	if(!f)
		return;
	*latency_ms = (time_now_mono() - f->mono) * 1000;
	copy_or_empty(token, token_len, f->token);
	copy_or_empty(requested_by, rb_len, f->requested_by);
	free(f);
}

void audit_compact(struct host *h)
{
	if(h->audit)
		strmap_compact(h->audit->inflight);
}

/* ---- retention --------------------------------------------------------------------------- */

static void arm_prune(struct audit *a, int s)
{
	struct timeval tv = {s, 0};
	event_add(a->ev_prune, &tv);
}

/* One small batch per turn: a full one comes back at once (the loop runs
 * everything else in between), a short one waits for the next period. */
static void on_prune(evutil_socket_t fd, short what, void *arg)
{
	struct audit *a = arg;
	const struct config *c = &a->host->cfg;
	double before = c->audit.retention_days > 0 ? time_now_wall() - c->audit.retention_days * 86400 : 0;
	size_t removed = 0;
	if((before > 0 || c->audit.max_rows > 0) && !store_in_txn(a->host->store))
		store_audit_prune(a->host->store, before, c->audit.max_rows, AUDIT_PRUNE_BATCH, &removed);
	if(removed)
		metrics_add(a->m_pruned, NULL, (double)removed);
	arm_prune(a, removed == AUDIT_PRUNE_BATCH ? 0 : AUDIT_PRUNE_PERIOD_S);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

json_t *audit_json(const struct store_audit *r)
{
	char when[40] = "";
	time_t secs = (time_t)floor(r->ts);
	if(time_format_utc(secs, when, sizeof when)) {
		/* "...:SSZ" -> "...:SS.mmmZ": records a few ms apart stay ordered to the eye. */
		int ms = (int)((r->ts - (double)secs) * 1000);
		snprintf(when + 19, sizeof when - 19, ".%03dZ", ms < 0 ? 0 : ms > 999 ? 999 : ms);
	}
	json_error_t err;
	json_t *detail = r->detail ? json_loads(r->detail, 0, &err) : NULL;
	json_t *o = json_object();
	json_object_set_new(o, "seq", json_integer(r->seq));
	json_object_set_new(o, "ts", json_string(when));
	const struct {
		const char *name, *v;
	} f[] = {{"kind", r->kind}, {"action", r->action}, {"actor", r->actor},
			{"requested_by", r->requested_by}, {"token", r->token}, {"device_id", r->device_id},
			{"module", r->module}, {"req_id", r->req_id}, {"code", r->code}};
	for(size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		json_object_set_new(o, f[i].name, f[i].v ? json_string(f[i].v) : json_null());
	json_object_set_new(o, "latency_ms", r->latency_ms >= 0 ? json_real(r->latency_ms) : json_null());
	json_object_set_new(o, "error", r->error ? json_string(r->error) : json_null());
	json_object_set_new(o, "detail", detail ? detail : json_null());
	return o;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

int audit_init(struct host *h)
{
	if(!h->cfg.audit.enabled || !h->store)
		return OH_OK;
	if(!store_has_audit(h->store)) {
		log_warn("audit", "the %s store keeps no audit trail yet: nothing is recorded",
				store_backend(h->store));
		return OH_OK;
	}
	struct audit *a = calloc(1, sizeof *a);
	if(!a)
		return OH_ERR_NOMEM;
	a->host = h;
	a->acks_tail = &a->acks;
	a->inflight = strmap_new();
	a->ev_flush = evtimer_new(h->base, on_flush, a);
	a->ev_prune = evtimer_new(h->base, on_prune, a);
	if(!a->inflight || !a->ev_flush || !a->ev_prune) {
		strmap_free(a->inflight, NULL);
		if(a->ev_flush)
			event_free(a->ev_flush);
		if(a->ev_prune)
			event_free(a->ev_prune);
		free(a);
		return OH_ERR_NOMEM;
	}
	a->m_records = metrics_family("oh_audit_records_total", METRIC_COUNTER,
			"Audit records committed to the store", NULL);
	a->m_lost = metrics_family("oh_audit_lost_total", METRIC_COUNTER,
			"Audit records lost (out of memory, or the store refused them past the backlog)", NULL);
	a->m_batches = metrics_family("oh_audit_batches_total", METRIC_COUNTER,
			"Audit group commits (batches of records)", NULL);
	a->m_pruned = metrics_family("oh_audit_pruned_total", METRIC_COUNTER,
			"Audit records deleted by audit.retention_days and audit.max_rows", NULL);
	store_on_commit(h->store, on_commit, a);
	h->audit = a;
	arm_prune(a, 0); /* what aged while the host was down, first */
	return OH_OK;
}

void audit_free(struct host *h)
{
	struct audit *a = h->audit;
	if(!a)
		return;
	flush_now(a);
	publish_deferred(a);
	store_on_commit(h->store, NULL, NULL);
	for(size_t i = 0; i < a->n_pending; i++)
		free(a->pending[i]);
	for(size_t i = 0; i < a->n_staged; i++)
		free(a->staged[i]);
	free(a->pending);
	free(a->staged);
	strmap_free(a->inflight, free);
	event_free(a->ev_flush);
	event_free(a->ev_prune);
	free(a);
	h->audit = NULL;
}
