/*
 * Test plugin: tries to step outside its module's namespace and reports
 * what the host answered.  GET /api/{module}/probe runs every attempt and
 * returns {"attempt": {"rc": n, "error": "..."}, ...}: the ones named
 * "bad_*" must be refused, the "own_*" controls must pass.  Subscriptions
 * are tried in init too (GET /api/{module}/init shows those results), since
 * plugins usually subscribe there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/host.h"
#include "oh/plugin.h"

static void put(json_t *out, const char *name, int rc)
{
	json_object_set_new(out, name, json_pack("{s:i, s:s}", "rc", rc, "error", oh_strerror(rc)));
}

static void on_msg(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
}

static void get_probe(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	const char *root = oh_topic_root(ctx);
	const char *me = oh_module(ctx);
	json_t *out = json_object();
	char topic[256], key[128];
	struct oh_lease lease;

	/* Another module's command topic, another module's device topic, a
	 * topic outside the root, the registry snapshot itself. */
	snprintf(topic, sizeof topic, "%s/orchestrator/ndi/cmd", root);
	put(out, "bad_publish_other_module", oh_publish(ctx, topic, "{}", 2, 1, false));
	snprintf(topic, sizeof topic, "%s/device/rpi-01/ndi/cmd", root);
	put(out, "bad_publish_other_device_module", oh_publish(ctx, topic, "{}", 2, 1, false));
	put(out, "bad_publish_outside_root", oh_publish(ctx, "/elsewhere/x", "{}", 2, 1, false));
	snprintf(topic, sizeof topic, "%s/orchestrator/registry", root);
	put(out, "bad_publish_registry", oh_publish(ctx, topic, "{}", 2, 1, false));
	/* A prefix of our own name is not our name. */
	snprintf(topic, sizeof topic, "%s/orchestrator/%sx/evt", root, me);
	put(out, "bad_publish_longer_name", oh_publish(ctx, topic, "{}", 2, 1, false));

	/* A device level that is no device id is no device's topic. */
	snprintf(topic, sizeof topic, "%s/device/../%s/cmd", root, me);
	put(out, "bad_publish_device_bad_id", oh_publish(ctx, topic, "{}", 2, 1, false));
	snprintf(topic, sizeof topic, "%s/device//%s/cmd", root, me);
	put(out, "bad_publish_device_empty_id", oh_publish(ctx, topic, "{}", 2, 1, false));

	/* The host's topic grammar, through the ABI. */
	struct oh_topic t;
	snprintf(topic, sizeof topic, "%s/device/rpi-01/%s/evt", root, me);
	int rc = oh_topic_parse(ctx, topic, &t);
	if(!rc &&
			(t.place != OH_TOPIC_DEVICE || strcmp(t.device_id, "rpi-01") || !t.module ||
					t.module_len != strlen(me) || strncmp(t.module, me, t.module_len) ||
					!t.leaf || strcmp(t.leaf, "evt")))
		rc = OH_ERR_INVAL; /* parsed, but not into these parts */
	put(out, "own_topic_parse_device", rc);
	snprintf(topic, sizeof topic, "%s/orchestrator/%s/cmd", root, me);
	rc = oh_topic_parse(ctx, topic, &t);
	if(!rc && (t.place != OH_TOPIC_ORCHESTRATOR || t.device_id[0] || !t.leaf || strcmp(t.leaf, "cmd")))
		rc = OH_ERR_INVAL;
	put(out, "own_topic_parse_orchestrator", rc);
	rc = oh_topic_parse(ctx, "/elsewhere/device/x/meta", &t);
	put(out, "own_topic_parse_outside", rc ? rc : t.place == OH_TOPIC_OTHER ? OH_OK : OH_ERR_INVAL);
	snprintf(topic, sizeof topic, "%s/device/rpi-01//evt", root);
	put(out, "bad_topic_parse_empty_level", oh_topic_parse(ctx, topic, &t));
	snprintf(topic, sizeof topic, "%s/device/+/%s/evt", root, me);
	put(out, "bad_topic_parse_wildcard_id", oh_topic_parse(ctx, topic, &t));

	/* Subscriptions must stay under the topic root. */
	put(out, "bad_subscribe_all", oh_subscribe(ctx, "#", 0, on_msg, NULL));
	put(out, "bad_subscribe_outside_root", oh_subscribe(ctx, "/elsewhere/#", 0, on_msg, NULL));

	/* Lease keys of another module, or not "{module}:..." at all. */
	put(out, "bad_lease_take_other", oh_lease_take(ctx, "ndi:rpi-01", "abi-test", 60, &lease));
	put(out, "bad_lease_renew_other", oh_lease_renew(ctx, "ndi:rpi-01", "abi-test", 60, &lease));
	put(out, "bad_lease_release_other", oh_lease_release(ctx, "ndi:rpi-01", "abi-test", &lease));
	put(out, "bad_lease_force_other", oh_lease_force_release(ctx, "ndi:rpi-01", &lease));
	put(out, "bad_lease_no_colon", oh_lease_take(ctx, me, "abi-test", 60, &lease));

	/* Routes cannot climb out of /api/{module}/. */
	put(out, "bad_route_dotdot", oh_route(ctx, "GET", "/../ndi/status", get_probe, NULL, NULL));
	put(out, "bad_route_relative", oh_route(ctx, "GET", "status", get_probe, NULL, NULL));

	/* Controls: our own namespace works. */
	snprintf(topic, sizeof topic, "%s/orchestrator/%s/evt", root, me);
	put(out, "own_publish_evt", oh_publish(ctx, topic, "{\"probe\":true}", 14, 1, false));
	snprintf(topic, sizeof topic, "%s/device/rpi-01/%s/cmd", root, me);
	put(out, "own_publish_device", oh_publish(ctx, topic, "{\"probe\":true}", 14, 1, false));
	snprintf(key, sizeof key, "%s:rpi-01", me);
	put(out, "own_lease_take", oh_lease_take(ctx, key, "abi-test", 60, &lease));
	put(out, "own_lease_renew", oh_lease_renew(ctx, key, "abi-test", 60, &lease));
	put(out, "own_lease_release", oh_lease_release(ctx, key, "abi-test", &lease));
	/* Reading another module's lease is allowed: only changes are fenced. */
	put(out, "own_can_use_other", oh_lease_can_use(ctx, "ndi:rpi-01", "abi-test", &lease));
	oh_reply_json(req, 200, out);
}

static void get_init(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	oh_reply_json(req, 200, json_deep_copy(oh_data(ctx)));
}

static void free_json(void *p)
{
	json_decref(p);
}

static int init(oh_ctx *ctx, const json_t *settings)
{
	json_t *results = json_object();
	oh_set_data(ctx, results, free_json);
	char filter[256];
	put(results, "bad_subscribe_all", oh_subscribe(ctx, "#", 1, on_msg, NULL));
	put(results, "bad_subscribe_other_root", oh_subscribe(ctx, "/other/device/+/meta", 1, on_msg, NULL));
	/* "/lab" is not under "/lab/"; "/labx/..." is not either. */
	put(results, "bad_subscribe_root_itself", oh_subscribe(ctx, oh_topic_root(ctx), 1, on_msg, NULL));
	snprintf(filter, sizeof filter, "%sx/#", oh_topic_root(ctx));
	put(results, "bad_subscribe_root_prefix", oh_subscribe(ctx, filter, 1, on_msg, NULL));
	/* Reading other modules' topics under the root is allowed. */
	snprintf(filter, sizeof filter, "%s/orchestrator/ndi/evt", oh_topic_root(ctx));
	put(results, "own_subscribe_under_root", oh_subscribe(ctx, filter, 1, on_msg, NULL));
	if(oh_route(ctx, "GET", "/probe", get_probe, NULL, NULL) ||
			oh_route(ctx, "GET", "/init", get_init, NULL, NULL))
		return oh_fail(ctx, "cannot register routes");
	return OH_OK;
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.abi_minor = 1, /* oh_topic_parse */
		.name = "namespace probe",
		.version = "0",
		.init = init,
};

const struct oh_plugin *oh_plugin_entry(void)
{
	return &plugin;
}
