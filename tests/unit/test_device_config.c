/*
 * Unit tests of the device agent's configuration loading
 * (src/device/dev_config.c): defaults, every key of the sample shape,
 * environment overrides, and one clear message naming file and key for
 * unknown keys, wrong types, ranges, module settings and JSON syntax.
 */
#include "check.h"
#include "dev_config.h"

#include <stdlib.h>
#include <unistd.h>

static char path[64];

static void write_file(const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

/* Loads text; returns the rc and leaves the message in err. */
static int load(const char *text, bool need_id, struct dev_config *c, char *err, size_t len)
{
	write_file(text);
	return dev_config_load(c, path, need_id, err, len);
}

static void expect_error(const char *text, const char *needle, int line)
{
	struct dev_config c;
	char err[512] = "";
	int rc = load(text, true, &c, err, sizeof err);
	int ok = rc == -1 && strstr(err, needle) && strstr(err, path);
	check_report(ok, __FILE__, line, text);
	if(!ok)
		printf("     rc %d, err \"%s\", wanted \"%s\" and the file name\n", rc, err, needle);
	dev_config_free(&c);
}

static void test_defaults(void)
{
	struct dev_config c;
	char err[512];
	CHECK_INT_EQ(dev_config_load(&c, NULL, false, err, sizeof err), 0);
	CHECK_STR_EQ(c.mqtt.host, "127.0.0.1");
	CHECK_INT_EQ(c.mqtt.port, 1883);
	CHECK_INT_EQ(c.mqtt.keepalive_s, 30);
	CHECK(c.mqtt.client_id == NULL && c.mqtt.username == NULL && !c.mqtt.tls.enabled);
	CHECK_STR_EQ(c.topic_root, "/lab");
	CHECK(c.heartbeat_interval_s == 10);
	CHECK(c.device_id == NULL);
	CHECK(json_array_size(c.labels) == 0 && json_object_size(c.modules) == 0);
	dev_config_free(&c);

	/* Without a file there is no device_id. */
	CHECK_INT_EQ(dev_config_load(&c, NULL, true, err, sizeof err), -1);
	CHECK_STR_CONTAINS(err, "device_id");
	dev_config_free(&c);
}

static void test_full(void)
{
	struct dev_config c;
	char err[512] = "";
	int rc = load("{\"device_id\": \"rpi-01\", \"labels\": [\"studio-a\", \"b\"],"
		      " \"mqtt\": {\"host\": \"127.0.0.1\", \"port\": 1884, \"username\": null, \"password\": null,"
		      "  \"client_id\": null, \"keepalive_s\": 15},"
		      " \"topic_root\": \"/lab2\", \"heartbeat_interval_s\": 2.5,"
		      " \"modules\": {\"ndi\": {\"start_cmd_template\": \"ndi-viewer '{source}'\","
		      "  \"record_start_cmd_template\": \"rec {source}\", \"stop_grace_s\": 1.5}},"
		      " \"log_level\": \"debug\", \"log_format\": \"json\"}",
			true, &c, err, sizeof err);
	CHECK_INT_EQ(rc, 0);
	if(rc)
		printf("     %s\n", err);
	CHECK_STR_EQ(c.device_id, "rpi-01");
	CHECK_INT_EQ(json_array_size(c.labels), 2);
	CHECK_INT_EQ(c.mqtt.port, 1884);
	CHECK_INT_EQ(c.mqtt.keepalive_s, 15);
	CHECK_STR_EQ(c.topic_root, "/lab2");
	CHECK(c.heartbeat_interval_s == 2.5);
	json_t *ndi = json_object_get(c.modules, "ndi");
	CHECK_STR_EQ(json_string_value(json_object_get(ndi, "start_cmd_template")), "ndi-viewer '{source}'");
	CHECK(json_number_value(json_object_get(ndi, "stop_grace_s")) == 1.5);
	dev_config_free(&c);

	/* null module settings mean defaults; tls object switches TLS on. */
	rc = load("{\"device_id\": \"d\", \"modules\": {\"ndi\": null},"
		  " \"mqtt\": {\"tls\": {\"ca_file\": \"/x/ca.pem\", \"insecure_skip_verify\": true}}}",
			true, &c, err, sizeof err);
	CHECK_INT_EQ(rc, 0);
	CHECK(json_is_object(json_object_get(c.modules, "ndi")));
	CHECK(c.mqtt.tls.enabled && c.mqtt.tls.insecure_skip_verify);
	CHECK_STR_EQ(c.mqtt.tls.ca_file, "/x/ca.pem");
	dev_config_free(&c);
}

static void test_errors(void)
{
	expect_error("{\"device_id\": \"d\", \"colour\": 1}", "colour: unknown key", __LINE__);
	expect_error("{\"device_id\": \"d\", \"mqtt\": {\"hots\": \"x\"}}", "mqtt.hots: unknown key", __LINE__);
	/* The agent speaks 3.1.1 only (src/device/agent.c): the host's key is not its. */
	expect_error("{\"device_id\": \"d\", \"mqtt\": {\"protocol\": \"5\"}}", "mqtt.protocol: unknown key",
			__LINE__);
	expect_error("{\"device_id\": \"d\", \"mqtt\": {\"port\": \"1883\"}}",
			"mqtt.port: expected an integer", __LINE__);
	expect_error("{\"device_id\": \"d\", \"mqtt\": {\"port\": 70000}}",
			"mqtt.port: 70000 is out of range", __LINE__);
	expect_error("{\"device_id\": \"d\", \"mqtt\": {\"keepalive_s\": 1}}", "mqtt.keepalive_s", __LINE__);
	expect_error("{\"device_id\": \"d\", \"mqtt\": 5}", "mqtt: expected an object", __LINE__);
	/* null is absence (include/oh/validate.h): the default host stays. */
	expect_error("{\"device_id\": \"d\", \"mqtt\": {\"host\": []}}", "mqtt.host: expected a string",
			__LINE__);
	expect_error("{\"device_id\": 5}", "device_id: expected", __LINE__);
	expect_error("{\"device_id\": \"a/b\"}", "device_id: expected", __LINE__);
	expect_error("{\"device_id\": \"\"}", "device_id: expected", __LINE__);
	expect_error("{\"labels\": []}", "device_id: missing", __LINE__);
	expect_error("{\"device_id\": \"d\", \"labels\": \"a\"}", "labels: expected an array", __LINE__);
	expect_error("{\"device_id\": \"d\", \"labels\": [\"a\", 2]}", "labels[1]: expected a string",
			__LINE__);
	expect_error("{\"device_id\": \"d\", \"heartbeat_interval_s\": 0}", "heartbeat_interval_s", __LINE__);
	expect_error("{\"device_id\": \"d\", \"heartbeat_interval_s\": \"10\"}",
			"heartbeat_interval_s: expected a number", __LINE__);
	expect_error("{\"device_id\": \"d\", \"topic_root\": \"/lab/\"}", "topic_root", __LINE__);
	expect_error("{\"device_id\": \"d\", \"topic_root\": \"/l+b\"}", "topic_root", __LINE__);
	expect_error("{\"device_id\": \"d\", \"log_level\": \"loud\"}", "log_level", __LINE__);
	expect_error("{\"device_id\": \"d\", \"modules\": []}", "modules: expected", __LINE__);
	expect_error("{\"device_id\": \"d\", \"modules\": {\"ptz\": {}}}", "modules.ptz: unknown module",
			__LINE__);
	expect_error("{\"device_id\": \"d\", \"modules\": {\"ndi\": 3}}", "modules.ndi: expected an object",
			__LINE__);
	expect_error("{\"device_id\": \"d\", \"modules\": {\"ndi\": {\"start_cmd\": \"x\"}}}",
			"modules.ndi.start_cmd: unknown key", __LINE__);
	expect_error("{\"device_id\": \"d\", \"modules\": {\"ndi\": {\"start_cmd_template\": 3}}}",
			"modules.ndi.start_cmd_template: expected a string or null", __LINE__);
	expect_error("{\"device_id\": \"d\", \"modules\": {\"ndi\": {\"start_cmd_template\": \"v '{source}\"}}}",
			"modules.ndi.start_cmd_template: unterminated single quote", __LINE__);
	expect_error("{\"device_id\": \"d\", \"modules\": {\"ndi\": {\"stop_grace_s\": -1}}}",
			"modules.ndi.stop_grace_s", __LINE__);
	expect_error("[]", "top level must be an object", __LINE__);
	/* Syntax errors: line and column. */
	expect_error("{\"device_id\": \"d\",\n  \"labels\": [1,]\n}", "line 2, column", __LINE__);
	expect_error("{\"device_id\": \"d\", \"device_id\": \"e\"}", "duplicate", __LINE__);
	expect_error("", "line 1", __LINE__);

	struct dev_config c;
	char err[512];
	CHECK_INT_EQ(dev_config_load(&c, "/nonexistent/device.json", true, err, sizeof err), -1);
	CHECK_STR_CONTAINS(err, "/nonexistent/device.json");
	dev_config_free(&c);
}

static void test_env(void)
{
	struct dev_config c;
	char err[512] = "";
	setenv("OH_MQTT_HOST", "10.0.0.9", 1);
	setenv("OH_MQTT_PORT", "2883", 1);
	setenv("OH_MQTT_USERNAME", "lab", 1);
	setenv("OH_MQTT_PASSWORD", "secret", 1);
	CHECK_INT_EQ(load("{\"device_id\": \"d\", \"mqtt\": {\"host\": \"h\", \"port\": 1}}", true, &c, err,
				     sizeof err),
			0);
	CHECK_STR_EQ(c.mqtt.host, "10.0.0.9");
	CHECK_INT_EQ(c.mqtt.port, 2883);
	CHECK_STR_EQ(c.mqtt.username, "lab");
	CHECK_STR_EQ(c.mqtt.password, "secret");
	dev_config_free(&c);

	setenv("OH_MQTT_PORT", "18x", 1);
	CHECK_INT_EQ(load("{\"device_id\": \"d\"}", true, &c, err, sizeof err), -1);
	CHECK_STR_CONTAINS(err, "OH_MQTT_PORT");
	dev_config_free(&c);
	unsetenv("OH_MQTT_HOST");
	unsetenv("OH_MQTT_PORT");
	unsetenv("OH_MQTT_USERNAME");
	unsetenv("OH_MQTT_PASSWORD");

	/* password_file: first line only. */
	char pw[64];
	snprintf(pw, sizeof pw, "%s.pw", path);
	FILE *f = fopen(pw, "w");
	fputs("hunter2\nrest\n", f);
	fclose(f);
	char text[256];
	snprintf(text, sizeof text, "{\"device_id\": \"d\", \"mqtt\": {\"password_file\": \"%s\"}}", pw);
	CHECK_INT_EQ(load(text, true, &c, err, sizeof err), 0);
	CHECK_STR_EQ(c.mqtt.password, "hunter2");
	dev_config_free(&c);
	unlink(pw);
}

static void test_id_valid(void)
{
	CHECK(dev_id_valid("rpi-01"));
	CHECK(dev_id_valid("sim-0001"));
	CHECK(!dev_id_valid(""));
	CHECK(!dev_id_valid(NULL));
	CHECK(!dev_id_valid("a/b"));
	CHECK(!dev_id_valid("a+"));
	CHECK(!dev_id_valid("#"));
	/* The host's rule: anything else would be ignored by its registry. */
	CHECK(!dev_id_valid("a b"));
	CHECK(!dev_id_valid("caf\xc3\xa9"));
	CHECK(dev_id_valid("A.b_c-9"));
	char longid[200];
	memset(longid, 'a', 65);
	longid[65] = '\0';
	CHECK(!dev_id_valid(longid));
	longid[64] = '\0';
	CHECK(dev_id_valid(longid));
}

int main(void)
{
	snprintf(path, sizeof path, "/tmp/test_device_config_XXXXXX");
	int fd = mkstemp(path);
	if(fd < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	unsetenv("OH_MQTT_HOST");
	unsetenv("OH_MQTT_PORT");
	unsetenv("OH_MQTT_USERNAME");
	unsetenv("OH_MQTT_PASSWORD");
	test_defaults();
	test_full();
	test_errors();
	test_env();
	test_id_valid();
	unlink(path);
	return check_summary();
}
