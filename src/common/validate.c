/*
 * The one JSON validator (include/oh/validate.h): configuration, command
 * envelopes, scheduled jobs, REST bodies and the device agent's messages
 * are all checked here, so null, unknown fields and the error text mean the
 * same everywhere.
 *
 * Pitfalls this file exists to get right:
 *   - a string with an embedded NUL passes json_is_string() but is cut
 *     short in C: it is refused as not being a string of the right length;
 *   - a client's key goes into the error text: it is cut at 64 bytes on a
 *     UTF-8 boundary, so the message stays valid JSON text;
 *   - paths are built in a fixed buffer: a deep or long one is cut, never
 *     overrun.
 */
#include "oh/validate.h"

#include <stdio.h>
#include <string.h>

#include "ident.h"
#include "utf8.h"

#define PATH_MAX_LEN 256
#define KEY_QUOTE_MAX 64

/* Appends n bytes of s to buf[*at], cut to fit len with its NUL. */
static void put(char *buf, size_t len, size_t *at, const char *s, size_t n)
{
	if(n > len - 1 - *at)
		n = len - 1 - *at;
	memcpy(buf + *at, s, n);
	*at += n;
}

/* "{path}.{key}" (the key cut as errors quote it), as snprintf would cut
 * it: built for every field checked, so without a format to parse. */
static void join(char *buf, size_t len, const char *path, const char *key)
{
	size_t at = 0;
	put(buf, len, &at, path, strlen(path));
	if(*path)
		put(buf, len, &at, ".", 1);
	put(buf, len, &at, key, (size_t)oh_utf8_cut(key, KEY_QUOTE_MAX));
	buf[at] = '\0';
}

static const char *type_word(enum oh_vtype t)
{
	switch(t) {
	case OH_VT_ANY:
		return "any value";
	case OH_VT_STRING:
		return "a string";
	case OH_VT_INT:
		return "an integer";
	case OH_VT_NUMBER:
		return "a number";
	case OH_VT_BOOL:
		return "true or false";
	case OH_VT_OBJECT:
		return "an object";
	case OH_VT_ARRAY:
		return "an array";
	}
	return "?";
}

static const char *plural_word(enum oh_vtype t)
{
	static const char *const words[] = {
			[OH_VT_ANY] = "values",
			[OH_VT_STRING] = "strings",
			[OH_VT_INT] = "integers",
			[OH_VT_NUMBER] = "numbers",
			[OH_VT_BOOL] = "booleans",
			[OH_VT_OBJECT] = "objects",
			[OH_VT_ARRAY] = "arrays",
	};
	return (unsigned)t < sizeof words / sizeof words[0] ? words[t] : "values";
}

const char *oh_vfield_expect(const struct oh_vfield *f, char *buf, size_t len)
{
	bool lo = f->flags & OH_VF_MIN, hi = f->flags & OH_VF_MAX;
	const char *null = f->flags & OH_VF_NULL ? " or null" : "";
	if(f->type == OH_VT_STRING && lo && hi && f->min == f->max)
		snprintf(buf, len, "a string of %g characters%s", f->min, null);
	else if(f->type == OH_VT_STRING && lo && hi)
		snprintf(buf, len, "a string of %g-%g characters%s", f->min, f->max, null);
	else if(f->type == OH_VT_STRING && hi)
		snprintf(buf, len, "a string of at most %g characters%s", f->max, null);
	else if(f->type == OH_VT_STRING && lo && f->min == 1)
		snprintf(buf, len, "a non-empty string%s", null);
	else if(f->type == OH_VT_STRING && lo)
		snprintf(buf, len, "a string of at least %g characters%s", f->min, null);
	else if(f->type == OH_VT_ARRAY && f->object)
		snprintf(buf, len, "an array of objects%s", null);
	else if(f->type == OH_VT_ARRAY && f->items != OH_VT_ANY)
		snprintf(buf, len, "an array of %s%s", plural_word(f->items), null);
	else if(f->type == OH_VT_OBJECT && f->items != OH_VT_ANY)
		snprintf(buf, len, "an object of %s%s", plural_word(f->items), null);
	else
		snprintf(buf, len, "%s%s", type_word(f->type), null);
	return buf;
}

static bool type_ok(const json_t *v, enum oh_vtype t)
{
	switch(t) {
	case OH_VT_ANY:
		return true;
	case OH_VT_STRING:
		return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
	case OH_VT_INT:
		return json_is_integer(v);
	case OH_VT_NUMBER:
		return json_is_number(v);
	case OH_VT_BOOL:
		return json_is_boolean(v);
	case OH_VT_OBJECT:
		return json_is_object(v);
	case OH_VT_ARRAY:
		return json_is_array(v);
	}
	return false;
}

static bool in_range(const struct oh_vfield *f, double d)
{
	if(f->flags & OH_VF_MIN) {
		if((f->flags & OH_VF_MIN_EXCL) ? !(d > f->min) : !(d >= f->min))
			return false;
	}
	return !(f->flags & OH_VF_MAX) || d <= f->max;
}

/* "601 is out of range 0..600" and its one-sided forms. */
static void range_error(const struct oh_vfield *f, double d, const char *path, char *err, size_t errlen)
{
	bool lo = f->flags & OH_VF_MIN, hi = f->flags & OH_VF_MAX, excl = f->flags & OH_VF_MIN_EXCL;
	if(lo && hi && !excl)
		snprintf(err, errlen, "%s: %g is out of range %g..%g", path, d, f->min, f->max);
	else if(lo && hi)
		snprintf(err, errlen, "%s: %g is out of range: expected above %g and at most %g", path, d,
				f->min, f->max);
	else if(lo)
		snprintf(err, errlen, "%s: %g is out of range: expected %s %g", path, d,
				excl ? "above" : "at least", f->min);
	else
		snprintf(err, errlen, "%s: %g is out of range: expected at most %g", path, d, f->max);
}

static int one_of_error(const struct oh_vfield *f, const char *path, char *err, size_t errlen)
{
	size_t used = (size_t)snprintf(err, errlen, "%s: must be one of ", path);
	for(const char *const *s = f->one_of; *s && used < errlen; s++)
		used += (size_t)snprintf(err + used, errlen - used, "%s%s", s == f->one_of ? "" : ", ", *s);
	return OH_ERR_INVAL;
}

static int check_items(const json_t *arr, const struct oh_vfield *f, const char *path, void *ud, char *err,
		size_t errlen)
{
	size_t i;
	const json_t *item;
	json_array_foreach(arr, i, item)
	{
		char at[PATH_MAX_LEN];
		snprintf(at, sizeof at, "%s[%zu]", path, i);
		if(f->object) {
			if(oh_json_validate(item, f->object, at, ud, err, errlen))
				return OH_ERR_INVAL;
		} else if(!type_ok(item, f->items)) {
			snprintf(err, errlen, "%s: expected %s", at, type_word(f->items));
			return OH_ERR_INVAL;
		}
	}
	return OH_OK;
}

int oh_json_validate_value(const json_t *v, const struct oh_vfield *f, const char *path, void *ud, char *err,
		size_t errlen)
{
	char expect[96];
	if(json_is_null(v) && (f->flags & OH_VF_NULL))
		return OH_OK;
	if(!type_ok(v, f->type)) {
		snprintf(err, errlen, "%s: expected %s", path, oh_vfield_expect(f, expect, sizeof expect));
		return OH_ERR_INVAL;
	}
	switch(f->type) {
	case OH_VT_STRING:
		if(!in_range(f, (double)json_string_length(v))) {
			snprintf(err, errlen, "%s: expected %s", path,
					oh_vfield_expect(f, expect, sizeof expect));
			return OH_ERR_INVAL;
		}
		if(f->one_of) {
			const char *const *s = f->one_of;
			while(*s && strcmp(*s, json_string_value(v)))
				s++;
			if(!*s)
				return one_of_error(f, path, err, errlen);
		}
		break;
	case OH_VT_INT:
	case OH_VT_NUMBER:
		if(!in_range(f, json_number_value(v))) {
			range_error(f, json_number_value(v), path, err, errlen);
			return OH_ERR_INVAL;
		}
		break;
	case OH_VT_ARRAY: {
		size_t n = json_array_size(v);
		if(!in_range(f, (double)n)) {
			if((f->flags & OH_VF_MIN) && (f->flags & OH_VF_MAX))
				snprintf(err, errlen, "%s: expected %g-%g items, got %zu", path, f->min,
						f->max, n);
			else
				snprintf(err, errlen, "%s: expected %s %g items, got %zu", path,
						(f->flags & OH_VF_MIN) ? "at least" : "at most",
						(f->flags & OH_VF_MIN) ? f->min : f->max, n);
			return OH_ERR_INVAL;
		}
		if(check_items(v, f, path, ud, err, errlen))
			return OH_ERR_INVAL;
		break;
	}
	case OH_VT_OBJECT: {
		if(f->object && oh_json_validate(v, f->object, path, ud, err, errlen))
			return OH_ERR_INVAL;
		const char *key;
		const json_t *item;
		json_object_foreach((json_t *)v, key, item)
		{
			if(f->items != OH_VT_ANY && !type_ok(item, f->items)) {
				char at[PATH_MAX_LEN];
				join(at, sizeof at, path, key);
				snprintf(err, errlen, "%s: expected %s", at, type_word(f->items));
				return OH_ERR_INVAL;
			}
		}
		break;
	}
	default:
		break;
	}
	char buf[160];
	const char *why = f->check ? f->check(v, ud, buf, sizeof buf) : NULL;
	if(why) {
		snprintf(err, errlen, "%s: %s", path, why);
		return OH_ERR_INVAL;
	}
	return OH_OK;
}

int oh_json_validate(const json_t *obj, const struct oh_vobject *spec, const char *path, void *ud, char *err,
		size_t errlen)
{
	char at[PATH_MAX_LEN];
	if(!path)
		path = "";
	if(!json_is_object(obj)) {
		snprintf(err, errlen, "%s: expected an object", *path ? path : "body");
		return OH_ERR_INVAL;
	}
	for(const struct oh_vfield *f = spec->fields; f->name; f++) {
		const json_t *v = json_object_get(obj, f->name);
		join(at, sizeof at, path, f->name);
		/* Null is absence unless the field takes it as a value. */
		if(!v || (json_is_null(v) && !(f->flags & OH_VF_NULL))) {
			if(f->flags & OH_VF_REQUIRED) {
				char expect[96];
				snprintf(err, errlen, "%s: missing (expected %s)", at,
						oh_vfield_expect(f, expect, sizeof expect));
				return OH_ERR_INVAL;
			}
			continue;
		}
		if(oh_json_validate_value(v, f, at, ud, err, errlen))
			return OH_ERR_INVAL;
	}
	if(spec->unknown == OH_V_IGNORE)
		return OH_OK;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		const struct oh_vfield *f = spec->fields;
		while(f->name && strcmp(f->name, key))
			f++;
		if(!f->name) {
			join(at, sizeof at, path, key);
			snprintf(err, errlen, "%s: unknown key", at);
			return OH_ERR_INVAL;
		}
	}
	return OH_OK;
}

const char *oh_vcheck_device_id(const json_t *v, void *ud, char *buf, size_t len)
{
	(void)ud, (void)buf, (void)len;
	if(json_is_string(v) && ident_device_id_valid(json_string_value(v), json_string_length(v)))
		return NULL;
	return "must be " IDENT_DEVICE_ID_RULE;
}
