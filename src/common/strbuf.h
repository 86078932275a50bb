/*
 * A growable, always NUL-terminated string.  Appending never fails loudly:
 * an allocation failure sets `failed`, later appends are ignored, and the
 * owner checks once at the end.
 */
#ifndef OH_STRBUF_H
#define OH_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct strbuf {
	char *data; /* NULL until something is added */
	size_t len, cap;
	bool failed;
};

/* Appends that need room (or failed before): strbuf_add's slow path. */
void strbuf_add_grow(struct strbuf *b, const void *data, size_t len);

/* Inline while the room is there: JSON writers append a few bytes at a
 * time (json_text.c, per ack). */
static inline void strbuf_add(struct strbuf *b, const void *data, size_t len)
{
	if(b->len + len < b->cap) {
		memcpy(b->data + b->len, data, len);
		b->len += len;
		b->data[b->len] = '\0';
		return;
	}
	strbuf_add_grow(b, data, len);
}

static inline void strbuf_putc(struct strbuf *b, char c)
{
	strbuf_add(b, &c, 1);
}

void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (returned, free()), or NULL if anything failed; b is reset. */
char *strbuf_take(struct strbuf *b);
void strbuf_free(struct strbuf *b);

#endif
