/*
 * The device agent's configuration: defaults, the JSON file, then the same
 * environment overrides as the host (OH_MQTT_HOST, OH_MQTT_PORT,
 * OH_MQTT_USERNAME, OH_MQTT_PASSWORD).  The broker keys under "mqtt" are the
 * host's, so one snippet configures both.
 */
#ifndef OH_DEVICE_CONFIG_H
#define OH_DEVICE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

struct dev_config {
	char *source;          /* file name, or "(defaults)" */
	char *device_id;       /* NULL when the file names none */
	json_t *labels;        /* array of strings, never NULL */
	struct conf_mqtt mqtt; /* client_id NULL: "device-{id}" */
	char *topic_root;
	double heartbeat_interval_s;
	json_t *modules; /* object: module name -> settings object; never NULL */
	char *log_level;
	char *log_format;
};

/*
 * Loads path (borrowed; NULL: defaults only) into c and applies the
 * environment.  need_device_id: fail when no device_id is configured.
 * Unknown keys, wrong types, values out of range, unknown modules and bad
 * module settings all fail with one line in err naming the file and the key
 * (JSON syntax errors: line and column).  Returns 0 or -1; call
 * dev_config_free() in both cases.
 */
int dev_config_load(struct dev_config *c, const char *path, bool need_device_id, char *err, size_t errlen);
void dev_config_free(struct dev_config *c);

/* 1 if the host will accept id as a device id (ident.h). */
int dev_id_valid(const char *id);

#endif
