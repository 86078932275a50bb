/* Reference-counted buffers; single-threaded, so plain counters suffice. */
#include "shared_buf.h"

#include <stdlib.h>
#include <string.h>

struct shared_buf *shared_buf_new(const char *data, size_t len)
{
	struct shared_buf *b = malloc(sizeof *b + len + 1);
	if(!b)
		return NULL;
	b->refs = 1;
	b->len = len;
	b->ext = NULL;
	b->ext_free = NULL;
	if(data)
		memcpy(b->data, data, len);
	b->data[len] = '\0';
	return b;
}

struct shared_buf *shared_buf_ref(struct shared_buf *b)
{
	b->refs++;
	return b;
}

void shared_buf_unref(struct shared_buf *b)
{
	if(b && --b->refs == 0) {
		if(b->ext_free)
			b->ext_free(b->ext);
		free(b);
	}
}
