/*
 * ETag, 304 and a gzip copy made once per shared body, for the big
 * read-mostly replies (the registry snapshot, the NDI device list).  See
 * http_cache.c.  It decides; http.c (http_reply_buf) replies.
 */
#ifndef OH_HTTP_CACHE_H
#define OH_HTTP_CACHE_H

#include <stdbool.h>

struct host;
struct shared_buf;

struct http_cache_choice {
	unsigned status;         /* 200, or 304 when If-None-Match named the body */
	struct shared_buf *body; /* borrowed: what to send with a 200, the gzip copy or buf */
	bool gzip;               /* body is the gzip copy: say Content-Encoding: gzip */
	const char *etag;        /* borrowed (lives with buf); NULL when out of memory */
};

/* The answer to a GET of buf, a body that never changes once replied
 * with, given the request's If-None-Match and Accept-Encoding (either
 * NULL).  Starts the gzip copy when one is wanted and not made yet. */
void http_cache_choose(struct host *h, struct shared_buf *buf, const char *if_none_match,
		const char *accept_encoding, struct http_cache_choice *out);

#endif
