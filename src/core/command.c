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

#include "audit.h"
#include "envelope.h"
#include "metrics.h"
#include "http.h"
#include "json_text.h"
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

/* Who asked, beyond the ack's actor: the envelope's requested_by when the
 * command came over MQTT, else "job:{id}" while a job runs (borrowed). */
static const char *requester_now(struct host *h)
{
	const struct oh_message *msg = dispatch_delivering(NULL);
	const char *rb = msg ? json_string_value(json_object_get(msg->json, "requested_by")) : NULL;
	return rb ? rb : audit_requester(h);
}

/*
 * The audit record of an ack.  DISPATCHED is not an outcome: it starts the
 * clock of its command (audit_command_started), and the outcome stops it.
 * The scheduler's FIRED, SKIPPED and MISSED are job runs; EXPIRED is told
 * by the leases (leases.c) and not recorded twice.
 */
static void ack_record(oh_ctx *ctx, const json_t *ack, const char *code)
{
	struct host *h = ctx->host;
	if(!h->audit || !code || !strcmp(code, "EXPIRED"))
		return;
	const char *req_id = json_string_value(json_object_get(ack, "req_id"));
	const json_t *details = json_object_get(ack, "details");
	const char *token = http_current_token();
	const char *rb = requester_now(h);
	if(!strcmp(code, "DISPATCHED")) {
		audit_command_started(h, ctx->module, req_id, token, rb);
		return;
	}
	struct audit_rec r = {
			.kind = "command",
			.action = json_string_value(json_object_get(ack, "action")),
			.actor = json_string_value(json_object_get(ack, "actor")),
			.requested_by = rb,
			.token = token,
			.device_id = json_string_value(json_object_get(details, "device_id")),
			.module = ctx->module,
			.req_id = req_id,
			.code = code,
			.error = json_string_value(json_object_get(ack, "error")),
			.latency_ms = -1,
	};
	char tok[AUDIT_TEXT_MAX + 1], by[AUDIT_TEXT_MAX + 1]; /* whole: never cut inside a character */
	if(!strcmp(code, "FIRED") || !strcmp(code, "SKIPPED") || !strcmp(code, "MISSED")) {
		r.kind = "job";
		r.action = !strcmp(code, "FIRED") ? "fired" : !strcmp(code, "SKIPPED") ? "skipped" : "missed";
		r.detail = details;
	} else {
		audit_command_ended(h, ctx->module, req_id, &r.latency_ms, tok, sizeof tok, by, sizeof by);
		if(!r.token && tok[0])
			r.token = tok;
		if(!r.requested_by && by[0])
			r.requested_by = by;
		/* What the device said went wrong, not its whole answer. */
		if(!strcmp(code, "FAILED"))
			r.detail = details;
	}
	audit_record(h, &r);
}

/* Acks held by command_hold_acks(): recorded when published (while who
 * asked is still known), sent when the hold ends, in order. */
static struct {
	int depth;
	size_t n, cap;
	struct held_ack {
		oh_ctx *ctx;
		json_t *ack; /* owned */
	} * q;
} held;

static int ack_send(oh_ctx *ctx, json_t *ack);

void command_hold_acks(bool on)
{
	if(on) {
		held.depth++;
		return;
	}
	if(held.depth > 0 && --held.depth > 0)
		return;
	/* By index: a send may publish, never hold again. */
	for(size_t i = 0; i < held.n; i++)
		ack_send(held.q[i].ctx, held.q[i].ack);
	held.n = 0;
}

int oh_ack_publish(oh_ctx *ctx, json_t *ack)
{
	if(!ack)
		return OH_ERR_NOMEM;
	/* Every command outcome, counted, logged and audited in one place.
	 * DISPATCHED is not an outcome (COMPLETED, FAILED or TIMEOUT follows),
	 * so each command gets exactly one info line. */
	const char *code = json_string_value(json_object_get(ack, "code"));
	oh_metric_count(ctx, "commands_total{code}", code ? code : "none", 1);
	oh_log(ctx, code && !strcmp(code, "DISPATCHED") ? OH_LOG_DEBUG : OH_LOG_INFO,
			"command req_id=%s actor=%s device=%s action=%s result=%s",
			field_or_dash(ack, "req_id"), field_or_dash(ack, "actor"),
			field_or_dash(json_object_get(ack, "details"), "device_id"),
			field_or_dash(ack, "action"), code ? code : "-");
	ack_record(ctx, ack, code);
	if(held.depth) {
		if(held.n == held.cap) {
			size_t cap = held.cap ? held.cap * 2 : 256;
			struct held_ack *q = realloc(held.q, cap * sizeof *q);
			if(!q)
				return ack_send(ctx, ack); /* no room to wait: now */
			held.q = q;
			held.cap = cap;
		}
		held.q[held.n++] = (struct held_ack){ctx, ack};
		return OH_OK;
	}
	return ack_send(ctx, ack);
}

/* Publishes a recorded ack on the module's evt topic; takes ack. */
static int ack_send(oh_ctx *ctx, json_t *ack)
{
	char *text = json_text_compact(ack);
	json_decref(ack);
	if(!text)
		return OH_ERR_NOMEM;
	/* After the batch holding its record, when one waits (audit.h). */
	int rc = audit_defer_publish(ctx->host, ctx->evt_topic, text, strlen(text))
			? OH_OK
			: oh_publish(ctx, ctx->evt_topic, text, strlen(text), 1, false);
	free(text);
	return rc;
}
