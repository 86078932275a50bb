/*
 * One MQTT connection driven by a libevent loop.
 *
 * libmosquitto is used without its own thread: its socket is watched by the
 * loop, reads and writes happen on readiness, and a timer runs the keepalive
 * housekeeping.  The link reconnects by itself with backoff and jitter, and
 * tells its owner on every (re)connect so subscriptions can be renewed.
 * Shared by the host and the device agent.
 *
 * With opts.mqtt5 the link speaks MQTT 5 where the broker does and falls
 * back to 3.1.1 where it does not (RabbitMQ 3.10 closes the connection on a
 * v5 CONNECT).  The difference its owner sees is the retained flag: on v5
 * every subscription is made with "retain as published", so `retained` is
 * the publisher's flag also for messages forwarded live; on 3.1.1 it is set
 * only for the stored messages a new subscription brings.
 *
 * While MQTT_LINK_BACKLOG_HIGH publishes wait for the broker (sent and not
 * acknowledged, or not yet sent), messages that arrive are held, in order,
 * and handed to on_message from the loop once MQTT_LINK_BACKLOG_LOW do:
 * a burst of commands then waits as copies of what arrived, not as the
 * relays and acks they would make (mqtt_link.c says why).
 */
#ifndef OH_MQTT_LINK_H
#define OH_MQTT_LINK_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct mqtt_link;

#define MQTT_LINK_BACKLOG_HIGH 1000
#define MQTT_LINK_BACKLOG_LOW (MQTT_LINK_BACKLOG_HIGH / 2)

struct mqtt_tls_opts {
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	const char *tls_version; /* "tlsv1.2", "tlsv1.3" or NULL */
	bool insecure_skip_verify;
};

struct mqtt_link_opts {
	const char *host;
	int port;
	const char *username; /* NULL: anonymous */
	const char *password;
	const char *client_id;
	int keepalive_s;
	/* Last will; topic NULL for none. */
	const char *will_topic;
	const char *will_payload;
	int will_qos;
	bool will_retain;
	const struct mqtt_tls_opts *tls; /* NULL: plain TCP */
	const char *log_prefix;          /* e.g. "mqtt" */
	/* Try MQTT 5 first (see the top); false: MQTT 3.1.1 only. */
	bool mqtt5;
	/* "host:port" entries (borrowed, copied) tried in turn, one per
	 * attempt, after a failed connect or a lost connection; n_hosts 0:
	 * host and port alone. */
	const char *const *hosts;
	size_t n_hosts;
	/* Clean session off: the broker keeps the subscriptions and queues
	 * QoS 1 messages while the link is away (needs a client_id). */
	bool persistent;
	/* With mqtt5: never fall back; a broker refusing v5 is a failure
	 * whose reason says so. */
	bool mqtt5_only;
};

struct mqtt_link_callbacks {
	/* Connected (again): subscribe here. */
	void (*on_connect)(struct mqtt_link *link, void *ud);
	/* Lost the broker; the link is already scheduling a reconnect. */
	void (*on_disconnect)(struct mqtt_link *link, const char *reason, void *ud);
	/* One message; payload is borrowed for the call and not NUL-terminated;
	 * what `retained` means depends on the version (see the top). */
	void (*on_message)(struct mqtt_link *link, const char *topic, const void *payload, size_t len,
			bool retained, void *ud);
	/* A publish left (QoS 0) or was acknowledged (QoS 1); may be NULL. */
	void (*on_published)(struct mqtt_link *link, int mid, void *ud);
};

/* Returns NULL on bad options or out of memory, having logged which.
 * Strings in opts are copied.  Nothing happens until mqtt_link_start(). */
struct mqtt_link *mqtt_link_new(struct event_base *base, const struct mqtt_link_opts *opts,
		const struct mqtt_link_callbacks *cb, void *ud);

/* Begins connecting asynchronously; a broker that is down is retried. */
int mqtt_link_start(struct mqtt_link *link);

/* Sends what is queued and disconnects cleanly (the will is not sent). */
void mqtt_link_stop(struct mqtt_link *link);
void mqtt_link_free(struct mqtt_link *link);

/* Returns OH_OK, OH_ERR_NO_CONN when the broker is away (QoS 0 is dropped,
 * QoS 1 is queued by libmosquitto and sent after reconnect), OH_ERR_INVAL. */
int mqtt_link_publish(struct mqtt_link *link, const char *topic, const void *payload, size_t len, int qos,
		bool retain);
/* The same, returning the message id that on_published will report. */
int mqtt_link_publish_mid(struct mqtt_link *link, const char *topic, const void *payload, size_t len, int qos,
		bool retain, int *mid);
/* The same with an MQTT 5 message expiry interval of expiry_s seconds (0:
 * none): the broker drops the message once it has waited that long for a
 * subscriber, also a 3.1.1 one.  On a 3.1.1 connection it is sent without.
 * The property list is the link's, built once per value, not per call. */
int mqtt_link_publish_expiring(struct mqtt_link *link, const char *topic, const void *payload, size_t len,
		int qos, bool retain, unsigned expiry_s, int *mid);
int mqtt_link_subscribe(struct mqtt_link *link, const char *filter, int qos);
int mqtt_link_unsubscribe(struct mqtt_link *link, const char *filter);

/* Writes what is queued now, as few TCP segments pushed to the wire,
 * instead of at the end of the read turn or the loop's next turn.  Outside
 * any read: for publishes whose first must not wait for the rest (the
 * scheduler's commands).  While the owner handles a read turn's first
 * message: its PUBACK and what was published for it (a relayed command,
 * before its ack is built).  Inside any other message callback, and while
 * disconnected, it does nothing: the turn writes afterwards (see the top
 * of mqtt_link.c). */
void mqtt_link_flush(struct mqtt_link *link);

bool mqtt_link_connected(const struct mqtt_link *link);
/* The connection is MQTT 5 with retain-as-published subscriptions: a
 * message's retained flag is true for retained messages delivered live
 * (see the top).  False while disconnected. */
bool mqtt_link_retain_as_published(const struct mqtt_link *link);
/* The version of the current connection, "5" or "3.1.1" (static), or NULL
 * while disconnected. */
const char *mqtt_link_protocol(const struct mqtt_link *link);
/* Why the link is down ("connection refused: not authorised", ...), or "". */
const char *mqtt_link_last_error(const struct mqtt_link *link);
unsigned long mqtt_link_reconnects(const struct mqtt_link *link);
/* Messages read and not yet handed over (see the top). */
size_t mqtt_link_held(const struct mqtt_link *link);

#endif
