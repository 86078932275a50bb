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
 *
 * Memory (docs/performance.md, "Memory"): libmosquitto holds a queued
 * publish twice (the message and its packet) until the broker acks it.
 * An ack that is late is waited for, never given up on within a
 * connection: publishing the next after a timeout stacked 180 MB copies
 * while a broker busy with a million devices took each one (4.6 GB).  A
 * new connection ends the wait.  And past limits.max_snapshot_bytes the
 * broker gets a summary instead of the whole registry (clients read GET
 * /api/registry?since= and /api/events): a million devices make a
 * quarter-gigabyte snapshot, near MQTT's largest packet.
 */
#include "snapshot.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "shared_buf.h"
#include "timeutil.h"
#include "topics.h"

#define MAX_LISTENERS 8
/* After this long without an ack, plus a second per SNAPSHOT_ACK_RATE
 * bytes, the wait is logged (once per snapshot). */
#define SNAPSHOT_ACK_WAIT_S 5.0
#define SNAPSHOT_ACK_RATE (1024.0 * 1024.0)

struct snapshot {
	struct host *host;
	char *topic; /* {root}/orchestrator/registry */

	struct shared_buf *buf; /* the latest built snapshot, NULL before the first */
	uint64_t buf_seq;       /* the seq it was built at */
	size_t last_len;        /* the bytes of the latest built or measured */
	bool in_flight;
	int in_flight_mid;
	double in_flight_since;
	size_t in_flight_len;
	bool late_logged; /* the wait for its ack was logged */
	bool over_limit;  /* the last one sent was a summary */
	bool dirty;       /* something changed since seq moved (advance) */
	bool unpublished; /* seq moved since the broker was sent one */
	uint64_t seq;
	uint64_t notified_seq; /* last seq the listeners were given */
	double last_publish_mono;
	struct event *ev_publish;
	/* The leases as JSON text, kept until they change (owned; NULL: make
	 * it): at 100,000 leases, making it per build was a fifth of the
	 * host's start-up. */
	char *locks;

	struct {
		void (*fn)(void *);
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

/* Gives every change so far a seq, the next snapshot's, without building
 * it: a delta, the broker's summary and the listeners need no more, and at
 * a million devices each build copies a quarter of a gigabyte. */
static void advance(struct snapshot *s)
{
	if(!s->dirty)
		return;
	s->seq++;
	registry_set_next_seq(s->host->registry, s->seq + 1);
	s->dirty = false;
	s->unpublished = true;
}

/* What a snapshot is made of, and its exact size. */
struct parts {
	const char *locks; /* borrowed (locks_text) */
	char *modules;     /* owned */
	char tail[96];
	struct fill f;
	size_t total;
};

static const char whole_head[] = "{\"devices\":{",
		  whole_mid1[] = "},\"locks\":", whole_mid2[] = ",\"modules\":";

/* Measures the snapshot at s->seq (building the fragments it lacks); call
 * parts_free after, also on failure (OH_ERR_NOMEM). */
static int parts_measure(struct snapshot *s, struct parts *p)
{
	struct host *h = s->host;
	char when[32];
	memset(p, 0, sizeof *p);
	p->f.first = true;
	p->locks = locks_text(s);
	json_t *modules_json = plugins_modules_json(h);
	p->modules = json_dumps(modules_json, JSON_COMPACT);
	json_decref(modules_json);
	snprintf(p->tail, sizeof p->tail, ",\"ts\":\"%s\",\"seq\":%llu}", host_now_iso(when, sizeof when),
			(unsigned long long)s->seq);
	if(!p->locks || !p->modules || registry_fragments(h->registry, count_fragment, &p->f))
		return OH_ERR_NOMEM;
	p->total = sizeof whole_head - 1 + p->f.total + sizeof whole_mid1 - 1 + strlen(p->locks) +
			sizeof whole_mid2 - 1 + strlen(p->modules) + strlen(p->tail);
	return OH_OK;
}

static void parts_free(struct parts *p)
{
	free(p->modules);
}

/*
 * Builds the snapshot at s->seq straight into a buffer of its exact size:
 * with 100,000 devices a snapshot is tens of megabytes, and growing it by
 * doubling and then copying it once more was a third of the host's peak
 * memory.
 */
static int rebuild(struct snapshot *s)
{
	struct parts p;
	int rc = parts_measure(s, &p);
	if(rc)
		goto out;
	/* The old one goes first (unless a reader holds it): two at once were
	 * half a gigabyte at a million devices. */
	shared_buf_unref(s->buf);
	s->buf = NULL;
	struct shared_buf *snap = shared_buf_new(NULL, p.total);
	rc = OH_ERR_NOMEM;
	if(!snap)
		goto out;
	p.f.p = snap->data;
	put(&p.f.p, whole_head, sizeof whole_head - 1);
	registry_fragments(s->host->registry, put_fragment, &p.f); /* all built by the sizing pass */
	put(&p.f.p, whole_mid1, sizeof whole_mid1 - 1);
	put(&p.f.p, p.locks, strlen(p.locks));
	put(&p.f.p, whole_mid2, sizeof whole_mid2 - 1);
	put(&p.f.p, p.modules, strlen(p.modules));
	put(&p.f.p, p.tail, strlen(p.tail));
	*p.f.p = '\0';
	snap->len = (size_t)(p.f.p - snap->data); /* no comma before the first device */
	s->buf = snap;
	s->buf_seq = s->seq;
	s->last_len = snap->len;
	rc = OH_OK;
out:
	parts_free(&p);
	return rc;
}

struct shared_buf *snapshot_get(struct snapshot *s)
{
	advance(s);
	if((!s->buf || s->buf_seq != s->seq) && rebuild(s))
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
	advance(s); /* stamps every change up to now with a seq */
	*out = NULL;
	*whole = true;
	struct fill devs = {.first = true}, gone = {.first = true};
	/* A SEQ from the future is from an earlier run of the host. */
	int rc = since > s->seq ? OH_ERR_NOT_FOUND
				: registry_delta(h->registry, since, count_fragment, count_removed, &devs);
	if(rc == OH_ERR_NOT_FOUND)
		return (*out = snapshot_get(s)) ? OH_OK : OH_ERR_NOMEM; /* too old: the whole */
	gone.total = devs.total;                                        /* one pass counted both */
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

/* What the broker gets instead of a snapshot past limits.max_snapshot_bytes
 * (docs/protocol.md, "Registry snapshot"): no devices, how many there are
 * and how big the whole is; its length, or 0 if it does not fit. */
static size_t summary(struct snapshot *s, size_t whole_len, char *out, size_t cap)
{
	char when[32];
	int n = snprintf(out, cap,
			"{\"devices\":null,\"device_count\":%zu,\"bytes\":%zu,\"max_snapshot_bytes\":%ld,"
			"\"ts\":\"%s\",\"seq\":%llu}",
			registry_size(s->host->registry), whole_len, s->host->cfg.limits.max_snapshot_bytes,
			host_now_iso(when, sizeof when), (unsigned long long)s->seq);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Whether the snapshot at s->seq is over limits.max_snapshot_bytes, and
 * its bytes in *len.  Measured without building it when the last one was
 * over (the broker gets the summary, so nothing needs the whole); built
 * otherwise, into *snap (a new reference), as the broker gets it. */
static bool over_limit(struct snapshot *s, size_t *len, struct shared_buf **snap)
{
	size_t max = (size_t)s->host->cfg.limits.max_snapshot_bytes;
	*snap = NULL;
	if(s->last_len > max && (!s->buf || s->buf_seq != s->seq)) {
		struct parts p;
		int rc = parts_measure(s, &p);
		parts_free(&p);
		if(!rc) {
			s->last_len = p.total;
			if(p.total > max) {
				*len = p.total;
				return true;
			}
		}
	}
	if(!(*snap = snapshot_get(s)))
		return false;
	*len = (*snap)->len;
	return *len > max;
}

/* Hands the snapshot at s->seq to the broker, unless one is still
 * unacknowledged (see the top). */
static void send_to_broker(struct snapshot *s)
{
	struct host *h = s->host;
	double now = time_now_mono();
	if(s->in_flight) {
		double wait = SNAPSHOT_ACK_WAIT_S + (double)s->in_flight_len / SNAPSHOT_ACK_RATE;
		if(!s->late_logged && now - s->in_flight_since > wait) {
			s->late_logged = true;
			log_warn("registry",
					"the broker has not acknowledged the %zu-byte snapshot in %.0f s;"
					" the next one waits for it",
					s->in_flight_len, now - s->in_flight_since);
		}
		return;
	}
	size_t whole_len = 0;
	struct shared_buf *snap;
	bool over = over_limit(s, &whole_len, &snap);
	const char *data = snap ? snap->data : NULL;
	size_t len = whole_len;
	char brief[256];
	if(over) {
		len = summary(s, whole_len, brief, sizeof brief);
		data = brief;
		metrics_limit_refusal("max_snapshot_bytes");
	}
	if(data && len && over != s->over_limit)
		log_info("registry",
				"the snapshot is %zu bytes: the broker gets %s (limits.max_snapshot_bytes %ld)",
				whole_len, over ? "a summary" : "the whole again",
				h->cfg.limits.max_snapshot_bytes);
	int mid = 0;
	/* While the broker is away the snapshot stays marked unpublished
	 * and goes out on reconnect. */
	if(data && len && host_publish_mid(h, s->topic, data, len, 1, true, &mid) == OH_OK) {
		s->over_limit = over;
		s->unpublished = false;
		s->in_flight = true;
		s->in_flight_mid = mid;
		s->in_flight_since = now;
		s->in_flight_len = len;
		s->late_logged = false;
		h->stats.snapshots_published++;
		h->stats.snapshot_bytes += len;
	}
	shared_buf_unref(snap);
}

static void publish_now(struct snapshot *s)
{
	advance(s);
	if(s->unpublished && !registry_settling(s->host->registry) && ha_acting(s->host))
		send_to_broker(s);
	s->last_publish_mono = time_now_mono();
	/* Listeners (the UI's event stream) hear of every new seq, also while
	 * the broker is away; they take the snapshot or a delta themselves. */
	if(s->notified_seq != s->seq) {
		s->notified_seq = s->seq;
		for(int i = 0; i < s->n_listeners; i++)
			s->listeners[i].fn(s->listeners[i].ud);
	}
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

void snapshot_on_publish(struct snapshot *s, void (*fn)(void *), void *ud)
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
