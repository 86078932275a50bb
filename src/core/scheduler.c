/*
 * The durable scheduler: jobs in memory and in the store, one timer heap on
 * the loop, firing, and catch-up after downtime.
 *
 * Every job sits in one binary min-heap keyed by its due time (wall-clock
 * seconds), with a single monotonic libevent timer armed for the top, so
 * 100,000 jobs cost one pending event and O(log n) per change.  When the
 * timer fires the wall clock is read again: a clock stepped backwards
 * re-arms instead of firing early.  A 1 s watch compares the wall clock
 * with the monotonic one and re-arms on a step, so a step forwards does not
 * delay jobs either.
 *
 * Exactly once: before a job's commands are dispatched its new state
 * (last_run, and next_run already moved to the following cron time, or
 * "done" for a one-off job) is committed to the store, so a crash during or
 * after the dispatch never runs the same due time again.  A run that is
 * more than misfire_grace_s late (the host was down, or the clock jumped)
 * is recorded as MISSED instead, and a cron job then moves to its first
 * time after now: one run or one MISSED, never a series.  When that state
 * cannot be stored (the store failed, or another process holds the
 * database) the run is not dispatched: the job is put back as it was and
 * the batch is tried again after SCHED_STORE_RETRY_S, so a run is never
 * repeated and never lost (if the store stays away past misfire_grace_s,
 * the run is recorded as MISSED once it is back).
 *
 * Any client may schedule, and every job costs an fsync and stays until
 * removed (a finished one-off job for SCHED_DONE_KEEP_S more), so a new
 * job is refused at limits.max_jobs in all or limits.max_jobs_per_actor for
 * its owner (OH_ERR_TOO_LARGE, counted).  Jobs restored from the store are
 * all kept, past a lowered limit too: they were accepted.
 */
#include "scheduler.h"

#include <event2/event.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "http.h"
#include "json_text.h"
#include "log.h"
#include "mqtt_link.h"
#include "metrics.h"
#include "plugin_ctx.h"
#include "store.h"
#include "strmap.h"
#include "timeutil.h"

/* Seconds between attempts while the store refuses a batch's state. */
#define SCHED_STORE_RETRY_S 1

static double retry_mono(const struct scheduler *s)
{
	return s->backoff.retry_mono;
}

static size_t owner_jobs(struct scheduler *s, const char *owner)
{
	return (size_t)(uintptr_t)strmap_get(s->owners, owner);
}

/* Adds delta (+1 or -1) to the owner's count; an owner without jobs leaves
 * the map, so the map is never larger than the jobs table. */
static int owner_count(struct scheduler *s, const char *owner, int delta)
{
	size_t n = owner_jobs(s, owner);
	n = delta > 0 ? n + 1 : n ? n - 1 : 0;
	int err = 0;
	if(n)
		strmap_put(s->owners, owner, (void *)(uintptr_t)n, &err);
	else
		strmap_remove(s->owners, owner);
	return err ? OH_ERR_NOMEM : OH_OK;
}

/* ---- the heap ----------------------------------------------------------- */

static bool before(const struct job *a, const struct job *b)
{
	return a->due < b->due || (a->due == b->due && a->created < b->created);
}

static void heap_set(struct scheduler *s, uint32_t i, struct job *j)
{
	s->heap[i] = j;
	j->heap_idx = i;
}

static void sift_up(struct scheduler *s, uint32_t i)
{
	struct job *j = s->heap[i];
	while(i > 0) {
		uint32_t p = (i - 1) / 2;
		if(!before(j, s->heap[p]))
			break;
		heap_set(s, i, s->heap[p]);
		i = p;
	}
	heap_set(s, i, j);
}

static void sift_down(struct scheduler *s, uint32_t i)
{
	struct job *j = s->heap[i];
	for(;;) {
		uint32_t c = 2 * i + 1;
		if(c >= s->n)
			break;
		if(c + 1 < s->n && before(s->heap[c + 1], s->heap[c]))
			c++;
		if(!before(s->heap[c], j))
			break;
		heap_set(s, i, s->heap[c]);
		i = c;
	}
	heap_set(s, i, j);
}

/* Room for `want` entries.  Reserved whenever a job is created, so that
 * putting a job back after it fired can never fail. */
static int heap_reserve(struct scheduler *s, size_t want)
{
	if(want <= s->cap)
		return OH_OK;
	if(want >= UINT32_MAX / 2)
		return OH_ERR_TOO_LARGE;
	uint32_t cap = s->cap ? s->cap : 64;
	while(cap < want)
		cap *= 2;
	struct job **heap = realloc(s->heap, cap * sizeof *heap);
	if(!heap)
		return OH_ERR_NOMEM;
	s->heap = heap;
	s->cap = cap;
	return OH_OK;
}

static void heap_push(struct scheduler *s, struct job *j)
{
	heap_set(s, s->n++, j);
	sift_up(s, j->heap_idx);
}

static void heap_remove(struct scheduler *s, struct job *j)
{
	uint32_t i = j->heap_idx;
	if(i == UINT32_MAX)
		return;
	j->heap_idx = UINT32_MAX;
	struct job *last = s->heap[--s->n];
	if(i < s->n) {
		heap_set(s, i, last);
		sift_down(s, i);
		sift_up(s, last->heap_idx);
	}
}

/* ---- timers ------------------------------------------------------------- */

static void arm(struct scheduler *s)
{
	if(!s->n) {
		evtimer_del(s->timer);
		evtimer_del(s->prep);
		return;
	}
	double wait = (double)s->heap[0]->due - s->now();
	/* After a store failure, nothing runs before the retry. */
	if(retry_mono(s) > 0 && retry_mono(s) - time_now_mono() > wait)
		wait = retry_mono(s) - time_now_mono();
	if(wait < 0)
		wait = 0;
	if(wait > 86400.0 * 365)
		wait = 86400.0 * 365; /* re-checked then; keeps timeval sane */
	time_evtimer_add(s->timer, wait);
	/* The top's commands, and those of the jobs due with it, are parsed
	 * SCHED_PREPARE_S ahead. */
	time_evtimer_add(s->prep, wait - SCHED_PREPARE_S);
}

/* Parses the commands of the jobs in the heap below i due by limit. */
static void prepare_from(struct scheduler *s, uint32_t i, int64_t limit)
{
	if(i >= s->n || s->n_prepared >= SCHED_PREPARE_MAX)
		return;
	struct job *j = s->heap[i];
	if(j->due > limit)
		return; /* and so is every job below it */
	if(!j->cmds_ahead && j->state != JOB_DONE) {
		json_error_t e;
		j->cmds_ahead = json_loads(j->commands, 0, &e);
		if(j->cmds_ahead)
			s->n_prepared++;
	}
	prepare_from(s, 2 * i + 1, limit);
	prepare_from(s, 2 * i + 2, limit);
}

static void on_prep(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	prepare_from(s, 0, (int64_t)floor(s->now() + SCHED_PREPARE_S));
}

/* Drops what was parsed ahead for j. */
static void unprepare(struct scheduler *s, struct job *j)
{
	if(!j->cmds_ahead)
		return;
	json_decref(j->cmds_ahead);
	j->cmds_ahead = NULL;
	s->n_prepared--;
}

static void job_free(struct scheduler *s, struct job *j)
{
	unprepare(s, j);
	free(j);
}

/* For freeing the whole table (strmap_free). */
static void job_free_any(void *v)
{
	struct job *j = v;
	json_decref(j->cmds_ahead);
	free(j);
}

/* ---- jobs and their JSON ------------------------------------------------- */

static struct job *job_alloc(struct sched_plugin *sp, const char *id, const char *owner, const char *name,
		const char *tz, const char *spec, const char *commands)
{
	const char *src[5] = {owner, name, tz, spec, commands};
	size_t len[5], total = 0;
	for(int i = 0; i < 5; i++) {
		len[i] = src[i] ? strlen(src[i]) + 1 : 0;
		total += len[i];
	}
	struct job *j = calloc(1, sizeof *j + total);
	if(!j)
		return NULL;
	j->sp = sp;
	j->heap_idx = UINT32_MAX;
	snprintf(j->id, sizeof j->id, "%s", id);
	const char **dst[5] = {&j->owner, &j->name, &j->tz, &j->spec, &j->commands};
	char *p = j->text;
	for(int i = 0; i < 5; i++) {
		if(!src[i]) {
			*dst[i] = NULL;
			continue;
		}
		memcpy(p, src[i], len[i]);
		*dst[i] = p;
		p += len[i];
	}
	return j;
}

static json_t *iso_or_null(int64_t t)
{
	char buf[TIME_UTC_BUFLEN];
	if(!t || !time_format_utc((time_t)t, buf, sizeof buf))
		return json_null();
	return json_string(buf);
}

static json_t *result_json(const struct job_result *r)
{
	if(!r->code[0])
		return json_null();
	json_t *o = json_pack("{s:s, s:o, s:o}", "code", r->code, "at", iso_or_null(r->at), "due",
			iso_or_null(r->due));
	if(!strcmp(r->code, "FIRED")) {
		json_object_set_new(o, "dispatched", json_integer(r->dispatched));
		json_object_set_new(o, "skipped", json_integer(r->skipped));
	}
	return o;
}

json_t *sched__job_json(const struct job *j)
{
	json_error_t e;
	json_t *cmds = json_loads(j->commands, 0, &e);
	json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:{s:s}, s:s, s:o, s:o, s:o, s:o, s:o, s:s}", "id",
			j->id, "module", j->sp->ctx->module, "owner", j->owner, "name",
			j->name ? json_string(j->name) : json_null(), "spec",
			j->kind == JOB_CRON ? "cron" : "at", j->spec, "tz", j->tz, "commands",
			cmds ? cmds : json_array(), "created", iso_or_null(j->created), "next_run",
			j->state == JOB_DONE ? json_null() : iso_or_null(j->due), "last_run",
			iso_or_null(j->last_run), "last_result", result_json(&j->last), "state",
			j->state == JOB_DONE ? "done" : "scheduled");
	return doc;
}

/* The audit record of a job change (scheduled, cancelled), made inside
 * the transaction that writes the change. */
static void job_record(struct scheduler *s, const struct job *j, const char *action)
{
	if(!s->h->audit)
		return;
	const char *token = http_current_token();
	json_t *detail = json_pack("{s:s, s:s, s:s, s:s}", "job_id", j->id, "owner", j->owner, "spec",
			j->kind == JOB_CRON ? "cron" : "at", "when", j->spec);
	if(j->name)
		json_object_set_new(detail, "name", json_string(j->name));
	struct audit_rec r = {.kind = "job",
			.action = action,
			.actor = token ? token : j->owner,
			.requested_by = j->owner,
			.token = token,
			.module = j->sp->ctx->module,
			.detail = detail,
			.latency_ms = -1};
	audit_record(s->h, &r);
	json_decref(detail);
}

static int persist(struct scheduler *s, const struct job *j)
{
	if(!s->h->store)
		return OH_OK;
	json_t *doc = sched__job_json(j);
	if(!doc)
		return OH_ERR_NOMEM;
	int rc = store_job_put(s->h->store, j->id, j->sp->ctx->module, doc);
	json_decref(doc);
	return rc;
}

/* For what firing records: a process crash loses none of it, a power cut
 * may lose the last moments (a run could then repeat once). */
static bool txn_begin_relaxed(struct scheduler *s)
{
	return s->h->store && !store_begin_relaxed(s->h->store);
}

/* false when the transaction's writes were not committed. */
static bool txn_commit(struct scheduler *s, bool txn)
{
	return !txn || !store_commit(s->h->store);
}

struct job *sched__find(struct sched_plugin *sp, const char *id)
{
	struct job *j = id ? strmap_get(sp->s->jobs, id) : NULL;
	return j && j->sp == sp ? j : NULL;
}

int sched__add(struct sched_plugin *sp, const struct job_req *r, struct job **out)
{
	struct scheduler *s = sp->s;
	const struct config_limits *lim = &s->h->cfg.limits;
	/* max_jobs first: callers name the limit by checking it again. */
	if(config_limit_reached(lim->max_jobs, strmap_size(s->jobs))) {
		metrics_limit_refusal("max_jobs");
		return OH_ERR_TOO_LARGE;
	}
	if(config_limit_reached(lim->max_jobs_per_actor, owner_jobs(s, r->owner))) {
		metrics_limit_refusal("max_jobs_per_actor");
		return OH_ERR_TOO_LARGE;
	}
	char *cmds = json_dumps(r->commands, JSON_COMPACT);
	if(!cmds)
		return OH_ERR_NOMEM;
	char id[SCHED_ID_LEN + 1];
	do
		host_new_id(id, sizeof id);
	while(strmap_get(s->jobs, id));
	struct job *j = job_alloc(sp, id, r->owner, r->name, r->tz, r->spec, cmds);
	free(cmds);
	if(!j)
		return OH_ERR_NOMEM;
	j->kind = (uint8_t)r->kind;
	j->cron = r->cron;
	j->due = r->due;
	j->created = (int64_t)s->now();
	j->state = JOB_SCHEDULED;

	int err = 0;
	int rc = heap_reserve(s, strmap_size(s->jobs) + 1);
	if(!rc)
		rc = owner_count(s, j->owner, +1);
	if(!rc) {
		strmap_put(s->jobs, j->id, j, &err);
		if(err) {
			owner_count(s, j->owner, -1);
			rc = OH_ERR_NOMEM;
		}
	}
	if(rc) {
		free(j);
		return rc;
	}
	/* Durable before it is acknowledged, or not at all; its audit record
	 * in the same transaction. */
	rc = s->h->store ? store_begin(s->h->store) : OH_OK;
	if(!rc) {
		rc = persist(s, j);
		if(!rc)
			job_record(s, j, "scheduled");
		int crc = s->h->store ? store_commit(s->h->store) : OH_OK;
		rc = rc ? rc : crc;
	}
	if(rc) {
		strmap_remove(s->jobs, j->id);
		owner_count(s, j->owner, -1);
		free(j);
		return rc;
	}
	sp->n_jobs++;
	heap_push(s, j);
	if(j->heap_idx == 0)
		arm(s);
	metrics_count("oh_scheduler_jobs_scheduled_total", 1);
	*out = j;
	return OH_OK;
}

static void unlink_job(struct scheduler *s, struct job *j)
{
	strmap_remove(s->jobs, j->id);
	owner_count(s, j->owner, -1);
	heap_remove(s, j);
	j->sp->n_jobs--;
	/* A job whose commands are being dispatched is freed when that ends. */
	if(j->firing)
		j->removed = true;
	else
		job_free(s, j);
}

int sched__remove(struct job *j)
{
	struct scheduler *s = j->sp->s;
	if(s->h->store) {
		int rc = store_begin(s->h->store);
		if(rc)
			return rc;
		rc = store_job_delete(s->h->store, j->id);
		if(!rc)
			job_record(s, j, "cancelled");
		int crc = store_commit(s->h->store);
		if(rc || crc)
			return rc ? rc : crc;
	}
	bool was_top = j->heap_idx == 0;
	unlink_job(s, j);
	if(was_top)
		arm(s);
	return OH_OK;
}

/* ---- firing ---------------------------------------------------------------- */

static void publish_missed(struct job *j, int64_t due, double now)
{
	oh_ctx *ctx = j->sp->ctx;
	char rid[SCHED_ID_LEN + 1], due_s[TIME_UTC_BUFLEN], msg[256];
	time_format_utc((time_t)due, due_s, sizeof due_s);
	snprintf(msg, sizeof msg, "the run due at %s was missed by %.0f s (misfire_grace_s is %g)", due_s,
			now - (double)due, ctx->host->cfg.misfire_grace_s);
	json_t *details = json_pack("{s:s, s:o, s:s, s:I}", "job_id", j->id, "name",
			j->name ? json_string(j->name) : json_null(), "due", due_s, "late_s",
			(json_int_t)(now - (double)due));
	oh_ack_publish(ctx,
			oh_ack_new(host_new_id(rid, sizeof rid), false, "MISSED", "schedule", j->owner, msg,
					details));
	log_warn("scheduler", "%s job %s: %s", ctx->module, j->id, msg);
	metrics_count("oh_scheduler_jobs_missed_total", 1);
}

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A run taken off the heap in this turn. */
struct planned {
	struct job *job;
	int64_t due;
	bool miss;
	/* The job as it was, to put back when its advance was not stored. */
	int64_t old_due, old_last_run;
	struct job_result old_last;
	uint8_t old_state;
	/* Once its commands ran (exec_commands): the commands, parsed, and
	 * each one's answer from the executor (null: none), both owned. */
	bool ran;
	json_t *cmds, *acks;
	double fired_at;
};

/* Runs every command of p's job through the module's executor, as the
 * job's owner.  Only the commands leave now: what is reported about them
 * (report_run) waits until the turn's commands are all out. */
static void exec_commands(struct scheduler *s, struct planned *p)
{
	struct job *j = p->job;
	oh_ctx *ctx = j->sp->ctx;
	json_error_t e;
	char requester[SCHED_ID_LEN + 8];
	snprintf(requester, sizeof requester, "job:%s", j->id);
	p->ran = true;
	p->fired_at = s->now();
	p->cmds = j->cmds_ahead ? json_incref(j->cmds_ahead) : json_loads(j->commands, 0, &e);
	unprepare(s, j);
	p->acks = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(p->cmds, i, c)
	{
		/* What the command causes is the job's doing (the audit). */
		audit_set_requester(s->h, requester);
		json_t *ack = j->sp->exec(ctx, j->id, j->owner, c, j->sp->ud);
		audit_set_requester(s->h, NULL);
		json_array_append_new(p->acks, ack ? ack : json_null());
	}
}

/* Publishes SKIPPED per refused command of p's run and one FIRED, and
 * keeps the outcome on the job. */
static void report_run(struct planned *p)
{
	struct job *j = p->job;
	oh_ctx *ctx = j->sp->ctx;
	json_t *dispatched = json_array(), *skipped = json_array();
	char rid[SCHED_ID_LEN + 1];
	size_t i;
	json_t *c;
	json_array_foreach(p->cmds, i, c)
	{
		const char *dev = str_of(c, "device_id"), *act = str_of(c, "action");
		json_t *ack = json_array_get(p->acks, i);
		if(json_is_true(json_object_get(ack, "ok"))) {
			json_array_append_new(dispatched,
					json_pack("{s:s?, s:s?, s:O?}", "device_id", dev, "action", act,
							"req_id", json_object_get(ack, "req_id")));
			continue;
		}
		const char *code = str_of(ack, "code");
		const char *error = str_of(ack, "error");
		json_t *holder = json_object_get(json_object_get(ack, "details"), "holder");
		json_t *item = json_pack("{s:s?, s:s?, s:s, s:O?, s:s?}", "device_id", dev, "action", act,
				"code", code ? code : "ERROR", "holder", holder, "error", error);
		json_array_append(skipped, item);
		json_t *details = json_deep_copy(item);
		json_object_set_new(details, "job_id", json_string(j->id));
		json_object_set_new(details, "name", j->name ? json_string(j->name) : json_null());
		char msg[512];
		if(json_is_string(holder))
			snprintf(msg, sizeof msg, "%s on %s skipped: reserved by %s", act ? act : "?",
					dev ? dev : "?", json_string_value(holder));
		else
			snprintf(msg, sizeof msg, "%s on %s skipped: %s", act ? act : "?", dev ? dev : "?",
					error                  ? error
							: code ? code
							       : "the executor failed");
		oh_ack_publish(ctx,
				oh_ack_new(host_new_id(rid, sizeof rid), false, "SKIPPED", "schedule",
						j->owner, msg, details));
		json_decref(item);
	}
	json_decref(p->cmds);
	json_decref(p->acks);
	p->cmds = p->acks = NULL;

	double late = p->fired_at - (double)p->due;
	if(late < 0)
		late = 0;
	char due_s[TIME_UTC_BUFLEN], at_s[TIME_UTC_BUFLEN];
	time_format_utc((time_t)p->due, due_s, sizeof due_s);
	time_format_utc((time_t)p->fired_at, at_s, sizeof at_s);
	j->last.dispatched = (uint32_t)json_array_size(dispatched);
	j->last.skipped = (uint32_t)json_array_size(skipped);
	snprintf(j->last.code, sizeof j->last.code, "FIRED");
	log_debug("scheduler", "%s job %s fired %.0f ms after %s: %u dispatched, %u skipped", ctx->module,
			j->id, late * 1000, due_s, j->last.dispatched, j->last.skipped);
	json_t *details = json_pack("{s:s, s:o, s:s, s:s, s:I, s:o, s:o}", "job_id", j->id, "name",
			j->name ? json_string(j->name) : json_null(), "due", due_s, "fired_at", at_s,
			"lateness_ms", (json_int_t)llround(late * 1000), "dispatched", dispatched, "skipped",
			skipped);
	oh_ack_publish(ctx,
			oh_ack_new(host_new_id(rid, sizeof rid), true, "FIRED", "schedule", j->owner, NULL,
					details));
	metrics_count("oh_scheduler_jobs_fired_total", 1);
}

/* Moves j past the run due at `due`, at wall time now: a cron job to its
 * first time after both, a one-off job to "done". */
static void advance(struct job *j, int64_t due, double now)
{
	if(j->kind == JOB_CRON) {
		time_t after = (time_t)fmax((double)due, floor(now)), next;
		if(!cron_next(&j->cron, j->tz, after, &next)) {
			j->due = next;
			return;
		}
		log_warn("scheduler", "job %s: cron \"%s\" has no further run; done", j->id, j->spec);
	}
	j->state = JOB_DONE;
	j->due = (int64_t)now + SCHED_DONE_KEEP_S;
}

static void mark_outcome_dirty(struct scheduler *s, struct job *j)
{
	if(j->outcome_dirty || !s->h->store)
		return;
	if(s->n_dirty == s->cap_dirty) {
		size_t cap = s->cap_dirty ? s->cap_dirty * 2 : 64;
		char(*grown)[SCHED_ID_LEN + 1] = realloc(s->dirty, cap * sizeof *grown);
		if(!grown) {
			persist(s, j); /* no room to defer: store it now */
			return;
		}
		s->dirty = grown;
		s->cap_dirty = cap;
	}
	memcpy(s->dirty[s->n_dirty++], j->id, SCHED_ID_LEN + 1);
	j->outcome_dirty = true;
	if(!evtimer_pending(s->flush, NULL)) {
		struct timeval tv = {0, SCHED_OUTCOME_FLUSH_MS * 1000};
		evtimer_add(s->flush, &tv);
	}
}

void scheduler_flush(struct scheduler *s)
{
	if(!s || !s->n_dirty)
		return;
	bool txn = txn_begin_relaxed(s);
	for(size_t i = 0; i < s->n_dirty; i++) {
		/* By id: the job may have been removed since. */
		struct job *j = strmap_get(s->jobs, s->dirty[i]);
		if(j && j->outcome_dirty && !j->removed) {
			j->outcome_dirty = false;
			persist(s, j);
		}
	}
	/* Outcomes are a report: one lost to a failing store is logged by the
	 * store and rewritten with the job's next change. */
	if(!txn_commit(s, txn))
		log_warn("scheduler", "could not store the outcome of %zu run(s)", s->n_dirty);
	s->n_dirty = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	scheduler_flush(arg);
}

/* Puts a planned job back as it was before store_batch advanced it. */
static void unplan(struct planned *p)
{
	struct job *j = p->job;
	j->due = p->old_due;
	j->last_run = p->old_last_run;
	j->last = p->old_last;
	j->state = p->old_state;
}

/* The store refused what must be durable before a run: try again later,
 * saying so once per outage rather than every retry. */
static void store_retry_later(struct scheduler *s)
{
	s->backoff.retry_mono = time_now_mono() + SCHED_STORE_RETRY_S;
	if(!s->backoff.failing)
		log_error("scheduler",
				"due jobs not run: their next run could not be stored; "
				"retrying every %d s",
				SCHED_STORE_RETRY_S);
	s->backoff.failing = true;
}

static bool is_due(const struct scheduler *s, double now)
{
	/* 1 ms early is on time: whole-second due times meet a loop timer
	 * that may wake a hair before the wall clock gets there. */
	return s->n && (double)s->heap[0]->due <= now + 0.001;
}

/*
 * Takes up to max jobs due by now off the heap into batch and commits,
 * in one transaction, what must be durable before they run: each one's
 * advance (next run, or the deletion of a one-off job) and, on a shared
 * store, its (job, due) row.  Returns how many were planned; *failed when
 * the store refused a write: the jobs before it are planned if their
 * commit held, and the rest waits for the retry.
 */
static size_t store_batch(struct scheduler *s, struct planned *batch, size_t max, double now, bool *failed)
{
	double grace = s->h->cfg.misfire_grace_s;
	size_t nb = 0;
	bool txn = txn_begin_relaxed(s);
	if(s->h->store && !txn) {
		/* The store is busy or failing: no write would stick. */
		store_retry_later(s);
		*failed = true;
		return 0;
	}
	struct job *not_stored = NULL;
	while(nb < max && is_due(s, now)) {
		struct job *j = s->heap[0];
		heap_remove(s, j);
		if(j->state == JOB_DONE) {
			/* A finished one-off job has been listed long enough. */
			if(s->h->store)
				store_job_delete(s->h->store, j->id);
			unlink_job(s, j);
			continue;
		}
		struct planned *p = &batch[nb++];
		memset(p, 0, sizeof *p);
		p->job = j;
		p->due = j->due;
		p->miss = now - (double)j->due > grace;
		p->old_due = j->due;
		p->old_last_run = j->last_run;
		p->old_last = j->last;
		p->old_state = j->state;
		j->firing = true;
		memset(&j->last, 0, sizeof j->last);
		j->last.at = (int64_t)now;
		j->last.due = p->due;
		snprintf(j->last.code, sizeof j->last.code, "%s", p->miss ? "MISSED" : "STARTED");
		if(!p->miss)
			j->last_run = (int64_t)now;
		advance(j, p->due, now);
		/* The next run is durable before this one is dispatched.  A
		 * one-off job has none: deleting it is the cheapest way to make
		 * sure a crash cannot run it again, and its "done" record is
		 * written back with the outcome. */
		int rc = j->state == JOB_DONE && s->h->store ? store_job_delete(s->h->store, j->id)
							     : persist(s, j);
		/* Shared stores keep one row per (job, due): a run the database
		 * has seen is never dispatched again, by any host. */
		if(!rc && !p->miss && s->h->store)
			rc = store_job_run(s->h->store, j->id, p->due);
		if(rc) {
			/* Not durable, so not run: as if it had not been due yet.
			 * The store is failing: the rest waits too. */
			unplan(p);
			j->firing = false;
			nb--;
			not_stored = j;
			break;
		}
	}
	bool committed = txn_commit(s, txn);
	if(not_stored)
		heap_push(s, not_stored);
	if(!committed) {
		/* None of the batch is durable. */
		for(size_t i = 0; i < nb; i++) {
			unplan(&batch[i]);
			batch[i].job->firing = false;
			heap_push(s, batch[i].job);
		}
		nb = 0;
	}
	if(not_stored || !committed) {
		store_retry_later(s);
		*failed = true;
	} else if(s->backoff.failing && nb) {
		log_info("scheduler", "the store works again; running the delayed jobs");
		s->backoff.failing = false;
	}
	for(size_t i = 0; i < nb; i++) {
		if(batch[i].job->state == JOB_DONE && batch[i].miss)
			mark_outcome_dirty(s, batch[i].job);
	}
	return nb;
}

/*
 * Runs what is due, up to SCHED_TURN_MAX jobs in this loop turn.  Jobs due
 * in the same second run together: batch after batch is stored and its
 * commands written out (mqtt_link_flush), with nothing else in between;
 * only then are the turn's events (DISPATCHED, SKIPPED, FIRED, MISSED)
 * built and published, so that no event and no other work delays the last
 * command.
 */
static void run_due(struct scheduler *s)
{
	double now = s->now();
	struct planned turn[SCHED_TURN_MAX];
	size_t nt = 0;
	bool failed = false;
	if(!is_due(s, now)) {
		arm(s);
		return;
	}
	command_hold_acks(true);
	s->h->batching = true;
	while(nt < SCHED_TURN_MAX && !failed && is_due(s, now)) {
		/* Batches grow: the first few commands leave after a tiny commit,
		 * the rest of the turn is stored in few transactions (a commit
		 * costs more than the commands it delays). */
		size_t want = !nt                      ? SCHED_FIRST_BATCH
				: nt < SCHED_BATCH_MAX ? SCHED_BATCH_MAX - nt
						       : SCHED_TURN_MAX - nt;
		size_t nb = store_batch(s, turn + nt, want, now, &failed);
		for(size_t i = nt; i < nt + nb; i++) {
			/* Not if unscheduled by an executor earlier in this turn. */
			if(!turn[i].miss && !turn[i].job->removed)
				exec_commands(s, &turn[i]);
		}
		nt += nb;
		/* The batch's commands leave now, not at the loop's next turn:
		 * the broker passes them on while the next batch is stored. */
		mqtt_link_flush(s->h->link);
	}
	s->h->batching = false;

	/* The turn's events follow, in one write at the loop's next turn. */
	for(size_t i = 0; i < nt; i++) {
		struct planned *p = &turn[i];
		if(p->ran) {
			report_run(p);
			if(!p->job->removed)
				mark_outcome_dirty(s, p->job); /* FIRED with its counts */
		} else if(p->miss && !p->job->removed) {
			publish_missed(p->job, p->due, now);
		}
	}
	command_hold_acks(false);

	for(size_t i = 0; i < nt; i++) {
		struct job *j = turn[i].job;
		j->firing = false;
		unprepare(s, j); /* a miss, or a job unscheduled in the turn */
		if(j->removed)
			job_free(s, j);
		else
			heap_push(s, j);
	}
	arm(s);
}

void sched__poll(struct scheduler *s)
{
	/* Early by the wall clock (it was stepped back), or waiting for the
	 * store: wait the rest. */
	if(s->n && ((double)s->heap[0]->due - s->now() > 0.001 || retry_mono(s) > time_now_mono())) {
		arm(s);
		return;
	}
	s->backoff.retry_mono = 0;
	run_due(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	sched__poll(arg);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	double off = s->now() - time_now_mono();
	double step = off - s->clock_offset;
	s->clock_offset = off;
	if(fabs(step) > 0.5) {
		log_warn("scheduler", "wall clock stepped by %+.3f s; re-arming %u job timer(s)", step, s->n);
		arm(s);
	}
}

/* ---- loading ------------------------------------------------------------------ */

/*
 * What a job is made from, as its stored document has it: strings
 * (borrowed, NUL-terminated) or NULL where the document has no string;
 * commands as compact JSON text of an array, or NULL.  Read from the text
 * without a tree when the host wrote it (fields_from_text), else from
 * jansson's tree (fields_from_doc), with the same result: 100,000 jobs
 * parsed by jansson were a third of a start-up's CPU.
 */
struct job_fields {
	const char *owner, *name, *tz, *at, *cron, *commands;
	const char *created, *next_run, *last_run, *state;
	/* last_result, when it is an object with a string "code" */
	const char *code, *result_at, *result_due;
	json_int_t dispatched, skipped;
};

static int64_t iso_time(const char *text)
{
	time_t t;
	if(!text || time_parse_iso8601(text, "UTC", &t, NULL, 0))
		return 0;
	return (int64_t)t;
}

/* A job from its fields; NULL (logged) when it is unreadable. */
static struct job *job_from_fields(struct sched_plugin *sp, const char *id, const struct job_fields *f)
{
	const char *why = NULL;
	struct cron_expr ce;
	memset(&ce, 0, sizeof ce);
	if(!f->owner || !f->tz || !f->commands || (!f->at == !f->cron))
		why = "missing fields";
	else if(!tz_valid(f->tz))
		why = "unknown time zone";
	else if(f->cron && cron_parse(f->cron, &ce, NULL, 0))
		why = "bad cron expression";
	if(why) {
		log_error("scheduler", "job %s in the store is unreadable (%s); left there", id, why);
		return NULL;
	}
	struct job *j = job_alloc(sp, id, f->owner, f->name, f->tz, f->at ? f->at : f->cron, f->commands);
	if(!j)
		return NULL;
	j->kind = f->cron ? JOB_CRON : JOB_AT;
	j->cron = ce;
	j->created = iso_time(f->created);
	j->last_run = iso_time(f->last_run);
	if(f->code) {
		snprintf(j->last.code, sizeof j->last.code, "%s", f->code);
		j->last.at = iso_time(f->result_at);
		j->last.due = iso_time(f->result_due);
		j->last.dispatched = (uint32_t)f->dispatched;
		j->last.skipped = (uint32_t)f->skipped;
	}
	int64_t next = iso_time(f->next_run);
	if((f->state && !strcmp(f->state, "done")) || !next) {
		j->state = JOB_DONE;
		int64_t ended = j->last.at ? j->last.at : j->last_run ? j->last_run : j->created;
		j->due = ended + SCHED_DONE_KEEP_S;
	} else {
		j->state = JOB_SCHEDULED;
		j->due = next;
	}
	return j;
}

/* The fields from jansson's tree of the document; commands is returned
 * (free()). */
static void fields_from_doc(const json_t *doc, struct job_fields *f)
{
	const json_t *spec = json_object_get(doc, "spec"), *lr = json_object_get(doc, "last_result");
	const json_t *cmds = json_object_get(doc, "commands");
	memset(f, 0, sizeof *f);
	f->owner = str_of(doc, "owner");
	f->name = str_of(doc, "name");
	f->tz = str_of(doc, "tz");
	f->at = str_of(spec, "at");
	f->cron = str_of(spec, "cron");
	f->commands = json_is_array(cmds) ? json_dumps(cmds, JSON_COMPACT) : NULL;
	f->created = str_of(doc, "created");
	f->next_run = str_of(doc, "next_run");
	f->last_run = str_of(doc, "last_run");
	f->state = str_of(doc, "state");
	if(json_is_object(lr) && (f->code = str_of(lr, "code"))) {
		f->result_at = str_of(lr, "at");
		f->result_due = str_of(lr, "due");
		f->dispatched = json_integer_value(json_object_get(lr, "dispatched"));
		f->skipped = json_integer_value(json_object_get(lr, "skipped"));
	}
}

/* A plain string member's value, NUL-terminated in place (its closing
 * quote, which the reader has passed); NULL for any other value. */
static const char *text_str(char *v, size_t len)
{
	if(v[0] != '"')
		return NULL;
	v[len - 1] = '\0';
	return v + 1;
}

static json_int_t text_int(const char *v)
{
	return *v == '-' || (*v >= '0' && *v <= '9') ? strtoll(v, NULL, 10) : 0;
}

/* last_result's fields from its value's text (an object, or anything
 * else for none); strings are terminated in place as they pass. */
static void read_result(char *v, size_t len, struct job_fields *f)
{
	struct json_text_obj o;
	const char *k, *val;
	size_t kl, vl;
	f->code = f->result_at = f->result_due = NULL;
	f->dispatched = f->skipped = 0;
	const char *at = NULL, *due = NULL, *code = NULL;
	json_int_t dispatched = 0, skipped = 0;
	json_text_object(&o, v, v + len);
	while(json_text_member(&o, &k, &kl, &val, &vl)) {
		/* The value's text is in the copy the loader owns. */
		char *w = (char *)val;
		if(JSON_TEXT_KEY_IS(k, kl, "code"))
			code = text_str(w, vl);
		else if(JSON_TEXT_KEY_IS(k, kl, "at"))
			at = text_str(w, vl);
		else if(JSON_TEXT_KEY_IS(k, kl, "due"))
			due = text_str(w, vl);
		else if(JSON_TEXT_KEY_IS(k, kl, "dispatched"))
			dispatched = text_int(val);
		else if(JSON_TEXT_KEY_IS(k, kl, "skipped"))
			skipped = text_int(val);
	}
	if(code) {
		f->code = code;
		f->result_at = at;
		f->result_due = due;
		f->dispatched = dispatched;
		f->skipped = skipped;
	}
}

/*
 * The fields from the document's text, copied into buf (len + 1 bytes),
 * where strings are terminated in place: false when the text is not plain
 * (json_text.h), and jansson must read it.  Keys repeat as jansson reads
 * them: the last one counts.
 */
static bool fields_from_text(const char *text, size_t len, char *buf, struct job_fields *f)
{
	struct json_text_obj o;
	const char *k, *val;
	size_t kl, vl;
	char *cmds_end = NULL;
	memcpy(buf, text, len);
	buf[len] = '\0';
	memset(f, 0, sizeof *f);
	json_text_object(&o, buf, buf + len);
	while(json_text_member(&o, &k, &kl, &val, &vl)) {
		char *w = (char *)val;
		if(JSON_TEXT_KEY_IS(k, kl, "owner")) {
			f->owner = text_str(w, vl);
		} else if(JSON_TEXT_KEY_IS(k, kl, "name")) {
			f->name = text_str(w, vl);
		} else if(JSON_TEXT_KEY_IS(k, kl, "tz")) {
			f->tz = text_str(w, vl);
		} else if(JSON_TEXT_KEY_IS(k, kl, "created")) {
			f->created = text_str(w, vl);
		} else if(JSON_TEXT_KEY_IS(k, kl, "next_run")) {
			f->next_run = text_str(w, vl);
		} else if(JSON_TEXT_KEY_IS(k, kl, "last_run")) {
			f->last_run = text_str(w, vl);
		} else if(JSON_TEXT_KEY_IS(k, kl, "state")) {
			f->state = text_str(w, vl);
		} else if(JSON_TEXT_KEY_IS(k, kl, "last_result")) {
			read_result(w, vl, f);
		} else if(JSON_TEXT_KEY_IS(k, kl, "commands")) {
			/* Terminated once the reading is over: the byte after it
			 * is the reader's next. */
			f->commands = w[0] == '[' ? w : NULL;
			cmds_end = w[0] == '[' ? w + vl : NULL;
		} else if(JSON_TEXT_KEY_IS(k, kl, "spec")) {
			struct json_text_obj so;
			f->at = f->cron = NULL;
			json_text_object(&so, w, w + vl);
			while(json_text_member(&so, &k, &kl, &val, &vl)) {
				if(JSON_TEXT_KEY_IS(k, kl, "at"))
					f->at = text_str((char *)val, vl);
				else if(JSON_TEXT_KEY_IS(k, kl, "cron"))
					f->cron = text_str((char *)val, vl);
			}
		}
	}
	if(o.bad)
		return false;
	if(cmds_end)
		*cmds_end = '\0';
	return true;
}

/* A job from its stored text; NULL (logged) when it is unreadable. */
static struct job *job_from_stored(struct sched_plugin *sp, const char *id, const char *text, size_t len)
{
	struct job_fields f;
	struct job *j = NULL;
	char *buf = malloc(len + 1);
	if(!buf)
		return NULL;
	if(fields_from_text(text, len, buf, &f)) {
		sp->s->loaded_plain++;
		j = job_from_fields(sp, id, &f);
		free(buf);
		return j;
	}
	free(buf);
	json_t *doc = json_loadb(text, len, 0, NULL);
	if(!json_is_object(doc)) {
		log_warn("store", "skipping unreadable job %s", id);
		json_decref(doc);
		return NULL;
	}
	fields_from_doc(doc, &f);
	j = job_from_fields(sp, id, &f);
	free((char *)f.commands);
	json_decref(doc);
	return j;
}

struct load_ctx {
	struct scheduler *s;
	struct sched_plugin *only; /* NULL: every registered module */
	size_t loaded, skipped;
};

static void load_one(const char *id, const char *module, const char *text, size_t len, void *ud)
{
	struct load_ctx *lc = ud;
	struct scheduler *s = lc->s;
	oh_ctx *ctx = plugins_find(s->h, module);
	struct sched_plugin *sp = ctx && ctx->loaded ? ctx->sched : NULL;
	if(!sp || (lc->only && lc->only != sp)) {
		if(!lc->only)
			lc->skipped++;
		return;
	}
	if(strmap_get(s->jobs, id))
		return;
	struct job *j = job_from_stored(sp, id, text, len);
	if(!j)
		return;
	int err = 0;
	if(heap_reserve(s, strmap_size(s->jobs) + 1) || owner_count(s, j->owner, +1)) {
		log_error("scheduler", "out of memory restoring job %s", id);
		free(j);
		return;
	}
	strmap_put(s->jobs, j->id, j, &err);
	if(err) {
		owner_count(s, j->owner, -1);
		log_error("scheduler", "out of memory restoring job %s", id);
		free(j);
		return;
	}
	sp->n_jobs++;
	heap_push(s, j);
	lc->loaded++;
}

static int load_jobs(struct scheduler *s, struct sched_plugin *only)
{
	if(!s->h->store)
		return OH_OK;
	struct load_ctx lc = {s, only, 0, 0};
	s->loaded_plain = 0;
	int rc = store_job_load(s->h->store, load_one, &lc);
	if(lc.loaded)
		log_info("scheduler", "restored %zu job(s)%s%s", lc.loaded, only ? " for " : "",
				only ? only->ctx->module : "");
	if(lc.skipped)
		log_warn("scheduler",
				"%zu stored job(s) belong to modules that are not loaded or do "
				"not schedule; kept in the store",
				lc.skipped);
	long max = s->h->cfg.limits.max_jobs;
	if(lc.loaded && max > 0 && strmap_size(s->jobs) > (size_t)max)
		log_warn("scheduler",
				"%zu jobs, more than limits.max_jobs (%ld): all kept, no new "
				"ones until some end",
				strmap_size(s->jobs), max);
	/* Runs missed while we were down are run or recorded as MISSED on the
	 * first loop turn, by the same code that fires on time. */
	arm(s);
	return rc;
}

int scheduler_load(struct scheduler *s)
{
	s->loaded = true;
	return load_jobs(s, NULL);
}

int sched__load_plugin(struct sched_plugin *sp)
{
	return sp->s->loaded ? load_jobs(sp->s, sp) : OH_OK;
}

/* ---- life cycle ------------------------------------------------------------------ */

int scheduler_init(struct host *h)
{
	struct scheduler *s = calloc(1, sizeof *s);
	if(!s)
		return OH_ERR_NOMEM;
	s->h = h;
	s->now = time_now_wall;
	s->jobs = strmap_new();
	s->owners = strmap_new();
	s->timer = evtimer_new(h->base, on_timer, s);
	s->watch = event_new(h->base, -1, EV_PERSIST, on_watch, s);
	s->flush = evtimer_new(h->base, on_flush, s);
	s->prep = evtimer_new(h->base, on_prep, s);
	if(!s->jobs || !s->owners || !s->timer || !s->watch || !s->flush || !s->prep) {
		h->scheduler = s;
		scheduler_free(s);
		return OH_ERR_NOMEM;
	}
	s->clock_offset = s->now() - time_now_mono();
	struct timeval sec = {1, 0};
	event_add(s->watch, &sec);
	h->scheduler = s;
	return OH_OK;
}

void scheduler_forget_plugin(struct scheduler *s, oh_ctx *ctx)
{
	struct sched_plugin *sp = ctx->sched;
	if(!s || !sp)
		return;
	scheduler_flush(s); /* while the jobs still know their module */
	struct strmap_iter it;
	strmap_iter_init(&it, s->jobs);
	void *v;
	while(strmap_iter_next(&it, NULL, &v)) {
		struct job *j = v;
		if(j->sp == sp)
			unlink_job(s, j);
	}
	free(sp);
	ctx->sched = NULL;
	arm(s);
}

size_t scheduler_count(const struct scheduler *s)
{
	return s ? strmap_size(s->jobs) : 0;
}

void scheduler_free(struct scheduler *s)
{
	if(!s)
		return;
	scheduler_flush(s);
	if(s->h && s->h->scheduler == s)
		s->h->scheduler = NULL;
	if(s->flush)
		event_free(s->flush);
	if(s->prep)
		event_free(s->prep);
	free(s->dirty);
	if(s->timer)
		event_free(s->timer);
	if(s->watch)
		event_free(s->watch);
	if(s->jobs)
		strmap_free(s->jobs, job_free_any);
	strmap_free(s->owners, NULL);
	free(s->heap);
	free(s);
}
