/*
 * MQTT topic router: a tree of filter levels mapping filters to values.
 *
 * Each node is one level of one or more filters. Literal children live in a
 * per-node open-addressed hash table (linear probing, backward-shift
 * deletion, so no tombstones pile up under subscribe/unsubscribe churn); the
 * `+` and `#` children have a slot each. A `#` node only ever holds values:
 * it is never descended into, its values are delivered when its parent is
 * reached. Every node but the root holds values or children; removal prunes
 * to keep it so, which is also what lets a failed add undo itself by pruning.
 *
 * Matching walks the tree without recursion or allocation: the parent
 * pointers are the stack, and the topic position of the parent level is
 * recovered by scanning back to the previous '/'. So a filter of 30,000
 * levels cannot overflow the C stack, a message cannot fail to route for
 * lack of memory, and concurrent readers of an unchanging tree share nothing
 * writable.
 */
#include "topic_tree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oh/defs.h"

enum node_kind {
	KIND_ROOT,
	KIND_LIT,
	KIND_PLUS,
	KIND_HASH
};

struct node {
	struct node *parent;
	struct node *plus;  /* the `+` child, or NULL */
	struct node *hash;  /* the `#` child, or NULL */
	struct node **kids; /* literal children; kids_cap slots, NULL = free */
	void **vals;        /* values registered on the filter ending here */
	uint32_t kids_cap;  /* 0 or a power of two */
	uint32_t kids_n;
	uint32_t vals_n;
	uint32_t vals_cap;
	uint32_t hv;  /* hash of level[], the key in the parent's table */
	uint32_t len; /* of level[], at most TOPIC_MAX_LEN */
	enum node_kind kind;
	char level[]; /* not NUL-terminated */
};

struct topic_tree {
	struct node *root;
	size_t nodes;
};

/* FNV-1a, then murmur3's finaliser: FNV alone leaves the low bits, which
 * pick the slot, poorly mixed for short keys like "dev1", "dev2". */
static uint32_t level_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for(size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Length of s, or max + 1 if it is longer: never reads past max + 1 bytes
 * (strnlen is POSIX, not C17). */
static size_t bounded_len(const char *s, size_t max)
{
	size_t n = 0;

	while(n <= max && s[n])
		n++;
	return n;
}

/* Well-formed UTF-8 per RFC 3629, which MQTT 3.1.1 section 1.5.3 requires:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while(i < len) {
		unsigned c = s[i];
		uint32_t cp;
		size_t more;

		if(c < 0x80) {
			i++;
			continue;
		} else if(c < 0xC2) {
			return 0; /* stray continuation byte, or overlong 2-byte form */
		} else if(c < 0xE0) {
			more = 1;
			cp = c & 0x1F;
		} else if(c < 0xF0) {
			more = 2;
			cp = c & 0x0F;
		} else if(c < 0xF5) {
			more = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if(len - i <= more)
			return 0;
		for(size_t k = 1; k <= more; k++) {
			if((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if(more == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
			return 0;
		if(more == 3 && (cp < 0x10000 || cp > 0x10FFFF))
			return 0;
		i += more + 1;
	}
	return 1;
}

int topic_filter_valid(const char *filter)
{
	size_t len;

	if(!filter)
		return 0;
	len = bounded_len(filter, TOPIC_MAX_LEN);
	if(len == 0 || len > TOPIC_MAX_LEN)
		return 0;
	if(!utf8_valid((const unsigned char *)filter, len))
		return 0;
	for(size_t i = 0; i < len; i++) {
		char c = filter[i];

		if(c != '+' && c != '#')
			continue;
		/* A wildcard must fill its whole level... */
		if(i > 0 && filter[i - 1] != '/')
			return 0;
		if(i + 1 < len && filter[i + 1] != '/')
			return 0;
		/* ...and `#` must also be the last level. */
		if(c == '#' && i + 1 != len)
			return 0;
	}
	return 1;
}

int topic_name_valid(const char *topic)
{
	size_t len;

	if(!topic)
		return 0;
	len = bounded_len(topic, TOPIC_MAX_LEN);
	if(len == 0 || len > TOPIC_MAX_LEN)
		return 0;
	if(memchr(topic, '+', len) || memchr(topic, '#', len))
		return 0;
	return utf8_valid((const unsigned char *)topic, len);
}

/* End of the level starting at s: the next '/' or the terminating NUL. */
static const char *level_end(const char *s)
{
	while(*s && *s != '/')
		s++;
	return s;
}

int topic_matches(const char *filter, const char *topic)
{
	const char *f = filter;
	const char *tp = topic; /* start of the current topic level; NULL once
	                           the topic has no levels left (an empty last
	                           level is a pointer to the NUL, not NULL) */

	if(!topic_filter_valid(filter) || !topic_name_valid(topic))
		return 0;
	if(topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return 0;

	for(;;) {
		const char *fe = level_end(f);
		size_t flen = (size_t)(fe - f);
		const char *te;

		/* Checked before running out of topic: `a/#` matches `a`. */
		if(flen == 1 && f[0] == '#')
			return 1;
		if(!tp)
			return 0;
		te = level_end(tp);
		if(!(flen == 1 && f[0] == '+')) {
			if(flen != (size_t)(te - tp) || memcmp(f, tp, flen))
				return 0;
		}
		tp = *te ? te + 1 : NULL;
		if(!*fe)
			return tp == NULL;
		f = fe + 1;
	}
}

/* ---- nodes ---- */

static struct node *node_new(
		struct topic_tree *t, struct node *parent, const char *level, size_t len, enum node_kind kind)
{
	struct node *n = calloc(1, sizeof(*n) + len);

	if(!n)
		return NULL;
	n->parent = parent;
	n->kind = kind;
	n->len = (uint32_t)len;
	n->hv = level_hash(level, len);
	memcpy(n->level, level, len);
	t->nodes++;
	return n;
}

static void node_free(struct topic_tree *t, struct node *n)
{
	free(n->kids);
	free(n->vals);
	free(n);
	t->nodes--;
}

static struct node *kid_find(const struct node *n, const char *level, size_t len, uint32_t hv)
{
	uint32_t mask, i;

	if(!n->kids_n)
		return NULL;
	mask = n->kids_cap - 1;
	for(i = hv & mask; n->kids[i]; i = (i + 1) & mask) {
		const struct node *c = n->kids[i];

		if(c->hv == hv && c->len == len && !memcmp(c->level, level, len)) {
			return n->kids[i];
		}
	}
	return NULL;
}

/* Place c in a table known to have a free slot. */
static void kid_place(struct node **kids, uint32_t cap, struct node *c)
{
	uint32_t mask = cap - 1;
	uint32_t i = c->hv & mask;

	while(kids[i])
		i = (i + 1) & mask;
	kids[i] = c;
}

static int kid_insert(struct node *n, struct node *c)
{
	/* Keep the load at or under 3/4 so probe runs stay short. */
	if((uint64_t)(n->kids_n + 1) * 4 > (uint64_t)n->kids_cap * 3) {
		uint32_t cap = n->kids_cap ? n->kids_cap * 2 : 4;
		struct node **kids = calloc(cap, sizeof(*kids));

		if(!kids)
			return OH_ERR_NOMEM;
		for(uint32_t i = 0; i < n->kids_cap; i++) {
			if(n->kids[i])
				kid_place(kids, cap, n->kids[i]);
		}
		free(n->kids);
		n->kids = kids;
		n->kids_cap = cap;
	}
	kid_place(n->kids, n->kids_cap, c);
	n->kids_n++;
	return OH_OK;
}

static void kid_delete(struct node *n, const struct node *c)
{
	uint32_t mask = n->kids_cap - 1;
	uint32_t i = c->hv & mask;

	while(n->kids[i] != c)
		i = (i + 1) & mask;
	/* Backward-shift deletion: pull later members of the probe run into
	 * the hole unless that would move one before its home slot. */
	for(uint32_t j = (i + 1) & mask; n->kids[j]; j = (j + 1) & mask) {
		uint32_t home = n->kids[j]->hv & mask;

		/* Leave kids[j] if its home lies cyclically in (i, j]. */
		if(i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		n->kids[i] = n->kids[j];
		i = j;
	}
	n->kids[i] = NULL;
	if(--n->kids_n == 0) {
		free(n->kids);
		n->kids = NULL;
		n->kids_cap = 0;
	}
}

static enum node_kind level_kind(const char *level, size_t len)
{
	if(len == 1 && level[0] == '+')
		return KIND_PLUS;
	if(len == 1 && level[0] == '#')
		return KIND_HASH;
	return KIND_LIT;
}

/* The child of n for one level of a (valid) filter, or NULL. */
static struct node *child_get(const struct node *n, const char *level, size_t len)
{
	switch(level_kind(level, len)) {
	case KIND_PLUS:
		return n->plus;
	case KIND_HASH:
		return n->hash;
	default:
		return kid_find(n, level, len, level_hash(level, len));
	}
}

/* The node for exactly this (valid) filter, or NULL. */
static struct node *filter_node(const struct topic_tree *t, const char *filter)
{
	struct node *n = t->root;
	const char *p = filter;

	for(;;) {
		const char *e = level_end(p);

		n = child_get(n, p, (size_t)(e - p));
		if(!n || !*e)
			return n;
		p = e + 1;
	}
}

/* Free n and its ancestors while they hold neither values nor children. */
static void prune(struct topic_tree *t, struct node *n)
{
	while(n->kind != KIND_ROOT && !n->vals_n && !n->kids_n && !n->plus && !n->hash) {
		struct node *p = n->parent;

		if(n->kind == KIND_PLUS)
			p->plus = NULL;
		else if(n->kind == KIND_HASH)
			p->hash = NULL;
		else
			kid_delete(p, n);
		node_free(t, n);
		n = p;
	}
}

/* ---- the tree ---- */

struct topic_tree *topic_tree_new(void)
{
	struct topic_tree *t = calloc(1, sizeof(*t));

	if(!t)
		return NULL;
	t->root = node_new(t, NULL, "", 0, KIND_ROOT);
	if(!t->root) {
		free(t);
		return NULL;
	}
	return t;
}

void topic_tree_free(struct topic_tree *t)
{
	struct node *n;

	if(!t)
		return;
	/* Post-order walk without recursion, as filters can be thousands of
	 * levels deep. Each node's kids_cap doubles as the cursor of its table
	 * scan: the table is being thrown away, so shrinking the count of slots
	 * still to look at costs nothing and keeps the walk linear. */
	n = t->root;
	while(n) {
		struct node *c = NULL;

		if(n->plus) {
			c = n->plus;
			n->plus = NULL;
		} else if(n->hash) {
			c = n->hash;
			n->hash = NULL;
		} else {
			while(n->kids_cap && !c)
				c = n->kids[--n->kids_cap];
		}
		if(c) {
			n = c;
		} else {
			struct node *p = n->parent;

			node_free(t, n);
			n = p;
		}
	}
	free(t);
}

int topic_tree_add(struct topic_tree *t, const char *filter, void *value)
{
	struct node *n;
	const char *p;

	if(!t || !topic_filter_valid(filter))
		return OH_ERR_INVAL;
	n = t->root;
	p = filter;
	for(;;) {
		const char *e = level_end(p);
		size_t len = (size_t)(e - p);
		struct node *c = child_get(n, p, len);

		if(!c) {
			enum node_kind kind = level_kind(p, len);

			c = node_new(t, n, p, len, kind);
			if(!c)
				goto fail_prune;
			if(kind == KIND_PLUS) {
				n->plus = c;
			} else if(kind == KIND_HASH) {
				n->hash = c;
			} else if(kid_insert(n, c)) {
				node_free(t, c);
				goto fail_prune;
			}
		}
		n = c;
		if(!*e)
			break;
		p = e + 1;
	}
	if(n->vals_n == n->vals_cap) {
		uint32_t cap = n->vals_cap ? n->vals_cap * 2 : 1;
		void **vals;

		/* vals_n is uint32_t; four billion values on one filter is not a
		 * use, but wrapping would corrupt the array. */
		if(n->vals_cap > UINT32_MAX / 2)
			goto fail_prune;
		vals = realloc(n->vals, cap * sizeof(*vals));
		if(!vals)
			goto fail_prune;
		n->vals = vals;
		n->vals_cap = cap;
	}
	n->vals[n->vals_n++] = value;
	return OH_OK;

fail_prune:
	/* Only the nodes this call created can be empty: drop them. */
	prune(t, n);
	return OH_ERR_NOMEM;
}

int topic_tree_remove(struct topic_tree *t, const char *filter, void *value)
{
	struct node *n;
	uint32_t i;

	if(!t || !topic_filter_valid(filter))
		return OH_ERR_INVAL;
	n = filter_node(t, filter);
	if(!n)
		return OH_ERR_NOT_FOUND;
	i = 0;
	while(i < n->vals_n && n->vals[i] != value)
		i++;
	if(i == n->vals_n)
		return OH_ERR_NOT_FOUND;
	/* memmove, not swap-with-last: keeps registration order of the rest. */
	memmove(&n->vals[i], &n->vals[i + 1], (n->vals_n - i - 1) * sizeof(*n->vals));
	if(--n->vals_n == 0) {
		free(n->vals);
		n->vals = NULL;
		n->vals_cap = 0;
	}
	prune(t, n);
	return OH_OK;
}

size_t topic_tree_count(const struct topic_tree *t, const char *filter)
{
	const struct node *n;

	if(!t || !topic_filter_valid(filter))
		return 0;
	n = filter_node(t, filter);
	return n ? n->vals_n : 0;
}

size_t topic_tree_node_count(const struct topic_tree *t)
{
	return t ? t->nodes : 0;
}

static size_t deliver(const struct node *n, void (*cb)(void *value, void *ud), void *ud)
{
	for(uint32_t i = 0; i < n->vals_n; i++)
		cb(n->vals[i], ud);
	return n->vals_n;
}

size_t topic_tree_match(
		const struct topic_tree *t, const char *topic, void (*cb)(void *value, void *ud), void *ud)
{
	/* Where the walk resumes on arriving at (or returning to) node n. */
	enum {
		ENTER,
		AFTER_PLUS,
		AFTER_LIT
	} step = ENTER;
	const struct node *n;
	size_t len, pos, calls = 0;
	int dollar;

	if(!t || !topic || !cb)
		return 0;
	for(len = 0; topic[len]; len++) {
		if(len == TOPIC_MAX_LEN)
			return 0;
		if(topic[len] == '+' || topic[len] == '#')
			return 0;
	}
	if(len == 0)
		return 0;
	dollar = topic[0] == '$';

	/* n sits at depth d, having matched topic levels 0..d-1; pos is where
	 * level d starts, or len + 1 once all levels are matched. */
	n = t->root;
	pos = 0;
	for(;;) {
		if(step == ENTER) {
			/* `$...` topics are invisible to wildcards in the first level. */
			int wild = !(dollar && n->kind == KIND_ROOT);

			/* `#` matches here whether levels remain or not. */
			if(n->hash && wild)
				calls += deliver(n->hash, cb, ud);
			if(pos > len) {
				calls += deliver(n, cb, ud);
				step = AFTER_LIT; /* nothing more below: go up */
			} else if(n->plus && wild) {
				n = n->plus;
				pos = (size_t)(level_end(topic + pos) - topic) + 1;
				continue;
			} else {
				step = AFTER_PLUS;
			}
		}
		if(step == AFTER_PLUS) {
			size_t e = (size_t)(level_end(topic + pos) - topic);
			const struct node *c =
					kid_find(n, topic + pos, e - pos, level_hash(topic + pos, e - pos));

			if(c) {
				n = c;
				pos = e + 1;
				step = ENTER;
				continue;
			}
			step = AFTER_LIT;
		}
		/* AFTER_LIT: every branch of n is done; return to the parent. */
		if(n->kind == KIND_ROOT)
			return calls;
		step = n->kind == KIND_PLUS ? AFTER_PLUS : AFTER_LIT;
		n = n->parent;
		/* pos - 1 ends the parent's level (a '/' or the NUL); scan back
		 * to the '/' before it, or to the start of the topic. */
		pos--;
		while(pos > 0 && topic[pos - 1] != '/')
			pos--;
	}
}
