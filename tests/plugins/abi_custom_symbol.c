/*
 * Test plugin: its entry point is `my_entry`, not the default symbol, so it
 * loads only as "abi_custom_symbol.so:my_entry".  Once loaded it exercises
 * the ordinary services a plugin gets through its handle:
 *
 *   GET /api/{module}/settings       the settings object it was given
 *   GET /api/{module}/devices        ids from oh_device_foreach
 *   GET /api/{module}/devices/{id}   oh_device_get (404 when unknown)
 *   {root}/orchestrator/{module}/cmd an ack on .../evt for every message:
 *                                    OK echoing the JSON, BAD_JSON with the
 *                                    parse error for anything else
 */
#include <stdio.h>
#include <stdlib.h>

#include "oh/host.h"
#include "oh/plugin.h"

static void on_cmd(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	json_t *ack;
	if(!msg->json)
		ack = oh_ack_new(NULL, false, msg->too_large ? "TOO_LARGE" : "BAD_JSON", NULL, NULL,
				msg->error, NULL);
	else
		ack = oh_ack_new(NULL, true, "OK", "echo", NULL, NULL,
				json_pack("{s:O}", "got", (json_t *)msg->json));
	oh_ack_publish(ctx, ack);
}

static void get_settings(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	oh_reply_json(req, 200, json_deep_copy(oh_data(ctx)));
}

static int add_id(const struct oh_device *dev, void *ud)
{
	json_array_append_new(ud, json_string(dev->id));
	return 0;
}

static void get_devices(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	json_t *ids = json_array();
	oh_device_foreach(ctx, add_id, ids);
	oh_reply_json(req, 200, json_pack("{s:o}", "devices", ids));
}

static void get_device(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct oh_device dev;
	const char *id = oh_req_param(req, "id");
	if(oh_device_get(ctx, id, &dev)) {
		oh_reply_error(req, 404, "NOT_FOUND", "no device %s", id);
		return;
	}
	oh_reply_json(req, 200,
			json_pack("{s:s, s:i, s:O?}", "id", dev.id, "online", dev.online, "doc",
					(json_t *)dev.doc));
}

static void free_json(void *p)
{
	json_decref(p);
}

static int init(oh_ctx *ctx, const json_t *settings)
{
	oh_set_data(ctx, json_deep_copy(settings), free_json);
	char filter[256];
	snprintf(filter, sizeof filter, "%s/orchestrator/%s/cmd", oh_topic_root(ctx), oh_module(ctx));
	int rc = oh_subscribe(ctx, filter, 1, on_cmd, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/settings", get_settings, NULL, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/devices", get_devices, NULL, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/devices/{id}", get_device, NULL, NULL);
	if(rc)
		return oh_fail(ctx, "cannot register: %s", oh_strerror(rc));
	oh_log(ctx, OH_LOG_INFO, "custom entry point says hello");
	return OH_OK;
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.name = "custom entry symbol",
		.version = "1.2.3",
		.init = init,
};

const struct oh_plugin *my_entry(void)
{
	return &plugin;
}
