/*
 * Unit tests of the agent's answer to a host's birth message
 * (src/device/birth.c): a new birth delivered live is answered once, the
 * retained one a fresh subscription brings is only recorded, the same
 * node and ts again is not answered, an offline message (or a cleared
 * retained birth) forgets the record, and bad payloads are ignored with a
 * reason that names the field.
 */
#include "birth.h"
#include "check.h"

#define BIRTH_A "{\"online\": true, \"node\": \"host-a\", \"ts\": \"2026-11-28T10:00:00Z\"}"
#define BIRTH_A2 "{\"online\": true, \"node\": \"host-a\", \"ts\": \"2026-11-28T10:00:07Z\"}"
#define BIRTH_B "{\"online\": true, \"node\": \"host-b\", \"ts\": \"2026-11-28T10:00:00Z\"}"
#define OFFLINE_A "{\"online\": false, \"node\": \"host-a\", \"ts\": null}"

static char why[200];

static enum birth_action judge(struct birth_state *st, const char *text, bool retained)
{
	return birth_judge(st, text, strlen(text), retained, why, sizeof why);
}

static void test_new_births_are_answered_once(void)
{
	struct birth_state st = {0};
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_ANSWER);
	CHECK_STR_EQ(why, "");
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_IGNORE);
	/* A new ts, or another node, is a new birth. */
	CHECK_INT_EQ(judge(&st, BIRTH_A2, false), BIRTH_ANSWER);
	CHECK_INT_EQ(judge(&st, BIRTH_B, false), BIRTH_ANSWER);
	CHECK_INT_EQ(judge(&st, BIRTH_B, false), BIRTH_IGNORE);
	/* Key order and extra keys do not make a birth new or bad. */
	CHECK_INT_EQ(judge(&st,
				     "{\"ts\": \"2026-11-28T10:00:00Z\", \"node\": \"host-b\", \"online\": true,"
				     " \"version\": \"9\"}",
				     false),
			BIRTH_IGNORE);
	CHECK_STR_EQ(why, "");
	birth_state_clear(&st);
}

static void test_retained_birth_is_recorded_not_answered(void)
{
	struct birth_state st = {0};
	/* Stored before we subscribed: the host was there when we announced. */
	CHECK_INT_EQ(judge(&st, BIRTH_A, true), BIRTH_IGNORE);
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_IGNORE);
	CHECK_INT_EQ(judge(&st, BIRTH_A2, false), BIRTH_ANSWER);
	birth_state_clear(&st);
}

static void test_offline_forgets(void)
{
	struct birth_state st = {0};
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_ANSWER);
	CHECK_INT_EQ(judge(&st, OFFLINE_A, false), BIRTH_IGNORE);
	CHECK_STR_EQ(why, "");
	/* Back within the same second: the same ts, still a new birth. */
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_ANSWER);
	/* The retained birth cleared (empty payload) forgets too. */
	CHECK_INT_EQ(birth_judge(&st, "", 0, true, why, sizeof why), BIRTH_IGNORE);
	CHECK(st.answered == NULL);
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_ANSWER);
	birth_state_clear(&st);
	CHECK(st.answered == NULL);
}

static void test_bad_payloads_are_ignored(void)
{
	struct birth_state st = {0};
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_ANSWER);
	CHECK_INT_EQ(judge(&st, "not json", false), BIRTH_IGNORE);
	CHECK_STR_CONTAINS(why, "not a JSON object");
	CHECK_INT_EQ(judge(&st, "[true]", false), BIRTH_IGNORE);
	CHECK_STR_CONTAINS(why, "not a JSON object");
	CHECK_INT_EQ(judge(&st, "{\"node\": \"host-c\"}", false), BIRTH_IGNORE);
	CHECK_STR_CONTAINS(why, "online: missing");
	CHECK_INT_EQ(judge(&st, "{\"online\": \"yes\", \"node\": \"host-c\"}", false), BIRTH_IGNORE);
	CHECK_STR_CONTAINS(why, "online: expected true or false");
	CHECK_INT_EQ(judge(&st, "{\"online\": true, \"node\": 5}", false), BIRTH_IGNORE);
	CHECK_STR_CONTAINS(why, "node: expected a string");
	CHECK_INT_EQ(judge(&st, "{\"online\": true, \"ts\": 5}", false), BIRTH_IGNORE);
	CHECK_STR_CONTAINS(why, "ts: expected a string or null");
	/* None of them changed what was answered. */
	CHECK_INT_EQ(judge(&st, BIRTH_A, false), BIRTH_IGNORE);

	static char big[BIRTH_MAX_PAYLOAD + 2];
	memset(big, ' ', sizeof big - 1);
	big[0] = '{';
	big[sizeof big - 2] = '}';
	CHECK_INT_EQ(judge(&st, big, false), BIRTH_IGNORE);
	CHECK_STR_CONTAINS(why, "bytes");
	birth_state_clear(&st);
}

int main(void)
{
	test_new_births_are_answered_once();
	test_retained_birth_is_recorded_not_answered();
	test_offline_forgets();
	test_bad_payloads_are_ignored();
	return check_summary();
}
