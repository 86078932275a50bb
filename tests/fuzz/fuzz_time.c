/*
 * Fuzz target: `at` times and time zones (src/core/timeutil.c), as the
 * scheduler reads them from clients: time_parse_iso8601() in a zone, with
 * tz_valid() deciding which zone names may reach the file system.
 *
 * Input, one field per line: the time text, then the zone name ("" for
 * UTC).
 *
 * Checked: a zone name that passes tz_valid() is a relative path without
 * "." or ".." components; a parsed time formats back and reparses to the
 * same instant; tz_mktime() of its local wall clock lands on an instant
 * showing that same wall clock; tz_spans() around it covers the range
 * without gaps, each span with its own offset.
 */
#include <string.h>

#include "fuzz_common.h"
#include "oh/defs.h"
#include "timeutil.h"

static void check_zone_name(const char *tz)
{
	if(!tz || !*tz || !strcmp(tz, "UTC"))
		return;
	FUZZ_CHECK(tz[0] != '/' && strlen(tz) <= TZ_NAME_MAX);
	char copy[TZ_NAME_MAX + 1];
	snprintf(copy, sizeof copy, "%s", tz);
	char *save = NULL;
	for(char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
		FUZZ_CHECK(strcmp(c, ".") && strcmp(c, ".."));
	FUZZ_CHECK(!strstr(tz, "//"));
}

static void check_instant(const char *tz, time_t t)
{
	char buf[TIME_UTC_BUFLEN];
	time_t back;
	if(time_format_utc(t, buf, sizeof buf)) {
		FUZZ_CHECK(time_parse_iso8601(buf, "UTC", &back, NULL, 0) == OH_OK && back == t);
	}

	struct tm local, again;
	if(tz_localtime(tz, t, &local) != OH_OK)
		return;
	struct tm wall = local;
	time_t placed;
	if(tz_mktime(tz, &wall, &placed) != OH_OK)
		return;
	FUZZ_CHECK(tz_localtime(tz, placed, &again) == OH_OK);
	FUZZ_CHECK(again.tm_year == local.tm_year && again.tm_mon == local.tm_mon &&
			again.tm_mday == local.tm_mday && again.tm_hour == local.tm_hour &&
			again.tm_min == local.tm_min && again.tm_sec == local.tm_sec);

	struct tz_span sp[16];
	size_t n;
	if(tz_spans(tz, t - 86400, t + 86400, sp, 16, &n) == OH_OK) {
		FUZZ_CHECK(n >= 1 && sp[0].start == t - 86400 && sp[n - 1].end == t + 86400);
		for(size_t i = 0; i < n; i++) {
			FUZZ_CHECK(sp[i].start < sp[i].end);
			if(i) {
				FUZZ_CHECK(sp[i].start == sp[i - 1].end && sp[i].off != sp[i - 1].off);
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct fuzz_in in = fuzz_in(data, size);
	char *text = fuzz_next(&in, '\n');
	char *tz = fuzz_next(&in, '\n');
	if(!text)
		return 0;
	if(tz_valid(tz))
		check_zone_name(tz);
	time_t t;
	char err[128];
	if(time_parse_iso8601(text, tz, &t, err, sizeof err) == OH_OK)
		check_instant(tz, t);
	else
		FUZZ_CHECK(err[0] != '\0');
	free(text);
	free(tz);
	return 0;
}
