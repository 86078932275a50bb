/*
 * Web files compiled into the daemon (see cmake/embed.cmake).  Paths are
 * relative to the source tree, e.g. "src/web/app.js".
 */
#ifndef OH_EMBEDDED_H
#define OH_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
	const char *path;
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

/* Terminated by an entry whose path is NULL. */
extern const struct embedded_file embedded_files[];

const struct embedded_file *embedded_find(const char *path);

#endif
