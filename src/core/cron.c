/*
 * Crontab expressions: parser and next-fire-time search.
 *
 * Search.  cron_next() walks local calendar days from just before `after`,
 * skipping whole months whose bit is clear and days whose date does not
 * match, and only for a matching day looks at its hours and minutes (from
 * the bitmasks, at most 1440 pairs).  So "0 0 29 2 *" costs a few hundred
 * day checks, and "0 0 30 2 *" gives up with OH_ERR_NOT_FOUND after
 * CRON_HORIZON_YEARS.  For a matching day it maps the UTC offsets in force
 * around it (tz_spans) and turns each matching wall time into instants.
 *
 * Daylight saving, as Vixie cron.  A job is a "wildcard job" if its minute
 * or its hour field begins with '*' (Vixie's MIN_STAR|HR_STAR: "*\/15 * * * *",
 * "0 * * * *", "*\/10 2 * * *", @hourly); otherwise it is a "fixed job"
 * ("30 2 * * *", "0 9-17 * * *", @daily).
 *  - Wildcard jobs run on real elapsed time: they fire at every instant
 *    whose wall clock matches.  In a spring-forward gap the wall times do
 *    not exist, so nothing fires for them ("30 * * * *" on the Berlin spring
 *    day fires 01:30 CET then 03:30 CEST); in an autumn repeat they fire in
 *    both occurrences ("30 * * * *" fires at 02:30 CEST and 02:30 CET).
 *  - Fixed jobs fire at most once per wall time.  A matching wall time
 *    that a forward change skips fires once, at the instant of the change
 *    (the first instant after the gap: 03:00 CEST for 02:30 on the Berlin
 *    spring day); several skipped matches collapse into that one firing.
 *    A matching wall time that a backward change repeats fires only at its
 *    first occurrence (02:30 CEST, not 02:30 CET).
 * The fire times form a fixed set that does not depend on `after`, and
 * cron_next() returns its least member > after; so a scheduler that feeds
 * each result back in neither fires twice nor skips a firing.
 *
 * Parsing follows Vixie cron too, including "a field beginning with '*' is
 * unrestricted" for the day-of-month/day-of-week rule (see cron.h), plus
 * "N/step" meaning N-max/step, which cronie accepts.
 */
#define _POSIX_C_SOURCE 200809L

#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "oh/defs.h"
#include "timeutil.h"

enum {
	F_MIN,
	F_HOUR,
	F_DOM,
	F_MON,
	F_DOW,
	F_COUNT
};

static const char *const month_names[] = {
		"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] stands for lo + i */
	unsigned star_flag;       /* set when the field starts with '*' */
} fields[F_COUNT] = {
		{"minute", 0, 59, NULL, CRON_MIN_STAR}, {"hour", 0, 23, NULL, CRON_HOUR_STAR},
		{"day-of-month", 1, 31, NULL, CRON_DOM_STAR}, {"month", 1, 12, month_names, 0},
		{"day-of-week", 0, 7, dow_names, CRON_DOW_STAR}, /* 7 is Sunday again */
};

static const struct {
	const char *name;
	const char *expansion;
} macros[] = {
		{"@yearly", "0 0 1 1 *"},
		{"@annually", "0 0 1 1 *"},
		{"@monthly", "0 0 1 * *"},
		{"@weekly", "0 0 * * 0"},
		{"@daily", "0 0 * * *"},
		{"@midnight", "0 0 * * *"},
		{"@hourly", "0 * * * *"},
};

/* Tokens are quoted in messages; cut them so a long one cannot hide the
 * field name at the start of a short buffer. */
#define TOK_MAX 40

static bool is_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if(err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return OH_ERR_INVAL;
}

/*
 * One value: a decimal number or (for month/day-of-week) a 3-letter name.
 * [s, s+len) is the value, [item, item+ilen) the list item it came from,
 * quoted in the message when the value is not a number or name.
 */
static int parse_value(const struct field *f, const char *s, size_t len, const char *item, size_t ilen,
		int *val, char *err, size_t errlen)
{
	if(len > 0 && isdigit((unsigned char)s[0])) {
		long v = 0;
		for(size_t i = 0; i < len; i++) {
			if(!isdigit((unsigned char)s[i]))
				goto bad;
			/* Saturate: the range check below reports the digits as typed. */
			if(v < 100000)
				v = v * 10 + (s[i] - '0');
		}
		if(v < f->lo || v > f->hi)
			return fail(err, errlen, "%s: %.*s out of range %d-%d", f->name,
					(int)(len > TOK_MAX ? TOK_MAX : len), s, f->lo, f->hi);
		*val = (int)v;
		return OH_OK;
	}
	if(f->names && len == 3) {
		for(int i = 0; f->names[i]; i++) {
			if(!strncasecmp(s, f->names[i], 3)) {
				*val = f->lo + i;
				return OH_OK;
			}
		}
	}
bad:
	return fail(err, errlen, "%s: bad token \"%.*s\"", f->name, (int)(ilen > TOK_MAX ? TOK_MAX : ilen),
			item);
}

/* One comma-separated item: `*`, `N`, `N-M`, each optionally `/step`. */
static int parse_item(const struct field *f, const char *item, size_t ilen, uint64_t *bits, char *err,
		size_t errlen)
{
	int itok = (int)(ilen > TOK_MAX ? TOK_MAX : ilen);
	if(ilen == 0)
		return fail(err, errlen, "%s: empty list item", f->name);

	const char *slash = memchr(item, '/', ilen);
	size_t blen = slash ? (size_t)(slash - item) : ilen;
	int lo, hi, step = 1, rc;

	if(slash) {
		const char *s = slash + 1;
		size_t slen = ilen - blen - 1;
		long v = 0;
		if(slen == 0)
			return fail(err, errlen, "%s: bad token \"%.*s\"", f->name, itok, item);
		for(size_t i = 0; i < slen; i++) {
			if(!isdigit((unsigned char)s[i]))
				return fail(err, errlen, "%s: bad token \"%.*s\"", f->name, itok, item);
			if(v < 100000)
				v = v * 10 + (s[i] - '0');
		}
		if(v < 1 || v > f->hi)
			return fail(err, errlen, "%s: step %.*s out of range 1-%d in \"%.*s\"", f->name,
					(int)(slen > TOK_MAX ? TOK_MAX : slen), s, f->hi, itok, item);
		step = (int)v;
	}

	if(blen == 1 && item[0] == '*') {
		lo = f->lo;
		hi = f->hi;
	} else {
		const char *dash = memchr(item, '-', blen);
		size_t alen = dash ? (size_t)(dash - item) : blen;
		if(alen == 0 || (dash && alen + 1 == blen))
			return fail(err, errlen, "%s: bad token \"%.*s\"", f->name, itok, item);
		rc = parse_value(f, item, alen, item, ilen, &lo, err, errlen);
		if(rc)
			return rc;
		if(dash) {
			rc = parse_value(f, dash + 1, blen - alen - 1, item, ilen, &hi, err, errlen);
			if(rc)
				return rc;
			if(hi < lo)
				return fail(err, errlen, "%s: reversed range \"%.*s\"", f->name, itok, item);
		} else {
			/* "5/15" is 5-max/15; a bare "5" is just 5. */
			hi = slash ? f->hi : lo;
		}
	}

	for(int v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << v;
	return OH_OK;
}

static int parse_field(
		const struct field *f, const char *s, size_t len, uint64_t *bits, char *err, size_t errlen)
{
	*bits = 0;
	for(;;) {
		const char *comma = memchr(s, ',', len);
		size_t ilen = comma ? (size_t)(comma - s) : len;
		int rc = parse_item(f, s, ilen, bits, err, errlen);
		if(rc)
			return rc;
		if(!comma)
			return OH_OK;
		s = comma + 1;
		len -= ilen + 1;
	}
}

int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen)
{
	if(err && errlen)
		err[0] = '\0';
	if(!text || !out)
		return fail(err, errlen, "no expression given");

	while(is_sep(*text))
		text++;

	if(*text == '@') {
		size_t len = 0;
		while(text[len] && !is_sep(text[len]))
			len++;
		const char *rest = text + len;
		while(is_sep(*rest))
			rest++;
		int tok = (int)(len > TOK_MAX ? TOK_MAX : len);
		if(len == 7 && !strncasecmp(text, "@reboot", 7))
			return fail(err, errlen, "@reboot is not supported");
		for(size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
			if(strlen(macros[i].name) == len && !strncasecmp(text, macros[i].name, len)) {
				if(*rest)
					return fail(err, errlen, "unexpected \"%.*s\" after %.*s", TOK_MAX,
							rest, tok, text);
				return cron_parse(macros[i].expansion, out, err, errlen);
			}
		}
		return fail(err, errlen, "unknown macro \"%.*s\"", tok, text);
	}

	const char *start[F_COUNT];
	size_t len[F_COUNT];
	int nf = 0;
	for(const char *p = text; *p;) {
		const char *q = p;
		while(*q && !is_sep(*q))
			q++;
		if(nf < F_COUNT) {
			start[nf] = p;
			len[nf] = (size_t)(q - p);
		}
		nf++;
		while(is_sep(*q))
			q++;
		p = q;
	}
	if(nf != F_COUNT)
		return fail(err, errlen, "expected 5 fields, got %d", nf);

	struct cron_expr e = {0};
	uint64_t bits[F_COUNT];
	for(int i = 0; i < F_COUNT; i++) {
		int rc = parse_field(&fields[i], start[i], len[i], &bits[i], err, errlen);
		if(rc)
			return rc;
		if(start[i][0] == '*')
			e.flags |= fields[i].star_flag;
	}
	if(bits[F_DOW] & (1u << 7))
		bits[F_DOW] = (bits[F_DOW] | 1u) & 0x7f;
	e.minutes = bits[F_MIN];
	e.hours = (uint32_t)bits[F_HOUR];
	e.mdays = (uint32_t)bits[F_DOM];
	e.months = (uint16_t)bits[F_MON];
	e.wdays = (uint8_t)bits[F_DOW];
	*out = e;
	return OH_OK;
}

static bool date_matches(const struct cron_expr *e, int64_t day)
{
	int64_t y;
	unsigned m, d;
	time_civil_from_days(day, &y, &m, &d);
	if(!(e->months & (1u << m)))
		return false;
	bool dom = e->mdays & (1u << d);
	bool dow = e->wdays & (1u << time_weekday(day));
	if(e->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom && dow;
	return dom || dow;
}

/* No zone is 26 hours from UTC, so the instants of a local day lie within
 * this margin of the day read as UTC. */
#define DAY_MARGIN (26 * 3600)
#define MAX_SPANS 16

/*
 * Fold the fire times of local day `day` (whose date matches) that are
 * > after into *best (*found says whether *best holds one yet).
 */
static int scan_day(const struct cron_expr *e, const char *tz, int64_t day, time_t after, time_t *best,
		bool *found)
{
	int64_t wall0 = day * 86400;
	struct tz_span sp[MAX_SPANS];
	size_t n;
	int rc = tz_spans(tz, (time_t)(wall0 - DAY_MARGIN), (time_t)(wall0 + 86400 + DAY_MARGIN), sp,
			MAX_SPANS, &n);
	if(rc)
		return rc;
	bool fixed = !(e->flags & (CRON_MIN_STAR | CRON_HOUR_STAR));

	for(int h = 0; h < 24; h++) {
		if(!(e->hours & (1u << h)))
			continue;
		for(int m = 0; m < 60; m++) {
			if(!(e->minutes & ((uint64_t)1 << m)))
				continue;
			int64_t w = wall0 + h * 3600 + m * 60;
			time_t cand[MAX_SPANS + 1];
			size_t nc = 0;
			bool seen = false;
			/* Spans are chronological, so the first hit is the first
			 * occurrence of this wall time. */
			for(size_t k = 0; k < n; k++) {
				time_t t = (time_t)(w - sp[k].off);
				if(t < sp[k].start || t >= sp[k].end)
					continue;
				if(!fixed || !seen)
					cand[nc++] = t;
				seen = true;
			}
			if(!seen && fixed) {
				/* Skipped by a forward change at sp[k].end: fire then. */
				for(size_t k = 0; k + 1 < n; k++) {
					if(sp[k + 1].off > sp[k].off && w >= sp[k].end + sp[k].off &&
							w < sp[k].end + sp[k + 1].off)
						cand[nc++] = sp[k].end;
				}
			}
			for(size_t i = 0; i < nc; i++) {
				if(cand[i] > after && (!*found || cand[i] < *best)) {
					*best = cand[i];
					*found = true;
				}
			}
		}
	}
	return OH_OK;
}

int cron_next(const struct cron_expr *e, const char *tz, time_t after, time_t *next)
{
	if(!e || !next)
		return OH_ERR_INVAL;
	if(!(e->minutes & 0x0fffffffffffffffULL) || !(e->hours & 0xffffffu) || !(e->mdays & 0xfffffffeu) ||
			!(e->months & 0x1ffeu) || !(e->wdays & 0x7fu))
		return OH_ERR_INVAL;
	/* Keep every instant the search may touch inside years 1..9999. */
	if(after < (time_t)-62135596800LL + 3 * 86400 ||
			after > (time_t)253402300799LL - (CRON_HORIZON_YEARS + 2) * 366LL * 86400)
		return OH_ERR_INVAL;

	long off;
	int rc = tz_utc_offset(tz, after, &off);
	if(rc)
		return rc;

	/* Start a day early: a backward change across midnight repeats the
	 * previous date's last hour after `after`. */
	int64_t wall = (int64_t)after + off;
	int64_t day = (wall >= 0 ? wall / 86400 : (wall - 86399) / 86400) - 1;
	int64_t limit = day + 2 + CRON_HORIZON_YEARS * 366LL;
	int64_t y;
	unsigned m, d;
	time_civil_from_days(day, &y, &m, &d);

	while(day <= limit) {
		if(!(e->months & (1u << m))) {
			/* Skip the whole month. */
			day += time_days_in_month(y, m) - d + 1;
			d = 1;
			if(++m > 12) {
				m = 1;
				y++;
			}
			continue;
		}
		if(date_matches(e, day)) {
			time_t best = 0;
			bool found = false;
			rc = scan_day(e, tz, day, after, &best, &found);
			if(rc)
				return rc;
			if(found) {
				/* Around a backward change the next day's first firing
				 * could in principle precede this day's; one more day
				 * settles it cheaply. */
				if(date_matches(e, day + 1)) {
					rc = scan_day(e, tz, day + 1, after, &best, &found);
					if(rc)
						return rc;
				}
				*next = best;
				return OH_OK;
			}
		}
		day++;
		if(++d > time_days_in_month(y, m)) {
			d = 1;
			if(++m > 12) {
				m = 1;
				y++;
			}
		}
	}
	return OH_ERR_NOT_FOUND;
}
