/*
 * Plain JSON text read without a tree (see json_text.h).  The checks are
 * strict so that what passes them is certain to be what jansson would
 * read: anything unusual (an escape, a real, a byte past ASCII, a space)
 * is left to jansson by the caller rather than read here.
 */
#include "json_text.h"

#include <string.h>

/* The end of the plain string at p (a '"'), past its closing quote. */
static const char *string_end(const char *p, const char *end)
{
	for(p++; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if(c == '"')
			return p + 1;
		if(c < 0x20 || c > 0x7e || c == '\\')
			return NULL;
	}
	return NULL;
}

/* An integer: -?(0|[1-9][0-9]*), at most 18 digits (any json_int_t). */
static const char *integer_end(const char *p, const char *end)
{
	if(p < end && *p == '-')
		p++;
	const char *digits = p;
	while(p < end && *p >= '0' && *p <= '9')
		p++;
	size_t n = (size_t)(p - digits);
	if(!n || n > 18 || (n > 1 && *digits == '0'))
		return NULL;
	return p;
}

static const char *value_end(const char *p, const char *end, int depth);

/* An object or an array: members or elements, comma separated. */
static const char *container_end(const char *p, const char *end, int depth)
{
	bool object = *p == '{';
	char close = object ? '}' : ']';
	if(depth >= JSON_TEXT_DEPTH_MAX)
		return NULL;
	if(++p < end && *p == close)
		return p + 1;
	while(p && p < end) {
		if(object) {
			p = *p == '"' ? string_end(p, end) : NULL;
			if(!p || p >= end || *p++ != ':')
				return NULL;
		}
		if(!(p = value_end(p, end, depth + 1)) || p >= end)
			return NULL;
		if(*p == close)
			return p + 1;
		p = *p == ',' ? p + 1 : NULL;
	}
	return NULL;
}

static const char *value_end(const char *p, const char *end, int depth)
{
	static const char *const literals[] = {"true", "false", "null"};
	if(p >= end)
		return NULL;
	if(*p == '"')
		return string_end(p, end);
	if(*p == '{' || *p == '[')
		return container_end(p, end, depth);
	for(size_t i = 0; i < 3; i++) {
		size_t n = strlen(literals[i]);
		if((size_t)(end - p) >= n && !memcmp(p, literals[i], n))
			return p + n;
	}
	return integer_end(p, end);
}

const char *json_text_value_end(const char *p, const char *end)
{
	return value_end(p, end, 0);
}

void json_text_object(struct json_text_obj *o, const char *p, const char *end)
{
	o->p = p + 1;
	o->end = end;
	o->bad = p >= end || *p != '{';
}

bool json_text_member(struct json_text_obj *o, const char **key, size_t *key_len, const char **value,
		size_t *value_len)
{
	const char *p = o->p, *end = o->end;
	if(o->bad)
		return false;
	/* The object ends at the end of the text, and only there. */
	if(p < end && *p == '}') {
		o->bad = p + 1 != end;
		return false;
	}
	const char *key_end = p < end && *p == '"' ? string_end(p, end) : NULL;
	const char *v_end = key_end && key_end < end && *key_end == ':' ? json_text_value_end(key_end + 1, end)
									: NULL;
	if(!v_end || v_end >= end || (*v_end != ',' && *v_end != '}') || (*v_end == ',' && v_end[1] == '}')) {
		o->bad = true;
		return false;
	}
	*key = p + 1;
	*key_len = (size_t)(key_end - 1 - *key);
	*value = key_end + 1;
	*value_len = (size_t)(v_end - *value);
	o->p = *v_end == ',' ? v_end + 1 : v_end;
	return true;
}
