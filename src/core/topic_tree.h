/*
 * MQTT topic router: maps MQTT topic filters to handler values.
 *
 * The daemon subscribes to a handful of broker filters on behalf of the core
 * and of plugins, and must hand every inbound PUBLISH to each handler whose
 * filter matches its topic. This tree does that with the semantics of MQTT
 * 3.1.1 section 4.7: `+` matches exactly one level (an empty one too), `#`
 * matches the parent level and everything below it (`a/#` matches `a`), and
 * a topic starting with `$` is not matched by a filter whose first level is
 * `+` or `#`. A leading `/` makes an empty first level.
 *
 * The tree has one node per filter level; a node's literal children sit in
 * an open-addressed hash table and its `+` and `#` children in two fixed
 * slots, so matching a topic costs O(levels x matching wildcard branches),
 * independent of how many filters are registered.
 *
 * Thread safety: none inside. Concurrent topic_tree_match() calls on a tree
 * nobody is modifying are safe (matching neither allocates nor writes);
 * anything else needs the caller's lock.
 */
#ifndef OH_TOPIC_TREE_H
#define OH_TOPIC_TREE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The longest topic name or filter MQTT can carry (a 16-bit length). */
#define TOPIC_MAX_LEN 65535

struct topic_tree;

/*
 * Create an empty tree.
 * Returns: a tree to free with topic_tree_free(), or NULL when out of memory.
 */
struct topic_tree *topic_tree_new(void);

/*
 * Free the tree and all its nodes. The values are borrowed and are NOT
 * freed: whoever registered them still owns them. NULL is a no-op.
 */
void topic_tree_free(struct topic_tree *t);

/*
 * Register `value` on `filter`.
 * filter: borrowed; the tree keeps its own copy of each level.
 * value:  borrowed; stored as is (NULL is allowed) and passed to match
 *         callbacks until removed.
 * Registering the same (filter, value) pair twice is allowed: the pair is
 * then stored twice, delivered twice per matching message, and needs two
 * topic_tree_remove() calls. Values on one filter are delivered in the order
 * they were added.
 * Returns: OH_OK; OH_ERR_INVAL if `filter` is NULL or not a valid filter
 * (see topic_filter_valid()); OH_ERR_NOMEM, in which case the tree is left
 * as it was.
 */
int topic_tree_add(struct topic_tree *t, const char *filter, void *value);

/*
 * Remove one registration of (filter, value), compared by pointer, and
 * free the nodes that no longer hold values or children.
 * filter: borrowed. value: borrowed, only compared.
 * Returns: OH_OK; OH_ERR_INVAL if `filter` is not a valid filter;
 * OH_ERR_NOT_FOUND if the pair is not registered.
 */
int topic_tree_remove(struct topic_tree *t, const char *filter, void *value);

/*
 * Number of values registered on exactly this filter (string equality of
 * the filter, not matching): the caller subscribes at the broker when this
 * goes 0 -> 1 and unsubscribes when it goes 1 -> 0.
 * Returns 0 for an invalid or unknown filter.
 */
size_t topic_tree_count(const struct topic_tree *t, const char *filter);

/*
 * Call cb(value, ud) once per registered (filter, value) pair whose filter
 * matches `topic` (a pair registered twice is called twice).
 * topic: borrowed; compared byte-wise, its UTF-8 is not checked here (the
 *        broker already did). A topic that is empty, longer than
 *        TOPIC_MAX_LEN or contains `+` or `#` is not a topic name and
 *        matches nothing.
 * cb:    must NOT add to or remove from this tree (the walk holds pointers
 *        into it); queue such changes and apply them after the call.
 * ud:    borrowed, passed through to cb.
 * The order of calls across different filters is unspecified.
 * Returns: the number of calls made.
 */
size_t topic_tree_match(
		const struct topic_tree *t, const char *topic, void (*cb)(void *value, void *ud), void *ud);

/*
 * 1 if `filter` is a valid MQTT topic filter, else 0: non-NULL, non-empty,
 * at most TOPIC_MAX_LEN bytes, well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF; NUL cannot occur in a C string), `+`
 * only as a whole level, and `#` only as the whole last level. Control
 * characters are accepted: the spec only says SHOULD NOT for them.
 */
int topic_filter_valid(const char *filter);

/*
 * 1 if `topic` is a valid MQTT topic name, else 0: non-NULL, non-empty, at
 * most TOPIC_MAX_LEN bytes, well-formed UTF-8, and no `+` or `#`.
 */
int topic_name_valid(const char *topic);

/*
 * 1 if `filter` matches `topic` with the same semantics as the tree, else 0
 * (also 0 when either is invalid). Both borrowed. Allocates nothing.
 */
int topic_matches(const char *filter, const char *topic);

/*
 * Number of nodes in the tree, the root included (so 1 when empty). For
 * tests and diagnostics: it shows that removal pruned what it should.
 */
size_t topic_tree_node_count(const struct topic_tree *t);

#ifdef __cplusplus
}
#endif
#endif
