/*
 * Timestamps and UUIDs for the device agent (its JSON checks are the shared
 * one of include/oh/validate.h).
 * See util.h.  Kept in src/device because the host has its own time module
 * (src/core/timeutil.c) and nothing here is needed by the host.
 */
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entropy.h"
#include "utf8.h"

char *dev_ts_format(time_t t, char *buf)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	/* Years past 9999 would not fit; clamp rather than truncate mid-field. */
	if(tm.tm_year + 1900 > 9999)
		tm.tm_year = 9999 - 1900;
	if(tm.tm_year + 1900 < 0)
		tm.tm_year = -1900;
	if(!strftime(buf, DEV_TS_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm))
		buf[0] = '\0';
	return buf;
}

char *dev_ts_now(char *buf)
{
	return dev_ts_format(time(NULL), buf);
}

char *dev_uuid4(char *buf)
{
	unsigned char b[16];
	/* Never blocks (early boot); unique within the process either way. */
	entropy_bytes(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(buf, DEV_UUID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
			b[13], b[14], b[15]);
	return buf;
}

json_t *dev_json_text(const char *s)
{
	return utf8_json_string(s);
}
