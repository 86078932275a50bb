/*
 * The HTTP server: libmicrohttpd in external-epoll mode on the host's loop,
 * a route table with {param} captures, JSON replies, and deferred replies
 * for handlers that wait (a device ack, an event stream).
 */
#ifndef OH_HTTP_H
#define OH_HTTP_H

#include "core.h"

struct shared_buf;

struct http_server *http_server_new(struct host *h);
int http_server_start(struct http_server *s); /* binds; logs the address */
/* Answers every pending request with 503, then stops. */
void http_server_free(struct http_server *s);
int http_server_port(const struct http_server *s);
/* Live connections and event streams, for the limits and the metrics. */
size_t http_server_connections(const struct http_server *s);
size_t http_server_streams(const struct http_server *s);

/* Routes: owner is a plugin context or NULL for the core; `path` is absolute. */
int http_route_add(struct http_server *s, oh_ctx *owner, const char *method, const char *path, oh_http_fn fn,
		void *ud, const char *openapi);
void http_remove_owner(struct http_server *s, oh_ctx *owner);
/* "/api/{module}{path}" for a plugin's route path into buf: OH_ERR_INVAL for
 * a path not starting with '/' or containing "..", OH_ERR_TOO_LARGE. */
int http_plugin_path(const oh_ctx *ctx, const char *path, char *buf, size_t len);
/* Sets the role a mounted route needs (default: viewer for GET, operator
 * otherwise); OH_ERR_NOT_FOUND, OH_ERR_INVAL for OH_ROLE_NONE. */
int http_route_require(struct http_server *s, const char *method, const char *path, enum oh_role role);
/* The role the route `method path` (a pattern, as added) needs, or
 * OH_ROLE_NONE when owner has no such route. */
enum oh_role http_route_role(
		const struct http_server *s, const oh_ctx *owner, const char *method, const char *path);
/* The OpenAPI 3 document of every route; returned. */
json_t *http_openapi(struct http_server *s);

/* Replies that are not JSON documents built per request. */
int http_reply_buf(struct oh_http_req *req, unsigned status, const char *content_type,
		struct shared_buf *buf /* a new reference is taken */);
int http_reply_static(struct oh_http_req *req, unsigned status, const char *content_type, const void *data,
		size_t len /* data must outlive the server */);
int http_reply_copy(struct oh_http_req *req, unsigned status, const char *content_type, const void *data,
		size_t len);
void http_req_add_header(struct oh_http_req *req, const char *name, const char *value);
/* The token name of the HTTP request whose handler runs now, or NULL: the
 * audit records what a request causes under it. */
const char *http_current_token(void);
/* The query string as an object of strings (returned; a name given twice:
 * the last), for the one validator (include/oh/validate.h). */
json_t *http_req_query_json(const struct oh_http_req *req);
struct host *http_req_host(const struct oh_http_req *req);

/*
 * An open-ended response (server-sent events): the reply to req, status 200.
 * Returns NULL when req was already answered or on out-of-memory.  Data
 * written (copied) is sent as the client reads.  on_gone runs once, when the
 * connection is finished for whatever reason (client left, close, abort,
 * server shutdown); st is invalid after it returns.  A client that vanished
 * is only noticed on a later write, so long-lived streams send heartbeats.
 */
struct http_stream;
struct http_stream *http_reply_stream(struct oh_http_req *req, const char *content_type,
		void (*on_gone)(struct http_stream *st, void *ud), void *ud);
/* OH_OK, OH_ERR_NO_CONN once closed/aborted/gone, OH_ERR_NOMEM. */
int http_stream_write(struct http_stream *st, const char *data, size_t len);
/* The same without a copy: buf is queued by reference (a new one is
 * taken), so one buffer can be queued on any number of streams. */
int http_stream_write_buf(struct http_stream *st, struct shared_buf *buf);
/* Swaps a queued buffer that has not begun to go out for buf (a newer
 * snapshot superseding an unsent one); false when old is not so queued. */
bool http_stream_replace_buf(struct http_stream *st, struct shared_buf *old, struct shared_buf *buf);
/* Ends the stream after what is buffered has been sent. */
void http_stream_close(struct http_stream *st);
/* Drops the buffer and the connection at once (a client too slow to keep
 * up); on_gone follows when the server has let go of the connection. */
void http_stream_abort(struct http_stream *st);
/* Bytes written but not yet handed to the socket. */
size_t http_stream_backlog(const struct http_stream *st);
/* How long data has waited with nothing read by the client (0: none waits). */
double http_stream_stalled_s(const struct http_stream *st);

#endif
