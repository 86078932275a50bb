/*
 * Routes that hold: what each device should show (source, recording), kept
 * true by the host, and presets, named sets of routes applied all or none.
 *
 * A route is desired state.  The device's module status (ndi_status.c) is
 * the observed state.  A small controller compares the two, level-triggered
 * in the style of a Kubernetes controller: whenever something that could
 * make them differ happens (the route changes, the device comes online or
 * goes away, its module status changes, a command for it fails or times
 * out), the route is queued, and the queue is drained a batch per loop turn
 * by one function, evaluate(), which looks only at the current state and
 * sends at most one command (start, set_input, stop, record_start,
 * record_stop) through ndi_dispatch(), the one road to a device, as the
 * route's owner (the device sees "actor": "orchestrator" and requested_by).
 *
 * Pitfalls this file exists to get right:
 * - one command in flight per device, and the next only once the device's
 *   status shows the last one took: an agent acks before or after it
 *   publishes its status, so a COMPLETED whose effect is not yet visible
 *   waits (settle timer) instead of sending the same command again;
 * - failures back off per device, 1 s doubling to 60 s, on that device's
 *   own timer: one device's failures never delay another's;
 * - so does a crash loop: a viewer that dies as it starts is acked and
 *   shown, then gone, over and over with no failure in sight; a route lost
 *   again within STABLE_S of converging is put right at once the first
 *   time, then as a failure (relapse());
 * - commands leave at most SEND_RATE per second (a token bucket of
 *   SEND_BURST): ten thousand devices coming back at once would otherwise
 *   put tens of thousands of commands and events in front of the host's
 *   MQTT output, and an unrelated command relayed then waited seconds
 *   behind them (make bench, scenario 8, "lost" round trips);
 * - a broker restart resends every retained status: unchanged statuses are
 *   dropped by ndi_status.c, device status messages only queue the route,
 *   and a converged route costs a comparison and publishes nothing;
 * - every change of a route's state (and every failure, with its next
 *   retry) is published as ROUTE_STATE on the module's evt topic, which the
 *   host also streams on /api/events;
 * - routes and presets are written to the host's store (oh_doc_*) before
 *   the change is acknowledged; a preset is applied in one transaction,
 *   after every device's lease was checked, so it changes all or nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oh/host.h"
#include "oh/list.h"

#include "ndi.h"

#define COLL_ROUTES "routes"
#define COLL_PRESETS "presets"
/* Caps on the tables clients grow (STYLE.md): far above a lab's devices. */
#define MAX_ROUTES 100000
#define MAX_PRESETS 1000
/* Routes evaluated per loop turn: other work runs between batches. */
#define BATCH 256
/* Commands the reconciler sends per second, and at once: each brings about
 * three messages more (COMPLETED, two ROUTE_STATE).  At 1000/s a bench run
 * still saw an unrelated relay wait over 1 s now and then on a loaded
 * machine, at 500/s none; 10,000 devices are then served in about 20 s.
 * One route change is sent at once. */
#define SEND_RATE 500.0
#define SEND_BURST 100.0
#define PACE_MS 10
/* Restored routes wait this long for the devices' retained statuses before
 * a device that said nothing is sent anything. */
#define STARTUP_GRACE_MS 3000
/* A route that held this long was not lost to a crash loop: see relapse(). */
#define STABLE_S 10.0

enum rstate {
	RS_CONVERGED,
	RS_CONVERGING,
	RS_DRIFT,
	RS_OFFLINE,
	RS_FAILED,
};

static const char *const state_names[] = {"converged", "converging", "drift", "offline", "failed"};

struct route {
	struct ndi *n;
	char *source; /* desired; NULL: none */
	bool recording;
	char *owner;
	double since;

	enum rstate state;
	bool published;      /* state published at least once */
	int online;          /* from the device's status: 1, 0, -1 unknown */
	unsigned failures;   /* in a row; 0 after converging */
	unsigned relapses;   /* lost within STABLE_S of converging, in a row */
	double converged_at; /* monotonic seconds the route last converged */
	bool completed;      /* the device acked `sent` done; cleared once it shows it */
	char *error;         /* the last failure's text, or NULL */
	double next_retry;
	double retry_in_s;         /* the backoff before next_retry */
	char req_id[40];           /* the command in flight, "" none */
	char sent[16];             /* the last command's action */
	oh_timer_id timer;         /* backoff or settle */
	bool settling;             /* timer waits for the status to follow an ack */
	struct oh_list_node qlink; /* in the queue: see queued() */
	char id[];
};

struct ndi_routes {
	struct oh_map *routes;  /* device id -> struct route (owned) */
	struct oh_map *presets; /* name -> json_t {routes, owner, since} (owned) */
	struct oh_list queue;   /* struct route, waiting for evaluate() */
	oh_timer_id pump;
	oh_timer_id grace; /* armed after start-up: see STARTUP_GRACE_MS */
	double tokens;     /* commands that may leave now (SEND_RATE) */
	double refilled;   /* monotonic seconds of the last refill */
};

static double now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static json_t *time_json(double t)
{
	char buf[32];

	return t > 0 ? json_string(oh_format_time(t, buf, sizeof buf)) : json_null();
}

/* ---- views ------------------------------------------------------------------- */

/* What the device reports: its input (NULL: none) and whether it records;
 * false when it never reported a module status. */
static bool actual_of(struct ndi *n, const char *id, const char **input, bool *recording)
{
	const json_t *st = ndi_status_get(n, id, NULL);
	const json_t *fields = json_object_get(st, "fields");

	*input = json_string_value(json_object_get(fields, "input"));
	*recording = json_is_true(json_object_get(fields, "recording"));
	return st != NULL;
}

static bool next_command(const struct route *r, char *action, size_t len, bool *with_source);

/* The state to show: a converged route whose device has since reported
 * something else is in drift until evaluate() sends the correction, which
 * SEND_RATE may hold back for seconds when many devices come back at once
 * (the route waits in the queue still marked converged). */
static enum rstate shown_state(const struct route *r)
{
	char next[16];
	bool with_source;

	if(r->state == RS_CONVERGED && next_command(r, next, sizeof next, &with_source))
		return RS_DRIFT;
	return r->state;
}

static json_t *route_json(const struct route *r)
{
	const char *input;
	bool rec;
	bool has = actual_of(r->n, r->id, &input, &rec);
	json_t *o = json_pack("{s:s, s:{s:s?, s:b}, s:o, s:s, s:o, s:s, s:i}", "device_id", r->id, "desired",
			"source", r->source, "recording", r->recording, "actual",
			has ? json_pack("{s:s?, s:b}", "source", input, "recording", rec) : json_null(),
			"owner", r->owner, "since", time_json(r->since), "state", state_names[shown_state(r)],
			"attempts", (int)r->failures);
	if(o && r->error)
		json_object_set_new(o, "error", json_string(r->error));
	if(o && r->state == RS_FAILED) {
		json_object_set_new(o, "next_retry", time_json(r->next_retry));
		json_object_set_new(o, "retry_in_s", json_real(r->retry_in_s));
	}
	return o;
}

/* ROUTE_STATE on the evt topic: ok is true when the device shows the route. */
static void publish_state(struct route *r)
{
	char rid[40];
	json_t *details = route_json(r);

	if(!details)
		return;
	oh_ack_publish(r->n->ctx,
			oh_ack_new(oh_new_id(rid, sizeof rid), r->state == RS_CONVERGED, "ROUTE_STATE",
					"route", r->owner, r->error, details));
}

/* ROUTE_STATE for a route that is gone (reason: "unroute" or "forgotten"),
 * so that a page's copy of the routes loses it without a refetch. */
static void publish_removed(struct ndi *n, const char *device_id, const char *actor, const char *reason)
{
	char rid[40];
	json_t *details = json_pack(
			"{s:s, s:s, s:s}", "device_id", device_id, "state", "removed", "reason", reason);

	if(details)
		oh_ack_publish(n->ctx,
				oh_ack_new(oh_new_id(rid, sizeof rid), true, "ROUTE_STATE", "route", actor,
						NULL, details));
}

static void set_state(struct route *r, enum rstate s)
{
	if(r->state == s && r->published)
		return;
	r->state = s;
	r->published = true;
	publish_state(r);
}

/* ---- the controller ------------------------------------------------------------ */

static bool evaluate(struct route *r);

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Whether a command may leave now (SEND_RATE); takes its token. */
static bool take_token(struct ndi_routes *rs)
{
	double now = now_mono();

	rs->tokens += (now - rs->refilled) * SEND_RATE;
	if(rs->tokens > SEND_BURST)
		rs->tokens = SEND_BURST;
	rs->refilled = now;
	if(rs->tokens < 1)
		return false;
	rs->tokens -= 1;
	return true;
}

static void pump(oh_ctx *ctx, void *ud)
{
	struct ndi_routes *rs = ud;
	unsigned ms = 0;

	rs->pump = OH_TIMER_NONE;
	for(int i = 0; i < BATCH && rs->queue.first; i++) {
		struct route *r = oh_list_entry(rs->queue.first, struct route, qlink);
		oh_list_remove(&rs->queue, &r->qlink);
		if(!evaluate(r)) {
			/* Out of tokens: first in line when they come. */
			oh_list_push_front(&rs->queue, &r->qlink);
			ms = PACE_MS;
			break;
		}
	}
	if(rs->queue.first)
		rs->pump = oh_timer_add(ctx, ms, false, pump, rs);
}

/* Whether r waits in the queue for evaluate(). */
static bool queued(const struct route *r)
{
	return oh_list_linked(&r->n->routes->queue, &r->qlink);
}

static void enqueue(struct route *r)
{
	struct ndi_routes *rs = r->n->routes;

	if(queued(r) || (rs->grace && !ndi_status_get(r->n, r->id, NULL)))
		return;
	oh_list_push_back(&rs->queue, &r->qlink);
	if(!rs->pump)
		rs->pump = oh_timer_add(r->n->ctx, 0, false, pump, rs);
}

static void timer_stop(struct route *r)
{
	oh_timer_cancel(r->n->ctx, r->timer);
	r->timer = OH_TIMER_NONE;
	r->settling = false;
}

/* The one command that brings the device closer to the route, into action
 * (and *with_source: whether it takes the route's source); false when the
 * device already shows the route. */
static bool next_command(const struct route *r, char *action, size_t len, bool *with_source)
{
	const char *input;
	bool rec;
	const char *next = NULL;

	actual_of(r->n, r->id, &input, &rec);
	*with_source = true;
	if(r->source) {
		if(!input)
			next = "start";
		else if(strcmp(input, r->source))
			next = "set_input";
		else if(r->recording && !rec)
			next = "record_start";
		else if(!r->recording && rec)
			next = "record_stop";
	} else if(input || rec) {
		next = "stop"; /* ends the viewer and the recorder */
	}
	if(!next)
		return false;
	if(!strcmp(next, "stop") || !strcmp(next, "record_stop"))
		*with_source = false;
	snprintf(action, len, "%s", next);
	return true;
}

static void on_timer(oh_ctx *ctx, void *ud);

static void fail(struct route *r, const char *why)
{
	double delay = ndi_route_backoff_s(r->failures);

	r->failures++;
	free(r->error);
	r->error = strdup(why);
	r->next_retry = now_wall() + delay;
	r->retry_in_s = delay;
	timer_stop(r);
	r->timer = oh_timer_add(r->n->ctx, (unsigned)(delay * 1000), false, on_timer, r);
	oh_log(r->n->ctx, OH_LOG_INFO, "route of %s: %s; next try in %g s", r->id, why, delay);
	/* Every failure is news: its next retry time changed. */
	r->state = RS_FAILED;
	r->published = true;
	publish_state(r);
}

static void on_done(struct ndi *n, const json_t *event, void *ud)
{
	struct route *r = ud;
	char next[16];
	bool with_source;

	r->req_id[0] = '\0';
	if(!event)
		return; /* the plugin is stopping */
	const char *code = json_string_value(json_object_get(event, "code"));
	if(code && !strcmp(code, "COMPLETED")) {
		/* Done, as far as the device says: losing it from here on is a
		 * relapse even before its status showed it (relapse()). */
		r->completed = true;
		r->converged_at = now_mono();
		/* The agent may ack before its status shows the change: the same
		 * command again would be a storm, so wait for the status. */
		if(next_command(r, next, sizeof next, &with_source) && !strcmp(next, r->sent)) {
			r->settling = true;
			r->timer = oh_timer_add(
					n->ctx, (unsigned)(n->set.ack_timeout_s * 1000), false, on_timer, r);
			return;
		}
		enqueue(r);
		return;
	}
	if(r->online == 0) {
		enqueue(r); /* it went away: offline, not a failure */
		return;
	}
	const char *err = json_string_value(json_object_get(event, "error"));
	char why[300];
	snprintf(why, sizeof why, "%s %s: %s", r->sent, code ? code : "failed", err ? err : "no reason given");
	fail(r, why);
}

static void on_timer(oh_ctx *ctx, void *ud)
{
	struct route *r = ud;
	char next[16];
	bool with_source;

	r->timer = OH_TIMER_NONE;
	if(r->settling) {
		r->settling = false;
		if(next_command(r, next, sizeof next, &with_source) && !strcmp(next, r->sent)) {
			char why[200];
			snprintf(why, sizeof why, "%s was acked but the device's status did not follow",
					r->sent);
			fail(r, why);
			return;
		}
	}
	enqueue(r);
}

/* A converged route the device no longer shows.  Lost again within
 * STABLE_S of converging, for the second time in a row, it is a crash loop
 * (or an app fighting the route): backed off as a failure, 1 s doubling,
 * instead of sent the same command as fast as the device drops it.  true:
 * backed off. */
static bool relapse(struct route *r)
{
	double held = now_mono() - r->converged_at;
	char why[200];

	/* Looked at once: a route waiting for SEND_RATE is evaluated again. */
	r->state = RS_DRIFT;
	if(held >= STABLE_S) {
		r->relapses = 0;
		return false;
	}
	if(++r->relapses < 2)
		return false;
	r->failures = r->relapses - 2;
	snprintf(why, sizeof why, "the device left the route %.1f s after it converged (%u times in a row)",
			held, r->relapses);
	fail(r, why);
	return true;
}

/* Looks at the route and the device as they are now and does the one next
 * thing: nothing, wait, or send one command.  false: a command is due but
 * SEND_RATE says not yet (the route is to be looked at again). */
static bool evaluate(struct route *r)
{
	struct ndi *n = r->n;
	char action[16];
	bool with_source;
	json_t *params, *ack = NULL;

	if(r->online == 0) {
		timer_stop(r);
		r->failures = 0;
		r->relapses = 0;
		set_state(r, RS_OFFLINE);
		return true;
	}
	if(r->req_id[0] || r->settling)
		return true;
	if(!next_command(r, action, sizeof action, &with_source)) {
		timer_stop(r);
		if(r->state != RS_CONVERGED && !r->completed)
			r->converged_at = now_mono();
		r->completed = false;
		r->failures = 0;
		free(r->error);
		r->error = NULL;
		set_state(r, RS_CONVERGED);
		return true;
	}
	if(r->timer) { /* backing off: the timer evaluates again */
		if(r->state != RS_FAILED)
			set_state(r, RS_DRIFT);
		return true;
	}
	/* Lost after converging, or after the device acked the very command
	 * due again (its running and idle statuses can arrive in one turn, so
	 * the route never looked converged in between). */
	bool lost = r->state == RS_CONVERGED || (r->completed && !strcmp(action, r->sent));
	r->completed = false;
	if(lost && relapse(r))
		return true;
	if(!take_token(n->routes))
		return false;
	params = with_source ? json_pack("{s:s}", "source", r->source) : json_object();
	oh_new_id(r->req_id, sizeof r->req_id);
	snprintf(r->sent, sizeof r->sent, "%s", action);
	int rc = params ? ndi_dispatch(n, r->id, action, params, r->owner, r->req_id, NULL, &ack)
			: OH_ERR_NOMEM;
	json_decref(params);
	if(rc == OH_OK && ndi_pending_on_done(n, r->id, r->req_id, on_done, r) == OH_OK) {
		if(r->state != RS_FAILED)
			set_state(r, RS_CONVERGING);
		json_decref(ack);
		return true;
	}
	r->req_id[0] = '\0';
	const char *err = json_string_value(json_object_get(ack, "error"));
	const char *code = json_string_value(json_object_get(ack, "code"));
	char why[300];
	snprintf(why, sizeof why, "%s %s: %s", action, code ? code : "ERROR", err ? err : oh_strerror(rc));
	json_decref(ack);
	fail(r, why);
	return true;
}

/* ---- the table ------------------------------------------------------------------ */

static void route_free(void *v)
{
	struct route *r = v;

	if(!r)
		return;
	timer_stop(r);
	if(r->req_id[0])
		ndi_pending_forget(r->n, r->id, r->req_id);
	if(queued(r))
		oh_list_remove(&r->n->routes->queue, &r->qlink);
	free(r->source);
	free(r->owner);
	free(r->error);
	free(r);
}

static int online_of(struct ndi *n, const char *id)
{
	struct oh_device dev;

	return oh_device_get(n->ctx, id, &dev) == OH_OK ? dev.online : -1;
}

/* Sets the route in memory (strings copied) and queues it.  Returns the
 * route, or NULL when out of memory. */
static struct route *route_set(struct ndi *n, const char *id, const char *source, bool recording,
		const char *owner, double since)
{
	struct ndi_routes *rs = n->routes;
	struct route *r = oh_map_get(rs->routes, id);
	char *src = source ? strdup(source) : NULL, *own = strdup(owner);

	if((source && !src) || !own)
		goto nomem;
	if(!r) {
		size_t len = strlen(id);
		r = calloc(1, sizeof *r + len + 1);
		if(!r)
			goto nomem;
		memcpy(r->id, id, len + 1);
		r->n = n;
		r->online = online_of(n, id);
		if(oh_map_put(rs->routes, id, r, NULL)) {
			free(r);
			goto nomem;
		}
	}
	free(r->source);
	free(r->owner);
	r->source = src;
	r->owner = own;
	r->recording = recording;
	r->since = since;
	/* A new route is a new start: no backoff left from the old one. */
	timer_stop(r);
	r->failures = 0;
	r->relapses = 0;
	free(r->error);
	r->error = NULL;
	r->published = false;
	/* What it will be once looked at, so the reply does not say converged
	 * for a device that shows something else. */
	char next[16];
	bool with_source;
	r->state = r->online == 0                                          ? RS_OFFLINE
			: next_command(r, next, sizeof next, &with_source) ? RS_DRIFT
									   : RS_CONVERGED;
	enqueue(r);
	return r;
nomem:
	free(src);
	free(own);
	return NULL;
}

static json_t *route_doc(const char *source, bool recording, const char *owner, double since)
{
	return json_pack("{s:s?, s:b, s:s, s:f}", "source", source, "recording", recording, "owner", owner,
			"since", since);
}

static void load_route(oh_ctx *ctx, const char *key, const json_t *doc, void *ud)
{
	struct ndi *n = ud;
	const char *owner = json_string_value(json_object_get(doc, "owner"));

	if(!oh_device_id_valid(key))
		return;
	route_set(n, key, json_string_value(json_object_get(doc, "source")),
			json_is_true(json_object_get(doc, "recording")), owner ? owner : NDI_ANONYMOUS,
			json_number_value(json_object_get(doc, "since")));
}

static void load_preset(oh_ctx *ctx, const char *key, const json_t *doc, void *ud)
{
	struct ndi *n = ud;
	json_t *copy = json_deep_copy(doc);

	if(copy && oh_map_put(n->routes->presets, key, copy, NULL))
		json_decref(copy);
}

/* {root}/device/{id}/status: whether the device is online, from its own
 * words (the registry may read the same message after this handler). */
static void on_device_status(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct ndi *n = ud;
	struct oh_topic t;
	struct route *r;

	if(oh_topic_parse(ctx, msg->topic, &t) || t.place != OH_TOPIC_DEVICE || !t.device_id[0])
		return;
	if(!(r = oh_map_get(n->routes->routes, t.device_id)))
		return;
	const json_t *online = json_object_get(msg->json, "online");
	int was = r->online;
	r->online = msg->len == 0 ? -1 : json_is_boolean(online) ? json_is_true(online) : r->online;
	/* Coming back online is a reason to look again, even when the
	 * retained module status is the one from before. */
	if(r->online != was || r->state != RS_CONVERGED)
		enqueue(r);
}

void ndi_routes_status_changed(struct ndi *n, const char *device_id)
{
	struct route *r = n->routes ? oh_map_get(n->routes->routes, device_id) : NULL;
	const json_t *st;

	if(!r)
		return;
	/* An agent stopping cleanly says so in its module status too. */
	st = ndi_status_get(n, device_id, NULL);
	if(json_is_false(json_object_get(st, "online")))
		r->online = 0;
	else if(st && r->online == 0)
		r->online = 1;
	/* The status the settle timer waits for. */
	if(r->settling)
		timer_stop(r);
	enqueue(r);
}

static int enqueue_one(const char *key, void *value, void *ud)
{
	enqueue(value);
	return 0;
}

static void grace_over(oh_ctx *ctx, void *ud)
{
	struct ndi_routes *rs = ud;

	rs->grace = OH_TIMER_NONE;
	oh_map_foreach(rs->routes, enqueue_one, NULL);
}

static int load_docs(struct ndi *n)
{
	int rc = oh_doc_load(n->ctx, COLL_ROUTES, load_route, n);
	if(!rc)
		rc = oh_doc_load(n->ctx, COLL_PRESETS, load_preset, n);
	if(!rc && oh_map_size(n->routes->routes))
		oh_log(n->ctx, OH_LOG_INFO, "%zu route(s) and %zu preset(s) restored",
				oh_map_size(n->routes->routes), oh_map_size(n->routes->presets));
	return rc;
}

void ndi_routes_took_lead(struct ndi *n)
{
	int rc = load_docs(n);
	/* Each route loaded is queued by route_set(): at once, as the registry
	 * is warm (a standby reads the device topics), unless the start-up
	 * grace still waits for the retained statuses (enqueue()). */
	if(rc)
		oh_log(n->ctx, OH_LOG_ERROR, "cannot load routes and presets: %s", oh_strerror(rc));
}

int ndi_routes_start(struct ndi *n)
{
	oh_ctx *ctx = n->ctx;
	char topic[512];
	int rc;

	n->routes = calloc(1, sizeof *n->routes);
	if(!n->routes || !(n->routes->routes = oh_map_new()) || !(n->routes->presets = oh_map_new()))
		return OH_ERR_NOMEM;
	/* After a restart the broker resends each device's retained status:
	 * the routes of those devices are evaluated as their status comes, the
	 * rest once the grace is over, so nothing is sent on a stale view. */
	n->routes->grace = oh_timer_add(ctx, STARTUP_GRACE_MS, false, grace_over, n->routes);
	n->routes->tokens = SEND_BURST;
	n->routes->refilled = now_mono();
	rc = load_docs(n);
	if(rc)
		return oh_fail(ctx, "cannot load routes and presets: %s", oh_strerror(rc));
	snprintf(topic, sizeof topic, "%s/device/+/status", oh_topic_root(ctx));
	rc = oh_subscribe(ctx, topic, 0, on_device_status, n);
	if(rc)
		return oh_fail(ctx, "cannot subscribe to %s: %s", topic, oh_strerror(rc));
	return OH_OK;
}

static void preset_free(void *v)
{
	json_decref(v);
}

void ndi_routes_free(struct ndi *n)
{
	struct ndi_routes *rs = n->routes;

	if(!rs)
		return;
	oh_timer_cancel(n->ctx, rs->pump);
	oh_timer_cancel(n->ctx, rs->grace);
	if(rs->routes)
		oh_map_free(rs->routes, route_free);
	if(rs->presets)
		oh_map_free(rs->presets, preset_free);
	free(rs);
	n->routes = NULL;
}

void ndi_routes_forget(struct ndi *n, const char *device_id)
{
	struct route *r = n->routes ? oh_map_remove(n->routes->routes, device_id) : NULL;

	if(!r)
		return;
	oh_doc_delete(n->ctx, COLL_ROUTES, device_id);
	route_free(r);
	publish_removed(n, device_id, "orchestrator", "forgotten");
}

/* ---- actions: route, unroute, apply_preset, preset put/delete ------------------ */

/* The one place for their acks; details taken. */
static json_t *ack(const char *req_id, const char *code, const char *action, const char *actor,
		const char *error, json_t *details)
{
	char rid[40];

	/* REST's preset routes take req_id from the body, where it is optional. */
	if(!req_id || !*req_id)
		req_id = oh_new_id(rid, sizeof rid);
	return oh_ack_new(req_id, ndi_code_ok(code), code, action, actor, error, details);
}

/*
 * The one place route and preset changes are recorded, once stored: in
 * the host's audit trail (kind "route"; docs/audit.md) and the log.
 */
static void audit(struct ndi *n, const char *actor, const char *what, const char *device_id, const char *preset)
{
	json_t *detail = preset ? json_pack("{s:s}", "preset", preset) : NULL;
	struct oh_audit_record r = {.kind = "route",
			.action = what,
			.actor = actor,
			.device_id = device_id,
			.detail = detail,
			.latency_ms = -1};

	oh_audit_record(n->ctx, &r);
	json_decref(detail);
	oh_log(n->ctx, OH_LOG_INFO, "%s %s by %s", what, preset ? preset : device_id, actor);
}

/* NULL when actor may drive device_id, else the holder's name (in buf). */
static const char *held_by_other(struct ndi *n, const char *device_id, const char *actor, char *buf, size_t len)
{
	char key[128];
	struct oh_lease l;

	ndi_lease_key(n, device_id, key, sizeof key);
	if(oh_lease_can_use(n->ctx, key, actor, &l) != OH_ERR_IN_USE)
		return NULL;
	snprintf(buf, len, "%s", l.holder);
	return buf;
}

static json_t *in_use(const char *req_id, const char *action, const char *actor, json_t *devices)
{
	char err[300];
	size_t i;
	json_t *d;
	int off = snprintf(err, sizeof err, "reserved by someone else:");

	json_array_foreach(devices, i, d)
	{
		if(off > 0 && (size_t)off < sizeof err)
			off += snprintf(err + off, sizeof err - off, "%s %s (%s)", i ? "," : "",
					json_string_value(json_object_get(d, "device_id")),
					json_string_value(json_object_get(d, "holder")));
	}
	return ack(req_id, "IN_USE", action, actor, err, json_pack("{s:o}", "devices", devices));
}

static json_t *limit(struct ndi *n, const char *req_id, const char *action, const char *actor,
		const char *what, long value)
{
	char err[120];

	oh_metric_count(n->ctx, "route_refusals_total{limit}", what, 1);
	snprintf(err, sizeof err, "%s (%ld) reached", what, value);
	return ack(req_id, "LIMIT", action, actor, err,
			json_pack("{s:s, s:I}", "limit", what, "value", (json_int_t)value));
}

static json_t *store_failed(const char *req_id, const char *action, const char *actor, int rc)
{
	char err[160];

	snprintf(err, sizeof err, "cannot store the change: %s; nothing changed", oh_strerror(rc));
	return ack(req_id, "ERROR", action, actor, err, NULL);
}

json_t *ndi_route_put(struct ndi *n, const char *req_id, const char *actor, const char *device_id,
		const json_t *params)
{
	const char *source = json_string_value(json_object_get(params, "source"));
	bool recording = json_is_true(json_object_get(params, "recording"));
	char holder[128];
	double since = now_wall();
	json_t *doc;
	int rc;

	if(recording && !source)
		return ack(req_id, "BAD_REQUEST", "route", actor, "recording: true needs a source to record",
				json_pack("{s:s, s:s}", "field", "recording", "device_id", device_id));
	if(held_by_other(n, device_id, actor, holder, sizeof holder))
		return in_use(req_id, "route", actor,
				json_pack("[{s:s, s:s}]", "device_id", device_id, "holder", holder));
	if(!oh_map_get(n->routes->routes, device_id) && oh_map_size(n->routes->routes) >= MAX_ROUTES)
		return limit(n, req_id, "route", actor, "max_routes", MAX_ROUTES);
	doc = route_doc(source, recording, actor, since);
	rc = doc ? oh_doc_put(n->ctx, COLL_ROUTES, device_id, doc) : OH_ERR_NOMEM;
	json_decref(doc);
	if(rc)
		return store_failed(req_id, "route", actor, rc);
	audit(n, actor, "route", device_id, NULL);
	struct route *r = route_set(n, device_id, source, recording, actor, since);
	return ack(req_id, "OK", "route", actor, NULL, r ? route_json(r) : NULL);
}

json_t *ndi_route_delete(struct ndi *n, const char *req_id, const char *actor, const char *device_id)
{
	char holder[128], err[160];
	int rc;

	if(!oh_map_get(n->routes->routes, device_id)) {
		snprintf(err, sizeof err, "%s has no route", device_id);
		return ack(req_id, "NOT_FOUND", "unroute", actor, err,
				json_pack("{s:s}", "device_id", device_id));
	}
	if(held_by_other(n, device_id, actor, holder, sizeof holder))
		return in_use(req_id, "unroute", actor,
				json_pack("[{s:s, s:s}]", "device_id", device_id, "holder", holder));
	rc = oh_doc_delete(n->ctx, COLL_ROUTES, device_id);
	if(rc)
		return store_failed(req_id, "unroute", actor, rc);
	audit(n, actor, "unroute", device_id, NULL);
	route_free(oh_map_remove(n->routes->routes, device_id));
	publish_removed(n, device_id, actor, "unroute");
	/* The device is left as it is: without a route, it is the apps'. */
	return ack(req_id, "OK", "unroute", actor, NULL, json_pack("{s:s}", "device_id", device_id));
}

json_t *ndi_route_get(struct ndi *n, const char *device_id)
{
	struct route *r = oh_map_get(n->routes->routes, device_id);

	return r ? route_json(r) : NULL;
}

static int collect(const char *key, void *value, void *ud)
{
	json_array_append_new(ud, route_json(value));
	return 0;
}

static int by_device(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

	return strcmp(json_string_value(json_object_get(x, "device_id")),
			json_string_value(json_object_get(y, "device_id")));
}

json_t *ndi_routes_list(struct ndi *n)
{
	json_t *list = json_array();
	size_t count;

	if(!list)
		return NULL;
	oh_map_foreach(n->routes->routes, collect, list);
	/* Sorted by device id: a stable page and stable diffs. */
	count = json_array_size(list);
	json_t **items = malloc((count ? count : 1) * sizeof *items);
	if(items) {
		for(size_t i = 0; i < count; i++)
			items[i] = json_incref(json_array_get(list, i));
		qsort(items, count, sizeof *items, by_device);
		json_array_clear(list);
		for(size_t i = 0; i < count; i++)
			json_array_append_new(list, items[i]);
		free(items);
	}
	return json_pack("{s:o}", "routes", list);
}

/* ---- presets -------------------------------------------------------------------- */

static json_t *preset_json(const char *name, const json_t *p)
{
	return json_pack("{s:s, s:O, s:O?, s:o}", "name", name, "routes", json_object_get(p, "routes"),
			"owner", json_object_get(p, "owner"), "since",
			time_json(json_number_value(json_object_get(p, "since"))));
}

json_t *ndi_preset_get(struct ndi *n, const char *name)
{
	const json_t *p = oh_map_get(n->routes->presets, name);

	return p ? preset_json(name, p) : NULL;
}

static int collect_preset(const char *key, void *value, void *ud)
{
	json_array_append_new(ud, preset_json(key, value));
	return 0;
}

json_t *ndi_presets_list(struct ndi *n)
{
	json_t *list = json_array();

	if(!list)
		return NULL;
	oh_map_foreach(n->routes->presets, collect_preset, list);
	return json_pack("{s:o}", "presets", list);
}

json_t *ndi_preset_put(
		struct ndi *n, const char *req_id, const char *actor, const char *name, const json_t *routes)
{
	const char *dev;
	const json_t *v;
	json_t *doc, *norm = json_object();
	int rc;

	if(!norm)
		return NULL;
	json_object_foreach((json_t *)routes, dev, v)
	{
		const char *source = json_string_value(json_object_get(v, "source"));
		bool recording = json_is_true(json_object_get(v, "recording"));
		if(recording && !source) {
			char err[160];
			snprintf(err, sizeof err, "routes.%s.recording: true needs a source to record", dev);
			json_decref(norm);
			return ack(req_id, "BAD_REQUEST", "preset", actor, err,
					json_pack("{s:s}", "field", err));
		}
		json_object_set_new(norm, dev,
				json_pack("{s:s?, s:b}", "source", source, "recording", recording));
	}
	if(!oh_map_get(n->routes->presets, name) && oh_map_size(n->routes->presets) >= MAX_PRESETS) {
		json_decref(norm);
		return limit(n, req_id, "preset", actor, "max_presets", MAX_PRESETS);
	}
	doc = json_pack("{s:o, s:s, s:f}", "routes", norm, "owner", actor, "since", now_wall());
	rc = doc ? oh_doc_put(n->ctx, COLL_PRESETS, name, doc) : OH_ERR_NOMEM;
	if(rc) {
		json_decref(doc);
		return store_failed(req_id, "preset", actor, rc);
	}
	audit(n, actor, "preset_put", NULL, name);
	json_t *old = NULL;
	if(oh_map_put(n->routes->presets, name, doc, (void **)&old)) {
		json_decref(doc);
		return NULL;
	}
	json_decref(old);
	return ack(req_id, "OK", "preset", actor, NULL, preset_json(name, doc));
}

json_t *ndi_preset_delete(struct ndi *n, const char *req_id, const char *actor, const char *name)
{
	char err[160];
	int rc;

	if(!oh_map_get(n->routes->presets, name)) {
		snprintf(err, sizeof err, "no preset named %s", name);
		return ack(req_id, "NOT_FOUND", "preset", actor, err, json_pack("{s:s}", "name", name));
	}
	rc = oh_doc_delete(n->ctx, COLL_PRESETS, name);
	if(rc)
		return store_failed(req_id, "preset", actor, rc);
	json_decref(oh_map_remove(n->routes->presets, name));
	audit(n, actor, "preset_delete", NULL, name);
	return ack(req_id, "OK", "preset", actor, NULL, json_pack("{s:s}", "name", name));
}

json_t *ndi_preset_apply(struct ndi *n, const char *req_id, const char *actor, const char *name)
{
	const json_t *p = oh_map_get(n->routes->presets, name);
	const json_t *routes = json_object_get(p, "routes"), *v;
	const char *dev;
	char holder[128], err[160];
	json_t *held = json_array();
	size_t added = 0;
	double since = now_wall();
	int rc;

	if(!held)
		return NULL;
	if(!p) {
		json_decref(held);
		snprintf(err, sizeof err, "no preset named %s", name);
		return ack(req_id, "NOT_FOUND", "apply_preset", actor, err, json_pack("{s:s}", "name", name));
	}
	/* All or nothing: every lease is checked before anything is written. */
	json_object_foreach((json_t *)routes, dev, v)
	{
		if(held_by_other(n, dev, actor, holder, sizeof holder))
			json_array_append_new(
					held, json_pack("{s:s, s:s}", "device_id", dev, "holder", holder));
		if(!oh_map_get(n->routes->routes, dev))
			added++;
	}
	if(json_array_size(held))
		return in_use(req_id, "apply_preset", actor, held);
	json_decref(held);
	if(oh_map_size(n->routes->routes) + added > MAX_ROUTES)
		return limit(n, req_id, "apply_preset", actor, "max_routes", MAX_ROUTES);
	rc = oh_doc_begin(n->ctx);
	if(rc)
		return store_failed(req_id, "apply_preset", actor, rc);
	json_object_foreach((json_t *)routes, dev, v)
	{
		const char *source = json_string_value(json_object_get(v, "source"));
		json_t *doc = route_doc(source, json_is_true(json_object_get(v, "recording")), actor, since);
		int wrc = doc ? oh_doc_put(n->ctx, COLL_ROUTES, dev, doc) : OH_ERR_NOMEM;
		json_decref(doc);
		if(wrc && !rc)
			rc = wrc;
	}
	int crc = oh_doc_commit(n->ctx);
	if(rc || crc) {
		/* Not everything was written: none of it is shown either.  A failed
		 * put inside still commits the others, so take them back. */
		if(!crc) {
			oh_doc_begin(n->ctx);
			json_object_foreach((json_t *)routes, dev, v)
			{
				struct route *r = oh_map_get(n->routes->routes, dev);
				json_t *doc = r ? route_doc(r->source, r->recording, r->owner, r->since) : NULL;
				if(doc)
					oh_doc_put(n->ctx, COLL_ROUTES, dev, doc);
				else
					oh_doc_delete(n->ctx, COLL_ROUTES, dev);
				json_decref(doc);
			}
			oh_doc_commit(n->ctx);
		}
		return store_failed(req_id, "apply_preset", actor, rc ? rc : crc);
	}
	audit(n, actor, "apply_preset", NULL, name);
	json_object_foreach((json_t *)routes, dev, v)
	{
		route_set(n, dev, json_string_value(json_object_get(v, "source")),
				json_is_true(json_object_get(v, "recording")), actor, since);
	}
	return ack(req_id, "OK", "apply_preset", actor, NULL,
			json_pack("{s:s, s:i}", "name", name, "routes", (int)json_object_size(routes)));
}
