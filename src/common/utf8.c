/*
 * Keeping quoted client text valid UTF-8 (see utf8.h).
 */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

/* How many bytes the valid UTF-8 character at s takes, or 0 when it is not
 * one (a stray continuation byte, a truncated or overlong sequence, a
 * surrogate, beyond U+10FFFF). */
static size_t char_len(const unsigned char *s)
{
	if(s[0] < 0x80)
		return 1;
	size_t more = s[0] >= 0xC2 && s[0] < 0xE0     ? 1
			: s[0] >= 0xE0 && s[0] < 0xF0 ? 2
			: s[0] >= 0xF0 && s[0] < 0xF5 ? 3
						      : 0;
	if(!more)
		return 0;
	for(size_t k = 1; k <= more; k++) {
		if((s[k] & 0xC0) != 0x80)
			return 0; /* the NUL ends it here too */
	}
	if((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) || (s[0] == 0xF0 && s[1] < 0x90) ||
			(s[0] == 0xF4 && s[1] >= 0x90))
		return 0;
	return more + 1;
}

json_t *utf8_json_string(const char *s)
{
	json_t *j = json_string(s);
	if(j)
		return j;
	char *copy = strdup(s);
	if(!copy)
		return NULL;
	for(unsigned char *p = (unsigned char *)copy; *p;) {
		size_t n = char_len(p);
		if(n) {
			p += n;
		} else {
			*p++ = '?';
		}
	}
	j = json_string(copy);
	free(copy);
	return j;
}
