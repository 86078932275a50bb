/*
 * A growable, always NUL-terminated string.  Appending never fails loudly:
 * an allocation failure sets `failed`, later appends are ignored, and the
 * owner checks once at the end.
 */
#ifndef OH_STRBUF_H
#define OH_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *data; /* NULL until something is added */
	size_t len, cap;
	bool failed;
};

void strbuf_add(struct strbuf *b, const void *data, size_t len);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_putc(struct strbuf *b, char c);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (returned, free()), or NULL if anything failed; b is reset. */
char *strbuf_take(struct strbuf *b);
void strbuf_free(struct strbuf *b);

#endif
