/*
 * The services of include/oh/host.h, as seen from a plugin's context.
 *
 * This is where the module namespace is enforced: topics, routes and lease
 * keys outside "{module}" are refused here, once, rather than trusted in
 * every plugin.
 */
#include "plugin_ctx.h"

#include <event2/event.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "ident.h"
#include "log.h"
#include "shared_buf.h"
#include "topic_tree.h"

const char *oh_module(const oh_ctx *ctx) { return ctx->module; }
const char *oh_topic_root(const oh_ctx *ctx) { return ctx->host->cfg.topic_root; }
void *oh_data(const oh_ctx *ctx) { return ctx->data; }

void oh_set_data(oh_ctx *ctx, void *data, void (*free_fn)(void *))
{
	ctx->data = data;
	ctx->free_data = free_fn;
}

void oh_log(oh_ctx *ctx, enum oh_log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg((enum log_level)lvl, ctx->module, fmt, ap);
	va_end(ap);
}

int oh_fail(oh_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
	va_end(ap);
	return OH_ERR_INVAL;
}

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
		oh_log(ctx, OH_LOG_ERROR, "subscription to %s refused: not under %s", filter ? filter : "(null)",
				ctx->host->cfg.topic_root);
		return OH_ERR_INVAL;
	}
	return dispatch_subscribe(ctx->host->dispatch, ctx, filter, qos, fn, ud);
}

/* {root}/orchestrator/{module}/... or {root}/device/{id}/{module}/... */
static bool in_namespace(const oh_ctx *ctx, const char *topic)
{
	if(!strncmp(topic, ctx->own_prefix, strlen(ctx->own_prefix)))
		return true;
	if(!under_root(ctx, topic))
		return false;
	const char *rest = topic + strlen(ctx->host->cfg.topic_root);
	if(strncmp(rest, "/device/", 8))
		return false;
	const char *id_end = strchr(rest + 8, '/');
	if(!id_end || id_end == rest + 8)
		return false;
	size_t n = strlen(ctx->module);
	return !strncmp(id_end + 1, ctx->module, n) && id_end[1 + n] == '/';
}

int oh_publish(oh_ctx *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
	if(!topic || !topic_name_valid(topic) || qos < 0 || qos > 2)
		return OH_ERR_INVAL;
	if(!in_namespace(ctx, topic)) {
		oh_log(ctx, OH_LOG_ERROR, "publish to %s refused: outside the %s namespace", topic, ctx->module);
		return OH_ERR_DENIED;
	}
	return host_publish(ctx->host, topic, payload, len, qos, retain);
}

int oh_publish_json(oh_ctx *ctx, const char *topic, const json_t *payload, int qos, bool retain)
{
	char *text = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
	if(!text)
		return OH_ERR_NOMEM;
	int rc = oh_publish(ctx, topic, text, strlen(text), qos, retain);
	free(text);
	return rc;
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
	struct shared_buf *snap = registry_snapshot(h->registry);
	if(!snap)
		return oh_reply_error(req, 500, "INTERNAL", "snapshot unavailable");
	int rc = http_reply_buf(req, 200, "application/json", snap);
	shared_buf_unref(snap);
	return rc;
}

int oh_reply_raw(struct oh_http_req *req, unsigned status, const char *content_type,
		const void *data, size_t len)
{
	return http_reply_copy(req, status, content_type, data, len);
}

/* ---- leases ------------------------------------------------------------------------ */

static bool own_key(const oh_ctx *ctx, const char *key)
{
	size_t n = strlen(ctx->module);
	if(key && !strncmp(key, ctx->module, n) && key[n] == ':' && key[n + 1])
		return true;
	oh_log((oh_ctx *)ctx, OH_LOG_ERROR, "lease key %s refused: must start with \"%s:\"",
			key ? key : "(null)", ctx->module);
	return false;
}

int oh_lease_take(oh_ctx *ctx, const char *key, const char *actor, double lease_s, struct oh_lease *out)
{
	if(!own_key(ctx, key))
		return OH_ERR_DENIED;
	return leases_take(ctx->host->leases, key, actor, lease_s, out);
}

int oh_lease_renew(oh_ctx *ctx, const char *key, const char *actor, double lease_s, struct oh_lease *out)
{
	if(!own_key(ctx, key))
		return OH_ERR_DENIED;
	return leases_renew(ctx->host->leases, key, actor, lease_s, out);
}

int oh_lease_release(oh_ctx *ctx, const char *key, const char *actor, struct oh_lease *out)
{
	if(!own_key(ctx, key))
		return OH_ERR_DENIED;
	return leases_release(ctx->host->leases, key, actor, out);
}

int oh_lease_force_release(oh_ctx *ctx, const char *key, struct oh_lease *out)
{
	if(!own_key(ctx, key))
		return OH_ERR_DENIED;
	return leases_force_release(ctx->host->leases, key, out);
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

static void timer_unlink(struct oh_timer *t)
{
	oh_ctx *ctx = t->ctx;
	if(t->prev)
		t->prev->next = t->next;
	else
		ctx->timers = t->next;
	if(t->next)
		t->next->prev = t->prev;
}

static void timer_free(struct oh_timer *t)
{
	timer_unlink(t);
	event_free(t->ev);
	free(t);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct oh_timer *t = arg;
	oh_ctx *ctx = t->ctx;
	oh_timer_fn fn = t->fn;
	void *ud = t->ud;
	/* A one-shot timer is gone before its callback runs, so the callback
	 * may add timers (or unload) freely. */
	if(!t->repeat)
		timer_free(t);
	fn(ctx, ud);
}

struct oh_timer *oh_timer_add(oh_ctx *ctx, unsigned ms, bool repeat, oh_timer_fn fn, void *ud)
{
	if(!fn)
		return NULL;
	struct oh_timer *t = calloc(1, sizeof *t);
	if(!t)
		return NULL;
	t->ctx = ctx;
	t->fn = fn;
	t->ud = ud;
	t->repeat = repeat;
	t->ev = event_new(ctx->host->base, -1, repeat ? EV_PERSIST : 0, on_timer, t);
	if(!t->ev) {
		free(t);
		return NULL;
	}
	t->next = ctx->timers;
	if(ctx->timers)
		ctx->timers->prev = t;
	ctx->timers = t;
	struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
	event_add(t->ev, &tv);
	return t;
}

void oh_timer_cancel(oh_ctx *ctx, struct oh_timer *t)
{
	if(t && t->ctx == ctx)
		timer_free(t);
}

void plugin_timers_free(oh_ctx *ctx)
{
	while(ctx->timers)
		timer_free(ctx->timers);
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

int oh_route(oh_ctx *ctx, const char *method, const char *path, oh_http_fn fn, void *ud,
		const char *openapi)
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
