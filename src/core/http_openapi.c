/*
 * GET /openapi.json, built from the route table each time it is asked for,
 * so the description cannot drift from what is served: a route that is
 * mounted is described, one that is removed is gone.
 *
 * Each route brings its own fragment (summary, parameters, request body and
 * the responses its handler gives).  What every route shares is added here,
 * next to the code that decides it, rather than repeated in each fragment:
 *
 *   - security: the paths http.c makes ask for a token (/api/..., /metrics)
 *     name the bearer scheme, every other path says it is public;
 *   - the answers given before any handler runs: 400 (Host, path; for a
 *     body also BAD_JSON), 401 and 403 (token, role, another site), 413 and
 *     415 (a body);
 *   - the path parameters a "{name}" segment captures, and an operationId
 *     made from the method and path;
 *   - the shared Error schema on every error that names no schema, so a
 *     plugin may describe an error by its text alone;
 *   - the tag list, one per plugin.
 *
 * The host's shared schemas (Error, Registry, RegistryDelta, Device,
 * PluginState), the conditional and compressed replies' request headers
 * (parameters IfNoneMatch, AcceptEncoding) and response headers (headers
 * ETag, Vary, ContentEncoding) are in components; plugin fragments may $ref
 * them (include/oh/host.h says so).  A 304 has no body, so no schema.
 */
#include "http_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "plugin_ctx.h"

#define ERROR_REF "#/components/schemas/Error"

/* The shared parts.  Kept as JSON text: it reads like the document. */
static const char COMPONENTS[] =
		"{\"securitySchemes\": {\"bearerAuth\": {\"type\": \"http\", \"scheme\": \"bearer\","
		" \"description\": \"An API token from http.tokens, sent as `Authorization: Bearer TOKEN`"
		" (on GET /api/events also as ?access_token=, for EventSource). Needed on /api/... and"
		" /metrics only when http.tokens is configured; GET needs the viewer role, other methods"
		" operator, some routes admin. Without tokens the host asks for none, and serves loopback"
		" only unless http.allow_unauthenticated is set.\"}},"
		" \"parameters\": {"
		"\"IfNoneMatch\": {\"name\": \"If-None-Match\", \"in\": \"header\", \"required\": false,"
		" \"schema\": {\"type\": \"string\"}, \"description\": \"An ETag this reply gave before: 304"
		" without a body while the body is still the same\"},"
		" \"AcceptEncoding\": {\"name\": \"Accept-Encoding\", \"in\": \"header\", \"required\": false,"
		" \"schema\": {\"type\": \"string\"}, \"description\": \"gzip: a body over 2 KB comes"
		" gzip-compressed (Content-Encoding: gzip) once the host has its compressed copy, made once"
		" per body and shared; until then, and otherwise, it comes as it is\"}},"
		" \"headers\": {"
		"\"ETag\": {\"schema\": {\"type\": \"string\"}, \"description\": \"Strong, one per body (a new"
		" snapshot or list gets a new one); the gzip copy has its own. Either one in If-None-Match gets 304 while"
		" the body is unchanged\"},"
		" \"Vary\": {\"schema\": {\"type\": \"string\"}, \"description\": \"Accept-Encoding\"},"
		" \"ContentEncoding\": {\"schema\": {\"type\": \"string\", \"enum\": [\"gzip\"]},"
		" \"description\": \"present when the body is the gzip copy\"}},"
		" \"schemas\": {"
		"\"Error\": {\"type\": \"object\", \"description\": \"Every error the API answers\","
		" \"required\": [\"error\"], \"additionalProperties\": false, \"properties\": {\"error\":"
		" {\"type\": \"object\", \"required\": [\"code\", \"message\"], \"additionalProperties\": false,"
		" \"properties\": {"
		"\"code\": {\"type\": \"string\", \"description\": \"machine-readable: BAD_REQUEST, NOT_FOUND, ..."
		" (errors from an ack carry the ack's code)\"},"
		" \"message\": {\"type\": \"string\", \"description\": \"for people; names the field when a"
		" field is at fault\"},"
		" \"req_id\": {\"type\": \"string\", \"nullable\": true, \"description\": \"errors from an ack:"
		" the command's req_id\"},"
		" \"details\": {\"type\": \"object\", \"nullable\": true, \"description\": \"errors from an"
		" ack or a limit: the ack's details (holder, limit, value, ...)\"}}}}},"
		"\"Device\": {\"type\": \"object\", \"description\": \"A device's meta and status merged"
		" (docs/protocol.md); fields beyond these are the device's own\", \"required\": [\"device_id\"],"
		" \"properties\": {\"device_id\": {\"type\": \"string\"},"
		" \"online\": {\"type\": \"boolean\", \"nullable\": true, \"description\": \"null (unknown)"
		" until the device is heard from in this run of the host\"},"
		" \"stale\": {\"type\": \"boolean\"}, \"last_seen\": {\"type\": \"string\", \"nullable\": true,"
		" \"description\": \"when the device was last heard from (UTC); kept across restarts, to"
		" within a minute\"},"
		" \"modules\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}},"
		"\"Registry\": {\"type\": \"object\", \"description\": \"The registry snapshot, as retained on"
		" /lab/orchestrator/registry\", \"required\": [\"devices\", \"locks\", \"modules\", \"ts\", \"seq\"],"
		" \"properties\": {\"devices\": {\"type\": \"object\", \"additionalProperties\":"
		" {\"$ref\": \"#/components/schemas/Device\"}},"
		" \"locks\": {\"type\": \"object\", \"description\": \"live leases, keyed {module}:{device_id}\","
		" \"additionalProperties\": {\"type\": \"object\", \"required\": [\"holder\", \"expires_at\"],"
		" \"properties\": {\"holder\": {\"type\": \"string\"}, \"expires_at\": {\"type\": \"string\"}}}},"
		" \"modules\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
		" \"ts\": {\"type\": \"string\"}, \"seq\": {\"type\": \"integer\", \"minimum\": 1}}},"
		"\"RegistryDelta\": {\"type\": \"object\", \"description\": \"GET /api/registry?since=SEQ: what"
		" changed after snapshot SEQ. Apply to that snapshot: replace each device in devices, delete"
		" each id in removed, take locks and modules whole\", \"required\": [\"devices\", \"removed\","
		" \"locks\", \"modules\", \"ts\", \"seq\", \"since\", \"delta\"],"
		" \"properties\": {\"devices\": {\"type\": \"object\", \"description\": \"the devices changed or"
		" added after since\", \"additionalProperties\": {\"$ref\": \"#/components/schemas/Device\"}},"
		" \"removed\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"description\":"
		" \"the ids of the devices removed after since\"},"
		" \"locks\": {\"type\": \"object\"}, \"modules\": {\"type\": \"array\", \"items\": {\"type\":"
		" \"string\"}}, \"ts\": {\"type\": \"string\"}, \"seq\": {\"type\": \"integer\", \"minimum\": 1,"
		" \"description\": \"the current snapshot's: the next since\"},"
		" \"since\": {\"type\": \"integer\", \"minimum\": 0}, \"delta\": {\"type\": \"boolean\","
		" \"enum\": [true]}}},"
		"\"PluginState\": {\"type\": \"object\", \"description\": \"A configured plugin: loaded, or"
		" why not\", \"required\": [\"module\", \"path\", \"loaded\", \"error\"],"
		" \"properties\": {\"module\": {\"type\": \"string\"}, \"path\": {\"type\": \"string\"},"
		" \"loaded\": {\"type\": \"boolean\"}, \"error\": {\"type\": \"string\", \"nullable\": true},"
		" \"name\": {\"type\": \"string\"}, \"version\": {\"type\": \"string\"},"
		" \"ui\": {\"type\": \"string\", \"description\": \"its page, /ui/{module}\"}}}}}";

/* Tags the core's routes use; a plugin's tag is its module name. */
static const struct {
	const char *name, *description;
} core_tags[] = {
		{"core",
				"The host: health, the registry, devices, plugins, live events, metrics and"
				" this document"},
		{"ui", "The web UI: pages, their scripts and the shared files"},
};

/* "get_api_ndi_jobs_by_id" for GET /api/ndi/jobs/{id}: unique per method and
 * path, and made of URL-safe characters only. */
static void operation_id(const struct route *r, char *buf, size_t len)
{
	size_t n = 0;
	for(const char *m = r->method; *m && n + 1 < len; m++)
		buf[n++] = (char)tolower((unsigned char)*m);
	if(r->n_segs == 0)
		n += (size_t)snprintf(buf + n, len - n, "_root");
	for(int i = 0; i < r->n_segs && n + 1 < len; i++) {
		const char *seg = r->params[i] ? r->params[i] : r->segs[i];
		n += (size_t)snprintf(buf + n, len - n, r->params[i] ? "_by_" : "_");
		for(; *seg && n + 1 < len; seg++)
			buf[n++] = isalnum((unsigned char)*seg) ? *seg : '_';
	}
	buf[n < len ? n : len - 1] = '\0';
}

/* Adds a path parameter for each "{name}" the pattern captures that the
 * fragment did not describe. */
static void add_path_params(json_t *op, const struct route *r)
{
	json_t *list = json_object_get(op, "parameters");
	if(!json_is_array(list)) {
		list = json_array();
		json_object_set_new(op, "parameters", list);
	}
	for(int i = 0; i < r->n_segs; i++) {
		if(!r->params[i])
			continue;
		bool described = false;
		size_t k;
		json_t *p;
		json_array_foreach(list, k, p)
		{
			const char *in = json_string_value(json_object_get(p, "in"));
			const char *name = json_string_value(json_object_get(p, "name"));
			if(in && name && !strcmp(in, "path") && !strcmp(name, r->params[i]))
				described = true;
		}
		if(!described)
			json_array_append_new(list,
					json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", r->params[i], "in",
							"path", "required", true, "schema", "type", "string"));
	}
	if(!json_array_size(list))
		json_object_del(op, "parameters");
}

/* Declares status with text, or adds text to the route's own description
 * of that status: both can happen. */
static void add_response(json_t *responses, const char *status, const char *text)
{
	json_t *resp = json_object_get(responses, status);
	const char *own = json_string_value(json_object_get(resp, "description"));
	if(!json_is_object(resp))
		json_object_set_new(responses, status, json_pack("{s:s}", "description", text));
	else if(own)
		json_object_set_new(resp, "description", json_sprintf("%s; %s", own, text));
}

/* What the server answers before the handler runs (http.c: passes_guard,
 * authenticate, dispatch_request). */
static void add_guard_responses(json_t *responses, const struct route *r, bool token)
{
	bool body = http_method_changes_state(r->method);
	add_response(responses, "400",
			body ? "BAD_JSON: the body is not JSON (the message names line and column);"
			       " BAD_HOST or BAD_PATH: a Host header that does not name this host, or a"
			       " path that is not canonical"
			     : "BAD_HOST or BAD_PATH: a Host header that does not name this host, or a"
			       " path that is not canonical");
	if(token)
		add_response(responses, "401",
				"UNAUTHORIZED: no API token, or not a valid one (only when http.tokens is"
				" configured); WWW-Authenticate says which");
	char forbidden[256];
	if(token && r->role > OH_ROLE_VIEWER)
		snprintf(forbidden, sizeof forbidden, "FORBIDDEN: the token's role is below %s%s",
				auth_role_name(r->role),
				body ? "; CROSS_ORIGIN: sent by a page on another site" : "");
	else
		snprintf(forbidden, sizeof forbidden, "CROSS_ORIGIN: sent by a page on another site");
	if(body || (token && r->role > OH_ROLE_VIEWER))
		add_response(responses, "403", forbidden);
	if(body) {
		add_response(responses, "413", "TOO_LARGE: the body is over http.max_body_bytes");
		add_response(responses, "415", "UNSUPPORTED_MEDIA_TYPE: a body that is not application/json");
	}
}

/* Every response gets a schema: errors the shared Error, a success the
 * fragment did not describe an unconstrained JSON value (said so). */
static void fill_schemas(json_t *responses)
{
	const char *status;
	json_t *resp;
	json_object_foreach(responses, status, resp)
	{
		if(!json_is_object(resp) || json_object_get(resp, "content") || json_object_get(resp, "$ref"))
			continue;
		if(!strcmp(status, "304")) { /* Not Modified has no body */
			if(!json_object_get(resp, "description"))
				json_object_set_new(resp, "description", json_string("Not Modified"));
			continue;
		}
		if(!json_object_get(resp, "description"))
			json_object_set_new(resp, "description", json_string(status));
		json_t *schema = status[0] >= '4'
				? json_pack("{s:s}", "$ref", ERROR_REF)
				: json_pack("{s:s}", "description", "not described by the route");
		json_object_set_new(resp, "content",
				json_pack("{s:{s:o}}", "application/json", "schema", schema));
	}
}

static json_t *operation(const struct route *r, json_t *tags)
{
	json_t *op = r->openapi ? json_deep_copy(r->openapi) : json_object();
	if(!json_is_object(op)) {
		json_decref(op);
		op = json_object();
	}
	if(!json_object_get(op, "summary"))
		json_object_set_new(op, "summary", json_string(r->path));
	char id[160];
	operation_id(r, id, sizeof id);
	json_object_set_new(op, "operationId", json_string(id));
	json_t *op_tags = json_object_get(op, "tags");
	if(!json_is_array(op_tags)) {
		op_tags = json_pack("[s]", r->owner ? oh_module(r->owner) : "core");
		json_object_set_new(op, "tags", op_tags);
	}
	size_t i;
	json_t *t;
	json_array_foreach(op_tags, i, t)
	{
		const char *name = json_string_value(t);
		if(!name || json_object_get(tags, name))
			continue;
		const char *text = NULL;
		for(size_t k = 0; k < sizeof core_tags / sizeof core_tags[0]; k++) {
			if(!strcmp(core_tags[k].name, name))
				text = core_tags[k].description;
		}
		json_t *desc = text ? json_string(text)
				: r->owner && r->owner->desc && r->owner->desc->name
				? json_sprintf("The %s plugin (%s)", name, r->owner->desc->name)
				: json_sprintf("The %s plugin", name);
		json_object_set_new(tags, name, desc);
	}
	add_path_params(op, r);

	bool token = http__needs_token(r->path);
	json_object_set_new(op, "security", token ? json_pack("[{s:[]}]", "bearerAuth") : json_array());
	json_t *responses = json_object_get(op, "responses");
	if(!json_is_object(responses)) {
		responses = json_pack("{s:{s:s}}", "200", "description", "OK");
		json_object_set_new(op, "responses", responses);
	}
	add_guard_responses(responses, r, token);
	fill_schemas(responses);
	return op;
}

json_t *http_openapi(struct http_server *s)
{
	json_t *paths = json_object();
	json_t *tags = json_object(); /* name -> description */
	for(struct route *r = s->routes; r; r = r->next) {
		json_t *item = json_object_get(paths, r->path);
		if(!item) {
			item = json_object();
			json_object_set_new(paths, r->path, item);
		}
		char lower[16];
		size_t i = 0;
		for(; r->method[i] && i < sizeof lower - 1; i++)
			lower[i] = (char)tolower((unsigned char)r->method[i]);
		lower[i] = '\0';
		json_object_set_new(item, lower, operation(r, tags));
	}
	json_t *tag_list = json_array();
	const char *name;
	json_t *desc;
	json_object_foreach(tags, name, desc)
	{
		json_array_append_new(tag_list, json_pack("{s:s, s:O}", "name", name, "description", desc));
	}
	json_decref(tags);
	json_error_t err;
	json_t *components = json_loads(COMPONENTS, 0, &err);
	if(!components) /* a typo above; the tests load this document */
		log_error("http", "OpenAPI components: %s (column %d)", err.text, err.column);
	return json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:s}], s:o, s:o, s:o*}", "openapi", "3.0.3",
			"info", "title", "orchestrator-host", "version", OH_VERSION, "description",
			"Device registry, command relay, reservations and scheduling for a lab's devices.",
			"servers", "url", "/", "description", "this host", "tags", tag_list, "paths", paths,
			"components", components);
}
