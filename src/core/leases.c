/*
 * Leases: actor-owned reservations of a key ("ndi:rpi-01") until a deadline.
 *
 * Deadlines are wall-clock times, because that is what survives a restart,
 * and each lease's expiry runs on a monotonic loop timer.  When the timer
 * fires the wall clock is checked again, so a clock stepped backwards
 * re-arms the timer instead of ending the lease early.  Every change is
 * written to the store before the caller is answered.
 *
 * Any client may reserve any key, so new leases stop at limits.max_leases
 * (OH_ERR_TOO_LARGE, counted); the holders of existing ones can still
 * renew, release and take them again.  Leases restored at start-up are all
 * kept, even past a lowered limit: they were granted.
 *
 * Arguments come from plugins, which pass on what clients sent: a NULL key
 * or actor, and a lease_s that is NaN, infinite, not positive or over
 * OH_LEASE_MAX_S, are refused with OH_ERR_INVAL before anything else, so
 * no comparison sees NULL and no deadline becomes a time_t out of range.
 */
#include "core.h"

#include <event2/event.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "strbuf.h"
#include "strmap.h"
#include "timeutil.h"

#define LEASE_KEY_MAX 256
/* Stored expiries beyond this (seconds, the year 33658) cannot be real. */
#define LEASE_EXPIRY_SANE 1e12

struct lease {
	struct leases *owner;
	char *key;
	char holder[128];
	double expires_at;
	struct event *timer;
};

struct leases {
	struct host *host;
	struct strmap *map;
	void (*expired)(struct host *h, const char *key, const char *holder);
	/* Told of every lease taken, moved or dropped (snapshot.c). */
	void (*changed)(void *ud);
	void *changed_ud;
	size_t insane; /* restored leases whose expiry was not a time */
};

static void lease_free(void *p)
{
	struct lease *l = p;
	if(l->timer)
		event_free(l->timer);
	free(l->key);
	free(l);
}

static void fill_out(const struct lease *l, struct oh_lease *out)
{
	if(!out)
		return;
	memset(out, 0, sizeof *out);
	snprintf(out->holder, sizeof out->holder, "%s", l->holder);
	out->expires_at = l->expires_at;
	out->remaining_s = l->expires_at - time_now_wall();
	if(out->remaining_s < 0)
		out->remaining_s = 0;
}

static void arm(struct lease *l)
{
	double wait = l->expires_at - time_now_wall();
	/* NaN too.  A deadline is at most OH_LEASE_MAX_S away (and re-checked
	 * when the timer fires), so the casts below stay in range. */
	if(!(wait > 0))
		wait = 0;
	if(wait > OH_LEASE_MAX_S)
		wait = OH_LEASE_MAX_S;
	time_evtimer_add(l->timer, wait);
}

static void changed(struct leases *ls)
{
	if(ls->changed)
		ls->changed(ls->changed_ud);
}

/*
 * Writes a lease change and its audit record in one transaction: the lease
 * (put, or deleted with l NULL) under key, `action` done by actor
 * (borrowed; NULL: unknown).  OH_ERR_IO when it was not committed.
 */
static int write_change(struct leases *ls, const char *key, const struct lease *l, const char *action,
		const char *actor, const char *previous)
{
	struct store *s = ls->host->store;
	if(!s)
		return OH_OK;
	int rc = store_begin(s);
	if(rc)
		return rc;
	if(l) {
		struct store_lease sl = {l->key, l->holder, l->expires_at};
		rc = store_lease_put(s, &sl);
	} else {
		rc = store_lease_delete(s, key);
	}
	if(!rc && ls->host->audit) {
		/* "ndi:rpi-01": the module, and the device after the colon. */
		const char *colon = strchr(key, ':');
		char module[64] = "", when[32];
		if(colon)
			snprintf(module, sizeof module, "%.*s", (int)(colon - key), key);
		json_t *detail = json_pack("{s:s}", "key", key);
		if(l)
			json_object_set_new(detail, "expires_at",
					json_string(time_format_utc((time_t)l->expires_at, when, sizeof when)));
		if(previous)
			json_object_set_new(detail, "holder", json_string(previous));
		struct audit_rec r = {.kind = "lease",
				.action = action,
				.actor = actor,
				.token = http_current_token(),
				.device_id = colon ? colon + 1 : NULL,
				.module = colon ? module : NULL,
				.detail = detail,
				.latency_ms = -1};
		audit_record(ls->host, &r);
		json_decref(detail);
	}
	int crc = store_commit(s);
	return rc ? rc : crc;
}

static void drop(struct leases *ls, struct lease *l)
{
	strmap_remove(ls->map, l->key);
	lease_free(l);
	changed(ls);
}

static void expire_now(struct lease *l)
{
	struct leases *ls = l->owner;
	char key[LEASE_KEY_MAX], holder[128];
	snprintf(key, sizeof key, "%s", l->key);
	snprintf(holder, sizeof holder, "%s", l->holder);
	write_change(ls, key, NULL, "expire", holder, holder);
	drop(ls, l);
	log_info("leases", "%s held by %s expired", key, holder);
	if(ls->expired)
		ls->expired(ls->host, key, holder);
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
	struct lease *l = arg;
	/* Early by the wall clock (it was stepped back): wait the rest. */
	if(l->expires_at - time_now_wall() > 0.001) {
		arm(l);
		return;
	}
	expire_now(l);
}

static struct lease *lease_new(struct leases *ls, const char *key)
{
	struct lease *l = calloc(1, sizeof *l);
	if(!l)
		return NULL;
	l->owner = ls;
	l->key = strdup(key);
	l->timer = evtimer_new(ls->host->base, on_expire, l);
	int err = 0;
	if(l->key && l->timer)
		strmap_put(ls->map, key, l, &err);
	if(!l->key || !l->timer || err) {
		lease_free(l);
		return NULL;
	}
	return l;
}

struct leases *leases_new(struct host *h)
{
	struct leases *ls = calloc(1, sizeof *ls);
	if(!ls)
		return NULL;
	ls->host = h;
	ls->map = strmap_new();
	if(!ls->map) {
		free(ls);
		return NULL;
	}
	return ls;
}

void leases_free(struct leases *ls)
{
	if(!ls)
		return;
	strmap_free(ls->map, lease_free);
	free(ls);
}

void leases_set_expired_handler(struct leases *ls, void (*fn)(struct host *, const char *, const char *))
{
	ls->expired = fn;
}

void leases_on_change(struct leases *ls, void (*fn)(void *ud), void *ud)
{
	ls->changed = fn;
	ls->changed_ud = ud;
}

static void load_one(const struct store_lease *sl, void *ud)
{
	struct leases *ls = ud;
	struct lease *l = lease_new(ls, sl->key);
	if(!l)
		return;
	snprintf(l->holder, sizeof l->holder, "%s", sl->holder);
	l->expires_at = sl->expires_at;
	if(!(fabs(l->expires_at) < LEASE_EXPIRY_SANE)) {
		/* NaN, infinite or absurd (a damaged row): end it now rather than
		 * carry a deadline no time_t can hold. */
		ls->insane++;
		l->expires_at = 0;
	}
	/* Leases that ran out while we were down expire on the first loop
	 * turn, once the plugins that report them are loaded. */
	arm(l);
}

int leases_load(struct leases *ls)
{
	if(!ls->host->store)
		return OH_OK;
	ls->insane = 0;
	int rc = store_lease_load(ls->host->store, load_one, ls);
	if(ls->insane)
		log_warn("leases", "%zu stored lease(s) had an expiry that is not a time; they end now",
				ls->insane);
	if(strmap_size(ls->map)) {
		log_info("leases", "restored %zu lease(s)", strmap_size(ls->map));
		changed(ls); /* a view made before (the snapshot's) is out of date */
	}
	long max = ls->host->cfg.limits.max_leases;
	if(max > 0 && strmap_size(ls->map) > (size_t)max)
		log_warn("leases",
				"more leases than limits.max_leases (%ld): all kept, no new ones "
				"until they end",
				max);
	return rc;
}

/* s as a JSON string, as jansson writes it (no ASCII escaping); false
 * when s is not UTF-8, which jansson refuses. */
static bool put_string(struct strbuf *b, const char *s)
{
	const char *p = s;
	while(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
		p++;
	if(!*p) {
		strbuf_putc(b, '"');
		strbuf_add(b, s, (size_t)(p - s));
		strbuf_putc(b, '"');
		return true;
	}
	/* What needs escaping, or checking, is left to jansson. */
	json_t *j = json_string(s);
	char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	if(text)
		strbuf_puts(b, text);
	free(text);
	json_decref(j);
	return text != NULL;
}

char *leases_to_text(struct leases *ls)
{
	/* A standby holds none: it shows the leader's, as last read. */
	if(!ha_acting(ls->host)) {
		json_t *view = ha_view_leases(ls->host);
		char *text = json_dumps(view, JSON_COMPACT);
		json_decref(view);
		return text;
	}
	/* Written as json_dumps(JSON_COMPACT) would write a tree of them, in
	 * the map's order, without the tree: at 100,000 leases the tree was a
	 * tenth of a start-up (docs/performance.md, "Start-up"). */
	struct strbuf b = {0};
	struct strmap_iter it;
	strmap_iter_init(&it, ls->map);
	void *v;
	strbuf_putc(&b, '{');
	while(strmap_iter_next(&it, NULL, &v)) {
		struct lease *l = v;
		char when[32] = "";
		size_t mark = b.len;
		if(mark > 1)
			strbuf_putc(&b, ',');
		/* expires_at is finite and in range: checked when it was set. */
		bool ok = put_string(&b, l->key) && time_format_utc((time_t)l->expires_at, when, sizeof when);
		strbuf_puts(&b, ":{\"holder\":");
		ok = ok && put_string(&b, l->holder);
		strbuf_printf(&b, ",\"expires_at\":\"%s\"}", when);
		if(!ok && !b.failed) /* left out, as jansson would leave it */
			b.len = mark;
	}
	strbuf_putc(&b, '}');
	return strbuf_take(&b);
}

size_t leases_count(const struct leases *ls)
{
	return strmap_size(ls->map);
}

static bool key_ok(const char *key)
{
	/* Keys are bounded so expiry can copy one before freeing the lease. */
	return key && *key && strlen(key) < LEASE_KEY_MAX;
}

static bool actor_ok(const char *actor)
{
	return actor && *actor && strlen(actor) < sizeof((struct lease *)0)->holder;
}

static bool duration_ok(double lease_s)
{
	/* Written so that NaN fails too. */
	return lease_s > 0 && lease_s <= OH_LEASE_MAX_S;
}

static struct lease *live(struct leases *ls, const char *key)
{
	struct lease *l = strmap_get(ls->map, key);
	/* The timer may not have run yet for a lease that just ran out. */
	if(l && l->expires_at <= time_now_wall()) {
		expire_now(l);
		return NULL;
	}
	return l;
}

/*
 * Reserve and renew: gives actor the lease on key for lease_s from now.  A
 * renewal needs a lease actor already holds (NOT_HELD, NOT_OWNER); a
 * reservation takes a free key or extends actor's own (IN_USE when another
 * holds it).
 */
static int hold(struct leases *ls, const char *key, const char *actor, double lease_s, bool renew,
		struct oh_lease *out)
{
	if(!key_ok(key) || !actor_ok(actor) || !duration_ok(lease_s))
		return OH_ERR_INVAL;
	struct lease *l = live(ls, key);
	if(!l && renew)
		return OH_ERR_NOT_HELD;
	if(l && strcmp(l->holder, actor)) {
		fill_out(l, out);
		return renew ? OH_ERR_NOT_OWNER : OH_ERR_IN_USE;
	}
	bool created = false;
	if(!l) {
		if(config_limit_reached(ls->host->cfg.limits.max_leases, strmap_size(ls->map))) {
			metrics_limit_refusal("max_leases");
			log_debug("leases", "%s for %s refused: limits.max_leases (%ld) reached", key, actor,
					ls->host->cfg.limits.max_leases);
			return OH_ERR_TOO_LARGE;
		}
		l = lease_new(ls, key);
		if(!l)
			return OH_ERR_NOMEM;
		created = true;
	}
	double old_expiry = l->expires_at;
	char old_holder[128];
	snprintf(old_holder, sizeof old_holder, "%s", l->holder);
	snprintf(l->holder, sizeof l->holder, "%s", actor);
	l->expires_at = time_now_wall() + lease_s;
	int rc = write_change(ls, key, l, renew ? "renew" : "take", actor, NULL);
	if(rc) {
		/* Not durable: do not claim it. */
		if(created) {
			drop(ls, l);
		} else {
			l->expires_at = old_expiry;
			snprintf(l->holder, sizeof l->holder, "%s", old_holder);
		}
		return rc;
	}
	arm(l);
	fill_out(l, out);
	changed(ls);
	return OH_OK;
}

int leases_take(struct leases *ls, const char *key, const char *actor, double lease_s, struct oh_lease *out)
{
	return hold(ls, key, actor, lease_s, false, out);
}

int leases_renew(struct leases *ls, const char *key, const char *actor, double lease_s, struct oh_lease *out)
{
	return hold(ls, key, actor, lease_s, true, out);
}

/* Release and force release: ends the lease on key, held by actor or, with
 * actor NULL (force), by anyone; out says who held it. */
static int unhold(struct leases *ls, const char *key, const char *actor, struct oh_lease *out)
{
	struct lease *l = live(ls, key);
	if(!l)
		return OH_ERR_NOT_HELD;
	fill_out(l, out);
	if(actor && strcmp(l->holder, actor))
		return OH_ERR_NOT_OWNER;
	/* A forced release names whoever asked, when a token says. */
	int rc = write_change(ls, key, NULL, actor ? "release" : "force_release",
			actor ? actor : http_current_token(), l->holder);
	if(rc)
		return rc;
	drop(ls, l);
	return OH_OK;
}

int leases_release(struct leases *ls, const char *key, const char *actor, struct oh_lease *out)
{
	if(!key_ok(key) || !actor_ok(actor))
		return OH_ERR_INVAL;
	return unhold(ls, key, actor, out);
}

int leases_force_release(struct leases *ls, const char *key, struct oh_lease *out)
{
	if(!key_ok(key))
		return OH_ERR_INVAL;
	return unhold(ls, key, NULL, out);
}

int leases_can_use(struct leases *ls, const char *key, const char *actor, struct oh_lease *out)
{
	if(!key_ok(key))
		return OH_ERR_INVAL;
	struct lease *l = live(ls, key);
	if(!l || (actor && !strcmp(l->holder, actor)))
		return OH_OK;
	fill_out(l, out);
	return OH_ERR_IN_USE;
}

int leases_get(struct leases *ls, const char *key, struct oh_lease *out)
{
	if(!key_ok(key))
		return OH_ERR_INVAL;
	struct lease *l = live(ls, key);
	if(!l)
		return OH_ERR_NOT_FOUND;
	fill_out(l, out);
	return OH_OK;
}
