/*
 * Time zones, civil-calendar arithmetic and the ISO 8601 wire format.
 *
 * Why zones are read from their TZif files here (tzfile.c) instead of
 * through the C library: glibc converts in one zone per process, the one
 * named by TZ.  Switching it per job (setenv + tzset) changed the zone for
 * everything else in the process that calls localtime() (logging, libraries,
 * plugins), and glibc re-read the zone's file from disk on every switch, so
 * a scheduler alternating between two zones spent its time in open/read.
 * glibc offers no per-zone call (no localtime_rz/mktime_z as NetBSD and
 * tzcode have).  So each zone is parsed once into an immutable table, kept
 * in a small LRU cache keyed by name, and every conversion is a lookup in
 * it.  mktime() had a second problem, solved the same way: it guesses
 * differently across libcs for wall times that a DST change skips or
 * repeats.  So local-to-UTC goes the other way round: tz_spans() maps out
 * the UTC offsets in force around an instant, and tz_mktime() picks among
 * the instants whose wall clock matches by explicit rules.
 *
 * tests/unit/test_tzfile.c checks the result against glibc for every zone
 * of tzdata.  The calendar arithmetic is Howard Hinnant's
 * days_from_civil/civil_from_days, exact for any year.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* tm_gmtoff, tm_zone */

#include "timeutil.h"

#include <ctype.h>
#include <event2/event.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/defs.h"
#include "tzfile.h"

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years the wire
 * format can write. */
#define T_MIN ((time_t)-62135596800LL)
#define T_MAX ((time_t)253402300799LL)

/* No zone is more than this far from UTC (tzfile.c refuses any that
 * claims to be), so every instant showing a given wall time lies within
 * this distance of that wall time read as UTC. */
#define MAX_ABS_OFFSET TZFILE_MAX_OFFSET

int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned dd = doy - (153 * mp + 2) / 5 + 1;
	unsigned mm = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (mm <= 2);
	*m = mm;
	*d = dd;
}

unsigned time_days_in_month(int64_t y, unsigned m)
{
	static const unsigned char len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if(m == 2) {
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		return leap ? 29 : 28;
	}
	return len[(m - 1) % 12];
}

unsigned time_weekday(int64_t days)
{
	/* 1970-01-01 was a Thursday. */
	int64_t w = (days + 4) % 7;
	return (unsigned)(w < 0 ? w + 7 : w);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t time_timegm(const struct tm *tm)
{
	/* Normalise the month first so days_from_civil sees 1..12; every other
	 * field may overflow freely because it is just added in seconds. */
	int64_t mon = tm->tm_mon;
	int64_t y = (int64_t)tm->tm_year + 1900 + floor_div(mon, 12);
	mon -= floor_div(mon, 12) * 12;
	int64_t days = time_days_from_civil(y, (unsigned)mon + 1, 1) + tm->tm_mday - 1;
	return days * 86400 + (int64_t)tm->tm_hour * 3600 + (int64_t)tm->tm_min * 60 + tm->tm_sec;
}

static bool is_utc(const char *tz)
{
	return !tz || !*tz || !strcmp(tz, "UTC");
}

/* ---- the zone cache ---- */

struct zone_slot {
	char name[TZ_NAME_MAX + 1];
	struct tzfile *zone;
	uint64_t used; /* zone_clock at the last use */
};

static struct zone_slot zones[TZ_CACHE_MAX];
static size_t nzones;
static size_t last_hit;
static uint64_t zone_clock, zone_loads, zone_evictions;
/* The directory the cached zones were read from: if TZDIR changes, they
 * are dropped, so a name always means the file under the current one. */
static char zones_dir[PATH_MAX];

static void zones_flush(void)
{
	for(size_t i = 0; i < nzones; i++)
		tzfile_free(zones[i].zone);
	nzones = 0;
	last_hit = 0;
}

/*
 * The parsed zone tz names, loading it on first use; *out is NULL for
 * UTC.  Errors: OH_ERR_INVAL (not a valid zone), OH_ERR_NOMEM.
 */
static int zone_get(const char *tz, const struct tzfile **out)
{
	*out = NULL;
	if(is_utc(tz))
		return OH_OK;

	const char *dir = getenv("TZDIR");
	if(!dir || !*dir)
		dir = TZFILE_DEFAULT_DIR;
	if(strcmp(dir, zones_dir)) {
		if(strlen(dir) >= sizeof zones_dir)
			return OH_ERR_INVAL;
		zones_flush();
		strcpy(zones_dir, dir);
	}

	/* Most calls name the zone of the call before. */
	if(last_hit < nzones && !strcmp(zones[last_hit].name, tz)) {
		zones[last_hit].used = ++zone_clock;
		*out = zones[last_hit].zone;
		return OH_OK;
	}
	for(size_t i = 0; i < nzones; i++) {
		if(!strcmp(zones[i].name, tz)) {
			zones[i].used = ++zone_clock;
			last_hit = i;
			*out = zones[i].zone;
			return OH_OK;
		}
	}

	/* tzfile_load() checks the name before it reaches the file system;
	 * a name that passes fits in a slot. */
	struct tzfile *z;
	int rc = tzfile_load(dir, tz, &z);
	if(rc)
		return rc == OH_ERR_NOMEM ? rc : OH_ERR_INVAL;
	zone_loads++;
	size_t slot = nzones;
	if(nzones < TZ_CACHE_MAX) {
		nzones++;
	} else {
		slot = 0;
		for(size_t i = 1; i < nzones; i++) {
			if(zones[i].used < zones[slot].used)
				slot = i;
		}
		tzfile_free(zones[slot].zone);
		zone_evictions++;
	}
	snprintf(zones[slot].name, sizeof zones[slot].name, "%s", tz);
	zones[slot].zone = z;
	zones[slot].used = ++zone_clock;
	last_hit = slot;
	*out = z;
	return OH_OK;
}

void tz_cache_stats(struct tz_cache_stats *out)
{
	if(out)
		*out = (struct tz_cache_stats){nzones, zone_loads, zone_evictions};
}

/* What is in force at t in z (NULL: UTC). */
static void info_at(const struct tzfile *z, int64_t t, struct tzfile_info *info)
{
	if(z)
		tzfile_lookup(z, t, info);
	else
		*info = (struct tzfile_info){0, false, "UTC", INT64_MAX};
}

/*
 * A copy of the abbreviation that lives until exit, for tm_zone: a struct
 * tm may outlive the cached zone it came from.  tzdata has under 200
 * distinct abbreviations; past ABBR_SLOTS / 2 (another TZDIR full of odd
 * ones) tm_zone is NULL, which strftime("%Z") prints as "".
 */
#define ABBR_SLOTS 512
#define ABBR_POOL 8192

static const char *abbr_keep(const char *s)
{
	static const char *slot[ABBR_SLOTS];
	static char pool[ABBR_POOL];
	static size_t used, count;

	uint32_t h = 2166136261u;
	for(const char *c = s; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	size_t i = h & (ABBR_SLOTS - 1);
	while(slot[i]) {
		if(!strcmp(slot[i], s))
			return slot[i];
		i = (i + 1) & (ABBR_SLOTS - 1);
	}
	size_t len = strlen(s) + 1;
	if(count >= ABBR_SLOTS / 2 || len > ABBR_POOL - used)
		return NULL;
	memcpy(pool + used, s, len);
	slot[i] = pool + used;
	used += len;
	count++;
	return slot[i];
}

/* t as local time with the offset etc. of info; false when the year does
 * not fit tm_year. */
static bool fill_tm(int64_t t, const struct tzfile_info *info, struct tm *out)
{
	/* Far enough inside int64_t that adding an offset cannot overflow;
	 * such years do not fit an int anyway. */
	if(t < INT64_MIN / 2 || t > INT64_MAX / 2)
		return false;
	int64_t local = t + info->utoff;
	int64_t days = floor_div(local, 86400), secs = local - days * 86400, y;
	unsigned m, d;
	time_civil_from_days(days, &y, &m, &d);
	if(y - 1900 < INT_MIN || y - 1900 > INT_MAX)
		return false;
	memset(out, 0, sizeof *out);
	out->tm_year = (int)(y - 1900);
	out->tm_mon = (int)m - 1;
	out->tm_mday = (int)d;
	out->tm_hour = (int)(secs / 3600);
	out->tm_min = (int)(secs / 60 % 60);
	out->tm_sec = (int)(secs % 60);
	out->tm_wday = (int)time_weekday(days);
	out->tm_yday = (int)(days - time_days_from_civil(y, 1, 1));
	out->tm_isdst = info->isdst;
	out->tm_gmtoff = info->utoff;
	out->tm_zone = abbr_keep(info->abbr);
	return true;
}

/* The instants the offset functions accept: a little beyond the years the
 * wire format can write, as searches around them need. */
static bool in_range(int64_t t)
{
	return t >= T_MIN - MAX_ABS_OFFSET * 2 && t <= T_MAX + MAX_ABS_OFFSET * 2;
}

int tz_valid(const char *tz)
{
	const struct tzfile *z;
	return zone_get(tz, &z) == OH_OK;
}

int tz_localtime(const char *tz, time_t t, struct tm *out)
{
	const struct tzfile *z;
	if(!out)
		return OH_ERR_INVAL;
	int rc = zone_get(tz, &z);
	if(rc)
		return rc;
	struct tzfile_info info;
	info_at(z, t, &info);
	return fill_tm(t, &info, out) ? OH_OK : OH_ERR_INVAL;
}

int tz_utc_offset(const char *tz, time_t t, long *off)
{
	const struct tzfile *z;
	if(!off)
		return OH_ERR_INVAL;
	int rc = zone_get(tz, &z);
	if(rc)
		return rc;
	if(!in_range(t))
		return OH_ERR_INVAL;
	struct tzfile_info info;
	info_at(z, t, &info);
	*off = info.utoff;
	return OH_OK;
}

/* tz_spans() on a zone already looked up. */
static int spans(const struct tzfile *z, time_t from, time_t to, struct tz_span *out, size_t max, size_t *n)
{
	*n = 0;
	if(!z) {
		out[0] = (struct tz_span){from, to, 0};
		*n = 1;
		return OH_OK;
	}
	if(!in_range(from) || !in_range((int64_t)to - 1))
		return OH_ERR_INVAL;

	struct tzfile_info info;
	tzfile_lookup(z, from, &info);
	long off = info.utoff;
	time_t start = from;
	int64_t next = info.until;
	while(next < to) {
		tzfile_lookup(z, next, &info);
		if(info.utoff != off) {
			if(*n + 1 >= max)
				return OH_ERR_TOO_LARGE;
			out[(*n)++] = (struct tz_span){start, (time_t)next, off};
			start = (time_t)next;
			off = info.utoff;
		}
		next = info.until;
	}
	out[(*n)++] = (struct tz_span){start, to, off};
	return OH_OK;
}

int tz_spans(const char *tz, time_t from, time_t to, struct tz_span *out, size_t max, size_t *n)
{
	const struct tzfile *z;
	if(!out || !n || max == 0 || from >= to)
		return OH_ERR_INVAL;
	int rc = zone_get(tz, &z);
	if(rc)
		return rc;
	return spans(z, from, to, out, max, n);
}

int tz_mktime(const char *tz, struct tm *tm, time_t *out)
{
	const struct tzfile *z;
	if(!tm || !out)
		return OH_ERR_INVAL;
	int64_t wall = time_timegm(tm);
	if(wall < T_MIN || wall > T_MAX)
		return OH_ERR_INVAL;
	int rc = zone_get(tz, &z);
	if(rc)
		return rc;

	struct tz_span sp[16];
	size_t n;
	rc = spans(z, (time_t)(wall - MAX_ABS_OFFSET), (time_t)(wall + MAX_ABS_OFFSET + 1), sp, 16, &n);
	if(rc)
		return rc == OH_ERR_TOO_LARGE ? OH_ERR_INVAL : rc;

	/* Occurrences come out in chronological order because spans do. */
	time_t occ[16];
	size_t nocc = 0;
	for(size_t k = 0; k < n; k++) {
		time_t t = (time_t)(wall - sp[k].off);
		if(t >= sp[k].start && t < sp[k].end)
			occ[nocc++] = t;
	}

	struct tzfile_info info;
	time_t result;
	if(nocc == 0) {
		/* Skipped by a forward change: the gap is [end+old, end+new). */
		bool found = false;
		for(size_t k = 0; k + 1 < n && !found; k++) {
			if(sp[k + 1].off > sp[k].off && wall >= sp[k].end + sp[k].off &&
					wall < sp[k].end + sp[k + 1].off) {
				result = sp[k].end;
				found = true;
			}
		}
		if(!found)
			return OH_ERR_INVAL;
	} else {
		result = occ[0];
		if(nocc > 1 && tm->tm_isdst >= 0) {
			for(size_t i = 0; i < nocc; i++) {
				info_at(z, occ[i], &info);
				if(info.isdst == (tm->tm_isdst > 0)) {
					result = occ[i];
					break;
				}
			}
		}
	}

	info_at(z, result, &info);
	if(!fill_tm(result, &info, tm))
		return OH_ERR_INVAL;
	*out = result;
	return OH_OK;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *tok)
{
	if(err && errlen)
		snprintf(err, errlen, fmt, tok);
}

/* Exactly `count` decimal digits at *p; advances *p. */
static bool digits(const char **p, int count, int *val)
{
	int v = 0;
	for(int i = 0; i < count; i++) {
		if(!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += count;
	*val = v;
	return true;
}

/* An instant before 0001-01-01 or after 9999-12-31 UTC ("0001-01-01T00:00
 * +05:00", a leap second on 9999-12-31): time_format_utc() could not write
 * it back, and a job due then would be listed and stored without a time. */
static int out_of_range(const char *text, char *err, size_t errlen)
{
	set_err(err, errlen, "\"%.64s\" is outside years 0001-9999 in UTC", text);
	return OH_ERR_INVAL;
}

int time_parse_iso8601(const char *text, const char *tz, time_t *out, char *err, size_t errlen)
{
	int y, mo, d, h, mi, s = 0;
	const char *p = text;

	if(err && errlen)
		err[0] = '\0';
	if(!text || !out) {
		set_err(err, errlen, "%s", "no time given");
		return OH_ERR_INVAL;
	}
	if(!tz_valid(tz)) {
		set_err(err, errlen, "unknown time zone \"%.64s\"", tz);
		return OH_ERR_INVAL;
	}
	if(!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d)) {
		set_err(err, errlen, "\"%.64s\" does not start with a date YYYY-MM-DD", text);
		return OH_ERR_INVAL;
	}
	if(*p != 'T' && *p != 't' && *p != ' ') {
		set_err(err, errlen, "\"%.64s\": expected 'T' or ' ' and a time after the date", text);
		return OH_ERR_INVAL;
	}
	p++;
	if(!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi)) {
		set_err(err, errlen, "\"%.64s\": expected a time HH:MM[:SS] after the date", text);
		return OH_ERR_INVAL;
	}
	if(*p == ':') {
		p++;
		if(!digits(&p, 2, &s)) {
			set_err(err, errlen, "\"%.64s\": expected two digits of seconds", text);
			return OH_ERR_INVAL;
		}
		if(*p == '.' || *p == ',') {
			p++;
			if(!isdigit((unsigned char)*p)) {
				set_err(err, errlen, "\"%.64s\": expected digits after the decimal point",
						text);
				return OH_ERR_INVAL;
			}
			while(isdigit((unsigned char)*p))
				p++;
		}
	}

	char msg[96];
	if(mo < 1 || mo > 12) {
		snprintf(msg, sizeof(msg), "month %d out of range 1-12", mo);
	} else if(y < 1) {
		snprintf(msg, sizeof(msg), "year %04d out of range 0001-9999", y);
	} else if(d < 1 || (unsigned)d > time_days_in_month(y, (unsigned)mo)) {
		snprintf(msg, sizeof(msg), "day %d out of range 1-%u for %04d-%02d", d,
				time_days_in_month(y, (unsigned)mo), y, mo);
	} else if(h > 23) {
		snprintf(msg, sizeof(msg), "hour %d out of range 0-23", h);
	} else if(mi > 59) {
		snprintf(msg, sizeof(msg), "minute %d out of range 0-59", mi);
	} else if(s > 60) {
		snprintf(msg, sizeof(msg), "second %d out of range 0-60", s);
	} else {
		msg[0] = '\0';
	}
	if(msg[0]) {
		set_err(err, errlen, "%s", msg);
		return OH_ERR_INVAL;
	}

	struct tm tm = {
			.tm_year = y - 1900,
			.tm_mon = mo - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = mi,
			.tm_sec = s,
			.tm_isdst = -1,
	};
	int64_t wall = time_timegm(&tm);

	if(*p == '\0') {
		time_t t;
		int rc = tz_mktime(tz, &tm, &t);
		if(rc) {
			set_err(err, errlen, "\"%.64s\" cannot be placed in the time zone", text);
			return rc;
		}
		if(t < T_MIN || t > T_MAX)
			return out_of_range(text, err, errlen);
		*out = t;
		return OH_OK;
	}

	int64_t off;
	if(*p == 'Z' || *p == 'z') {
		off = 0;
		p++;
	} else if(*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
		if(!digits(&p, 2, &oh)) {
			set_err(err, errlen, "\"%.64s\": bad UTC offset, expected +HH:MM", text);
			return OH_ERR_INVAL;
		}
		if(*p == ':') {
			p++;
			if(!digits(&p, 2, &om)) {
				set_err(err, errlen, "\"%.64s\": bad UTC offset, expected +HH:MM", text);
				return OH_ERR_INVAL;
			}
		} else if(isdigit((unsigned char)*p) && !digits(&p, 2, &om)) {
			set_err(err, errlen, "\"%.64s\": bad UTC offset, expected +HHMM", text);
			return OH_ERR_INVAL;
		}
		if(oh > 23 || om > 59) {
			set_err(err, errlen, "\"%.64s\": UTC offset out of range", text);
			return OH_ERR_INVAL;
		}
		off = sign * (oh * 3600 + om * 60);
	} else {
		set_err(err, errlen, "unexpected \"%.32s\" after the time", p);
		return OH_ERR_INVAL;
	}
	if(*p) {
		set_err(err, errlen, "unexpected \"%.32s\" after the UTC offset", p);
		return OH_ERR_INVAL;
	}
	if(wall - off < T_MIN || wall - off > T_MAX)
		return out_of_range(text, err, errlen);
	*out = (time_t)(wall - off);
	return OH_OK;
}

char *time_format_utc(time_t t, char *buf, size_t len)
{
	if(!buf)
		return NULL;
	if(len < TIME_UTC_BUFLEN || t < T_MIN - 86400 * 366 || t > T_MAX) {
		if(len)
			buf[0] = '\0';
		return NULL;
	}
	int64_t days = floor_div(t, 86400), secs = t - days * 86400, y;
	unsigned m, d;
	time_civil_from_days(days, &y, &m, &d);
	if(y < 0) {
		buf[0] = '\0';
		return NULL;
	}
	/* "YYYY-MM-DDTHH:MM:SSZ" digit by digit: every ack carries one, and
	 * snprintf's format parsing was 2% of a relayed command. */
	static const char shape[] = "0000-00-00T00:00:00Z";
	static const unsigned char at[][2] = {{0, 4}, {5, 2}, {8, 2}, {11, 2}, {14, 2}, {17, 2}};
	const unsigned v[] = {(unsigned)y, m, d, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60),
			(unsigned)(secs % 60)};
	memcpy(buf, shape, sizeof shape);
	for(size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		unsigned n = v[i];
		for(int k = at[i][0] + at[i][1] - 1; k >= at[i][0]; k--, n /= 10)
			buf[k] = (char)('0' + n % 10);
	}
	return buf;
}

double time_now_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double time_now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void time_evtimer_add(struct event *ev, double s)
{
	if(!(s > 0))
		s = 0;
	struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
	evtimer_add(ev, &tv);
}
