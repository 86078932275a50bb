/*
 * The built-in NDI plugin ("builtin:ndi"): relays NDI commands from apps to
 * devices, keeps per-device reservations, and reports each command's fate.
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

enum setting_kind {
	SET_NUMBER,               /* > min and <= max */
	SET_BOOL,
	SET_STRING_OR_NULL,
	SET_STRING_ARRAY,
	SET_STRING_ARRAY_OR_NULL,
};

struct setting {
	const char *key;
	enum setting_kind kind;
	size_t offset;            /* into struct ndi_settings */
	double min, max;          /* SET_NUMBER: min < value <= max */
};

#define AT(field) offsetof(struct ndi_settings, field)

/* Every key plugins[].settings may hold; anything else fails init, so a
 * typo ("ack_timeout") is caught at start rather than silently ignored. */
static const struct setting settings_table[] = {
	/* The bound keeps the timer's milliseconds inside an unsigned. */
	{"ack_timeout_s", SET_NUMBER, AT(ack_timeout_s), 0, 86400},
	{"default_lease_s", SET_NUMBER, AT(default_lease_s), 0, 1e9},
	{"max_lease_s", SET_NUMBER, AT(max_lease_s), 0, 1e9},
	{"relay_when_offline", SET_BOOL, AT(relay_when_offline), 0, 0},
	{"admins", SET_STRING_ARRAY_OR_NULL, AT(admins), 0, 0},
};

static const struct setting *setting_find(const char *key)
{
	for(size_t i = 0; i < sizeof(settings_table) / sizeof(settings_table[0]); i++) {
		if(!strcmp(settings_table[i].key, key)) return &settings_table[i];
	}
	return NULL;
}

/* Keys read (and checked) by ndi_discovery_new() instead. */
static bool discovery_key(const char *key)
{
	for(size_t i = 0; ndi_discovery_setting_keys[i]; i++) {
		if(!strcmp(ndi_discovery_setting_keys[i], key)) return true;
	}
	return false;
}

static bool string_array(const json_t *v)
{
	size_t i;
	const json_t *item;

	if(!json_is_array(v)) return false;
	json_array_foreach(v, i, item) {
		if(!json_is_string(item)) return false;
	}
	return true;
}

static void settings_clear(struct ndi_settings *s)
{
	json_decref(s->admins);
	memset(s, 0, sizeof(*s));
}

/* Fills *s from the settings object; on failure explains with oh_fail()
 * (naming the key) and leaves *s for settings_clear(). */
static int settings_load(oh_ctx *ctx, const json_t *obj, struct ndi_settings *s)
{
	const char *key;
	json_t *v;

	s->ack_timeout_s = 10;
	s->default_lease_s = 60;
	s->max_lease_s = 86400;
	s->relay_when_offline = false;
	if(!obj) obj = json_object();
	else json_incref((json_t *)obj);
	if(!json_is_object(obj)) {
		json_decref((json_t *)obj);
		return oh_fail(ctx, "settings: expected an object");
	}

	int rc = OH_OK;
	json_object_foreach((json_t *)obj, key, v) {
		const struct setting *st = setting_find(key);
		char *field;

		if(!st && discovery_key(key)) continue;
		if(!st) {
			rc = oh_fail(ctx, "settings.%s: unknown setting", key);
			break;
		}
		field = (char *)s + st->offset;
		switch(st->kind) {
		case SET_NUMBER: {
			double d;
			if(!json_is_number(v)) {
				rc = oh_fail(ctx, "settings.%s: expected a number", key);
				break;
			}
			d = json_number_value(v);
			if(!(d > st->min && d <= st->max)) {
				rc = oh_fail(ctx, "settings.%s: must be > %g and <= %g", key,
						st->min, st->max);
				break;
			}
			memcpy(field, &d, sizeof(d));
			break;
		}
		case SET_BOOL: {
			bool b;
			if(!json_is_boolean(v)) {
				rc = oh_fail(ctx, "settings.%s: expected true or false", key);
				break;
			}
			b = json_is_true(v);
			memcpy(field, &b, sizeof(b));
			break;
		}
		case SET_STRING_OR_NULL: {
			char *str = NULL;
			if(!json_is_null(v) && !json_is_string(v)) {
				rc = oh_fail(ctx, "settings.%s: expected a string or null", key);
				break;
			}
			if(json_is_string(v) && !(str = strdup(json_string_value(v)))) {
				rc = OH_ERR_NOMEM;
				break;
			}
			memcpy(field, &str, sizeof(str));
			break;
		}
		case SET_STRING_ARRAY:
		case SET_STRING_ARRAY_OR_NULL: {
			json_t *copy = NULL;
			if(st->kind == SET_STRING_ARRAY_OR_NULL && json_is_null(v)) {
				memcpy(field, &copy, sizeof(copy));
				break;
			}
			if(!string_array(v)) {
				rc = oh_fail(ctx, "settings.%s: expected an array of strings%s", key,
						st->kind == SET_STRING_ARRAY_OR_NULL ? " or null" : "");
				break;
			}
			if(!(copy = json_deep_copy(v))) {
				rc = OH_ERR_NOMEM;
				break;
			}
			memcpy(field, &copy, sizeof(copy));
			break;
		}
		}
		if(rc) break;
	}
	json_decref((json_t *)obj);
	if(rc) return rc;

	if(s->default_lease_s > s->max_lease_s) {
		return oh_fail(ctx, "settings.default_lease_s: %g is over max_lease_s (%g)",
				s->default_lease_s, s->max_lease_s);
	}
	return OH_OK;
}

/* ---- life cycle ---------------------------------------------------------- */

static void ndi_free(struct ndi *n)
{
	if(!n) return;
	/* Pending first: it answers the REST requests still waiting for an
	 * ack while the host's HTTP side can still send the reply. */
	ndi_pending_free(n);
	ndi_status_free(n);
	free(n->devices_cache.body);
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
	if(!n) return OH_ERR_NOMEM;
	n->ctx = ctx;
	rc = settings_load(ctx, settings, &n->set);
	if(rc) goto out_free;
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
	if(rc) goto out_free;
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
	oh_log(ctx, OH_LOG_INFO, "ready: ack_timeout_s=%g default_lease_s=%g max_lease_s=%g "
			"relay_when_offline=%s admins=%s", n->set.ack_timeout_s,
			n->set.default_lease_s, n->set.max_lease_s,
			n->set.relay_when_offline ? "true" : "false",
			n->set.admins ? "listed" : "any actor");
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
	.name = "NDI video",
	.version = "0.1.0",
	.init = ndi_init,
	.cleanup = ndi_cleanup,
};

const struct oh_plugin *ndi_plugin_entry(void);

const struct oh_plugin *ndi_plugin_entry(void)
{
	return &ndi_plugin;
}
