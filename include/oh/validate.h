/*
 * The one JSON validator: a table names each field of an object, its type,
 * whether it is required, its range or allowed values, and what to do with
 * fields the table does not name.  The host checks configuration files,
 * command envelopes, scheduled jobs and REST bodies with it, the device
 * agent its messages, and plugins their own commands and bodies, so the
 * same input gets the same verdict whichever road it took (the style of
 * Janus' JANUS_VALIDATE_JSON_OBJECT).
 *
 * The rules, decided once:
 *   - JSON null is the same as an absent field: an optional field may be
 *     null, a required one may not ("device_id: missing (expected a string)").  A field whose
 *     table entry has OH_VF_NULL takes null as a value of its own (e.g.
 *     "none"), handed to the caller like any other value.
 *   - Unknown fields are refused ("lease: unknown key") or ignored, per
 *     object (enum oh_vunknown).
 *   - Every error is one line, "{path}: {why}", where path names the field
 *     from the top ("commands[0].params.source") and why says what was
 *     expected ("expected a string", "missing (expected a string)", "unknown key",
 *     "must be one of start, stop", "601 is out of range 0..600").
 *
 * Tables are plain static data; all calls are pure and thread-safe.
 */
#ifndef OH_VALIDATE_H
#define OH_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "oh/defs.h"

#ifdef __cplusplus
extern "C" {
#endif

enum oh_vtype {
	OH_VT_ANY,    /* any value */
	OH_VT_STRING, /* a string without NUL bytes; range: its length in bytes */
	OH_VT_INT,    /* an integer; range: its value */
	OH_VT_NUMBER, /* an integer or a real; range: its value */
	OH_VT_BOOL,   /* true or false */
	OH_VT_OBJECT, /* an object; `object` (may be NULL) names its members, or
		       * `items` the type every member's value has (a map) */
	OH_VT_ARRAY,  /* an array; range: its length; `items` each item's type */
};

/* Flags of a field. */
#define OH_VF_REQUIRED 0x01 /* absent or null is an error */
#define OH_VF_NULL 0x02     /* null is a value of this field, not absence */
#define OH_VF_MIN 0x04      /* min applies */
#define OH_VF_MAX 0x08      /* max applies */
#define OH_VF_MIN_EXCL 0x10 /* with OH_VF_MIN: the value must be above min */

/* What to do with members an object's table does not name. */
enum oh_vunknown {
	OH_V_REFUSE, /* "{path}: unknown key" */
	OH_V_IGNORE, /* left for the caller (e.g. relayed untouched) */
};

/*
 * A further rule for a value that already has the field's type and range (a
 * "pattern", or a limit only known at run time): return NULL when v
 * (borrowed) is fine, else the reason, either a static text or buf (len
 * bytes) filled: "must be 1-64 of [A-Za-z0-9._-]".  ud is the one given to
 * oh_json_validate().
 */
typedef const char *(*oh_vcheck_fn)(const json_t *v, void *ud, char *buf, size_t len);

struct oh_vobject;

struct oh_vfield {
	const char *name; /* the member's name; NULL ends a table */
	enum oh_vtype type;
	unsigned flags; /* OH_VF_* */
	double min, max;
	const char *const *one_of;       /* strings: the allowed values, NULL-ended; NULL: any */
	oh_vcheck_fn check;              /* may be NULL */
	const struct oh_vobject *object; /* objects: the members; arrays: each item's, when objects */
	enum oh_vtype items;             /* arrays, maps: the items' type (OH_VT_ANY: any) */
	void *reserved[3];               /* zero; room to grow without breaking old tables */
};

struct oh_vobject {
	const struct oh_vfield *fields; /* ended by a NULL name */
	enum oh_vunknown unknown;
	void *reserved[2];
};

/*
 * Table entries, e.g.
 *   static const struct oh_vfield fields[] = {
 *           OH_VFIELD("device_id", OH_VT_STRING, OH_VF_REQUIRED, .check = oh_vcheck_device_id),
 *           OH_VFIELD("lease_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MIN_EXCL, .min = 0),
 *           OH_VFIELD_END,
 *   };
 *   static const struct oh_vobject spec = OH_VOBJECT(fields, OH_V_REFUSE);
 * (designated, so the spare fields stay zero and -Wextra stays quiet).
 */
#define OH_VFIELD(name_, type_, flags_, ...)                                                                 \
	{                                                                                                    \
		.name = (name_), .type = (type_), .flags = (flags_), __VA_ARGS__                             \
	}
#define OH_VFIELD_END                                                                                        \
	{                                                                                                    \
		.name = NULL                                                                                 \
	}
#define OH_VOBJECT(fields_, unknown_)                                                                        \
	{                                                                                                    \
		.fields = (fields_), .unknown = (unknown_)                                                   \
	}

/*
 * Checks obj (borrowed) against spec (borrowed).  path (borrowed) names obj
 * itself: "" for the top level, "params" or "commands[2]" for a part of a
 * larger document; it prefixes every field named in err.  ud goes to the
 * fields' check functions.  Returns OH_OK, or OH_ERR_INVAL with err set to
 * "{path}: {why}" for the first field that is wrong (fields in table
 * order, then unknown members).  A non-object obj is "{path}: expected an
 * object" ("body: ..." when path is "").
 */
int oh_json_validate(const json_t *obj, const struct oh_vobject *spec, const char *path, void *ud, char *err,
		size_t errlen);

/*
 * Checks one value against one field, as oh_json_validate does for a
 * present member: v (borrowed) non-NULL; null is accepted only with
 * OH_VF_NULL.  path (borrowed) is the full name to put in err.
 */
int oh_json_validate_value(const json_t *v, const struct oh_vfield *f, const char *path, void *ud, char *err,
		size_t errlen);

/* What a field must be, in the words of the error texts ("a string of
 * 1-64 characters", "an integer", ...) into buf; returns buf. */
const char *oh_vfield_expect(const struct oh_vfield *f, char *buf, size_t len);

/* A check for device ids (oh_device_id_valid). */
const char *oh_vcheck_device_id(const json_t *v, void *ud, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
