/*
 * Routing of broker messages to handlers.
 *
 * Each (filter, handler) pair is a subscription in the topic tree; the broker
 * gets one SUBSCRIBE per distinct filter, renewed on every reconnect.  A
 * message is parsed as JSON once, whatever the number of handlers, and only
 * when at least one handler matches.  Handlers may unsubscribe (a plugin
 * unloading) while a message is being delivered: removed subscriptions are
 * only marked and freed after the delivery.
 *
 * Inbound only: what the host publishes goes out through publish.c, and
 * the policy on commands plugs in as a gate (dispatch_set_gate), so the
 * router depends on neither.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "mqtt_link.h"
#include "topic_tree.h"

struct sub {
	struct sub *next; /* all subscriptions, for teardown */
	oh_ctx *owner;
	char *filter;
	int qos;
	oh_message_fn fn;
	void *ud;
	bool dead;
};

struct dispatch {
	struct host *host;
	struct topic_tree *tree;
	struct sub *subs;
	int delivering; /* nesting depth of dispatch_on_message */
	bool has_dead;
	dispatch_gate_fn gate; /* NULL: every message reaches the plugins */
};

struct dispatch *dispatch_new(struct host *h)
{
	struct dispatch *d = calloc(1, sizeof *d);
	if(!d)
		return NULL;
	d->host = h;
	d->tree = topic_tree_new();
	if(!d->tree) {
		free(d);
		return NULL;
	}
	return d;
}

void dispatch_set_gate(struct dispatch *d, dispatch_gate_fn gate)
{
	d->gate = gate;
}

static void sub_free(struct sub *s)
{
	free(s->filter);
	free(s);
}

void dispatch_free(struct dispatch *d)
{
	if(!d)
		return;
	struct sub *s = d->subs;
	while(s) {
		struct sub *next = s->next;
		sub_free(s);
		s = next;
	}
	topic_tree_free(d->tree);
	free(d);
}

/* The highest QoS any handler asked for on this filter. */
static int filter_qos(struct dispatch *d, const char *filter)
{
	int qos = 0;
	for(struct sub *s = d->subs; s; s = s->next) {
		if(!s->dead && !strcmp(s->filter, filter) && s->qos > qos)
			qos = s->qos;
	}
	return qos;
}

int dispatch_subscribe(
		struct dispatch *d, oh_ctx *owner, const char *filter, int qos, oh_message_fn fn, void *ud)
{
	if(!filter || !topic_filter_valid(filter) || qos < 0 || qos > 1 || !fn)
		return OH_ERR_INVAL;
	struct sub *s = calloc(1, sizeof *s);
	if(!s)
		return OH_ERR_NOMEM;
	s->filter = strdup(filter);
	if(!s->filter) {
		free(s);
		return OH_ERR_NOMEM;
	}
	s->owner = owner;
	s->qos = qos;
	s->fn = fn;
	s->ud = ud;
	int upgraded = qos > filter_qos(d, filter);
	int rc = topic_tree_add(d->tree, filter, s);
	if(rc) {
		sub_free(s);
		return rc;
	}
	s->next = d->subs;
	d->subs = s;
	/* New filter, or a higher QoS than before: (re)subscribe.  When the
	 * broker is away this happens on connect instead. */
	if((topic_tree_count(d->tree, filter) == 1 || upgraded) && d->host->link &&
			mqtt_link_connected(d->host->link) && !ha_ignores_topic(d->host, filter))
		mqtt_link_subscribe(d->host->link, filter, qos);
	return OH_OK;
}

static void purge_dead(struct dispatch *d)
{
	struct sub **pp = &d->subs;
	while(*pp) {
		struct sub *s = *pp;
		if(s->dead) {
			*pp = s->next;
			sub_free(s);
		} else {
			pp = &s->next;
		}
	}
	d->has_dead = false;
}

/* Marks the subscriptions that match dead, and unsubscribes the broker from
 * filters nobody wants any more.  filter NULL: every filter of owner. */
static void remove_matching(struct dispatch *d, oh_ctx *owner, const char *filter, oh_message_fn fn, void *ud)
{
	for(struct sub *s = d->subs; s; s = s->next) {
		if(s->dead || s->owner != owner)
			continue;
		if(filter && (strcmp(s->filter, filter) || s->fn != fn || s->ud != ud))
			continue;
		topic_tree_remove(d->tree, s->filter, s);
		s->dead = true;
		d->has_dead = true;
		if(topic_tree_count(d->tree, s->filter) == 0 && d->host->link &&
				mqtt_link_connected(d->host->link))
			mqtt_link_unsubscribe(d->host->link, s->filter);
	}
	if(!d->delivering)
		purge_dead(d);
}

void dispatch_remove_owner(struct dispatch *d, oh_ctx *owner)
{
	remove_matching(d, owner, NULL, NULL, NULL);
}

void dispatch_unsubscribe(struct dispatch *d, oh_ctx *owner, const char *filter, oh_message_fn fn, void *ud)
{
	remove_matching(d, owner, filter, fn, ud);
}

void dispatch_on_connect(struct dispatch *d)
{
	/* One SUBSCRIBE per distinct filter at its highest QoS. */
	for(struct sub *s = d->subs; s; s = s->next) {
		if(s->dead)
			continue;
		bool seen = false;
		for(struct sub *t = d->subs; t != s; t = t->next) {
			if(!t->dead && !strcmp(t->filter, s->filter)) {
				seen = true;
				break;
			}
		}
		/* On a pair the commands come through the leader's session
		 * (ha.c), not this connection. */
		if(!seen && !ha_ignores_topic(d->host, s->filter))
			mqtt_link_subscribe(d->host->link, s->filter, filter_qos(d, s->filter));
	}
}

struct match_list {
	struct sub *small[8];
	struct sub **items;
	size_t n, cap;
};

static void collect(void *value, void *ud)
{
	struct match_list *m = ud;
	if(m->n == m->cap) {
		size_t cap = m->cap * 2;
		struct sub **items = malloc(cap * sizeof *items);
		if(!items)
			return;
		memcpy(items, m->items, m->n * sizeof *items);
		if(m->items != m->small)
			free(m->items);
		m->items = items;
		m->cap = cap;
	}
	m->items[m->n++] = value;
}

/* The message being delivered and the number of its delivery: no two
 * deliveries share a number, so a later message at the same address (the
 * next one on this stack frame) is never mistaken for it. */
static struct {
	const struct oh_message *msg;
	unsigned long long seq, last;
} current;

const struct oh_message *dispatch_delivering(unsigned long long *seq)
{
	if(seq)
		*seq = current.seq;
	return current.msg;
}

void dispatch_on_message(struct dispatch *d, const char *topic, const void *payload, size_t len, bool retained)
{
	struct host *h = d->host;
	const char *kind = metrics_topic_kind(h, topic);
	metrics_mqtt_message(false, kind);
	struct match_list m = {.cap = 8};
	m.items = m.small;
	topic_tree_match(d->tree, topic, collect, &m);
	if(m.n == 0)
		return;

	struct oh_message msg = {.topic = topic, .payload = payload, .len = len, .retained = retained};
	json_t *json = NULL;
	char why[200];
	if(len > (size_t)h->cfg.max_payload_bytes) {
		snprintf(why, sizeof why, "payload of %zu bytes is over max_payload_bytes (%ld)", len,
				h->cfg.max_payload_bytes);
		msg.error = why;
		msg.too_large = true;
	} else if(len == 0) {
		msg.error = "empty payload";
	} else {
		json_error_t err;
		json = json_loadb(payload, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
		if(!json) {
			snprintf(why, sizeof why, "not JSON: line %d, column %d: %s", err.line, err.column,
					err.text);
			msg.error = why;
		}
	}
	msg.json = json;

	/* The gate and the handlers share one parse of a command envelope
	 * (oh_command_parse asks dispatch_delivering). */
	const struct oh_message *outer = current.msg;
	unsigned long long outer_seq = current.seq;
	current.msg = &msg;
	current.seq = ++current.last;

	/* A message for a plugin passes the gate first (the mqtt_commands
	 * policy, command_policy.c); a refused one was answered there.  The
	 * core's own handlers still see every message. */
	bool to_plugins = true;
	for(size_t i = 0; i < m.n && d->gate; i++) {
		if(m.items[i]->owner) {
			to_plugins = d->gate(h, &msg, kind);
			break;
		}
	}

	d->delivering++;
	for(size_t i = 0; i < m.n; i++) {
		struct sub *s = m.items[i];
		if(!s->dead && (to_plugins || !s->owner))
			s->fn(s->owner, &msg, s->ud);
	}
	d->delivering--;
	current.msg = outer;
	current.seq = outer_seq;
	json_decref(json);
	if(m.items != m.small)
		free(m.items);
	if(!d->delivering && d->has_dead)
		purge_dead(d);
}
