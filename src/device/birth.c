/*
 * The answer to a host's birth message (see birth.h).  The payload is read
 * with the shared field table; unknown keys are allowed, so a later host may
 * add some.
 */
#include "birth.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/validate.h"

static const struct oh_vfield birth_fields[] = {
		OH_VFIELD("online", OH_VT_BOOL, OH_VF_REQUIRED),
		OH_VFIELD("node", OH_VT_STRING, 0),
		OH_VFIELD("ts", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD_END,
};
static const struct oh_vobject birth_spec = OH_VOBJECT(birth_fields, OH_V_IGNORE);

void birth_state_clear(struct birth_state *st)
{
	free(st->answered);
	st->answered = NULL;
}

enum birth_action birth_judge(struct birth_state *st, const void *payload, size_t len, bool retained,
		char *why, size_t whylen)
{
	snprintf(why, whylen, "%s", "");
	if(len == 0) {
		/* The retained birth was cleared: no host to answer. */
		birth_state_clear(st);
		return BIRTH_IGNORE;
	}
	if(len > BIRTH_MAX_PAYLOAD) {
		snprintf(why, whylen, "payload of %zu bytes (at most %d)", len, BIRTH_MAX_PAYLOAD);
		return BIRTH_IGNORE;
	}
	json_error_t jerr;
	json_t *j = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if(!json_is_object(j)) {
		snprintf(why, whylen, "not a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
		json_decref(j);
		return BIRTH_IGNORE;
	}
	enum birth_action act = BIRTH_IGNORE;
	if(oh_json_validate(j, &birth_spec, "", NULL, why, whylen))
		goto out;
	if(!json_is_true(json_object_get(j, "online"))) {
		birth_state_clear(st);
		goto out;
	}
	const char *node = json_string_value(json_object_get(j, "node"));
	const char *ts = json_string_value(json_object_get(j, "ts"));
	char *key = NULL;
	if(asprintf(&key, "%s\n%s", node ? node : "", ts ? ts : "") < 0) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if(st->answered && !strcmp(st->answered, key)) {
		free(key);
		goto out;
	}
	free(st->answered);
	st->answered = key;
	act = retained ? BIRTH_IGNORE : BIRTH_ANSWER;
out:
	json_decref(j);
	return act;
}
