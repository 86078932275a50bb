/*
 * Unit tests for src/core/timeutil.c: ISO 8601 parsing and formatting,
 * time zone names, local<->UTC conversion across DST changes, the zone
 * cache (TZDIR, eviction, no process-wide state), and the calendar
 * arithmetic.  Expected instants were checked with zdump/date; the
 * comparison with glibc over all of tzdata is in test_tzfile.c.
 */
#define _DEFAULT_SOURCE

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "oh/defs.h"
#include "timeutil.h"

/* Parse text in tz and compare with the expected wire form. */
#define PARSE_EQ(text, tz, want)                                                                             \
	do {                                                                                                 \
		time_t t_ = 0;                                                                               \
		char e_[128] = "", b_[TIME_UTC_BUFLEN];                                                      \
		int rc_ = time_parse_iso8601((text), (tz), &t_, e_, sizeof(e_));                             \
		if(!check_report(rc_ == OH_OK, __FILE__, __LINE__, "parse " text))                           \
			printf("     error: %s\n", e_);                                                      \
		else                                                                                         \
			CHECK_STR_EQ(time_format_utc(t_, b_, sizeof(b_)), (want));                           \
	} while(0)

/* Parse must fail and the message must contain `frag`. */
#define PARSE_FAILS(text, tz, frag)                                                                          \
	do {                                                                                                 \
		time_t t_ = 12345;                                                                           \
		char e_[128] = "";                                                                           \
		CHECK_INT_EQ(time_parse_iso8601((text), (tz), &t_, e_, sizeof(e_)), OH_ERR_INVAL);           \
		CHECK_STR_CONTAINS(e_, (frag));                                                              \
	} while(0)

static void test_parse(void)
{
	PARSE_EQ("2026-11-28T10:00:00Z", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28t10:00:00z", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28 10:00:00Z", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28T10:00Z", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28T10:00:00+01:00", NULL, "2026-11-28T09:00:00Z");
	PARSE_EQ("2026-11-28T10:00:00-0530", NULL, "2026-11-28T15:30:00Z");
	PARSE_EQ("2026-11-28T10:00:00+05", NULL, "2026-11-28T05:00:00Z");
	PARSE_EQ("2026-11-28T10:00:00-00:00", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28T00:30:00+01:00", NULL, "2026-11-27T23:30:00Z");
	/* An offset wins over the zone argument. */
	PARSE_EQ("2026-11-28T10:00:00Z", "America/New_York", "2026-11-28T10:00:00Z");
	/* Fractions are truncated, never rounded up. */
	PARSE_EQ("2026-11-28T10:00:00.999999999Z", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28T10:00:59.5+00:00", NULL, "2026-11-28T10:00:59Z");
	PARSE_EQ("2026-11-28T10:00:00,25Z", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28T10:00:00.1", "Europe/Berlin", "2026-11-28T09:00:00Z");
	/* Leap day and leap second. */
	PARSE_EQ("2028-02-29T12:00:00Z", NULL, "2028-02-29T12:00:00Z");
	PARSE_EQ("2016-12-31T23:59:60Z", NULL, "2017-01-01T00:00:00Z");
	PARSE_EQ("1969-12-31T23:59:59Z", NULL, "1969-12-31T23:59:59Z");

	/* No offset: wall clock of the zone, DST included. */
	PARSE_EQ("2026-11-28T10:00:00", NULL, "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28T10:00:00", "UTC", "2026-11-28T10:00:00Z");
	PARSE_EQ("2026-11-28T10:00:00", "Europe/Berlin", "2026-11-28T09:00:00Z");
	PARSE_EQ("2026-07-01T10:00:00", "Europe/Berlin", "2026-07-01T08:00:00Z");
	PARSE_EQ("2026-07-01 10:00:00", "America/New_York", "2026-07-01T14:00:00Z");
	PARSE_EQ("2026-01-01T00:00:00", "Asia/Kolkata", "2025-12-31T18:30:00Z");
	/* Skipped (spring) wall time: the end of the gap. */
	PARSE_EQ("2026-03-29T02:30:00", "Europe/Berlin", "2026-03-29T01:00:00Z");
	PARSE_EQ("2026-03-08T02:30:00", "America/New_York", "2026-03-08T07:00:00Z");
	/* Repeated (autumn) wall time: the first occurrence. */
	PARSE_EQ("2026-10-25T02:30:00", "Europe/Berlin", "2026-10-25T00:30:00Z");
	PARSE_EQ("2026-11-01T01:30:00", "America/New_York", "2026-11-01T05:30:00Z");
	/* Just around the changes. */
	PARSE_EQ("2026-03-29T01:59:59", "Europe/Berlin", "2026-03-29T00:59:59Z");
	PARSE_EQ("2026-03-29T03:00:00", "Europe/Berlin", "2026-03-29T01:00:00Z");
	PARSE_EQ("2026-10-25T03:00:00", "Europe/Berlin", "2026-10-25T02:00:00Z");
	PARSE_EQ("2026-10-25T01:59:59", "Europe/Berlin", "2026-10-24T23:59:59Z");

	PARSE_FAILS("", NULL, "date");
	PARSE_FAILS("2026-11-28", NULL, "time");
	PARSE_FAILS("2026-11-28T", NULL, "time");
	PARSE_FAILS("26-11-28T10:00:00Z", NULL, "date");
	PARSE_FAILS("2026/11/28T10:00:00Z", NULL, "date");
	PARSE_FAILS("2026-13-01T10:00:00Z", NULL, "month 13");
	PARSE_FAILS("2026-00-01T10:00:00Z", NULL, "month 0");
	PARSE_FAILS("2026-02-29T10:00:00Z", NULL, "day 29");
	PARSE_FAILS("2026-04-31T10:00:00Z", NULL, "day 31");
	PARSE_FAILS("2026-11-28T24:00:00Z", NULL, "hour 24");
	PARSE_FAILS("2026-11-28T10:60:00Z", NULL, "minute 60");
	PARSE_FAILS("2026-11-28T10:00:61Z", NULL, "second 61");
	PARSE_FAILS("2026-11-28T10:00:00.Z", NULL, "decimal point");
	PARSE_FAILS("2026-11-28T10:00:0Z", NULL, "seconds");
	PARSE_FAILS("2026-11-28T10:00:00+1:00", NULL, "offset");
	PARSE_FAILS("2026-11-28T10:00:00+01:0", NULL, "offset");
	PARSE_FAILS("2026-11-28T10:00:00+24:00", NULL, "offset");
	PARSE_FAILS("2026-11-28T10:00:00+01:60", NULL, "offset");
	PARSE_FAILS("2026-11-28T10:00:00ZZ", NULL, "unexpected \"Z\"");
	PARSE_FAILS("2026-11-28T10:00:00 Z", NULL, "unexpected \" Z\"");
	PARSE_FAILS("2026-11-28T10:00:00+01:00x", NULL, "unexpected \"x\"");
	PARSE_FAILS("2026-11-28T10:00:00 ", NULL, "unexpected");
	PARSE_FAILS(" 2026-11-28T10:00:00Z", NULL, "date");
	PARSE_FAILS("2026-11-28X10:00:00Z", NULL, "'T'");
	PARSE_FAILS("2026-11-28T10:00:00", "Mars/Olympus", "time zone");
	PARSE_FAILS("2026-11-28T10:00:00Z", "../etc/passwd", "time zone");

	/* NULL arguments fail cleanly; a NULL err buffer is allowed. */
	time_t t;
	CHECK_INT_EQ(time_parse_iso8601(NULL, NULL, &t, NULL, 0), OH_ERR_INVAL);
	CHECK_INT_EQ(time_parse_iso8601("2026-11-28T10:00:00Z", NULL, NULL, NULL, 0), OH_ERR_INVAL);
	CHECK_INT_EQ(time_parse_iso8601("bad", NULL, &t, NULL, 0), OH_ERR_INVAL);
	char tiny[8];
	CHECK_INT_EQ(time_parse_iso8601("2026-13-01T10:00:00Z", NULL, &t, tiny, sizeof(tiny)), OH_ERR_INVAL);
	CHECK_INT_EQ(strlen(tiny), sizeof(tiny) - 1);
}

static void test_format(void)
{
	char buf[TIME_UTC_BUFLEN];
	CHECK_STR_EQ(time_format_utc(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
	CHECK_STR_EQ(time_format_utc(1795860000, buf, sizeof(buf)), "2026-11-28T10:00:00Z");
	CHECK_STR_EQ(time_format_utc(-1, buf, sizeof(buf)), "1969-12-31T23:59:59Z");
	CHECK_STR_EQ(time_format_utc(951782400, buf, sizeof(buf)), "2000-02-29T00:00:00Z");
	CHECK_STR_EQ(time_format_utc(253402300799LL, buf, sizeof(buf)), "9999-12-31T23:59:59Z");
	CHECK(time_format_utc(253402300800LL, buf, sizeof(buf)) == NULL);
	CHECK_STR_EQ(buf, "");
	CHECK(time_format_utc(0, buf, sizeof(buf) - 1) == NULL);
	CHECK_STR_EQ(buf, "");
	CHECK(time_format_utc(0, NULL, 0) == NULL);
	CHECK(time_format_utc(0, buf, 0) == NULL);

	/* Written digit by digit: the same text as strftime over years 1 to
	 * 9999, every second of a day's end included. */
	int same = 0, tried = 0;
	for(int64_t t = -62135596800LL; t <= 253402300799LL; t += 86399 * 367 + 13, tried++) {
		struct tm tm;
		char want[32];
		time_t tt = (time_t)t;
		gmtime_r(&tt, &tm);
		snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
				tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		same += time_format_utc(tt, buf, sizeof(buf)) && !strcmp(buf, want);
	}
	CHECK_INT_EQ(same, tried);
	CHECK_STR_EQ(time_format_utc(1795910399, buf, sizeof(buf)), "2026-11-28T23:59:59Z");
	CHECK_STR_EQ(time_format_utc(1795910400, buf, sizeof(buf)), "2026-11-29T00:00:00Z");
	CHECK_STR_EQ(time_format_utc(-62135596800LL, buf, sizeof(buf)), "0001-01-01T00:00:00Z");

	/* Round trip over a spread of instants, before and after 1970. */
	for(int64_t t = -2000000000LL; t < 4000000000LL; t += 7777777) {
		time_t back = 0;
		char err[64];
		CHECK(time_format_utc((time_t)t, buf, sizeof(buf)) == buf);
		CHECK_INT_EQ(time_parse_iso8601(buf, NULL, &back, err, sizeof(err)), OH_OK);
		CHECK_INT_EQ(back, t);
	}
}

static void test_tz_valid(void)
{
	CHECK(tz_valid(NULL));
	CHECK(tz_valid(""));
	CHECK(tz_valid("UTC"));
	CHECK(tz_valid("Europe/Berlin"));
	CHECK(tz_valid("America/New_York"));
	CHECK(tz_valid("America/Argentina/Buenos_Aires"));
	CHECK(tz_valid("Etc/GMT-5"));
	CHECK(tz_valid("Etc/GMT+12"));
	CHECK(tz_valid("Asia/Kolkata"));

	CHECK(!tz_valid("Europe/Nowhere"));
	CHECK(!tz_valid("Europe")); /* a directory */
	CHECK(!tz_valid("Europe/"));
	CHECK(!tz_valid("zone.tab")); /* not a TZif file */
	CHECK(!tz_valid("../zoneinfo/UTC"));
	CHECK(!tz_valid("Europe/../Europe/Berlin"));
	CHECK(!tz_valid("./UTC"));
	CHECK(!tz_valid("Europe//Berlin"));
	CHECK(!tz_valid("/usr/share/zoneinfo/UTC"));
	CHECK(!tz_valid("/etc/passwd"));
	CHECK(!tz_valid("../../../etc/passwd"));
	CHECK(!tz_valid("Europe/Berlin "));
	CHECK(!tz_valid("Europe\\Berlin"));
	CHECK(!tz_valid("localtime"));
	CHECK(!tz_valid("right/Europe/Berlin"));
	CHECK(!tz_valid("CET-1CEST,M3.5.0,M10.5.0/3")); /* a POSIX rule, not a name */
	CHECK(!tz_valid(":Europe/Berlin"));
	char longname[400];
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(!tz_valid(longname));
}

static void test_tz_conversions(void)
{
	struct tm tm;
	long off = 0;

	CHECK_INT_EQ(tz_localtime("Europe/Berlin", 1774746000, &tm), OH_OK); /* 2026-03-29T01:00Z */
	CHECK_INT_EQ(tm.tm_hour, 3);
	CHECK_INT_EQ(tm.tm_isdst, 1);
	CHECK_INT_EQ(tz_localtime("Europe/Berlin", 1774745999, &tm), OH_OK);
	CHECK_INT_EQ(tm.tm_hour, 1);
	CHECK_INT_EQ(tm.tm_min, 59);
	CHECK_INT_EQ(tz_localtime(NULL, 0, &tm), OH_OK);
	CHECK_INT_EQ(tm.tm_year, 70);
	CHECK_INT_EQ(tz_localtime("Mars/Olympus", 0, &tm), OH_ERR_INVAL);
	CHECK_INT_EQ(tz_localtime("UTC", 0, NULL), OH_ERR_INVAL);

	CHECK_INT_EQ(tz_utc_offset("Europe/Berlin", 1774746000, &off), OH_OK);
	CHECK_INT_EQ(off, 7200);
	CHECK_INT_EQ(tz_utc_offset("America/New_York", 1774746000, &off), OH_OK);
	CHECK_INT_EQ(off, -4 * 3600);
	CHECK_INT_EQ(tz_utc_offset("Asia/Kolkata", 0, &off), OH_OK);
	CHECK_INT_EQ(off, 5 * 3600 + 1800);
	CHECK_INT_EQ(tz_utc_offset(NULL, 0, &off), OH_OK);
	CHECK_INT_EQ(off, 0);

	/* Switching back and forth must really switch. */
	for(int i = 0; i < 3; i++) {
		CHECK_INT_EQ(tz_utc_offset("Europe/Berlin", 0, &off), OH_OK);
		CHECK_INT_EQ(off, 3600);
		CHECK_INT_EQ(tz_utc_offset("UTC", 0, &off), OH_OK);
		CHECK_INT_EQ(off, 0);
		CHECK_INT_EQ(tz_utc_offset("America/New_York", 0, &off), OH_OK);
		CHECK_INT_EQ(off, -5 * 3600);
	}

	/* tz_mktime: tm_isdst picks between the two occurrences of 02:30 on
	 * the Berlin fall-back day; -1 means the first. */
	time_t t;
	struct tm w = {.tm_year = 126, .tm_mon = 9, .tm_mday = 25, .tm_hour = 2, .tm_min = 30, .tm_isdst = -1};
	CHECK_INT_EQ(tz_mktime("Europe/Berlin", &w, &t), OH_OK);
	CHECK_INT_EQ(t, 1792888200); /* 2026-10-25T00:30Z */
	CHECK_INT_EQ(w.tm_isdst, 1);
	w = (struct tm){.tm_year = 126, .tm_mon = 9, .tm_mday = 25, .tm_hour = 2, .tm_min = 30, .tm_isdst = 0};
	CHECK_INT_EQ(tz_mktime("Europe/Berlin", &w, &t), OH_OK);
	CHECK_INT_EQ(t, 1792891800); /* 2026-10-25T01:30Z */
	CHECK_INT_EQ(w.tm_isdst, 0);
	w = (struct tm){.tm_year = 126, .tm_mon = 9, .tm_mday = 25, .tm_hour = 2, .tm_min = 30, .tm_isdst = 1};
	CHECK_INT_EQ(tz_mktime("Europe/Berlin", &w, &t), OH_OK);
	CHECK_INT_EQ(t, 1792888200);
	/* tm_isdst is ignored when the wall time happens once. */
	w = (struct tm){.tm_year = 126, .tm_mon = 0, .tm_mday = 15, .tm_hour = 12, .tm_isdst = 1};
	CHECK_INT_EQ(tz_mktime("Europe/Berlin", &w, &t), OH_OK);
	CHECK_INT_EQ(t, 1768474800); /* 2026-01-15T11:00Z */
	/* Skipped: the end of the gap, whatever tm_isdst says. */
	w = (struct tm){.tm_year = 126, .tm_mon = 2, .tm_mday = 29, .tm_hour = 2, .tm_min = 30, .tm_isdst = 0};
	CHECK_INT_EQ(tz_mktime("Europe/Berlin", &w, &t), OH_OK);
	CHECK_INT_EQ(t, 1774746000);
	CHECK_INT_EQ(w.tm_hour, 3);
	CHECK_INT_EQ(w.tm_min, 0);
	/* Normalisation: 2026-01-32 25:61 is 2026-02-02 02:01. */
	w = (struct tm){.tm_year = 126, .tm_mon = 0, .tm_mday = 32, .tm_hour = 25, .tm_min = 61, .tm_isdst = -1};
	CHECK_INT_EQ(tz_mktime(NULL, &w, &t), OH_OK);
	CHECK_INT_EQ(w.tm_mon, 1);
	CHECK_INT_EQ(w.tm_mday, 2);
	CHECK_INT_EQ(w.tm_hour, 2);
	CHECK_INT_EQ(w.tm_min, 1);
	CHECK_INT_EQ(w.tm_wday, 1); /* a Monday */
	w = (struct tm){.tm_year = 126, .tm_mon = -1, .tm_mday = 1, .tm_isdst = -1};
	CHECK_INT_EQ(tz_mktime(NULL, &w, &t), OH_OK);
	CHECK_INT_EQ(w.tm_year, 125);
	CHECK_INT_EQ(w.tm_mon, 11);
	CHECK_INT_EQ(tz_mktime("Nowhere/Land", &w, &t), OH_ERR_INVAL);
	w = (struct tm){.tm_year = 20000, .tm_mday = 1};
	CHECK_INT_EQ(tz_mktime(NULL, &w, &t), OH_ERR_INVAL);

	/* Every wall minute of a DST year in New York goes to an instant
	 * whose local time is that wall minute, or the gap end. */
	int bad = 0;
	for(int64_t wall = 1767225600; wall < 1767225600 + 365LL * 86400; wall += 60 * 7) {
		struct tm q = {.tm_year = 126,
				.tm_mday = 1,
				.tm_min = (int)((wall - 1767225600) / 60),
				.tm_isdst = -1};
		struct tm l;
		if(tz_mktime("America/New_York", &q, &t) || tz_localtime("America/New_York", t, &l)) {
			bad++;
			continue;
		}
		int64_t lw = time_timegm(&l);
		if(lw != wall && !(lw > wall && lw - wall <= 3600 && l.tm_hour == 3))
			bad++;
	}
	CHECK_INT_EQ(bad, 0);
}

static void test_tm_extras(void)
{
	struct tm tm;
	CHECK_INT_EQ(tz_localtime("Asia/Kathmandu", 1774746000, &tm), OH_OK);
	CHECK_INT_EQ(tm.tm_gmtoff, 5 * 3600 + 45 * 60);
	CHECK_STR_EQ(tm.tm_zone, "+0545");
	CHECK_INT_EQ(tm.tm_isdst, 0);
	CHECK_INT_EQ(tz_localtime("Europe/Berlin", 1774746000, &tm), OH_OK);
	CHECK_STR_EQ(tm.tm_zone, "CEST");
	CHECK_INT_EQ(tm.tm_gmtoff, 7200);
	CHECK_INT_EQ(tm.tm_yday, 87);
	CHECK_INT_EQ(tm.tm_wday, 0);
	CHECK_INT_EQ(tz_localtime(NULL, 0, &tm), OH_OK);
	CHECK_STR_EQ(tm.tm_zone, "UTC");
	/* Dublin's "DST" is winter (negative DST, tzdata since 2018). */
	CHECK_INT_EQ(tz_localtime("Europe/Dublin", 1768478400, &tm), OH_OK); /* 2026-01-15T12:00Z */
	CHECK_STR_EQ(tm.tm_zone, "GMT");
	CHECK_INT_EQ(tm.tm_isdst, 1);
	/* Far ends: LMT in year 1, the footer's rules in 9999, and a year
	 * that does not fit an int. */
	CHECK_INT_EQ(tz_localtime("America/New_York", (time_t)-62135596800LL, &tm), OH_OK);
	CHECK_STR_EQ(tm.tm_zone, "LMT");
	CHECK_INT_EQ(tm.tm_gmtoff, -(4 * 3600 + 56 * 60 + 2));
	CHECK_INT_EQ(tz_localtime("Europe/Berlin", (time_t)253386000000LL, &tm), OH_OK); /* 9999-06-14 */
	CHECK_STR_EQ(tm.tm_zone, "CEST");
	CHECK_INT_EQ(tm.tm_year, 9999 - 1900);
	CHECK_INT_EQ(tz_localtime("Europe/Berlin", (time_t)INT64_MAX, &tm), OH_ERR_INVAL);
	CHECK_INT_EQ(tz_localtime("Europe/Berlin", (time_t)INT64_MIN, &tm), OH_ERR_INVAL);
	/* The last second whose tm_year is INT_MAX, and the next. */
	CHECK_INT_EQ(tz_localtime(NULL, (time_t)67768036191676799LL, &tm), OH_OK);
	CHECK_INT_EQ(tm.tm_year, INT32_MAX);
	CHECK_INT_EQ(tz_localtime(NULL, (time_t)67768036191676800LL, &tm), OH_ERR_INVAL);
}

/* The defect this module was rewritten for: converting in a zone must not
 * change the process time zone that localtime() and friends use. */
static void test_no_process_tz(void)
{
	struct tm tm;
	time_t t;
	struct tz_span sp[4];
	size_t n;
	for(int pass = 0; pass < 2; pass++) {
		if(pass == 0)
			setenv("TZ", "Asia/Tokyo", 1);
		else
			unsetenv("TZ");
		tzset();
		CHECK(tz_valid("America/New_York"));
		CHECK_INT_EQ(tz_localtime("America/New_York", 0, &tm), OH_OK);
		tm = (struct tm){.tm_year = 126, .tm_mon = 6, .tm_mday = 1, .tm_isdst = -1};
		CHECK_INT_EQ(tz_mktime("Europe/Berlin", &tm, &t), OH_OK);
		CHECK_INT_EQ(tz_spans("Australia/Lord_Howe", 0, 86400 * 365, sp, 4, &n), OH_OK);
		if(pass == 0) {
			CHECK_STR_EQ(getenv("TZ"), "Asia/Tokyo");
			time_t zero = 0;
			struct tm lt;
			localtime_r(&zero, &lt);
			CHECK_INT_EQ(lt.tm_hour, 9);
			CHECK_STR_EQ(lt.tm_zone, "JST");
		} else {
			CHECK(getenv("TZ") == NULL);
		}
	}
}

static const char *const many_zones[] = {
		"Africa/Abidjan",
		"Africa/Accra",
		"Africa/Algiers",
		"Africa/Cairo",
		"Africa/Casablanca",
		"Africa/Johannesburg",
		"Africa/Lagos",
		"Africa/Nairobi",
		"America/Anchorage",
		"America/Bogota",
		"America/Chicago",
		"America/Denver",
		"America/Halifax",
		"America/Havana",
		"America/Lima",
		"America/Los_Angeles",
		"America/Mexico_City",
		"America/Nuuk",
		"America/Phoenix",
		"America/Santiago",
		"America/Sao_Paulo",
		"America/St_Johns",
		"Asia/Baghdad",
		"Asia/Bangkok",
		"Asia/Dhaka",
		"Asia/Dubai",
		"Asia/Gaza",
		"Asia/Hong_Kong",
		"Asia/Jakarta",
		"Asia/Jerusalem",
		"Asia/Kabul",
		"Asia/Karachi",
		"Asia/Kolkata",
		"Asia/Manila",
		"Asia/Seoul",
		"Asia/Shanghai",
		"Asia/Singapore",
		"Asia/Tehran",
		"Asia/Tokyo",
		"Atlantic/Azores",
		"Atlantic/Reykjavik",
		"Australia/Adelaide",
		"Australia/Lord_Howe",
		"Australia/Perth",
		"Australia/Sydney",
		"Europe/Athens",
		"Europe/Dublin",
		"Europe/Istanbul",
		"Europe/Kyiv",
		"Europe/Lisbon",
		"Europe/London",
		"Europe/Madrid",
		"Europe/Moscow",
		"Europe/Paris",
		"Europe/Rome",
		"Europe/Warsaw",
		"Pacific/Apia",
		"Pacific/Auckland",
		"Pacific/Chatham",
		"Pacific/Fiji",
		"Pacific/Honolulu",
		"Pacific/Kiritimati",
		"Pacific/Marquesas",
		"Pacific/Tongatapu",
		"Etc/GMT+5",
		"Etc/GMT-3",
		"Etc/UTC",
		"Antarctica/Troll",
		"Asia/Colombo",
		"Asia/Kathmandu",
};

static void test_cache(void)
{
	struct tz_cache_stats a, b;
	struct tm tm;
	long off;

	/* Once loaded, a zone is never read again while it stays cached. */
	CHECK(tz_valid("Europe/Berlin") && tz_valid("America/New_York"));
	tz_cache_stats(&a);
	for(int i = 0; i < 1000; i++)
		tz_utc_offset(i % 2 ? "Europe/Berlin" : "America/New_York", 1774746000 + i * 3600, &off);
	tz_cache_stats(&b);
	CHECK_INT_EQ(b.loads, a.loads);
	/* A bad name is refused before the file system and not cached. */
	CHECK(!tz_valid("../Europe/Berlin"));
	CHECK(!tz_valid("Europe/Nowhere"));
	tz_cache_stats(&a);
	CHECK_INT_EQ(a.loads, b.loads);
	CHECK_INT_EQ(a.zones, b.zones);

	/* More zones than slots: the table stays at TZ_CACHE_MAX, dropping
	 * the least recently used, and answers stay right. */
	CHECK_INT_EQ(tz_localtime("Asia/Kathmandu", 0, &tm), OH_OK);
	const char *abbr = tm.tm_zone;
	size_t nz = sizeof many_zones / sizeof many_zones[0];
	CHECK(nz > TZ_CACHE_MAX);
	for(size_t i = 0; i < nz; i++)
		CHECK(tz_valid(many_zones[i]));
	tz_cache_stats(&a);
	CHECK_INT_EQ(a.zones, TZ_CACHE_MAX);
	CHECK(a.evictions >= nz - TZ_CACHE_MAX);
	/* The struct tm outlives its zone: tm_zone does not point into it. */
	CHECK_STR_EQ(abbr, "+0530");
	CHECK_INT_EQ(tz_utc_offset(many_zones[nz - 1], 0, &off), OH_OK);
	tz_cache_stats(&b);
	CHECK_INT_EQ(b.loads, a.loads); /* the last one is still there */
	CHECK_INT_EQ(tz_utc_offset(many_zones[0], 0, &off), OH_OK);
	tz_cache_stats(&b);
	CHECK_INT_EQ(b.loads, a.loads + 1); /* the first one was dropped */
	CHECK_INT_EQ(tz_utc_offset("Europe/Berlin", 1774746000, &off), OH_OK);
	CHECK_INT_EQ(off, 7200);
	CHECK_INT_EQ(tz_utc_offset("Australia/Lord_Howe", 1774746000, &off), OH_OK);
	CHECK_INT_EQ(off, 11 * 3600); /* DST there is half an hour */
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* $TZDIR names the zone directory; changing it drops what was cached. */
static void test_tzdir(void)
{
	char dir[64] = "/tmp/oh-tzdir-XXXXXX", path[128];
	if(!CHECK(mkdtemp(dir) != NULL))
		return;
	snprintf(path, sizeof path, "%s/Test", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/Test/Zone", dir);
	FILE *in = fopen("/usr/share/zoneinfo/Asia/Kolkata", "rb"), *out = fopen(path, "wb");
	char buf[8192];
	size_t len = in ? fread(buf, 1, sizeof buf, in) : 0;
	if(out)
		fwrite(buf, 1, len, out);
	if(in)
		fclose(in);
	if(out)
		fclose(out);

	long off = 0;
	CHECK(tz_valid("Europe/Berlin"));
	CHECK(!tz_valid("Test/Zone"));
	setenv("TZDIR", dir, 1);
	CHECK(tz_valid("Test/Zone"));
	CHECK_INT_EQ(tz_utc_offset("Test/Zone", 0, &off), OH_OK);
	CHECK_INT_EQ(off, 5 * 3600 + 1800);
	CHECK(!tz_valid("Europe/Berlin"));
	CHECK(tz_valid("UTC")); /* needs no file */
	CHECK_INT_EQ(tz_utc_offset("Europe/Berlin", 0, &off), OH_ERR_INVAL);
	setenv("TZDIR", "", 1); /* empty: the default */
	CHECK(!tz_valid("Test/Zone"));
	CHECK(tz_valid("Europe/Berlin"));
	setenv("TZDIR", dir, 1);
	CHECK(tz_valid("Test/Zone"));
	unsetenv("TZDIR");
	CHECK(!tz_valid("Test/Zone"));
	CHECK(tz_valid("Europe/Berlin"));
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_spans(void)
{
	struct tz_span sp[4];
	size_t n = 0;
	/* 2026-03-29 00:00Z .. 2026-03-30 00:00Z in Berlin: one change at 01:00Z. */
	CHECK_INT_EQ(tz_spans("Europe/Berlin", 1774742400, 1774828800, sp, 4, &n), OH_OK);
	CHECK_INT_EQ(n, 2);
	CHECK_INT_EQ(sp[0].start, 1774742400);
	CHECK_INT_EQ(sp[0].end, 1774746000);
	CHECK_INT_EQ(sp[0].off, 3600);
	CHECK_INT_EQ(sp[1].start, 1774746000);
	CHECK_INT_EQ(sp[1].end, 1774828800);
	CHECK_INT_EQ(sp[1].off, 7200);
	/* A whole year has two changes: three spans, and max 2 is too few. */
	CHECK_INT_EQ(tz_spans("Europe/Berlin", 1767225600, 1767225600 + 365 * 86400, sp, 4, &n), OH_OK);
	CHECK_INT_EQ(n, 3);
	CHECK_INT_EQ(tz_spans("Europe/Berlin", 1767225600, 1767225600 + 365 * 86400, sp, 2, &n),
			OH_ERR_TOO_LARGE);
	CHECK_INT_EQ(tz_spans(NULL, 0, 100, sp, 4, &n), OH_OK);
	CHECK_INT_EQ(n, 1);
	CHECK_INT_EQ(tz_spans(NULL, 100, 100, sp, 4, &n), OH_ERR_INVAL);
}

static void test_calendar(void)
{
	CHECK_INT_EQ(time_days_from_civil(1970, 1, 1), 0);
	CHECK_INT_EQ(time_days_from_civil(2000, 3, 1), 11017);
	CHECK_INT_EQ(time_days_from_civil(1969, 12, 31), -1);
	CHECK_INT_EQ(time_days_in_month(2024, 2), 29);
	CHECK_INT_EQ(time_days_in_month(2100, 2), 28);
	CHECK_INT_EQ(time_days_in_month(2000, 2), 29);
	CHECK_INT_EQ(time_days_in_month(2026, 4), 30);
	CHECK_INT_EQ(time_days_in_month(2026, 12), 31);
	CHECK_INT_EQ(time_weekday(0), 4); /* Thursday */
	CHECK_INT_EQ(time_weekday(-1), 3);
	CHECK_INT_EQ(time_weekday(time_days_from_civil(2026, 3, 29)), 0);
	int bad = 0;
	for(int64_t d = -800000; d < 800000; d += 13) {
		int64_t y;
		unsigned m, dd;
		time_civil_from_days(d, &y, &m, &dd);
		if(time_days_from_civil(y, m, dd) != d || m < 1 || m > 12 || dd < 1 ||
				dd > time_days_in_month(y, m))
			bad++;
	}
	CHECK_INT_EQ(bad, 0);
}

static void test_clocks(void)
{
	double w = time_now_wall(), m1 = time_now_mono(), m2 = time_now_mono();
	CHECK(w > 1.7e9);
	CHECK(m2 >= m1);
	CHECK(m1 > 0);
}

int main(void)
{
	test_parse();
	test_format();
	test_tz_valid();
	test_tz_conversions();
	test_spans();
	test_tm_extras();
	test_no_process_tz();
	test_cache();
	test_tzdir();
	test_calendar();
	test_clocks();
	return check_summary();
}
