/*
 * Open-ended responses (server-sent events) on libmicrohttpd.
 */
#include "http_internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * A stream is a chunked response whose reader hands out what was written.
 * With nothing buffered the reader suspends the connection (returning 0 is
 * only allowed together with a suspend); a write resumes it.  The buffer is
 * consumed from `off` and compacted lazily, so a large backlog drains in
 * linear time.  A suspended connection is not polled, so a client that went
 * away is noticed on the next write: callers send a heartbeat.
 */

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_stream *st = cls;
	if(st->aborted)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if(st->len > st->off) {
		size_t avail = st->len - st->off;
		size_t n = avail < max ? avail : max;
		memcpy(out, st->buf + st->off, n);
		st->off += n;
		if(st->off == st->len)
			st->off = st->len = 0;
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

static void stream_response_freed(void *cls)
{
	(void)cls;   /* the stream is freed with its request (on_completed) */
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
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
			stream_read, st, stream_response_freed);
	if(!r) {
		free(st);
		return NULL;
	}
	if(http__set_response(req, 200, r, content_type)) {
		free(st);
		return NULL;
	}
	req->stream = st;
	/* Proxies (nginx) must not buffer an event stream. */
	http_req_add_header(req, "X-Accel-Buffering", "no");
	return st;
}

static void stream_wake(struct http_stream *st)
{
	if(st->suspended && st->req) {
		st->suspended = false;
		MHD_resume_connection(st->req->conn);
		http__kick(st->req->server);
	}
}

int http_stream_write(struct http_stream *st, const char *data, size_t len)
{
	if(st->closed || st->aborted || !st->req)
		return OH_ERR_NO_CONN;
	if(st->off && st->len + len > st->cap) {
		/* Reuse the space already sent before growing. */
		memmove(st->buf, st->buf + st->off, st->len - st->off);
		st->len -= st->off;
		st->off = 0;
	}
	if(st->len + len > st->cap) {
		size_t cap = st->cap ? st->cap : 4096;
		while(cap < st->len + len)
			cap *= 2;
		char *b = realloc(st->buf, cap);
		if(!b)
			return OH_ERR_NOMEM;
		st->buf = b;
		st->cap = cap;
	}
	memcpy(st->buf + st->len, data, len);
	st->len += len;
	stream_wake(st);
	return OH_OK;
}

void http_stream_close(struct http_stream *st)
{
	st->closed = true;
	stream_wake(st);
}

void http_stream_abort(struct http_stream *st)
{
	st->aborted = true;
	free(st->buf);
	st->buf = NULL;
	st->len = st->off = st->cap = 0;
	stream_wake(st);
}

size_t http_stream_backlog(const struct http_stream *st) { return st->len - st->off; }


void http__stream_gone(struct oh_http_req *req)
{
	struct http_stream *st = req->stream;
	st->req = NULL;
	if(st->on_gone)
		st->on_gone(st, st->ud);
	free(st->buf);
	free(st);
	req->stream = NULL;
}
