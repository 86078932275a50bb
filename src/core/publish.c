/*
 * Outbound MQTT: everything the host and its plugins publish goes through
 * host_publish_mid(), which counts it by kind of topic and hands the host's
 * own events ({root}/orchestrator/{module}/evt) to the one local listener
 * (the UI's event stream), whether or not the broker is there to take them.
 * Commands to devices leave with an MQTT 5 message expiry (see below).
 * Kept apart from inbound routing (dispatch.c): publishing needs the link
 * and the metrics, never the subscriptions.
 */
#include "core.h"

#include "metrics.h"
#include "mqtt_link.h"

void host_publish_tap(struct host *h, host_evt_tap_fn fn)
{
	h->evt_tap = fn;
}

int host_publish(struct host *h, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
	return host_publish_mid(h, topic, payload, len, qos, retain, NULL);
}

int host_publish_mid(struct host *h, const char *topic, const void *payload, size_t len, int qos, bool retain,
		int *mid)
{
	const char *kind = metrics_topic_kind(h, topic);
	/* A command to a device expires (command_expiry_s): every relay path
	 * (MQTT, REST, scheduled, a plugin's own) publishes through here, and
	 * one left queued for an offline device's session must not run hours
	 * later.  Nothing else expires: retained state, acks and events stay. */
	unsigned expiry = kind == METRICS_KIND_DEVICE_COMMAND ? (unsigned)h->cfg.command_expiry_s : 0;
	int rc = mqtt_link_publish_expiring(h->link, topic, payload, len, qos, retain, expiry, mid);
	if(rc == OH_OK)
		metrics_mqtt_message(true, kind);
	/* The UI's event stream hears of the host's events ({root}/orchestrator/
	 * {module}/evt) whether or not the broker does. */
	if(kind == METRICS_KIND_EVENT && h->evt_tap)
		h->evt_tap(h, topic, payload, len);
	return rc;
}
