/*
 * The schema walker and the settings host and agent have in common.  Types,
 * ranges, null and the error texts are the one validator's
 * (include/oh/validate.h); what the walker adds is storing each value and
 * the file name in front of every message.
 */
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oh/validate.h"

#include "log.h"
#include "mqtt_link.h"

void conf_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

int conf_set_str(char **dst, const char *value)
{
	char *copy = NULL;
	if(value && !(copy = strdup(value)))
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

json_t *conf_load_json(const char *path, char *err, size_t len)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if(!root) {
		if(jerr.line <= 0)
			conf_err(err, len, "%s: %s", path, jerr.text);
		else
			conf_err(err, len, "%s: line %d, column %d: %s", path, jerr.line, jerr.column,
					jerr.text);
		return NULL;
	}
	if(!json_is_object(root)) {
		conf_err(err, len, "%s: the top level must be an object", path);
		json_decref(root);
		return NULL;
	}
	return root;
}

/* The validator's field for a key of a built-in type: the types, ranges
 * and texts are include/oh/validate.h's, as for every other JSON input. */
static struct oh_vfield vfield(const struct conf_field *f)
{
	struct oh_vfield vf = {.name = f->key};
	switch(f->type) {
	case CONF_STR:
		vf.type = OH_VT_STRING;
		break;
	case CONF_INT:
	case CONF_LONG:
	case CONF_NUM:
		vf.type = f->type == CONF_NUM ? OH_VT_NUMBER : OH_VT_INT;
		vf.flags = OH_VF_MIN | OH_VF_MAX;
		vf.min = f->min;
		vf.max = f->max;
		break;
	case CONF_BOOL:
		vf.type = OH_VT_BOOL;
		break;
	case CONF_OBJ:
		vf.type = OH_VT_OBJECT;
		break;
	case CONF_CUSTOM:
		vf.type = OH_VT_ANY;
		break;
	}
	return vf;
}

/* Checks and stores one value (path names it); 1 means "wrong type" (from
 * custom(): the walker then says "expected {expect}"). */
static int apply(const struct conf_field *f, const json_t *v, const char *path, void *ctx, const char *file,
		char *err, size_t len)
{
	/* null is absence (include/oh/validate.h): the default stays.  A
	 * nullable key takes it as a value, "none". */
	if(json_is_null(v))
		return f->nullable && f->type == CONF_STR ? conf_set_str(f->dest, NULL) : 0;
	if(f->type == CONF_CUSTOM)
		return f->custom(f, v, ctx, file, err, len);
	struct oh_vfield vf = vfield(f);
	char why[256];
	if(oh_json_validate_value(v, &vf, path, NULL, why, sizeof why)) {
		conf_err(err, len, "%s: %s", file, why);
		return -1;
	}
	switch(f->type) {
	case CONF_STR:
		return conf_set_str(f->dest, json_string_value(v));
	case CONF_INT:
		*(int *)f->dest = (int)json_number_value(v);
		return 0;
	case CONF_LONG:
		*(long *)f->dest = (long)json_number_value(v);
		return 0;
	case CONF_NUM:
		*(double *)f->dest = json_number_value(v);
		return 0;
	case CONF_BOOL:
		*(bool *)f->dest = json_is_true(v);
		return 0;
	case CONF_OBJ:
		if(f->dest)
			*(bool *)f->dest = true;
		return 0;
	case CONF_CUSTOM:
		break;
	}
	return 1;
}

static int walk(const struct conf_field *table, const json_t *obj, const char *prefix, void *ctx,
		const char *file, char *err, size_t len)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		char path[256];
		snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
		/* A dotted key is no key of ours: {"http.cors_origins": [...]}
		 * would otherwise be found as http.cors_origins, and given beside
		 * {"http": {"cors_origins": [...]}} be stored twice, which the
		 * custom loaders (one array each) do not expect. */
		const struct conf_field *f = strchr(key, '.') ? NULL : table;
		while(f && f->key && strcmp(f->key, path))
			f++;
		if(!f || !f->key) {
			conf_err(err, len, "%s: %s: unknown key", file, path);
			return -1;
		}
		*err = '\0';
		int rc = apply(f, v, path, ctx, file, err, len);
		if(rc == 1)
			conf_err(err, len, "%s: %s: expected %s", file, path,
					f->expect ? f->expect : "a valid value");
		else if(rc && !*err)
			conf_err(err, len, "%s: %s: out of memory", file, path);
		if(rc)
			return -1;
		if(f->type == CONF_OBJ && json_is_object(v) && walk(table, v, path, ctx, file, err, len))
			return -1;
	}
	return 0;
}

int conf_walk(const struct conf_field *table, const json_t *obj, void *ctx, const char *file, char *err,
		size_t len)
{
	return walk(table, obj, "", ctx, file, err, len);
}

int conf_walk_at(const struct conf_field *table, const json_t *obj, const char *prefix, void *ctx,
		const char *file, char *err, size_t len)
{
	return walk(table, obj, prefix, ctx, file, err, len);
}

char *conf_read_file(const char *path, size_t max, const char *source, const char *key, char *err, size_t len)
{
	FILE *f = fopen(path, "r");
	if(!f) {
		conf_err(err, len, "%s: %s: cannot read %s: %s", source, key, path, strerror(errno));
		return NULL;
	}
	size_t n = 0;
	char *buf = malloc(max + 1);
	if(buf)
		n = fread(buf, 1, max + 1, f);
	int bad = ferror(f);
	fclose(f);
	if(!buf || bad || n == 0 || n > max) {
		conf_err(err, len, "%s: %s: cannot read %s: %s", source, key, path,
				!buf                  ? "out of memory"
						: bad ? "read error"
						: n   ? "file too large"
						      : "empty file");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

int conf_env_str(const char *name, char **dst, char *err, size_t len)
{
	const char *v = getenv(name);
	if(v && conf_set_str(dst, v)) {
		conf_err(err, len, "environment: %s: out of memory", name);
		return -1;
	}
	return 0;
}

int conf_env_port(const char *name, int *dst, char *err, size_t len)
{
	const char *v = getenv(name);
	if(!v)
		return 0;
	char *end;
	errno = 0;
	long p = strtol(v, &end, 10);
	if(errno || *end || end == v || p < 0 || p > 65535) {
		conf_err(err, len, "environment: %s: \"%s\" is not a port number", name, v);
		return -1;
	}
	*dst = (int)p;
	return 0;
}

int conf_check_common(const char *source, const char *topic_root, const char *log_level,
		const char *log_format, char *err, size_t len)
{
	/* A plain prefix: no wildcards, no trailing slash, and not empty so the
	 * device topics keep their leading level. */
	size_t n = strlen(topic_root);
	if(!n || strpbrk(topic_root, "+#") || topic_root[n - 1] == '/') {
		conf_err(err, len,
				"%s: topic_root: \"%s\" must be non-empty, without + or # and without "
				"a trailing /",
				source, topic_root);
		return -1;
	}
	if(strcmp(log_format, "text") && strcmp(log_format, "json")) {
		conf_err(err, len, "%s: log_format: expected \"text\" or \"json\"", source);
		return -1;
	}
	enum log_level lvl;
	if(log_level_parse(log_level, &lvl)) {
		conf_err(err, len, "%s: log_level: expected debug, info, warn or error", source);
		return -1;
	}
	return 0;
}

/* ---- the broker connection ---------------------------------------------------- */

int conf_mqtt_init(struct conf_mqtt *m, const char *client_id_base)
{
	memset(m, 0, sizeof *m);
	m->port = 1883;
	m->keepalive_s = 30;
	if(conf_set_str(&m->host, "127.0.0.1"))
		return -1;
	if(!client_id_base)
		return 0;
	/* The broker lets one session hold a client id: a fixed default would
	 * make the hosts of two machines on one broker throw each other out
	 * forever.  The machine's name keeps the default unique and stable. */
	char name[256];
	if(gethostname(name, sizeof name))
		snprintf(name, sizeof name, "unknown");
	name[sizeof name - 1] = '\0';
	size_t n = strlen(client_id_base) + 1 + strlen(name) + 1;
	if(!(m->client_id = malloc(n)))
		return -1;
	snprintf(m->client_id, n, "%s-%s", client_id_base, name);
	return 0;
}

/* mqtt.hosts: 1-16 strings "host:port" ("[v6]:port" for an IPv6 address),
 * each checked here so that a typo is a config error, not a broker that
 * never answers. */
static int custom_hosts(const struct conf_field *f, const json_t *v, void *ctx, const char *file, char *err,
		size_t len)
{
	struct conf_mqtt *m = f->dest;
	size_t n = json_is_array(v) ? json_array_size(v) : 0;
	if(n < 1 || n > 16)
		return 1;
	if(!(m->hosts = calloc(n, sizeof *m->hosts)))
		return -1;
	for(size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(v, i));
		const char *colon = s ? strrchr(s, ':') : NULL;
		char *end = NULL;
		long port = colon ? strtol(colon + 1, &end, 10) : 0;
		bool v6 = s && s[0] == '[';
		if(!colon || colon == s || !colon[1] || *end || port < 1 || port > 65535 ||
				(v6 && colon[-1] != ']') || (!v6 && memchr(s, ':', (size_t)(colon - s)))) {
			conf_err(err, len, "%s: %s[%zu]: expected \"host:port\" (port 1-65535)", file, f->key,
					i);
			return -1;
		}
		if(!(m->hosts[m->n_hosts++] = strdup(s)))
			return -1;
	}
	return 0;
}

void conf_mqtt_fields(struct conf_mqtt *m, struct conf_field *t, size_t *n)
{
	const struct conf_field fields[CONF_MQTT_NFIELDS] = {
			{"mqtt", CONF_OBJ, false, 0, 0, NULL, NULL, NULL},
			{"mqtt.host", CONF_STR, false, 0, 0, &m->host, NULL, NULL},
			{"mqtt.port", CONF_INT, false, 1, 65535, &m->port, NULL, NULL},
			{"mqtt.hosts", CONF_CUSTOM, false, 0, 0, m, custom_hosts,
					"an array of 1-16 \"host:port\" strings"},
			{"mqtt.username", CONF_STR, true, 0, 0, &m->username, NULL, NULL},
			{"mqtt.password", CONF_STR, true, 0, 0, &m->password, NULL, NULL},
			{"mqtt.password_file", CONF_STR, true, 0, 0, &m->password_file, NULL, NULL},
			{"mqtt.client_id", CONF_STR, true, 0, 0, &m->client_id, NULL, NULL},
			{"mqtt.keepalive_s", CONF_INT, false, 5, 3600, &m->keepalive_s, NULL, NULL},
			/* Present as an object switches TLS on. */
			{"mqtt.tls", CONF_OBJ, true, 0, 0, &m->tls.enabled, NULL, NULL},
			{"mqtt.tls.ca_file", CONF_STR, true, 0, 0, &m->tls.ca_file, NULL, NULL},
			{"mqtt.tls.cert_file", CONF_STR, true, 0, 0, &m->tls.cert_file, NULL, NULL},
			{"mqtt.tls.key_file", CONF_STR, true, 0, 0, &m->tls.key_file, NULL, NULL},
			{"mqtt.tls.tls_version", CONF_STR, true, 0, 0, &m->tls.tls_version, NULL, NULL},
			{"mqtt.tls.insecure_skip_verify", CONF_BOOL, false, 0, 0,
					&m->tls.insecure_skip_verify, NULL, NULL},
			{NULL, 0, false, 0, 0, NULL, NULL, NULL},
	};
	for(size_t i = 0; fields[i].key; i++)
		t[(*n)++] = fields[i];
}

int conf_mqtt_finish(struct conf_mqtt *m, const char *source, char *err, size_t len)
{
	if(m->password_file) {
		char *text = conf_read_file(m->password_file, 4096, source, "mqtt.password_file", err, len);
		if(!text)
			return -1;
		text[strcspn(text, "\r\n")] = '\0';
		free(m->password);
		m->password = text;
	}
	if(conf_env_str("OH_MQTT_HOST", &m->host, err, len) ||
			conf_env_str("OH_MQTT_USERNAME", &m->username, err, len) ||
			conf_env_str("OH_MQTT_PASSWORD", &m->password, err, len) ||
			conf_env_port("OH_MQTT_PORT", &m->port, err, len))
		return -1;
	if(m->port == 0) {
		conf_err(err, len, "environment: OH_MQTT_PORT: 0 is not a broker port");
		return -1;
	}
	return 0;
}

void conf_mqtt_free(struct conf_mqtt *m)
{
	free(m->host);
	free(m->username);
	free(m->password);
	free(m->client_id);
	free(m->tls.ca_file);
	free(m->tls.cert_file);
	free(m->tls.key_file);
	free(m->tls.tls_version);
	free(m->password_file);
	for(size_t i = 0; i < m->n_hosts; i++)
		free(m->hosts[i]);
	free(m->hosts);
	memset(m, 0, sizeof *m);
}

void conf_mqtt_link_opts(const struct conf_mqtt *m, struct mqtt_link_opts *o, struct mqtt_tls_opts *tls)
{
	*tls = (struct mqtt_tls_opts){
			.ca_file = m->tls.ca_file,
			.cert_file = m->tls.cert_file,
			.key_file = m->tls.key_file,
			.tls_version = m->tls.tls_version,
			.insecure_skip_verify = m->tls.insecure_skip_verify,
	};
	*o = (struct mqtt_link_opts){
			.host = m->host,
			.port = m->port,
			.username = m->username,
			.password = m->password,
			.client_id = m->client_id,
			.keepalive_s = m->keepalive_s,
			.tls = m->tls.enabled ? tls : NULL,
			.hosts = (const char *const *)m->hosts,
			.n_hosts = m->n_hosts,
	};
}
