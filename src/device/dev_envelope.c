/*
 * The device's side of the command envelope and its ack.  The checks, in
 * the order the deployed agent applies them: JSON syntax (BAD_JSON), then
 * the envelope parser the host uses too (src/common/envelope.c) with the
 * device's rules, the actor allow-list and the size of params (all
 * BAD_REQUEST).  Keys it does not name ("ts", "reply_to", "ttl_s",
 * "requested_by", ...) are accepted and ignored.
 */
#include "dev_envelope.h"

#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const envelope_actors[] = {"orchestrator", "app", "user", "test", NULL};

static const char *const code_names[] = {
		[ACK_OK] = "OK",
		[ACK_BAD_JSON] = "BAD_JSON",
		[ACK_BAD_REQUEST] = "BAD_REQUEST",
		[ACK_MODULE_ERROR] = "MODULE_ERROR",
		[ACK_DEVICE_ERROR] = "DEVICE_ERROR",
		[ACK_EXCEPTION] = "EXCEPTION",
};

const char *ack_code_name(enum ack_code code)
{
	if((unsigned)code >= sizeof code_names / sizeof code_names[0])
		return "EXCEPTION";
	return code_names[code];
}

/* What deployed devices accept on the envelopes the host relays. */
static const struct envelope_rules device_rules = {
		.actors = envelope_actors,
		.actors_text = "orchestrator, app, user or test",
		.params_max = ENVELOPE_MAX_PARAMS,
};

void envelope_clear(struct envelope *env)
{
	json_decref(env->params);
	json_decref(env->root);
	memset(env, 0, sizeof *env);
}

enum ack_code envelope_from_json(json_t *root, struct envelope *env, char *err, size_t errlen)
{
	memset(env, 0, sizeof *env);
	struct envelope_fields f;
	enum envelope_status st = envelope_read(root, &device_rules, &f, err, errlen);
	if(st == ENVELOPE_NOT_OBJECT) {
		dev_uuid4(env->req_id);
		return ACK_BAD_REQUEST;
	}
	env->root = json_incref(root);
	/* What could be read is echoed in the ack, even a refused actor. */
	if(f.req_id)
		snprintf(env->req_id, sizeof env->req_id, "%s", f.req_id);
	else
		dev_uuid4(env->req_id);
	env->action = f.action;
	env->actor = f.actor;
	if(st != ENVELOPE_OK)
		return ACK_BAD_REQUEST;
	env->params = f.params ? json_incref((json_t *)f.params) : json_object();
	if(!env->params) {
		snprintf(err, errlen, "out of memory");
		return ACK_EXCEPTION;
	}
	return ACK_OK;
}

enum ack_code envelope_parse(const void *payload, size_t len, struct envelope *env, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(payload, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if(!root) {
		memset(env, 0, sizeof *env);
		dev_uuid4(env->req_id);
		snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
				jerr.text);
		return ACK_BAD_JSON;
	}
	enum ack_code rc = envelope_from_json(root, env, err, errlen);
	json_decref(root);
	return rc;
}

json_t *ack_new(const struct envelope *env, enum ack_code code, const char *error, json_t *details)
{
	char ts[DEV_TS_LEN];
	json_t *ack = json_object();
	if(!ack) {
		json_decref(details);
		return NULL;
	}
	int bad = 0;
	bad |= json_object_set_new(ack, "req_id", json_string(env->req_id));
	bad |= json_object_set_new(ack, "ok", json_boolean(code == ACK_OK));
	bad |= json_object_set_new(ack, "code", json_string(ack_code_name(code)));
	bad |= json_object_set_new(ack, "action", env->action ? json_string(env->action) : json_null());
	bad |= json_object_set_new(ack, "actor", env->actor ? json_string(env->actor) : json_null());
	bad |= json_object_set_new(ack, "ts", json_string(dev_ts_now(ts)));
	bad |= json_object_set_new(ack, "error",
			code == ACK_OK ? json_null()
				       : dev_json_text(error && *error ? error : ack_code_name(code)));
	bad |= json_object_set_new(ack, "details", details ? details : json_null());
	if(bad) {
		json_decref(ack);
		return NULL;
	}
	return ack;
}
