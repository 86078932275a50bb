/*
 * The host's configuration: defaults, the JSON file, then environment
 * overrides for connection settings and secrets.
 */
#ifndef OH_CONFIG_H
#define OH_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

struct auth_token;

struct plugin_conf {
	char *module;
	char *path;               /* "builtin:ndi", "/x/y.so" or "/x/y.so:symbol" */
	json_t *settings;         /* always an object */
};

struct config {
	char *source;             /* file name, or "(defaults)" */
	struct conf_mqtt mqtt;
	struct {
		char *bind;
		int port;
		long max_body_bytes;
		/* API tokens (auth.h): http.tokens and http.tokens_file together;
		 * none means no authentication (loopback unless allowed). */
		struct auth_token *tokens;
		size_t n_tokens;
		bool allow_unauthenticated;
		char **cors_origins;      /* exact Origin values allowed cross-origin */
		size_t n_cors_origins;
		char **allowed_hosts;     /* extra Host names (http_guard.h) */
		size_t n_allowed_hosts;
		int request_timeout_s;    /* idle time before a connection is cut */
		struct {
			bool enabled;         /* "http.tls" present */
			char *cert_file, *key_file;
			char *cert_pem, *key_pem;   /* the files' contents, read at load */
		} tls;
	} http;
	/* mqtt_commands: what the host does with commands on
	 * {root}/orchestrator/{module}/cmd (command_policy.c). */
	struct {
		bool enabled;             /* false: every command is refused (FORBIDDEN) */
		char **admin_actors;      /* NULL: not limited by the host; else the only
		                           * actors that may run admin actions over MQTT */
		size_t n_admin_actors;
	} mqtt_commands;
	char *topic_root;
	char *state_dir;
	char *timezone;
	double stale_after_s;
	int snapshot_interval_ms;
	long max_payload_bytes;
	double misfire_grace_s;
	char *log_level;
	char *log_format;
	struct plugin_conf *plugins;
	size_t n_plugins;
};

/* Loads `path` (NULL: defaults only) and applies the environment.  On error
 * returns -1 with one line in err naming the file and key. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

#endif
