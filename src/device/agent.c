/*
 * The device agent proper (see agent.h).  Topics, under {root} = topic_root:
 *   {root}/device/{id}/meta, /status           retained, QoS 1, published here
 *   {root}/device/{id}/cmd  -> /evt            device-level commands and acks
 *   {root}/device/{id}/{m}/cmd, /cfg -> /evt   module commands, cfg and acks
 *   {root}/device/{id}/{m}/status              retained module state
 *   {root}/orchestrator/status                 the host's presence, read here
 * Everything is republished after each (re)connect because the session is
 * clean and the broker may have restarted without persistence, and again
 * for each new birth of a host (birth.h).  The agent speaks MQTT 3.1.1
 * only: it needs nothing from v5, 3.1.1's retained flag is exactly "stored
 * before this subscription" (which the birth logic and the refusal of
 * retained commands rely on), and a v5 attempt would cost a second
 * connection per device on brokers without v5 (--simulate runs thousands).
 */
#include "agent.h"

#include "birth.h"
#include "dev_envelope.h"
#include "log.h"
#include "module.h"
#include "mqtt_link.h"
#include "topics.h"
#include "util.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct agent {
	struct event_base *base;
	const struct dev_config *cfg;
	char *id;
	bool simulate;
	json_t *labels;    /* owned array of strings */
	char *prefix;      /* "{root}/device/{id}" */
	char *log_src;     /* "device rpi-01" for log lines */
	char *birth_topic; /* "{root}/orchestrator/status" */
	struct birth_state birth;
	struct mqtt_link *link;
	struct event *ev_heartbeat;
	struct dev_module **mods;
	size_t n_mods;
};

static char *strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *strfmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if(vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

const char *agent_id(const struct agent *a)
{
	return a->id;
}

/* Publishes j (borrowed) as compact JSON under {prefix}/{suffix}. */
static void publish_json(struct agent *a, const char *suffix, const json_t *j, int qos, bool retain)
{
	char *topic = strfmt("%s/%s", a->prefix, suffix);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if(!topic || !text) {
		log_error(a->log_src, "out of memory publishing %s", suffix);
		goto out;
	}
	int rc = mqtt_link_publish(a->link, topic, text, strlen(text), qos, retain);
	if(rc)
		log_debug(a->log_src, "publish to %s not sent now (broker away)", topic);
out:
	free(topic);
	free(text);
}

static json_t *status_json(const struct agent *a, bool online)
{
	char ts[DEV_TS_LEN];
	return json_pack("{s:b, s:s, s:s}", "online", online, "ts", dev_ts_now(ts), "device_id", a->id);
}

static void publish_status(struct agent *a, bool online)
{
	json_t *st = status_json(a, online);
	publish_json(a, "status", st, 1, true);
	json_decref(st);
}

static void publish_meta(struct agent *a)
{
	char ts[DEV_TS_LEN];
	json_t *names = json_array();
	json_t *caps = json_object();
	for(size_t i = 0; i < a->n_mods; i++) {
		json_array_append_new(names, json_string(a->mods[i]->name));
		json_t *c = a->mods[i]->ops->capabilities(a->mods[i]);
		json_object_set_new(caps, a->mods[i]->name, c ? c : json_object());
	}
	json_t *meta = json_pack("{s:s, s:o, s:o, s:O, s:n, s:s, s:s}", "device_id", a->id, "modules", names,
			"capabilities", caps, "labels", a->labels, "feature", "version", OH_DEVICE_VERSION,
			"ts", dev_ts_now(ts));
	if(!meta) {
		log_error(a->log_src, "cannot build meta");
		return;
	}
	publish_json(a, "meta", meta, 1, true);
	json_decref(meta);
}

static void publish_module_status(struct agent *a, struct dev_module *m, bool online)
{
	char ts[DEV_TS_LEN];
	json_t *mod = m->ops->status(m);
	/* The protocol's key order: state, online, ts, fields, then extras. */
	json_t *st = mod ? json_pack("{s:O, s:b, s:s}", "state", json_object_get(mod, "state"), "online",
					   online, "ts", dev_ts_now(ts))
			 : NULL;
	if(st)
		json_object_update_missing(st, mod);
	json_decref(mod);
	if(!st)
		return;
	char *suffix = strfmt("%s/status", m->name);
	if(suffix)
		publish_json(a, suffix, st, 1, true);
	free(suffix);
	json_decref(st);
}

static void on_module_changed(struct dev_module *m, void *ud)
{
	publish_module_status(ud, m, true);
}

/* Publishes the ack for env on {prefix}/{evt_suffix} and logs failures. */
static void send_ack(struct agent *a, const char *evt_suffix, const struct envelope *env, enum ack_code code,
		const char *error, json_t *details)
{
	json_t *ack = ack_new(env, code, error, details);
	if(!ack) {
		log_error(a->log_src, "cannot build ack for %s", env->req_id);
		return;
	}
	if(code != ACK_OK)
		log_info(a->log_src, "%s %s: %s: %s", evt_suffix, env->action ? env->action : "(no action)",
				ack_code_name(code), error);
	publish_json(a, evt_suffix, ack, 1, false);
	json_decref(ack);
}

static struct dev_module *find_module(struct agent *a, const char *name, size_t len)
{
	for(size_t i = 0; i < a->n_mods; i++) {
		if(strlen(a->mods[i]->name) == len && !strncmp(a->mods[i]->name, name, len))
			return a->mods[i];
	}
	return NULL;
}

/* ---- device-level commands ---- */

static void dev_ping(struct agent *a, const struct envelope *env, struct mod_result *res)
{
	res->details = json_pack("{s:b}", "pong", 1);
}

static void dev_set_labels(struct agent *a, const struct envelope *env, struct mod_result *res)
{
	static const struct oh_vfield fields[] = {
			OH_VFIELD("labels", OH_VT_ARRAY, OH_VF_REQUIRED, .items = OH_VT_STRING),
			OH_VFIELD_END,
	};
	static const struct oh_vobject spec = OH_VOBJECT(fields, OH_V_IGNORE);
	char why[200];
	if(oh_json_validate(env->params, &spec, "params", NULL, why, sizeof why)) {
		mod_result_fail(res, ACK_BAD_REQUEST, "%s", why);
		return;
	}
	json_t *copy = json_deep_copy(json_object_get(env->params, "labels"));
	if(!copy) {
		mod_result_fail(res, ACK_EXCEPTION, "out of memory");
		return;
	}
	json_decref(a->labels);
	a->labels = copy;
	publish_meta(a);
	res->details = json_pack("{s:O}", "labels", a->labels);
}

static void dev_unsupported(struct agent *a, const struct envelope *env, struct mod_result *res)
{
	mod_result_fail(res, ACK_DEVICE_ERROR,
			"%s is not supported by orchestrator-device: modules and features are set in its config file",
			env->action);
}

static const struct {
	const char *action;
	void (*fn)(struct agent *a, const struct envelope *env, struct mod_result *res);
} device_actions[] = {
		{"ping", dev_ping},
		{"set_labels", dev_set_labels},
		{"add_module", dev_unsupported},
		{"remove_module", dev_unsupported},
		{"apply_feature", dev_unsupported},
};

static void handle_device_cmd(struct agent *a, const void *payload, size_t len)
{
	struct envelope env;
	char why[256];
	enum ack_code code = envelope_parse(payload, len, &env, why, sizeof why);
	if(code != ACK_OK) {
		send_ack(a, "evt", &env, code, why, NULL);
		goto out;
	}
	struct mod_result res = {ACK_OK, "", NULL};
	size_t i;
	for(i = 0; i < sizeof device_actions / sizeof device_actions[0]; i++) {
		if(!strcmp(device_actions[i].action, env.action)) {
			device_actions[i].fn(a, &env, &res);
			break;
		}
	}
	/* An action the device does not know: the device, not the envelope,
	 * is at fault, as with the deployed agent. */
	if(i == sizeof device_actions / sizeof device_actions[0])
		mod_result_fail(&res, ACK_DEVICE_ERROR,
				"unknown device action '%.64s' (expected ping, set_labels, add_module, remove_module or apply_feature)",
				env.action);
	send_ack(a, "evt", &env, res.code, res.error, res.details);
out:
	envelope_clear(&env);
}

/* ---- module commands and cfg ---- */

static void handle_module_cmd(struct agent *a, struct dev_module *m, const void *payload, size_t len)
{
	struct envelope env;
	char why[256];
	char *evt = strfmt("%s/evt", m->name);
	if(!evt)
		return;
	enum ack_code code = envelope_parse(payload, len, &env, why, sizeof why);
	if(code != ACK_OK) {
		send_ack(a, evt, &env, code, why, NULL);
		goto out;
	}
	struct mod_result res = {ACK_OK, "", NULL};
	m->ops->handle(m, &env, &res);
	send_ack(a, evt, &env, res.code, res.error, res.details);
out:
	envelope_clear(&env);
	free(evt);
}

/*
 * A cfg payload is the partial settings object itself, deep-merged into the
 * module's settings.  Its "req_id" and "actor" keys, when present, are taken
 * as in an envelope (echoed in the ack, actor checked) and not merged.  A
 * full envelope whose "action" is "cfg" is also accepted: then "params" is
 * the partial settings.  The merged settings are checked before they
 * replace the old ones, so a bad update changes nothing.
 */
static void handle_module_cfg(struct agent *a, struct dev_module *m, const void *payload, size_t len)
{
	struct envelope env;
	char why[256];
	json_t *root = NULL, *shell = NULL, *patch = NULL, *merged = NULL;
	enum ack_code code;
	char *evt = strfmt("%s/evt", m->name);
	if(!evt)
		return;
	memset(&env, 0, sizeof env);

	json_error_t jerr;
	root = json_loadb(payload, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if(!root) {
		dev_uuid4(env.req_id);
		snprintf(why, sizeof why, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
				jerr.text);
		code = ACK_BAD_JSON;
		goto ack_error;
	}
	if(json_is_object(root) && !json_object_get(root, "action")) {
		/* Bare settings: wrap them so the envelope rules judge req_id,
		 * actor and size exactly as for commands. */
		patch = json_deep_copy(root);
		shell = json_object();
		if(!patch || !shell) {
			dev_uuid4(env.req_id);
			snprintf(why, sizeof why, "out of memory");
			code = ACK_EXCEPTION;
			goto ack_error;
		}
		json_object_del(patch, "req_id");
		json_object_del(patch, "actor");
		json_object_set_new(shell, "action", json_string("cfg"));
		const char *keys[] = {"req_id", "actor"};
		for(size_t i = 0; i < 2; i++) {
			json_t *v = json_object_get(root, keys[i]);
			if(v)
				json_object_set(shell, keys[i], v);
		}
		json_object_set(shell, "params", patch);
		code = envelope_from_json(shell, &env, why, sizeof why);
	} else {
		code = envelope_from_json(root, &env, why, sizeof why);
		if(code == ACK_OK && strcmp(env.action, "cfg")) {
			snprintf(why, sizeof why, "action: expected \"cfg\" on a cfg topic");
			code = ACK_BAD_REQUEST;
		}
		if(code == ACK_OK)
			patch = json_incref(env.params);
	}
	if(code != ACK_OK)
		goto ack_error;
	env.action = "cfg";

	merged = json_deep_copy(m->settings);
	if(!merged || json_object_update_recursive(merged, patch)) {
		snprintf(why, sizeof why, "out of memory");
		code = ACK_EXCEPTION;
		goto ack_error;
	}
	if(m->ops->check_settings(merged, false, "cfg", why, sizeof why)) {
		code = ACK_BAD_REQUEST;
		goto ack_error;
	}
	json_decref(m->settings);
	m->settings = json_incref(merged);
	log_info(a->log_src, "module %s settings updated", m->name);
	/* Capabilities are part of meta. */
	publish_meta(a);
	send_ack(a, evt, &env, ACK_OK, NULL, json_pack("{s:O}", "settings", m->settings));
	goto out;

ack_error:
	env.action = "cfg";
	send_ack(a, evt, &env, code, why, NULL);
out:
	envelope_clear(&env);
	json_decref(merged);
	json_decref(patch);
	json_decref(shell);
	json_decref(root);
	free(evt);
}

/* ---- the connection ---- */

/* Everything the agent keeps retained on the broker, as at connect. */
static void announce(struct agent *a)
{
	publish_meta(a);
	publish_status(a, true);
	for(size_t i = 0; i < a->n_mods; i++)
		publish_module_status(a, a->mods[i], true);
}

static void on_host_presence(struct agent *a, const void *payload, size_t len, bool retained)
{
	char why[200];
	if(birth_judge(&a->birth, payload, len, retained, why, sizeof why) == BIRTH_ANSWER) {
		log_info(a->log_src, "the orchestrator came online: publishing meta and status again");
		announce(a);
	} else if(why[0]) {
		log_debug(a->log_src, "ignoring %s: %s", a->birth_topic, why);
	}
}

static void on_message(struct mqtt_link *link, const char *topic, const void *payload, size_t len,
		bool retained, void *ud)
{
	struct agent *a = ud;
	if(!strcmp(topic, a->birth_topic)) {
		on_host_presence(a, payload, len, retained);
		return;
	}
	/* Ours only: {root}/device/{id}/cmd and {root}/device/{id}/{module}/cmd|cfg
	 * (topics.h reads them as the host does). */
	struct topic_parts t;
	char id[OH_DEVICE_ID_MAX + 1];
	if(topic_parse(a->cfg->topic_root, topic, &t) != TOPIC_DEVICE || t.error ||
			!topic_level_copy(t.id, id, sizeof id) || strcmp(id, a->id))
		return;
	/* A retained command is an old one left on the broker by mistake:
	 * running it again at every reconnect would be wrong. */
	if(retained) {
		log_warn(a->log_src, "ignoring retained message on %s", topic);
		return;
	}
	if(!t.module.p) {
		if(topic_level_is(t.leaf, "cmd"))
			handle_device_cmd(a, payload, len);
		return;
	}
	struct dev_module *m = find_module(a, t.module.p, t.module.len);
	if(!m)
		return;
	if(topic_level_is(t.leaf, "cmd"))
		handle_module_cmd(a, m, payload, len);
	else if(topic_level_is(t.leaf, "cfg"))
		handle_module_cfg(a, m, payload, len);
}

static void subscribe_suffix(struct agent *a, const char *suffix)
{
	char *filter = strfmt("%s/%s", a->prefix, suffix);
	if(!filter || mqtt_link_subscribe(a->link, filter, 1))
		log_warn(a->log_src, "cannot subscribe to %s/%s", a->prefix, suffix);
	free(filter);
}

static void on_connect(struct mqtt_link *link, void *ud)
{
	struct agent *a = ud;
	subscribe_suffix(a, "cmd");
	for(size_t i = 0; i < a->n_mods; i++) {
		char suffix[96];
		snprintf(suffix, sizeof suffix, "%s/cmd", a->mods[i]->name);
		subscribe_suffix(a, suffix);
		snprintf(suffix, sizeof suffix, "%s/cfg", a->mods[i]->name);
		subscribe_suffix(a, suffix);
	}
	if(mqtt_link_subscribe(a->link, a->birth_topic, 1))
		log_warn(a->log_src, "cannot subscribe to %s", a->birth_topic);
	announce(a);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	if(mqtt_link_connected(a->link))
		publish_status(a, true);
}

struct agent *agent_new(struct event_base *base, const struct dev_config *cfg, const char *id, bool simulate)
{
	char *will = NULL, *will_topic = NULL, *client_id = NULL;
	struct agent *a = calloc(1, sizeof *a);
	if(!a)
		goto nomem;
	a->base = base;
	a->cfg = cfg;
	a->simulate = simulate;
	a->id = strdup(id);
	a->labels = json_deep_copy(cfg->labels);
	a->prefix = strfmt("%s/device/%s", cfg->topic_root, id);
	a->log_src = strfmt("device %s", id);
	a->birth_topic = topic_build(cfg->topic_root, NULL, "status", NULL);
	if(!a->id || !a->labels || !a->prefix || !a->log_src || !a->birth_topic)
		goto nomem;

	size_t n = json_object_size(cfg->modules);
	a->mods = calloc(n ? n : 1, sizeof *a->mods);
	if(!a->mods)
		goto nomem;
	const char *name;
	json_t *settings;
	json_object_foreach(cfg->modules, name, settings)
	{
		const struct dev_module_ops *ops = dev_module_find(name);
		struct dev_module_host host = {base, a->id, simulate, on_module_changed, a};
		struct dev_module *m = ops ? ops->create(&host) : NULL;
		if(!m)
			goto nomem;
		m->ops = ops;
		m->name = ops->name;
		m->settings = json_deep_copy(settings);
		a->mods[a->n_mods++] = m;
		if(!m->settings)
			goto nomem;
	}

	json_t *w = status_json(a, false);
	will = w ? json_dumps(w, JSON_COMPACT) : NULL;
	json_decref(w);
	will_topic = strfmt("%s/status", a->prefix);
	/* Every simulated device needs its own client id, or the broker would
	 * keep kicking one off for the other. */
	if(cfg->mqtt.client_id && !simulate)
		client_id = strdup(cfg->mqtt.client_id);
	else
		client_id = strfmt("device-%s", id);
	if(!will || !will_topic || !client_id)
		goto nomem;

	struct mqtt_tls_opts tls;
	struct mqtt_link_opts opts;
	conf_mqtt_link_opts(&cfg->mqtt, &opts, &tls);
	opts.client_id = client_id;
	opts.will_topic = will_topic;
	opts.will_payload = will;
	opts.will_qos = 1;
	opts.will_retain = true;
	opts.log_prefix = a->log_src;
	struct mqtt_link_callbacks cb = {on_connect, NULL, on_message, NULL};
	a->link = mqtt_link_new(base, &opts, &cb, a);
	if(!a->link)
		goto fail;

	a->ev_heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat, a);
	if(!a->ev_heartbeat)
		goto nomem;
	free(will);
	free(will_topic);
	free(client_id);
	return a;

nomem:
	log_error(id, "out of memory creating the device");
fail:
	free(will);
	free(will_topic);
	free(client_id);
	agent_free(a);
	return NULL;
}

int agent_start(struct agent *a)
{
	double hb = a->cfg->heartbeat_interval_s;
	struct timeval tv = {(time_t)hb, (suseconds_t)((hb - (double)(time_t)hb) * 1e6)};
	if(event_add(a->ev_heartbeat, &tv))
		return -1;
	return mqtt_link_start(a->link) ? -1 : 0;
}

void agent_stop_modules(struct agent *a)
{
	for(size_t i = 0; i < a->n_mods; i++)
		a->mods[i]->ops->stop_all(a->mods[i]);
}

void agent_go_offline(struct agent *a)
{
	event_del(a->ev_heartbeat);
	if(mqtt_link_connected(a->link)) {
		for(size_t i = 0; i < a->n_mods; i++)
			publish_module_status(a, a->mods[i], false);
		publish_status(a, false);
	}
	mqtt_link_stop(a->link);
	log_info(a->log_src, "offline");
}

void agent_free(struct agent *a)
{
	if(!a)
		return;
	if(a->ev_heartbeat)
		event_free(a->ev_heartbeat);
	mqtt_link_free(a->link);
	for(size_t i = 0; i < a->n_mods; i++) {
		json_decref(a->mods[i]->settings);
		a->mods[i]->ops->destroy(a->mods[i]);
	}
	free(a->mods);
	json_decref(a->labels);
	free(a->prefix);
	free(a->log_src);
	free(a->birth_topic);
	birth_state_clear(&a->birth);
	free(a->id);
	free(a);
}
