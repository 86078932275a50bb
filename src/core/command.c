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

#include "envelope.h"
#include "metrics.h"
#include "timeutil.h"
#include "utf8.h"

/* The host's rules for app envelopes: any actor (leases are held under it)
 * of a bounded length; params are bounded by max_payload_bytes. */
static const struct envelope_rules app_rules = {.actor_max = 120};

/*
 * The parse of the message being delivered, so a command is parsed and
 * validated once however many look at it: the mqtt_commands gate
 * (command_policy.c), then every plugin handler on the topic.  Keyed by the
 * message's address and its delivery's number (dispatch_delivering), so
 * the memo is used only while that very delivery lasts: not for a later
 * message at the same address, nor for the outer message after a nested
 * delivery replaced it.  dispatch.c only marks deliveries and calls
 * nothing here.  The host is single-threaded.
 */
static struct {
	const struct oh_message *msg; /* the one parsed below, or NULL */
	unsigned long long seq;       /* its delivery */
	int rc;
	const char *code; /* static text */
	char err[256];
	struct oh_command cmd; /* its pointers borrow from msg */
} memo;

static int parse(const struct oh_message *msg, struct oh_command *cmd, const char **code, char *err,
		size_t errlen)
{
	memset(cmd, 0, sizeof *cmd);
	const json_t *env = msg->json;
	struct envelope_fields f;
	enum envelope_status st = envelope_read(env, &app_rules, &f, err, errlen);
	/* A req_id, action and actor are recovered even from a bad envelope so
	 * its ack correlates. */
	if(f.req_id)
		snprintf(cmd->req_id, sizeof cmd->req_id, "%s", f.req_id);
	else
		host_new_id(cmd->req_id, sizeof cmd->req_id);
	cmd->action = f.action;
	cmd->actor = f.actor_ok ? f.actor : NULL;

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
	if(st == ENVELOPE_NOT_OBJECT) {
		*code = "BAD_JSON";
		return OH_ERR_INVAL;
	}
	if(st != ENVELOPE_OK) {
		*code = "BAD_REQUEST";
		return OH_ERR_INVAL;
	}
	static json_t *empty;
	if(!empty)
		empty = json_object();
	cmd->params = f.params ? f.params : empty;
	cmd->envelope = env;
	*code = NULL;
	err[0] = '\0';
	return OH_OK;
}


int oh_command_parse(oh_ctx *ctx, const struct oh_message *msg, struct oh_command *cmd, const char **code,
		char *err, size_t errlen)
{
	(void)ctx; /* the rules are the host's, the same for every plugin */
	unsigned long long seq;
	bool delivering = msg && msg == dispatch_delivering(&seq);
	if(delivering && msg == memo.msg && seq == memo.seq) {
		*cmd = memo.cmd;
		*code = memo.code;
		snprintf(err, errlen, "%s", memo.err);
		return memo.rc;
	}
	char full[sizeof memo.err];
	int rc = parse(msg, cmd, code, full, sizeof full);
	snprintf(err, errlen, "%s", full);
	/* A handle kept, not a lookup by name per command (api_metrics.c
	 * registers the family with its help). */
	static struct metric *parses;
	if(!parses)
		parses = metrics_family("oh_mqtt_command_parses_total", METRIC_COUNTER, NULL, NULL);
	if(parses)
		metrics_add(parses, NULL, 1);
	if(delivering) {
		memo.msg = msg;
		memo.seq = seq;
		memo.rc = rc;
		memo.code = *code;
		memo.cmd = *cmd;
		memcpy(memo.err, full, sizeof full);
	}
	return rc;
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
	/* A plugin's text that is not UTF-8 (a client's cut inside a
	 * character) must not cost the ack its "error". */
	json_object_set_new(ack, "error", error ? utf8_json_string(error) : json_null());
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
