/*
 * Table-driven JSON checks (see json_fields.h).
 */
#include "json_fields.h"

#include <stdio.h>
#include <string.h>

const char *jf_type_name(enum jf_type t)
{
	switch(t) {
	case JF_ANY:
		return "any value";
	case JF_STRING:
		return "a string";
	case JF_STRING_NE:
		return "a non-empty string";
	case JF_STRING_NULL:
		return "a string or null";
	case JF_INT:
		return "an integer";
	case JF_NUMBER:
		return "a number";
	case JF_BOOL:
		return "true or false";
	case JF_OBJECT:
		return "an object";
	case JF_OBJECT_NULL:
		return "an object or null";
	case JF_STRING_ARRAY:
		return "an array of strings";
	case JF_OBJECT_OF_OBJECTS:
		return "an object of objects";
	}
	return "?";
}

bool jf_type_ok(const json_t *v, enum jf_type t)
{
	switch(t) {
	case JF_ANY:
		return true;
	case JF_STRING:
		return json_is_string(v);
	case JF_STRING_NE:
		return json_is_string(v) && json_string_length(v) > 0;
	case JF_STRING_NULL:
		return json_is_string(v) || json_is_null(v);
	case JF_INT:
		return json_is_integer(v);
	case JF_NUMBER:
		return json_is_number(v);
	case JF_BOOL:
		return json_is_boolean(v);
	case JF_OBJECT:
		return json_is_object(v);
	case JF_OBJECT_NULL:
		return json_is_object(v) || json_is_null(v);
	case JF_STRING_ARRAY: {
		if(!json_is_array(v))
			return false;
		size_t i;
		const json_t *item;
		json_array_foreach(v, i, item)
		{
			if(!json_is_string(item))
				return false;
		}
		return true;
	}
	case JF_OBJECT_OF_OBJECTS: {
		if(!json_is_object(v))
			return false;
		const char *key;
		const json_t *item;
		json_object_foreach((json_t *)v, key, item)
		{
			if(!json_is_object(item))
				return false;
		}
		return true;
	}
	}
	return false;
}

int jcheck_object(const json_t *obj, const struct jfield *table, bool allow_unknown, const char *prefix,
		char *err, size_t errlen)
{
	const char *dot = prefix && *prefix ? "." : "";
	if(!prefix)
		prefix = "";
	for(const struct jfield *f = table; f->key; f++) {
		const json_t *v = json_object_get(obj, f->key);
		if(!v) {
			if(f->required) {
				snprintf(err, errlen, "%s%s%s: missing (expected %s)", prefix, dot, f->key,
						jf_type_name(f->type));
				return -1;
			}
			continue;
		}
		if(!jf_type_ok(v, f->type)) {
			snprintf(err, errlen, "%s%s%s: expected %s", prefix, dot, f->key,
					jf_type_name(f->type));
			return -1;
		}
	}
	if(allow_unknown)
		return 0;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		const struct jfield *f = table;
		while(f->key && strcmp(f->key, key))
			f++;
		if(!f->key) {
			snprintf(err, errlen, "%s%s%s: unknown key", prefix, dot, key);
			return -1;
		}
	}
	return 0;
}
