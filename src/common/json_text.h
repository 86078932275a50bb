/*
 * Compact JSON text of a value, the same bytes as
 * json_dumps(v, JSON_COMPACT), at a fraction of the cost for the small
 * messages the host writes per command (see json_text.c).
 */
#ifndef OH_JSON_TEXT_H
#define OH_JSON_TEXT_H

#include <jansson.h>

/* The text of v (an object or array, borrowed): returned, free() it; NULL
 * where json_dumps(v, JSON_COMPACT) gives NULL (not UTF-8, out of memory,
 * not an object or array). */
char *json_text_compact(const json_t *v);

#endif
