/*
 * Compact JSON text of a value, the same bytes as
 * json_dumps(v, JSON_COMPACT), at a fraction of the cost for the small
 * messages the host writes per command (see json_text.c).
 *
 * And JSON text that the host itself wrote, read without building a tree:
 * at start-up 100,000 stored job documents are read this way in a fifth of
 * the time jansson takes to parse them (docs/performance.md, "Start-up").
 * Only "plain" text is read: compact (no white space), ASCII, strings
 * without escapes or control characters, integers of at most 18 digits,
 * no reals, nested at most JSON_TEXT_DEPTH_MAX deep.  Such text is valid
 * JSON, and jansson reads it to the same values, so a reader that falls
 * back to jansson for anything else gets the same result either way.  A
 * string's value is the text between its quotes.
 */
#ifndef OH_JSON_TEXT_H
#define OH_JSON_TEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The text of v (an object or array, borrowed): returned, free() it; NULL
 * where json_dumps(v, JSON_COMPACT) gives NULL (not UTF-8, out of memory,
 * not an object or array). */
char *json_text_compact(const json_t *v);

/* ---- reading plain text ---- */

#define JSON_TEXT_DEPTH_MAX 32

/* The end of the plain value at p (borrowed), at most at end; NULL when
 * what starts there is not plain or is cut short. */
const char *json_text_value_end(const char *p, const char *end);

/* An object's members in turn, from its text [p, end) (borrowed), checked
 * as they are read: one pass over the text. */
struct json_text_obj {
	const char *p, *end;
	bool bad; /* what was read is not one plain object */
};

void json_text_object(struct json_text_obj *o, const char *p, const char *end);

/* The next member: its key (between the quotes) and its value's text.
 * false at the end of the object, or when o->bad is set. */
bool json_text_member(struct json_text_obj *o, const char **key, size_t *key_len, const char **value,
		size_t *value_len);

/* Whether a member's key is the literal name. */
#define JSON_TEXT_KEY_IS(key, key_len, name)                                                                 \
	((key_len) == sizeof(name) - 1 && !memcmp((key), (name), sizeof(name) - 1))

#endif
