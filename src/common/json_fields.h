/*
 * Table-driven checks of JSON objects, shared by the host and the device
 * agent so both read the wire format with one validator: a table names each
 * field and its type, and a failure names the field.
 */
#ifndef OH_JSON_FIELDS_H
#define OH_JSON_FIELDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Types a field may have; the _NULL variants also accept JSON null. */
enum jf_type {
	JF_ANY,
	JF_STRING,    /* any string */
	JF_STRING_NE, /* a non-empty string */
	JF_STRING_NULL,
	JF_INT,
	JF_NUMBER,
	JF_BOOL,
	JF_OBJECT,
	JF_OBJECT_NULL,
	JF_STRING_ARRAY,      /* an array whose items are all strings */
	JF_OBJECT_OF_OBJECTS, /* an object whose values are all objects */
};

struct jfield {
	const char *key;
	enum jf_type type;
	bool required;
};

/*
 * Checks obj (borrowed) against table (borrowed, ended by a NULL key): every
 * required key present, every present key of its declared type, and, unless
 * allow_unknown, no key outside the table.  On failure writes one line to
 * err naming `prefix`.key (prefix may be "" or e.g. "mqtt") and returns -1.
 */
int jcheck_object(const json_t *obj, const struct jfield *table, bool allow_unknown, const char *prefix,
		char *err, size_t errlen);

/* A short English name for a field type ("a string", ...). */
const char *jf_type_name(enum jf_type t);

/* Whether v (borrowed) has type t. */
bool jf_type_ok(const json_t *v, enum jf_type t);

#endif
