/*
 * What the devices and the host last said, for the REST API and the page.
 *
 * Devices publish their NDI module's state (input, recording, pid) retained
 * on {root}/device/{id}/{module}/status; the registry does not merge it, so
 * the last object per device is kept here, keyed by device id.  An empty
 * retained message (the device cleared it) forgets the device; payloads
 * that are not JSON objects, and topics whose id is not a valid device id,
 * are ignored.
 *
 * The host's registry snapshot reaches a plugin the way it reaches anyone:
 * retained on {root}/orchestrator/registry.  It is kept as the raw text and
 * parsed only when asked for, because with many devices it is published
 * far more often than GET /api/{module}/status is called.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/host.h"

#include "ndi.h"
#include "strmap.h"

/* Bounds the memory a flood of made-up device ids can take. */
#define MAX_DEVICES 65536

struct ndi_status {
	struct strmap *by_device;         /* device id -> json_t * (owned) */
	bool full_logged;
	char *snapshot;                   /* raw registry snapshot, NUL-terminated */
	size_t snapshot_len;
	json_t *parsed;                   /* snapshot parsed, or NULL until asked */
};

static void value_free(void *v)
{
	json_decref(v);
}

/* The {id} of {root}/device/{id}/{module}/status into buf; false when the
 * topic has another shape or the id is not a device id. */
static bool topic_device(oh_ctx *ctx, const char *topic, char *buf, size_t len)
{
	const char *root = oh_topic_root(ctx);
	size_t rlen = strlen(root);
	const char *id, *end;

	if(strncmp(topic, root, rlen) || strncmp(topic + rlen, "/device/", 8)) return false;
	id = topic + rlen + 8;
	end = strchr(id, '/');
	if(!end || (size_t)(end - id) >= len) return false;
	memcpy(buf, id, (size_t)(end - id));
	buf[end - id] = '\0';
	return ndi_device_id_valid(buf);
}

static void on_module_status(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct ndi *n = ud;
	struct ndi_status *st = n->status;
	char id[NDI_DEVICE_ID_MAX + 1];
	json_t *copy, *old;
	int err = 0;

	if(!topic_device(ctx, msg->topic, id, sizeof(id))) {
		oh_log(ctx, OH_LOG_DEBUG, "ignoring module status on %s: not a device id", msg->topic);
		return;
	}
	if(msg->len == 0) {
		json_decref(strmap_remove(st->by_device, id));
		return;
	}
	if(!json_is_object(msg->json)) {
		oh_log(ctx, OH_LOG_DEBUG, "ignoring module status on %s: %s", msg->topic,
				msg->json ? "not a JSON object" : msg->error ? msg->error : "not JSON");
		return;
	}
	if(!strmap_get(st->by_device, id) && strmap_size(st->by_device) >= MAX_DEVICES) {
		if(!st->full_logged) {
			oh_log(ctx, OH_LOG_WARN, "module status kept for %d devices already; ignoring "
					"new ones", MAX_DEVICES);
			st->full_logged = true;
		}
		return;
	}
	copy = json_deep_copy(msg->json);
	if(!copy) return;
	old = strmap_put(st->by_device, id, copy, &err);
	if(err) {
		json_decref(copy);
		return;
	}
	json_decref(old);
}

static void on_snapshot(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct ndi *n = ud;
	struct ndi_status *st = n->status;
	char *text;

	/* The snapshot is retained, so an empty message would only mean someone
	 * cleared it by hand: keep what we had. */
	if(msg->len == 0) return;
	text = malloc(msg->len + 1);
	if(!text) return;
	memcpy(text, msg->payload, msg->len);
	text[msg->len] = '\0';
	free(st->snapshot);
	json_decref(st->parsed);
	st->snapshot = text;
	st->snapshot_len = msg->len;
	st->parsed = NULL;
}

int ndi_status_start(struct ndi *n)
{
	oh_ctx *ctx = n->ctx;
	char topic[512];
	int rc;

	n->status = calloc(1, sizeof(*n->status));
	if(!n->status) return OH_ERR_NOMEM;
	n->status->by_device = strmap_new();
	if(!n->status->by_device) return OH_ERR_NOMEM;

	snprintf(topic, sizeof(topic), "%s/device/+/%s/status", oh_topic_root(ctx), oh_module(ctx));
	rc = oh_subscribe(ctx, topic, 1, on_module_status, n);
	if(rc) return oh_fail(ctx, "cannot subscribe to %s: %s", topic, oh_strerror(rc));
	snprintf(topic, sizeof(topic), "%s/orchestrator/registry", oh_topic_root(ctx));
	rc = oh_subscribe(ctx, topic, 1, on_snapshot, n);
	if(rc) return oh_fail(ctx, "cannot subscribe to %s: %s", topic, oh_strerror(rc));
	return OH_OK;
}

void ndi_status_free(struct ndi *n)
{
	struct ndi_status *st = n->status;

	if(!st) return;
	if(st->by_device) strmap_free(st->by_device, value_free);
	free(st->snapshot);
	json_decref(st->parsed);
	free(st);
	n->status = NULL;
}

const json_t *ndi_status_get(const struct ndi *n, const char *device_id)
{
	return n->status && device_id ? strmap_get(n->status->by_device, device_id) : NULL;
}

const json_t *ndi_status_snapshot(const struct ndi *n)
{
	struct ndi_status *st = n->status;
	json_error_t err;

	if(!st || !st->snapshot) return NULL;
	if(!st->parsed) {
		st->parsed = json_loadb(st->snapshot, st->snapshot_len, 0, &err);
		if(!st->parsed) {
			oh_log(n->ctx, OH_LOG_WARN, "the registry snapshot is not JSON: %s", err.text);
			return NULL;
		}
	}
	return st->parsed;
}
