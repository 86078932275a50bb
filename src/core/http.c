/*
 * HTTP on the host's loop.
 *
 * libmicrohttpd runs in external-epoll mode: its epoll descriptor is one
 * event in our loop and its own timeout drives a loop timer, so HTTP never
 * needs a thread.  A request's body is collected up to http.max_body_bytes
 * (413 beyond), parsed as JSON once (400 naming line and column when
 * malformed) and handed to the route's handler.  A handler that does not
 * reply at once leaves the connection suspended until it does; the reply
 * then resumes it.
 *
 * Security is applied here, in one place, for every route: when API tokens
 * are configured, paths under /api/ (and /metrics) need a bearer token
 * whose role is at least the route's (GET: viewer, other methods: operator,
 * or what the route declared); every response carries the security headers;
 * CORS headers appear only for origins listed in http.cors_origins.
 *
 * The route table is in http_routes.c, event streams in http_stream.c.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "audit.h"
#include "auth.h"
#include "http_cache.h"
#include "log.h"
#include "metrics.h"
#include "plugin_ctx.h"
#include "shared_buf.h"
#include "store.h"
#include "utf8.h"

/* ---- security headers, applied to every response in one place ------------- */

static void add_common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Content-Security-Policy",
			"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
			"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
	MHD_add_response_header(r, "Cache-Control", "no-store");
}

/* The configured origin equal to the request's Origin header, or NULL. */
static const char *cors_origin(const struct oh_http_req *req)
{
	const struct config *c = &req->server->host->cfg;
	if(!c->http.n_cors_origins)
		return NULL;
	const char *origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
	for(size_t i = 0; origin && i < c->http.n_cors_origins; i++) {
		if(!strcmp(c->http.cors_origins[i], origin))
			return c->http.cors_origins[i];
	}
	return NULL;
}

/* No CORS headers at all unless origins are configured; then a cache must
 * keep answers apart by Origin, and only a listed origin is allowed. */
static void add_cors_headers(struct oh_http_req *req, struct MHD_Response *r)
{
	if(!req->server->host->cfg.http.n_cors_origins)
		return;
	MHD_add_response_header(r, "Vary", "Origin");
	const char *origin = cors_origin(req);
	if(origin)
		MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
}

/* The request whose handler runs now, for the audit records it causes
 * (http_current_token); the loop is single-threaded. */
static struct oh_http_req *current;

/* ---- replies -------------------------------------------------------------- */

int http__set_response(
		struct oh_http_req *req, unsigned status, struct MHD_Response *resp, const char *content_type)
{
	if(!resp)
		return OH_ERR_NOMEM;
	if(req->response || req->status) {
		/* A second reply is a handler bug; keep the first. */
		MHD_destroy_response(resp);
		return OH_ERR_EXISTS;
	}
	if(content_type)
		MHD_add_response_header(resp, "Content-Type", content_type);
	add_common_headers(resp);
	add_cors_headers(req, resp);
	req->response = resp;
	req->status = status;
	if(req->suspended) {
		req->suspended = false;
		MHD_resume_connection(req->conn);
		http__kick(req->server);
	}
	return OH_OK;
}

int http_reply_copy(struct oh_http_req *req, unsigned status, const char *content_type, const void *data,
		size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
	return http__set_response(req, status, r, content_type);
}

int http_reply_static(struct oh_http_req *req, unsigned status, const char *content_type, const void *data,
		size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
	return http__set_response(req, status, r, content_type);
}

static void unref_buf(void *p)
{
	/* MHD hands back the data pointer; step back to the header. */
	shared_buf_unref((struct shared_buf *)((char *)p - offsetof(struct shared_buf, data)));
}

static int reply_plain(
		struct oh_http_req *req, unsigned status, const char *content_type, struct shared_buf *buf)
{
	shared_buf_ref(buf);
	struct MHD_Response *r =
			MHD_create_response_from_buffer_with_free_callback(buf->len, buf->data, unref_buf);
	if(!r)
		shared_buf_unref(buf);
	return http__set_response(req, status, r, content_type);
}

int http_reply_buf(struct oh_http_req *req, unsigned status, const char *content_type, struct shared_buf *buf)
{
	/* A shared body never changes once replied with: a 200 of one gets
	 * its ETag, 304 and the cached gzip copy (http_cache.c). */
	if(status != 200)
		return reply_plain(req, status, content_type, buf);
	struct http_cache_choice ch;
	http_cache_choose(req->server->host, buf,
			MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "If-None-Match"),
			MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept-Encoding"), &ch);
	int rc;
	if(ch.status == 304) {
		rc = http__set_response(req, 304,
				MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), NULL);
		metrics_count("oh_http_not_modified_total", 1);
	} else {
		rc = reply_plain(req, 200, content_type, ch.body);
		if(rc == OH_OK && ch.gzip)
			http_req_add_header(req, "Content-Encoding", "gzip");
	}
	if(rc == OH_OK) {
		if(ch.etag)
			http_req_add_header(req, "ETag", ch.etag);
		http_req_add_header(req, "Vary", "Accept-Encoding");
	}
	return rc;
}

/* Every request gets an answer: a body that cannot be serialised becomes a
 * fixed 500 rather than a connection left hanging. */
static const char reply_failed[] =
		"{\"error\":{\"code\":\"INTERNAL\",\"message\":\"the reply could not be built\"}}";

int oh_reply_json(struct oh_http_req *req, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(body);
	if(!text)
		return http_reply_static(req, 500, "application/json", reply_failed, sizeof reply_failed - 1);
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if(!r)
		free(text);
	return http__set_response(req, status, r, "application/json");
}

/* Cuts a string that vsnprintf truncated inside a UTF-8 sequence back to the
 * last whole character, so it stays a valid JSON string. */
static void utf8_trim_partial(char *s)
{
	size_t n = strlen(s), i = n;
	while(i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if(i == 0 || !((unsigned char)s[i - 1] & 0x80))
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if(n - (i - 1) < want)
		s[i - 1] = '\0';
}

int oh_reply_error(struct oh_http_req *req, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	utf8_trim_partial(msg);
	/* Text that still is not UTF-8 (a client's, cut inside a character by
	 * "%.64s") keeps its message, the broken bytes shown as '?'. */
	json_t *body = json_pack("{s:{s:s, s:o}}", "error", "code", code, "message", utf8_json_string(msg));
	return oh_reply_json(req, status, body);
}

void http_req_add_header(struct oh_http_req *req, const char *name, const char *value)
{
	if(req->response)
		MHD_add_response_header(req->response, name, value);
}

/* ---- request accessors ------------------------------------------------------ */

const char *oh_req_method(const struct oh_http_req *req)
{
	return req->method;
}
struct host *http_req_host(const struct oh_http_req *req)
{
	return req->server->host;
}
const char *oh_req_path(const struct oh_http_req *req)
{
	return req->path;
}
const json_t *oh_req_body(const struct oh_http_req *req)
{
	return req->json;
}
const char *oh_req_actor(const struct oh_http_req *req)
{
	return req->token ? req->token->name : NULL;
}
enum oh_role oh_req_role(const struct oh_http_req *req)
{
	return req->role;
}

const char *oh_req_param(const struct oh_http_req *req, const char *name)
{
	for(int i = 0; i < req->n_params; i++) {
		if(!strcmp(req->params[i].name, name))
			return req->params[i].value;
	}
	return NULL;
}

const char *oh_req_query(const struct oh_http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	json_object_set_new(cls, key, value ? json_string(value) : json_string(""));
	return MHD_YES;
}

json_t *http_req_query_json(const struct oh_http_req *req)
{
	json_t *o = json_object();
	if(o)
		MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, add_query, o);
	return o;
}

const char *oh_req_header(const struct oh_http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void oh_req_on_gone(struct oh_http_req *req, oh_req_gone_fn fn, void *ud)
{
	req->gone_fn = fn;
	req->gone_ud = ud;
}

/* ---- request life cycle ------------------------------------------------------- */

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void req_free(struct oh_http_req *req)
{
	struct http_server *s = req->server;
	if(oh_list_linked(&s->open, &req->link))
		oh_list_remove(&s->open, &req->link);
	free(req->segs_buf);
	if(req->response)
		MHD_destroy_response(req->response);
	json_decref(req->json);
	free(req->method);
	free(req->path);
	free(req->body);
	free(req);
}

static enum MHD_Result queue_reply(struct oh_http_req *req)
{
	struct MHD_Response *r = req->response;
	req->response = NULL;
	unsigned status = req->status;
	/* Refusals before routing (405, 413, 401, ...) count under the route
	 * the path names, so that only unknown paths read "unmatched". */
	const char *route = req->route;
	if(!route && req->path && !req->path_problem)
		route = http__route_pattern(req->server, req->path);
	metrics_http_request(req->method, route, status, mono_now() - req->started);
	/* An answer may acknowledge what an audit record describes (a command's
	 * outcome): the record is stored first (audit.h). */
	audit_flush(req->server->host);
	enum MHD_Result rc = MHD_queue_response(req->conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* ---- authentication ---------------------------------------------------------- */

/* Paths that carry data.  The pages, scripts, /openapi.json and /healthz
 * hold none and stay public, so a browser can load the UI and ask for a
 * token, and a load balancer can probe. */
bool http__needs_token(const char *path)
{
	return !strncmp(path, "/api/", 5) || !strcmp(path, "/api") || !strcmp(path, "/metrics");
}

static void reply_unauthorized(struct oh_http_req *req, bool invalid, const char *msg)
{
	oh_reply_error(req, 401, "UNAUTHORIZED", "%s", msg);
	http_req_add_header(req, "WWW-Authenticate",
			invalid ? "Bearer realm=\"orchestrator-host\", error=\"invalid_token\""
				: "Bearer realm=\"orchestrator-host\"");
}

static void log_refused(struct oh_http_req *req, const char *why)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if(ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if(sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
		else if(sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
	}
	log_warn("http", "%s %s from %s: %s", req->method, req->path, addr, why);
}

/*
 * Sets req->token and req->role, or answers 401 and returns false.  The
 * token comes from "Authorization: Bearer ..."; on GET /api/events also
 * from ?access_token=, because a browser's EventSource cannot send headers
 * (docs/deploy-http.md names the trade-off).
 */
static bool authenticate(struct http_server *s, struct oh_http_req *req)
{
	const struct config *c = &s->host->cfg;
	if(!c->http.n_tokens) {
		/* No tokens: loopback only, or explicitly allowed (config.c). */
		req->role = OH_ROLE_ADMIN;
		return true;
	}
	req->role = OH_ROLE_NONE;
	if(!http__needs_token(req->path))
		return true;
	const char *tok = NULL;
	const char *hdr = oh_req_header(req, "Authorization");
	if(hdr) {
		if(strncasecmp(hdr, "Bearer ", 7)) {
			reply_unauthorized(req, false, "the Authorization header must be \"Bearer TOKEN\"");
			return false;
		}
		tok = hdr + 7;
		tok += strspn(tok, " ");
	} else if(!strcmp(req->path, "/api/events") &&
			(!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD"))) {
		tok = oh_req_query(req, "access_token");
	}
	if(!tok || !*tok) {
		reply_unauthorized(
				req, false, "an API token is required: send \"Authorization: Bearer TOKEN\"");
		return false;
	}
	req->token = auth_lookup(c->http.tokens, c->http.n_tokens, tok);
	if(!req->token) {
		log_refused(req, "invalid API token");
		reply_unauthorized(req, true, "the API token is not valid");
		return false;
	}
	req->role = req->token->role;
	return true;
}

/* A CORS preflight from a listed origin; anything else goes on as a plain
 * request (an OPTIONS without a route gets 405). */
static bool answer_preflight(struct oh_http_req *req)
{
	if(strcmp(req->method, "OPTIONS") || !cors_origin(req) ||
			!oh_req_header(req, "Access-Control-Request-Method"))
		return false;
	http_reply_static(req, 204, NULL, "", 0);
	http_req_add_header(req, "Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE");
	http_req_add_header(req, "Access-Control-Allow-Headers", "Authorization, Content-Type");
	http_req_add_header(req, "Access-Control-Max-Age", "600");
	return true;
}

/* ---- the guard: Host, path, and requests forged by other sites -------------- */

/*
 * Answers 400 or 403 and returns false for a request no route may see:
 * a Host that does not name us (DNS rebinding), a non-canonical path (so
 * auth and routing read one string), or a state-changing request that a
 * page on another site sent (CSRF; http_guard.c says why these headers).
 */
static bool passes_guard(struct http_server *s, struct oh_http_req *req)
{
	const char *host = oh_req_header(req, "Host");
	if((!host && !req->http10) || !http_host_allowed(&s->host_rules, host)) {
		oh_reply_error(req, 400, "BAD_HOST",
				"Host \"%s\" does not name this host; add it to "
				"http.allowed_hosts if clients reach the host by that name",
				host ? host : "");
		return false;
	}
	if(req->path_problem) {
		oh_reply_error(req, 400, "BAD_PATH", "%s", req->path_problem);
		return false;
	}
	if(!http_method_changes_state(req->method))
		return true;
	const char *origin = oh_req_header(req, "Origin");
	bool listed = cors_origin(req) != NULL;
	if(origin && !listed && !http_origin_is_own(origin, host, s->host->cfg.http.tls.enabled)) {
		log_refused(req, "cross-origin request");
		oh_reply_error(req, 403, "CROSS_ORIGIN",
				"%s requests from origin %s are refused; list it "
				"in http.cors_origins to allow it",
				req->method, origin);
		return false;
	}
	const char *site = oh_req_header(req, "Sec-Fetch-Site");
	if(site && !strcmp(site, "cross-site") && !listed) {
		log_refused(req, "cross-site request");
		oh_reply_error(req, 403, "CROSS_ORIGIN", "%s requests from another site are refused",
				req->method);
		return false;
	}
	return true;
}

/* Every Content-Length header, to tell a repeated one from a conflicting
 * one (a request smuggling trick: two parsers may pick different ones). */
struct length_scan {
	const char *first;
	bool conflict;
};

static enum MHD_Result scan_length(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct length_scan *sc = cls;
	if(key && value && !strcasecmp(key, "Content-Length")) {
		if(!sc->first)
			sc->first = value;
		else if(strcmp(sc->first, value))
			sc->conflict = true;
	}
	return MHD_YES;
}

/*
 * Answers what the headers alone decide, before any of the body is read:
 * the guard, conflicting Content-Length headers (400) and a declared body
 * over http.max_body_bytes (413; reading 100 MB first only to refuse it
 * was the old way).  Returns whether req was answered.
 */
static bool refused_from_headers(struct http_server *s, struct oh_http_req *req)
{
	if(!passes_guard(s, req))
		return true;
	struct length_scan sc = {0};
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, scan_length, &sc);
	if(sc.conflict) {
		oh_reply_error(req, 400, "BAD_REQUEST", "conflicting Content-Length headers");
		return true;
	}
	if(sc.first) {
		char *end;
		unsigned long long n = strtoull(sc.first, &end, 10);
		if(end != sc.first && n > (unsigned long long)s->host->cfg.http.max_body_bytes) {
			oh_reply_error(req, 413, "TOO_LARGE", "request body is over %ld bytes",
					s->host->cfg.http.max_body_bytes);
			return true;
		}
	}
	return false;
}

/* ---- slow clients ---------------------------------------------------------------- */

/*
 * libmicrohttpd's connection timeout counts idle time, so a client that
 * trickles a byte a second never reaches it.  Each connection therefore has
 * a clock: a request must have arrived whole (headers and body) within
 * http.request_timeout_s of the connection opening or of the previous
 * request ending, or the connection is shut.  A request being handled, a
 * deferred reply and an event stream are not timed.
 */
struct conn_clock {
	struct oh_list_node link; /* in http_server.clocks */
	struct MHD_Connection *conn;
	double since;
	bool handling;
};

static struct conn_clock *clock_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
		enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;
	struct conn_clock *c = *socket_context;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *client = ci ? ci->client_addr : NULL;
	if(code == MHD_CONNECTION_NOTIFY_STARTED)
		http__conn_started(s, client);
	else
		http__conn_closed(s, client);
	if(code == MHD_CONNECTION_NOTIFY_STARTED) {
		c = calloc(1, sizeof *c);
		if(!c)
			return; /* untimed; the idle timeout still applies */
		c->conn = conn;
		c->since = mono_now();
		oh_list_push_front(&s->clocks, &c->link);
		*socket_context = c;
		return;
	}
	if(!c)
		return;
	oh_list_remove(&s->clocks, &c->link);
	free(c);
	*socket_context = NULL;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;
	double limit = mono_now() - s->host->cfg.http.request_timeout_s;
	bool cut = false;
	for(struct oh_list_node *n = s->clocks.first; n; n = n->next) {
		struct conn_clock *c = oh_list_entry(n, struct conn_clock, link);
		if(c->handling || c->since > limit)
			continue;
		const union MHD_ConnectionInfo *ci =
				MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if(ci) {
			/* libmicrohttpd sees the socket end and closes the connection. */
			shutdown(ci->connect_fd, SHUT_RDWR);
			c->since = mono_now(); /* once */
			cut = true;
		}
	}
	if(cut) {
		log_debug("http", "cut off a client too slow to send its request");
		http__kick(s);
	}
}

static void dispatch_request(struct http_server *s, struct oh_http_req *req)
{
	struct conn_clock *c = clock_of(req->conn);
	if(c)
		c->handling = true;
	req->dispatched = true;
	if(!passes_guard(s, req))
		return;
	/* OPTIONS needs no token: a listed origin's preflight is answered, any
	 * other OPTIONS falls through to 404/405 below. */
	if(answer_preflight(req) || (strcmp(req->method, "OPTIONS") && !authenticate(s, req)))
		return;
	if(req->body_too_large) {
		oh_reply_error(req, 413, "TOO_LARGE", "request body is over %ld bytes",
				s->host->cfg.http.max_body_bytes);
		return;
	}
	bool wrong_method = false;
	char allow[128] = "";
	struct route *r = http__route_find(s, req, &wrong_method, allow, sizeof allow);
	if(!r) {
		if(wrong_method) {
			oh_reply_error(req, 405, "METHOD_NOT_ALLOWED", "%s is not allowed on %s (allowed: %s)",
					req->method, req->path, allow);
			http_req_add_header(req, "Allow", allow);
		} else {
			oh_reply_error(req, 404, "NOT_FOUND", "no such path: %s", req->path);
		}
		return;
	}
	req->route = r->metric_name;
	if(req->token && req->token->role < r->role) {
		log_refused(req, "role too low");
		oh_reply_error(req, 403, "FORBIDDEN", "%s %s needs the %s role; token \"%s\" has %s",
				req->method, req->path, auth_role_name(r->role), req->token->name,
				auth_role_name(req->token->role));
		return;
	}
	/* A body is JSON, and says so: a browser cannot send that cross-site
	 * without a preflight, which only listed origins pass. */
	const char *ct = oh_req_header(req, "Content-Type");
	if((req->body_len || ct) && http_method_changes_state(req->method) && !http_content_type_is_json(ct)) {
		oh_reply_error(req, 415, "UNSUPPORTED_MEDIA_TYPE",
				"%s %s takes Content-Type: "
				"application/json%s%s",
				req->method, req->path, ct ? ", not " : "", ct ? ct : "");
		return;
	}
	if(req->body_len) {
		json_error_t err;
		req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
		if(!req->json) {
			oh_reply_error(req, 400, "BAD_JSON", "body is not valid JSON: line %d, column %d: %s",
					err.line, err.column, err.text);
			return;
		}
	}
	if(http_method_changes_state(req->method) && !ha_acting(s->host)) {
		/* A standby changes nothing: the client goes to the leader. */
		json_t *body = json_pack("{s:{s:s, s:s}, s:o}", "error", "code", "NOT_LEADER", "message",
				"this host is a standby; send state changes to the leader", "leader",
				ha_leader_json(s->host));
		oh_reply_json(req, 503, body);
		return;
	}
	req->in_handler = true;
	current = req;
	r->fn(r->owner, req, r->ud);
	current = NULL;
	req->in_handler = false;
}

const char *http_current_token(void)
{
	return current && current->token ? current->token->name : NULL;
}

/* ---- replies that wait for the store (store.h, publish.c) ------------------- */

struct http_hold {
	struct oh_http_req *req; /* NULL once the client is gone */
};

static void reply_committed(int rc, void *ud)
{
	struct http_hold *hd = ud;
	struct oh_http_req *req = hd->req;
	free(hd);
	if(!req)
		return;
	req->hold = NULL;
	req->committed = true;
	if(rc) {
		/* What the reply reports was not kept. */
		MHD_destroy_response(req->response);
		req->response = NULL;
		req->status = 0;
		oh_reply_error(req, 503, "NOT_LEADER", "the change was not stored: this host stopped leading");
		return;
	}
	req->suspended = false;
	MHD_resume_connection(req->conn);
	http__kick(req->server);
}

/* Holds a state change's reply until the store has committed it. */
static void hold_reply(struct oh_http_req *req)
{
	struct http_hold *hd = calloc(1, sizeof *hd);
	if(!hd) {
		req->committed = true; /* no memory to wait: answer now */
		return;
	}
	hd->req = req;
	req->hold = hd;
	req->suspended = true;
	MHD_suspend_connection(req->conn);
	store_when_committed(req->server->host->store, reply_committed, hd);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
		const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http_server *s = cls;
	struct oh_http_req *req = *con_cls;
	if(!req)
		return MHD_NO; /* on_uri ran out of memory */
	if(!req->method) {
		req->http10 = !strcmp(version, MHD_HTTP_VERSION_1_0);
		req->method = strdup(method);
		req->path = strdup(url);
		if(!req->method || !req->path)
			return MHD_NO; /* on_completed frees req */
		oh_list_push_front(&s->open, &req->link);
		*con_cls = req;
		if(refused_from_headers(s, req)) {
			req->dispatched = true;
			return queue_reply(req);
		}
		return MHD_YES;
	}
	if(*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if(req->body_too_large)
			return MHD_YES;
		if(req->body_len + n > (size_t)s->host->cfg.http.max_body_bytes) {
			/* Keep reading (and discarding) so the client gets its 413. */
			req->body_too_large = true;
			free(req->body);
			req->body = NULL;
			req->body_len = 0;
			return MHD_YES;
		}
		char *b = realloc(req->body, req->body_len + n + 1);
		if(!b)
			return MHD_NO;
		memcpy(b + req->body_len, upload_data, n);
		req->body = b;
		req->body_len += n;
		return MHD_YES;
	}
	if(!req->dispatched)
		dispatch_request(s, req);
	if(req->response && !req->committed && http_method_changes_state(req->method) &&
			store_pending(s->host->store)) {
		hold_reply(req);
		if(req->hold)
			return MHD_YES;
	}
	if(req->response)
		return queue_reply(req);
	if(!req->suspended && !req->stream) {
		/* The handler will answer later. */
		req->suspended = true;
		MHD_suspend_connection(conn);
	}
	return MHD_YES;
}

/* libmicrohttpd shows the request target as the client sent it only here,
 * before it percent-decodes the path for on_request, and the canonical
 * check must see the raw form.  What this returns is the request's context,
 * which on_completed frees. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct oh_http_req *req = calloc(1, sizeof *req);
	if(!req)
		return NULL;
	req->server = cls;
	req->conn = conn;
	req->path_problem = http_path_problem(uri);
	req->started = mono_now();
	return req;
}

static void on_completed(
		void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct oh_http_req *req = *con_cls;
	struct conn_clock *c = clock_of(conn);
	if(c) {
		/* The next request on this connection has its own time. */
		c->handling = false;
		c->since = mono_now();
	}
	if(!req)
		return;
	*con_cls = NULL;
	if(req->hold)
		req->hold->req = NULL;
	if(req->stream) {
		http__stream_gone(req);
	} else if(!req->status && req->gone_fn) {
		req->gone_fn(req, req->gone_ud);
	}
	req_free(req);
}

/* ---- the loop glue ------------------------------------------------------------------ */

static void run_mhd(struct http_server *s)
{
	static const struct timeval now = {0, 0};

	s->in_run = true;
	s->kicked = false;
	MHD_run(s->mhd);
	s->in_run = false;
	MHD_UNSIGNED_LONG_LONG ms;
	if(s->kicked) {
		/* A handler resumed a connection (an event stream written to from
		 * a request's handler, say): MHD takes it up on its next run, and
		 * its timeout does not count it.  Without this the stream waits
		 * for the next unrelated request. */
		evtimer_add(s->ev_timer, &now);
	} else if(MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
		struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
		evtimer_add(s->ev_timer, &tv);
	} else {
		evtimer_del(s->ev_timer);
	}
}

static void on_mhd_event(evutil_socket_t fd, short what, void *arg)
{
	run_mhd(arg);
}

void http__kick(struct http_server *s)
{
	struct timeval now = {0, 0};
	if(s->in_run)
		s->kicked = true; /* run_mhd re-arms the timer after MHD_run */
	evtimer_add(s->ev_timer, &now);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	/* A browser closing a tab is routine, not worth a warning. */
	if(strstr(msg, "Failed to send") || strstr(msg, "reset by peer") || strstr(msg, "closed by remote"))
		log_debug("http", "%s", msg);
	else
		log_warn("http", "%s", msg);
}

struct http_server *http_server_new(struct host *h)
{
	struct http_server *s = calloc(1, sizeof *s);
	if(!s)
		return NULL;
	s->host = h;
	s->listen_fd = -1;
	if(http_host_rules_init(&s->host_rules, h->cfg.http.bind, h->cfg.http.allowed_hosts,
			   h->cfg.http.n_allowed_hosts)) {
		free(s);
		return NULL;
	}
	return s;
}

int http_server_start(struct http_server *s)
{
	struct host *h = s->host;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
	const char *addr = h->cfg.http.bind;
	/* TLS from memory (config.c read the files), through MHD's GnuTLS. */
	bool tls = h->cfg.http.tls.enabled;
	struct MHD_OptionItem tls_opts[] = {
			{MHD_OPTION_HTTPS_MEM_CERT, 0, h->cfg.http.tls.cert_pem},
			{MHD_OPTION_HTTPS_MEM_KEY, 0, h->cfg.http.tls.key_pem},
			{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
			{MHD_OPTION_END, 0, NULL},
	};
	if(tls) {
		if(MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			log_error("http", "http.tls: this libmicrohttpd was built without TLS support");
			return OH_ERR_INVAL;
		}
		flags |= MHD_USE_TLS;
	}
	if(strchr(addr, ':')) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)h->cfg.http.port);
		if(inet_pton(AF_INET6, addr, &a6->sin6_addr) != 1)
			goto bad_addr;
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)h->cfg.http.port);
		if(inet_pton(AF_INET, addr, &a4->sin_addr) != 1)
			goto bad_addr;
	}
	char where[INET6_ADDRSTRLEN + 16];
	snprintf(where, sizeof where, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, h->cfg.http.port);
	int rc = http__listen_open(s, (struct sockaddr *)&ss,
			ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
			where);
	if(rc)
		return rc;
	/* No listening socket of its own: http_listen.c accepts and admits. */
	s->mhd = MHD_start_daemon(flags | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request, s,
			MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
			on_connection, s, MHD_OPTION_ARRAY, tls ? tls_opts : &tls_opts[3],
			/* An idle client is cut off after this; a slow one by
			 * on_deadline. */
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->cfg.http.request_timeout_s,
			/* Never reached: http_listen.c admits fewer. */
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->cfg.limits.max_http_connections + 16,
			/* Bounds the request line and headers too (MHD answers 431). */
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
	if(!s->mhd) {
		log_error("http", "cannot serve on %s%s", where,
				tls ? " (http.tls certificate or key rejected)" : "");
		return OH_ERR_IO;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	s->ev_io = event_new(h->base, info->epoll_fd, EV_READ | EV_PERSIST, on_mhd_event, s);
	s->ev_timer = evtimer_new(h->base, on_mhd_event, s);
	s->ev_deadline = event_new(h->base, -1, EV_PERSIST, on_deadline, s);
	if(!s->ev_io || !s->ev_timer || !s->ev_deadline) {
		log_error("http", "out of memory");
		return OH_ERR_NOMEM;
	}
	event_add(s->ev_io, NULL);
	struct timeval second = {1, 0};
	event_add(s->ev_deadline, &second);
	log_info("http", "listening on %s://%s%s%s:%d/", tls ? "https" : "http", strchr(addr, ':') ? "[" : "",
			addr, strchr(addr, ':') ? "]" : "", s->port);
	return OH_OK;

bad_addr:
	log_error("http", "http.bind: \"%s\" is not an IP address", addr);
	return OH_ERR_INVAL;
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

void http_server_free(struct http_server *s)
{
	if(!s)
		return;
	if(s->mhd) {
		/* Suspended connections must be resumed before MHD can stop. */
		for(struct oh_list_node *n = s->open.first; n; n = n->next) {
			struct oh_http_req *req = oh_list_entry(n, struct oh_http_req, link);
			if(req->stream) {
				http_stream_close(req->stream);
			} else if(req->hold) {
				/* A reply still waiting for its commit: whether the change
				 * was kept is unknown (the store goes too, and its waiter
				 * then finds no request). */
				req->hold->req = NULL;
				req->hold = NULL;
				req->committed = true; /* so that MHD_run does not hold it again */
				MHD_destroy_response(req->response);
				req->response = NULL;
				req->status = 0;
				oh_reply_error(req, 503, "SHUTTING_DOWN",
						"the host is shutting down; the change may not be stored");
			} else if(req->dispatched && !req->response && !req->status)
				oh_reply_error(req, 503, "SHUTTING_DOWN", "the host is shutting down");
		}
		MHD_run(s->mhd);
		MHD_stop_daemon(s->mhd);
	}
	if(s->ev_io)
		event_free(s->ev_io);
	if(s->ev_timer)
		event_free(s->ev_timer);
	if(s->ev_deadline)
		event_free(s->ev_deadline);
	http__listen_close(s);
	http__routes_free(s);
	http_host_rules_free(&s->host_rules);
	free(s);
}
