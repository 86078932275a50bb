/*
 * A reader of TZif files (RFC 8536) and of the POSIX TZ rule in their
 * footer, so that a zone can be asked for its offset at any instant
 * without touching the process time zone (see timeutil.c for why).
 *
 * What this file has to get right, checked against glibc for every zone
 * of tzdata by tests/unit/test_tzfile.c:
 * - only the version 2+ block with 64-bit times is read; the version 1
 *   block before it is skipped by its own counts, which are validated as
 *   carefully as the rest (a count is never trusted to size a read);
 * - every count, index and string is checked against the file before use:
 *   transitions strictly ascending, type indices < typecnt, abbreviation
 *   indices inside the character table and NUL-terminated there, offsets
 *   within TZFILE_MAX_OFFSET (callers search that far and no further);
 * - leap-second records are refused, not skipped: a "right/" zone counts
 *   leap seconds in its time_t, so its times are not POSIX times;
 * - before the first transition time type 0 applies (RFC 8536 3.2);
 *   from the last transition on, the footer rule does (as glibc and the
 *   reference tzcode do; zic makes the two agree at that instant);
 * - footer rule times may be negative or exceed 24 hours (RFC 8536 3.3.1,
 *   "M3.5.0/-2", "M3.4.4/50"), so a rule's instant can fall in the
 *   neighbouring year: the rule is evaluated over several years around
 *   the instant, never just the instant's own year (glibc 2.36 does, and
 *   so gets "EST5EDT,0/0,J365/25" wrong in the first hours of each UTC
 *   year; no tzdata zone has such a rule today, test_tzfile.c has);
 * - DST all year is written as a DST end that coincides with the next
 *   year's start ("EST5EDT,0/0,J365/25"): at equal instants a change of an
 *   earlier year is applied first, so DST stays on; a start and end of the
 *   same year at one instant mean no DST that year;
 * - the start time is in standard time and the end time in DST, and a
 *   zone's "DST" may be the lower offset (Europe/Dublin's "IST-1GMT0,...").
 */
#define _POSIX_C_SOURCE 200809L

#include "tzfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oh/defs.h"
#include "timeutil.h"

/* One date of a footer rule: "Jn" (1..365, Feb 29 not counted), "n"
 * (0..365, counted) or "Mm.w.d", with its time of day in seconds. */
struct rule_date {
	char kind;             /* 'J', 'N' or 'M' */
	int month, week, wday; /* 'M' */
	int day;               /* 'J' and 'N' */
	int32_t secs;          /* -167h..167h; default 02:00 */
};

struct footer {
	bool present;
	bool has_dst;
	int32_t std_off, dst_off; /* seconds east of UTC */
	const char *std_abbr, *dst_abbr;
	struct rule_date start, end; /* start in standard time, end in DST */
};

struct ttinfo {
	int32_t utoff;
	bool isdst;
	const char *abbr;
};

struct tzfile {
	size_t timecnt, typecnt;
	const int64_t *trans;
	const uint8_t *idx;
	const struct ttinfo *types;
	const char *footer_text;
	struct footer ft;
	/* trans[], types[], idx[], the character table, the footer text and
	 * the footer's abbreviations follow in the same allocation. */
};

int tzfile_name_ok(const char *name)
{
	if(!name)
		return 0;
	size_t len = strlen(name);
	if(len == 0 || len > TZ_NAME_MAX || name[0] == '/')
		return 0;
	if(!strcmp(name, "localtime") || !strncmp(name, "right/", 6))
		return 0;
	/* Walk components: none empty, none starting with '.' (which rules
	 * out "." and ".."), only the characters IANA names use. */
	const char *c = name;
	for(;;) {
		if(*c == '/' || *c == '\0' || *c == '.')
			return 0;
		while(*c && *c != '/') {
			if(!isalnum((unsigned char)*c) && !strchr("._+-", *c))
				return 0;
			c++;
		}
		if(!*c)
			return 1;
		c++;
	}
}

/* ---- the footer: a POSIX TZ string ---- */

/* "CET" or "<+0545>": at least three characters, as POSIX asks. */
static bool parse_abbr(const char **pp, const char **start, size_t *len)
{
	const char *p = *pp;
	if(*p == '<') {
		*start = ++p;
		while(isalnum((unsigned char)*p) || *p == '+' || *p == '-')
			p++;
		if(*p != '>')
			return false;
		*len = (size_t)(p - *start);
		p++;
	} else {
		*start = p;
		while(isalpha((unsigned char)*p))
			p++;
		*len = (size_t)(p - *start);
	}
	*pp = p;
	return *len >= 3;
}

/* 1 to maxdigits decimal digits, at most maxval. */
static bool parse_num(const char **pp, int maxdigits, int maxval, int *out)
{
	const char *p = *pp;
	int v = 0, n = 0;
	while(n < maxdigits && isdigit((unsigned char)*p)) {
		v = v * 10 + (*p++ - '0');
		n++;
	}
	if(n == 0 || isdigit((unsigned char)*p) || v > maxval)
		return false;
	*pp = p;
	*out = v;
	return true;
}

/* [+-]h[:mm[:ss]] with the hours at most maxh, in seconds. */
static bool parse_hms(const char **pp, int maxh, int32_t *out)
{
	const char *p = *pp;
	int sign = 1, h, m = 0, s = 0;
	if(*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if(!parse_num(&p, 3, maxh, &h))
		return false;
	if(*p == ':') {
		p++;
		if(!parse_num(&p, 2, 59, &m))
			return false;
		if(*p == ':') {
			p++;
			if(!parse_num(&p, 2, 59, &s))
				return false;
		}
	}
	*pp = p;
	*out = sign * (h * 3600 + m * 60 + s);
	return true;
}

static bool parse_rule_date(const char **pp, struct rule_date *r)
{
	const char *p = *pp;
	if(*p == 'J') {
		p++;
		r->kind = 'J';
		if(!parse_num(&p, 3, 365, &r->day) || r->day < 1)
			return false;
	} else if(*p == 'M') {
		p++;
		r->kind = 'M';
		if(!parse_num(&p, 2, 12, &r->month) || r->month < 1 || *p++ != '.' ||
				!parse_num(&p, 1, 5, &r->week) || r->week < 1 || *p++ != '.' ||
				!parse_num(&p, 1, 6, &r->wday))
			return false;
	} else {
		r->kind = 'N';
		if(!parse_num(&p, 3, 365, &r->day))
			return false;
	}
	r->secs = 2 * 3600;
	if(*p == '/') {
		p++;
		if(!parse_hms(&p, 167, &r->secs))
			return false;
	}
	*pp = p;
	return true;
}

/*
 * Parse text into *f.  The abbreviations are copied, NUL-terminated, to
 * names (room for strlen(text) + 2 bytes).  A DST zone without a rule is
 * refused: POSIX leaves its dates to the implementation, and zic always
 * writes them.
 */
static bool parse_footer(const char *text, struct footer *f, char *names)
{
	const char *p = text, *a;
	size_t alen;
	int32_t secs;

	memset(f, 0, sizeof *f);
	if(!*p)
		return true;
	if(!parse_abbr(&p, &a, &alen) || !parse_hms(&p, 24, &secs))
		return false;
	memcpy(names, a, alen);
	names[alen] = '\0';
	f->std_abbr = names;
	names += alen + 1;
	f->std_off = -secs;
	f->present = true;
	if(!*p)
		return true;

	if(!parse_abbr(&p, &a, &alen))
		return false;
	memcpy(names, a, alen);
	names[alen] = '\0';
	f->dst_abbr = names;
	f->dst_off = f->std_off + 3600;
	if(*p && *p != ',') {
		if(!parse_hms(&p, 24, &secs))
			return false;
		f->dst_off = -secs;
	}
	if(*p++ != ',' || !parse_rule_date(&p, &f->start) || *p++ != ',' || !parse_rule_date(&p, &f->end) || *p)
		return false;
	f->has_dst = true;
	return true;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The day (0 = 1970-01-01) a rule date falls on in year y. */
static int64_t rule_day(const struct rule_date *r, int64_t y)
{
	int64_t jan1 = time_days_from_civil(y, 1, 1);
	switch(r->kind) {
	case 'J':
		/* Feb 29 is never counted: J60 is always March 1. */
		return jan1 + r->day - 1 + (is_leap(y) && r->day >= 60);
	case 'N':
		return jan1 + r->day;
	default: {
		int64_t first = time_days_from_civil(y, (unsigned)r->month, 1);
		int64_t day = first + (r->wday - (int)time_weekday(first) + 7) % 7 + 7 * (r->week - 1);
		/* Week 5 is "the last": step back while past the month. */
		while(day >= first + time_days_in_month(y, (unsigned)r->month))
			day -= 7;
		return day;
	}
	}
}

struct rule_event {
	int64_t at;
	int64_t year;
	int start; /* 1: DST begins, 0: it ends */
};

static int event_cmp(const void *pa, const void *pb)
{
	const struct rule_event *a = pa, *b = pb;
	if(a->at != b->at)
		return a->at < b->at ? -1 : 1;
	/* Same instant: an earlier year's change first (DST all year), then
	 * within a year the start before the end (an empty DST period). */
	if(a->year != b->year)
		return a->year < b->year ? -1 : 1;
	return b->start - a->start;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Years this far from the instant's own year cover every rule: a date
 * moves at most a week (167 hours) and a day of offset off its year. */
#define RULE_YEARS_BEFORE 2
#define RULE_YEARS_AFTER 1
#define RULE_EVENTS (2 * (RULE_YEARS_BEFORE + RULE_YEARS_AFTER + 1))

/* 400 Gregorian years, a whole number of weeks: the rules repeat. */
#define CYCLE_SECS (146097LL * 86400)
/* Beyond this distance from 1970 an instant is moved by whole cycles
 * first, so that the arithmetic below cannot overflow. */
#define FAR_SECS (CYCLE_SECS * 1000)

static void footer_rule_lookup(const struct footer *f, int64_t t, struct tzfile_info *out);

static void footer_lookup(const struct footer *f, int64_t t, struct tzfile_info *out)
{
	if(!f->has_dst) {
		*out = (struct tzfile_info){f->std_off, false, f->std_abbr, INT64_MAX};
		return;
	}
	if(t >= -FAR_SECS && t <= FAR_SECS) {
		footer_rule_lookup(f, t, out);
		return;
	}
	/* t % CYCLE_SECS has t's sign, so t - shift cannot overflow. */
	int64_t shift = t - t % CYCLE_SECS;
	footer_rule_lookup(f, t - shift, out);
	if(__builtin_add_overflow(out->until, shift, &out->until))
		out->until = INT64_MAX;
}

static void footer_rule_lookup(const struct footer *f, int64_t t, struct tzfile_info *out)
{
	int64_t y;
	unsigned m, d;
	time_civil_from_days(floor_div(t, 86400), &y, &m, &d);

	struct rule_event ev[RULE_EVENTS];
	size_t n = 0;
	for(int64_t yy = y - RULE_YEARS_BEFORE; yy <= y + RULE_YEARS_AFTER; yy++) {
		ev[n++] = (struct rule_event){
				rule_day(&f->start, yy) * 86400 + f->start.secs - f->std_off, yy, 1};
		ev[n++] = (struct rule_event){rule_day(&f->end, yy) * 86400 + f->end.secs - f->dst_off, yy, 0};
	}
	/* Insertion sort: eight nearly ordered events. */
	for(size_t i = 1; i < n; i++) {
		struct rule_event e = ev[i];
		size_t j = i;
		for(; j > 0 && event_cmp(&ev[j - 1], &e) > 0; j--)
			ev[j] = ev[j - 1];
		ev[j] = e;
	}

	/* The state is the one set by the last event at or before t.  Two
	 * years back always holds one (see RULE_YEARS_BEFORE). */
	size_t k = 0;
	while(k + 1 < n && ev[k + 1].at <= t)
		k++;
	bool dst = ev[k].at <= t ? ev[k].start : false;

	/* Holds until the first later instant whose events flip the state;
	 * without one in the window, at least through its last event. */
	int64_t until = (ev[n - 1].at > t ? ev[n - 1].at : t) + 1;
	for(size_t j = k + 1; j < n; j++) {
		if(ev[j].at <= t)
			continue;
		/* The state after all events at this instant. */
		size_t last = j;
		while(last + 1 < n && ev[last + 1].at == ev[j].at)
			last++;
		if((bool)ev[last].start != dst) {
			until = ev[j].at;
			break;
		}
		j = last;
	}
	if(dst)
		*out = (struct tzfile_info){f->dst_off, true, f->dst_abbr, until};
	else
		*out = (struct tzfile_info){f->std_off, false, f->std_abbr, until};
}

/* ---- the TZif file ---- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

#define HEADER_LEN 44

struct counts {
	uint64_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

/* The header at p (len bytes left) into *c, and the size of the data
 * block after it with time_size bytes per time (4 or 8) into *data_len;
 * false if either does not fit. */
static bool read_header(const unsigned char *p, size_t len, struct counts *c, int time_size, uint64_t *data_len)
{
	if(len < HEADER_LEN || memcmp(p, "TZif", 4))
		return false;
	c->isutcnt = be32(p + 20);
	c->isstdcnt = be32(p + 24);
	c->leapcnt = be32(p + 28);
	c->timecnt = be32(p + 32);
	c->typecnt = be32(p + 36);
	c->charcnt = be32(p + 40);
	/* Counts are at most 2^32 - 1, so this cannot overflow 64 bits. */
	*data_len = c->timecnt * (uint64_t)(time_size + 1) + c->typecnt * 6 + c->charcnt +
			c->leapcnt * (uint64_t)(time_size + 4) + c->isstdcnt + c->isutcnt;
	return *data_len <= len - HEADER_LEN;
}

int tzfile_parse(const void *data, size_t len, struct tzfile **out)
{
	const unsigned char *d = data;
	struct counts c;
	uint64_t v1_len, v2_len;

	if(!d || !out)
		return OH_ERR_INVAL;
	*out = NULL;
	if(!read_header(d, len, &c, 4, &v1_len))
		return OH_ERR_INVAL;
	/* Version 1 has no 64-bit data; '2', '3', '4' and later do. */
	if(d[4] < '2')
		return OH_ERR_INVAL;
	size_t off = HEADER_LEN + (size_t)v1_len;
	if(!read_header(d + off, len - off, &c, 8, &v2_len))
		return OH_ERR_INVAL;
	if(c.leapcnt || c.typecnt == 0 || c.typecnt > 256 || c.charcnt == 0 ||
			(c.isutcnt && c.isutcnt != c.typecnt) || (c.isstdcnt && c.isstdcnt != c.typecnt))
		return OH_ERR_INVAL;
	const unsigned char *p = d + off + HEADER_LEN;
	const unsigned char *end = p + v2_len;

	/* The footer: "\n" TZ string "\n", and nothing after it. */
	const unsigned char *ftext = end + 1, *fend;
	if(end >= d + len || *end != '\n')
		return OH_ERR_INVAL;
	fend = memchr(ftext, '\n', (size_t)(d + len - ftext));
	if(!fend || fend + 1 != d + len || memchr(ftext, '\0', (size_t)(fend - ftext)))
		return OH_ERR_INVAL;
	size_t flen = (size_t)(fend - ftext);

	size_t timecnt = (size_t)c.timecnt, typecnt = (size_t)c.typecnt, charcnt = (size_t)c.charcnt;
	size_t size = sizeof(struct tzfile) + timecnt * sizeof(int64_t) + typecnt * sizeof(struct ttinfo) +
			timecnt + charcnt + 1 + (flen + 1) + (flen + 2);
	struct tzfile *z = calloc(1, size);
	if(!z)
		return OH_ERR_NOMEM;
	int64_t *trans = (int64_t *)(z + 1);
	struct ttinfo *types = (struct ttinfo *)(trans + timecnt);
	uint8_t *idx = (uint8_t *)(types + typecnt);
	char *chars = (char *)(idx + timecnt);
	char *ftcopy = chars + charcnt + 1;
	char *fnames = ftcopy + flen + 1;
	z->timecnt = timecnt;
	z->typecnt = typecnt;
	z->trans = trans;
	z->types = types;
	z->idx = idx;
	z->footer_text = ftcopy;

	for(size_t i = 0; i < timecnt; i++) {
		trans[i] = be64(p + 8 * i);
		if(i && trans[i] <= trans[i - 1])
			goto invalid;
	}
	p += 8 * timecnt;
	for(size_t i = 0; i < timecnt; i++) {
		if(p[i] >= typecnt)
			goto invalid;
		idx[i] = p[i];
	}
	p += timecnt;
	const unsigned char *ttp = p;
	p += 6 * typecnt;
	memcpy(chars, p, charcnt);
	chars[charcnt] = '\0';
	for(size_t i = 0; i < typecnt; i++, ttp += 6) {
		int32_t utoff = (int32_t)be32(ttp);
		unsigned isdst = ttp[4], ai = ttp[5];
		if(utoff < -TZFILE_MAX_OFFSET || utoff > TZFILE_MAX_OFFSET || isdst > 1 || ai >= charcnt ||
				!memchr(chars + ai, '\0', charcnt - ai))
			goto invalid;
		types[i] = (struct ttinfo){utoff, isdst == 1, chars + ai};
	}
	p += charcnt;
	/* The standard/wall and UT/local indicators only matter for a POSIX
	 * rule without dates, which is refused; they must still be 0 or 1. */
	for(size_t i = 0; i < c.isstdcnt + c.isutcnt; i++) {
		if(p[i] > 1)
			goto invalid;
	}

	memcpy(ftcopy, ftext, flen);
	ftcopy[flen] = '\0';
	if(!parse_footer(ftcopy, &z->ft, fnames))
		goto invalid;
	*out = z;
	return OH_OK;

invalid:
	free(z);
	return OH_ERR_INVAL;
}

void tzfile_free(struct tzfile *z)
{
	free(z);
}

const char *tzfile_footer(const struct tzfile *z)
{
	return z->footer_text;
}

static void type_info(const struct ttinfo *ty, int64_t until, struct tzfile_info *out)
{
	*out = (struct tzfile_info){ty->utoff, ty->isdst, ty->abbr, until};
}

void tzfile_lookup(const struct tzfile *z, int64_t t, struct tzfile_info *out)
{
	size_t n = z->timecnt;
	if(n == 0) {
		if(z->ft.present)
			footer_lookup(&z->ft, t, out);
		else
			type_info(&z->types[0], INT64_MAX, out);
		return;
	}
	if(t < z->trans[0]) {
		type_info(&z->types[0], z->trans[0], out);
		return;
	}
	if(t >= z->trans[n - 1]) {
		if(z->ft.present)
			footer_lookup(&z->ft, t, out);
		else
			type_info(&z->types[z->idx[n - 1]], INT64_MAX, out);
		return;
	}
	/* trans[lo] <= t < trans[hi] */
	size_t lo = 0, hi = n - 1;
	while(hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if(z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	type_info(&z->types[z->idx[lo]], z->trans[hi], out);
}

int tzfile_load(const char *dir, const char *name, struct tzfile **out)
{
	if(!out)
		return OH_ERR_INVAL;
	*out = NULL;
	if(!dir || !tzfile_name_ok(name))
		return OH_ERR_INVAL;
	char path[PATH_MAX];
	if((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return OH_ERR_INVAL;

	/* O_NONBLOCK: a FIFO planted under the directory must not hang the
	 * caller in open() or read(); it is refused below anyway. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if(fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? OH_ERR_NOT_FOUND : OH_ERR_IO;
	int rc;
	struct stat st;
	unsigned char *buf = NULL;
	if(fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		rc = OH_ERR_INVAL;
		goto out_close;
	}
	if(st.st_size > TZFILE_MAX_BYTES) {
		rc = OH_ERR_TOO_LARGE;
		goto out_close;
	}
	/* One byte more than fstat() said, to see a file that grew meanwhile
	 * (a tzdata upgrade rewriting it): that read fails, the next one will
	 * see the new file whole. */
	size_t cap = (size_t)st.st_size + 1, got = 0;
	buf = malloc(cap);
	if(!buf) {
		rc = OH_ERR_NOMEM;
		goto out_close;
	}
	for(;;) {
		ssize_t r = read(fd, buf + got, cap - got);
		if(r < 0 && errno == EINTR)
			continue;
		if(r < 0 || (size_t)r == cap - got) {
			rc = OH_ERR_IO;
			goto out_free;
		}
		if(r == 0)
			break;
		got += (size_t)r;
	}
	rc = tzfile_parse(buf, got, out);
out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}
