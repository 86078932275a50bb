/*
 * Time zones, civil-calendar arithmetic and the ISO 8601 wire format.
 *
 * The scheduler thinks in wall-clock time of an IANA zone, the wire speaks
 * UTC.  Zones are read from their TZif files by tzfile.c and kept in a
 * small cache here; the process time zone (TZ, tzset(), localtime()) is
 * never touched, so nothing else in the process sees a zone change.  A
 * zone's file is read the first time it is named (a small blocking read,
 * once per zone while it stays among the TZ_CACHE_MAX most recently used);
 * after that every call is pure computation.  Loop thread only.
 *
 * Time zone arguments: NULL, "" and "UTC" all mean UTC; anything else must
 * pass tz_valid() or the call fails with OH_ERR_INVAL.  Every function
 * returns an OH_* code from oh/defs.h unless it says otherwise.
 */
#ifndef OH_TIMEUTIL_H
#define OH_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Longest time zone name tz_valid() accepts, in bytes without the NUL. */
#define TZ_NAME_MAX 255

/* Smallest buffer time_format_utc() needs: "YYYY-MM-DDTHH:MM:SSZ" + NUL. */
#define TIME_UTC_BUFLEN 21

/* Zones kept parsed at once; the least recently used one is dropped to
 * make room (and read again if it is named again). */
#define TZ_CACHE_MAX 64

/*
 * 1 if tz (borrowed) names a zone: NULL, "" or "UTC", or a relative path of
 * a valid TZif file under the zone directory ($TZDIR if set and not empty,
 * else /usr/share/zoneinfo).  Rejects path tricks (absolute paths, "." or
 * ".." components, empty components, characters outside [A-Za-z0-9._+-/]),
 * anything but a regular file, the "right/" leap-second variants (their
 * time_t is not POSIX time) and the "localtime" link (not an IANA name).
 * A zone that passes is loaded into the cache, so converting in it next
 * reads nothing.  0 otherwise.
 */
int tz_valid(const char *tz);

/*
 * Broken-down local time of t in tz, into out (borrowed), with tm_isdst,
 * tm_wday, tm_yday, tm_gmtoff and tm_zone (the abbreviation, "CEST" or
 * "+0545", in storage that lives until exit) set as localtime_r() would.
 * OH_ERR_INVAL if tz is not valid or the year does not fit an int.
 */
int tz_localtime(const char *tz, time_t t, struct tm *out);

/* Seconds east of UTC in force in tz at instant t (CET is +3600). */
int tz_utc_offset(const char *tz, time_t t, long *off);

/*
 * The instant at which the wall clock in tz shows *tm (borrowed, updated).
 * Out-of-range fields are normalised as by mktime() (Jan 32 is Feb 1).
 * Unlike mktime(), the result does not depend on the C library's guesses:
 *  - a wall time that happens once: that instant, whatever tm_isdst says;
 *  - a wall time repeated by a backward change (autumn): the occurrence
 *    whose DST flag equals tm_isdst if tm_isdst >= 0 and one matches,
 *    otherwise the earlier occurrence;
 *  - a wall time skipped by a forward change (spring): the instant of the
 *    change, i.e. the first instant after the gap (02:30 on the day Berlin
 *    jumps 02:00->03:00 gives 03:00 CEST).  tm_isdst is ignored.
 * On success *tm is rewritten as the local time of *out (tm_isdst,
 * tm_wday, tm_yday filled in).
 * Errors: OH_ERR_INVAL (bad tz, NULL argument, year outside 1..9999).
 */
int tz_mktime(const char *tz, struct tm *tm, time_t *out);

/*
 * One stretch of constant UTC offset: the offset `off` (seconds east of
 * UTC) is in force for instants start <= t < end.
 */
struct tz_span {
	time_t start;
	time_t end;
	long off;
};

/*
 * Split [from, to) into stretches of constant UTC offset in tz, in
 * chronological order, written to out (borrowed, room for max entries),
 * their number to *n.  Every change of offset is found, however short;
 * changes of only the abbreviation or the DST flag do not split a span.
 * Errors: OH_ERR_INVAL (bad tz, from >= to, time out of range),
 * OH_ERR_TOO_LARGE (more than max stretches).
 */
int tz_spans(const char *tz, time_t from, time_t to, struct tz_span *out, size_t max, size_t *n);

/*
 * ISO 8601 / RFC 3339 instant: "YYYY-MM-DDTHH:MM[:SS[.fff...]]" followed by
 * "Z", "+HH:MM", "+HHMM", "+HH" (or '-'), or nothing.  A space may stand
 * for the 'T'; 'T' and 'Z' may be lower case.  Without an offset the wall
 * time is read in tz with tz_mktime()'s rules (tm_isdst = -1: a repeated
 * time is its first occurrence, a skipped time is the end of the gap).
 * Fractional seconds are truncated; a leap second :60 is read as the first
 * second of the next minute, as POSIX time does.  No surrounding spaces.
 * The instant must lie in 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z, so
 * that time_format_utc() can write it back ("0001-01-01T00:00+01:00" is
 * refused).
 * text and tz are borrowed; err (may be NULL) gets a human message naming
 * the problem.  Errors: OH_ERR_INVAL.
 */
int time_parse_iso8601(const char *text, const char *tz, time_t *out, char *err, size_t errlen);

/*
 * Write t as "2026-11-28T10:00:00Z" (UTC, whole seconds) into buf
 * (borrowed, len >= TIME_UTC_BUFLEN).  Returns buf, or NULL (buf set to ""
 * when len > 0) if len is too small or the year is outside 0000..9999.
 */
char *time_format_utc(time_t t, char *buf, size_t len);

double time_now_wall(void); /* CLOCK_REALTIME, seconds since the epoch */
double time_now_mono(void); /* CLOCK_MONOTONIC, seconds; for intervals only */

struct event;
/* Adds the timer ev (borrowed) to fire s seconds from now, at once when s
 * is negative or NaN.  The caller keeps s within what a time_t holds (its
 * deadlines are re-checked when they fire). */
void time_evtimer_add(struct event *ev, double s);

/*
 * Proleptic Gregorian calendar arithmetic on day numbers (0 = 1970-01-01),
 * valid for any year an int holds; no time zone involved.
 */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d);
void time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
unsigned time_days_in_month(int64_t y, unsigned m); /* m is 1..12 */
unsigned time_weekday(int64_t days);                /* 0 = Sunday */

/* The tm fields read as UTC (a portable timegm(); normalises like mktime,
 * ignores tm_isdst, does not modify tm). */
int64_t time_timegm(const struct tm *tm);

/* The zone cache, for tests and metrics. */
struct tz_cache_stats {
	size_t zones;       /* held now, at most TZ_CACHE_MAX */
	uint64_t loads;     /* zone files read and parsed so far */
	uint64_t evictions; /* zones dropped to make room */
};
void tz_cache_stats(struct tz_cache_stats *out); /* out is borrowed */

#endif
