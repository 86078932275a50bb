/*
 * The services of include/oh/host.h, as seen from a plugin's context.
 *
 * This is where the module namespace is enforced: topics, routes and lease
 * keys outside "{module}" are refused here, once, rather than trusted in
 * every plugin.
 */
#include "plugin_ctx.h"

#include "audit.h"

#include <event2/event.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "ident.h"
#include "json_text.h"
#include "log.h"
#include "snapshot.h"
#include "shared_buf.h"
#include "topic_tree.h"
#include "topics.h"

/* ---- MQTT ---------------------------------------------------------------------- */

static bool under_root(const oh_ctx *ctx, const char *topic)
{
	const char *root = ctx->host->cfg.topic_root;
	size_t n = strlen(root);
	return !strncmp(topic, root, n) && topic[n] == '/';
}

int oh_subscribe(oh_ctx *ctx, const char *filter, int qos, oh_message_fn fn, void *ud)
{
	if(!filter || !under_root(ctx, filter)) {
		oh_log(ctx, OH_LOG_ERROR, "subscription to %s refused: not under %s",
				filter ? filter : "(null)", ctx->host->cfg.topic_root);
		return OH_ERR_INVAL;
	}
	return dispatch_subscribe(ctx->host->dispatch, ctx, filter, qos, fn, ud);
}

/* {root}/orchestrator/{module}/... or {root}/device/{id}/{module}/... */
static bool in_namespace(const oh_ctx *ctx, const char *topic)
{
	struct topic_parts t;
	enum topic_place place = topic_parse(ctx->host->cfg.topic_root, topic, &t);
	return place != TOPIC_OTHER && !t.error && t.leaf.p && topic_level_is(t.module, ctx->module);
}

int oh_publish(oh_ctx *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
	if(!topic || !topic_name_valid(topic) || qos < 0 || qos > 2)
		return OH_ERR_INVAL;
	if(!in_namespace(ctx, topic)) {
		oh_log(ctx, OH_LOG_ERROR, "publish to %s refused: outside the %s namespace", topic,
				ctx->module);
		return OH_ERR_DENIED;
	}
	return host_publish(ctx->host, topic, payload, len, qos, retain);
}

int oh_publish_json(oh_ctx *ctx, const char *topic, const json_t *payload, int qos, bool retain)
{
	char *text = json_is_object(payload) || json_is_array(payload)
			? json_text_compact(payload)
			: json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
	if(!text)
		return OH_ERR_NOMEM;
	int rc = oh_publish(ctx, topic, text, strlen(text), qos, retain);
	free(text);
	return rc;
}

int oh_topic_parse(const oh_ctx *ctx, const char *topic, struct oh_topic *out)
{
	struct topic_parts t;
	topic_parse(ctx->host->cfg.topic_root, topic, &t);
	memset(out, 0, sizeof *out);
	out->place = t.place == TOPIC_DEVICE            ? OH_TOPIC_DEVICE
			: t.place == TOPIC_ORCHESTRATOR ? OH_TOPIC_ORCHESTRATOR
							: OH_TOPIC_OTHER;
	if(t.error)
		return OH_ERR_INVAL;
	topic_level_copy(t.id, out->device_id, sizeof out->device_id);
	out->module = t.module.p;
	out->module_len = t.module.len;
	out->leaf = t.leaf.p;
	return OH_OK;
}

/* ---- registry -------------------------------------------------------------------- */

int oh_device_get(oh_ctx *ctx, const char *id, struct oh_device *out)
{
	return registry_device(ctx->host->registry, id, out);
}

void oh_device_foreach(oh_ctx *ctx, int (*fn)(const struct oh_device *, void *), void *ud)
{
	registry_foreach(ctx->host->registry, fn, ud);
}

void oh_device_walk(oh_ctx *ctx, int (*fn)(const struct oh_device *, void *), void *ud)
{
	registry_walk(ctx->host->registry, fn, ud);
}

bool oh_device_id_valid(const char *id)
{
	return id && ident_device_id_valid(id, strlen(id));
}

unsigned long long oh_registry_generation(oh_ctx *ctx)
{
	return registry_generation(ctx->host->registry);
}

int oh_reply_snapshot(struct oh_http_req *req)
{
	struct host *h = http_req_host(req);
	struct shared_buf *snap = snapshot_get(h->snapshot);
	if(!snap)
		return oh_reply_error(req, 500, "INTERNAL", "snapshot unavailable");
	int rc = http_reply_buf(req, 200, "application/json", snap);
	shared_buf_unref(snap);
	return rc;
}

int oh_reply_raw(struct oh_http_req *req, unsigned status, const char *content_type, const void *data,
		size_t len)
{
	return http_reply_copy(req, status, content_type, data, len);
}

/* A blob is a shared_buf under another name: plugins see an opaque type,
 * the HTTP side sends its bytes by reference (http_reply_buf). */
static struct shared_buf *blob_buf(const struct oh_blob *blob)
{
	return (struct shared_buf *)blob;
}

struct oh_blob *oh_blob_new(const void *data, size_t len)
{
	return (struct oh_blob *)shared_buf_new(data, len);
}

char *oh_blob_data(struct oh_blob *blob)
{
	return blob_buf(blob)->data;
}

size_t oh_blob_len(const struct oh_blob *blob)
{
	return blob_buf(blob)->len;
}

struct oh_blob *oh_blob_ref(struct oh_blob *blob)
{
	return (struct oh_blob *)shared_buf_ref(blob_buf(blob));
}

void oh_blob_unref(struct oh_blob *blob)
{
	shared_buf_unref(blob_buf(blob));
}

int oh_reply_blob(struct oh_http_req *req, unsigned status, const char *content_type, struct oh_blob *blob)
{
	return http_reply_buf(req, status, content_type, blob_buf(blob));
}

/* ---- leases ------------------------------------------------------------------------ */

/* Moved by every lease a plugin changes (oh_lease_generation); expiry is
 * told by the deadline itself. */
static unsigned long long lease_generation = 1;

static int lease_changed(int rc)
{
	if(rc == OH_OK)
		lease_generation++;
	return rc;
}

unsigned long long oh_lease_generation(oh_ctx *ctx)
{
	return lease_generation;
}

/* OH_OK for a key in the module's namespace, OH_ERR_INVAL for none at all,
 * OH_ERR_DENIED (logged) for another module's. */
static int own_key(const oh_ctx *ctx, const char *key)
{
	if(!key)
		return OH_ERR_INVAL;
	size_t n = strlen(ctx->module);
	if(!strncmp(key, ctx->module, n) && key[n] == ':' && key[n + 1])
		return OH_OK;
	oh_log((oh_ctx *)ctx, OH_LOG_ERROR, "lease key %s refused: must start with \"%s:\"", key, ctx->module);
	return OH_ERR_DENIED;
}

int oh_lease_take(oh_ctx *ctx, const char *key, const char *actor, double lease_s, struct oh_lease *out)
{
	int rc = own_key(ctx, key);
	if(rc)
		return rc;
	return lease_changed(leases_take(ctx->host->leases, key, actor, lease_s, out));
}

int oh_lease_renew(oh_ctx *ctx, const char *key, const char *actor, double lease_s, struct oh_lease *out)
{
	int rc = own_key(ctx, key);
	if(rc)
		return rc;
	return lease_changed(leases_renew(ctx->host->leases, key, actor, lease_s, out));
}

int oh_lease_release(oh_ctx *ctx, const char *key, const char *actor, struct oh_lease *out)
{
	int rc = own_key(ctx, key);
	if(rc)
		return rc;
	return lease_changed(leases_release(ctx->host->leases, key, actor, out));
}

int oh_lease_force_release(oh_ctx *ctx, const char *key, struct oh_lease *out)
{
	int rc = own_key(ctx, key);
	if(rc)
		return rc;
	return lease_changed(leases_force_release(ctx->host->leases, key, out));
}

int oh_lease_can_use(oh_ctx *ctx, const char *key, const char *actor, struct oh_lease *out)
{
	return leases_can_use(ctx->host->leases, key, actor, out);
}

int oh_lease_get(oh_ctx *ctx, const char *key, struct oh_lease *out)
{
	return leases_get(ctx->host->leases, key, out);
}

int oh_lease_on_expire(oh_ctx *ctx, oh_lease_expired_fn fn, void *ud)
{
	ctx->lease_expired = fn;
	ctx->lease_expired_ud = ud;
	return OH_OK;
}

/* ---- timers ----------------------------------------------------------------------- */

/*
 * A plugin's timer handle is an id, not the address of the host's record:
 * a one-shot timer is freed when it fires, and a plugin that cancels it
 * afterwards (or after teardown) must find nothing rather than freed
 * memory, or worse a new timer that malloc put at the same address.  The
 * ids come from one 64-bit counter, never reused while the host runs, and
 * are looked up in the context's table, so a stale handle is simply not
 * found.  The table is open addressing with
 * linear probing: the NDI plugin holds one timer per pending command, up
 * to limits.max_pending, and cancels them one by one.
 */

struct plugin_timer {
	oh_ctx *ctx;
	struct event *ev;
	oh_timer_fn fn;
	void *ud;
	oh_timer_id id; /* what the plugin holds */
	bool repeat;
};

struct plugin_timers {
	struct plugin_timer **slots;
	size_t cap; /* a power of two, or 0 before the first timer */
	size_t n;
};

#define TIMERS_MIN_CAP 16

static size_t timer_slot(oh_timer_id id, size_t cap)
{
	/* Fibonacci hashing: consecutive ids spread over the table. */
	return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

/* The index of id's slot, or of the empty slot where it would go. */
static size_t timers_probe(const struct plugin_timers *tt, oh_timer_id id)
{
	size_t i = timer_slot(id, tt->cap);
	while(tt->slots[i] && tt->slots[i]->id != id)
		i = (i + 1) & (tt->cap - 1);
	return i;
}

static struct plugin_timer *timers_find(const struct plugin_timers *tt, oh_timer_id id)
{
	if(!tt || !tt->n || !id)
		return NULL;
	return tt->slots[timers_probe(tt, id)];
}

/* Moves every timer into a table of cap slots; false (nothing changed)
 * when that cannot be allocated. */
static bool timers_rehash(struct plugin_timers *tt, size_t cap)
{
	struct plugin_timer **slots = calloc(cap, sizeof *slots);
	if(!slots)
		return false;
	struct plugin_timers grown = {slots, cap, 0};
	for(size_t i = 0; i < tt->cap; i++) {
		if(tt->slots[i])
			slots[timers_probe(&grown, tt->slots[i]->id)] = tt->slots[i];
	}
	free(tt->slots);
	tt->slots = slots;
	tt->cap = cap;
	return true;
}

static int timers_insert(struct plugin_timers *tt, struct plugin_timer *t)
{
	/* At most half full, so probes stay short. */
	if((tt->n + 1) * 2 > tt->cap && !timers_rehash(tt, tt->cap ? tt->cap * 2 : TIMERS_MIN_CAP))
		return OH_ERR_NOMEM;
	tt->slots[timers_probe(tt, t->id)] = t;
	tt->n++;
	return OH_OK;
}

static void timers_remove(struct plugin_timers *tt, const struct plugin_timer *t)
{
	size_t i = timers_probe(tt, t->id);
	if(tt->slots[i] != t)
		return;
	/* Backward-shift deletion: pull later members of the probe run into
	 * the hole, so lookups never stop early at it. */
	size_t mask = tt->cap - 1, j = i;
	tt->slots[i] = NULL;
	for(;;) {
		j = (j + 1) & mask;
		if(!tt->slots[j])
			break;
		size_t home = timer_slot(tt->slots[j]->id, tt->cap);
		/* Stays when its home lies cyclically in (i, j]. */
		if(i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		tt->slots[i] = tt->slots[j];
		tt->slots[j] = NULL;
		i = j;
	}
	tt->n--;
	/* A burst of timers drained: give the table back (failure is fine). */
	if(tt->cap > TIMERS_MIN_CAP && tt->n * 8 < tt->cap)
		timers_rehash(tt, tt->cap / 2);
}

static void timer_free(struct plugin_timer *t)
{
	timers_remove(t->ctx->timers, t);
	event_free(t->ev);
	free(t);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct plugin_timer *t = arg;
	oh_ctx *ctx = t->ctx;
	oh_timer_fn fn = t->fn;
	void *ud = t->ud;
	/* A one-shot timer is gone before its callback runs, so the callback
	 * may add timers (or unload) freely, and cancelling its handle later
	 * finds nothing. */
	if(!t->repeat)
		timer_free(t);
	fn(ctx, ud);
}

/* A fresh id, never 0 and never handed out before: the counter is shared
 * by all plugins, and 2^64 adds outlast any host. */
static oh_timer_id timer_new_id(void)
{
	static oh_timer_id counter;
	return ++counter;
}

oh_timer_id oh_timer_add(oh_ctx *ctx, unsigned ms, bool repeat, oh_timer_fn fn, void *ud)
{
	if(!fn)
		return OH_TIMER_NONE;
	if(!ctx->timers && !(ctx->timers = calloc(1, sizeof *ctx->timers)))
		return OH_TIMER_NONE;
	struct plugin_timer *t = calloc(1, sizeof *t);
	if(!t)
		return OH_TIMER_NONE;
	t->ctx = ctx;
	t->fn = fn;
	t->ud = ud;
	t->repeat = repeat;
	t->id = timer_new_id();
	t->ev = event_new(ctx->host->base, -1, repeat ? EV_PERSIST : 0, on_timer, t);
	if(!t->ev)
		goto out_timer;
	struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
	if(event_add(t->ev, &tv))
		goto out_event;
	if(timers_insert(ctx->timers, t))
		goto out_event;
	return t->id;

out_event:
	event_free(t->ev);
out_timer:
	free(t);
	return OH_TIMER_NONE;
}

void oh_timer_cancel(oh_ctx *ctx, oh_timer_id timer)
{
	/* Unknown, fired, cancelled or another plugin's: nothing to do. */
	struct plugin_timer *t = ctx ? timers_find(ctx->timers, timer) : NULL;
	if(t)
		timer_free(t);
}

size_t plugin_timers_count(const oh_ctx *ctx)
{
	return ctx->timers ? ctx->timers->n : 0;
}

void plugin_timers_free(oh_ctx *ctx)
{
	struct plugin_timers *tt = ctx->timers;
	if(!tt)
		return;
	for(size_t i = 0; i < tt->cap; i++) {
		struct plugin_timer *t = tt->slots[i];
		if(t) {
			event_free(t->ev);
			free(t);
		}
	}
	free(tt->slots);
	free(tt);
	ctx->timers = NULL;
}

/* ---- limits and memory ------------------------------------------------------------- */

long oh_limit(const oh_ctx *ctx, const char *name)
{
	return config_limit(&ctx->host->cfg, name);
}

void oh_memory_trim(oh_ctx *ctx)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* ---- HTTP and UI --------------------------------------------------------------------- */

int oh_route(oh_ctx *ctx, const char *method, const char *path, oh_http_fn fn, void *ud, const char *openapi)
{
	char full[512];
	int rc = http_plugin_path(ctx, path, full, sizeof full);
	return rc ? rc : http_route_add(ctx->host->http, ctx, method, full, fn, ud, openapi);
}

int oh_ui_page(oh_ctx *ctx, const char *title, const char *html, const char *script)
{
	if(!title || !html)
		return OH_ERR_INVAL;
	free(ctx->ui_title);
	free(ctx->ui_html);
	free(ctx->ui_script);
	ctx->ui_title = strdup(title);
	ctx->ui_html = strdup(html);
	ctx->ui_script = script ? strdup(script) : NULL;
	if(!ctx->ui_title || !ctx->ui_html || (script && !ctx->ui_script))
		return OH_ERR_NOMEM;
	return OH_OK;
}

/* ---- the audit trail ---------------------------------------------------------- */

int oh_audit_record(oh_ctx *ctx, const struct oh_audit_record *rec)
{
	if(!rec || !rec->kind || !rec->action || (rec->detail && !json_is_object(rec->detail)) ||
			(strcmp(rec->kind, "route") && strcmp(rec->kind, "command")))
		return OH_ERR_INVAL;
	const char *token = http_current_token();
	struct audit_rec r = {.kind = rec->kind,
			.action = rec->action,
			.actor = rec->actor,
			.requested_by = rec->requested_by,
			.token = token,
			.device_id = rec->device_id,
			.module = ctx->module,
			.req_id = rec->req_id,
			.code = rec->code,
			.error = rec->error,
			.detail = rec->detail,
			.latency_ms = rec->latency_ms >= 0 ? rec->latency_ms : -1};
	audit_record(ctx->host, &r);
	return OH_OK;
}
