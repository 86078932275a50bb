/*
 * ETag, 304 and a gzip copy made once per shared body, for the big
 * read-mostly replies (the registry snapshot, the NDI device list).  See
 * http_cache.c.
 */
#ifndef OH_HTTP_CACHE_H
#define OH_HTTP_CACHE_H

struct oh_http_req;
struct shared_buf;

/* Replies 200 with buf (a new reference is taken), gzip-encoded when the
 * client accepts it and the copy is ready, or 304 when If-None-Match names
 * its ETag; ETag and Vary: Accept-Encoding on both. */
int http_cache_reply(struct oh_http_req *req, const char *content_type, struct shared_buf *buf);

#endif
