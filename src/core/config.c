/*
 * Configuration loading.
 *
 * The schema is one table: every accepted key with its type, range and
 * destination.  Walking the file against the table gives, for free, an error
 * naming any unknown key and any key of the wrong type, which is what a
 * technician editing the file at 3 a.m. needs.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

enum field_type { F_STR, F_INT, F_NUM, F_BOOL, F_OBJ, F_PLUGINS, F_LONG, F_TOKENS, F_ORIGINS };

struct field {
	const char *key;          /* dotted path, e.g. "mqtt.port" */
	enum field_type type;
	bool nullable;
	double min, max;          /* for numbers */
	void *dest;
};

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static void replace_str(char **dst, const char *value)
{
	free(*dst);
	*dst = value ? strdup(value) : NULL;
}

static void set_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	c->mqtt.host = strdup("127.0.0.1");
	c->mqtt.port = 1883;
	c->mqtt.client_id = strdup("orchestrator-host");
	c->mqtt.keepalive_s = 30;
	c->http.bind = strdup("127.0.0.1");
	c->http.port = 8080;
	c->http.max_body_bytes = 65536;
	c->http.request_timeout_s = 30;
	c->topic_root = strdup("/lab");
	c->state_dir = strdup("var");
	c->timezone = strdup("UTC");
	c->stale_after_s = 30;
	c->snapshot_interval_ms = 200;
	c->max_payload_bytes = 65536;
	c->misfire_grace_s = 60;
	c->log_level = strdup("info");
	c->log_format = strdup("text");
}

static const char *type_name(enum field_type t)
{
	switch(t) {
	case F_STR: return "a string";
	case F_INT: case F_LONG: return "an integer";
	case F_NUM: return "a number";
	case F_BOOL: return "true or false";
	case F_OBJ: return "an object";
	case F_PLUGINS: return "an array of plugin objects";
	case F_TOKENS: return "an array of {\"name\", \"role\", \"sha256\"} objects";
	case F_ORIGINS: return "an array of origins like \"https://ui.example.org\"";
	}
	return "?";
}

static int load_plugins(struct config *c, const json_t *arr, const char *file, char *err, size_t len)
{
	size_t n = json_array_size(arr);
	c->plugins = calloc(n ? n : 1, sizeof *c->plugins);
	if(!c->plugins)
		return -1;
	for(size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(arr, i);
		if(!json_is_object(p)) {
			set_err(err, len, "%s: plugins[%zu]: expected an object", file, i);
			return -1;
		}
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)p, key, v) {
			if(strcmp(key, "module") && strcmp(key, "path") && strcmp(key, "settings")) {
				set_err(err, len, "%s: plugins[%zu].%s: unknown key", file, i, key);
				return -1;
			}
		}
		const json_t *module = json_object_get(p, "module");
		const json_t *path = json_object_get(p, "path");
		const json_t *settings = json_object_get(p, "settings");
		if(!json_is_string(module) || !*json_string_value(module)) {
			set_err(err, len, "%s: plugins[%zu].module: expected a non-empty string", file, i);
			return -1;
		}
		const char *m = json_string_value(module);
		if(strspn(m, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(m) || strlen(m) > 32) {
			set_err(err, len, "%s: plugins[%zu].module: \"%s\" must be 1-32 of [a-z0-9_-]", file, i, m);
			return -1;
		}
		/* The host's own /api/{name} and /ui/{name} paths. */
		static const char *const reserved[] = {"plugins", "registry", "devices", "events",
			"healthz", "metrics", "static", "docs", NULL};
		for(const char *const *r = reserved; *r; r++) {
			if(!strcmp(m, *r)) {
				set_err(err, len, "%s: plugins[%zu].module: \"%s\" is reserved by the host", file, i, m);
				return -1;
			}
		}
		for(size_t j = 0; j < c->n_plugins; j++) {
			if(!strcmp(c->plugins[j].module, m)) {
				set_err(err, len, "%s: plugins[%zu].module: \"%s\" is listed twice", file, i, m);
				return -1;
			}
		}
		if(path && !json_is_string(path)) {
			set_err(err, len, "%s: plugins[%zu].path: expected a string", file, i);
			return -1;
		}
		if(settings && !json_is_object(settings) && !json_is_null(settings)) {
			set_err(err, len, "%s: plugins[%zu].settings: expected an object", file, i);
			return -1;
		}
		struct plugin_conf *pc = &c->plugins[c->n_plugins++];
		pc->module = strdup(m);
		if(path) {
			pc->path = strdup(json_string_value(path));
		} else {
			pc->path = malloc(strlen(m) + 9);
			sprintf(pc->path, "builtin:%s", m);
		}
		pc->settings = json_is_object(settings) ? json_deep_copy(settings) : json_object();
	}
	return 0;
}

/* http.cors_origins: exact origins, as a browser sends them in Origin:
 * scheme://host[:port], no path.  "*" is refused: list the origins. */
static int load_origins(struct config *c, const json_t *arr, const char *file, char *err, size_t len)
{
	size_t n = json_array_size(arr);
	c->http.cors_origins = calloc(n ? n : 1, sizeof *c->http.cors_origins);
	if(!c->http.cors_origins)
		return -1;
	for(size_t i = 0; i < n; i++) {
		const char *o = json_string_value(json_array_get(arr, i));
		const char *host = NULL;
		if(o && !strncmp(o, "https://", 8))
			host = o + 8;
		else if(o && !strncmp(o, "http://", 7))
			host = o + 7;
		if(!host || !*host || strpbrk(host, "/ \t\r\n?#*")) {
			set_err(err, len, "%s: http.cors_origins[%zu]: expected an origin like "
					"\"https://ui.example.org\" (scheme://host[:port], no path)", file, i);
			return -1;
		}
		c->http.cors_origins[c->http.n_cors_origins] = strdup(o);
		if(!c->http.cors_origins[c->http.n_cors_origins])
			return -1;
		c->http.n_cors_origins++;
	}
	return 0;
}

static int apply(const struct field *f, const json_t *v, struct config *c, const char *file,
		char *err, size_t len)
{
	if(json_is_null(v)) {
		if(!f->nullable) {
			set_err(err, len, "%s: %s: must not be null (expected %s)", file, f->key, type_name(f->type));
			return -1;
		}
		if(f->type == F_STR)
			replace_str(f->dest, NULL);
		return 0;
	}
	switch(f->type) {
	case F_STR:
		if(!json_is_string(v))
			break;
		replace_str(f->dest, json_string_value(v));
		return 0;
	case F_INT:
	case F_LONG:
	case F_NUM: {
		if(!json_is_number(v) || (f->type != F_NUM && !json_is_integer(v)))
			break;
		double d = json_number_value(v);
		if(d < f->min || d > f->max) {
			set_err(err, len, "%s: %s: %g is out of range %g..%g", file, f->key, d, f->min, f->max);
			return -1;
		}
		if(f->type == F_INT)
			*(int *)f->dest = (int)d;
		else if(f->type == F_LONG)
			*(long *)f->dest = (long)d;
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
		return 0;
	case F_PLUGINS:
		if(!json_is_array(v))
			break;
		return load_plugins(c, v, file, err, len);
	case F_TOKENS: {
		if(!json_is_array(v))
			break;
		char where[300];
		snprintf(where, sizeof where, "%s: %s", file, f->key);
		return auth_tokens_parse(v, where, &c->http.tokens, &c->http.n_tokens, err, len);
	}
	case F_ORIGINS:
		if(!json_is_array(v))
			break;
		return load_origins(c, v, file, err, len);
	}
	set_err(err, len, "%s: %s: expected %s", file, f->key, type_name(f->type));
	return -1;
}

/* Checks every key of obj (at dotted `prefix`) against the table, recursing
 * into objects the table declares. */
static int walk(const struct field *table, const json_t *obj, const char *prefix,
		struct config *c, const char *file, char *err, size_t len)
{
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		char path[256];
		snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
		const struct field *f = NULL;
		for(const struct field *t = table; t->key; t++) {
			if(!strcmp(t->key, path)) {
				f = t;
				break;
			}
		}
		if(!f) {
			set_err(err, len, "%s: %s: unknown key", file, path);
			return -1;
		}
		if(apply(f, v, c, file, err, len))
			return -1;
		if(f->type == F_OBJ && walk(table, v, path, c, file, err, len))
			return -1;
	}
	return 0;
}

static int env_overrides(struct config *c, char *err, size_t len)
{
	const struct { const char *name; char **dst; } strs[] = {
		{"OH_MQTT_HOST", &c->mqtt.host},
		{"OH_MQTT_USERNAME", &c->mqtt.username},
		{"OH_MQTT_PASSWORD", &c->mqtt.password},
		{"OH_HTTP_BIND", &c->http.bind},
	};
	for(size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		const char *v = getenv(strs[i].name);
		if(v)
			replace_str(strs[i].dst, v);
	}
	const struct { const char *name; int *dst; } ports[] = {
		{"OH_MQTT_PORT", &c->mqtt.port},
		{"OH_HTTP_PORT", &c->http.port},
	};
	for(size_t i = 0; i < 2; i++) {
		const char *v = getenv(ports[i].name);
		if(!v)
			continue;
		char *end;
		errno = 0;
		long p = strtol(v, &end, 10);
		if(errno || *end || end == v || p < 0 || p > 65535) {
			set_err(err, len, "environment: %s: \"%s\" is not a port number", ports[i].name, v);
			return -1;
		}
		*ports[i].dst = (int)p;
	}
	return 0;
}

static int read_password_file(struct config *c, const char *path, char *err, size_t len)
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
	replace_str(&c->mqtt.password, buf);
	return 0;
}

/* A whole small file as a string (returned, free()); NULL with err naming
 * the key on failure. */
static char *read_small_file(const char *source, const char *key, const char *path,
		char *err, size_t len)
{
	FILE *f = fopen(path, "r");
	if(!f) {
		set_err(err, len, "%s: %s: cannot read %s: %s", source, key, path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap + 1);
	if(buf)
		n = fread(buf, 1, cap + 1, f);
	int bad = ferror(f);
	fclose(f);
	if(!buf || bad || n == 0 || n > cap) {
		set_err(err, len, "%s: %s: cannot read %s: %s", source, key, path,
				!buf ? "out of memory" : bad ? "read error" : n ? "larger than 1 MiB" : "empty file");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/*
 * The HTTP security settings that span several keys: the tokens file, the
 * TLS files, and the rule that a host without tokens serves loopback only
 * unless http.allow_unauthenticated says otherwise.
 */
static int check_http(struct config *c, const char *tokens_file, char *err, size_t len)
{
	if(tokens_file) {
		char where[300];
		snprintf(where, sizeof where, "%s: http.tokens_file", c->source);
		if(auth_tokens_load_file(tokens_file, where, &c->http.tokens, &c->http.n_tokens, err, len))
			return -1;
	}
	if(c->http.tls.enabled) {
		if(!c->http.tls.cert_file || !c->http.tls.key_file) {
			set_err(err, len, "%s: http.tls.%s: required when http.tls is present (both cert_file "
					"and key_file, PEM)", c->source, c->http.tls.cert_file ? "key_file" : "cert_file");
			return -1;
		}
		c->http.tls.cert_pem = read_small_file(c->source, "http.tls.cert_file",
				c->http.tls.cert_file, err, len);
		if(!c->http.tls.cert_pem)
			return -1;
		c->http.tls.key_pem = read_small_file(c->source, "http.tls.key_file",
				c->http.tls.key_file, err, len);
		if(!c->http.tls.key_pem)
			return -1;
	}
	if(!c->http.n_tokens && !c->http.allow_unauthenticated && !auth_addr_is_loopback(c->http.bind)) {
		set_err(err, len, "%s: http.bind: \"%s\" is not a loopback address and no http.tokens are "
				"configured; add tokens, or set http.allow_unauthenticated: true to serve without "
				"authentication", c->source, c->http.bind);
		return -1;
	}
	return 0;
}

static bool valid_topic_root(const char *root)
{
	/* A plain prefix: no wildcards, no trailing slash, and not empty so the
	 * device topics keep their leading level. */
	return root[0] && !strpbrk(root, "+#") && root[strlen(root) - 1] != '/';
}

int config_load(struct config *c, const char *path, char *err, size_t len)
{
	set_defaults(c);
	char *password_file = NULL;
	char *tokens_file = NULL;
	const struct field table[] = {
		{"mqtt", F_OBJ, false, 0, 0, NULL},
		{"mqtt.host", F_STR, false, 0, 0, &c->mqtt.host},
		{"mqtt.port", F_INT, false, 1, 65535, &c->mqtt.port},
		{"mqtt.username", F_STR, true, 0, 0, &c->mqtt.username},
		{"mqtt.password", F_STR, true, 0, 0, &c->mqtt.password},
		{"mqtt.password_file", F_STR, true, 0, 0, &password_file},
		{"mqtt.client_id", F_STR, false, 0, 0, &c->mqtt.client_id},
		{"mqtt.keepalive_s", F_INT, false, 5, 3600, &c->mqtt.keepalive_s},
		{"mqtt.tls", F_OBJ, true, 0, 0, &c->mqtt.tls.enabled},
		{"mqtt.tls.ca_file", F_STR, true, 0, 0, &c->mqtt.tls.ca_file},
		{"mqtt.tls.cert_file", F_STR, true, 0, 0, &c->mqtt.tls.cert_file},
		{"mqtt.tls.key_file", F_STR, true, 0, 0, &c->mqtt.tls.key_file},
		{"mqtt.tls.tls_version", F_STR, true, 0, 0, &c->mqtt.tls.tls_version},
		{"mqtt.tls.insecure_skip_verify", F_BOOL, false, 0, 0, &c->mqtt.tls.insecure_skip_verify},
		{"http", F_OBJ, false, 0, 0, NULL},
		{"http.bind", F_STR, false, 0, 0, &c->http.bind},
		{"http.port", F_INT, false, 0, 65535, &c->http.port},
		{"http.max_body_bytes", F_LONG, false, 64, 64 << 20, &c->http.max_body_bytes},
		{"http.tokens", F_TOKENS, false, 0, 0, NULL},
		{"http.tokens_file", F_STR, true, 0, 0, &tokens_file},
		{"http.allow_unauthenticated", F_BOOL, false, 0, 0, &c->http.allow_unauthenticated},
		{"http.cors_origins", F_ORIGINS, false, 0, 0, NULL},
		{"http.request_timeout_s", F_INT, false, 1, 3600, &c->http.request_timeout_s},
		{"http.tls", F_OBJ, true, 0, 0, NULL},
		{"http.tls.cert_file", F_STR, false, 0, 0, &c->http.tls.cert_file},
		{"http.tls.key_file", F_STR, false, 0, 0, &c->http.tls.key_file},
		{"topic_root", F_STR, false, 0, 0, &c->topic_root},
		{"state_dir", F_STR, false, 0, 0, &c->state_dir},
		{"timezone", F_STR, false, 0, 0, &c->timezone},
		{"stale_after_s", F_NUM, false, 0.1, 86400, &c->stale_after_s},
		{"snapshot_interval_ms", F_INT, false, 0, 60000, &c->snapshot_interval_ms},
		{"max_payload_bytes", F_LONG, false, 64, 256 << 20, &c->max_payload_bytes},
		{"misfire_grace_s", F_NUM, false, 0, 86400 * 7, &c->misfire_grace_s},
		{"log_level", F_STR, false, 0, 0, &c->log_level},
		{"log_format", F_STR, false, 0, 0, &c->log_format},
		{"plugins", F_PLUGINS, false, 0, 0, NULL},
		{NULL, 0, false, 0, 0, NULL},
	};
	c->source = strdup(path ? path : "(defaults)");
	if(path) {
		json_error_t jerr;
		json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
		if(!root) {
			if(jerr.line <= 0)
				set_err(err, len, "%s: %s", path, jerr.text);
			else
				set_err(err, len, "%s: line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
			goto fail;
		}
		if(!json_is_object(root)) {
			set_err(err, len, "%s: the top level must be an object", path);
			json_decref(root);
			goto fail;
		}
		/* "mqtt.tls": {} switches TLS on; its presence is the flag. */
		int rc = walk(table, root, "", c, path, err, len);
		const json_t *tls = json_object_get(json_object_get(root, "mqtt"), "tls");
		c->mqtt.tls.enabled = json_is_object(tls);
		c->http.tls.enabled = json_is_object(json_object_get(json_object_get(root, "http"), "tls"));
		if(!rc && !json_object_get(root, "plugins")) {
			/* No list given: run the NDI plugin, the reason most labs install us. */
			json_t *def = json_pack("[{s:s, s:s}]", "module", "ndi", "path", "builtin:ndi");
			rc = load_plugins(c, def, path, err, len);
			json_decref(def);
		}
		json_decref(root);
		if(rc)
			goto fail;
	} else {
		json_t *def = json_pack("[{s:s, s:s}]", "module", "ndi", "path", "builtin:ndi");
		int rc = load_plugins(c, def, "(defaults)", err, len);
		json_decref(def);
		if(rc)
			goto fail;
	}
	if(password_file && read_password_file(c, password_file, err, len))
		goto fail;
	if(env_overrides(c, err, len))
		goto fail;
	if(check_http(c, tokens_file, err, len))
		goto fail;
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
	free(password_file);
	free(tokens_file);
	return 0;

fail:
	free(password_file);
	free(tokens_file);
	return -1;
}

void config_free(struct config *c)
{
	free(c->source);
	free(c->mqtt.host);
	free(c->mqtt.username);
	free(c->mqtt.password);
	free(c->mqtt.client_id);
	free(c->mqtt.tls.ca_file);
	free(c->mqtt.tls.cert_file);
	free(c->mqtt.tls.key_file);
	free(c->mqtt.tls.tls_version);
	free(c->http.bind);
	if(c->http.tokens)
		explicit_bzero(c->http.tokens, c->http.n_tokens * sizeof *c->http.tokens);
	free(c->http.tokens);
	for(size_t i = 0; i < c->http.n_cors_origins; i++)
		free(c->http.cors_origins[i]);
	free(c->http.cors_origins);
	free(c->http.tls.cert_file);
	free(c->http.tls.key_file);
	free(c->http.tls.cert_pem);
	if(c->http.tls.key_pem)
		explicit_bzero(c->http.tls.key_pem, strlen(c->http.tls.key_pem));
	free(c->http.tls.key_pem);
	free(c->topic_root);
	free(c->state_dir);
	free(c->timezone);
	free(c->log_level);
	free(c->log_format);
	for(size_t i = 0; i < c->n_plugins; i++) {
		free(c->plugins[i].module);
		free(c->plugins[i].path);
		json_decref(c->plugins[i].settings);
	}
	free(c->plugins);
	memset(c, 0, sizeof *c);
}
