/*
 * A device's document in the registry: the rule that merges a meta or
 * status into it, its size as limits.max_device_bytes counts it, and its
 * compact form, the cached snapshot fragment "\"id\":{...}" that the
 * registry keeps instead of a jansson tree (docs/performance.md, "Memory").
 * Freezing a tree and thawing the fragment give back the same tree, byte
 * for byte once dumped again (key order, numbers, escapes): the registry
 * drops trees between changes and relies on that.
 */
#ifndef OH_DEVICE_DOC_H
#define OH_DEVICE_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Merges obj (borrowed) into doc key by key, later wins, leaving out the
 * fields docs/protocol.md types ("Registry input") when they have another
 * type.  Those are named in why ("" when there were none); returns whether
 * any was.  The host's fields (last_seen, stale, online) are checked but
 * never merged: the registry sets them.  *changed is set when doc changed. */
bool device_doc_merge(json_t *doc, const json_t *obj, char *why, size_t len, bool *changed);

struct oh_vfield;
/* The typed fields above (oh/validate.h, ended by OH_VFIELD_END): readers
 * of the snapshot may rely on them (tests/fuzz/fuzz_registry.c checks). */
const struct oh_vfield *device_doc_fields(void);

/* The bytes of doc (borrowed) in compact JSON without the host's fields
 * (last_seen, stale, online), and what they become once obj is merged into
 * it, given that doc measures `bytes` now. */
size_t device_doc_bytes(const json_t *doc);
size_t device_doc_merged_bytes(const json_t *doc, size_t bytes, const json_t *obj);

/* "\"id\":" followed by doc in compact JSON (returned, free()), its length
 * in *len; NULL out of memory.  id must need no escaping (device ids are
 * [A-Za-z0-9._-]). */
char *device_doc_freeze(const char *id, const json_t *doc, size_t *len);
/* The object a fragment of device_doc_freeze() holds (returned,
 * json_decref), or NULL out of memory. */
json_t *device_doc_thaw(const char *frag, size_t len);
/* Where the object starts in such a fragment: strlen(id) + 3. */
size_t device_doc_key_len(const char *frag);

/*
 * A warm start's fragment straight from the stored text (borrowed; compact
 * JSON as device_doc_freeze wrote it) without a tree: the stored device_id,
 * last_seen, stale and online left out, the rest in order, then
 * "last_seen": last_seen (borrowed ISO time, or NULL for null), "stale":
 * false, "online": null, exactly what thawing, deleting those and freezing
 * again would give (tests/unit/test_registry_doc.c).  Returned (free()),
 * its length in *len, and whether the document has "modules" in
 * *has_modules; NULL out of memory or when the text is not such an object
 * (then parse it).
 */
char *device_doc_from_stored(const char *id, const char *text, size_t n, const char *last_seen, size_t *len,
		bool *has_modules);

/*
 * A merge straight into a fragment, without a tree: what a cold device's
 * message costs, at the price of a warm one's (docs/performance.md,
 * "Memory").  device_doc_plan reads the fragment's members and plans
 * merging obj into them as device_doc_merge would (later wins, the typed
 * fields, *changed, why); device_doc_write then sets the host's fields as
 * the registry's refresh does and writes the new fragment.  The result is
 * byte for byte what thawing, merging, refreshing and freezing give
 * (tests/unit/test_registry_doc.c): a value replaced in place, a new key
 * appended.
 */
#define DEVICE_DOC_PLAN_MAX 64
struct device_doc_member {
	const char *key; /* in the fragment, without its quotes */
	size_t key_len;
	const char *value; /* its JSON text, in the fragment */
	size_t value_len;
	int edit; /* the edit replacing it, or -1 */
};
struct device_doc_plan {
	const char *frag; /* borrowed, until device_doc_write */
	size_t len, kl;   /* kl: device_doc_key_len(frag) */
	struct device_doc_member member[DEVICE_DOC_PLAN_MAX];
	size_t n_members;
	struct {
		const char *key; /* borrowed from obj, or a literal */
		size_t key_len;
		int member;            /* the member it replaces, or -1: appended */
		size_t text, text_len; /* the new value, in text[] */
	} edit[DEVICE_DOC_PLAN_MAX];
	size_t n_edits;
	char text[4096];
	size_t used;
};
/* Plans merging obj (borrowed, like frag, until device_doc_write; NULL for
 * none) into frag.  *before and *after: the document's bytes as
 * device_doc_bytes counts them, now and once merged.  false when this way
 * cannot take it (more than DEVICE_DOC_PLAN_MAX members, a key to escape,
 * values over 4 KB, not a fragment): then thaw and merge the tree. */
bool device_doc_plan(struct device_doc_plan *p, const char *frag, size_t len, const json_t *obj,
		size_t *before, size_t *after, bool *changed, char *why, size_t why_len);
/* The new fragment (returned, free()) with last_seen (borrowed ISO time,
 * NULL for null), stale and online (1, 0, -1 for null) set, its length in
 * *len; NULL out of memory (or past the plan's room). */
char *device_doc_write(struct device_doc_plan *p, const char *last_seen, bool stale, int online, size_t *len);

/* The devices in a registry snapshot's text (borrowed; "{\"devices\":{...",
 * as snapshot.c writes it), counted without parsing it; -1 when it is not
 * such a text (then parse it). */
long device_doc_count_snapshot(const char *text, size_t n);

#endif
