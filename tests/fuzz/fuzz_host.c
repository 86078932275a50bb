/*
 * A host without sockets for the fuzz targets (fuzz_host.h).
 */
#include "fuzz_host.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http.h"
#include "http_internal.h"
#include "mqtt_link.h"
#include "plugin_ctx.h"
#include "scheduler.h"
#include "snapshot.h"
#include "topic_tree.h"

#define CLOCK_START 1893456000.0 /* 2030-01-01T00:00:00Z */

double fuzz_host_now = CLOCK_START;

static double fake_clock(void)
{
	return fuzz_host_now;
}

/*
 * Everything the host publishes ends here instead of in libmosquitto (the
 * link is linked with --wrap, see CMakeLists.txt): as if the broker took
 * it, so the code after a successful publish runs too (a link that never
 * connected refuses every publish).  What would go out must be a valid
 * topic under the root carrying a JSON object, or empty.
 */
int __wrap_mqtt_link_publish_expiring(struct mqtt_link *link, const char *topic, const void *payload,
		size_t len, int qos, bool retain, unsigned expiry_s, int *mid);
int __wrap_mqtt_link_publish_expiring(struct mqtt_link *link, const char *topic, const void *payload,
		size_t len, int qos, bool retain, unsigned expiry_s, int *mid)
{
	static int next_mid;
	FUZZ_CHECK(topic_name_valid(topic) && !strncmp(topic, "/lab/", 5));
	FUZZ_CHECK(qos >= 0 && qos <= 1);
	if(len) {
		json_error_t err;
		json_t *doc = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &err);
		if(!doc)
			fprintf(stderr, "published on %s: %s: %.*s\n", topic, err.text, (int)len,
					(const char *)payload);
		FUZZ_CHECK(json_is_object(doc));
		json_decref(doc);
	}
	if(mid)
		*mid = ++next_mid;
	return OH_OK;
}

void fuzz_host_start(struct host *h, const struct fuzz_host_opts *o)
{
	char err[512];
	memset(h, 0, sizeof *h);
	fuzz_host_now = CLOCK_START;
	if(config_load(&h->cfg, NULL, err, sizeof err)) {
		fprintf(stderr, "fuzz host: %s\n", err);
		abort();
	}
	/* Small, so that a seed can go over it without being big itself. */
	h->cfg.max_payload_bytes = 4096;
	/* mDNS would talk to avahi over D-Bus on every input. */
	for(size_t i = 0; i < h->cfg.n_plugins; i++)
		json_object_set_new(h->cfg.plugins[i].settings, "mdns", json_false());
	h->base = event_base_new();
	h->store = o->store;
	h->dispatch = dispatch_new(h);
	h->registry = registry_new(h);
	h->leases = leases_new(h);
	h->snapshot = h->registry && h->leases ? snapshot_new(h) : NULL;
	h->http = http_server_new(h);
	if(!h->base || !h->dispatch || !h->registry || !h->leases || !h->snapshot || !h->http)
		abort();
	leases_set_expired_handler(h->leases, plugins_lease_expired);
	struct mqtt_link_opts mo = {.host = "127.0.0.1",
			.port = 1,
			.client_id = "fuzz",
			.keepalive_s = 30,
			.log_prefix = "mqtt"};
	struct mqtt_link_callbacks cb = {0};
	h->link = mqtt_link_new(h->base, &mo, &cb, h);
	if(!h->link || registry_start(h->registry) || scheduler_init(h))
		abort();
	h->scheduler->now = fake_clock;
	if(o->plugins) {
		if(plugins_load_all(h))
			abort();
		for(size_t i = 0; i < h->n_plugins; i++) {
			if(!h->plugins[i]->loaded) {
				fprintf(stderr, "fuzz host: plugin %s: %s\n", h->plugins[i]->module,
						h->plugins[i]->error);
				abort();
			}
		}
	}
	if(leases_load(h->leases) || scheduler_load(h->scheduler))
		abort();
}

void fuzz_host_stop(struct host *h)
{
	if(h->plugins)
		plugins_unload_all(h);
	scheduler_free(h->scheduler);
	http_server_free(h->http);
	mqtt_link_free(h->link);
	snapshot_free(h->snapshot);
	leases_free(h->leases);
	registry_free(h->registry);
	dispatch_free(h->dispatch);
	events_free(h);
	event_base_free(h->base);
	config_free(&h->cfg);
	memset(h, 0, sizeof *h);
}

static void mqtt_line(struct host *h, const char *line)
{
	bool retained = line[0] == '!';
	const char *topic = line + retained;
	const char *tab = strchr(topic, '\t');
	size_t tlen = tab ? (size_t)(tab - topic) : strlen(topic);
	char *t = strndup(topic, tlen);
	if(!t)
		abort();
	const char *payload = tab ? tab + 1 : "";
	dispatch_on_message(h->dispatch, t, payload, strlen(payload), retained);
	free(t);
}

static unsigned http_line(struct host *h, const char *line)
{
	const char *sp = strchr(line, ' ');
	if(!h->http || !sp)
		return 0;
	const char *target = sp + 1, *tab = strchr(target, '\t');
	const char *body = tab ? tab + 1 : "";
	struct oh_http_req *req = calloc(1, sizeof *req);
	if(!req)
		abort();
	req->server = h->http;
	req->method = strndup(line, (size_t)(sp - line));
	req->path = strndup(target, tab ? (size_t)(tab - target) : strlen(target));
	if(!req->method || !req->path)
		abort();
	/* http.c refuses a path that is not canonical before anything else;
	 * the query string is MHD's, which this request has none of. */
	req->path[strcspn(req->path, "?")] = '\0';
	/* Without tokens every caller is an admin (http.c, authenticate). */
	req->role = OH_ROLE_ADMIN;
	unsigned status = 0;
	bool wrong_method;
	char allow[128];
	struct route *r;
	if(http_path_problem(req->path))
		goto out;
	if(*body && !(req->json = json_loads(body, JSON_REJECT_DUPLICATES, NULL)))
		goto out; /* http.c answers 400 BAD_JSON itself */
	r = http__route_find(h->http, req, &wrong_method, allow, sizeof allow);
	/* The core's own routes act on the whole process (unloading plugins,
	 * event streams); the plugins' are what this target is about. */
	if(!r || !r->owner)
		goto out;
	req->route = r->metric_name;
	req->dispatched = true;
	req->in_handler = true;
	r->fn(r->owner, req, r->ud);
	req->in_handler = false;
	/* Every request is answered, or waits for something that will answer
	 * it (then the client leaves now). */
	FUZZ_CHECK(req->status || req->gone_fn);
	status = req->status;
	if(getenv("OH_FUZZ_LOG"))
		fprintf(stderr, "fuzz host: %s %s -> %u\n", req->method, req->path, status);
	if(req->gone_fn)
		req->gone_fn(req, req->gone_ud);
out:
	if(req->response)
		MHD_destroy_response(req->response);
	json_decref(req->json);
	free(req->segs_buf);
	free(req->method);
	free(req->path);
	free(req);
	return status;
}

unsigned fuzz_host_line(struct host *h, const char *line)
{
	if(line[0] == '/' || line[0] == '!') {
		mqtt_line(h, line);
		return 0;
	}
	return http_line(h, line);
}

void fuzz_host_run_jobs(struct host *h, int rounds)
{
	struct scheduler *s = h->scheduler;
	for(int i = 0; i < rounds && s->n; i++) {
		if((double)s->heap[0]->due > fuzz_host_now)
			fuzz_host_now = (double)s->heap[0]->due;
		sched__poll(s);
	}
}
