/*
 * NDI source discovery (see ndi_discovery.h): mDNS through avahi-daemon, a
 * helper command and a static list, merged by name.
 *
 * Only include/oh/host.h is used: Avahi runs on the host's loop through the
 * AvahiPoll adapter of ndi_avahi_poll.c, and the helper through oh_spawn.  Nothing here blocks, except the short D-Bus round trips
 * libavahi-client itself makes when it (re)connects to the local daemon.
 */
#include "ndi_discovery.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#ifdef OH_HAVE_AVAHI
#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-common/address.h>
#include <avahi-common/error.h>
#include <avahi-common/watch.h>

#include "ndi_avahi_poll.h"
#endif

#define NDI_SERVICE_TYPE "_ndi._tcp"
#define HELPER_MAX_OUTPUT (1024 * 1024)
/* A failure repeated with the same text is logged again after this long. */
#define HELPER_LOG_EVERY_S 300.0
/* Retry when not even the D-Bus system bus is there (with the bus up,
 * libavahi-client itself waits for avahi-daemon to appear). */
#define MDNS_RETRY_MS 5000
#define MDNS_RESTART_MS 1000

/* ---- settings: the one table ------------------------------------------------ */

/* Every item a non-empty string (the table already checked they are
 * strings). */
static const char *check_sources(const json_t *v, void *ud, char *buf, size_t len)
{
	size_t i;
	const json_t *item;
	(void)ud;
	json_array_foreach(v, i, item)
	{
		if(!json_string_length(item)) {
			snprintf(buf, len, "item %zu is empty (expected non-empty strings)", i);
			return buf;
		}
	}
	return NULL;
}

/* A command line that splits, or a non-empty argv whose program is named. */
static const char *check_helper(const json_t *v, void *ud, char *buf, size_t len)
{
	(void)ud;
	if(json_is_string(v)) {
		char **argv;
		int argc;
		if(oh_cmdline_split(json_string_value(v), NULL, 0, &argv, &argc, buf, len))
			return buf;
		oh_cmdline_free(argv);
		return NULL;
	}
	if(!json_is_array(v))
		return "expected a command line, an array of strings, or null";
	if(!json_array_size(v))
		return "expected a command line, a non-empty array of strings, or null";
	size_t i;
	const json_t *item;
	json_array_foreach(v, i, item)
	{
		if(!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item)) {
			snprintf(buf, len, "item %zu: expected a string", i);
			return buf;
		}
	}
	if(!json_string_length(json_array_get(v, 0)))
		return "item 0: expected a non-empty string (the program)";
	return NULL;
}

/* The helper's timers count milliseconds in an unsigned: the bounds keep
 * them there. */
const struct oh_vfield ndi_discovery_settings[] = {
		OH_VFIELD("sources", OH_VT_ARRAY, 0, .items = OH_VT_STRING, .check = check_sources),
		OH_VFIELD("discovery_helper", OH_VT_ANY, 0, .check = check_helper),
		OH_VFIELD("discovery_interval_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MIN_EXCL | OH_VF_MAX,
				.min = 0, .max = 86400),
		OH_VFIELD("discovery_helper_timeout_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MIN_EXCL | OH_VF_MAX,
				.min = 0, .max = 3600),
		OH_VFIELD("mdns", OH_VT_BOOL, 0),
		OH_VFIELD_END,
};

const struct oh_vobject ndi_discovery_settings_spec = OH_VOBJECT(ndi_discovery_settings, OH_V_REFUSE);

enum origin {
	ORIGIN_MDNS = 1,
	ORIGIN_HELPER = 2,
	ORIGIN_STATIC = 4
};

#ifdef OH_HAVE_AVAHI
/* One announcement: a service name on one interface and protocol.  The same
 * name usually shows up several times (IPv4 and IPv6, several NICs). */
struct mdns_svc {
	struct mdns_svc *next;
	AvahiIfIndex iface;
	AvahiProtocol proto;
	char *name, *type, *domain;
	AvahiServiceResolver *resolver; /* NULL once resolved or failed */
	bool resolved;
	char *host;
	char address[AVAHI_ADDRESS_STR_MAX];
	int port;
};

#endif

struct ndi_discovery {
	struct ndi_discovery *live_next;
	uint64_t id;
	oh_ctx *ctx;

	json_t *statics; /* array of strings */

	char **helper_argv; /* NULL: no helper */
	unsigned helper_interval_ms, helper_timeout_ms;
	oh_timer_id helper_timer;
	bool helper_running;
	json_t *helper;            /* array of {name, host?, address?, port?} */
	char helper_fail_msg[256]; /* the last failure logged, "" when healthy */
	double helper_fail_logged_at;
	unsigned helper_fail_suppressed;

	bool mdns_enabled;
	bool mdns_unavailable_logged;
#ifdef OH_HAVE_AVAHI
	AvahiPoll poll;
	AvahiClient *client;
	AvahiServiceBrowser *browser;
	struct mdns_svc *svcs;
	oh_timer_id mdns_timer; /* one-shot: retry or restart the client */
#endif
};

/* The live discoveries, so a helper finishing after its discovery was
 * freed finds nothing (oh_spawn has no cancel; ud carries the id). */
static struct ndi_discovery *live;
static uint64_t next_id = 1;

static struct ndi_discovery *find_live(uint64_t id)
{
	for(struct ndi_discovery *d = live; d; d = d->live_next) {
		if(d->id == id)
			return d;
	}
	return NULL;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the helper ------------------------------------------------------------- */

static void helper_failed(struct ndi_discovery *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs a failure unless it is the one logged last, within HELPER_LOG_EVERY_S:
 * a helper that keeps failing the same way every 30 s should not flood. */
static void helper_failed(struct ndi_discovery *d, const char *fmt, ...)
{
	char msg[sizeof d->helper_fail_msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	double now = mono_now();
	if(!strcmp(msg, d->helper_fail_msg) && now - d->helper_fail_logged_at < HELPER_LOG_EVERY_S) {
		d->helper_fail_suppressed++;
		return;
	}
	char also[64] = "";
	if(d->helper_fail_suppressed)
		snprintf(also, sizeof also, " (%u more failures since the last report)",
				d->helper_fail_suppressed);
	oh_log(d->ctx, OH_LOG_WARN, "discovery helper %s: %s%s; keeping the previous %zu %s",
			d->helper_argv[0], msg, also, json_array_size(d->helper),
			json_array_size(d->helper) == 1 ? "source" : "sources");
	snprintf(d->helper_fail_msg, sizeof d->helper_fail_msg, "%s", msg);
	d->helper_fail_logged_at = now;
	d->helper_fail_suppressed = 0;
}

static const char *opt_string(const json_t *item, const char *key, bool *bad)
{
	const json_t *v = json_object_get(item, key);
	if(!v || json_is_null(v))
		return NULL;
	if(!json_is_string(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

/* The helper's output as a normalised array of {name, host?, address?, port?}
 * (returned), or NULL with err filled. */
static json_t *parse_helper_output(const char *out, size_t len, char *err, size_t errlen)
{
	size_t i = 0;
	while(i < len && (out[i] == ' ' || out[i] == '\t' || out[i] == '\r' || out[i] == '\n'))
		i++;
	if(i == len) {
		snprintf(err, errlen, "printed nothing");
		return NULL;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(out, len, JSON_REJECT_DUPLICATES, &jerr);
	if(!doc) {
		snprintf(err, errlen, "output is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
				jerr.column);
		return NULL;
	}
	/* A bare list, or {"sources": [...]}. */
	const json_t *arr = json_is_object(doc) ? json_object_get(doc, "sources") : doc;
	json_t *list = json_array();
	if(!list) {
		snprintf(err, errlen, "out of memory");
		goto out_doc;
	}
	if(!json_is_array(arr)) {
		snprintf(err, errlen, "output is not a JSON list of sources");
		goto out_list;
	}
	const json_t *item;
	json_array_foreach(arr, i, item)
	{
		const char *name = NULL, *host = NULL, *address = NULL;
		json_int_t port = -1;
		bool bad = false;
		if(json_is_string(item)) {
			name = json_string_value(item);
		} else if(json_is_object(item)) {
			name = opt_string(item, "name", &bad);
			host = opt_string(item, "host", &bad);
			address = opt_string(item, "address", &bad);
			const json_t *p = json_object_get(item, "port");
			if(json_is_integer(p) && json_integer_value(p) >= 0 && json_integer_value(p) <= 65535)
				port = json_integer_value(p);
			else if(p && !json_is_null(p))
				bad = true;
		} else {
			bad = true;
		}
		if(bad || !name || !*name) {
			snprintf(err, errlen,
					"item %zu: expected a non-empty string or an object with a "
					"non-empty string \"name\" (and optional strings \"host\", \"address\", "
					"a port 0-65535)",
					i);
			goto out_list;
		}
		bool dup = false;
		const json_t *seen;
		size_t j;
		json_array_foreach(list, j, seen)
		{
			if(!strcmp(json_string_value(json_object_get(seen, "name")), name))
				dup = true;
		}
		if(dup)
			continue;
		json_t *o = json_pack("{s:s}", "name", name);
		if(!o || (host && json_object_set_new(o, "host", json_string(host))) ||
				(address && json_object_set_new(o, "address", json_string(address))) ||
				(port >= 0 && json_object_set_new(o, "port", json_integer(port))) ||
				json_array_append_new(list, o)) {
			json_decref(o);
			snprintf(err, errlen, "out of memory");
			goto out_list;
		}
	}
	json_decref(doc);
	return list;

out_list:
	json_decref(list);
out_doc:
	json_decref(doc);
	return NULL;
}

static void on_helper_done(oh_ctx *ctx, int status, bool timed_out, const char *output, size_t len, void *ud)
{
	struct ndi_discovery *d = find_live((uint64_t)(uintptr_t)ud);
	if(!d)
		return;
	d->helper_running = false;
	if(timed_out) {
		helper_failed(d, "timed out after %.1f s (killed)", d->helper_timeout_ms / 1000.0);
		return;
	}
	if(status == -1) {
		helper_failed(d, "could not be waited for");
		return;
	}
	if(WIFSIGNALED(status)) {
		helper_failed(d, "killed by signal %d", WTERMSIG(status));
		return;
	}
	if(WIFEXITED(status) && WEXITSTATUS(status)) {
		helper_failed(d, "exited with status %d", WEXITSTATUS(status));
		return;
	}
	char err[200];
	json_t *list = parse_helper_output(output, len, err, sizeof err);
	if(!list) {
		helper_failed(d, "%s", err);
		return;
	}
	bool changed = !d->helper || !json_equal(list, d->helper);
	if(d->helper_fail_msg[0])
		oh_log(ctx, OH_LOG_INFO, "discovery helper %s works again: %zu sources", d->helper_argv[0],
				json_array_size(list));
	else if(changed)
		oh_log(ctx, OH_LOG_INFO, "discovery helper %s lists %zu sources", d->helper_argv[0],
				json_array_size(list));
	d->helper_fail_msg[0] = '\0';
	d->helper_fail_suppressed = 0;
	json_decref(d->helper);
	d->helper = list;
}

static void run_helper(oh_ctx *ctx, void *ud)
{
	struct ndi_discovery *d = ud;
	if(d->helper_running) {
		oh_log(ctx, OH_LOG_DEBUG, "discovery helper still running; not starting another");
		return;
	}
	int rc = oh_spawn(ctx, d->helper_argv, d->helper_timeout_ms, HELPER_MAX_OUTPUT, on_helper_done,
			(void *)(uintptr_t)d->id);
	if(rc) {
		helper_failed(d, "cannot be started: %s", oh_strerror(rc));
		return;
	}
	d->helper_running = true;
}

/* ---- mDNS through Avahi ----------------------------------------------------- */

static void mdns_unavailable(struct ndi_discovery *d, const char *why)
{
	if(d->mdns_unavailable_logged)
		return;
	d->mdns_unavailable_logged = true;
	oh_log(d->ctx, OH_LOG_WARN,
			"mDNS discovery unavailable (%s); serving the other sources "
			"and browsing %s as soon as avahi-daemon runs",
			why, NDI_SERVICE_TYPE);
}

#ifdef OH_HAVE_AVAHI

static void svc_free(struct mdns_svc *s)
{
	if(s->resolver)
		avahi_service_resolver_free(s->resolver);
	free(s->name);
	free(s->type);
	free(s->domain);
	free(s->host);
	free(s);
}

/* Forgets the browser and everything it found (the daemon went away). */
static void mdns_drop(struct ndi_discovery *d)
{
	while(d->svcs) {
		struct mdns_svc *s = d->svcs;
		d->svcs = s->next;
		svc_free(s);
	}
	if(d->browser) {
		avahi_service_browser_free(d->browser);
		d->browser = NULL;
	}
}

static void mdns_start(struct ndi_discovery *d);

static void on_mdns_timer(oh_ctx *ctx, void *ud)
{
	struct ndi_discovery *d = ud;
	d->mdns_timer = OH_TIMER_NONE;
	mdns_drop(d);
	if(d->client) {
		avahi_client_free(d->client);
		d->client = NULL;
	}
	mdns_start(d);
}

/* Recreates the client later: never from inside its own callback. */
static void mdns_schedule(struct ndi_discovery *d, unsigned ms)
{
	if(!d->mdns_timer)
		d->mdns_timer = oh_timer_add(d->ctx, ms, false, on_mdns_timer, d);
}

static void on_resolve(AvahiServiceResolver *r, AvahiIfIndex iface, AvahiProtocol proto,
		AvahiResolverEvent event, const char *name, const char *type, const char *domain,
		const char *host, const AvahiAddress *a, uint16_t port, AvahiStringList *txt,
		AvahiLookupResultFlags flags, void *userdata)
{
	struct mdns_svc *s = userdata;
	if(event == AVAHI_RESOLVER_FOUND) {
		free(s->host);
		s->host = host ? strdup(host) : NULL;
		s->address[0] = '\0';
		if(a)
			avahi_address_snprint(s->address, sizeof s->address, a);
		s->port = port;
		s->resolved = true;
	}
	/* One answer is enough; a failure leaves the name listed without an
	 * address (the sender is announced, just not resolvable right now). */
	avahi_service_resolver_free(r);
	s->resolver = NULL;
}

static bool same_svc(const struct mdns_svc *s, AvahiIfIndex iface, AvahiProtocol proto, const char *name,
		const char *type, const char *domain)
{
	return s->iface == iface && s->proto == proto && !strcmp(s->name, name) && !strcmp(s->type, type) &&
			!strcmp(s->domain, domain);
}

static void on_browse(AvahiServiceBrowser *b, AvahiIfIndex iface, AvahiProtocol proto,
		AvahiBrowserEvent event, const char *name, const char *type, const char *domain,
		AvahiLookupResultFlags flags, void *userdata)
{
	struct ndi_discovery *d = userdata;
	switch(event) {
	case AVAHI_BROWSER_NEW: {
		for(struct mdns_svc *s = d->svcs; s; s = s->next) {
			if(same_svc(s, iface, proto, name, type, domain))
				return;
		}
		struct mdns_svc *s = calloc(1, sizeof *s);
		if(!s || !(s->name = strdup(name)) || !(s->type = strdup(type)) ||
				!(s->domain = strdup(domain))) {
			if(s)
				svc_free(s);
			oh_log(d->ctx, OH_LOG_ERROR, "out of memory recording NDI source %s", name);
			return;
		}
		s->iface = iface;
		s->proto = proto;
		s->port = -1;
		s->next = d->svcs;
		d->svcs = s;
		oh_log(d->ctx, OH_LOG_DEBUG, "mDNS: NDI source \"%s\" appeared", name);
		s->resolver = avahi_service_resolver_new(avahi_service_browser_get_client(b), iface, proto,
				name, type, domain, AVAHI_PROTO_UNSPEC, 0, on_resolve, s);
		if(!s->resolver)
			oh_log(d->ctx, OH_LOG_WARN, "mDNS: cannot resolve \"%s\": %s", name,
					avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
		break;
	}
	case AVAHI_BROWSER_REMOVE:
		for(struct mdns_svc **pp = &d->svcs; *pp; pp = &(*pp)->next) {
			if(same_svc(*pp, iface, proto, name, type, domain)) {
				struct mdns_svc *s = *pp;
				*pp = s->next;
				svc_free(s);
				oh_log(d->ctx, OH_LOG_DEBUG, "mDNS: NDI source \"%s\" went away", name);
				break;
			}
		}
		break;
	case AVAHI_BROWSER_FAILURE:
		oh_log(d->ctx, OH_LOG_WARN, "mDNS: browsing %s failed: %s; starting over", NDI_SERVICE_TYPE,
				avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
		mdns_schedule(d, MDNS_RESTART_MS);
		break;
	case AVAHI_BROWSER_ALL_FOR_NOW:
	case AVAHI_BROWSER_CACHE_EXHAUSTED:
		break;
	}
}

static void on_client(AvahiClient *c, AvahiClientState state, void *userdata)
{
	struct ndi_discovery *d = userdata;
	switch(state) {
	case AVAHI_CLIENT_S_RUNNING:
	case AVAHI_CLIENT_S_REGISTERING:
	case AVAHI_CLIENT_S_COLLISION:
		/* The server's own host-name state; browsing works in all three.
		 * `c`, not d->client: this runs inside avahi_client_new too. */
		if(d->browser)
			break;
		d->browser = avahi_service_browser_new(c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
				NDI_SERVICE_TYPE, NULL, 0, on_browse, d);
		if(!d->browser) {
			oh_log(d->ctx, OH_LOG_WARN, "mDNS: cannot browse %s: %s; retrying", NDI_SERVICE_TYPE,
					avahi_strerror(avahi_client_errno(c)));
			mdns_schedule(d, MDNS_RETRY_MS);
			break;
		}
		oh_log(d->ctx, OH_LOG_INFO, "mDNS: connected to avahi-daemon; browsing %s", NDI_SERVICE_TYPE);
		d->mdns_unavailable_logged = false;
		break;
	case AVAHI_CLIENT_CONNECTING:
		/* AVAHI_CLIENT_NO_FAIL: no daemon (yet, or any more); the client
		 * waits for it to appear on the bus. */
		mdns_drop(d);
		mdns_unavailable(d, "avahi-daemon is not running");
		break;
	case AVAHI_CLIENT_FAILURE:
		/* The daemon went away (AVAHI_ERR_DISCONNECTED: even with
		 * NO_FAIL a connected client fails then) or the bus connection
		 * broke: start over with a new client, which waits. */
		mdns_drop(d);
		char why[160];
		snprintf(why, sizeof why, "lost avahi-daemon: %s", avahi_strerror(avahi_client_errno(c)));
		mdns_unavailable(d, why);
		mdns_schedule(d, MDNS_RESTART_MS);
		break;
	}
}

static void mdns_start(struct ndi_discovery *d)
{
	int err = 0;
	AvahiClient *c = avahi_client_new(&d->poll, AVAHI_CLIENT_NO_FAIL, on_client, d, &err);
	if(!c) {
		/* Typically no D-Bus system bus at all. */
		char why[160];
		snprintf(why, sizeof why, "cannot reach avahi-daemon over D-Bus: %s", avahi_strerror(err));
		mdns_unavailable(d, why);
		mdns_schedule(d, MDNS_RETRY_MS);
		return;
	}
	d->client = c;
}

static void mdns_stop(struct ndi_discovery *d)
{
	if(d->mdns_timer) {
		oh_timer_cancel(d->ctx, d->mdns_timer);
		d->mdns_timer = OH_TIMER_NONE;
	}
	mdns_drop(d);
	if(d->client) {
		avahi_client_free(d->client);
		d->client = NULL;
	}
}

/* The best-known instance of each name goes first when merging: resolved
 * IPv4, then resolved anything, then unresolved. */
static int svc_rank(const struct mdns_svc *s)
{
	return s->resolved ? (s->proto == AVAHI_PROTO_INET ? 0 : 1) : 2;
}

#endif /* OH_HAVE_AVAHI */

/* ---- settings and life ------------------------------------------------------- */

/* Seconds (already in range, or absent/null for def) as milliseconds. */
static unsigned ms_setting(const json_t *settings, const char *key, double def)
{
	const json_t *v = json_object_get(settings, key);
	double ms = (json_is_number(v) ? json_number_value(v) : def) * 1000.0 + 0.5;
	return ms < 1 ? 1 : (unsigned)ms;
}

/* Reads settings that passed ndi_discovery_settings_spec (the caller's
 * check, with the one validator), so only allocation can fail here. */
static int parse_settings(struct ndi_discovery *d, const json_t *settings)
{
	const json_t *v = json_object_get(settings, "sources");
	if(json_is_array(v)) {
		json_decref(d->statics);
		if(!(d->statics = json_deep_copy(v)))
			return OH_ERR_NOMEM;
	}

	v = json_object_get(settings, "discovery_helper");
	if(json_is_string(v)) {
		char why[160];
		int argc;
		if(oh_cmdline_split(json_string_value(v), NULL, 0, &d->helper_argv, &argc, why, sizeof why))
			return oh_fail(d->ctx, "settings.discovery_helper: %s", why);
	} else if(json_is_array(v)) {
		size_t n = json_array_size(v), i;
		const json_t *item;
		if(!(d->helper_argv = calloc(n + 1, sizeof *d->helper_argv)))
			return OH_ERR_NOMEM;
		json_array_foreach(v, i, item)
		{
			if(!(d->helper_argv[i] = strdup(json_string_value(item))))
				return OH_ERR_NOMEM;
		}
	}

	d->helper_interval_ms = ms_setting(settings, "discovery_interval_s", 30);
	d->helper_timeout_ms = ms_setting(settings, "discovery_helper_timeout_s", 5);
	v = json_object_get(settings, "mdns");
	d->mdns_enabled = !json_is_false(v);
	return OH_OK;
}

struct ndi_discovery *ndi_discovery_new(oh_ctx *ctx, const json_t *settings)
{
	struct ndi_discovery *d = calloc(1, sizeof *d);
	if(!d)
		return NULL;
	d->ctx = ctx;
	d->id = next_id++;
	d->statics = json_array();
	d->helper = json_array();
	if(!d->statics || !d->helper || parse_settings(d, settings))
		goto out_free;

	d->live_next = live;
	live = d;

	if(d->helper_argv) {
		d->helper_timer = oh_timer_add(ctx, d->helper_interval_ms, true, run_helper, d);
		if(!d->helper_timer) {
			oh_fail(ctx, "discovery: cannot add the helper timer");
			goto out_free;
		}
		run_helper(ctx, d);
	}

	if(d->mdns_enabled) {
#ifdef OH_HAVE_AVAHI
		ndi_avahi_poll_init(&d->poll, ctx);
		mdns_start(d);
#else
		mdns_unavailable(d, "built without libavahi-client");
#endif
	}
	return d;

out_free:
	ndi_discovery_free(d);
	return NULL;
}

void ndi_discovery_free(struct ndi_discovery *d)
{
	if(!d)
		return;
	for(struct ndi_discovery **pp = &live; *pp; pp = &(*pp)->live_next) {
		if(*pp == d) {
			*pp = d->live_next;
			break;
		}
	}
#ifdef OH_HAVE_AVAHI
	mdns_stop(d);
#endif
	if(d->helper_timer)
		oh_timer_cancel(d->ctx, d->helper_timer);
	/* A running helper is killed by the host at teardown; if it finishes
	 * first, find_live() no longer knows this id. */
	oh_cmdline_free(d->helper_argv);
	json_decref(d->statics);
	json_decref(d->helper);
	free(d);
}

/* ---- queries ----------------------------------------------------------------- */

struct merged {
	const char *name;
	const char *host, *address;
	int port;
	unsigned origins;
};

struct merge {
	struct merged *v;
	size_t n, cap;
};

static struct merged *merge_add(struct merge *m, const char *name, unsigned origin)
{
	for(size_t i = 0; i < m->n; i++) {
		if(!strcmp(m->v[i].name, name)) {
			m->v[i].origins |= origin;
			return &m->v[i];
		}
	}
	if(m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct merged *grown = realloc(m->v, cap * sizeof *grown);
		if(!grown)
			return NULL;
		m->v = grown;
		m->cap = cap;
	}
	m->v[m->n] = (struct merged){.name = name, .port = -1, .origins = origin};
	return &m->v[m->n++];
}

static int cmp_merged(const void *a, const void *b)
{
	return strcmp(((const struct merged *)a)->name, ((const struct merged *)b)->name);
}

/* Fills m from every origin; false on allocation failure.  The strings are
 * borrowed from d. */
static bool merge_all(struct ndi_discovery *d, struct merge *m)
{
	size_t i;
	const json_t *item;
#ifdef OH_HAVE_AVAHI
	for(int rank = 0; rank <= 2; rank++) {
		for(struct mdns_svc *s = d->svcs; s; s = s->next) {
			if(svc_rank(s) != rank)
				continue;
			struct merged *e = merge_add(m, s->name, ORIGIN_MDNS);
			if(!e)
				return false;
			if(s->resolved && !e->host && !e->address) {
				e->host = s->host;
				e->address = s->address[0] ? s->address : NULL;
				e->port = s->port;
			}
		}
	}
#endif
	json_array_foreach(d->helper, i, item)
	{
		struct merged *e =
				merge_add(m, json_string_value(json_object_get(item, "name")), ORIGIN_HELPER);
		if(!e)
			return false;
		if(!e->host && !e->address && e->port < 0) {
			e->host = json_string_value(json_object_get(item, "host"));
			e->address = json_string_value(json_object_get(item, "address"));
			const json_t *p = json_object_get(item, "port");
			e->port = p ? (int)json_integer_value(p) : -1;
		}
	}
	json_array_foreach(d->statics, i, item)
	{
		if(!merge_add(m, json_string_value(item), ORIGIN_STATIC))
			return false;
	}
	return true;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *ndi_discovery_list(struct ndi_discovery *d, bool detail)
{
	struct merge m = {0};
	json_t *out = json_array();
	if(!out || !merge_all(d, &m))
		goto out_fail;
	if(m.n)
		qsort(m.v, m.n, sizeof *m.v, cmp_merged);
	for(size_t i = 0; i < m.n; i++) {
		const struct merged *e = &m.v[i];
		json_t *item;
		if(!detail) {
			item = json_string(e->name);
		} else {
			json_t *origin = json_array();
			if(origin && (e->origins & ORIGIN_MDNS))
				json_array_append_new(origin, json_string("mdns"));
			if(origin && (e->origins & ORIGIN_HELPER))
				json_array_append_new(origin, json_string("helper"));
			if(origin && (e->origins & ORIGIN_STATIC))
				json_array_append_new(origin, json_string("static"));
			item = json_pack("{s:s, s:o, s:o, s:o, s:o}", "name", e->name, "host",
					str_or_null(e->host), "address", str_or_null(e->address), "port",
					e->port >= 0 ? json_integer(e->port) : json_null(), "origin", origin);
		}
		if(json_array_append_new(out, item))
			goto out_fail;
	}
	free(m.v);
	return out;

out_fail:
	free(m.v);
	json_decref(out);
	return NULL;
}

bool ndi_discovery_has(struct ndi_discovery *d, const char *name)
{
	size_t i;
	const json_t *item;
	if(!name)
		return false;
	json_array_foreach(d->statics, i, item)
	{
		if(!strcmp(json_string_value(item), name))
			return true;
	}
	json_array_foreach(d->helper, i, item)
	{
		if(!strcmp(json_string_value(json_object_get(item, "name")), name))
			return true;
	}
#ifdef OH_HAVE_AVAHI
	for(struct mdns_svc *s = d->svcs; s; s = s->next) {
		if(!strcmp(s->name, name))
			return true;
	}
#endif
	return false;
}

bool ndi_discovery_any(struct ndi_discovery *d)
{
#ifdef OH_HAVE_AVAHI
	if(d->svcs)
		return true;
#endif
	return json_array_size(d->statics) || json_array_size(d->helper);
}

const char *ndi_discovery_mdns_state(struct ndi_discovery *d)
{
	if(!d->mdns_enabled)
		return "disabled";
#ifdef OH_HAVE_AVAHI
	if(d->browser)
		return "running";
#endif
	return "unavailable";
}
