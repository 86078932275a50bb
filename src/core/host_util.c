/*
 * The small helpers every core file may call: the names of the error codes,
 * new ids, timestamps, the host's presence message, a lease's JSON.  They
 * call nothing else of the core, so any file can use them without joining a
 * cycle (they lived in command.c, which made the registry and the HTTP layer
 * depend on the command envelopes).
 */
#include "core.h"

#include <stdio.h>
#include <time.h>

#include "entropy.h"
#include "timeutil.h"
#include "topics.h"

const char *oh_strerror(int err)
{
	switch(err) {
	case OH_OK:
		return "success";
	case OH_ERR_INVAL:
		return "invalid argument";
	case OH_ERR_NOMEM:
		return "out of memory";
	case OH_ERR_NOT_FOUND:
		return "not found";
	case OH_ERR_EXISTS:
		return "already exists";
	case OH_ERR_IN_USE:
		return "in use by another actor";
	case OH_ERR_NOT_OWNER:
		return "held by another actor";
	case OH_ERR_NOT_HELD:
		return "not held";
	case OH_ERR_DENIED:
		return "denied";
	case OH_ERR_IO:
		return "storage or I/O error";
	case OH_ERR_NO_CONN:
		return "broker not connected";
	case OH_ERR_TOO_LARGE:
		return "too large";
	case OH_ERR_VERSION:
		return "ABI version mismatch";
	default:
		return "unknown error";
	}
}

char *host_new_id(char *buf, size_t len)
{
	/* Ids need to be unique, not secret: entropy_bytes() never blocks the
	 * loop (early boot, no getrandom) and its fallback never repeats. */
	unsigned char raw[16];
	entropy_bytes(raw, sizeof raw);
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for(size_t i = 0; i < sizeof raw && n + 2 < len; i++) {
		buf[n++] = hex[raw[i] >> 4];
		buf[n++] = hex[raw[i] & 15];
	}
	buf[n] = '\0';
	return buf;
}

char *host_now_iso(char *buf, size_t len)
{
	return time_format_utc(time(NULL), buf, len);
}

char *oh_new_id(char *buf, size_t len)
{
	return host_new_id(buf, len);
}

char *oh_format_time(double t, char *buf, size_t len)
{
	if(!time_format_utc((time_t)t, buf, len))
		snprintf(buf, len, "1970-01-01T00:00:00Z");
	return buf;
}

char *host_presence_topic(const struct host *h)
{
	return topic_build(h->cfg.topic_root, NULL, "status", NULL);
}

char *host_presence_payload(const struct host *h, bool online)
{
	char ts[32];
	json_t *j = json_pack("{s:b, s:s, s:s?}", "online", online, "node", h->node, "ts",
			online ? host_now_iso(ts, sizeof ts) : NULL);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return text;
}

json_t *host_lease_json(const char *holder, double expires_at)
{
	char when[32];
	return json_pack("{s:s, s:s}", "holder", holder, "expires_at",
			time_format_utc((time_t)expires_at, when, sizeof when));
}
