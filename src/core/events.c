/*
 * Server-sent events: GET /api/events streams what the web UI shows live.
 *
 * On connect a client gets `retry: 2000`, the broker state and the current
 * registry snapshot, so a page (re)connecting needs nothing else; after that
 * every published snapshot, every event the host publishes on
 * {root}/orchestrator/{module}/evt (handed over locally, not read back from
 * the broker, which would double the host's traffic) and every broker state
 * change, plus a `: ping` comment every 15 seconds.  A
 * connection parked with nothing to send is not polled, so the ping is also
 * how a client that vanished gets noticed.
 *
 *   event: registry   data: the snapshot, as published on {root}/orchestrator/registry
 *   event: orch_evt   data: {"topic": ..., "payload": <the event>} (payload null, with
 *                      "error", if a plugin published something that is not JSON)
 *   event: broker     data: {"mqtt": "connected" | "disconnected"}
 *   event: audit      data: one audit record once it is stored (audit.c, GET /api/audit's shape)
 *
 * An event is formatted once and queued by reference on every client's
 * stream, so memory grows with the distinct events not yet sent to someone,
 * not with clients times backlog.  A newer snapshot takes the place of an
 * unsent older one in a client's queue: a slow reader gets the latest state,
 * not every state in between.  A client that is still more than MAX_BACKLOG
 * bytes behind is dropped rather than buffered without bound; EventSource
 * reconnects and starts again from a fresh snapshot; so is one that read
 * nothing of its backlog for MAX_STALL_S (a newer snapshot replacing an
 * older one keeps a stuck client's backlog small, not its slot free).  At most
 * limits.max_sse_clients streams are open at once, so streams cannot take
 * the connections that ordinary requests and /healthz need.
 */
#include "events.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "http.h"
#include "oh/list.h"
#include "log.h"
#include "snapshot.h"
#include "metrics.h"
#include "mqtt_link.h"
#include "shared_buf.h"
#include "strbuf.h"

#define PING_INTERVAL_S 15
#define MAX_BACKLOG (1024 * 1024)
/* A client that has read nothing of what waits for it for this long is
 * stuck (a slow link still reads something every second). */
#define MAX_STALL_S 8.0
#define RETRY_MS "2000"

struct client {
	struct oh_list_node link; /* in events.clients */
	struct events *ev;
	struct http_stream *st;
	struct shared_buf *snapshot; /* the last snapshot event queued (a reference) */
	bool dropped;                /* aborted, waiting for on_gone */
};

struct events {
	struct host *host;
	struct oh_list clients; /* of struct client */
	struct event *ev_ping;
};

/* The link callbacks in main.c reach the state through the host; as struct
 * host has no slot for it, it lives here (one host per process). */
static struct events *the_events;

/* ---- formatting ----------------------------------------------------------- */

/* "event: NAME\ndata: ...\n\n", one data line per line of data (JSON text
 * normally has none, but a pretty-printed document must not end the
 * message early), in a buffer to share between clients.  A new reference,
 * or NULL. */
static struct shared_buf *sse_format(const char *event, const char *data, size_t len)
{
	size_t lines = 1;
	for(size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	size_t cap = strlen(event) + 9 + len + lines * 7 + 2;
	struct shared_buf *b = shared_buf_new(NULL, cap);
	if(!b)
		return NULL;
	char *out = b->data;
	size_t n = (size_t)sprintf(out, "event: %s\n", event);
	size_t start = 0;
	for(size_t i = 0; i <= len; i++) {
		if(i < len && data[i] != '\n')
			continue;
		size_t end = i;
		if(end > start && data[end - 1] == '\r')
			end--;
		memcpy(out + n, "data: ", 6);
		n += 6;
		memcpy(out + n, data + start, end - start);
		n += end - start;
		out[n++] = '\n';
		start = i + 1;
	}
	out[n++] = '\n';
	out[n] = '\0';
	b->len = n;
	return b;
}

/* ---- clients ------------------------------------------------------------------ */

static void client_drop(struct client *c, const char *why)
{
	log_warn("events", "dropping an event-stream client (%zu bytes unsent): %s",
			http_stream_backlog(c->st), why);
	c->dropped = true;
	http_stream_abort(c->st);
}

static void client_send(struct client *c, struct shared_buf *msg)
{
	if(c->dropped)
		return;
	if(http_stream_stalled_s(c->st) > MAX_STALL_S) {
		client_drop(c, "it read nothing of what waits for it");
		return;
	}
	/* Bounded by MAX_BACKLOG plus one message, however large snapshots get. */
	int rc = http_stream_backlog(c->st) > MAX_BACKLOG ? OH_ERR_TOO_LARGE
							  : http_stream_write_buf(c->st, msg);
	if(rc)
		client_drop(c, oh_strerror(rc));
}

static void client_send_text(struct client *c, const char *text, size_t len)
{
	struct shared_buf *b = shared_buf_new(text, len);
	if(b)
		client_send(c, b);
	else
		client_drop(c, oh_strerror(OH_ERR_NOMEM));
	shared_buf_unref(b);
}

/* A snapshot supersedes the client's unsent one, if it has one. */
static void client_send_snapshot(struct client *c, struct shared_buf *msg)
{
	if(c->dropped)
		return;
	if(http_stream_stalled_s(c->st) > MAX_STALL_S) {
		client_drop(c, "it read nothing of what waits for it");
		return;
	}
	if(!c->snapshot || !http_stream_replace_buf(c->st, c->snapshot, msg))
		client_send(c, msg);
	shared_buf_unref(c->snapshot);
	c->snapshot = shared_buf_ref(msg);
}

static void broadcast(struct events *ev, struct shared_buf *msg)
{
	for(struct oh_list_node *n = ev->clients.first; n; n = n->next)
		client_send(oh_list_entry(n, struct client, link), msg);
}

static void broadcast_event(struct events *ev, const char *event, const char *data, size_t len)
{
	if(oh_list_empty(&ev->clients))
		return;
	struct shared_buf *msg = sse_format(event, data, len);
	if(!msg) {
		log_error("events", "out of memory formatting a %s event", event);
		return;
	}
	broadcast(ev, msg);
	shared_buf_unref(msg);
}

static void send_event(struct client *c, const char *event, const char *data, size_t len)
{
	struct shared_buf *msg = sse_format(event, data, len);
	if(msg)
		client_send(c, msg);
	shared_buf_unref(msg);
}

static const char *broker_json(bool up)
{
	return up ? "{\"mqtt\":\"connected\"}" : "{\"mqtt\":\"disconnected\"}";
}

static void on_gone(struct http_stream *st, void *ud)
{
	struct client *c = ud;
	struct events *ev = c->ev;
	oh_list_remove(&ev->clients, &c->link);
	shared_buf_unref(c->snapshot);
	free(c);
	if(oh_list_empty(&ev->clients))
		event_del(ev->ev_ping);
}

static void get_events(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct events *ev = ud;
	struct host *h = ev->host;
	long max = h->cfg.limits.max_sse_clients;
	if(http_server_streams(h->http) >= (size_t)max) {
		metrics_limit_refusal("max_sse_clients");
		oh_reply_error(req, 429, "LIMIT",
				"limits.max_sse_clients (%ld) event streams are open; "
				"try again later",
				max);
		http_req_add_header(req, "Retry-After", "2");
		return;
	}
	struct client *c = calloc(1, sizeof *c);
	if(!c) {
		oh_reply_error(req, 503, "NO_MEMORY", "out of memory");
		return;
	}
	c->ev = ev;
	c->st = http_reply_stream(req, "text/event-stream", on_gone, c);
	if(!c->st) {
		free(c);
		oh_reply_error(req, 503, "NO_MEMORY", "cannot open an event stream");
		return;
	}
	oh_list_push_front(&ev->clients, &c->link);
	if(!event_pending(ev->ev_ping, EV_TIMEOUT, NULL)) {
		struct timeval tv = {PING_INTERVAL_S, 0};
		event_add(ev->ev_ping, &tv);
	}

	static const char hello[] = "retry: " RETRY_MS "\n\n";
	client_send_text(c, hello, sizeof hello - 1);
	const char *b = broker_json(h->link && mqtt_link_connected(h->link));
	send_event(c, "broker", b, strlen(b));
	struct shared_buf *snap = snapshot_get(h->snapshot);
	struct shared_buf *msg = snap ? sse_format("registry", snap->data, snap->len) : NULL;
	if(msg)
		client_send_snapshot(c, msg);
	shared_buf_unref(msg);
	shared_buf_unref(snap);
}

/* ---- sources ---------------------------------------------------------------------- */

static void on_snapshot(struct shared_buf *snap, void *ud)
{
	struct events *ev = ud;
	if(oh_list_empty(&ev->clients))
		return;
	struct shared_buf *msg = sse_format("registry", snap->data, snap->len);
	if(!msg) {
		log_error("events", "out of memory formatting a registry event");
		return;
	}
	for(struct oh_list_node *n = ev->clients.first; n; n = n->next)
		client_send_snapshot(oh_list_entry(n, struct client, link), msg);
	shared_buf_unref(msg);
}

/* An event the host publishes on {root}/orchestrator/{module}/evt (the
 * publish tap, registered below). */
static void events_orch_evt(struct host *h, const char *topic, const void *payload, size_t len)
{
	struct events *ev = the_events;
	if(!ev || ev->host != h || oh_list_empty(&ev->clients))
		return;
	/* Our own JSON, so it is spliced in as it is rather than parsed. */
	json_t *name = json_string(topic);
	char *quoted = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
	json_decref(name);
	/* Acks are JSON, but a plugin may publish any bytes on its evt topic;
	 * the stream's data must stay one JSON document either way. */
	json_error_t err;
	json_t *parsed = json_loadb(payload, len, JSON_DECODE_ANY, &err);
	json_decref(parsed);
	struct strbuf b = {0};
	strbuf_puts(&b, "{\"topic\":");
	strbuf_puts(&b, quoted ? quoted : "null");
	if(parsed) {
		strbuf_puts(&b, ",\"payload\":");
		strbuf_add(&b, payload, len);
	} else {
		strbuf_puts(&b, ",\"payload\":null,\"error\":\"not JSON\"");
	}
	strbuf_putc(&b, '}');
	free(quoted);
	size_t n = b.len;
	char *text = strbuf_take(&b);
	if(!text) {
		log_error("events", "out of memory relaying %s", topic);
		return;
	}
	broadcast_event(ev, "orch_evt", text, n);
	free(text);
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
	static const char ping[] = ": ping\n\n";
	struct shared_buf *msg = shared_buf_new(ping, sizeof ping - 1);
	if(msg)
		broadcast(arg, msg);
	shared_buf_unref(msg);
}

/* An audit record, once stored (the audit's handler, registered below). */
static void events_audit(struct host *h, const struct store_audit *r)
{
	struct events *ev = the_events;
	if(!ev || ev->host != h || oh_list_empty(&ev->clients))
		return;
	json_t *j = audit_json(r);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if(text)
		broadcast_event(ev, "audit", text, strlen(text));
	else
		log_error("events", "out of memory formatting an audit event");
	free(text);
	json_decref(j);
}

void events_broker_state(struct host *h, bool up)
{
	struct events *ev = the_events;
	if(!ev || ev->host != h)
		return;
	const char *b = broker_json(up);
	broadcast_event(ev, "broker", b, strlen(b));
}

/* ---- set-up and teardown -------------------------------------------------------------- */

int events_register(struct host *h)
{
	if(the_events)
		return OH_ERR_EXISTS;
	struct events *ev = calloc(1, sizeof *ev);
	if(!ev)
		return OH_ERR_NOMEM;
	ev->host = h;
	ev->ev_ping = event_new(h->base, -1, EV_PERSIST, on_ping, ev);
	if(!ev->ev_ping) {
		free(ev);
		return OH_ERR_NOMEM;
	}
	int rc = http_route_add(h->http, NULL, "GET", "/api/events", get_events, ev,
			"{\"summary\": \"Live updates as server-sent events\","
			" \"description\": \"text/event-stream. On connect: retry: 2000, an event"
			" `broker` and an event `registry` with the current snapshot; then `registry`"
			" (every published snapshot), `orch_evt` ({topic, payload} of every event the host"
			" publishes on {root}/orchestrator/{module}/evt), `audit` (each audit record once stored, as GET"
			" /api/audit gives it) and `broker` ({mqtt: connected|disconnected}) as they"
			" happen, and a `: ping` comment every 15 s. A newer snapshot replaces an unsent one;"
			" clients more than 1 MB behind, or that read nothing for 8 s, are dropped and"
			" reconnect. At most limits.max_sse_clients streams (429 LIMIT beyond).\","
			" \"responses\": {\"200\": {\"description\": \"an endless event stream\","
			" \"content\": {\"text/event-stream\": {\"schema\": {\"type\": \"string\"}}}},"
			" \"429\": {\"description\": \"LIMIT: limits.max_sse_clients streams are open\"},"
			" \"503\": {\"description\": \"NO_MEMORY: the stream could not be opened\"}}}");
	if(rc) {
		/* A route already added stays with the server; it must not
		 * outlive ev, so keep ev until events_free. */
		the_events = ev;
		return rc;
	}
	snapshot_on_publish(h->snapshot, on_snapshot, ev);
	host_publish_tap(h, events_orch_evt);
	audit_on_stored(h, events_audit);
	the_events = ev;
	return OH_OK;
}

void events_free(struct host *h)
{
	struct events *ev = the_events;
	if(!ev || ev->host != h)
		return;
	/* The HTTP server is gone, and with it every stream (on_gone has run
	 * for each); anything left here is only memory. */
	while(!oh_list_empty(&ev->clients)) {
		struct client *c = oh_list_entry(ev->clients.first, struct client, link);
		oh_list_remove(&ev->clients, &c->link);
		shared_buf_unref(c->snapshot);
		free(c);
	}
	event_free(ev->ev_ping);
	free(ev);
	the_events = NULL;
	host_publish_tap(h, NULL);
	audit_on_stored(h, NULL);
}
