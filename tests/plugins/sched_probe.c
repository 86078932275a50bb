/*
 * A tiny plugin for the scheduler's integration tests: it schedules through
 * the host service and executes jobs the way a real plugin would, through
 * the public API only.
 *
 * On {root}/orchestrator/{module}/cmd it handles the scheduler's actions
 * (schedule, unschedule, jobs), plus reserve {device_id, lease_s} and
 * release {device_id} so tests can hold a device.  Its executor honours
 * leases ("{module}:{device_id}", actor = the job's owner) and publishes the
 * command to {root}/device/{id}/{module}/cmd with "actor": "orchestrator"
 * and "requested_by": the owner.  Actions other than start, stop, set_input,
 * record_start and record_stop are refused when a job is created.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "oh/host.h"
#include "oh/plugin.h"
#include "oh/validate.h"

static const char *const actions[] = {"start", "stop", "set_input", "record_start", "record_stop"};

static void new_id(char *buf, size_t len)
{
	static unsigned counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, len, "probe-%lx-%lx-%u", (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec, ++counter);
}

static json_t *exec_job(oh_ctx *ctx, const char *job_id, const char *owner, const json_t *command, void *ud)
{
	const char *dev = json_string_value(json_object_get(command, "device_id"));
	const char *action = json_string_value(json_object_get(command, "action"));
	char key[128], rid[64], topic[256], ts[32];
	snprintf(key, sizeof key, "%s:%s", oh_module(ctx), dev);
	new_id(rid, sizeof rid);
	struct oh_lease lease;
	if(oh_lease_can_use(ctx, key, owner, &lease) == OH_ERR_IN_USE) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s is reserved by %s", dev, lease.holder);
		return oh_ack_new(rid, false, "DENIED", action, owner, msg,
				json_pack("{s:s, s:s}", "device_id", dev, "holder", lease.holder));
	}
	json_t *params = json_deep_copy(json_object_get(command, "params"));
	if(!json_is_object(params)) {
		json_decref(params);
		params = json_object();
	}
	if(!json_object_get(params, "device_id"))
		json_object_set_new(params, "device_id", json_string(dev));
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:n, s:n}", "req_id", rid, "actor",
			"orchestrator", "requested_by", owner, "ts", ts, "action", action, "params", params,
			"job_id", job_id, "reply_to", "ttl_s");
	snprintf(topic, sizeof topic, "%s/device/%s/%s/cmd", oh_topic_root(ctx), dev, oh_module(ctx));
	int rc = oh_publish_json(ctx, topic, env, 1, false);
	json_decref(env);
	if(rc)
		return oh_ack_new(rid, false, "ERROR", action, owner, oh_strerror(rc), NULL);
	return oh_ack_new(rid, true, "DISPATCHED", action, owner, NULL, json_pack("{s:s}", "device_id", dev));
}

static int validate(oh_ctx *ctx, const json_t *command, char *err, size_t errlen)
{
	const char *action = json_string_value(json_object_get(command, "action"));
	for(size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
		if(action && !strcmp(action, actions[i]))
			return OH_OK;
	}
	snprintf(err, errlen, "action: unknown action \"%s\"", action ? action : "");
	return OH_ERR_INVAL;
}

/* Checked with the host's validator, which a .so reaches through the
 * symbols the host exports. */
static const struct oh_vfield lease_fields[] = {
		OH_VFIELD("device_id", OH_VT_STRING, OH_VF_REQUIRED, .check = oh_vcheck_device_id),
		OH_VFIELD("lease_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MIN_EXCL, .min = 0),
		OH_VFIELD_END,
};
static const struct oh_vobject lease_params = OH_VOBJECT(lease_fields, OH_V_IGNORE);

static json_t *lease_action(oh_ctx *ctx, const struct oh_command *cmd)
{
	const char *actor = cmd->actor ? cmd->actor : "anonymous";
	char err[256];
	if(oh_json_validate(cmd->params, &lease_params, "", NULL, err, sizeof err))
		return oh_ack_new(cmd->req_id, false, "BAD_REQUEST", cmd->action, actor, err, NULL);
	const char *dev = json_string_value(json_object_get(cmd->params, "device_id"));
	char key[128];
	snprintf(key, sizeof key, "%s:%s", oh_module(ctx), dev);
	struct oh_lease l;
	memset(&l, 0, sizeof l);
	int rc;
	if(!strcmp(cmd->action, "reserve")) {
		json_t *s = json_object_get(cmd->params, "lease_s");
		rc = oh_lease_take(ctx, key, actor, json_is_number(s) ? json_number_value(s) : 60, &l);
	} else {
		rc = oh_lease_release(ctx, key, actor, &l);
	}
	if(rc)
		return oh_ack_new(cmd->req_id, false, "DENIED", cmd->action, actor, oh_strerror(rc),
				json_pack("{s:s}", "holder", l.holder));
	return oh_ack_new(cmd->req_id, true, "OK", cmd->action, actor, NULL,
			json_pack("{s:s}", "device_id", dev));
}

static void on_cmd(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct oh_command cmd;
	const char *code;
	char err[256];
	if(oh_command_parse(ctx, msg, &cmd, &code, err, sizeof err)) {
		oh_ack_publish(ctx, oh_ack_new(cmd.req_id, false, code, NULL, NULL, err, NULL));
		return;
	}
	json_t *ack = oh_scheduler_command(ctx, &cmd);
	if(!ack && (!strcmp(cmd.action, "reserve") || !strcmp(cmd.action, "release")))
		ack = lease_action(ctx, &cmd);
	if(!ack)
		ack = oh_ack_new(cmd.req_id, false, "BAD_ACTION", cmd.action, cmd.actor, "unknown action",
				NULL);
	oh_ack_publish(ctx, ack);
}

static int init(oh_ctx *ctx, const json_t *settings)
{
	char filter[256];
	snprintf(filter, sizeof filter, "%s/orchestrator/%s/cmd", oh_topic_root(ctx), oh_module(ctx));
	int rc = oh_subscribe(ctx, filter, 1, on_cmd, NULL);
	if(rc)
		return oh_fail(ctx, "cannot subscribe to %s: %s", filter, oh_strerror(rc));
	rc = oh_scheduler_register(ctx, exec_job, NULL, validate);
	if(rc)
		return oh_fail(ctx, "cannot register with the scheduler: %s", oh_strerror(rc));
	return OH_OK;
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.name = "scheduler probe",
		.version = "1",
		.init = init,
};

const struct oh_plugin *oh_plugin_entry(void)
{
	return &plugin;
}
