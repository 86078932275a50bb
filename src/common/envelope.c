/*
 * The one command-envelope parser (see envelope.h).  The checks run in the
 * order the deployed agent applies them, which is also the order the host
 * always had: the field types from one table, then the length of req_id,
 * then the actor, then the size of params.
 */
#include "envelope.h"

#include <stdio.h>
#include <string.h>

#include "oh/validate.h"
#include "utf8.h"

/* The types, by the one validator (include/oh/validate.h); other keys are
 * the devices' business and pass. */
static const struct oh_vfield envelope_fields[] = {
		OH_VFIELD("req_id", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD("action", OH_VT_STRING, OH_VF_REQUIRED | OH_VF_MIN, .min = 1),
		OH_VFIELD("actor", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD("params", OH_VT_OBJECT, OH_VF_NULL),
		OH_VFIELD_END,
};
static const struct oh_vobject envelope_table = OH_VOBJECT(envelope_fields, OH_V_IGNORE);

static bool actor_allowed(const struct envelope_rules *rules, const char *actor)
{
	size_t len = strlen(actor);
	if(!len || (rules->actor_max && len > rules->actor_max))
		return false;
	if(!rules->actors)
		return true;
	for(const char *const *a = rules->actors; *a; a++) {
		if(!strcmp(*a, actor))
			return true;
	}
	return false;
}

enum envelope_status envelope_read(const json_t *root, const struct envelope_rules *rules,
		struct envelope_fields *f, char *err, size_t errlen)
{
	memset(f, 0, sizeof *f);
	if(!json_is_object(root)) {
		snprintf(err, errlen, "the envelope must be a JSON object");
		return ENVELOPE_NOT_OBJECT;
	}

	/* Read what can be echoed before judging anything. */
	const json_t *req_id = json_object_get(root, "req_id");
	if(json_is_string(req_id) && json_string_length(req_id) > 0 &&
			json_string_length(req_id) <= OH_REQ_ID_MAX)
		f->req_id = json_string_value(req_id);
	const json_t *action = json_object_get(root, "action");
	if(json_is_string(action) && json_string_length(action) > 0)
		f->action = json_string_value(action);
	const json_t *actor = json_object_get(root, "actor");
	if(json_is_string(actor)) {
		f->actor = json_string_value(actor);
		f->actor_ok = actor_allowed(rules, f->actor);
	}
	const json_t *params = json_object_get(root, "params");
	if(json_is_object(params))
		f->params = params;

	if(oh_json_validate(root, &envelope_table, "", NULL, err, errlen))
		return ENVELOPE_BAD_FIELD;
	if(json_is_string(req_id) && json_string_length(req_id) > OH_REQ_ID_MAX) {
		snprintf(err, errlen, "req_id: longer than %d bytes", OH_REQ_ID_MAX);
		return ENVELOPE_BAD_FIELD;
	}
	if(f->actor && !f->actor_ok) {
		if(rules->actors)
			snprintf(err, errlen, "actor: \"%.*s\" is not allowed (expected %s)",
					oh_utf8_cut(f->actor, 64), f->actor, rules->actors_text);
		else if(rules->actor_max)
			snprintf(err, errlen, "actor: expected a string of 1-%zu characters", rules->actor_max);
		else
			snprintf(err, errlen, "actor: expected a non-empty string");
		return ENVELOPE_BAD_FIELD;
	}
	if(f->params && rules->params_max) {
		/* The limit is on the serialised form, as the deployed agent
		 * measures it; JSON_COMPACT is the closest to Python's default. */
		size_t size = json_dumpb(f->params, NULL, 0, JSON_COMPACT);
		if(size > rules->params_max) {
			snprintf(err, errlen, "params: %zu bytes serialised, over the limit of %zu", size,
					rules->params_max);
			return ENVELOPE_BAD_FIELD;
		}
	}
	return ENVELOPE_OK;
}
