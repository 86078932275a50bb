/*
 * The link's backpressure (mqtt_link.c, "every QoS 1 publish stays in
 * libmosquitto"): while MQTT_LINK_BACKLOG_HIGH publishes wait for their
 * PUBACK, what arrives is held, and handed over in order once the broker
 * has acknowledged enough for MQTT_LINK_BACKLOG_LOW to wait.
 *
 * Also that mqtt_link_flush() writes at once, without a loop turn, and
 * from the callback of a read turn's first message.
 *
 * The broker is played by this file on a loopback socket, speaking just
 * enough MQTT 3.1.1 (CONNACK, PUBACK, QoS 0 PUBLISH), because what is
 * tested is when it acknowledges, which a real broker does at once; and,
 * when it stops acknowledging, that the link hands over what it held.
 */
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_link.h"

/* The broker's side. */
struct fake {
	int listen_fd, fd;
	unsigned char in[1 << 16];
	size_t in_len;
	bool connected;      /* CONNACK sent */
	unsigned short *mid; /* QoS 1 publishes read and not acknowledged, oldest first */
	size_t n_mid, cap_mid;
};

/* The link's owner. */
struct owner {
	int delivered;
	char seen[8][32]; /* payloads of the first messages, in order */
	int acked;        /* on_published calls */
	bool relay;       /* on_message publishes and flushes, as the NDI relay does */
	int broker_fd;    /* ... then looks whether the broker has the relay yet */
	bool relay_out;
};

static void on_message(struct mqtt_link *link, const char *topic, const void *payload, size_t len,
		bool retained, void *ud)
{
	struct owner *o = ud;
	(void)topic;
	(void)retained;
	if(o->delivered < 8)
		snprintf(o->seen[o->delivered], sizeof o->seen[0], "%.*s", (int)len, (const char *)payload);
	o->delivered++;
	if(o->relay) {
		mqtt_link_publish(link, "out", "relay", 5, 1, false);
		mqtt_link_flush(link);
		struct pollfd pf = {o->broker_fd, POLLIN, 0};
		o->relay_out = poll(&pf, 1, 1000) == 1;
	}
}

static void on_published(struct mqtt_link *link, int mid, void *ud)
{
	(void)link;
	(void)mid;
	((struct owner *)ud)->acked++;
}

static void put(struct fake *f, const void *b, size_t n)
{
	const unsigned char *p = b;
	while(n) {
		ssize_t w = send(f->fd, p, n, 0);
		if(w < 0 && errno == EINTR)
			continue;
		if(w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Reads what the link sent and answers CONNECT; remembers each QoS 1
 * PUBLISH's id for ack(). */
static void pump(struct fake *f)
{
	if(f->fd < 0) {
		f->fd = accept(f->listen_fd, NULL, NULL);
		if(f->fd < 0)
			return;
	}
	for(;;) {
		ssize_t r = recv(f->fd, f->in + f->in_len, sizeof f->in - f->in_len, MSG_DONTWAIT);
		if(r <= 0)
			break;
		f->in_len += (size_t)r;
	}
	size_t at = 0;
	while(f->in_len - at >= 2) {
		size_t len = 0, i = 1;
		unsigned shift = 0;
		while(at + i < f->in_len && (f->in[at + i] & 0x80)) {
			len |= (size_t)(f->in[at + i] & 0x7f) << shift;
			shift += 7;
			i++;
		}
		if(at + i >= f->in_len)
			break;
		len |= (size_t)(f->in[at + i] & 0x7f) << shift;
		i++;
		if(at + i + len > f->in_len)
			break;
		const unsigned char *p = f->in + at + i, type = f->in[at];
		if((type & 0xf0) == 0x10) {
			put(f, "\x20\x02\x00\x00", 4);
			f->connected = true;
		} else if((type & 0xf0) == 0x30 && (type & 0x06) == 0x02) {
			size_t tlen = (size_t)p[0] << 8 | p[1];
			if(f->n_mid == f->cap_mid) {
				f->cap_mid = f->cap_mid ? 2 * f->cap_mid : 256;
				f->mid = realloc(f->mid, f->cap_mid * sizeof *f->mid);
			}
			f->mid[f->n_mid++] = (unsigned short)(p[2 + tlen] << 8 | p[3 + tlen]);
		}
		at += i + len;
	}
	memmove(f->in, f->in + at, f->in_len - at);
	f->in_len -= at;
}

/* Acknowledges the oldest n publishes read so far. */
static void ack(struct fake *f, size_t n)
{
	for(size_t i = 0; i < n && i < f->n_mid; i++) {
		unsigned char b[4] = {0x40, 0x02, (unsigned char)(f->mid[i] >> 8), (unsigned char)f->mid[i]};
		put(f, b, sizeof b);
	}
	n = n < f->n_mid ? n : f->n_mid;
	memmove(f->mid, f->mid + n, (f->n_mid - n) * sizeof *f->mid);
	f->n_mid -= n;
}

/* A QoS 0 message from the broker. */
static void deliver(struct fake *f, const char *payload)
{
	unsigned char b[64];
	size_t plen = strlen(payload), n = 0;
	b[n++] = 0x30;
	b[n++] = (unsigned char)(2 + 1 + plen);
	b[n++] = 0;
	b[n++] = 1;
	b[n++] = 't';
	memcpy(b + n, payload, plen);
	put(f, b, n + plen);
}

/* Runs the loop and the broker until cond holds or 5 s pass. */
#define SPIN_UNTIL(cond)                                                                                     \
	do {                                                                                                 \
		struct timespec t0_, t_;                                                                     \
		clock_gettime(CLOCK_MONOTONIC, &t0_);                                                        \
		for(;;) {                                                                                    \
			event_base_loop(base, EVLOOP_NONBLOCK);                                              \
			pump(&f);                                                                            \
			if(cond)                                                                             \
				break;                                                                       \
			clock_gettime(CLOCK_MONOTONIC, &t_);                                                 \
			if(t_.tv_sec - t0_.tv_sec >= 5)                                                      \
				break;                                                                       \
			struct pollfd pf_ = {f.fd >= 0 ? f.fd : f.listen_fd, POLLIN, 0};                     \
			poll(&pf_, 1, 1);                                                                    \
		}                                                                                            \
		CHECK(cond);                                                                                 \
	} while(0)

int main(void)
{
	struct fake f = {.fd = -1};
	struct owner o = {0};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;

	f.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if(f.listen_fd < 0 || bind(f.listen_fd, (struct sockaddr *)&sa, sizeof sa) ||
			listen(f.listen_fd, 1) || getsockname(f.listen_fd, (struct sockaddr *)&sa, &sl)) {
		printf("FAIL cannot listen on loopback: %s\n", strerror(errno));
		return 1;
	}
	struct event_base *base = event_base_new();
	struct mqtt_link_opts opts = {.host = "127.0.0.1",
			.port = ntohs(sa.sin_port),
			.client_id = "test-link",
			.keepalive_s = 60,
			.log_prefix = "test"};
	struct mqtt_link_callbacks cb = {.on_message = on_message, .on_published = on_published};
	struct mqtt_link *link = mqtt_link_new(base, &opts, &cb, &o);
	CHECK(link != NULL);
	if(!link)
		return check_summary();
	mqtt_link_start(link);
	SPIN_UNTIL(f.connected && mqtt_link_connected(link));

	/* mqtt_link_flush() writes a publish made outside any read at once,
	 * without a loop turn: the broker has it before the loop runs again. */
	CHECK_INT_EQ(mqtt_link_publish(link, "out", "now", 3, 1, false), 0);
	mqtt_link_flush(link);
	struct pollfd pf = {f.fd, POLLIN, 0};
	CHECK_INT_EQ(poll(&pf, 1, 2000), 1);
	pump(&f);
	CHECK_INT_EQ(f.n_mid, 1);
	ack(&f, 1);
	SPIN_UNTIL(o.acked == 1);
	o.acked = 0;

	/* A message's relay flushed from its callback is on the wire before the
	 * callback returns (and builds its ack), when it is its read turn's
	 * first. */
	o.relay = true;
	o.broker_fd = f.fd;
	deliver(&f, "cmd");
	SPIN_UNTIL(o.delivered == 1);
	CHECK(o.relay_out);
	o.relay = false;
	SPIN_UNTIL(f.n_mid == 1);
	ack(&f, 1);
	SPIN_UNTIL(o.acked == 1);
	o.acked = 0;
	o.delivered = 0;

	/* Nothing waits: a message goes to the owner as it is read. */
	deliver(&f, "first");
	SPIN_UNTIL(o.delivered == 1);
	CHECK_INT_EQ(mqtt_link_held(link), 0);

	/* A burst of publishes the broker does not acknowledge yet. */
	for(int i = 0; i < MQTT_LINK_BACKLOG_HIGH; i++)
		CHECK_INT_EQ(mqtt_link_publish(link, "out", "x", 1, 1, false), 0);
	SPIN_UNTIL(f.n_mid > 0);
	deliver(&f, "a");
	deliver(&f, "b");
	deliver(&f, "c");
	SPIN_UNTIL(mqtt_link_held(link) == 3);
	CHECK_INT_EQ(o.delivered, 1);

	/* Acknowledged down to above BACKLOG_LOW: still held, and so is what
	 * comes next, behind them. */
	size_t some = MQTT_LINK_BACKLOG_HIGH - MQTT_LINK_BACKLOG_LOW - 1;
	while((size_t)o.acked < some) {
		size_t before = (size_t)o.acked;
		ack(&f, some - before);
		SPIN_UNTIL((size_t)o.acked > before);
	}
	deliver(&f, "d");
	SPIN_UNTIL(mqtt_link_held(link) == 4);
	CHECK_INT_EQ(o.delivered, 1);

	/* One more: BACKLOG_LOW wait, and the held messages follow in order. */
	ack(&f, 1);
	SPIN_UNTIL(o.delivered == 5);
	CHECK_INT_EQ(mqtt_link_held(link), 0);
	CHECK_STR_EQ(o.seen[1], "a");
	CHECK_STR_EQ(o.seen[2], "b");
	CHECK_STR_EQ(o.seen[3], "c");
	CHECK_STR_EQ(o.seen[4], "d");

	/* Below the mark again: read, handed over at once. */
	deliver(&f, "e");
	SPIN_UNTIL(o.delivered == 6);

	/* A broker that stops acknowledging altogether: what is held goes to
	 * the owner after a second without a PUBACK. */
	for(int i = 0; i < MQTT_LINK_BACKLOG_HIGH; i++)
		mqtt_link_publish(link, "out", "x", 1, 1, false);
	deliver(&f, "f");
	SPIN_UNTIL(mqtt_link_held(link) == 1);
	SPIN_UNTIL(o.delivered == 7);
	CHECK_INT_EQ(mqtt_link_held(link), 0);

	mqtt_link_free(link);
	event_base_free(base);
	close(f.fd);
	close(f.listen_fd);
	free(f.mid);
	return check_summary();
}
