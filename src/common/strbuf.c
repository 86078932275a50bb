/* Growable strings: doubling capacity, one check for failure at the end. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(struct strbuf *b, size_t more)
{
	if(b->failed)
		return false;
	if(b->len + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while(cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if(!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void strbuf_add_grow(struct strbuf *b, const void *data, size_t len)
{
	if(!reserve(b, len))
		return;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void strbuf_puts(struct strbuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if(n < 0) {
		b->failed = true;
		return;
	}
	if(!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *strbuf_take(struct strbuf *b)
{
	char *out = b->failed ? NULL : b->data;
	if(b->failed)
		free(b->data);
	else if(!out)
		out = calloc(1, 1);
	*b = (struct strbuf){0};
	return out;
}

void strbuf_free(struct strbuf *b)
{
	free(b->data);
	*b = (struct strbuf){0};
}
