/*
 * The NDI plugin's REST API under /api/{module}/ and its page at /ui/{module}.
 *
 * Nothing here decides anything the MQTT path does not: commands and lease
 * operations go through ndi_run() (the same actions table, ndi_dispatch(),
 * the same lease functions and acks), and the reply is that ack, with its
 * code turned into an HTTP status by one table, http_status().  That ack
 * is also published on {root}/orchestrator/{module}/evt, as every MQTT
 * command's is, so subscribers see REST commands' DISPATCHED (or refusal)
 * before their outcome.  What REST adds is checked before: the body's shape
 * (a table per route, so every 400 names its field).  A device the registry
 * does not know, and a source discovery has not seen, are relayed with a
 * "warnings" entry, as on the MQTT path and from a scheduled job
 * (relay_warnings in ndi_commands.c): one verdict on every road.
 *
 * POST /send?wait=1 leaves the request open and attaches a completion
 * callback to the command in flight (ndi_pending_on_done): the device's
 * ack, a failure or the ack timeout answers it.  If the client leaves
 * first, oh_req_on_gone detaches the callback; if the plugin stops first,
 * the pending table answers 503.  Either way the waiter is freed exactly
 * once and neither side keeps a pointer to it.
 *
 * The requester is the API token's name when tokens are configured, else
 * the body's `actor` (default "api"); leases are held and checked under that
 * name, and devices see "actor": "orchestrator" with "requested_by" naming it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/host.h"
#include "oh/utf8.h"
#include "oh/validate.h"

#include "ndi.h"
#include "ndi_discovery.h"
#include "ndi_web.h"

#define REST_ACTOR "api"
#define ACTOR_MAX 120
#define REQ_ID_MAX OH_REQ_ID_MAX
#define SOURCE_MAX 1024

/* ---- ack codes -> HTTP statuses (the one place) ------------------------------ */

static const struct {
	const char *code;
	const char *action; /* NULL: any action */
	unsigned status;
} statuses[] = {
		{"OK", NULL, 200}, {"COMPLETED", NULL, 200},
		{"DISPATCHED", NULL, 202}, /* relayed; the device has not answered yet */
		{"BAD_JSON", NULL, 400}, {"BAD_REQUEST", NULL, 400}, {"BAD_ACTION", NULL, 400},
		{"DENIED", "force_release", 403}, /* not an admin */
		{"NOT_FOUND", NULL, 404},         /* no such device in the registry */
		{"DENIED", NULL, 409},            /* leased by another actor */
		{"OFFLINE", NULL, 409}, {"IN_USE", NULL, 409}, {"NOT_OWNER", NULL, 409},
		{"NOT_HELD", NULL, 409}, {"TOO_LARGE", NULL, 413},
		{"LIMIT", "reserve", 507}, /* limits.max_leases: leases are stored */
		{"LIMIT", "route", 507}, {"LIMIT", "apply_preset", 507},
		{"LIMIT", "preset", 507},                           /* stored too */
		{"LIMIT", NULL, 429},                               /* limits.max_pending(_per_device) */
		{"FAILED", NULL, 502},                              /* the device acked failure */
		{"UNAVAILABLE", NULL, 503}, {"TIMEOUT", NULL, 504}, /* no device ack within ack_timeout_s */
};

static unsigned http_status(const char *code, const char *action)
{
	for(size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		if(strcmp(statuses[i].code, code))
			continue;
		if(statuses[i].action && (!action || strcmp(statuses[i].action, action)))
			continue;
		return statuses[i].status;
	}
	return 500; /* ERROR and anything unforeseen */
}

/* Answers with an ack (borrowed): the ack itself on success, else the
 * API's error shape carrying the ack's code, text, req_id and details. */
static void reply_ack(struct oh_http_req *req, const json_t *ack)
{
	const char *code, *action, *msg;
	unsigned status;

	if(!ack) {
		oh_reply_error(req, 500, "ERROR", "out of memory");
		return;
	}
	code = json_string_value(json_object_get(ack, "code"));
	action = json_string_value(json_object_get(ack, "action"));
	if(!code)
		code = "ERROR";
	status = http_status(code, action);
	if(json_is_true(json_object_get(ack, "ok"))) {
		oh_reply_json(req, status, json_incref((json_t *)ack));
		return;
	}
	msg = json_string_value(json_object_get(ack, "error"));
	oh_reply_json(req, status,
			json_pack("{s:{s:s, s:s, s:O?, s:O?}}", "error", "code", code, "message",
					msg ? msg : code, "req_id", json_object_get(ack, "req_id"), "details",
					json_object_get(ack, "details")));
}

/* Runs the action as the command topic would (ndi_run) and publishes its
 * ack on the evt topic, as that topic does: every path publishes the same
 * acks.  Returns the ack (returned, json_decref) for the reply; NULL only
 * on NOMEM. */
static json_t *run_and_publish(struct ndi *n, const char *action, const json_t *params, const char *path,
		const char *actor, const char *req_id)
{
	json_t *ack = ndi_run(n, action, params, path, actor, req_id);

	if(ack)
		oh_ack_publish(n->ctx, json_incref(ack));
	return ack;
}

/* ---- request bodies ------------------------------------------------------------ */

#define F_ACTOR OH_VFIELD("actor", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = ACTOR_MAX)
#define F_REQ_ID OH_VFIELD("req_id", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = REQ_ID_MAX)

static const struct oh_vfield send_fields[] = {
		OH_VFIELD("device_id", OH_VT_STRING, OH_VF_REQUIRED, .check = oh_vcheck_device_id),
		OH_VFIELD("action", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 64),
		OH_VFIELD("source", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = SOURCE_MAX),
		OH_VFIELD("params", OH_VT_OBJECT, 0),
		F_ACTOR,
		F_REQ_ID,
		OH_VFIELD_END,
};
/* Unknown fields are refused, so a typo ("sorce": ...) is not silently
 * ignored. */
static const struct oh_vobject send_body = OH_VOBJECT(send_fields, OH_V_REFUSE);

/* A lease body is the action's params (checked by ndi_run against the
 * actions table, as on the command topic, which refuses unknown keys) plus
 * who asks and the request id, checked here. */
static const struct oh_vfield requester_fields[] = {F_ACTOR, F_REQ_ID, OH_VFIELD_END};
static const struct oh_vobject lease_body = OH_VOBJECT(requester_fields, OH_V_IGNORE);

/* Checks the body against spec; on failure answers 400 with the
 * validator's "{field}: {why}" and returns false. */
static bool body_check(struct oh_http_req *req, const json_t *body, const struct oh_vobject *spec)
{
	char err[256];

	if(!oh_json_validate(body, spec, "", NULL, err, sizeof(err)))
		return true;
	oh_reply_error(req, 400, "BAD_REQUEST", "%s", err);
	return false;
}

static const char *body_string(const json_t *body, const char *name)
{
	return json_string_value(json_object_get(body, name));
}

/* The lease identity: the authenticated caller once tokens exist, until
 * then the body's actor, else "api". */
static const char *requester(struct oh_http_req *req, const json_t *body)
{
	const char *who = oh_req_actor(req);

	if(!who)
		who = body_string(body, "actor");
	return who ? who : REST_ACTOR;
}

static bool query_flag(struct oh_http_req *req, const char *name)
{
	const char *v = oh_req_query(req, name);

	return v && (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"));
}

/* ---- GET routes -------------------------------------------------------------------- */

static void get_status(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	oh_reply_snapshot(req);
}

static void get_sources(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct ndi *n = ud;
	bool detail = query_flag(req, "detail");
	json_t *list = ndi_discovery_list(n->discovery, detail);

	if(!list) {
		oh_reply_error(req, 500, "ERROR", "out of memory");
		return;
	}
	if(detail) {
		oh_reply_json(req, 200,
				json_pack("{s:o, s:s}", "sources", list, "mdns",
						ndi_discovery_mdns_state(n->discovery)));
	} else {
		oh_reply_json(req, 200, json_pack("{s:o}", "sources", list));
	}
}

/* Built from the registry, the leases and the module statuses, per device
 * and in slices (ndi_devices.c); the body is shared by every reply. */
static void get_devices(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	ndi_devices_get(ud, req);
}

/* ---- POST /send and its waiters ------------------------------------------------------ */

struct waiter {
	struct ndi *n;
	struct oh_http_req *req;
	char device_id[NDI_DEVICE_ID_MAX + 1];
	char req_id[REQ_ID_MAX + 1];
};

/* The command ended (event) or the plugin is stopping (NULL). */
static void waiter_done(struct ndi *n, const json_t *event, void *ud)
{
	struct waiter *w = ud;

	oh_req_on_gone(w->req, NULL, NULL);
	if(event)
		reply_ack(w->req, event);
	else
		oh_reply_error(w->req, 503, "UNAVAILABLE", "the %s plugin stopped before %s acked",
				oh_module(n->ctx), w->device_id);
	free(w);
}

/* The client left first: the command stays tracked, nobody waits for it. */
static void waiter_gone(struct oh_http_req *req, void *ud)
{
	struct waiter *w = ud;

	ndi_pending_forget(w->n, w->device_id, w->req_id);
	free(w);
}

/* Keeps req open until the command's COMPLETED/FAILED/TIMEOUT.  false:
 * nothing is waiting (the caller answers with the DISPATCHED ack). */
static bool wait_for_ack(struct ndi *n, struct oh_http_req *req, const char *device_id, const json_t *ack)
{
	const char *req_id = json_string_value(json_object_get(ack, "req_id"));
	struct waiter *w;

	if(!req_id || strlen(req_id) > REQ_ID_MAX || !(w = calloc(1, sizeof(*w))))
		return false;
	w->n = n;
	w->req = req;
	snprintf(w->device_id, sizeof(w->device_id), "%s", device_id);
	snprintf(w->req_id, sizeof(w->req_id), "%s", req_id);
	if(ndi_pending_on_done(n, device_id, req_id, waiter_done, w)) {
		free(w);
		return false;
	}
	oh_req_on_gone(req, waiter_gone, w);
	return true;
}

static void post_send(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct ndi *n = ud;
	const json_t *body = oh_req_body(req);
	const char *device_id, *action, *code;
	json_t *params, *ack;

	if(!body_check(req, body, &send_body))
		return;
	device_id = body_string(body, "device_id");
	action = body_string(body, "action");
	if(!action)
		action = "start";
	if(!ndi_action_relayed(action)) {
		/* The command topic's text: /send relays only, so a lease
		 * action is as unknown here as "fly". */
		oh_reply_error(req, 400, "BAD_ACTION", "action: unknown action \"%.*s\"",
				oh_utf8_cut(action, 64), action);
		return;
	}
	/* The device's params: the body's params, its source and device_id. */
	params = json_object_get(body, "params") ? json_deep_copy(json_object_get(body, "params"))
						 : json_object();
	if(!params || json_object_set_new(params, "device_id", json_string(device_id)) ||
			(body_string(body, "source") &&
					json_object_set_new(params, "source",
							json_string(body_string(body, "source"))))) {
		json_decref(params);
		oh_reply_error(req, 500, "ERROR", "out of memory");
		return;
	}
	/* A device the registry does not know, or a source the host's
	 * discovery has not seen, goes out too, with a warning in the ack: the
	 * device may well be alive, and see the source (ndi_dispatch). */
	ack = run_and_publish(n, action, params, "params", requester(req, body), body_string(body, "req_id"));
	json_decref(params);
	code = ack ? json_string_value(json_object_get(ack, "code")) : NULL;
	if(code && !strcmp(code, "DISPATCHED") && query_flag(req, "wait") &&
			wait_for_ack(n, req, device_id, ack)) {
		json_decref(ack);
		return;
	}
	reply_ack(req, ack);
	json_decref(ack);
}

/* ---- lease routes ----------------------------------------------------------------- */

static void lease_route(struct ndi *n, struct oh_http_req *req, const char *action)
{
	const json_t *body = oh_req_body(req);
	json_t *params, *ack;

	if(!body_check(req, body, &lease_body))
		return;
	/* What is left are the action's params, named as the body's fields. */
	params = json_copy((json_t *)body);
	if(params) {
		json_object_del(params, "actor");
		json_object_del(params, "req_id");
	}
	ack = params ? run_and_publish(n, action, params, "", requester(req, body), body_string(body, "req_id"))
		     : NULL;
	json_decref(params);
	reply_ack(req, ack);
	json_decref(ack);
}

static void post_reserve(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	lease_route(ud, req, "reserve");
}

static void post_renew(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	lease_route(ud, req, "renew");
}

static void post_release(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	lease_route(ud, req, "release");
}

static void post_force_release(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	lease_route(ud, req, "force_release");
}

/* ---- routes and presets (ndi_routes.c) --------------------------------------------- */

/* The body's fields but actor and req_id: the action's params (returned);
 * an absent body counts as {}. */
static json_t *params_of(const json_t *body)
{
	json_t *params = body ? json_copy((json_t *)body) : json_object();

	if(params) {
		json_object_del(params, "actor");
		json_object_del(params, "req_id");
	}
	return params;
}

/* Runs action with the body's params plus key = the path's {key}, as the
 * command topic would, and answers with its ack. */
static void route_action(struct ndi *n, struct oh_http_req *req, const char *action, const char *key)
{
	const json_t *body = oh_req_body(req);
	json_t *params, *ack;

	if(body && !body_check(req, body, &lease_body))
		return;
	params = params_of(body);
	if(params && json_object_get(params, key)) {
		json_decref(params);
		oh_reply_error(req, 400, "BAD_REQUEST", "%s: unknown key (it is in the path)", key);
		return;
	}
	if(params && json_object_set_new(params, key, json_string(oh_req_param(req, key))))
		json_decref(params), params = NULL;
	ack = params ? run_and_publish(n, action, params, "", requester(req, body), body_string(body, "req_id"))
		     : NULL;
	json_decref(params);
	reply_ack(req, ack);
	json_decref(ack);
}

/* view (taken): one route or preset (NULL: 404 naming it), or a whole
 * list (name NULL; NULL: out of memory). */
static void reply_view(struct oh_http_req *req, json_t *view, const char *what, const char *name)
{
	if(view)
		oh_reply_json(req, 200, view);
	else if(name)
		oh_reply_error(req, 404, "NOT_FOUND", "no %s for %s", what, name);
	else
		oh_reply_error(req, 500, "ERROR", "out of memory");
}

static void get_routes(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	reply_view(req, ndi_routes_list(ud), "routes", NULL);
}

static void get_route(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	const char *id = oh_req_param(req, "device_id");

	reply_view(req, oh_device_id_valid(id) ? ndi_route_get(ud, id) : NULL, "route", id);
}

static void put_route(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	route_action(ud, req, "route", "device_id");
}

static void delete_route(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	route_action(ud, req, "unroute", "device_id");
}

static void get_presets(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	reply_view(req, ndi_presets_list(ud), "presets", NULL);
}

static void get_preset(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	const char *name = oh_req_param(req, "name");

	reply_view(req, ndi_preset_get(ud, name), "preset", name);
}

static void post_apply(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	route_action(ud, req, "apply_preset", "name");
}

static const struct oh_vfield preset_fields[] = {
		OH_VFIELD("routes", OH_VT_OBJECT, OH_VF_REQUIRED, .items = OH_VT_OBJECT),
		F_ACTOR,
		F_REQ_ID,
		OH_VFIELD_END,
};
static const struct oh_vobject preset_body = OH_VOBJECT(preset_fields, OH_V_REFUSE);

/* The preset's name and each entry ({device_id: {source, recording}}), with
 * the one validator; false after answering 400 naming the field. */
static bool preset_check(struct oh_http_req *req, const char *name, const json_t *body)
{
	const struct oh_vfield name_field = OH_VFIELD("name", OH_VT_STRING, 0, .check = oh_vcheck_device_id);
	char err[256], path[128];
	const char *dev;
	const json_t *v;
	json_t *jname = json_string(name);
	int rc = jname ? oh_json_validate_value(jname, &name_field, "name", NULL, err, sizeof err)
		       : OH_ERR_NOMEM;

	json_decref(jname);
	if(rc || !body_check(req, body, &preset_body)) {
		if(rc)
			oh_reply_error(req, 400, "BAD_REQUEST", "%s",
					rc == OH_ERR_NOMEM ? "out of memory" : err);
		return false;
	}
	json_object_foreach((json_t *)json_object_get(body, "routes"), dev, v)
	{
		snprintf(path, sizeof path, "routes.%.*s", oh_utf8_cut(dev, 80), dev);
		if(!oh_device_id_valid(dev)) {
			oh_reply_error(req, 400, "BAD_REQUEST",
					"%s: not a device id (1-64 of [A-Za-z0-9._-])", path);
			return false;
		}
		if(oh_json_validate(v, &ndi_route_entry, path, NULL, err, sizeof err) ||
				ndi_route_entry_check(v, path, err, sizeof err)) {
			oh_reply_error(req, 400, "BAD_REQUEST", "%s", err);
			return false;
		}
	}
	return true;
}

static void put_preset(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct ndi *n = ud;
	const json_t *body = oh_req_body(req);
	const char *name = oh_req_param(req, "name");
	json_t *ack;

	if(!preset_check(req, name, body))
		return;
	ack = ndi_preset_put(n, body_string(body, "req_id"), requester(req, body), name,
			json_object_get(body, "routes"));
	if(ack)
		oh_ack_publish(n->ctx, json_incref(ack));
	reply_ack(req, ack);
	json_decref(ack);
}

static void delete_preset(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct ndi *n = ud;
	const json_t *body = oh_req_body(req);
	json_t *ack;

	if(body && !body_check(req, body, &lease_body))
		return;
	ack = ndi_preset_delete(
			n, body_string(body, "req_id"), requester(req, body), oh_req_param(req, "name"));
	if(ack)
		oh_ack_publish(n->ctx, json_incref(ack));
	reply_ack(req, ack);
	json_decref(ack);
}

/* ---- OpenAPI descriptions ------------------------------------------------------------ */

/* Errors name the host's shared Error schema (include/oh/host.h). */
#define ERR(status, text)                                                                                    \
	"\"" status "\": {\"description\": \"" text "\", \"content\": {\"application/json\":"                \
	" {\"schema\": {\"$ref\": \"#/components/schemas/Error\"}}}}"
/* An ack's schema, its properties left open for ACK and SEND_ACK to close. */
#define ACK_OPEN                                                                                                                   \
	"{\"type\": \"object\", \"description\": \"an ack, as on /lab/orchestrator/ndi/evt\","                                     \
	" \"required\": [\"ok\", \"code\"], \"properties\": {\"req_id\": {\"type\": \"string\"}, \"ok\": {\"type\": \"boolean\"}," \
	" \"code\": {\"type\": \"string\"}, \"action\": {\"type\": \"string\"},"                                                   \
	" \"actor\": {\"type\": \"string\"}, \"ts\": {\"type\": \"string\"},"                                                      \
	" \"error\": {\"type\": \"string\", \"nullable\": true}, \"details\": {\"type\": \"object\"}"
#define ACK(status, text)                                                                                    \
	"\"" status "\": {\"description\": \"" text "\", \"content\": {\"application/json\":"                \
	" {\"schema\": " ACK_OPEN "}}}}}"
/* A send's ack may also carry warnings: things relayed anyway that the
 * device may not like. */
#define SEND_ACK(status, text)                                                                               \
	"\"" status "\": {\"description\": \"" text "\", \"content\": {\"application/json\":"                \
	" {\"schema\": " ACK_OPEN                                                                            \
	", \"warnings\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}}}}}"
#define BODY(required, props)                                                                                \
	"\"requestBody\": {\"required\": true, \"content\": {\"application/json\": {\"schema\": {"           \
	"\"type\": \"object\", \"required\": " required ", \"additionalProperties\": false,"                 \
	" \"properties\": {" props "}}}}}"
#define P_DEVICE                                                                                             \
	"\"device_id\": {\"type\": \"string\", \"pattern\": \"^(?!\\\\.\\\\.?$)[A-Za-z0-9._-]{1,64}$\"}"
#define P_ACTOR                                                                                              \
	"\"actor\": {\"type\": \"string\", \"maxLength\": 120, \"default\": \"api\","                        \
	" \"description\": \"the requester: lease identity, and requested_by on the device's"                \
	" envelope\"}"
#define P_REQ_ID                                                                                             \
	"\"req_id\": {\"type\": \"string\", \"maxLength\": 199, \"description\": \"generated when"           \
	" absent\"}"
#define P_LEASE_S                                                                                            \
	"\"lease_s\": {\"type\": \"number\", \"description\": \"> 0 and <= max_lease_s; default"             \
	" default_lease_s\"}"

static const char DOC_STATUS[] =
		"{\"summary\": \"The registry snapshot\","
		" \"description\": \"The same document as GET /api/registry and"
		" /lab/orchestrator/registry: devices, locks, modules, ts, seq.\","
		" \"responses\": {\"200\": {\"description\": \"the snapshot\", \"content\":"
		" {\"application/json\": {\"schema\": {\"$ref\": \"#/components/schemas/Registry\"}}}}}}";

static const char DOC_SOURCES[] =
		"{\"summary\": \"Discovered NDI sources\","
		" \"description\": \"Merged from mDNS, the discovery helper and the static list, sorted by"
		" name. With detail=1 each source is {name, host, address, port, origin} and mdns says"
		" whether mDNS browsing runs.\", \"parameters\": [{\"name\": \"detail\", \"in\": \"query\","
		" \"required\": false, \"schema\": {\"type\": \"string\", \"enum\": [\"0\", \"1\"]}}],"
		" \"responses\": {\"200\": {\"description\": \"{sources: [name, ...]}\", \"content\": {"
		"\"application/json\": {\"schema\": {\"type\": \"object\", \"required\": [\"sources\"],"
		" \"properties\": {\"sources\": {\"type\": \"array\", \"items\": {\"oneOf\": ["
		"{\"type\": \"string\"}, {\"type\": \"object\", \"required\": [\"name\"], \"properties\": {"
		"\"name\": {\"type\": \"string\"}, \"host\": {\"type\": \"string\", \"nullable\": true},"
		" \"address\": {\"type\": \"string\", \"nullable\": true},"
		" \"port\": {\"type\": \"integer\", \"nullable\": true},"
		" \"origin\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"enum\": [\"mdns\", \"helper\", \"static\"]}}}}]}}, \"mdns\": {\"type\": \"string\","
		" \"enum\": [\"running\", \"unavailable\", \"disabled\"]}}}}}}}}";

static const char DOC_DEVICES[] =
		"{\"summary\": \"Devices with the ndi module\","
		" \"description\": \"Each device whose meta lists the ndi module, sorted by id: online"
		" (null when never reported), stale, last_seen, capabilities (capabilities.ndi), the"
		" state, input and recording from its /lab/device/{id}/ndi/status (null when it never"
		" published one; module_status is the whole object), and the lease holder. The body is"
		" shared by every reply until a device changes: it has an ETag (304 to If-None-Match) and"
		" a gzip copy made once.\","
		" \"parameters\": [{\"$ref\": \"#/components/parameters/IfNoneMatch\"},"
		" {\"$ref\": \"#/components/parameters/AcceptEncoding\"},"
		" {\"name\": \"ids\", \"in\": \"query\", \"required\": false, \"description\":"
		" \"1-100 comma-separated device ids: just those devices, in that order (unknown ones left"
		" out), rendered per request without ETag; 400 naming ids\", \"schema\": {\"type\":"
		" \"string\"}}],"
		" \"responses\": {\"304\": {\"description\": \"If-None-Match named the list's ETag: unchanged\","
		" \"headers\": {\"ETag\": {\"$ref\": \"#/components/headers/ETag\"},"
		" \"Vary\": {\"$ref\": \"#/components/headers/Vary\"}}},"
		" \"200\": {\"description\": \"{devices: [...]}\","
		" \"headers\": {\"ETag\": {\"$ref\": \"#/components/headers/ETag\"},"
		" \"Vary\": {\"$ref\": \"#/components/headers/Vary\"},"
		" \"Content-Encoding\": {\"$ref\": \"#/components/headers/ContentEncoding\"}},"
		" \"content\": {"
		"\"application/json\": {\"schema\": {\"type\": \"object\", \"required\": [\"devices\"],"
		" \"properties\": {\"devices\": {"
		"\"type\": \"array\", \"items\": {\"type\": \"object\", \"required\": [\"device_id\"],"
		" \"properties\": {\"device_id\": {\"type\": \"string\"}, \"online\": {\"type\": \"boolean\", \"nullable\": true},"
		" \"stale\": {\"type\": \"boolean\"}, \"last_seen\": {\"type\": \"string\", \"nullable\": true},"
		" \"capabilities\": {\"type\": \"object\", \"nullable\": true},"
		" \"state\": {\"type\": \"string\", \"nullable\": true},"
		" \"input\": {\"type\": \"string\", \"nullable\": true},"
		" \"recording\": {\"type\": \"boolean\", \"nullable\": true},"
		" \"module_status\": {\"type\": \"object\", \"nullable\": true},"
		" \"holder\": {\"type\": \"string\", \"nullable\": true},"
		" \"lease\": {\"type\": \"object\", \"nullable\": true}}}}}}}}}}}";

static const char DOC_SEND[] =
		"{\"summary\": \"Send a command to a device\","
		" \"description\": \"Relays start, stop, set_input, record_start or record_stop exactly"
		" like the MQTT command topic (lease check against actor, offline check, ack tracking)."
		" The device gets actor orchestrator with requested_by naming the requester. source is"
		" put into params; one the host's discovery has not seen is relayed all the same, with a"
		" warnings entry in the ack, and so is a command for a device that is not in the"
		" registry (an agent may be alive before the registry hears its meta), as over MQTT"
		" and from a scheduled job. The ack is also published on the evt topic. Without"
		" wait the reply is the DISPATCHED ack (202); with wait=1 the request stays open until"
		" the device acks (200 COMPLETED, 502 FAILED) or ack_timeout_s passes (504 TIMEOUT).\","
		" \"parameters\": [{\"name\": \"wait\", \"in\": \"query\", \"required\": false,"
		" \"schema\": {\"type\": \"string\", \"enum\": [\"0\", \"1\"]}}], " BODY("[\"device_id\"]",
				P_DEVICE
				", \"action\": {\"type\": \"string\", \"enum\": [\"start\","
				" \"stop\", \"set_input\", \"record_start\", \"record_stop\"], \"default\": \"start\"},"
				" \"source\": {\"type\": \"string\"}, \"params\": {\"type\": \"object\", \"description\":"
				" \"more parameters, relayed untouched\"}, " P_ACTOR
				", " P_REQ_ID) ","
					       " \"responses\": {" SEND_ACK("200",
							       "wait=1: the device's ack (COMPLETED)") ", " SEND_ACK("202",
							       "relayed (DISPATCHED); COMPLETED/FAILED/TIMEOUT follow on the evt topic") ", " ERR("400",
							       "bad body (the message names the field) or unknown action (BAD_ACTION)") ", " ERR("409",
							       "leased by another actor (DENIED, details.holder) or the device is offline"
							       " (OFFLINE)") ", " ERR("413",
							       "body too large") ", " ERR("429",
							       "LIMIT: limits.max_pending or limits.max_pending_per_device reached"
							       " (details.limit, details.value)") ", " ERR("502",
							       "wait=1: the device acked failure (FAILED, details.device_code)") ", " ERR("503",
							       "wait=1: the plugin stopped before the ack") ", " ERR("504",
							       "wait=1: no ack within ack_timeout_s (TIMEOUT)") "}}";

static const char DOC_RESERVE[] =
		"{\"summary\": \"Reserve a device (take its lease)\","
		" \"description\": \"As the MQTT reserve action: the same actor reserving again extends"
		" the lease to lease_s from now.\", " BODY("[\"device_id\"]",
				P_DEVICE
				", " P_LEASE_S ", " P_ACTOR
				", " P_REQ_ID) ","
					       " \"responses\": {" ACK("200",
							       "OK: details {device_id, holder, expires_at, lease_s}") ", " ERR("400",
							       "bad body") ", " ERR("409",
							       "IN_USE: another actor holds it (details.holder, remaining_s)") ", " ERR("507",
							       "LIMIT: limits.max_leases leases are held (details.limit, details.value)") "}}";

static const char DOC_RENEW[] = "{\"summary\": \"Renew one's own lease\", " BODY("[\"device_id\"]",
		P_DEVICE
		", " P_LEASE_S ", " P_ACTOR
		", " P_REQ_ID) ","
			       " \"responses\": {" ACK("200", "OK: expires lease_s from now") ", " ERR(
					       "400", "bad body") ", " ERR("409",
					       "NOT_HELD (no lease) or NOT_OWNER (another actor holds it)") "}}";

static const char DOC_RELEASE[] = "{\"summary\": \"Release one's own lease\", " BODY("[\"device_id\"]",
		P_DEVICE
		", " P_ACTOR
		", " P_REQ_ID) ","
			       " \"responses\": {" ACK("200", "OK") ", " ERR("400", "bad body") ", " ERR("409",
					       "NOT_HELD (no lease) or NOT_OWNER (another actor holds it)") "}}";

static const char DOC_FORCE_RELEASE[] =
		"{\"summary\": \"Drop a lease whoever holds it (admin)\","
		" \"description\": \"With API tokens configured, an admin token is needed (403 FORBIDDEN"
		" otherwise). With the admins setting only those actors may; without it, any.\", " BODY(
				"[\"device_id\"]",
				P_DEVICE
				", " P_ACTOR
				", " P_REQ_ID) ","
					       " \"responses\": {" ACK("200",
							       "OK: details.previous_holder") ", " ERR("400",
							       "bad body") ", " ERR("403",
							       "DENIED: the actor is not an admin") ", " ERR("409",
							       "NOT_HELD: there was no lease") "}}";

#define ROUTE_SCHEMA                                                                                               \
	"{\"type\": \"object\", \"properties\": {\"device_id\": {\"type\": \"string\"},"                           \
	" \"desired\": {\"type\": \"object\"}, \"actual\": {\"type\": \"object\", \"nullable\": true},"            \
	" \"owner\": {\"type\": \"string\"}, \"since\": {\"type\": \"string\"}, \"state\": {\"type\": \"string\"," \
	" \"enum\": [\"converged\", \"converging\", \"drift\", \"offline\", \"failed\"]},"                         \
	" \"attempts\": {\"type\": \"integer\"}, \"error\": {\"type\": \"string\"},"                               \
	" \"next_retry\": {\"type\": \"string\"}}}"
#define JSON_200(text, schema)                                                                               \
	"\"200\": {\"description\": \"" text "\", \"content\": {\"application/json\": {\"schema\": " schema  \
	"}}}"
#define OPT_BODY(props)                                                                                      \
	"\"requestBody\": {\"required\": false, \"content\": {\"application/json\": {\"schema\": {"          \
	"\"type\": \"object\", \"additionalProperties\": false, \"properties\": {" props "}}}}}"

static const char DOC_ROUTES[] =
		"{\"summary\": \"Every route: desired and actual state\","
		" \"description\": \"Sorted by device id.\", \"responses\": {" JSON_200("{routes: [...]}",
				"{\"type\": \"object\", \"properties\": {\"routes\": {\"type\":"
				" \"array\", \"items\": " ROUTE_SCHEMA "}}}") "}}";
static const char DOC_ROUTE_GET[] = "{\"summary\": \"One device's route\", \"responses\": {" JSON_200(
		"the route", ROUTE_SCHEMA) ", " ERR("404", "no route for the device") "}}";
static const char DOC_ROUTE_PUT[] =
		"{\"summary\": \"Set what the device shows; the host keeps it so\","
		" \"description\": \"Stored before the reply. The host then sends start, set_input,"
		" stop, record_start or record_stop as needed, now and whenever the device drifts;"
		" ROUTE_STATE events on the evt topic follow it.\", " OPT_BODY(
				"\"source\": {\"type\": \"string\", \"nullable\": true}, \"recording\": {\"type\":"
				" \"boolean\", \"default\": false}, " P_ACTOR
				", " P_REQ_ID) ","
					       " \"responses\": {" ACK("200",
							       "OK: details is the route") ", " ERR("400",
							       "bad body") ", " ERR("409",
							       "IN_USE: reserved by someone else (details.devices)") ", " ERR("507",
							       "LIMIT: too many routes") "}}";
static const char DOC_ROUTE_DELETE[] =
		"{\"summary\": \"Remove the route; the device is left as it is\", " OPT_BODY(P_ACTOR
				", " P_REQ_ID) ","
					       " \"responses\": {" ACK("200", "OK") ", " ERR(
							       "404", "NOT_FOUND: no route") ", " ERR("409",
							       "IN_USE: reserved by someone else") "}}";
static const char DOC_PRESETS[] = "{\"summary\": \"Every preset\", \"responses\": {" JSON_200(
		"{presets: [{name, routes, owner, since}]}", "{\"type\": \"object\"}") "}}";
static const char DOC_PRESET_GET[] =
		"{\"summary\": \"One preset\", \"responses\": {" JSON_200("{name, routes, owner, since}",
				"{\"type\": \"object\"}") ", " ERR("404", "no such preset") "}}";
static const char DOC_PRESET_PUT[] = "{\"summary\": \"Store a named set of routes\", " BODY("[\"routes\"]",
		"\"routes\": {\"type\": \"object\", \"description\": \"{device_id: {source,"
		" recording}}\", \"additionalProperties\": {\"type\": \"object\"}}, " P_ACTOR
		", " P_REQ_ID) ","
			       " \"responses\": {" ACK("200", "OK") ", " ERR("400", "bad body") ", " ERR(
					       "507", "LIMIT: too many presets") "}}";
static const char DOC_PRESET_DELETE[] = "{\"summary\": \"Delete a preset\", " OPT_BODY(P_ACTOR
		", " P_REQ_ID) ", \"responses\": {" ACK("200", "OK") ", " ERR("404", "NOT_FOUND") "}}";
static const char DOC_PRESET_APPLY[] =
		"{\"summary\": \"Apply a preset: all its routes or none\","
		" \"description\": \"If any of its devices is reserved by someone other than the"
		" actor, nothing changes.\", " OPT_BODY(P_ACTOR
				", " P_REQ_ID) ","
					       " \"responses\": {" ACK("200", "OK") ", " ERR("404",
							       "NOT_FOUND: no such preset") ", " ERR("409",
							       "IN_USE: details.devices names each reserved device and its holder") ", " ERR("507",
							       "LIMIT: too many routes") "}}";

/* ---- registration ------------------------------------------------------------------ */

static int register_page(struct ndi *n)
{
	/* Embedded at build time from web/ (cmake/plugin.cmake). */
	const struct oh_web_file *html = ndi_web_find("web/ndi.html");
	const struct oh_web_file *js = ndi_web_find("web/ndi.js");

	if(!html || !js) {
		oh_log(n->ctx, OH_LOG_WARN, "the page files are not in the binary: no /ui/%s",
				oh_module(n->ctx));
		return OH_OK;
	}
	return oh_ui_page(n->ctx, "NDI", (const char *)html->data, (const char *)js->data);
}

int ndi_rest_register(struct ndi *n)
{
	static const struct {
		const char *method, *path;
		oh_http_fn fn;
		const char *doc;
	} routes[] = {
			{"GET", "/status", get_status, DOC_STATUS},
			{"GET", "/sources", get_sources, DOC_SOURCES},
			{"GET", "/devices", get_devices, DOC_DEVICES},
			{"POST", "/send", post_send, DOC_SEND},
			{"POST", "/reserve", post_reserve, DOC_RESERVE},
			{"POST", "/renew", post_renew, DOC_RENEW},
			{"POST", "/release", post_release, DOC_RELEASE},
			{"POST", "/force_release", post_force_release, DOC_FORCE_RELEASE},
			{"GET", "/routes", get_routes, DOC_ROUTES},
			{"GET", "/routes/{device_id}", get_route, DOC_ROUTE_GET},
			{"PUT", "/routes/{device_id}", put_route, DOC_ROUTE_PUT},
			{"DELETE", "/routes/{device_id}", delete_route, DOC_ROUTE_DELETE},
			{"GET", "/presets", get_presets, DOC_PRESETS},
			{"GET", "/presets/{name}", get_preset, DOC_PRESET_GET},
			{"PUT", "/presets/{name}", put_preset, DOC_PRESET_PUT},
			{"DELETE", "/presets/{name}", delete_preset, DOC_PRESET_DELETE},
			{"POST", "/presets/{name}/apply", post_apply, DOC_PRESET_APPLY},
	};

	for(size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int rc = oh_route(n->ctx, routes[i].method, routes[i].path, routes[i].fn, n, routes[i].doc);
		if(rc)
			return rc;
	}
	/* Dropping another's lease: an admin token when tokens are configured. */
	int rc = oh_route_require(n->ctx, "POST", "/force_release", OH_ROLE_ADMIN);
	if(rc)
		return rc;
	return register_page(n);
}
