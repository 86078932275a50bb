/*
 * The dot probe (see broker_probe.h).  After each connect: subscribe to
 * {root}/orchestrator/probe/from-{node}/#, publish one message (QoS 1, not
 * retained) to {root}/orchestrator/probe/from-{node}/check.dot, and see
 * where it comes back: unchanged, all is well; as .../check/dot, the broker
 * rewrites dots.  The filter never covers {root}/orchestrator/probe/cmd:
 * a plugin may be called "probe", and a broker delivers a message once per
 * matching subscription, so an overlap would hand it each command twice.
 * The subscription is dropped at the answer or after PROBE_WAIT_S, and
 * with the connection; it goes through dispatch like any other, but is
 * made per connection, not renewed by dispatch on the next one.
 *
 * The payload is a fresh id per probe, so an echo of another host's probe
 * (a second host with the same client id) or of an earlier connection's
 * is not taken for this one's answer.
 */
#include "broker_probe.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "log.h"

#define PROBE_WAIT_S 5

struct broker_probe {
	struct host *host;
	struct event *ev_timeout;
	char *filter;          /* {root}/orchestrator/probe/from-{node}/# */
	char *sent_topic;      /* .../probe/from-{node}/check.dot */
	char *rewritten_topic; /* .../probe/from-{node}/check/dot */
	char nonce[33];        /* this probe's payload */
	bool active;           /* subscribed, waiting for the answer */
	bool warned;           /* the warning is said once per run */
};

static void on_probe_message(oh_ctx *ctx, const struct oh_message *msg, void *ud);

static void probe_end(struct broker_probe *p)
{
	if(!p->active)
		return;
	p->active = false;
	event_del(p->ev_timeout);
	dispatch_unsubscribe(p->host->dispatch, NULL, p->filter, on_probe_message, p);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct broker_probe *p = arg;
	log_debug("mqtt", "topic probe: no answer within %d s", PROBE_WAIT_S);
	probe_end(p);
}

static void on_probe_message(oh_ctx *ctx, const struct oh_message *msg, void *ud)
{
	struct broker_probe *p = ud;
	if(!p->active || msg->len != strlen(p->nonce) || memcmp(msg->payload, p->nonce, msg->len))
		return;
	if(!strcmp(msg->topic, p->rewritten_topic)) {
		log_debug("mqtt", "topic probe: the broker rewrites '.' to '/'");
		if(!p->warned)
			log_warn("mqtt",
					"this broker rewrites '.' in topics to '/' (RabbitMQ does): devices"
					" whose id contains '.' cannot be reached; rename them");
		p->warned = true;
	} else if(!strcmp(msg->topic, p->sent_topic)) {
		log_debug("mqtt", "topic probe: the broker keeps '.' in topics");
	} else {
		return;
	}
	probe_end(p);
}

/* "{root}/orchestrator/probe/from-{node}/{tail}" with node reduced to
 * [A-Za-z0-9_-], so that it is one topic level with no dot of its own. */
static char *probe_topic(const char *root, const char *node, const char *tail)
{
	size_t n = strlen(root) + sizeof "/orchestrator/probe/from-/" + strlen(node) + strlen(tail);
	char *t = malloc(n);
	if(!t)
		return NULL;
	int at = snprintf(t, n, "%s/orchestrator/probe/from-", root);
	for(const char *c = node; *c; c++) {
		bool keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				(*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
		t[at++] = keep ? *c : '_';
	}
	snprintf(t + at, n - (size_t)at, "/%s", tail);
	return t;
}

struct broker_probe *broker_probe_new(struct host *h, const char *node)
{
	struct broker_probe *p = calloc(1, sizeof *p);
	if(!p)
		return NULL;
	p->host = h;
	const char *root = h->cfg.topic_root;
	p->filter = probe_topic(root, node, "#");
	p->sent_topic = probe_topic(root, node, "check.dot");
	p->rewritten_topic = probe_topic(root, node, "check/dot");
	p->ev_timeout = evtimer_new(h->base, on_timeout, p);
	if(!p->filter || !p->sent_topic || !p->rewritten_topic || !p->ev_timeout) {
		broker_probe_free(p);
		return NULL;
	}
	return p;
}

void broker_probe_free(struct broker_probe *p)
{
	if(!p)
		return;
	probe_end(p);
	if(p->ev_timeout)
		event_free(p->ev_timeout);
	free(p->filter);
	free(p->sent_topic);
	free(p->rewritten_topic);
	free(p);
}

void broker_probe_on_connect(struct broker_probe *p)
{
	probe_end(p);
	host_new_id(p->nonce, sizeof p->nonce);
	if(dispatch_subscribe(p->host->dispatch, NULL, p->filter, 1, on_probe_message, p)) {
		log_debug("mqtt", "topic probe: cannot subscribe to %s", p->filter);
		return;
	}
	p->active = true;
	struct timeval wait = {PROBE_WAIT_S, 0};
	event_add(p->ev_timeout, &wait);
	/* After the SUBSCRIBE on the same connection, so the broker has the
	 * subscription when the message comes. */
	if(host_publish(p->host, p->sent_topic, p->nonce, strlen(p->nonce), 1, false))
		probe_end(p);
}

void broker_probe_on_disconnect(struct broker_probe *p)
{
	probe_end(p);
}
