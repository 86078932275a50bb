/*
 * The daemon's internal wiring: the one `struct host` that every core module
 * hangs off, and the interfaces the core files share with each other.
 * Plugins never see this file; they get include/oh/host.h.
 */
#ifndef OH_CORE_H
#define OH_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "oh/host.h"

struct event_base;
struct event;
struct mqtt_link;
struct dispatch;
struct registry;
struct http_server;
struct store;
struct leases;
struct scheduler;
struct broker_probe;
struct snapshot;
struct shared_buf;
struct audit;
struct ha;

struct counters {
	uint64_t bad_payloads;
	uint64_t snapshots_published, snapshot_bytes;
	/* http_cache.c: the longest compression slice (a gauge; what it
	 * counts goes straight to metrics.c, metrics_count). */
	double gzip_slice_max_s;
	/* registry.c: meta and status messages merged, and the loop time they
	 * took (oh_registry_merge_seconds_total: the cost per update). */
	uint64_t registry_merges;
	double registry_merge_seconds;
	/* events.c: the most any event stream has been behind (unsent bytes
	 * plus registry deltas held back) since start. */
	uint64_t sse_behind_peak;
};

struct host {
	struct config cfg;
	struct event_base *base;
	struct mqtt_link *link;
	struct dispatch *dispatch;
	struct registry *registry;
	struct snapshot *snapshot; /* owned (snapshot_free) */
	struct http_server *http;
	struct store *store;
	struct leases *leases;
	struct scheduler *scheduler;
	struct audit *audit;        /* owned (audit_free); NULL: audit.enabled is false */
	struct broker_probe *probe; /* owned (broker_probe_free) */
	struct ha *ha;              /* owned (ha_free) */
	char *node;                 /* owned: our name on the bus, in the birth message */
	oh_ctx **plugins;           /* one context per configured plugin */
	size_t n_plugins;
	double started_mono;
	bool shutting_down;
	struct counters stats;
	/* Moves with every change to what the snapshot shows (a device, a
	 * lease, the loaded modules): oh_registry_generation, and each
	 * device's oh_device.changes.  snapshot_mark_dirty moves it. */
	uint64_t generation;
	/* publish.c: told of every {root}/orchestrator/{module}/evt the host
	 * publishes (events.c sets it; NULL: nobody listens). */
	void (*evt_tap)(struct host *h, const char *topic, const void *payload, size_t len);
	/* publish.c: the publishes held behind the store's uncommitted writes,
	 * oldest first (owned; struct held is publish.c's). */
	struct held *held_head, *held_tail;
	/* publish.c: a command to a device leaves at once (mqtt_link_flush)
	 * unless the scheduler is sending a batch, which it writes whole. */
	bool batching;
};

/* ---- dispatch.c: inbound: broker subscriptions and topic routing ---------- */

struct dispatch *dispatch_new(struct host *h);
void dispatch_free(struct dispatch *d);
/* owner is the plugin context or NULL for the core. */
int dispatch_subscribe(
		struct dispatch *d, oh_ctx *owner, const char *filter, int qos, oh_message_fn fn, void *ud);
void dispatch_remove_owner(struct dispatch *d, oh_ctx *owner);
/* Removes one (filter, fn, ud) subscription of owner (NULL: the core). */
void dispatch_unsubscribe(struct dispatch *d, oh_ctx *owner, const char *filter, oh_message_fn fn, void *ud);
/* Link callbacks. */
void dispatch_on_connect(struct dispatch *d);
void dispatch_on_message(struct dispatch *d, const char *topic, const void *payload, size_t len, bool retained);
/* Whether msg (borrowed) may reach the plugins' handlers; kind is
 * metrics_topic_kind() of its topic.  One gate at most
 * (command_policy_install); NULL lets everything through. */
typedef bool (*dispatch_gate_fn)(struct host *h, const struct oh_message *msg, const char *kind);
void dispatch_set_gate(struct dispatch *d, dispatch_gate_fn gate);
/* The message being delivered to the gate and the handlers (borrowed), or
 * NULL; *seq (seq may be NULL) numbers the delivery, never twice.  Lets
 * oh_command_parse() (command.c) parse a command once for all of them. */
const struct oh_message *dispatch_delivering(unsigned long long *seq);

/* ---- publish.c: outbound ---------------------------------------------------- */

/* Publishes through the link, counting it. */
int host_publish(struct host *h, const char *topic, const void *payload, size_t len, int qos, bool retain);
/* The same, with the message id the link reports when the broker has it. */
int host_publish_mid(struct host *h, const char *topic, const void *payload, size_t len, int qos, bool retain,
		int *mid);
/* The one listener told of the host's own {root}/orchestrator/{module}/evt
 * publishes (NULL: none). */
typedef void (*host_evt_tap_fn)(struct host *h, const char *topic, const void *payload, size_t len);
void host_publish_tap(struct host *h, host_evt_tap_fn fn);

/* ---- registry.c: the live device registry --------------------------------- */

struct registry *registry_new(struct host *h);
void registry_free(struct registry *r);
int registry_start(struct registry *r); /* subscribes */
/* One device's document as JSON text (returned, free()), or NULL. */
char *registry_device_json(struct registry *r, const char *id);
int registry_device(struct registry *r, const char *id, struct oh_device *out);
void registry_foreach(struct registry *r, int (*fn)(const struct oh_device *, void *), void *ud);
/* The same with dev->doc NULL: no document is thawed (oh_device_walk). */
void registry_walk(struct registry *r, int (*fn)(const struct oh_device *, void *), void *ud);
size_t registry_size(const struct registry *r);
uint64_t registry_generation(const struct registry *r); /* host.generation */
/* Tells the change handler (registry_on_change) that the devices changed. */
void registry_mark_dirty(struct registry *r);
/*
 * Forgets device id: clears its retained meta, status and {module}/status
 * topics on the broker (empty retained messages, QoS 1), tells the
 * registry_on_forget handler (the plugins' device_forgotten: leases,
 * state), records it (the audit call
 * site) and drops it from the registry and the store.  actor and why
 * (borrowed) say who and why.  *cleared_out (returned, json_decref; may be
 * NULL) lists the topics cleared.  OH_ERR_NOT_FOUND for an unknown id,
 * OH_ERR_NO_CONN without the broker (nothing is forgotten), OH_ERR_NOMEM.
 */
int registry_forget(
		struct registry *r, const char *id, const char *actor, const char *why, json_t **cleared_out);
/* The one handler told of each device registry_forget() forgets, before
 * it leaves the registry (main.c: plugins_device_forgotten; NULL: none). */
void registry_on_forget(struct registry *r, void (*fn)(struct host *h, const char *id));
/* Stores every changed device document at once (shutdown). */
void registry_flush(struct registry *r);
/* The broker connection is new: the settling clock starts (first time),
 * repair fetches open again; snapshot_on_connect does the snapshot's part. */
void registry_on_connect(struct registry *r);
/* Any message on the broker: a device heard on a module topic that is not
 * in the registry gets its meta fetched (registry_repair.c). */
void registry_heard_topic(struct registry *r, const char *topic);
/* For the snapshot (snapshot.c): each device's "\"id\":{...}" fragment in
 * turn (borrowed, valid during the call), built where missing;
 * OH_ERR_NOMEM when one cannot be.  Whether the registry is still settling
 * at start-up (no snapshot goes to the broker then).  The one handler told
 * of every change to a device (fn NULL: none). */
int registry_fragments(struct registry *r, void (*fn)(const char *frag, size_t len, void *ud), void *ud);
bool registry_settling(const struct registry *r);
/* ?since=SEQ: the snapshot (snapshot.c) tells the seq its next build will
 * carry, so that each change is stamped with the first seq showing it.
 * registry_delta hands fn the fragment of each device changed after
 * snapshot `since` and removed_fn the id of each one removed since (both
 * borrowed, valid during the call); OH_ERR_NOT_FOUND when removals that
 * old are forgotten or older than the run's first seq (registry_start_seq;
 * the caller sends the whole), OH_ERR_NOMEM. */
void registry_start_seq(struct registry *r, uint64_t first);
void registry_set_next_seq(struct registry *r, uint64_t seq);
int registry_delta(struct registry *r, uint64_t since, void (*fn)(const char *frag, size_t len, void *ud),
		void (*removed_fn)(const char *id, void *ud), void *ud);
void registry_on_change(struct registry *r, void (*fn)(void *ud), void *ud);

/* ---- leases.c ------------------------------------------------------------- */

struct leases *leases_new(struct host *h);
void leases_free(struct leases *l);
int leases_load(struct leases *l); /* from the store, at startup */
/* {"ndi:rpi-01": {"holder": ..., "expires_at": ...}} as compact JSON
 * text; returned (free()), NULL out of memory. */
char *leases_to_text(struct leases *l);
size_t leases_count(const struct leases *l);
int leases_take(struct leases *l, const char *key, const char *actor, double lease_s, struct oh_lease *out);
int leases_renew(struct leases *l, const char *key, const char *actor, double lease_s, struct oh_lease *out);
int leases_release(struct leases *l, const char *key, const char *actor, struct oh_lease *out);
int leases_force_release(struct leases *l, const char *key, struct oh_lease *out);
int leases_can_use(struct leases *l, const char *key, const char *actor, struct oh_lease *out);
int leases_get(struct leases *l, const char *key, struct oh_lease *out);
/* Expiry is reported to the plugin owning the key's module prefix. */
void leases_set_expired_handler(
		struct leases *l, void (*fn)(struct host *h, const char *key, const char *holder));
/* The one handler told of every lease taken, moved or dropped (snapshot.c;
 * fn NULL: none). */
void leases_on_change(struct leases *l, void (*fn)(void *ud), void *ud);

/* ---- ha.c: leadership among hosts sharing a PostgreSQL store ------------- */

/* Single (SQLite) hosts act at once; on PostgreSQL the host starts as a
 * standby and asks for the lead.  on_lead(h) is told when this host has
 * taken the lead and may load the state (leases, jobs) from the store. */
typedef void (*ha_deliver_fn)(
		struct host *h, const char *topic, const void *payload, size_t len, bool retained);
/* deliver: where the leader's command session hands each command;
 * on_view(h): a standby's view of the leases (ha_view_leases) changed. */
int ha_start(struct host *h, void (*on_lead)(struct host *h), ha_deliver_fn deliver,
		void (*on_view)(struct host *h));
void ha_free(struct host *h);
/* Whether this host relays commands, fires jobs, expires leases and
 * publishes the snapshot: a single host, or the leader once loaded. */
bool ha_acting(const struct host *h);
/* Part of a pair (PostgreSQL store), leading or not. */
bool ha_paired(const struct host *h);
/* A standby's view of the shared state, read every ha.lease_s: the leases
 * as leases_to_text shows them, a module's jobs as the scheduler lists them
 * (owner NULL: all; id NULL: all, else only that one).  New references. */
json_t *ha_view_leases(const struct host *h);
json_t *ha_view_jobs(const struct host *h, const char *module, const char *owner, const char *id);
/* Topics the main connection leaves to the leader's command session
 * ({root}/orchestrator/{module}/cmd on a pair). */
bool ha_ignores_topic(const struct host *h, const char *topic);
/* {"node_id", "advertise_url"} of the leader (this host when single), or
 * null while unknown; returned. */
json_t *ha_leader_json(const struct host *h);
/* Adds role, node_id, leader and store to a /healthz body (borrowed). */
void ha_health(const struct host *h, json_t *body);

/* ---- plugins.c ------------------------------------------------------------ */

int plugins_load_all(struct host *h);
void plugins_unload_all(struct host *h);
/* [{"module": "ndi", "loaded": true, "error": null}, ...]; returned. */
json_t *plugins_status_json(struct host *h);
/* Unloads a loaded plugin (cleanup, teardown, dlclose); OH_ERR_NOT_FOUND for
 * an unknown module, OH_ERR_NOT_HELD when it is not loaded.  actor
 * (borrowed, may be NULL) names who asked, for the audit.  Never call it
 * from inside one of that plugin's callbacks. */
int plugins_unload(struct host *h, const char *module, const char *actor);
/* Tells every loaded plugin with a device_forgotten hook that id (borrowed)
 * is being forgotten (registry_forget). */
void plugins_device_forgotten(struct host *h, const char *id);
/* main.c: the host's presence, {root}/orchestrator/status, and its payload
 * {"online": true, "node", "ts": now} or {"online": false, "node", "ts":
 * null} (the offline one is also the last will, fixed before connecting, so
 * it carries no time); returned (free()), or NULL. */
char *host_presence_topic(const struct host *h);
char *host_presence_payload(const struct host *h, bool online);
/* One lease as the registry's locks show it: {holder, expires_at (ISO)}
 * (leases.c, and a standby's view in ha.c). */
json_t *host_lease_json(const char *holder, double expires_at);
/* A pair's new leader: each plugin's took_lead (plugin.h). */
void plugins_took_lead(struct host *h);

/* ---- api_core.c: the host's own REST routes -------------------------------- */

int api_core_register(struct host *h);
/* api_plugins.c: GET /api/plugins, DELETE /api/plugins/{module} */
int api_plugins_register(struct host *h);
int api_ui_register(struct host *h);      /* api_ui.c: the web UI and /api/events */
int api_metrics_register(struct host *h); /* api_metrics.c: GET /metrics */

/* ---- events.c: server-sent events at GET /api/events ---------------------- */

void events_broker_state(struct host *h, bool up); /* from the link callbacks */
void events_free(struct host *h);                  /* after http_server_free */

/* ---- plugin_ctx.c: the table of plugin contexts ---------------------------- */

/* ["ndi", ...] of loaded plugins; returned. */
json_t *plugins_modules_json(struct host *h);
oh_ctx *plugins_find(struct host *h, const char *module);

/* ---- host_util.c ------------------------------------------------------------ */

/* A new random id of 32 hex characters in buf (>= 33 bytes). */
char *host_new_id(char *buf, size_t len);
/* "2026-11-28T10:00:00Z" for now. */
char *host_now_iso(char *buf, size_t len);

#endif
