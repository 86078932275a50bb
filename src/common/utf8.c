/*
 * Keeping quoted client text valid UTF-8 (see utf8.h).
 */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

size_t utf8_char_len(const unsigned char *s, size_t left)
{
	if(!left)
		return 0;
	if(s[0] < 0x80)
		return 1;
	size_t more = s[0] >= 0xC2 && s[0] < 0xE0     ? 1
			: s[0] >= 0xE0 && s[0] < 0xF0 ? 2
			: s[0] >= 0xF0 && s[0] < 0xF5 ? 3
						      : 0;
	if(!more || more >= left)
		return 0;
	for(size_t k = 1; k <= more; k++) {
		if((s[k] & 0xC0) != 0x80)
			return 0;
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
	const unsigned char *end = (unsigned char *)copy + strlen(copy);
	for(unsigned char *p = (unsigned char *)copy; *p;) {
		size_t n = utf8_char_len(p, (size_t)(end - p));
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
