/*
 * What the devices and the host last said, for the REST API and the page.
 *
 * Devices publish their NDI module's state (input, recording, pid) retained
 * on {root}/device/{id}/{module}/status; the registry does not merge it, so
 * the last object per device is kept here, keyed by device id.  An empty
 * retained message (the device cleared it) forgets the device; payloads
 * that are not JSON objects, and topics whose id is not a valid device id,
 * are ignored.
 * Each device's status carries the value of a counter taken when it was
 * set, the counter moves with every change, and the statuses are kept in
 * the order they were set, so views built from this state can be cached
 * per device and find what changed since they were built without looking
 * at every device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/host.h"
#include "oh/list.h"

#include "ndi.h"

/* Bounds the memory a flood of made-up device ids can take. */
#define MAX_DEVICES 65536

struct status {
	json_t *doc;              /* owned */
	unsigned long long seq;   /* the generation it was set at */
	struct oh_list_node link; /* in by_seq */
	char id[];
};

struct ndi_status {
	struct oh_map *by_device; /* device id -> struct status (owned) */
	struct oh_list by_seq;    /* struct status, by seq, oldest first */
	bool full_logged;
	unsigned long long generation; /* bumped on every change */
	unsigned long long removed_at; /* the generation of the last removal */
};

static void value_free(void *v)
{
	struct status *s = v;

	if(!s)
		return;
	json_decref(s->doc);
	free(s);
}

static void on_module_status(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct ndi *n = ud;
	struct ndi_status *st = n->status;
	char id[NDI_DEVICE_ID_MAX + 1];
	struct status *s;
	json_t *copy;
	size_t len;
	int err = 0;

	if(!ndi_topic_device(ctx, msg->topic, id, sizeof(id))) {
		oh_log(ctx, OH_LOG_DEBUG, "ignoring module status on %s: not a device id", msg->topic);
		return;
	}
	s = oh_map_get(st->by_device, id);
	if(msg->len == 0) {
		if(!s)
			return;
		oh_map_remove(st->by_device, id);
		oh_list_remove(&st->by_seq, &s->link);
		value_free(s);
		st->removed_at = ++st->generation;
		ndi_routes_status_changed(n, id);
		return;
	}
	if(!json_is_object(msg->json)) {
		oh_log(ctx, OH_LOG_DEBUG, "ignoring module status on %s: %s", msg->topic,
				msg->json                    ? "not a JSON object"
						: msg->error ? msg->error
							     : "not JSON");
		return;
	}
	/* The broker resends every retained status after a reconnect: an
	 * unchanged one must not invalidate views built from it. */
	if(s && json_equal(s->doc, msg->json))
		return;
	if(!s && oh_map_size(st->by_device) >= MAX_DEVICES) {
		if(!st->full_logged) {
			oh_log(ctx, OH_LOG_WARN,
					"module status kept for %d devices already; ignoring "
					"new ones",
					MAX_DEVICES);
			st->full_logged = true;
		}
		return;
	}
	copy = json_deep_copy(msg->json);
	if(!copy)
		return;
	if(s) {
		json_decref(s->doc);
		oh_list_remove(&st->by_seq, &s->link);
	} else {
		len = strlen(id);
		s = calloc(1, sizeof(*s) + len + 1);
		if(!s) {
			json_decref(copy);
			return;
		}
		memcpy(s->id, id, len + 1);
		err = oh_map_put(st->by_device, id, s, NULL);
		if(err) {
			json_decref(copy);
			free(s);
			return;
		}
	}
	s->doc = copy;
	s->seq = ++st->generation;
	oh_list_push_back(&st->by_seq, &s->link);
	/* A route reconciles on every change of what the device reports. */
	ndi_routes_status_changed(n, id);
}

bool ndi_status_changed_since(const struct ndi *n, unsigned long long since,
		void (*fn)(const char *device_id, void *ud), void *ud)
{
	const struct ndi_status *st = n->status;

	if(!st)
		return true;
	if(since < st->removed_at)
		return false;
	for(const struct oh_list_node *l = st->by_seq.last; l; l = l->prev) {
		const struct status *s = oh_list_entry(l, const struct status, link);
		if(s->seq <= since)
			break;
		fn(s->id, ud);
	}
	return true;
}

unsigned long long ndi_status_generation(const struct ndi *n)
{
	return n->status ? n->status->generation : 0;
}

int ndi_status_start(struct ndi *n)
{
	oh_ctx *ctx = n->ctx;
	char topic[512];
	int rc;

	n->status = calloc(1, sizeof(*n->status));
	if(!n->status)
		return OH_ERR_NOMEM;
	n->status->by_device = oh_map_new();
	if(!n->status->by_device)
		return OH_ERR_NOMEM;

	snprintf(topic, sizeof(topic), "%s/device/+/%s/status", oh_topic_root(ctx), oh_module(ctx));
	/* QoS 0, like the registry's state topics: retained state is refreshed
	 * by the devices, and a QoS 1 burst at start-up overflows the queue a
	 * stock mosquitto keeps per client. */
	rc = oh_subscribe(ctx, topic, 0, on_module_status, n);
	if(rc)
		return oh_fail(ctx, "cannot subscribe to %s: %s", topic, oh_strerror(rc));
	return OH_OK;
}

void ndi_status_free(struct ndi *n)
{
	struct ndi_status *st = n->status;

	if(!st)
		return;
	if(st->by_device)
		oh_map_free(st->by_device, value_free);
	free(st);
	n->status = NULL;
}

const json_t *ndi_status_get(const struct ndi *n, const char *device_id, unsigned long long *seq)
{
	const struct status *s = n->status && device_id ? oh_map_get(n->status->by_device, device_id) : NULL;

	if(seq)
		*seq = s ? s->seq : 0;
	return s ? s->doc : NULL;
}
