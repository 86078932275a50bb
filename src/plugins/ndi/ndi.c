/*
 * The NDI plugin ("builtin:ndi", or build/plugins/ndi.so): relays NDI
 * commands from apps to devices, keeps per-device reservations, and reports
 * each command's fate.
 *
 * This file is the plugin's life cycle: it validates the settings against
 * one table, subscribes to the module's command topic and to the devices'
 * NDI acks, and watches lease expiry.  The command logic lives in
 * ndi_commands.c and the in-flight bookkeeping in ndi_pending.c; the wire
 * contract is docs/protocol.md.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/host.h"
#include "oh/plugin.h"

#include "ndi.h"
#include "ndi_discovery.h"

/* ---- settings ------------------------------------------------------------ */

/* One row per key this file reads; the discovery keys are only let through
 * (ndi_discovery_new() reads and checks them). */
enum setting_kind {
	SETTING_NUM,   /* a number in min..max */
	SETTING_BOOL,  /* true or false */
	SETTING_ADMINS /* an array of strings, or null */
};

struct setting {
	const char *key;
	enum setting_kind kind;
	double min, max;
	size_t offset; /* of the destination in struct ndi_settings */
};

static const struct setting settings_table[] = {
		/* The bound keeps the timer's milliseconds inside an unsigned. */
		{"ack_timeout_s", SETTING_NUM, 0.001, 86400, offsetof(struct ndi_settings, ack_timeout_s)},
		{"default_lease_s", SETTING_NUM, 0.001, 1e9, offsetof(struct ndi_settings, default_lease_s)},
		{"max_lease_s", SETTING_NUM, 0.001, 1e9, offsetof(struct ndi_settings, max_lease_s)},
		{"relay_when_offline", SETTING_BOOL, 0, 0, offsetof(struct ndi_settings, relay_when_offline)},
		{"admins", SETTING_ADMINS, 0, 0, 0},
};

static bool is_discovery_key(const char *key)
{
	for(size_t i = 0; ndi_discovery_setting_keys[i]; i++) {
		if(!strcmp(ndi_discovery_setting_keys[i], key))
			return true;
	}
	return false;
}

static bool strings_only(const json_t *v)
{
	size_t i;
	const json_t *item;
	json_array_foreach(v, i, item)
	{
		if(!json_is_string(item))
			return false;
	}
	return true;
}

/* Stores one value; OH_OK, or the oh_fail() naming settings.{key}. */
static int setting_apply(oh_ctx *ctx, const struct setting *f, const json_t *v, struct ndi_settings *s)
{
	char *dest = (char *)s + f->offset;
	switch(f->kind) {
	case SETTING_NUM: {
		if(!json_is_number(v))
			return oh_fail(ctx, "settings.%s: expected a number", f->key);
		double d = json_number_value(v);
		if(d < f->min || d > f->max)
			return oh_fail(ctx, "settings.%s: %g is out of range %g..%g", f->key, d, f->min,
					f->max);
		*(double *)dest = d;
		return OH_OK;
	}
	case SETTING_BOOL:
		if(!json_is_boolean(v))
			return oh_fail(ctx, "settings.%s: expected true or false", f->key);
		*(bool *)dest = json_is_true(v);
		return OH_OK;
	case SETTING_ADMINS:
		if(json_is_null(v))
			return OH_OK;
		if(!json_is_array(v) || !strings_only(v))
			return oh_fail(ctx, "settings.%s: expected an array of strings or null", f->key);
		json_decref(s->admins);
		s->admins = json_deep_copy(v);
		return s->admins ? OH_OK : OH_ERR_NOMEM;
	}
	return OH_ERR_INVAL;
}

static void settings_clear(struct ndi_settings *s)
{
	json_decref(s->admins);
	memset(s, 0, sizeof(*s));
}

/*
 * Fills *s from the settings object against one table, so every key is
 * checked and an unknown one (a typo like "ack_timeout") fails init naming
 * it; on failure explains with oh_fail() and leaves *s for
 * settings_clear().
 */
static int settings_load(oh_ctx *ctx, const json_t *obj, struct ndi_settings *s)
{
	s->ack_timeout_s = 10;
	s->default_lease_s = 60;
	s->max_lease_s = 86400;
	s->relay_when_offline = false;
	if(!obj)
		return OH_OK;
	if(!json_is_object(obj))
		return oh_fail(ctx, "settings: expected an object");

	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		if(is_discovery_key(key))
			continue;
		const struct setting *f = NULL;
		for(size_t i = 0; i < sizeof settings_table / sizeof settings_table[0] && !f; i++)
			f = strcmp(settings_table[i].key, key) ? NULL : &settings_table[i];
		if(!f)
			return oh_fail(ctx, "settings.%s: unknown key", key);
		if(json_is_null(v) && f->kind != SETTING_ADMINS)
			return oh_fail(ctx, "settings.%s: must not be null", key);
		int rc = setting_apply(ctx, f, v, s);
		if(rc)
			return rc;
	}
	if(s->default_lease_s > s->max_lease_s) {
		return oh_fail(ctx, "settings.default_lease_s: %g is over max_lease_s (%g)",
				s->default_lease_s, s->max_lease_s);
	}
	return OH_OK;
}

/* ---- life cycle ---------------------------------------------------------- */

static void ndi_free(struct ndi *n)
{
	if(!n)
		return;
	/* Pending and the device list first: they answer the REST requests
	 * still waiting while the host's HTTP side can still send the reply. */
	ndi_pending_free(n);
	ndi_devices_free(n);
	ndi_status_free(n);
	ndi_discovery_free(n->discovery);
	settings_clear(&n->set);
	free(n);
}

static int ndi_init(oh_ctx *ctx, const json_t *settings)
{
	char topic[512];
	const char *root = oh_topic_root(ctx);
	const char *module = oh_module(ctx);
	struct ndi *n;
	int rc;

	n = calloc(1, sizeof(*n));
	if(!n)
		return OH_ERR_NOMEM;
	n->ctx = ctx;
	rc = settings_load(ctx, settings, &n->set);
	if(rc)
		goto out_free;
	n->pending = ndi_pending_new();
	if(!n->pending) {
		rc = OH_ERR_NOMEM;
		goto out_free;
	}

	/* Registrations made before a failure are torn down by the host, and no
	 * callback can run before init returns (one loop thread), so freeing n
	 * on failure leaves nothing dangling. */
	snprintf(topic, sizeof(topic), "%s/orchestrator/%s/cmd", root, module);
	rc = oh_subscribe(ctx, topic, 1, ndi_on_command, n);
	if(rc) {
		oh_fail(ctx, "cannot subscribe to %s: %s", topic, oh_strerror(rc));
		goto out_free;
	}
	snprintf(topic, sizeof(topic), "%s/device/+/%s/evt", root, module);
	rc = oh_subscribe(ctx, topic, 1, ndi_on_device_evt, n);
	if(rc) {
		oh_fail(ctx, "cannot subscribe to %s: %s", topic, oh_strerror(rc));
		goto out_free;
	}
	rc = oh_lease_on_expire(ctx, ndi_on_lease_expired, n);
	if(rc) {
		oh_fail(ctx, "cannot watch lease expiry: %s", oh_strerror(rc));
		goto out_free;
	}
	rc = ndi_status_start(n);
	if(rc)
		goto out_free;
	rc = ndi_devices_start(n);
	if(rc)
		goto out_free;
	/* It reads and checks its own settings keys, naming a bad one. */
	n->discovery = ndi_discovery_new(ctx, settings);
	if(!n->discovery) {
		rc = OH_ERR_INVAL;
		goto out_free;
	}
	rc = ndi_rest_register(n);
	if(rc) {
		oh_fail(ctx, "cannot mount the REST API: %s", oh_strerror(rc));
		goto out_free;
	}
	/* Mounts /api/{module}/jobs and restores this module's stored jobs. */
	rc = oh_scheduler_register(ctx, ndi_job_exec, n, ndi_job_validate);
	if(rc) {
		oh_fail(ctx, "cannot register with the scheduler: %s", oh_strerror(rc));
		goto out_free;
	}

	/* Freed in cleanup, which also cancels the pending timers. */
	oh_set_data(ctx, n, NULL);
	oh_log(ctx, OH_LOG_INFO,
			"ready: ack_timeout_s=%g default_lease_s=%g max_lease_s=%g "
			"relay_when_offline=%s admins=%s",
			n->set.ack_timeout_s, n->set.default_lease_s, n->set.max_lease_s,
			n->set.relay_when_offline ? "true" : "false", n->set.admins ? "listed" : "any actor");
	return OH_OK;

out_free:
	ndi_free(n);
	return rc;
}

static void ndi_cleanup(oh_ctx *ctx)
{
	struct ndi *n = oh_data(ctx);

	if(n && ndi_pending_count(n)) {
		oh_log(ctx, OH_LOG_INFO, "dropping %zu command(s) still awaiting a device ack",
				ndi_pending_count(n));
	}
	ndi_free(n);
	oh_set_data(ctx, NULL, NULL);
}

static const struct oh_plugin ndi_plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.abi_minor = 1, /* oh_topic_parse */
		.name = "NDI video",
		.version = "0.1.0",
		.init = ndi_init,
		.cleanup = ndi_cleanup,
};

/* oh_plugin_entry in plugins/ndi.so; in the host, the name cmake/plugin.cmake
 * gives the built-in. */
OH_PLUGIN_ENTRY(&ndi_plugin)
