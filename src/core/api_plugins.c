/*
 * The plugins' REST surface: GET /api/plugins lists every configured plugin
 * (loaded or not, and why not), DELETE /api/plugins/{module} unloads one at
 * run time.
 *
 * Unloading is deferred to a fresh turn of the loop, so no plugin callback
 * can be on the stack when its shared object is closed, whoever asked.  The
 * reply waits for the unload and reports the plugin's new state.  A
 * shutdown can come first (SIGTERM right after the DELETE): the loop then
 * never runs the deferred unload, so the host runs what is still pending
 * from api_plugins_stop(), before it unloads the rest and closes HTTP.
 */
#include "plugin_ctx.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "oh/list.h"

static void get_plugins(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	oh_reply_json(req, 200, json_pack("{s:o}", "plugins", plugins_status_json(ud)));
}

/* The plugin's entry in plugins_status_json(); returned. */
static json_t *status_of(struct host *h, const char *module)
{
	json_t *all = plugins_status_json(h);
	size_t i;
	json_t *item;
	json_array_foreach(all, i, item)
	{
		if(!strcmp(json_string_value(json_object_get(item, "module")), module)) {
			json_incref(item);
			json_decref(all);
			return item;
		}
	}
	json_decref(all);
	return json_object();
}

struct pending_unload {
	struct oh_list_node link; /* in pending */
	struct host *host;
	struct event *ev;        /* the deferred turn */
	struct oh_http_req *req; /* NULL once the client left */
	char module[64];
	char actor[128]; /* the token's name, for the audit; "" without tokens */
};

/* Every unload not run yet, of every host (there is one outside tests). */
static struct oh_list pending;

static void unload_gone(struct oh_http_req *req, void *ud)
{
	struct pending_unload *p = ud;
	p->req = NULL;
}

static void pending_free(struct pending_unload *p)
{
	oh_list_remove(&pending, &p->link);
	event_free(p->ev);
	free(p);
}

static void do_unload(evutil_socket_t fd, short what, void *arg)
{
	struct pending_unload *p = arg;
	int rc = plugins_unload(p->host, p->module, p->actor[0] ? p->actor : NULL);
	if(p->req) {
		oh_req_on_gone(p->req, NULL, NULL);
		if(rc == OH_OK)
			oh_reply_json(p->req, 200, status_of(p->host, p->module));
		else if(rc == OH_ERR_NOT_HELD)
			oh_reply_error(p->req, 409, "NOT_LOADED", "plugin %s is not loaded", p->module);
		else
			oh_reply_error(p->req, 404, "NOT_FOUND", "no plugin %s", p->module);
	}
	pending_free(p);
}

void api_plugins_stop(struct host *h)
{
	struct oh_list_node *n = pending.first, *next;
	for(; n; n = next) {
		next = n->next;
		struct pending_unload *p = oh_list_entry(n, struct pending_unload, link);
		/* Run now, as the loop would have: outside any plugin callback,
		 * and the client still gets its answer while HTTP is up. */
		if(p->host == h)
			do_unload(-1, EV_TIMEOUT, p);
	}
}

static void delete_plugin(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	const char *module = oh_req_param(req, "module");
	oh_ctx *target = plugins_find(h, module);
	if(!target) {
		oh_reply_error(req, 404, "NOT_FOUND", "no plugin %s", module);
		return;
	}
	if(!target->loaded) {
		oh_reply_error(req, 409, "NOT_LOADED", "plugin %s is not loaded: %s", module, target->error);
		return;
	}
	struct pending_unload *p = calloc(1, sizeof *p);
	if(!p) {
		oh_reply_error(req, 500, "INTERNAL", "out of memory");
		return;
	}
	p->host = h;
	p->req = req;
	snprintf(p->module, sizeof p->module, "%s", module);
	snprintf(p->actor, sizeof p->actor, "%s", oh_req_actor(req) ? oh_req_actor(req) : "");
	static const struct timeval now = {0, 0};
	p->ev = evtimer_new(h->base, do_unload, p);
	if(!p->ev || evtimer_add(p->ev, &now)) {
		if(p->ev)
			event_free(p->ev);
		free(p);
		oh_reply_error(req, 500, "INTERNAL", "cannot schedule the unload");
		return;
	}
	oh_list_push_front(&pending, &p->link);
	/* Reply later, from do_unload. */
	oh_req_on_gone(req, unload_gone, p);
}

int api_plugins_register(struct host *h)
{
	int rc = http_route_add(h->http, NULL, "GET", "/api/plugins", get_plugins, h,
			"{\"summary\": \"Configured plugins, whether each loaded, and why not\","
			" \"responses\": {\"200\": {\"description\": \"{plugins: [...]}\", \"content\":"
			" {\"application/json\": {\"schema\": {\"type\": \"object\", \"required\": [\"plugins\"],"
			" \"properties\": {\"plugins\": {\"type\": \"array\", \"items\":"
			" {\"$ref\": \"#/components/schemas/PluginState\"}}}}}}}}}");
	if(rc)
		return rc;
	rc = http_route_add(h->http, NULL, "DELETE", "/api/plugins/{module}", delete_plugin, h,
			"{\"summary\": \"Unload a plugin: its cleanup runs, then the host removes its"
			" subscriptions, routes, timers, lease watcher and UI page\","
			" \"parameters\": [{\"name\": \"module\", \"in\": \"path\", \"required\": true,"
			" \"schema\": {\"type\": \"string\"}}],"
			" \"responses\": {\"200\": {\"description\": \"unloaded; the plugin's new state\","
			" \"content\": {\"application/json\": {\"schema\":"
			" {\"$ref\": \"#/components/schemas/PluginState\"}}}},"
			" \"404\": {\"description\": \"NOT_FOUND: no such plugin\"},"
			" \"409\": {\"description\": \"NOT_LOADED: the plugin is not loaded\"},"
			" \"500\": {\"description\": \"INTERNAL: the unload could not be scheduled\"}}}");
	/* Unloading affects everyone: admins only when tokens are configured. */
	return rc ? rc : http_route_require(h->http, "DELETE", "/api/plugins/{module}", OH_ROLE_ADMIN);
}
