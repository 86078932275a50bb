/*
 * The host's own REST routes: health, the registry, one device, the
 * plugins, and the OpenAPI description of everything mounted.
 */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "ident.h"
#include "mqtt_link.h"
#include "shared_buf.h"
#include "snapshot.h"
#include "timeutil.h"

static void get_healthz(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	bool up = mqtt_link_connected(h->link);
	json_t *body = json_pack("{s:s, s:I, s:I, s:o, s:s}", "mqtt", up ? "connected" : "disconnected",
			"uptime_s", (json_int_t)(time_now_mono() - h->started_mono), "devices",
			(json_int_t)registry_size(h->registry), "plugins", plugins_status_json(h), "version",
			OH_VERSION);
	if(up)
		json_object_set_new(body, "mqtt_protocol", json_string(mqtt_link_protocol(h->link)));
	else
		json_object_set_new(body, "mqtt_error", json_string(mqtt_link_last_error(h->link)));
	/* Pages adapt: with tokens the token's name is the actor. */
	json_object_set_new(body, "auth", json_string(h->cfg.http.n_tokens ? "tokens" : "none"));
	ha_health(h, body);
	oh_reply_json(req, up ? 200 : 503, body);
}

static void get_registry(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	const char *since = oh_req_query(req, "since");
	if(!since) {
		oh_reply_snapshot(req); /* with its ETag and gzip copy */
		return;
	}
	char *end;
	errno = 0;
	unsigned long long seq = strtoull(since, &end, 10);
	if(since[0] < '0' || since[0] > '9' || *end || errno) {
		oh_reply_error(req, 400, "BAD_REQUEST",
				"since: expected a snapshot seq (a whole number), got \"%.40s\"", since);
		return;
	}
	struct shared_buf *body = NULL;
	bool whole = true;
	if(snapshot_delta(h->snapshot, (uint64_t)seq, &body, &whole)) {
		oh_reply_error(req, 500, "INTERNAL", "out of memory building the delta");
		return;
	}
	/* The whole is the shared snapshot (ETag, gzip); a delta is built for
	 * this request alone. */
	if(whole)
		http_reply_buf(req, 200, "application/json", body);
	else
		http_reply_copy(req, 200, "application/json", body->data, body->len);
	http_req_add_header(req, "X-Registry-Delta", whole ? "false" : "true");
	shared_buf_unref(body);
}

static void get_device(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	const char *id = oh_req_param(req, "id");
	char *text = registry_device_json(h->registry, id);
	if(!text) {
		oh_reply_error(req, 404, "NOT_FOUND", "no device \"%s\" in the registry", id);
		return;
	}
	http_reply_copy(req, 200, "application/json", text, strlen(text));
	free(text);
}

/* DELETE /api/devices/{id}: forgets the device (registry_forget). */
static void delete_device(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	const char *id = oh_req_param(req, "id");
	if(!ident_device_id_valid(id, strlen(id))) {
		oh_reply_error(req, 400, "BAD_REQUEST",
				"id: \"%s\" is not a device id (" IDENT_DEVICE_ID_RULE ")", id);
		return;
	}
	json_t *cleared = NULL;
	/* Without tokens nobody is named: the record says so rather than
	 * blaming the host. */
	const char *actor = oh_req_actor(req) ? oh_req_actor(req) : "an unauthenticated client";
	int rc = registry_forget(h->registry, id, actor, "DELETE /api/devices/{id}", &cleared);
	if(rc == OH_ERR_NOT_FOUND)
		oh_reply_error(req, 404, "NOT_FOUND", "no device \"%s\" in the registry", id);
	else if(rc == OH_ERR_NO_CONN)
		oh_reply_error(req, 503, "NO_BROKER",
				"the broker is not connected: %s's retained topics cannot be cleared", id);
	else if(rc)
		oh_reply_error(req, 500, "INTERNAL", "forgetting %s: %s", id, oh_strerror(rc));
	else
		oh_reply_json(req, 200,
				json_pack("{s:s, s:b, s:o}", "device_id", id, "forgotten", 1, "cleared",
						cleared));
}

/* GET /healthz, whether the broker is connected (200) or not (503). */
#define HEALTH_SCHEMA                                                                                             \
	"{\"type\": \"object\", \"required\": [\"mqtt\", \"uptime_s\", \"devices\", \"plugins\","                 \
	" \"version\", \"auth\"], \"properties\": {\"mqtt\": {\"type\": \"string\", \"enum\":"                    \
	" [\"connected\", \"disconnected\"]}, \"mqtt_error\": {\"type\": \"string\"},"                            \
	" \"mqtt_protocol\": {\"type\": \"string\", \"enum\": [\"5\", \"3.1.1\"], \"description\":"               \
	" \"the MQTT version of the connection, while connected\"},"                                              \
	" \"uptime_s\": {\"type\": \"integer\", \"minimum\": 0}, \"devices\": {\"type\": \"integer\","            \
	" \"minimum\": 0}, \"plugins\": {\"type\": \"array\", \"items\": {\"$ref\":"                              \
	" \"#/components/schemas/PluginState\"}}, \"version\": {\"type\": \"string\"},"                           \
	" \"auth\": {\"type\": \"string\", \"enum\": [\"tokens\", \"none\"], \"description\":"                    \
	" \"tokens: /api/... needs a bearer token\"}, \"role\": {\"type\": \"string\", \"enum\":"                 \
	" [\"single\", \"leader\", \"standby\"], \"description\": \"docs/ha.md\"}, \"node_id\":"                  \
	" {\"type\": \"string\"}, \"leader\": {\"type\": \"object\", \"nullable\": true, \"properties\":"         \
	" {\"node_id\": {\"type\": \"string\"}, \"advertise_url\": {\"type\": \"string\", \"nullable\": true}}}," \
	" \"standby_reason\": {\"type\": \"string\"}, \"store\": {\"type\": \"object\", \"properties\":"          \
	" {\"backend\": {\"type\": \"string\", \"enum\": [\"sqlite\", \"postgresql\"]}, \"state\":"               \
	" {\"type\": \"string\", \"enum\": [\"connected\", \"disconnected\"]}, \"error\":"                        \
	" {\"type\": \"string\"}}}}}"

static void get_openapi(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	oh_reply_json(req, 200, http_openapi(h->http));
}

int api_core_register(struct host *h)
{
	static const struct {
		const char *method, *path;
		oh_http_fn fn;
		const char *openapi;
	} routes[] = {
			{"GET", "/healthz", get_healthz,
					"{\"summary\": \"Broker connection, uptime and plugin state\","
					" \"responses\": {\"200\": {\"description\": \"connected to the broker\","
					" \"content\": {\"application/json\": {\"schema\": " HEALTH_SCHEMA "}}},"
					" \"503\": {\"description\": \"broker not connected (mqtt_error says why)\","
					" \"content\": {\"application/json\": {\"schema\": " HEALTH_SCHEMA
					"}}}}}"},
			{"GET", "/api/registry", get_registry,
					"{\"summary\": \"The registry snapshot: devices, locks, modules, ts, seq\","
					" \"description\": \"The snapshot retained on {root}/orchestrator/registry. With"
					" ?since=SEQ (the seq of a snapshot or delta the client has) only what changed after"
					" it (RegistryDelta), or the whole snapshot when SEQ is older than the removals the"
					" host remembers (4096) or newer than its current seq (an earlier run);"
					" X-Registry-Delta says which. The snapshot has an ETag (304 to If-None-Match while"
					" it is unchanged) and a gzip copy made once per snapshot.\","
					" \"parameters\": [{\"name\": \"since\", \"in\": \"query\", \"required\": false,"
					" \"schema\": {\"type\": \"integer\", \"minimum\": 0}, \"description\": \"a snapshot"
					" seq: answer with the changes after it\"},"
					" {\"$ref\": \"#/components/parameters/IfNoneMatch\"},"
					" {\"$ref\": \"#/components/parameters/AcceptEncoding\"}],"
					" \"responses\": {\"200\": {\"description\": \"the snapshot, or with since a delta\","
					" \"headers\": {\"ETag\": {\"$ref\": \"#/components/headers/ETag\"},"
					" \"Vary\": {\"$ref\": \"#/components/headers/Vary\"},"
					" \"Content-Encoding\": {\"$ref\": \"#/components/headers/ContentEncoding\"},"
					" \"X-Registry-Delta\": {\"schema\": {\"type\": \"string\", \"enum\": [\"true\","
					" \"false\"]}, \"description\": \"with since: true for a delta, false for the whole"
					" snapshot\"}}, \"content\": {\"application/json\": {\"schema\": {\"anyOf\": [{\"$ref\":"
					" \"#/components/schemas/Registry\"}, {\"$ref\": \"#/components/schemas/RegistryDelta\"}]}}}},"
					" \"304\": {\"description\": \"If-None-Match named the snapshot's ETag: unchanged\","
					" \"headers\": {\"ETag\": {\"$ref\": \"#/components/headers/ETag\"},"
					" \"Vary\": {\"$ref\": \"#/components/headers/Vary\"}}},"
					" \"400\": {\"description\": \"BAD_REQUEST: since is not a whole number\"},"
					" \"500\": {\"description\": \"INTERNAL: out of memory building it\"}}}"},
			{"GET", "/api/devices/{id}", get_device,
					"{\"summary\": \"One device's merged meta and status\","
					" \"parameters\": [{\"name\": \"id\", \"in\": \"path\", \"required\": true,"
					" \"schema\": {\"type\": \"string\"}}],"
					" \"responses\": {\"200\": {\"description\": \"the device\", \"content\":"
					" {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Device\"}}}},"
					" \"404\": {\"description\": \"NOT_FOUND: no such device in the registry\"}}}"},
			{"DELETE", "/api/devices/{id}", delete_device,
					"{\"summary\": \"Forget a device: clear its retained topics, release its leases\","
					" \"description\": \"Publishes empty retained messages on the device's meta, status and"
					" each {module}/status it was heard on or lists in modules, tells the plugins (leases),"
					" and drops it from the registry and the store. A live device comes back when it next"
					" publishes its meta.\","
					" \"parameters\": [{\"name\": \"id\", \"in\": \"path\", \"required\": true,"
					" \"schema\": {\"type\": \"string\"}}],"
					" \"responses\": {\"200\": {\"description\": \"forgotten\", \"content\":"
					" {\"application/json\": {\"schema\": {\"type\": \"object\", \"required\":"
					" [\"device_id\", \"forgotten\", \"cleared\"], \"properties\": {\"device_id\":"
					" {\"type\": \"string\"}, \"forgotten\": {\"type\": \"boolean\"}, \"cleared\":"
					" {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"description\":"
					" \"the retained topics cleared\"}}}}}},"
					" \"400\": {\"description\": \"BAD_REQUEST: not a device id\"},"
					" \"404\": {\"description\": \"NOT_FOUND: no such device in the registry\"},"
					" \"503\": {\"description\": \"NO_BROKER: the broker is not connected\"}}}"},
			{"GET", "/openapi.json", get_openapi,
					"{\"summary\": \"This document\", \"responses\": {\"200\": {\"description\":"
					" \"OpenAPI 3.0, built from the routes mounted now\", \"content\": {\"application/json\":"
					" {\"schema\": {\"type\": \"object\", \"required\": [\"openapi\", \"info\", \"paths\"],"
					" \"properties\": {\"openapi\": {\"type\": \"string\"}, \"info\": {\"type\": \"object\"},"
					" \"paths\": {\"type\": \"object\"}}}}}}}}"},
	};
	for(size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		int rc = http_route_add(h->http, NULL, routes[i].method, routes[i].path, routes[i].fn, h,
				routes[i].openapi);
		if(rc)
			return rc;
	}
	/* Forgetting clears what devices published: the admin's to do. */
	int rc = http_route_require(h->http, "DELETE", "/api/devices/{id}", OH_ROLE_ADMIN);
	if(!rc)
		rc = api_plugins_register(h);
	if(!rc)
		rc = api_metrics_register(h);
	if(!rc)
		rc = api_audit_register(h);
	return rc ? rc : api_ui_register(h);
}
