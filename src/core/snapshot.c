/*
 * The registry snapshot: {"devices": ..., "locks": ..., "modules": ...,
 * "ts", "seq"} on {root}/orchestrator/registry (retained), at GET
 * /api/registry and in the UI's event stream.
 *
 * It is built here from what the registry (each device's cached fragment),
 * the leases (leases_to_text) and the plugin table (plugins_modules_json)
 * expose, and none of them calls back: the registry and the leases tell of
 * a change through the handler this file gives them, the plugin loader
 * calls snapshot_mark_dirty().  (Before, the registry built the snapshot by
 * calling the leases and the plugins, which called the registry back to
 * mark it dirty, and twelve files stood in one cycle.)
 *
 * Throughput: snapshots are coalesced to at most one per
 * snapshot_interval_ms, built straight into a buffer of their exact size,
 * and one is in flight at a time: the next waits for the broker's ack, so
 * a burst on a large registry cannot stack up copies of a multi-megabyte
 * document in the client's queue.  While the registry settles at start-up
 * the broker gets none (a half-empty snapshot would replace a full one);
 * the listeners (the UI) get every one.
 */
#include "snapshot.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "shared_buf.h"
#include "timeutil.h"
#include "topics.h"

#define MAX_LISTENERS 8
/* An ack lost with a connection must not stop the snapshots for good. */
#define SNAPSHOT_ACK_WAIT_S 5.0

struct snapshot {
	struct host *host;
	char *topic; /* {root}/orchestrator/registry */

	struct shared_buf *buf; /* the latest built snapshot */
	bool in_flight;
	int in_flight_mid;
	double in_flight_since;
	bool dirty;       /* something changed since it was built */
	bool unpublished; /* built but not yet sent to the broker */
	uint64_t seq;
	uint64_t notified_seq; /* last seq the listeners were given */
	double last_publish_mono;
	struct event *ev_publish;
	/* The leases as JSON text, kept until they change (owned; NULL: make
	 * it): at 100,000 leases, making it per build was a fifth of the
	 * host's start-up. */
	char *locks;

	struct {
		void (*fn)(struct shared_buf *, void *);
		void *ud;
	} listeners[MAX_LISTENERS];
	int n_listeners;
};

static void schedule_publish(struct snapshot *s);

void snapshot_mark_dirty(struct snapshot *s)
{
	s->dirty = true;
	s->host->generation++;
	schedule_publish(s);
}

static void on_change(void *ud)
{
	snapshot_mark_dirty(ud);
}

static void on_leases_change(void *ud)
{
	struct snapshot *s = ud;
	free(s->locks);
	s->locks = NULL;
	snapshot_mark_dirty(s);
}

/* The leases' part of the snapshot (borrowed, until they change), or NULL
 * out of memory.  A standby's are its view of the leader's, which changes
 * without telling: never kept. */
static const char *locks_text(struct snapshot *s)
{
	if(!s->locks || !ha_acting(s->host)) {
		free(s->locks);
		s->locks = s->host->leases ? leases_to_text(s->host->leases) : strdup("{}");
	}
	return s->locks;
}

/* ---- building ------------------------------------------------------------------ */

/* Copies len bytes to *p and advances it. */
static void put(char **p, const char *s, size_t len)
{
	memcpy(*p, s, len);
	*p += len;
}

struct fill {
	size_t total; /* sizing pass: bytes of the fragments and their commas */
	char *p;      /* copying pass: where the next fragment goes */
	bool first;
};

static void count_fragment(const char *frag, size_t len, void *ud)
{
	struct fill *f = ud;
	f->total += len + 1; /* and a comma */
}

static void put_fragment(const char *frag, size_t len, void *ud)
{
	struct fill *f = ud;
	if(!f->first)
		put(&f->p, ",", 1);
	put(&f->p, frag, len);
	f->first = false;
}

/*
 * Builds the snapshot straight into a buffer of its exact size: with 100,000
 * devices a snapshot is tens of megabytes, and growing it by doubling and
 * then copying it once more was a third of the host's peak memory.
 */
static int rebuild(struct snapshot *s)
{
	struct host *h = s->host;
	const char *locks = locks_text(s);
	json_t *modules_json = plugins_modules_json(h);
	char *modules = json_dumps(modules_json, JSON_COMPACT);
	json_decref(modules_json);
	char tail[96], when[32];
	snprintf(tail, sizeof tail, ",\"ts\":\"%s\",\"seq\":%llu}", host_now_iso(when, sizeof when),
			(unsigned long long)(s->seq + 1));
	static const char head[] = "{\"devices\":{", mid1[] = "},\"locks\":", mid2[] = ",\"modules\":";
	int rc = OH_ERR_NOMEM;
	struct fill f = {.first = true};
	if(!locks || !modules || registry_fragments(h->registry, count_fragment, &f))
		goto out;

	size_t total = sizeof head - 1 + f.total + sizeof mid1 - 1 + strlen(locks) + sizeof mid2 - 1 +
			strlen(modules) + strlen(tail);
	struct shared_buf *snap = shared_buf_new(NULL, total);
	if(!snap)
		goto out;
	f.p = snap->data;
	put(&f.p, head, sizeof head - 1);
	registry_fragments(h->registry, put_fragment, &f); /* all built by the sizing pass */
	put(&f.p, mid1, sizeof mid1 - 1);
	put(&f.p, locks, strlen(locks));
	put(&f.p, mid2, sizeof mid2 - 1);
	put(&f.p, modules, strlen(modules));
	put(&f.p, tail, strlen(tail));
	*f.p = '\0';
	snap->len = (size_t)(f.p - snap->data); /* no comma before the first device */

	shared_buf_unref(s->buf);
	s->buf = snap;
	s->seq++;
	registry_set_next_seq(h->registry, s->seq + 1);
	s->dirty = false;
	s->unpublished = true;
	rc = OH_OK;
out:
	free(modules);
	return rc;
}

struct shared_buf *snapshot_get(struct snapshot *s)
{
	if((s->dirty || !s->buf) && rebuild(s))
		log_error("registry", "out of memory building the snapshot");
	return s->buf ? shared_buf_ref(s->buf) : NULL;
}

/* ---- ?since=SEQ ---------------------------------------------------------------- */

/* Like struct fill, for the removals: each id quoted, comma separated. */
static void count_removed(const char *id, void *ud)
{
	struct fill *f = ud;
	f->total += strlen(id) + 3; /* quotes and a comma */
}

static void put_removed(const char *id, void *ud)
{
	/* Device ids are [A-Za-z0-9._-]: no escaping. */
	struct fill *f = ud;
	if(!f->first)
		put(&f->p, ",", 1);
	put(&f->p, "\"", 1);
	put(&f->p, id, strlen(id));
	put(&f->p, "\"", 1);
	f->first = false;
}

/*
 * Built like the snapshot, in two passes straight into a buffer of its exact
 * size, and the registry walks only the devices changed after since (its
 * by_seq list), so a delta costs what changed, not the registry's size (it
 * walked every device and grew a buffer by doubling, then copied it).
 */
int snapshot_delta(struct snapshot *s, uint64_t since, struct shared_buf **out, bool *whole)
{
	struct host *h = s->host;
	*out = snapshot_get(s); /* stamps every change up to now with a seq */
	*whole = true;
	if(!*out)
		return OH_ERR_NOMEM;
	/* A SEQ from the future is from an earlier run of the host. */
	if(since > s->seq)
		return OH_OK;
	struct fill devs = {.first = true}, gone = {.first = true};
	int rc = registry_delta(h->registry, since, count_fragment, count_removed, &devs);
	if(rc == OH_ERR_NOT_FOUND)
		return OH_OK;    /* too old: the whole */
	gone.total = devs.total; /* one pass counted both */
	const char *locks = locks_text(s);
	json_t *modules_json = plugins_modules_json(h);
	char *modules = json_dumps(modules_json, JSON_COMPACT);
	json_decref(modules_json);
	char tail[160], when[32];
	snprintf(tail, sizeof tail, ",\"ts\":\"%s\",\"seq\":%llu,\"since\":%llu,\"delta\":true}",
			host_now_iso(when, sizeof when), (unsigned long long)s->seq, (unsigned long long)since);
	static const char head[] = "{\"devices\":{", mid0[] = "},\"removed\":[",
			  mid1[] = "],\"locks\":", mid2[] = ",\"modules\":";
	struct shared_buf *buf = NULL;
	if(rc || !locks || !modules)
		goto out;
	size_t total = sizeof head - 1 + gone.total + sizeof mid0 - 1 + sizeof mid1 - 1 + strlen(locks) +
			sizeof mid2 - 1 + strlen(modules) + strlen(tail);
	if(!(buf = shared_buf_new(NULL, total)))
		goto out;
	devs.p = buf->data;
	put(&devs.p, head, sizeof head - 1);
	registry_delta(h->registry, since, put_fragment, NULL, &devs); /* built by the counting pass */
	put(&devs.p, mid0, sizeof mid0 - 1);
	gone.p = devs.p;
	registry_delta(h->registry, since, NULL, put_removed, &gone);
	put(&gone.p, mid1, sizeof mid1 - 1);
	put(&gone.p, locks, strlen(locks));
	put(&gone.p, mid2, sizeof mid2 - 1);
	put(&gone.p, modules, strlen(modules));
	put(&gone.p, tail, strlen(tail));
	*gone.p = '\0';
	buf->len = (size_t)(gone.p - buf->data); /* no comma before the first of each */
out:
	free(modules);
	shared_buf_unref(*out);
	*out = buf;
	if(!buf)
		return OH_ERR_NOMEM;
	*whole = false;
	return OH_OK;
}

uint64_t snapshot_seq(const struct snapshot *s)
{
	return s->seq;
}

/* ---- publishing ---------------------------------------------------------------- */

static void publish_now(struct snapshot *s)
{
	struct shared_buf *snap = snapshot_get(s);
	if(!snap)
		return;
	double now = time_now_mono();
	if(s->in_flight && now - s->in_flight_since > SNAPSHOT_ACK_WAIT_S)
		s->in_flight = false;
	if(s->unpublished && !s->in_flight && !registry_settling(s->host->registry) && ha_acting(s->host)) {
		struct host *h = s->host;
		int mid = 0;
		int rc = host_publish_mid(h, s->topic, snap->data, snap->len, 1, true, &mid);
		/* While the broker is away the snapshot stays marked unpublished
		 * and goes out on reconnect. */
		if(rc == OH_OK) {
			s->unpublished = false;
			s->in_flight = true;
			s->in_flight_mid = mid;
			s->in_flight_since = now;
			h->stats.snapshots_published++;
			h->stats.snapshot_bytes += snap->len;
		}
	}
	s->last_publish_mono = time_now_mono();
	/* Listeners (the UI's event stream) hear of every snapshot, also while
	 * the broker is away. */
	if(s->notified_seq != s->seq) {
		s->notified_seq = s->seq;
		for(int i = 0; i < s->n_listeners; i++)
			s->listeners[i].fn(snap, s->listeners[i].ud);
	}
	shared_buf_unref(snap);
}

static void on_publish_timer(evutil_socket_t fd, short what, void *arg)
{
	publish_now(arg);
}

static void schedule_publish(struct snapshot *s)
{
	if(evtimer_pending(s->ev_publish, NULL))
		return;
	/* At most one snapshot per interval; an update after a quiet spell
	 * goes out on the next loop turn, so a burst read in one go still
	 * coalesces. */
	double interval = s->host->cfg.snapshot_interval_ms / 1000.0;
	double wait = s->last_publish_mono + interval - time_now_mono();
	if(wait < 0)
		wait = 0;
	struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (time_t)wait) * 1e6)};
	evtimer_add(s->ev_publish, &tv);
}

void snapshot_published(struct snapshot *s, int mid)
{
	if(!s->in_flight || mid != s->in_flight_mid)
		return;
	s->in_flight = false;
	if(s->dirty || s->unpublished)
		schedule_publish(s);
}

void snapshot_on_connect(struct snapshot *s)
{
	s->in_flight = false;
	/* The broker may have lost our retained snapshot (restart without
	 * persistence): publish it again. */
	snapshot_mark_dirty(s);
}

void snapshot_flush(struct snapshot *s)
{
	s->in_flight = false; /* the final state goes out regardless... */
	if(s->dirty || s->unpublished)
		publish_now(s); /* ...unless still settling: it is partial */
}

void snapshot_on_publish(struct snapshot *s, void (*fn)(struct shared_buf *, void *), void *ud)
{
	if(s->n_listeners < MAX_LISTENERS) {
		s->listeners[s->n_listeners].fn = fn;
		s->listeners[s->n_listeners].ud = ud;
		s->n_listeners++;
	}
}

/* ---- life cycle ----------------------------------------------------------------- */

struct snapshot *snapshot_new(struct host *h)
{
	struct snapshot *s = calloc(1, sizeof *s);
	if(!s)
		return NULL;
	s->host = h;
	s->topic = topic_build(h->cfg.topic_root, NULL, "registry", NULL);
	s->ev_publish = evtimer_new(h->base, on_publish_timer, s);
	s->last_publish_mono = -1e9;
	if(!s->topic || !s->ev_publish) {
		snapshot_free(s);
		return NULL;
	}
	/* seq never repeats across runs of the host: each run starts above any
	 * earlier run's, at 1024 per millisecond of wall clock (a run makes far
	 * fewer snapshots than that; 2^51 in the year 2230, still exact in a
	 * JSON number), so a ?since=SEQ kept from an earlier run is older than
	 * this run's first snapshot and gets the whole. */
	s->seq = (uint64_t)(time_now_wall() * 1000.0) << 10;
	registry_start_seq(h->registry, s->seq + 1);
	registry_on_change(h->registry, on_change, s);
	if(h->leases)
		leases_on_change(h->leases, on_leases_change, s);
	return s;
}

void snapshot_free(struct snapshot *s)
{
	if(!s)
		return;
	if(s->host->registry)
		registry_on_change(s->host->registry, NULL, NULL);
	if(s->host->leases)
		leases_on_change(s->host->leases, NULL, NULL);
	if(s->ev_publish)
		event_free(s->ev_publish);
	shared_buf_unref(s->buf);
	free(s->topic);
	free(s->locks);
	free(s);
}
