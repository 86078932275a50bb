/*
 * Test plugin: registers one of everything (subscription, route, repeating
 * timer, UI page, lease watcher, state), then fails init with a reason.
 * The host must refuse it with that reason, tear all of it down, and keep
 * running the other plugins.  If any registration survived, the test sees
 * it: the route answers, the command topic gets a reply, the timer ticks.
 */
#include <stdio.h>
#include <stdlib.h>

#include "oh/host.h"
#include "oh/plugin.h"

static void on_cmd(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	char topic[256];
	snprintf(topic, sizeof topic, "%s/orchestrator/%s/evt", oh_topic_root(ctx), oh_module(ctx));
	oh_publish(ctx, topic, "\"alive\"", 7, 1, false);
}

static void on_tick(oh_ctx *ctx, void *ud)
{
	char topic[256];
	snprintf(topic, sizeof topic, "%s/orchestrator/%s/evt", oh_topic_root(ctx), oh_module(ctx));
	oh_publish(ctx, topic, "\"tick\"", 6, 0, false);
}

static void get_hello(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	oh_reply_json(req, 200, json_pack("{s:s}", "hello", "from a plugin that failed"));
}

static void on_expire(oh_ctx *ctx, const char *key, const char *holder, void *ud)
{
}

static int init(oh_ctx *ctx, const json_t *settings)
{
	char filter[256];
	snprintf(filter, sizeof filter, "%s/orchestrator/%s/cmd", oh_topic_root(ctx), oh_module(ctx));
	if(oh_subscribe(ctx, filter, 1, on_cmd, NULL))
		return oh_fail(ctx, "test setup: subscribe failed");
	if(oh_route(ctx, "GET", "/hello", get_hello, NULL, NULL))
		return oh_fail(ctx, "test setup: route failed");
	if(!oh_timer_add(ctx, 20, true, on_tick, NULL))
		return oh_fail(ctx, "test setup: timer failed");
	if(oh_ui_page(ctx, "Failing", "<p>never shown</p>", NULL))
		return oh_fail(ctx, "test setup: UI page failed");
	oh_lease_on_expire(ctx, on_expire, NULL);
	/* Freed by the host after cleanup, even though init failed. */
	oh_set_data(ctx, calloc(1, 64), free);
	const char *device = json_string_value(json_object_get(settings, "device"));
	return oh_fail(ctx, "probe says no: %s is not a relay board", device ? device : "(none)");
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.name = "failing init",
		.version = "0",
		.init = init,
};

const struct oh_plugin *oh_plugin_entry(void)
{
	return &plugin;
}
