/*
 * Services the host offers a plugin through its context.
 *
 * All calls are made on the host's single event loop thread; none blocks.
 * The module name is a namespace the host enforces: a plugin publishes only
 * under {root}/orchestrator/{module}/... and {root}/device/{id}/{module}/...,
 * its routes live under /api/{module}/, its page at /ui/{module}, and its
 * lease keys start with "{module}:".
 *
 * Ownership is noted beside each pointer: borrowed (valid for the call),
 * taken (the callee frees it, also on failure), returned (the caller frees).
 */
#ifndef OH_HOST_H
#define OH_HOST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "oh/defs.h"
#include "oh/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- identity, state, logging ---------------------------------------- */

const char *oh_module(const oh_ctx *ctx);     /* "ndi" */
const char *oh_topic_root(const oh_ctx *ctx); /* "/lab" */

/* The plugin's own state; free_fn (may be NULL) runs after cleanup(). */
void oh_set_data(oh_ctx *ctx, void *data, void (*free_fn)(void *data));
void *oh_data(const oh_ctx *ctx);

enum oh_log_level {
	OH_LOG_DEBUG,
	OH_LOG_INFO,
	OH_LOG_WARN,
	OH_LOG_ERROR
};
/* Logged with the module name as prefix. */
void oh_log(oh_ctx *ctx, enum oh_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records why init failed (shown in the log, /healthz and the snapshot);
 * returns OH_ERR_INVAL so init can `return oh_fail(ctx, "...")`. */
int oh_fail(oh_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- MQTT -------------------------------------------------------------- */

struct oh_message {
	const char *topic;   /* borrowed */
	const void *payload; /* borrowed raw bytes, not NUL-terminated */
	size_t len;
	bool retained;
	/* Parsed payload, or NULL when it is not JSON or over max_payload_bytes;
	 * then `error` says why and `too_large` tells which. */
	const json_t *json;
	const char *error;
	bool too_large;
	void *reserved[4];
};

typedef void (*oh_message_fn)(oh_ctx *ctx, const struct oh_message *msg, void *ud);

/* Subscribes (QoS 0 or 1) and routes matching messages to fn.  The host keeps
 * one broker subscription per filter and renews it on every reconnect.
 * OH_ERR_INVAL for a filter that is not valid or not under the topic root. */
int oh_subscribe(oh_ctx *ctx, const char *filter, int qos, oh_message_fn fn, void *ud);

/* Publishes under the module's namespace, {root}/orchestrator/{module}/...
 * or {root}/device/{id}/{module}/... as oh_topic_parse() reads them (a
 * valid device id, no empty level); OH_ERR_DENIED elsewhere (tightened in
 * minor 1 as a security fix, docs/plugins.md).  QoS 1 messages published while the broker is away are queued
 * and sent after reconnect; OH_ERR_NO_CONN for QoS 0. */
int oh_publish(oh_ctx *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain);
int oh_publish_json(oh_ctx *ctx, const char *topic, const json_t *payload /* borrowed */, int qos, bool retain);

/* ---- command envelopes and acks (docs/protocol.md) ---------------------- */

/* The pointers are borrowed from the message; req_id is held in the struct
 * itself (no pointer into it), so a copy of the struct is as good as the
 * original while the message lives. */
struct oh_command {
	char req_id[OH_REQ_ID_MAX + 1]; /* the envelope's, or a generated one */
	const char *actor;              /* NULL when absent */
	const char *action;
	const json_t *params;   /* an object, possibly empty; borrowed from msg */
	const json_t *envelope; /* the whole payload; borrowed from msg */
	void *reserved[4];
};

/*
 * Validates a command envelope: a JSON object (else BAD_JSON), not over
 * max_payload_bytes (TOO_LARGE), `action` a non-empty string, `params` an
 * object when present, `actor` and `req_id` strings when present
 * (BAD_REQUEST).  On failure returns OH_ERR_INVAL and sets *code and err;
 * cmd->req_id is still set so the error can be acked.  A message is parsed
 * once while it is delivered: a second call on it (the host's mqtt_commands
 * gate reads commands before the handlers do) returns the same result, a
 * generated req_id included.  ctx is not used (the rules are the host's).
 */
int oh_command_parse(oh_ctx *ctx, const struct oh_message *msg, struct oh_command *cmd, const char **code,
		char *err, size_t errlen);

/* Builds an ack in the devices' shape: {req_id, ok, code, action, actor, ts,
 * error, details}.  Strings are copied, details is taken (may be NULL).
 * Returned; free with json_decref. */
json_t *oh_ack_new(const char *req_id, bool ok, const char *code, const char *action, const char *actor,
		const char *error, json_t *details);

/* Publishes an ack (taken) on {root}/orchestrator/{module}/evt at QoS 1. */
int oh_ack_publish(oh_ctx *ctx, json_t *ack);

/* A fresh request id (32 hex characters, random) into buf (>= 33 bytes),
 * in the same form the host generates; returns buf. */
char *oh_new_id(char *buf, size_t len);
/* Wall-clock seconds as the wire format: "2026-11-28T10:00:00Z" (buf >= 21
 * bytes); returns buf. */
char *oh_format_time(double t, char *buf, size_t len);

/* ---- registry (read-only) ----------------------------------------------- */

struct oh_device {
	const char *id;
	const json_t *doc; /* merged meta+status object; borrowed */
	int online;        /* 1, 0, or -1 when never reported */
	bool stale;        /* reported online but silent too long */
	double last_seen;  /* wall-clock seconds, 0 if never */
	/* Moves (up, never back, and to a value no other device has had)
	 * whenever anything above does: the document, online, stale or
	 * last_seen.  A view cached per device is current while this equals
	 * the value it was built from.  0 from hosts before this field: then
	 * rebuild every time.  (It took reserved slots: the size is unchanged.) */
	unsigned long long changes;
	void *reserved[4 - sizeof(unsigned long long) / sizeof(void *)];
};

/* OH_OK and *out filled (valid until the loop runs again), or OH_ERR_NOT_FOUND. */
int oh_device_get(oh_ctx *ctx, const char *id, struct oh_device *out);
/* Calls fn for each device; stop early by returning non-zero from fn.
 * Each dev->doc is valid until the loop runs again.  The registry keeps
 * most devices as text, so this parses each one it hands out: a walk that
 * reads only ids and counters should be oh_device_walk. */
void oh_device_foreach(oh_ctx *ctx, int (*fn)(const struct oh_device *dev, void *ud), void *ud);
/* oh_device_foreach without the documents: dev->doc is NULL, the rest as
 * there.  For walks that compare dev->changes and note ids (a cache of
 * views); about a hundred times cheaper per device.  Minor
 * OH_ABI_MINOR_WALK. */
void oh_device_walk(oh_ctx *ctx, int (*fn)(const struct oh_device *dev, void *ud), void *ud);
/* Whether id can name a device: 1-64 characters of [A-Za-z0-9._-], the
 * rule the registry applies (it keeps '/', '+', '#' and "" out of topics). */
bool oh_device_id_valid(const char *id);
/* A counter that changes whenever anything in the snapshot does (a device,
 * a lease, the loaded modules): cache views derived from the registry
 * against it instead of rebuilding them per request. */
unsigned long long oh_registry_generation(oh_ctx *ctx);

/* ---- leases -------------------------------------------------------------- */

struct oh_lease {
	char holder[128];
	double expires_at; /* wall-clock seconds */
	double remaining_s;
	void *reserved[4]; /* zero; room to grow */
};

/* The longest lease_s the host grants (about 31 years). */
#define OH_LEASE_MAX_S 1e9

/* Keys must start with "{module}:".  Every change is durable before the call
 * returns.  take: OH_OK (also when the same actor already holds it: the
 * lease is extended), OH_ERR_IN_USE with *out naming the holder,
 * OH_ERR_TOO_LARGE when limits.max_leases leases are held and this would be
 * a new one (the host counted the refusal; answer with LIMIT).
 * Every lease call: OH_ERR_INVAL for a NULL or empty key, and where an actor
 * is required (take, renew, release) for a NULL, empty or over 127-byte
 * actor; take and renew also for a lease_s that is NaN, infinite, <= 0 or
 * over OH_LEASE_MAX_S.  OH_ERR_IO when the store could not record the
 * change (nothing changed; e.g. another process holds the database: try
 * again later).  key, actor and out are borrowed. */
int oh_lease_take(oh_ctx *ctx, const char *key, const char *actor, double lease_s, struct oh_lease *out);
/* OH_ERR_NOT_HELD, OH_ERR_NOT_OWNER (with *out) */
int oh_lease_renew(oh_ctx *ctx, const char *key, const char *actor, double lease_s, struct oh_lease *out);
int oh_lease_release(oh_ctx *ctx, const char *key, const char *actor, struct oh_lease *out);
/* Drops the lease whoever holds it; *out gets the previous holder. */
int oh_lease_force_release(oh_ctx *ctx, const char *key, struct oh_lease *out);
/* OH_OK when the key is free or held by actor (NULL: only when free);
 * OH_ERR_IN_USE (with *out). */
int oh_lease_can_use(oh_ctx *ctx, const char *key, const char *actor, struct oh_lease *out);
/* OH_OK with *out, or OH_ERR_NOT_FOUND. */
int oh_lease_get(oh_ctx *ctx, const char *key, struct oh_lease *out);
/* A counter that moves whenever a plugin takes, renews, releases or
 * force-releases a lease (any module's).  Expiry does not move it: a lease
 * is gone once its expires_at has passed.  A view showing leases is current
 * while this is unchanged and none of the leases it shows has run out. */
unsigned long long oh_lease_generation(oh_ctx *ctx);

/* Called when one of the module's leases runs out (not on release). */
typedef void (*oh_lease_expired_fn)(oh_ctx *ctx, const char *key, const char *holder, void *ud);
int oh_lease_on_expire(oh_ctx *ctx, oh_lease_expired_fn fn, void *ud);

/* ---- documents (minor OH_ABI_MINOR_DOCS) ---------------------------------- */

/*
 * A small durable store for a plugin's own state, in the host's store (the
 * same one as leases and jobs): JSON objects keyed by (collection, key)
 * inside the module's namespace, so no plugin sees another's.  Every put
 * and delete is committed before the call returns (unless inside
 * oh_doc_begin/oh_doc_commit, which commits them together, all or none).
 * A host without a state_dir keeps nothing and answers OH_OK.
 *
 * collection: 1-64 characters of [a-z0-9_]; key: 1-255 bytes, no NUL;
 * both borrowed, doc borrowed (an object).  OH_ERR_INVAL for anything else,
 * OH_ERR_IO when the store refused the write (nothing changed: refuse what
 * was asked), OH_ERR_NOMEM.
 */
int oh_doc_put(oh_ctx *ctx, const char *collection, const char *key, const json_t *doc);
/* Deleting a key that is not there is OH_OK. */
int oh_doc_delete(oh_ctx *ctx, const char *collection, const char *key);
/* Calls fn (key and doc borrowed for the call) for each stored document of
 * the collection, in the order first written; call it from init. */
typedef void (*oh_doc_fn)(oh_ctx *ctx, const char *key, const json_t *doc, void *ud);
int oh_doc_load(oh_ctx *ctx, const char *collection, oh_doc_fn fn, void *ud);
/* Groups the puts and deletes until oh_doc_commit into one transaction.
 * Calls nest.  begin: OH_ERR_IO when the store is busy (nothing opened; do
 * not call commit).  commit: OH_ERR_IO when none of the writes were kept. */
int oh_doc_begin(oh_ctx *ctx);
int oh_doc_commit(oh_ctx *ctx);

/* ---- timers -------------------------------------------------------------- */

/*
 * A timer is named by a number, not a pointer: nothing to dereference or
 * free, and no number is handed out twice while the host runs (a 64-bit
 * counter), so a stale handle can never name a newer timer.  0
 * (OH_TIMER_NONE) means the timer could not be added.  A one-shot timer
 * ends when it fires (before fn runs) and a repeating one when it is
 * cancelled; all end when the plugin is unloaded.  Cancelling a handle whose
 * timer already ended (fired, cancelled, torn down), 0, or one another
 * plugin holds does nothing, so a plugin need not clear its copy in the
 * callback.
 */
typedef unsigned long long oh_timer_id;
#define OH_TIMER_NONE 0ULL
typedef void (*oh_timer_fn)(oh_ctx *ctx, void *ud);
oh_timer_id oh_timer_add(oh_ctx *ctx, unsigned ms, bool repeat, oh_timer_fn fn, void *ud);
void oh_timer_cancel(oh_ctx *ctx, oh_timer_id timer /* may be stale */);

/* ---- HTTP ------------------------------------------------------------------ */

struct oh_http_req;
typedef void (*oh_http_fn)(oh_ctx *ctx, struct oh_http_req *req, void *ud);

/*
 * Mounts `method path` under /api/{module}; path segments written {name} are
 * captured (oh_req_param).  `openapi` is the JSON text of an OpenAPI 3
 * operation object describing the route (may be NULL), merged into
 * /openapi.json; the host adds security, its own error statuses, path
 * parameters and the shared Error schema (docs/plugins.md, "The OpenAPI
 * description").  A handler replies once, now or later: one that returns
 * without replying leaves the request open (see oh_req_on_gone).
 */
int oh_route(oh_ctx *ctx, const char *method, const char *path, oh_http_fn fn, void *ud, const char *openapi);

const char *oh_req_method(const struct oh_http_req *req);
const char *oh_req_path(const struct oh_http_req *req);
const char *oh_req_param(const struct oh_http_req *req, const char *name);
const char *oh_req_query(const struct oh_http_req *req, const char *name);
const char *oh_req_header(const struct oh_http_req *req, const char *name);
/* The parsed JSON body, or NULL when there was none.  Malformed bodies never
 * reach a handler: the host answers 400 naming line and column. */
const json_t *oh_req_body(const struct oh_http_req *req);
/* The authenticated caller (token name), or NULL when auth is off. */
const char *oh_req_actor(const struct oh_http_req *req);

/* body is taken */
int oh_reply_json(struct oh_http_req *req, unsigned status, json_t *body);
/* A body that is already serialised (copied), e.g. a cached view. */
int oh_reply_raw(struct oh_http_req *req, unsigned status, const char *content_type, const void *data,
		size_t len);
/* The registry snapshot, exactly as GET /api/registry serves it. */
int oh_reply_snapshot(struct oh_http_req *req);

/*
 * Blobs: reference-counted bodies, for a large view built once and sent to
 * any number of requests without a copy per request (oh_reply_raw copies).
 * The creator holds one reference; every reply takes its own, dropped once
 * that response is sent or abandoned, so a blob replaced in a cache stays
 * alive exactly as long as responses still send it.
 */
struct oh_blob;
/* A blob of len bytes (returned, with one reference: oh_blob_unref):
 * a copy of data, or with data NULL uninitialised bytes to fill through
 * oh_blob_data() before the first reply.  NULL when out of memory. */
struct oh_blob *oh_blob_new(const void *data, size_t len);
/* Its len bytes, followed by a NUL the host keeps there.  Write only
 * before the blob is first replied with: afterwards they are being sent. */
char *oh_blob_data(struct oh_blob *blob);
size_t oh_blob_len(const struct oh_blob *blob);
/* Another reference to blob (returned). */
struct oh_blob *oh_blob_ref(struct oh_blob *blob);
/* Drops one reference (taken); NULL does nothing. */
void oh_blob_unref(struct oh_blob *blob);
/* Replies with the blob's bytes; blob is borrowed (the reply takes its own
 * reference).  OH_ERR_NOMEM, OH_ERR_EXISTS when req was answered already.
 * A 200 reply also gets what the host adds to every shared body, computed
 * once per blob since its bytes no longer change: a strong ETag (304 to
 * If-None-Match naming it), a gzip copy for clients that accept gzip
 * (bodies over 2 KB, made in slices on the loop; the plain bytes until it
 * is ready) and Vary: Accept-Encoding.  A route fragment can describe them
 * with the components parameters IfNoneMatch, AcceptEncoding and headers
 * ETag, Vary, ContentEncoding. */
int oh_reply_blob(struct oh_http_req *req, unsigned status, const char *content_type, struct oh_blob *blob);
/* {"error": {"code": code, "message": ...}} */
int oh_reply_error(struct oh_http_req *req, unsigned status, const char *code, const char *fmt, ...)
		__attribute__((format(printf, 4, 5)));

/* The client left before a deferred reply; req is invalid after fn returns. */
typedef void (*oh_req_gone_fn)(struct oh_http_req *req, void *ud);
void oh_req_on_gone(struct oh_http_req *req, oh_req_gone_fn fn, void *ud);

/*
 * Roles of API tokens (http.tokens), ordered: each includes the ones
 * before it.  viewer: GET only; operator: commands and the caller's own
 * leases and jobs; admin: also acting on others' (force_release, deleting
 * others' jobs, unloading plugins).
 */
enum oh_role {
	OH_ROLE_NONE = 0,
	OH_ROLE_VIEWER,
	OH_ROLE_OPERATOR,
	OH_ROLE_ADMIN
};

/* The caller's role: the token's; OH_ROLE_ADMIN when no tokens are
 * configured (the host then serves loopback only, or was told to serve
 * without authentication); OH_ROLE_NONE on a public path (/healthz, /ui). */
enum oh_role oh_req_role(const struct oh_http_req *req);

/*
 * Declares the role a route needs; by default GET needs viewer and every
 * other method operator.  The host answers 401 without a token and 403 with
 * a lesser role before the handler runs.  method and path as for oh_route.
 * OH_ERR_INVAL for OH_ROLE_NONE, OH_ERR_NOT_FOUND when the route is not
 * (yet) mounted.  A handler whose rule depends on the resource (another
 * owner's job) checks oh_req_role() itself.  Marking POST /{action} admin
 * also makes the MQTT command `action` an admin action, which
 * mqtt_commands.admin_actors can limit (docs/security.md).
 */
int oh_route_require(oh_ctx *ctx, const char *method, const char *path, enum oh_role role);

/* ---- file descriptors and child processes --------------------------------- */

/* Watches fd for OH_WATCH_READ and/or OH_WATCH_WRITE (persistently) on the
 * host's loop, e.g. for a client library with its own socket (Avahi). */
#define OH_WATCH_READ 0x02
#define OH_WATCH_WRITE 0x04
struct oh_watch;
typedef void (*oh_watch_fn)(oh_ctx *ctx, int fd, int events, void *ud);
struct oh_watch *oh_watch_add(oh_ctx *ctx, int fd, int events, oh_watch_fn fn, void *ud);
/* Changes the events watched (0 pauses the watch). */
int oh_watch_update(oh_ctx *ctx, struct oh_watch *w, int events);
void oh_watch_cancel(oh_ctx *ctx, struct oh_watch *w);

/*
 * Runs argv (no shell) without blocking the loop, collecting up to
 * max_output bytes of its standard output (any value, SIZE_MAX included:
 * the buffer grows with the output; what is over is read and dropped).
 * After timeout_ms the child's process group is killed.  done gets the exit status (as from waitpid;
 * -1 if it could not start), whether it timed out, and the output (borrowed
 * for the call).  Returns OH_OK or an error if the process could not be
 * started (then done is not called).
 */
typedef void (*oh_spawn_done_fn)(
		oh_ctx *ctx, int status, bool timed_out, const char *output, size_t len, void *ud);
int oh_spawn(oh_ctx *ctx, char *const argv[], unsigned timeout_ms, size_t max_output, oh_spawn_done_fn done,
		void *ud);

/* ---- the audit trail (minor 6) ------------------------------------------ */

/*
 * What the host does not see itself, for the audit trail (docs/audit.md):
 * a route made or dropped, a preset applied.  Command outcomes published
 * with oh_ack_publish, leases, jobs, plugin loads and devices are recorded
 * by the host already: do not record them again.  The host adds the time,
 * the seq, the module and the API token of the request being handled.
 * Strings are borrowed (cut at 512 bytes); detail (borrowed, may be NULL)
 * is a small object.  latency_ms < 0: none.
 */
struct oh_audit_record {
	const char *kind; /* "route" (routes and presets) or "command" */
	const char *action;
	const char *actor, *requested_by, *device_id, *req_id, *code, *error;
	const json_t *detail;
	double latency_ms;
	void *reserved[4]; /* zero */
};
/* Stored with the next batch (a few ms; an ack published with
 * oh_ack_publish after it waits for that batch).  OH_OK, also when the
 * audit is off (audit.enabled false); OH_ERR_INVAL for another kind, a
 * NULL action or a detail that is not an object. */
int oh_audit_record(oh_ctx *ctx, const struct oh_audit_record *rec);

/* ---- scheduler ------------------------------------------------------------ */

/*
 * Durable scheduled jobs, a host service: a job runs a list of commands
 * ({device_id, action, params}) at one instant (`at`) or on a 5-field
 * crontab (`cron`) in an IANA time zone.  Jobs are written to the host's
 * store before they are acknowledged and survive restarts (also kill -9);
 * a run missed while the host was down runs once at startup if it is at
 * most misfire_grace_s late, otherwise it is recorded as MISSED.  Each job
 * records its owner and the module whose executor runs it.
 *
 * At the due time the scheduler calls the module's executor once per
 * command, as the job's owner, and publishes on {root}/orchestrator/{module}/evt:
 * FIRED (details: job_id, name, due, fired_at, lateness_ms, dispatched
 * [{device_id, action, req_id}], skipped [...]), one SKIPPED per command the
 * executor refused (details: job_id, device_id, action, holder, code), and
 * MISSED (details: job_id, name, due).  See docs/scheduling.md.
 */

/*
 * Runs one command of a job now.  command (borrowed) is {device_id, action,
 * params}; owner (borrowed) is the job's owner, to be used as the lease
 * actor and named as "requested_by" with "actor": "orchestrator" on the
 * envelope sent to the device.  Returns an ack-shaped object (returned, the
 * scheduler frees it): "ok": true means the command was sent (code
 * DISPATCHED, "req_id" the relayed envelope's); otherwise "code" (DENIED,
 * OFFLINE, ...), "error" and, for a lease, "details": {"holder": ...} say why
 * it was skipped.  NULL counts as a skip with code ERROR.
 */
typedef json_t *(*oh_job_exec_fn)(
		oh_ctx *ctx, const char *job_id, const char *owner, const json_t *command, void *ud);

/*
 * Optional check of one command when a job is created, after the host
 * checked its shape ({device_id, action, params}, include/oh/validate.h).
 * Use the tables the module's command topic uses, so a job is refused
 * exactly when the same command sent directly would be.  Return OH_OK, or
 * OH_ERR_INVAL with err set to a message that starts with the field inside
 * the command ("params.source: missing"); the host prefixes "commands[i]."
 * and answers BAD_REQUEST.  OH_ERR_NOT_FOUND: the action is unknown
 * ("action: unknown action \"fly\""), answered BAD_ACTION (HTTP 400).
 */
/* From minor OH_ABI_MINOR_DOCS (a plugin whose abi_minor says so), the
 * host hands the check commands without device_id too (device_id then
 * absent or null), for actions that name no one device (NDI's
 * apply_preset): the check refuses them where the action needs one, with
 * "device_id: missing (expected a string)".  For a plugin of an older
 * minor, or without a check, the host requires device_id itself. */
typedef int (*oh_job_validate_fn)(oh_ctx *ctx, const json_t *command /* borrowed */, char *err, size_t errlen);

/*
 * Declares that the module executes scheduled jobs: call once from init.
 * The host then mounts GET /api/{module}/jobs, POST /api/{module}/jobs,
 * GET and DELETE /api/{module}/jobs/{id}, and restores the module's
 * persisted jobs after init.  validate may be NULL.  ud is borrowed and must
 * live until cleanup.  Everything is torn down with the plugin.
 * Errors: OH_ERR_INVAL (exec NULL), OH_ERR_EXISTS (registered already),
 * OH_ERR_NOMEM.
 */
int oh_scheduler_register(oh_ctx *ctx, oh_job_exec_fn exec, void *ud, oh_job_validate_fn validate);

/*
 * Handles the scheduler's actions of a parsed command envelope (cmd and
 * everything it points to borrowed):
 *   schedule   {at | cron, commands, tz?, name?}  -> SCHEDULED {job_id, next_run, name}
 *   unschedule {job_id}                          -> OK {job_id}, NOT_FOUND, NOT_OWNER
 *   jobs       {owner?}                          -> OK {jobs: [...]}
 * and BAD_REQUEST naming the field for invalid params (BAD_ACTION for a
 * command's action the module does not know).  The owner, and the
 * only actor who may unschedule a job, is cmd->actor ("anonymous" when
 * absent); an admin override arrives with authentication tokens.
 * Returns the ack to publish (returned, e.g. to oh_ack_publish), or NULL
 * when cmd->action is none of these three (or on NOMEM), so a plugin's
 * command handler can try it first.
 */
json_t *oh_scheduler_command(oh_ctx *ctx, const struct oh_command *cmd);

/*
 * The same from C.  oh_job_add: params (borrowed) as for `schedule`, owner
 * (borrowed, NULL = "anonymous"); job_id (borrowed, >= 33 bytes) gets the
 * new id.  OH_ERR_INVAL with err naming the field, OH_ERR_NOT_FOUND with
 * err naming a command's unknown action, OH_ERR_IO (not stored,
 * so not scheduled), OH_ERR_DENIED (module not registered), OH_ERR_TOO_LARGE
 * with err naming limits.max_jobs or limits.max_jobs_per_actor (counted by
 * the host; the `schedule` action and the REST route answer LIMIT).
 */
int oh_job_add(oh_ctx *ctx, const char *owner, const json_t *params, char *job_id, char *err, size_t errlen);
/* actor (borrowed) NULL removes whoever owns it.  OH_ERR_NOT_FOUND,
 * OH_ERR_NOT_OWNER, OH_ERR_IO. */
int oh_job_remove(oh_ctx *ctx, const char *job_id, const char *actor);
/* The module's jobs, as the REST API shows them (owner NULL: all);
 * returned, json_decref. */
json_t *oh_job_list(oh_ctx *ctx, const char *owner);
/* One job (returned), or NULL when there is none. */
json_t *oh_job_get(oh_ctx *ctx, const char *job_id);

/* ---- metrics (GET /metrics, Prometheus text format) --------------------- */

/*
 * Adds n to the counter oh_{module}_{name}.  name (borrowed) is
 * [a-zA-Z_][a-zA-Z0-9_]*, ending in _total by convention, optionally
 * followed by {label} to name the label: ("commands_total{code}", "OK", 1)
 * counts oh_ndi_commands_total{code="OK"}.  label_value (borrowed) NULL:
 * a counter without labels; non-NULL without {label}: the label is "kind".
 * Keep label values few and fixed (codes, not ids): after 64 distinct values
 * the rest are counted as "other".  A bad name is logged and ignored.
 */
void oh_metric_count(oh_ctx *ctx, const char *name, const char *label_value, unsigned long n);
/* Records one observation in the histogram oh_{module}_{name} (name borrowed,
 * e.g. "relay_latency_seconds"), buckets 0.0005 s .. 10 s and +Inf. */
void oh_metric_observe(oh_ctx *ctx, const char *name, double seconds);

/* ---- limits (config "limits") ------------------------------------------- */

/*
 * Every table a client can grow has a cap: the host's config holds them
 * under "limits" (README.md, "Limits"), and a plugin keeping such a table
 * reads its caps here.  Past a cap the plugin refuses what would grow the
 * table, leaves what it holds alone, counts the refusal with
 * oh_limit_refused() and answers with the ack code LIMIT naming the limit:
 *   {"code": "LIMIT", "error": "limits.max_pending (100000) reached",
 *    "details": {"limit": "max_pending", "value": 100000}}
 * (HTTP 429, or 507 for what is stored).  The host enforces and counts its
 * own limits (devices, leases, jobs) itself.
 */

/* The value of limits.{name}, name (borrowed) e.g. "max_pending": >= 1, and
 * fixed while the host runs.  -1 for a name this host does not know (a
 * plugin built for a newer host). */
long oh_limit(const oh_ctx *ctx, const char *name);
/* Counts one refusal in oh_limit_refusals_total{limit=name} (name borrowed);
 * names that are not limits are ignored. */
void oh_limit_refused(oh_ctx *ctx, const char *name);
/* Hands free heap memory back to the system now (malloc_trim(0) with glibc,
 * nothing elsewhere), after shrinking what the host itself grew for the
 * same traffic (its table of commands in flight, the store's page cache).
 * It walks the heap, up to milliseconds when it is large: call it once,
 * from a timer, after a table shrank by thousands of entries, never per
 * free. */
void oh_memory_trim(oh_ctx *ctx);

/* ---- string maps ---------------------------------------------------------- */

/*
 * A hash map from strings to pointers, for tables keyed by what clients
 * send (device ids, request ids): the hash is keyed with a per-process
 * random secret, so a client cannot choose keys that all collide, and
 * iteration order differs from run to run.  Keys are copied; values are
 * the caller's (borrowed).  Not tied to a context: free it in cleanup.
 */
struct oh_map;
/* Returned (oh_map_free); NULL when out of memory. */
struct oh_map *oh_map_new(void);
/* Frees the map; free_value (may be NULL) runs for each value.  NULL: nothing. */
void oh_map_free(struct oh_map *map, void (*free_value)(void *value));
/* Sets key to value.  *old (old may be NULL) gets the value it replaced, or
 * NULL.  OH_ERR_NOMEM leaves the map unchanged. */
int oh_map_put(struct oh_map *map, const char *key, void *value, void **old);
/* The value, or NULL. */
void *oh_map_get(const struct oh_map *map, const char *key);
/* Removes key; returns its value, or NULL when absent. */
void *oh_map_remove(struct oh_map *map, const char *key);
size_t oh_map_size(const struct oh_map *map);
/* Gives back the bucket memory a burst left (the map only grows on its
 * own); not from inside oh_map_foreach.  Failure leaves it as it was. */
void oh_map_compact(struct oh_map *map);
/* Calls fn for each entry (key borrowed for the call) until it returns
 * non-zero, which is returned.  fn may remove the entry it was given, and
 * nothing else: no puts, no other removals. */
int oh_map_foreach(struct oh_map *map, int (*fn)(const char *key, void *value, void *ud), void *ud);

/* ---- command lines from settings -------------------------------------------- */

/*
 * Turns a command template from the settings ("viewer --source '{source}'")
 * into an argv for oh_spawn, without a shell: the template is split into
 * words with sh-like quoting ('...', "..." with \ \" \$ \` escapes, a
 * backslash outside quotes; no expansion of $VAR, globs or ~), and only then
 * is each `{name}` of vars (nvars may be 0, vars then NULL) replaced inside
 * the words, in one pass.  A substituted value never creates, removes or
 * joins words: the source name `x; rm -rf /` stays one argument.
 * On OH_OK *argv is NULL-terminated (returned: oh_cmdline_free) with *argc
 * words.  OH_ERR_INVAL with err saying why: an unterminated quote, a
 * trailing backslash, no words, or out of memory.
 */
struct oh_cmdline_var {
	const char *name;  /* borrowed; without braces: "source" */
	const char *value; /* borrowed; copied into the words */
};
int oh_cmdline_split(const char *tmpl /* borrowed */, const struct oh_cmdline_var *vars /* borrowed */,
		size_t nvars, char ***argv /* *argv returned */, int *argc, char *err, size_t errlen);
/* Frees what oh_cmdline_split returned (taken); NULL: nothing. */
void oh_cmdline_free(char **argv);

/* ---- UI ----------------------------------------------------------------- */

/* Declares the module's page at /ui/{module}: `html` (copied) is the page's
 * main content, placed inside the shared shell (header, navigation, styles).
 * `script` (copied, may be NULL) is served as /ui/{module}/page.js and
 * loaded by the shell. */
int oh_ui_page(oh_ctx *ctx, const char *title, const char *html, const char *script);

/* ---- the topic layout ----------------------------------------------------
 * Added in minor 1 (OH_PLUGIN_ABI_MINOR), with the one topic grammar of
 * src/common/topics.h; a block of its own so the ABI's owners can place it.
 * The host parses topics for plugins with the same code it uses itself:
 *   {root}/device/{id}/meta|status, {root}/device/{id}/{module}/{leaf},
 *   {root}/orchestrator/{module}[/{leaf}]
 */

enum oh_topic_place {
	OH_TOPIC_OTHER = 0,       /* not under the root, or another first level */
	OH_TOPIC_DEVICE = 1,      /* {root}/device/... */
	OH_TOPIC_ORCHESTRATOR = 2 /* {root}/orchestrator/... */
};

struct oh_topic {
	enum oh_topic_place place;
	char device_id[OH_DEVICE_ID_MAX + 1]; /* a device topic's {id}; "" elsewhere */
	/* Borrowed from the topic parsed, NOT NUL-terminated (module_len says
	 * how long); NULL for device/{id}/meta|status and outside the layout. */
	const char *module;
	size_t module_len;
	/* Borrowed: the topic's tail after the module ("evt", "from-x/y"), or
	 * meta|status after a device id; NULL when nothing follows. */
	const char *leaf;
	void *reserved[4];
};

/* Parses topic (borrowed) under the host's topic root into *out.  OH_OK for
 * a topic that follows the layout or lies outside it (place
 * OH_TOPIC_OTHER); OH_ERR_INVAL for one under device/ or orchestrator/ with
 * an empty level, a + or #, a device id that breaks oh_device_id_valid() or
 * more than 65535 bytes (place still says where, device_id is then ""). */
int oh_topic_parse(const oh_ctx *ctx, const char *topic, struct oh_topic *out);

#ifdef __cplusplus
}
#endif
#endif
