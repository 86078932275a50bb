/*
 * The --probe client: one HTTP/1.0 GET over a plain socket, so that the
 * container image needs no curl and the check runs the same code path a
 * load balancer's probe does (/healthz is public even with tokens).
 *
 * Every wait (the name lookup aside, which is numeric in the usual
 * 127.0.0.1 case) is bounded by one deadline, so a host that accepts and
 * then never answers fails the probe instead of hanging it.  Only plain
 * http: a host serving HTTPS directly is probed by curl, or behind its
 * proxy; --probe says so rather than half-speaking TLS.
 */
#include "health_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLY (64 * 1024)

struct target {
	char host[256]; /* without brackets */
	char port[8];
	char hostport[272]; /* for the Host header, as the URL has it */
	const char *path;   /* into the URL */
};

static int parse_url(const char *url, struct target *t)
{
	static const char scheme[] = "http://";
	if(!strncmp(url, "https://", 8)) {
		fprintf(stderr,
				"orchestrator-host: --probe: %s: only http:// is probed; probe a host serving "
				"HTTPS with curl or through its proxy\n",
				url);
		return -1;
	}
	if(strncmp(url, scheme, sizeof scheme - 1)) {
		fprintf(stderr, "orchestrator-host: --probe: %s: expected http://HOST[:PORT]/PATH\n", url);
		return -1;
	}
	const char *p = url + sizeof scheme - 1;
	const char *slash = strchr(p, '/');
	size_t authority = slash ? (size_t)(slash - p) : strlen(p);
	t->path = slash ? slash : "/healthz";
	const char *host = p, *host_end, *colon;
	if(*p == '[') {
		host = p + 1;
		host_end = memchr(p, ']', authority);
		colon = host_end && host_end + 1 < p + authority && host_end[1] == ':' ? host_end + 1 : NULL;
		if(!host_end || (host_end + 1 < p + authority && !colon))
			host_end = NULL;
	} else {
		colon = memchr(p, ':', authority);
		host_end = colon ? colon : p + authority;
	}
	const char *port = colon ? colon + 1 : "80";
	size_t port_len = colon ? (size_t)(p + authority - port) : 2;
	if(!host_end || host_end == host || (size_t)(host_end - host) >= sizeof t->host || !port_len ||
			port_len >= sizeof t->port || strspn(port, "0123456789") < port_len ||
			authority >= sizeof t->hostport) {
		fprintf(stderr, "orchestrator-host: --probe: %s: expected http://HOST[:PORT]/PATH\n", url);
		return -1;
	}
	snprintf(t->host, sizeof t->host, "%.*s", (int)(host_end - host), host);
	snprintf(t->port, sizeof t->port, "%.*s", (int)port_len, port);
	snprintf(t->hostport, sizeof t->hostport, "%.*s", (int)authority, p);
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, double deadline)
{
	for(;;) {
		double left = deadline - now();
		if(left <= 0)
			return 0;
		struct pollfd pfd = {fd, events, 0};
		int n = poll(&pfd, 1, (int)(left * 1000) + 1);
		if(n >= 0 || errno != EINTR)
			return n > 0 ? 1 : n;
	}
}

/* A connected non-blocking socket, or -1 with why in `why`. */
static int connect_to(const struct target *t, double deadline, char *why, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int rc = getaddrinfo(t->host, t->port, &hints, &ai);
	if(rc) {
		snprintf(why, len, "cannot resolve %s: %s", t->host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	snprintf(why, len, "no address for %s", t->host);
	for(struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		if(fd < 0)
			continue;
		int err = connect(fd, a->ai_addr, a->ai_addrlen) ? errno : 0;
		if(err == EINPROGRESS) {
			socklen_t sl = sizeof err;
			int ready = wait_fd(fd, POLLOUT, deadline);
			if(ready <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl))
				err = ready ? errno : ETIMEDOUT;
		}
		if(err) {
			snprintf(why, len, "cannot connect to %s: %s", t->hostport, strerror(err));
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

/* Sends the request and reads the whole reply (HTTP/1.0: until the host
 * closes) into buf; its length, or -1 with why. */
static long exchange(
		int fd, const struct target *t, char *buf, size_t cap, double deadline, char *why, size_t len)
{
	char req[1024];
	int n = snprintf(req, sizeof req,
			"GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: orchestrator-host-probe\r\n"
			"Accept: application/json\r\n\r\n",
			t->path, t->hostport);
	if(n < 0 || (size_t)n >= sizeof req) {
		snprintf(why, len, "path too long");
		return -1;
	}
	for(int sent = 0; sent < n;) {
		if(wait_fd(fd, POLLOUT, deadline) <= 0) {
			snprintf(why, len, "timed out sending the request");
			return -1;
		}
		ssize_t w = send(fd, req + sent, (size_t)(n - sent), MSG_NOSIGNAL);
		if(w < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(why, len, "send: %s", strerror(errno));
			return -1;
		}
		sent += w > 0 ? (int)w : 0;
	}
	size_t got = 0;
	for(;;) {
		int ready = wait_fd(fd, POLLIN, deadline);
		if(ready <= 0) {
			snprintf(why, len, "no complete answer within the timeout");
			return -1;
		}
		ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
		if(r == 0 || got + (size_t)(r > 0 ? r : 0) == cap - 1) {
			got += r > 0 ? (size_t)r : 0;
			break;
		}
		if(r < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(why, len, "recv: %s", strerror(errno));
			return -1;
		}
		got += r > 0 ? (size_t)r : 0;
	}
	buf[got] = '\0';
	return (long)got;
}

int health_probe(const char *url, double timeout_s)
{
	struct target t;
	if(parse_url(url, &t))
		return PROBE_USAGE;
	double deadline = now() + timeout_s;
	char why[512];
	int fd = connect_to(&t, deadline, why, sizeof why);
	char *buf = fd >= 0 ? malloc(MAX_REPLY) : NULL;
	long got = buf ? exchange(fd, &t, buf, MAX_REPLY, deadline, why, sizeof why) : -1;
	if(fd >= 0)
		close(fd);
	if(fd >= 0 && !buf)
		snprintf(why, sizeof why, "out of memory");
	if(got < 0) {
		fprintf(stderr, "unhealthy: %s: %s\n", url, why);
		free(buf);
		return PROBE_UNHEALTHY;
	}
	int status = 0;
	const char *body = strstr(buf, "\r\n\r\n");
	json_t *doc = body ? json_loads(body + 4, 0, NULL) : NULL;
	const char *mqtt = json_string_value(json_object_get(doc, "mqtt"));
	int rc = PROBE_UNHEALTHY;
	if(sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		fprintf(stderr, "unhealthy: %s: not an HTTP answer\n", url);
	else if(!mqtt)
		fprintf(stderr, "unhealthy: %s: HTTP %d without an \"mqtt\" field\n", url, status);
	else if(status != 200 || strcmp(mqtt, "connected"))
		fprintf(stderr, "unhealthy: %s: HTTP %d, mqtt %s\n", url, status, mqtt);
	else {
		printf("healthy: %s: mqtt connected, up %lld s\n", url,
				(long long)json_integer_value(json_object_get(doc, "uptime_s")));
		rc = PROBE_HEALTHY;
	}
	json_decref(doc);
	free(buf);
	return rc;
}
