/*
 * The HTTP listening socket, and who may open a connection.
 *
 * We accept connections ourselves and hand each to libmicrohttpd with
 * MHD_add_connection(), rather than letting it listen:
 * - At its connection limit libmicrohttpd takes the listening socket out of
 *   its epoll set and is meant to put it back when a connection closes.
 *   After a flood of idle connections (2000-3000, held past the timeout)
 *   it sometimes never did: the listen queue filled and HTTP stayed dead
 *   while MQTT went on.  A listening socket that is only ever in our loop
 *   cannot be forgotten that way.
 * - Admission is ours to decide, per client address as well as in all
 *   (limits.max_http_connections, limits.max_http_connections_per_client),
 *   and a client turned away gets a short 503 instead of a silent queue.
 * - A busy port is reported as such, in one line.
 *
 * Connections are counted when libmicrohttpd starts and closes them
 * (http.c's connection notifications call in here), so the counts are
 * always those of live connections.
 */
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "strmap.h"

#define LISTEN_BACKLOG 511
#define ACCEPTS_PER_TURN 64
/* After EMFILE: the pending connection cannot be taken, so stop trying
 * for a moment rather than spin on a readable socket. */
#define PAUSE_AFTER_EMFILE_MS 100

/* The client's address as a map key ("127.0.0.1", "::1"). */
static void addr_key(const struct sockaddr *sa, char *out, size_t len)
{
	if(sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
	else if(sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
	else
		snprintf(out, len, "?");
}

static size_t count_of(const struct http_server *s, const char *key)
{
	return (size_t)(uintptr_t)strmap_get(s->per_client, key);
}

void http__conn_started(struct http_server *s, const struct sockaddr *client)
{
	char key[INET6_ADDRSTRLEN];
	addr_key(client, key, sizeof key);
	int err = 0;
	strmap_put(s->per_client, key, (void *)(uintptr_t)(count_of(s, key) + 1), &err);
	s->n_conns++;
}

void http__conn_closed(struct http_server *s, const struct sockaddr *client)
{
	char key[INET6_ADDRSTRLEN];
	addr_key(client, key, sizeof key);
	size_t n = count_of(s, key);
	int err = 0;
	if(n <= 1)
		strmap_remove(s->per_client, key);
	else
		strmap_put(s->per_client, key, (void *)(uintptr_t)(n - 1), &err);
	if(s->n_conns)
		s->n_conns--;
}

/* A fixed answer for a client we will not serve, written once without
 * waiting: the socket is new, so its buffer has room. */
static void turn_away(struct http_server *s, int fd, const char *limit, long value)
{
	char body[200], msg[400];
	int bl = snprintf(body, sizeof body,
			"{\"error\":{\"code\":\"LIMIT\",\"message\":"
			"\"limits.%s (%ld) reached: try again later\"}}",
			limit, value);
	int n = snprintf(msg, sizeof msg,
			"HTTP/1.1 503 Service Unavailable\r\n"
			"Content-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
			"Connection: close\r\n\r\n%s",
			bl, body);
	if(!s->host->cfg.http.tls.enabled && send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		(void)0; /* nothing more to do for it */
	close(fd);
	metrics_limit_refusal(limit);
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;
	event_add(s->ev_listen, NULL);
}

static void on_listen(evutil_socket_t lfd, short what, void *arg)
{
	struct http_server *s = arg;
	const struct config *c = &s->host->cfg;
	for(int i = 0; i < ACCEPTS_PER_TURN; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if(fd < 0) {
			if(errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warn("http", "cannot accept a connection: %s; pausing", strerror(errno));
				event_del(s->ev_listen);
				struct timeval tv = {0, PAUSE_AFTER_EMFILE_MS * 1000};
				evtimer_add(s->ev_pause, &tv);
			}
			break; /* EAGAIN: all taken; others: the client left already */
		}
		char key[INET6_ADDRSTRLEN];
		addr_key((struct sockaddr *)&ss, key, sizeof key);
		if(s->n_conns >= (size_t)c->limits.max_http_connections) {
			turn_away(s, fd, "max_http_connections", c->limits.max_http_connections);
			continue;
		}
		if(count_of(s, key) >= (size_t)c->limits.max_http_connections_per_client) {
			turn_away(s, fd, "max_http_connections_per_client",
					c->limits.max_http_connections_per_client);
			continue;
		}
		/* On failure libmicrohttpd has closed the socket. */
		if(MHD_add_connection(s->mhd, fd, (struct sockaddr *)&ss, sl) != MHD_YES)
			log_debug("http", "libmicrohttpd refused a connection from %s", key);
	}
	http__kick(s);
}

int http__listen_open(struct http_server *s, const struct sockaddr *sa, socklen_t sl, const char *where)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if(fd < 0) {
		log_error("http", "cannot listen on %s: %s", where, strerror(errno));
		return OH_ERR_IO;
	}
	int one = 1;
	/* A port left in TIME_WAIT by our last run is free; an IPv6 address
	 * does not take the IPv4 port as well.  Never SO_REUSEPORT: with it a
	 * second host starts silently on a busy port and the kernel splits the
	 * requests between the two. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if(sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if(bind(fd, sa, sl) || listen(fd, LISTEN_BACKLOG)) {
		int e = errno;
		close(fd);
		log_error("http", "cannot listen on %s: %s%s", where,
				e == EADDRINUSE ? "address already in use" : strerror(e),
				e == EADDRINUSE ? " (is another orchestrator-host running?)"
						: e == EADDRNOTAVAIL
						? " (http.bind is not an address of this machine)"
						: e == EACCES ? " (ports below 1024 need privileges)"
							      : "");
		return OH_ERR_IO;
	}
	struct sockaddr_storage bound;
	socklen_t bl = sizeof bound;
	s->port = 0;
	if(!getsockname(fd, (struct sockaddr *)&bound, &bl))
		s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
							    : ((struct sockaddr_in *)&bound)->sin_port);
	s->listen_fd = fd;
	s->per_client = strmap_new();
	s->ev_listen = event_new(s->host->base, fd, EV_READ | EV_PERSIST, on_listen, s);
	s->ev_pause = evtimer_new(s->host->base, resume_accepting, s);
	if(!s->per_client || !s->ev_listen || !s->ev_pause) {
		log_error("http", "out of memory");
		return OH_ERR_NOMEM;
	}
	event_add(s->ev_listen, NULL);
	return OH_OK;
}

void http__listen_close(struct http_server *s)
{
	if(s->ev_listen)
		event_free(s->ev_listen);
	if(s->ev_pause)
		event_free(s->ev_pause);
	if(s->listen_fd >= 0)
		close(s->listen_fd);
	strmap_free(s->per_client, NULL);
	s->ev_listen = s->ev_pause = NULL;
	s->listen_fd = -1;
	s->per_client = NULL;
}

size_t http_server_connections(const struct http_server *s)
{
	return s->n_conns;
}
