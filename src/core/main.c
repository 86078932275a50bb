/*
 * orchestrator-host: the daemon's entry point.  Reads the configuration,
 * locks the state directory, wires the core pieces onto one libevent loop,
 * loads the plugins, and runs until SIGINT or SIGTERM, when it publishes a
 * final snapshot and leaves cleanly.
 *
 * A start-up that fails says why in one line, from the piece that knows
 * (the store names its file, HTTP its address), and exits non-zero; no
 * generic "startup failed" follows it to bury the reason.
 *
 * The host's own presence is here too, with the connect handling: a
 * retained "birth" on {root}/orchestrator/status at every connect, a last
 * will on the same topic saying the opposite, and the same "offline" sent
 * by the host itself when it stops cleanly (docs/protocol.md, "Host
 * presence").  Devices that know it re-announce themselves when a host
 * (re)appears.
 */
#include "plugin_ctx.h"

#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "broker_probe.h"
#include "command_policy.h"
#include "health_probe.h"
#include "http.h"
#include "log.h"
#include "mqtt_link.h"
#include "scheduler.h"
#include "snapshot.h"
#include "state_lock.h"
#include "store.h"
#include "timeutil.h"
#include "topics.h"

#define PROG "orchestrator-host"
/* Below Docker's default HEALTHCHECK timeout (30 s), above any sane
 * /healthz answer. */
#define PROBE_TIMEOUT_S 5.0

static void usage(FILE *out)
{
	fprintf(out,
			"usage: orchestrator-host [--config FILE] [--check-config] [--print-broker]\n"
			"                         [--log-format text|json] [--version] [--help]\n"
			"       orchestrator-host --probe http://HOST:PORT/healthz\n"
			"\n"
			"Runs the lab orchestrator: device registry, command relay, reservations,\n"
			"scheduling and the web UI.  Without --config every setting has its default\n"
			"(broker 127.0.0.1:1883, HTTP on 127.0.0.1:8080).  Every key: docs/configuration.md.\n"
			"\n"
			"--probe asks a running host's /healthz and exits 0 when its broker is\n"
			"connected, 1 otherwise (refused, timed out, 503), 2 for a URL it cannot ask.\n");
}

/* Retained, QoS 1: the birth at connect, the clean "offline" at exit.  On
 * a pair the retained presence is the leader's, sent on its own session
 * (ha.c): a host's birth is then a plain message, still telling devices to
 * announce themselves again (a standby keeps a warm registry). */
static void publish_presence(struct host *h, bool online)
{
	char *topic = host_presence_topic(h);
	char *text = host_presence_payload(h, online);
	if(!topic || !text || host_publish(h, topic, text, strlen(text), 1, !ha_paired(h)))
		log_warn("host", "cannot publish the host's %s status", online ? "online" : "offline");
	free(topic);
	free(text);
}

static void on_connect(struct mqtt_link *link, void *ud)
{
	struct host *h = ud;
	dispatch_on_connect(h->dispatch);
	snapshot_on_connect(h->snapshot);
	registry_on_connect(h->registry);
	/* After the subscriptions, so that what devices answer to it finds
	 * them in place. */
	publish_presence(h, true);
	broker_probe_on_connect(h->probe);
	events_broker_state(h, true);
}

static void on_disconnect(struct mqtt_link *link, const char *reason, void *ud)
{
	struct host *h = ud;
	broker_probe_on_disconnect(h->probe);
	events_broker_state(h, false);
}

static void on_message(struct mqtt_link *link, const char *topic, const void *payload, size_t len,
		bool retained, void *ud)
{
	struct host *h = ud;
	registry_heard_topic(h->registry, topic);
	/* On a pair, commands come through the leader's own session (ha.c). */
	if(ha_ignores_topic(h, topic))
		return;
	dispatch_on_message(h->dispatch, topic, payload, len, retained);
}

static void on_published(struct mqtt_link *link, int mid, void *ud)
{
	struct host *h = ud;
	snapshot_published(h->snapshot, mid);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct host *h = arg;
	if(h->shutting_down)
		return;
	h->shutting_down = true;
	log_info("host", "%s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	event_base_loopbreak(h->base);
}

/* For the steps whose callee fails without saying why. */
static int failed(int rc, const char *what)
{
	if(rc)
		log_error("host", "startup failed: %s: %s", what, oh_strerror(rc));
	return rc;
}

/* A command from the leader's own session (ha.c). */
static void deliver_command(struct host *h, const char *topic, const void *payload, size_t len, bool retained)
{
	dispatch_on_message(h->dispatch, topic, payload, len, retained);
}

/* A pair's new leader: the leases and jobs as the store has them (ha.c
 * fetched them), and the snapshot it now publishes. */
static void took_lead(struct host *h)
{
	leases_load(h->leases);
	scheduler_load(h->scheduler);
	plugins_took_lead(h);
	snapshot_mark_dirty(h->snapshot);
}

/* A standby's view of the leader's leases changed (ha.c): the snapshot
 * it serves shows them. */
static void view_changed(struct host *h)
{
	snapshot_mark_dirty(h->snapshot);
}

/* Every failure is logged once, here or by the callee (see the top). */
static int host_start(struct host *h)
{
	char err[512];
	struct event_config *ec = event_config_new();
	/* Scheduled jobs want millisecond timers, not the coarse clock. */
	if(ec)
		event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	h->base = ec ? event_base_new_with_config(ec) : NULL;
	event_config_free(ec);
	if(!h->base)
		return failed(OH_ERR_NOMEM, "event loop");
	h->started_mono = time_now_mono();

	h->store = store_open(&h->cfg, h->base, err, sizeof err);
	if(!h->store) {
		log_error("host", "%s", err);
		return OH_ERR_IO;
	}
	if(failed(audit_init(h), "audit"))
		return OH_ERR_NOMEM;
	h->dispatch = dispatch_new(h);
	h->registry = registry_new(h);
	h->leases = leases_new(h);
	h->http = http_server_new(h);
	if(h->registry && h->leases)
		h->snapshot = snapshot_new(h); /* reads both */
	if(!h->dispatch || !h->registry || !h->leases || !h->snapshot || !h->http)
		return failed(OH_ERR_NOMEM, "core");
	command_policy_install(h);
	leases_set_expired_handler(h->leases, plugins_lease_expired);
	registry_on_forget(h->registry, plugins_device_forgotten);

	/* Our name in the birth message and the probe: the client id, or one
	 * for this run when libmosquitto is left to make the client id up. */
	char id[33];
	if(h->cfg.mqtt.client_id)
		h->node = strdup(h->cfg.mqtt.client_id);
	else if(asprintf(&h->node, "orchestrator-host-%.12s", host_new_id(id, sizeof id)) < 0)
		h->node = NULL;
	h->probe = h->node ? broker_probe_new(h, h->node) : NULL;
	/* Before the link, whose will depends on it; nothing runs before the loop. */
	if(failed(ha_start(h, took_lead, deliver_command, view_changed), "ha"))
		return OH_ERR_NOMEM;
	char *will_topic = host_presence_topic(h);
	char *will = h->node ? host_presence_payload(h, false) : NULL;
	if(!h->probe || !will_topic || !will) {
		free(will_topic);
		free(will);
		return failed(OH_ERR_NOMEM, "mqtt");
	}
	struct mqtt_tls_opts tls;
	struct mqtt_link_opts mo;
	conf_mqtt_link_opts(&h->cfg.mqtt, &mo, &tls);
	mo.log_prefix = "mqtt";
	/* v5 where the broker speaks it: retained clears told from plain
	 * empty messages (registry), commands that expire (host_publish_mid),
	 * with 3.1.1 for the brokers that do not; mqtt.protocol forces one. */
	mo.mqtt5 = strcmp(h->cfg.mqtt_protocol, "3.1.1") != 0;
	mo.mqtt5_only = strcmp(h->cfg.mqtt_protocol, "5") == 0;
	/* A pair's will is on the leader's session (ha.c). */
	mo.will_topic = ha_paired(h) ? NULL : will_topic;
	mo.will_payload = will;
	mo.will_qos = 1;
	mo.will_retain = true;
	struct mqtt_link_callbacks cb = {on_connect, on_disconnect, on_message, on_published};
	h->link = mqtt_link_new(h->base, &mo, &cb, h); /* logs why */
	free(will_topic);
	free(will);
	if(!h->link)
		return OH_ERR_INVAL;

	int rc = http_server_start(h->http); /* logs why */
	if(rc)
		return rc;
	/* The leases before the plugins, which may ask about them as they
	 * start (routes), and so that a damaged store stops the host with the
	 * store's one line naming the file, not with a plugin refused after
	 * it.  A pair's leader loads leases and jobs when it takes the lead
	 * (ha.c, started above). */
	if(!ha_paired(h) && (rc = leases_load(h->leases)))
		return rc;
	if(failed(api_core_register(h), "REST routes") || failed(registry_start(h->registry), "registry") ||
			failed(scheduler_init(h), "scheduler") || failed(plugins_load_all(h), "plugins"))
		return OH_ERR_INVAL;
	/* Jobs need their modules' executors, registered by the plugins. */
	if(!ha_paired(h) && (rc = scheduler_load(h->scheduler)))
		return rc;
	return failed(mqtt_link_start(h->link), "mqtt");
}

static void host_stop(struct host *h)
{
	/* Acks waiting for their records leave while the broker is there. */
	audit_flush(h);
	if(h->snapshot && h->link && mqtt_link_connected(h->link)) {
		snapshot_flush(h->snapshot);
		registry_flush(h->registry);
		/* The will is not sent on a clean disconnect: say it ourselves
		 * (a pair's leader does on its own session, ha_free). */
		if(!ha_paired(h))
			publish_presence(h, false);
	}
	if(h->link)
		mqtt_link_stop(h->link);
	/* An unload asked for just before the signal, before all the others. */
	api_plugins_stop(h);
	if(h->plugins)
		plugins_unload_all(h);
	ha_free(h); /* its session before the loop goes */
	scheduler_free(h->scheduler);
	http_server_free(h->http);
	audit_free(h);               /* commits the last records; publishes the last acks */
	broker_probe_free(h->probe); /* before dispatch, whose subscription it may hold */
	mqtt_link_free(h->link);
	free(h->node);
	snapshot_free(h->snapshot); /* before what it reads */
	leases_free(h->leases);
	registry_free(h->registry);
	dispatch_free(h->dispatch);
	events_free(h); /* last: the snapshot and dispatch held its callbacks */
	store_close(h->store);
	if(h->base)
		event_base_free(h->base);
	config_free(&h->cfg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
			{"config", required_argument, NULL, 'c'},
			{"check-config", no_argument, NULL, 'C'},
			{"print-broker", no_argument, NULL, 'B'},
			{"log-format", required_argument, NULL, 'l'},
			{"probe", required_argument, NULL, 'P'},
			{"version", no_argument, NULL, 'V'},
			{"help", no_argument, NULL, 'h'},
			{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *log_format = NULL, *probe_url = NULL;
	const char *bad_option = NULL;
	bool check_only = false, print_broker = false;
	int c;
	/* getopt's own complaints would be plain text even after a
	 * --log-format json: the first bad option is reported below instead,
	 * once the whole line has been read. */
	opterr = 0;
	while((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch(c) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'B':
			print_broker = true;
			break;
		case 'l':
			log_format = optarg;
			break;
		case 'P':
			probe_url = optarg;
			break;
		case 'V':
			printf("orchestrator-host %s\n", OH_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if(!bad_option)
				bad_option = argv[optind - 1];
			break;
		}
	}
	/* Known before anything can fail, so that every error is JSON too. */
	if(log_format && strcmp(log_format, "text") && strcmp(log_format, "json")) {
		fprintf(stderr, "orchestrator-host: --log-format: expected text or json\n");
		return 2;
	}
	log_set_json(log_format && !strcmp(log_format, "json"));
	if(bad_option || optind < argc) {
		if(bad_option)
			log_early_error(PROG, "usage", "unknown option or missing value: %s", bad_option);
		else
			log_early_error(PROG, "usage", "unexpected argument \"%s\"", argv[optind]);
		if(!log_format || strcmp(log_format, "json"))
			usage(stderr);
		return 2;
	}

	/* A client of a running host: no configuration, no state. */
	if(probe_url)
		return health_probe(probe_url, PROBE_TIMEOUT_S);

	static struct host host;
	struct host *h = &host;
	char err[512];
	if(config_load(&h->cfg, config_path, err, sizeof err)) {
		log_early_error(PROG, "config", "config error: %s", err);
		config_free(&h->cfg);
		return 1;
	}
	log_set_json(!strcmp(log_format ? log_format : h->cfg.log_format, "json"));
	if(!tz_valid(h->cfg.timezone)) {
		log_early_error(PROG, "config",
				"config error: %s: timezone: \"%s\" is not a known IANA time zone",
				h->cfg.source, h->cfg.timezone);
		config_free(&h->cfg);
		return 1;
	}
	if(print_broker) {
		/* For scripts: the broker and HTTP addresses after environment
		 * overrides, "MQTT_HOST MQTT_PORT HTTP_BIND HTTP_PORT". */
		printf("%s %d %s %d\n", h->cfg.mqtt.host, h->cfg.mqtt.port, h->cfg.http.bind, h->cfg.http.port);
		config_free(&h->cfg);
		return 0;
	}
	if(check_only) {
		printf("%s: configuration OK (%zu plugin(s))\n", h->cfg.source, h->cfg.n_plugins);
		config_free(&h->cfg);
		return 0;
	}
	enum log_level lvl = LOG_LVL_INFO;
	log_level_parse(h->cfg.log_level, &lvl);
	log_set_level(lvl);
	signal(SIGPIPE, SIG_IGN);
	/* Snapshots of large registries are megabytes each; glibc's adaptive
	 * threshold would move such blocks into the heap and fragment it
	 * (measured: 100,000 devices took 552 MB RSS instead of 350). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);

	log_info("host",
			"orchestrator-host %s starting (config: %s, broker %s:%d, client id %s,"
			" state in %s)",
			OH_VERSION, h->cfg.source, h->cfg.mqtt.host, h->cfg.mqtt.port,
			h->cfg.mqtt.client_id ? h->cfg.mqtt.client_id : "(random)", h->cfg.state_dir);
	/* Before anything reads the state or shows itself on the broker: a
	 * second host on this directory leaves without a trace.  Held until
	 * the very end (returned by state_lock_take, released here). */
	struct state_lock *lock = state_lock_take(h->cfg.state_dir, err, sizeof err);
	if(!lock) {
		log_error("host", "%s", err);
		config_free(&h->cfg);
		return 1;
	}
	auth_log_startup(&h->cfg);
	int rc = host_start(h);
	if(rc) {
		host_stop(h);
		state_lock_release(lock);
		return 1;
	}
	struct event *ev_int = evsignal_new(h->base, SIGINT, on_signal, h);
	struct event *ev_term = evsignal_new(h->base, SIGTERM, on_signal, h);
	event_add(ev_int, NULL);
	event_add(ev_term, NULL);

	event_base_dispatch(h->base);

	event_free(ev_int);
	event_free(ev_term);
	host_stop(h);
	state_lock_release(lock);
	log_info("host", "stopped");
	return 0;
}
