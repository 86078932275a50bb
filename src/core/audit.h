/*
 * The audit trail (docs/audit.md): who did what, when, kept in the store
 * beside the leases and jobs.  audit.c records and group-commits; api_audit.c
 * answers GET /api/audit.
 *
 * The durability rule: a record is in the store before, or in the same
 * transaction as, the acknowledgement it describes.  Leases and jobs commit
 * their record with their own change (audit_record inside their
 * transaction).  Command acks on {root}/orchestrator/{module}/evt wait for
 * the batch holding their record (audit_defer_publish) and HTTP answers
 * flush it first (audit_flush), so a kill -9 loses no acknowledged record;
 * what waits for nobody (a device going offline, a plugin loading) may lose
 * its last batch, at most AUDIT_BATCH_MS of records.
 */
#ifndef OH_AUDIT_H
#define OH_AUDIT_H

#include <jansson.h>
#include <stdbool.h>

#include "core.h"

struct store_audit;

/* Strings longer than this are cut (at a character boundary). */
#define AUDIT_TEXT_MAX 512

/* One record; every pointer borrowed for the call, NULL when unknown. */
struct audit_rec {
	const char *kind; /* command, lease, job, route, plugin, device */
	const char *action, *actor, *requested_by, *token, *device_id, *module, *req_id, *code, *error;
	const json_t *detail; /* a small object */
	double latency_ms;    /* < 0: none */
};

/* Set up with the store (h->audit; NULL when audit.enabled is false or
 * there is no store); starts the retention timer. */
int audit_init(struct host *h);
/* Commits what waits and frees everything (host_stop, before the store
 * closes). */
void audit_free(struct host *h);

/* Records r: in the open store transaction when there is one (it commits
 * or fails with the caller's change), else in the next batch. */
void audit_record(struct host *h, const struct audit_rec *r);
/* Commits the batch now (an HTTP answer, a plugin unload, shutdown). */
void audit_flush(struct host *h);
/* Whether records wait for a commit; then an ack must wait too: queues a
 * copy of the publish (QoS 1, not retained) for after the commit and
 * returns true.  false: publish it now. */
bool audit_defer_publish(struct host *h, const char *topic, const char *payload, size_t len);

/* Commands in flight, so that the outcome's record says how long it took,
 * and the token and requester of the request that started it: remembered
 * when the command is dispatched (module, req_id borrowed), taken back by
 * the outcome. */
void audit_command_started(struct host *h, const char *module, const char *req_id, const char *token,
		const char *requested_by);
/* *latency_ms (-1 unknown), and token and requested_by copied into the
 * buffers ("" unknown); the entry is dropped. */
void audit_command_ended(struct host *h, const char *module, const char *req_id, double *latency_ms,
		char *token, size_t token_len, char *requested_by, size_t rb_len);
/* Shrinks the table of commands in flight to what it holds now, after a
 * burst (oh_memory_trim). */
void audit_compact(struct host *h);

/* The one handler told of each record once it is committed (events.c:
 * the `audit` event); r borrowed for the call.  NULL: none. */
typedef void (*audit_stored_fn)(struct host *h, const struct store_audit *r);
void audit_on_stored(struct host *h, audit_stored_fn fn);

/* Who asked for what runs now, beyond the actor (the scheduler: "job:{id}"
 * while a job's commands run); borrowed until set again (NULL). */
void audit_set_requester(struct host *h, const char *requested_by);
const char *audit_requester(const struct host *h);

/* The JSON of a stored record (returned, json_decref). */
json_t *audit_json(const struct store_audit *r);

/* api_audit.c: GET /api/audit. */
int api_audit_register(struct host *h);

#endif
