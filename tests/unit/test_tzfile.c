/*
 * Unit tests for src/core/tzfile.c: the TZif reader and its POSIX TZ
 * footer rules on files built here byte by byte, its refusals (malformed,
 * truncated and corrupted files, path tricks, FIFOs, oversized files), and
 * a comparison with glibc for every zone of the system's tzdata.
 *
 * The comparison is the only place in the tree that may set TZ: glibc is
 * the oracle.  For each zone (skipping posix/, right/ and non-TZif files;
 * links included) it checks, both ways:
 *  - UTC -> local: tz_localtime() against localtime_r() (every tm field,
 *    tm_gmtoff, tm_isdst, tm_zone) at and one second either side of each
 *    change of offset, DST flag or abbreviation this reader sees from 1900
 *    to 2100, at each change glibc shows on a 16-day scan to 2038 refined by
 *    bisection (pairs of changes that undo each other between two of this
 *    reader's), and at random instants from 1800 to 2100 and a few to 9999;
 *  - local -> UTC: tz_mktime() against an oracle built from localtime_r()
 *    alone (the earliest instant showing the wall time; in a gap, the
 *    first instant after it; tm_isdst 0/1 picking between occurrences),
 *    at the edges and middle of each change's gap or fold and at random
 *    wall times, and against glibc's mktime() where the wall time happens
 *    exactly once.
 * From 2038 tzdata's files leave the changes to the footer rule, where
 * glibc re-parses the TZ string on every call (some 3 us): there every
 * change is checked one way and one in eight both ways, to keep the whole
 * run at a few seconds.  OH_TZ_SEED=n picks another random sample.
 */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "oh/defs.h"
#include "timeutil.h"
#include "tzfile.h"

/* ---- building TZif files ---- */

struct ttype {
	int32_t utoff;
	int isdst;
	const char *abbr;
};

struct zspec {
	char version; /* '2', '3'; 0 for a version 1 file */
	size_t ntrans;
	const int64_t *trans;
	const uint8_t *idx;
	size_t ntypes;
	const struct ttype *types;
	const char *footer; /* without its newlines */
	uint32_t leapcnt;   /* leap records to write (zeros) */
};

static unsigned char *put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return p + 4;
}

static unsigned char *put64(unsigned char *p, int64_t v)
{
	return put32(put32(p, (uint32_t)((uint64_t)v >> 32)), (uint32_t)v);
}

static unsigned char *header(unsigned char *p, char version, uint32_t leapcnt, uint32_t timecnt,
		uint32_t typecnt, uint32_t charcnt)
{
	memcpy(p, "TZif", 4);
	p[4] = (unsigned char)version;
	memset(p + 5, 0, 15);
	p = put32(p + 20, 0);
	p = put32(p, 0);
	p = put32(p, leapcnt);
	p = put32(p, timecnt);
	p = put32(p, typecnt);
	return put32(p, charcnt);
}

/* The file for s, into buf (room for 64 KiB); its length. */
static size_t build(unsigned char *buf, const struct zspec *s)
{
	unsigned char *p = buf;
	/* A small but real version 1 block, which the reader must skip. */
	p = header(p, s->version, 0, 0, 1, 4);
	p = put32(p, 0);
	*p++ = 0;
	*p++ = 0;
	memcpy(p, "UTC", 4);
	p += 4;
	if(!s->version)
		return (size_t)(p - buf);

	char chars[1024];
	size_t nchars = 0, at[64];
	for(size_t i = 0; i < s->ntypes; i++) {
		at[i] = nchars;
		size_t l = strlen(s->types[i].abbr) + 1;
		memcpy(chars + nchars, s->types[i].abbr, l);
		nchars += l;
	}
	p = header(p, s->version, s->leapcnt, (uint32_t)s->ntrans, (uint32_t)s->ntypes, (uint32_t)nchars);
	for(size_t i = 0; i < s->ntrans; i++)
		p = put64(p, s->trans[i]);
	for(size_t i = 0; i < s->ntrans; i++)
		*p++ = s->idx[i];
	for(size_t i = 0; i < s->ntypes; i++) {
		p = put32(p, (uint32_t)s->types[i].utoff);
		*p++ = (unsigned char)s->types[i].isdst;
		*p++ = (unsigned char)at[i];
	}
	memcpy(p, chars, nchars);
	p += nchars;
	for(uint32_t i = 0; i < s->leapcnt; i++) {
		p = put64(p, 78796800 + i);
		p = put32(p, i + 1);
	}
	p += sprintf((char *)p, "\n%s\n", s->footer ? s->footer : "");
	return (size_t)(p - buf);
}

static unsigned char filebuf[65536];

static int parse_spec(const struct zspec *s, struct tzfile **z)
{
	size_t len = build(filebuf, s);
	return tzfile_parse(filebuf, len, z);
}

/* A zone of only a footer (no transitions: the footer rules all time). */
static struct tzfile *footer_zone(const char *footer)
{
	static const struct ttype t0 = {0, 0, "ZZZ"};
	struct zspec s = {.version = '3', .ntypes = 1, .types = &t0, .footer = footer};
	struct tzfile *z = NULL;
	if(parse_spec(&s, &z))
		return NULL;
	return z;
}

static int64_t iso(const char *text)
{
	time_t t = 0;
	char err[96];
	if(time_parse_iso8601(text, NULL, &t, err, sizeof err))
		printf("bad test time %s: %s\n", text, err);
	return t;
}

/* Lookup at `when` in z must give off/isdst/abbr. */
#define AT_EQ(z, when, off, dst, ab)                                                                         \
	do {                                                                                                 \
		struct tzfile_info i_;                                                                       \
		tzfile_lookup((z), iso(when), &i_);                                                          \
		if(!check_report(i_.utoff == (off) && i_.isdst == (dst) && !strcmp(i_.abbr, (ab)), __FILE__, \
				   __LINE__, "lookup at " when))                                             \
			printf("     got %d %d %s, expected %d %d %s\n", (int)i_.utoff, (int)i_.isdst,       \
					i_.abbr, (int)(off), (int)(dst), (ab));                              \
	} while(0)

/* The footer changes from one state to another exactly at `when`. */
#define CHANGE_AT(z, when, off0, off1)                                                                       \
	do {                                                                                                 \
		struct tzfile_info a_, b_;                                                                   \
		int64_t w_ = iso(when);                                                                      \
		tzfile_lookup((z), w_ - 1, &a_);                                                             \
		tzfile_lookup((z), w_, &b_);                                                                 \
		if(!check_report(a_.utoff == (off0) && b_.utoff == (off1) && a_.until == w_, __FILE__,       \
				   __LINE__, "change at " when))                                             \
			printf("     got %d -> %d, until %lld\n", (int)a_.utoff, (int)b_.utoff,              \
					(long long)a_.until);                                                \
	} while(0)

static void test_footer_rules(void)
{
	struct tzfile *z;

	z = footer_zone("CET-1CEST,M3.5.0,M10.5.0/3");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-01-15T12:00:00Z", 3600, 0, "CET");
		AT_EQ(z, "2026-07-01T12:00:00Z", 7200, 1, "CEST");
		CHANGE_AT(z, "2026-03-29T01:00:00Z", 3600, 7200);
		CHANGE_AT(z, "2026-10-25T01:00:00Z", 7200, 3600);
		CHANGE_AT(z, "2100-03-28T01:00:00Z", 3600, 7200);
		CHANGE_AT(z, "1901-03-31T01:00:00Z", 3600, 7200);
		CHECK_STR_EQ(tzfile_footer(z), "CET-1CEST,M3.5.0,M10.5.0/3");
		/* The rules repeat every 400 years, out to the ends of int64_t. */
		struct tzfile_info e;
		tzfile_lookup(z, INT64_MIN, &e);
		CHECK(e.until > INT64_MIN && e.utoff == 3600);
		tzfile_lookup(z, INT64_MAX, &e);
		CHECK(e.until == INT64_MAX);
		tzfile_lookup(z, INT64_MAX - 86400LL * 366 * 2, &e);
		CHECK(e.until > INT64_MAX - 86400LL * 366 * 2);
		int64_t far = iso("2026-07-01T00:00:00Z") + 146097LL * 86400 * 100000;
		AT_EQ(z, "2026-07-01T00:00:00Z", 7200, 1, "CEST");
		tzfile_lookup(z, far, &e);
		CHECK(e.utoff == 7200 && e.isdst);
		tzfile_lookup(z, far - 146097LL * 86400 * 200000, &e);
		CHECK(e.utoff == 7200 && e.isdst);
		/* until is exact from mid-winter: the next change. */
		struct tzfile_info i;
		tzfile_lookup(z, iso("2026-01-01T00:00:00Z"), &i);
		CHECK_INT_EQ(i.until, iso("2026-03-29T01:00:00Z"));
		tzfile_free(z);
	}

	z = footer_zone("<+0545>-5:45");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-01-15T12:00:00Z", 5 * 3600 + 45 * 60, 0, "+0545");
		struct tzfile_info i;
		tzfile_lookup(z, 0, &i);
		CHECK(i.until == INT64_MAX);
		tzfile_free(z);
	}

	z = footer_zone("EST5EDT,M3.2.0,M11.1.0");
	CHECK(z != NULL);
	if(z) {
		CHANGE_AT(z, "2026-03-08T07:00:00Z", -18000, -14400);
		CHANGE_AT(z, "2026-11-01T06:00:00Z", -14400, -18000);
		AT_EQ(z, "2026-07-04T12:00:00Z", -14400, 1, "EDT");
		tzfile_free(z);
	}

	/* Southern hemisphere: DST across the new year. */
	z = footer_zone("AEST-10AEDT,M10.1.0,M4.1.0/3");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-01-01T00:00:00Z", 39600, 1, "AEDT");
		AT_EQ(z, "2025-12-31T23:59:59Z", 39600, 1, "AEDT");
		CHANGE_AT(z, "2026-04-04T16:00:00Z", 39600, 36000);
		CHANGE_AT(z, "2026-10-03T16:00:00Z", 36000, 39600);
		tzfile_free(z);
	}

	/* Jn never counts Feb 29: J60 is March 1 in leap years too. */
	z = footer_zone("XXX3YYY,J60/2,J300/2");
	CHECK(z != NULL);
	if(z) {
		CHANGE_AT(z, "2028-03-01T05:00:00Z", -10800, -7200);
		CHANGE_AT(z, "2027-03-01T05:00:00Z", -10800, -7200);
		CHANGE_AT(z, "2028-10-27T04:00:00Z", -7200, -10800);
		tzfile_free(z);
	}
	/* n counts from 0 and counts Feb 29. */
	z = footer_zone("XXX3YYY,59/2,299/2");
	CHECK(z != NULL);
	if(z) {
		CHANGE_AT(z, "2028-02-29T05:00:00Z", -10800, -7200);
		CHANGE_AT(z, "2027-03-01T05:00:00Z", -10800, -7200);
		CHANGE_AT(z, "2028-10-26T04:00:00Z", -7200, -10800);
		CHANGE_AT(z, "2027-10-27T04:00:00Z", -7200, -10800);
		tzfile_free(z);
	}
	/* Negative rule times (America/Nuuk): the day before at 23:00. */
	z = footer_zone("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
	CHECK(z != NULL);
	if(z) {
		CHANGE_AT(z, "2026-03-29T01:00:00Z", -7200, -3600);
		CHANGE_AT(z, "2026-10-25T01:00:00Z", -3600, -7200);
		AT_EQ(z, "2026-06-01T00:00:00Z", -3600, 1, "-01");
		tzfile_free(z);
	}
	/* Over 24 hours (Asia/Gaza style): Thursday + 50 h is Saturday 02:00. */
	z = footer_zone("EET-2EEST,M3.4.4/50,M10.4.4/50");
	CHECK(z != NULL);
	if(z) {
		CHANGE_AT(z, "2026-03-28T00:00:00Z", 7200, 10800);
		CHANGE_AT(z, "2026-10-23T23:00:00Z", 10800, 7200);
		tzfile_free(z);
	}
	/* A rule that pushes a change into the next year: Dec 31 + 30 h. */
	z = footer_zone("AAA5BBB,M3.2.0,J365/30");
	CHECK(z != NULL);
	if(z) {
		CHANGE_AT(z, "2027-01-01T10:00:00Z", -14400, -18000);
		AT_EQ(z, "2027-01-01T09:59:59Z", -14400, 1, "BBB");
		tzfile_free(z);
	}
	/* DST all year (RFC 8536 3.3.1): no change at any new year. */
	z = footer_zone("EST5EDT,0/0,J365/25");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-01-01T00:00:00Z", -14400, 1, "EDT");
		AT_EQ(z, "2026-01-01T04:59:59Z", -14400, 1, "EDT");
		AT_EQ(z, "2026-01-01T05:00:00Z", -14400, 1, "EDT");
		AT_EQ(z, "2025-12-31T23:59:59Z", -14400, 1, "EDT");
		AT_EQ(z, "2026-07-01T00:00:00Z", -14400, 1, "EDT");
		struct tzfile_info i;
		int64_t t = iso("2020-06-01T00:00:00Z");
		int changes = 0;
		for(int k = 0; k < 40; k++, t = i.until) {
			tzfile_lookup(z, t, &i);
			changes += i.utoff != -14400;
		}
		CHECK_INT_EQ(changes, 0);
		tzfile_free(z);
	}
	/* Negative DST (Europe/Dublin): "DST" is winter, one hour lower. */
	z = footer_zone("IST-1GMT0,M10.5.0,M3.5.0/1");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-01-15T12:00:00Z", 0, 1, "GMT");
		AT_EQ(z, "2026-07-01T12:00:00Z", 3600, 0, "IST");
		CHANGE_AT(z, "2026-03-29T01:00:00Z", 0, 3600);
		CHANGE_AT(z, "2026-10-25T01:00:00Z", 3600, 0);
		tzfile_free(z);
	}
	/* Week 5 is the last: February 2026 has four Sundays. */
	z = footer_zone("AAA5BBB,M2.5.0,M11.1.0");
	CHECK(z != NULL);
	if(z) {
		CHANGE_AT(z, "2026-02-22T07:00:00Z", -18000, -14400);
		CHANGE_AT(z, "2028-02-27T07:00:00Z", -18000, -14400);
		tzfile_free(z);
	}
	/* Explicit DST offset, seconds, a '+' sign. */
	z = footer_zone("AAA+5BBB3:30:15,M3.2.0,M11.1.0");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-07-01T00:00:00Z", -(3 * 3600 + 30 * 60 + 15), 1, "BBB");
		AT_EQ(z, "2026-01-01T00:00:00Z", -5 * 3600, 0, "AAA");
		tzfile_free(z);
	}
	/* A start and an end at one instant of a year: no DST that year. */
	z = footer_zone("AAA0BBB0,M3.2.0/2,M3.2.0/2");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-03-08T02:00:00Z", 0, 0, "AAA");
		AT_EQ(z, "2026-07-01T00:00:00Z", 0, 0, "AAA");
		tzfile_free(z);
	}

	static const char *const bad[] = {
			"CET",
			"CET-1CEST",
			"CET-1CEST,M3.5.0",
			"CE-1",
			"<CE>-1",
			"<+05-5",
			"CET-25",
			"CET-1:60",
			"CET-1:00:60",
			"CET-1CEST,M13.5.0,M10.5.0",
			"CET-1CEST,M0.5.0,M10.5.0",
			"CET-1CEST,M3.6.0,M10.5.0",
			"CET-1CEST,M3.0.0,M10.5.0",
			"CET-1CEST,M3.5.7,M10.5.0",
			"CET-1CEST,J0,M10.5.0",
			"CET-1CEST,J366,M10.5.0",
			"CET-1CEST,366,M10.5.0",
			"CET-1CEST,M3.5.0/168,M10.5.0",
			"CET-1CEST,M3.5.0/-168,M10.5.0",
			"CET-1CEST,M3.5.0,M10.5.0/3x",
			"CET-1 ",
			"CET-1CEST,M3.5.0,M10.5.0,",
			":CET-1",
			"CET-1CEST,M3.5,M10.5.0",
			"CET-1CEST,M3.5.0/,M10.5.0",
			"CET-",
			"CET-1CEST-",
			"CET1234",
			"<+05>",
			"<>0",
			"C3T-1",
			"CET-1CEST,M3..0,M10.5.0",
			"CET-0001",
			"CET-1:1234",
	};
	for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		z = footer_zone(bad[i]);
		if(!check_report(z == NULL, __FILE__, __LINE__, "footer refused"))
			printf("     accepted \"%s\"\n", bad[i]);
		tzfile_free(z);
	}
	/* No footer at all: the last type goes on for ever. */
	z = footer_zone("");
	CHECK(z != NULL);
	if(z) {
		AT_EQ(z, "2026-01-15T12:00:00Z", 0, 0, "ZZZ");
		CHECK_STR_EQ(tzfile_footer(z), "");
		tzfile_free(z);
	}
}

static const int64_t tr3[] = {100, 200, 300};
static const uint8_t ix3[] = {1, 2, 1};
static const struct ttype ty3[] = {{-3600, 0, "LMT"}, {0, 0, "AAA"}, {3600, 1, "BBB"}};

static struct zspec spec3(void)
{
	return (struct zspec){.version = '2',
			.ntrans = 3,
			.trans = tr3,
			.idx = ix3,
			.ntypes = 3,
			.types = ty3,
			.footer = "<+02>-2"};
}

static void test_table(void)
{
	struct zspec s = spec3();
	struct tzfile *z = NULL;
	struct tzfile_info i;
	CHECK_INT_EQ(parse_spec(&s, &z), OH_OK);
	if(!z)
		return;
	/* Type 0 before the first transition, until it. */
	tzfile_lookup(z, INT64_MIN, &i);
	CHECK_INT_EQ(i.utoff, -3600);
	CHECK_INT_EQ(i.until, 100);
	tzfile_lookup(z, 99, &i);
	CHECK_STR_EQ(i.abbr, "LMT");
	tzfile_lookup(z, 100, &i);
	CHECK_INT_EQ(i.utoff, 0);
	CHECK_INT_EQ(i.until, 200);
	tzfile_lookup(z, 250, &i);
	CHECK_INT_EQ(i.utoff, 3600);
	CHECK(i.isdst);
	CHECK_INT_EQ(i.until, 300);
	/* From the last transition on, the footer. */
	tzfile_lookup(z, 300, &i);
	CHECK_INT_EQ(i.utoff, 7200);
	CHECK_STR_EQ(i.abbr, "+02");
	tzfile_lookup(z, INT64_MAX, &i);
	CHECK_INT_EQ(i.utoff, 7200);
	tzfile_free(z);

	/* Without a footer the last transition's type goes on. */
	s.footer = "";
	CHECK_INT_EQ(parse_spec(&s, &z), OH_OK);
	if(z) {
		tzfile_lookup(z, 1000000, &i);
		CHECK_INT_EQ(i.utoff, 0);
		CHECK(i.until == INT64_MAX);
		tzfile_free(z);
	}
	/* Offsets up to 26 hours. */
	struct ttype far[] = {{26 * 3600, 0, "AAA"}, {-26 * 3600, 0, "BBB"}};
	s = (struct zspec){.version = '2', .ntypes = 2, .types = far};
	CHECK_INT_EQ(parse_spec(&s, &z), OH_OK);
	tzfile_free(z);
}

static void test_refusals(void)
{
	struct tzfile *z = NULL;
	struct zspec s;

#define REFUSED(what)                                                                                        \
	do {                                                                                                 \
		z = NULL;                                                                                    \
		if(!check_report(parse_spec(&s, &z) == OH_ERR_INVAL && z == NULL, __FILE__, __LINE__, what)) \
			tzfile_free(z);                                                                      \
	} while(0)

	s = spec3();
	s.version = 0;
	REFUSED("version 1");
	s = spec3();
	s.leapcnt = 2;
	REFUSED("leap seconds");
	s = spec3();
	uint8_t badidx[] = {1, 3, 1};
	s.idx = badidx;
	REFUSED("type index out of range");
	s = spec3();
	int64_t equal[] = {100, 100, 300};
	s.trans = equal;
	REFUSED("transitions not ascending");
	s = spec3();
	struct ttype dst2[] = {{0, 2, "AAA"}};
	s.types = dst2;
	s.ntypes = 1;
	s.ntrans = 0;
	REFUSED("isdst 2");
	struct ttype tooeast[] = {{26 * 3600 + 1, 0, "AAA"}};
	s.types = tooeast;
	REFUSED("offset beyond 26 h");
	struct ttype min[] = {{INT32_MIN, 0, "AAA"}};
	s.types = min;
	REFUSED("offset -2^31");
	s = spec3();
	s.ntypes = 0;
	s.ntrans = 0;
	REFUSED("no types");
	s = spec3();
	s.footer = "CET-1\nX";
	REFUSED("text after the footer");

	/* Byte-level damage to a good file. */
	s = spec3();
	size_t len = build(filebuf, &s);
	unsigned char good[4096];
	memcpy(good, filebuf, len);
	CHECK_INT_EQ(tzfile_parse(good, len, &z), OH_OK);
	tzfile_free(z);
	/* Every truncation fails; so does one byte more. */
	int accepted = 0;
	for(size_t l = 0; l < len; l++) {
		if(tzfile_parse(good, l, &z) == OH_OK) {
			accepted++;
			tzfile_free(z);
		}
	}
	CHECK_INT_EQ(accepted, 0);
	memcpy(filebuf, good, len);
	filebuf[len] = '\n';
	CHECK_INT_EQ(tzfile_parse(filebuf, len + 1, &z), OH_ERR_INVAL);
	size_t v2 = 44 + 6 + 4; /* the version 2+ header, after version 1's type and "UTC" */
	/* Bad magic, in either header. */
	memcpy(filebuf, good, len);
	filebuf[0] = 'X';
	CHECK_INT_EQ(tzfile_parse(filebuf, len, &z), OH_ERR_INVAL);
	memcpy(filebuf, good, len);
	filebuf[v2 + 3] = 'X';
	CHECK_INT_EQ(tzfile_parse(filebuf, len, &z), OH_ERR_INVAL);
	/* Huge counts, in either header: refused without reading past the end
	 * or allocating for them. */
	for(size_t h = 0; h < 2; h++) {
		for(size_t k = 0; k < 6; k++) {
			memcpy(filebuf, good, len);
			put32(filebuf + (h ? v2 : 0) + 20 + 4 * k, 0xffffffffu);
			z = NULL;
			CHECK(tzfile_parse(filebuf, len, &z) == OH_ERR_INVAL && !z);
		}
	}
	/* The character table: an abbreviation index past it, and a table
	 * whose last string lacks its NUL. */
	memcpy(filebuf, good, len);
	size_t ttinfo = v2 + 44 + 3 * 9;
	filebuf[ttinfo + 5] = 12; /* charcnt is 12: "LMT\0AAA\0BBB\0" */
	CHECK_INT_EQ(tzfile_parse(filebuf, len, &z), OH_ERR_INVAL);
	memcpy(filebuf, good, len);
	filebuf[ttinfo + 18 + 11] = 'X';
	CHECK_INT_EQ(tzfile_parse(filebuf, len, &z), OH_ERR_INVAL);
	/* A NUL in the footer. */
	memcpy(filebuf, good, len);
	filebuf[len - 3] = '\0';
	CHECK_INT_EQ(tzfile_parse(filebuf, len, &z), OH_ERR_INVAL);
	CHECK_INT_EQ(tzfile_parse(NULL, 0, &z), OH_ERR_INVAL);

	/* Every byte of a real zone flipped three ways: no crash, no read
	 * outside the buffer (the ASan build), and any zone that parses
	 * still answers with bounded offsets. */
	FILE *f = fopen("/usr/share/zoneinfo/Europe/Dublin", "rb");
	if(!f)
		return;
	unsigned char real[8192];
	size_t rlen = fread(real, 1, sizeof real, f);
	fclose(f);
	CHECK_INT_EQ(tzfile_parse(real, rlen, &z), OH_OK);
	tzfile_free(z);
	int bad = 0;
	static const unsigned char flips[] = {0x01, 0x80, 0xff};
	for(size_t pos = 0; pos < rlen; pos++) {
		for(size_t k = 0; k < sizeof flips; k++) {
			unsigned char *copy = malloc(rlen);
			memcpy(copy, real, rlen);
			copy[pos] ^= flips[k];
			if(tzfile_parse(copy, rlen, &z) == OH_OK) {
				struct tzfile_info i;
				for(int64_t t = -4000000000LL; t < 8000000000LL; t += 100000007LL) {
					tzfile_lookup(z, t, &i);
					bad += i.until <= t || i.utoff < -TZFILE_MAX_OFFSET ||
							i.utoff > TZFILE_MAX_OFFSET || !i.abbr;
				}
				tzfile_free(z);
			}
			free(copy);
		}
	}
	CHECK_INT_EQ(bad, 0);
}

/* ---- loading from a directory ---- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void write_file(const char *name, const void *data, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if(f) {
		fwrite(data, 1, len, f);
		fclose(f);
	}
}

static void test_load(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/oh-tzfile-XXXXXX");
	if(!CHECK(mkdtemp(tmpdir) != NULL))
		return;
	char path[256];
	snprintf(path, sizeof path, "%s/Test", tmpdir);
	mkdir(path, 0755);
	struct zspec s = spec3();
	size_t len = build(filebuf, &s);
	write_file("Test/Zone", filebuf, len);
	snprintf(path, sizeof path, "%s/Test/Link", tmpdir);
	CHECK(symlink("Zone", path) == 0);
	snprintf(path, sizeof path, "%s/Fifo", tmpdir);
	CHECK(mkfifo(path, 0644) == 0);
	write_file("Text", "hello\n", 6);
	unsigned char *big = calloc(1, TZFILE_MAX_BYTES + 1);
	memcpy(big, filebuf, len);
	write_file("Big", big, TZFILE_MAX_BYTES + 1);
	free(big);

	struct tzfile *z = NULL;
	struct tzfile_info i;
	CHECK_INT_EQ(tzfile_load(tmpdir, "Test/Zone", &z), OH_OK);
	if(z) {
		tzfile_lookup(z, 150, &i);
		CHECK_STR_EQ(i.abbr, "AAA");
		tzfile_free(z);
	}
	CHECK_INT_EQ(tzfile_load(tmpdir, "Test/Link", &z), OH_OK);
	tzfile_free(z);
	CHECK_INT_EQ(tzfile_load(tmpdir, "Test/Nothing", &z), OH_ERR_NOT_FOUND);
	CHECK_INT_EQ(tzfile_load(tmpdir, "Test/Zone/x", &z), OH_ERR_NOT_FOUND);
	CHECK_INT_EQ(tzfile_load(tmpdir, "Test", &z), OH_ERR_INVAL); /* a directory */
	CHECK_INT_EQ(tzfile_load(tmpdir, "Fifo", &z), OH_ERR_INVAL); /* and no hang */
	CHECK_INT_EQ(tzfile_load(tmpdir, "Text", &z), OH_ERR_INVAL);
	CHECK_INT_EQ(tzfile_load(tmpdir, "Big", &z), OH_ERR_TOO_LARGE);
	static const char *const names[] = {
			"../x",
			"Test/../Test/Zone",
			"/etc/passwd",
			"./Test/Zone",
			"Test//Zone",
			"Test/",
			"",
			".hidden",
			"Test/.Zone",
			"right/Test",
			"localtime",
			"Test Zone",
			"Test\\Zone",
			"Test/Zone\n",
	};
	for(size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		z = (struct tzfile *)1;
		if(!check_report(tzfile_load(tmpdir, names[k], &z) == OH_ERR_INVAL && z == NULL, __FILE__,
				   __LINE__, "name refused"))
			printf("     \"%s\"\n", names[k]);
	}
	/* A leap-second zone is refused by its contents too, not only its name. */
	if(access("/usr/share/zoneinfo/right/Europe/Berlin", R_OK) == 0)
		CHECK_INT_EQ(tzfile_load("/usr/share/zoneinfo/right", "Europe/Berlin", &z), OH_ERR_INVAL);
	CHECK(!tzfile_name_ok(NULL));
	CHECK(tzfile_name_ok("America/Argentina/Buenos_Aires"));
	CHECK(tzfile_name_ok("Etc/GMT+5"));
	char longname[300];
	memset(longname, 'A', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK(!tzfile_name_ok(longname));
	longname[TZ_NAME_MAX] = '\0';
	CHECK(tzfile_name_ok(longname));
	CHECK_INT_EQ(tzfile_load(tmpdir, longname, &z), OH_ERR_NOT_FOUND);

	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- the comparison with glibc ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static int64_t rng_between(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng() % (uint64_t)(hi - lo));
}

#define Y1800 (-5364662400LL)
#define Y1900 (-2208988800LL)
#define Y2100 (4102444800LL)
#define Y9999 (253370764800LL)
#define DAY 86400LL
#define SCAN_STEP (16 * DAY)
#define SCAN_END (2145916800LL) /* 2038-01-01 */

/* What the test saw; printed at the end. */
static struct {
	long zones, utc_checks, wall_checks, mktime_checks, gaps, folds, changes, scan_changes, mismatches;
} stats;

static const char *zone; /* the zone under test; TZ names it too */
static int zone_mismatches;

/* Offsets glibc showed in this zone: the candidates for wall times. */
static long offs[64];
static size_t noffs;

static void note_offset(long off)
{
	for(size_t i = 0; i < noffs; i++) {
		if(offs[i] == off)
			return;
	}
	if(noffs < sizeof offs / sizeof offs[0])
		offs[noffs++] = off;
}

static void glibc_local(int64_t t, struct tm *tm)
{
	time_t tt = (time_t)t;
	localtime_r(&tt, tm);
	note_offset(tm->tm_gmtoff);
}

static void mismatch(const char *what, int64_t t, const char *detail)
{
	stats.mismatches++;
	if(zone_mismatches++ < 5) {
		char b[TIME_UTC_BUFLEN];
		printf("FAIL glibc %s: %s at %lld (%s): %s\n", zone, what, (long long)t,
				time_format_utc((time_t)t, b, sizeof b) ? b : "?", detail);
	}
}

static bool same_tm(const struct tm *a, const struct tm *b)
{
	return a->tm_year == b->tm_year && a->tm_mon == b->tm_mon && a->tm_mday == b->tm_mday &&
			a->tm_hour == b->tm_hour && a->tm_min == b->tm_min && a->tm_sec == b->tm_sec &&
			a->tm_wday == b->tm_wday && a->tm_yday == b->tm_yday && a->tm_isdst == b->tm_isdst &&
			a->tm_gmtoff == b->tm_gmtoff && a->tm_zone && b->tm_zone &&
			!strcmp(a->tm_zone, b->tm_zone);
}

static void describe(char *buf, size_t len, const struct tm *mine, const struct tm *libc)
{
	snprintf(buf, len,
			"mine %04d-%02d-%02d %02d:%02d:%02d wd%d yd%d dst%d %+ld %s, glibc %04d-%02d-%02d "
			"%02d:%02d:%02d wd%d yd%d dst%d %+ld %s",
			mine->tm_year + 1900, mine->tm_mon + 1, mine->tm_mday, mine->tm_hour, mine->tm_min,
			mine->tm_sec, mine->tm_wday, mine->tm_yday, mine->tm_isdst, mine->tm_gmtoff,
			mine->tm_zone ? mine->tm_zone : "(null)", libc->tm_year + 1900, libc->tm_mon + 1,
			libc->tm_mday, libc->tm_hour, libc->tm_min, libc->tm_sec, libc->tm_wday, libc->tm_yday,
			libc->tm_isdst, libc->tm_gmtoff, libc->tm_zone ? libc->tm_zone : "(null)");
}

static void check_utc(int64_t t)
{
	struct tm libc, mine;
	char d[256];
	glibc_local(t, &libc);
	stats.utc_checks++;
	if(tz_localtime(zone, (time_t)t, &mine) != OH_OK) {
		mismatch("tz_localtime", t, "failed");
		return;
	}
	if(!same_tm(&mine, &libc)) {
		describe(d, sizeof d, &mine, &libc);
		mismatch("tz_localtime", t, d);
	}
}

static int64_t wall_of(int64_t t)
{
	struct tm tm;
	glibc_local(t, &tm);
	return t + tm.tm_gmtoff;
}

/* What localtime_r() alone says about wall time w: the instants showing
 * it, in order, with their DST flags, or the first instant after it. */
struct wall_truth {
	size_t n;
	int64_t occ[64];
	int dst[64];
	int64_t gap_end; /* when n == 0 */
};

static void oracle(int64_t w, struct wall_truth *o)
{
	o->n = 0;
	for(size_t i = 0; i < noffs; i++) {
		int64_t t = w - offs[i];
		struct tm tm;
		glibc_local(t, &tm);
		if(tm.tm_gmtoff == offs[i]) {
			size_t k = o->n++;
			while(k > 0 && o->occ[k - 1] > t) {
				o->occ[k] = o->occ[k - 1];
				o->dst[k] = o->dst[k - 1];
				k--;
			}
			o->occ[k] = t;
			o->dst[k] = tm.tm_isdst > 0;
		}
	}
	if(o->n == 0) {
		/* In a gap the wall clock jumps over w exactly once in the
		 * window (any second crossing would be an occurrence), so the
		 * first instant showing a later wall time can be bisected. */
		int64_t lo = w - TZFILE_MAX_OFFSET, hi = w + TZFILE_MAX_OFFSET;
		while(hi - lo > 1) {
			int64_t mid = lo + (hi - lo) / 2;
			if(wall_of(mid) > w)
				hi = mid;
			else
				lo = mid;
		}
		o->gap_end = hi;
	}
}

/* The instant tz_mktime() should give with tm_isdst `isdst`: the end of
 * the gap, or the first occurrence whose DST flag matches, else the first. */
static int64_t expected(const struct wall_truth *o, int isdst)
{
	if(o->n == 0)
		return o->gap_end;
	if(o->n > 1 && isdst >= 0) {
		for(size_t i = 0; i < o->n; i++) {
			if(o->dst[i] == (isdst > 0))
				return o->occ[i];
		}
	}
	return o->occ[0];
}

static struct tm tm_of_wall(int64_t w, int isdst)
{
	int64_t days = w >= 0 ? w / DAY : -((-w + DAY - 1) / DAY), secs = w - days * DAY, y;
	unsigned m, d;
	time_civil_from_days(days, &y, &m, &d);
	return (struct tm){.tm_year = (int)y - 1900,
			.tm_mon = (int)m - 1,
			.tm_mday = (int)d,
			.tm_hour = (int)(secs / 3600),
			.tm_min = (int)(secs / 60 % 60),
			.tm_sec = (int)(secs % 60),
			.tm_isdst = isdst};
}

static void check_wall(int64_t w, bool with_libc_mktime)
{
	char d[300];
	struct wall_truth o;
	oracle(w, &o);
	stats.wall_checks++;
	stats.gaps += o.n == 0;
	stats.folds += o.n > 1;
	/* tm_isdst only matters in a fold. */
	for(int isdst = -1; isdst <= (o.n > 1 ? 1 : -1); isdst++) {
		int64_t want = expected(&o, isdst);
		struct tm tm = tm_of_wall(w, isdst), libc;
		time_t got;
		if(tz_mktime(zone, &tm, &got) != OH_OK) {
			mismatch("tz_mktime", w, "failed");
			return;
		}
		if(got != want) {
			snprintf(d, sizeof d, "wall %lld isdst %d (%zu occurrences): got %lld, want %lld",
					(long long)w, isdst, o.n, (long long)got, (long long)want);
			mismatch("tz_mktime", w, d);
			return;
		}
		glibc_local(got, &libc);
		if(!same_tm(&tm, &libc)) {
			describe(d, sizeof d, &tm, &libc);
			mismatch("tz_mktime's tm", w, d);
		}
	}
	/* Where the wall time happens once, glibc's mktime() must agree. */
	if(o.n == 1 && with_libc_mktime) {
		struct tm q = tm_of_wall(w, -1);
		stats.mktime_checks++;
		time_t lt = mktime(&q);
		if(lt != o.occ[0]) {
			snprintf(d, sizeof d, "wall %lld: glibc mktime %lld, mine %lld", (long long)w,
					(long long)lt, (long long)o.occ[0]);
			mismatch("mktime", w, d);
		}
	}
}

/* Around a change at t: the instants either side, and the wall times at
 * the edges and the middle of its gap or fold. */
static void check_change(int64_t t)
{
	struct tm before, after;
	stats.changes++;
	check_utc(t - 1);
	check_utc(t);
	check_utc(t + 1);
	glibc_local(t - 1, &before);
	glibc_local(t, &after);
	long o1 = before.tm_gmtoff, o2 = after.tm_gmtoff;
	int64_t walls[] = {t + o1 - 1, t + o1, t + (o1 + o2) / 2, t + o2 - 1, t + o2};
	for(size_t i = 0; i < sizeof walls / sizeof walls[0]; i++)
		check_wall(walls[i], i == 0 || i == 4);
}

/* The first instant in (lo, hi] whose offset, DST flag or abbreviation
 * differs from lo's, as glibc sees it; hi's must differ. */
static int64_t glibc_bisect(int64_t lo, int64_t hi)
{
	struct tm a;
	glibc_local(lo, &a);
	while(hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		struct tm m;
		glibc_local(mid, &m);
		if(m.tm_gmtoff == a.tm_gmtoff && m.tm_isdst == a.tm_isdst && !strcmp(m.tm_zone, a.tm_zone))
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

static void compare_zone(const char *name)
{
	zone = name;
	zone_mismatches = 0;
	noffs = 0;
	char env[TZ_NAME_MAX + 2];
	snprintf(env, sizeof env, ":%s", name);
	setenv("TZ", env, 1);
	tzset();
	stats.zones++;
	if(!tz_valid(name)) {
		mismatch("tz_valid", 0, "refused");
		return;
	}

	/* The changes this reader knows of, 1900..2100. */
	struct tzfile *z;
	if(tzfile_load(TZFILE_DEFAULT_DIR, name, &z) != OH_OK) {
		mismatch("tzfile_load", 0, "failed");
		return;
	}
	struct tzfile_info i, prev;
	unsigned later = 0;
	tzfile_lookup(z, Y1900, &prev);
	for(int64_t t = prev.until; t < Y2100; t = i.until) {
		tzfile_lookup(z, t, &i);
		if(i.utoff != prev.utoff || i.isdst != prev.isdst || strcmp(i.abbr, prev.abbr)) {
			/* After SCAN_END only the footer's yearly rules: all their
			 * changes one way, a sample both ways (glibc is slow there). */
			if(t < SCAN_END || later++ % 8 == 0) {
				check_change(t);
			} else {
				check_utc(t - 1);
				check_utc(t);
			}
		}
		prev = i;
	}
	tzfile_free(z);

	/* A change this reader missed would show above as a mismatch at the
	 * ends of the stretch it falls in, unless a second change undid it
	 * within the stretch.  For those, the changes glibc shows, found
	 * independently by a scan and refined, must be changes here too.
	 * The scan stops where the footer's rules
	 * take over (2037 in tzdata's files): there glibc is slow (it parses
	 * the TZ string on every call) and the rules only repeat. */
	struct tm a, b;
	glibc_local(Y1900, &a);
	for(int64_t t = Y1900 + SCAN_STEP; t < SCAN_END; t += SCAN_STEP) {
		glibc_local(t, &b);
		if(b.tm_gmtoff != a.tm_gmtoff || b.tm_isdst != a.tm_isdst || strcmp(b.tm_zone, a.tm_zone)) {
			int64_t c = glibc_bisect(t - SCAN_STEP, t);
			stats.scan_changes++;
			check_utc(c - 1);
			check_utc(c);
		}
		a = b;
	}

	/* Random instants, fewer where glibc is slow. */
	for(int k = 0; k < 160; k++) {
		check_utc(rng_between(Y1800, SCAN_END));
		check_wall(rng_between(Y1900, SCAN_END), k % 4 == 0);
	}
	for(int k = 0; k < 24; k++) {
		check_utc(rng_between(SCAN_END, Y2100));
		check_wall(rng_between(SCAN_END, Y2100), k % 4 == 0);
	}
	for(int k = 0; k < 4; k++) {
		check_utc(rng_between(Y2100, Y9999));
		check_wall(rng_between(Y2100, Y9999), false);
	}
}

static char **zone_names;
static size_t nzone_names, zone_names_cap;
static size_t zonedir_len;

static int collect(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *name = path + zonedir_len + 1;
	if(flag == FTW_D && ftw->level == 1 && (!strcmp(name, "posix") || !strcmp(name, "right")))
		return FTW_SKIP_SUBTREE;
	if(flag != FTW_F && flag != FTW_SL)
		return FTW_CONTINUE;
	if(!strcmp(name, "localtime"))
		return FTW_CONTINUE; /* the host's zone, refused by name */
	char magic[4];
	int fd = open(path, O_RDONLY | O_NONBLOCK);
	bool tzif = fd >= 0 && read(fd, magic, 4) == 4 && !memcmp(magic, "TZif", 4);
	if(fd >= 0)
		close(fd);
	if(!tzif)
		return FTW_CONTINUE;
	if(nzone_names == zone_names_cap) {
		zone_names_cap = zone_names_cap ? 2 * zone_names_cap : 1024;
		zone_names = realloc(zone_names, zone_names_cap * sizeof *zone_names);
	}
	zone_names[nzone_names++] = strdup(name);
	return FTW_CONTINUE;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_against_glibc(void)
{
	const char *seed = getenv("OH_TZ_SEED");
	rng_state = seed ? strtoull(seed, NULL, 0) : 20260329;
	if(!rng_state)
		rng_state = 1;
	printf("glibc comparison, OH_TZ_SEED=%llu\n", (unsigned long long)rng_state);

	/* glibc and this reader must read the same directory. */
	unsetenv("TZDIR");
	zonedir_len = strlen(TZFILE_DEFAULT_DIR);
	nftw(TZFILE_DEFAULT_DIR, collect, 16, FTW_PHYS | FTW_ACTIONRETVAL);
	qsort(zone_names, nzone_names, sizeof *zone_names, by_name);
	if(!check_report(nzone_names > 300, __FILE__, __LINE__, "tzdata installed"))
		return;
	/* Every zone in the release tree; under ASan every tenth, starting
	 * at one the seed picks, so runs cover different zones. */
	size_t stride = nzone_names / (size_t)check_sample((long)nzone_names);
	for(size_t k = 0; k < nzone_names; k++) {
		if(k % stride == rng_state % stride)
			compare_zone(zone_names[k]);
		free(zone_names[k]);
	}
	free(zone_names);
	unsetenv("TZ");
	tzset();

	printf("glibc comparison: %ld zones, %ld changes (%ld seen by glibc's scan), %ld UTC->local checks, "
	       "%ld local->UTC checks (%ld in gaps, %ld in folds, %ld also against mktime), %ld mismatches\n",
			stats.zones, stats.changes, stats.scan_changes, stats.utc_checks, stats.wall_checks,
			stats.gaps, stats.folds, stats.mktime_checks, stats.mismatches);
	CHECK_INT_EQ(stats.mismatches, 0);
	CHECK(stats.gaps > (CHECK_SANITIZED ? 100 : 1000) && stats.folds > (CHECK_SANITIZED ? 100 : 1000));
}

int main(void)
{
	test_footer_rules();
	test_table();
	test_refusals();
	test_load();
	test_against_glibc();
	return check_summary();
}
