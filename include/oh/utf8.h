/*
 * Cutting client text to a length without splitting a UTF-8 character.
 * Error texts quote what a client sent (an action, an actor, a key) with
 * "%.*s"; jansson refuses a string that is not UTF-8, so a cut inside a
 * character used to leave an ack without its "error".
 *
 * Header-only and in include/oh/ so plugins use it too: the NDI plugin had
 * its own copy because plugins may not include src/common/.  It adds no
 * symbol to the ABI.
 */
#ifndef OH_OH_UTF8_H
#define OH_OH_UTF8_H

#include <stddef.h>
#include <string.h>

/* The length of s (borrowed) cut to at most max bytes without splitting a
 * UTF-8 character, for "%.*s". */
static inline int oh_utf8_cut(const char *s, size_t max)
{
	size_t len = strlen(s);

	if(len <= max)
		return (int)len;
	while(max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return (int)max;
}

#endif
