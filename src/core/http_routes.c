/*
 * The route table: "METHOD /path/{param}" patterns with their handlers,
 * owners, least roles and OpenAPI descriptions; matching a request (404 and
 * 405 are told apart); teardown of a plugin's routes; /openapi.json.
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin_ctx.h"

static int split_path(char *path, char **segs)
{
	int n = 0;
	for(char *tok = strtok(path, "/"); tok; tok = strtok(NULL, "/")) {
		if(n == MAX_SEGMENTS)
			return -1;
		segs[n++] = tok;
	}
	return n;
}

int http_route_add(struct http_server *s, oh_ctx *owner, const char *method, const char *path,
		oh_http_fn fn, void *ud, const char *openapi)
{
	if(!method || !path || path[0] != '/' || !fn)
		return OH_ERR_INVAL;
	struct route *r = calloc(1, sizeof *r);
	if(!r)
		return OH_ERR_NOMEM;
	r->owner = owner;
	r->fn = fn;
	r->ud = ud;
	r->role = strcmp(method, "GET") && strcmp(method, "HEAD") ? OH_ROLE_OPERATOR : OH_ROLE_VIEWER;
	r->method = strdup(method);
	r->path = strdup(path);
	char *work = strdup(path);
	if(!r->method || !r->path || !work)
		goto fail;
	int n = split_path(work, r->segs);
	if(n < 0)
		goto fail;
	for(int i = 0; i < n; i++)
		r->segs[i] = strdup(r->segs[i]);
	r->n_segs = n;
	free(work);
	work = NULL;
	if(openapi) {
		json_error_t err;
		r->openapi = json_loads(openapi, 0, &err);
		if(!r->openapi)
			log_warn("http", "route %s %s: OpenAPI text is not JSON: %s", method, path, err.text);
	}
	for(struct route *o = s->routes; o; o = o->next) {
		if(!strcmp(o->method, method) && !strcmp(o->path, path)) {
			json_decref(r->openapi);
			goto fail_exists;
		}
	}
	/* Append, so earlier (core) routes win ties. */
	struct route **pp = &s->routes;
	while(*pp)
		pp = &(*pp)->next;
	*pp = r;
	return OH_OK;

fail_exists:
	for(int i = 0; i < r->n_segs; i++)
		free(r->segs[i]);
	free(r->method);
	free(r->path);
	free(r);
	return OH_ERR_EXISTS;
fail:
	free(work);
	free(r->method);
	free(r->path);
	free(r);
	return OH_ERR_NOMEM;
}

int http_route_require(struct http_server *s, const char *method, const char *path,
		enum oh_role role)
{
	if(role < OH_ROLE_VIEWER || role > OH_ROLE_ADMIN)
		return OH_ERR_INVAL;
	for(struct route *r = s->routes; r; r = r->next) {
		if(!strcmp(r->method, method) && !strcmp(r->path, path)) {
			r->role = role;
			return OH_OK;
		}
	}
	return OH_ERR_NOT_FOUND;
}

int oh_route_require(oh_ctx *ctx, const char *method, const char *path, enum oh_role role)
{
	if(!method || !path || path[0] != '/')
		return OH_ERR_INVAL;
	/* The same mapping as oh_route (plugin_api.c). */
	char full[512];
	snprintf(full, sizeof full, "/api/%s%s", ctx->module, strcmp(path, "/") ? path : "");
	return http_route_require(ctx->host->http, method, full, role);
}

static void route_free(struct route *r)
{
	for(int i = 0; i < r->n_segs; i++)
		free(r->segs[i]);
	free(r->method);
	free(r->path);
	json_decref(r->openapi);
	free(r);
}

void http_remove_owner(struct http_server *s, oh_ctx *owner)
{
	/* Requests the owner left open (deferred replies) would wait forever
	 * and call its gone_fn after its code was unloaded: answer them now. */
	for(struct oh_http_req *req = s->open; owner && req; req = req->next) {
		if(req->owner != owner || !req->dispatched || req->status || req->stream)
			continue;
		req->gone_fn = NULL;
		req->gone_ud = NULL;
		oh_reply_error(req, 503, "UNAVAILABLE", "plugin %s was unloaded", oh_module(owner));
	}
	struct route **pp = &s->routes;
	while(*pp) {
		struct route *r = *pp;
		if(r->owner == owner) {
			*pp = r->next;
			route_free(r);
		} else {
			pp = &r->next;
		}
	}
}

static bool route_matches(const struct route *r, char **segs, int n, struct oh_http_req *req)
{
	if(r->n_segs != n)
		return false;
	int n_params = 0;
	for(int i = 0; i < n; i++) {
		const char *p = r->segs[i];
		if(p[0] == '{') {
			if(req && n_params < MAX_PARAMS) {
				req->params[n_params].name = p;   /* "{id}": compared below */
				n_params++;
			}
			continue;
		}
		if(strcmp(p, segs[i]))
			return false;
	}
	return true;
}

struct route *http__route_find(struct http_server *s, struct oh_http_req *req, bool *wrong_method,
		char *allow, size_t allow_len)
{
	*wrong_method = false;
	char *work = strdup(req->path);
	if(!work)
		return NULL;
	char *segs[MAX_SEGMENTS];
	int n = split_path(work, segs);
	struct route *found = NULL;
	*wrong_method = false;
	allow[0] = '\0';
	const char *method = strcmp(req->method, "HEAD") ? req->method : "GET";
	for(struct route *r = s->routes; n >= 0 && r; r = r->next) {
		if(!route_matches(r, segs, n, NULL))
			continue;
		if(!strcmp(r->method, method)) {
			found = r;
			break;
		}
		*wrong_method = true;
		if(!strstr(allow, r->method)) {
			size_t used = strlen(allow);
			snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", r->method);
		}
	}
	if(found) {
		for(int i = 0; i < found->n_segs; i++) {
			const char *p = found->segs[i];
			if(p[0] != '{' || req->n_params == MAX_PARAMS)
				continue;
			/* Store the name without braces by pointing into a copy. */
			size_t len = strlen(p);
			char *name = strndup(p + 1, len >= 2 ? len - 2 : 0);
			req->params[req->n_params].name = name;
			req->params[req->n_params].value = strdup(segs[i]);
			req->n_params++;
		}
		req->owner = found->owner;
	}
	free(work);
	return found;
}

json_t *http_openapi(struct http_server *s)
{
	json_t *paths = json_object();
	for(struct route *r = s->routes; r; r = r->next) {
		json_t *item = json_object_get(paths, r->path);
		if(!item) {
			item = json_object();
			json_object_set_new(paths, r->path, item);
		}
		char lower[16];
		size_t i = 0;
		for(; r->method[i] && i < sizeof lower - 1; i++)
			lower[i] = (char)(r->method[i] | 0x20);
		lower[i] = '\0';
		json_t *op = r->openapi ? json_deep_copy(r->openapi) : json_object();
		if(!json_object_get(op, "summary"))
			json_object_set_new(op, "summary", json_string(r->path));
		if(!json_object_get(op, "responses"))
			json_object_set_new(op, "responses", json_pack("{s:{s:s}}", "200", "description", "OK"));
		if(r->owner && !json_object_get(op, "tags"))
			json_object_set_new(op, "tags", json_pack("[s]", oh_module(r->owner)));
		json_object_set_new(item, lower, op);
	}
	return json_pack("{s:s, s:{s:s, s:s, s:s}, s:o}", "openapi", "3.0.3", "info", "title",
			"orchestrator-host", "version", OH_VERSION, "description",
			"Device registry, command relay, reservations and scheduling for a lab's devices.",
			"paths", paths);
}


void http__routes_free(struct http_server *s)
{
	while(s->routes) {
		struct route *r = s->routes;
		s->routes = r->next;
		route_free(r);
	}
}
