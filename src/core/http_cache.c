/*
 * Fewer bytes for big shared bodies: the registry snapshot (GET
 * /api/registry) and the NDI plugin's device list are shared_bufs that
 * never change once replied with, and a large registry makes them hundreds
 * of kilobytes.  Clients on Wi-Fi and VPNs are limited by bytes, not by
 * this code, so every reply of such a buffer (http_reply_buf) gets:
 *
 * - a strong ETag naming the buffer: this run of the host (its start, in
 *   microseconds, and its pid) and a number given to each buffer on its
 *   first reply.  A body is never changed once replied with, so the name
 *   stands for the bytes without reading them: a hash of a 34 MB snapshot
 *   (100,000 devices) would itself hold the loop for 20 ms.  304 Not
 *   Modified when If-None-Match names it;
 * - with Accept-Encoding: gzip and a body over HTTP_GZIP_MIN bytes, a gzip
 *   copy compressed once per buffer and kept beside it (shared_buf.ext),
 *   so requests only take references;
 * - Vary: Accept-Encoding.
 *
 * Compressing 3.4 MB (10,000 devices) takes tens of milliseconds, which
 * would stall the loop, so it is done in slices of HTTP_GZIP_SLICE input
 * bytes, one per loop turn.  Until the copy is complete, requests get the
 * plain body: correct (the answer varies by Accept-Encoding anyway) and
 * never slower than before.  A buffer replaced while its copy is being made
 * takes the unfinished work with it when it is freed.
 */
#include "http_cache.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core.h"
#include "log.h"
#include "metrics.h"
#include "shared_buf.h"

/* Below this a body is sent as it is: gzip saves too little to pay. */
#define HTTP_GZIP_MIN 2048
/* Input bytes deflated per loop turn: about a millisecond at level 6. */
#define HTTP_GZIP_SLICE (64 * 1024)

/* A zero timeout: the next turn of the loop, after it polled its sockets. */
static const struct timeval now_tv = {0, 0};

struct http_cache {
	struct shared_buf *owner; /* borrowed: this lives inside it (ext) */
	struct host *host;        /* for the loop and the counters; outlives every body */
	char etag[48];            /* "\"run-number\"", the plain body's */
	char etag_gz[52];         /* the gzip copy's: a representation of its own */
	struct shared_buf *gz;    /* owned; NULL until complete */
	z_stream zs;              /* while compressing */
	bool compressing;
	bool failed; /* out of memory or zlib error: plain from now on */
	char *out;   /* owned: the compressed bytes so far */
	size_t out_cap;
	struct event *ev; /* owned: the next slice */
};

static void cache_free(void *p)
{
	struct http_cache *c = p;
	if(c->compressing)
		deflateEnd(&c->zs);
	if(c->ev)
		event_free(c->ev);
	free(c->out);
	shared_buf_unref(c->gz);
	free(c);
}

/* The cache of buf, made on first use (the ETag is computed then); NULL
 * when out of memory. */
static struct http_cache *cache_of(struct host *h, struct shared_buf *buf)
{
	if(buf->ext_free == cache_free)
		return buf->ext;
	if(buf->ext_free) /* someone else's: leave it alone */
		return NULL;
	struct http_cache *c = calloc(1, sizeof *c);
	if(!c)
		return NULL;
	c->owner = buf;
	c->host = h;
	static unsigned long long run, serial;
	if(!run) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		run = ((unsigned long long)tv.tv_sec * 1000000 + (unsigned long long)tv.tv_usec) ^
				((unsigned long long)getpid() << 44);
	}
	serial++;
	snprintf(c->etag, sizeof c->etag, "\"%llx-%llx\"", run, serial);
	snprintf(c->etag_gz, sizeof c->etag_gz, "\"%llx-%llx-gz\"", run, serial);
	buf->ext = c;
	buf->ext_free = cache_free;
	return c;
}

static void give_up(struct http_cache *c, const char *why)
{
	log_warn("http", "gzip of a %zu-byte body abandoned: %s", c->owner->len, why);
	if(c->compressing)
		deflateEnd(&c->zs);
	c->compressing = false;
	c->failed = true;
	free(c->out);
	c->out = NULL;
}

static void slice(struct http_cache *c, struct shared_buf *b);

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_slice(evutil_socket_t fd, short what, void *arg)
{
	struct http_cache *c = arg;
	struct shared_buf *b = c->owner;
	/* CPU time of the loop's thread: what the slice costs, without the
	 * time the machine gave to other processes meanwhile. */
	double t0 = thread_cpu_s();
	slice(c, b);
	struct counters *st = &c->host->stats;
	double took = thread_cpu_s() - t0;
	metrics_count("oh_http_gzip_seconds_total", took);
	if(took > st->gzip_slice_max_s)
		st->gzip_slice_max_s = took;
}

/* Deflates the next HTTP_GZIP_SLICE bytes of b; the last one completes
 * c->gz. */
static void slice(struct http_cache *c, struct shared_buf *b)
{
	size_t left = b->len - (size_t)c->zs.total_in;
	size_t n = left < HTTP_GZIP_SLICE ? left : HTTP_GZIP_SLICE;
	c->zs.next_in = (Bytef *)b->data + c->zs.total_in;
	c->zs.avail_in = (uInt)n;
	int flush = n == left ? Z_FINISH : Z_NO_FLUSH;
	int rc;
	for(;;) {
		if(c->zs.total_out == c->out_cap) {
			size_t cap = c->out_cap * 2;
			char *grown = realloc(c->out, cap);
			if(!grown) {
				give_up(c, "out of memory");
				return;
			}
			c->out = grown;
			c->out_cap = cap;
		}
		c->zs.next_out = (Bytef *)c->out + c->zs.total_out;
		c->zs.avail_out = (uInt)(c->out_cap - c->zs.total_out);
		rc = deflate(&c->zs, flush);
		if(rc == Z_STREAM_END)
			break;
		if(rc != Z_OK && rc != Z_BUF_ERROR) {
			give_up(c, c->zs.msg ? c->zs.msg : "deflate failed");
			return;
		}
		if(c->zs.avail_out && !c->zs.avail_in)
			break; /* this slice is in; the rest comes next turn */
	}
	if(rc != Z_STREAM_END) {
		/* A zero timer: the loop polls its sockets before the next slice. */
		evtimer_add(c->ev, &now_tv);
		return;
	}
	c->gz = shared_buf_new(c->out, (size_t)c->zs.total_out);
	deflateEnd(&c->zs);
	c->compressing = false;
	free(c->out);
	c->out = NULL;
	if(!c->gz) {
		give_up(c, "out of memory");
		return;
	}
	metrics_count("oh_http_gzip_compressions_total", 1);
	metrics_count("oh_http_gzip_input_bytes_total", (double)b->len);
	metrics_count("oh_http_gzip_output_bytes_total", (double)c->gz->len);
}

/* Starts compressing c's buffer in slices; false if it cannot. */
static bool start(struct http_cache *c)
{
	c->out_cap = c->owner->len / 4 + 1024;
	c->out = malloc(c->out_cap);
	c->ev = evtimer_new(c->host->base, on_slice, c);
	if(!c->out || !c->ev) {
		give_up(c, "out of memory");
		return false;
	}
	/* 15 + 16: a gzip wrapper rather than zlib's. */
	if(deflateInit2(&c->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		give_up(c, "deflateInit2 failed");
		return false;
	}
	c->compressing = true;
	evtimer_add(c->ev, &now_tv);
	return true;
}

/* Whether the Accept-Encoding value accepts gzip (a "gzip" or "x-gzip"
 * coding whose q is not zero). */
static bool accepts_gzip(const char *ae)
{
	while(ae && *ae) {
		ae += strspn(ae, " \t,");
		size_t tok = strcspn(ae, " \t;,");
		bool gzip = (tok == 4 && !strncasecmp(ae, "gzip", 4)) ||
				(tok == 6 && !strncasecmp(ae, "x-gzip", 6));
		const char *end = ae + strcspn(ae, ",");
		const char *q = ae + tok;
		bool zero = false;
		while(q < end && (q = strchr(q, ';')) && q < end) {
			q += 1 + strspn(q + 1, " \t");
			if((q[0] == 'q' || q[0] == 'Q') && q[1] == '=')
				zero = strtod(q + 2, NULL) == 0.0;
		}
		if(gzip && !zero)
			return true;
		ae = end;
	}
	return false;
}

/* Whether the If-None-Match value names tag (weakly compared, as RFC 9110
 * asks for If-None-Match) or is "*". */
static bool etag_listed(const char *inm, const char *tag)
{
	size_t tl = strlen(tag);
	while(inm && *inm) {
		inm += strspn(inm, " \t,");
		if(*inm == '*')
			return true;
		if(!strncmp(inm, "W/", 2))
			inm += 2;
		size_t n = strcspn(inm, " \t,");
		if(n == tl && !strncmp(inm, tag, tl))
			return true;
		inm += n;
	}
	return false;
}

void http_cache_choose(struct host *h, struct shared_buf *buf, const char *if_none_match,
		const char *accept_encoding, struct http_cache_choice *out)
{
	*out = (struct http_cache_choice){.status = 200, .body = buf};
	struct http_cache *c = cache_of(h, buf);
	if(!c)
		return;
	bool want_gz = buf->len >= HTTP_GZIP_MIN && accepts_gzip(accept_encoding);
	if(want_gz && !c->gz && !c->compressing && !c->failed)
		start(c);
	out->gzip = want_gz && c->gz;
	out->etag = out->gzip ? c->etag_gz : c->etag;
	if(out->gzip)
		out->body = c->gz;
	/* Either representation's tag: the bytes behind both are the same. */
	if(if_none_match && (etag_listed(if_none_match, c->etag) || etag_listed(if_none_match, c->etag_gz))) {
		out->status = 304;
		out->body = NULL;
	}
}
