/*
 * The topic layout (topics.h): one parser and one builder, so that every
 * reader of a topic agrees on where the device id ends and what counts as
 * a module.  Before this file five places cut topics apart by hand, each
 * with its own idea of an empty level.
 */
#include "topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"

/* The level that starts at p and ends at the next '/' or the end. */
static struct topic_level level_at(const char *p)
{
	const char *end = strchr(p, '/');
	return (struct topic_level){p, end ? (size_t)(end - p) : strlen(p)};
}

/* The text after level l, past its '/'; NULL when l is the last level. */
static const char *after(struct topic_level l)
{
	return l.p[l.len] == '/' ? l.p + l.len + 1 : NULL;
}

static bool has_empty_level(const char *p)
{
	/* p starts right after a '/': an empty level is "" at the start, "//"
	 * inside, or a trailing '/'. */
	if(!*p || *p == '/')
		return true;
	return strstr(p, "//") || p[strlen(p) - 1] == '/';
}

enum topic_place topic_parse(const char *root, const char *topic, struct topic_parts *out)
{
	memset(out, 0, sizeof *out);
	if(!root || !topic)
		return TOPIC_OTHER;
	size_t rl = strlen(root);
	if(strncmp(topic, root, rl) || topic[rl] != '/')
		return TOPIC_OTHER;
	const char *rest = topic + rl + 1;
	struct topic_level first = level_at(rest);
	if(topic_level_is(first, "device"))
		out->place = TOPIC_DEVICE;
	else if(topic_level_is(first, "orchestrator"))
		out->place = TOPIC_ORCHESTRATOR;
	else
		return TOPIC_OTHER;

	const char *levels = after(first), *p = levels;
	if(p && out->place == TOPIC_DEVICE) {
		out->id = level_at(p);
		p = after(out->id);
		if(p) {
			struct topic_level l = level_at(p);
			if(after(l)) {
				out->module = l;
				out->leaf = (struct topic_level){after(l), strlen(after(l))};
			} else {
				out->leaf = l; /* device/{id}/meta|status */
			}
		}
	} else if(p) {
		out->module = level_at(p);
		if(after(out->module))
			out->leaf = (struct topic_level){after(out->module), strlen(after(out->module))};
	}

	/* The faults, most fundamental first: the levels stay filled in so a
	 * caller can still say which device a bad message named. */
	if(strnlen(topic, TOPIC_MAX_LEN + 1) > TOPIC_MAX_LEN)
		out->error = "longer than 65535 bytes";
	else if(strpbrk(rest, "+#"))
		out->error = "a topic name holds no + or #";
	else if(!levels)
		out->error = out->place == TOPIC_DEVICE ? "no device id level" : "no module level";
	else if(has_empty_level(levels))
		out->error = "empty level";
	else if(out->place == TOPIC_DEVICE && !out->leaf.p)
		out->error = "nothing after the device id";
	else if(out->place == TOPIC_DEVICE && !ident_device_id_valid(out->id.p, out->id.len))
		out->error = "device id must be " IDENT_DEVICE_ID_RULE;
	return out->place;
}

bool topic_level_is(struct topic_level level, const char *word)
{
	return level.p && level.len == strlen(word) && !memcmp(level.p, word, level.len);
}

bool topic_level_copy(struct topic_level level, char *buf, size_t len)
{
	if(!len)
		return false;
	buf[0] = '\0';
	if(!level.p || level.len >= len)
		return false;
	memcpy(buf, level.p, level.len);
	buf[level.len] = '\0';
	return true;
}

char *topic_build(const char *root, const char *id, const char *module, const char *leaf)
{
	if(!root || (!id && !module))
		return NULL;
	const char *parts[] = {root, id ? "device" : "orchestrator", id, module, leaf};
	size_t n = 0;
	for(size_t i = 0; i < sizeof parts / sizeof *parts; i++)
		if(parts[i])
			n += strlen(parts[i]) + 1;
	if(n - 1 > TOPIC_MAX_LEN)
		return NULL;
	char *t = malloc(n);
	if(!t)
		return NULL;
	size_t at = 0;
	for(size_t i = 0; i < sizeof parts / sizeof *parts; i++)
		if(parts[i])
			at += (size_t)sprintf(t + at, "%s%s", at ? "/" : "", parts[i]);
	return t;
}
