/*
 * Commands relayed to devices and not yet answered.
 *
 * Each relayed command waits here, keyed by "{device_id}/{req_id}", until
 * the device acks it on {root}/device/{id}/{module}/evt (then COMPLETED or
 * FAILED is published) or ack_timeout_s passes (TIMEOUT).  Benchmarks
 * keep tens of thousands in flight, so lookups go through a hash map
 * (oh_map).  Every command waits the same ack_timeout_s (a setting read
 * once), so the commands in order of sending are also in order of their
 * deadlines: one list (due) and one timer, armed for the oldest, serve
 * them all; a timer per command cost about 240 bytes of it in flight.  An
 * entry and its strings are one allocation of about 90 bytes: the strings
 * one after the other, found by offsets, and the key only in the map (it
 * is made again to remove the entry), where pointers to each, the key and
 * the table cost 150 (docs/performance.md, 4b).  Keying by device too (a
 * device id cannot contain '/') means only the addressed device can
 * complete a command, and two devices may use the same req_id.
 *
 * A command may carry one completion callback (ndi_pending_on_done): the
 * REST API's ?wait=1 uses it to answer with the device's ack.  It runs
 * after the event is published and at most once; ndi_pending_forget()
 * detaches it when the waiter goes first, so neither side is left holding
 * a pointer to the other.
 *
 * Any client can relay commands to a device that never answers, so the
 * table has two caps from the host's limits: limits.max_pending in all and
 * limits.max_pending_per_device (counted per device in a second map, never
 * larger than the first).  ndi_pending_add refuses past either with
 * OH_ERR_TOO_LARGE and counts the refusal; what is in flight is untouched.
 *
 * After a burst the memory goes back to the system.  Once the table has
 * shrunk to half its peak (a peak of at least TRIM_MIN_PEAK), a timer looks
 * every TRIM_CHECK_MS whether it is still draining; when it is quiet (or
 * after TRIM_MAX_WAIT checks) both maps are compacted and oh_memory_trim()
 * runs; once more TRIM_LATE_MS later, for the copies of the last events,
 * which the MQTT client frees only when the broker acks them.  So a burst
 * costs two trims.  A steady flow of commands never trims: the memory freed
 * is reused by the next ones.  A drain slower than TRIM_MAX_WAIT checks
 * trims part way, and the commands left after that trim would keep their
 * memory (50,000 timing out over 30 s kept RSS at 7.6 times what it was
 * before): so the table emptying after holding TRIM_MIN_PEAK or more
 * since it was last empty (high) arms the trim once more.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oh/host.h"
#include "oh/list.h"

#include "ndi.h"

struct entry {
	struct oh_list_node due; /* in ndi_pending.due, oldest first */
	ndi_done_fn done_fn;     /* NULL when nobody waits */
	void *done_ud;
	int64_t sent_ns; /* relayed at (CLOCK_MONOTONIC): the deadline, oh_ndi_relay_latency_seconds */
	/* Where req_id, action and actor start in text (device_id at 0). */
	uint16_t req_at, action_at, actor_at;
	char text[]; /* device_id, req_id, action, actor, each with its NUL */
};

static const char *device_of(const struct entry *e)
{
	return e->text;
}

static const char *req_of(const struct entry *e)
{
	return e->text + e->req_at;
}

static const char *action_of(const struct entry *e)
{
	return e->text + e->action_at;
}

static const char *actor_of(const struct entry *e)
{
	return e->text + e->actor_at;
}

struct ndi_pending {
	struct oh_map *by_key;    /* "{device_id}/{req_id}" -> struct entry */
	struct oh_map *by_device; /* device_id -> its commands in flight (>= 1), as a pointer */
	bool limits_read;         /* max_all and max_device hold the host's limits */
	long max_all, max_device; /* <= 0: not capped (a host without these limits) */
	size_t peak;              /* the most in flight since the last trim */
	size_t high;              /* the most in flight since the table was last empty */
	oh_timer_id trim;         /* armed while a burst drains */
	struct oh_list due;       /* of struct entry, by time sent (and so by deadline) */
	oh_timer_id expiry;       /* armed while due is not empty */
	size_t removed;           /* entries removed since the timer last looked */
	int trim_checks;          /* times it looked during this drain */
	bool trim_late;           /* the timer is the follow-up of a trim */
};

#define TRIM_MIN_PEAK 4096
#define TRIM_CHECK_MS 1000
/* Still draining: more removed than this in one check. */
#define TRIM_QUIET_REMOVALS 256
#define TRIM_MAX_WAIT 10
#define TRIM_LATE_MS 5000

/* Room for "{device_id}/{req_id}" and its NUL. */
#define KEY_MAX (NDI_DEVICE_ID_MAX + 1 + OH_REQ_ID_MAX + 1)

/* The key into buf; false when req_id is longer than any the host accepts
 * (so nothing can be pending under it). */
static bool make_key(char buf[KEY_MAX], const char *device_id, const char *req_id)
{
	int n = snprintf(buf, KEY_MAX, "%s/%s", device_id, req_id);
	return n > 0 && n < KEY_MAX;
}

struct ndi_pending *ndi_pending_new(void)
{
	struct ndi_pending *p = calloc(1, sizeof(*p));

	if(!p)
		return NULL;
	p->by_key = oh_map_new();
	p->by_device = oh_map_new();
	if(!p->by_key || !p->by_device) {
		oh_map_free(p->by_key, NULL);
		oh_map_free(p->by_device, NULL);
		free(p);
		return NULL;
	}
	return p;
}

static size_t device_pending(const struct ndi_pending *p, const char *device_id)
{
	return (size_t)(uintptr_t)oh_map_get(p->by_device, device_id);
}

static void on_trim(oh_ctx *ctx, void *ud)
{
	struct ndi *n = ud;
	struct ndi_pending *p = n->pending;
	bool draining = p->removed > TRIM_QUIET_REMOVALS && oh_map_size(p->by_key) > 0;

	/* The host frees a one-shot timer after it fired. */
	p->trim = OH_TIMER_NONE;
	p->removed = 0;
	if(!p->trim_late && draining && ++p->trim_checks < TRIM_MAX_WAIT) {
		p->trim = oh_timer_add(ctx, TRIM_CHECK_MS, false, on_trim, n);
		if(p->trim)
			return;
	}
	oh_map_compact(p->by_key);
	oh_map_compact(p->by_device);
	oh_memory_trim(ctx);
	p->peak = oh_map_size(p->by_key);
	p->trim_checks = 0;
	p->trim_late = !p->trim_late;
	if(p->trim_late && !(p->trim = oh_timer_add(ctx, TRIM_LATE_MS, false, on_trim, n)))
		p->trim_late = false;
}

/* Takes e out of both maps (e itself is the caller's to free). */
static void entry_unlink(struct ndi *n, struct entry *e)
{
	struct ndi_pending *p = n->pending;
	size_t left = device_pending(p, device_of(e));
	char key[KEY_MAX];

	/* It was made when e went in, so it fits. */
	if(make_key(key, device_of(e), req_of(e)))
		oh_map_remove(p->by_key, key);
	oh_list_remove(&p->due, &e->due);
	if(left > 1) {
		/* Replacing an existing key allocates nothing, so cannot fail. */
		(void)oh_map_put(p->by_device, device_of(e), (void *)(uintptr_t)(left - 1), NULL);
	} else {
		oh_map_remove(p->by_device, device_of(e));
	}
	p->removed++;
	bool emptied = !oh_map_size(p->by_key) && p->high >= TRIM_MIN_PEAK;
	if(!oh_map_size(p->by_key))
		p->high = 0;
	if(!p->trim && ((p->peak >= TRIM_MIN_PEAK && oh_map_size(p->by_key) <= p->peak / 2) || emptied)) {
		p->trim_late = false; /* a whole trim, with its follow-up */
		p->trim = oh_timer_add(n->ctx, TRIM_CHECK_MS, false, on_trim, n);
	}
}

static void entry_free(struct entry *e)
{
	free(e);
}

/* Runs and detaches the entry's callback; event NULL: ended without one. */
static void finish(struct ndi *n, struct entry *e, const json_t *event)
{
	ndi_done_fn fn = e->done_fn;

	e->done_fn = NULL;
	if(fn)
		fn(n, event, e->done_ud);
}

/* Publishes the command's last event (taken) and tells whoever waits. */
static void conclude(struct ndi *n, struct entry *e, json_t *event)
{
	if(!event) {
		oh_log(n->ctx, OH_LOG_ERROR, "out of memory reporting %s", req_of(e));
		finish(n, e, NULL);
		return;
	}
	json_incref(event);
	oh_ack_publish(n->ctx, event);
	finish(n, e, event);
	json_decref(event);
}

static int drop_entry(const char *key, void *value, void *ud)
{
	struct entry *e = value;
	finish(ud, e, NULL);
	entry_free(e);
	return 0;
}

void ndi_pending_free(struct ndi *n)
{
	struct ndi_pending *p = n->pending;

	if(!p)
		return;
	if(p->trim)
		oh_timer_cancel(n->ctx, p->trim);
	if(p->expiry)
		oh_timer_cancel(n->ctx, p->expiry);
	oh_map_foreach(p->by_key, drop_entry, n);
	oh_map_free(p->by_key, NULL);
	oh_map_free(p->by_device, NULL);
	free(p);
	n->pending = NULL;
}

size_t ndi_pending_count(const struct ndi *n)
{
	return n->pending ? oh_map_size(n->pending->by_key) : 0;
}

static int64_t now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static double since_s(int64_t ns)
{
	return (double)(now_ns() - ns) / 1e9;
}

static void on_expiry(oh_ctx *ctx, void *ud);

/* The timer for the oldest command in flight, if any and not armed. */
static void expiry_arm(struct ndi *n)
{
	struct ndi_pending *p = n->pending;
	if(p->expiry || oh_list_empty(&p->due))
		return;
	struct entry *e = oh_list_entry(p->due.first, struct entry, due);
	double left = n->set.ack_timeout_s - since_s(e->sent_ns);
	p->expiry = oh_timer_add(n->ctx, left > 0 ? (unsigned)(left * 1000 + 0.999) : 0, false, on_expiry, n);
	if(!p->expiry)
		oh_log(n->ctx, OH_LOG_ERROR, "out of memory: commands in flight will not time out");
}

/* TIMEOUT for every command whose ack_timeout_s has passed, oldest first. */
static void on_expiry(oh_ctx *ctx, void *ud)
{
	struct ndi *n = ud;
	struct ndi_pending *p = n->pending;
	char err[200];

	/* The host frees a one-shot timer after it fired. */
	p->expiry = OH_TIMER_NONE;
	while(!oh_list_empty(&p->due)) {
		struct entry *e = oh_list_entry(p->due.first, struct entry, due);
		/* A millisecond early at most: the timer's own rounding. */
		if(since_s(e->sent_ns) + 0.001 < n->set.ack_timeout_s)
			break;
		entry_unlink(n, e);
		snprintf(err, sizeof(err), "no ack from %s within %g s", device_of(e), n->set.ack_timeout_s);
		conclude(n, e,
				oh_ack_new(req_of(e), ndi_code_ok("TIMEOUT"), "TIMEOUT", action_of(e),
						actor_of(e), err,
						json_pack("{s:s, s:f}", "device_id", device_of(e),
								"timeout_s", n->set.ack_timeout_s)));
		entry_free(e);
	}
	expiry_arm(n);
}

/* OH_OK when one more command to device_id fits, else OH_ERR_TOO_LARGE
 * after counting the refusal.  max_pending is checked first: ndi_dispatch
 * names the limit by checking it again. */
static int check_limits(struct ndi *n, const char *device_id)
{
	struct ndi_pending *p = n->pending;

	if(!p->limits_read) {
		p->max_all = oh_limit(n->ctx, "max_pending");
		p->max_device = oh_limit(n->ctx, "max_pending_per_device");
		p->limits_read = true;
	}
	if(p->max_all > 0 && oh_map_size(p->by_key) >= (size_t)p->max_all) {
		oh_limit_refused(n->ctx, "max_pending");
		return OH_ERR_TOO_LARGE;
	}
	if(p->max_device > 0 && device_pending(p, device_id) >= (size_t)p->max_device) {
		oh_limit_refused(n->ctx, "max_pending_per_device");
		return OH_ERR_TOO_LARGE;
	}
	return OH_OK;
}

int ndi_pending_add(struct ndi *n, const char *device_id, const char *req_id, const char *action,
		const char *actor)
{
	struct ndi_pending *p = n->pending;
	char key[KEY_MAX];
	struct entry *e;
	size_t on_device;
	int err = 0, rc;

	if(!make_key(key, device_id, req_id))
		return OH_ERR_INVAL;
	if(oh_map_get(p->by_key, key))
		return OH_ERR_EXISTS;
	if((rc = check_limits(n, device_id)))
		return rc;
	size_t dl = strlen(device_id) + 1, rl = strlen(req_id) + 1, al = strlen(action) + 1,
	       tl = strlen(actor) + 1;
	/* Ids are short (make_key) and actions are the table's names. */
	if(dl + rl + al > UINT16_MAX)
		return OH_ERR_INVAL;
	e = calloc(1, sizeof(*e) + dl + rl + al + tl);
	if(!e)
		return OH_ERR_NOMEM;
	memcpy(e->text, device_id, dl);
	memcpy(e->text + (e->req_at = (uint16_t)dl), req_id, rl);
	memcpy(e->text + (e->action_at = (uint16_t)(dl + rl)), action, al);
	memcpy(e->text + (e->actor_at = (uint16_t)(dl + rl + al)), actor, tl);
	e->sent_ns = now_ns();
	on_device = device_pending(p, device_id);
	err = oh_map_put(p->by_device, device_of(e), (void *)(uintptr_t)(on_device + 1), NULL);
	if(err)
		goto out_entry;
	err = oh_map_put(p->by_key, key, e, NULL);
	if(err)
		goto out_count;
	oh_list_push_back(&p->due, &e->due);
	expiry_arm(n);
	if(oh_map_size(p->by_key) > p->peak)
		p->peak = oh_map_size(p->by_key);
	if(oh_map_size(p->by_key) > p->high)
		p->high = oh_map_size(p->by_key);
	return OH_OK;

out_count:
	/* Back to the count before: replacing a key allocates nothing. */
	if(on_device)
		(void)oh_map_put(p->by_device, device_of(e), (void *)(uintptr_t)on_device, NULL);
	else
		oh_map_remove(p->by_device, device_of(e));

out_entry:
	entry_free(e);
	return OH_ERR_NOMEM;
}

/* Takes the entry for this pair out of the table, or NULL. */
static struct entry *entry_take(struct ndi *n, const char *device_id, const char *req_id)
{
	char key[KEY_MAX];
	struct entry *e = make_key(key, device_id, req_id) ? oh_map_get(n->pending->by_key, key) : NULL;

	if(e)
		entry_unlink(n, e);
	return e;
}

/* The entry for this pair, or NULL. */
static struct entry *entry_find(struct ndi *n, const char *device_id, const char *req_id)
{
	char key[KEY_MAX];
	return make_key(key, device_id, req_id) ? oh_map_get(n->pending->by_key, key) : NULL;
}

void ndi_pending_drop(struct ndi *n, const char *device_id, const char *req_id)
{
	struct entry *e = entry_take(n, device_id, req_id);

	if(!e)
		return;
	finish(n, e, NULL);
	entry_free(e);
}

int ndi_pending_on_done(struct ndi *n, const char *device_id, const char *req_id, ndi_done_fn fn, void *ud)
{
	struct entry *e = entry_find(n, device_id, req_id);

	if(!e)
		return OH_ERR_NOT_FOUND;
	if(e->done_fn)
		return OH_ERR_EXISTS;
	e->done_fn = fn;
	e->done_ud = ud;
	return OH_OK;
}

void ndi_pending_forget(struct ndi *n, const char *device_id, const char *req_id)
{
	struct entry *e = entry_find(n, device_id, req_id);

	if(!e)
		return;
	e->done_fn = NULL;
	e->done_ud = NULL;
}

bool ndi_topic_device(oh_ctx *ctx, const char *topic, char *buf, size_t len)
{
	struct oh_topic t;

	if(oh_topic_parse(ctx, topic, &t) || t.place != OH_TOPIC_DEVICE || strlen(t.device_id) >= len)
		return false;
	memcpy(buf, t.device_id, strlen(t.device_id) + 1);
	return true;
}

void ndi_on_device_evt(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct ndi *n = ud;
	char device_id[NDI_DEVICE_ID_MAX + 1], err[300];
	const json_t *doc = msg->json, *v;
	const char *req_id, *code, *error;
	struct entry *e;
	bool ok;
	json_t *details;

	/* Old acks kept by the broker say nothing about what is in flight now. */
	if(msg->retained || !json_is_object(doc)) {
		oh_log(ctx, OH_LOG_DEBUG, "ignoring %s message on %s",
				msg->retained ? "a retained" : "a non-object", msg->topic);
		return;
	}
	if(!ndi_topic_device(ctx, msg->topic, device_id, sizeof(device_id)))
		return;
	req_id = json_string_value(json_object_get(doc, "req_id"));
	if(!req_id) {
		oh_log(ctx, OH_LOG_DEBUG, "ignoring an ack without req_id on %s", msg->topic);
		return;
	}
	if(!(e = entry_take(n, device_id, req_id))) {
		oh_log(ctx, OH_LOG_DEBUG, "ack for unknown req_id %s from %s", req_id, device_id);
		return;
	}
	oh_metric_observe(ctx, "relay_latency_seconds", since_s(e->sent_ns));

	/* Devices send ok with code "OK"; trust ok, and code only without it. */
	code = json_string_value(json_object_get(doc, "code"));
	v = json_object_get(doc, "ok");
	ok = v ? json_is_true(v) : (code && !strcmp(code, "OK"));
	if(ok) {
		v = json_object_get(doc, "details");
		details = json_is_object(v) ? json_deep_copy(v) : json_object();
		if(details)
			json_object_set_new(details, "device_id", json_string(device_id));
		conclude(n, e,
				oh_ack_new(req_of(e), ndi_code_ok("COMPLETED"), "COMPLETED", action_of(e),
						actor_of(e), NULL, details));
	} else {
		error = json_string_value(json_object_get(doc, "error"));
		snprintf(err, sizeof(err), "device %s failed: %s%s%s", device_id, code ? code : "no code",
				error ? ": " : "", error ? error : "");
		details = json_pack("{s:O?, s:O?, s:s}", "device_code", json_object_get(doc, "code"),
				"device_error", json_object_get(doc, "error"), "device_id", device_id);
		conclude(n, e,
				oh_ack_new(req_of(e), ndi_code_ok("FAILED"), "FAILED", action_of(e),
						actor_of(e), err, details));
	}
	entry_free(e);
}
