/*
 * A string-keyed hash map with open chaining: the registry's devices, the
 * leases, the pending commands and the jobs all live in one of these.
 * Keys are copied; values are borrowed pointers the caller owns.  The hash
 * is SipHash under a per-process random key, so clients cannot pick keys
 * that collide, and iteration order changes from run to run.
 */
#ifndef OH_STRMAP_H
#define OH_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* Frees the map; free_value (may be NULL) is called for each value. */
void strmap_free(struct strmap *m, void (*free_value)(void *value));

/* Returns the previous value for key (NULL if none), replacing it.
 * *err is set non-zero on allocation failure (the map is unchanged). */
void *strmap_put(struct strmap *m, const char *key, void *value, int *err);
void *strmap_get(const struct strmap *m, const char *key);
/* Removes and returns the value, or NULL. */
void *strmap_remove(struct strmap *m, const char *key);
size_t strmap_size(const struct strmap *m);

/* Shrinks the bucket array to fit the entries left (it only grows on its
 * own), e.g. when a table that held a burst is idle again.  Not during an
 * iteration.  Allocation failure leaves the map as it was. */
void strmap_compact(struct strmap *m);
/* The most entries sharing one bucket: for tests and diagnostics. */
size_t strmap_longest_chain(const struct strmap *m);

/* Iteration; nothing may be added during it, but the entry just returned
 * may be removed with strmap_remove. */
struct strmap_iter {
	const struct strmap *map;
	size_t bucket;
	void *entry;
	void *next;
};
void strmap_iter_init(struct strmap_iter *it, const struct strmap *m);
/* Returns 0 at the end; else sets *key and *value (either may be NULL). */
int strmap_iter_next(struct strmap_iter *it, const char **key, void **value);

#endif
