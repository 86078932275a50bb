/*
 * Fetching the device meta that the wildcard subscription did not bring.
 *
 * The registry learns devices from `{root}/device/+/meta` and `+/status`,
 * and that is not always enough:
 * - RabbitMQ never sends retained messages to a wildcard subscription, so
 *   a host that starts learns a device only from its next heartbeat, which
 *   carries no modules;
 * - a broker whose per-client queue is full drops part of the retained
 *   burst (QoS 0 subscriptions avoid mosquitto's limit; others have theirs);
 * - a device that changed its meta while the host was away is known to the
 *   host only from the copy it kept.
 * Every broker answers a subscription to one exact topic with that topic's
 * retained message.  So the registry asks for each meta it misses with an
 * exact subscription of its own, closed again when the answer comes (by
 * any subscription) or after REPAIR_WAIT_S.  At most REPAIR_IN_FLIGHT are
 * open at once, so the repair can never overflow the broker's queue for us
 * the way the burst did; the rest wait their turn in order.
 *
 * A fetch that gets no answer (the device never published a meta) is
 * given up, and not asked again for REPAIR_RETRY_S, so a heartbeat every
 * ten seconds does not turn into a subscription every ten seconds.
 */
#include "registry_repair.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "oh/list.h"
#include "log.h"
#include "mqtt_link.h"
#include "strmap.h"
#include "timeutil.h"
#include "topics.h"

#define REPAIR_IN_FLIGHT 64
#define REPAIR_WAIT_S 5.0
#define REPAIR_RETRY_S 60.0
#define REPAIR_TICK_MS 100
/* Ids remembered at once: made-up ids on module topics must not grow the
 * table without end. */
#define REPAIR_MAX_FETCHES 20000

enum fetch_state {
	QUEUED,
	OPEN,
	GAVE_UP
};

struct fetch {
	char id[65];
	enum fetch_state state;
	double deadline;          /* OPEN: give up after; GAVE_UP: ask again after */
	struct oh_list_node link; /* QUEUED: in the queue */
	int slot;                 /* OPEN: index in open[] */
};

struct registry_repair {
	struct host *host;
	struct strmap *fetches; /* id -> struct fetch, one per device at most */
	struct oh_list queue;   /* of struct fetch, oldest request first */
	size_t queued;
	struct fetch *open[REPAIR_IN_FLIGHT];
	int n_open;
	struct event *ev_tick;
	unsigned long fetched, missed;
};

static void topic_of(const struct registry_repair *rp, const char *id, char *buf, size_t len)
{
	char *t = topic_build(rp->host->cfg.topic_root, id, NULL, "meta");
	snprintf(buf, len, "%s", t ? t : "");
	free(t);
}

static void queue_unlink(struct registry_repair *rp, struct fetch *f)
{
	oh_list_remove(&rp->queue, &f->link);
	rp->queued--;
}

static void queue_push(struct registry_repair *rp, struct fetch *f, bool front)
{
	f->state = QUEUED;
	if(front)
		oh_list_push_front(&rp->queue, &f->link);
	else
		oh_list_push_back(&rp->queue, &f->link);
	rp->queued++;
}

static void close_open(struct registry_repair *rp, struct fetch *f)
{
	char topic[512];
	topic_of(rp, f->id, topic, sizeof topic);
	mqtt_link_unsubscribe(rp->host->link, topic);
	int last = --rp->n_open;
	rp->open[f->slot] = rp->open[last];
	rp->open[f->slot]->slot = f->slot;
	rp->open[last] = NULL;
}

static void arm(struct registry_repair *rp)
{
	if((rp->queued || rp->n_open) && !evtimer_pending(rp->ev_tick, NULL)) {
		struct timeval tv = {0, REPAIR_TICK_MS * 1000};
		evtimer_add(rp->ev_tick, &tv);
	}
}

/* Opens fetches from the queue while there is room and a broker. */
static void fill(struct registry_repair *rp)
{
	double now = time_now_mono();
	while(!oh_list_empty(&rp->queue) && rp->n_open < REPAIR_IN_FLIGHT &&
			mqtt_link_connected(rp->host->link)) {
		struct fetch *f = oh_list_entry(rp->queue.first, struct fetch, link);
		char topic[512];
		topic_of(rp, f->id, topic, sizeof topic);
		if(mqtt_link_subscribe(rp->host->link, topic, 0))
			break; /* connection gone: on_connect starts again */
		queue_unlink(rp, f);
		f->state = OPEN;
		f->deadline = now + REPAIR_WAIT_S;
		f->slot = rp->n_open;
		rp->open[rp->n_open++] = f;
	}
	arm(rp);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct registry_repair *rp = arg;
	double now = time_now_mono();
	for(int i = 0; i < rp->n_open;) {
		struct fetch *f = rp->open[i];
		if(f->deadline > now) {
			i++;
			continue;
		}
		close_open(rp, f); /* moves the last one into slot i */
		f->state = GAVE_UP;
		f->deadline = now + REPAIR_RETRY_S;
		rp->missed++;
		log_debug("registry", "no retained meta for %s: the device has not published one", f->id);
	}
	fill(rp);
}

struct registry_repair *registry_repair_new(struct host *h)
{
	struct registry_repair *rp = calloc(1, sizeof *rp);
	if(!rp)
		return NULL;
	rp->host = h;
	rp->fetches = strmap_new();
	rp->ev_tick = evtimer_new(h->base, on_tick, rp);
	if(!rp->fetches || !rp->ev_tick) {
		registry_repair_free(rp);
		return NULL;
	}
	return rp;
}

void registry_repair_free(struct registry_repair *rp)
{
	if(!rp)
		return;
	if(rp->ev_tick)
		event_free(rp->ev_tick);
	strmap_free(rp->fetches, free);
	free(rp);
}

void registry_repair_want(struct registry_repair *rp, const char *id)
{
	struct fetch *f = strmap_get(rp->fetches, id);
	if(f && (f->state != GAVE_UP || f->deadline > time_now_mono()))
		return;
	if(!f) {
		int err = 0;
		if(strmap_size(rp->fetches) >= REPAIR_MAX_FETCHES)
			return;
		f = calloc(1, sizeof *f);
		if(!f)
			return;
		snprintf(f->id, sizeof f->id, "%s", id);
		strmap_put(rp->fetches, id, f, &err);
		if(err) {
			free(f);
			return;
		}
	}
	queue_push(rp, f, false);
	fill(rp);
}

void registry_repair_done(struct registry_repair *rp, const char *id)
{
	struct fetch *f = strmap_get(rp->fetches, id);
	if(!f)
		return;
	if(f->state == OPEN) {
		close_open(rp, f);
		rp->fetched++;
	} else if(f->state == QUEUED) {
		queue_unlink(rp, f);
	}
	strmap_remove(rp->fetches, id);
	free(f);
	fill(rp);
}

void registry_repair_forget(struct registry_repair *rp, const char *id)
{
	struct fetch *f = strmap_get(rp->fetches, id);
	if(!f)
		return;
	if(f->state == OPEN)
		close_open(rp, f);
	else if(f->state == QUEUED)
		queue_unlink(rp, f);
	strmap_remove(rp->fetches, id);
	free(f);
}

void registry_repair_on_connect(struct registry_repair *rp)
{
	/* The old connection's subscriptions are gone with it: queue the open
	 * fetches again, ahead of the others. */
	while(rp->n_open) {
		struct fetch *f = rp->open[--rp->n_open];
		rp->open[rp->n_open] = NULL;
		queue_push(rp, f, true);
	}
	fill(rp);
}

size_t registry_repair_pending(const struct registry_repair *rp)
{
	return rp->queued + (size_t)rp->n_open;
}

unsigned long registry_repair_fetched(const struct registry_repair *rp)
{
	return rp->fetched;
}
unsigned long registry_repair_missed(const struct registry_repair *rp)
{
	return rp->missed;
}
