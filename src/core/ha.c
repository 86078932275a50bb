/*
 * Leadership among hosts that share a PostgreSQL store (docs/ha.md).
 *
 * Exactly one host acts: it relays commands, fires jobs, expires leases
 * and publishes the registry snapshot.  The others (standbys) read the
 * device topics, serve GETs and the UI, and answer state-changing REST
 * calls with 503 and the leader's advertise_url (http.c).  With the
 * SQLite store there is one host and it always acts ("single").
 *
 * The lead is a row in the database plus a session advisory lock, taken
 * and renewed by oh_lead() (store_pg.c) every HA_TICK_S:
 * - a leader killed outright loses its session, hence its lock, at once,
 *   and the next standby to ask takes over with a new fencing epoch;
 * - a leader cut off from the database stops acting lease_s after the last
 *   renewal it sent that was answered, before the row's deadline, and a
 *   standby ends its session only lease_s + margin after that deadline;
 * - every state write is refused by the database unless it comes from the
 *   session holding the current epoch (the oh_fence trigger).
 * A leader that loses the lead, or whose write is refused, exits with
 * status 75 (EX_TEMPFAIL), as Kubernetes controllers do when their lease
 * is lost: what it held in memory is what it might have got wrong, and
 * systemd (Restart=always) starts it again as a standby, from the
 * database.  No half-reset state to get wrong.
 *
 * Commands reach only the leader: it alone holds a second MQTT session,
 * persistent (clean session off) on ha.client_id, subscribed at QoS 1 to
 * {root}/orchestrator/+/cmd.  While no leader is connected the broker
 * keeps the QoS 1 commands for that session, and the next leader, taking
 * over the client id, gets them once.  The main connection ignores those
 * topics on every host of a pair.
 */
#include "core.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mqtt_link.h"
#include "store.h"
#include "store_pg.h"
#include "timeutil.h"
#include "topics.h"

/* How often a standby asks for the lead and the leader renews it. */
#define HA_TICK_S 0.25
/* A standby waits this long past the leader's deadline (timer slop). */
#define HA_MARGIN_S 1.0
/* oh_job_runs rows older than this go, at take-over and hourly. */
#define HA_RUNS_KEPT "7 days"
#define HA_PRUNE_EVERY_S 3600
/* The exit status of a host that stopped leading (EX_TEMPFAIL). */
#define HA_EXIT_STEPPED_DOWN 75

enum ha_role {
	HA_SINGLE,
	HA_STANDBY,
	HA_LEADER
};

struct ha {
	struct host *h;
	struct pg_store *pg; /* borrowed: the store's */
	enum ha_role role;
	bool acting;      /* leader with its state loaded */
	bool asking;      /* an oh_lead() in flight */
	double asked_at;  /* mono time it was sent */
	double pruned_at; /* mono time oh_job_runs was last pruned */
	struct event *tick, *deadline;
	char leader_node[128];
	char leader_url[512];
	bool leader_known;
	long long epoch;
	char *cmd_filter;       /* owned: {root}/orchestrator/+/cmd */
	struct mqtt_link *link; /* owned: the leader's persistent session */
	char why[300];          /* standby: why not leading, for /healthz */
	void (*on_lead)(struct host *h);
	ha_deliver_fn deliver;
	void (*on_view)(struct host *h); /* the standby's view of the leases changed */
	/* A standby's view of the leader's leases and jobs, read every lease_s
	 * (owned; NULL until the first answer). */
	PGresult *view_leases, *view_jobs;
	double viewed_at; /* mono time the view was last asked for */
};

static void step_down(struct ha *ha, const char *why)
{
	log_error("ha",
			"%s: no longer the leader (epoch %lld); exiting so that a fresh start "
			"rejoins as a standby",
			why, ha->epoch);
	fflush(NULL);
	_exit(HA_EXIT_STEPPED_DOWN);
}

/* ---- the leader's command session -------------------------------------------- */

/* Retained, QoS 1, on the leader's session only, so a standby never
 * overwrites the leader's presence (docs/ha.md). */
static void publish_presence(struct ha *ha, bool online)
{
	char *topic = host_presence_topic(ha->h);
	char *text = host_presence_payload(ha->h, online);
	if(!topic || !text || mqtt_link_publish(ha->link, topic, text, strlen(text), 1, true))
		log_warn("ha", "cannot publish the leader's %s status", online ? "online" : "offline");
	free(topic);
	free(text);
}

static void cmd_connect(struct mqtt_link *link, void *ud)
{
	struct ha *ha = ud;
	mqtt_link_subscribe(link, ha->cmd_filter, 1);
	publish_presence(ha, true);
}

static void cmd_message(struct mqtt_link *link, const char *topic, const void *payload, size_t len,
		bool retained, void *ud)
{
	struct ha *ha = ud;
	if(ha->acting)
		ha->deliver(ha->h, topic, payload, len, retained);
}

static int cmd_link_start(struct ha *ha)
{
	struct host *h = ha->h;
	struct mqtt_tls_opts tls;
	struct mqtt_link_opts mo;
	conf_mqtt_link_opts(&h->cfg.mqtt, &mo, &tls);
	mo.client_id = h->cfg.ha.client_id;
	mo.log_prefix = "mqtt-leader";
	/* 3.1.1's clean session off: the session and its queue never expire
	 * (an MQTT 5 session would need an expiry interval on CONNECT). */
	mo.mqtt5 = false;
	mo.persistent = true;
	/* The host's presence is the leader's: its will is this session's. */
	char *will_topic = host_presence_topic(h);
	char *will = host_presence_payload(h, false);
	mo.will_topic = will_topic;
	mo.will_payload = will;
	mo.will_qos = 1;
	mo.will_retain = true;
	struct mqtt_link_callbacks cb = {cmd_connect, NULL, cmd_message, NULL};
	ha->link = will_topic && will ? mqtt_link_new(h->base, &mo, &cb, ha) : NULL;
	free(will_topic);
	free(will);
	return ha->link ? mqtt_link_start(ha->link) : OH_ERR_INVAL;
}

/* ---- taking and keeping the lead --------------------------------------------- */

/* The runs table only guards against a second run of the same due time:
 * a week of it is plenty. */
static void prune_runs(struct ha *ha)
{
	ha->pruned_at = time_now_mono();
	pg__query(ha->pg, "DELETE FROM oh_job_runs WHERE at < now() - interval '" HA_RUNS_KEPT "'", 0, NULL,
			NULL, NULL);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	step_down(arg, "no renewal answered by PostgreSQL for ha.lease_s");
}

static void loaded(void *ud, bool ok)
{
	struct ha *ha = ud;
	struct host *h = ha->h;
	if(!ok)
		step_down(ha, "could not read the leases and jobs");
	/* The loads hand out the rows just fetched; they cannot fail here. */
	pg__set_writable(ha->pg, true);
	ha->acting = true;
	ha->on_lead(h);
	prune_runs(ha);
	if(cmd_link_start(ha))
		step_down(ha, "could not start the command session");
	log_info("ha", "%s leads (epoch %lld): relaying commands, firing jobs", h->cfg.ha.node_id, ha->epoch);
}

static bool on_lead_result(PGresult *r, void *ud)
{
	struct ha *ha = ud;
	ha->asking = false;
	if(!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		snprintf(ha->why, sizeof ha->why, "PostgreSQL: %s",
				r ? PQresultErrorMessage(r) : pg__error(ha->pg));
		if(ha->role == HA_LEADER)
			step_down(ha, ha->why);
		return false;
	}
	bool mine = !strcmp(PQgetvalue(r, 0, 3), "t");
	ha->leader_known = !PQgetisnull(r, 0, 1);
	snprintf(ha->leader_node, sizeof ha->leader_node, "%s", PQgetvalue(r, 0, 1));
	snprintf(ha->leader_url, sizeof ha->leader_url, "%s", PQgetvalue(r, 0, 2));
	if(ha->role == HA_LEADER && !mine)
		step_down(ha, "another host holds the lead");
	if(mine) {
		/* Acting stops lease_s after this renewal was asked for, which is
		 * before the row's deadline, set when the database answered. */
		time_evtimer_add(ha->deadline, ha->asked_at + ha->h->cfg.ha.lease_s - time_now_mono());
		if(ha->role != HA_LEADER) {
			ha->role = HA_LEADER;
			ha->epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
			ha->why[0] = '\0';
			log_info("ha", "took the lead (epoch %lld); loading the leases and jobs", ha->epoch);
			if(pg__prefetch(ha->pg, loaded, ha))
				step_down(ha, "could not read the leases and jobs");
		}
	} else {
		snprintf(ha->why, sizeof ha->why, "%s leads", ha->leader_known ? ha->leader_node : "nobody");
	}
	return false;
}

static void ask(struct ha *ha)
{
	/* A standby whose question went unanswered this long talks to a
	 * connection the network dropped without a word: start a new one. */
	if(ha->asking && ha->role == HA_STANDBY &&
			time_now_mono() - ha->asked_at > ha->h->cfg.ha.lease_s + HA_MARGIN_S)
		pg__reset(ha->pg, "no answer from PostgreSQL");
	if(ha->asking || !pg__ready(ha->pg))
		return;
	char lease[32], margin[32];
	snprintf(lease, sizeof lease, "%g", ha->h->cfg.ha.lease_s);
	snprintf(margin, sizeof margin, "%g", HA_MARGIN_S);
	const char *p[] = {ha->h->cfg.ha.node_id, ha->h->cfg.ha.advertise_url, lease, margin};
	ha->asked_at = time_now_mono();
	if(!pg__query(ha->pg, "SELECT epoch, node_id, advertise_url, mine FROM oh_lead($1, $2, $3, $4)", 4, p,
			   on_lead_result, ha))
		ha->asking = true;
}

static bool same_rows(const PGresult *a, const PGresult *b)
{
	if(!a || PQntuples(a) != PQntuples(b) || PQnfields(a) != PQnfields(b))
		return false;
	for(int i = 0; i < PQntuples(a); i++)
		for(int c = 0; c < PQnfields(a); c++)
			if(strcmp(PQgetvalue(a, i, c), PQgetvalue(b, i, c)))
				return false;
	return true;
}

static bool on_view_rows(PGresult *r, void *ud)
{
	struct ha *ha = ud;
	if(!r || PQresultStatus(r) != PGRES_TUPLES_OK)
		return false;
	PGresult **slot = !strcmp(PQfname(r, 0), "id") ? &ha->view_jobs : &ha->view_leases;
	bool changed = slot == &ha->view_leases && !same_rows(*slot, r);
	PQclear(*slot);
	*slot = r;
	if(changed)
		ha->on_view(ha->h);
	return true;
}

/* A standby shows the shared leases and jobs, read asynchronously: never
 * more than lease_s old (docs/ha.md). */
static void refresh_view(struct ha *ha)
{
	if(ha->role != HA_STANDBY || !pg__ready(ha->pg) ||
			time_now_mono() - ha->viewed_at < ha->h->cfg.ha.lease_s)
		return;
	ha->viewed_at = time_now_mono();
	if(!pg__query(ha->pg, "SELECT key, holder, expires_at FROM oh_leases", 0, NULL, on_view_rows, ha))
		pg__query(ha->pg, "SELECT id, module, doc FROM oh_jobs ORDER BY seq", 0, NULL, on_view_rows,
				ha);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ha *ha = arg;
	ask(ha);
	refresh_view(ha);
	if(ha->acting && time_now_mono() - ha->pruned_at > HA_PRUNE_EVERY_S)
		prune_runs(ha);
}

static void on_pg_state(void *ud, bool up)
{
	struct ha *ha = ud;
	if(!up) {
		/* The session, and with it the lock, is gone: a standby may lead
		 * already. */
		if(ha->role == HA_LEADER)
			step_down(ha, "the connection to PostgreSQL was lost");
		ha->asking = false;
		return;
	}
	ask(ha);
}

static void on_pg_failed(void *ud, const char *message)
{
	struct ha *ha = ud;
	if(ha->role == HA_LEADER)
		step_down(ha, message);
}

/* ---- core.h --------------------------------------------------------------------- */

int ha_start(struct host *h, void (*on_lead)(struct host *h), ha_deliver_fn deliver,
		void (*on_view)(struct host *h))
{
	struct ha *ha = calloc(1, sizeof *ha);
	if(!ha)
		return OH_ERR_NOMEM;
	h->ha = ha;
	ha->h = h;
	ha->on_lead = on_lead;
	ha->deliver = deliver;
	ha->on_view = on_view;
	ha->pg = store_backend_state(h->store, &store_pg_ops);
	if(!ha->pg) {
		ha->role = HA_SINGLE;
		ha->acting = true;
		return OH_OK;
	}
	ha->role = HA_STANDBY;
	snprintf(ha->why, sizeof ha->why, "waiting for PostgreSQL");
	const char *root = h->cfg.topic_root ? h->cfg.topic_root : "";
	ha->tick = event_new(h->base, -1, EV_PERSIST, on_tick, ha);
	ha->deadline = evtimer_new(h->base, on_deadline, ha);
	if(asprintf(&ha->cmd_filter, "%s/orchestrator/+/cmd", root) < 0)
		ha->cmd_filter = NULL;
	if(!ha->tick || !ha->deadline || !ha->cmd_filter)
		return OH_ERR_NOMEM;
	struct timeval tv = {0, (suseconds_t)(HA_TICK_S * 1e6)};
	event_add(ha->tick, &tv);
	pg__on_events(ha->pg, on_pg_state, on_pg_failed, ha);
	log_info("ha", "%s starts as a standby (lease %g s)", h->cfg.ha.node_id, h->cfg.ha.lease_s);
	return OH_OK;
}

void ha_free(struct host *h)
{
	struct ha *ha = h->ha;
	if(!ha)
		return;
	if(ha->link) {
		/* The will is not sent on a clean disconnect: say it ourselves. */
		if(mqtt_link_connected(ha->link))
			publish_presence(ha, false);
		mqtt_link_stop(ha->link);
		mqtt_link_free(ha->link);
	}
	if(ha->tick)
		event_free(ha->tick);
	if(ha->deadline)
		event_free(ha->deadline);
	free(ha->cmd_filter);
	PQclear(ha->view_leases);
	PQclear(ha->view_jobs);
	free(ha);
	h->ha = NULL;
}

bool ha_acting(const struct host *h)
{
	return !h->ha || h->ha->acting;
}

json_t *ha_view_leases(const struct host *h)
{
	PGresult *r = h->ha ? h->ha->view_leases : NULL;
	json_t *out = json_object();
	for(int i = 0; r && i < PQntuples(r); i++)
		json_object_set_new(out, PQgetvalue(r, i, 0),
				host_lease_json(PQgetvalue(r, i, 1), strtod(PQgetvalue(r, i, 2), NULL)));
	return out;
}

json_t *ha_view_jobs(const struct host *h, const char *module, const char *owner, const char *id)
{
	PGresult *r = h->ha ? h->ha->view_jobs : NULL;
	json_t *out = json_array();
	for(int i = 0; r && i < PQntuples(r); i++) {
		/* Matched on the columns first: a document is parsed only when it
		 * is wanted (one, for a GET of one job). */
		if(strcmp(PQgetvalue(r, i, 1), module) || (id && strcmp(PQgetvalue(r, i, 0), id)))
			continue;
		json_t *doc = json_loads(PQgetvalue(r, i, 2), 0, NULL);
		const char *by = json_string_value(json_object_get(doc, "owner"));
		if(doc && (!owner || (by && !strcmp(owner, by))))
			json_array_append(out, doc);
		json_decref(doc);
	}
	return out;
}

bool ha_paired(const struct host *h)
{
	return h->ha && h->ha->role != HA_SINGLE;
}

bool ha_ignores_topic(const struct host *h, const char *topic)
{
	if(!ha_paired(h))
		return false;
	struct topic_parts t;
	enum topic_place place = topic_parse(h->cfg.topic_root ? h->cfg.topic_root : "", topic, &t);
	return !t.error && place == TOPIC_ORCHESTRATOR && t.module.p && topic_level_is(t.leaf, "cmd");
}

json_t *ha_leader_json(const struct host *h)
{
	const struct ha *ha = h->ha;
	if(!ha_paired(h))
		return json_pack("{s:s, s:o}", "node_id", h->cfg.ha.node_id, "advertise_url",
				h->cfg.ha.advertise_url ? json_string(h->cfg.ha.advertise_url) : json_null());
	if(!ha->leader_known && ha->role != HA_LEADER)
		return json_null();
	return json_pack("{s:s, s:o}", "node_id", ha->leader_node, "advertise_url",
			*ha->leader_url ? json_string(ha->leader_url) : json_null());
}

void ha_health(const struct host *h, json_t *body)
{
	const struct ha *ha = h->ha;
	static const char *const roles[] = {"single", "standby", "leader"};
	enum ha_role role = ha ? ha->role : HA_SINGLE;
	json_object_set_new(body, "role", json_string(roles[role]));
	json_object_set_new(body, "node_id", json_string(h->cfg.ha.node_id));
	json_object_set_new(body, "leader", ha_leader_json(h));
	json_t *store = json_pack("{s:s}", "backend", store_backend(h->store));
	if(ha && ha->pg) {
		json_object_set_new(store, "state",
				json_string(pg__ready(ha->pg) ? "connected" : "disconnected"));
		if(!pg__ready(ha->pg))
			json_object_set_new(store, "error", json_string(pg__error(ha->pg)));
		if(role == HA_STANDBY)
			json_object_set_new(body, "standby_reason", json_string(ha->why));
	}
	json_object_set_new(body, "store", store);
}
