/*
 * oh-bench: the load tool behind `make bench` (bench/run.sh).
 *
 * Each subcommand drives one scenario against a broker (and, through it, an
 * orchestrator-host) on 127.0.0.1 and prints one line per figure,
 * "name value unit", on stdout; run.sh collects the lines and writes the JSON.
 * Every loop is bounded by a count and a deadline, so a lost message or a
 * dead host ends a run with a "lost" figure instead of a hang.
 *
 *   latency     sequential round trips app -> topic -> device subscriber
 *   throughput  N commands as fast as possible, count what the device gets
 *               (--ack: the device acks each, so the host publishes and
 *               audits an outcome per command)
 *   registry    devices publish meta, then a burst of status updates; time
 *               until GET /api/registry shows the last update of every device
 *   populate    register devices [from, to) and wait until the host has them
 *   burst       --n commands through the host to a device that never answers,
 *               until each one's TIMEOUT
 *   startwait   poll /api/registry until it lists --devices devices
 *   jobs        write scheduler jobs straight into a host's state.db
 *   schedwatch  the device those jobs address: lateness of each firing
 *   routes      write NDI routes straight into a host's state.db
 *   fleet       the devices those routes name, coming back after a site
 *               restart: announce themselves idle, follow each command
 *               (new module status, an ack), count commands per device
 *   sse         event-stream clients applying registry deltas under load
 *   barerelay   (hidden, started by latency and throughput --mode bare/all)
 *               the floor under the host's relay: libmosquitto, no JSON
 *
 * --mode relay publishes to {root}/orchestrator/ndi/cmd (through the host),
 * --mode direct to {root}/device/{id}/ndi/cmd (the broker alone); the device
 * side subscribes to {root}/device/{id}/ndi/cmd in both cases.  --mode bare
 * does the same as relay under --bare-root (/bare), where no host listens and
 * a bare relay this tool forks forwards each command.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOCALHOST "127.0.0.1"

static struct {
	int port;
	int http_port;
	const char *root;
	const char *bare_root; /* latency, throughput: where the bare relay serves */
	const char *mode;
	const char *name;
	const char *device_id;
	int qos;
	bool ack; /* throughput: the device acks each command (an outcome per command) */
	long n;
	long warmup;
	long devices;
	long updates;
	long from, to;
	long sweeps; /* populate: times over [from, to), status seq seq0, seq0 + 1, ... */
	long seq0;
	int conns;
	double timeout_s;
	double at;       /* latency: start at this wall-clock time */
	double duration; /* latency: stop after this many seconds */
	const char *db;  /* jobs: the host's state.db */
	double fire_at;  /* jobs: the first due time (wall clock) */
	double window;   /* jobs: due times spread over this many seconds */
	long fire_n;     /* jobs: how many are due in the window */
	long leases;     /* jobs: leases written too */
	long rate;       /* sse: status updates a second */
	int pid;         /* sse: the host's, for its CPU time */
} opt = {
		.port = 1883,
		.http_port = 8080,
		.root = "/lab",
		.bare_root = "/bare",
		.mode = "relay",
		.name = "bench",
		.device_id = "bench-dev",
		.qos = 1,
		.n = 1000,
		.warmup = 200,
		.devices = 1000,
		.updates = 20,
		.from = 0,
		.to = 1000,
		.sweeps = 1,
		.conns = 8,
		.timeout_s = 60,
};

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The "start" command every command loop sends, with req_id tag + i; its
 * length, as snprintf() gives it. */
static int start_command(char *buf, size_t size, const char *tag, long i)
{
	return snprintf(buf, size,
			"{\"req_id\":\"%s%ld\",\"actor\":\"bench\",\"action\":\"start\","
			"\"params\":{\"device_id\":\"%s\",\"source\":\"S\"}}",
			tag, i, opt.device_id);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "oh-bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void figure(const char *suffix, double value, const char *unit)
{
	printf("%s_%s %.6g %s\n", opt.name, suffix, value, unit);
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, double p)
{
	if(!n)
		return NAN;
	size_t k = (size_t)ceil(p / 100.0 * (double)n);
	if(k < 1)
		k = 1;
	return v[k - 1];
}

/* ---- MQTT clients -------------------------------------------------------- */

struct client {
	struct mosquitto *mosq;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool connected;
	int subacks;
	long published; /* PUBACKs (QoS 1) or writes (QoS 0) */
	void (*on_msg)(struct client *, const struct mosquitto_message *);
	void *ud;
};

static void cb_connect(struct mosquitto *m, void *ud, int rc)
{
	struct client *c = ud;
	if(rc)
		die("broker refused connection: %s", mosquitto_connack_string(rc));
	pthread_mutex_lock(&c->lock);
	c->connected = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void cb_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
	struct client *c = ud;
	pthread_mutex_lock(&c->lock);
	c->subacks++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void cb_publish(struct mosquitto *m, void *ud, int mid)
{
	struct client *c = ud;
	pthread_mutex_lock(&c->lock);
	c->published++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void cb_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	struct client *c = ud;
	if(c->on_msg)
		c->on_msg(c, msg);
}

/* The bare relay's client (set before client_new): what the host's link
 * does to libmosquitto, so the floor is no higher than the host's own. */
static bool client_lean;

/* A client without libmosquitto's wake-up socketpair, which only its own
 * network thread drains: every queued packet writes a byte to it, and once
 * it is full each write fails with EAGAIN, which ends mosquitto_loop_read()
 * early.  libmosquitto goes on without the pair when it cannot open one;
 * the host's link (src/common/mqtt_link.c, new_client) does the same. */
static struct mosquitto *mosquitto_new_unpaired(const char *id, void *ud)
{
	struct rlimit was, none;
	if(getrlimit(RLIMIT_NOFILE, &was) == 0) {
		none = was;
		none.rlim_cur = 0;
		if(setrlimit(RLIMIT_NOFILE, &none) == 0) {
			struct mosquitto *m = mosquitto_new(id, true, ud);
			setrlimit(RLIMIT_NOFILE, &was);
			return m;
		}
	}
	return mosquitto_new(id, true, ud);
}

/* Connects synchronously; threaded: a libmosquitto network thread runs it. */
static struct client *client_new(const char *tag, bool threaded)
{
	struct client *c = calloc(1, sizeof *c);
	char id[64];
	snprintf(id, sizeof id, "oh-bench-%s-%d", tag, (int)getpid());
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->mosq = client_lean ? mosquitto_new_unpaired(id, c) : mosquitto_new(id, true, c);
	if(!c->mosq)
		die("mosquitto_new failed");
	if(client_lean)
		mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	/* A modest window: libmosquitto 2.0 walks its whole outgoing list on
	 * every publish and PUBACK while the window has room, so a window of
	 * 65535 makes a 50,000-message burst quadratic.  100 in flight at a
	 * loopback round trip of ~50 us is still millions per second. */
	mosquitto_int_option(c->mosq, MOSQ_OPT_SEND_MAXIMUM, 100);
	mosquitto_connect_callback_set(c->mosq, cb_connect);
	mosquitto_subscribe_callback_set(c->mosq, cb_subscribe);
	mosquitto_publish_callback_set(c->mosq, cb_publish);
	mosquitto_message_callback_set(c->mosq, cb_message);
	int rc = mosquitto_connect(c->mosq, LOCALHOST, opt.port, 60);
	if(rc)
		die("cannot connect to %s:%d: %s", LOCALHOST, opt.port,
				rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	if(threaded) {
		mosquitto_loop_start(c->mosq);
		pthread_mutex_lock(&c->lock);
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 10;
		while(!c->connected && pthread_cond_timedwait(&c->cond, &c->lock, &dl) == 0)
			;
		pthread_mutex_unlock(&c->lock);
	} else {
		double end = now_s() + 10;
		while(!c->connected && now_s() < end)
			mosquitto_loop(c->mosq, 100, 1);
	}
	if(!c->connected)
		die("no CONNACK from the broker on port %d", opt.port);
	return c;
}

/* Subscribes and waits for the SUBACK. */
static void client_subscribe(struct client *c, const char *filter, int qos, bool threaded)
{
	pthread_mutex_lock(&c->lock);
	int want = c->subacks + 1;
	pthread_mutex_unlock(&c->lock);
	if(mosquitto_subscribe(c->mosq, NULL, filter, qos))
		die("subscribe %s failed", filter);
	double end = now_s() + 10;
	for(;;) {
		pthread_mutex_lock(&c->lock);
		bool done = c->subacks >= want;
		pthread_mutex_unlock(&c->lock);
		if(done)
			return;
		if(now_s() > end)
			die("no SUBACK for %s", filter);
		if(threaded)
			usleep(1000);
		else
			mosquitto_loop(c->mosq, 10, 1);
	}
}

/* Waits until `target` publishes are acknowledged (threaded clients). */
static bool client_wait_published(struct client *c, long target, double timeout_s)
{
	double end = now_s() + timeout_s;
	pthread_mutex_lock(&c->lock);
	while(c->published < target && now_s() < end) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 50 * 1000000;
		if(dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &dl);
	}
	bool ok = c->published >= target;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static void client_free(struct client *c, bool threaded)
{
	mosquitto_disconnect(c->mosq);
	if(threaded)
		mosquitto_loop_stop(c->mosq, false);
	mosquitto_destroy(c->mosq);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* A threaded client handing every message on {root}{filter} to fn (ud in
 * c->ud), subscribed at QoS 1. */
static struct client *listener(const char *tag, void (*fn)(struct client *, const struct mosquitto_message *),
		void *ud, const char *filter)
{
	struct client *c = client_new(tag, true);
	char full[256];
	c->on_msg = fn;
	c->ud = ud;
	snprintf(full, sizeof full, "%s%s", opt.root, filter);
	client_subscribe(c, full, 1, true);
	return c;
}

/* ---- HTTP ------------------------------------------------------------------ */

/* GET over a fresh connection; returns the status, *body is malloc'd. */
static int http_get(const char *path, char **body, size_t *body_len)
{
	*body = NULL;
	*body_len = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if(fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.http_port)};
	inet_pton(AF_INET, LOCALHOST, &a.sin_addr);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if(connect(fd, (struct sockaddr *)&a, sizeof a)) {
		close(fd);
		return -1;
	}
	char req[512];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
			path);
	if(write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	for(;;) {
		if(len + 65536 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if(!buf)
				die("out of memory reading %s", path);
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if(r < 0 && errno == EINTR)
			continue;
		if(r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	int status = -1;
	if(sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		free(buf);
		return -1;
	}
	char *sep = strstr(buf, "\r\n\r\n");
	if(!sep) {
		free(buf);
		return -1;
	}
	*body_len = len - (size_t)(sep + 4 - buf);
	*body = malloc(*body_len + 1);
	memcpy(*body, sep + 4, *body_len + 1);
	free(buf);
	return status;
}

static json_t *http_get_json(const char *path)
{
	char *body;
	size_t len;
	int status = http_get(path, &body, &len);
	json_t *j = NULL;
	if(status == 200)
		j = json_loadb(body, len, 0, NULL);
	free(body);
	return j;
}

/* ---- barerelay: the floor under the host's relay ------------------------------- */

/*
 * The least a relay can do with libmosquitto: take each command from
 * {root}/orchestrator/ndi/cmd and publish its payload unchanged to
 * {root}/device/{id}/ndi/cmd, putting on the wire what the host's relay puts
 * there (MQTT 5, subscribed and published at QoS 1, the default command
 * expiry property, a send window of 100, TCP_NODELAY) and doing nothing else:
 * no JSON, no ack, no event.  Bare relay / broker alone is what crossing the
 * broker twice and waking a third process costs, which no host can beat;
 * host relay / bare relay is the host's own share.
 *
 * It runs in its own process, as the host does, forked by the latency and
 * throughput subcommands (bare_start) on a root no host listens on.  Two
 * loops: poll() with one read and one write pass per wake-up (the default,
 * the faster in docs/performance.md 2b), or OH_BENCH_BARE_LOOP=mosquitto,
 * mosquitto_loop() as mosquitto_loop_forever() drives it.
 */
static volatile sig_atomic_t bare_stopping;
static char bare_dev_topic[256];
static mosquitto_property *bare_props; /* the command expiry, as the host's default */
static long bare_forwarded;

static void bare_on_signal(int sig)
{
	(void)sig;
	bare_stopping = 1;
}

static void bare_on_msg(struct client *c, const struct mosquitto_message *m)
{
	int rc = mosquitto_publish_v5(
			c->mosq, NULL, bare_dev_topic, m->payloadlen, m->payload, 1, false, bare_props);
	if(rc)
		die("bare relay: publish failed: %s", mosquitto_strerror(rc));
	bare_forwarded++;
}

static void cmd_barerelay(void)
{
	struct sigaction sa = {.sa_handler = bare_on_signal}; /* no SA_RESTART: poll returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	const char *loop = getenv("OH_BENCH_BARE_LOOP");
	bool use_poll = !loop || strcmp(loop, "mosquitto");
	char cmd_topic[256];
	snprintf(cmd_topic, sizeof cmd_topic, "%s/orchestrator/ndi/cmd", opt.root);
	snprintf(bare_dev_topic, sizeof bare_dev_topic, "%s/device/%s/ndi/cmd", opt.root, opt.device_id);
	if(mosquitto_property_add_int32(&bare_props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 60))
		die("bare relay: no memory");
	client_lean = true;
	struct client *c = client_new("bare", false);
	c->on_msg = bare_on_msg;
	client_subscribe(c, cmd_topic, 1, false);
	printf("ready\n");
	fflush(stdout);
	double last_misc = now_s();
	while(!bare_stopping) {
		int rc;
		if(use_poll) {
			struct pollfd p = {.fd = mosquitto_socket(c->mosq),
					.events = POLLIN | (mosquitto_want_write(c->mosq) ? POLLOUT : 0)};
			if(poll(&p, 1, 1000) < 0 && errno != EINTR)
				die("bare relay: poll: %s", strerror(errno));
			rc = MOSQ_ERR_SUCCESS;
			if(p.revents & (POLLIN | POLLERR | POLLHUP))
				rc = mosquitto_loop_read(c->mosq, 1);
			/* One pass writes everything queued (or stops at EAGAIN). */
			if(!rc && mosquitto_want_write(c->mosq))
				rc = mosquitto_loop_write(c->mosq, 1);
			if(!rc && now_s() - last_misc > 1) {
				rc = mosquitto_loop_misc(c->mosq);
				last_misc = now_s();
			}
		} else {
			rc = mosquitto_loop(c->mosq, 1000, 1);
		}
		if(rc && !bare_stopping && !(rc == MOSQ_ERR_ERRNO && errno == EINTR))
			die("bare relay: connection to the broker lost: %s", mosquitto_strerror(rc));
	}
	client_free(c, false);
	mosquitto_property_free_all(&bare_props);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	printf("forwarded %ld %.6f\n", bare_forwarded, cpu_s);
	fflush(stdout);
}

/* A bare relay this tool runs as a child process. */
struct bare_relay {
	pid_t pid;
	FILE *out; /* its stdout: "ready", then "forwarded N CPU_S" as it exits */
};

/* Forks and execs this tool as `barerelay` on opt.bare_root; returns once it
 * is subscribed.  Call it before any thread starts. */
static void bare_start(struct bare_relay *b)
{
	int p[2];
	if(pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	pid_t parent = getpid();
	b->pid = fork();
	if(b->pid < 0)
		die("fork: %s", strerror(errno));
	if(!b->pid) {
		/* It ends with this tool, however that ends (run.sh's timeout, die()). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if(getppid() != parent || dup2(p[1], STDOUT_FILENO) < 0)
			_exit(1);
		char port[16];
		snprintf(port, sizeof port, "%d", opt.port);
		execl("/proc/self/exe", "oh-bench", "barerelay", "--port", port, "--root", opt.bare_root,
				"--device-id", opt.device_id, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	b->out = fdopen(p[0], "r");
	char line[64];
	if(!b->out || !fgets(line, sizeof line, b->out) || strcmp(line, "ready\n"))
		die("the bare relay did not start");
}

/* Stops it, dies unless it exits cleanly, and prints the commands it
 * forwarded and its CPU time (user and system) per command. */
static void bare_stop(struct bare_relay *b, const char *prefix)
{
	kill(b->pid, SIGTERM);
	long forwarded = -1;
	double cpu_s = 0;
	char line[64];
	if(fgets(line, sizeof line, b->out) && sscanf(line, "forwarded %ld %lf", &forwarded, &cpu_s) != 2)
		forwarded = -1;
	fclose(b->out);
	int status;
	if(waitpid(b->pid, &status, 0) != b->pid || !WIFEXITED(status) || WEXITSTATUS(status) || forwarded < 0)
		die("the bare relay did not exit cleanly (status %#x)", status);
	char name[128];
	snprintf(name, sizeof name, "%sforwarded", prefix);
	figure(name, (double)forwarded, "count");
	snprintf(name, sizeof name, "%scpu_us_per_command", prefix);
	figure(name, forwarded ? cpu_s * 1e6 / (double)forwarded : NAN, "us");
}

/* ---- latency ----------------------------------------------------------------- */

/*
 * No threads here: the app and device clients are driven from one poll()
 * loop, so each round trip costs the broker (and host) path plus two
 * wake-ups, the same for the relay and the direct path.
 */
struct lat_state {
	atomic_long received;
	double t_recv;
};

static void lat_on_msg(struct client *c, const struct mosquitto_message *m)
{
	struct lat_state *s = c->ud;
	s->t_recv = now_s();
	atomic_fetch_add(&s->received, 1);
}

static void pump(struct client **cs, int n, int timeout_ms)
{
	struct pollfd p[4];
	for(int i = 0; i < n; i++) {
		p[i].fd = mosquitto_socket(cs[i]->mosq);
		p[i].events = POLLIN | (mosquitto_want_write(cs[i]->mosq) ? POLLOUT : 0);
		p[i].revents = 0;
	}
	int r = poll(p, (nfds_t)n, timeout_ms);
	if(r < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	for(int i = 0; i < n; i++) {
		if(p[i].revents & (POLLIN | POLLERR | POLLHUP)) {
			if(mosquitto_loop_read(cs[i]->mosq, 64))
				die("connection to the broker lost");
		}
		if(mosquitto_want_write(cs[i]->mosq))
			mosquitto_loop_write(cs[i]->mosq, 64);
	}
}

static void print_latency(const char *prefix, double *samples, size_t ns, long lost)
{
	const char *saved = opt.name;
	opt.name = prefix;
	qsort(samples, ns, sizeof *samples, cmp_double);
	double sum = 0;
	for(size_t i = 0; i < ns; i++)
		sum += samples[i];
	figure("p50", percentile(samples, ns, 50), "us");
	figure("p99", percentile(samples, ns, 99), "us");
	figure("mean", ns ? sum / (double)ns : NAN, "us");
	figure("samples", (double)ns, "count");
	figure("lost", (double)lost, "count");
	opt.name = saved;
}

/*
 * --mode relay, direct or bare measure one path; --mode both alternates relay
 * and direct round trip by round trip, so both see the same machine (a build
 * running next door slows both alike) and the ratio is not at the mercy of
 * drift; --mode all alternates relay, direct and bare.
 */
static void cmd_latency(void)
{
	/* Paths: 0 through the host, 1 the broker alone, 2 the bare relay. */
	static const char *const path_name[3] = {"relay", "broker", "bare"};
	int paths[3], np;
	if(!strcmp(opt.mode, "both") || !strcmp(opt.mode, "all")) {
		np = strcmp(opt.mode, "all") ? 2 : 3;
		for(int i = 0; i < np; i++)
			paths[i] = i;
	} else {
		np = 1;
		paths[0] = !strcmp(opt.mode, "relay") ? 0 : !strcmp(opt.mode, "bare") ? 2 : 1;
	}
	bool bare_path = paths[np - 1] == 2;
	struct bare_relay bare;
	if(bare_path)
		bare_start(&bare);
	/* Topics by path: where the app publishes, where the device hears it. */
	char pub_topic[3][256], dev_topic[2][256], tag[32];
	const char *roots[2] = {opt.root, opt.bare_root};
	for(int r = 0; r < 2; r++)
		snprintf(dev_topic[r], sizeof dev_topic[r], "%s/device/%s/ndi/cmd", roots[r], opt.device_id);
	snprintf(pub_topic[0], sizeof pub_topic[0], "%s/orchestrator/ndi/cmd", opt.root);
	snprintf(pub_topic[1], sizeof pub_topic[1], "%s", dev_topic[0]);
	snprintf(pub_topic[2], sizeof pub_topic[2], "%s/orchestrator/ndi/cmd", opt.bare_root);
	snprintf(tag, sizeof tag, "L%dx", (int)getpid());

	struct lat_state st = {0};
	struct client *dev = client_new("lat-dev", false);
	struct client *app = client_new("lat-app", false);
	dev->on_msg = lat_on_msg;
	dev->ud = &st;
	if(paths[0] != 2)
		client_subscribe(dev, dev_topic[0], opt.qos, false);
	if(bare_path)
		client_subscribe(dev, dev_topic[1], opt.qos, false);
	struct client *cs[2] = {app, dev};

	long per_path = opt.warmup + opt.n;
	long total = np * per_path;
	long lost[3] = {0, 0, 0};
	double *samples[3];
	size_t ns[3] = {0, 0, 0};
	for(int p = 0; p < 3; p++)
		samples[p] = calloc((size_t)opt.n, sizeof(double));
	while(opt.at > 0 && wall_s() < opt.at)
		pump(cs, 2, 10);
	double last_misc = now_s(), deadline = now_s() + opt.timeout_s;
	if(opt.duration > 0 && now_s() + opt.duration < deadline)
		deadline = now_s() + opt.duration;
	for(long i = 0; i < total && now_s() < deadline; i++) {
		int path = paths[i % np];
		long k = i / np;
		char payload[512];
		int len = start_command(payload, sizeof payload, tag, i);
		long want = atomic_load(&st.received) + 1;
		double t0 = now_s();
		if(mosquitto_publish(app->mosq, NULL, pub_topic[path], len, payload, opt.qos, false))
			die("publish failed");
		/* One second is two orders above any sane round trip. */
		while(atomic_load(&st.received) < want && now_s() - t0 < 1.0)
			pump(cs, 2, 100);
		if(atomic_load(&st.received) < want) {
			lost[path]++;
			continue;
		}
		if(k >= opt.warmup && ns[path] < (size_t)opt.n)
			samples[path][ns[path]++] = (st.t_recv - t0) * 1e6;
		if(st.t_recv - last_misc > 1) {
			mosquitto_loop_misc(app->mosq);
			mosquitto_loop_misc(dev->mosq);
			last_misc = st.t_recv;
		}
	}
	/* Let PUBACKs for the last messages go out before disconnecting. */
	for(int i = 0; i < 5; i++)
		pump(cs, 2, 10);
	char prefix[128];
	for(int i = 0; i < np; i++) {
		int path = paths[i];
		if(np > 1)
			snprintf(prefix, sizeof prefix, "%s_%s", opt.name, path_name[path]);
		else
			snprintf(prefix, sizeof prefix, "%s", opt.name);
		print_latency(prefix, samples[path], ns[path], lost[path]);
	}
	for(int p = 0; p < 3; p++)
		free(samples[p]);
	client_free(app, false);
	client_free(dev, false);
	if(bare_path)
		bare_stop(&bare, np > 1 ? "bare_" : "");
}

/* ---- throughput ---------------------------------------------------------------- */

struct tput_state {
	pthread_mutex_t lock;
	unsigned char *seen;
	long n;
	long unique;
	long dups;
	double t_first, t_last;
	char tag[32];
};

static long parse_seq(const struct mosquitto_message *m, const char *tag)
{
	const char *p = memmem(m->payload, (size_t)m->payloadlen, tag, strlen(tag));
	if(!p)
		return -1;
	p += strlen(tag);
	char *end;
	long v = strtol(p, &end, 10);
	return end == p ? -1 : v;
}

static void tput_on_msg(struct client *c, const struct mosquitto_message *m)
{
	struct tput_state *s = c->ud;
	long seq = parse_seq(m, s->tag);
	double t = now_s();
	pthread_mutex_lock(&s->lock);
	if(seq >= 0 && seq < s->n) {
		if(s->seen[seq]) {
			s->dups++;
		} else {
			s->seen[seq] = 1;
			s->unique++;
			if(!s->t_first)
				s->t_first = t;
			s->t_last = t;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if(opt.ack && seq >= 0) {
		/* As an agent does: the envelope's req_id back on the module's evt. */
		char topic[256], payload[160];
		snprintf(topic, sizeof topic, "%s/device/%s/ndi/evt", opt.root, opt.device_id);
		int len = snprintf(payload, sizeof payload,
				"{\"req_id\":\"%s%ld\",\"ok\":true,\"code\":\"OK\",\"action\":\"start\"}",
				s->tag, seq);
		mosquitto_publish(c->mosq, NULL, topic, len, payload, opt.qos, false);
	}
}

static void cmd_throughput(void)
{
	/* --mode bare: as relay, under --bare-root, where the bare relay serves */
	bool bare_path = !strcmp(opt.mode, "bare");
	bool relay = bare_path || !strcmp(opt.mode, "relay");
	const char *root = bare_path ? opt.bare_root : opt.root;
	char dev_topic[256], cmd_topic[256];
	snprintf(dev_topic, sizeof dev_topic, "%s/device/%s/ndi/cmd", root, opt.device_id);
	snprintf(cmd_topic, sizeof cmd_topic, "%s/orchestrator/ndi/cmd", root);
	struct bare_relay bare;
	if(bare_path)
		bare_start(&bare);

	struct tput_state st = {.n = opt.n};
	pthread_mutex_init(&st.lock, NULL);
	st.seen = calloc((size_t)opt.n, 1);
	snprintf(st.tag, sizeof st.tag, "T%dq%d%sx", (int)getpid(), opt.qos,
			bare_path               ? "b"
					: relay ? "r"
						: "d");

	struct client *dev = client_new("tput-dev", true);
	dev->on_msg = tput_on_msg;
	dev->ud = &st;
	client_subscribe(dev, dev_topic, opt.qos, true);
	struct client *app = client_new("tput-app", true);

	double t0 = now_s();
	for(long i = 0; i < opt.n; i++) {
		char payload[512];
		int len = start_command(payload, sizeof payload, st.tag, i);
		int rc = mosquitto_publish(
				app->mosq, NULL, relay ? cmd_topic : dev_topic, len, payload, opt.qos, false);
		if(rc)
			die("publish failed: %s", mosquitto_strerror(rc));
	}
	double t_queued = now_s();
	/* Done when everything arrived, or nothing new came for 3 s (10 s
	 * with --ack: the host then reads the burst and the acks for seconds
	 * before its relays reach the device, which is slow, not lost). */
	double quiet_s = opt.ack ? 10.0 : 3.0;
	long last_unique = -1;
	double last_progress = now_s(), end = t0 + opt.timeout_s;
	for(;;) {
		usleep(5000);
		pthread_mutex_lock(&st.lock);
		long u = st.unique;
		pthread_mutex_unlock(&st.lock);
		double t = now_s();
		if(u >= opt.n || t > end)
			break;
		if(u != last_unique) {
			last_unique = u;
			last_progress = t;
		} else if(t - last_progress > quiet_s) {
			break;
		}
	}
	client_wait_published(app, opt.n, 2.0);
	pthread_mutex_lock(&st.lock);
	double secs = st.unique ? st.t_last - t0 : now_s() - t0;
	figure("rate", secs > 0 ? (double)st.unique / secs : 0, "msg/s");
	figure("delivered", (double)st.unique, "count");
	figure("lost", (double)(opt.n - st.unique), "count");
	figure("duplicates", (double)st.dups, "count");
	figure("secs", secs, "s");
	figure("publish_secs", t_queued - t0, "s");
	pthread_mutex_unlock(&st.lock);
	client_free(app, true);
	client_free(dev, true);
	free(st.seen);
	if(bare_path)
		bare_stop(&bare, "");
}

/* ---- burst: commands to a device that never answers ---------------------------- */

struct burst_state {
	pthread_mutex_t lock;
	char tag[32];
	long timeouts; /* TIMEOUT events for this run's commands */
};

static void burst_on_msg(struct client *c, const struct mosquitto_message *m)
{
	struct burst_state *s = c->ud;
	const char *p = m->payload;
	size_t len = (size_t)m->payloadlen;
	if(memmem(p, len, s->tag, strlen(s->tag)) && memmem(p, len, "\"TIMEOUT\"", 9)) {
		pthread_mutex_lock(&s->lock);
		s->timeouts++;
		pthread_mutex_unlock(&s->lock);
	}
}

/* burst: --n commands through the host to --device-id, which nobody
 * serves, then waits for every one's TIMEOUT event (the host's
 * ack_timeout_s decides when).  bench/run.sh reads the host's RSS around
 * it. */
static void cmd_burst(void)
{
	char evt_topic[256], cmd_topic[256];
	snprintf(evt_topic, sizeof evt_topic, "%s/orchestrator/ndi/evt", opt.root);
	snprintf(cmd_topic, sizeof cmd_topic, "%s/orchestrator/ndi/cmd", opt.root);
	struct burst_state st;
	pthread_mutex_init(&st.lock, NULL);
	st.timeouts = 0;
	snprintf(st.tag, sizeof st.tag, "B%dx", (int)getpid());
	struct client *watch = client_new("burst-evt", true);
	watch->on_msg = burst_on_msg;
	watch->ud = &st;
	client_subscribe(watch, evt_topic, 0, true);
	struct client *app = client_new("burst-app", true);
	double t0 = now_s();
	for(long i = 0; i < opt.n; i++) {
		char payload[512];
		int len = start_command(payload, sizeof payload, st.tag, i);
		int rc = mosquitto_publish(app->mosq, NULL, cmd_topic, len, payload, 1, false);
		if(rc)
			die("publish failed: %s", mosquitto_strerror(rc));
	}
	if(!client_wait_published(app, opt.n, opt.timeout_s))
		die("the broker did not acknowledge the burst");
	double t_sent = now_s(), end = t0 + opt.timeout_s;
	long seen = 0;
	while(seen < opt.n && now_s() < end) {
		usleep(20000);
		pthread_mutex_lock(&st.lock);
		seen = st.timeouts;
		pthread_mutex_unlock(&st.lock);
	}
	figure("publish_secs", t_sent - t0, "s");
	figure("timeouts", (double)seen, "count");
	figure("drained_secs", now_s() - t0, "s");
	client_free(app, true);
	client_free(watch, true);
	if(seen < opt.n)
		die("%ld of %ld commands timed out within %.0f s", seen, opt.n, opt.timeout_s);
}

/* ---- devices: meta, status, registry ------------------------------------------- */

static void device_name(long i, char *out, size_t len)
{
	snprintf(out, len, "dev-%06ld", i);
}

static void publish_meta(struct client *c, long i)
{
	char id[32], topic[256], payload[512];
	device_name(i, id, sizeof id);
	snprintf(topic, sizeof topic, "%s/device/%s/meta", opt.root, id);
	int len = snprintf(payload, sizeof payload,
			"{\"device_id\":\"%s\",\"name\":\"Bench device %ld\",\"modules\":[\"ndi\"],"
			"\"version\":\"1.4.2\",\"ip\":\"10.0.%ld.%ld\",\"model\":\"rpi4\"}",
			id, i, (i / 250) % 256, i % 250 + 1);
	if(mosquitto_publish(c->mosq, NULL, topic, len, payload, 1, true))
		die("publish %s failed", topic);
}

static int publish_status(struct client *c, long i, long seq)
{
	char id[32], topic[256], payload[256];
	device_name(i, id, sizeof id);
	snprintf(topic, sizeof topic, "%s/device/%s/status", opt.root, id);
	int len = snprintf(payload, sizeof payload,
			"{\"online\":true,\"seq\":%ld,\"cpu\":%ld.%ld,\"ndi\":{\"state\":\"idle\"}}", seq,
			(i * 7 + seq) % 100, seq % 10);
	if(mosquitto_publish(c->mosq, NULL, topic, len, payload, 1, true))
		die("publish %s failed", topic);
	return len;
}

/* True once GET /api/devices/{id} shows status seq `seq` (or, seq < 0, exists). */
static bool device_visible(long i, long seq)
{
	char id[32], path[128];
	device_name(i, id, sizeof id);
	snprintf(path, sizeof path, "/api/devices/%s", id);
	json_t *j = http_get_json(path);
	if(!j)
		return false;
	bool ok = seq < 0 || json_integer_value(json_object_get(j, "seq")) == seq;
	json_decref(j);
	return ok;
}

static struct client **open_conns(int n, const char *tag)
{
	struct client **cs = calloc((size_t)n, sizeof *cs);
	for(int k = 0; k < n; k++) {
		char t[32];
		snprintf(t, sizeof t, "%s%d", tag, k);
		cs[k] = client_new(t, true);
	}
	return cs;
}

static void wait_conns_published(struct client **cs, int n, const long *expected)
{
	for(int k = 0; k < n; k++) {
		if(!client_wait_published(cs[k], expected[k], opt.timeout_s))
			die("broker did not acknowledge every publish on connection %d", k);
	}
}

/* populate: meta + one status for devices [from, to), then wait until the
 * host shows the last device of every connection (each connection's messages
 * arrive in order). */
static void cmd_populate(void)
{
	int nc = opt.conns;
	struct client **cs = open_conns(nc, "pop");
	long *expected = calloc((size_t)nc, sizeof *expected);
	long *last = calloc((size_t)nc, sizeof *last);
	double t0 = now_s();
	for(long sweep = 0, n = 0; sweep < opt.sweeps; sweep++) {
		for(long i = opt.from; i < opt.to; i++, n++) {
			int k = (int)(i % nc);
			publish_meta(cs[k], i);
			publish_status(cs[k], i, opt.seq0 + sweep);
			expected[k] += 2;
			last[k] = i;
			/* Keep the client queues short: the broker acks as it goes. */
			if(n % 2000 == 1999)
				client_wait_published(cs[k], expected[k] - 1000, opt.timeout_s);
		}
	}
	wait_conns_published(cs, nc, expected);
	double t_acked = now_s(), end = t0 + opt.timeout_s;
	/* --http-port 0: only the broker keeps them (retained). */
	bool all = !opt.http_port;
	while(!all && now_s() < end) {
		all = true;
		for(int k = 0; k < nc && all; k++) {
			if(expected[k] && !device_visible(last[k], opt.seq0 + opt.sweeps - 1))
				all = false;
		}
		if(!all)
			usleep(20000);
	}
	if(!all)
		die("host did not show all %ld devices within %.0f s", opt.to - opt.from, opt.timeout_s);
	figure("publish_secs", t_acked - t0, "s");
	figure("visible_secs", now_s() - t0, "s");
	for(int k = 0; k < nc; k++)
		client_free(cs[k], true);
	free(expected);
	free(last);
}

struct reg_state {
	pthread_mutex_t lock;
	char status_suffix[16];
	long status_seen;
	long status_target;
	double t_status_last;
	double t_from; /* count snapshots arriving after this */
	long snapshots;
	long snapshot_bytes;
	long max_snapshot_bytes;
	long devices_in_snapshot;
	bool snapshot_final; /* a snapshot showed every final update */
	double t_snapshot_final;
	long final_seq;
	long ndev;
};

/* Whether a registry document shows `seq` for all `ndev` devices. */
static bool registry_complete(json_t *reg, long seq, long ndev)
{
	json_t *devs = json_object_get(reg, "devices");
	if((long)json_object_size(devs) < ndev)
		return false;
	const char *k;
	json_t *v;
	long n = 0;
	json_object_foreach(devs, k, v)
	{
		if(strncmp(k, "dev-", 4))
			continue;
		if(json_integer_value(json_object_get(v, "seq")) != seq)
			return false;
		n++;
	}
	return n >= ndev;
}

static void reg_on_msg(struct client *c, const struct mosquitto_message *m)
{
	struct reg_state *s = c->ud;
	double t = now_s();
	size_t tl = strlen(m->topic), sl = strlen(s->status_suffix);
	if(tl > sl && !strcmp(m->topic + tl - sl, s->status_suffix)) {
		if(m->retain)
			return;
		pthread_mutex_lock(&s->lock);
		if(++s->status_seen == s->status_target)
			s->t_status_last = t;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	/* A registry snapshot. */
	if(m->retain)
		return;
	pthread_mutex_lock(&s->lock);
	bool counting = s->t_from > 0 && t >= s->t_from;
	bool check = counting && !s->snapshot_final;
	pthread_mutex_unlock(&s->lock);
	if(!counting)
		return;
	bool final = false;
	if(check) {
		json_t *j = json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL);
		final = j && registry_complete(j, s->final_seq, s->ndev);
		json_decref(j);
	}
	pthread_mutex_lock(&s->lock);
	s->snapshots++;
	s->snapshot_bytes += m->payloadlen;
	if(m->payloadlen > s->max_snapshot_bytes)
		s->max_snapshot_bytes = m->payloadlen;
	if(final && !s->snapshot_final) {
		s->snapshot_final = true;
		s->t_snapshot_final = t;
	}
	pthread_mutex_unlock(&s->lock);
}

static void cmd_registry(void)
{
	int nc = opt.conns;
	long ndev = opt.devices, nup = opt.updates;
	struct reg_state st = {.final_seq = nup, .ndev = ndev};
	pthread_mutex_init(&st.lock, NULL);
	snprintf(st.status_suffix, sizeof st.status_suffix, "/status");

	/* 1. Register the devices (meta only) and wait until the host has them. */
	struct client **cs = open_conns(nc, "reg");
	long *expected = calloc((size_t)nc, sizeof *expected);
	for(long i = 0; i < ndev; i++) {
		publish_meta(cs[i % nc], i);
		expected[i % nc]++;
	}
	wait_conns_published(cs, nc, expected);
	double end = now_s() + opt.timeout_s;
	bool have_all = false;
	while(!have_all && now_s() < end) {
		json_t *reg = http_get_json("/api/registry");
		have_all = reg && (long)json_object_size(json_object_get(reg, "devices")) >= ndev;
		json_decref(reg);
		if(!have_all)
			usleep(50000);
	}
	if(!have_all)
		die("host did not register %ld devices", ndev);
	usleep(500000); /* let the registration snapshots go out */

	/* 2. A monitor sees what the broker delivers: every status update (the
	 *    broker-alone reference) and every registry snapshot. */
	struct client *mon = listener("reg-mon", reg_on_msg, &st, "/device/+/status");
	char filter[256];
	snprintf(filter, sizeof filter, "%s/orchestrator/registry", opt.root);
	client_subscribe(mon, filter, 1, true);
	usleep(200000);

	/* 3. The burst: `nup` rounds of one status per device, as fast as the
	 *    client library takes them.  seq runs 1..nup. */
	st.status_target = ndev * nup;
	long status_bytes = 0;
	double t0 = now_s();
	pthread_mutex_lock(&st.lock);
	st.t_from = t0;
	pthread_mutex_unlock(&st.lock);
	for(long u = 1; u <= nup; u++) {
		for(long i = 0; i < ndev; i++) {
			status_bytes += publish_status(cs[i % nc], i, u);
			expected[i % nc]++;
		}
	}
	double t_queued = now_s();

	/* 4. Wait for the monitor to see the last update, then poll the host. */
	end = t0 + opt.timeout_s;
	for(;;) {
		pthread_mutex_lock(&st.lock);
		bool done = st.status_seen >= st.status_target;
		pthread_mutex_unlock(&st.lock);
		if(done || now_s() > end)
			break;
		usleep(1000);
	}
	pthread_mutex_lock(&st.lock);
	long seen = st.status_seen;
	double t_arrived = st.t_status_last;
	pthread_mutex_unlock(&st.lock);
	if(seen < st.status_target)
		die("the monitor saw only %ld of %ld status updates", seen, st.status_target);

	double t_visible = 0;
	int polls = 0;
	while(now_s() < end) {
		json_t *reg = http_get_json("/api/registry");
		double t = now_s();
		polls++;
		bool ok = reg && registry_complete(reg, nup, ndev);
		json_decref(reg);
		if(ok) {
			t_visible = t;
			break;
		}
		usleep(2000);
	}
	if(!t_visible)
		die("GET /api/registry never showed the final update of every device");
	/* Snapshots still in flight belong to the burst too. */
	usleep(1000000);
	wait_conns_published(cs, nc, expected);

	pthread_mutex_lock(&st.lock);
	long total = ndev * nup;
	figure("updates", (double)total, "count");
	figure("publish_secs", t_queued - t0, "s");
	figure("broker_secs", t_arrived - t0, "s");
	figure("broker_rate", (double)total / (t_arrived - t0), "updates/s");
	figure("visible_secs", t_visible - t0, "s");
	figure("visible_after_last_s", t_visible - t_arrived, "s");
	figure("rate", (double)total / (t_visible - t0), "updates/s");
	figure("snapshot_final_after_last_s", st.snapshot_final ? st.t_snapshot_final - t_arrived : NAN, "s");
	figure("snapshots", (double)st.snapshots, "count");
	figure("snapshot_bytes", (double)st.snapshot_bytes, "bytes");
	figure("snapshot_max_bytes", (double)st.max_snapshot_bytes, "bytes");
	figure("status_bytes", (double)status_bytes, "bytes");
	figure("write_amplification_bytes", (double)st.snapshot_bytes / (double)status_bytes, "ratio");
	figure("snapshots_per_update", (double)st.snapshots / (double)total, "ratio");
	figure("http_polls", polls, "count");
	pthread_mutex_unlock(&st.lock);

	client_free(mon, true);
	for(int k = 0; k < nc; k++)
		client_free(cs[k], true);
	free(expected);
}

/* ---- writing a host's state.db before it starts ------------------------------------ */

/* Opens --db, creates tables (SQL), begins one transaction and prepares
 * insert (two parameters: key, JSON text) into *st. */
static sqlite3 *db_begin(const char *tables, const char *insert, sqlite3_stmt **st)
{
	sqlite3 *db;
	char *err = NULL, sql[1024];
	if(!opt.db || sqlite3_open(opt.db, &db) != SQLITE_OK)
		die("cannot open %s", opt.db ? opt.db : "(no --db)");
	snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL;%sBEGIN;", tables);
	if(sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		die("%s: %s", opt.db, err);
	if(sqlite3_prepare_v2(db, insert, -1, st, NULL) != SQLITE_OK)
		die("prepare: %s", sqlite3_errmsg(db));
	return db;
}

static void db_insert(sqlite3 *db, sqlite3_stmt *st, const char *key, const char *doc, int len)
{
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, doc, len, SQLITE_TRANSIENT);
	if(sqlite3_step(st) != SQLITE_DONE)
		die("insert: %s", sqlite3_errmsg(db));
	sqlite3_reset(st);
}

static void db_commit(sqlite3 *db, sqlite3_stmt *st)
{
	char *err = NULL;
	sqlite3_finalize(st);
	if(sqlite3_exec(db, "COMMIT;", NULL, NULL, &err) != SQLITE_OK)
		die("commit: %s", err);
	sqlite3_close(db);
}

/* ---- scheduler ------------------------------------------------------------------ */

static void iso_utc(double t, char *out, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * jobs: writes opt.n one-off jobs straight into the host's store, in the
 * format src/core/scheduler.c persists (sched__job_json), before the host
 * starts.  opt.fire_n of them fall due in [fire_at, fire_at + window), the
 * rest days later.  Each job's command carries its due time in
 * params.bench_due, so the device side can measure lateness.
 */
static void cmd_jobs(void)
{
	sqlite3_stmt *st;
	sqlite3 *db = db_begin("CREATE TABLE IF NOT EXISTS leases(key TEXT PRIMARY KEY, holder TEXT NOT NULL,"
			       " expires_at REAL NOT NULL);"
			       "CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, module TEXT NOT NULL,"
			       " doc TEXT NOT NULL);",
			"INSERT OR REPLACE INTO jobs(id, module, doc) VALUES(?1, 'ndi', ?2)", &st);
	char created[32];
	iso_utc(wall_s(), created, sizeof created);
	/* Spread the due jobs evenly over the window, in whole seconds (the
	 * scheduler's resolution). */
	long per_sec = opt.fire_n / (opt.window >= 1 ? (long)opt.window : 1);
	if(per_sec < 1)
		per_sec = 1;
	for(long i = 0; i < opt.n; i++) {
		double due = i < opt.fire_n ? floor(opt.fire_at) + (double)(i / per_sec)
					    : wall_s() + 86400 + (double)(i % 86400);
		char id[40], when[32], doc[1024];
		snprintf(id, sizeof id, "bench-job-%07ld", i);
		iso_utc(due, when, sizeof when);
		int len = snprintf(doc, sizeof doc,
				"{\"id\":\"%s\",\"module\":\"ndi\",\"owner\":\"bench\",\"name\":null,"
				"\"spec\":{\"at\":\"%s\"},\"tz\":\"UTC\",\"commands\":[{\"device_id\":\"%s\","
				"\"action\":\"start\",\"params\":{\"source\":\"S\",\"bench_due\":%.0f}}],"
				"\"created\":\"%s\",\"next_run\":\"%s\",\"last_run\":null,\"last_result\":null,"
				"\"state\":\"scheduled\"}",
				id, when, i < opt.fire_n ? "sched-dev" : "idle-dev", due, created, when);
		db_insert(db, st, id, doc, len);
	}
	sqlite3_finalize(st);
	/* Leases on the devices populate makes, held for a month. */
	if(sqlite3_prepare_v2(db,
			   "INSERT OR REPLACE INTO leases(key, holder, expires_at) VALUES(?1, 'bench', ?2)",
			   -1, &st, NULL) != SQLITE_OK)
		die("prepare: %s", sqlite3_errmsg(db));
	for(long i = 0; i < opt.leases; i++) {
		char key[48], id[32];
		device_name(i, id, sizeof id);
		snprintf(key, sizeof key, "ndi:%s", id);
		sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 2, wall_s() + 30 * 86400);
		if(sqlite3_step(st) != SQLITE_DONE)
			die("insert: %s", sqlite3_errmsg(db));
		sqlite3_reset(st);
	}
	db_commit(db, st);
}

/* startwait: polls GET /api/registry until it lists --devices devices and
 * prints the seconds from wall time --at (the host's exec) to that answer:
 * to its last byte, not to the end of parsing it here (at 100,000 devices
 * jansson takes 1.6 s of CPU over the 31 MB, more than the host took to
 * answer). */
static void cmd_startwait(void)
{
	double end = now_s() + opt.timeout_s;
	long polls = 0;
	while(now_s() < end) {
		char *body;
		size_t len;
		int status = http_get("/api/registry", &body, &len);
		double answered = wall_s();
		json_t *reg = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
		free(body);
		polls++;
		long n = (long)json_object_size(json_object_get(reg, "devices"));
		json_decref(reg);
		if(n >= opt.devices) {
			figure("secs", answered - opt.at, "s");
			figure("polls", (double)polls, "count");
			return;
		}
		usleep(20000);
	}
	die("the registry did not list %ld devices within %.0f s", opt.devices, opt.timeout_s);
}

struct watch_state {
	pthread_mutex_t lock;
	double *late;
	long n;
	long got;
	/* Per due second (from the first): the first and the last arrival's
	 * lateness, which split the wake-up from the cost per job. */
	double first_due;
	double first[64], last[64];
};

static void watch_on_msg(struct client *c, const struct mosquitto_message *m)
{
	struct watch_state *s = c->ud;
	double t = wall_s();
	const char *p = memmem(m->payload, (size_t)m->payloadlen, "\"bench_due\":", 12);
	if(!p)
		return;
	double due = strtod(p + 12, NULL);
	pthread_mutex_lock(&s->lock);
	if(s->got < s->n) {
		double ms = (t - due) * 1000.0;
		s->late[s->got++] = ms;
		if(!s->first_due)
			s->first_due = due;
		long sec = (long)(due - s->first_due);
		if(sec >= 0 && sec < 64) {
			if(!s->first[sec] || ms < s->first[sec])
				s->first[sec] = ms;
			if(ms > s->last[sec])
				s->last[sec] = ms;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* schedwatch: the device the due jobs address; lateness = arrival - due. */
static void cmd_schedwatch(void)
{
	struct watch_state st = {.n = opt.fire_n};
	pthread_mutex_init(&st.lock, NULL);
	st.late = calloc((size_t)opt.fire_n, sizeof *st.late);
	struct client *dev = client_new("sched-dev", true);
	dev->on_msg = watch_on_msg;
	dev->ud = &st;
	char topic[256];
	snprintf(topic, sizeof topic, "%s/device/sched-dev/ndi/cmd", opt.root);
	client_subscribe(dev, topic, 1, true);
	printf("# schedwatch ready\n");
	fflush(stdout);
	double end = now_s() + opt.timeout_s;
	for(;;) {
		pthread_mutex_lock(&st.lock);
		long got = st.got;
		pthread_mutex_unlock(&st.lock);
		if(got >= st.n || now_s() > end)
			break;
		usleep(10000);
	}
	pthread_mutex_lock(&st.lock);
	qsort(st.late, (size_t)st.got, sizeof *st.late, cmp_double);
	figure("fired", (double)st.got, "count");
	figure("missing", (double)(st.n - st.got), "count");
	figure("lateness_p50", percentile(st.late, (size_t)st.got, 50), "ms");
	figure("lateness_p99", percentile(st.late, (size_t)st.got, 99), "ms");
	figure("lateness_max", st.got ? st.late[st.got - 1] : NAN, "ms");
	/* The worst second's first arrival (the wake-up and one relay) and its
	 * spread from first to last (the cost of the jobs before the last). */
	double wake = 0, spread = 0;
	for(int i = 0; i < 64; i++) {
		if(!st.last[i])
			continue;
		wake = fmax(wake, st.first[i]);
		spread = fmax(spread, st.last[i] - st.first[i]);
	}
	figure("lateness_first_max", wake, "ms");
	figure("lateness_spread_max", spread, "ms");
	pthread_mutex_unlock(&st.lock);
	client_free(dev, true);
	free(st.late);
}

/* ---- routes ------------------------------------------------------------------------ */

/* routes: opt.n routes dev-000000.. -> CAM-1 in the format the NDI plugin
 * stores (src/plugins/ndi/ndi_routes.c, route_doc) through the host's
 * document store (the docs table of src/core/store_sqlite.c). */
static void cmd_routes(void)
{
	sqlite3_stmt *st;
	sqlite3 *db = db_begin("CREATE TABLE IF NOT EXISTS docs(module TEXT NOT NULL, collection TEXT NOT NULL,"
			       " key TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY(module, collection, key));",
			"INSERT OR REPLACE INTO docs(module, collection, key, doc) VALUES('ndi', 'routes', ?1, ?2)",
			&st);
	for(long i = 0; i < opt.n; i++) {
		char id[32], doc[256];
		device_name(i, id, sizeof id);
		int len = snprintf(doc, sizeof doc,
				"{\"source\":\"CAM-1\",\"recording\":false,\"owner\":\"bench\",\"since\":%.0f}",
				wall_s());
		db_insert(db, st, id, doc, len);
	}
	db_commit(db, st);
}

struct fleet_state {
	pthread_mutex_t lock;
	unsigned short *per_device; /* commands each device got */
	long commands, devices_done;
	double t_last;
};

/* One command for a fleet device: count it, then do what an agent does:
 * the new module status (retained), then the ack. */
static void fleet_on_msg(struct client *c, const struct mosquitto_message *m)
{
	struct fleet_state *s = c->ud;
	const char *p = strstr(m->topic, "/device/dev-");
	long i = p ? strtol(p + 12, NULL, 10) : -1;
	if(i < 0 || i >= opt.n)
		return;
	json_error_t e;
	json_t *env = json_loadb(m->payload, (size_t)m->payloadlen, 0, &e);
	const char *req_id = json_string_value(json_object_get(env, "req_id"));
	const char *action = json_string_value(json_object_get(env, "action"));
	const char *source = json_string_value(json_object_get(json_object_get(env, "params"), "source"));
	char topic[256], payload[512];
	char id[32];
	device_name(i, id, sizeof id);
	if(action && source && (!strcmp(action, "start") || !strcmp(action, "set_input"))) {
		snprintf(topic, sizeof topic, "%s/device/%s/ndi/status", opt.root, id);
		int len = snprintf(payload, sizeof payload,
				"{\"state\":\"running\",\"online\":true,\"fields\":{\"input\":\"%s\","
				"\"pid\":null,\"recording\":false,\"record_pid\":null}}",
				source);
		mosquitto_publish(c->mosq, NULL, topic, len, payload, 1, true);
	}
	if(req_id) {
		snprintf(topic, sizeof topic, "%s/device/%s/ndi/evt", opt.root, id);
		int len = snprintf(payload, sizeof payload,
				"{\"req_id\":\"%s\",\"ok\":true,\"code\":\"OK\",\"action\":\"%s\","
				"\"actor\":\"orchestrator\",\"details\":{}}",
				req_id, action ? action : "");
		mosquitto_publish(c->mosq, NULL, topic, len, payload, 1, false);
	}
	json_decref(env);
	pthread_mutex_lock(&s->lock);
	if(s->per_device[i]++ == 0)
		s->devices_done++;
	s->commands++;
	s->t_last = now_s();
	pthread_mutex_unlock(&s->lock);
}

/* fleet: opt.n devices announce themselves online and idle (no input), as
 * agents do after a restart, and follow the host's commands.  Figures: the
 * seconds until every device got its command, the commands in all and the
 * ones beyond the first per device (a storm would show there). */
static void cmd_fleet(void)
{
	/* --mode announce: the devices show their routes' source (converged)
	 * and the tool exits once the broker has the retained statuses. */
	bool announce = !strcmp(opt.mode, "announce");
	struct fleet_state st = {.per_device = calloc((size_t)opt.n, sizeof(unsigned short))};
	pthread_mutex_init(&st.lock, NULL);
	struct client *dev = listener("fleet-dev", fleet_on_msg, &st, "/device/+/ndi/cmd");
	int nc = opt.conns;
	struct client **cs = open_conns(nc, "fleet");
	long *expected = calloc((size_t)nc, sizeof *expected);
	double t0 = now_s();
	for(long i = 0; i < opt.n; i++) {
		int k = (int)(i % nc);
		char id[32], topic[256], payload[256];
		device_name(i, id, sizeof id);
		snprintf(topic, sizeof topic, "%s/device/%s/status", opt.root, id);
		int len = snprintf(payload, sizeof payload, "{\"online\":true,\"device_id\":\"%s\"}", id);
		mosquitto_publish(cs[k]->mosq, NULL, topic, len, payload, 1, true);
		snprintf(topic, sizeof topic, "%s/device/%s/ndi/status", opt.root, id);
		len = snprintf(payload, sizeof payload,
				"{\"state\":\"%s\",\"online\":true,\"fields\":{\"input\":%s,\"pid\":null,"
				"\"recording\":false,\"record_pid\":null}}",
				announce ? "running" : "idle", announce ? "\"CAM-1\"" : "null");
		mosquitto_publish(cs[k]->mosq, NULL, topic, len, payload, 1, true);
		expected[k] += 2;
		if(i % 2000 == 1999)
			client_wait_published(cs[k], expected[k] - 1000, opt.timeout_s);
	}
	wait_conns_published(cs, nc, expected);
	printf("# fleet announced\n");
	fflush(stdout);
	if(announce)
		opt.timeout_s = 0;
	double end = t0 + opt.timeout_s;
	for(;;) {
		pthread_mutex_lock(&st.lock);
		bool all = st.devices_done >= opt.n;
		double quiet = now_s() - st.t_last;
		pthread_mutex_unlock(&st.lock);
		/* Every device served, then 2 s more to catch a storm. */
		if((all && quiet > 2) || now_s() > end)
			break;
		usleep(20000);
	}
	pthread_mutex_lock(&st.lock);
	if(!announce) {
		figure("devices_served", (double)st.devices_done, "count");
		figure("commands", (double)st.commands, "count");
		figure("extra_commands", (double)(st.commands - st.devices_done), "count");
		figure("secs", st.t_last > t0 ? st.t_last - t0 : NAN, "s");
	}
	pthread_mutex_unlock(&st.lock);
	for(int k = 0; k < nc; k++)
		client_free(cs[k], true);
	client_free(dev, true);
	free(expected);
	free(st.per_device);
}

/* ---- sse: event-stream clients under a status-update load ----------------------- */

/*
 * --conns clients hold GET /api/events open on a host that has --devices
 * devices (bench/run.sh populates them) while a publisher sends --rate
 * status updates a second to random devices for --duration seconds.  Each
 * client reads its own socket (HTTP chunked framing, then SSE lines) and
 * applies what it gets to its own copy of the registry: a `registry` event
 * replaces it, a `registry_delta` must be made for the seq it holds (since)
 * and updates it.  A copy is one 64-bit hash per device (of its document,
 * keys sorted), so 1000 copies of 10,000 devices fit in 80 MB; the JSON of
 * an event is parsed once per distinct text (the host sends the same bytes
 * to every client at the same seq), which keeps the tool off the host's
 * core.  A stream the host cuts off is reopened with Last-Event-ID, as
 * EventSource does.  At the end, once every client has caught up with the
 * seq GET /api/registry shows, each copy is compared with it.
 */

#define SSE_CACHE 64

struct sse_parsed {
	char *text; /* the event's data, owned; NULL: free slot */
	size_t len;
	bool whole;
	uint64_t seq, since;
	long n, n_removed;
	int32_t *idx;   /* devices in it */
	uint64_t *hash; /* their documents' hashes */
	int32_t *removed;
	unsigned long used;
};

struct sse_client {
	int fd;
	int phase;    /* 0 headers, 1 chunk size line, 2 chunk data, 3 CRLF after data */
	char hl[512]; /* an HTTP header or chunk-size line */
	size_t hll;
	char *line; /* a partial SSE line */
	size_t llen, lcap;
	size_t chunk_left;
	char event[32];
	uint64_t ev_id;
	char *data;
	size_t dlen, dcap;
	bool have_data;
	uint64_t seq;  /* of the copy; 0 before the first snapshot */
	uint64_t *dev; /* per device: hash of its document, 0 absent */
	long bytes;    /* received, framing included */
	long snapshots, deltas, cutoffs, bad;
};

static struct {
	struct sse_parsed cache[SSE_CACHE];
	unsigned long tick;
	long parses;
	long ndev;
	int ep;
	long reg_bytes; /* size of the last whole snapshot seen, for the ratio */
} sse;

static uint64_t fnv64(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for(size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h ? h : 1;
}

static uint64_t doc_hash(json_t *doc)
{
	char *t = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if(!t)
		die("out of memory");
	uint64_t h = fnv64(t, strlen(t));
	free(t);
	return h;
}

static long dev_index(const char *id)
{
	if(strncmp(id, "dev-", 4))
		return -1;
	long i = atol(id + 4);
	return i >= 0 && i < sse.ndev ? i : -1;
}

static void sse_parsed_free(struct sse_parsed *p)
{
	free(p->text);
	free(p->idx);
	free(p->hash);
	free(p->removed);
	memset(p, 0, sizeof *p);
}

/* The parsed form of an event's data, made once per distinct text. */
static struct sse_parsed *sse_parse(const char *name, const char *data, size_t len)
{
	bool whole = !strcmp(name, "registry");
	struct sse_parsed *lru = &sse.cache[0];
	for(int i = 0; i < SSE_CACHE; i++) {
		struct sse_parsed *p = &sse.cache[i];
		if(p->text && p->len == len && p->whole == whole && !memcmp(p->text, data, len)) {
			p->used = ++sse.tick;
			return p;
		}
		if(!p->text || p->used < lru->used)
			lru = p;
	}
	sse_parsed_free(lru);
	json_error_t err;
	json_t *j = json_loadb(data, len, 0, &err);
	if(!j)
		die("a %s event that is not JSON: %s", name, err.text);
	sse.parses++;
	struct sse_parsed *p = lru;
	p->text = malloc(len);
	memcpy(p->text, data, len);
	p->len = len;
	p->whole = whole;
	p->seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
	p->since = (uint64_t)json_integer_value(json_object_get(j, "since"));
	json_t *devs = json_object_get(j, "devices"), *removed = json_object_get(j, "removed");
	p->idx = malloc((json_object_size(devs) + 1) * sizeof *p->idx);
	p->hash = malloc((json_object_size(devs) + 1) * sizeof *p->hash);
	p->removed = malloc((json_array_size(removed) + 1) * sizeof *p->removed);
	const char *key;
	json_t *v;
	json_object_foreach(devs, key, v)
	{
		long i = dev_index(key);
		if(i < 0)
			continue;
		p->idx[p->n] = (int32_t)i;
		p->hash[p->n++] = doc_hash(v);
	}
	size_t k;
	json_array_foreach(removed, k, v)
	{
		long i = dev_index(json_string_value(v) ? json_string_value(v) : "");
		if(i >= 0)
			p->removed[p->n_removed++] = (int32_t)i;
	}
	if(whole)
		sse.reg_bytes = (long)len;
	json_decref(j);
	p->used = ++sse.tick;
	return p;
}

static void sse_apply(struct sse_client *c)
{
	if(strcmp(c->event, "registry") && strcmp(c->event, "registry_delta"))
		return;
	struct sse_parsed *p = sse_parse(c->event, c->data, c->dlen);
	if(p->whole) {
		memset(c->dev, 0, (size_t)sse.ndev * sizeof *c->dev);
		c->snapshots++;
	} else {
		if(p->since != c->seq) {
			c->bad++; /* a delta not made for the copy it holds */
			return;
		}
		c->deltas++;
	}
	for(long i = 0; i < p->n; i++)
		c->dev[p->idx[i]] = p->hash[i];
	for(long i = 0; i < p->n_removed; i++)
		c->dev[p->removed[i]] = 0;
	if(c->ev_id && c->ev_id != p->seq) /* ids: none before deltas */
		c->bad++;
	c->seq = p->seq;
}

static void sse_line(struct sse_client *c, char *s, size_t n)
{
	if(n && s[n - 1] == '\r')
		n--;
	if(!n) {
		if(c->have_data)
			sse_apply(c);
		c->event[0] = '\0';
		c->ev_id = 0;
		c->dlen = 0;
		c->have_data = false;
		return;
	}
	if(n > 6 && !memcmp(s, "data: ", 6)) {
		if(c->dlen + n > c->dcap) {
			c->dcap = (c->dlen + n) * 2;
			c->data = realloc(c->data, c->dcap);
		}
		memcpy(c->data + c->dlen, s + 6, n - 6);
		c->dlen += n - 6;
		c->have_data = true;
	} else if(n > 7 && !memcmp(s, "event: ", 7)) {
		snprintf(c->event, sizeof c->event, "%.*s", (int)(n - 7), s + 7);
	} else if(n > 4 && !memcmp(s, "id: ", 4)) {
		c->ev_id = strtoull(s + 4, NULL, 10);
	}
}

/* Appends to c->line; the caller takes complete lines. */
static void line_add(struct sse_client *c, const char *s, size_t n)
{
	if(c->llen + n > c->lcap) {
		c->lcap = (c->llen + n) * 2;
		c->line = realloc(c->line, c->lcap);
		if(!c->line)
			die("out of memory");
	}
	memcpy(c->line + c->llen, s, n);
	c->llen += n;
}

/* Feeds de-chunked stream bytes to the SSE line parser. */
static void sse_body(struct sse_client *c, const char *s, size_t n)
{
	while(n) {
		const char *nl = memchr(s, '\n', n);
		size_t take = nl ? (size_t)(nl - s) : n;
		if(!nl) {
			line_add(c, s, take);
			return;
		}
		if(c->llen) {
			line_add(c, s, take);
			sse_line(c, c->line, c->llen);
			c->llen = 0;
		} else {
			sse_line(c, (char *)s, take);
		}
		s += take + 1;
		n -= take + 1;
	}
}

/* HTTP framing: headers, then chunks, whose payload goes to sse_body. */
static void sse_feed(struct sse_client *c, const char *s, size_t n)
{
	while(n) {
		if(c->phase != 2) {
			const char *nl = memchr(s, '\n', n);
			size_t take = nl ? (size_t)(nl - s) + 1 : n;
			size_t keep = take < sizeof c->hl - 1 - c->hll ? take : sizeof c->hl - 1 - c->hll;
			memcpy(c->hl + c->hll, s, keep); /* long header lines: only their start */
			c->hll += keep;
			s += take;
			n -= take;
			if(!nl)
				return;
			c->hl[c->hll] = '\0';
			size_t ll = c->hll;
			c->hll = 0;
			if(c->phase == 0) {
				if(ll <= 2) /* the blank line after the headers */
					c->phase = 1;
				else if(!strncmp(c->hl, "HTTP/1.", 7) && strncmp(c->hl + 9, "200", 3))
					die("GET /api/events: %s", c->hl);
			} else if(c->phase == 3) {
				c->phase = 1;
			} else {
				c->chunk_left = strtoul(c->hl, NULL, 16);
				c->phase = c->chunk_left ? 2 : 0;
			}
			continue;
		}
		size_t take = n < c->chunk_left ? n : c->chunk_left;
		sse_body(c, s, take);
		s += take;
		n -= take;
		c->chunk_left -= take;
		if(!c->chunk_left)
			c->phase = 3;
	}
}

static void sse_open(struct sse_client *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.http_port)};
	inet_pton(AF_INET, LOCALHOST, &a.sin_addr);
	if(c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a))
		die("cannot open an event stream: %s", strerror(errno));
	char req[256];
	int n = snprintf(req, sizeof req, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n");
	if(c->seq) /* as EventSource does on reconnecting */
		n += snprintf(req + n, sizeof req - (size_t)n, "Last-Event-ID: %llu\r\n",
				(unsigned long long)c->seq);
	n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
	if(write(c->fd, req, (size_t)n) != n)
		die("cannot send GET /api/events");
	c->phase = 0;
	c->hll = c->llen = c->dlen = 0;
	c->have_data = false;
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = c};
	epoll_ctl(sse.ep, EPOLL_CTL_ADD, c->fd, &ee);
}

/* Reads what is there for up to ms milliseconds. */
static void sse_pump(int ms)
{
	static char buf[1 << 18];
	struct epoll_event evs[256];
	int n = epoll_wait(sse.ep, evs, 256, ms);
	for(int i = 0; i < n; i++) {
		struct sse_client *c = evs[i].data.ptr;
		ssize_t r = read(c->fd, buf, sizeof buf);
		if(r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if(r <= 0) { /* cut off (or the host went away): reconnect */
			epoll_ctl(sse.ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->cutoffs++;
			sse_open(c);
			continue;
		}
		c->bytes += r;
		sse_feed(c, buf, (size_t)r);
	}
}

static atomic_bool sse_stop;
static atomic_long sse_published;

/* The load: --rate status updates a second to random devices. */
static void *sse_publisher(void *arg)
{
	struct client *pub = arg;
	double t0 = now_s();
	long seq = 1;
	unsigned rnd = 12345;
	while(!atomic_load(&sse_stop)) {
		long due = (long)((now_s() - t0) * (double)opt.rate);
		while(atomic_load(&sse_published) < due) {
			rnd = rnd * 1103515245u + 12345u;
			publish_status(pub, (long)((rnd >> 8) % (unsigned)opt.devices), ++seq);
			atomic_fetch_add(&sse_published, 1);
		}
		usleep(1000);
	}
	return NULL;
}

/* utime + stime of pid, in seconds. */
static double proc_cpu_s(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if(!f)
		die("cannot read %s", path);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* After the name: state, then fields 4..13, then utime (14), stime (15). */
	if(!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		die("cannot parse %s", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double host_metric(const char *name)
{
	char *body;
	size_t len;
	double v = NAN;
	if(http_get("/metrics", &body, &len) == 200) {
		size_t nl = strlen(name);
		for(char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
			if(!strncmp(l, name, nl) && l[nl] == ' ')
				v = atof(l + nl + 1);
	}
	free(body);
	return v;
}

static void cmd_sse(void)
{
	if(opt.pid <= 0)
		die("sse: --pid (the host's) is needed for its CPU time");
	sse.ndev = opt.devices;
	sse.ep = epoll_create1(0);
	int nc = opt.conns;
	struct sse_client *cs = calloc((size_t)nc, sizeof *cs);
	for(int k = 0; k < nc; k++) {
		cs[k].dev = calloc((size_t)sse.ndev, sizeof *cs[k].dev);
		if(!cs[k].dev)
			die("out of memory");
		sse_open(&cs[k]);
	}
	/* Everyone has its first snapshot before the load starts. */
	double end = now_s() + opt.timeout_s;
	for(int k = 0; k < nc; k++)
		while(!cs[k].seq && now_s() < end)
			sse_pump(50);
	for(int k = 0; k < nc; k++)
		if(!cs[k].seq)
			die("client %d got no snapshot within %.0f s", k, opt.timeout_s);
	long bytes0 = 0;
	for(int k = 0; k < nc; k++)
		bytes0 += cs[k].bytes;

	struct client *pub = client_new("ssepub", true);
	pthread_t th;
	double cpu0 = proc_cpu_s(opt.pid), t0 = now_s();
	pthread_create(&th, NULL, sse_publisher, pub);
	while(now_s() < t0 + opt.duration)
		sse_pump(20);
	atomic_store(&sse_stop, true);
	pthread_join(th, NULL);
	double window = now_s() - t0, cpu = proc_cpu_s(opt.pid) - cpu0;
	long published = atomic_load(&sse_published);
	if(!client_wait_published(pub, published, opt.timeout_s))
		die("the broker did not acknowledge every status update");

	/* Settle: every copy catches up with the registry's seq, then compares. */
	long in_sync = 0, behind = 0, differ = 0;
	json_t *reg = NULL;
	for(int round = 0; round < 20; round++) {
		json_decref(reg);
		double quiet = now_s() + 1.0;
		while(now_s() < quiet)
			sse_pump(20);
		double give_up = now_s() + opt.timeout_s;
		while(!(reg = http_get_json("/api/registry")) && now_s() < give_up)
			sse_pump(100); /* a host digesting the load answers late */
		if(!reg)
			die("GET /api/registry failed");
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(reg, "seq"));
		double until = now_s() + opt.timeout_s;
		bool all;
		do {
			sse_pump(20);
			all = true;
			for(int k = 0; k < nc && all; k++)
				all = cs[k].seq >= seq;
		} while(!all && now_s() < until);
		bool same = true;
		for(int k = 0; k < nc; k++)
			same &= cs[k].seq == seq;
		if(same || round == 19)
			break;
	}
	uint64_t seq = (uint64_t)json_integer_value(json_object_get(reg, "seq"));
	uint64_t *want = calloc((size_t)sse.ndev, sizeof *want);
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(reg, "devices"), key, v)
	{
		long i = dev_index(key);
		if(i >= 0)
			want[i] = doc_hash(v);
	}
	long reg_len = 0;
	{
		char *t = json_dumps(reg, JSON_COMPACT);
		reg_len = t ? (long)strlen(t) : 0;
		free(t);
	}
	json_decref(reg);
	long bytes = 0, snaps = 0, deltas = 0, cutoffs = 0, bad = 0;
	for(int k = 0; k < nc; k++) {
		struct sse_client *c = &cs[k];
		if(c->seq != seq)
			behind++;
		else if(memcmp(c->dev, want, (size_t)sse.ndev * sizeof *want))
			differ++;
		else
			in_sync++;
		bytes += c->bytes;
		snaps += c->snapshots;
		deltas += c->deltas;
		cutoffs += c->cutoffs;
		bad += c->bad;
	}
	double per_client = (double)(bytes - bytes0) / nc;
	/* What the old host sent each client for the same registry events: a
	 * whole snapshot each (a slow reader's unsent one replaced, so at most
	 * this). */
	double events_per_client = (double)(snaps + deltas) / nc - 1; /* without the first */
	double whole_equiv = events_per_client * (double)reg_len;
	figure("clients", nc, "");
	figure("devices", (double)sse.ndev, "");
	figure("updates_per_s", (double)published / window, "/s");
	figure("host_cpu_cores", cpu / window, "cores");
	figure("clients_in_sync", (double)in_sync, "");
	figure("clients_behind", (double)behind, "");
	figure("clients_differ", (double)differ, "");
	figure("bad_events", (double)bad, "");
	figure("cutoffs", (double)cutoffs, "");
	figure("registry_events_per_client", events_per_client, "");
	figure("bytes_per_client", per_client, "bytes");
	figure("bytes_per_client_per_s", per_client / window, "bytes/s");
	figure("snapshot_bytes", (double)reg_len, "bytes");
	figure("whole_snapshot_bytes_per_client", whole_equiv, "bytes");
	figure("bytes_vs_whole_ratio", whole_equiv > 0 ? per_client / whole_equiv : NAN, "ratio");
	figure("behind_peak_bytes", host_metric("oh_sse_behind_peak_bytes"), "bytes");
	figure("parses", (double)sse.parses, "");
	client_free(pub, true);
	for(int k = 0; k < nc; k++) {
		close(cs[k].fd);
		free(cs[k].dev);
		free(cs[k].line);
		free(cs[k].data);
	}
	free(cs);
	free(want);
	for(int i = 0; i < SSE_CACHE; i++)
		sse_parsed_free(&sse.cache[i]);
	close(sse.ep);
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
			"usage: oh-bench latency|throughput|registry|populate|burst|startwait|jobs|schedwatch|\n"
			"       routes|fleet|sse [options]\n"
			"  --port N          broker port (1883)\n"
			"  --http-port N     host HTTP port (8080)\n"
			"  --root R          topic root (/lab)\n"
			"  --mode M          relay (through the host), direct (broker alone), bare\n"
			"                    (a bare relay this tool forks, under --bare-root), or\n"
			"                    both / all (latency: alternate relay and direct / all three,\n"
			"                    trip by trip)\n"
			"  --bare-root R     topic root of the bare relay; no host may listen there (/bare)\n"
			"  --qos Q           0 or 1 (1)\n"
			"  --ack             throughput: the device acks every command\n"
			"  --n N             round trips / commands\n"
			"  --warmup N        latency round trips not counted (200)\n"
			"  --devices N       registry: devices (1000)\n"
			"  --updates N       registry: status updates per device (20)\n"
			"  --from A --to B   populate: device numbers [A, B)\n"
			"  --sweeps N --seq S  populate: N times over them, status seq S to S+N-1 (1, 0)\n"
			"  --conns N         MQTT connections the devices share (8)\n"
			"  --timeout S       give up after S seconds (60)\n"
			"  --name NAME       prefix of the printed figures\n"
			"  --at T --duration S   latency: start at wall time T, stop after S seconds\n"
			"  --db FILE --fire-at T --window S --fire-n K\n"
			"                    jobs: write --n jobs into FILE, K due in [T, T+S)\n"
			"                    schedwatch: wait for K due jobs, print their lateness\n"
			"  --leases N        jobs: write N leases ndi:dev-NNNNNN too\n"
			"  --http-port 0     populate: leave the devices on the broker, do not wait\n"
			"  --devices N --at T  startwait: wait for N devices, seconds since wall time T\n"
			"  --db FILE --n N   routes: write N routes (dev-000000.. -> CAM-1) into FILE\n"
			"  --n N             fleet: N devices dev-000000.. announce idle, then follow commands;\n"
			"                    with --mode announce they show CAM-1 and the tool exits\n"
			"  --rate R --pid P  sse: --conns event streams on host P's --devices devices,\n"
			"                    R status updates/s for --duration s\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if(argc < 2)
		usage();
	const char *cmd = argv[1];
	static const struct option lo[] = {
			{"port", 1, 0, 'p'},
			{"http-port", 1, 0, 'h'},
			{"root", 1, 0, 'r'},
			{"bare-root", 1, 0, 'b'},
			{"mode", 1, 0, 'm'},
			{"qos", 1, 0, 'q'},
			{"ack", 0, 0, 'k'},
			{"n", 1, 0, 'n'},
			{"warmup", 1, 0, 'w'},
			{"devices", 1, 0, 'd'},
			{"updates", 1, 0, 'u'},
			{"from", 1, 0, 'f'},
			{"to", 1, 0, 't'},
			{"conns", 1, 0, 'c'},
			{"timeout", 1, 0, 'T'},
			{"name", 1, 0, 'N'},
			{"device-id", 1, 0, 'D'},
			{"at", 1, 0, 'A'},
			{"duration", 1, 0, 'U'},
			{"db", 1, 0, 'B'},
			{"fire-at", 1, 0, 'F'},
			{"window", 1, 0, 'W'},
			{"fire-n", 1, 0, 'K'},
			{"leases", 1, 0, 'L'},
			{"rate", 1, 0, 'R'},
			{"pid", 1, 0, 'P'},
			{"sweeps", 1, 0, 'S'},
			{"seq", 1, 0, 'Q'},
			{0, 0, 0, 0},
	};
	int ch;
	optind = 2;
	while((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch(ch) {
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 'h':
			opt.http_port = atoi(optarg);
			break;
		case 'r':
			opt.root = optarg;
			break;
		case 'b':
			opt.bare_root = optarg;
			break;
		case 'm':
			opt.mode = optarg;
			break;
		case 'q':
			opt.qos = atoi(optarg);
			break;
		case 'k':
			opt.ack = true;
			break;
		case 'n':
			opt.n = atol(optarg);
			break;
		case 'w':
			opt.warmup = atol(optarg);
			break;
		case 'd':
			opt.devices = atol(optarg);
			break;
		case 'u':
			opt.updates = atol(optarg);
			break;
		case 'f':
			opt.from = atol(optarg);
			break;
		case 't':
			opt.to = atol(optarg);
			break;
		case 'c':
			opt.conns = atoi(optarg);
			break;
		case 'S':
			opt.sweeps = atol(optarg);
			break;
		case 'Q':
			opt.seq0 = atol(optarg);
			break;
		case 'T':
			opt.timeout_s = atof(optarg);
			break;
		case 'N':
			opt.name = optarg;
			break;
		case 'D':
			opt.device_id = optarg;
			break;
		case 'A':
			opt.at = atof(optarg);
			break;
		case 'U':
			opt.duration = atof(optarg);
			break;
		case 'B':
			opt.db = optarg;
			break;
		case 'F':
			opt.fire_at = atof(optarg);
			break;
		case 'W':
			opt.window = atof(optarg);
			break;
		case 'K':
			opt.fire_n = atol(optarg);
			break;
		case 'L':
			opt.leases = atol(optarg);
			break;
		case 'R':
			opt.rate = atol(optarg);
			break;
		case 'P':
			opt.pid = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if(opt.n < 1 || opt.conns < 1 || opt.devices < 1 || opt.qos < 0 || opt.qos > 1)
		usage();
	mosquitto_lib_init();
	if(!strcmp(cmd, "latency"))
		cmd_latency();
	else if(!strcmp(cmd, "throughput"))
		cmd_throughput();
	else if(!strcmp(cmd, "registry"))
		cmd_registry();
	else if(!strcmp(cmd, "populate"))
		cmd_populate();
	else if(!strcmp(cmd, "jobs"))
		cmd_jobs();
	else if(!strcmp(cmd, "burst"))
		cmd_burst();
	else if(!strcmp(cmd, "startwait"))
		cmd_startwait();
	else if(!strcmp(cmd, "schedwatch"))
		cmd_schedwatch();
	else if(!strcmp(cmd, "routes"))
		cmd_routes();
	else if(!strcmp(cmd, "fleet"))
		cmd_fleet();
	else if(!strcmp(cmd, "sse"))
		cmd_sse();
	else if(!strcmp(cmd, "barerelay"))
		cmd_barerelay();
	else
		usage();
	mosquitto_lib_cleanup();
	return 0;
}
