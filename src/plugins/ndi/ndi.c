/*
 * The NDI plugin ("builtin:ndi", or build/plugins/ndi.so): relays NDI
 * commands from apps to devices, keeps per-device reservations, and reports
 * each command's fate.
 *
 * Routes and presets (ndi_routes.c) make the host keep what each device
 * shows true, in the host's store.
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
#include "oh/validate.h"

#include "ndi.h"
#include "ndi_discovery.h"

/* ---- settings ------------------------------------------------------------ */

/* The keys this file reads, for the host's validator (include/oh/validate.h,
 * the rules every JSON input follows); the discovery's own entries
 * (ndi_discovery_settings) are added to the table, so one call checks
 * every key. */
static const struct oh_vfield own_settings[] = {
		/* The bound keeps the timer's milliseconds inside an unsigned. */
		OH_VFIELD("ack_timeout_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MAX, .min = 0.001, .max = 86400),
		OH_VFIELD("default_lease_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MAX, .min = 0.001, .max = 1e9),
		OH_VFIELD("max_lease_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MAX, .min = 0.001, .max = 1e9),
		OH_VFIELD("relay_when_offline", OH_VT_BOOL, 0),
		/* null, like absence: any actor may force_release */
		OH_VFIELD("admins", OH_VT_ARRAY, 0, .items = OH_VT_STRING),
};
#define N_OWN_SETTINGS (sizeof own_settings / sizeof own_settings[0])
#define N_DISCOVERY_SETTINGS_MAX 16

/* *dst = obj.key when it is a number (null and absent keep the default). */
static void number_setting(const json_t *obj, const char *key, double *dst)
{
	const json_t *v = json_object_get(obj, key);

	if(json_is_number(v))
		*dst = json_number_value(v);
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

	struct oh_vfield fields[N_OWN_SETTINGS + N_DISCOVERY_SETTINGS_MAX + 1];
	size_t n = 0;
	for(; n < N_OWN_SETTINGS; n++)
		fields[n] = own_settings[n];
	for(size_t i = 0; ndi_discovery_settings[i].name && i < N_DISCOVERY_SETTINGS_MAX; i++)
		fields[n++] = ndi_discovery_settings[i];
	fields[n] = (struct oh_vfield)OH_VFIELD_END;
	const struct oh_vobject spec = OH_VOBJECT(fields, OH_V_REFUSE);
	char err[256];
	if(oh_json_validate(obj, &spec, "settings", NULL, err, sizeof err))
		return oh_fail(ctx, "%s", err);

	number_setting(obj, "ack_timeout_s", &s->ack_timeout_s);
	number_setting(obj, "default_lease_s", &s->default_lease_s);
	number_setting(obj, "max_lease_s", &s->max_lease_s);
	s->relay_when_offline = json_is_true(json_object_get(obj, "relay_when_offline"));
	const json_t *admins = json_object_get(obj, "admins");
	if(json_is_array(admins) && !(s->admins = json_deep_copy(admins)))
		return OH_ERR_NOMEM;
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
	ndi_routes_free(n);
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
	rc = ndi_routes_start(n);
	if(rc)
		goto out_free;
	/* Its settings keys passed settings_load() above. */
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

/* The host forgot the device: the lease this module took for it goes (its
 * key is this module's business, hence a hook and not the host guessing). */
static void ndi_device_forgotten(oh_ctx *ctx, const char *device_id)
{
	struct ndi *n = oh_data(ctx);
	char key[160];
	struct oh_lease was;
	if(!n)
		return;
	ndi_routes_forget(n, device_id);
	ndi_lease_key(n, device_id, key, sizeof key);
	if(!oh_lease_force_release(ctx, key, &was))
		oh_log(ctx, OH_LOG_INFO, "device %s forgotten: released its lease held by %s", device_id,
				was.holder);
}

static void ndi_took_lead(oh_ctx *ctx)
{
	struct ndi *n = oh_data(ctx);
	if(n)
		ndi_routes_took_lead(n);
}

static const struct oh_plugin ndi_plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.abi_minor = OH_ABI_MINOR_LEAD, /* oh_topic_parse (1), device_forgotten (2), oh_doc_* (4),
						   oh_device_walk (5), oh_audit_record (6), took_lead (7) */
		.name = "NDI video",
		.version = "0.1.0",
		.init = ndi_init,
		.cleanup = ndi_cleanup,
		.device_forgotten = ndi_device_forgotten,
		.took_lead = ndi_took_lead,
};

/* oh_plugin_entry in plugins/ndi.so; in the host, the name cmake/plugin.cmake
 * gives the built-in. */
OH_PLUGIN_ENTRY(&ndi_plugin)
