/*
 * Fuzz target: crontab expressions (src/core/cron.c) and the search for
 * their next firing in a time zone (on src/core/timeutil.c).
 *
 * Input, one field per line: the expression, the time zone ("" for UTC),
 * and the instant to search from as ISO 8601 (default 2026-03-29T00:30Z,
 * the night Europe springs forward).
 *
 * Checked: a refused expression leaves *out untouched and says why; an
 * accepted one sets only bits inside each field's range; cron_next()
 * returns a time after `after`, the same time when asked again from just
 * before it (the set of firings does not depend on where the search
 * starts), and increasing times when fed back in.  Every firing's wall
 * clock matches the expression, except a fixed job's catch-up at the end
 * of a spring-forward gap (cron.h).
 */
#include <string.h>

#include "cron.h"
#include "fuzz_common.h"
#include "oh/defs.h"
#include "timeutil.h"

/* 9988-12-31T00:00:00Z: later than this, cron_next() may refuse `after`. */
#define LATE ((time_t)253055145600LL)

static bool wall_matches(const struct cron_expr *e, const struct tm *tm)
{
	if(!(e->minutes & (1ULL << tm->tm_min)) || !(e->hours & (1u << tm->tm_hour)) ||
			!(e->months & (1u << (tm->tm_mon + 1))))
		return false;
	bool dom = e->mdays & (1u << tm->tm_mday), dow = e->wdays & (1u << tm->tm_wday);
	return (e->flags & (CRON_DOM_STAR | CRON_DOW_STAR)) ? dom && dow : dom || dow;
}

static void check_firing(const struct cron_expr *e, const char *tz, time_t t)
{
	struct tm tm;
	FUZZ_CHECK(tz_localtime(tz, t, &tm) == OH_OK);
	if(wall_matches(e, &tm))
		return;
	/* Only a fixed job may fire off its wall time: once, at the first
	 * instant after a forward change that skipped it. */
	long before, after;
	FUZZ_CHECK(!(e->flags & (CRON_MIN_STAR | CRON_HOUR_STAR)));
	FUZZ_CHECK(tz_utc_offset(tz, t - 1, &before) == OH_OK && tz_utc_offset(tz, t, &after) == OH_OK);
	FUZZ_CHECK(after > before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct fuzz_in in = fuzz_in(data, size);
	char *text = fuzz_next(&in, '\n');
	char *tz = fuzz_next(&in, '\n');
	char *from = fuzz_next(&in, '\n');
	if(!text)
		return 0;

	struct cron_expr e, sentinel;
	memset(&sentinel, 0xa5, sizeof sentinel);
	e = sentinel;
	char err[128];
	if(cron_parse(text, &e, err, sizeof err)) {
		FUZZ_CHECK(!memcmp(&e, &sentinel, sizeof e));
		FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof err);
		goto out;
	}
	FUZZ_CHECK(e.minutes && !(e.minutes >> 60));
	FUZZ_CHECK(e.hours && !(e.hours >> 24));
	FUZZ_CHECK(e.mdays && !(e.mdays & 1u));
	FUZZ_CHECK(e.months && !(e.months & 1u) && !(e.months >> 13));
	FUZZ_CHECK(e.wdays && !(e.wdays >> 7));

	time_t after = 1774744200; /* 2026-03-29T00:30:00Z */
	if(from && *from) {
		time_t t;
		if(time_parse_iso8601(from, "UTC", &t, NULL, 0) == OH_OK)
			after = t;
	}
	time_t next;
	int rc = cron_next(&e, tz, after, &next);
	if(rc) {
		FUZZ_CHECK(rc == OH_ERR_INVAL || rc == OH_ERR_NOT_FOUND);
		goto out;
	}
	FUZZ_CHECK(next > after);
	/* Near the end of the range `after` may be refused (OH_ERR_INVAL: the
	 * search must stay inside year 9999). */
	time_t again;
	rc = cron_next(&e, tz, next - 1, &again);
	FUZZ_CHECK(rc == OH_OK ? again == next : rc == OH_ERR_INVAL && next > LATE);
	check_firing(&e, tz, next);
	for(int i = 0; i < 3; i++) {
		time_t later;
		if(cron_next(&e, tz, next, &later))
			break;
		FUZZ_CHECK(later > next);
		check_firing(&e, tz, later);
		next = later;
	}
out:
	free(text);
	free(tz);
	free(from);
	return 0;
}
