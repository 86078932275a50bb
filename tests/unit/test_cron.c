/*
 * Unit tests for src/core/cron.c: every field form and error, the
 * day-of-month/day-of-week rule, calendar edges, daylight-saving changes
 * in Europe/Berlin and America/New_York (2026), and a cross-check of
 * cron_next() against naive minute-by-minute searches.  The clock is
 * injected: each check passes its own `after`.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cron.h"
#include "oh/defs.h"
#include "timeutil.h"

static time_t iso(const char *text)
{
	time_t t = 0;
	char err[128];
	if(time_parse_iso8601(text, NULL, &t, err, sizeof(err))) {
		printf("bad test time %s: %s\n", text, err);
		abort();
	}
	return t;
}

static uint64_t bits(int lo, int hi, int step)
{
	uint64_t b = 0;
	for(int i = lo; i <= hi; i += step)
		b |= (uint64_t)1 << i;
	return b;
}

/* Parse must succeed; returns the expression (zeroed on failure). */
static struct cron_expr parse_ok(const char *text, int line)
{
	struct cron_expr e = {0};
	char err[128] = "";
	if(!check_report(cron_parse(text, &e, err, sizeof(err)) == OH_OK, __FILE__, line, text))
		printf("     error: %s\n", err);
	return e;
}
#define PARSE(text) parse_ok((text), __LINE__)

/* Parse must fail, leave *out alone, and name the field and the token. */
#define PARSE_FAILS(text, frag)                                                                              \
	do {                                                                                                 \
		struct cron_expr e_;                                                                         \
		memset(&e_, 0xab, sizeof(e_));                                                               \
		char err_[128] = "";                                                                         \
		CHECK_INT_EQ(cron_parse((text), &e_, err_, sizeof(err_)), OH_ERR_INVAL);                     \
		CHECK_STR_CONTAINS(err_, (frag));                                                            \
		CHECK(((unsigned char *)&e_)[0] == 0xab);                                                    \
	} while(0)

/* cron_next(expr, tz, after) must be `want` (ISO, UTC). */
#define NEXT_EQ(expr, tz, after, want)                                                                       \
	do {                                                                                                 \
		struct cron_expr e_ = PARSE(expr);                                                           \
		time_t n_ = 0;                                                                               \
		char b_[TIME_UTC_BUFLEN];                                                                    \
		int rc_ = cron_next(&e_, (tz), iso(after), &n_);                                             \
		if(!check_report(rc_ == OH_OK, __FILE__, __LINE__, expr " after " after " in " #tz))         \
			printf("     rc %d\n", rc_);                                                         \
		else if(!check_report(n_ == iso(want), __FILE__, __LINE__, expr " after " after " in " #tz)) \
			printf("     got %s, expected %s\n", time_format_utc(n_, b_, sizeof(b_)), (want));   \
	} while(0)

static void test_parse_forms(void)
{
	struct cron_expr e;

	e = PARSE("* * * * *");
	CHECK(e.minutes == bits(0, 59, 1));
	CHECK(e.hours == bits(0, 23, 1));
	CHECK(e.mdays == bits(1, 31, 1));
	CHECK(e.months == bits(1, 12, 1));
	CHECK(e.wdays == bits(0, 6, 1));
	CHECK_INT_EQ(e.flags, CRON_MIN_STAR | CRON_HOUR_STAR | CRON_DOM_STAR | CRON_DOW_STAR);

	e = PARSE("5 4 3 2 1");
	CHECK(e.minutes == bits(5, 5, 1));
	CHECK(e.hours == bits(4, 4, 1));
	CHECK(e.mdays == bits(3, 3, 1));
	CHECK(e.months == bits(2, 2, 1));
	CHECK(e.wdays == bits(1, 1, 1));
	CHECK_INT_EQ(e.flags, 0);

	e = PARSE("0,15,30,45 0-5,12 1,15-17 1-3,12 1-5");
	CHECK(e.minutes == bits(0, 45, 15));
	CHECK(e.hours == (bits(0, 5, 1) | bits(12, 12, 1)));
	CHECK(e.mdays == (bits(1, 1, 1) | bits(15, 17, 1)));
	CHECK(e.months == (bits(1, 3, 1) | bits(12, 12, 1)));
	CHECK(e.wdays == bits(1, 5, 1));

	/* Steps on `*`, ranges and single values (N/s = N-max/s). */
	e = PARSE("*/5 */6 */10 */4 */2");
	CHECK(e.minutes == bits(0, 59, 5));
	CHECK(e.hours == bits(0, 23, 6));
	CHECK(e.mdays == bits(1, 31, 10));
	CHECK(e.months == bits(1, 12, 4));
	CHECK(e.wdays == bits(0, 6, 2));
	CHECK_INT_EQ(e.flags, CRON_MIN_STAR | CRON_HOUR_STAR | CRON_DOM_STAR | CRON_DOW_STAR);
	e = PARSE("1-30/2 5/15 1-31/7 2/3 1-5/2");
	CHECK(e.minutes == bits(1, 30, 2));
	CHECK(e.hours == bits(5, 23, 15));
	CHECK(e.mdays == bits(1, 31, 7));
	CHECK(e.months == bits(2, 12, 3));
	CHECK(e.wdays == bits(1, 5, 2));
	e = PARSE("5/15 * * * *");
	CHECK(e.minutes == (bits(5, 5, 1) | bits(20, 20, 1) | bits(35, 35, 1) | bits(50, 50, 1)));
	e = PARSE("59/59 23/23 31/31 12/12 7/7");
	CHECK(e.minutes == bits(59, 59, 1));
	CHECK(e.wdays == bits(0, 0, 1));
	e = PARSE("*/59 * * * */7"); /* dow `*` spans 0-7: 0 and 7 are both Sunday */
	CHECK(e.minutes == (bits(0, 0, 1) | bits(59, 59, 1)));
	CHECK(e.wdays == bits(0, 0, 1));
	e = PARSE("*,5 * * * *");
	CHECK(e.minutes == bits(0, 59, 1));
	CHECK(e.flags & CRON_MIN_STAR);
	e = PARSE("5,* * * * *");
	CHECK(!(e.flags & CRON_MIN_STAR)); /* only a leading `*` counts */

	/* Names, any case, in lists and ranges. */
	e = PARSE("0 0 * jan,Mar,DEC mon-fri");
	CHECK(e.months == (bits(1, 1, 1) | bits(3, 3, 1) | bits(12, 12, 1)));
	CHECK(e.wdays == bits(1, 5, 1));
	e = PARSE("0 0 * Feb-Apr/2 FRI-7");
	CHECK(e.months == (bits(2, 2, 1) | bits(4, 4, 1)));
	CHECK(e.wdays == (bits(5, 6, 1) | bits(0, 0, 1)));
	e = PARSE("0 0 * * sun");
	CHECK(e.wdays == bits(0, 0, 1));
	e = PARSE("0 0 * * 7");
	CHECK(e.wdays == bits(0, 0, 1));
	e = PARSE("0 0 * * 0,7");
	CHECK(e.wdays == bits(0, 0, 1));
	e = PARSE("0 0 * * 5-7");
	CHECK(e.wdays == (bits(5, 6, 1) | bits(0, 0, 1)));
	e = PARSE("0 0 * * 0-7");
	CHECK(e.wdays == bits(0, 6, 1));
	CHECK(!(e.flags & CRON_DOW_STAR));
	e = PARSE("0 0 1 JAN-DEC SUN-SAT");
	CHECK(e.months == bits(1, 12, 1));
	CHECK(e.wdays == bits(0, 6, 1));

	/* Leading zeros and surrounding whitespace. */
	e = PARSE("  007\t08  09 010 006 \n");
	CHECK(e.minutes == bits(7, 7, 1));
	CHECK(e.hours == bits(8, 8, 1));
	CHECK(e.wdays == bits(6, 6, 1));

	/* Flags drive the DST and day rules. */
	CHECK_INT_EQ(PARSE("*/15 2 * * *").flags, CRON_MIN_STAR | CRON_DOM_STAR | CRON_DOW_STAR);
	CHECK_INT_EQ(PARSE("0 */2 1 * MON").flags, CRON_HOUR_STAR);
}

static void test_parse_macros(void)
{
	struct cron_expr a, b;
	static const char *const pairs[][2] = {
			{"@yearly", "0 0 1 1 *"},
			{"@annually", "0 0 1 1 *"},
			{"@monthly", "0 0 1 * *"},
			{"@weekly", "0 0 * * 0"},
			{"@daily", "0 0 * * *"},
			{"@midnight", "0 0 * * *"},
			{"@hourly", "0 * * * *"},
			{"  @HOURLY  ", "0 * * * *"},
			{"@Daily\n", "0 0 * * *"},
	};
	for(size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		a = PARSE(pairs[i][0]);
		b = PARSE(pairs[i][1]);
		if(!check_report(!memcmp(&a, &b, sizeof(a)), __FILE__, __LINE__, pairs[i][0]))
			printf("     differs from \"%s\"\n", pairs[i][1]);
	}
}

static void test_parse_errors(void)
{
	PARSE_FAILS("", "expected 5 fields, got 0");
	PARSE_FAILS("   ", "expected 5 fields, got 0");
	PARSE_FAILS("* * * *", "expected 5 fields, got 4");
	PARSE_FAILS("0 * * * * *", "expected 5 fields, got 6");
	PARSE_FAILS("0 0 * * * /bin/true", "expected 5 fields, got 6");
	PARSE_FAILS("@reboot", "@reboot");
	PARSE_FAILS("@reboot", "not supported");
	PARSE_FAILS("@every", "unknown macro \"@every\"");
	PARSE_FAILS("@", "unknown macro \"@\"");
	PARSE_FAILS("@daily 5", "unexpected \"5\" after @daily");

	PARSE_FAILS("60 * * * *", "minute: 60 out of range 0-59");
	PARSE_FAILS("61 * * * *", "minute: 61 out of range 0-59");
	PARSE_FAILS("99999999999999999999 * * * *", "minute: 99999999999999999999 out of range 0-59");
	PARSE_FAILS("* 24 * * *", "hour: 24 out of range 0-23");
	PARSE_FAILS("* * 0 * *", "day-of-month: 0 out of range 1-31");
	PARSE_FAILS("* * 32 * *", "day-of-month: 32 out of range 1-31");
	PARSE_FAILS("* * * 0 *", "month: 0 out of range 1-12");
	PARSE_FAILS("* * * 13 *", "month: 13 out of range 1-12");
	PARSE_FAILS("* * * * 8", "day-of-week: 8 out of range 0-7");
	PARSE_FAILS("0-60 * * * *", "minute: 60 out of range 0-59");
	PARSE_FAILS("* 20-24 * * *", "hour: 24 out of range 0-23");

	PARSE_FAILS("* * * * FOO", "day-of-week: bad token \"FOO\"");
	PARSE_FAILS("* * * * MONDAY", "day-of-week: bad token \"MONDAY\"");
	PARSE_FAILS("* * * * MON-FOO", "day-of-week: bad token \"MON-FOO\"");
	PARSE_FAILS("* * * JANUARY *", "month: bad token \"JANUARY\"");
	PARSE_FAILS("* * * XYZ *", "month: bad token \"XYZ\"");
	PARSE_FAILS("* * * * JAN", "day-of-week: bad token \"JAN\"");
	PARSE_FAILS("* * * MON *", "month: bad token \"MON\"");
	PARSE_FAILS("MON * * * *", "minute: bad token \"MON\"");
	PARSE_FAILS("* * SUN * *", "day-of-month: bad token \"SUN\"");
	PARSE_FAILS("5x * * * *", "minute: bad token \"5x\"");
	PARSE_FAILS("* 1-5-7 * * *", "hour: bad token \"1-5-7\"");
	PARSE_FAILS("* */5/2 * * *", "hour: bad token \"*/5/2\"");
	PARSE_FAILS("** * * * *", "minute: bad token \"**\"");
	PARSE_FAILS("*5 * * * *", "minute: bad token \"*5\"");
	PARSE_FAILS("*-5 * * * *", "minute: bad token \"*-5\"");
	PARSE_FAILS("-5 * * * *", "minute: bad token \"-5\"");
	PARSE_FAILS("5- * * * *", "minute: bad token \"5-\"");
	PARSE_FAILS("+5 * * * *", "minute: bad token \"+5\"");
	PARSE_FAILS("*/ * * * *", "minute: bad token \"*/\"");
	PARSE_FAILS("*/x * * * *", "minute: bad token \"*/x\"");
	PARSE_FAILS("*/-1 * * * *", "minute: bad token \"*/-1\"");
	PARSE_FAILS("/5 * * * *", "minute: bad token \"/5\"");
	PARSE_FAILS("* * * * 1.5", "day-of-week: bad token \"1.5\"");

	PARSE_FAILS("* 5-3 * * *", "hour: reversed range \"5-3\"");
	PARSE_FAILS("* * * DEC-JAN *", "month: reversed range \"DEC-JAN\"");
	PARSE_FAILS("* * * * FRI-MON", "day-of-week: reversed range \"FRI-MON\"");
	PARSE_FAILS("* * * * Sat-sun", "day-of-week: reversed range \"Sat-sun\""); /* 6-0; write SAT-7 */
	PARSE_FAILS("30-10/5 * * * *", "minute: reversed range \"30-10/5\"");

	PARSE_FAILS("*/0 * * * *", "minute: step 0 out of range 1-59 in \"*/0\"");
	PARSE_FAILS("* 1-5/0 * * *", "hour: step 0 out of range 1-23 in \"1-5/0\"");
	PARSE_FAILS("*/60 * * * *", "minute: step 60 out of range 1-59");
	PARSE_FAILS("* * * */13 *", "month: step 13 out of range 1-12");

	PARSE_FAILS("1,,2 * * * *", "minute: empty list item");
	PARSE_FAILS(",1 * * * *", "minute: empty list item");
	PARSE_FAILS("* 1, * * *", "hour: empty list item");
	PARSE_FAILS("* * * * ,", "day-of-week: empty list item");

	/* NULL arguments, NULL or tiny err buffers. */
	struct cron_expr e;
	CHECK_INT_EQ(cron_parse(NULL, &e, NULL, 0), OH_ERR_INVAL);
	CHECK_INT_EQ(cron_parse("* * * * *", NULL, NULL, 0), OH_ERR_INVAL);
	CHECK_INT_EQ(cron_parse("61 * * * *", &e, NULL, 0), OH_ERR_INVAL);
	char tiny[7];
	CHECK_INT_EQ(cron_parse("61 * * * *", &e, tiny, sizeof(tiny)), OH_ERR_INVAL);
	CHECK_STR_EQ(tiny, "minute");
	/* A huge token is cut in the message, which still names the field. */
	char big[600], err[128];
	memset(big, '9', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "* * * * ", 8);
	CHECK_INT_EQ(cron_parse(big, &e, err, sizeof(err)), OH_ERR_INVAL);
	CHECK_STR_CONTAINS(err, "day-of-week: 999");
	CHECK_STR_CONTAINS(err, "out of range 0-7");
}

static void test_next_basic(void)
{
	NEXT_EQ("* * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z");
	NEXT_EQ("* * * * *", NULL, "2026-01-01T00:00:59Z", "2026-01-01T00:01:00Z");
	NEXT_EQ("* * * * *", NULL, "2025-12-31T23:59:30Z", "2026-01-01T00:00:00Z");
	NEXT_EQ("*/5 * * * *", NULL, "2026-01-01T00:04:59Z", "2026-01-01T00:05:00Z");
	NEXT_EQ("*/5 * * * *", NULL, "2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z");
	NEXT_EQ("1-30/2 * * * *", NULL, "2026-01-01T00:29:00Z", "2026-01-01T01:01:00Z");
	NEXT_EQ("5/15 * * * *", NULL, "2026-01-01T00:50:00Z", "2026-01-01T01:05:00Z");
	NEXT_EQ("0 */6 * * *", NULL, "2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z");
	NEXT_EQ("30 23 * * *", NULL, "2026-12-31T23:30:00Z", "2027-01-01T23:30:00Z");
	NEXT_EQ("0 0 1 1 *", NULL, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
	NEXT_EQ("0 12 * JUN *", NULL, "2026-01-01T00:00:00Z", "2026-06-01T12:00:00Z");
	NEXT_EQ("0 12 * jun-aug/2 *", NULL, "2026-06-30T12:00:00Z", "2026-08-01T12:00:00Z");
	NEXT_EQ("15 10 * * MON-FRI", NULL, "2026-01-02T10:15:00Z", "2026-01-05T10:15:00Z"); /* Fri -> Mon */
	NEXT_EQ("0 9 * * 0", NULL, "2026-01-01T00:00:00Z", "2026-01-04T09:00:00Z");
	NEXT_EQ("0 9 * * 7", NULL, "2026-01-01T00:00:00Z", "2026-01-04T09:00:00Z");
	NEXT_EQ("0 9 * * SUN", NULL, "2026-01-01T00:00:00Z", "2026-01-04T09:00:00Z");
	NEXT_EQ("0 9 * * sat-7", NULL, "2026-01-01T00:00:00Z", "2026-01-03T09:00:00Z");
	/* Fractions of `after` do not matter: strictly after, minute-aligned. */
	NEXT_EQ("0 10 * * *", NULL, "2026-01-01T09:59:59Z", "2026-01-01T10:00:00Z");
	NEXT_EQ("0 10 * * *", NULL, "2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z");
	NEXT_EQ("0 10 * * *", NULL, "2026-01-01T10:00:01Z", "2026-01-02T10:00:00Z");
	/* "UTC" and "" mean UTC too; other zones shift. */
	NEXT_EQ("0 10 * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z");
	NEXT_EQ("0 10 * * *", "", "2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z");
	NEXT_EQ("0 10 * * *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-01-01T09:00:00Z");
	NEXT_EQ("0 10 * * *", "Europe/Berlin", "2026-07-01T00:00:00Z", "2026-07-01T08:00:00Z");
	NEXT_EQ("0 10 * * *", "Asia/Kolkata", "2026-01-01T05:00:00Z", "2026-01-02T04:30:00Z");
	NEXT_EQ("0 0 * * *", "Pacific/Kiritimati", "2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z"); /* UTC+14 */
	NEXT_EQ("0 0 * * *", "Pacific/Pago_Pago", "2026-01-01T00:00:00Z", "2026-01-01T11:00:00Z"); /* UTC-11 */
	/* Local date differs from the UTC date: Friday 23:30 in New York is
	 * Saturday in UTC. */
	NEXT_EQ("30 23 * * FRI", "America/New_York", "2026-01-01T00:00:00Z", "2026-01-03T04:30:00Z");

	/* @macros. */
	NEXT_EQ("@hourly", NULL, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z");
	NEXT_EQ("@daily", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
	NEXT_EQ("@midnight", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-01-01T23:00:00Z");
	NEXT_EQ("@weekly", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z");
	NEXT_EQ("@monthly", NULL, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z");
	NEXT_EQ("@yearly", NULL, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z");
	NEXT_EQ("@annually", NULL, "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z");
}

static void test_next_days(void)
{
	/* 2026-01-01 is a Thursday; 2026-01-02 a Friday. */
	/* Both restricted: either matches. */
	NEXT_EQ("0 0 13 * FRI", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
	NEXT_EQ("0 0 13 * FRI", NULL, "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z");
	NEXT_EQ("0 0 13 * FRI", NULL, "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z");
	NEXT_EQ("0 0 1,15 * 3", NULL, "2026-01-02T00:00:00Z", "2026-01-07T00:00:00Z");
	NEXT_EQ("0 0 1-31/2 * FRI", NULL, "2025-12-31T12:00:00Z", "2026-01-01T00:00:00Z");
	NEXT_EQ("0 0 1-31/2 * FRI", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
	/* Only one restricted: the other is `*` and both must match. */
	NEXT_EQ("0 0 13 * *", NULL, "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z");
	NEXT_EQ("0 0 * * FRI", NULL, "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z");
	/* A field starting with '*' counts as unrestricted even with a step
	 * (Vixie): odd days AND Fridays. */
	NEXT_EQ("0 0 */2 * FRI", NULL, "2026-01-01T00:00:00Z", "2026-01-09T00:00:00Z");
	NEXT_EQ("0 0 13 * */7", NULL, "2026-01-01T00:00:00Z", "2026-09-13T00:00:00Z"); /* Sunday the 13th */
	/* Friday the 13th needs both, which the OR rule cannot express; with
	 * `*` forms it can: 13th AND Friday. */
	NEXT_EQ("0 0 13 * */1", NULL, "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z");
	NEXT_EQ("0 0 13 * 5-5/1", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
	NEXT_EQ("0 0 13 */1 */7", NULL, "2026-09-14T00:00:00Z", "2026-12-13T00:00:00Z");

	/* Leap days over several years, including the 2100 non-leap year. */
	NEXT_EQ("0 0 29 2 *", NULL, "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z");
	NEXT_EQ("0 0 29 2 *", NULL, "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z");
	NEXT_EQ("0 0 29 2 *", NULL, "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z");
	NEXT_EQ("30 12 29 FEB *", NULL, "2024-02-29T12:29:00Z", "2024-02-29T12:30:00Z");
	NEXT_EQ("0 0 29 2 *", NULL, "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");
	NEXT_EQ("0 0 29 2 *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2028-02-28T23:00:00Z");
	NEXT_EQ("0 0 28-31 2 *", NULL, "2027-02-28T00:00:00Z", "2028-02-28T00:00:00Z");
	NEXT_EQ("0 0 * 2 *", NULL, "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z");
	NEXT_EQ("0 0 * 2 *", NULL, "2027-02-28T00:00:00Z", "2028-02-01T00:00:00Z");
	/* Feb 29 OR Monday, in February only. */
	NEXT_EQ("0 0 29 2 MON", NULL, "2026-03-01T00:00:00Z", "2027-02-01T00:00:00Z");

	/* Month ends: the 31st skips short months. */
	NEXT_EQ("0 0 31 * *", NULL, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z");
	NEXT_EQ("0 0 31 * *", NULL, "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z");
	NEXT_EQ("0 0 31 * *", NULL, "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z");
	NEXT_EQ("0 0 31 * *", NULL, "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z");
	NEXT_EQ("0 0 31 * *", NULL, "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z");
	NEXT_EQ("0 0 31 * *", NULL, "2026-10-31T00:00:00Z", "2026-12-31T00:00:00Z");
	NEXT_EQ("0 0 31 * *", NULL, "2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z");
	NEXT_EQ("0 0 30 * *", NULL, "2026-01-30T00:00:00Z", "2026-03-30T00:00:00Z");
	NEXT_EQ("59 23 31 12 *", NULL, "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z");
	NEXT_EQ("0 0 31 4,6,9,11,12 *", NULL, "2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z");

	/* Impossible dates give up. */
	static const char *const never[] = {"0 0 30 2 *", "0 0 31 2 *", "0 0 31 4,6,9,11 *", "* * 30,31 feb *"};
	for(size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		struct cron_expr e = PARSE(never[i]);
		time_t n = 4242;
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK_INT_EQ(cron_next(&e, "Europe/Berlin", iso("2026-01-01T00:00:00Z"), &n), OH_ERR_NOT_FOUND);
		clock_gettime(CLOCK_MONOTONIC, &b);
		CHECK_INT_EQ(n, 4242);
		/* Quick: whole months are skipped, not scanned minute by minute
		 * (a generous bound, as sanitizers are slow). */
		CHECK((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6 < 500);
	}
}

static void test_next_dst(void)
{
	/* Europe/Berlin spring 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00Z. */
	/* Fixed jobs in the gap fire once, at the change. */
	NEXT_EQ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z");
	NEXT_EQ("0 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("59 2 * * *", "Europe/Berlin", "2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("15,45 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:15:00Z"); /* collapsed */
	NEXT_EQ("30 2-3 * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("30 2-3 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z");
	NEXT_EQ("0 3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("30 1 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T00:30:00Z");
	NEXT_EQ("30 2 29 3 *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-03-29T01:00:00Z");
	/* Wildcard jobs run on elapsed time: nothing for 02:xx. */
	NEXT_EQ("30 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z");
	NEXT_EQ("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("0 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("@hourly", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z");
	NEXT_EQ("*/10 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-30T00:00:00Z");
	NEXT_EQ("* * * * *", "Europe/Berlin", "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z");

	/* Europe/Berlin autumn 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z;
	 * 02:xx happens at 00:xxZ (CEST) and again at 01:xxZ (CET). */
	/* Fixed jobs: first occurrence only. */
	NEXT_EQ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z");
	NEXT_EQ("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z");
	NEXT_EQ("30 2 * * *", "Europe/Berlin", "2026-10-25T01:00:00Z", "2026-10-26T01:30:00Z");
	NEXT_EQ("0 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:00:00Z");
	NEXT_EQ("0 2 * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-26T01:00:00Z");
	NEXT_EQ("0,30 2-3 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"); /* 03:00 CET */
	NEXT_EQ("30 1 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-24T23:30:00Z");
	NEXT_EQ("30 3 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T02:30:00Z");
	/* Wildcard jobs: both occurrences. */
	NEXT_EQ("30 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z");
	NEXT_EQ("30 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z");
	NEXT_EQ("30 * * * *", "Europe/Berlin", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z");
	NEXT_EQ("*/15 * * * *", "Europe/Berlin", "2026-10-25T00:45:00Z", "2026-10-25T01:00:00Z");
	NEXT_EQ("*/10 2 * * *", "Europe/Berlin", "2026-10-25T00:50:00Z", "2026-10-25T01:00:00Z");
	NEXT_EQ("*/10 2 * * *", "Europe/Berlin", "2026-10-25T01:50:00Z", "2026-10-26T01:00:00Z");

	/* America/New_York spring 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z. */
	NEXT_EQ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z");
	NEXT_EQ("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z");
	NEXT_EQ("0 2 * * SUN", "America/New_York", "2026-03-02T00:00:00Z", "2026-03-08T07:00:00Z");
	NEXT_EQ("30 1 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T06:30:00Z");
	NEXT_EQ("0 * * * *", "America/New_York", "2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z");
	NEXT_EQ("30 * * * *", "America/New_York", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z");
	NEXT_EQ("*/20 * * * *", "America/New_York", "2026-03-08T06:40:00Z", "2026-03-08T07:00:00Z");

	/* America/New_York autumn 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z;
	 * 01:xx happens at 05:xxZ (EDT) and again at 06:xxZ (EST). */
	NEXT_EQ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z");
	NEXT_EQ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z");
	NEXT_EQ("30 1 * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-02T06:30:00Z");
	NEXT_EQ("30 2 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T07:30:00Z");
	NEXT_EQ("30 * * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z");
	NEXT_EQ("30 * * * *", "America/New_York", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z");
	NEXT_EQ("*/20 * * * *", "America/New_York", "2026-11-01T05:40:00Z", "2026-11-01T06:00:00Z");
	NEXT_EQ("0 1 1 11 *", "America/New_York", "2026-11-01T05:00:00Z", "2027-11-01T05:00:00Z");
}

/*
 * Walking a day of firings by feeding results back in gives exactly the
 * expected sequence: no time twice, none <= the previous one.
 */
static void walk(const char *expr, const char *tz, const char *from, const char *const *want, size_t n, int line)
{
	struct cron_expr e = parse_ok(expr, line);
	time_t t = iso(from);
	for(size_t i = 0; i < n; i++) {
		time_t next = 0;
		char b[TIME_UTC_BUFLEN];
		if(!check_report(cron_next(&e, tz, t, &next) == OH_OK, __FILE__, line, expr))
			return;
		if(!check_report(next == iso(want[i]) && next > t, __FILE__, line, expr)) {
			printf("     step %zu: got %s, expected %s\n", i, time_format_utc(next, b, sizeof(b)),
					want[i]);
			return;
		}
		t = next;
	}
}

static void test_walks(void)
{
	static const char *const berlin_fall_hourly[] = {
			"2026-10-24T23:00:00Z", /* 01:00 CEST */
			"2026-10-25T00:00:00Z", /* 02:00 CEST */
			"2026-10-25T01:00:00Z", /* 02:00 CET */
			"2026-10-25T02:00:00Z", /* 03:00 CET */
	};
	walk("0 * * * *", "Europe/Berlin", "2026-10-24T22:30:00Z", berlin_fall_hourly, 4, __LINE__);
	static const char *const berlin_fall_fixed[] = {
			"2026-10-24T23:00:00Z",
			"2026-10-25T00:00:00Z",
			"2026-10-25T02:00:00Z",
			"2026-10-25T03:00:00Z",
	};
	walk("0 1-4 * * *", "Europe/Berlin", "2026-10-24T22:30:00Z", berlin_fall_fixed, 4, __LINE__);
	static const char *const berlin_spring_fixed[] = {
			"2026-03-29T00:00:00Z",
			"2026-03-29T01:00:00Z",
			"2026-03-29T02:00:00Z",
			"2026-03-29T23:00:00Z",
	};
	walk("0 1-4 * * *", "Europe/Berlin", "2026-03-28T23:30:00Z", berlin_spring_fixed, 4, __LINE__);
	static const char *const ny_spring_every_half_hour[] = {
			"2026-03-08T06:30:00Z",
			"2026-03-08T07:00:00Z",
			"2026-03-08T07:30:00Z",
	};
	walk("*/30 * * * *", "America/New_York", "2026-03-08T06:00:00Z", ny_spring_every_half_hour, 3,
			__LINE__);
}

static void test_next_errors(void)
{
	struct cron_expr e = PARSE("* * * * *");
	time_t n = 7;
	CHECK_INT_EQ(cron_next(&e, "Mars/Olympus", 0, &n), OH_ERR_INVAL);
	CHECK_INT_EQ(cron_next(&e, "../../etc/passwd", 0, &n), OH_ERR_INVAL);
	CHECK_INT_EQ(cron_next(NULL, NULL, 0, &n), OH_ERR_INVAL);
	CHECK_INT_EQ(cron_next(&e, NULL, 0, NULL), OH_ERR_INVAL);
	CHECK_INT_EQ(cron_next(&e, NULL, (time_t)300000000000LL, &n), OH_ERR_INVAL);
	CHECK_INT_EQ(cron_next(&e, NULL, (time_t)-70000000000LL, &n), OH_ERR_INVAL);
	CHECK_INT_EQ(n, 7);
	struct cron_expr empty = e;
	empty.hours = 0;
	CHECK_INT_EQ(cron_next(&empty, NULL, 0, &n), OH_ERR_INVAL);
	empty = e;
	empty.minutes = (uint64_t)1 << 60; /* no valid minute */
	CHECK_INT_EQ(cron_next(&empty, NULL, 0, &n), OH_ERR_INVAL);
	/* Far from 1970 is fine. */
	CHECK_INT_EQ(cron_next(&e, "Europe/Berlin", iso("1900-01-01T00:00:00Z"), &n), OH_OK);
	CHECK_INT_EQ(n, iso("1900-01-01T00:01:00Z"));
	CHECK_INT_EQ(cron_next(&e, NULL, iso("2900-01-01T00:00:00Z"), &n), OH_OK);
	CHECK_INT_EQ(n, iso("2900-01-01T00:01:00Z"));
}

/* --- brute force ------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static bool tm_matches(const struct cron_expr *e, const struct tm *tm)
{
	if(!(e->minutes & ((uint64_t)1 << tm->tm_min)) || !(e->hours & (1u << tm->tm_hour)) ||
			!(e->months & (1u << (tm->tm_mon + 1))))
		return false;
	bool dom = e->mdays & (1u << tm->tm_mday), dow = e->wdays & (1u << tm->tm_wday);
	return (e->flags & (CRON_DOM_STAR | CRON_DOW_STAR)) ? dom && dow : dom || dow;
}

/*
 * The reference: try every minute-aligned instant after `after` for up to
 * `limit` seconds, applying the documented rules directly:
 *  - a matching instant fires, except for a fixed job when the same wall
 *    time already happened in the hour before (the repeat of an autumn
 *    change; both test zones shift by exactly one hour);
 *  - for a fixed job, an instant where the offset jumps forward fires if
 *    any wall minute in the gap matches.
 * Returns false if nothing fires within the limit.
 */
static bool naive_next(const struct cron_expr *e, const char *tz, time_t after, time_t limit, time_t *out)
{
	bool fixed = !(e->flags & (CRON_MIN_STAR | CRON_HOUR_STAR));
	time_t t = after - (after % 60 + 60) % 60 + 60;
	for(; t <= after + limit; t += 60) {
		struct tm tm, prev, hour_ago;
		tz_localtime(tz, t, &tm);
		if(tm_matches(e, &tm)) {
			if(!fixed)
				break;
			tz_localtime(tz, t - 3600, &hour_ago);
			if(time_timegm(&hour_ago) != time_timegm(&tm))
				break;
		}
		if(fixed) {
			tz_localtime(tz, t - 1, &prev);
			int64_t w0 = time_timegm(&prev) + 1, w1 = time_timegm(&tm);
			bool hit = false;
			for(int64_t w = w0; w < w1 && !hit; w += 60) {
				time_t wt = (time_t)w;
				struct tm g;
				gmtime_r(&wt, &g);
				hit = tm_matches(e, &g);
			}
			if(hit)
				break;
		}
	}
	if(t > after + limit)
		return false;
	*out = t;
	return true;
}

static void brute_force(const char *tz, const char *const *exprs, size_t nexpr, time_t base, time_t span,
		int per_expr)
{
	const time_t limit = 40 * 86400;
	int mismatches = 0;
	for(size_t i = 0; i < nexpr; i++) {
		struct cron_expr e = PARSE(exprs[i]);
		for(int k = 0; k < per_expr; k++) {
			time_t after = base + (time_t)(rng() % (uint64_t)span);
			/* Half the starts sit exactly on a minute, where off-by-one
			 * errors live. */
			if(k % 2)
				after -= after % 60;
			time_t got = 0, want = 0;
			int rc = cron_next(&e, tz, after, &got);
			bool have = naive_next(&e, tz, after, limit, &want);
			bool ok = have ? rc == OH_OK && got == want
				       : (rc == OH_ERR_NOT_FOUND || (rc == OH_OK && got > after + limit));
			if(!ok && mismatches++ < 10) {
				char a[TIME_UTC_BUFLEN], g[TIME_UTC_BUFLEN], w[TIME_UTC_BUFLEN];
				printf("FAIL brute force %s \"%s\" after %s: got %s (rc %d), naive %s\n",
						tz ? tz : "UTC", exprs[i], time_format_utc(after, a, sizeof(a)),
						time_format_utc(got, g, sizeof(g)), rc,
						have ? time_format_utc(want, w, sizeof(w)) : "none");
			}
		}
	}
	CHECK_INT_EQ(mismatches, 0);
}

static const char *const brute_exprs[] = {
		"* * * * *",
		"*/7 * * * *",
		"5/15 */3 * * *",
		"0 0 * * *",
		"59 23 * * *",
		"30 2 * * *",
		"0 2-3 * * *",
		"15,45 1-3 * * *",
		"*/10 2 * * *",
		"0 * * * *",
		"1-30/2 9-17 * * MON-FRI",
		"0 12 1,15 * *",
		"0 0 13 * FRI",
		"0 0 */2 * FRI",
		"0 6 * * 0",
		"0 6 * * 7",
		"45 4 31 * *",
		"0 0 29 2 *",
		"0 0 1 */2 *",
		"@hourly",
		"@daily",
		"@weekly",
		"@monthly",
		"0 0 1-7 * 1",
		"0 0 1-7 * */1",
		"30 1 * * *",
		"* 2 * * *",
		"59 1 * * SUN",
		"0,30 0-4 * 3,10,11 0",
};

static void test_brute_force(void)
{
	size_t n = sizeof(brute_exprs) / sizeof(brute_exprs[0]);
	/* UTC over ten years from 2020. */
	brute_force(NULL, brute_exprs, n, iso("2020-01-01T00:00:00Z"), 10 * 366 * 86400, check_sample(30));
	/* DST zones, start times within two days before each 2026 change. */
	static const char *const berlin[] = {"2026-03-27T12:00:00Z", "2026-10-23T12:00:00Z"};
	static const char *const newyork[] = {"2026-03-06T12:00:00Z", "2026-10-30T12:00:00Z"};
	for(int i = 0; i < 2; i++) {
		brute_force("Europe/Berlin", brute_exprs, n, iso(berlin[i]), 2 * 86400, check_sample(12));
		brute_force("America/New_York", brute_exprs, n, iso(newyork[i]), 2 * 86400, check_sample(12));
	}
	/* And a whole year of Berlin at random. */
	brute_force("Europe/Berlin", brute_exprs, n, iso("2026-01-01T00:00:00Z"), 365 * 86400, check_sample(6));
}

int main(void)
{
	test_parse_forms();
	test_parse_macros();
	test_parse_errors();
	test_next_basic();
	test_next_days();
	test_next_dst();
	test_walks();
	test_next_errors();
	test_brute_force();
	return check_summary();
}
