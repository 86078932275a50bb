/*
 * Unit tests of the command envelope as the host reads it: oh_command_parse
 * (src/core/command.c) over the one envelope parser (src/common/envelope.c)
 * that the device agent uses too (its rules are tested in
 * test_device_envelope.c).
 *
 * A table of payloads, each with the code the host answers (OK, BAD_JSON,
 * BAD_REQUEST) and the field the error must name; then what a refused
 * envelope still yields for its ack (req_id, action, a valid actor), and
 * that params is always an object on success; and that an ack keeps its
 * "error" when the text it is given is not UTF-8.
 */
#include <stdlib.h>

#include "check.h"
#include "plugin_ctx.h"

struct parsed {
	int rc;
	const char *code; /* NULL for OK */
	char err[256];
	struct oh_command cmd;
	json_t *json; /* owned: cmd borrows from it */
};

static void parse(const char *text, struct parsed *p)
{
	memset(p, 0, sizeof *p);
	json_error_t jerr;
	p->json = json_loads(text, JSON_DECODE_ANY, &jerr);
	struct oh_message msg = {.topic = "lab/orchestrator/ndi/cmd",
			.payload = text,
			.len = strlen(text),
			.json = p->json,
			.error = p->json ? NULL : jerr.text};
	p->rc = oh_command_parse(NULL, &msg, &p->cmd, &p->code, p->err, sizeof p->err);
}

static const struct {
	const char *payload;
	const char *code;  /* NULL: accepted */
	const char *field; /* what the error names */
} cases[] = {
		{"{\"action\": \"stop\"}", NULL, NULL},
		{"{\"action\": \"stop\", \"req_id\": null, \"actor\": null, \"params\": null}", NULL, NULL},
		{"{\"action\": \"stop\", \"ts\": \"x\", \"requested_by\": \"bob\", \"params\": {}}", NULL, NULL},
		{"{\"action\": \"stop\", \"actor\": \"host:alice\"}", NULL, NULL}, /* any actor on the host */
		{"{not json", "BAD_JSON", NULL},
		{"[1, 2]", "BAD_JSON", "must be a JSON object"},
		{"\"stop\"", "BAD_JSON", "must be a JSON object"},
		{"{}", "BAD_REQUEST", "action: missing"},
		{"{\"action\": \"\"}", "BAD_REQUEST", "action:"},
		{"{\"action\": 5}", "BAD_REQUEST", "action:"},
		{"{\"action\": null}", "BAD_REQUEST", "action:"},
		{"{\"action\": \"stop\", \"params\": []}", "BAD_REQUEST", "params:"},
		{"{\"action\": \"stop\", \"params\": \"rpi-01\"}", "BAD_REQUEST", "params:"},
		{"{\"action\": \"stop\", \"actor\": 7}", "BAD_REQUEST", "actor:"},
		{"{\"action\": \"stop\", \"actor\": \"\"}", "BAD_REQUEST", "actor: expected a string of 1-120"},
		{"{\"action\": \"stop\", \"req_id\": 7}", "BAD_REQUEST", "req_id:"},
};

static void test_table(void)
{
	for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct parsed p;
		parse(cases[i].payload, &p);
		const char *want = cases[i].code;
		int ok = want ? p.rc == OH_ERR_INVAL && p.code && !strcmp(p.code, want)
			      : p.rc == OH_OK && !p.code;
		if(ok && cases[i].field)
			ok = strstr(p.err, cases[i].field) != NULL;
		if(!check_report(ok, __FILE__, __LINE__, cases[i].payload))
			printf("     rc %d, code %s, err \"%s\"; wanted %s naming \"%s\"\n", p.rc,
					p.code ? p.code : "(none)", p.err, want ? want : "OK",
					cases[i].field ? cases[i].field : "");
		/* Whatever the verdict, the ack has a req_id. */
		CHECK(p.cmd.req_id[0] != '\0');
		if(!want)
			CHECK(json_is_object(p.cmd.params));
		json_decref(p.json);
	}
}

static void test_long_fields(void)
{
	char text[700];
	char long_id[OH_REQ_ID_MAX + 2];
	memset(long_id, 'r', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	struct parsed p;
	snprintf(text, sizeof text, "{\"action\": \"stop\", \"req_id\": \"%s\"}", long_id);
	parse(text, &p);
	CHECK_STR_EQ(p.code, "BAD_REQUEST");
	CHECK_STR_CONTAINS(p.err, "req_id: longer than");
	CHECK(strcmp(p.cmd.req_id, long_id)); /* a fresh one instead */
	json_decref(p.json);

	long_id[OH_REQ_ID_MAX] = '\0'; /* exactly the limit */
	snprintf(text, sizeof text, "{\"action\": \"stop\", \"req_id\": \"%s\"}", long_id);
	parse(text, &p);
	CHECK_INT_EQ(p.rc, OH_OK);
	CHECK_STR_EQ(p.cmd.req_id, long_id);
	json_decref(p.json);

	char actor[122];
	memset(actor, 'a', 121);
	actor[121] = '\0';
	snprintf(text, sizeof text, "{\"action\": \"stop\", \"actor\": \"%s\"}", actor);
	parse(text, &p);
	CHECK_STR_EQ(p.code, "BAD_REQUEST");
	CHECK(p.cmd.actor == NULL); /* refused: the ack says anonymous */
	json_decref(p.json);
	actor[120] = '\0';
	snprintf(text, sizeof text, "{\"action\": \"stop\", \"actor\": \"%s\"}", actor);
	parse(text, &p);
	CHECK_INT_EQ(p.rc, OH_OK);
	CHECK_STR_EQ(p.cmd.actor, actor);
	json_decref(p.json);
}

/* A refusal still echoes what was valid, so the app can match the ack. */
static void test_refusal_echoes(void)
{
	struct parsed p;
	parse("{\"req_id\": \"r1\", \"action\": \"start\", \"actor\": \"alice\", \"params\": 3}", &p);
	CHECK_STR_EQ(p.code, "BAD_REQUEST");
	CHECK_STR_CONTAINS(p.err, "params");
	CHECK_STR_EQ(p.cmd.req_id, "r1");
	CHECK_STR_EQ(p.cmd.action, "start");
	CHECK_STR_EQ(p.cmd.actor, "alice");
	json_decref(p.json);
}

/* A plugin's error text cut inside a character (what "%.64s" of a client's
 * action did) is not UTF-8: jansson refuses it, and the ack used to go out
 * without "error".  The broken bytes become '?', the rest stays. */
static void test_ack_error_not_utf8(void)
{
	json_t *ack = oh_ack_new("r1", false, "BAD_ACTION", "x", "app", "unknown action \"ab\xc3\"", NULL);
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "error")), "unknown action \"ab?\"");
	json_decref(ack);
	/* Valid text is kept as it is; a surrogate and an overlong form are not
	 * characters. */
	ack = oh_ack_new("r1", false, "BAD_ACTION", "x", "app", "caf\xc3\xa9 \xed\xa0\x80 \xc0\xaf", NULL);
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "error")), "caf\xc3\xa9 ??? ??");
	json_decref(ack);
}

int main(void)
{
	test_table();
	test_long_fields();
	test_refusal_echoes();
	test_ack_error_not_utf8();
	return check_summary();
}
