/*
 * The identifiers host and devices must agree on: what a device id may be
 * (it becomes a topic level, so no '/', '+' or '#', and nothing a path or a
 * shell would read specially, so neither "." nor "..") and how long a
 * request id may be.
 */
#ifndef OH_IDENT_H
#define OH_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#include "oh/defs.h"

/* The rule in words, for messages that refuse an id. */
#define IDENT_DEVICE_ID_RULE "1-64 of [A-Za-z0-9._-], not \".\" or \"..\""

/* 1-OH_DEVICE_ID_MAX characters of [A-Za-z0-9._-], other than "." and "..";
 * id (borrowed) need not be NUL-terminated: len bounds it. */
bool ident_device_id_valid(const char *id, size_t len);

#endif
