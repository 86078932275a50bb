/*
 * Unit tests of configuration loading: defaults, every kind of error the
 * loader must name (file, key, line and column), and environment overrides.
 */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char path[64];

static void write_file(const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

/* Loads text; returns the error (static) or NULL on success. */
static const char *load(const char *text, struct config *c)
{
	static char err[512];
	write_file(text);
	if(config_load(c, path, err, sizeof err)) {
		config_free(c);
		return err;
	}
	return NULL;
}

static void test_defaults(void)
{
	struct config c;
	CHECK(load("{}", &c) == NULL);
	CHECK_STR_EQ(c.mqtt.host, "127.0.0.1");
	CHECK_INT_EQ(c.mqtt.port, 1883);
	CHECK_STR_EQ(c.http.bind, "127.0.0.1");
	CHECK_INT_EQ(c.http.port, 8080);
	CHECK_STR_EQ(c.topic_root, "/lab");
	CHECK_INT_EQ(c.snapshot_interval_ms, 200);
	CHECK_INT_EQ(c.max_payload_bytes, 65536);
	CHECK(c.stale_after_s == 30);
	CHECK(c.forget_after_days == 0); /* off */
	CHECK_STR_EQ(c.mqtt_protocol, "auto");
	CHECK_INT_EQ(c.command_expiry_s, 60);
	/* No plugin list: the NDI plugin runs. */
	CHECK_INT_EQ(c.n_plugins, 1);
	CHECK_STR_EQ(c.plugins[0].path, "builtin:ndi");
	CHECK(c.mqtt.username == NULL);
	config_free(&c);

	CHECK(config_load(&c, NULL, (char[64]){0}, 64) == 0);
	CHECK_STR_EQ(c.source, "(defaults)");
	config_free(&c);
}

static void test_full(void)
{
	struct config c;
	const char *err = load(
			"{\"mqtt\": {\"host\": \"127.0.0.2\", \"port\": 1999, \"username\": \"u\","
			" \"password\": null, \"client_id\": \"x\", \"keepalive_s\": 10, \"protocol\": \"3.1.1\"},"
			" \"http\": {\"bind\": \"127.0.0.1\", \"port\": 0}, \"topic_root\": \"/t\", \"command_expiry_s\": 0,"
			" \"state_dir\": \"/tmp/s\", \"plugins\": [{\"module\": \"ndi\", \"path\": \"builtin:ndi\","
			" \"settings\": {\"sources\": [\"A\"]}}, {\"module\": \"relay\", \"path\": \"/x/r.so:entry\"}]}",
			&c);
	CHECK(err == NULL);
	if(err)
		return;
	CHECK_STR_EQ(c.mqtt.host, "127.0.0.2");
	CHECK_INT_EQ(c.mqtt.port, 1999);
	CHECK_STR_EQ(c.mqtt.username, "u");
	CHECK(c.mqtt.password == NULL);
	CHECK_INT_EQ(c.http.port, 0);
	CHECK_STR_EQ(c.topic_root, "/t");
	CHECK_STR_EQ(c.mqtt_protocol, "3.1.1");
	CHECK_INT_EQ(c.command_expiry_s, 0);
	CHECK_INT_EQ(c.n_plugins, 2);
	CHECK_STR_EQ(c.plugins[1].module, "relay");
	CHECK_STR_EQ(c.plugins[1].path, "/x/r.so:entry");
	CHECK(json_is_object(c.plugins[1].settings));
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(c.plugins[0].settings, "sources"), 0)),
			"A");
	config_free(&c);
}

/* null is absence (include/oh/validate.h): the default stays, except for
 * a key that takes null as "none" (mqtt.client_id: no client id). */
static void test_null_is_absent(void)
{
	struct config c;
	const char *err = load("{\"topic_root\": null, \"mqtt\": {\"port\": null, \"client_id\": null},"
			       " \"limits\": {\"max_leases\": null}}",
			&c);
	CHECK(err == NULL);
	if(err) {
		printf("     %s\n", err);
		return;
	}
	CHECK_STR_EQ(c.topic_root, "/lab");
	CHECK_INT_EQ(c.mqtt.port, 1883);
	CHECK(c.mqtt.client_id == NULL);
	config_free(&c);
}

static void test_errors(void)
{
	struct config c;
	const struct {
		const char *text;
		const char *expect[3];
	} cases[] = {
			{"{\"mqtt\": {\"hots\": \"x\"}}", {"mqtt.hots", "unknown key"}},
			{"{\"bogus\": 1}", {"bogus", "unknown key"}},
			{"{\"mqtt\": {\"port\": \"1883\"}}", {"mqtt.port", "integer"}},
			{"{\"mqtt\": {\"port\": 70000}}", {"mqtt.port", "out of range"}},
			{"{\"mqtt\": {\"port\": 1.5}}", {"mqtt.port", "integer"}},
			{"{\"mqtt\": 5}", {"mqtt", "object"}},
			{"{\"http\": {\"port\": -1}}", {"http.port", "range"}},
			{"{\"stale_after_s\": \"x\"}", {"stale_after_s", "number"}},
			{"{\"forget_after_days\": -1}", {"forget_after_days", "range"}},
			{"{\"mqtt\": {\"protocol\": \"4\"}}", {"mqtt.protocol", "\"auto\", \"5\" or \"3.1.1\""}},
			{"{\"mqtt\": {\"protocol\": 5}}", {"mqtt.protocol", "string"}},
			{"{\"command_expiry_s\": -1}", {"command_expiry_s", "range"}},
			{"{\"command_expiry_s\": \"60\"}", {"command_expiry_s", "integer"}},
			{"{\"store\": {\"backend\": \"mysql\"}}",
					{"store.backend", "\"sqlite\" or \"postgresql\""}},
			{"{\"store\": {\"backend\": \"postgresql\"}}", {"store.conninfo", "required"}},
			{"{\"store\": {\"conninfo\": \"host=x\"}}", {"store.conninfo", "only for"}},
			{"{\"store\": {\"backend\": \"postgresql\", \"conninfo\": \"host=x password=s\"}}",
					{"store.conninfo", "password", "PGPASSWORD"}},
			{"{\"store\": {\"backend\": \"postgresql\", \"conninfo\": \"postgresql://u:s@x/db\"}}",
					{"store.conninfo", "password"}},
			{"{\"store\": {\"backend\": \"postgresql\", \"conninfo\": \"host\"}}",
					{"store.conninfo"}},
			{"{\"ha\": {\"lease_s\": 0.5}}", {"ha.lease_s", "range"}},
			{"{\"ha\": {\"node_id\": \"\"}}", {"ha.node_id"}},
			{"{\"mqtt\": {\"hosts\": []}}", {"mqtt.hosts", "host:port"}},
			{"{\"mqtt\": {\"hosts\": [\"a:1\", \"b\"]}}", {"mqtt.hosts[1]", "host:port"}},
			{"{\"mqtt\": {\"hosts\": [\"a:0\"]}}", {"mqtt.hosts[0]"}},
			{"{\"mqtt\": {\"hosts\": [\"::1:1883\"]}}", {"mqtt.hosts[0]"}},
			{"{\"topic_root\": \"/lab/\"}", {"topic_root", "trailing"}},
			{"{\"topic_root\": \"/lab/#\"}", {"topic_root"}},
			{"{\"topic_root\": 5}", {"topic_root", "expected a string"}},
			{"{\"log_format\": \"xml\"}", {"log_format"}},
			{"{\"log_level\": \"loud\"}", {"log_level"}},
			{"{\"plugins\": {}}", {"plugins", "array"}},
			{"{\"plugins\": [5]}", {"plugins[0]", "object"}},
			{"{\"plugins\": [{\"path\": \"builtin:ndi\"}]}", {"plugins[0].module"}},
			{"{\"plugins\": [{\"module\": \"NDI!\"}]}", {"plugins[0].module", "NDI!"}},
			{"{\"plugins\": [{\"module\": \"ndi\", \"colour\": 1}]}",
					{"plugins[0].colour", "unknown key"}},
			{"{\"plugins\": [{\"module\": \"ndi\", \"settings\": []}]}",
					{"plugins[0].settings", "object"}},
			{"{\"plugins\": [{\"module\": \"a\"}, {\"module\": \"a\"}]}",
					{"plugins[1].module", "twice"}},
			{"{\"plugins\": [{\"module\": \"devices\"}]}", {"plugins[0].module", "reserved"}},
			{"{\"mqtt\": {\"password_file\": \"/nonexistent/pw\"}}",
					{"mqtt.password_file", "/nonexistent/pw"}},
			{"[1, 2]", {"top level"}},
			{"{\"a\": 1, \"a\": 2}", {"line 1", "duplicate"}},
			{"{\n  \"mqtt\": {\n    \"port\": 1883,\n  }\n}", {"line 4", "column"}},
			{"", {"line"}},
	};
	for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *err = load(cases[i].text, &c);
		if(!CHECK(err != NULL)) {
			printf("     case %zu loaded: %s\n", i, cases[i].text);
			config_free(&c);
			continue;
		}
		CHECK_STR_CONTAINS(err, path);
		for(int j = 0; j < 3 && cases[i].expect[j]; j++)
			CHECK_STR_CONTAINS(err, cases[i].expect[j]);
	}
}

static void test_env(void)
{
	struct config c;
	setenv("OH_MQTT_HOST", "127.0.0.9", 1);
	setenv("OH_MQTT_PORT", "2883", 1);
	setenv("OH_MQTT_USERNAME", "envuser", 1);
	setenv("OH_MQTT_PASSWORD", "envpw", 1);
	setenv("OH_HTTP_PORT", "9999", 1);
	setenv("OH_HTTP_BIND", "127.0.0.3", 1);
	CHECK(load("{\"mqtt\": {\"host\": \"127.0.0.1\", \"password\": \"file\"}}", &c) == NULL);
	CHECK_STR_EQ(c.mqtt.host, "127.0.0.9");
	CHECK_INT_EQ(c.mqtt.port, 2883);
	CHECK_STR_EQ(c.mqtt.username, "envuser");
	CHECK_STR_EQ(c.mqtt.password, "envpw");
	CHECK_INT_EQ(c.http.port, 9999);
	CHECK_STR_EQ(c.http.bind, "127.0.0.3");
	config_free(&c);

	setenv("OH_HTTP_PORT", "80x", 1);
	const char *err = load("{}", &c);
	CHECK(err != NULL);
	CHECK_STR_CONTAINS(err, "OH_HTTP_PORT");
	unsetenv("OH_MQTT_HOST");
	unsetenv("OH_MQTT_PORT");
	unsetenv("OH_MQTT_USERNAME");
	unsetenv("OH_MQTT_PASSWORD");
	unsetenv("OH_HTTP_PORT");
	unsetenv("OH_HTTP_BIND");
}

static void test_password_file(void)
{
	char pw[64];
	snprintf(pw, sizeof pw, "/tmp/oh-test-pw-%d", (int)getpid());
	FILE *f = fopen(pw, "w");
	fputs("s3cret\n", f);
	fclose(f);
	char text[256];
	snprintf(text, sizeof text, "{\"mqtt\": {\"username\": \"u\", \"password_file\": \"%s\"}}", pw);
	struct config c;
	CHECK(load(text, &c) == NULL);
	CHECK_STR_EQ(c.mqtt.password, "s3cret");
	config_free(&c);
	unlink(pw);
}

/* A pair's store, and a broker cluster's addresses (docs/ha.md). */
static void test_store_ha(void)
{
	struct config c;
	CHECK(load("{\"store\": {\"backend\": \"postgresql\", \"conninfo\": \"host=db dbname=lab\"},"
		   " \"ha\": {\"node_id\": \"a\", \"lease_s\": 2},"
		   " \"mqtt\": {\"hosts\": [\"[::1]:1883\", \"b.lab:1884\"]}}",
			      &c) == NULL);
	CHECK_STR_EQ(c.store.backend, "postgresql");
	CHECK_STR_EQ(c.ha.node_id, "a");
	CHECK(c.ha.lease_s == 2);
	CHECK(c.mqtt.n_hosts == 2);
	CHECK_STR_EQ(c.mqtt.hosts[1], "b.lab:1884");
	CHECK_STR_EQ(c.ha.client_id, "orchestrator-host-leader");
	config_free(&c);
	/* Defaults: SQLite, the machine's name, 5 s. */
	CHECK(load("{}", &c) == NULL);
	CHECK_STR_EQ(c.store.backend, "sqlite");
	CHECK(c.ha.node_id && *c.ha.node_id);
	CHECK(c.ha.lease_s == 5);
	config_free(&c);
}

int main(void)
{
	snprintf(path, sizeof path, "/tmp/oh-test-config-%d.json", (int)getpid());
	test_defaults();
	test_full();
	test_null_is_absent();
	test_errors();
	test_env();
	test_password_file();
	test_store_ha();
	unlink(path);
	return check_summary();
}
