/*
 * The NDI plugin's command side: what happens to an envelope published on
 * {root}/orchestrator/{module}/cmd.
 *
 * Every command goes through the same steps: oh_command_parse() checks the
 * envelope, the actions table below names each action's parameters (so a
 * bad one is reported by name), then the action runs.  Pass-through actions
 * go to ndi_dispatch(), the single road to a device that REST and the
 * scheduler take as well; reserve/renew/release/force_release act on the
 * host's durable leases.  Each command gets exactly one ack on
 * {root}/orchestrator/{module}/evt; relayed ones later get a second event
 * (ndi_pending.c).  Nothing here changes state before validation passed.
 * A relay past limits.max_pending(_per_device) or a reservation past
 * limits.max_leases gets LIMIT, naming the limit and its value.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oh/host.h"
#include "oh/utf8.h"
#include "oh/validate.h"

#include "ndi.h"
#include "ndi_discovery.h"

/* ---- ack codes ------------------------------------------------------------ */

/* Every code the plugin puts in an ack, and whether it means success: `ok`
 * is true when what was asked for now holds. */
static const struct {
	const char *code;
	bool ok;
} ack_codes[] = {
		{"DISPATCHED", true}, /* relayed to the device */
		{"OK", true},         /* lease operation done */
		{"COMPLETED", true},  /* the device acked success */
		{"DENIED", false},    /* leased by another actor / not an admin */
		{"OFFLINE", false},   /* the device's last status said offline */
		{"IN_USE", false},    /* reserve: held by another actor */
		{"NOT_OWNER", false}, /* renew/release: held by another actor */
		{"NOT_HELD", false},  /* renew/release/force_release: no lease */
		{"FAILED", false},    /* the device acked failure */
		{"TIMEOUT", false},   /* no device ack within ack_timeout_s */
		{"EXPIRED", false},   /* a reservation ran out */
		{"BAD_JSON", false}, {"BAD_REQUEST", false}, {"BAD_ACTION", false}, {"TOO_LARGE", false},
		{"LIMIT", false},      /* a table is at its limits.* cap */
		{"NOT_FOUND", false},  /* unroute, apply_preset: no such route or preset */
		{"ROUTE_STATE", true}, /* a route's state changed (ok: converged) */
		{"ERROR", false},      /* the host failed (store, memory, broker) */
};

bool ndi_code_ok(const char *code)
{
	for(size_t i = 0; i < sizeof(ack_codes) / sizeof(ack_codes[0]); i++) {
		if(!strcmp(ack_codes[i].code, code))
			return ack_codes[i].ok;
	}
	return false;
}

enum op {
	OP_RELAY,
	OP_LEASE
};

/* The one place mapping host errors to ack codes.  A lease conflict is
 * IN_USE for reserve but DENIED for a relay: the command, not the lease,
 * is what was refused. */
static const char *err_code(int err, enum op op)
{
	switch(err) {
	case OH_OK:
		return op == OP_RELAY ? "DISPATCHED" : "OK";
	case OH_ERR_IN_USE:
		return op == OP_RELAY ? "DENIED" : "IN_USE";
	case OH_ERR_NOT_OWNER:
		return "NOT_OWNER";
	case OH_ERR_NOT_HELD:
	case OH_ERR_NOT_FOUND:
		return "NOT_HELD";
	case OH_ERR_DENIED:
		return "DENIED";
	case OH_ERR_INVAL:
	case OH_ERR_EXISTS:
		return "BAD_REQUEST";
	case OH_ERR_TOO_LARGE:
		return "TOO_LARGE";
	default:
		return "ERROR";
	}
}

static json_t *ack_make(const char *req_id, const char *code, const char *action, const char *actor,
		const char *error, json_t *details)
{
	return oh_ack_new(req_id, ndi_code_ok(code), code, action, actor, error, details);
}

/* LIMIT: limits.{limit} stopped the command on device_id (the refusal is
 * already counted, by ndi_pending_add or the host). */
static json_t *limit_ack(const struct ndi *n, const char *req_id, const char *action, const char *actor,
		const char *limit, const char *device_id)
{
	char err[160];
	long value = oh_limit(n->ctx, limit);

	snprintf(err, sizeof(err), "limits.%s (%ld) reached for %s", limit, value, device_id);
	return ack_make(req_id, "LIMIT", action, actor, err,
			json_pack("{s:s, s:I, s:s}", "limit", limit, "value", (json_int_t)value, "device_id",
					device_id));
}

/* ---- small helpers ---------------------------------------------------------- */

static double now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Whole numbers print as integers (60, not 60.0). */
static json_t *json_num(double d)
{
	if(d == floor(d) && fabs(d) < 9e15)
		return json_integer((json_int_t)d);
	return json_real(d);
}

static json_int_t secs_left(double remaining_s)
{
	return remaining_s > 0 ? (json_int_t)ceil(remaining_s) : 0;
}

void ndi_lease_key(const struct ndi *n, const char *device_id, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%s", oh_module(n->ctx), device_id);
}

/* {device_id, holder, expires_at, remaining_s}: who holds a lease, until when. */
static json_t *holder_details(const char *device_id, const struct oh_lease *l)
{
	char iso[32];

	return json_pack("{s:s, s:s, s:s, s:I}", "device_id", device_id, "holder", l->holder, "expires_at",
			oh_format_time(l->expires_at, iso, sizeof(iso)), "remaining_s",
			secs_left(l->remaining_s));
}

static void held_by_text(char *buf, size_t len, const char *device_id, const struct oh_lease *l)
{
	snprintf(buf, len, "%s is reserved by %s for another %lld s", device_id, l->holder,
			(long long)secs_left(l->remaining_s));
}

/* ---- actions and their parameters ------------------------------------------- */

/* lease_s: above 0 and at most max_lease_s, a setting, so a check rather
 * than the table's range (one text for both ends); ud is the plugin. */
static const char *lease_s_check(const json_t *v, void *ud, char *buf, size_t len)
{
	const struct ndi *n = ud;
	double d = json_number_value(v);

	if(d > 0 && d <= n->set.max_lease_s)
		return NULL;
	snprintf(buf, len, "%g is out of range: expected above 0 and at most %g (max_lease_s)", d,
			n->set.max_lease_s);
	return buf;
}

#define F_DEVICE_ID OH_VFIELD("device_id", OH_VT_STRING, OH_VF_REQUIRED, .check = oh_vcheck_device_id)
#define F_SOURCE(flags)                                                                                      \
	OH_VFIELD("source", OH_VT_STRING, (flags) | OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 1024)
#define F_LEASE_S OH_VFIELD("lease_s", OH_VT_NUMBER, 0, .check = lease_s_check)

static const struct oh_vfield device_only[] = {F_DEVICE_ID, OH_VFIELD_END};
static const struct oh_vfield with_source[] = {F_DEVICE_ID, F_SOURCE(OH_VF_REQUIRED), OH_VFIELD_END};
static const struct oh_vfield opt_source[] = {F_DEVICE_ID, F_SOURCE(0), OH_VFIELD_END};
static const struct oh_vfield with_lease[] = {F_DEVICE_ID, F_LEASE_S, OH_VFIELD_END};

/* A relayed command's parameters the host does not know go to the device
 * untouched: it may know more than the host does.  The lease actions are
 * the host's own, so a key they do not know is a typo ("lease": 30) and is
 * refused rather than silently ignored. */
static const struct oh_vobject relay_device = OH_VOBJECT(device_only, OH_V_IGNORE);
static const struct oh_vobject relay_source = OH_VOBJECT(with_source, OH_V_IGNORE);
static const struct oh_vobject relay_opt_source = OH_VOBJECT(opt_source, OH_V_IGNORE);
static const struct oh_vobject lease_take = OH_VOBJECT(with_lease, OH_V_REFUSE);
static const struct oh_vobject lease_drop = OH_VOBJECT(device_only, OH_V_REFUSE);

/* A route: source null (or absent) shows nothing. */
#define F_ROUTE_SOURCE                                                                                       \
	OH_VFIELD("source", OH_VT_STRING, OH_VF_NULL | OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 1024)
#define F_RECORDING OH_VFIELD("recording", OH_VT_BOOL, 0)
static const struct oh_vfield route_fields[] = {F_DEVICE_ID, F_ROUTE_SOURCE, F_RECORDING, OH_VFIELD_END};
static const struct oh_vobject route_params = OH_VOBJECT(route_fields, OH_V_REFUSE);
static const struct oh_vfield entry_fields[] = {F_ROUTE_SOURCE, F_RECORDING, OH_VFIELD_END};
const struct oh_vobject ndi_route_entry = OH_VOBJECT(entry_fields, OH_V_REFUSE);
static const struct oh_vfield preset_fields[] = {
		OH_VFIELD("name", OH_VT_STRING, OH_VF_REQUIRED, .check = oh_vcheck_device_id),
		OH_VFIELD_END,
};
static const struct oh_vobject preset_params = OH_VOBJECT(preset_fields, OH_V_REFUSE);

int ndi_route_entry_check(const json_t *entry, const char *path, char *err, size_t errlen)
{
	const json_t *source = json_object_get(entry, "source");

	if(!json_is_true(json_object_get(entry, "recording")) || json_is_string(source))
		return OH_OK;
	snprintf(err, errlen, "%s%srecording: true needs a source to record", path, *path ? "." : "");
	return OH_ERR_INVAL;
}

struct request {
	const char *req_id;
	const char *action;
	const char *actor; /* effective: "anonymous" when absent */
	const char *device_id;
	const json_t *params;
	const json_t *envelope;
	const struct oh_message *msg; /* the app's message, for a byte-exact relay */
	const char *path;             /* what errors name params as ("params", or "" for REST) */
};

typedef json_t *(*action_fn)(struct ndi *n, const struct request *r);

static json_t *run_relay(struct ndi *n, const struct request *r);
static json_t *run_reserve(struct ndi *n, const struct request *r);
static json_t *run_renew(struct ndi *n, const struct request *r);
static json_t *run_release(struct ndi *n, const struct request *r);
static json_t *run_force_release(struct ndi *n, const struct request *r);
static json_t *run_route(struct ndi *n, const struct request *r);
static json_t *run_unroute(struct ndi *n, const struct request *r);
static json_t *run_apply_preset(struct ndi *n, const struct request *r);

struct action {
	const char *name;
	action_fn run;
	bool relay;                      /* a pass-through to the device */
	const struct oh_vobject *params; /* what params must hold */
	bool job;                        /* may be a scheduled job's command */
};

/* The one table of actions: MQTT, REST and scheduled jobs all check a
 * command's params against the entry here, once, before it runs. */
static const struct action actions[] = {
		{"start", run_relay, true, &relay_source, true},
		{"stop", run_relay, true, &relay_device, true},
		{"set_input", run_relay, true, &relay_source, true},
		{"record_start", run_relay, true, &relay_opt_source, true},
		{"record_stop", run_relay, true, &relay_device, true},
		{"reserve", run_reserve, false, &lease_take, false},
		{"renew", run_renew, false, &lease_take, false},
		{"release", run_release, false, &lease_drop, false},
		{"force_release", run_force_release, false, &lease_drop, false},
		{"route", run_route, false, &route_params, true},
		{"unroute", run_unroute, false, &lease_drop, true},
		{"apply_preset", run_apply_preset, false, &preset_params, true},
};

static const struct action *action_find(const char *name)
{
	if(!name)
		return NULL;
	for(size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if(!strcmp(actions[i].name, name))
			return &actions[i];
	}
	return NULL;
}

/* The text of an unknown action, the same on every road. */
static void unknown_action(const char *name, char *err, size_t len)
{
	if(!name)
		name = "";
	snprintf(err, len, "action: unknown action \"%.*s\"", oh_utf8_cut(name, 64), name);
}

/*
 * Checks params (borrowed; NULL counts as {}) against the action's table,
 * naming fields under path ("params" on the command topic).  OH_OK, or
 * OH_ERR_INVAL with err "{path}.{field}: {why}".
 */
static int params_validate(struct ndi *n, const struct action *a, const json_t *params, const char *path,
		char *err, size_t len)
{
	json_t *empty = params ? NULL : json_object();
	int rc = oh_json_validate(params ? params : empty, a->params, path, n, err, len);

	json_decref(empty);
	return rc;
}

/* BAD_REQUEST for a validation error (err as from oh_json_validate):
 * details.field is the path it names. */
static json_t *bad_field(const struct request *r, const char *err)
{
	const char *colon = strstr(err, ": ");
	json_t *details = json_pack("{s:s%}", "field", err, colon ? (size_t)(colon - err) : strlen(err));
	/* Naming a valid device lets the command log say which one it was. */
	const char *dev = json_string_value(json_object_get(r->params, "device_id"));

	if(details && oh_device_id_valid(dev))
		json_object_set_new(details, "device_id", json_string(dev));
	return ack_make(r->req_id, "BAD_REQUEST", r->action, r->actor, err, details);
}

/* params (borrowed, may be NULL) with device_id added when missing, as the
 * device will get them (returned); NULL when out of memory. */
static json_t *params_with_device(const json_t *params, const char *device_id)
{
	json_t *full = json_is_object(params) ? json_copy((json_t *)params)
			: params              ? json_incref((json_t *)params)
					      : json_object();

	if(json_is_object(full) && device_id && !json_object_get(full, "device_id") &&
			json_object_set_new(full, "device_id", json_string(device_id))) {
		json_decref(full);
		return NULL;
	}
	return full;
}

/* ---- the relay ---------------------------------------------------------------- */

/* The envelope the device gets.  An app's envelope keeps every field (only
 * req_id is inserted when missing, so the device's ack can be matched);
 * one the host originates names the host as actor, because the devices
 * refuse unknown actors, and the real requester in requested_by. */
static json_t *relay_envelope(const char *device_id, const char *action, const json_t *params,
		const char *requester, const char *req_id, const json_t *envelope)
{
	json_t *out, *p;
	char ts[32];

	if(envelope) {
		out = json_copy((json_t *)envelope);
		/* Missing or empty: the device would make up its own, and its
		 * ack could not be matched. */
		const char *had = json_string_value(json_object_get(out, "req_id"));
		if(out && (!had || strcmp(had, req_id))) {
			if(json_object_set_new(out, "req_id", json_string(req_id))) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	p = params ? json_deep_copy(params) : json_object();
	if(!p || json_object_set_new(p, "device_id", json_string(device_id))) {
		json_decref(p);
		return NULL;
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:n, s:n}", "req_id", req_id, "actor", NDI_HOST_ACTOR,
			"requested_by", requester, "ts", oh_format_time(now_wall(), ts, sizeof(ts)), "action",
			action, "params", p, "reply_to", "ttl_s");
}

/* The pieces (up to a NULL) as one JSON string, or NULL when out of memory:
 * what json_sprintf("%s...") gives, without formatting twice (a warning
 * may go with every relayed command).  Every piece is UTF-8 already (our
 * texts, a checked device id, a JSON string's value, a module name), so
 * their concatenation is too and is not checked again. */
static json_t *text_join(const char *const *parts)
{
	char stack[512] = "", *buf = stack;
	size_t len = 0, at = 0;
	json_t *out;

	for(const char *const *p = parts; *p; p++)
		len += strlen(*p);
	if(len >= sizeof stack && !(buf = malloc(len + 1)))
		return NULL;
	for(const char *const *p = parts; *p; p++) {
		size_t l = strlen(*p);
		memcpy(buf + at, *p, l);
		at += l;
	}
	out = json_stringn_nocheck(buf, at);
	if(buf != stack)
		free(buf);
	return out;
}

/* The DISPATCHED ack's "warnings" (returned, or NULL for none): a device
 * this host's registry does not know, and a source the host's discovery
 * has not seen.  Both are relayed all the same, on every path: an agent can
 * be alive while the registry has not heard its meta yet (after a restart,
 * or behind a broker ACL), and devices find sources the host cannot (mDNS is
 * link-local; discovery servers and groups differ). */
static json_t *relay_warnings(struct ndi *n, const char *device_id, bool known, const json_t *params)
{
	const char *source = json_string_value(json_object_get(params, "source"));
	bool unseen = source && !ndi_discovery_has(n->discovery, source);
	json_t *out;

	/* The usual relay warns of nothing and allocates nothing. */
	if(known && !unseen)
		return NULL;
	if(!(out = json_array()))
		return NULL;
	if(!known)
		json_array_append_new(out,
				text_join((const char *[]){"device_id: device ", device_id,
						" is not in the registry (GET /api/registry"
						" lists those it is); relayed anyway",
						NULL}));
	/* Quoted whole: a cut could split a UTF-8 character. */
	if(unseen)
		json_array_append_new(out,
				text_join((const char *[]){"params.source: the host's discovery has not seen NDI"
							   " source \"",
						source, "\" (GET /api/", oh_module(n->ctx),
						"/sources lists those it has); relayed anyway", NULL}));
	return out;
}

/* Relays a command whose params passed the action's table: the lease, the
 * offline check, pending tracking and the publish (see ndi_dispatch). */
static int relay(struct ndi *n, const struct request *r, json_t **ack_out)
{
	oh_ctx *ctx = n->ctx;
	const char *device_id = r->device_id, *action = r->action, *actor = r->actor, *req_id = r->req_id;
	const json_t *params = r->params, *envelope = r->envelope;
	const struct oh_message *msg = r->msg;
	char key[128], topic[512], err[256];
	struct oh_lease lease;
	struct oh_device dev;
	json_t *out;
	int rc;
	bool known;

	*ack_out = NULL;
	/* Reservations hold on every path: only the holder may drive a leased
	 * device. */
	ndi_lease_key(n, device_id, key, sizeof(key));
	rc = oh_lease_can_use(ctx, key, actor, &lease);
	if(rc == OH_ERR_IN_USE) {
		held_by_text(err, sizeof(err), device_id, &lease);
		*ack_out = ack_make(req_id, err_code(rc, OP_RELAY), action, actor, err,
				holder_details(device_id, &lease));
		return rc;
	}
	if(rc) {
		snprintf(err, sizeof(err), "cannot check the reservation of %s: %s", device_id,
				oh_strerror(rc));
		*ack_out = ack_make(req_id, err_code(rc, OP_RELAY), action, actor, err,
				json_pack("{s:s}", "device_id", device_id));
		return rc;
	}

	/* Only an explicit "online": false stops a relay; a device never heard
	 * from, or of unknown state, gets the command, as the original host did. */
	known = oh_device_get(ctx, device_id, &dev) == OH_OK;
	if(!n->set.relay_when_offline && known && dev.online == 0) {
		snprintf(err, sizeof(err), "device %s is offline", device_id);
		*ack_out = ack_make(req_id, "OFFLINE", action, actor, err,
				json_pack("{s:s}", "device_id", device_id));
		return OH_ERR_NO_CONN;
	}

	rc = ndi_pending_add(n, device_id, req_id, action, actor);
	if(rc == OH_ERR_EXISTS) {
		snprintf(err, sizeof(err), "req_id \"%s\" is already in flight to %s", req_id, device_id);
		*ack_out = ack_make(req_id, err_code(rc, OP_RELAY), action, actor, err,
				json_pack("{s:s}", "field", "req_id"));
		return rc;
	}
	if(rc == OH_ERR_TOO_LARGE) {
		/* ndi_pending_add checks max_pending first: a full table means it. */
		long all = oh_limit(ctx, "max_pending");
		bool full = all > 0 && ndi_pending_count(n) >= (size_t)all;

		*ack_out = limit_ack(n, req_id, action, actor,
				full ? "max_pending" : "max_pending_per_device", device_id);
		return rc;
	}
	if(rc)
		return rc;

	snprintf(topic, sizeof(topic), "%s/device/%s/%s/cmd", oh_topic_root(ctx), device_id, oh_module(ctx));
	const char *had = json_string_value(json_object_get(envelope, "req_id"));
	if(msg && had && !strcmp(had, req_id)) {
		/* Nothing to add: the device gets the app's bytes as they came. */
		rc = oh_publish(ctx, topic, msg->payload, msg->len, 1, false);
	} else {
		out = relay_envelope(device_id, action, params, actor, req_id, envelope);
		rc = out ? oh_publish_json(ctx, topic, out, 1, false) : OH_ERR_NOMEM;
		json_decref(out);
	}
	if(rc) {
		ndi_pending_drop(n, device_id, req_id);
		oh_log(ctx, OH_LOG_WARN, "relay of %s to %s failed: %s", req_id, topic, oh_strerror(rc));
		snprintf(err, sizeof(err), "cannot relay to %s: %s", device_id, oh_strerror(rc));
		*ack_out = ack_make(req_id, err_code(rc, OP_RELAY), action, actor, err,
				json_pack("{s:s}", "device_id", device_id));
		return rc;
	}
	/* {device_id, topic}, set directly: json_pack would parse its format
	 * for every relayed command. */
	json_t *details = json_object();
	if(details) {
		json_object_set_new(details, "device_id", json_string(device_id));
		json_object_set_new(details, "topic", json_string(topic));
	}
	*ack_out = ack_make(req_id, err_code(OH_OK, OP_RELAY), action, actor, NULL, details);
	if(*ack_out && (out = relay_warnings(n, device_id, known, params)))
		json_object_set_new(*ack_out, "warnings", out);
	return OH_OK;
}

int ndi_dispatch(struct ndi *n, const char *device_id, const char *action, const json_t *params,
		const char *requester, const char *req_id, const struct oh_message *msg, json_t **ack_out)
{
	const json_t *envelope = msg ? msg->json : NULL;
	const struct action *a = action_find(action);
	char idbuf[40], err[256];
	struct request r;
	json_t *full;
	int rc;

	*ack_out = NULL;
	if(!req_id) {
		oh_new_id(idbuf, sizeof(idbuf));
		req_id = idbuf;
	}
	if(envelope)
		params = json_object_get(envelope, "params");
	r = (struct request){.req_id = req_id,
			.action = action,
			.actor = requester && *requester ? requester : NDI_ANONYMOUS,
			.device_id = device_id,
			.params = params,
			.envelope = envelope,
			.msg = msg};
	if(!a || !a->relay) {
		unknown_action(action, err, sizeof(err));
		*ack_out = ack_make(req_id, "BAD_ACTION", action, r.actor, err, NULL);
		return OH_ERR_INVAL;
	}
	/* The table sees the params the device will get: device_id included. */
	full = params_with_device(params, device_id);
	rc = full ? params_validate(n, a, full, "params", err, sizeof(err)) : OH_ERR_NOMEM;
	json_decref(full);
	if(rc) {
		*ack_out = rc == OH_ERR_INVAL ? bad_field(&r, err) : NULL;
		return rc;
	}
	/* An app's envelope is relayed as is, so the id it carries must be the
	 * one whose topic and lease we check. */
	const char *pid = json_string_value(json_object_get(params, "device_id"));
	if(!oh_device_id_valid(device_id) || (envelope && (!pid || strcmp(pid, device_id)))) {
		*ack_out = bad_field(&r, "params.device_id: does not match the device addressed");
		return OH_ERR_INVAL;
	}
	return relay(n, &r, ack_out);
}

static json_t *run_relay(struct ndi *n, const struct request *r)
{
	json_t *ack = NULL;

	/* Validated by the caller (ndi_on_command, ndi_run): relay at once. */
	relay(n, r, &ack);
	return ack;
}

/* ---- leases --------------------------------------------------------------------- */

static double lease_s_of(const struct ndi *n, const struct request *r)
{
	const json_t *v = json_object_get(r->params, "lease_s");

	/* null is absence (include/oh/validate.h): the default. */
	return json_is_number(v) ? json_number_value(v) : n->set.default_lease_s;
}

/* The ack for a lease call that did not succeed. */
static json_t *lease_refused(const struct ndi *n, const struct request *r, int rc, const struct oh_lease *l)
{
	char err[256];

	switch(rc) {
	case OH_ERR_TOO_LARGE: /* only oh_lease_take, for a new lease */
		return limit_ack(n, r->req_id, r->action, r->actor, "max_leases", r->device_id);
	case OH_ERR_IN_USE:
	case OH_ERR_NOT_OWNER:
		held_by_text(err, sizeof(err), r->device_id, l);
		return ack_make(r->req_id, err_code(rc, OP_LEASE), r->action, r->actor, err,
				holder_details(r->device_id, l));
	case OH_ERR_NOT_HELD:
	case OH_ERR_NOT_FOUND:
		snprintf(err, sizeof(err), "%s is not reserved", r->device_id);
		break;
	default:
		snprintf(err, sizeof(err), "%s of %s failed: %s", r->action, r->device_id, oh_strerror(rc));
		oh_log(n->ctx, OH_LOG_ERROR, "%s", err);
		break;
	}
	return ack_make(r->req_id, err_code(rc, OP_LEASE), r->action, r->actor, err,
			json_pack("{s:s}", "device_id", r->device_id));
}

/* {device_id, holder, expires_at, lease_s}: the lease as it now stands. */
static json_t *lease_granted(const struct request *r, const struct oh_lease *l, double lease_s)
{
	char iso[32];

	return ack_make(r->req_id, "OK", r->action, r->actor, NULL,
			json_pack("{s:s, s:s, s:s, s:o}", "device_id", r->device_id, "holder", l->holder,
					"expires_at", oh_format_time(l->expires_at, iso, sizeof(iso)),
					"lease_s", json_num(lease_s)));
}

/* reserve and renew: the same request and ack, a different host call. */
static json_t *run_hold(struct ndi *n, const struct request *r, bool renew)
{
	char key[128];
	double lease_s = lease_s_of(n, r);
	struct oh_lease l = {0};
	int rc;

	ndi_lease_key(n, r->device_id, key, sizeof(key));
	rc = renew ? oh_lease_renew(n->ctx, key, r->actor, lease_s, &l)
		   : oh_lease_take(n->ctx, key, r->actor, lease_s, &l);
	if(rc)
		return lease_refused(n, r, rc, &l);
	return lease_granted(r, &l, lease_s);
}

static json_t *run_reserve(struct ndi *n, const struct request *r)
{
	return run_hold(n, r, false);
}

static json_t *run_renew(struct ndi *n, const struct request *r)
{
	return run_hold(n, r, true);
}

/* release and force_release once allowed: the holder's own release, or an
 * admin's (force) of whoever holds it, which is logged and names them. */
static json_t *run_unhold(struct ndi *n, const struct request *r, bool force)
{
	char key[128];
	struct oh_lease l = {0};
	int rc;

	ndi_lease_key(n, r->device_id, key, sizeof(key));
	rc = force ? oh_lease_force_release(n->ctx, key, &l) : oh_lease_release(n->ctx, key, r->actor, &l);
	if(rc)
		return lease_refused(n, r, rc, &l);
	if(!force)
		return ack_make(r->req_id, "OK", r->action, r->actor, NULL,
				json_pack("{s:s}", "device_id", r->device_id));
	/* Breaking someone's reservation is an admin action: keep a trace. */
	oh_log(n->ctx, OH_LOG_WARN,
			"force_release of %s by %s (req_id %s): was held by %s, "
			"%lld s left",
			key, r->actor, r->req_id, l.holder, (long long)secs_left(l.remaining_s));
	return ack_make(r->req_id, "OK", r->action, r->actor, NULL,
			json_pack("{s:s, s:s, s:s}", "device_id", r->device_id, "previous_holder", l.holder,
					"released_by", r->actor));
}

static json_t *run_release(struct ndi *n, const struct request *r)
{
	return run_unhold(n, r, false);
}

static bool is_admin(const struct ndi *n, const char *actor)
{
	size_t i;
	const json_t *item;

	/* No list configured: every actor may break a lease (documented). */
	if(!n->set.admins)
		return true;
	json_array_foreach(n->set.admins, i, item)
	{
		if(!strcmp(json_string_value(item), actor))
			return true;
	}
	return false;
}

static json_t *run_force_release(struct ndi *n, const struct request *r)
{
	char err[256];

	if(!is_admin(n, r->actor)) {
		oh_log(n->ctx, OH_LOG_WARN, "force_release of %s refused: %s is not an admin", r->device_id,
				r->actor);
		snprintf(err, sizeof(err), "%s is not allowed to force_release", r->actor);
		return ack_make(r->req_id, err_code(OH_ERR_DENIED, OP_LEASE), r->action, r->actor, err,
				json_pack("{s:s}", "device_id", r->device_id));
	}
	return run_unhold(n, r, true);
}

/* ---- routes (ndi_routes.c) ------------------------------------------------------ */

static json_t *run_route(struct ndi *n, const struct request *r)
{
	char err[256];

	if(ndi_route_entry_check(r->params, r->path ? r->path : "params", err, sizeof err))
		return bad_field(r, err);
	return ndi_route_put(n, r->req_id, r->actor, r->device_id, r->params);
}

static json_t *run_unroute(struct ndi *n, const struct request *r)
{
	return ndi_route_delete(n, r->req_id, r->actor, r->device_id);
}

static json_t *run_apply_preset(struct ndi *n, const struct request *r)
{
	return ndi_preset_apply(n, r->req_id, r->actor, json_string_value(json_object_get(r->params, "name")));
}

/* ---- entry points -------------------------------------------------------------- */

bool ndi_action_relayed(const char *action)
{
	const struct action *a = action_find(action);

	return a && a->relay;
}

/* The one road of a command into the actions table (MQTT and REST): its
 * params are checked once against its action's entry, naming fields under
 * path, then it runs (a relay goes straight to relay()). */
static json_t *run_checked(struct ndi *n, struct request *r, const char *path)
{
	const struct action *a = action_find(r->action);
	char err[256];

	if(!a) {
		unknown_action(r->action, err, sizeof(err));
		return ack_make(r->req_id, "BAD_ACTION", r->action, r->actor, err, NULL);
	}
	if(params_validate(n, a, r->params, path, err, sizeof(err)))
		return bad_field(r, err);
	r->path = path;
	r->device_id = json_string_value(json_object_get(r->params, "device_id"));
	return a->run(n, r);
}

json_t *ndi_run(struct ndi *n, const char *action, const json_t *params, const char *path, const char *actor,
		const char *req_id)
{
	char idbuf[40];
	struct request r;

	if(!req_id || !*req_id) {
		oh_new_id(idbuf, sizeof(idbuf));
		req_id = idbuf;
	}
	r = (struct request){.req_id = req_id,
			.action = action ? action : "",
			.actor = actor && *actor ? actor : NDI_ANONYMOUS,
			.params = params};
	return run_checked(n, &r, path);
}

/* The scheduler's executor: one command of a job, relayed as its owner
 * (host-originated envelope: actor "orchestrator", requested_by owner).
 * ndi_dispatch checks it against the table again: a job restored from the
 * store may have been written by an older version. */
json_t *ndi_job_exec(oh_ctx *ctx, const char *job_id, const char *owner, const json_t *command, void *ud)
{
	struct ndi *n = ud;
	json_t *ack = NULL;
	const char *device_id = json_string_value(json_object_get(command, "device_id"));
	const char *action = json_string_value(json_object_get(command, "action"));

	(void)job_id;
	if(ndi_action_relayed(action)) {
		ndi_dispatch(n, device_id, action, json_object_get(command, "params"), owner, NULL, NULL, &ack);
	} else {
		/* route, unroute, apply_preset: as the command topic runs them. */
		json_t *params = params_with_device(json_object_get(command, "params"), device_id);
		ack = params ? ndi_run(n, action, params, "params", owner, NULL) : NULL;
		json_decref(params);
	}
	/* Published as the command topic and REST publish theirs, so that
	 * subscribers see DISPATCHED (with its warnings), then the outcome; a
	 * refusal is reported by the scheduler as SKIPPED. */
	if(ack && json_is_true(json_object_get(ack, "ok")))
		oh_ack_publish(ctx, json_incref(ack));
	return ack;
}

/* Checks a job's command when it is scheduled: only pass-through actions,
 * with params as their entry in the actions table asks (device_id is the
 * command's, checked by the host). */
int ndi_job_validate(oh_ctx *ctx, const json_t *command, char *err, size_t errlen)
{
	struct ndi *n = oh_data(ctx);
	const char *name = json_string_value(json_object_get(command, "action"));
	const struct action *a = action_find(name);
	json_t *full;
	int rc;

	if(!a) {
		unknown_action(name, err, errlen);
		return OH_ERR_NOT_FOUND; /* BAD_ACTION */
	}
	if(!a->job) {
		snprintf(err, errlen,
				"action: \"%s\" cannot be scheduled (only start, stop, "
				"set_input, record_start, record_stop, route, unroute, apply_preset)",
				name);
		return OH_ERR_INVAL;
	}
	/* apply_preset alone names no device; the host left device_id to us. */
	const char *device_id = json_string_value(json_object_get(command, "device_id"));
	bool names_device = a->params != &preset_params;
	if(names_device != (device_id != NULL)) {
		snprintf(err, errlen,
				names_device ? "device_id: missing (expected a string)"
					     : "device_id: unknown key (apply_preset names no device)");
		return OH_ERR_INVAL;
	}
	if(!n)
		return OH_OK;
	full = params_with_device(json_object_get(command, "params"), device_id);
	rc = full ? params_validate(n, a, full, "params", err, errlen) : OH_ERR_NOMEM;
	if(!rc && a->run == run_route)
		rc = ndi_route_entry_check(full, "params", err, errlen);
	json_decref(full);
	return rc;
}

void ndi_on_command(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct ndi *n = ud;
	struct oh_command cmd;
	const char *code = NULL;
	char err[256] = "";
	struct request r;
	json_t *ack;

	/* A retained command would run again on every reconnect and restart. */
	if(msg->retained) {
		oh_log(ctx, OH_LOG_WARN,
				"ignoring a retained command on %s; clear it with an "
				"empty retained message",
				msg->topic);
		return;
	}

	/* Never an empty req_id here: oh_command_parse generates one for a
	 * missing or empty id, and the relay then carries it. */
	if(oh_command_parse(ctx, msg, &cmd, &code, err, sizeof(err))) {
		if(!code)
			code = "BAD_REQUEST";
		oh_ack_publish(ctx,
				ack_make(cmd.req_id, code, cmd.action, cmd.actor ? cmd.actor : NDI_ANONYMOUS,
						err[0] ? err : code, NULL));
		return;
	}
	r = (struct request){.req_id = cmd.req_id,
			.action = cmd.action,
			.actor = cmd.actor && *cmd.actor ? cmd.actor : NDI_ANONYMOUS,
			.params = cmd.params,
			.envelope = cmd.envelope,
			.msg = msg};

	/* schedule, unschedule, jobs: the host's scheduler service. */
	ack = oh_scheduler_command(ctx, &cmd);
	if(ack)
		goto publish;
	ack = run_checked(n, &r, "params");

publish:
	if(!ack) {
		oh_log(ctx, OH_LOG_ERROR, "out of memory acking %s", r.req_id);
		return;
	}
	oh_ack_publish(ctx, ack);
}

void ndi_on_lease_expired(oh_ctx *ctx, const char *key, const char *holder, void *ud)
{
	char req_id[40], err[256];
	const char *colon = strchr(key, ':');
	const char *device_id = colon ? colon + 1 : key;

	(void)ud;
	oh_new_id(req_id, sizeof(req_id));
	snprintf(err, sizeof(err), "the reservation of %s by %s expired", device_id, holder);
	oh_log(ctx, OH_LOG_INFO, "%s", err);
	oh_ack_publish(ctx,
			ack_make(req_id, "EXPIRED", "reserve", holder, err,
					json_pack("{s:s, s:s}", "device_id", device_id, "holder", holder)));
}
