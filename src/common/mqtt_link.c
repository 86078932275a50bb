/*
 * libmosquitto on a libevent loop.
 *
 * The pitfalls this file exists to get right:
 * - the link is "threaded" (mosquitto_threaded_set): every packet, a
 *   PUBACK made while reading as much as a publish, is only queued, so
 *   after every read we write what is queued, and a publish outside a read
 *   arms the write event; a turn's packets leave together, corked when
 *   there are several (write_queued);
 * - queueing a packet also writes a wake-up byte to libmosquitto's own
 *   socketpair, a system call that fails with EAGAIN since nothing drains
 *   it: the client is created without one (new_client).  Should that
 *   fail, the EAGAIN it leaves in errno would end the read loop after
 *   every packet, so the message callback clears it (the PUBACK queued
 *   just before), and reading goes on after a PUBACK whose freed send
 *   window queued the next publish (ack_last);
 * - a read turn's first message, when nothing more has arrived behind it
 *   (FIONREAD) and few publishes wait for the broker, is handed to the owner after mosquitto_loop_read() returns
 *   (the message callback keeps a copy and ends the read), so that mqtt_link_flush() can write its PUBACK and the
 *   relay made for it before the ack is built and before the next read:
 *   inside the callback libmosquitto holds its callback mutex, and a write
 *   that fails, or that sends a QoS 0 publish, takes it again and never
 *   returns.  Later messages of the turn are handed over in the callback,
 *   and leave together at the end of the turn;
 * - mosquitto_loop_write() makes max_packets passes however little is
 *   queued: it is called with WRITE_PASSES;
 * - with a log callback set, libmosquitto formats a line per packet: a
 *   plain link drops it once connected unless debug logging is on;
 * - mosquitto_loop_read() ignores its max_packets: it reads as many packets
 *   as it has QoS 1 messages queued, thousands once the send window is
 *   full, writing none of what it queues meanwhile (measured: relay
 *   throughput fell to ~100 commands/s, the device saw nothing for
 *   seconds).  It stops at the first packet after which errno is EAGAIN,
 *   so the callbacks set that once a turn has handled MAX_PACKETS_PER_WAKE
 *   (count_packet); the socket stays readable and the next turn goes on;
 * - on a read or write error the library has already closed the socket, so
 *   the events are dropped and a reconnect is scheduled from a timer;
 * - events are re-created on every connect, because the new socket may reuse
 *   the old descriptor number;
 * - loop_misc runs from a one-second timer, well inside any keepalive;
 * - TLS: mosquitto_loop_write() holds every write back while the handshake
 *   is pending, and only mosquitto_loop_read() steps SSL_connect().  When
 *   the TCP connect itself is still in progress (any broker that is not on
 *   loopback) the first ClientHello cannot be sent, so nothing would ever
 *   become readable: until the broker has answered, writability also runs
 *   mosquitto_loop_read();
 * - a broker that never answers (or closes the socket mid-handshake) is cut
 *   off after CONNECT_TIMEOUT_S, so the link always gets back to retrying;
 * - a failure is logged when it starts, when its reason changes and every
 *   REPORT_EVERY attempts after that, not on every retry;
 * - a client id used by someone else looks like an unreliable network: the
 *   broker accepts us, then drops us without a word as soon as the other
 *   client connects again (MQTT lets the newest session take the id over),
 *   and each side reconnects and throws the other out.  TAKEOVER_DROPS
 *   connections in a row that each end within SHORT_CONNECTION_S of their
 *   CONNACK are reported once, naming the client id; a connection that
 *   lasts, or an attempt that fails, ends the streak;
 * - MQTT 5 first (opts.mqtt5), 3.1.1 when the broker refuses it: a CONNACK
 *   "unsupported protocol version" (libmosquitto reports a 3.1.1 broker's
 *   refusal as that too), or the broker closing the connection before any
 *   CONNACK (RabbitMQ 3.10).  The 3.1.1 attempt follows at once and is not
 *   a failure.  A close that has nothing to do with the version looks the
 *   same (a TLS 1.3 broker refusing our certificate after the handshake),
 *   so a close only makes 3.1.1 tentative: until a 3.1.1 CONNACK confirms
 *   it, a 3.1.1 attempt closed the same way sends the next one back to v5.
 *   Once confirmed, 3.1.1 is kept for this run, except that a reconnect
 *   V5_RETRY_S after the fallback tries v5 again (a broker upgraded in
 *   place); the version is logged when it changes, not on every connect;
 *   with opts.mqtt5_only there is no fallback, and the reason a refusal
 *   leaves (the log, /healthz) says the broker would not speak v5;
 * - protocol options are per attempt: MOSQ_OPT_PROTOCOL_VERSION is set
 *   before each connect, and so is MOSQ_OPT_SEND_MAXIMUM, because a v5
 *   CONNACK replaces our window with the broker's Receive Maximum
 *   (mosquitto's max_inflight_messages, 20 unless configured);
 * - on v5 every subscription asks for "retain as published" (see the
 *   header), whoever calls mqtt_link_subscribe();
 * - on v5 the broker may end a connection with a DISCONNECT packet (session
 *   taken over, ...): libmosquitto closes the socket and the read still
 *   succeeds, so a read that leaves no socket is a lost connection, and the
 *   broker's reason is kept from the disconnect callback;
 * - a message expiry interval (mqtt_link_publish_expiring) is a property
 *   list that libmosquitto copies into each QoS 1 message it keeps: the
 *   link builds one list per interval and reuses it, so a publish costs
 *   that copy and no more, and a 3.1.1 connection gets plain publishes
 *   (libmosquitto would drop the list, but only after copying it);
 * - every QoS 1 publish stays in libmosquitto (its copy of topic and
 *   payload, 300-600 bytes) until the broker's PUBACK, and PUBACKs arrive
 *   on the socket the messages to us arrive on, behind them.  mosquitto
 *   reads one packet per client per wake-up, so during a burst of commands
 *   it takes our publishes at a fraction of the rate it hands us commands
 *   (measured: 19,000 commands/s in, 3,000 publishes/s out), and a
 *   50,000-command burst left 85,000 publishes queued here.  Reading less
 *   does not help: the PUBACKs wait behind the commands, and mosquitto
 *   2.0.11 goes on filling the socket past our Receive Maximum.  So while
 *   BACKLOG_HIGH or more publishes wait, each message read is held, in
 *   order, as one small copy, and handed to the owner from the loop once
 *   the backlog is down to BACKLOG_LOW (hold, on_drain): a held command
 *   costs its bytes, not the 700 of its relay and its ack.  The count is
 *   reset at each CONNACK, since libmosquitto drops unsent QoS 0 packets
 *   on a reconnect without reporting them, and a whole on_misc tick
 *   without a PUBACK while messages are held hands them over anyway: a
 *   count that is off, or a broker that stopped acknowledging, must not
 *   stop the host from handling what arrives.
 */
#include "mqtt_link.h"

#include "log.h"
#include "oh/defs.h"

#include <errno.h>
#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
/* Packets handled per readiness event before yielding to the loop. */
#define MAX_PACKETS_PER_WAKE 256
/* mosquitto_loop_write()'s max_packets: one call of its packet writer
 * empties the whole queue (or stops at EAGAIN), and 2.0.11 calls it
 * max_packets times regardless, each an empty pass taking four mutexes;
 * 256 passes were 28% of the host's instructions per relayed command. */
#define WRITE_PASSES 1
/* At most this many publishes wait for the broker when a command is
 * handled as a lone one (alone): its relay and ack, and the last one's. */
#define ALONE_UNACKED 4
/* How long mqtt_link_stop() waits for the broker to acknowledge what was
 * published before it disconnects. */
#define STOP_ACK_WAIT_MS 1000
/* From socket creation to CONNACK (TCP connect, TLS handshake, auth). */
#define CONNECT_TIMEOUT_S 15
/* An unchanged failure is logged again every this many attempts. */
#define REPORT_EVERY 10
/* A client id taken over: this many connections in a row, each dropped
 * within this many seconds of its CONNACK. */
#define TAKEOVER_DROPS 3
#define SHORT_CONNECTION_S 5
/* After falling back to 3.1.1, a reconnect this much later tries v5 again. */
#define V5_RETRY_S 3600
/* The in-flight window asked for (see mqtt_link_new). */
#define SEND_MAXIMUM 100
/* Messages read are held while this many publishes wait for the broker,
 * and handed over again once BACKLOG_LOW do (see the top): several windows,
 * so the window stays full. */
#define BACKLOG_HIGH MQTT_LINK_BACKLOG_HIGH
#define BACKLOG_LOW MQTT_LINK_BACKLOG_LOW

/* The protocol levels of CONNECT. */
enum mqtt_link_version {
	MQTT_LINK_V311 = 4,
	MQTT_LINK_V5 = 5,
};

/* A message read while the backlog was high (see the top). */
struct held {
	struct held *next;
	const char *topic; /* in data, after the payload */
	size_t len;
	bool retained;
	char data[]; /* the payload, then the topic and its NUL */
};

struct mqtt_link {
	struct event_base *base;
	struct mosquitto *mosq;
	struct mqtt_link_callbacks cb;
	void *ud;

	char *host; /* the broker tried now */
	int port;
	char **hosts; /* opts.hosts, copied; host and port come from hosts[next_host - 1] */
	size_t n_hosts, next_host;
	int keepalive_s;
	char *log_prefix;
	char *client_id; /* NULL: libmosquitto made one up */

	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_misc;  /* keepalive housekeeping, 1 s */
	struct event *ev_retry; /* reconnect after backoff */
	struct event *ev_drain; /* hands held messages over, from the loop */
	struct held *held;      /* owned: read while the backlog was high, oldest first */
	struct held *first;     /* owned: a read turn's first message, to hand over after the read */
	struct held **held_tail;
	size_t n_held;
	unsigned long acks;         /* on_mosq_publish calls */
	unsigned long acks_at_tick; /* acks at the last on_misc */
	bool stalled;               /* held, and no PUBACK for a tick: hand over anyway */
	struct evdns_base *dns;     /* created on the first name to resolve */
	struct evdns_getaddrinfo_request *dns_req;
	bool resolving;    /* a lookup has not called back yet */
	bool host_numeric; /* an IP address: nothing to resolve */

	bool started;
	bool stopping;
	bool connected;  /* CONNACK accepted */
	bool attempted;  /* a connect call has been made once */
	bool in_read;    /* in a read turn or on_drain, which write what was queued at the end */
	bool in_lib;     /* in mosquitto_loop_read(), its callback mutex held */
	bool turn_first; /* no message handed over yet in this read turn */
	bool flush_now;  /* handing the turn's first message over: mqtt_link_flush() writes */
	int flush_rc;    /* a write of mqtt_link_flush() failed in a read turn, and its errno */
	int flush_errno;
	int turn_packets; /* messages and acks handled in this read turn */
	int queued;       /* packets queued since the last write (to cork or not) */
	bool ack_last;    /* the last packet read was a PUBACK */
	bool wake_pair;   /* libmosquitto has its wake-up socketpair (new_client) */
	bool refused;     /* the broker said no; keep its reason */
	bool tls;
	bool want_v5;                          /* opts.mqtt5 */
	bool v5_only;                          /* opts.mqtt5_only */
	enum mqtt_link_version version;        /* of the current or next attempt */
	bool v311_tentative;                   /* on 3.1.1 after a close, not a refusal */
	bool got_connack;                      /* this attempt had an answer, yes or no */
	bool v5_refused;                       /* ... and it was "unsupported protocol version" */
	bool broker_closed;                    /* this attempt ended by the broker closing it */
	bool retry_now;                        /* the next attempt is the fallback's, not a reconnect */
	enum mqtt_link_version logged_version; /* 0: none logged yet */
	struct timespec v311_since;            /* when the fallback happened */
	char broker_reason[128];               /* a v5 DISCONNECT's reason, for the log */
	int backoff_ms;
	unsigned long reconnects;
	unsigned long unacked;        /* publishes not yet sent (QoS 0) or acked (QoS 1+) */
	unsigned long failures;       /* failed attempts since the last success */
	struct timespec attempt_at;   /* when the current socket was opened */
	struct timespec connected_at; /* when CONNACK accepted the current one */
	unsigned short_drops;         /* connections in a row lost soon after CONNACK */
	bool takeover_reported;       /* said so for this streak */
	char last_error[256];
	char reported[256];               /* the failure last logged at warn level */
	char lib_error[200];              /* libmosquitto's first error line of this attempt */
	mosquitto_property *expiry_props; /* owned: the interval below, reused */
	unsigned expiry_props_s;
};

static void link_schedule_retry(struct mqtt_link *link);
static void link_arm_socket(struct mqtt_link *link);
static void drain_soon(struct mqtt_link *link);
static void on_mosq_log(struct mosquitto *mosq, void *ud, int level, const char *text);

static void set_error(struct mqtt_link *link, const char *text)
{
	snprintf(link->last_error, sizeof link->last_error, "%s", text);
}

static void drop_socket_events(struct mqtt_link *link)
{
	if(link->ev_read) {
		event_free(link->ev_read);
		link->ev_read = NULL;
	}
	if(link->ev_write) {
		event_free(link->ev_write);
		link->ev_write = NULL;
	}
}

/* A failed attempt: warn when the reason is new and every REPORT_EVERY
 * attempts, so a broker that keeps saying no is neither silent nor spam. */
static void report_failure(struct mqtt_link *link)
{
	link->failures++;
	link->short_drops = 0; /* the broker itself is in trouble, not the id */
	if(strcmp(link->reported, link->last_error) || link->failures % REPORT_EVERY == 0) {
		log_warn(link->log_prefix, "cannot connect to %s:%d: %s; retrying (attempt %lu)", link->host,
				link->port, link->last_error, link->failures);
		snprintf(link->reported, sizeof link->reported, "%s", link->last_error);
	} else {
		log_debug(link->log_prefix, "cannot connect to %s:%d: %s; retrying (attempt %lu)", link->host,
				link->port, link->last_error, link->failures);
	}
}

/* Why a loop call failed, in words: for TLS, what OpenSSL said (libmosquitto
 * only returns "A TLS error occurred"). */
static const char *rc_text(struct mqtt_link *link, int rc, char *buf, size_t len)
{
	int err = errno;
	/* Whatever the call returned, what OpenSSL said is the reason. */
	if(link->tls && !link->connected && link->lib_error[0])
		rc = MOSQ_ERR_TLS;
	/* Cut off after a TLS handshake that looked fine from our side: with
	 * TLS 1.3 the broker checks our certificate only after that, and says
	 * nothing libmosquitto reports. */
	if(link->tls && !link->connected && !link->lib_error[0] &&
			(rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_PROTOCOL ||
					(rc == MOSQ_ERR_ERRNO && (err == EPROTO || err == ECONNRESET)))) {
		snprintf(buf, len,
				"TLS: the broker closed the connection before accepting it (%s);"
				" does it require a client certificate (mqtt.tls.cert_file, key_file)?",
				rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc));
		return buf;
	}
	if(rc == MOSQ_ERR_ERRNO)
		return strerror(err);
	if(rc != MOSQ_ERR_TLS)
		return mosquitto_strerror(rc);
	const char *what = link->lib_error[0] ? link->lib_error : "handshake failed";
	snprintf(buf, len, "TLS: %s%s", what,
			strstr(what, "verify failed")
					? " (is mqtt.tls.ca_file the CA that signed the broker's certificate?)"
					: "");
	return buf;
}

/* A connection just ended: if it was a short one, and the last few were
 * too, someone else is most likely connecting with our client id. */
static void count_short_drop(struct mqtt_link *link)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if(now.tv_sec - link->connected_at.tv_sec >= SHORT_CONNECTION_S) {
		link->short_drops = 0;
		link->takeover_reported = false;
		return;
	}
	if(++link->short_drops < TAKEOVER_DROPS || link->takeover_reported)
		return;
	link->takeover_reported = true;
	if(link->client_id)
		log_warn(link->log_prefix,
				"the broker keeps dropping us right after connecting: another"
				" client is probably using the client id \"%s\"",
				link->client_id);
	else
		log_warn(link->log_prefix, "the broker keeps dropping us right after connecting");
}

/*
 * An attempt ended before the broker accepted it: whether the next attempt
 * speaks the other version (see the top).  True when it should follow at
 * once, as the fallback to 3.1.1.
 */
static bool version_fallback(struct mqtt_link *link)
{
	if(!link->want_v5)
		return false;
	bool closed = link->broker_closed && !link->got_connack;
	if(link->v5_only) {
		if(link->v5_refused || closed) {
			char why[sizeof link->last_error];
			snprintf(why, sizeof why,
					"%.180s (mqtt.protocol is \"5\": the broker does not speak MQTT 5?)",
					link->last_error);
			set_error(link, why);
		}
		return false;
	}
	if(link->version == MQTT_LINK_V5 && (link->v5_refused || closed)) {
		link->version = MQTT_LINK_V311;
		link->v311_tentative = !link->v5_refused;
		clock_gettime(CLOCK_MONOTONIC, &link->v311_since);
		log_debug(link->log_prefix, "%s:%d %s; trying MQTT 3.1.1", link->host, link->port,
				link->v5_refused ? "refused MQTT 5"
						 : "closed the connection before answering an MQTT 5 CONNECT");
		return true;
	}
	if(link->version == MQTT_LINK_V311 && link->v311_tentative && closed) {
		/* 3.1.1 fared no better: the close was not about the version. */
		link->version = MQTT_LINK_V5;
		link->v311_tentative = false;
	}
	return false;
}

/* The connection is gone (or never came): tell the owner once, retry later. */
static void link_lost(struct mqtt_link *link, const char *reason)
{
	bool was_connected = link->connected;
	drop_socket_events(link);
	link->connected = false;
	if(reason && *reason && !link->refused)
		set_error(link, reason);
	if(!was_connected && !link->stopping && version_fallback(link)) {
		/* Not a failure: the same broker, at once, in 3.1.1. */
		struct timeval now = {0, 0};
		link->retry_now = true;
		event_add(link->ev_retry, &now);
		return;
	}
	if(!was_connected && !link->stopping)
		report_failure(link);
	if(was_connected) {
		log_warn(link->log_prefix, "connection to %s:%d lost: %s", link->host, link->port,
				link->last_error);
		if(!link->stopping)
			count_short_drop(link);
		if(link->cb.on_disconnect)
			link->cb.on_disconnect(link, link->last_error, link->ud);
	}
	if(!link->stopping)
		link_schedule_retry(link);
}

static void set_cork(int fd, bool on)
{
	int v = on ? 1 : 0;
	setsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, sizeof v);
}

/* Writes what libmosquitto queued.  Several packets leave corked, as a few
 * TCP segments, so the broker wakes once for them; one alone is not worth
 * the two setsockopt calls. */
static int write_queued(struct mqtt_link *link, int fd)
{
	bool cork = link->queued > 1;
	link->queued = 0;
	if(cork)
		set_cork(fd, true);
	int rc = mosquitto_loop_write(link->mosq, WRITE_PASSES);
	if(cork && rc == MOSQ_ERR_SUCCESS)
		set_cork(fd, false);
	return rc;
}

static void flush_writes(struct mqtt_link *link)
{
	/* While reading, the read handler writes out afterwards itself; arming
	 * the write event here would cost two epoll_ctl calls per message. */
	if(link->in_read || !link->ev_write || !mosquitto_want_write(link->mosq))
		return;
	event_add(link->ev_write, NULL);
}

/* A loop call failed: note whether the broker hung up on us (for the
 * version fallback), then give the connection up. */
static void io_failed(struct mqtt_link *link, int rc)
{
	int err = errno;
	char buf[256];
	/* When OpenSSL said something, the failure is our side's TLS. */
	link->broker_closed = !link->lib_error[0] &&
			(rc == MOSQ_ERR_CONN_LOST ||
					(rc == MOSQ_ERR_ERRNO && (err == ECONNRESET || err == EPIPE)));
	errno = err;
	/* A v5 DISCONNECT said why; libmosquitto then reports only the loss. */
	link_lost(link, link->broker_reason[0] ? link->broker_reason : rc_text(link, rc, buf, sizeof buf));
}

/* The read turn's first message to the owner, outside libmosquitto's
 * callback, so that mqtt_link_flush() may write (see the top). */
static void hand_over_first(struct mqtt_link *link)
{
	struct held *h = link->first;
	link->first = NULL;
	link->flush_now = true;
	if(!link->stopping)
		link->cb.on_message(link, h->topic, h->data, h->len, h->retained, link->ud);
	link->flush_now = false;
	free(h);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct mqtt_link *link = arg;
	if(link->tls && !link->connected) {
		/* libmosquitto treats EOF during the handshake as "try again", which
		 * would spin on a socket that stays readable forever. */
		char c;
		if(recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
			io_failed(link, link->lib_error[0] ? MOSQ_ERR_TLS : MOSQ_ERR_CONN_LOST);
			return;
		}
	}
	/* Nothing is written while reading (the link is "threaded", see
	 * mqtt_link_new): the PUBACKs of the QoS 1 messages read, then the
	 * relays and acks their callbacks made, leave together afterwards. */
	link->in_read = true;
	link->turn_packets = 0;
	link->turn_first = true;
	int rc;
	bool again;
	do {
		/* With the wake-up socketpair, a PUBACK that freed room in the
		 * send window queued the next publish, whose wake-up byte ended
		 * the read: go on reading. */
		link->ack_last = false;
		link->in_lib = true;
		rc = mosquitto_loop_read(link->mosq, MAX_PACKETS_PER_WAKE);
		link->in_lib = false;
		again = link->wake_pair && link->ack_last;
		if(link->first) {
			/* Read, and its PUBACK queued, whatever rc says. */
			hand_over_first(link);
			if(link->flush_rc) {
				link->in_read = false;
				errno = link->flush_errno;
				rc = link->flush_rc;
				link->flush_rc = 0;
				io_failed(link, rc);
				return;
			}
			again = true;
		}
	} while(rc == MOSQ_ERR_SUCCESS && again && link->turn_packets < MAX_PACKETS_PER_WAKE &&
			mosquitto_socket(link->mosq) >= 0);
	link->in_read = false;
	if(rc != MOSQ_ERR_SUCCESS) {
		io_failed(link, rc);
		return;
	}
	if(mosquitto_socket(link->mosq) < 0) {
		/* A v5 DISCONNECT from the broker (see the top). */
		link_lost(link,
				link->broker_reason[0] ? link->broker_reason
						       : "the broker closed the connection");
		return;
	}
	/* Publishes made from message callbacks were only queued. */
	if(mosquitto_want_write(link->mosq)) {
		rc = write_queued(link, fd);
		if(rc != MOSQ_ERR_SUCCESS) {
			io_failed(link, rc);
			return;
		}
	}
	flush_writes(link);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct mqtt_link *link = arg;
	int rc;
	/* Steps a pending TLS handshake (see the top of the file); a no-op read
	 * otherwise, since nothing is buffered before CONNACK. */
	if(link->tls && !link->connected) {
		rc = mosquitto_loop_read(link->mosq, 1);
		if(rc != MOSQ_ERR_SUCCESS) {
			io_failed(link, rc);
			return;
		}
	}
	rc = write_queued(link, (int)fd);
	if(rc != MOSQ_ERR_SUCCESS) {
		io_failed(link, rc);
		return;
	}
	flush_writes(link);
}

static void on_misc(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mqtt_link *link = arg;
	if(!link->ev_read)
		return;
	if(!link->connected) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if(now.tv_sec - link->attempt_at.tv_sec >= CONNECT_TIMEOUT_S) {
			char why[96];
			snprintf(why, sizeof why, "no answer from the broker within %d s%s",
					CONNECT_TIMEOUT_S, link->tls ? " (TLS handshake or CONNACK)" : "");
			link_lost(link, why);
			return;
		}
	}
	int rc = mosquitto_loop_misc(link->mosq);
	if(rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
		link_lost(link, "keepalive timeout");
		return;
	}
	/* See the top: held through a whole tick without one PUBACK. */
	if(link->held && link->connected && link->acks == link->acks_at_tick && !link->stalled) {
		log_debug(link->log_prefix,
				"no PUBACK for a second, %lu publishes counted: handing over %zu held",
				link->unacked, link->n_held);
		link->stalled = true;
		event_active(link->ev_drain, EV_TIMEOUT, 1);
	}
	link->acks_at_tick = link->acks;
	flush_writes(link);
}

static void link_arm_socket(struct mqtt_link *link)
{
	drop_socket_events(link);
	int fd = mosquitto_socket(link->mosq);
	if(fd < 0) {
		link_lost(link, "no socket");
		return;
	}
	link->ev_read = event_new(link->base, fd, EV_READ | EV_PERSIST, on_readable, link);
	link->ev_write = event_new(link->base, fd, EV_WRITE, on_writable, link);
	event_add(link->ev_read, NULL);
	/* A non-blocking connect completes when the socket turns writable. */
	event_add(link->ev_write, NULL);
}

static void connect_to(struct mqtt_link *link, const char *target)
{
	int rc = mosquitto_connect_async(link->mosq, target, link->port, link->keepalive_s);
	if(rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_CONN_PENDING) {
		char buf[256];
		set_error(link, rc_text(link, rc, buf, sizeof buf));
		report_failure(link);
		link_schedule_retry(link);
		return;
	}
	link_arm_socket(link);
}

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	struct mqtt_link *link = arg;
	link->dns_req = NULL;
	link->resolving = false;
	if(err == EVUTIL_EAI_CANCEL)
		return;
	if(err) {
		size_t n = strlen(link->host);
		if(n > 6 && !strcasecmp(link->host + n - 6, ".local")) {
			/* mDNS names are the system resolver's business (nss-mdns),
			 * which libevent's resolver cannot do: let libmosquitto look
			 * it up, on the loop. */
			connect_to(link, link->host);
			return;
		}
		char why[256];
		snprintf(why, sizeof why, "cannot resolve %s: %s", link->host, evutil_gai_strerror(err));
		set_error(link, why);
		report_failure(link);
		link_schedule_retry(link);
		return;
	}
	/* IPv4 first: a broker on loopback usually listens on 127.0.0.1 only. */
	struct evutil_addrinfo *pick = res;
	for(struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next) {
		if(ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
	}
	char addr[INET6_ADDRSTRLEN] = "";
	const void *in = pick->ai_family == AF_INET
			? (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr
			: (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
	evutil_inet_ntop(pick->ai_family, in, addr, sizeof addr);
	evutil_freeaddrinfo(res);
	/* TLS checks the broker's certificate against the name, so it keeps
	 * it; the lookup libmosquitto then makes is answered at once, since
	 * the name just resolved. */
	connect_to(link, link->tls ? link->host : addr);
}

/*
 * One connection attempt.  A host name is resolved with libevent's
 * asynchronous resolver first: libmosquitto would call getaddrinfo() on the
 * loop, and a slow or absent DNS server would then freeze HTTP and
 * everything else for seconds at every retry.
 */
static void try_connect(struct mqtt_link *link)
{
	/* A new attempt: its reason replaces the last one, whatever it was. */
	link->refused = false;
	link->lib_error[0] = '\0';
	link->broker_reason[0] = '\0';
	link->got_connack = link->v5_refused = link->broker_closed = false;
	clock_gettime(CLOCK_MONOTONIC, &link->attempt_at);
	if(link->want_v5 && link->version == MQTT_LINK_V311 && !link->v311_tentative &&
			link->attempt_at.tv_sec - link->v311_since.tv_sec >= V5_RETRY_S)
		link->version = MQTT_LINK_V5;
	mosquitto_int_option(link->mosq, MOSQ_OPT_PROTOCOL_VERSION,
			link->version == MQTT_LINK_V5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	mosquitto_int_option(link->mosq, MOSQ_OPT_SEND_MAXIMUM, SEND_MAXIMUM);
	mosquitto_log_callback_set(link->mosq, on_mosq_log);
	/* The fallback's attempt continues the one before; it is no reconnect. */
	if(link->attempted && !link->retry_now)
		link->reconnects++;
	link->attempted = true;
	link->retry_now = false;
	if(link->host_numeric) {
		connect_to(link, link->host);
		return;
	}
	if(!link->dns)
		link->dns = evdns_base_new(link->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if(!link->dns) {
		connect_to(link, link->host);
		return;
	}
	struct evutil_addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* The callback may run before this returns (a hosts-file entry). */
	link->resolving = true;
	struct evdns_getaddrinfo_request *req =
			evdns_getaddrinfo(link->dns, link->host, NULL, &hints, on_resolved, link);
	if(link->resolving)
		link->dns_req = req;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	try_connect(arg);
}

/* Makes host and port the next of opts.hosts (checked by the config:
 * "name:port" or "[v6]:port"). */
static void use_next_host(struct mqtt_link *link)
{
	if(!link->n_hosts)
		return;
	const char *e = link->hosts[link->next_host++ % link->n_hosts];
	const char *colon = strrchr(e, ':');
	const char *start = e[0] == '[' ? e + 1 : e;
	size_t len = (size_t)(colon - start) - (e[0] == '[' ? 1 : 0);
	char *host = strndup(start, len);
	if(!host)
		return;
	free(link->host);
	link->host = host;
	link->port = atoi(colon + 1);
	unsigned char ip[16];
	link->host_numeric = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
}

static void link_schedule_retry(struct mqtt_link *link)
{
	/* A cluster behind several addresses: the next one on the next try. */
	if(link->n_hosts > 1)
		use_next_host(link);
	/* Full jitter around the current step, so a fleet does not reconnect
	 * in lockstep after a broker restart. */
	int delay = link->backoff_ms / 2 + rand() % (link->backoff_ms / 2 + 1);
	link->backoff_ms *= 2;
	if(link->backoff_ms > BACKOFF_MAX_MS)
		link->backoff_ms = BACKOFF_MAX_MS;
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	event_add(link->ev_retry, &tv);
}

static void on_mosq_connect(struct mosquitto *mosq, void *ud, int rc)
{
	(void)mosq;
	struct mqtt_link *link = ud;
	link->got_connack = true;
	if(link->version == MQTT_LINK_V311)
		link->v311_tentative = false; /* the broker answers 3.1.1 */
	if(rc != 0) {
		char why[200];
		if(link->version == MQTT_LINK_V5 && rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION)
			link->v5_refused = true;
		snprintf(why, sizeof why, "broker refused connection: %s",
				link->version == MQTT_LINK_V5 ? mosquitto_reason_string(rc)
							      : mosquitto_connack_string(rc));
		set_error(link, why);
		link->refused = true;
		/* The broker closes the socket; the read error schedules the retry. */
		return;
	}
	link->connected = true;
	link->refused = false;
	/* A new session: what libmosquitto dropped is never reported (see the top). */
	link->unacked = 0;
	link->stalled = false;
	drain_soon(link);
	clock_gettime(CLOCK_MONOTONIC, &link->connected_at);
	link->backoff_ms = BACKOFF_MIN_MS;
	link->last_error[0] = '\0';
	link->reported[0] = '\0';
	if(link->failures)
		log_info(link->log_prefix, "connected to %s:%d%s after %lu failed attempts", link->host,
				link->port, link->tls ? " (TLS)" : "", link->failures);
	else
		log_info(link->log_prefix, "connected to %s:%d%s", link->host, link->port,
				link->tls ? " (TLS)" : "");
	link->failures = 0;
	/* With a log callback set, libmosquitto formats a line for every packet
	 * it sends or receives (vsnprintf into a fresh allocation): 6 per
	 * relayed command, 15% of the host's instructions.  A plain link needs
	 * the log only to say why an attempt failed; TLS keeps it for OpenSSL's
	 * reasons (lib_error), and debug logging for the lines themselves. */
	if(!link->tls && !log_enabled(LOG_LVL_DEBUG))
		mosquitto_log_callback_set(link->mosq, NULL);
	if(link->want_v5 && link->version != link->logged_version) {
		if(link->version == MQTT_LINK_V5)
			log_info(link->log_prefix, "speaking MQTT 5 with %s:%d", link->host, link->port);
		else
			log_info(link->log_prefix,
					"%s:%d does not speak MQTT 5: using MQTT 3.1.1 (tried"
					" again at a reconnect after %d min)",
					link->host, link->port, V5_RETRY_S / 60);
		link->logged_version = link->version;
	}
	if(link->cb.on_connect)
		link->cb.on_connect(link, link->ud);
}

/* Keeps the reason of a v5 DISCONNECT from the broker (0x80 and up; the
 * library's own error codes, also reported here, are small numbers). */
static void on_mosq_disconnect(struct mosquitto *mosq, void *ud, int rc, const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct mqtt_link *link = ud;
	if(link->version == MQTT_LINK_V5 && rc >= 0x80)
		snprintf(link->broker_reason, sizeof link->broker_reason, "the broker disconnected us: %s",
				mosquitto_reason_string(rc));
}

/* Ends the read turn after MAX_PACKETS_PER_WAKE packets (see the top). */
static void count_packet(struct mqtt_link *link)
{
	if(link->in_read && ++link->turn_packets >= MAX_PACKETS_PER_WAKE)
		errno = EAGAIN;
}

/* Hands held messages over once the backlog is low (see the top). */
static void drain_soon(struct mqtt_link *link)
{
	if(link->held && link->unacked <= BACKLOG_LOW)
		event_active(link->ev_drain, EV_TIMEOUT, 1);
}

/* Called when a QoS 0 publish is written or a QoS 1/2 one is acknowledged. */
static void on_mosq_publish(struct mosquitto *mosq, void *ud, int mid)
{
	(void)mosq;
	struct mqtt_link *link = ud;
	if(link->unacked > 0)
		link->unacked--;
	link->acks++;
	link->stalled = false;
	drain_soon(link);
	if(link->cb.on_published && !link->stopping)
		link->cb.on_published(link, mid, link->ud);
	count_packet(link);
	link->ack_last = true;
}

/* libmosquitto reports why a TLS handshake failed only through its log. */
static void on_mosq_log(struct mosquitto *mosq, void *ud, int level, const char *text)
{
	(void)mosq;
	struct mqtt_link *link = ud;
	if(!text)
		return;
	if(level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		log_debug(link->log_prefix, "libmosquitto: %s", text);
	if(!(level & MOSQ_LOG_ERR) || link->lib_error[0])
		return;
	const char *p = strstr(text, "]: "); /* "OpenSSL Error[0]: error:..." */
	snprintf(link->lib_error, sizeof link->lib_error, "%s", p ? p + 3 : text);
}

/* A copy of m, in one allocation; NULL when out of memory. */
static struct held *copy_message(const struct mosquitto_message *m)
{
	size_t len = (size_t)m->payloadlen, tlen = strlen(m->topic) + 1;
	struct held *h = malloc(sizeof(*h) + len + tlen);
	if(!h)
		return NULL;
	if(len)
		memcpy(h->data, m->payload, len);
	h->topic = memcpy(h->data + len, m->topic, tlen);
	h->len = len;
	h->retained = m->retain;
	h->next = NULL;
	return h;
}

/* Keeps a copy of m for on_drain; false when out of memory. */
static bool hold(struct mqtt_link *link, const struct mosquitto_message *m)
{
	struct held *h = copy_message(m);
	if(!h)
		return false;
	if(!link->held)
		log_debug(link->log_prefix, "%lu publishes wait for the broker: holding what arrives",
				link->unacked);
	*link->held_tail = h;
	link->held_tail = &h->next;
	link->n_held++;
	return true;
}

/* A lone command, whose relay is worth a write of its own: nothing more
 * has arrived behind it, and the broker has taken nearly all we sent.
 * Otherwise a burst, whose relays leave together at the end of the turn
 * (a write per message cost 10% of the QoS 1 relay throughput).  Asked
 * once a turn. */
static bool alone(struct mqtt_link *link)
{
	link->turn_first = false;
	if(link->unacked > ALONE_UNACKED)
		return false;
	int n = 0;
	return ioctl(mosquitto_socket(link->mosq), FIONREAD, &n) == 0 && n == 0;
}

static void on_mosq_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *m)
{
	(void)mosq;
	struct mqtt_link *link = ud;
	/* Its PUBACK was just queued, which wrote the wake-up byte and left
	 * EAGAIN (see the top); an unthreaded link wrote the PUBACK at once,
	 * clearing it.  What the handler queues may set it again, ending the
	 * read as before. */
	if(link->in_read)
		errno = 0;
	link->ack_last = false;
	if(m->qos > 0)
		link->queued++; /* its PUBACK */
	/* Read while draining acks in mqtt_link_stop(): the owner is going. */
	if(link->stopping)
		return;
	/* Behind held ones too, so the owner sees the broker's order. */
	bool held = (link->held || (link->unacked >= BACKLOG_HIGH && !link->stalled)) && hold(link, m);
	/* The turn's first message is handed over after the read (see the
	 * top), which this ends: a relay made for it leaves before anything
	 * more is read or built. */
	if(!held && link->in_lib && link->turn_first && link->cb.on_message && alone(link) &&
			(link->first = copy_message(m))) {
		count_packet(link);
		errno = EAGAIN;
		return;
	}
	if(!held && link->cb.on_message)
		link->cb.on_message(link, m->topic, m->payload, (size_t)m->payloadlen, m->retain, link->ud);
	count_packet(link);
}

/* Held messages to the owner, oldest first, while the backlog allows:
 * MAX_PACKETS_PER_WAKE a turn, as a read turn. */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct mqtt_link *link = arg;
	int sock = link->connected ? mosquitto_socket(link->mosq) : -1;
	/* As a read turn (on_readable): what the owner publishes is queued,
	 * and leaves together at the end. */
	link->in_read = true;
	for(int n = 0; link->held && (link->unacked < BACKLOG_HIGH || link->stalled) && n < MAX_PACKETS_PER_WAKE;
			n++) {
		struct held *h = link->held;
		if(!(link->held = h->next))
			link->held_tail = &link->held;
		link->n_held--;
		if(link->cb.on_message && !link->stopping)
			link->cb.on_message(link, h->topic, h->data, h->len, h->retained, link->ud);
		free(h);
	}
	link->in_read = false;
	if(sock >= 0 && mosquitto_want_write(link->mosq)) {
		int rc = write_queued(link, sock);
		if(rc != MOSQ_ERR_SUCCESS) {
			io_failed(link, rc);
			return;
		}
	}
	if(link->held && (link->unacked < BACKLOG_HIGH || link->stalled))
		event_active(link->ev_drain, EV_TIMEOUT, 1);
	flush_writes(link);
}

/*
 * mosquitto_new() without the wake-up socketpair.  libmosquitto opens one
 * per client for its own network thread (mosquitto_loop_start), which this
 * link never runs, and writes a byte to it for every packet it queues:
 * nothing drains it, so after the first few KB each write fails with
 * EAGAIN, a system call for nothing, three per relayed command (17% of the
 * host's calls in a QoS 1 relay).  When the socketpair cannot be opened
 * libmosquitto carries on without it (it only delays a threaded loop), so
 * it is created while the descriptor limit is 0; the limit is restored at
 * once (the host is single-threaded), and a client that cannot be created
 * that way is created the ordinary way.
 */
static struct mosquitto *new_client(const char *id, bool clean, struct mqtt_link *link)
{
	struct rlimit was, none;
	if(getrlimit(RLIMIT_NOFILE, &was) == 0) {
		none = was;
		none.rlim_cur = 0;
		if(setrlimit(RLIMIT_NOFILE, &none) == 0) {
			struct mosquitto *mosq = mosquitto_new(id, clean, link);
			setrlimit(RLIMIT_NOFILE, &was);
			if(mosq)
				return mosq;
		}
	}
	link->wake_pair = true;
	return mosquitto_new(id, clean, link);
}

struct mqtt_link *mqtt_link_new(struct event_base *base, const struct mqtt_link_opts *o,
		const struct mqtt_link_callbacks *cb, void *ud)
{
	static bool lib_ready;
	if(!lib_ready) {
		mosquitto_lib_init();
		lib_ready = true;
	}
	struct mqtt_link *link = calloc(1, sizeof *link);
	if(!link) {
		log_error(o->log_prefix ? o->log_prefix : "mqtt", "out of memory");
		return NULL;
	}
	link->base = base;
	link->cb = *cb;
	link->ud = ud;
	link->host = strdup(o->host ? o->host : "127.0.0.1");
	if(link->host) {
		unsigned char ip[16];
		link->host_numeric = inet_pton(AF_INET, link->host, ip) == 1 ||
				inet_pton(AF_INET6, link->host, ip) == 1;
	}
	link->port = o->port ? o->port : 1883;
	if(o->n_hosts && (link->hosts = calloc(o->n_hosts, sizeof *link->hosts))) {
		for(size_t i = 0; i < o->n_hosts; i++)
			if((link->hosts[link->n_hosts] = strdup(o->hosts[i])))
				link->n_hosts++;
		use_next_host(link);
	}
	link->keepalive_s = o->keepalive_s > 0 ? o->keepalive_s : 30;
	link->log_prefix = strdup(o->log_prefix ? o->log_prefix : "mqtt");
	link->client_id = o->client_id ? strdup(o->client_id) : NULL;
	link->backoff_ms = BACKOFF_MIN_MS;
	link->want_v5 = o->mqtt5;
	link->v5_only = o->mqtt5 && o->mqtt5_only;
	link->version = o->mqtt5 ? MQTT_LINK_V5 : MQTT_LINK_V311;
	link->mosq = new_client(o->client_id, !(o->persistent && o->client_id), link);
	if(!link->host || !link->log_prefix || (o->client_id && !link->client_id) || !link->mosq) {
		/* mosquitto_new() leaves errno unset for a client id it refuses. */
		log_error(o->log_prefix ? o->log_prefix : "mqtt", "%s",
				link->mosq || errno == ENOMEM
						? "out of memory"
						: "cannot create the MQTT client: is the client id valid UTF-8,"
						  " at most 65535 bytes?");
		goto fail;
	}

	mosquitto_int_option(link->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	/* "Threaded": the application drives the I/O, so libmosquitto queues
	 * every packet for our next mosquitto_loop_write() instead of writing
	 * it at once.  Unthreaded, it wrote each PUBACK in the middle of a read
	 * and each publish made outside a callback (a timer's, a REST call's)
	 * with a write() of its own, and corking a whole read turn to hold
	 * them together cost two setsockopt calls even in the turns that wrote
	 * nothing (the broker's PUBACKs, half the turns of a relay). */
	mosquitto_threaded_set(link->mosq, true);
	/* A window of in-flight QoS 1 messages: large enough that a burst does
	 * not wait on acks, small because libmosquitto walks the whole window
	 * on every publish and every PUBACK (measured: 65535 cut the relay to
	 * ~650 commands/s, 100 gives 11k-18k/s with nothing lost).  Set again
	 * before every attempt (see the top). */
	mosquitto_int_option(link->mosq, MOSQ_OPT_SEND_MAXIMUM, SEND_MAXIMUM);
	mosquitto_connect_callback_set(link->mosq, on_mosq_connect);
	mosquitto_disconnect_v5_callback_set(link->mosq, on_mosq_disconnect);
	mosquitto_message_callback_set(link->mosq, on_mosq_message);
	mosquitto_publish_callback_set(link->mosq, on_mosq_publish);
	mosquitto_log_callback_set(link->mosq, on_mosq_log);

	if(o->username && mosquitto_username_pw_set(link->mosq, o->username, o->password)) {
		log_error(link->log_prefix, "invalid username or password");
		goto fail;
	}
	if(o->will_topic &&
			mosquitto_will_set(link->mosq, o->will_topic,
					(int)strlen(o->will_payload ? o->will_payload : ""), o->will_payload,
					o->will_qos, o->will_retain)) {
		log_error(link->log_prefix, "invalid last will topic %s", o->will_topic);
		goto fail;
	}
	if(o->tls) {
		const struct mqtt_tls_opts *t = o->tls;
		int rc = mosquitto_tls_set(link->mosq, t->ca_file, NULL, t->cert_file, t->key_file, NULL);
		if(!rc)
			rc = mosquitto_tls_opts_set(link->mosq, 1, t->tls_version, NULL);
		if(!rc && t->insecure_skip_verify)
			rc = mosquitto_tls_insecure_set(link->mosq, true);
		if(rc) {
			log_error(link->log_prefix, "TLS setup failed: %s", mosquitto_strerror(rc));
			goto fail;
		}
		link->tls = true;
	}

	link->ev_misc = event_new(base, -1, EV_PERSIST, on_misc, link);
	link->ev_retry = event_new(base, -1, 0, on_retry, link);
	link->ev_drain = event_new(base, -1, 0, on_drain, link);
	link->held_tail = &link->held;
	if(!link->ev_misc || !link->ev_retry || !link->ev_drain)
		goto fail;
	return link;

fail:
	mqtt_link_free(link);
	return NULL;
}

int mqtt_link_start(struct mqtt_link *link)
{
	if(link->started)
		return OH_OK;
	link->started = true;
	struct timeval second = {1, 0};
	event_add(link->ev_misc, &second);
	set_error(link, "connecting");
	try_connect(link);
	return OH_OK;
}

/*
 * Sends what is queued and reads the broker's PUBACKs until every publish is
 * acknowledged (or max_ms pass).  Closing the socket with PUBACKs unread in
 * its receive buffer makes the kernel answer with a TCP reset instead of a
 * FIN; the broker can then lose our DISCONNECT and publish the last will,
 * overwriting the clean "offline" status we just sent.
 */
static void drain_acks(struct mqtt_link *link, int max_ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int fd = mosquitto_socket(link->mosq);
	while(link->unacked > 0 && fd >= 0) {
		if(mosquitto_want_write(link->mosq) && mosquitto_loop_write(link->mosq, WRITE_PASSES))
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = max_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if(left <= 0)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if(r < 0 && errno == EINTR)
			continue;
		if(r <= 0 || mosquitto_loop_read(link->mosq, MAX_PACKETS_PER_WAKE))
			break;
		fd = mosquitto_socket(link->mosq);
	}
}

void mqtt_link_stop(struct mqtt_link *link)
{
	if(!link || !link->started)
		return;
	link->stopping = true;
	/* As publishes still queued, they go with the process. */
	if(link->n_held)
		log_warn(link->log_prefix, "stopping with %zu messages received and not yet handled",
				link->n_held);
	event_del(link->ev_retry);
	if(link->dns_req) {
		evdns_getaddrinfo_cancel(link->dns_req);
		link->dns_req = NULL;
	}
	if(link->ev_read) {
		/* Push out whatever is queued (a final retained snapshot, an
		 * "offline" status) before saying goodbye. */
		for(int i = 0; i < 50 && mosquitto_want_write(link->mosq); i++) {
			if(mosquitto_loop_write(link->mosq, WRITE_PASSES))
				break;
		}
		if(link->connected)
			drain_acks(link, STOP_ACK_WAIT_MS);
		/* Before the DISCONNECT: libmosquitto closes the socket once it is
		 * written, and an event still armed on it could not be removed. */
		drop_socket_events(link);
		mosquitto_disconnect(link->mosq);
		mosquitto_loop_write(link->mosq, 1);
	}
	drop_socket_events(link);
	link->connected = false;
}

void mqtt_link_free(struct mqtt_link *link)
{
	if(!link)
		return;
	drop_socket_events(link);
	if(link->ev_misc)
		event_free(link->ev_misc);
	if(link->ev_retry)
		event_free(link->ev_retry);
	if(link->ev_drain)
		event_free(link->ev_drain);
	while(link->held) {
		struct held *h = link->held;
		link->held = h->next;
		free(h);
	}
	if(link->dns_req)
		evdns_getaddrinfo_cancel(link->dns_req);
	if(link->dns)
		evdns_base_free(link->dns, 0);
	if(link->mosq)
		mosquitto_destroy(link->mosq);
	mosquitto_property_free_all(&link->expiry_props);
	free(link->host);
	for(size_t i = 0; i < link->n_hosts; i++)
		free(link->hosts[i]);
	free(link->hosts);
	free(link->log_prefix);
	free(link->client_id);
	free(link);
}

int mqtt_link_publish(struct mqtt_link *link, const char *topic, const void *payload, size_t len, int qos,
		bool retain)
{
	return mqtt_link_publish_mid(link, topic, payload, len, qos, retain, NULL);
}

int mqtt_link_publish_mid(struct mqtt_link *link, const char *topic, const void *payload, size_t len, int qos,
		bool retain, int *mid)
{
	return mqtt_link_publish_expiring(link, topic, payload, len, qos, retain, 0, mid);
}

/* The list carrying expiry_s (see the top), or NULL when out of memory. */
static const mosquitto_property *expiry_props(struct mqtt_link *link, unsigned expiry_s)
{
	if(link->expiry_props && link->expiry_props_s == expiry_s)
		return link->expiry_props;
	mosquitto_property_free_all(&link->expiry_props);
	if(mosquitto_property_add_int32(&link->expiry_props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s))
		return NULL;
	link->expiry_props_s = expiry_s;
	return link->expiry_props;
}

int mqtt_link_publish_expiring(struct mqtt_link *link, const char *topic, const void *payload, size_t len,
		int qos, bool retain, unsigned expiry_s, int *mid)
{
	if(len > 268435455)
		return OH_ERR_TOO_LARGE;
	int rc;
	/* While disconnected, the version of the next attempt: should a message
	 * kept for it go out over 3.1.1 after all, libmosquitto writes
	 * properties on v5 connections only. */
	if(expiry_s && link->version == MQTT_LINK_V5) {
		const mosquitto_property *props = expiry_props(link, expiry_s);
		if(!props)
			return OH_ERR_NOMEM;
		rc = mosquitto_publish_v5(link->mosq, mid, topic, (int)len, payload, qos, retain, props);
	} else {
		rc = mosquitto_publish(link->mosq, mid, topic, (int)len, payload, qos, retain);
	}
	if(rc == MOSQ_ERR_NO_CONN)
		return OH_ERR_NO_CONN;
	if(rc != MOSQ_ERR_SUCCESS)
		return OH_ERR_INVAL;
	link->unacked++;
	link->queued++;
	flush_writes(link);
	return OH_OK;
}

int mqtt_link_subscribe(struct mqtt_link *link, const char *filter, int qos)
{
	int rc = link->version == MQTT_LINK_V5 ? mosquitto_subscribe_v5(link->mosq, NULL, filter, qos,
								 MQTT_SUB_OPT_RETAIN_AS_PUBLISHED, NULL)
					       : mosquitto_subscribe(link->mosq, NULL, filter, qos);
	if(rc == MOSQ_ERR_NO_CONN)
		return OH_ERR_NO_CONN;
	if(rc != MOSQ_ERR_SUCCESS)
		return OH_ERR_INVAL;
	flush_writes(link);
	return OH_OK;
}

int mqtt_link_unsubscribe(struct mqtt_link *link, const char *filter)
{
	int rc = mosquitto_unsubscribe(link->mosq, NULL, filter);
	if(rc == MOSQ_ERR_NO_CONN)
		return OH_ERR_NO_CONN;
	if(rc != MOSQ_ERR_SUCCESS)
		return OH_ERR_INVAL;
	flush_writes(link);
	return OH_OK;
}

void mqtt_link_flush(struct mqtt_link *link)
{
	/* Inside a read libmosquitto holds its callback mutex, and a failed
	 * write takes it again (on_disconnect): it would never return. */
	if(link->in_lib || (link->in_read && !link->flush_now) || !link->connected ||
			!mosquitto_want_write(link->mosq))
		return;
	int fd = mosquitto_socket(link->mosq);
	if(fd < 0)
		return;
	int rc = write_queued(link, fd);
	if(rc != MOSQ_ERR_SUCCESS) {
		if(link->in_read) {
			/* on_readable gives the connection up once the owner
			 * has returned. */
			link->flush_rc = rc;
			link->flush_errno = errno;
			return;
		}
		io_failed(link, rc);
		return;
	}
	flush_writes(link); /* what the socket would not take yet */
}

bool mqtt_link_connected(const struct mqtt_link *link)
{
	return link->connected;
}
const char *mqtt_link_last_error(const struct mqtt_link *link)
{
	return link->last_error;
}
unsigned long mqtt_link_reconnects(const struct mqtt_link *link)
{
	return link->reconnects;
}

size_t mqtt_link_held(const struct mqtt_link *link)
{
	return link->n_held;
}

const char *mqtt_link_protocol(const struct mqtt_link *link)
{
	if(!link->connected)
		return NULL;
	return link->version == MQTT_LINK_V5 ? "5" : "3.1.1";
}

bool mqtt_link_retain_as_published(const struct mqtt_link *link)
{
	/* Every subscription of a v5 connection asks for it (mqtt_link_subscribe). */
	return link->connected && link->version == MQTT_LINK_V5;
}
