/*
 * orchestrator-device: the device agent a lab puts on a Raspberry Pi, in C.
 * It speaks the deployed Python agent's wire format
 * (docs/device-agent.md), and with --simulate N stands in for N devices in
 * one process for demos, load tests and integration tests.
 *
 * This file holds only the command line, the signal handling and the clean
 * shutdown order: stop children, wait for them, announce offline, disconnect.
 */
#include "agent.h"
#include "dev_config.h"
#include "log.h"
#include "child.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIMULATED 10000

struct app {
	struct event_base *base;
	struct agent **agents;
	size_t n_agents;
	bool shutting_down;
};

static void usage(FILE *out)
{
	fprintf(out,
			"usage: orchestrator-device --config FILE [--simulate N] [--id-prefix PREFIX]\n"
			"                           [--log-level LEVEL] [--version] [--help]\n"
			"\n"
			"  -c, --config FILE      JSON configuration (required unless --simulate)\n"
			"  -s, --simulate N       run N virtual devices PREFIX01..PREFIXN whose NDI\n"
			"                         module acks without spawning anything\n"
			"  -p, --id-prefix PREFIX device id prefix for --simulate (default \"sim-\")\n"
			"  -l, --log-level LEVEL  debug, info, warn or error (overrides the config)\n"
			"  -V, --version          print the version and exit\n"
			"  -h, --help             print this help and exit\n"
			"\n"
			"Environment: OH_MQTT_HOST, OH_MQTT_PORT, OH_MQTT_USERNAME, OH_MQTT_PASSWORD\n"
			"override the broker settings of the file.  See docs/device-agent.md.\n");
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	if(app->shutting_down)
		return;
	app->shutting_down = true;
	log_info("agent", "%s: stopping", strsignal((int)sig));
	for(size_t i = 0; i < app->n_agents; i++)
		agent_stop_modules(app->agents[i]);
	child_stop_all_blocking();
	for(size_t i = 0; i < app->n_agents; i++)
		agent_go_offline(app->agents[i]);
	event_base_loopbreak(app->base);
}

static int parse_count(const char *text, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if(errno || end == text || *end || v < 1 || v > MAX_SIMULATED)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
			{"config", required_argument, NULL, 'c'},
			{"simulate", required_argument, NULL, 's'},
			{"id-prefix", required_argument, NULL, 'p'},
			{"log-level", required_argument, NULL, 'l'},
			{"version", no_argument, NULL, 'V'},
			{"help", no_argument, NULL, 'h'},
			{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *prefix = "sim-", *log_level = NULL;
	long simulate = 0;
	int opt, rc = 1;
	while((opt = getopt_long(argc, argv, "c:s:p:l:Vh", longopts, NULL)) != -1) {
		switch(opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'p':
			prefix = optarg;
			break;
		case 'l':
			log_level = optarg;
			break;
		case 's':
			if(parse_count(optarg, &simulate)) {
				fprintf(stderr, "orchestrator-device: --simulate: \"%s\" is not a count 1..%d\n",
						optarg, MAX_SIMULATED);
				return 2;
			}
			break;
		case 'V':
			printf("orchestrator-device %s\n", OH_DEVICE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if(optind < argc) {
		fprintf(stderr, "orchestrator-device: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if(!config_path && !simulate) {
		fprintf(stderr, "orchestrator-device: --config FILE is required (or --simulate N)\n");
		usage(stderr);
		return 2;
	}
	enum log_level lvl;
	if(log_level && log_level_parse(log_level, &lvl)) {
		fprintf(stderr, "orchestrator-device: --log-level: expected debug, info, warn or error\n");
		return 2;
	}

	struct dev_config cfg;
	char err[512];
	struct app app = {0};
	if(dev_config_load(&cfg, config_path, simulate == 0, err, sizeof err)) {
		fprintf(stderr, "orchestrator-device: %s\n", err);
		goto free_config;
	}
	/* Ids are zero-padded to the width of N, at least two digits. */
	int width = simulate > 99 ? (int)snprintf(NULL, 0, "%ld", simulate) : 2;
	if(simulate) {
		char longest[160];
		snprintf(longest, sizeof longest, "%s%0*ld", prefix, width, simulate);
		if(!dev_id_valid(longest)) {
			fprintf(stderr, "orchestrator-device: --id-prefix: \"%s\" cannot start a device id (ids are 1-64 of A-Z a-z 0-9 . _ -)\n",
					prefix);
			goto free_config;
		}
		/* A simulated fleet always has the module to simulate. */
		if(!json_object_get(cfg.modules, "ndi"))
			json_object_set_new(cfg.modules, "ndi", json_object());
	}
	if(!log_level)
		log_level_parse(cfg.log_level, &lvl);
	log_set_level(lvl);
	log_set_json(!strcmp(cfg.log_format, "json"));
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	/* A broken pipe is an error return on the socket, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);

	app.base = event_base_new();
	if(!app.base) {
		fprintf(stderr, "orchestrator-device: cannot create the event loop\n");
		goto free_config;
	}
	if(child_init(app.base, true)) {
		fprintf(stderr, "orchestrator-device: cannot watch child processes\n");
		goto free_base;
	}
	struct event *ev_int = evsignal_new(app.base, SIGINT, on_stop_signal, &app);
	struct event *ev_term = evsignal_new(app.base, SIGTERM, on_stop_signal, &app);
	if(!ev_int || !ev_term || event_add(ev_int, NULL) || event_add(ev_term, NULL)) {
		fprintf(stderr, "orchestrator-device: cannot handle signals\n");
		goto free_signals;
	}

	size_t n = simulate ? (size_t)simulate : 1;
	app.agents = calloc(n, sizeof *app.agents);
	if(!app.agents)
		goto free_signals;
	for(size_t i = 0; i < n; i++) {
		char id[160];
		if(simulate)
			snprintf(id, sizeof id, "%s%0*zu", prefix, width, i + 1);
		else
			snprintf(id, sizeof id, "%s", cfg.device_id);
		struct agent *a = agent_new(app.base, &cfg, id, simulate != 0);
		if(!a)
			goto free_agents;
		app.agents[app.n_agents++] = a;
		if(agent_start(a))
			goto free_agents;
	}
	if(simulate)
		log_info("agent", "simulating %zu devices %s..%s on %s:%d", n, agent_id(app.agents[0]),
				agent_id(app.agents[n - 1]), cfg.mqtt.host, cfg.mqtt.port);
	else
		log_info("agent", "device %s (version %s) using %s:%d", cfg.device_id, OH_DEVICE_VERSION,
				cfg.mqtt.host, cfg.mqtt.port);

	event_base_dispatch(app.base);
	rc = 0;

free_agents:
	for(size_t i = 0; i < app.n_agents; i++)
		agent_free(app.agents[i]);
	free(app.agents);
free_signals:
	if(ev_int)
		event_free(ev_int);
	if(ev_term)
		event_free(ev_term);
	child_cleanup();
free_base:
	event_base_free(app.base);
free_config:
	dev_config_free(&cfg);
	return rc;
}
