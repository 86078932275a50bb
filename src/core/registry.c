/*
 * The live device registry.
 *
 * Devices announce themselves with retained meta and status messages; each
 * JSON object is merged key by key into the device's document (later wins),
 * except that a field the protocol gives a type (known_fields[]) must have
 * it.  The registry is republished as one retained snapshot and served over
 * HTTP; snapshot.c builds and publishes it, told of every change through
 * registry_on_change().
 *
 * The snapshot is what makes or breaks throughput: a naive host serialises
 * every device on every update.  Here each device caches its own serialised
 * fragment (registry_fragments), a change only drops that one fragment,
 * and snapshots are coalesced to at most one per snapshot_interval_ms, so
 * the cost of publishing does not grow with the update rate.  The same
 * bytes go to the broker and to every HTTP client.
 *
 * Memory: the fragment is the device's document too (device_doc.h).  A
 * jansson tree costs about 1.4 KB per device, so only the WARM_MAX devices
 * most recently read keep theirs (registry.warm), and on_trim, on a later
 * turn of the loop, freezes what changed and drops the least recently used
 * trees.  A tree handed out (registry_device, registry_foreach) therefore
 * stays valid until the loop runs again, as include/oh/host.h promises.
 * A message to a device without a tree (a new one too) merges straight
 * into its fragment (device_doc_plan): thawing one per message made an
 * update cost 1.7 times more past WARM_MAX devices than below, and a tree
 * per new device made a populate build and trim 1.4 KB for each.
 *
 * Surviving any broker (docs/deploy.md, "Brokers"):
 * - The state subscriptions are QoS 0.  Retained state is idempotent and
 *   refreshed by heartbeats, and mosquitto's per-client queue limit
 *   (max_queued_messages, 1000 by default) applies to QoS 1 and 2 only: at
 *   QoS 1 a start with 10,000 devices received 1020 messages, at QoS 0 all.
 * - What the wildcard did not bring, registry_repair.c fetches one exact
 *   topic at a time: the meta of a device known only from its status, from
 *   a module topic, or from the store.
 * - The last merged document of each device is kept in the store, so a
 *   restarted host starts warm: with the stored last_seen (exact after a
 *   clean stop, up to PERSIST_HEARTBEAT_S old after a crash) and "online":
 *   null until the device is heard from.  The retained copies the broker
 *   replays on subscribing are not contact (replayed()): they merge into
 *   the document but move neither last_seen nor online.
 * - Forgetting a device (registry_forget: DELETE /api/devices/{id},
 *   forget_after_days) clears its retained topics, so that neither the
 *   store nor the broker brings it back.
 * - Until the registry is as complete as it was (the store's count, or the
 *   retained snapshot's) or SETTLE_MAX_S passed, it is settling
 *   (registry_settling) and snapshot.c publishes nothing to the broker: a
 *   half-empty snapshot would replace a full one.
 *
 * Any client may publish under {root}/device/, so a message that would add
 * a device past limits.max_devices, or grow a device's document past
 * limits.max_device_bytes, is dropped whole (counted, logged within the
 * complaint budget); the devices and documents already held stay as they
 * are.  A document's size is kept per device and updated by the size of
 * what each message replaces, so the check costs what the message does.
 */
#include "core.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "device_doc.h"
#include "http.h"
#include "ident.h"
#include "oh/list.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_link.h"
#include "registry_repair.h"
#include "store.h"
#include "strmap.h"
#include "topics.h"
#include "timeutil.h"

#define BAD_LOG_INTERVAL_S 60.0
/* At start-up, the snapshot waits at least this long for the retained burst
 * and the broker's copy of the previous snapshot, and at most SETTLE_MAX_S
 * for the devices the previous run knew. */
#define SETTLE_MIN_S 1.0
#define SETTLE_MAX_S 10.0
/* Devices written to the store per turn of the loop, in one relaxed
 * transaction, and how often. */
#define PERSIST_BATCH 2000
#define PERSIST_INTERVAL_MS 1000
#define PERSIST_HEARTBEAT_S 60.0
/* forget_after_days: devices forgotten per loop turn, and the bounds of
 * the scan's period (a tenth of forget_after_days). */
#define FORGET_BATCH 100
#define FORGET_SCAN_MIN_S 1.0
#define FORGET_SCAN_MAX_S 3600.0
/* Module status topics remembered per device for registry_forget(). */
#define MODULES_HEARD_MAX 32
/* Removals remembered for GET /api/registry?since=SEQ; a SEQ older than the
 * oldest one forgotten gets the whole snapshot. */
#define REMOVED_KEPT 4096
/* Devices that keep their tree between changes (about 1.4 KB each): the
 * most recently merged or read. */
#define WARM_MAX 2048

struct device {
	/* Merged meta + status: the tree while the device is warm (in
	 * registry.warm), else NULL and frag holds it; one of the two always
	 * does (see "Memory" at the top). */
	json_t *doc;
	struct oh_list_node warm;
	int online; /* 1, 0, -1 unknown */
	bool stale;
	double last_seen_wall;
	double last_seen_mono;
	double last_complaint; /* when bad input from it was last logged */
	/* Its document serialised compactly, without the host's last_seen,
	 * stale and online (limits.max_device_bytes); 0: not measured yet. */
	size_t doc_bytes;
	char *frag; /* "\"id\":{...}" or NULL when it must be rebuilt */
	size_t frag_len;
	uint64_t changes;           /* the generation of its last change (oh_device.changes) */
	uint64_t seq;               /* the first snapshot seq that shows its last change */
	struct oh_list_node by_seq; /* in registry.by_seq */
	bool doc_current;           /* last_seen, stale, online in doc are up to date */
	/* Devices in order of last message, oldest first: the stale scan only
	 * looks at the head of this list. */
	struct oh_list_node fresh;
	bool has_meta;         /* its document holds a meta (this run or stored) */
	bool meta_heard;       /* a meta message arrived in this run */
	bool heard;            /* any message arrived in this run */
	bool contacted;        /* a message that was not a retained copy did */
	double persisted_mono; /* when its document was last stored */
	/* Devices whose document changed since it was last stored. */
	struct oh_list_node persist;
	/* Modules heard on {root}/device/{id}/{module}/status in this run
	 * (strings, at most MODULES_HEARD_MAX): with the document's "modules",
	 * the retained topics registry_forget() clears. */
	json_t *modules_heard;
	/* The connection (registry.epoch) in which the broker last replayed
	 * this device's retained meta and status (see replayed()). */
	unsigned meta_epoch, status_epoch;
	char id[]; /* 1 to OH_DEVICE_ID_MAX characters */
};

struct registry {
	struct host *host;
	struct strmap *devices;
	struct oh_list fresh; /* of struct device, by last message, oldest first */

	/* {root}/orchestrator/registry: read once at start-up, for the size
	 * of the previous run's snapshot (see on_previous_snapshot). */
	char *snapshot_topic;

	struct event *ev_stale;
	struct event *ev_forget; /* forget_after_days (on_forget_scan) */

	struct registry_repair *repair;
	struct oh_list persist; /* of struct device: documents changed since last stored */
	struct event *ev_persist;

	/* Devices holding their tree, least recently used first, and how
	 * many: trimmed to WARM_MAX on a later turn of the loop (on_trim). */
	struct oh_list warm;
	size_t n_warm;
	struct event *ev_trim;

	/* Start-up: the broker gets no snapshot while settling (see the top). */
	bool settling;
	bool connected_once;
	double settle_from; /* monotonic time of the first connect */
	bool refreshed;     /* silent devices' meta asked for (once) */
	size_t expected;    /* devices the last run or the broker knew */
	size_t n_heard;     /* devices heard from in this run */
	struct event *ev_settle;

	/* When bad input from an id not in the registry was last logged. */
	double bad_log_global;

	/* Counts broker connections: a device's first retained message of a
	 * kind in a connection is the broker's stored copy (replayed()). */
	unsigned epoch;

	/* Told of every device forgotten, before it goes (the plugins, wired
	 * by main.c: the registry does not call up into plugins.c). */
	void (*on_forget)(struct host *h, const char *id);

	/* ?since=SEQ (registry_delta): the seq of the next snapshot, and the
	 * devices removed lately, a ring of REMOVED_KEPT oldest first. */
	uint64_t next_seq;
	struct {
		char *id; /* owned */
		uint64_t seq;
	} * removed;
	size_t removed_head, n_removed;
	uint64_t removed_floor; /* the newest seq of a removal forgotten */
	/* Every device, by seq, oldest first: a delta walks back from the
	 * newest and stops at the first older than it asks, O(changed). */
	struct oh_list by_seq;

	/* Told of every change to a device (snapshot.c). */
	void (*on_change)(void *ud);
	void *on_change_ud;
};

static void device_free(void *p)
{
	struct device *d = p;
	json_decref(d->doc); /* may be NULL */
	json_decref(d->modules_heard);
	free(d->frag);
	free(d);
}

static void fresh_unlink(struct registry *r, struct device *d)
{
	if(oh_list_linked(&r->fresh, &d->fresh))
		oh_list_remove(&r->fresh, &d->fresh);
}

static void fresh_append(struct registry *r, struct device *d)
{
	oh_list_push_back(&r->fresh, &d->fresh);
}

static bool build_fragment(struct device *d);

static void persist_unlink(struct registry *r, struct device *d)
{
	if(oh_list_linked(&r->persist, &d->persist))
		oh_list_remove(&r->persist, &d->persist);
}

static void persist_mark(struct registry *r, struct device *d)
{
	if(oh_list_linked(&r->persist, &d->persist))
		return;
	oh_list_push_front(&r->persist, &d->persist);
	if(!evtimer_pending(r->ev_persist, NULL)) {
		struct timeval tv = {PERSIST_INTERVAL_MS / 1000, (PERSIST_INTERVAL_MS % 1000) * 1000};
		evtimer_add(r->ev_persist, &tv);
	}
}

/* Writes up to `max` changed devices, in one transaction without fsync: the
 * store is a cache the devices refresh, so a power cut may lose the last
 * second of it, never a crash (WAL). */
static void persist_some(struct registry *r, size_t max)
{
	struct store *st = r->host->store;
	if(oh_list_empty(&r->persist) || !st)
		return;
	store_begin_relaxed(st);
	for(size_t n = 0; !oh_list_empty(&r->persist) && n < max; n++) {
		struct device *d = oh_list_entry(r->persist.first, struct device, persist);
		persist_unlink(r, d);
		d->persisted_mono = time_now_mono();
		/* The fragment's object is the document (the host's fields in it
		 * are derived again by load_device). */
		if(d->frag || build_fragment(d)) {
			size_t kl = device_doc_key_len(d->frag);
			store_device_put(st, d->id, d->frag + kl, d->frag_len - kl, d->last_seen_wall);
		}
	}
	store_commit(st);
}

static void on_persist_timer(evutil_socket_t fd, short what, void *arg)
{
	struct registry *r = arg;
	persist_some(r, PERSIST_BATCH);
	if(!oh_list_empty(&r->persist)) {
		struct timeval tv = {0, 0};
		evtimer_add(r->ev_persist, &tv); /* the rest on the next turn */
	}
}

/* ---- trees and fragments (see "Memory" at the top) ---------------------------- */

/* One more warm device (n 1) or one less (n -1); past WARM_MAX, on_trim
 * runs on the next turn of the loop. */
static void warm_count(struct registry *r, int n)
{
	r->n_warm += (size_t)n;
	if(r->n_warm > WARM_MAX && !evtimer_pending(r->ev_trim, NULL)) {
		struct timeval now = {0, 0};
		evtimer_add(r->ev_trim, &now);
	}
}

static void warm_drop(struct registry *r, struct device *d)
{
	if(!d->doc)
		return;
	oh_list_remove(&r->warm, &d->warm);
	warm_count(r, -1);
	json_decref(d->doc);
	d->doc = NULL;
}

/* d's tree, thawed from its fragment when cold, now the most recently used;
 * NULL out of memory.  Valid until the loop runs again (on_trim). */
static json_t *device_tree(struct registry *r, struct device *d)
{
	if(d->doc) {
		oh_list_remove(&r->warm, &d->warm);
	} else {
		if(!(d->doc = device_doc_thaw(d->frag, d->frag_len))) {
			log_error("registry", "out of memory reading the document of %s", d->id);
			return NULL;
		}
		/* The fragment was built after the last change: the host's
		 * fields in it are current. */
		d->doc_current = true;
		warm_count(r, 1);
	}
	oh_list_push_back(&r->warm, &d->warm);
	return d->doc;
}

/* Down to WARM_MAX trees, least recently used first, freezing those that
 * changed since their fragment was built (the snapshot would have to
 * anyway).  Out of memory, the rest wait for the next trim. */
static void on_trim(evutil_socket_t fd, short what, void *arg)
{
	struct registry *r = arg;
	while(r->n_warm > WARM_MAX) {
		struct device *d = oh_list_entry(r->warm.first, struct device, warm);
		if(!d->frag && !build_fragment(d))
			return;
		warm_drop(r, d);
	}
}

/* d shows its change first in the next snapshot: the newest in by_seq. */
static void stamp_seq(struct registry *r, struct device *d)
{
	d->seq = r->next_seq;
	if(oh_list_linked(&r->by_seq, &d->by_seq))
		oh_list_remove(&r->by_seq, &d->by_seq);
	oh_list_push_back(&r->by_seq, &d->by_seq);
}

/* The host's last_seen of d as its document shows it (borrowed, until
 * the next call), NULL for null.  A burst is heard within one second:
 * written once for it. */
static const char *last_seen_text(const struct device *d)
{
	static time_t last_t = -1;
	static char last[TIME_UTC_BUFLEN];
	if(d->last_seen_wall <= 0)
		return NULL;
	time_t t = (time_t)d->last_seen_wall;
	if(t != last_t) {
		time_format_utc(t, last, sizeof last); /* "" past year 9999 */
		last_t = t;
	}
	return last;
}

/* A device without a tree: its new fragment, from plan (a message merged
 * into it; NULL: the host's fields only).  False out of memory. */
static bool rewrite_fragment(struct device *d, struct device_doc_plan *plan)
{
	static struct device_doc_plan host_only;
	size_t before, after, len;
	bool changed;
	char why[8];
	if(!plan &&
			!device_doc_plan(&host_only, d->frag, d->frag_len, NULL, &before, &after, &changed,
					why, sizeof why))
		return false;
	char *frag = device_doc_write(plan ? plan : &host_only, last_seen_text(d), d->stale, d->online, &len);
	if(!frag)
		return false;
	free(d->frag);
	d->frag = frag;
	d->frag_len = len;
	return true;
}

/* d's document changed, by plan (device_doc_plan on its fragment, for a
 * device without a tree) or in its tree, or only in the host's fields. */
static void device_changed(struct registry *r, struct device *d, struct device_doc_plan *plan)
{
	if(!d->doc && (plan || rewrite_fragment(d, NULL))) {
		if(plan && !rewrite_fragment(d, plan)) {
			log_error("registry", "out of memory merging into the document of %s", d->id);
			return;
		}
	} else {
		/* The fragment goes: the tree must hold the document from now on. */
		if(!device_tree(r, d))
			return;
		free(d->frag);
		d->frag = NULL;
		d->doc_current = false;
	}
	registry_mark_dirty(r);
	d->changes = r->host->generation;
	stamp_seq(r, d);
}

void registry_mark_dirty(struct registry *r)
{
	if(r->on_change)
		r->on_change(r->on_change_ud); /* moves host.generation */
}

/* ---- input ------------------------------------------------------------------ */

/* Whether a complaint about id may be logged now, spending its budget. */
static bool log_budget(struct registry *r, const char *id)
{
	/* A known device has its own minute; every other id shares one, so
	 * made-up ids can neither flood the log nor grow a table. */
	struct device *d = id ? strmap_get(r->devices, id) : NULL;
	double *last = d ? &d->last_complaint : &r->bad_log_global;
	double now = time_now_mono();
	if(*last > 0 && now - *last < BAD_LOG_INTERVAL_S)
		return false;
	*last = now;
	return true;
}

static void complain(struct registry *r, const char *id, const char *topic, const char *what, const char *why)
{
	r->host->stats.bad_payloads++;
	if(log_budget(r, id))
		log_warn("registry", "ignored %s on %s: %s", what, topic, why);
}

/* A message dropped at limits.{limit}: counted, and logged within the
 * complaint budget (not as a bad payload: it was well formed). */
static void refuse(struct registry *r, const char *id, const char *topic, const char *limit, const char *why)
{
	metrics_limit_refusal(limit);
	if(log_budget(r, id))
		log_warn("registry", "dropped the message on %s: limits.%s (%ld) reached: %s", topic, limit,
				config_limit(&r->host->cfg, limit), why);
}

/* A new device {"device_id": id}: as a tree (warm) or as a fragment. */
static struct device *device_add(struct registry *r, const char *id, bool with_tree)
{
	size_t len = strlen(id);
	struct device *d = calloc(1, sizeof *d + len + 1);
	if(!d)
		return NULL;
	memcpy(d->id, id, len + 1);
	d->online = -1;
	d->changes = ++r->host->generation; /* never 0, never another device's */
	/* Set once: a payload naming another id is refused before merging. */
	int err = 0;
	if(with_tree) {
		d->doc = json_object();
		err = !d->doc || json_object_set_new(d->doc, "device_id", json_string(id));
	} else {
		/* Device ids are [A-Za-z0-9._-]: nothing to escape. */
		d->frag_len = 2 * len + 19;
		if((d->frag = malloc(d->frag_len + 1)))
			snprintf(d->frag, d->frag_len + 1, "\"%s\":{\"device_id\":\"%s\"}", id, id);
		err = !d->frag;
	}
	if(err || (strmap_put(r->devices, id, d, &err), err)) {
		device_free(d);
		return NULL;
	}
	if(with_tree) {
		oh_list_push_back(&r->warm, &d->warm);
		warm_count(r, 1);
	}
	stamp_seq(r, d);
	return d;
}

static struct device *device_get_or_add(struct registry *r, const char *id)
{
	struct device *d = strmap_get(r->devices, id);
	return d ? d : device_add(r, id, true);
}

/* For ?since: id was removed in the next snapshot.  Out of memory, the
 * removal cannot be told as a delta, so every older SEQ gets the whole. */
static void remember_removal(struct registry *r, const char *id)
{
	if(!r->removed && !(r->removed = calloc(REMOVED_KEPT, sizeof *r->removed))) {
		r->removed_floor = r->next_seq;
		return;
	}
	size_t slot = (r->removed_head + r->n_removed) % REMOVED_KEPT;
	if(r->n_removed == REMOVED_KEPT) { /* full: forget the oldest */
		r->removed_floor = r->removed[slot].seq;
		free(r->removed[slot].id);
		r->removed_head = (r->removed_head + 1) % REMOVED_KEPT;
		r->n_removed--;
	}
	r->removed[slot].id = strdup(id);
	r->removed[slot].seq = r->next_seq;
	if(!r->removed[slot].id)
		r->removed_floor = r->next_seq;
	else
		r->n_removed++;
}

/* Drops id from the registry and the store; why says what did, for the log. */
static void remove_device(struct registry *r, const char *id, const char *why)
{
	struct device *d = strmap_remove(r->devices, id);
	if(!d)
		return;
	fresh_unlink(r, d);
	persist_unlink(r, d);
	warm_drop(r, d);
	oh_list_remove(&r->by_seq, &d->by_seq);
	if(d->heard)
		r->n_heard--;
	remember_removal(r, d->id);
	device_free(d);
	registry_repair_forget(r->repair, id);
	if(r->host->store)
		store_device_delete(r->host->store, id);
	registry_mark_dirty(r);
	log_info("registry", "device %s removed (%s)", id, why);
}

/* ---- forgetting a device (registry_forget) ---------------------------------- */

/* Publishes an empty retained message at QoS 1 on {root}/device/{id}
 * [/{module}]/{leaf}, so the broker drops its stored copy, and adds the
 * topic to cleared unless it is there already. */
static int clear_retained(
		struct registry *r, const char *id, const char *module, const char *leaf, json_t *cleared)
{
	char *topic = topic_build(r->host->cfg.topic_root, id, module, leaf);
	if(!topic)
		return OH_ERR_NOMEM;
	size_t i;
	json_t *v;
	json_array_foreach(cleared, i, v)
	{
		if(!strcmp(json_string_value(v), topic)) {
			free(topic);
			return OH_OK;
		}
	}
	int rc = host_publish(r->host, topic, "", 0, 1, true);
	if(!rc)
		json_array_append_new(cleared, json_string(topic));
	free(topic);
	return rc;
}

/* The module status topics of arr (borrowed; strings), cleared in turn.
 * Names come from the device, so only those that are one plain topic level
 * (the device id's rule) are published to. */
static int clear_module_status(struct registry *r, const char *id, const json_t *arr, json_t *cleared)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		const char *m = json_string_value(v);
		if(!m || !ident_device_id_valid(m, strlen(m)))
			continue;
		int rc = clear_retained(r, id, m, "status", cleared);
		if(rc)
			return rc;
	}
	return OH_OK;
}

/* A device's audit record: added, online, offline, remove, forget
 * (docs/audit.md); detail borrowed, may be NULL. */
static void device_record(struct registry *r, const char *id, const char *action, const char *actor,
		const json_t *detail)
{
	const char *token = http_current_token();
	struct audit_rec rec = {.kind = "device",
			.action = action,
			.actor = actor,
			.token = token,
			.device_id = id,
			.detail = detail,
			.latency_ms = -1};
	audit_record(r->host, &rec);
}

/* The log line and the audit record of a forgotten device: who, why and
 * which retained topics were cleared. */
static void forget_record(
		struct registry *r, const char *id, const char *actor, const char *why, json_t *cleared)
{
	char *topics = json_dumps(cleared, JSON_COMPACT);
	log_info("registry", "forgetting device %s (%s, by %s): cleared %s", id, why,
			actor ? actor : "the host", topics ? topics : "[]");
	free(topics);
	json_t *detail = json_pack("{s:s, s:O}", "why", why, "cleared", cleared);
	device_record(r, id, "forget", actor, detail);
	json_decref(detail);
}

int registry_forget(struct registry *r, const char *id, const char *actor, const char *why, json_t **cleared_out)
{
	struct device *d = strmap_get(r->devices, id);
	if(cleared_out)
		*cleared_out = NULL;
	if(!d)
		return OH_ERR_NOT_FOUND;
	/* Without the broker the retained copies stay, and the device would be
	 * back at the next start: refuse rather than half forget. */
	if(!mqtt_link_connected(r->host->link))
		return OH_ERR_NO_CONN;
	json_t *cleared = json_array();
	if(!cleared)
		return OH_ERR_NOMEM;
	int rc = clear_retained(r, id, NULL, "meta", cleared);
	if(!rc)
		rc = clear_retained(r, id, NULL, "status", cleared);
	if(!rc)
		rc = clear_module_status(r, id, json_object_get(device_tree(r, d), "modules"), cleared);
	if(!rc && d->modules_heard)
		rc = clear_module_status(r, id, d->modules_heard, cleared);
	if(rc) {
		json_decref(cleared);
		return rc;
	}
	/* The plugins drop their leases and state while the device is still
	 * readable through oh_registry_device. */
	if(r->on_forget)
		r->on_forget(r->host, id);
	forget_record(r, id, actor, why, cleared);
	remove_device(r, id, why);
	if(cleared_out)
		*cleared_out = cleared;
	else
		json_decref(cleared);
	return OH_OK;
}

static void settle_check(struct registry *r);
static void on_previous_snapshot(oh_ctx *ctx, const struct oh_message *msg, void *ud);

/* A device was heard from: the start-up may be over, and what it lacks is
 * fetched. */
static void device_heard(struct registry *r, struct device *d, bool is_meta)
{
	if(!d->heard) {
		d->heard = true;
		r->n_heard++;
		if(r->settling && r->n_heard >= r->expected)
			settle_check(r);
	}
	if(is_meta) {
		d->has_meta = d->meta_heard = true;
		registry_repair_done(r->repair, d->id);
	} else if(!d->has_meta) {
		registry_repair_want(r->repair, d->id);
	}
}

/*
 * Whether a message is the broker's stored copy rather than news from the
 * device.  On MQTT 3.1.1 (and MQTT 5 without retain-as-published) only
 * the copies sent on subscribing carry the retain flag.  With
 * retain-as-published a device's live retained publishes carry it too,
 * but the broker sends its stored copy of a topic once per subscription,
 * first: so the first retained meta and the first retained status of a
 * device in each connection are the copies.  (A device that had no
 * retained status and publishes its first while we are connected is
 * taken for a copy once; its next message counts.)
 */
static bool replayed(struct registry *r, struct device *d, bool is_meta, bool retained)
{
	if(!retained)
		return false;
	if(!mqtt_link_retain_as_published(r->host->link))
		return true;
	unsigned *seen = is_meta ? &d->meta_epoch : &d->status_epoch;
	if(*seen == r->epoch)
		return false;
	*seen = r->epoch;
	return true;
}

/* The audit record of a device coming online or going offline, when a
 * message moved it (was_up: online and not stale before). */
static void note_up(struct registry *r, const struct device *d, bool was_up)
{
	bool up = d->online == 1 && !d->stale;
	if(up != was_up)
		device_record(r, d->id, up ? "online" : "offline", NULL, NULL);
}

static void merge_message(struct registry *r, const struct oh_message *msg);

/* Counts each message and its time (oh_registry_merge_seconds_total). */
static void on_device_message(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct registry *r = ud;
	double t0 = time_now_mono();
	merge_message(r, msg);
	r->host->stats.registry_merges++;
	r->host->stats.registry_merge_seconds += time_now_mono() - t0;
}

static void merge_message(struct registry *r, const struct oh_message *msg)
{
	const char *topic = msg->topic;
	struct topic_parts t;
	/* device/{id}/meta and device/{id}/status only: module topics are the
	 * plugins'. */
	if(topic_parse(r->host->cfg.topic_root, topic, &t) != TOPIC_DEVICE || t.module.p)
		return;
	bool is_meta = topic_level_is(t.leaf, "meta");
	if(!is_meta && !topic_level_is(t.leaf, "status"))
		return;
	char id[OH_DEVICE_ID_MAX + 1];
	if(t.error || !topic_level_copy(t.id, id, sizeof id)) {
		complain(r, NULL, topic, "message",
				t.error ? t.error : "device id must be " IDENT_DEVICE_ID_RULE);
		return;
	}

	if(msg->len == 0) {
		/* Clearing a retained meta is how a device is decommissioned.  On
		 * MQTT 5 the broker tells a retained clear from a plain empty
		 * publish (retain as published); on 3.1.1 it cannot. */
		if(is_meta && (msg->retained || !mqtt_link_retain_as_published(r->host->link)) &&
				strmap_get(r->devices, id)) {
			json_t *detail = json_pack("{s:s}", "why", "empty retained meta");
			device_record(r, id, "remove", NULL, detail);
			json_decref(detail);
			remove_device(r, id, "empty retained meta");
		}
		return;
	}
	if(!msg->json || !json_is_object(msg->json)) {
		complain(r, id, topic, "message", msg->error ? msg->error : "payload is not a JSON object");
		return;
	}
	const json_t *claimed = json_object_get(msg->json, "device_id");
	if(claimed && (!json_is_string(claimed) || strcmp(json_string_value(claimed), id))) {
		complain(r, id, topic, "message", "payload device_id disagrees with the topic");
		return;
	}

	const struct config_limits *lim = &r->host->cfg.limits;
	struct device *d = strmap_get(r->devices, id);
	bool created = !d;
	char why[256];
	if(created && config_limit_reached(lim->max_devices, strmap_size(r->devices))) {
		snprintf(why, sizeof why, "device %s is not added", id);
		refuse(r, id, topic, "max_devices", why);
		return;
	}
	if(created && !(d = device_add(r, id, false))) {
		log_error("registry", "out of memory adding device %s", id);
		return;
	}
	/* Without a tree, straight into the fragment (see the top); the
	 * tree's way when it has one, or when the plan cannot take it. */
	static struct device_doc_plan the_plan;
	struct device_doc_plan *plan = NULL;
	json_t *doc = NULL;
	size_t before, bytes;
	bool changed = false;
	if(!d->doc &&
			device_doc_plan(&the_plan, d->frag, d->frag_len, msg->json, &before, &bytes, &changed,
					why, sizeof why)) {
		plan = &the_plan;
	} else {
		changed = false;
		if(!(doc = device_tree(r, d)))
			return;
		if(!d->doc_bytes)
			d->doc_bytes = device_doc_bytes(doc);
		before = d->doc_bytes;
		bytes = device_doc_merged_bytes(doc, before, msg->json);
	}
	/* Only growth past the limit: a document stored under a higher one
	 * still takes the heartbeats that keep it the same size. */
	if(lim->max_device_bytes > 0 && bytes > (size_t)lim->max_device_bytes && bytes > before) {
		snprintf(why, sizeof why, "the document of %s would be %zu bytes", id, bytes);
		if(created) {
			strmap_remove(r->devices, id); /* nothing else knows it yet */
			warm_drop(r, d);
			oh_list_remove(&r->by_seq, &d->by_seq);
			device_free(d);
		}
		refuse(r, id, topic, "max_device_bytes", why);
		return;
	}
	d->doc_bytes = bytes;
	bool was_up = d->online == 1 && !d->stale;
	/* After the device exists, so that the complaint spends its own budget. */
	if(plan ? why[0] != '\0' : device_doc_merge(doc, msg->json, why, sizeof why, &changed))
		complain(r, id, topic, "fields", why);
	const json_t *online = json_object_get(msg->json, "online");
	if(replayed(r, d, is_meta, msg->retained) && d->last_seen_wall > 0) {
		/* The broker's stored copy is news of the document, not contact:
		 * last_seen keeps the time we know, and online stays unknown
		 * until the device speaks in this run (after a reconnect, a
		 * retained status still says what happened while we were away).
		 * A copy identical to what we hold (every device, after each
		 * reconnect, and after a restart: its "online" is not merged)
		 * changes nothing: no new fragment, no store write, no place in
		 * the next ?since delta. */
		int was_online = d->online;
		if(!is_meta && json_is_boolean(online) && d->contacted)
			d->online = json_is_true(online) ? 1 : 0;
		note_up(r, d, was_up);
		if(changed || d->online != was_online) {
			device_changed(r, d, plan);
			persist_mark(r, d); /* once per device and connection */
		}
		device_heard(r, d, is_meta);
		return;
	}
	d->contacted = true;
	if(!is_meta && json_is_boolean(online))
		d->online = json_is_true(online) ? 1 : 0;
	if(created)
		device_record(r, id, "added", NULL, NULL);
	d->last_seen_wall = time_now_wall();
	d->last_seen_mono = time_now_mono();
	d->stale = false;
	note_up(r, d, was_up);
	fresh_unlink(r, d);
	fresh_append(r, d);
	device_changed(r, d, plan);
	/* A meta is stored at once; a heartbeat only refreshes the stored
	 * last_seen, so once a minute is enough (at 100,000 devices every
	 * heartbeat stored was a tenth of a core). */
	if(is_meta || !d->has_meta || d->last_seen_mono - d->persisted_mono >= PERSIST_HEARTBEAT_S)
		persist_mark(r, d);
	device_heard(r, d, is_meta);
}

/* Adds module (a topic level) to d's modules_heard, up to the cap. */
static void remember_module(struct device *d, struct topic_level module)
{
	char name[OH_DEVICE_ID_MAX + 1];
	if(!topic_level_copy(module, name, sizeof name))
		return;
	if(!d->modules_heard && !(d->modules_heard = json_array()))
		return;
	size_t i;
	json_t *v;
	json_array_foreach(d->modules_heard, i, v)
	{
		if(!strcmp(json_string_value(v), name))
			return;
	}
	if(json_array_size(d->modules_heard) < MODULES_HEARD_MAX)
		json_array_append_new(d->modules_heard, json_string(name));
}

void registry_heard_topic(struct registry *r, const char *topic)
{
	/* {root}/device/{id}/{module}/...: a device that speaks for a module
	 * but is not in the registry lost its meta and status on the way to us. */
	struct topic_parts t;
	char id[OH_DEVICE_ID_MAX + 1];
	if(topic_parse(r->host->cfg.topic_root, topic, &t) != TOPIC_DEVICE || t.error || !t.module.p ||
			!topic_level_copy(t.id, id, sizeof id))
		return;
	struct device *d = strmap_get(r->devices, id);
	if(!d) {
		registry_repair_want(r->repair, id);
		return;
	}
	if(topic_level_is(t.leaf, "status"))
		remember_module(d, t.module);
}

/* ---- staleness ---------------------------------------------------------------- */

static void on_stale_scan(evutil_socket_t fd, short what, void *arg)
{
	struct registry *r = arg;
	double limit = time_now_mono() - r->host->cfg.stale_after_s;
	/* The list is ordered by last message, so stop at the first device
	 * that spoke recently. */
	while(!oh_list_empty(&r->fresh) &&
			oh_list_entry(r->fresh.first, struct device, fresh)->last_seen_mono < limit) {
		struct device *d = oh_list_entry(r->fresh.first, struct device, fresh);
		fresh_unlink(r, d);
		if(d->online == 1 && !d->stale) {
			d->stale = true;
			device_changed(r, d, NULL);
			json_t *detail = json_pack("{s:s}", "why", "stale");
			device_record(r, d->id, "offline", NULL, detail);
			json_decref(detail);
		}
	}
}

/* ---- forget_after_days ---------------------------------------------------------- */

static void forget_arm(struct registry *r, double s)
{
	struct timeval tv = {(time_t)s, (suseconds_t)((s - (time_t)s) * 1e6)};
	evtimer_add(r->ev_forget, &tv);
}

/*
 * Forgets devices that are not online (offline, stale or unknown) and were
 * last heard from before forget_after_days.  On a timer rather than per
 * update: the deadline is days away and a device speaking moves it.  The
 * ids are collected first and forgotten after, since forgetting changes
 * the map being walked; a full batch leaves the rest to the next turn.
 * Not while settling (a device may yet be heard) nor without the broker
 * (registry_forget would refuse).
 */
static void on_forget_scan(evutil_socket_t fd, short what, void *arg)
{
	struct registry *r = arg;
	double after_s = r->host->cfg.forget_after_days * 86400;
	double period = after_s / 10;
	period = period < FORGET_SCAN_MIN_S          ? FORGET_SCAN_MIN_S
			: period > FORGET_SCAN_MAX_S ? FORGET_SCAN_MAX_S
						     : period;
	/* A standby of a pair leaves forgetting to the leader, whose cleared
	 * topics reach it like any other. */
	if(r->settling || !mqtt_link_connected(r->host->link) || !ha_acting(r->host)) {
		forget_arm(r, period);
		return;
	}
	char ids[FORGET_BATCH][OH_DEVICE_ID_MAX + 1];
	size_t n = 0;
	double before = time_now_wall() - after_s;
	struct strmap_iter it;
	void *value;
	strmap_iter_init(&it, r->devices);
	while(n < FORGET_BATCH && strmap_iter_next(&it, NULL, &value)) {
		struct device *d = value;
		if((d->online != 1 || d->stale) && d->last_seen_wall > 0 && d->last_seen_wall < before)
			snprintf(ids[n++], sizeof ids[0], "%s", d->id);
	}
	for(size_t i = 0; i < n; i++)
		registry_forget(r, ids[i], NULL, "forget_after_days", NULL);
	forget_arm(r, n == FORGET_BATCH ? 0 : period);
}

/* ---- the devices' part of the snapshot (snapshot.c) ----------------------------------------------------------------- */

/* Brings the host's fields (last_seen, stale, online) into the document. */
static void refresh_doc(struct device *d)
{
	if(d->doc_current)
		return;
	const char *last_seen = last_seen_text(d);
	json_object_set_new(d->doc, "last_seen", last_seen ? json_string(last_seen) : json_null());
	json_object_set_new(d->doc, "stale", json_boolean(d->stale));
	/* Only a status heard in this run says online; whatever a meta or a
	 * retained copy merged in is not (null: unknown). */
	json_object_set_new(d->doc, "online", d->online >= 0 ? json_boolean(d->online) : json_null());
	d->doc_current = true;
}

/* The fragment of a device without one (it has its tree then). */
static bool build_fragment(struct device *d)
{
	refresh_doc(d);
	/* Device ids are [A-Za-z0-9._-]: the key needs no escaping. */
	d->frag = device_doc_freeze(d->id, d->doc, &d->frag_len);
	return d->frag != NULL;
}

/* Every device's fragment, built where missing, handed to fn in turn. */
int registry_fragments(struct registry *r, void (*fn)(const char *frag, size_t len, void *ud), void *ud)
{
	struct strmap_iter it;
	void *value;
	strmap_iter_init(&it, r->devices);
	while(strmap_iter_next(&it, NULL, &value)) {
		struct device *d = value;
		if(!d->frag && !build_fragment(d))
			return OH_ERR_NOMEM;
		fn(d->frag, d->frag_len, ud);
	}
	return OH_OK;
}

void registry_set_next_seq(struct registry *r, uint64_t seq)
{
	r->next_seq = seq;
}

void registry_start_seq(struct registry *r, uint64_t first)
{
	r->next_seq = first;
	r->removed_floor = first; /* an earlier run's removals are unknown */
}

int registry_delta(struct registry *r, uint64_t since, void (*fn)(const char *frag, size_t len, void *ud),
		void (*removed_fn)(const char *id, void *ud), void *ud)
{
	if(since < r->removed_floor)
		return OH_ERR_NOT_FOUND;
	for(struct oh_list_node *n = fn ? r->by_seq.last : NULL; n; n = n->prev) {
		struct device *d = oh_list_entry(n, struct device, by_seq);
		if(d->seq <= since)
			break;
		if(!d->frag && !build_fragment(d))
			return OH_ERR_NOMEM;
		fn(d->frag, d->frag_len, ud);
	}
	for(size_t i = r->n_removed; removed_fn && i-- > 0;) {
		size_t slot = (r->removed_head + i) % REMOVED_KEPT;
		if(r->removed[slot].seq <= since)
			break;
		/* One removed and added again since is in the devices. */
		if(!strmap_get(r->devices, r->removed[slot].id))
			removed_fn(r->removed[slot].id, ud);
	}
	return OH_OK;
}

bool registry_settling(const struct registry *r)
{
	return r->settling;
}

void registry_on_forget(struct registry *r, void (*fn)(struct host *h, const char *id))
{
	r->on_forget = fn;
}

void registry_on_change(struct registry *r, void (*fn)(void *ud), void *ud)
{
	r->on_change = fn;
	r->on_change_ud = ud;
}

/* ---- start-up ------------------------------------------------------------------ */

static void end_settling(struct registry *r, const char *why)
{
	if(!r->settling)
		return;
	r->settling = false;
	evtimer_del(r->ev_settle);
	dispatch_unsubscribe(r->host->dispatch, NULL, r->snapshot_topic, on_previous_snapshot, r);
	log_info("registry", "%zu of %zu known devices heard from (%s); publishing the snapshot", r->n_heard,
			r->expected, why);
	registry_mark_dirty(r);
}

/* Devices kept from the last run whose meta the retained burst did not
 * bring (RabbitMQ sends none to wildcards): it may have changed while we
 * were away, so ask the broker for it, once, SETTLE_MIN_S after connecting. */
static void refresh_silent_devices(struct registry *r)
{
	if(r->refreshed)
		return;
	r->refreshed = true;
	struct strmap_iter it;
	void *value;
	strmap_iter_init(&it, r->devices);
	while(strmap_iter_next(&it, NULL, &value)) {
		struct device *d = value;
		if(!d->meta_heard)
			registry_repair_want(r->repair, d->id);
	}
}

static void settle_check(struct registry *r)
{
	if(!r->settling || !r->connected_once)
		return;
	double waited = time_now_mono() - r->settle_from;
	if(waited >= SETTLE_MIN_S)
		refresh_silent_devices(r);
	if(waited >= SETTLE_MAX_S) {
		end_settling(r, "the settle time is over");
	} else if(waited >= SETTLE_MIN_S && r->n_heard >= r->expected) {
		end_settling(r, "complete");
	} else {
		double left = waited < SETTLE_MIN_S ? SETTLE_MIN_S - waited : SETTLE_MAX_S - waited;
		struct timeval tv = {(time_t)left, (suseconds_t)((left - (time_t)left) * 1e6)};
		evtimer_add(r->ev_settle, &tv);
	}
}

static void on_settle_timer(evutil_socket_t fd, short what, void *arg)
{
	settle_check(arg);
}

/* The broker's retained copy of the last snapshot: the registry is not
 * complete before it has as many devices (a host whose store was lost
 * must not replace a full snapshot with its first few devices). */
static void on_previous_snapshot(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct registry *r = ud;
	if(!r->settling || !msg->len)
		return;
	/* Counted in the text: parsing 100,000 devices was a tenth of the
	 * host's start-up. */
	long counted = device_doc_count_snapshot(msg->payload, msg->len);
	size_t n = counted >= 0 ? (size_t)counted : 0;
	if(counted < 0) {
		/* Past limits.max_snapshot_bytes the snapshot is a summary whose
		 * device_count says how many. */
		json_t *doc = json_loadb(msg->payload, msg->len, 0, NULL);
		json_t *devices = json_object_get(doc, "devices");
		json_int_t summary = json_integer_value(json_object_get(doc, "device_count"));
		n = json_is_null(devices) && summary > 0 ? (size_t)summary : json_object_size(devices);
		json_decref(doc);
	}
	if(n > r->expected) {
		r->expected = n;
		log_info("registry", "the broker's last snapshot has %zu devices; waiting for them", n);
	}
	/* Our own snapshots are not published while settling, and this
	 * subscription ends with it, so this is the previous run's. */
	dispatch_unsubscribe(r->host->dispatch, NULL, r->snapshot_topic, on_previous_snapshot, r);
}

void registry_on_connect(struct registry *r)
{
	r->epoch++; /* the retained copies come again (replayed()) */
	registry_repair_on_connect(r->repair);
	if(!r->connected_once) {
		r->connected_once = true;
		r->settle_from = time_now_mono();
		settle_check(r);
	}
	/* The broker may have lost our retained snapshot (restart without
	 * persistence): publish it again. */
	registry_mark_dirty(r);
}

void registry_flush(struct registry *r)
{
	/* Heartbeats are stored at most once a minute (PERSIST_HEARTBEAT_S):
	 * at a clean stop, every last_seen newer than its stored copy goes
	 * too, so that the next run starts from the exact time. */
	struct strmap_iter it;
	void *value;
	strmap_iter_init(&it, r->devices);
	while(strmap_iter_next(&it, NULL, &value)) {
		struct device *d = value;
		if(d->contacted && d->last_seen_mono > d->persisted_mono)
			persist_mark(r, d);
	}
	persist_some(r, (size_t)-1);
}

/* ---- reads -------------------------------------------------------------------- */

static void fill_device(struct device *d, struct oh_device *out)
{
	memset(out, 0, sizeof *out);
	out->id = d->id;
	out->doc = d->doc;
	out->online = d->online;
	out->stale = d->stale;
	out->last_seen = d->last_seen_wall;
	out->changes = d->changes;
}

/* changes took reserved slots: plugins built before it allocate as much. */
_Static_assert(sizeof(struct oh_device) == offsetof(struct oh_device, changes) + 4 * sizeof(void *),
		"struct oh_device grew");

int registry_device(struct registry *r, const char *id, struct oh_device *out)
{
	struct device *d = strmap_get(r->devices, id);
	if(!d)
		return OH_ERR_NOT_FOUND;
	/* Plugins read the document, not the fragment: serialising it is left
	 * to the next snapshot. */
	if(!device_tree(r, d))
		return OH_ERR_NOMEM;
	refresh_doc(d);
	fill_device(d, out);
	return OH_OK;
}

char *registry_device_json(struct registry *r, const char *id)
{
	struct device *d = strmap_get(r->devices, id);
	if(!d)
		return NULL;
	if(!d->frag && !build_fragment(d))
		return NULL;
	size_t kl = device_doc_key_len(d->frag);
	return strndup(d->frag + kl, d->frag_len - kl);
}

static void walk(struct registry *r, bool with_doc, int (*fn)(const struct oh_device *, void *), void *ud)
{
	struct strmap_iter it;
	strmap_iter_init(&it, r->devices);
	void *value;
	while(strmap_iter_next(&it, NULL, &value)) {
		struct device *d = value;
		/* A walk over more than WARM_MAX devices thaws them all for this
		 * turn of the loop: host.h lets fn keep dev->doc until then. */
		if(with_doc && !device_tree(r, d))
			break;
		if(with_doc)
			refresh_doc(d);
		struct oh_device dev;
		fill_device(d, &dev);
		if(!with_doc)
			dev.doc = NULL;
		if(fn(&dev, ud))
			break;
	}
}

void registry_foreach(struct registry *r, int (*fn)(const struct oh_device *, void *), void *ud)
{
	walk(r, true, fn, ud);
}

void registry_walk(struct registry *r, int (*fn)(const struct oh_device *, void *), void *ud)
{
	walk(r, false, fn, ud);
}

size_t registry_size(const struct registry *r)
{
	return strmap_size(r->devices);
}
uint64_t registry_generation(const struct registry *r)
{
	return r->host->generation;
}

/* ---- life cycle --------------------------------------------------------------- */

struct registry *registry_new(struct host *h)
{
	struct registry *r = calloc(1, sizeof *r);
	if(!r)
		return NULL;
	r->host = h;
	r->next_seq = 1; /* the first snapshot's */
	r->devices = strmap_new();
	r->snapshot_topic = topic_build(h->cfg.topic_root, NULL, "registry", NULL);
	r->ev_stale = event_new(h->base, -1, EV_PERSIST, on_stale_scan, r);
	r->ev_persist = evtimer_new(h->base, on_persist_timer, r);
	r->ev_settle = evtimer_new(h->base, on_settle_timer, r);
	r->ev_forget = evtimer_new(h->base, on_forget_scan, r);
	r->ev_trim = evtimer_new(h->base, on_trim, r);
	if(!r->ev_trim || !r->devices || !r->snapshot_topic || !r->ev_stale || !r->ev_persist ||
			!r->ev_settle || !r->ev_forget) {
		registry_free(r);
		return NULL;
	}
	if(!(r->repair = registry_repair_new(h))) {
		registry_free(r);
		return NULL;
	}
	r->settling = true;
	return r;
}

/* A device as the last run left it: its document, not yet heard from. */
static void load_device(const char *id, const char *text, size_t len, double last_seen, void *ud)
{
	struct registry *r = ud;
	if(!ident_device_id_valid(id, strlen(id)) || strmap_get(r->devices, id))
		return;
	/* 100,000 devices: straight from the text, without a tree, in a
	 * fifth of the time of parsing and serialising each one. */
	char when[32];
	if(last_seen > 0)
		time_format_utc((time_t)last_seen, when, sizeof when);
	size_t frag_len;
	bool has_modules;
	char *frag = device_doc_from_stored(
			id, text, len, last_seen > 0 ? when : NULL, &frag_len, &has_modules);
	if(frag) {
		struct device *d = device_get_or_add(r, id);
		if(!d) {
			free(frag);
			return;
		}
		warm_drop(r, d);
		d->frag = frag;
		d->frag_len = frag_len;
		d->doc_current = true;
		d->has_meta = has_modules;
		d->last_seen_wall = last_seen;
		d->last_seen_mono = time_now_mono() - (time_now_wall() - last_seen);
		return;
	}
	/* Not as the host writes it: parsed, as any text. */
	json_t *doc = json_loadb(text, len, 0, NULL);
	if(!json_is_object(doc)) {
		log_warn("registry", "skipping the stored document of %s: not a JSON object", id);
		json_decref(doc);
		return;
	}
	struct device *d = device_get_or_add(r, id);
	if(!d) {
		json_decref(doc);
		return;
	}
	/* What the host derives is derived again; online is unknown until the
	 * device speaks. */
	json_object_del(doc, "online");
	json_object_del(doc, "stale");
	json_object_del(doc, "last_seen");
	json_object_del(doc, "device_id");
	json_object_update(d->doc, doc);
	json_decref(doc);
	d->has_meta = json_object_get(d->doc, "modules") != NULL;
	d->last_seen_wall = last_seen;
	d->last_seen_mono = time_now_mono() - (time_now_wall() - last_seen);
	/* Cold at once: the whole store is read in this one turn, and nothing
	 * has been handed its tree. */
	if(build_fragment(d))
		warm_drop(r, d);
}

int registry_start(struct registry *r)
{
	struct host *h = r->host;
	if(h->store && !store_device_load(h->store, load_device, r)) {
		r->expected = strmap_size(r->devices);
		if(r->expected)
			log_info("registry", "%zu devices known from the last run", r->expected);
	}
	/* QoS 0: see the top of this file. */
	static const char *const kinds[] = {"meta", "status"};
	int rc = OH_OK;
	for(size_t i = 0; i < 2 && !rc; i++) {
		char *filter = topic_build(h->cfg.topic_root, "+", NULL, kinds[i]);
		rc = filter ? dispatch_subscribe(h->dispatch, NULL, filter, 0, on_device_message, r)
			    : OH_ERR_NOMEM;
		free(filter);
	}
	if(rc)
		return rc;
	rc = dispatch_subscribe(h->dispatch, NULL, r->snapshot_topic, 0, on_previous_snapshot, r);
	if(rc)
		return rc;
	double scan = h->cfg.stale_after_s / 4;
	if(scan > 1)
		scan = 1;
	if(scan < 0.05)
		scan = 0.05;
	struct timeval tv = {(time_t)scan, (suseconds_t)((scan - (time_t)scan) * 1e6)};
	event_add(r->ev_stale, &tv);
	if(h->cfg.forget_after_days > 0)
		forget_arm(r, FORGET_SCAN_MIN_S);
	registry_mark_dirty(r);
	return OH_OK;
}

void registry_free(struct registry *r)
{
	if(!r)
		return;
	if(r->ev_stale)
		event_free(r->ev_stale);
	if(r->ev_persist)
		event_free(r->ev_persist);
	if(r->ev_settle)
		event_free(r->ev_settle);
	if(r->ev_forget)
		event_free(r->ev_forget);
	if(r->ev_trim)
		event_free(r->ev_trim);
	registry_repair_free(r->repair);
	strmap_free(r->devices, device_free);
	for(size_t i = 0; i < r->n_removed; i++)
		free(r->removed[(r->removed_head + i) % REMOVED_KEPT].id);
	free(r->removed);
	free(r->snapshot_topic);
	free(r);
}
