/*
 * GET /api/{module}/devices: every device that lists the module, sorted by
 * id, built so that neither a large registry nor many callers stall the loop.
 *
 * With 200,000 devices the list is tens of megabytes.  Rebuilt whole on
 * every change (JSON objects for every device, a sort, a serialisation) it
 * took seconds of the one loop thread, and a copy per request held one body
 * per caller.  Instead:
 * - Each device's entry is serialised once and kept (its fragment), and is
 *   rendered again only when what it shows changed: the registry's counter
 *   for the device (oh_device.changes: its document, online, stale,
 *   last_seen), its module status's counter (ndi_status_get), or its lease.
 *   Leases are looked up for every device only when oh_lease_generation
 *   moved; the leased devices are looked up again once a second (their
 *   remaining_s ages) and as soon as one of their leases has run out.
 * - A walk finds what changed: one counter comparison per device when the
 *   registry changed at all (oh_device.changes is the registry's generation
 *   at the device's last change, so "changed since the last walk" needs no
 *   lookup), plus the statuses changed since (ndi_status_changed_since).
 * - The entries are kept sorted by id: newcomers are sorted among
 *   themselves and merged in, departed entries are swept out; nothing sorts
 *   every device per build.
 * - Everything after the walk runs in slices of at most SLICE_S with the
 *   loop free in between: making the newcomers' entries (the walk only
 *   copies their ids), rendering, the sweep, the sort, the merge, and
 *   copying every fragment into one body.  Requests
 *   arriving meanwhile wait (deferred replies); a build that fits in one
 *   slice answers at once.  An unchanged list is not copied again.
 * - The body is an oh_blob: each reply takes a reference, none copies it,
 *   and a replaced body is freed when its last reply has gone out.
 *
 * Pitfalls, so that nobody "simplifies" them away:
 * - A reply must show every change made before its request arrived: a
 *   request arriving while a build runs on older inputs waits for the next
 *   build rather than joining this one.
 * - Only builds change the entries and their order, and builds never
 *   overlap, so a slice may rely on what earlier slices did.  The walk is
 *   one call (oh_device_walk has no cursor), so it does no more than
 *   compare counters and note newcomers, through oh_device_walk, which
 *   hands no documents (at 100,000 devices, oh_device_foreach parsing
 *   each one stalled the loop for 5 s).
 * - A device may leave between the walk and its render: its entry keeps
 *   its last fragment until a sweep drops it.  The walk counts devices to
 *   know whether some left: departures move the registry's generation.
 * - Waiting clients leave (oh_req_on_gone) and the plugin may stop in the
 *   middle of a build (ndi_devices_free answers 503); either way a waiter
 *   is freed exactly once.
 * - The slice timer is forgotten when it fires, never cancelled afterwards.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oh/host.h"
#include "oh/list.h"

#include "ndi.h"

/* Work per turn of the loop, and how many items between looks at the clock. */
#define SLICE_S 0.005
#define CLOCK_EVERY 64
/* Newcomers are sorted in runs of this many, then merged. */
#define SORT_RUN 1024
/* remaining_s of the listed leases is at most this old. */
#define LEASE_AGE_S 1.0
/* Device ids one ?ids= may name. */
#define MAX_IDS 100

static const char BODY_HEAD[] = "{\"devices\":[";
static const char BODY_TAIL[] = "]}";

struct entry {
	char *frag; /* its JSON object; NULL: not listed */
	size_t frag_len;
	/* What the fragment was rendered from. */
	unsigned long long dev_changes; /* 0: never rendered */
	unsigned long long status_seq;
	char *holder;                   /* of the lease it shows, or NULL */
	double lease_expires;           /* wall-clock seconds */
	struct oh_list_node lease_link; /* in leased while holder is set */
	bool queued;                    /* in the todo of the build */
	char id[];
};

/* A growing text buffer; failed once an allocation failed. */
struct text {
	char *p;
	size_t len, cap;
	bool failed;
};

struct waiter {
	struct ndi_devices *v;
	struct oh_http_req *req;
	bool joined;              /* answered by the build in progress */
	struct oh_list_node link; /* in waiters */
};

/* What a body or a walk was built from. */
struct inputs {
	unsigned long long registry, status, lease;
};

enum phase {
	P_INDEX,
	P_RENDER,
	P_SWEEP,
	P_SORT,
	P_MERGE,
	P_ASSEMBLE,
	P_DONE
};

struct ndi_devices {
	struct ndi *n;
	struct oh_map *by_id;  /* id -> struct entry (owned) */
	struct entry **sorted; /* every entry but the newcomers, by id */
	size_t n_sorted;
	struct oh_list leased;       /* entries showing a lease */
	size_t listed, listed_bytes; /* fragments in the list, their bytes */
	double leases_read;          /* CLOCK_MONOTONIC, leased looked up */
	double lease_deadline;       /* the earliest expires_at shown */

	struct oh_blob *body; /* NULL before the first build */
	struct inputs body_in;
	bool body_stale;      /* a fragment or the order changed */
	struct inputs walked; /* the last walk's; zero: look at all */

	/* The build in progress, if building. */
	bool building;
	bool failed; /* out of memory: answer 500 */
	enum phase phase;
	size_t n_seen;       /* devices the walk saw */
	bool sweep;          /* some devices left */
	struct entry **todo; /* to render */
	size_t n_todo, cap_todo, i_todo;
	/* The walk only copies the ids of newcomers (NUL after each), their
	 * entries are made in slices. */
	char *new_ids;
	size_t new_len, new_cap, n_new, new_at;
	struct entry **fresh; /* newcomers' entries, not in sorted yet */
	size_t n_fresh, cap_fresh;
	size_t i_sweep, n_kept; /* sweep: read and kept so far */
	struct {                /* sort of the newcomers */
		struct entry **src, **dst;
		size_t width, lo, mid, hi, p, q, o;
		bool in_pair;
	} sort;
	struct { /* merge of the newcomers into sorted */
		struct entry **out;
		size_t i, j, k;
	} merge;
	struct oh_blob *next_body;
	char *out;    /* where the next fragment goes */
	size_t i_out; /* the next sorted entry to copy */
	bool first_out;
	oh_timer_id timer;   /* the next slice, or OH_TIMER_NONE */
	struct text scratch; /* where a fragment is rendered */
	/* For the log: when the build started, its walk, slices and renders. */
	double started, walk_s;
	unsigned slices;

	struct oh_list waiters; /* struct waiter, newest first */
};

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The time left in a slice. */
struct budget {
	double until;
	unsigned count;
};

static bool spent(struct budget *b)
{
	return ++b->count % CLOCK_EVERY == 0 && now_mono() >= b->until;
}

/* Appends e to a growing array; false when out of memory. */
static bool push(struct entry ***arr, size_t *n, size_t *cap, struct entry *e)
{
	if(*n == *cap) {
		size_t cap2 = *cap ? *cap * 2 : 256;
		struct entry **grown = realloc(*arr, cap2 * sizeof(**arr));
		if(!grown)
			return false;
		*arr = grown;
		*cap = cap2;
	}
	(*arr)[(*n)++] = e;
	return true;
}

/* ---- entries ------------------------------------------------------------------ */

static void lease_unlink(struct ndi_devices *v, struct entry *e)
{
	if(!e->holder)
		return;
	oh_list_remove(&v->leased, &e->lease_link);
	free(e->holder);
	e->holder = NULL;
}

/* Replaces e's fragment with a copy of text (NULL: not listed), keeping
 * the list's byte count; an identical fragment leaves the body as it is.
 * false when out of memory (e unchanged). */
static bool set_fragment(struct ndi_devices *v, struct entry *e, const char *text, size_t len)
{
	char *frag = NULL;

	if(text && e->frag && len == e->frag_len && !memcmp(text, e->frag, len))
		return true;
	if(!text && !e->frag)
		return true;
	if(text) {
		frag = malloc(len);
		if(!frag)
			return false;
		memcpy(frag, text, len);
	}
	if(e->frag) {
		v->listed--;
		v->listed_bytes -= e->frag_len;
	}
	free(e->frag);
	e->frag = frag;
	e->frag_len = frag ? len : 0;
	if(frag) {
		v->listed++;
		v->listed_bytes += len;
	}
	v->body_stale = true;
	return true;
}

/* Frees e, which nothing else points to any more but the leased list. */
static void entry_free(struct ndi_devices *v, struct entry *e)
{
	set_fragment(v, e, NULL, 0);
	lease_unlink(v, e);
	free(e);
}

/* ---- rendering one device ----------------------------------------------------- */

static bool has_module(const json_t *doc, const char *module)
{
	const json_t *mods = json_object_get(doc, "modules"), *m;
	size_t i;

	json_array_foreach(mods, i, m)
	{
		if(json_is_string(m) && !strcmp(json_string_value(m), module))
			return true;
	}
	return false;
}

/* A field of the module status (borrowed, NULL when absent): devices put
 * them under "fields"; a flat object is read too. */
static json_t *status_field(const json_t *st, const char *name)
{
	const json_t *fields = json_object_get(st, "fields");
	const json_t *v = json_is_object(fields) ? json_object_get(fields, name) : NULL;

	if(!v)
		v = json_object_get(st, name);
	return (json_t *)v;
}

static void lease_key(const struct ndi_devices *v, const char *id, char *key, size_t len)
{
	snprintf(key, len, "%s:%s", oh_module(v->n->ctx), id);
}

static void text_put(struct text *t, const char *s, size_t n)
{
	if(t->failed || !n)
		return;
	if(t->len + n > t->cap) {
		size_t cap = t->cap ? t->cap : 1024;
		char *p;

		while(cap < t->len + n)
			cap *= 2;
		p = realloc(t->p, cap);
		if(!p) {
			t->failed = true;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

static void text_str(struct text *t, const char *s)
{
	text_put(t, s, strlen(s));
}

static int text_dump(const char *buf, size_t size, void *data)
{
	text_put(data, buf, size);
	return 0;
}

/* value (borrowed; NULL: null) exactly as it reads inside a compact dump. */
static void text_json(struct text *t, const json_t *value)
{
	if(!value)
		text_str(t, "null");
	else if(json_dump_callback(value, text_dump, t, JSON_COMPACT | JSON_ENCODE_ANY))
		t->failed = true;
}

static void text_string(struct text *t, const char *s)
{
	json_t *j = json_string(s);

	if(!j)
		t->failed = true;
	text_json(t, j);
	json_decref(j);
}

/* Appends dev's entry (an NDI device: the caller checked) to t, as the list
 * shows it; the lease it shows goes to *l and *leased.  False when out of
 * memory. */
static bool render_text(struct ndi_devices *v, struct text *t, const struct oh_device *dev, const json_t *st,
		struct oh_lease *l, bool *leased)
{
	oh_ctx *ctx = v->n->ctx;
	char key[160], iso[32], num[64];

	lease_key(v, dev->id, key, sizeof(key));
	*leased = oh_lease_get(ctx, key, l) == OH_OK;
	/* Device ids are [A-Za-z0-9._-]: nothing to escape. */
	text_str(t, "{\"device_id\":\"");
	text_str(t, dev->id);
	text_str(t, "\",\"online\":");
	text_str(t, dev->online < 0 ? "null" : dev->online ? "true" : "false");
	text_str(t, ",\"stale\":");
	text_str(t, dev->stale ? "true" : "false");
	text_str(t, ",\"last_seen\":");
	if(dev->last_seen > 0) {
		text_str(t, "\"");
		text_str(t, oh_format_time(dev->last_seen, iso, sizeof(iso)));
		text_str(t, "\"");
	} else {
		text_str(t, "null");
	}
	text_str(t, ",\"capabilities\":");
	text_json(t, json_object_get(json_object_get(dev->doc, "capabilities"), oh_module(ctx)));
	text_str(t, ",\"state\":");
	text_json(t, st ? status_field(st, "state") : NULL);
	text_str(t, ",\"input\":");
	text_json(t, st ? status_field(st, "input") : NULL);
	text_str(t, ",\"recording\":");
	text_json(t, st ? status_field(st, "recording") : NULL);
	text_str(t, ",\"module_status\":");
	text_json(t, st);
	text_str(t, ",\"holder\":");
	if(*leased) {
		text_string(t, l->holder);
		text_str(t, ",\"lease\":{\"holder\":");
		text_string(t, l->holder);
		text_str(t, ",\"expires_at\":\"");
		text_str(t, oh_format_time(l->expires_at, iso, sizeof(iso)));
		snprintf(num, sizeof(num), "\",\"remaining_s\":%" JSON_INTEGER_FORMAT "}}",
				(json_int_t)(l->remaining_s > 0 ? ceil(l->remaining_s) : 0));
		text_str(t, num);
	} else {
		text_str(t, "null,\"lease\":null}");
	}
	return !t->failed;
}

/*
 * Renders e from dev (borrowed) and what the module status and the lease
 * say now; false when out of memory (e is left as it was).  The text is
 * written directly, byte for byte what json_dumps(JSON_COMPACT) made of the
 * object this list was once built from (same fields, same order), in a
 * fraction of the time: clients compare the bytes.
 */
static bool render(struct ndi_devices *v, struct entry *e, const struct oh_device *dev)
{
	struct text *t = &v->scratch;
	unsigned long long seq;
	const json_t *st = ndi_status_get(v->n, dev->id, &seq);
	struct oh_lease l;
	bool leased;

	if(!has_module(dev->doc, oh_module(v->n->ctx))) {
		set_fragment(v, e, NULL, 0);
		lease_unlink(v, e);
		goto done;
	}
	t->len = 0;
	t->failed = false;
	if(!render_text(v, t, dev, st, &l, &leased))
		return false;
	if(leased) {
		char *holder = e->holder && !strcmp(e->holder, l.holder) ? NULL : strdup(l.holder);
		if(!e->holder || holder) {
			if(!holder)
				return false;
			lease_unlink(v, e);
			e->holder = holder;
			oh_list_push_front(&v->leased, &e->lease_link);
		}
		e->lease_expires = l.expires_at;
		if(l.expires_at < v->lease_deadline)
			v->lease_deadline = l.expires_at;
	} else {
		lease_unlink(v, e);
	}
	if(!set_fragment(v, e, t->p, t->len))
		return false;
done:
	e->dev_changes = dev->changes;
	e->status_seq = seq;
	return true;
}

/* ---- the walk --------------------------------------------------------------------- */

static struct inputs inputs_now(struct ndi_devices *v)
{
	oh_ctx *ctx = v->n->ctx;

	return (struct inputs){
			oh_registry_generation(ctx), ndi_status_generation(v->n), oh_lease_generation(ctx)};
}

static bool inputs_equal(const struct inputs *a, const struct inputs *b)
{
	return a->registry == b->registry && a->status == b->status && a->lease == b->lease;
}

/* Whether the leases shown have aged or run out. */
static bool leases_due(const struct ndi_devices *v)
{
	return !oh_list_empty(&v->leased) &&
			(now_mono() - v->leases_read >= LEASE_AGE_S || now_wall() >= v->lease_deadline);
}

static void enqueue(struct ndi_devices *v, struct entry *e)
{
	if(e->queued)
		return;
	if(!push(&v->todo, &v->n_todo, &v->cap_todo, e)) {
		v->failed = true;
		return;
	}
	e->queued = true;
}

/* Whether e shows another lease than the device has now. */
static bool lease_moved(struct ndi_devices *v, const struct entry *e)
{
	char key[160];
	struct oh_lease l;
	bool leased;

	lease_key(v, e->id, key, sizeof(key));
	leased = oh_lease_get(v->n->ctx, key, &l) == OH_OK;
	if(leased != (e->holder != NULL))
		return true;
	return leased && (strcmp(l.holder, e->holder) || l.expires_at != e->lease_expires);
}

/* Notes a newcomer's id (borrowed) for index_step. */
static bool add_new_id(struct ndi_devices *v, const char *id)
{
	size_t len = strlen(id) + 1;

	if(v->new_len + len > v->new_cap) {
		size_t cap = v->new_cap ? v->new_cap * 2 : 4096;
		char *grown;

		while(cap < v->new_len + len)
			cap *= 2;
		grown = realloc(v->new_ids, cap);
		if(!grown)
			return false;
		v->new_ids = grown;
		v->new_cap = cap;
	}
	memcpy(v->new_ids + v->new_len, id, len);
	v->new_len += len;
	v->n_new++;
	return true;
}

static int walk_one(const struct oh_device *dev, void *ud)
{
	struct ndi_devices *v = ud;
	struct entry *e;

	v->n_seen++;
	/* Not changed since the last walk, which saw it: its entry exists and
	 * is current.  This keeps the walk to a comparison per device. */
	if(dev->changes && dev->changes <= v->walked.registry)
		return 0;
	e = oh_map_size(v->by_id) ? oh_map_get(v->by_id, dev->id) : NULL;
	if(!e) {
		/* A flood of new ids costs the walk a copy each, no more. */
		if(add_new_id(v, dev->id))
			return 0;
		v->failed = true;
		return 1;
	}
	if(!dev->changes || e->dev_changes != dev->changes)
		enqueue(v, e);
	return v->failed;
}

static void status_changed(const char *device_id, void *ud)
{
	struct ndi_devices *v = ud;
	struct entry *e = oh_map_get(v->by_id, device_id);

	/* Newcomers are not in by_id yet: they are queued anyway. */
	if(e)
		enqueue(v, e);
}

/*
 * Finds what the build must render: the devices whose counter moved since
 * the last walk and the newcomers (one comparison per device, and only
 * when the registry changed at all), those whose module status changed
 * since, every listed device when some lease changed, and the leased ones
 * when due.
 */
static void walk(struct ndi_devices *v, const struct inputs *in)
{
	v->n_todo = v->i_todo = 0;
	v->n_fresh = v->n_new = v->new_len = v->new_at = 0;
	v->sweep = false;
	if(!v->walked.registry || in->registry != v->walked.registry) {
		v->n_seen = 0;
		oh_device_walk(v->n->ctx, walk_one, v); /* ids and counters only */
		/* Every known device either moved or was skipped as current. */
		v->sweep = !v->failed && v->n_seen - v->n_new < v->n_sorted;
	}
	if(in->status != v->walked.status &&
			!ndi_status_changed_since(v->n, v->walked.status, status_changed, v)) {
		/* A status was removed: compare every device's. */
		for(size_t i = 0; i < v->n_sorted; i++) {
			unsigned long long seq;

			ndi_status_get(v->n, v->sorted[i]->id, &seq);
			if(seq != v->sorted[i]->status_seq)
				enqueue(v, v->sorted[i]);
		}
	}
	if(in->lease != v->walked.lease) {
		for(size_t i = 0; i < v->n_sorted; i++) {
			if(v->sorted[i]->frag && lease_moved(v, v->sorted[i]))
				enqueue(v, v->sorted[i]);
		}
	}
	if(leases_due(v)) {
		v->leases_read = now_mono();
		v->lease_deadline = INFINITY;
		for(struct oh_list_node *l = v->leased.first; l; l = l->next)
			enqueue(v, oh_list_entry(l, struct entry, lease_link));
	}
	v->walked = *in;
}

/* ---- the slices -------------------------------------------------------------------- */

/* Entries for the newcomers, in by_id and fresh, and queued. */
static bool index_step(struct ndi_devices *v, struct budget *b)
{
	while(v->new_at < v->new_len) {
		const char *id = v->new_ids + v->new_at;
		size_t len = strlen(id);
		struct entry *e = calloc(1, sizeof(*e) + len + 1);
		int err = 0;

		if(!e)
			goto nomem;
		memcpy(e->id, id, len + 1);
		err = oh_map_put(v->by_id, e->id, e, NULL);
		if(err) {
			free(e);
			goto nomem;
		}
		if(!push(&v->fresh, &v->n_fresh, &v->cap_fresh, e)) {
			oh_map_remove(v->by_id, e->id);
			free(e);
			goto nomem;
		}
		v->new_at += len + 1;
		enqueue(v, e);
		if(v->failed)
			return true;
		if(spent(b))
			return false;
	}
	return true;

nomem:
	v->failed = true;
	return true;
}

static bool render_step(struct ndi_devices *v, struct budget *b)
{
	while(v->i_todo < v->n_todo) {
		struct entry *e = v->todo[v->i_todo++];
		struct oh_device dev;

		e->queued = false;
		/* Gone since the walk: the sweep of a later build drops it. */
		if(oh_device_get(v->n->ctx, e->id, &dev) == OH_OK && !render(v, e, &dev)) {
			v->failed = true;
			return true;
		}
		if(spent(b))
			return false;
	}
	return true;
}

/* Drops the entries of devices no longer in the registry, compacting
 * sorted in place. */
static bool sweep_step(struct ndi_devices *v, struct budget *b)
{
	if(!v->sweep)
		return true;
	while(v->i_sweep < v->n_sorted) {
		struct entry *e = v->sorted[v->i_sweep++];
		struct oh_device dev;

		if(oh_device_get(v->n->ctx, e->id, &dev) == OH_OK) {
			v->sorted[v->n_kept++] = e;
		} else {
			oh_map_remove(v->by_id, e->id);
			entry_free(v, e);
			v->body_stale = true;
		}
		if(spent(b))
			return false;
	}
	v->n_sorted = v->n_kept;
	v->sweep = false;
	return true;
}

static int by_id(const void *a, const void *b)
{
	return strcmp((*(struct entry *const *)a)->id, (*(struct entry *const *)b)->id);
}

/* Sorts the newcomers: runs of SORT_RUN by qsort, then merged pairwise
 * into the other array, doubling the width, one element at a time. */
static bool sort_step(struct ndi_devices *v, struct budget *b)
{
	size_t n = v->n_fresh;

	if(n < 2)
		return true;
	if(!v->sort.src) {
		v->sort.src = v->fresh;
		v->sort.dst = malloc(n * sizeof(*v->sort.dst));
		if(!v->sort.dst) {
			v->sort.src = NULL;
			v->failed = true;
			return true;
		}
		v->sort.width = v->sort.lo = 0;
		v->sort.in_pair = false;
	}
	while(!v->sort.width) {
		size_t len = n - v->sort.lo < SORT_RUN ? n - v->sort.lo : SORT_RUN;

		qsort(v->sort.src + v->sort.lo, len, sizeof(*v->sort.src), by_id);
		v->sort.lo += len;
		if(v->sort.lo == n) {
			v->sort.width = SORT_RUN;
			v->sort.lo = 0;
		}
		if(now_mono() >= b->until)
			return false;
	}
	while(v->sort.width < n) {
		struct entry **src = v->sort.src, **dst = v->sort.dst, **tmp;

		while(v->sort.lo < n) {
			if(!v->sort.in_pair) {
				v->sort.mid = n - v->sort.lo < v->sort.width ? n : v->sort.lo + v->sort.width;
				v->sort.hi = n - v->sort.mid < v->sort.width ? n : v->sort.mid + v->sort.width;
				v->sort.p = v->sort.o = v->sort.lo;
				v->sort.q = v->sort.mid;
				v->sort.in_pair = true;
			}
			while(v->sort.p < v->sort.mid && v->sort.q < v->sort.hi) {
				if(strcmp(src[v->sort.p]->id, src[v->sort.q]->id) < 0)
					dst[v->sort.o++] = src[v->sort.p++];
				else
					dst[v->sort.o++] = src[v->sort.q++];
				if(spent(b))
					return false;
			}
			memcpy(dst + v->sort.o, src + v->sort.p, (v->sort.mid - v->sort.p) * sizeof(*dst));
			v->sort.o += v->sort.mid - v->sort.p;
			memcpy(dst + v->sort.o, src + v->sort.q, (v->sort.hi - v->sort.q) * sizeof(*dst));
			v->sort.in_pair = false;
			v->sort.lo = v->sort.hi;
		}
		tmp = v->sort.src;
		v->sort.src = v->sort.dst;
		v->sort.dst = tmp;
		v->sort.width *= 2;
		v->sort.lo = 0;
	}
	/* The sorted newcomers are in src, which may be the other array. */
	if(v->sort.src != v->fresh) {
		free(v->fresh);
		v->fresh = v->sort.src;
		v->cap_fresh = n;
	} else {
		free(v->sort.dst);
	}
	v->sort.src = v->sort.dst = NULL;
	return true;
}

/* The first index in sorted[lo, n_sorted) whose id is not below id. */
static size_t lower_bound(const struct ndi_devices *v, size_t lo, const char *id)
{
	size_t hi = v->n_sorted;

	while(lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if(strcmp(v->sorted[mid]->id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Copies sorted[merge.i, end) to the merge's output. */
static void merge_copy(struct ndi_devices *v, size_t end)
{
	if(end == v->merge.i)
		return; /* sorted may be NULL */
	memcpy(v->merge.out + v->merge.k, v->sorted + v->merge.i, (end - v->merge.i) * sizeof(*v->merge.out));
	v->merge.k += end - v->merge.i;
	v->merge.i = end;
}

/* Merges the sorted newcomers into sorted: a binary search per newcomer
 * and block copies, so a few newcomers cost little among many entries. */
static bool merge_step(struct ndi_devices *v, struct budget *b)
{
	size_t pos;

	if(!v->n_fresh)
		return true;
	if(!v->merge.out) {
		v->merge.out = malloc((v->n_sorted + v->n_fresh) * sizeof(*v->merge.out));
		if(!v->merge.out) {
			v->failed = true;
			return true;
		}
		v->merge.i = v->merge.j = v->merge.k = 0;
	}
	while(v->merge.j < v->n_fresh) {
		struct entry *e = v->fresh[v->merge.j++];

		pos = lower_bound(v, v->merge.i, e->id);
		merge_copy(v, pos);
		v->merge.out[v->merge.k++] = e;
		if(spent(b))
			return false;
	}
	merge_copy(v, v->n_sorted);
	free(v->sorted);
	v->sorted = v->merge.out;
	v->n_sorted = v->merge.k;
	v->merge.out = NULL;
	v->n_fresh = 0;
	v->body_stale = true;
	return true;
}

static void put(char **p, const void *s, size_t len)
{
	memcpy(*p, s, len);
	*p += len;
}

/* Every listed fragment into the next body, unless nothing shown changed. */
static bool assemble_step(struct ndi_devices *v, struct budget *b)
{
	if(!v->next_body) {
		size_t len;

		if(!v->body_stale && v->body)
			return true;
		len = sizeof(BODY_HEAD) - 1 + v->listed_bytes + (v->listed ? v->listed - 1 : 0) +
				sizeof(BODY_TAIL) - 1;
		v->next_body = oh_blob_new(NULL, len);
		if(!v->next_body) {
			v->failed = true;
			return true;
		}
		v->out = oh_blob_data(v->next_body);
		put(&v->out, BODY_HEAD, sizeof(BODY_HEAD) - 1);
		v->i_out = 0;
		v->first_out = true;
	}
	while(v->i_out < v->n_sorted) {
		struct entry *e = v->sorted[v->i_out++];

		if(e->frag) {
			if(!v->first_out)
				put(&v->out, ",", 1);
			put(&v->out, e->frag, e->frag_len);
			v->first_out = false;
		}
		if(spent(b))
			return false;
	}
	put(&v->out, BODY_TAIL, sizeof(BODY_TAIL) - 1);
	return true;
}

/* One slice of the build; true when the build is over (done or failed). */
static bool slice(struct ndi_devices *v)
{
	static bool (*const steps[])(struct ndi_devices *, struct budget *) = {
			[P_INDEX] = index_step,
			[P_RENDER] = render_step,
			[P_SWEEP] = sweep_step,
			[P_SORT] = sort_step,
			[P_MERGE] = merge_step,
			[P_ASSEMBLE] = assemble_step,
	};
	struct budget b = {now_mono() + SLICE_S, 0};

	while(v->phase != P_DONE) {
		if(!steps[v->phase](v, &b))
			return false;
		if(v->failed)
			return true;
		v->phase++;
	}
	return true;
}

/* ---- the build and its waiters ---------------------------------------------------- */

static void on_slice(oh_ctx *ctx, void *ud);

static void schedule(struct ndi_devices *v)
{
	if(v->timer)
		return;
	v->timer = oh_timer_add(v->n->ctx, 0, false, on_slice, v);
	if(!v->timer)
		oh_log(v->n->ctx, OH_LOG_ERROR, "cannot add a timer: the device list stalls");
}

static void reply_body(struct ndi_devices *v, struct oh_http_req *req)
{
	if(oh_reply_blob(req, 200, "application/json", v->body) == OH_ERR_NOMEM)
		oh_reply_error(req, 500, "ERROR", "out of memory");
}

/* Answers and frees the waiters of the build just ended, or with stopping
 * all of them; the others now wait for the next build. */
static void answer(struct ndi_devices *v, bool stopping)
{
	struct oh_list_node *l, *next;

	for(l = v->waiters.first; l; l = next) {
		struct waiter *w = oh_list_entry(l, struct waiter, link);
		next = l->next;
		if(!w->joined && !stopping) {
			w->joined = true;
			continue;
		}
		oh_list_remove(&v->waiters, &w->link);
		oh_req_on_gone(w->req, NULL, NULL);
		if(stopping)
			oh_reply_error(w->req, 503, "UNAVAILABLE", "the %s plugin stopped",
					oh_module(v->n->ctx));
		else if(v->failed || !v->body)
			oh_reply_error(w->req, 500, "ERROR", "out of memory");
		else
			reply_body(v, w->req);
		free(w);
	}
}

/* Undoes what a failed build left half done: the next walk looks at every
 * device again. */
static void abandon(struct ndi_devices *v)
{
	/* Newcomers' entries not merged yet, all in by_id.  While they are
	 * being sorted, only src holds each of them exactly once. */
	struct entry **fresh = v->sort.src ? v->sort.src : v->fresh;

	for(size_t i = v->i_todo; i < v->n_todo; i++)
		v->todo[i]->queued = false;
	for(size_t i = 0; i < v->n_fresh; i++) {
		oh_map_remove(v->by_id, fresh[i]->id);
		entry_free(v, fresh[i]);
	}
	v->n_fresh = v->n_new = v->new_len = v->new_at = 0;
	if(v->sort.src) {
		free(v->sort.src == v->fresh ? v->sort.dst : v->sort.src);
		v->sort.src = v->sort.dst = NULL;
	}
	free(v->merge.out);
	v->merge.out = NULL;
	oh_blob_unref(v->next_body);
	v->next_body = NULL;
	v->walked = (struct inputs){0, 0, 0};
	v->body_in = (struct inputs){0, 0, 0};
	oh_log(v->n->ctx, OH_LOG_ERROR, "out of memory building the device list");
}

static void finish(struct ndi_devices *v)
{
	if(v->failed) {
		abandon(v);
	} else {
		oh_log(v->n->ctx, OH_LOG_DEBUG,
				"device list: %zu rendered of %zu, %zu bytes%s; walk "
				"%.1f ms, build %.1f ms in %u slice(s)",
				v->n_todo, v->n_sorted,
				v->next_body              ? oh_blob_len(v->next_body)
						: v->body ? oh_blob_len(v->body)
							  : 0,
				v->next_body ? "" : " (unchanged)", v->walk_s * 1e3,
				(now_mono() - v->started) * 1e3, v->slices);
		if(v->next_body) {
			oh_blob_unref(v->body);
			v->body = v->next_body;
			v->next_body = NULL;
			v->body_stale = false;
		}
		v->body_in = v->walked;
	}
	v->n_todo = v->i_todo = 0;
	v->building = false;
	answer(v, false);
	v->failed = false;
	if(!oh_list_empty(&v->waiters))
		schedule(v);
}

/* Starts a build on the inputs of now and runs its first slice. */
static void build(struct ndi_devices *v)
{
	struct inputs in = inputs_now(v);

	v->building = true;
	v->phase = P_INDEX;
	v->i_sweep = v->n_kept = 0;
	v->started = now_mono();
	v->slices = 1;
	walk(v, &in);
	v->walk_s = now_mono() - v->started;
	if(v->failed || slice(v))
		finish(v);
	else
		schedule(v);
}

static void on_slice(oh_ctx *ctx, void *ud)
{
	struct ndi_devices *v = ud;

	v->timer = OH_TIMER_NONE; /* fired: never cancel it now */
	if(!v->building) {
		if(!oh_list_empty(&v->waiters))
			build(v);
		return;
	}
	v->slices++;
	if(slice(v))
		finish(v);
	else
		schedule(v);
}

static void waiter_gone(struct oh_http_req *req, void *ud)
{
	struct waiter *w = ud;

	oh_list_remove(&w->v->waiters, &w->link);
	free(w);
}

static bool wait_for_build(struct ndi_devices *v, struct oh_http_req *req, bool joined)
{
	struct waiter *w = calloc(1, sizeof(*w));

	if(!w)
		return false;
	w->v = v;
	w->req = req;
	w->joined = joined;
	oh_list_push_front(&v->waiters, &w->link);
	oh_req_on_gone(req, waiter_gone, w);
	return true;
}

/* GET ...?ids=a,b: just those devices (at most MAX_IDS), rendered now and
 * not cached, for a page that saw a few of them change; an unknown id, or a
 * device without the module, is left out. */
static void get_some(struct ndi_devices *v, struct oh_http_req *req, const char *ids)
{
	struct text t = {0};
	char id[65];
	unsigned count = 0, listed = 0;
	unsigned long long seq;

	text_str(&t, BODY_HEAD);
	for(const char *p = ids;; p++) {
		size_t len = strcspn(p, ",");
		struct oh_device dev;
		struct oh_lease l;
		bool leased;

		if(++count > MAX_IDS) {
			oh_reply_error(req, 400, "BAD_REQUEST", "ids: at most %d device ids", MAX_IDS);
			goto out;
		}
		snprintf(id, sizeof id, "%.*s", (int)len, p);
		if(len >= sizeof id || !oh_device_id_valid(id)) {
			oh_reply_error(req, 400, "BAD_REQUEST", "ids[%u]: not a device id", count - 1);
			goto out;
		}
		if(oh_device_get(v->n->ctx, id, &dev) == OH_OK && has_module(dev.doc, oh_module(v->n->ctx))) {
			if(listed++)
				text_str(&t, ",");
			render_text(v, &t, &dev, ndi_status_get(v->n, id, &seq), &l, &leased);
		}
		p += len;
		if(!*p)
			break;
	}
	text_str(&t, BODY_TAIL);
	if(t.failed)
		oh_reply_error(req, 500, "ERROR", "out of memory");
	else
		oh_reply_raw(req, 200, "application/json", t.p, t.len);
out:
	free(t.p);
}

void ndi_devices_get(struct ndi *n, struct oh_http_req *req)
{
	struct ndi_devices *v = n->devices;
	struct inputs in = inputs_now(v);
	const char *ids = oh_req_query(req, "ids");

	if(ids) {
		get_some(v, req, ids);
		return;
	}

	if(v->building) {
		/* Joins only a build that started on these very inputs. */
		if(!wait_for_build(v, req, inputs_equal(&in, &v->walked) && !leases_due(v)))
			oh_reply_error(req, 500, "ERROR", "out of memory");
		schedule(v); /* in case the last attempt failed */
		return;
	}
	if(v->body && oh_list_empty(&v->waiters) && inputs_equal(&in, &v->body_in) && !leases_due(v)) {
		reply_body(v, req);
		return;
	}
	if(!wait_for_build(v, req, true)) {
		oh_reply_error(req, 500, "ERROR", "out of memory");
		return;
	}
	build(v);
}

/* ---- life cycle ------------------------------------------------------------------------ */

int ndi_devices_start(struct ndi *n)
{
	struct ndi_devices *v = calloc(1, sizeof(*v));

	if(!v)
		return OH_ERR_NOMEM;
	v->n = n;
	v->lease_deadline = INFINITY;
	v->by_id = oh_map_new();
	if(!v->by_id) {
		free(v);
		return OH_ERR_NOMEM;
	}
	n->devices = v;
	return OH_OK;
}

static void entry_release(void *p)
{
	struct entry *e = p;

	free(e->frag);
	free(e->holder);
	free(e);
}

void ndi_devices_free(struct ndi *n)
{
	struct ndi_devices *v = n->devices;

	if(!v)
		return;
	if(v->timer)
		oh_timer_cancel(n->ctx, v->timer);
	answer(v, true);
	/* Every entry is in by_id; sorted may be half swept, so it is not read. */
	oh_map_free(v->by_id, entry_release);
	if(v->sort.src)
		free(v->sort.src == v->fresh ? v->sort.dst : v->sort.src);
	free(v->merge.out);
	free(v->sorted);
	free(v->todo);
	free(v->fresh);
	free(v->new_ids);
	free(v->scratch.p);
	oh_blob_unref(v->next_body);
	oh_blob_unref(v->body);
	free(v);
	n->devices = NULL;
}
