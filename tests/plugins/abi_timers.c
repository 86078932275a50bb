/*
 * Test plugin: holds live registrations of every kind when it is unloaded
 * at run time (DELETE /api/plugins/{module}), so the test can check the
 * host tore each one down before closing the shared object:
 *
 *   a repeating 20 ms timer     publishes "tick" events; GET .../ticks counts
 *   a one-shot timer            an hour away, still pending at unload
 *   {root}/orchestrator/{m}/cmd answered with a "pong" event
 *   {root}/device/+/meta        a filter the core's registry also uses, so
 *                               the broker subscription must survive
 *   GET /api/{m}/wait           never answered by the plugin: a deferred
 *                               request left open, with an on_gone callback
 *   a lease watcher and a UI page
 *
 * cleanup() publishes "bye" and then the state's free function runs; both
 * append a line to settings.marker so the order is visible from outside.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/host.h"
#include "oh/plugin.h"

struct state {
	unsigned long ticks;
	unsigned long meta_seen;
	char marker[512];
	char evt[256];
};

static void mark(const struct state *st, const char *what)
{
	if(!st->marker[0])
		return;
	FILE *f = fopen(st->marker, "a");
	if(f) {
		fprintf(f, "%s\n", what);
		fclose(f);
	}
}

static void free_state(void *p)
{
	mark(p, "free");
	free(p);
}

static void on_tick(oh_ctx *ctx, void *ud)
{
	struct state *st = oh_data(ctx);
	st->ticks++;
	char text[64];
	int n = snprintf(text, sizeof text, "{\"tick\":%lu}", st->ticks);
	oh_publish(ctx, st->evt, text, (size_t)n, 0, false);
}

static void on_never(oh_ctx *ctx, void *ud)
{
	oh_log(ctx, OH_LOG_ERROR, "the one-shot timer fired");
}

static void on_cmd(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct state *st = oh_data(ctx);
	oh_publish(ctx, st->evt, "\"pong\"", 6, 1, false);
}

static void on_meta(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct state *st = oh_data(ctx);
	st->meta_seen++;
}

static void get_ticks(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct state *st = oh_data(ctx);
	oh_reply_json(req, 200,
			json_pack("{s:I, s:I}", "ticks", (json_int_t)st->ticks, "meta_seen",
					(json_int_t)st->meta_seen));
}

static void wait_gone(struct oh_http_req *req, void *ud)
{
	/* Must never run after unload: the host answers the request itself. */
	fprintf(stderr, "abi_timers: on_gone ran\n");
}

static void get_wait(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	oh_req_on_gone(req, wait_gone, NULL);
	/* What the test waits for before it unloads the plugin. */
	oh_log(ctx, OH_LOG_INFO, "abi_timers: holding a wait request");
}

static void on_expire(oh_ctx *ctx, const char *key, const char *holder, void *ud)
{
}

static int init(oh_ctx *ctx, const json_t *settings)
{
	struct state *st = calloc(1, sizeof *st);
	if(!st)
		return OH_ERR_NOMEM;
	oh_set_data(ctx, st, free_state);
	const char *marker = json_string_value(json_object_get(settings, "marker"));
	snprintf(st->marker, sizeof st->marker, "%s", marker ? marker : "");
	snprintf(st->evt, sizeof st->evt, "%s/orchestrator/%s/evt", oh_topic_root(ctx), oh_module(ctx));

	char filter[256];
	snprintf(filter, sizeof filter, "%s/orchestrator/%s/cmd", oh_topic_root(ctx), oh_module(ctx));
	int rc = oh_subscribe(ctx, filter, 1, on_cmd, NULL);
	snprintf(filter, sizeof filter, "%s/device/+/meta", oh_topic_root(ctx));
	if(!rc)
		rc = oh_subscribe(ctx, filter, 1, on_meta, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/ticks", get_ticks, NULL, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/wait", get_wait, NULL, NULL);
	if(!rc)
		rc = oh_ui_page(ctx, "Timers", "<p>ticks</p>", "console.log('ticks');");
	if(!rc)
		rc = oh_lease_on_expire(ctx, on_expire, NULL);
	if(rc)
		return oh_fail(ctx, "cannot register: %s", oh_strerror(rc));
	if(!oh_timer_add(ctx, 20, true, on_tick, NULL) ||
			!oh_timer_add(ctx, 3600 * 1000, false, on_never, NULL))
		return oh_fail(ctx, "cannot add timers");
	return OH_OK;
}

static void cleanup(oh_ctx *ctx)
{
	struct state *st = oh_data(ctx);
	/* Registrations still work here: say goodbye. */
	oh_publish(ctx, st->evt, "\"bye\"", 5, 1, false);
	mark(st, "cleanup");
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.name = "live timers at unload",
		.version = "0",
		.init = init,
		.cleanup = cleanup,
};

const struct oh_plugin *oh_plugin_entry(void)
{
	return &plugin;
}
