/*
 * What the HTTP files share: the request, route, stream and server
 * structures, and the few functions one file calls in another.  http.c is
 * the server and the request life cycle, http_routes.c the route table and
 * http_openapi.c the OpenAPI document, http_stream.c the open-ended
 * responses.
 */
#ifndef OH_HTTP_INTERNAL_H
#define OH_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <sys/socket.h>

#include "auth.h"
#include "http.h"
#include "http_guard.h"
#include "oh/list.h"

#define MAX_SEGMENTS 16
#define MAX_PARAMS 8

struct route {
	struct route *next;
	oh_ctx *owner;
	char *method;
	char *path;
	char *segs[MAX_SEGMENTS];
	char *params[MAX_SEGMENTS]; /* "id" for a "{id}" segment, else NULL */
	int n_segs;
	const char *metric_name; /* path, interned for the metrics */
	oh_http_fn fn;
	void *ud;
	json_t *openapi;
	enum oh_role role; /* the least role a token needs */
};

struct oh_http_req {
	struct http_server *server;
	struct MHD_Connection *conn;
	struct oh_list_node link; /* in http_server.open once it has a method */
	char *method;
	char *path;               /* percent-decoded, canonical once checked */
	const char *path_problem; /* static; why the raw path was refused */
	bool http10;              /* HTTP/1.0: Host is optional */
	char *body;
	size_t body_len;
	bool body_too_large;
	json_t *json;
	struct {
		const char *name;  /* borrowed from the route */
		const char *value; /* points into segs_buf */
	} params[MAX_PARAMS];
	int n_params;
	char *segs_buf; /* the path, split at '/' */
	oh_ctx *owner;
	const struct auth_token *token; /* the caller's, NULL without one */
	enum oh_role role;

	bool dispatched;
	bool in_handler;
	bool suspended;
	bool committed;                /* its state writes are durable (store.h) */
	struct http_hold *hold;        /* waiting for them, or NULL */
	struct MHD_Response *response; /* set by a reply, queued by on_request */
	unsigned status;
	oh_req_gone_fn gone_fn;
	void *gone_ud;
	struct http_stream *stream;
	const char *route; /* matched pattern (interned), for metrics */
	double started;    /* monotonic seconds at the request line, for metrics */
};

/* One piece of a stream's backlog: a reference to a buffer that may be
 * queued on every other stream too, and how much of it this one sent. */
struct stream_chunk {
	struct stream_chunk *next;
	struct shared_buf *buf;
	size_t off;
};

struct http_stream {
	struct oh_http_req *req;          /* NULL once the client is gone */
	struct stream_chunk *head, *tail; /* unsent, oldest first */
	size_t backlog;                   /* unsent bytes */
	double progress_mono;             /* last read by the client, or backlog start */
	bool closed;                      /* end after the backlog is sent */
	bool aborted;                     /* drop the connection now */
	bool suspended;
	void (*on_gone)(struct http_stream *, void *);
	void *ud;
};

struct http_server {
	struct host *host;
	struct MHD_Daemon *mhd;
	struct event *ev_io;
	struct event *ev_timer;
	struct route *routes;
	struct oh_list open;   /* of struct oh_http_req */
	struct oh_list clocks; /* of struct conn_clock: every connection, for the deadline */
	struct event *ev_deadline;
	struct http_host_rules host_rules;
	int port;
	bool in_run; /* inside MHD_run: a kick must outlive its re-arming */
	bool kicked; /* http__kick was called during this MHD_run */

	/* http_listen.c: our own listening socket and the admission counts. */
	int listen_fd;
	struct event *ev_listen;
	struct event *ev_pause;    /* accepting again after EMFILE */
	struct strmap *per_client; /* address -> live connections */
	size_t n_conns;            /* live connections */
	size_t n_streams;          /* live event streams */
};

/* Stores the reply on req; a deferred request is resumed. */
int http__set_response(struct oh_http_req *req, unsigned status, struct MHD_Response *resp,
		const char *content_type);
/* Runs libmicrohttpd on the next loop turn (after a resume). */
void http__kick(struct http_server *s);
/* The route for req, capturing its {params}; NULL with *wrong_method and
 * the allowed methods in allow when only the method differs. */
struct route *http__route_find(struct http_server *s, struct oh_http_req *req, bool *wrong_method,
		char *allow, size_t allow_len);
/* The pattern (interned, for the metrics) of the first route whose path
 * matches `path` (borrowed), whatever its method; NULL when none does. */
const char *http__route_pattern(const struct http_server *s, const char *path);
void http__routes_free(struct http_server *s);
/* Whether path carries data and so needs a token when http.tokens is
 * configured (http.c decides; http_openapi.c describes it). */
bool http__needs_token(const char *path);
/* The connection finished: tell the stream's owner, free the stream. */
void http__stream_gone(struct oh_http_req *req);

/* http_listen.c: binds and listens on sa (logging one line naming `where`
 * on failure), and hands accepted connections to libmicrohttpd within the
 * connection limits. */
int http__listen_open(struct http_server *s, const struct sockaddr *sa, socklen_t sl, const char *where);
void http__listen_close(struct http_server *s);
/* libmicrohttpd started or closed a connection from client. */
void http__conn_started(struct http_server *s, const struct sockaddr *client);
void http__conn_closed(struct http_server *s, const struct sockaddr *client);

#endif
