/*
 * The command envelope a device receives and the ack it sends back, exactly
 * as the deployed Python agent validates and shapes them
 * (docs/protocol.md and docs/device-agent.md, "Command envelope" and
 * "Ack").  Pure functions over jansson values, so they are unit-tested
 * without a broker.
 */
#ifndef OH_DEVICE_DEV_ENVELOPE_H
#define OH_DEVICE_DEV_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "oh/defs.h"
#include "util.h"

/* Largest `params`, serialised compactly, that a device accepts. */
#define ENVELOPE_MAX_PARAMS 16384

/* The ack codes of the protocol; ack_code_name() gives the wire text.  This
 * enum is the one place errors become ack codes. */
enum ack_code {
	ACK_OK,
	ACK_BAD_JSON,     /* payload is not JSON */
	ACK_BAD_REQUEST,  /* envelope or params malformed, actor refused */
	ACK_MODULE_ERROR, /* the module could not do it */
	ACK_DEVICE_ERROR, /* the device could not do it */
	ACK_EXCEPTION,    /* an internal failure (out of memory, ...) */
};

const char *ack_code_name(enum ack_code code);

struct envelope {
	json_t *root;                   /* owned: the parsed payload, or NULL */
	char req_id[OH_REQ_ID_MAX + 1]; /* the request's id, or a fresh UUID */
	const char *action;             /* borrowed from root; NULL if unknown */
	const char *actor;              /* borrowed from root; NULL if absent */
	json_t *params;                 /* owned reference: always an object once valid */
};

/* The actors a device accepts (NULL-terminated). */
extern const char *const envelope_actors[];

/*
 * Parses and validates payload (borrowed, len bytes, need not be
 * NUL-terminated) into env (borrowed; release with envelope_clear() whatever
 * the result).  Returns ACK_OK, or ACK_BAD_JSON / ACK_BAD_REQUEST with the
 * reason in err.  Even on failure, env holds what could be read (req_id,
 * action, actor) so the ack can echo them.
 */
enum ack_code envelope_parse(const void *payload, size_t len, struct envelope *env, char *err, size_t errlen);

/* As envelope_parse() for an already parsed object (borrowed; env takes its
 * own reference). */
enum ack_code envelope_from_json(json_t *root, struct envelope *env, char *err, size_t errlen);

void envelope_clear(struct envelope *env);

/*
 * A new ack object {"req_id","ok","code","action","actor","ts","error",
 * "details"} for env (borrowed).  error (borrowed) is used only when code is
 * not ACK_OK; details is taken (may be NULL for JSON null).  Returned: the
 * caller decrefs; NULL when out of memory.
 */
json_t *ack_new(const struct envelope *env, enum ack_code code, const char *error, json_t *details);

#endif
