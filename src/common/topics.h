/*
 * The topic layout, parsed and built in one place.
 *
 *   {root}/device/{id}/meta | status           what a device says of itself
 *   {root}/device/{id}/{module}/{leaf}         a module's cmd, evt, status
 *   {root}/orchestrator/{module}[/{leaf}]      the host's own topics: registry,
 *                                              status, {module}/cmd|evt, probe
 *
 * The registry, the metrics, the plugin namespace check, the command policy
 * and (through oh_topic_parse) the plugins all read topics with
 * topic_parse(), so they cannot disagree on what a level is.  The root is
 * the configured topic_root as it stands: with or without a leading '/',
 * never with a trailing one (conf_check_common refuses that).
 */
#ifndef OH_TOPICS_H
#define OH_TOPICS_H

#include <stdbool.h>
#include <stddef.h>

/* MQTT's limit on a topic, in bytes (a two-byte length prefix). */
#define TOPIC_MAX_LEN 65535

enum topic_place {
	TOPIC_OTHER = 0,    /* not under the root, or neither device/ nor orchestrator/ */
	TOPIC_DEVICE,       /* {root}/device/... */
	TOPIC_ORCHESTRATOR, /* {root}/orchestrator/... */
};

/* One level, borrowed from the topic parsed: p is not NUL-terminated.  p is
 * NULL when the level is absent; an empty level has p set and len 0. */
struct topic_level {
	const char *p;
	size_t len;
};

struct topic_parts {
	enum topic_place place;
	struct topic_level id; /* device: {id}; absent elsewhere */
	struct topic_level module; /* device/{id}/{module}/..., orchestrator/{module}; absent for device/{id}/{kind} */
	/* What follows the module, '/' included (device/{id}/{kind}: the
	 * kind); absent when nothing follows, empty after a trailing '/'. */
	struct topic_level leaf;
	/* NULL when the topic follows the layout; else why not, in words (a
	 * static string).  The levels before the fault are still filled in. */
	const char *error;
};

/* Splits topic (borrowed) under root (borrowed) into *out and returns its
 * place.  TOPIC_OTHER (error NULL) for a topic outside the layout; a topic
 * inside it with an empty level, a wildcard, a device id that breaks
 * IDENT_DEVICE_ID_RULE, or more than TOPIC_MAX_LEN bytes keeps its place and
 * sets out->error. */
enum topic_place topic_parse(const char *root, const char *topic, struct topic_parts *out);

/* level equals the NUL-terminated word. */
bool topic_level_is(struct topic_level level, const char *word);

/* Copies level into buf (len bytes) as a string; false (buf "") when it is
 * absent or does not fit. */
bool topic_level_copy(struct topic_level level, char *buf, size_t len);

/* Builds {root}/device/{id}[/{module}][/{leaf}] (id non-NULL) or
 * {root}/orchestrator/{module}[/{leaf}] (id NULL, module non-NULL); a part
 * that is NULL is left out with its '/', leaf "" leaves a trailing '/'.
 * Filters are built the same way ("+" for id).  Returns the new string
 * (free()), or NULL when out of memory or over TOPIC_MAX_LEN. */
char *topic_build(const char *root, const char *id, const char *module, const char *leaf);

#endif
