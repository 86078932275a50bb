/*
 * The interface between the device agent and the modules it runs (today
 * only "ndi").  A module owns its behaviour and child processes; the agent
 * owns the MQTT side: it parses envelopes, publishes acks and statuses, and
 * keeps the module's settings, which it replaces after a validated cfg
 * update, and publishes in meta the capabilities the module derives from
 * them.
 */
#ifndef OH_DEVICE_MODULE_H
#define OH_DEVICE_MODULE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "dev_envelope.h"

struct event_base;
struct dev_module;

/* What a module may use of the agent that hosts it. */
struct dev_module_host {
	struct event_base *base;
	const char *device_id; /* borrowed; outlives the module */
	bool simulate;         /* ack without spawning anything */
	/* The module's status changed: the agent republishes it. */
	void (*status_changed)(struct dev_module *m, void *ud);
	void *ud;
};

/* The outcome of a module command; the agent turns it into the ack. */
struct mod_result {
	enum ack_code code;
	char error[256];
	json_t *details; /* taken by the agent; NULL for null */
};

struct dev_module_ops {
	const char *name;
	/* Checks settings (borrowed).  strict (the config file): unknown keys
	 * are errors; not strict (a cfg update): unknown keys are carried along
	 * as the deployed agent does.  Errors name prefix.key; returns 0/-1. */
	int (*check_settings)(
			const json_t *settings, bool strict, const char *prefix, char *err, size_t errlen);
	/* Returns NULL when out of memory.  host is copied. */
	struct dev_module *(*create)(const struct dev_module_host *host);
	/* Runs env's action (env borrowed).  res arrives zeroed with ACK_OK. */
	void (*handle)(struct dev_module *m, const struct envelope *env, struct mod_result *res);
	/* {"state": ..., "fields": {...}} plus any extra keys; returned: decref. */
	json_t *(*status)(struct dev_module *m);
	/* What meta publishes as capabilities.{name}: what the host needs to
	 * know (the actions it can run now), never how they run (templates,
	 * paths).  Returned: decref; NULL when out of memory. */
	json_t *(*capabilities)(struct dev_module *m);
	/* Stops every child (shutdown); the caller then waits with
	 * child_stop_all_blocking(). */
	void (*stop_all)(struct dev_module *m);
	void (*destroy)(struct dev_module *m);
};

struct dev_module {
	const struct dev_module_ops *ops;
	struct dev_module_host host;
	const char *name; /* ops->name */
	json_t *settings; /* owned by the agent: always an object */
};

/* The module types this agent knows, by name; NULL if none. */
const struct dev_module_ops *dev_module_find(const char *name);
/* "ndi" (comma-separated list, static), for error messages. */
const char *dev_module_names(void);

/* Sets res to code with a printf-style message. */
void mod_result_fail(struct mod_result *res, enum ack_code code, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

extern const struct dev_module_ops ndi_module_ops;

#endif
