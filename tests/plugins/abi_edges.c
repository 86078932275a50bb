/*
 * Test plugin: the ABI's edges a careless plugin reaches, each answered by
 * the host without harm.
 *
 *   timers  A one-shot timer fires (the host ends it before the callback),
 *           and the plugin then cancels the stale handle, from inside the
 *           callback, after adding a new timer (which a reused address would
 *           have cancelled instead), and again later; a repeating timer is
 *           cancelled twice.  GET /api/{module}/timers reports what fired.
 *   leases  GET /api/{module}/leases calls the lease API with no actor, no
 *           key, and NaN, infinite and huge durations, and reports each
 *           result ("invalid argument" expected), plus the controls.
 *   spawn   GET /api/{module}/spawn?max=N&bytes=M runs `head -c M
 *           /dev/zero` collecting at most N bytes (N may be "SIZE_MAX"),
 *           or with text=T `printf %s T`, and answers {status, len, text}.
 *   block   GET /api/{module}/block?after_ms=A&ms=M answers at once, then
 *           after A ms holds the loop for M ms from a timer callback, so a
 *           test can make things (a signal, a request) arrive together.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oh/host.h"
#include "oh/plugin.h"

struct state {
	oh_timer_id first, second, check, rep;
	int first_fired, second_fired, rep_ticks, checked;
};

static void on_second(oh_ctx *ctx, void *ud)
{
	struct state *st = oh_data(ctx);
	st->second_fired++;
	/* Its own, already ended, handle. */
	oh_timer_cancel(ctx, st->second);
}

static void on_first(oh_ctx *ctx, void *ud)
{
	struct state *st = oh_data(ctx);
	st->first_fired++;
	/* A new timer first: with handles that were addresses, it would likely
	 * take the fired timer's memory, and the stale cancel below would end
	 * it instead of doing nothing. */
	st->second = oh_timer_add(ctx, 30, false, on_second, NULL);
	oh_timer_cancel(ctx, st->first);
	oh_timer_cancel(ctx, st->first);
}

static void on_rep(oh_ctx *ctx, void *ud)
{
	struct state *st = oh_data(ctx);
	if(++st->rep_ticks == 3) {
		oh_timer_cancel(ctx, st->rep); /* live: ends it */
		oh_timer_cancel(ctx, st->rep); /* stale */
	}
}

static void on_check(oh_ctx *ctx, void *ud)
{
	struct state *st = oh_data(ctx);
	/* Everything ended by now; none of these may touch anything. */
	oh_timer_cancel(ctx, st->first);
	oh_timer_cancel(ctx, st->second);
	oh_timer_cancel(ctx, st->rep);
	oh_timer_cancel(ctx, st->check);
	oh_timer_cancel(ctx, OH_TIMER_NONE);
	st->checked++;
}

static void get_timers(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct state *st = oh_data(ctx);
	oh_reply_json(req, 200,
			json_pack("{s:i, s:i, s:i, s:i}", "first_fired", st->first_fired, "second_fired",
					st->second_fired, "rep_ticks", st->rep_ticks, "checked", st->checked));
}

static void put(json_t *out, const char *name, int rc)
{
	json_object_set_new(out, name, json_string(oh_strerror(rc)));
}

static void get_leases(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	char key[128];
	snprintf(key, sizeof key, "%s:dev", oh_module(ctx));
	struct oh_lease l;
	json_t *out = json_object();
	put(out, "own_take", oh_lease_take(ctx, key, "alice", 60, &l));
	put(out, "bad_renew_no_actor", oh_lease_renew(ctx, key, NULL, 60, &l));
	put(out, "bad_release_no_actor", oh_lease_release(ctx, key, NULL, &l));
	put(out, "bad_take_no_actor", oh_lease_take(ctx, key, NULL, 60, &l));
	put(out, "bad_take_no_key", oh_lease_take(ctx, NULL, "alice", 60, &l));
	put(out, "bad_can_use_no_key", oh_lease_can_use(ctx, NULL, "alice", &l));
	put(out, "bad_get_no_key", oh_lease_get(ctx, NULL, &l));
	put(out, "bad_take_nan", oh_lease_take(ctx, key, "alice", NAN, &l));
	put(out, "bad_take_inf", oh_lease_take(ctx, key, "alice", INFINITY, &l));
	put(out, "bad_take_huge", oh_lease_take(ctx, key, "alice", 1e300, &l));
	put(out, "bad_take_over_max", oh_lease_take(ctx, key, "alice", OH_LEASE_MAX_S * 2, &l));
	put(out, "bad_take_zero", oh_lease_take(ctx, key, "alice", 0, &l));
	put(out, "bad_renew_nan", oh_lease_renew(ctx, key, "alice", NAN, &l));
	put(out, "bad_renew_huge", oh_lease_renew(ctx, key, "alice", 1e300, &l));
	put(out, "own_get", oh_lease_get(ctx, key, &l));
	json_object_set_new(out, "holder", json_string(l.holder));
	json_object_set_new(out, "remaining_s", json_real(l.remaining_s));
	put(out, "own_renew", oh_lease_renew(ctx, key, "alice", 30, &l));
	put(out, "own_release", oh_lease_release(ctx, key, "alice", &l));
	oh_reply_json(req, 200, out);
}

struct spawn_req {
	struct oh_http_req *req; /* NULL once the client left */
};

static void spawn_gone(struct oh_http_req *req, void *ud)
{
	struct spawn_req *sr = ud;
	sr->req = NULL;
}

static void spawn_done(oh_ctx *ctx, int status, bool timed_out, const char *output, size_t len, void *ud)
{
	struct spawn_req *sr = ud;
	if(sr->req) {
		oh_req_on_gone(sr->req, NULL, NULL);
		/* The text only when it is printable (printf's); else its length. */
		bool text = len < 1000 && strlen(output) == len;
		oh_reply_json(sr->req, 200,
				json_pack("{s:i, s:b, s:I, s:s?}", "status", status, "timed_out", timed_out,
						"len", (json_int_t)len, "text", text ? output : NULL));
	}
	free(sr);
}

static void get_spawn(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	const char *max_s = oh_req_query(req, "max");
	const char *bytes = oh_req_query(req, "bytes");
	const char *text = oh_req_query(req, "text");
	size_t max = !max_s ? 0 : !strcmp(max_s, "SIZE_MAX") ? SIZE_MAX : (size_t)strtoull(max_s, NULL, 10);
	char *zero_argv[] = {"head", "-c", (char *)(bytes ? bytes : "0"), "/dev/zero", NULL};
	char *text_argv[] = {"printf", "%s", (char *)(text ? text : ""), NULL};
	struct spawn_req *sr = calloc(1, sizeof *sr);
	if(!sr) {
		oh_reply_error(req, 500, "ERROR", "out of memory");
		return;
	}
	sr->req = req;
	int rc = oh_spawn(ctx, text ? text_argv : zero_argv, 10000, max, spawn_done, sr);
	if(rc) {
		free(sr);
		oh_reply_error(req, 500, "ERROR", "spawn: %s", oh_strerror(rc));
		return;
	}
	oh_req_on_gone(req, spawn_gone, sr);
}

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void on_block(oh_ctx *ctx, void *ud)
{
	/* Signals interrupt a sleep: sleep until the deadline, however often. */
	double until = mono_ms() + (double)(uintptr_t)ud;
	/* What a test waits for before it signals the blocked host. */
	oh_log(ctx, OH_LOG_INFO, "abi_edges: holding the loop for %lu ms", (unsigned long)(uintptr_t)ud);
	while(mono_ms() < until) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void get_block(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	const char *after = oh_req_query(req, "after_ms"), *ms = oh_req_query(req, "ms");
	uintptr_t hold = ms ? (uintptr_t)strtoul(ms, NULL, 10) : 0;
	if(!oh_timer_add(ctx, after ? (unsigned)strtoul(after, NULL, 10) : 0, false, on_block, (void *)hold)) {
		oh_reply_error(req, 500, "ERROR", "cannot add the timer");
		return;
	}
	oh_reply_json(req, 200, json_pack("{s:b}", "armed", 1));
}

static int init(oh_ctx *ctx, const json_t *settings)
{
	struct state *st = calloc(1, sizeof *st);
	if(!st)
		return OH_ERR_NOMEM;
	oh_set_data(ctx, st, free);
	int rc = oh_route(ctx, "GET", "/timers", get_timers, NULL, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/leases", get_leases, NULL, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/spawn", get_spawn, NULL, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/block", get_block, NULL, NULL);
	if(rc)
		return oh_fail(ctx, "cannot register: %s", oh_strerror(rc));
	st->first = oh_timer_add(ctx, 10, false, on_first, NULL);
	st->rep = oh_timer_add(ctx, 10, true, on_rep, NULL);
	st->check = oh_timer_add(ctx, 300, false, on_check, NULL);
	if(!st->first || !st->rep || !st->check)
		return oh_fail(ctx, "cannot add timers");
	return OH_OK;
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.name = "ABI edges",
		.version = "0",
		.init = init,
};

const struct oh_plugin *oh_plugin_entry(void)
{
	return &plugin;
}
