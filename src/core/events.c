/*
 * Server-sent events: GET /api/events streams what the web UI shows live.
 *
 * On connect a client gets `retry: 2000`, the broker state and the current
 * registry snapshot, so a page (re)connecting needs nothing else; after that
 * the registry's changes as deltas, every event the host publishes on
 * {root}/orchestrator/{module}/evt (handed over locally, not read back from
 * the broker, which would double the host's traffic) and every broker state
 * change, plus a `: ping` comment every 15 seconds.  A
 * connection parked with nothing to send is not polled, so the ping is also
 * how a client that vanished gets noticed.
 *
 *   event: registry        id: SEQ  data: the whole snapshot, as published on
 *                                   {root}/orchestrator/registry
 *   event: registry_delta  id: SEQ  data: the devices changed since the client's
 *                                   last id, and the ids removed, as GET
 *                                   /api/registry?since= answers
 *   event: orch_evt   data: {"topic": ..., "payload": <the event>} (payload null, with
 *                      "error", if a plugin published something that is not JSON)
 *   event: broker     data: {"mqtt": "connected" | "disconnected"}
 *   event: audit      data: one audit record once it is stored (audit.c, GET /api/audit's shape)
 *
 * A whole snapshot at 10,000 devices is 3.4 MB; sending it to every page on
 * every coalesced change is what this file no longer does.  Each client is
 * at a seq (the id of the last registry event queued to it); on each
 * snapshot every client is brought to the new seq with a delta since its
 * own, and a delta is built and formatted once per distinct seq and queued
 * by reference (in practice once: everyone is at the previous seq).  A
 * reconnecting EventSource sends Last-Event-ID and gets the delta since,
 * or the whole snapshot when that seq is too old or from another run.
 *
 * A slow client: deltas cannot replace each other as whole snapshots did.
 * While its unsent backlog is over a quarter of
 * limits.max_sse_backlog_bytes, it is not sent more deltas: they are held
 * back, and once it has read down below that it gets one delta since its
 * seq, which merges all it missed (a device changed ten times is in it
 * once).  What it is behind (its backlog besides the last registry event
 * queued, plus that one delta) is bounded by limits.max_sse_backlog_bytes:
 * past that, or when it read nothing for
 * MAX_STALL_S, it is cut off (counted as a refusal of that limit), and
 * EventSource reconnects with Last-Event-ID.  Other events are queued as
 * they come and count towards the same bound.  At most
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
/* A client that has read nothing of what waits for it for this long is
 * stuck (a slow link still reads something every second). */
#define MAX_STALL_S 8.0
/* While clients are held back, how often to see whether they read down. */
#define CATCH_UP_MS 100
/* Registry events kept for the latest snapshot, one per distinct client
 * seq; more are rare (clients behind at many seqs) and are built uncached. */
#define DELTA_CACHE 8
#define RETRY_MS "2000"

struct client {
	struct oh_list_node link; /* in events.clients */
	struct events *ev;
	struct http_stream *st;
	uint64_t seq;    /* the id of the last registry event queued to it */
	size_t last_reg; /* that event's size */
	size_t withheld; /* while held back: the delta that would bring it up to date */
	bool dropped;    /* aborted, waiting for on_gone */
};

/* The registry events made for the latest snapshot, by the seq they bring
 * a client from (0: the whole snapshot), so that every client at one seq,
 * and every client connecting, shares one buffer: 1000 pages (re)opening
 * at 10,000 devices would otherwise be 1000 copies of 3.4 MB. */
struct delta_cache {
	struct {
		uint64_t since;
		struct shared_buf *msg; /* owned */
	} e[DELTA_CACHE];
	int n;
	uint64_t seq; /* the snapshot's: what they bring clients to */
};

struct events {
	struct host *host;
	struct oh_list clients; /* of struct client */
	struct event *ev_ping;
	struct event *ev_catch_up; /* pending while a client is held back */
	struct delta_cache cache;
};

/* The link callbacks in main.c reach the state through the host; as struct
 * host has no slot for it, it lives here (one host per process). */
static struct events *the_events;

/* ---- formatting ----------------------------------------------------------- */

/* "id: ID\nevent: NAME\ndata: ...\n\n" (no id line when id is 0), one data
 * line per line of data (JSON text normally has none, but a pretty-printed
 * document must not end the message early), in a buffer to share between
 * clients.  A new reference, or NULL. */
static struct shared_buf *sse_format(const char *event, uint64_t id, const char *data, size_t len)
{
	size_t lines = 1;
	for(size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	size_t cap = 26 + strlen(event) + 9 + len + lines * 7 + 2;
	struct shared_buf *b = shared_buf_new(NULL, cap);
	if(!b)
		return NULL;
	char *out = b->data;
	size_t n = 0;
	if(id)
		n = (size_t)sprintf(out, "id: %llu\n", (unsigned long long)id);
	n += (size_t)sprintf(out + n, "event: %s\n", event);
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
	log_warn("events", "dropping an event-stream client (%zu bytes unsent, %zu held back): %s",
			http_stream_backlog(c->st), c->withheld, why);
	c->dropped = true;
	http_stream_abort(c->st);
}

static size_t backlog_limit(const struct client *c)
{
	return (size_t)c->ev->host->cfg.limits.max_sse_backlog_bytes;
}

/* Drops c, counted, if it is behind by more than the limit; whether it did.
 * Behind: what is queued besides the last registry event (the least it
 * must read to be in sync: a page on a slow link reading a 3.4 MB snapshot
 * is not behind for that, or it would be cut off and sent the same again
 * for ever), plus the delta that would bring it up to date. */
static bool client_over_limit(struct client *c)
{
	size_t queued = http_stream_backlog(c->st);
	size_t behind = (queued > c->last_reg ? queued - c->last_reg : 0) + c->withheld;
	struct counters *st = &c->ev->host->stats;
	if(behind > st->sse_behind_peak)
		st->sse_behind_peak = behind;
	if(behind <= backlog_limit(c))
		return false;
	metrics_limit_refusal("max_sse_backlog_bytes");
	client_drop(c, "it fell behind by more than limits.max_sse_backlog_bytes");
	return true;
}

/* Drops c if it read nothing of its backlog for MAX_STALL_S; whether it did. */
static bool client_stalled(struct client *c)
{
	if(http_stream_stalled_s(c->st) <= MAX_STALL_S)
		return false;
	client_drop(c, "it read nothing of what waits for it");
	return true;
}

static void client_send(struct client *c, struct shared_buf *msg)
{
	if(c->dropped || client_stalled(c) || client_over_limit(c))
		return;
	int rc = http_stream_write_buf(c->st, msg);
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

static void broadcast(struct events *ev, struct shared_buf *msg)
{
	for(struct oh_list_node *n = ev->clients.first; n; n = n->next)
		client_send(oh_list_entry(n, struct client, link), msg);
}

static void broadcast_event(struct events *ev, const char *event, const char *data, size_t len)
{
	if(oh_list_empty(&ev->clients))
		return;
	struct shared_buf *msg = sse_format(event, 0, data, len);
	if(!msg) {
		log_error("events", "out of memory formatting a %s event", event);
		return;
	}
	broadcast(ev, msg);
	shared_buf_unref(msg);
}

static void send_event(struct client *c, const char *event, const char *data, size_t len)
{
	struct shared_buf *msg = sse_format(event, 0, data, len);
	if(msg)
		client_send(c, msg);
	shared_buf_unref(msg);
}

static const char *broker_json(bool up)
{
	return up ? "{\"mqtt\":\"connected\"}" : "{\"mqtt\":\"disconnected\"}";
}

/* ---- registry events ------------------------------------------------------------- */

static void delta_cache_clear(struct delta_cache *dc)
{
	for(int i = 0; i < dc->n; i++)
		shared_buf_unref(dc->e[i].msg);
	dc->n = 0;
}

static struct shared_buf *delta_cache_get(struct delta_cache *dc, uint64_t since)
{
	for(int i = 0; i < dc->n; i++)
		if(dc->e[i].since == since)
			return shared_buf_ref(dc->e[i].msg);
	return NULL;
}

/* Keeps dc for snapshot seq, emptied when it is another one's. */
static void delta_cache_at(struct delta_cache *dc, uint64_t seq)
{
	if(dc->seq != seq)
		delta_cache_clear(dc);
	dc->seq = seq;
}

/* The event that brings a client at seq since to the latest snapshot (a
 * registry_delta, or the whole registry when since is 0, too old or from
 * another run); a new reference, NULL when out of memory.  ev->cache.seq is
 * the seq it brings the client to. */
static struct shared_buf *registry_event(struct events *ev, uint64_t since)
{
	struct snapshot *s = ev->host->snapshot;
	struct delta_cache *dc = &ev->cache;
	delta_cache_at(dc, snapshot_seq(s));
	struct shared_buf *msg = delta_cache_get(dc, since);
	if(msg)
		return msg;
	struct shared_buf *body = NULL;
	bool whole = true;
	if(since)
		snapshot_delta(s, since, &body, &whole);
	else
		body = snapshot_get(s);
	delta_cache_at(dc, snapshot_seq(s)); /* either may have built a new one */
	if(whole && (msg = delta_cache_get(dc, 0))) {
		shared_buf_unref(body);
		return msg;
	}
	if(body)
		msg = sse_format(whole ? "registry" : "registry_delta", dc->seq, body->data, body->len);
	shared_buf_unref(body);
	if(msg && dc->n < DELTA_CACHE) {
		dc->e[dc->n].since = whole ? 0 : since;
		dc->e[dc->n++].msg = shared_buf_ref(msg);
	}
	return msg;
}

/* Brings c to the current snapshot, unless it is held back (see the top):
 * then what it misses is the one delta that would bring it up to date,
 * which counts against the limit (it is built anyway for its catch-up, and
 * shared by every client held back at the same seq).  Whether it is held
 * back. */
static bool client_sync(struct client *c)
{
	struct events *ev = c->ev;
	if(c->dropped || client_stalled(c))
		return false;
	struct shared_buf *msg = registry_event(ev, c->seq);
	if(!msg) {
		client_drop(c, oh_strerror(OH_ERR_NOMEM));
		return false;
	}
	bool held = http_stream_backlog(c->st) > backlog_limit(c) / 4;
	if(held) {
		c->withheld = msg->len;
		held = !client_over_limit(c);
	} else if(c->seq != ev->cache.seq) {
		c->withheld = 0;
		client_send(c, msg);
		c->seq = ev->cache.seq;
		c->last_reg = msg->len;
	}
	shared_buf_unref(msg);
	return held;
}

/* Every client behind the snapshot's seq is brought there, or counted as held back;
 * while some are, the catch-up timer looks again. */
static void sync_all(struct events *ev)
{
	bool held = false;
	uint64_t seq = snapshot_seq(ev->host->snapshot);
	for(struct oh_list_node *n = ev->clients.first; n; n = n->next) {
		struct client *c = oh_list_entry(n, struct client, link);
		if(c->seq < seq)
			held |= client_sync(c);
	}
	if(held && !evtimer_pending(ev->ev_catch_up, NULL)) {
		struct timeval tv = {0, CATCH_UP_MS * 1000};
		evtimer_add(ev->ev_catch_up, &tv);
	}
}

static void on_catch_up(evutil_socket_t fd, short what, void *arg)
{
	sync_all(arg);
}

static void on_gone(struct http_stream *st, void *ud)
{
	struct client *c = ud;
	struct events *ev = c->ev;
	oh_list_remove(&ev->clients, &c->link);
	free(c);
	if(oh_list_empty(&ev->clients)) {
		event_del(ev->ev_ping);
		event_del(ev->ev_catch_up);
		delta_cache_clear(&ev->cache);
	}
}

/* Last-Event-ID: a registry event's id, or 0 (none, or not one of ours). */
static uint64_t last_event_id(struct oh_http_req *req)
{
	const char *v = oh_req_header(req, "Last-Event-ID");
	if(!v || *v < '0' || *v > '9')
		return 0;
	char *end;
	unsigned long long id = strtoull(v, &end, 10);
	return *end ? 0 : (uint64_t)id;
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
	c->seq = last_event_id(req);
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
	/* The whole snapshot, or what changed since its Last-Event-ID.  An id
	 * equal to the current seq still gets an (empty) delta: the page learns
	 * that it is up to date. */
	struct shared_buf *msg = registry_event(ev, c->seq);
	if(msg) {
		client_send(c, msg);
		c->seq = ev->cache.seq;
		c->last_reg = msg->len;
	} else {
		client_drop(c, oh_strerror(OH_ERR_NOMEM));
	}
	shared_buf_unref(msg);
}

/* ---- sources ---------------------------------------------------------------------- */

static void on_snapshot(void *ud)
{
	struct events *ev = ud;
	sync_all(ev); /* only clients behind the new seq */
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
	ev->ev_catch_up = evtimer_new(h->base, on_catch_up, ev);
	if(!ev->ev_ping || !ev->ev_catch_up) {
		if(ev->ev_ping)
			event_free(ev->ev_ping);
		if(ev->ev_catch_up)
			event_free(ev->ev_catch_up);
		free(ev);
		return OH_ERR_NOMEM;
	}
	int rc = http_route_add(h->http, NULL, "GET", "/api/events", get_events, ev,
			"{\"summary\": \"Live updates as server-sent events\","
			" \"description\": \"text/event-stream. On connect: retry: 2000, an event"
			" `broker` and an event `registry` with the current snapshot (or, with a"
			" Last-Event-ID header, a `registry_delta` of what changed since that id, or"
			" `registry` when it is too old or from another run); then `registry_delta`"
			" ({devices, removed, locks, modules, ts, seq, since, delta: true}, as"
			" GET /api/registry?since= answers; id: the seq it brings the client to) on every"
			" published change, `orch_evt` ({topic, payload} of every event the host"
			" publishes on {root}/orchestrator/{module}/evt), `audit` (each audit record once stored,"
			" as GET /api/audit gives it) and `broker` ({mqtt: connected|disconnected}) as they"
			" happen, and a `: ping` comment every 15 s. A client behind gets one merged delta"
			" when it has read its backlog; one behind by more than"
			" limits.max_sse_backlog_bytes, or that read nothing for 8 s, is cut off and"
			" resumes with Last-Event-ID. At most limits.max_sse_clients streams (429 LIMIT beyond).\","
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
		free(c);
	}
	event_free(ev->ev_ping);
	event_free(ev->ev_catch_up);
	delta_cache_clear(&ev->cache);
	free(ev);
	the_events = NULL;
	host_publish_tap(h, NULL);
	audit_on_stored(h, NULL);
}
