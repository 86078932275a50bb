/*
 * Unit tests of the one JSON validator (src/common/validate.c,
 * include/oh/validate.h): a table of cases, each a document and the exact
 * error text it must get ("" for none), so the rules decided once (null is
 * absence, unknown keys per object, "{path}: {why}") are pinned here.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "oh/validate.h"

static const char *const actions[] = {"start", "stop", NULL};

static const struct oh_vfield params_fields[] = {
		OH_VFIELD("source", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 8),
		OH_VFIELD("lease_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MIN_EXCL | OH_VF_MAX, .min = 0, .max = 600),
		OH_VFIELD("note", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD_END,
};
static const struct oh_vobject params_spec = OH_VOBJECT(params_fields, OH_V_REFUSE);

static const struct oh_vfield command_fields[] = {
		OH_VFIELD("device_id", OH_VT_STRING, OH_VF_REQUIRED, .check = oh_vcheck_device_id),
		OH_VFIELD("action", OH_VT_STRING, OH_VF_REQUIRED, .one_of = actions),
		OH_VFIELD("params", OH_VT_OBJECT, 0, .object = &params_spec),
		OH_VFIELD_END,
};
static const struct oh_vobject command_spec = OH_VOBJECT(command_fields, OH_V_IGNORE);

static const struct oh_vfield job_fields[] = {
		OH_VFIELD("commands", OH_VT_ARRAY, OH_VF_REQUIRED | OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 3,
				.object = &command_spec),
		OH_VFIELD("labels", OH_VT_ARRAY, 0, .items = OH_VT_STRING),
		OH_VFIELD("caps", OH_VT_OBJECT, 0, .items = OH_VT_OBJECT),
		OH_VFIELD("count", OH_VT_INT, OH_VF_MIN, .min = 1),
		OH_VFIELD("on", OH_VT_BOOL, 0),
		OH_VFIELD_END,
};
static const struct oh_vobject job_spec = OH_VOBJECT(job_fields, OH_V_REFUSE);

#define CMD(extra) "{\"commands\": [{\"device_id\": \"d1\", \"action\": \"start\"" extra "}]}"

static const struct {
	const char *doc;
	const char *err; /* "" when valid */
} cases[] = {
		{CMD(""), ""},
		{CMD(", \"params\": {\"source\": \"cam\", \"lease_s\": 600}"), ""},
		/* null is absence: optional fields may be null, required ones not */
		{CMD(", \"params\": null"), ""},
		{CMD(", \"params\": {\"source\": null, \"lease_s\": null}"), ""},
		{"{\"commands\": null}", "commands: missing (expected an array of objects)"},
		{"{}", "commands: missing (expected an array of objects)"},
		{"{\"commands\": [{\"device_id\": null, \"action\": \"stop\"}]}",
				"commands[0].device_id: missing (expected a string)"},
		/* OH_VF_NULL: null is a value, the wrong type still is not */
		{CMD(", \"params\": {\"note\": null}"), ""},
		{CMD(", \"params\": {\"note\": 1}"), "commands[0].params.note: expected a string or null"},
		/* types, ranges, patterns, one_of */
		{"{\"commands\": 5}", "commands: expected an array of objects"},
		{"{\"commands\": []}", "commands: expected 1-3 items, got 0"},
		{"{\"commands\": [1]}", "commands[0]: expected an object"},
		{"{\"commands\": [{\"device_id\": \"a/b\", \"action\": \"stop\"}]}",
				"commands[0].device_id: must be 1-64 of [A-Za-z0-9._-], not \".\" or \"..\""},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": \"fly\"}]}",
				"commands[0].action: must be one of start, stop"},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": 3}]}",
				"commands[0].action: expected a string"},
		{CMD(", \"params\": []"), "commands[0].params: expected an object"},
		{CMD(", \"params\": {\"source\": \"\"}"),
				"commands[0].params.source: expected a string of 1-8 characters"},
		{CMD(", \"params\": {\"source\": \"123456789\"}"),
				"commands[0].params.source: expected a string of 1-8 characters"},
		{CMD(", \"params\": {\"source\": \"a\\u0000b\"}"),
				"commands[0].params.source: expected a string of 1-8 characters"},
		{CMD(", \"params\": {\"lease_s\": 0}"),
				"commands[0].params.lease_s: 0 is out of range: expected above 0 and at most 600"},
		{CMD(", \"params\": {\"lease_s\": 601}"),
				"commands[0].params.lease_s: 601 is out of range: expected above 0 and at most 600"},
		{CMD(", \"params\": {\"lease_s\": \"30\"}"), "commands[0].params.lease_s: expected a number"},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": \"stop\"}], \"count\": 0}",
				"count: 0 is out of range: expected at least 1"},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": \"stop\"}], \"count\": 1.5}",
				"count: expected an integer"},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": \"stop\"}], \"on\": 1}",
				"on: expected true or false"},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": \"stop\"}], \"labels\": [\"a\", 2]}",
				"labels[1]: expected a string"},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": \"stop\"}], \"caps\": {\"ndi\": 1}}",
				"caps.ndi: expected an object"},
		/* unknown keys: refused or ignored, per object */
		{CMD(", \"extra\": 1"), ""},
		{CMD(", \"params\": {\"lease\": 30}"), "commands[0].params.lease: unknown key"},
		{"{\"commands\": [{\"device_id\": \"d\", \"action\": \"stop\"}], \"comands\": []}",
				"comands: unknown key"},
};

static void test_cases(void)
{
	for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_error_t jerr;
		json_t *doc = json_loads(cases[i].doc, JSON_ALLOW_NUL, &jerr);
		if(!CHECK(doc)) {
			printf("     case %zu: %s\n", i, jerr.text);
			continue;
		}
		char err[256] = "";
		int rc = oh_json_validate(doc, &job_spec, "", NULL, err, sizeof err);
		CHECK_STR_EQ(err, cases[i].err);
		CHECK_INT_EQ(rc, cases[i].err[0] ? OH_ERR_INVAL : OH_OK);
		json_decref(doc);
	}
}

static void test_paths_and_edges(void)
{
	char err[256];
	json_t *arr = json_array();
	CHECK_INT_EQ(oh_json_validate(arr, &params_spec, "", NULL, err, sizeof err), OH_ERR_INVAL);
	CHECK_STR_EQ(err, "body: expected an object");
	CHECK_INT_EQ(oh_json_validate(arr, &params_spec, "params", NULL, err, sizeof err), OH_ERR_INVAL);
	CHECK_STR_EQ(err, "params: expected an object");
	json_decref(arr);

	/* A client's long key is cut on a character boundary in the message. */
	char key[200];
	memset(key, 'k', sizeof key);
	memcpy(key + 63, "\xc3\xa9", 2); /* é across the 64-byte cut */
	key[sizeof key - 1] = '\0';
	json_t *doc = json_pack("{s:i}", key, 1);
	CHECK_INT_EQ(oh_json_validate(doc, &params_spec, "params", NULL, err, sizeof err), OH_ERR_INVAL);
	CHECK(strlen(err) == strlen("params.") + 63 + strlen(": unknown key"));
	json_decref(doc);

	/* A small buffer truncates, never overruns. */
	doc = json_pack("{s:s}", "action", "fly");
	char tiny[12];
	static const struct oh_vfield f[] = {
			OH_VFIELD("action", OH_VT_STRING, 0, .one_of = actions),
			OH_VFIELD_END,
	};
	static const struct oh_vobject spec = OH_VOBJECT(f, OH_V_REFUSE);
	CHECK_INT_EQ(oh_json_validate(doc, &spec, "", NULL, tiny, sizeof tiny), OH_ERR_INVAL);
	CHECK_STR_EQ(tiny, "action: mus");
	json_decref(doc);

	char buf[64];
	CHECK_STR_EQ(oh_vfield_expect(&job_fields[0], buf, sizeof buf), "an array of objects");
	CHECK_STR_EQ(oh_vfield_expect(&params_fields[2], buf, sizeof buf), "a string or null");
}

int main(void)
{
	test_cases();
	test_paths_and_edges();
	return check_summary();
}
