/*
 * Fuzz target: `at` times and time zones (src/core/timeutil.c), as the
 * scheduler reads them from clients: time_parse_iso8601() in a zone, with
 * tz_valid() deciding which zone names may reach the file system; and the
 * TZif reader under them (src/core/tzfile.c).
 *
 * Input, one field per line: the time text, then the zone name ("" for
 * UTC).  Two other kinds of input go to the TZif reader instead: one that
 * starts with "TZif" is a whole zone file, and "TZ=" followed by a POSIX
 * TZ string is that string as the footer of an otherwise empty file.
 *
 * Checked: a zone name that passes tz_valid() is a relative path without
 * "." or ".." components; a parsed time formats back and reparses to the
 * same instant; tz_mktime() of its local wall clock lands on an instant
 * showing that same wall clock; tz_spans() around it covers the range
 * without gaps, each span with its own offset.  For a zone file or rule
 * that parses: every lookup gives an offset within TZFILE_MAX_OFFSET, an
 * abbreviation, and an `until` after the instant up to which the answer
 * really holds (the answer one second before `until` is the same).
 */
#include <string.h>

#include "fuzz_common.h"
#include "oh/defs.h"
#include "timeutil.h"
#include "tzfile.h"

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

static bool same_info(const struct tzfile_info *a, const struct tzfile_info *b)
{
	return a->utoff == b->utoff && a->isdst == b->isdst && !strcmp(a->abbr, b->abbr);
}

static void check_lookup(const struct tzfile *z, int64_t t, struct tzfile_info *i)
{
	tzfile_lookup(z, t, i);
	FUZZ_CHECK(i->utoff >= -TZFILE_MAX_OFFSET && i->utoff <= TZFILE_MAX_OFFSET);
	FUZZ_CHECK(i->abbr != NULL);
	FUZZ_CHECK(i->until > t || i->until == INT64_MAX);
	if(i->until != INT64_MAX && i->until - 1 > t) {
		struct tzfile_info j;
		tzfile_lookup(z, i->until - 1, &j);
		FUZZ_CHECK(same_info(i, &j));
	}
}

static void check_zone(const uint8_t *data, size_t size)
{
	struct tzfile *z;
	if(tzfile_parse(data, size, &z) != OH_OK)
		return;
	FUZZ_CHECK(tzfile_footer(z) != NULL);
	static const int64_t probes[] = {INT64_MIN, INT64_MIN / 2, -62135596800LL, -2208988800LL, -1, 0,
			1774746000, 2145916800, 4102444800LL, 253402300799LL, INT64_MAX / 2, INT64_MAX};
	for(size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
		struct tzfile_info i;
		int64_t t = probes[k];
		/* Walk on from each probe through the next few changes. */
		for(int step = 0; step < 24; step++) {
			check_lookup(z, t, &i);
			if(i.until == INT64_MAX)
				break;
			t = i.until;
		}
	}
	tzfile_free(z);
}

/* "TZ=<rule>": the rule as the footer of a file with one type and no
 * transitions, which the footer then rules entirely. */
static void check_rule(const char *rule)
{
	size_t len = strlen(rule);
	if(len > 4096)
		return;
	uint8_t *buf = malloc(2 * 44 + 10 + len + 2), *p = buf;
	for(int block = 0; block < 2; block++) {
		memcpy(p, "TZif2", 5);
		memset(p + 5, 0, 39);
		if(block) {
			p[39] = 1; /* typecnt */
			p[43] = 4; /* charcnt */
		}
		p += 44;
	}
	memcpy(p, "\0\0\0\0\0\0UTC\0", 10);
	p += 10;
	*p++ = '\n';
	memcpy(p, rule, len);
	p += len;
	*p++ = '\n';
	check_zone(buf, (size_t)(p - buf));
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	if(size >= 4 && !memcmp(data, "TZif", 4)) {
		check_zone(data, size);
		return 0;
	}
	if(size >= 3 && !memcmp(data, "TZ=", 3)) {
		struct fuzz_in rin = fuzz_in(data + 3, size - 3);
		char *rule = fuzz_next(&rin, '\n');
		if(rule)
			check_rule(rule);
		free(rule);
		return 0;
	}
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
