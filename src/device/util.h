/*
 * Small helpers the device agent needs in several places: the wire format's
 * timestamps, request ids, and a declarative check of a JSON object against a
 * table of expected keys and types (so every rejection names the key).
 */
#ifndef OH_DEVICE_UTIL_H
#define OH_DEVICE_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "oh/validate.h"

/* "YYYY-MM-DDTHH:MM:SSZ" plus NUL. */
#define DEV_TS_LEN 21
/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" plus NUL. */
#define DEV_UUID_LEN 37

/* Formats t (UTC, second precision, Z suffix) into buf (borrowed, at least
 * DEV_TS_LEN bytes); returns buf. */
char *dev_ts_format(time_t t, char *buf);
/* The current time as above. */
char *dev_ts_now(char *buf);

/* A random (version 4) UUID into buf (borrowed, DEV_UUID_LEN bytes), from
 * entropy_bytes(), which never blocks.  Returns buf. */
char *dev_uuid4(char *buf);

/* A JSON string of s (borrowed); bytes that are not valid UTF-8 (a message
 * cut by snprintf mid-character) become '?'.  NULL only when out of memory. */
json_t *dev_json_text(const char *s);

#endif
