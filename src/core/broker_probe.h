/*
 * Does the broker keep a '.' in a topic?  RabbitMQ maps MQTT topics onto
 * AMQP routing keys, where '.' separates words, and hands a topic with a
 * '.' back with a '/' in its place: a device whose id contains '.' then
 * never gets its commands, and its meta and status arrive under another
 * id.  Nothing on the wire says so, so after every connect the host sends
 * itself one message with a '.' in its topic and looks at what comes back.
 */
#ifndef OH_BROKER_PROBE_H
#define OH_BROKER_PROBE_H

struct host;
struct broker_probe;

/* A probe for h (borrowed: h->dispatch, h->link and h->base must outlive
 * it), publishing under {root}/orchestrator/probe/from-{node}/ with node (copied, any
 * text: sanitised for the topic).  Returned: free with broker_probe_free();
 * NULL when out of memory. */
struct broker_probe *broker_probe_new(struct host *h, const char *node);
void broker_probe_free(struct broker_probe *p);

/* The link connected: probes this connection.  A broker that rewrites is
 * reported once per run at warn level, whatever the number of connects. */
void broker_probe_on_connect(struct broker_probe *p);
/* The link is down: a probe in progress is dropped with its connection. */
void broker_probe_on_disconnect(struct broker_probe *p);

#endif
