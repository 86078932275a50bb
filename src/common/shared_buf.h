/*
 * A reference-counted byte buffer, so one serialised snapshot can be handed
 * to the broker and to any number of HTTP responses without copies, and
 * freed when the last of them is done.
 */
#ifndef OH_SHARED_BUF_H
#define OH_SHARED_BUF_H

#include <stddef.h>

struct shared_buf {
	unsigned refs;
	size_t len;
	/* What a user derived from the bytes and keeps beside them (the HTTP
	 * side's ETag and gzip copy, src/core/http_cache.c); ext_free(ext) runs
	 * when the buffer is freed.  NULL when none. */
	void *ext;
	void (*ext_free)(void *ext);
	char data[]; /* NUL-terminated for convenience */
};

/* Returns a buffer with one reference, or NULL. */
struct shared_buf *shared_buf_new(const char *data, size_t len);
struct shared_buf *shared_buf_ref(struct shared_buf *b);
void shared_buf_unref(struct shared_buf *b);

#endif
