/*
 * Command envelopes and acks, in the shape the deployed devices use
 * (device-agent-protocol.md), shared by every plugin so that all of them
 * validate the same way and answer with the same fields.
 */
#include "plugin_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

int oh_command_parse(oh_ctx *ctx, const struct oh_message *msg, struct oh_command *cmd, const char **code,
		char *err, size_t errlen)
{
	memset(cmd, 0, sizeof *cmd);
	const json_t *env = msg->json;
	/* A req_id is recovered even from a bad envelope so its ack correlates. */
	const json_t *rid = json_is_object(env) ? json_object_get(env, "req_id") : NULL;
	if(json_is_string(rid) && json_string_length(rid) > 0 && json_string_length(rid) <= OH_REQ_ID_MAX)
		snprintf(cmd->req_id, sizeof cmd->req_id, "%s", json_string_value(rid));
	else
		host_new_id(cmd->req_id, sizeof cmd->req_id);

	if(msg->too_large) {
		*code = "TOO_LARGE";
		snprintf(err, errlen, "%s", msg->error);
		return OH_ERR_INVAL;
	}
	if(!env) {
		*code = "BAD_JSON";
		snprintf(err, errlen, "%s", msg->error ? msg->error : "payload is not JSON");
		return OH_ERR_INVAL;
	}
	if(!json_is_object(env)) {
		*code = "BAD_JSON";
		snprintf(err, errlen, "payload must be a JSON object");
		return OH_ERR_INVAL;
	}
	*code = "BAD_REQUEST";
	if(rid && !json_is_string(rid) && !json_is_null(rid)) {
		snprintf(err, errlen, "req_id: expected a string");
		return OH_ERR_INVAL;
	}
	if(json_is_string(rid) && json_string_length(rid) > OH_REQ_ID_MAX) {
		snprintf(err, errlen, "req_id: longer than %d characters", OH_REQ_ID_MAX);
		return OH_ERR_INVAL;
	}
	const json_t *action = json_object_get(env, "action");
	if(!action) {
		snprintf(err, errlen, "action: missing");
		return OH_ERR_INVAL;
	}
	if(!json_is_string(action) || json_string_length(action) == 0) {
		snprintf(err, errlen, "action: expected a non-empty string");
		return OH_ERR_INVAL;
	}
	cmd->action = json_string_value(action);
	const json_t *actor = json_object_get(env, "actor");
	if(actor && !json_is_null(actor)) {
		if(!json_is_string(actor) || json_string_length(actor) == 0 || json_string_length(actor) > 120) {
			snprintf(err, errlen, "actor: expected a string of 1-120 characters");
			return OH_ERR_INVAL;
		}
		cmd->actor = json_string_value(actor);
	}
	const json_t *params = json_object_get(env, "params");
	if(params && !json_is_null(params) && !json_is_object(params)) {
		snprintf(err, errlen, "params: expected an object");
		return OH_ERR_INVAL;
	}
	static json_t *empty;
	if(!empty)
		empty = json_object();
	cmd->params = json_is_object(params) ? params : empty;
	cmd->envelope = env;
	*code = NULL;
	err[0] = '\0';
	return OH_OK;
}

json_t *oh_ack_new(const char *req_id, bool ok, const char *code, const char *action, const char *actor,
		const char *error, json_t *details)
{
	char when[32];
	json_t *ack = json_object();
	json_object_set_new(ack, "req_id", req_id ? json_string(req_id) : json_null());
	json_object_set_new(ack, "ok", json_boolean(ok));
	json_object_set_new(ack, "code", json_string(code ? code : (ok ? "OK" : "ERROR")));
	json_object_set_new(ack, "action", action ? json_string(action) : json_null());
	json_object_set_new(ack, "actor", actor ? json_string(actor) : json_null());
	json_object_set_new(ack, "ts", json_string(host_now_iso(when, sizeof when)));
	json_object_set_new(ack, "error", error ? json_string(error) : json_null());
	json_object_set_new(ack, "details", details ? details : json_object());
	return ack;
}

static const char *field_or_dash(const json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));
	return v ? v : "-";
}

int oh_ack_publish(oh_ctx *ctx, json_t *ack)
{
	if(!ack)
		return OH_ERR_NOMEM;
	/* Every command outcome, counted and logged in one place.  DISPATCHED is
	 * not an outcome (COMPLETED, FAILED or TIMEOUT follows), so each command
	 * gets exactly one info line. */
	const char *code = json_string_value(json_object_get(ack, "code"));
	oh_metric_count(ctx, "commands_total{code}", code ? code : "none", 1);
	oh_log(ctx, code && !strcmp(code, "DISPATCHED") ? OH_LOG_DEBUG : OH_LOG_INFO,
			"command req_id=%s actor=%s device=%s action=%s result=%s",
			field_or_dash(ack, "req_id"), field_or_dash(ack, "actor"),
			field_or_dash(json_object_get(ack, "details"), "device_id"),
			field_or_dash(ack, "action"), code ? code : "-");
	int rc = oh_publish_json(ctx, ctx->evt_topic, ack, 1, false);
	json_decref(ack);
	return rc;
}
