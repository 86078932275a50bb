/*
 * The NDI plugin's internal interface, shared by its source files.
 *
 * ndi.c owns the plugin's life (settings, subscriptions, lease expiry),
 * ndi_commands.c turns command envelopes into relays and lease operations,
 * ndi_pending.c follows relayed commands until the device acks or times
 * out.  ndi_dispatch() is the single road to a device: the MQTT command
 * topic, the REST API and the scheduler all relay through it, so leases,
 * the offline check and pending tracking hold on every path.
 */
#ifndef NDI_H
#define NDI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "oh/host.h"

/* Lease holder for commands whose envelope names no actor. */
#define NDI_ANONYMOUS "anonymous"
/* Actor on envelopes the host originates; the devices accept only a few. */
#define NDI_HOST_ACTOR "orchestrator"
#define NDI_DEVICE_ID_MAX 64

struct ndi_pending;

struct ndi_settings {
	json_t *sources;          /* array of strings (owned), for the REST side */
	double ack_timeout_s;
	double default_lease_s;
	double max_lease_s;
	bool relay_when_offline;
	char *discovery_helper;   /* owned, NULL when unset */
	json_t *admins;           /* array of strings (owned), NULL: any actor */
};

struct ndi {
	oh_ctx *ctx;
	struct ndi_settings set;
	struct ndi_pending *pending;
};

/*
 * Relays one pass-through action (start, stop, set_input, record_start,
 * record_stop) to {root}/device/{device_id}/{module}/cmd at QoS 1, unless
 * the device is leased by someone other than `requester` (DENIED) or its
 * last status said "online": false (OFFLINE, unless relay_when_offline).
 * A relayed command is tracked until the device acks it (COMPLETED or
 * FAILED on the evt topic) or ack_timeout_s passes (TIMEOUT).
 *
 * device_id, action (borrowed): validated here too (BAD_REQUEST, BAD_ACTION).
 * params (borrowed, may be NULL): the action's parameters; device_id is
 *   added when missing.  Used only when `envelope` is NULL.
 * requester (borrowed, may be NULL = "anonymous"): the lease actor.
 * req_id (borrowed, may be NULL): NULL generates one.
 * envelope (borrowed, may be NULL): an app's envelope, relayed with every
 *   field kept (req_id inserted when it had none).  NULL means the host
 *   originates the command (REST, scheduler): the device then gets a fresh
 *   envelope with "actor": "orchestrator" and "requested_by": requester.
 * ack_out (returned, json_decref): the ack to publish or return, with
 *   code DISPATCHED, DENIED, OFFLINE, BAD_REQUEST, BAD_ACTION or ERROR.
 *   Set on every path except OH_ERR_NOMEM, where it is NULL.
 *
 * Returns OH_OK when relayed; OH_ERR_INVAL (BAD_REQUEST/BAD_ACTION),
 * OH_ERR_IN_USE (DENIED), OH_ERR_NO_CONN (OFFLINE), OH_ERR_EXISTS (the
 * req_id is already in flight to that device: BAD_REQUEST) or the
 * publish error (ERROR).
 */
int ndi_dispatch(struct ndi *n, const char *device_id, const char *action,
		const json_t *params, const char *requester, const char *req_id,
		const json_t *envelope, json_t **ack_out);

/* Message handler for {root}/orchestrator/{module}/cmd (ud = struct ndi). */
void ndi_on_command(oh_ctx *ctx, const struct oh_message *msg, void *ud);

/* Lease expiry watcher: publishes EXPIRED (ud = struct ndi). */
void ndi_on_lease_expired(oh_ctx *ctx, const char *key, const char *holder, void *ud);

/* ---- pending commands (ndi_pending.c) ---------------------------------- */

/* Returned; free with ndi_pending_free. NULL on NOMEM. */
struct ndi_pending *ndi_pending_new(void);
/* Cancels every outstanding timer and frees the table (NULL is fine). */
void ndi_pending_free(struct ndi *n);
/* Starts tracking req_id sent to device_id (strings copied).  OH_ERR_EXISTS
 * when that pair is already in flight, OH_ERR_NOMEM. */
int ndi_pending_add(struct ndi *n, const char *device_id, const char *req_id,
		const char *action, const char *actor);
/* Stops tracking without publishing anything (e.g. the relay failed). */
void ndi_pending_drop(struct ndi *n, const char *device_id, const char *req_id);
size_t ndi_pending_count(const struct ndi *n);
/* Message handler for {root}/device/+/{module}/evt (ud = struct ndi). */
void ndi_on_device_evt(oh_ctx *ctx, const struct oh_message *msg, void *ud);

/* ---- helpers (ndi_commands.c) ------------------------------------------ */

bool ndi_device_id_valid(const char *id);
/* A fresh UUIDv4 into buf (at least 37 bytes). */
void ndi_uuid(char *buf, size_t len);
/* Wall-clock seconds as ISO 8601 UTC ("2026-11-28T10:00:00Z") in buf. */
const char *ndi_iso_utc(double t, char *buf, size_t len);
/* Whether an ack with this code reports success (the one table of codes). */
bool ndi_code_ok(const char *code);

#endif
