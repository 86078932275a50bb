/*
 * The command envelope, {"req_id", "actor", "action", "params", ...}, read
 * by one parser on both sides of the wire: the host reads the envelopes
 * apps send (docs/protocol.md, "Command envelope") and the device agent
 * the ones the host relays (device-agent-protocol.md).  The two sides
 * agree on the fields and their types; they differ only in the rules in
 * `struct envelope_rules` (the host limits the actor's length, the device
 * allows four actors and limits the size of params) and in which ack code
 * a payload that is not an object gets, so those are the caller's.
 */
#ifndef OH_COMMON_ENVELOPE_H
#define OH_COMMON_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "oh/defs.h"

struct envelope_rules {
	size_t actor_max;          /* longest actor in bytes; 0: any length */
	const char *const *actors; /* NULL-terminated allow-list; NULL: any actor */
	const char *actors_text;   /* the allow-list for the error, "a, b or c" */
	size_t params_max;         /* largest params serialised compactly; 0: any size */
};

/* What could be read, valid or not, so that even a refusal's ack can echo
 * it.  All borrowed from the root passed to envelope_read(). */
struct envelope_fields {
	const char *req_id;   /* a string of 1..OH_REQ_ID_MAX bytes, else NULL */
	const char *action;   /* a non-empty string, else NULL */
	const char *actor;    /* a string, else NULL; it may be refused: */
	bool actor_ok;        /* actor is a string the rules allow */
	const json_t *params; /* an object, else NULL (absent or null) */
};

enum envelope_status {
	ENVELOPE_OK,
	ENVELOPE_NOT_OBJECT, /* the payload is JSON but not an object */
	ENVELOPE_BAD_FIELD,  /* a field is missing, mistyped or refused */
};

/*
 * Reads and checks root (borrowed; may be any JSON value) into f: `action`
 * a non-empty string (required); `req_id` a string of at most
 * OH_REQ_ID_MAX bytes or null; `actor` a string or null, within the rules;
 * `params` an object or null, within the rules; other keys ("ts",
 * "reply_to", "requested_by", ...) are ignored.  Returns ENVELOPE_OK, or
 * another status with one line naming the field in err.
 */
enum envelope_status envelope_read(const json_t *root, const struct envelope_rules *rules,
		struct envelope_fields *f, char *err, size_t errlen);

#endif
