/*
 * Outbound MQTT: everything the host and its plugins publish goes through
 * host_publish_mid(), which counts it by kind of topic and hands the host's
 * own events ({root}/orchestrator/{module}/evt) to the one local listener
 * (the UI's event stream), whether or not the broker is there to take them.
 * Commands to devices leave with an MQTT 5 message expiry (see below).
 * Kept apart from inbound routing (dispatch.c): publishing needs the link
 * and the metrics, never the subscriptions.
 *
 * Output waits for the state it reports: while the store has writes in
 * flight (PostgreSQL, store.h), a publish is held, in order behind any
 * held before it, until what was written before it is committed; a lease
 * ack or a job's command never leaves ahead of the row that makes it
 * true.  When the write fails the held messages are dropped (the host
 * steps down, ha.c).  The SQLite store commits before returning, so
 * nothing is ever held there.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "mqtt_link.h"
#include "store.h"

/* One allocation, as audit.c's deferred acks: the payload, then the topic. */
struct held {
	struct held *next;
	struct host *host;
	const char *topic; /* in data, after the payload */
	size_t len;
	int qos;
	bool retain;
	const char *kind; /* metrics_topic_kind(), classified once on the way in */
	int state;        /* 0: waiting for the store, 1: committed, -1: failed */
	char data[];
};

void host_publish_tap(struct host *h, host_evt_tap_fn fn)
{
	h->evt_tap = fn;
}

/* kind: metrics_topic_kind() of topic, classified once by host_publish_mid
 * (a topic parse per published message is enough). */
static int send_now(struct host *h, const char *topic, const char *kind, const void *payload, size_t len,
		int qos, bool retain, int *mid)
{
	/* A command to a device expires (command_expiry_s): every relay path
	 * (MQTT, REST, scheduled, a plugin's own) publishes through here, and
	 * one left queued for an offline device's session must not run hours
	 * later.  Nothing else expires: retained state, acks and events stay. */
	unsigned expiry = kind == METRICS_KIND_DEVICE_COMMAND ? (unsigned)h->cfg.command_expiry_s : 0;
	int rc = mqtt_link_publish_expiring(h->link, topic, payload, len, qos, retain, expiry, mid);
	/* A relayed command leaves before its ack is built, and one sent
	 * outside any read before the loop's next turn. */
	if(rc == OH_OK && kind == METRICS_KIND_DEVICE_COMMAND && !h->batching)
		mqtt_link_flush(h->link);
	if(rc == OH_OK)
		metrics_mqtt_message(true, kind);
	/* The UI's event stream hears of the host's events ({root}/orchestrator/
	 * {module}/evt) whether or not the broker does. */
	if(kind == METRICS_KIND_EVENT && h->evt_tap)
		h->evt_tap(h, topic, payload, len);
	return rc;
}

/* Sends (or drops) the held messages whose writes are settled, in order. */
static void release(struct host *h)
{
	while(h->held_head && h->held_head->state) {
		struct held *m = h->held_head;
		h->held_head = m->next;
		if(!h->held_head)
			h->held_tail = NULL;
		if(m->state > 0)
			send_now(m->host, m->topic, m->kind, m->data, m->len, m->qos, m->retain, NULL);
		free(m);
	}
}

static void committed(int rc, void *ud)
{
	struct held *m = ud;
	m->state = rc ? -1 : 1;
	release(m->host);
}

static int hold(struct host *h, const char *topic, const char *kind, const void *payload, size_t len, int qos,
		bool retain)
{
	size_t tlen = strlen(topic) + 1;
	struct held *m = malloc(sizeof *m + len + tlen);
	if(!m)
		return OH_ERR_NOMEM;
	m->next = NULL;
	m->state = 0;
	if(len)
		memcpy(m->data, payload, len);
	m->topic = memcpy(m->data + len, topic, tlen);
	m->host = h;
	m->kind = kind;
	m->len = len;
	m->qos = qos;
	m->retain = retain;
	if(h->held_tail)
		h->held_tail->next = m;
	else
		h->held_head = m;
	h->held_tail = m;
	/* Behind the writes made so far; at once when there are none. */
	store_when_committed(h->store, committed, m);
	return OH_OK;
}

int host_publish(struct host *h, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
	return host_publish_mid(h, topic, payload, len, qos, retain, NULL);
}

int host_publish_mid(struct host *h, const char *topic, const void *payload, size_t len, int qos, bool retain,
		int *mid)
{
	/* A standby of a pair sends no command to a device, whatever a
	 * plugin's own timers want: only the leader acts (ha.c). */
	const char *kind = metrics_topic_kind(h, topic);
	if(!ha_acting(h) && kind == METRICS_KIND_DEVICE_COMMAND)
		return OH_ERR_DENIED;
	/* A caller wanting the message id (the snapshot) reports no state of
	 * a write, and needs the id now. */
	if(!mid && (h->held_head || store_pending(h->store)))
		return hold(h, topic, kind, payload, len, qos, retain);
	return send_now(h, topic, kind, payload, len, qos, retain, mid);
}
