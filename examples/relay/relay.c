/*
 * An example orchestrator-host plugin, built out of tree against the
 * installed headers: switches power relays on lab devices.
 *
 * Commands arrive on {root}/orchestrator/{module}/cmd as the usual envelope
 * ({req_id, actor, action, params}).  `on`, `off` and `toggle` take
 * {device_id, channel} and are relayed unchanged to the device on
 * {root}/device/{device_id}/{module}/cmd, after checking the reservation
 * "{module}:{device_id}" with oh_lease_can_use(); `reserve` {device_id,
 * lease_s} and `release` {device_id} manage that reservation.  Every
 * command gets one ack on {root}/orchestrator/{module}/evt: DISPATCHED, OK,
 * DENIED (reserved by someone else), OFFLINE, IN_USE, NOT_OWNER, NOT_HELD,
 * BAD_JSON, BAD_REQUEST or BAD_ACTION.
 *
 * REST, under /api/{module}/: GET /state (devices running the module, their
 * reservation, and the last state commanded per channel) and POST /switch
 * {device_id, channel, action}.  Its page is /ui/{module}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oh/host.h>
#include <oh/plugin.h>

#define MAX_CHANNEL 63

/* The plugin's state, freed by the host after unload. */
struct relay {
	json_t *commanded; /* {"rpi-01": {"0": true, "3": false}} */
	double default_lease_s;
};

/* ---- the one place errors become ack codes ------------------------------- */

static const char *ack_code(int rc, bool lease_op)
{
	switch(rc) {
	case OH_OK:
		return lease_op ? "OK" : "DISPATCHED";
	case OH_ERR_IN_USE:
		return lease_op ? "IN_USE" : "DENIED";
	case OH_ERR_NOT_OWNER:
		return "NOT_OWNER";
	case OH_ERR_NOT_HELD:
	case OH_ERR_NOT_FOUND:
		return "NOT_HELD";
	case OH_ERR_INVAL:
		return "BAD_REQUEST";
	default:
		return "ERROR";
	}
}

/* ---- parameters, checked from one table ---------------------------------- */

enum kind {
	P_STRING,
	P_CHANNEL,
	P_SECONDS
};

struct param {
	const char *name;
	enum kind kind;
	bool required;
};

static const struct {
	const char *action;
	bool switches; /* relayed to the device */
	struct param params[3];
} actions[] = {
		{"on", true, {{"device_id", P_STRING, true}, {"channel", P_CHANNEL, false}}},
		{"off", true, {{"device_id", P_STRING, true}, {"channel", P_CHANNEL, false}}},
		{"toggle", true, {{"device_id", P_STRING, true}, {"channel", P_CHANNEL, false}}},
		{"reserve", false, {{"device_id", P_STRING, true}, {"lease_s", P_SECONDS, false}}},
		{"release", false, {{"device_id", P_STRING, true}}},
};

static int find_action(const char *name)
{
	for(size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
		if(!strcmp(actions[i].action, name))
			return (int)i;
	}
	return -1;
}

/* OH_OK, or OH_ERR_INVAL with err naming the parameter. */
static int check_params(int a, const json_t *params, char *err, size_t len)
{
	for(const struct param *p = actions[a].params; p->name; p++) {
		const json_t *v = json_object_get(params, p->name);
		if(!v) {
			if(!p->required)
				continue;
			snprintf(err, len, "params.%s: required", p->name);
			return OH_ERR_INVAL;
		}
		bool ok = false;
		switch(p->kind) {
		case P_STRING:
			ok = json_is_string(v) && json_string_length(v) > 0 &&
					!strpbrk(json_string_value(v), "/+#");
			break;
		case P_CHANNEL:
			ok = json_is_integer(v) && json_integer_value(v) >= 0 &&
					json_integer_value(v) <= MAX_CHANNEL;
			break;
		case P_SECONDS:
			ok = json_is_number(v) && json_number_value(v) > 0;
			break;
		}
		if(!ok) {
			snprintf(err, len, "params.%s: expected %s", p->name,
					p->kind == P_STRING                    ? "a device id"
							: p->kind == P_CHANNEL ? "an integer 0-63"
									       : "a positive number");
			return OH_ERR_INVAL;
		}
	}
	return OH_OK;
}

/* ---- doing it ------------------------------------------------------------ */

static void remember(struct relay *r, const char *device, int channel, const char *action)
{
	json_t *dev = json_object_get(r->commanded, device);
	if(!dev) {
		dev = json_object();
		json_object_set_new(r->commanded, device, dev);
	}
	char ch[8];
	snprintf(ch, sizeof ch, "%d", channel);
	bool now = !strcmp(action, "on")         ? true
			: !strcmp(action, "off") ? false
						 : !json_is_true(json_object_get(dev, ch));
	json_object_set_new(dev, ch, json_boolean(now));
}

/* Relays a switching command; the envelope is passed on unchanged so the
 * device sees the caller's req_id and actor. */
static const char *do_switch(oh_ctx *ctx, const char *action, const json_t *params, const json_t *envelope,
		const char *actor, char *err, size_t len)
{
	struct relay *r = oh_data(ctx);
	const char *device = json_string_value(json_object_get(params, "device_id"));
	const json_t *ch = json_object_get(params, "channel");
	int channel = ch ? (int)json_integer_value(ch) : 0;
	char key[256];
	struct oh_lease lease;
	snprintf(key, sizeof key, "%s:%s", oh_module(ctx), device);
	int rc = oh_lease_can_use(ctx, key, actor ? actor : "", &lease);
	if(rc) {
		snprintf(err, len, "%s is reserved by %s for %.0f more seconds", device, lease.holder,
				lease.remaining_s);
		return ack_code(rc, false);
	}
	struct oh_device dev;
	if(!oh_device_get(ctx, device, &dev) && dev.online == 0) {
		snprintf(err, len, "%s is offline", device);
		return "OFFLINE";
	}
	char topic[512];
	snprintf(topic, sizeof topic, "%s/device/%s/%s/cmd", oh_topic_root(ctx), device, oh_module(ctx));
	rc = oh_publish_json(ctx, topic, envelope, 1, false);
	if(rc) {
		snprintf(err, len, "cannot relay: %s", oh_strerror(rc));
		return ack_code(rc, false);
	}
	remember(r, device, channel, action);
	oh_log(ctx, OH_LOG_INFO, "%s channel %d of %s for %s", action, channel, device,
			actor ? actor : "(anonymous)");
	return "DISPATCHED";
}

static const char *do_lease(oh_ctx *ctx, const char *action, const json_t *params, const char *actor,
		char *err, size_t len, json_t **details)
{
	struct relay *r = oh_data(ctx);
	const char *device = json_string_value(json_object_get(params, "device_id"));
	const json_t *secs = json_object_get(params, "lease_s");
	char key[256];
	struct oh_lease lease;
	memset(&lease, 0, sizeof lease);
	snprintf(key, sizeof key, "%s:%s", oh_module(ctx), device);
	if(!actor) {
		snprintf(err, len, "actor: required to %s", action);
		return "BAD_REQUEST";
	}
	int rc = !strcmp(action, "reserve")
			? oh_lease_take(ctx, key, actor, secs ? json_number_value(secs) : r->default_lease_s,
					  &lease)
			: oh_lease_release(ctx, key, actor, &lease);
	if(rc && lease.holder[0])
		snprintf(err, len, "%s is reserved by %s", device, lease.holder);
	else if(rc)
		snprintf(err, len, "%s", oh_strerror(rc));
	else if(!strcmp(action, "reserve"))
		*details = json_pack("{s:s, s:s, s:f}", "key", key, "holder", lease.holder, "expires_at",
				lease.expires_at);
	return ack_code(rc, true);
}

/* Runs one command; returns the ack code, err set when it is not a success. */
static const char *run(oh_ctx *ctx, const char *action, const json_t *params, const json_t *envelope,
		const char *actor, char *err, size_t len, json_t **details)
{
	int a = find_action(action);
	if(a < 0) {
		snprintf(err, len, "unknown action \"%s\" (on, off, toggle, reserve, release)", action);
		return "BAD_ACTION";
	}
	if(check_params(a, params, err, len))
		return "BAD_REQUEST";
	if(actions[a].switches)
		return do_switch(ctx, action, params, envelope, actor, err, len);
	return do_lease(ctx, action, params, actor, err, len, details);
}

static void on_cmd(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct oh_command cmd;
	const char *code;
	char err[256] = "";
	json_t *details = NULL;
	/* Not JSON, too large, or not an envelope: still answered, so the
	 * sender learns why. */
	if(oh_command_parse(ctx, msg, &cmd, &code, err, sizeof err)) {
		oh_ack_publish(ctx, oh_ack_new(cmd.req_id, false, code, cmd.action, cmd.actor, err, NULL));
		return;
	}
	code = run(ctx, cmd.action, cmd.params, cmd.envelope, cmd.actor, err, sizeof err, &details);
	bool ok = !strcmp(code, "DISPATCHED") || !strcmp(code, "OK");
	oh_ack_publish(ctx, oh_ack_new(cmd.req_id, ok, code, cmd.action, cmd.actor, ok ? NULL : err, details));
}

static void on_expired(oh_ctx *ctx, const char *key, const char *holder, void *ud)
{
	oh_ack_publish(ctx,
			oh_ack_new(NULL, false, "EXPIRED", "reserve", holder, "the reservation ran out",
					json_pack("{s:s}", "key", key)));
}

/* ---- REST ----------------------------------------------------------------- */

struct state_walk {
	oh_ctx *ctx;
	json_t *out;
};

static int add_device(const struct oh_device *dev, void *ud)
{
	struct state_walk *w = ud;
	struct relay *r = oh_data(w->ctx);
	const json_t *modules = json_object_get(dev->doc, "modules");
	bool runs = false;
	size_t i;
	const json_t *m;
	json_array_foreach(modules, i, m)
	{
		if(json_is_string(m) && !strcmp(json_string_value(m), oh_module(w->ctx)))
			runs = true;
	}
	if(!runs && !json_object_get(r->commanded, dev->id))
		return 0;
	char key[256];
	struct oh_lease lease;
	snprintf(key, sizeof key, "%s:%s", oh_module(w->ctx), dev->id);
	json_t *channels = json_object_get(r->commanded, dev->id);
	json_t *item = json_pack("{s:s, s:o, s:o}", "device_id", dev->id, "online",
			dev->online < 0 ? json_null() : json_boolean(dev->online), "channels",
			channels ? json_deep_copy(channels) : json_object());
	json_object_set_new(item, "reserved_by",
			oh_lease_get(w->ctx, key, &lease) ? json_null() : json_string(lease.holder));
	json_array_append_new(w->out, item);
	return 0;
}

static void get_state(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct state_walk w = {ctx, json_array()};
	oh_device_foreach(ctx, add_device, &w);
	oh_reply_json(req, 200, json_pack("{s:o}", "devices", w.out));
}

static void post_switch(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	const json_t *body = oh_req_body(req);
	const char *action = json_string_value(json_object_get(body, "action"));
	if(!json_is_object(body) || !action) {
		oh_reply_error(req, 400, "BAD_REQUEST", "expected {\"device_id\", \"channel\", \"action\"}");
		return;
	}
	int a = find_action(action);
	if(a < 0 || !actions[a].switches) {
		oh_reply_error(req, 400, "BAD_ACTION", "action must be on, off or toggle");
		return;
	}
	/* Commands the host originates say so; the devices accept that actor. */
	json_t *params = json_deep_copy(body);
	json_object_del(params, "action");
	json_t *env = json_pack("{s:s, s:s, s:s, s:O}", "actor", "orchestrator", "requested_by",
			oh_req_actor(req) ? oh_req_actor(req) : "api", "action", action, "params", params);
	char err[256] = "";
	json_t *details = NULL;
	const char *code = run(ctx, action, params, env, "orchestrator", err, sizeof err, &details);
	json_decref(details);
	unsigned status = !strcmp(code, "DISPATCHED") ? 202
			: !strcmp(code, "DENIED")     ? 409
			: !strcmp(code, "OFFLINE")    ? 503
						      : 400;
	if(status == 202)
		oh_reply_json(req, status, json_pack("{s:s}", "code", code));
	else
		oh_reply_error(req, status, code, "%s", err);
	json_decref(params);
	json_decref(env);
}

/* ---- life cycle ----------------------------------------------------------- */

/* The page's content, inside the host's shell (which already heads it with
 * the title given to oh_ui_page), styled by the shell's stylesheet. */
static const char page_html[] =
		"<p class=\"muted\">Devices running the relay module, and the state last commanded.</p>"
		"<div class=\"table-wrap\"><table id=\"relays\" class=\"devices\"><thead><tr>"
		"<th>Device</th><th>Online</th><th>Reserved by</th><th>Channels</th></tr></thead>"
		"<tbody></tbody></table></div>"
		"<p id=\"relays-empty\" class=\"muted\">No relay devices yet: none lists the relay"
		" module in its meta, and none has been switched.</p>";

static const char page_js[] =
		"async function load() {\n"
		"  const base = location.pathname.replace(/^\\/ui\\//, '/api/').replace(/\\/$/, '');\n"
		"  const r = await fetch(base + '/state');\n"
		"  const body = await r.json();\n"
		"  const tbody = document.querySelector('#relays tbody');\n"
		"  tbody.textContent = '';\n"
		"  const labels = ['Device', 'Online', 'Reserved by', 'Channels'];\n"
		"  for (const d of body.devices) {\n"
		"    const tr = document.createElement('tr');\n"
		"    tr.dataset.device = d.device_id;\n"
		"    const chans = Object.entries(d.channels).map(([c, on]) => c + ':' + (on ? 'on' : 'off'));\n"
		"    [d.device_id, String(d.online), d.reserved_by || '', chans.join(' ')].forEach((v, i) => {\n"
		"      const td = document.createElement('td');\n"
		"      td.dataset.label = labels[i];\n"
		"      td.textContent = v;\n"
		"      tr.appendChild(td);\n"
		"    });\n"
		"    tbody.appendChild(tr);\n"
		"  }\n"
		"  document.getElementById('relays-empty').hidden = body.devices.length > 0;\n"
		"}\n"
		"load();\n"
		"setInterval(load, 2000);\n";

static void relay_free(void *p)
{
	struct relay *r = p;
	json_decref(r->commanded);
	free(r);
}

static int init(oh_ctx *ctx, const json_t *settings)
{
	struct relay *r = calloc(1, sizeof *r);
	if(!r)
		return OH_ERR_NOMEM;
	r->commanded = json_object();
	r->default_lease_s = 60;
	/* From here the host frees r, also when init fails below. */
	oh_set_data(ctx, r, relay_free);

	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)settings, key, v)
	{
		if(strcmp(key, "default_lease_s"))
			return oh_fail(ctx, "settings.%s: unknown setting", key);
		if(!json_is_number(v) || json_number_value(v) <= 0)
			return oh_fail(ctx, "settings.default_lease_s: expected a positive number");
		r->default_lease_s = json_number_value(v);
	}

	char filter[256];
	snprintf(filter, sizeof filter, "%s/orchestrator/%s/cmd", oh_topic_root(ctx), oh_module(ctx));
	int rc = oh_subscribe(ctx, filter, 1, on_cmd, NULL);
	if(!rc)
		rc = oh_route(ctx, "GET", "/state", get_state, NULL,
				"{\"summary\": \"Relay devices, reservations and commanded channel states\"}");
	if(!rc)
		rc = oh_route(ctx, "POST", "/switch", post_switch, NULL,
				"{\"summary\": \"Switch a channel: {device_id, channel, action: on|off|toggle}\"}");
	if(!rc)
		rc = oh_ui_page(ctx, "Relays", page_html, page_js);
	if(!rc)
		rc = oh_lease_on_expire(ctx, on_expired, NULL);
	if(rc)
		return oh_fail(ctx, "cannot register: %s", oh_strerror(rc));
	oh_log(ctx, OH_LOG_INFO, "relay plugin ready (default lease %.0f s)", r->default_lease_s);
	return OH_OK;
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.abi_minor = 0,
		.name = "Power relays",
		.version = "0.1.0",
		.init = init,
		/* No cleanup: the host removes the registrations and frees r. */
};

const struct oh_plugin *oh_plugin_entry(void)
{
	return &plugin;
}
