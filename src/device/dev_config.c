/*
 * Device configuration loading.  As in the host (src/core/config.c), the
 * schema is one table of dotted keys with type, range and destination, so
 * every unknown key and every wrong type is reported by name.  Module
 * settings are checked by the module itself (module.h), since only it knows
 * its keys.
 */
#include "dev_config.h"

#include "module.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum field_type { F_STR, F_INT, F_NUM, F_BOOL, F_OBJ, F_LABELS, F_MODULES, F_ID };

struct field {
	const char *key;          /* dotted path, e.g. "mqtt.port" */
	enum field_type type;
	bool nullable;
	double min, max;          /* for numbers */
	void *dest;
};

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static int replace_str(char **dst, const char *value)
{
	char *copy = NULL;
	if(value && !(copy = strdup(value)))
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

int dev_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	return n > 0 && n <= 128 && !strpbrk(id, "/+#");
}

static int set_defaults(struct dev_config *c)
{
	memset(c, 0, sizeof *c);
	c->mqtt.port = 1883;
	c->mqtt.keepalive_s = 30;
	c->heartbeat_interval_s = 10;
	c->labels = json_array();
	c->modules = json_object();
	if(replace_str(&c->mqtt.host, "127.0.0.1") || replace_str(&c->topic_root, "/lab") ||
			replace_str(&c->log_level, "info") || replace_str(&c->log_format, "text") ||
			!c->labels || !c->modules)
		return -1;
	return 0;
}

static const char *type_name(enum field_type t)
{
	switch(t) {
	case F_STR: return "a string";
	case F_ID: return "a non-empty string without / + #, at most 128 bytes";
	case F_INT: return "an integer";
	case F_NUM: return "a number";
	case F_BOOL: return "true or false";
	case F_OBJ: return "an object";
	case F_LABELS: return "an array of strings";
	case F_MODULES: return "an object of module settings";
	}
	return "?";
}

static int load_modules(struct dev_config *c, json_t *mods, const char *file, char *err, size_t len)
{
	const char *name;
	json_t *settings;
	json_object_foreach(mods, name, settings) {
		const struct dev_module_ops *ops = dev_module_find(name);
		if(!ops) {
			set_err(err, len, "%s: modules.%s: unknown module (this agent has: %s)", file, name,
					dev_module_names());
			return -1;
		}
		if(json_is_null(settings)) {
			if(json_object_set_new(c->modules, name, json_object()))
				return -1;
			continue;
		}
		if(!json_is_object(settings)) {
			set_err(err, len, "%s: modules.%s: expected an object", file, name);
			return -1;
		}
		char why[200];
		char prefix[96];
		snprintf(prefix, sizeof prefix, "modules.%s", name);
		if(ops->check_settings(settings, true, prefix, why, sizeof why)) {
			set_err(err, len, "%s: %s", file, why);
			return -1;
		}
		if(json_object_set_new(c->modules, name, json_deep_copy(settings)))
			return -1;
	}
	return 0;
}

static int apply(const struct field *f, json_t *v, struct dev_config *c, const char *file,
		char *err, size_t len)
{
	if(json_is_null(v)) {
		if(!f->nullable) {
			set_err(err, len, "%s: %s: must not be null (expected %s)", file, f->key, type_name(f->type));
			return -1;
		}
		if(f->type == F_STR || f->type == F_ID)
			return replace_str(f->dest, NULL);
		return 0;
	}
	switch(f->type) {
	case F_ID:
		if(!json_is_string(v) || !dev_id_valid(json_string_value(v)))
			break;
		return replace_str(f->dest, json_string_value(v));
	case F_STR:
		if(!json_is_string(v))
			break;
		return replace_str(f->dest, json_string_value(v));
	case F_INT:
	case F_NUM: {
		if(!json_is_number(v) || (f->type == F_INT && !json_is_integer(v)))
			break;
		double d = json_number_value(v);
		if(d < f->min || d > f->max) {
			set_err(err, len, "%s: %s: %g is out of range %g..%g", file, f->key, d, f->min, f->max);
			return -1;
		}
		if(f->type == F_INT)
			*(int *)f->dest = (int)d;
		else
			*(double *)f->dest = d;
		return 0;
	}
	case F_BOOL:
		if(!json_is_boolean(v))
			break;
		*(bool *)f->dest = json_is_true(v);
		return 0;
	case F_OBJ:
		if(!json_is_object(v))
			break;
		if(f->dest)
			*(bool *)f->dest = true;
		return 0;
	case F_LABELS: {
		if(!json_is_array(v))
			break;
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item) {
			if(!json_is_string(item)) {
				set_err(err, len, "%s: %s[%zu]: expected a string", file, f->key, i);
				return -1;
			}
		}
		json_t *copy = json_deep_copy(v);
		if(!copy)
			return -1;
		json_decref(c->labels);
		c->labels = copy;
		return 0;
	}
	case F_MODULES:
		if(!json_is_object(v))
			break;
		return load_modules(c, v, file, err, len);
	}
	set_err(err, len, "%s: %s: expected %s", file, f->key, type_name(f->type));
	return -1;
}

/* Checks every key of obj (at dotted prefix) against the table, recursing
 * into the objects the table declares. */
static int walk(const struct field *table, json_t *obj, const char *prefix,
		struct dev_config *c, const char *file, char *err, size_t len)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		char path[256];
		snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
		const struct field *f = table;
		while(f->key && strcmp(f->key, path))
			f++;
		if(!f->key) {
			set_err(err, len, "%s: %s: unknown key", file, path);
			return -1;
		}
		if(apply(f, v, c, file, err, len)) {
			if(!*err)
				set_err(err, len, "%s: %s: out of memory", file, path);
			return -1;
		}
		if(f->type == F_OBJ && json_is_object(v) && walk(table, v, path, c, file, err, len))
			return -1;
	}
	return 0;
}

static int env_overrides(struct dev_config *c, char *err, size_t len)
{
	const struct { const char *name; char **dst; } strs[] = {
		{"OH_MQTT_HOST", &c->mqtt.host},
		{"OH_MQTT_USERNAME", &c->mqtt.username},
		{"OH_MQTT_PASSWORD", &c->mqtt.password},
	};
	for(size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		const char *v = getenv(strs[i].name);
		if(v && replace_str(strs[i].dst, v)) {
			set_err(err, len, "environment: %s: out of memory", strs[i].name);
			return -1;
		}
	}
	const char *port = getenv("OH_MQTT_PORT");
	if(port) {
		char *end;
		errno = 0;
		long p = strtol(port, &end, 10);
		if(errno || *end || end == port || p < 1 || p > 65535) {
			set_err(err, len, "environment: OH_MQTT_PORT: \"%s\" is not a port number", port);
			return -1;
		}
		c->mqtt.port = (int)p;
	}
	return 0;
}

static int read_password_file(struct dev_config *c, const char *path, char *err, size_t len)
{
	FILE *f = fopen(path, "r");
	if(!f) {
		set_err(err, len, "%s: mqtt.password_file: cannot read %s: %s", c->source, path, strerror(errno));
		return -1;
	}
	char buf[512];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return replace_str(&c->mqtt.password, buf);
}

static bool valid_topic_root(const char *root)
{
	/* A plain prefix: no wildcards and no trailing slash, as in the host. */
	return root[0] && !strpbrk(root, "+#") && root[strlen(root) - 1] != '/';
}

int dev_config_load(struct dev_config *c, const char *path, bool need_device_id,
		char *err, size_t len)
{
	char *password_file = NULL;
	json_t *root = NULL;
	*err = '\0';
	if(set_defaults(c)) {
		set_err(err, len, "out of memory");
		return -1;
	}
	const struct field table[] = {
		{"device_id", F_ID, false, 0, 0, &c->device_id},
		{"labels", F_LABELS, false, 0, 0, NULL},
		{"mqtt", F_OBJ, false, 0, 0, NULL},
		{"mqtt.host", F_STR, false, 0, 0, &c->mqtt.host},
		{"mqtt.port", F_INT, false, 1, 65535, &c->mqtt.port},
		{"mqtt.username", F_STR, true, 0, 0, &c->mqtt.username},
		{"mqtt.password", F_STR, true, 0, 0, &c->mqtt.password},
		{"mqtt.password_file", F_STR, true, 0, 0, &password_file},
		{"mqtt.client_id", F_STR, true, 0, 0, &c->mqtt.client_id},
		{"mqtt.keepalive_s", F_INT, false, 5, 3600, &c->mqtt.keepalive_s},
		{"mqtt.tls", F_OBJ, true, 0, 0, &c->mqtt.tls.enabled},
		{"mqtt.tls.ca_file", F_STR, true, 0, 0, &c->mqtt.tls.ca_file},
		{"mqtt.tls.cert_file", F_STR, true, 0, 0, &c->mqtt.tls.cert_file},
		{"mqtt.tls.key_file", F_STR, true, 0, 0, &c->mqtt.tls.key_file},
		{"mqtt.tls.tls_version", F_STR, true, 0, 0, &c->mqtt.tls.tls_version},
		{"mqtt.tls.insecure_skip_verify", F_BOOL, false, 0, 0, &c->mqtt.tls.insecure_skip_verify},
		{"topic_root", F_STR, false, 0, 0, &c->topic_root},
		{"heartbeat_interval_s", F_NUM, false, 0.1, 86400, &c->heartbeat_interval_s},
		{"modules", F_MODULES, false, 0, 0, NULL},
		{"log_level", F_STR, false, 0, 0, &c->log_level},
		{"log_format", F_STR, false, 0, 0, &c->log_format},
		{NULL, 0, false, 0, 0, NULL},
	};
	if(replace_str(&c->source, path ? path : "(defaults)")) {
		set_err(err, len, "out of memory");
		goto fail;
	}
	if(path) {
		json_error_t jerr;
		root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
		if(!root) {
			if(jerr.line <= 0)
				set_err(err, len, "%s: %s", path, jerr.text);
			else
				set_err(err, len, "%s: line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
			goto fail;
		}
		if(!json_is_object(root)) {
			set_err(err, len, "%s: the top level must be an object", path);
			goto fail;
		}
		if(walk(table, root, "", c, path, err, len))
			goto fail;
	}
	if(password_file && read_password_file(c, password_file, err, len))
		goto fail;
	if(env_overrides(c, err, len))
		goto fail;
	if(need_device_id && !c->device_id) {
		set_err(err, len, "%s: device_id: missing (required unless --simulate)", c->source);
		goto fail;
	}
	if(!valid_topic_root(c->topic_root)) {
		set_err(err, len, "%s: topic_root: \"%s\" must be non-empty, without + or # and without a trailing /",
				c->source, c->topic_root);
		goto fail;
	}
	if(strcmp(c->log_format, "text") && strcmp(c->log_format, "json")) {
		set_err(err, len, "%s: log_format: expected \"text\" or \"json\"", c->source);
		goto fail;
	}
	if(strcmp(c->log_level, "debug") && strcmp(c->log_level, "info") &&
			strcmp(c->log_level, "warn") && strcmp(c->log_level, "error")) {
		set_err(err, len, "%s: log_level: expected debug, info, warn or error", c->source);
		goto fail;
	}
	json_decref(root);
	free(password_file);
	return 0;

fail:
	if(!*err)
		set_err(err, len, "%s: out of memory", c->source ? c->source : "config");
	json_decref(root);
	free(password_file);
	return -1;
}

void dev_config_free(struct dev_config *c)
{
	free(c->source);
	free(c->device_id);
	json_decref(c->labels);
	free(c->mqtt.host);
	free(c->mqtt.username);
	free(c->mqtt.password);
	free(c->mqtt.client_id);
	free(c->mqtt.tls.ca_file);
	free(c->mqtt.tls.cert_file);
	free(c->mqtt.tls.key_file);
	free(c->mqtt.tls.tls_version);
	free(c->topic_root);
	json_decref(c->modules);
	free(c->log_level);
	free(c->log_format);
	memset(c, 0, sizeof *c);
}
