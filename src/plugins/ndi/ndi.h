/*
 * The NDI plugin's internal interface, shared by its source files.
 *
 * ndi.c owns the plugin's life (settings, subscriptions, lease expiry),
 * ndi_commands.c turns command envelopes into relays and lease operations,
 * ndi_pending.c follows relayed commands until the device acks or times
 * out.  ndi_dispatch() is the single road to a device: the MQTT command
 * topic, the REST API and the scheduler all relay through it, so leases,
 * the offline check and pending tracking hold on every path.  ndi_rest.c is
 * the REST API and the web page, ndi_devices.c builds its device list,
 * ndi_status.c remembers each device's last module status, and
 * ndi_discovery.c finds NDI sources.
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
#define NDI_DEVICE_ID_MAX OH_DEVICE_ID_MAX

struct ndi_pending;
struct ndi_status;
struct ndi_devices;
struct ndi_discovery;
struct ndi_routes;

/* The plugin's own settings; the discovery keys (sources, discovery_*,
 * mdns) are checked in the same table (ndi_discovery_settings) and read by
 * ndi_discovery_new(). */
struct ndi_settings {
	double ack_timeout_s;
	double default_lease_s;
	double max_lease_s;
	bool relay_when_offline;
	json_t *admins; /* array of strings (owned), NULL: any actor */
};

struct ndi {
	oh_ctx *ctx;
	struct ndi_settings set;
	struct ndi_pending *pending;
	struct ndi_status *status;
	struct ndi_discovery *discovery;
	struct ndi_devices *devices; /* GET /devices (ndi_devices.c) */
	struct ndi_routes *routes;   /* routes and presets (ndi_routes.c) */
};

/* The lease key of device_id in this module: "{module}:{device_id}" (buf
 * borrowed, len bytes). */
void ndi_lease_key(const struct ndi *n, const char *device_id, char *buf, size_t len);

/*
 * Relays one pass-through action (start, stop, set_input, record_start,
 * record_stop) to {root}/device/{device_id}/{module}/cmd at QoS 1, unless
 * the device is leased by someone other than `requester` (DENIED) or its
 * last status said "online": false (OFFLINE, unless relay_when_offline).
 * A relayed command is tracked until the device acks it (COMPLETED or
 * FAILED on the evt topic) or ack_timeout_s passes (TIMEOUT).
 *
 * device_id, action (borrowed): checked here, with params, against the
 *   actions table (BAD_REQUEST naming the field, BAD_ACTION).  The command
 *   topic and ndi_run() check once and then relay without this function.
 * params (borrowed, may be NULL): the action's parameters; device_id is
 *   added when missing.  Used only when `envelope` is NULL.
 * requester (borrowed, may be NULL = "anonymous"): the lease actor.
 * req_id (borrowed, may be NULL): NULL generates one.
 * msg (borrowed, may be NULL): an app's command message; its envelope is
 *   relayed byte for byte, or with every field kept and req_id inserted
 *   when it had none.  NULL means the host
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
int ndi_dispatch(struct ndi *n, const char *device_id, const char *action, const json_t *params,
		const char *requester, const char *req_id, const struct oh_message *msg, json_t **ack_out);

/* Message handler for {root}/orchestrator/{module}/cmd (ud = struct ndi). */
void ndi_on_command(oh_ctx *ctx, const struct oh_message *msg, void *ud);

/*
 * Runs one action the way the command topic does, for callers without an
 * envelope (REST): params (borrowed, may be NULL) are checked once against
 * the action's entry in the actions table (errors name fields under path:
 * "params", or "" when params are a REST body), then a pass-through is
 * relayed as by ndi_dispatch() (the device gets a host-originated envelope
 * naming `actor` in requested_by) and reserve/renew/release/force_release
 * act on the lease as `actor` (borrowed, NULL = "anonymous").  req_id
 * (borrowed) NULL generates one.  Returns the ack (returned, json_decref),
 * NULL only on NOMEM.
 */
json_t *ndi_run(struct ndi *n, const char *action, const json_t *params, const char *path, const char *actor,
		const char *req_id);
/* The scheduler's executor and command check (oh_job_exec_fn and
 * oh_job_validate_fn; ud = struct ndi): a job's command is relayed through
 * ndi_dispatch() as the job's owner; only pass-through actions whose params
 * pass the same table as on the command topic can be scheduled. */
json_t *ndi_job_exec(oh_ctx *ctx, const char *job_id, const char *owner, const json_t *command, void *ud);
int ndi_job_validate(oh_ctx *ctx, const json_t *command, char *err, size_t errlen);
/* Whether action is one relayed to the device. */
bool ndi_action_relayed(const char *action);

/* Lease expiry watcher: publishes EXPIRED (ud = struct ndi). */
void ndi_on_lease_expired(oh_ctx *ctx, const char *key, const char *holder, void *ud);

/* ---- pending commands (ndi_pending.c) ---------------------------------- */

/* Returned; free with ndi_pending_free. NULL on NOMEM. */
struct ndi_pending *ndi_pending_new(void);
/* Cancels every outstanding timer and frees the table (NULL is fine). */
void ndi_pending_free(struct ndi *n);
/* Starts tracking req_id sent to device_id (strings copied).  OH_ERR_EXISTS
 * when that pair is already in flight, OH_ERR_NOMEM. */
int ndi_pending_add(struct ndi *n, const char *device_id, const char *req_id, const char *action,
		const char *actor);
/* Stops tracking without publishing anything (e.g. the relay failed). */
void ndi_pending_drop(struct ndi *n, const char *device_id, const char *req_id);
size_t ndi_pending_count(const struct ndi *n);
/* Message handler for {root}/device/+/{module}/evt (ud = struct ndi). */
void ndi_on_device_evt(oh_ctx *ctx, const struct oh_message *msg, void *ud);

/*
 * Called once when a tracked command ends: event (borrowed for the call)
 * is the COMPLETED, FAILED or TIMEOUT event just published, or NULL when
 * tracking stopped without one (the plugin is being cleaned up).
 */
typedef void (*ndi_done_fn)(struct ndi *n, const json_t *event, void *ud);
/* Attaches fn to the command in flight (one per command).  OH_ERR_NOT_FOUND
 * when it is not in flight, OH_ERR_EXISTS when it already has one. */
int ndi_pending_on_done(struct ndi *n, const char *device_id, const char *req_id, ndi_done_fn fn, void *ud);
/* Detaches the callback (whoever waited went away); the command itself
 * stays tracked and its event is still published. */
void ndi_pending_forget(struct ndi *n, const char *device_id, const char *req_id);

/* The {id} of a {root}/device/{id}/... topic into buf (len bytes); false
 * when the topic has another shape or the id is not a valid device id. */
bool ndi_topic_device(oh_ctx *ctx, const char *topic, char *buf, size_t len);

/* ---- what devices and the host last said (ndi_status.c) ---------------- */

/* Subscribes to {root}/device/+/{module}/status;
 * n->status is freed by ndi_status_free.  OH_ERR_NOMEM, or the subscribe
 * error (after oh_fail). */
int ndi_status_start(struct ndi *n);
void ndi_status_free(struct ndi *n);
/* The device's last module status object (borrowed until the loop runs
 * again), or NULL when it never published one.  *seq (may be NULL) gets a
 * value that changes with the device's status and no other's (0: none). */
const json_t *ndi_status_get(const struct ndi *n, const char *device_id, unsigned long long *seq);
/* Changes whenever any device's module status does. */
unsigned long long ndi_status_generation(const struct ndi *n);
/* Calls fn (device_id borrowed for the call; fn must not change the
 * statuses) for each device whose status changed after generation `since`,
 * newest first: O(changes).  false, without calling fn, when a status was
 * removed since then: compare each device's seq instead. */
bool ndi_status_changed_since(const struct ndi *n, unsigned long long since,
		void (*fn)(const char *device_id, void *ud), void *ud);

/* ---- the device list (ndi_devices.c) ------------------------------------ */

/* n->devices for GET /devices: OH_OK or OH_ERR_NOMEM. */
int ndi_devices_start(struct ndi *n);
/* Answers the requests still waiting with 503 and frees n->devices (NULL
 * is fine). */
void ndi_devices_free(struct ndi *n);
/* Answers req (borrowed; answered now or later) with {devices: [...]},
 * each device listing the module, sorted by id. */
void ndi_devices_get(struct ndi *n, struct oh_http_req *req);

/* ---- routes and presets (ndi_routes.c) ---------------------------------- */

/* Loads the stored routes and presets and subscribes to the devices' online
 * status; n->routes is freed by ndi_routes_free (after ndi_pending_free).
 * OH_ERR_NOMEM, or the store's or subscribe's error (after oh_fail). */
int ndi_routes_start(struct ndi *n);
/* The host took the lead of a pair: read the routes and presets (the
 * PostgreSQL store hands them out only now) and enforce them. */
void ndi_routes_took_lead(struct ndi *n);
/* A failing route's wait before its next try, after `failures` in a row
 * before this one: 1 s doubling, at most 60 s.  Here, pure, for the unit
 * test (tests/unit/test_ndi_backoff.c): the cap is a minute of real time
 * away in an integration test. */
static inline double ndi_route_backoff_s(unsigned failures)
{
	double delay = 1.0;

	for(unsigned i = 0; i < failures && delay < 60.0; i++)
		delay *= 2;
	return delay < 60.0 ? delay : 60.0;
}
void ndi_routes_free(struct ndi *n);
/* The module status of device_id (borrowed) changed or went (ndi_status.c). */
void ndi_routes_status_changed(struct ndi *n, const char *device_id);
/* The host forgot the device: its route goes too. */
void ndi_routes_forget(struct ndi *n, const char *device_id);
/*
 * The actions, once their params passed the actions table (ndi_commands.c):
 * each returns its ack (returned, json_decref; NULL on NOMEM), written to
 * the store before it says OK.  Strings borrowed.  route: params
 * {device_id, source|null, recording}; IN_USE when the device is reserved
 * by someone other than actor.  unroute: NOT_FOUND, IN_USE.  apply_preset:
 * all or nothing, IN_USE naming every device reserved by someone else.
 * preset put/delete are the REST API's (routes: {device_id: {source,
 * recording}}, each already checked).
 */
json_t *ndi_route_put(struct ndi *n, const char *req_id, const char *actor, const char *device_id,
		const json_t *params);
json_t *ndi_route_delete(struct ndi *n, const char *req_id, const char *actor, const char *device_id);
json_t *ndi_preset_apply(struct ndi *n, const char *req_id, const char *actor, const char *name);
json_t *ndi_preset_put(
		struct ndi *n, const char *req_id, const char *actor, const char *name, const json_t *routes);
json_t *ndi_preset_delete(struct ndi *n, const char *req_id, const char *actor, const char *name);
/* Views for the REST API (returned; NULL: no such route or preset, or NOMEM). */
json_t *ndi_routes_list(struct ndi *n);
json_t *ndi_route_get(struct ndi *n, const char *device_id);
json_t *ndi_presets_list(struct ndi *n);
json_t *ndi_preset_get(struct ndi *n, const char *name);
/* The table of one route's fields ({source, recording}), for a preset's
 * entries; and the rule the table cannot say (recording needs a source):
 * OH_OK or OH_ERR_INVAL with err "{path}.recording: ...". */
extern const struct oh_vobject ndi_route_entry;
int ndi_route_entry_check(const json_t *entry, const char *path, char *err, size_t errlen);

/* ---- REST API and web page (ndi_rest.c) ---------------------------------- */

/* Mounts /api/{module}/{status,sources,devices,send,reserve,renew,release,
 * force_release} and the page /ui/{module}.  OH_ERR_* from oh_route. */
int ndi_rest_register(struct ndi *n);

/* ---- helpers (ndi_commands.c) ------------------------------------------ */

/* Whether an ack with this code reports success (the one table of codes). */
bool ndi_code_ok(const char *code);

#endif
