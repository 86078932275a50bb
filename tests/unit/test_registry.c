/*
 * Unit tests of the registry merge, driven through the real dispatcher with
 * a host whose broker link is never started: meta and status merging, the
 * topic's device id being authoritative, removal by empty meta, bad input
 * ignored without harm, known fields of the wrong type dropped from the
 * merge, the device id rule ("." and ".." refused), staleness, and the
 * snapshot document.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core.h"
#include "ident.h"
#include "mqtt_link.h"
#include "shared_buf.h"
#include "snapshot.h"
#include "store.h"

static struct host h;

/* A live message from a device (not the broker's retained copy). */
static void deliver(const char *topic, const char *payload)
{
	dispatch_on_message(h.dispatch, topic, payload, strlen(payload), false);
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
	/* Made with the first call, freed with the registry it reads. */
	if(!h.snapshot)
		h.snapshot = snapshot_new(&h);
	struct shared_buf *b = snapshot_get(h.snapshot);
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
	snapshot_free(h.snapshot);
	h.snapshot = NULL;
	registry_free(h.registry);
	dispatch_free(h.dispatch);
	mqtt_link_free(h.link);
	event_base_free(h.base);
	config_free(&h.cfg);
}

static void test_merge(void)
{
	deliver("/lab/device/rpi-01/meta",
			"{\"device_id\":\"rpi-01\",\"modules\":[\"ndi\"],\"labels\":[\"a\"]}");
	json_t *d = device("rpi-01");
	CHECK(d != NULL);
	CHECK(json_is_array(json_object_get(d, "modules")));
	deliver("/lab/device/rpi-01/status", "{\"online\":true,\"ts\":\"2026-11-28T10:00:00Z\"}");
	d = device("rpi-01");
	CHECK(json_is_true(json_object_get(d, "online")));
	CHECK(json_is_array(json_object_get(d, "modules"))); /* meta keys kept */
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

static const char *str_of(const char *id, const char *key)
{
	return json_string_value(json_object_get(device(id), key));
}

/* Known fields of the wrong type are dropped one by one; the rest of the
 * same message is still merged, and the message counts as bad input. */
static void test_field_types(void)
{
	deliver("/lab/device/typed-1/meta",
			"{\"device_id\":\"typed-1\",\"modules\":[\"ndi\"],\"labels\":[\"a\"],"
			"\"capabilities\":{\"ndi\":{\"start_cmd_template\":\"x\"}},\"feature\":null,"
			"\"version\":\"1\",\"ts\":\"2026-11-28T10:00:00Z\"}");
	deliver("/lab/device/typed-1/status", "{\"online\":true,\"ts\":\"2026-11-28T10:00:01Z\"}");
	uint64_t bad = h.stats.bad_payloads;

	/* The issue's example: nothing typed is replaced, version still is. */
	deliver("/lab/device/typed-1/meta",
			"{\"modules\":\"ndi\",\"labels\":5,\"capabilities\":[],\"version\":\"2\"}");
	json_t *d = device("typed-1");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "modules"), 0)), "ndi");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "labels"), 0)), "a");
	CHECK(json_is_object(json_object_get(json_object_get(d, "capabilities"), "ndi")));
	CHECK_STR_EQ(str_of("typed-1", "version"), "2");
	CHECK_INT_EQ(h.stats.bad_payloads - bad, 1);

	deliver("/lab/device/typed-1/status", "{\"online\":\"yes\",\"ts\":5,\"marker\":1}");
	struct oh_device od;
	registry_device(h.registry, "typed-1", &od);
	CHECK_INT_EQ(od.online, 1);
	CHECK(json_is_true(json_object_get(device("typed-1"), "online")));
	CHECK_STR_EQ(str_of("typed-1", "ts"), "2026-11-28T10:00:01Z");
	CHECK_INT_EQ(json_integer_value(json_object_get(device("typed-1"), "marker")), 1);
	/* Not a boolean: neither "false" nor 0 takes a device offline. */
	deliver("/lab/device/typed-1/status", "{\"online\":0}");
	deliver("/lab/device/typed-1/status", "{\"online\":\"false\"}");
	registry_device(h.registry, "typed-1", &od);
	CHECK_INT_EQ(od.online, 1);
	CHECK_INT_EQ(h.stats.bad_payloads - bad, 4);

	/* Each kind of check, at its edge. */
	static const char *wrong[] = {
			"{\"modules\":[\"ndi\",5]}",
			"{\"modules\":null}",
			"{\"modules\":{}}",
			"{\"labels\":[null]}",
			"{\"labels\":{\"a\":\"b\"}}",
			"{\"capabilities\":{\"ndi\":\"x\"}}",
			"{\"capabilities\":null}",
			"{\"feature\":5}",
			"{\"version\":null}",
			"{\"version\":1}",
			"{\"ts\":null}",
			"{\"ts\":1764324000}",
			"{\"online\":null}",
			"{\"online\":\"yes\"}",
			"{\"name\":[\"x\"]}",
			"{\"hostname\":5}",
	};
	for(size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
		int failed = check_failed;
		deliver("/lab/device/typed-1/meta", wrong[i]);
		json_t *dd = device("typed-1");
		CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(dd, "modules"), 0)), "ndi");
		CHECK_INT_EQ(json_array_size(json_object_get(dd, "modules")), 1);
		CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(dd, "labels"), 0)), "a");
		CHECK(json_is_object(json_object_get(json_object_get(dd, "capabilities"), "ndi")));
		CHECK(json_is_null(json_object_get(dd, "feature")));
		CHECK_STR_EQ(str_of("typed-1", "version"), "2");
		CHECK_STR_EQ(str_of("typed-1", "ts"), "2026-11-28T10:00:01Z");
		CHECK(json_is_true(json_object_get(dd, "online")));
		if(check_failed != failed)
			printf("     after %s\n", wrong[i]);
	}
	CHECK_INT_EQ(h.stats.bad_payloads - bad, 4 + sizeof wrong / sizeof *wrong);

	/* What the agent and the spec send passes, null feature included. */
	deliver("/lab/device/typed-1/meta",
			"{\"modules\":[],\"labels\":[],\"capabilities\":{},\"feature\":\"f\","
			"\"version\":\"3\",\"name\":\"Studio A\",\"hostname\":\"rpi\"}");
	d = device("typed-1");
	CHECK_INT_EQ(json_array_size(json_object_get(d, "modules")), 0);
	CHECK_STR_EQ(str_of("typed-1", "feature"), "f");
	deliver("/lab/device/typed-1/meta", "{\"feature\":null}");
	CHECK(json_is_null(json_object_get(device("typed-1"), "feature")));
	CHECK_INT_EQ(h.stats.bad_payloads - bad, 4 + sizeof wrong / sizeof *wrong);
	/* Unknown fields are the device's own business and merge as they come. */
	deliver("/lab/device/typed-1/meta", "{\"extra\":{\"n\":[1,\"x\"]}}");
	CHECK(json_is_object(json_object_get(device("typed-1"), "extra")));

	/* A first message whose known fields are all wrong still announces the
	 * device, with nothing typed in it: online stays unknown. */
	deliver("/lab/device/typed-2/meta", "{\"modules\":5,\"online\":\"yes\",\"x\":1}");
	CHECK_INT_EQ(registry_device(h.registry, "typed-2", &od), OH_OK);
	CHECK_INT_EQ(od.online, -1);
	d = device("typed-2");
	CHECK(json_object_get(d, "modules") == NULL);
	CHECK(json_is_null(json_object_get(d, "online")));
	CHECK_INT_EQ(json_integer_value(json_object_get(d, "x")), 1);
	json_t *s = snapshot();
	json_t *sd = json_object_get(json_object_get(s, "devices"), "typed-2");
	CHECK(sd != NULL && json_object_get(sd, "modules") == NULL);
	CHECK(json_is_null(json_object_get(sd, "online")));
	json_decref(s);
}

/* The one device id rule (ident.c), as the host, plugins and agent see it. */
static void test_device_id_rule(void)
{
	static const char *good[] = {
			"a", "rpi-01", "A.b_c-9", "...", ".a", "a.", "..a", "a..", "a..b", ".-", "_", "-"};
	static const char *bad[] = {
			".", "..", "", "a/b", "+", "#", "a b", "caf\xc3\xa9", "a\n", "../a", "./", "/.."};
	for(size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if(!check_report(ident_device_id_valid(good[i], strlen(good[i])) && oh_device_id_valid(good[i]),
				   __FILE__, __LINE__, "valid id"))
			printf("     refused \"%s\"\n", good[i]);
	}
	for(size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if(!check_report(!ident_device_id_valid(bad[i], strlen(bad[i])) && !oh_device_id_valid(bad[i]),
				   __FILE__, __LINE__, "invalid id"))
			printf("     accepted \"%s\"\n", bad[i]);
	}
	CHECK(!oh_device_id_valid(NULL));
	CHECK(!ident_device_id_valid(NULL, 1));
	/* The length bounds the id, not a NUL: a topic level is cut from a
	 * longer string. */
	CHECK(!ident_device_id_valid("./meta", 1));
	CHECK(!ident_device_id_valid("../meta", 2));
	CHECK(ident_device_id_valid(".a/meta", 2));
	CHECK(ident_device_id_valid("...", 3));
	char id[OH_DEVICE_ID_MAX + 2];
	memset(id, '.', sizeof id);
	CHECK(ident_device_id_valid(id, OH_DEVICE_ID_MAX));
	CHECK(!ident_device_id_valid(id, OH_DEVICE_ID_MAX + 1));

	/* The registry applies it to the topic level. */
	size_t n = registry_size(h.registry);
	uint64_t bad_before = h.stats.bad_payloads;
	deliver("/lab/device/./meta", "{\"x\":1}");
	deliver("/lab/device/../meta", "{\"x\":1}");
	deliver("/lab/device/./status", "{\"online\":true}");
	deliver("/lab/device/../status", "{\"online\":true}");
	CHECK(device(".") == NULL);
	CHECK(device("..") == NULL);
	CHECK_INT_EQ(registry_size(h.registry), n);
	CHECK_INT_EQ(h.stats.bad_payloads - bad_before, 4);
	json_t *s = snapshot();
	CHECK(json_object_get(json_object_get(s, "devices"), ".") == NULL);
	CHECK(json_object_get(json_object_get(s, "devices"), "..") == NULL);
	json_decref(s);
}

/* A second registry on a store: what one run merged, the next starts with. */
static void test_warm_start(void)
{
	char dir[] = "/tmp/oh-test-registry-XXXXXX";
	char err[256];
	if(!mkdtemp(dir))
		abort();
	struct store *st = store_open_dir(dir, err, sizeof err);
	CHECK(st != NULL);
	if(!st)
		return;
	const char *doc = "{\"device_id\":\"cam-9\",\"modules\":[\"ndi\"],\"online\":true,"
			  "\"stale\":false,\"last_seen\":\"2026-01-01T00:00:00Z\",\"labels\":[\"x\"]}";
	CHECK_INT_EQ(store_device_put(st, "cam-9", doc, strlen(doc), 1767225600.0), 0);
	CHECK_INT_EQ(store_device_put(st, "..", "{}", 2, 1.0), 0);       /* refused on load */
	CHECK_INT_EQ(store_device_put(st, "bad-doc", "[1]", 3, 1.0), 0); /* not an object */

	struct registry *saved = h.registry;
	snapshot_free(h.snapshot); /* it reads the registry set aside */
	h.snapshot = NULL;
	h.store = st;
	h.registry = registry_new(&h);
	CHECK_INT_EQ(registry_start(h.registry), 0);
	CHECK_INT_EQ(registry_size(h.registry), 1);
	json_t *snap = snapshot();
	json_t *d = json_object_get(json_object_get(snap, "devices"), "cam-9");
	CHECK(json_is_null(json_object_get(d, "online"))); /* not heard from yet */
	CHECK_STR_EQ(json_string_value(json_object_get(d, "last_seen")), "2026-01-01T00:00:00Z");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "modules"), 0)), "ndi");
	CHECK_STR_EQ(json_string_value(json_object_get(d, "device_id")), "cam-9");
	json_decref(snap);

	/* The broker's retained copy of its status (MQTT 3.1.1: the retain
	 * flag marks the copies) is not contact: merged, but online stays
	 * unknown and last_seen the stored one. */
	struct oh_device od;
	CHECK_INT_EQ(registry_device(h.registry, "cam-9", &od), 0);
	double stored = od.last_seen;
	const char *copy = "{\"online\":true,\"ts\":\"2026-01-01T00:00:00Z\"}";
	dispatch_on_message(h.dispatch, "/lab/device/cam-9/status", copy, strlen(copy), true);
	CHECK_INT_EQ(registry_device(h.registry, "cam-9", &od), 0);
	CHECK_INT_EQ(od.online, -1);
	CHECK(od.last_seen == stored);
	CHECK(json_is_null(json_object_get(od.doc, "online")));
	CHECK_STR_EQ(json_string_value(json_object_get(od.doc, "ts")), "2026-01-01T00:00:00Z");

	/* Heard from: merged on top, and written back when flushed. */
	deliver("/lab/device/cam-9/status", "{\"online\":false,\"ts\":\"2026-02-02T00:00:00Z\"}");
	deliver("/lab/device/cam-10/meta", "{\"modules\":[\"ndi\",\"ptz\"]}");
	registry_flush(h.registry);
	snapshot_free(h.snapshot);
	h.snapshot = NULL;
	registry_free(h.registry);
	dispatch_remove_owner(h.dispatch, NULL);

	h.registry = registry_new(&h);
	CHECK_INT_EQ(registry_start(h.registry), 0);
	CHECK_INT_EQ(registry_size(h.registry), 2);
	snap = snapshot();
	d = json_object_get(json_object_get(snap, "devices"), "cam-9");
	CHECK_STR_EQ(json_string_value(json_object_get(d, "ts")), "2026-02-02T00:00:00Z");
	CHECK(json_is_null(json_object_get(d, "online")));
	d = json_object_get(json_object_get(snap, "devices"), "cam-10");
	CHECK_INT_EQ(json_array_size(json_object_get(d, "modules")), 2);
	json_decref(snap);

	/* A retained clear removes it from the store too. */
	dispatch_on_message(h.dispatch, "/lab/device/cam-10/meta", "", 0, true);
	snapshot_free(h.snapshot);
	h.snapshot = NULL;
	registry_free(h.registry);
	dispatch_remove_owner(h.dispatch, NULL);
	h.registry = registry_new(&h);
	CHECK_INT_EQ(registry_start(h.registry), 0);
	CHECK_INT_EQ(registry_size(h.registry), 1);
	snapshot_free(h.snapshot);
	h.snapshot = NULL;
	registry_free(h.registry);
	dispatch_remove_owner(h.dispatch, NULL);

	h.registry = saved; /* the next snapshot() reads it again */
	h.store = NULL;
	store_close(st);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if(system(cmd))
		printf("could not remove %s\n", dir);
}

int main(void)
{
	setup();
	test_merge();
	test_bad_input();
	test_snapshot();
	test_remove();
	test_stale();
	test_field_types();
	test_device_id_rule();
	test_warm_start();
	teardown();
	return check_summary();
}
