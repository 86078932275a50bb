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
	char *path;       /* "builtin:ndi", "/x/y.so" or "/x/y.so:symbol" */
	json_t *settings; /* always an object */
};

/*
 * limits: a cap on every table that clients grow (README, "Limits").  Past
 * one, what would grow the table is refused (ack code LIMIT, HTTP 429, or
 * 507 for what is stored), counted in oh_limit_refusals_total{limit}, and
 * nothing already held is touched.  The defaults suit a lab of 100,000
 * devices.
 */
struct config_limits {
	long max_devices;                     /* devices in the registry */
	long max_device_bytes;                /* one device's merged meta+status, serialised */
	long max_pending;                     /* relayed commands awaiting a device ack, in all */
	long max_pending_per_device;          /* ... to one device */
	long max_leases;                      /* leases held */
	long max_jobs;                        /* scheduled jobs, in all */
	long max_jobs_per_actor;              /* ... of one owner */
	long max_sse_clients;                 /* open GET /api/events streams */
	long max_sse_backlog_bytes;           /* what one stream may fall behind */
	long max_http_connections;            /* open HTTP connections, in all */
	long max_http_connections_per_client; /* ... from one address */
	long max_snapshot_bytes;              /* the retained snapshot; past it, a summary */
};

struct config {
	char *source; /* file name, or "(defaults)" */
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
		char **cors_origins; /* exact Origin values allowed cross-origin */
		size_t n_cors_origins;
		char **allowed_hosts; /* extra Host names (http_guard.h) */
		size_t n_allowed_hosts;
		int request_timeout_s; /* idle time before a connection is cut */
		struct {
			bool enabled; /* "http.tls" present */
			char *cert_file, *key_file;
			char *cert_pem, *key_pem; /* the files' contents, read at load */
		} tls;
	} http;
	/* mqtt_commands: what the host does with commands on
	 * {root}/orchestrator/{module}/cmd (command_policy.c). */
	struct {
		bool enabled;        /* false: every command is refused (FORBIDDEN) */
		char **admin_actors; /* NULL: not limited by the host; else the only
		                           * actors that may run admin actions over MQTT */
		size_t n_admin_actors;
	} mqtt_commands;
	/* store: where leases, jobs and the device cache live (store.h). */
	struct {
		char *backend;  /* "sqlite" (in state_dir) or "postgresql" */
		char *conninfo; /* libpq's; never a password (config_load refuses one) */
	} store;
	/* ha: leadership among hosts sharing a PostgreSQL store (ha.c). */
	struct {
		char *node_id;       /* default: the machine's host name */
		char *advertise_url; /* where clients reach this node; NULL: unknown */
		double lease_s;      /* a leader cut off this long has stopped acting */
		char *client_id;     /* the MQTT client id only the leader uses */
	} ha;
	char *topic_root;
	char *state_dir;
	char *timezone;
	double stale_after_s;
	/* Devices offline (or unknown) and silent this long are forgotten
	 * (registry.c, "forgetting"); 0: never. */
	double forget_after_days;
	int snapshot_interval_ms;
	long max_payload_bytes;
	double misfire_grace_s;
	/* mqtt.protocol: "auto" (5, else 3.1.1), "5" or "3.1.1"; host only,
	 * the agent speaks 3.1.1 (src/device/agent.c). */
	char *mqtt_protocol;
	/* MQTT 5 message expiry of the commands relayed to devices; 0: none. */
	int command_expiry_s;
	char *log_level;
	char *log_format;
	/* audit: the audit trail (audit.c, docs/audit.md). */
	struct {
		bool enabled;
		double retention_days; /* 0: kept whatever their age */
		long max_rows;         /* 0: no cap */
	} audit;
	struct plugin_conf *plugins;
	size_t n_plugins;
	struct config_limits limits;
};

/* Loads `path` (NULL: defaults only) and applies the environment.  On error
 * returns -1 with one line in err naming the file and key. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The value of limits.{name} ("max_pending"), or -1 when name (borrowed)
 * is not a limit. */
long config_limit(const struct config *cfg, const char *name);
/* The name of the i-th limit ("max_devices"), NULL past the last: static. */
const char *config_limit_name(size_t i);
/* Whether a table holding `count` may not grow under `limit`.  0 caps
 * nothing: config_load never gives it, only a struct config filled by hand
 * (unit tests). */
static inline bool config_limit_reached(long limit, size_t count)
{
	return limit > 0 && count >= (size_t)limit;
}

#endif
