/*
 * Envelope validation and ack construction.  The checks, in the order the
 * deployed agent applies them: JSON syntax (BAD_JSON), then a table of the
 * envelope's fields and types, then the actor allow-list and the size of
 * params (all BAD_REQUEST).  Keys the table does not name ("ts",
 * "reply_to", "ttl_s", "requested_by", ...) are accepted and ignored.
 */
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

static const struct oh_vfield envelope_fields[] = {
		OH_VFIELD("req_id", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD("action", OH_VT_STRING, OH_VF_REQUIRED | OH_VF_MIN, 1),
		OH_VFIELD("actor", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD("params", OH_VT_OBJECT, OH_VF_NULL),
		OH_VFIELD_END,
};
static const struct oh_vobject envelope_spec = OH_VOBJECT(envelope_fields, OH_V_IGNORE);

void envelope_clear(struct envelope *env)
{
	json_decref(env->params);
	json_decref(env->root);
	memset(env, 0, sizeof *env);
}

enum ack_code envelope_from_json(json_t *root, struct envelope *env, char *err, size_t errlen)
{
	memset(env, 0, sizeof *env);
	if(!json_is_object(root)) {
		dev_uuid4(env->req_id);
		snprintf(err, errlen, "the envelope must be a JSON object");
		return ACK_BAD_REQUEST;
	}
	env->root = json_incref(root);

	/* Read what can be echoed before judging anything. */
	const json_t *req_id = json_object_get(root, "req_id");
	if(json_is_string(req_id) && json_string_length(req_id) > 0 &&
			json_string_length(req_id) < sizeof env->req_id)
		snprintf(env->req_id, sizeof env->req_id, "%s", json_string_value(req_id));
	else
		dev_uuid4(env->req_id);
	const json_t *action = json_object_get(root, "action");
	if(json_is_string(action) && json_string_length(action) > 0)
		env->action = json_string_value(action);
	const json_t *actor = json_object_get(root, "actor");
	if(json_is_string(actor))
		env->actor = json_string_value(actor);

	if(oh_json_validate(root, &envelope_spec, "", NULL, err, errlen))
		return ACK_BAD_REQUEST;
	if(json_is_string(req_id) && json_string_length(req_id) >= sizeof env->req_id) {
		snprintf(err, errlen, "req_id: longer than %zu bytes", sizeof env->req_id - 1);
		return ACK_BAD_REQUEST;
	}
	if(env->actor) {
		const char *const *a = envelope_actors;
		while(*a && strcmp(*a, env->actor))
			a++;
		if(!*a) {
			snprintf(err, errlen,
					"actor: \"%.64s\" is not allowed (expected orchestrator, app, user or test)",
					env->actor);
			return ACK_BAD_REQUEST;
		}
	}
	json_t *params = json_object_get(root, "params");
	if(json_is_object(params)) {
		/* The limit is on the serialised form, as the deployed agent
		 * measures it; JSON_COMPACT is the closest to Python's default. */
		size_t size = json_dumpb(params, NULL, 0, JSON_COMPACT);
		if(size > ENVELOPE_MAX_PARAMS) {
			snprintf(err, errlen, "params: %zu bytes serialised, over the limit of %d", size,
					ENVELOPE_MAX_PARAMS);
			return ACK_BAD_REQUEST;
		}
		env->params = json_incref(params);
	} else {
		env->params = json_object();
		if(!env->params) {
			snprintf(err, errlen, "out of memory");
			return ACK_EXCEPTION;
		}
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
