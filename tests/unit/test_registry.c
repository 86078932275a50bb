/*
 * Unit tests of the registry merge, driven through the real dispatcher with
 * a host whose broker link is never started: meta and status merging, the
 * topic's device id being authoritative, removal by empty meta, bad input
 * ignored without harm, staleness, and the snapshot document.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core.h"
#include "mqtt_link.h"
#include "shared_buf.h"

static struct host h;

static void deliver(const char *topic, const char *payload)
{
	dispatch_on_message(h.dispatch, topic, payload, strlen(payload), true);
}

static json_t *device(const char *id)
{
	struct oh_device d;
	if(registry_device(h.registry, id, &d))
		return NULL;
	return (json_t *)d.doc;
}

static json_t *snapshot(void)
{
	struct shared_buf *b = registry_snapshot(h.registry);
	json_error_t err;
	json_t *j = json_loads(b->data, 0, &err);
	shared_buf_unref(b);
	return j;
}

static void setup(void)
{
	char err[256];
	if(config_load(&h.cfg, NULL, err, sizeof err))
		abort();
	h.cfg.stale_after_s = 0.2;
	h.cfg.max_payload_bytes = 1024;
	h.base = event_base_new();
	h.dispatch = dispatch_new(&h);
	h.registry = registry_new(&h);
	struct mqtt_link_opts mo = {.host = "127.0.0.1", .port = 1, .client_id = "unit"};
	struct mqtt_link_callbacks cb = {0};
	h.link = mqtt_link_new(h.base, &mo, &cb, &h);
	if(!h.dispatch || !h.registry || !h.link || registry_start(h.registry))
		abort();
}

static void teardown(void)
{
	registry_free(h.registry);
	dispatch_free(h.dispatch);
	mqtt_link_free(h.link);
	event_base_free(h.base);
	config_free(&h.cfg);
}

static void test_merge(void)
{
	deliver("/lab/device/rpi-01/meta", "{\"device_id\":\"rpi-01\",\"modules\":[\"ndi\"],\"labels\":[\"a\"]}");
	json_t *d = device("rpi-01");
	CHECK(d != NULL);
	CHECK(json_is_array(json_object_get(d, "modules")));
	deliver("/lab/device/rpi-01/status", "{\"online\":true,\"ts\":\"2026-11-28T10:00:00Z\"}");
	d = device("rpi-01");
	CHECK(json_is_true(json_object_get(d, "online")));
	CHECK(json_is_array(json_object_get(d, "modules")));     /* meta keys kept */
	CHECK_STR_EQ(json_string_value(json_object_get(d, "device_id")), "rpi-01");
	/* Later wins, key by key. */
	deliver("/lab/device/rpi-01/meta", "{\"labels\":[\"b\"]}");
	d = device("rpi-01");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "labels"), 0)), "b");
	CHECK(json_is_array(json_object_get(d, "modules")));
	CHECK(json_is_string(json_object_get(d, "last_seen")));
	CHECK(json_is_false(json_object_get(d, "stale")));

	struct oh_device od;
	CHECK_INT_EQ(registry_device(h.registry, "rpi-01", &od), OH_OK);
	CHECK_INT_EQ(od.online, 1);
	CHECK(od.last_seen > 0);
	CHECK_INT_EQ(registry_device(h.registry, "nope", &od), OH_ERR_NOT_FOUND);

	/* A status without meta creates the device, online unknown until said. */
	deliver("/lab/device/cam-2/status", "{\"foo\":1}");
	CHECK_INT_EQ(registry_device(h.registry, "cam-2", &od), OH_OK);
	CHECK_INT_EQ(od.online, -1);
	deliver("/lab/device/cam-2/status", "{\"online\":false}");
	registry_device(h.registry, "cam-2", &od);
	CHECK_INT_EQ(od.online, 0);
}

static void test_bad_input(void)
{
	size_t before = registry_size(h.registry);
	uint64_t bad = h.stats.bad_payloads;
	deliver("/lab/device/rpi-01/meta", "not json");
	deliver("/lab/device/rpi-01/meta", "[1,2]");
	deliver("/lab/device/rpi-01/meta", "\"str\"");
	deliver("/lab/device/rpi-01/meta", "{\"device_id\":\"other\",\"labels\":[\"evil\"]}");
	deliver("/lab/device/rpi-01/meta", "{\"device_id\":5}");
	deliver("/lab/device/bad id/meta", "{\"x\":1}");
	/* Not a valid topic name at all: no broker delivers it, nothing matches. */
	deliver("/lab/device/bad+id/meta", "{\"x\":1}");
	char big[2048];
	memset(big, ' ', sizeof big - 1);
	big[0] = '{';
	big[sizeof big - 2] = '}';
	big[sizeof big - 1] = '\0';
	deliver("/lab/device/rpi-01/status", big);
	char longid[128] = "/lab/device/";
	memset(longid + 12, 'a', 65);
	strcpy(longid + 77, "/meta");
	deliver(longid, "{\"x\":1}");
	CHECK_INT_EQ(h.stats.bad_payloads - bad, 8);
	CHECK_INT_EQ(registry_size(h.registry), before);
	json_t *d = device("rpi-01");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "labels"), 0)), "b");
	/* A good message from the same device still works. */
	deliver("/lab/device/rpi-01/meta", "{\"labels\":[\"c\"]}");
	d = device("rpi-01");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "labels"), 0)), "c");
	/* Topics that are not meta/status are not the registry's business. */
	deliver("/lab/device/rpi-01/ndi/status", "{\"state\":\"running\"}");
	CHECK(json_object_get(device("rpi-01"), "state") == NULL);
}

static void test_snapshot(void)
{
	json_t *s = snapshot();
	CHECK(json_is_object(json_object_get(s, "devices")));
	CHECK(json_object_get(json_object_get(s, "devices"), "rpi-01") != NULL);
	CHECK(json_is_object(json_object_get(s, "locks")));
	CHECK(json_is_array(json_object_get(s, "modules")));
	CHECK(json_is_string(json_object_get(s, "ts")));
	json_int_t seq = json_integer_value(json_object_get(s, "seq"));
	json_decref(s);
	/* No change: the same snapshot. */
	s = snapshot();
	CHECK_INT_EQ(json_integer_value(json_object_get(s, "seq")), seq);
	json_decref(s);
	deliver("/lab/device/new-1/meta", "{\"modules\":[]}");
	s = snapshot();
	CHECK_INT_EQ(json_integer_value(json_object_get(s, "seq")), seq + 1);
	CHECK(json_object_get(json_object_get(s, "devices"), "new-1") != NULL);
	json_decref(s);
}

static void test_remove(void)
{
	CHECK(device("new-1") != NULL);
	dispatch_on_message(h.dispatch, "/lab/device/new-1/meta", "", 0, true);
	CHECK(device("new-1") == NULL);
	json_t *s = snapshot();
	CHECK(json_object_get(json_object_get(s, "devices"), "new-1") == NULL);
	json_decref(s);
	/* An empty status does not remove anything. */
	dispatch_on_message(h.dispatch, "/lab/device/rpi-01/status", "", 0, true);
	CHECK(device("rpi-01") != NULL);
}

static void test_stale(void)
{
	deliver("/lab/device/rpi-01/status", "{\"online\":true}");
	struct oh_device od;
	registry_device(h.registry, "rpi-01", &od);
	CHECK(!od.stale);
	struct timeval tv = {0, 400000};
	event_base_loopexit(h.base, &tv);
	event_base_dispatch(h.base);
	registry_device(h.registry, "rpi-01", &od);
	CHECK(od.stale);
	/* cam-2 said offline: it is not "stale", just offline. */
	registry_device(h.registry, "cam-2", &od);
	CHECK(!od.stale);
	json_t *s = snapshot();
	CHECK(json_is_true(json_object_get(json_object_get(json_object_get(s, "devices"), "rpi-01"), "stale")));
	json_decref(s);
	/* Speaking again clears it. */
	deliver("/lab/device/rpi-01/status", "{\"online\":true}");
	registry_device(h.registry, "rpi-01", &od);
	CHECK(!od.stale);
}

int main(void)
{
	setup();
	test_merge();
	test_bad_input();
	test_snapshot();
	test_remove();
	test_stale();
	teardown();
	return check_summary();
}
