/*
 * A device's document: the merge rule, its size, and its compact form (see
 * device_doc.h).  The registry holds 100,000 devices in about a tenth of
 * the memory of as many jansson trees by keeping each one's fragment only,
 * and thawing it back into a tree when a message merges into it or a
 * plugin reads it.
 *
 * Thawing must give back exactly what was frozen: jansson keeps the keys in
 * insertion order, writes reals with 17 significant digits (they read back
 * to the same double), and JSON_ALLOW_NUL keeps a "\u0000" a device sent.
 * tests/unit/test_registry_doc.c checks it against merging into one tree.
 */
#include "device_doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/validate.h"

/*
 * The fields docs/protocol.md gives a type ("Registry input"), from the
 * device-agent spec, what src/device/agent.c publishes and what the web UI
 * reads.  Meta and status merge into one document, so one table serves
 * both: a status cannot turn `modules` into a number either.  A field of
 * the wrong type is left out of the merge and the rest of the message still
 * merges, so that consumers (the NDI plugin, the web UI, apps reading the
 * snapshot) can rely on these types instead of each defending itself.
 * Fields not listed are the device's own and merge as they come.
 * device_id is not here: the registry refuses a payload naming another
 * device whole.  last_seen and stale are the host's, rewritten on every
 * build of the fragment.
 */
static const struct oh_vfield known_fields[] = {
		OH_VFIELD("modules", OH_VT_ARRAY, 0, .items = OH_VT_STRING),
		OH_VFIELD("capabilities", OH_VT_OBJECT, 0, .items = OH_VT_OBJECT), /* one object per module */
		OH_VFIELD("labels", OH_VT_ARRAY, 0, .items = OH_VT_STRING),
		OH_VFIELD("feature", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD("version", OH_VT_STRING, 0),
		OH_VFIELD("ts", OH_VT_STRING, 0),
		OH_VFIELD("online", OH_VT_BOOL, 0),
		/* Not sent by the deployed agents, but the web UI shows them. */
		OH_VFIELD("name", OH_VT_STRING, 0),
		OH_VFIELD("hostname", OH_VT_STRING, 0),
		OH_VFIELD_END,
};

const struct oh_vfield *device_doc_fields(void)
{
	return known_fields;
}

static const struct oh_vfield *known_field(const char *key)
{
	for(const struct oh_vfield *f = known_fields; f->name; f++) {
		if(!strcmp(f->name, key))
			return f;
	}
	return NULL;
}

/* A value merges when it has its field's type (a merge has no absence:
 * null is a value, and a wrong one unless the field takes it). */
static bool typed_ok(const struct oh_vfield *f, const json_t *v, const char *key, char *err, size_t len)
{
	return !f || !oh_json_validate_value(v, f, key, NULL, err, len);
}

/* Fields the host rewrites on every build: not the device's bytes, and
 * not merged (a device's "online" is read by the registry, not kept). */
static bool host_field(const char *key)
{
	return !strcmp(key, "last_seen") || !strcmp(key, "stale") || !strcmp(key, "online");
}

bool device_doc_merge(json_t *doc, const json_t *obj, char *why, size_t len, bool *changed)
{
	size_t used = 0;
	const char *key;
	json_t *v;
	why[0] = '\0';
	json_object_foreach((json_t *)obj, key, v)
	{
		char one[160];
		if(!typed_ok(known_field(key), v, key, one, sizeof one)) {
			if(used < len) {
				int n = snprintf(why + used, len - used, "%s%s", used ? "; " : "", one);
				used += n > 0 ? (size_t)n : 0;
			}
			continue;
		}
		/* A restart's replayed status says "online": true where the
		 * stored document says null: no change of the document. */
		if(host_field(key))
			continue;
		if(!json_equal(json_object_get(doc, key), v)) {
			json_object_set(doc, key, v);
			*changed = true;
		}
	}
	return why[0] != '\0';
}

/* ---- sizes (limits.max_device_bytes) ------------------------------------------ */

/* The bytes of "key":value, and its comma, in compact JSON as jansson
 * writes it: '"', '\\' and control characters escaped, UTF-8 as is. */
static size_t pair_bytes(const char *key, const json_t *v)
{
	size_t n = 2; /* the quotes */
	for(const unsigned char *p = (const unsigned char *)key; *p; p++) {
		if(*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' || *p == '\r' || *p == '\t')
			n += 2;
		else
			n += *p < 0x20 ? 6 : 1;
	}
	return n + 1 + json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) + 1;
}

size_t device_doc_bytes(const json_t *doc)
{
	size_t bytes = 1; /* "{", and "}" in place of the last comma */
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)doc, key, v)
	{
		if(!host_field(key))
			bytes += pair_bytes(key, v);
	}
	return bytes;
}

size_t device_doc_merged_bytes(const json_t *doc, size_t bytes, const json_t *obj)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		char one[160];
		if(host_field(key) || !typed_ok(known_field(key), v, key, one, sizeof one))
			continue;
		const json_t *old = json_object_get(doc, key);
		/* A heartbeat mostly repeats what the document holds: no
		 * serialising for a value that stays. */
		if(old && json_equal(old, v))
			continue;
		bytes += pair_bytes(key, v) - (old ? pair_bytes(key, old) : 0);
	}
	return bytes;
}

/* ---- the compact form ----------------------------------------------------------- */

char *device_doc_freeze(const char *id, const json_t *doc, size_t *len)
{
	/* Measured first, written once into a buffer of its exact size. */
	size_t kl = strlen(id) + 3, vl = json_dumpb(doc, NULL, 0, JSON_COMPACT);
	if(!vl)
		return NULL;
	char *frag = malloc(kl + vl + 1);
	if(!frag)
		return NULL;
	snprintf(frag, kl + 1, "\"%s\":", id);
	if(json_dumpb(doc, frag + kl, vl, JSON_COMPACT) != vl) {
		free(frag);
		return NULL;
	}
	frag[kl + vl] = '\0';
	*len = kl + vl;
	return frag;
}

size_t device_doc_key_len(const char *frag)
{
	/* The id holds no quote: the key ends at the second one. */
	return (size_t)(strchr(frag + 1, '"') - frag) + 2;
}

json_t *device_doc_thaw(const char *frag, size_t len)
{
	size_t kl = device_doc_key_len(frag);
	json_t *doc = json_loadb(frag + kl, len - kl, JSON_ALLOW_NUL, NULL);
	if(doc && !json_is_object(doc)) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* ---- a warm start's fragments --------------------------------------------------- */

/* The end of the JSON string starting at p (a '"'), past its closing quote;
 * NULL when it does not close before end. */
static const char *skip_string(const char *p, const char *end)
{
	for(p++; p < end; p++) {
		if(*p == '\\')
			p++;
		else if(*p == '"')
			return p + 1;
	}
	return NULL;
}

/* The end of the JSON value starting at p; NULL when it is cut short.
 * Compact JSON: no white space between tokens. */
static const char *skip_value(const char *p, const char *end)
{
	int depth = 0;
	while(p < end) {
		if(*p == '"') {
			if(!(p = skip_string(p, end)))
				return NULL;
		} else if(*p == '{' || *p == '[') {
			depth++;
			p++;
		} else if(*p == '}' || *p == ']') {
			if(!depth)
				return p; /* the end of the enclosing object */
			depth--;
			p++;
		} else if(*p == ',' && !depth) {
			return p;
		} else {
			p++;
		}
		if(!depth && p < end && (*p == ',' || *p == '}'))
			return p;
	}
	return NULL;
}

static bool key_is(const char *k, size_t kl, const char *name)
{
	return kl == strlen(name) && !memcmp(k, name, kl);
}

char *device_doc_from_stored(const char *id, const char *text, size_t n, const char *last_seen, size_t *len,
		bool *has_modules)
{
	const char *p = text, *end = text + n;
	size_t idl = strlen(id), lsl = last_seen ? strlen(last_seen) + 2 : 4;
	/* "id":{"device_id":"id", the members, "last_seen":..,"stale":false,"online":null} */
	size_t cap = idl + 3 + 14 + idl + 2 + n + 12 + lsl + 29 + 1;
	char *frag = malloc(cap), *w = frag;
	if(!frag)
		return NULL;
	*has_modules = false;
	w += sprintf(w, "\"%s\":{\"device_id\":\"%s\"", id, id);
	if(p >= end || *p++ != '{')
		goto fail;
	while(p < end && *p != '}') {
		const char *member = p, *key_end;
		if(*p != '"' || !(key_end = skip_string(p, end)) || key_end >= end || *key_end != ':')
			goto fail;
		const char *k = p + 1;
		size_t kl = (size_t)(key_end - 1 - k);
		const char *v_end = skip_value(key_end + 1, end);
		if(!v_end || v_end == key_end + 1)
			goto fail;
		if(key_is(k, kl, "modules"))
			*has_modules = true;
		if(!key_is(k, kl, "device_id") && !key_is(k, kl, "last_seen") && !key_is(k, kl, "stale") &&
				!key_is(k, kl, "online")) {
			*w++ = ',';
			memcpy(w, member, (size_t)(v_end - member));
			w += v_end - member;
		}
		p = v_end;
		if(p < end && *p == ',')
			p++;
	}
	if(p >= end || p + 1 != end)
		goto fail;
	if(last_seen)
		w += sprintf(w, ",\"last_seen\":\"%s\"", last_seen);
	else
		w += sprintf(w, ",\"last_seen\":null");
	w += sprintf(w, ",\"stale\":false,\"online\":null}");
	*len = (size_t)(w - frag);
	return frag;

fail:
	free(frag);
	return NULL;
}

long device_doc_count_snapshot(const char *text, size_t n)
{
	static const char head[] = "{\"devices\":{";
	const char *p = text + sizeof head - 1, *end = text + n;
	long count = 0;
	if(n < sizeof head - 1 || memcmp(text, head, sizeof head - 1))
		return -1;
	while(p < end && *p != '}') {
		const char *key_end = *p == '"' ? skip_string(p, end) : NULL;
		if(!key_end || key_end >= end || *key_end != ':')
			return -1;
		const char *v_end = skip_value(key_end + 1, end);
		if(!v_end || v_end == key_end + 1)
			return -1;
		count++;
		p = v_end;
		if(p < end && *p == ',')
			p++;
	}
	return p < end ? count : -1;
}
