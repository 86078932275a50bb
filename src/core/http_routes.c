/*
 * The route table: "METHOD /path/{param}" patterns with their handlers,
 * owners, least roles and OpenAPI descriptions; matching a request (404 and
 * 405 are told apart); teardown of a plugin's routes.  /openapi.json is
 * built from this table by http_openapi.c.
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
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

static void route_free(struct route *r)
{
	for(int i = 0; i < r->n_segs; i++) {
		free(r->segs[i]);
		free(r->params[i]);
	}
	free(r->method);
	free(r->path);
	json_decref(r->openapi);
	free(r);
}

int http_route_add(struct http_server *s, oh_ctx *owner, const char *method, const char *path, oh_http_fn fn,
		void *ud, const char *openapi)
{
	if(!method || !path || path[0] != '/' || !fn)
		return OH_ERR_INVAL;
	for(struct route *o = s->routes; o; o = o->next) {
		if(!strcmp(o->method, method) && !strcmp(o->path, path))
			return OH_ERR_EXISTS;
	}
	struct route *r = calloc(1, sizeof *r);
	char *work = strdup(path);
	if(!r || !work)
		goto nomem;
	r->owner = owner;
	r->fn = fn;
	r->ud = ud;
	r->role = strcmp(method, "GET") && strcmp(method, "HEAD") ? OH_ROLE_OPERATOR : OH_ROLE_VIEWER;
	r->method = strdup(method);
	r->path = strdup(path);
	r->metric_name = metrics_intern(path);
	char *segs[MAX_SEGMENTS];
	int n = split_path(work, segs);
	if(n < 0) {
		free(work);
		route_free(r);
		return OH_ERR_INVAL;
	}
	r->n_segs = n;
	for(int i = 0; i < n; i++) {
		size_t len = strlen(segs[i]);
		r->segs[i] = strdup(segs[i]);
		/* "{id}" captures a parameter named "id". */
		if(len >= 2 && segs[i][0] == '{' && segs[i][len - 1] == '}' &&
				!(r->params[i] = strndup(segs[i] + 1, len - 2)))
			goto nomem;
		if(!r->segs[i])
			goto nomem;
	}
	free(work);
	work = NULL;
	if(!r->method || !r->path)
		goto nomem;
	if(openapi) {
		json_error_t err;
		r->openapi = json_loads(openapi, 0, &err);
		if(!r->openapi)
			log_warn("http", "route %s %s: OpenAPI text is not JSON: %s", method, path, err.text);
	}
	/* Append, so earlier (core) routes win ties. */
	struct route **pp = &s->routes;
	while(*pp)
		pp = &(*pp)->next;
	*pp = r;
	return OH_OK;

nomem:
	free(work);
	if(r)
		route_free(r);
	return OH_ERR_NOMEM;
}

int http_plugin_path(const oh_ctx *ctx, const char *path, char *buf, size_t len)
{
	if(!path || path[0] != '/' || strstr(path, ".."))
		return OH_ERR_INVAL;
	int n = snprintf(buf, len, "/api/%s%s", ctx->module, strcmp(path, "/") ? path : "");
	return n < 0 || (size_t)n >= len ? OH_ERR_TOO_LARGE : OH_OK;
}

int http_route_require(struct http_server *s, const char *method, const char *path, enum oh_role role)
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

enum oh_role http_route_role(
		const struct http_server *s, const oh_ctx *owner, const char *method, const char *path)
{
	for(const struct route *r = s->routes; r; r = r->next) {
		if(r->owner == owner && !strcmp(r->method, method) && !strcmp(r->path, path))
			return r->role;
	}
	return OH_ROLE_NONE;
}

int oh_route_require(oh_ctx *ctx, const char *method, const char *path, enum oh_role role)
{
	char full[512];
	int rc = method ? http_plugin_path(ctx, path, full, sizeof full) : OH_ERR_INVAL;
	return rc ? rc : http_route_require(ctx->host->http, method, full, role);
}

void http_remove_owner(struct http_server *s, oh_ctx *owner)
{
	/* Requests the owner left open (deferred replies) would wait forever
	 * and call its gone_fn after its code was unloaded: answer them now. */
	for(struct oh_list_node *n = s->open.first; owner && n; n = n->next) {
		struct oh_http_req *req = oh_list_entry(n, struct oh_http_req, link);
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

static bool route_matches(const struct route *r, char **segs, int n)
{
	if(r->n_segs != n)
		return false;
	for(int i = 0; i < n; i++) {
		if(!r->params[i] && strcmp(r->segs[i], segs[i]))
			return false;
	}
	return true;
}

const char *http__route_pattern(const struct http_server *s, const char *path)
{
	char *buf = path ? strdup(path) : NULL;
	char *segs[MAX_SEGMENTS];
	int n = buf ? split_path(buf, segs) : -1;
	const char *pattern = NULL;
	for(const struct route *r = s->routes; n >= 0 && r && !pattern; r = r->next) {
		if(route_matches(r, segs, n))
			pattern = r->metric_name;
	}
	free(buf);
	return pattern;
}

struct route *http__route_find(struct http_server *s, struct oh_http_req *req, bool *wrong_method,
		char *allow, size_t allow_len)
{
	*wrong_method = false;
	allow[0] = '\0';
	/* Kept with the request: parameter values point into it. */
	free(req->segs_buf);
	req->segs_buf = strdup(req->path);
	if(!req->segs_buf)
		return NULL;
	char *segs[MAX_SEGMENTS];
	int n = split_path(req->segs_buf, segs);
	struct route *found = NULL;
	const char *method = strcmp(req->method, "HEAD") ? req->method : "GET";
	for(struct route *r = s->routes; n >= 0 && r; r = r->next) {
		if(!route_matches(r, segs, n))
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
		for(int i = 0; i < found->n_segs && req->n_params < MAX_PARAMS; i++) {
			if(!found->params[i])
				continue;
			req->params[req->n_params].name = found->params[i];
			req->params[req->n_params].value = segs[i];
			req->n_params++;
		}
		req->owner = found->owner;
	}
	return found;
}

void http__routes_free(struct http_server *s)
{
	while(s->routes) {
		struct route *r = s->routes;
		s->routes = r->next;
		route_free(r);
	}
}
