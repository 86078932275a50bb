/*
 * Chained hash map keyed by strings, doubling at load factor 1.  Each entry
 * holds its key inline, so one allocation per entry.
 *
 * Keys come from clients (device ids, request ids, lease keys), so the hash
 * is keyed: SipHash-2-4 under a per-process random key (siphash.h).  With
 * the unseeded FNV-1a this map used before, anyone could compute thousands
 * of device ids that share a bucket and turn every lookup into a scan.
 * Iteration order therefore differs from run to run; sort what people read.
 */
#include "strmap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"

#define MIN_BUCKETS 16

struct entry {
	struct entry *next;
	void *value;
	uint32_t hash; /* the low bits pick the bucket */
	char key[];
};

struct strmap {
	struct entry **buckets;
	size_t n_buckets; /* a power of two */
	size_t size;
	uint8_t key[SIPHASH_KEY_LEN];
};

static uint32_t hash_str(const struct strmap *m, const char *s)
{
	return (uint32_t)siphash24(s, strlen(s), m->key);
}

struct strmap *strmap_new(void)
{
	struct strmap *m = calloc(1, sizeof *m);
	if(!m)
		return NULL;
	memcpy(m->key, siphash_process_key(), sizeof m->key);
	m->n_buckets = MIN_BUCKETS;
	m->buckets = calloc(m->n_buckets, sizeof *m->buckets);
	if(!m->buckets) {
		free(m);
		return NULL;
	}
	return m;
}

void strmap_free(struct strmap *m, void (*free_value)(void *))
{
	if(!m)
		return;
	for(size_t i = 0; i < m->n_buckets; i++) {
		struct entry *e = m->buckets[i];
		while(e) {
			struct entry *next = e->next;
			if(free_value)
				free_value(e->value);
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	free(m);
}

/* Moves every entry into a table of n buckets (a power of two); false when
 * that cannot be allocated (the map keeps working as it was). */
static bool rehash(struct strmap *m, size_t n)
{
	struct entry **b = calloc(n, sizeof *b);
	if(!b)
		return false;
	for(size_t i = 0; i < m->n_buckets; i++) {
		struct entry *e = m->buckets[i];
		while(e) {
			struct entry *next = e->next;
			size_t slot = e->hash & (n - 1);
			e->next = b[slot];
			b[slot] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
	return true;
}

static struct entry **find(const struct strmap *m, const char *key, uint32_t h)
{
	struct entry **pp = &m->buckets[h & (m->n_buckets - 1)];
	while(*pp && ((*pp)->hash != h || strcmp((*pp)->key, key)))
		pp = &(*pp)->next;
	return pp;
}

void *strmap_put(struct strmap *m, const char *key, void *value, int *err)
{
	uint32_t h = hash_str(m, key);
	struct entry **pp = find(m, key, h);
	if(err)
		*err = 0;
	if(*pp) {
		void *old = (*pp)->value;
		(*pp)->value = value;
		return old;
	}
	size_t len = strlen(key);
	struct entry *e = malloc(sizeof *e + len + 1);
	if(!e) {
		if(err)
			*err = 1;
		return NULL;
	}
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->value = value;
	e->next = NULL;
	*pp = e;
	if(++m->size > m->n_buckets)
		rehash(m, m->n_buckets * 2); /* on failure: longer chains, still correct */
	return NULL;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct entry *e = *find(m, key, hash_str(m, key));
	return e ? e->value : NULL;
}

void *strmap_remove(struct strmap *m, const char *key)
{
	struct entry **pp = find(m, key, hash_str(m, key));
	struct entry *e = *pp;
	if(!e)
		return NULL;
	*pp = e->next;
	void *v = e->value;
	free(e);
	m->size--;
	return v;
}

size_t strmap_size(const struct strmap *m)
{
	return m->size;
}

void strmap_compact(struct strmap *m)
{
	size_t n = MIN_BUCKETS;
	while(n < m->size)
		n *= 2;
	if(n < m->n_buckets)
		rehash(m, n);
}

size_t strmap_longest_chain(const struct strmap *m)
{
	size_t longest = 0;
	for(size_t i = 0; i < m->n_buckets; i++) {
		size_t len = 0;
		for(const struct entry *e = m->buckets[i]; e; e = e->next)
			len++;
		if(len > longest)
			longest = len;
	}
	return longest;
}

void strmap_iter_init(struct strmap_iter *it, const struct strmap *m)
{
	it->map = m;
	it->bucket = 0;
	it->entry = NULL;
	it->next = m->n_buckets ? m->buckets[0] : NULL;
}

int strmap_iter_next(struct strmap_iter *it, const char **key, void **value)
{
	/* `next` is read ahead so the current entry may be removed. */
	while(!it->next) {
		if(++it->bucket >= it->map->n_buckets)
			return 0;
		it->next = it->map->buckets[it->bucket];
	}
	struct entry *e = it->next;
	it->entry = e;
	it->next = e->next;
	if(key)
		*key = e->key;
	if(value)
		*value = e->value;
	return 1;
}
