/*
 * Unit tests of command envelope validation and ack construction
 * (src/device/dev_envelope.c over src/common/envelope.c), against the rules of the deployed agent:
 * BAD_JSON for syntax, BAD_REQUEST for a missing or empty action, params
 * that are not an object or are over 16384 bytes serialised, and an actor
 * outside orchestrator/app/user/test.
 */
#include "check.h"
#include "dev_envelope.h"

#include <ctype.h>
#include <stdlib.h>

static enum ack_code parse(const char *text, struct envelope *env, char *err, size_t len)
{
	err[0] = '\0';
	return envelope_parse(text, strlen(text), env, err, len);
}

static int is_uuid4(const char *s)
{
	if(strlen(s) != 36)
		return 0;
	for(int i = 0; i < 36; i++) {
		if(i == 8 || i == 13 || i == 18 || i == 23) {
			if(s[i] != '-')
				return 0;
		} else if(!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
			return 0;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void test_valid(void)
{
	struct envelope env;
	char err[256];
	enum ack_code rc = parse(
			"{\"req_id\": \"c0ffee\", \"actor\": \"app\", \"ts\": \"2026-11-28T10:00:00Z\","
			" \"action\": \"start\", \"params\": {\"device_id\": \"rpi-01\", \"source\": \"CAM-1\"},"
			" \"reply_to\": null, \"ttl_s\": null, \"requested_by\": \"ui\"}",
			&env, err, sizeof err);
	CHECK_INT_EQ(rc, ACK_OK);
	CHECK_STR_EQ(env.req_id, "c0ffee");
	CHECK_STR_EQ(env.action, "start");
	CHECK_STR_EQ(env.actor, "app");
	CHECK_STR_EQ(json_string_value(json_object_get(env.params, "source")), "CAM-1");
	envelope_clear(&env);

	/* Minimal: action only; req_id made up, params an empty object. */
	rc = parse("{\"action\": \"ping\"}", &env, err, sizeof err);
	CHECK_INT_EQ(rc, ACK_OK);
	CHECK(is_uuid4(env.req_id));
	CHECK(env.actor == NULL);
	CHECK(json_is_object(env.params) && json_object_size(env.params) == 0);
	envelope_clear(&env);

	rc = parse("{\"action\": \"ping\", \"req_id\": null, \"actor\": null, \"params\": null}", &env, err,
			sizeof err);
	CHECK_INT_EQ(rc, ACK_OK);
	CHECK(is_uuid4(env.req_id));
	envelope_clear(&env);

	const char *actors[] = {"orchestrator", "app", "user", "test"};
	for(int i = 0; i < 4; i++) {
		char text[128];
		snprintf(text, sizeof text, "{\"action\": \"ping\", \"actor\": \"%s\"}", actors[i]);
		CHECK_INT_EQ(parse(text, &env, err, sizeof err), ACK_OK);
		envelope_clear(&env);
	}

	/* Two UUIDs differ. */
	char a[DEV_UUID_LEN], b[DEV_UUID_LEN];
	dev_uuid4(a);
	dev_uuid4(b);
	CHECK(is_uuid4(a) && is_uuid4(b) && strcmp(a, b));
}

/* Every req_id the host accepts comes back in the ack, or the host could not
 * match it and would report a timeout instead of the device's answer. */
static void test_longest_host_req_id_kept(void)
{
	char id[OH_REQ_ID_MAX + 1], text[512], err[200];
	memset(id, 'r', OH_REQ_ID_MAX);
	id[OH_REQ_ID_MAX] = '\0';
	snprintf(text, sizeof text, "{\"req_id\": \"%s\", \"action\": \"ping\"}", id);
	struct envelope env;
	CHECK_INT_EQ(parse(text, &env, err, sizeof err), ACK_OK);
	CHECK_STR_EQ(env.req_id, id);
	envelope_clear(&env);
}

static void test_bad_json(void)
{
	struct envelope env;
	char err[256];
	const char *bad[] = {"", "{", "{\"action\": }", "nope", "{\"action\": \"a\", \"action\": \"b\"}"};
	for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_INT_EQ(parse(bad[i], &env, err, sizeof err), ACK_BAD_JSON);
		CHECK(is_uuid4(env.req_id));
		CHECK(env.action == NULL);
		envelope_clear(&env);
	}
	/* Not NUL-terminated: the length is what counts. */
	const char text[] = "{\"action\": \"ping\"}garbage";
	CHECK_INT_EQ(envelope_parse(text, 18, &env, err, sizeof err), ACK_OK);
	envelope_clear(&env);
	CHECK_INT_EQ(envelope_parse(text, sizeof text - 1, &env, err, sizeof err), ACK_BAD_JSON);
	CHECK_STR_CONTAINS(err, "line 1");
	envelope_clear(&env);
}

static void expect_bad_request(const char *text, const char *needle, int line)
{
	struct envelope env;
	char err[256];
	enum ack_code rc = parse(text, &env, err, sizeof err);
	check_report(rc == ACK_BAD_REQUEST && strstr(err, needle), __FILE__, line, text);
	if(rc != ACK_BAD_REQUEST || !strstr(err, needle))
		printf("     code %s, err \"%s\", wanted \"%s\"\n", ack_code_name(rc), err, needle);
	envelope_clear(&env);
}

static void test_bad_request(void)
{
	expect_bad_request("[1, 2]", "must be a JSON object", __LINE__);
	expect_bad_request("\"ping\"", "must be a JSON object", __LINE__);
	expect_bad_request("{}", "action", __LINE__);
	expect_bad_request("{\"action\": \"\"}", "action", __LINE__);
	expect_bad_request("{\"action\": 3}", "action", __LINE__);
	expect_bad_request("{\"action\": null}", "action", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"params\": []}", "params", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"params\": \"x\"}", "params", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"params\": 1}", "params", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"actor\": \"ui\"}", "actor", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"actor\": \"host:alice\"}", "not allowed", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"actor\": \"\"}", "actor", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"actor\": 7}", "actor", __LINE__);
	expect_bad_request("{\"action\": \"start\", \"req_id\": 7}", "req_id", __LINE__);

	/* What can be read is kept for the ack. */
	struct envelope env;
	char err[256];
	CHECK_INT_EQ(parse("{\"req_id\": \"r1\", \"action\": \"start\", \"actor\": \"ui\"}", &env, err,
				     sizeof err),
			ACK_BAD_REQUEST);
	CHECK_STR_EQ(env.req_id, "r1");
	CHECK_STR_EQ(env.action, "start");
	CHECK_STR_EQ(env.actor, "ui");
	envelope_clear(&env);
}

/* params whose compact serialisation is exactly n bytes: {"s":"xxx..."}. */
static char *params_of_size(size_t n)
{
	const char *head = "{\"action\": \"start\", \"params\": {\"s\":\"";
	size_t fill = n - strlen("{\"s\":\"\"}");
	char *text = malloc(strlen(head) + fill + 8);
	strcpy(text, head);
	memset(text + strlen(head), 'x', fill);
	strcpy(text + strlen(head) + fill, "\"}}");
	return text;
}

static void test_params_size(void)
{
	struct envelope env;
	char err[256];
	char *text = params_of_size(ENVELOPE_MAX_PARAMS);
	CHECK_INT_EQ(parse(text, &env, err, sizeof err), ACK_OK);
	envelope_clear(&env);
	free(text);
	text = params_of_size(ENVELOPE_MAX_PARAMS + 1);
	CHECK_INT_EQ(parse(text, &env, err, sizeof err), ACK_BAD_REQUEST);
	CHECK_STR_CONTAINS(err, "16384");
	envelope_clear(&env);
	free(text);
}

static void test_ack(void)
{
	struct envelope env;
	char err[256];
	parse("{\"req_id\": \"c0ffee\", \"actor\": \"app\", \"action\": \"start\"}", &env, err, sizeof err);
	json_t *ack = ack_new(&env, ACK_OK, "ignored", json_pack("{s:i, s:s}", "pid", 4242, "input", "CAM-1"));
	CHECK(ack != NULL);
	CHECK_INT_EQ(json_object_size(ack), 8);
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "req_id")), "c0ffee");
	CHECK(json_is_true(json_object_get(ack, "ok")));
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "code")), "OK");
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "action")), "start");
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "actor")), "app");
	CHECK(json_is_null(json_object_get(ack, "error")));
	CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(ack, "details"), "pid")), 4242);
	const char *ts = json_string_value(json_object_get(ack, "ts"));
	CHECK(ts && strlen(ts) == 20 && ts[4] == '-' && ts[10] == 'T' && ts[19] == 'Z');
	json_decref(ack);

	ack = ack_new(&env, ACK_MODULE_ERROR, "cannot run 'x'", NULL);
	CHECK(json_is_false(json_object_get(ack, "ok")));
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "code")), "MODULE_ERROR");
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "error")), "cannot run 'x'");
	CHECK(json_is_null(json_object_get(ack, "details")));
	json_decref(ack);
	envelope_clear(&env);

	/* After BAD_JSON: no action, no actor, a fresh req_id. */
	parse("{", &env, err, sizeof err);
	ack = ack_new(&env, ACK_BAD_JSON, err, NULL);
	CHECK(json_is_null(json_object_get(ack, "action")));
	CHECK(json_is_null(json_object_get(ack, "actor")));
	CHECK(is_uuid4(json_string_value(json_object_get(ack, "req_id"))));
	CHECK_STR_EQ(json_string_value(json_object_get(ack, "code")), "BAD_JSON");
	json_decref(ack);
	envelope_clear(&env);

	/* An error cut mid-character still makes a valid JSON string. */
	parse("{\"action\": \"x\"}", &env, err, sizeof err);
	ack = ack_new(&env, ACK_DEVICE_ERROR, "caf\xc3", NULL);
	CHECK(ack && json_string_value(json_object_get(ack, "error")));
	json_decref(ack);
	envelope_clear(&env);

	const char *names[] = {"OK", "BAD_JSON", "BAD_REQUEST", "MODULE_ERROR", "DEVICE_ERROR", "EXCEPTION"};
	for(int i = 0; i < 6; i++)
		CHECK_STR_EQ(ack_code_name((enum ack_code)i), names[i]);
}

static void test_ts(void)
{
	char buf[DEV_TS_LEN];
	CHECK_STR_EQ(dev_ts_format(0, buf), "1970-01-01T00:00:00Z");
	CHECK_STR_EQ(dev_ts_format(1795860000, buf), "2026-11-28T10:00:00Z");
}

int main(void)
{
	test_valid();
	test_longest_host_req_id_kept();
	test_bad_json();
	test_bad_request();
	test_params_size();
	test_ack();
	test_ts();
	return check_summary();
}
