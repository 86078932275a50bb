/*
 * Compact JSON text, byte for byte what json_dumps(v, JSON_COMPACT) writes,
 * for the messages the host writes per command (every ack).
 *
 * jansson's dumper is general: each call sets up a hash table of the
 * containers it is inside (to refuse a cycle), formats each container's
 * address with snprintf for it, and decodes every character of every
 * string through a callback.  For an ack of ~300 bytes that was 40,000
 * instructions, a third of the host's work per relayed command.  This
 * writer walks the tree once into one buffer.  A value it does not write
 * the same way (a real, whose text jansson chooses) or a tree deeper than
 * JSON_TEXT_DEPTH_MAX hands the whole value to json_dumps, so the text
 * never depends on which writer ran, and so does a key holding a NUL or
 * not UTF-8 (jansson writes it cut short); a string value that is not
 * UTF-8 fails as jansson's does.
 * tests/unit/test_json_text.c compares the two on many generated values.
 */
#include "json_text.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "utf8.h"

enum result {
	WRITTEN,
	FAILED,  /* not UTF-8, or out of memory: json_dumps fails too */
	NOT_MINE /* json_dumps writes it */
};

/* What a byte in a string asks for: 0 copied as is, 1 escaped, 2 the
 * start of a multi-byte character (checked). */
static unsigned char byte_kind[256];

static void byte_kinds_init(void)
{
	for(int c = 0; c < 0x20; c++)
		byte_kind[c] = 1;
	byte_kind['"'] = byte_kind['\\'] = 1;
	for(int c = 0x80; c < 0x100; c++)
		byte_kind[c] = 2;
}

/* The two-character escapes jansson writes (\" \\ \b \f \n \r \t); 0: the
 * byte is written as \u00XX. */
static const char short_escape[256] = {
		['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};

static enum result add_string(struct strbuf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *u = (const unsigned char *)s;
	size_t run = 0, i = 0;

	strbuf_putc(b, '"');
	for(;;) {
		while(i < len && !byte_kind[u[i]])
			i++;
		if(i == len)
			break;
		unsigned char c = u[i];
		if(byte_kind[c] == 2) {
			size_t n = utf8_char_len(u + i, len - i);
			if(!n)
				return FAILED;
			i += n;
			continue;
		}
		strbuf_add(b, s + run, i - run);
		char esc[6] = {'\\', short_escape[c], '0', '0'};
		size_t n = 2;
		if(!esc[1]) {
			esc[1] = 'u';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		}
		strbuf_add(b, esc, n);
		run = ++i;
	}
	strbuf_add(b, s + run, len - run);
	strbuf_putc(b, '"');
	return WRITTEN;
}

static void add_integer(struct strbuf *b, json_int_t v)
{
	char digits[24];
	size_t at = sizeof digits;
	/* Through unsigned, so the most negative value has a magnitude too. */
	unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		digits[--at] = (char)('0' + m % 10);
		m /= 10;
	} while(m);
	if(v < 0)
		digits[--at] = '-';
	strbuf_add(b, digits + at, sizeof digits - at);
}

static enum result add_value(struct strbuf *b, const json_t *v, int depth)
{
	enum result r;

	if(depth > JSON_TEXT_DEPTH_MAX)
		return NOT_MINE;
	switch(json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		size_t key_len;
		json_t *item;
		bool first = true;
		strbuf_putc(b, '{');
		json_object_keylen_foreach((json_t *)v, key, key_len, item)
		{
			if(!first)
				strbuf_putc(b, ',');
			first = false;
			/* A key holding a NUL or not UTF-8: jansson writes it cut
			 * short and goes on, so that text is its own. */
			if(memchr(key, '\0', key_len) || add_string(b, key, key_len) != WRITTEN)
				return NOT_MINE;
			strbuf_putc(b, ':');
			if((r = add_value(b, item, depth + 1)) != WRITTEN)
				return r;
		}
		strbuf_putc(b, '}');
		return WRITTEN;
	}
	case JSON_ARRAY:
		strbuf_putc(b, '[');
		for(size_t i = 0; i < json_array_size(v); i++) {
			if(i)
				strbuf_putc(b, ',');
			if((r = add_value(b, json_array_get(v, i), depth + 1)) != WRITTEN)
				return r;
		}
		strbuf_putc(b, ']');
		return WRITTEN;
	case JSON_STRING:
		return add_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		add_integer(b, json_integer_value(v));
		return WRITTEN;
	case JSON_TRUE:
		strbuf_add(b, "true", 4);
		return WRITTEN;
	case JSON_FALSE:
		strbuf_add(b, "false", 5);
		return WRITTEN;
	case JSON_NULL:
		strbuf_add(b, "null", 4);
		return WRITTEN;
	default: /* JSON_REAL */
		return NOT_MINE;
	}
}

char *json_text_compact(const json_t *v)
{
	struct strbuf b = {0};

	if(!byte_kind[0])
		byte_kinds_init();
	if(!json_is_object(v) && !json_is_array(v))
		return NULL; /* as json_dumps without JSON_ENCODE_ANY */
	enum result r = add_value(&b, v, 0);
	if(r == WRITTEN)
		return strbuf_take(&b);
	strbuf_free(&b);
	return r == NOT_MINE ? json_dumps(v, JSON_COMPACT) : NULL;
}

/* ---- reading plain text ----------------------------------------------------------
 * The checks are strict so that what passes them is certain to be what
 * jansson would read: anything unusual (an escape, a real, a byte past
 * ASCII, a space) is left to jansson by the caller rather than read here. */

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
	if(!v_end || v_end >= end || (*v_end != ',' && *v_end != '}') ||
			(*v_end == ',' && (v_end + 1 == end || v_end[1] == '}'))) {
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
