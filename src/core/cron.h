/*
 * Crontab expressions for the scheduler: parsing the classic 5-field
 * "m h dom mon dow" form and finding the next time one fires in an IANA
 * time zone.  Pure computation on an injected `after` instant, so tests
 * need no clock; the daylight-saving rules are described at the top of
 * cron.c.
 */
#ifndef OH_CRON_H
#define OH_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Fields that began with '*' (Vixie cron's *_STAR flags).  They decide the
 * day-of-month/day-of-week rule and which DST rule a job follows. */
#define CRON_MIN_STAR 0x1u  /* minute field starts with '*' */
#define CRON_HOUR_STAR 0x2u /* hour field starts with '*' */
#define CRON_DOM_STAR 0x4u  /* day-of-month field starts with '*' */
#define CRON_DOW_STAR 0x8u  /* day-of-week field starts with '*' */

struct cron_expr {
	uint64_t minutes; /* bit n: minute n, 0..59 */
	uint32_t hours;   /* bit n: hour n, 0..23 */
	uint32_t mdays;   /* bit n: day of month n, 1..31 */
	uint16_t months;  /* bit n: month n, 1..12 */
	uint8_t wdays;    /* bit n: weekday n, 0 = Sunday..6 (7 folded into 0) */
	unsigned flags;   /* CRON_*_STAR */
};

/*
 * Parse text (borrowed) into *out.  Accepts `*`, numbers, lists, ranges,
 * steps (`*\/5`, `1-30/2`, `5/15` = 5-max/15; step 1..field max), month
 * names JAN-DEC and weekday names SUN-SAT (3 letters, any case, also in
 * ranges), 0 and 7 for Sunday, and @hourly @daily @midnight @weekly
 * @monthly @yearly @annually.  Fields are separated by spaces or tabs.
 *
 * Day rule (Vixie cron): if either day field starts with '*' a day must
 * match both fields; if neither does, a day matching either one is enough.
 * So "0 0 *\/2 * MON" means odd days that are Mondays, while
 * "0 0 1-31/2 * MON" means odd days or Mondays.
 *
 * On failure *out is untouched and err (may be NULL) gets a message naming
 * the field and the token, e.g. `day-of-week: bad token "FOO"`,
 * `minute: 61 out of range 0-59`, `expected 5 fields, got 6`.
 * Errors: OH_ERR_INVAL.
 */
int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen);

/*
 * The first fire time strictly after `after`, evaluated on the wall clock
 * of tz (borrowed; NULL, "" or "UTC" mean UTC), written to *next.  Never
 * returns a time <= after, and the set of fire times does not depend on
 * `after`, so feeding each result back in walks every firing exactly once.
 * Errors: OH_ERR_INVAL (bad tz, empty field in a hand-built expression,
 * `after` outside years 0001..9990), OH_ERR_NOT_FOUND (nothing within
 * CRON_HORIZON_YEARS, e.g. "0 0 30 2 *").
 */
int cron_next(const struct cron_expr *e, const char *tz, time_t after, time_t *next);

/* How far cron_next() looks.  Eight years, not five: Feb 29 2096 is
 * followed by Feb 29 2104 because 2100 is not a leap year. */
#define CRON_HORIZON_YEARS 8

#endif
