/*
 * Configuration machinery shared by the host and the device agent.
 *
 * A schema is one table of dotted keys ("mqtt.port") with type, range and
 * destination.  Walking a JSON file against it reports any unknown key and
 * any wrong type by name, which is what someone editing the file needs.  The
 * broker keys ("mqtt.*") and their environment overrides are the same for
 * host and agent, so one snippet configures both; they live here once.
 */
#ifndef OH_CONF_H
#define OH_CONF_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct mqtt_link_opts;
struct mqtt_tls_opts;

enum conf_type {
	CONF_STR,    /* dest: char ** (replaced, NULL when null) */
	CONF_INT,    /* dest: int *, range min..max */
	CONF_LONG,   /* dest: long * */
	CONF_NUM,    /* dest: double * */
	CONF_BOOL,   /* dest: bool * */
	CONF_OBJ,    /* its keys are in the table; dest: bool * set when present, or NULL */
	CONF_CUSTOM, /* custom() checks and stores the value */
};

struct conf_field;

/* Returns 0 when stored, 1 when the value has the wrong type (the walker
 * then reports "expected {expect}"), -1 with err set on any other error. */
typedef int (*conf_custom_fn)(const struct conf_field *f, const json_t *value, void *ctx, const char *file,
		char *err, size_t len);

struct conf_field {
	const char *key;
	enum conf_type type;
	bool nullable; /* null is a value ("none": NULL for CONF_STR); otherwise
			* null is absence and the default stays */
	double min, max;
	void *dest;
	conf_custom_fn custom;
	const char *expect; /* CONF_CUSTOM: what the value must be */
};

void conf_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Replaces *dst with a copy of value (NULL allowed); -1 when out of memory. */
int conf_set_str(char **dst, const char *value);

/* Parses path as a JSON object, refusing duplicate keys; NULL with err
 * naming the file (and line and column for syntax errors).  Returned. */
json_t *conf_load_json(const char *path, char *err, size_t len);

/* Checks every key of obj against table (terminated by a NULL key), storing
 * values and recursing into CONF_OBJ entries.  ctx goes to custom().  A
 * dotted key in the file ("mqtt.port") is unknown: nesting is the only way
 * to reach a field, so each is stored at most once. */
int conf_walk(const struct conf_field *table, const json_t *obj, void *ctx, const char *file, char *err,
		size_t len);
/* The same for an object found at `prefix` ("settings"): its keys are
 * "prefix.key" in the table and in messages. */
int conf_walk_at(const struct conf_field *table, const json_t *obj, const char *prefix, void *ctx,
		const char *file, char *err, size_t len);

/* A whole file of at most max bytes (returned, free()), or NULL with err
 * naming source and key. */
char *conf_read_file(const char *path, size_t max, const char *source, const char *key, char *err, size_t len);

/* Environment overrides: a string, or a port number 0..65535. */
int conf_env_str(const char *name, char **dst, char *err, size_t len);
int conf_env_port(const char *name, int *dst, char *err, size_t len);

/* topic_root, log_level and log_format, checked the same way everywhere. */
int conf_check_common(const char *source, const char *topic_root, const char *log_level,
		const char *log_format, char *err, size_t len);

/* ---- the broker connection ---------------------------------------------------- */

struct conf_mqtt {
	char *host;
	int port;
	char *username;
	char *password;
	char *client_id;
	int keepalive_s;
	struct {
		bool enabled; /* "mqtt.tls" present as an object */
		char *ca_file, *cert_file, *key_file, *tls_version;
		bool insecure_skip_verify;
	} tls;
	char *password_file; /* read by conf_mqtt_finish */
	/* mqtt.hosts: "host:port" entries tried in turn (a broker cluster);
	 * none: host and port. */
	char **hosts;
	size_t n_hosts;
};

#define CONF_MQTT_NFIELDS 16

/* Defaults: 127.0.0.1:1883, keepalive 30 s, client id "{client_id_base}-{hostname}"
 * (unique per machine), or none when client_id_base is NULL (the caller
 * picks one later).  client_id_base is borrowed. */
int conf_mqtt_init(struct conf_mqtt *m, const char *client_id_base);
/* Appends the "mqtt" entries (CONF_MQTT_NFIELDS of them) at table[*n]. */
void conf_mqtt_fields(struct conf_mqtt *m, struct conf_field *table, size_t *n);
/* Reads mqtt.password_file, then applies OH_MQTT_HOST, OH_MQTT_PORT,
 * OH_MQTT_USERNAME and OH_MQTT_PASSWORD. */
int conf_mqtt_finish(struct conf_mqtt *m, const char *source, char *err, size_t len);
void conf_mqtt_free(struct conf_mqtt *m);
/* Fills link options that borrow m's strings; tls is used when enabled. */
void conf_mqtt_link_opts(const struct conf_mqtt *m, struct mqtt_link_opts *o, struct mqtt_tls_opts *tls);

#endif
