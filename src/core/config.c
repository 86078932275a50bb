/*
 * Configuration loading.
 *
 * The schema is one table: every accepted key with its type, range and
 * destination.  Walking the file against the table gives, for free, an error
 * naming any unknown key and any key of the wrong type, which is what a
 * technician editing the file at 3 a.m. needs.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oh/validate.h"

#include "auth.h"
#include "http_guard.h"
#include "store.h"

/*
 * The limits, one row each: the defaults suit a lab of 100,000 devices
 * (documented in README.md, "Limits").  The config schema, oh_limit() and
 * the labels of oh_limit_refusals_total all come from this table.
 */
static const struct {
	const char *name;
	size_t offset; /* in struct config_limits */
	long def, max; /* the minimum is 1 */
} limits[] = {
		{"max_devices", offsetof(struct config_limits, max_devices), 200000, 10000000},
		{"max_device_bytes", offsetof(struct config_limits, max_device_bytes), 131072, 64 << 20},
		{"max_pending", offsetof(struct config_limits, max_pending), 100000, 10000000},
		{"max_pending_per_device", offsetof(struct config_limits, max_pending_per_device), 1000,
				10000000},
		{"max_leases", offsetof(struct config_limits, max_leases), 200000, 10000000},
		{"max_jobs", offsetof(struct config_limits, max_jobs), 200000, 10000000},
		{"max_jobs_per_actor", offsetof(struct config_limits, max_jobs_per_actor), 10000, 10000000},
		{"max_sse_clients", offsetof(struct config_limits, max_sse_clients), 256, 100000},
		{"max_sse_backlog_bytes", offsetof(struct config_limits, max_sse_backlog_bytes), 1 << 20,
				64 << 20},
		{"max_http_connections", offsetof(struct config_limits, max_http_connections), 1000, 100000},
		{"max_http_connections_per_client",
				offsetof(struct config_limits, max_http_connections_per_client), 256, 100000},
		/* MQTT carries at most 256 MiB in a packet. */
		{"max_snapshot_bytes", offsetof(struct config_limits, max_snapshot_bytes), 64 << 20, 255 << 20},
};
#define N_LIMITS (sizeof limits / sizeof limits[0])

static long *limit_slot(struct config_limits *l, size_t i)
{
	return (long *)((char *)l + limits[i].offset);
}

long config_limit(const struct config *c, const char *name)
{
	for(size_t i = 0; name && i < N_LIMITS; i++) {
		if(!strcmp(limits[i].name, name))
			return *limit_slot((struct config_limits *)&c->limits, i);
	}
	return -1;
}

const char *config_limit_name(size_t i)
{
	return i < N_LIMITS ? limits[i].name : NULL;
}

/* limits.*: whole numbers from 1 to the row's maximum, said in full (the
 * generic range message would print 1e+07). */
static int custom_limit(const struct conf_field *f, const json_t *v, void *ctx, const char *file, char *err,
		size_t len)
{
	json_int_t n = json_integer_value(v);
	if(!json_is_integer(v) || n < (json_int_t)f->min || n > (json_int_t)f->max) {
		conf_err(err, len, "%s: %s: expected an integer from %.0f to %.0f", file, f->key, f->min,
				f->max);
		return -1;
	}
	*(long *)f->dest = (long)n;
	return 0;
}

static void set_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	conf_mqtt_init(&c->mqtt, "orchestrator-host");
	c->http.bind = strdup("127.0.0.1");
	c->http.port = 8080;
	c->http.max_body_bytes = 65536;
	c->http.request_timeout_s = 30;
	c->topic_root = strdup("/lab");
	c->state_dir = strdup("var");
	c->store.backend = strdup("sqlite");
	c->ha.lease_s = 5;
	c->ha.client_id = strdup("orchestrator-host-leader");
	c->timezone = strdup("UTC");
	c->stale_after_s = 30;
	c->snapshot_interval_ms = 200;
	c->max_payload_bytes = 65536;
	c->misfire_grace_s = 60;
	c->mqtt_protocol = strdup("auto");
	c->command_expiry_s = 60;
	c->mqtt_commands.enabled = true;
	c->audit.enabled = true;
	c->audit.retention_days = 90;
	c->audit.max_rows = 1000000;
	c->log_level = strdup("info");
	c->log_format = strdup("text");
	for(size_t i = 0; i < N_LIMITS; i++)
		*limit_slot(&c->limits, i) = limits[i].def;
}

/* A module name: it becomes topic levels and the host's paths. */
static const char *module_check(const json_t *v, void *ud, char *buf, size_t len)
{
	const char *m = json_string_value(v);
	if(strspn(m, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(m) || strlen(m) > 32) {
		snprintf(buf, len, "\"%.64s\" must be 1-32 of [a-z0-9_-]", m);
		return buf;
	}
	/* The host's own /api/{name} and /ui/{name} paths. */
	static const char *const reserved[] = {"plugins", "registry", "devices", "events", "healthz",
			"metrics", "static", "docs", "activity", "audit", NULL};
	for(const char *const *r = reserved; *r; r++) {
		if(!strcmp(m, *r)) {
			snprintf(buf, len, "\"%s\" is reserved by the host", m);
			return buf;
		}
	}
	return NULL;
}

static const struct oh_vfield plugin_fields[] = {
		OH_VFIELD("module", OH_VT_STRING, OH_VF_REQUIRED | OH_VF_MIN, .min = 1, .check = module_check),
		OH_VFIELD("path", OH_VT_STRING, 0),
		OH_VFIELD("settings", OH_VT_OBJECT, 0),
		OH_VFIELD_END,
};
static const struct oh_vobject plugin_spec = OH_VOBJECT(plugin_fields, OH_V_REFUSE);

static int load_plugins(struct config *c, const json_t *arr, const char *file, char *err, size_t len)
{
	size_t n = json_array_size(arr);
	c->plugins = calloc(n ? n : 1, sizeof *c->plugins);
	if(!c->plugins)
		return -1;
	for(size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(arr, i);
		char at[64], why[256];
		snprintf(at, sizeof at, "plugins[%zu]", i);
		if(oh_json_validate(p, &plugin_spec, at, NULL, why, sizeof why)) {
			conf_err(err, len, "%s: %s", file, why);
			return -1;
		}
		const char *m = json_string_value(json_object_get(p, "module"));
		const json_t *path = json_object_get(p, "path");
		const json_t *settings = json_object_get(p, "settings");
		for(size_t j = 0; j < c->n_plugins; j++) {
			if(!strcmp(c->plugins[j].module, m)) {
				conf_err(err, len, "%s: plugins[%zu].module: \"%s\" is listed twice", file, i,
						m);
				return -1;
			}
		}
		struct plugin_conf *pc = &c->plugins[c->n_plugins++];
		pc->module = strdup(m);
		if(json_is_string(path)) {
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
			conf_err(err, len,
					"%s: http.cors_origins[%zu]: expected an origin like "
					"\"https://ui.example.org\" (scheme://host[:port], no path)",
					file, i);
			return -1;
		}
		c->http.cors_origins[c->http.n_cors_origins] = strdup(o);
		if(!c->http.cors_origins[c->http.n_cors_origins])
			return -1;
		c->http.n_cors_origins++;
	}
	return 0;
}

/* http.allowed_hosts: the names (or addresses) clients use to reach the
 * host, beyond loopback and the bind address; checked by http_guard.c. */
static int load_allowed_hosts(struct config *c, const json_t *arr, const char *file, char *err, size_t len)
{
	size_t n = json_array_size(arr);
	c->http.allowed_hosts = calloc(n ? n : 1, sizeof *c->http.allowed_hosts);
	if(!c->http.allowed_hosts)
		return -1;
	for(size_t i = 0; i < n; i++) {
		const char *h = json_string_value(json_array_get(arr, i));
		if(!http_host_pattern_valid(h)) {
			conf_err(err, len,
					"%s: http.allowed_hosts[%zu]: expected a host name or address "
					"like \"lab-pc.example.org\", \".example.org\" (and its subdomains) or "
					"\"*\" (no scheme, port or path)",
					file, i);
			return -1;
		}
		if(!(c->http.allowed_hosts[c->http.n_allowed_hosts] = strdup(h)))
			return -1;
		c->http.n_allowed_hosts++;
	}
	return 0;
}

static int custom_allowed_hosts(const struct conf_field *f, const json_t *v, void *ctx, const char *file,
		char *err, size_t len)
{
	return json_is_array(v) ? load_allowed_hosts(ctx, v, file, err, len) : 1;
}

static int custom_plugins(const struct conf_field *f, const json_t *v, void *ctx, const char *file, char *err,
		size_t len)
{
	return json_is_array(v) ? load_plugins(ctx, v, file, err, len) : 1;
}

static int custom_tokens(const struct conf_field *f, const json_t *v, void *ctx, const char *file, char *err,
		size_t len)
{
	struct config *c = ctx;
	if(!json_is_array(v))
		return 1;
	char where[300];
	snprintf(where, sizeof where, "%s: %s", file, f->key);
	return auth_tokens_parse(v, where, &c->http.tokens, &c->http.n_tokens, err, len) ? -1 : 0;
}

static int custom_origins(const struct conf_field *f, const json_t *v, void *ctx, const char *file, char *err,
		size_t len)
{
	return json_is_array(v) ? load_origins(ctx, v, file, err, len) : 1;
}

/* mqtt_commands.admin_actors: names as a command envelope's `actor` may be
 * (1-120 characters, the rule oh_command_parse applies), each listed once.
 * An empty array is kept: no actor may run an admin action over MQTT. */
static int custom_admin_actors(const struct conf_field *f, const json_t *v, void *ctx, const char *file,
		char *err, size_t len)
{
	struct config *c = ctx;
	if(!json_is_array(v))
		return 1;
	size_t n = json_array_size(v);
	c->mqtt_commands.admin_actors = calloc(n ? n : 1, sizeof *c->mqtt_commands.admin_actors);
	if(!c->mqtt_commands.admin_actors)
		return -1;
	for(size_t i = 0; i < n; i++) {
		const json_t *item = json_array_get(v, i);
		if(!json_is_string(item) || json_string_length(item) < 1 || json_string_length(item) > 120) {
			conf_err(err, len, "%s: %s[%zu]: expected an actor name (a string of 1-120 characters)",
					file, f->key, i);
			return -1;
		}
		const char *name = json_string_value(item);
		for(size_t j = 0; j < c->mqtt_commands.n_admin_actors; j++) {
			if(!strcmp(c->mqtt_commands.admin_actors[j], name)) {
				conf_err(err, len, "%s: %s[%zu]: \"%s\" is listed twice", file, f->key, i,
						name);
				return -1;
			}
		}
		c->mqtt_commands.admin_actors[c->mqtt_commands.n_admin_actors] = strdup(name);
		if(!c->mqtt_commands.admin_actors[c->mqtt_commands.n_admin_actors])
			return -1;
		c->mqtt_commands.n_admin_actors++;
	}
	return 0;
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
			conf_err(err, len,
					"%s: http.tls.%s: required when http.tls is present (both cert_file "
					"and key_file, PEM)",
					c->source, c->http.tls.cert_file ? "key_file" : "cert_file");
			return -1;
		}
		c->http.tls.cert_pem = conf_read_file(
				c->http.tls.cert_file, 1 << 20, c->source, "http.tls.cert_file", err, len);
		if(!c->http.tls.cert_pem)
			return -1;
		c->http.tls.key_pem = conf_read_file(
				c->http.tls.key_file, 1 << 20, c->source, "http.tls.key_file", err, len);
		if(!c->http.tls.key_pem)
			return -1;
	}
	if(!c->http.n_tokens && !c->http.allow_unauthenticated && !auth_addr_is_loopback(c->http.bind)) {
		conf_err(err, len,
				"%s: http.bind: \"%s\" is not a loopback address and no http.tokens are "
				"configured; add tokens, or set http.allow_unauthenticated: true to serve without "
				"authentication",
				c->source, c->http.bind);
		return -1;
	}
	return 0;
}

/* store and ha: a known backend; a conninfo for PostgreSQL that libpq can
 * read and that holds no password (PGPASSWORD, PGPASSFILE and the rest are
 * how PostgreSQL tools take secrets); a node name. */
static int check_store(struct config *c, char *err, size_t len)
{
	bool pg = !strcmp(c->store.backend, "postgresql");
	if(!pg && strcmp(c->store.backend, "sqlite")) {
		conf_err(err, len, "%s: store.backend: expected \"sqlite\" or \"postgresql\", got \"%s\"",
				c->source, c->store.backend);
		return -1;
	}
	if(pg != (c->store.conninfo != NULL)) {
		conf_err(err, len, "%s: store.conninfo: %s", c->source,
				pg ? "required with store.backend \"postgresql\" (libpq's \"host=... dbname=...\")"
				   : "only for store.backend \"postgresql\"");
		return -1;
	}
	if(pg && store_pg_check_conninfo(c->store.conninfo, c->source, err, len))
		return -1;
	if(!c->ha.node_id) {
		char name[256] = "";
		gethostname(name, sizeof name - 1);
		c->ha.node_id = strdup(*name ? name : "orchestrator-host");
	}
	if(!*c->ha.node_id || strlen(c->ha.node_id) > 120) {
		conf_err(err, len, "%s: ha.node_id: expected 1-120 characters", c->source);
		return -1;
	}
	if(!*c->ha.client_id) {
		conf_err(err, len, "%s: ha.client_id: expected an MQTT client id", c->source);
		return -1;
	}
	return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t len)
{
	set_defaults(c);
	char *tokens_file = NULL;
	struct conf_field table[96] = {{0}};
	char limit_keys[N_LIMITS][48];
	size_t n = 0;
	conf_mqtt_fields(&c->mqtt, table, &n);
	const struct conf_field own[] = {
			{"http", CONF_OBJ, false, 0, 0, NULL, NULL, NULL},
			{"http.bind", CONF_STR, false, 0, 0, &c->http.bind, NULL, NULL},
			{"http.port", CONF_INT, false, 0, 65535, &c->http.port, NULL, NULL},
			{"http.max_body_bytes", CONF_LONG, false, 64, 64 << 20, &c->http.max_body_bytes, NULL,
					NULL},
			{"http.tokens", CONF_CUSTOM, false, 0, 0, NULL, custom_tokens,
					"an array of {\"name\", \"role\", \"sha256\"} objects"},
			{"http.tokens_file", CONF_STR, true, 0, 0, &tokens_file, NULL, NULL},
			{"http.allow_unauthenticated", CONF_BOOL, false, 0, 0, &c->http.allow_unauthenticated,
					NULL, NULL},
			{"http.cors_origins", CONF_CUSTOM, false, 0, 0, NULL, custom_origins,
					"an array of origins like \"https://ui.example.org\""},
			{"http.allowed_hosts", CONF_CUSTOM, false, 0, 0, NULL, custom_allowed_hosts,
					"an array of host names like \"lab-pc.example.org\""},
			{"http.request_timeout_s", CONF_INT, false, 1, 3600, &c->http.request_timeout_s, NULL,
					NULL},
			{"http.tls", CONF_OBJ, true, 0, 0, &c->http.tls.enabled, NULL, NULL},
			{"http.tls.cert_file", CONF_STR, false, 0, 0, &c->http.tls.cert_file, NULL, NULL},
			{"http.tls.key_file", CONF_STR, false, 0, 0, &c->http.tls.key_file, NULL, NULL},
			{"topic_root", CONF_STR, false, 0, 0, &c->topic_root, NULL, NULL},
			{"state_dir", CONF_STR, false, 0, 0, &c->state_dir, NULL, NULL},
			{"store", CONF_OBJ, false, 0, 0, NULL, NULL, NULL},
			{"store.backend", CONF_STR, false, 0, 0, &c->store.backend, NULL, NULL},
			{"store.conninfo", CONF_STR, false, 0, 0, &c->store.conninfo, NULL, NULL},
			{"ha", CONF_OBJ, false, 0, 0, NULL, NULL, NULL},
			{"ha.node_id", CONF_STR, false, 0, 0, &c->ha.node_id, NULL, NULL},
			{"ha.advertise_url", CONF_STR, true, 0, 0, &c->ha.advertise_url, NULL, NULL},
			{"ha.lease_s", CONF_NUM, false, 1, 300, &c->ha.lease_s, NULL, NULL},
			{"ha.client_id", CONF_STR, false, 0, 0, &c->ha.client_id, NULL, NULL},
			{"timezone", CONF_STR, false, 0, 0, &c->timezone, NULL, NULL},
			{"stale_after_s", CONF_NUM, false, 0.1, 86400, &c->stale_after_s, NULL, NULL},
			{"forget_after_days", CONF_NUM, false, 0, 36500, &c->forget_after_days, NULL, NULL},
			{"snapshot_interval_ms", CONF_INT, false, 0, 60000, &c->snapshot_interval_ms, NULL,
					NULL},
			{"max_payload_bytes", CONF_LONG, false, 64, 256 << 20, &c->max_payload_bytes, NULL,
					NULL},
			{"misfire_grace_s", CONF_NUM, false, 0, 86400 * 7, &c->misfire_grace_s, NULL, NULL},
			{"mqtt.protocol", CONF_STR, false, 0, 0, &c->mqtt_protocol, NULL, NULL},
			{"command_expiry_s", CONF_INT, false, 0, 2147483647, &c->command_expiry_s, NULL, NULL},
			{"mqtt_commands", CONF_OBJ, false, 0, 0, NULL, NULL, NULL},
			{"mqtt_commands.enabled", CONF_BOOL, false, 0, 0, &c->mqtt_commands.enabled, NULL, NULL},
			{"mqtt_commands.admin_actors", CONF_CUSTOM, true, 0, 0, NULL, custom_admin_actors,
					"an array of actor names, or null"},
			{"audit", CONF_OBJ, false, 0, 0, NULL, NULL, NULL},
			{"audit.enabled", CONF_BOOL, false, 0, 0, &c->audit.enabled, NULL, NULL},
			{"audit.retention_days", CONF_NUM, false, 0, 36500, &c->audit.retention_days, NULL,
					NULL},
			{"audit.max_rows", CONF_LONG, false, 0, 1000000000, &c->audit.max_rows, NULL, NULL},
			{"log_level", CONF_STR, false, 0, 0, &c->log_level, NULL, NULL},
			{"log_format", CONF_STR, false, 0, 0, &c->log_format, NULL, NULL},
			{"plugins", CONF_CUSTOM, false, 0, 0, NULL, custom_plugins,
					"an array of plugin objects"},
	};
	for(size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		table[n++] = own[i];
	table[n++] = (struct conf_field){"limits", CONF_OBJ, false, 0, 0, NULL, NULL, NULL};
	for(size_t i = 0; i < N_LIMITS; i++) {
		snprintf(limit_keys[i], sizeof limit_keys[i], "limits.%s", limits[i].name);
		table[n++] = (struct conf_field){limit_keys[i], CONF_CUSTOM, false, 1, (double)limits[i].max,
				limit_slot(&c->limits, i), custom_limit, "an integer"};
	}

	c->source = strdup(path ? path : "(defaults)");
	json_t *root = path ? conf_load_json(path, err, len) : json_object();
	if(!root)
		goto fail;
	int rc = conf_walk(table, root, c, c->source, err, len);
	if(!rc && !json_object_get(root, "plugins")) {
		/* No list given: run the NDI plugin, the reason most labs install us. */
		json_t *def = json_pack("[{s:s, s:s}]", "module", "ndi", "path", "builtin:ndi");
		rc = load_plugins(c, def, c->source, err, len);
		json_decref(def);
	}
	json_decref(root);
	if(rc)
		goto fail;
	if(conf_mqtt_finish(&c->mqtt, c->source, err, len) ||
			conf_env_str("OH_HTTP_BIND", &c->http.bind, err, len) ||
			conf_env_port("OH_HTTP_PORT", &c->http.port, err, len))
		goto fail;
	if(check_http(c, tokens_file, err, len) || check_store(c, err, len))
		goto fail;
	if(conf_check_common(c->source, c->topic_root, c->log_level, c->log_format, err, len))
		goto fail;
	if(!c->mqtt_protocol ||
			(strcmp(c->mqtt_protocol, "auto") && strcmp(c->mqtt_protocol, "5") &&
					strcmp(c->mqtt_protocol, "3.1.1"))) {
		conf_err(err, len, "%s: mqtt.protocol: expected \"auto\", \"5\" or \"3.1.1\"", c->source);
		goto fail;
	}
	free(tokens_file);
	return 0;

fail:
	free(tokens_file);
	return -1;
}

void config_free(struct config *c)
{
	free(c->source);
	conf_mqtt_free(&c->mqtt);
	free(c->http.bind);
	if(c->http.tokens)
		explicit_bzero(c->http.tokens, c->http.n_tokens * sizeof *c->http.tokens);
	free(c->http.tokens);
	for(size_t i = 0; i < c->http.n_cors_origins; i++)
		free(c->http.cors_origins[i]);
	free(c->http.cors_origins);
	for(size_t i = 0; i < c->http.n_allowed_hosts; i++)
		free(c->http.allowed_hosts[i]);
	free(c->http.allowed_hosts);
	free(c->http.tls.cert_file);
	free(c->http.tls.key_file);
	free(c->http.tls.cert_pem);
	if(c->http.tls.key_pem)
		explicit_bzero(c->http.tls.key_pem, strlen(c->http.tls.key_pem));
	free(c->http.tls.key_pem);
	for(size_t i = 0; i < c->mqtt_commands.n_admin_actors; i++)
		free(c->mqtt_commands.admin_actors[i]);
	free(c->mqtt_commands.admin_actors);
	free(c->topic_root);
	free(c->state_dir);
	free(c->store.backend);
	free(c->store.conninfo);
	free(c->ha.node_id);
	free(c->ha.advertise_url);
	free(c->ha.client_id);
	free(c->timezone);
	free(c->mqtt_protocol);
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
