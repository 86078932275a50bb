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

static bool key_is(const char *k, size_t kl, const char *name)
{
	return kl == strlen(name) && !memcmp(k, name, kl);
}

/* Fields the host rewrites on every build: not the device's bytes, and
 * not merged (a device's "online" is read by the registry, not kept).
 * k need not end in a NUL: the fragment's keys are read in place. */
static bool host_key(const char *k, size_t kl)
{
	return key_is(k, kl, "last_seen") || key_is(k, kl, "stale") || key_is(k, kl, "online");
}

static bool host_field(const char *key)
{
	return host_key(key, strlen(key));
}

/* Whether key: v merges (it has its field's type); if not, the reason is
 * added to why, whose first *used bytes are taken. */
static bool merges(const char *key, const json_t *v, char *why, size_t len, size_t *used)
{
	char one[160];
	if(typed_ok(known_field(key), v, key, one, sizeof one))
		return true;
	if(*used < len) {
		int n = snprintf(why + *used, len - *used, "%s%s", *used ? "; " : "", one);
		*used += n > 0 ? (size_t)n : 0;
	}
	return false;
}

bool device_doc_merge(json_t *doc, const json_t *obj, char *why, size_t len, bool *changed)
{
	size_t used = 0;
	const char *key;
	json_t *v;
	why[0] = '\0';
	json_object_foreach((json_t *)obj, key, v)
	{
		/* The host's fields are checked, never merged: a restart's
		 * replayed status says "online": true where the stored document
		 * says null, and that is no change of the document. */
		if(merges(key, v, why, len, &used) && !host_field(key) &&
				!json_equal(json_object_get(doc, key), v)) {
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

/* The member of compact object text at p ("key":value): its key, without
 * the quotes, in *k and *kl, its value's text in *v and *vl.  Returns where
 * the next member starts (past a comma), NULL when p holds none before end. */
static const char *next_member(
		const char *p, const char *end, const char **k, size_t *kl, const char **v, size_t *vl)
{
	const char *key_end = *p == '"' ? skip_string(p, end) : NULL;
	if(!key_end || key_end >= end || *key_end != ':')
		return NULL;
	const char *v_end = skip_value(key_end + 1, end);
	if(!v_end || v_end == key_end + 1)
		return NULL;
	*k = p + 1;
	*kl = (size_t)(key_end - 1 - *k);
	*v = key_end + 1;
	*vl = (size_t)(v_end - *v);
	return *v_end == ',' ? v_end + 1 : v_end;
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
		const char *member = p, *k, *v;
		size_t kl, vl;
		if(!(p = next_member(p, end, &k, &kl, &v, &vl)))
			goto fail;
		if(key_is(k, kl, "modules"))
			*has_modules = true;
		if(!key_is(k, kl, "device_id") && !host_key(k, kl)) {
			*w++ = ',';
			memcpy(w, member, (size_t)(v + vl - member));
			w += v + vl - member;
		}
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
		const char *k, *v;
		size_t kl, vl;
		if(!(p = next_member(p, end, &k, &kl, &v, &vl)))
			return -1;
		count++;
	}
	return p < end ? count : -1;
}

/* ---- merging into a fragment ---------------------------------------------------- */

/* Whether a key is written as it is in JSON (nothing to escape): then the
 * fragment's key text compares byte for byte. */
static bool plain_key(const char *key, size_t *len)
{
	const unsigned char *p = (const unsigned char *)key;
	for(; *p; p++) {
		if(*p < 0x20 || *p == '"' || *p == '\\')
			return false;
	}
	*len = (size_t)(p - (const unsigned char *)key);
	return true;
}

/* The member of p named key, or -1. */
static int find_member(const struct device_doc_plan *p, const char *key, size_t kl)
{
	for(size_t i = 0; i < p->n_members; i++) {
		if(p->member[i].key_len == kl && !memcmp(p->member[i].key, key, kl))
			return (int)i;
	}
	return -1;
}

/* The edit of p setting key (an edit of a member or an append), or -1. */
static int find_edit(const struct device_doc_plan *p, const char *key, size_t kl)
{
	for(size_t i = 0; i < p->n_edits; i++) {
		if(p->edit[i].key_len == kl && !memcmp(p->edit[i].key, key, kl))
			return (int)i;
	}
	return -1;
}

/* Sets key to text (copied into p->text), replacing a member in place or
 * appending, as json_object_set does; false when p is full. */
static bool plan_set(struct device_doc_plan *p, const char *key, size_t kl, const char *text, size_t tl)
{
	if(tl > sizeof p->text - p->used)
		return false;
	/* text may be where it goes (device_doc_plan dumps it there). */
	int e = find_edit(p, key, kl);
	if(e < 0) {
		if(p->n_edits == DEVICE_DOC_PLAN_MAX)
			return false;
		e = (int)p->n_edits++;
		p->edit[e].key = key;
		p->edit[e].key_len = kl;
		p->edit[e].member = find_member(p, key, kl);
		if(p->edit[e].member >= 0)
			p->member[p->edit[e].member].edit = e;
	}
	memmove(p->text + p->used, text, tl);
	p->edit[e].text = p->used;
	p->edit[e].text_len = tl;
	p->used += tl;
	return true;
}

/* v in compact JSON into out (cap bytes), as json_dumpb writes it; its
 * length, more than cap when it does not fit, 0 on failure.  The common
 * values (plain strings, integers, true, false, null) are written here:
 * through jansson's writer they were a third of a merge. */
static size_t dump_value(const json_t *v, char *out, size_t cap)
{
	const char *lit = json_is_true(v)  ? "true"
			: json_is_false(v) ? "false"
			: json_is_null(v)  ? "null"
					   : NULL;
	if(lit) {
		size_t n = strlen(lit);
		if(n <= cap)
			memcpy(out, lit, n);
		return n;
	}
	if(json_is_integer(v)) {
		int n = snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return n > 0 && (size_t)n < cap ? (size_t)n : cap + 1;
	}
	if(json_is_string(v)) {
		const unsigned char *str = (const unsigned char *)json_string_value(v);
		size_t n = json_string_length(v);
		for(size_t i = 0; i < n; i++) {
			if(str[i] < 0x20 || str[i] == '"' || str[i] == '\\')
				return json_dumpb(v, out, cap, JSON_COMPACT | JSON_ENCODE_ANY); /* to escape */
		}
		if(n + 2 <= cap) {
			out[0] = '"';
			memcpy(out + 1, str, n);
			out[n + 1] = '"';
		}
		return n + 2;
	}
	return json_dumpb(v, out, cap, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Whether a member's value text (borrowed) stands for v: the same text, or,
 * where json_equal looks past the text (an object's key order, -0.0), the
 * same value once parsed. */
static bool same_value(const char *text, size_t len, const char *dumped, size_t dl, const json_t *v)
{
	if(len == dl && !memcmp(text, dumped, len))
		return true;
	if(!json_is_object(v) && !json_is_array(v) && !json_is_real(v))
		return false;
	json_t *old = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	bool same = old && json_equal(old, v);
	json_decref(old);
	return same;
}

/* A pair's bytes as device_doc_bytes counts them, for a key that needs no
 * escaping: quotes, colon, value, comma. */
static size_t plain_pair_bytes(size_t kl, size_t vl)
{
	return kl + 2 + 1 + vl + 1;
}

bool device_doc_plan(struct device_doc_plan *p, const char *frag, size_t len, const json_t *obj,
		size_t *before, size_t *after, bool *changed, char *why, size_t why_len)
{
	size_t used = 0;
	why[0] = '\0';
	p->frag = frag;
	p->len = len;
	p->n_members = p->n_edits = p->used = 0;
	p->kl = device_doc_key_len(frag);
	const char *q = frag + p->kl, *end = frag + len;
	if(q >= end || *q++ != '{')
		return false;
	*before = 1;
	while(q < end && *q != '}') {
		if(p->n_members == DEVICE_DOC_PLAN_MAX)
			return false;
		struct device_doc_member *m = &p->member[p->n_members++];
		if(!(q = next_member(q, end, &m->key, &m->key_len, &m->value, &m->value_len)))
			return false;
		m->edit = -1;
		if(!host_key(m->key, m->key_len))
			*before += plain_pair_bytes(m->key_len, m->value_len);
	}
	if(q + 1 != end)
		return false;
	*after = *before;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t kl;
		/* The host's fields are never merged (device_doc_merge). */
		if(!merges(key, v, why, why_len, &used) || host_field(key))
			continue;
		if(!plain_key(key, &kl))
			return false;
		/* Dumped into the spare text; kept there only if it changes. */
		size_t room = sizeof p->text - p->used;
		size_t dl = dump_value(v, p->text + p->used, room);
		if(!dl || dl > room)
			return false;
		char *dumped = p->text + p->used;
		int e = find_edit(p, key, kl), i = find_member(p, key, kl);
		const char *cur = e >= 0 ? p->text + p->edit[e].text : i >= 0 ? p->member[i].value : NULL;
		size_t cur_len = e >= 0 ? p->edit[e].text_len : i >= 0 ? p->member[i].value_len : 0;
		if(cur && same_value(cur, cur_len, dumped, dl, v))
			continue;
		if(!plan_set(p, key, kl, dumped, dl))
			return false;
		*changed = true;
		*after += plain_pair_bytes(kl, dl) - (cur ? plain_pair_bytes(kl, cur_len) : 0);
	}
	/* Room for the host's fields, so that only memory can fail the write. */
	return p->n_edits + 3 <= DEVICE_DOC_PLAN_MAX && sizeof p->text - p->used >= 64;
}

char *device_doc_write(struct device_doc_plan *p, const char *last_seen, bool stale, int online, size_t *len)
{
	/* The host's fields as refresh_doc (registry.c) sets them. */
	char ls[40];
	int ll = last_seen ? snprintf(ls, sizeof ls, "\"%s\"", last_seen) : snprintf(ls, sizeof ls, "null");
	const char *on = online > 0 ? "true" : online == 0 ? "false" : "null";
	if(ll <= 0 || (size_t)ll >= sizeof ls || !plan_set(p, "last_seen", 9, ls, (size_t)ll) ||
			!plan_set(p, "stale", 5, stale ? "true" : "false", stale ? 4 : 5) ||
			!plan_set(p, "online", 6, on, strlen(on)))
		return NULL;
	/* Measured first, written once into a buffer of its exact size. */
	size_t total = p->kl + 2, n = 0;
	for(size_t i = 0; i < p->n_members; i++, n++) {
		const struct device_doc_member *m = &p->member[i];
		size_t vl = m->edit >= 0 ? p->edit[m->edit].text_len : m->value_len;
		total += (n ? 1 : 0) + m->key_len + 3 + vl;
	}
	for(size_t e = 0; e < p->n_edits; e++) {
		if(p->edit[e].member < 0)
			total += (n++ ? 1 : 0) + p->edit[e].key_len + 3 + p->edit[e].text_len;
	}
	char *out = malloc(total + 1), *w = out;
	if(!out)
		return NULL;
	memcpy(w, p->frag, p->kl);
	w += p->kl;
	*w++ = '{';
	n = 0;
	for(size_t i = 0; i < p->n_members; i++, n++) {
		const struct device_doc_member *m = &p->member[i];
		if(n)
			*w++ = ',';
		if(m->edit < 0) {
			/* "key":value as it is, from its opening quote. */
			memcpy(w, m->key - 1, (size_t)(m->value + m->value_len - (m->key - 1)));
			w += m->value + m->value_len - (m->key - 1);
			continue;
		}
		memcpy(w, m->key - 1, m->key_len + 3); /* "key": */
		w += m->key_len + 3;
		memcpy(w, p->text + p->edit[m->edit].text, p->edit[m->edit].text_len);
		w += p->edit[m->edit].text_len;
	}
	for(size_t e = 0; e < p->n_edits; e++) {
		if(p->edit[e].member >= 0)
			continue;
		if(n++)
			*w++ = ',';
		*w++ = '"';
		memcpy(w, p->edit[e].key, p->edit[e].key_len);
		w += p->edit[e].key_len;
		*w++ = '"';
		*w++ = ':';
		memcpy(w, p->text + p->edit[e].text, p->edit[e].text_len);
		w += p->edit[e].text_len;
	}
	*w++ = '}';
	*w = '\0';
	*len = (size_t)(w - out);
	return out;
}
