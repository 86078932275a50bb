/*
 * Client text inside our messages.  Error texts quote what a client sent
 * (an action, an actor, a key), cut to a length; JSON strings must be
 * UTF-8, and jansson refuses a string that is not, so a cut inside a
 * character used to leave an ack without its "error".  These two keep such
 * text valid: one cuts on a character boundary, the other is the last line
 * of defence for text that arrives already broken.
 */
#ifndef OH_UTF8_H
#define OH_UTF8_H

#include <stddef.h>

#include <jansson.h>

/* Cutting on a character boundary is oh_utf8_cut(), shared with plugins. */
#include "oh/utf8.h"

/* How many bytes the valid UTF-8 character at s takes (at most left), or 0
 * when it is not one (a stray continuation byte, a truncated or overlong
 * sequence, a surrogate, beyond U+10FFFF). */
size_t utf8_char_len(const unsigned char *s, size_t left);

/* A JSON string of s (borrowed; returned), with every byte that is not part
 * of valid UTF-8 replaced by '?'; NULL only when out of memory. */
json_t *utf8_json_string(const char *s);

#endif
