/*
 * Device configuration loading.  As in the host (src/core/config.c), the
 * schema is one table of dotted keys with type, range and destination, so
 * every unknown key and every wrong type is reported by name.  Module
 * settings are checked by the module itself (module.h), since only it knows
 * its keys.
 */
#include "dev_config.h"

#include "ident.h"
#include "module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dev_id_valid(const char *id)
{
	return id && ident_device_id_valid(id, strlen(id));
}

static int set_defaults(struct dev_config *c)
{
	memset(c, 0, sizeof *c);
	c->heartbeat_interval_s = 10;
	c->labels = json_array();
	c->modules = json_object();
	if(conf_mqtt_init(&c->mqtt, NULL) || conf_set_str(&c->topic_root, "/lab") ||
			conf_set_str(&c->log_level, "info") || conf_set_str(&c->log_format, "text") ||
			!c->labels || !c->modules)
		return -1;
	return 0;
}

static int load_modules(struct dev_config *c, json_t *mods, const char *file, char *err, size_t len)
{
	const char *name;
	json_t *settings;
	json_object_foreach(mods, name, settings)
	{
		const struct dev_module_ops *ops = dev_module_find(name);
		if(!ops) {
			conf_err(err, len, "%s: modules.%s: unknown module (this agent has: %s)", file, name,
					dev_module_names());
			return -1;
		}
		if(json_is_null(settings)) {
			if(json_object_set_new(c->modules, name, json_object()))
				return -1;
			continue;
		}
		if(!json_is_object(settings)) {
			conf_err(err, len, "%s: modules.%s: expected an object", file, name);
			return -1;
		}
		char why[200];
		char prefix[96];
		snprintf(prefix, sizeof prefix, "modules.%s", name);
		if(ops->check_settings(settings, true, prefix, why, sizeof why)) {
			conf_err(err, len, "%s: %s", file, why);
			return -1;
		}
		if(json_object_set_new(c->modules, name, json_deep_copy(settings)))
			return -1;
	}
	return 0;
}

static int custom_device_id(const struct conf_field *f, const json_t *v, void *ctx, const char *file,
		char *err, size_t len)
{
	if(!json_is_string(v) || !dev_id_valid(json_string_value(v)))
		return 1;
	return conf_set_str(&((struct dev_config *)ctx)->device_id, json_string_value(v));
}

static int custom_labels(const struct conf_field *f, const json_t *v, void *ctx, const char *file, char *err,
		size_t len)
{
	struct dev_config *c = ctx;
	if(!json_is_array(v))
		return 1;
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item)
	{
		if(!json_is_string(item)) {
			conf_err(err, len, "%s: %s[%zu]: expected a string", file, f->key, i);
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

static int custom_modules(const struct conf_field *f, const json_t *v, void *ctx, const char *file, char *err,
		size_t len)
{
	return json_is_object(v) ? load_modules(ctx, (json_t *)v, file, err, len) : 1;
}

int dev_config_load(struct dev_config *c, const char *path, bool need_device_id, char *err, size_t len)
{
	json_t *root = NULL;
	*err = '\0';
	if(set_defaults(c)) {
		conf_err(err, len, "out of memory");
		return -1;
	}
	struct conf_field table[32] = {{0}};
	size_t n = 0;
	conf_mqtt_fields(&c->mqtt, table, &n);
	const struct conf_field own[] = {
			{"device_id", CONF_CUSTOM, false, 0, 0, NULL, custom_device_id,
					"1-64 characters of A-Z a-z 0-9 . _ -"},
			{"labels", CONF_CUSTOM, false, 0, 0, NULL, custom_labels, "an array of strings"},
			{"topic_root", CONF_STR, false, 0, 0, &c->topic_root, NULL, NULL},
			{"heartbeat_interval_s", CONF_NUM, false, 0.1, 86400, &c->heartbeat_interval_s, NULL,
					NULL},
			{"modules", CONF_CUSTOM, false, 0, 0, NULL, custom_modules,
					"an object of module settings"},
			{"log_level", CONF_STR, false, 0, 0, &c->log_level, NULL, NULL},
			{"log_format", CONF_STR, false, 0, 0, &c->log_format, NULL, NULL},
	};
	for(size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		table[n++] = own[i];

	if(conf_set_str(&c->source, path ? path : "(defaults)")) {
		conf_err(err, len, "out of memory");
		goto fail;
	}
	if(path) {
		root = conf_load_json(path, err, len);
		if(!root || conf_walk(table, root, c, path, err, len))
			goto fail;
	}
	if(conf_mqtt_finish(&c->mqtt, c->source, err, len))
		goto fail;
	if(need_device_id && !c->device_id) {
		conf_err(err, len, "%s: device_id: missing (required unless --simulate)", c->source);
		goto fail;
	}
	if(conf_check_common(c->source, c->topic_root, c->log_level, c->log_format, err, len))
		goto fail;
	json_decref(root);
	return 0;

fail:
	if(!*err)
		conf_err(err, len, "%s: out of memory", c->source ? c->source : "config");
	json_decref(root);
	return -1;
}

void dev_config_free(struct dev_config *c)
{
	free(c->source);
	free(c->device_id);
	json_decref(c->labels);
	conf_mqtt_free(&c->mqtt);
	free(c->topic_root);
	json_decref(c->modules);
	free(c->log_level);
	free(c->log_format);
	memset(c, 0, sizeof *c);
}
