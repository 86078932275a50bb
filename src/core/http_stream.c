/*
 * Open-ended responses (server-sent events) on libmicrohttpd.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "shared_buf.h"
#include "timeutil.h"

/*
 * A stream is a chunked response whose reader hands out what was written.
 * With nothing queued the reader suspends the connection (returning 0 is
 * only allowed together with a suspend); a write resumes it.  A suspended
 * connection is not polled, so a client that went away is noticed on the
 * next write: callers send a heartbeat.
 *
 * The backlog is a queue of references to shared buffers, not a copy per
 * stream: an event sent to 900 clients is stored once, and memory is
 * bounded by the distinct events still unsent to someone, not by clients
 * times backlog (900 clients once took the host from 17 MB to 1.2 GB).
 *
 * The kernel's send buffer of a stream is capped at STREAM_SNDBUF: Linux
 * grows it up to 4 MB (net.ipv4.tcp_wmem) for a client that does not read,
 * bytes no longer ours to merge or drop (events.c holds a slow client's
 * registry deltas back and sends one merged delta instead), and memory the
 * limits do not see.  256 KB still fills a 50 ms path at 5 MB/s.
 */

static void chunk_pop(struct http_stream *st)
{
	struct stream_chunk *c = st->head;
	st->head = c->next;
	if(!st->head)
		st->tail = NULL;
	shared_buf_unref(c->buf);
	free(c);
}

static void drop_backlog(struct http_stream *st)
{
	while(st->head)
		chunk_pop(st);
	st->backlog = 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_stream *st = cls;
	if(st->aborted) {
		/* libmicrohttpd closes the connection on its next run, and with
		 * nothing else going on that could be the next ping, 15 s away:
		 * the client would neither read nor reconnect meanwhile. */
		if(st->req)
			http__kick(st->req->server);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	size_t n = 0;
	while(st->head && n < max) {
		struct stream_chunk *c = st->head;
		size_t avail = c->buf->len - c->off;
		size_t take = avail < max - n ? avail : max - n;
		memcpy(out + n, c->buf->data + c->off, take);
		c->off += take;
		n += take;
		if(c->off == c->buf->len)
			chunk_pop(st);
	}
	if(n) {
		st->backlog -= n;
		st->progress_mono = time_now_mono();
		return (ssize_t)n;
	}
	if(st->closed)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing to send: park the connection until the next write. */
	if(st->req && !st->suspended) {
		st->suspended = true;
		MHD_suspend_connection(st->req->conn);
	}
	return 0;
}

#define STREAM_SNDBUF (256 * 1024)

static void stream_response_freed(void *cls)
{
	(void)cls; /* the stream is freed with its request (on_completed) */
}

struct http_stream *http_reply_stream(struct oh_http_req *req, const char *content_type,
		void (*on_gone)(struct http_stream *, void *), void *ud)
{
	if(req->response || req->status || req->stream)
		return NULL;
	struct http_stream *st = calloc(1, sizeof *st);
	if(!st)
		return NULL;
	st->req = req;
	st->on_gone = on_gone;
	st->ud = ud;
	struct MHD_Response *r = MHD_create_response_from_callback(
			MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_response_freed);
	if(!r) {
		free(st);
		return NULL;
	}
	if(http__set_response(req, 200, r, content_type)) {
		free(st);
		return NULL;
	}
	req->stream = st;
	req->server->n_streams++;
	const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if(ci) {
		int sndbuf = STREAM_SNDBUF;
		setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	}
	/* Proxies (nginx) must not buffer an event stream. */
	http_req_add_header(req, "X-Accel-Buffering", "no");
	return st;
}

size_t http_server_streams(const struct http_server *s)
{
	return s->n_streams;
}

static void stream_wake(struct http_stream *st)
{
	if(st->suspended && st->req) {
		st->suspended = false;
		MHD_resume_connection(st->req->conn);
		http__kick(st->req->server);
	}
}

int http_stream_write_buf(struct http_stream *st, struct shared_buf *buf)
{
	if(st->closed || st->aborted || !st->req)
		return OH_ERR_NO_CONN;
	if(!buf->len)
		return OH_OK;
	struct stream_chunk *c = malloc(sizeof *c);
	if(!c)
		return OH_ERR_NOMEM;
	c->next = NULL;
	c->buf = shared_buf_ref(buf);
	c->off = 0;
	if(st->tail)
		st->tail->next = c;
	else
		st->head = c;
	st->tail = c;
	if(!st->backlog)
		st->progress_mono = time_now_mono(); /* the wait starts now */
	st->backlog += buf->len;
	stream_wake(st);
	return OH_OK;
}

int http_stream_write(struct http_stream *st, const char *data, size_t len)
{
	if(st->closed || st->aborted || !st->req)
		return OH_ERR_NO_CONN;
	struct shared_buf *b = shared_buf_new(data, len);
	if(!b)
		return OH_ERR_NOMEM;
	int rc = http_stream_write_buf(st, b);
	shared_buf_unref(b);
	return rc;
}

bool http_stream_replace_buf(struct http_stream *st, struct shared_buf *old, struct shared_buf *buf)
{
	for(struct stream_chunk *c = st->head; c; c = c->next) {
		if(c->buf != old || c->off)
			continue;
		st->backlog = st->backlog - old->len + buf->len;
		c->buf = shared_buf_ref(buf);
		shared_buf_unref(old);
		return true;
	}
	return false;
}

void http_stream_close(struct http_stream *st)
{
	st->closed = true;
	stream_wake(st);
}

void http_stream_abort(struct http_stream *st)
{
	st->aborted = true;
	drop_backlog(st);
	stream_wake(st);
}

size_t http_stream_backlog(const struct http_stream *st)
{
	return st->backlog;
}

double http_stream_stalled_s(const struct http_stream *st)
{
	return st->backlog ? time_now_mono() - st->progress_mono : 0;
}

void http__stream_gone(struct oh_http_req *req)
{
	struct http_stream *st = req->stream;
	st->req = NULL;
	if(req->server->n_streams)
		req->server->n_streams--;
	if(st->on_gone)
		st->on_gone(st, st->ud);
	drop_backlog(st);
	free(st);
	req->stream = NULL;
}
