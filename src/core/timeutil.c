/*
 * Time zones, civil-calendar arithmetic and the ISO 8601 wire format.
 *
 * The C library only converts UTC to local time reliably (localtime_r);
 * mktime() guesses differently across libcs for wall times that a DST
 * change skips or repeats.  So local-to-UTC here goes the other way round:
 * tz_spans() maps out the UTC offsets in force around an instant with
 * localtime_r() alone, and tz_mktime() picks among the instants whose wall
 * clock matches by explicit rules.  The calendar arithmetic is Howard
 * Hinnant's days_from_civil/civil_from_days, exact for any year.
 */
#define _POSIX_C_SOURCE 200809L

#include "timeutil.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oh/defs.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years the wire
 * format can write, and far inside what glibc's localtime_r handles. */
#define T_MIN ((time_t)-62135596800LL)
#define T_MAX ((time_t)253402300799LL)

/* No zone has ever been more than 26 hours from UTC (LMT offsets
 * included), so every instant showing a given wall time lies within this
 * distance of that wall time read as UTC. */
#define MAX_ABS_OFFSET (26 * 3600)

/* The TZ value last installed by tz_use(), to skip redundant tzset(). */
static char current_tz[TZ_NAME_MAX + 2];

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

static bool tz_name_ok(const char *tz)
{
	size_t len = strlen(tz);
	if(len > TZ_NAME_MAX || tz[0] == '/')
		return false;
	if(!strcmp(tz, "localtime") || !strncmp(tz, "right/", 6))
		return false;
	/* Walk components: none empty, none starting with '.' (which rules
	 * out "." and ".."), only the characters IANA names use. */
	const char *c = tz;
	for(;;) {
		if(*c == '/' || *c == '\0' || *c == '.')
			return false;
		while(*c && *c != '/') {
			if(!isalnum((unsigned char)*c) && !strchr("._+-", *c))
				return false;
			c++;
		}
		if(!*c)
			return true;
		c++;
	}
}

int tz_valid(const char *tz)
{
	if(is_utc(tz))
		return 1;
	if(!tz_name_ok(tz))
		return 0;

	char path[sizeof(ZONEINFO_DIR) + TZ_NAME_MAX + 2];
	snprintf(path, sizeof(path), "%s/%s", ZONEINFO_DIR, tz);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if(fd < 0)
		return 0;
	/* Directories ("Europe") and the tables shipped alongside the zones
	 * (zone.tab, iso3166.tab) exist too; only TZif files are zones. */
	struct stat st;
	char magic[4];
	int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
		&& read(fd, magic, 4) == 4 && !memcmp(magic, "TZif", 4);
	close(fd);
	return ok;
}

int tz_use(const char *tz)
{
	char want[TZ_NAME_MAX + 2];

	/* "UTC0" is a POSIX rule, so UTC works even without tzdata; the ':'
	 * makes glibc read the name as a file only, never as a POSIX rule. */
	if(is_utc(tz)) {
		strcpy(want, "UTC0");
	} else {
		if(strlen(tz) > TZ_NAME_MAX)
			return OH_ERR_INVAL;
		snprintf(want, sizeof(want), ":%s", tz);
	}

	/* Someone else may have changed TZ behind our back; then re-apply. */
	const char *env = getenv("TZ");
	if(env && !strcmp(env, want) && !strcmp(current_tz, want))
		return OH_OK;

	if(!is_utc(tz) && !tz_valid(tz))
		return OH_ERR_INVAL;
	if(setenv("TZ", want, 1))
		return OH_ERR_NOMEM;
	tzset();
	strcpy(current_tz, want);
	return OH_OK;
}

/* Offset at t in the zone tz_use() installed; false if t is unusable. */
static bool offset_at(time_t t, long *off)
{
	struct tm tm;
	if(t < T_MIN - MAX_ABS_OFFSET * 2 || t > T_MAX + MAX_ABS_OFFSET * 2)
		return false;
	if(!localtime_r(&t, &tm))
		return false;
	*off = (long)(time_timegm(&tm) - (int64_t)t);
	return true;
}

int tz_localtime(const char *tz, time_t t, struct tm *out)
{
	if(!out)
		return OH_ERR_INVAL;
	int rc = tz_use(tz);
	if(rc)
		return rc;
	if(!localtime_r(&t, out))
		return OH_ERR_INVAL;
	return OH_OK;
}

int tz_utc_offset(const char *tz, time_t t, long *off)
{
	if(!off)
		return OH_ERR_INVAL;
	int rc = tz_use(tz);
	if(rc)
		return rc;
	return offset_at(t, off) ? OH_OK : OH_ERR_INVAL;
}

int tz_spans(const char *tz, time_t from, time_t to, struct tz_span *out, size_t max, size_t *n)
{
	if(!out || !n || max == 0 || from >= to)
		return OH_ERR_INVAL;
	int rc = tz_use(tz);
	if(rc)
		return rc;

	*n = 0;
	if(is_utc(tz)) {
		out[0] = (struct tz_span){from, to, 0};
		*n = 1;
		return OH_OK;
	}

	long off;
	if(!offset_at(from, &off))
		return OH_ERR_INVAL;
	time_t start = from, prev = from;
	while(prev < to - 1) {
		time_t probe = to - 1 - prev > 3600 ? prev + 3600 : to - 1;
		long o;
		if(!offset_at(probe, &o))
			return OH_ERR_INVAL;
		if(o == off) {
			prev = probe;
			continue;
		}
		/* Bisect (prev, probe] for the first second with another offset:
		 * offset(lo) == off, offset(hi) != off. */
		time_t lo = prev, hi = probe;
		while(hi - lo > 1) {
			time_t mid = lo + (hi - lo) / 2;
			long m;
			if(!offset_at(mid, &m))
				return OH_ERR_INVAL;
			if(m == off)
				lo = mid;
			else
				hi = mid;
		}
		if(*n + 1 >= max)
			return OH_ERR_TOO_LARGE;
		out[(*n)++] = (struct tz_span){start, hi, off};
		start = prev = hi;
		if(!offset_at(hi, &off))
			return OH_ERR_INVAL;
	}
	out[(*n)++] = (struct tz_span){start, to, off};
	return OH_OK;
}

int tz_mktime(const char *tz, struct tm *tm, time_t *out)
{
	if(!tm || !out)
		return OH_ERR_INVAL;
	int64_t wall = time_timegm(tm);
	if(wall < T_MIN || wall > T_MAX)
		return OH_ERR_INVAL;

	struct tz_span sp[16];
	size_t n;
	int rc = tz_spans(tz, (time_t)(wall - MAX_ABS_OFFSET), (time_t)(wall + MAX_ABS_OFFSET + 1), sp, 16, &n);
	if(rc)
		return rc;

	/* Occurrences come out in chronological order because spans do. */
	time_t occ[16];
	size_t nocc = 0;
	for(size_t k = 0; k < n; k++) {
		time_t t = (time_t)(wall - sp[k].off);
		if(t >= sp[k].start && t < sp[k].end)
			occ[nocc++] = t;
	}

	time_t result;
	if(nocc == 0) {
		/* Skipped by a forward change: the gap is [end+old, end+new). */
		bool found = false;
		for(size_t k = 0; k + 1 < n && !found; k++) {
			if(sp[k + 1].off > sp[k].off && wall >= sp[k].end + sp[k].off && wall < sp[k].end + sp[k + 1].off) {
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
				struct tm lt;
				if(localtime_r(&occ[i], &lt) && (lt.tm_isdst > 0) == (tm->tm_isdst > 0)) {
					result = occ[i];
					break;
				}
			}
		}
	}

	if(!localtime_r(&result, tm))
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
				set_err(err, errlen, "\"%.64s\": expected digits after the decimal point", text);
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
		snprintf(msg, sizeof(msg), "day %d out of range 1-%u for %04d-%02d", d, time_days_in_month(y, (unsigned)mo), y, mo);
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
		.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
		.tm_hour = h, .tm_min = mi, .tm_sec = s, .tm_isdst = -1,
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
	snprintf(buf, len, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m, d,
		(int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
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
