/*
 * An intrusive doubly-linked list: the node lives inside the element, so
 * linking and unlinking never allocate and an element unlinks itself in
 * O(1) without a search.
 *
 * It exists because the same four-branch unlink (fix the neighbour or the
 * head, fix the other neighbour or the tail) was written out by hand in
 * every file that kept such a list; each copy was one more place to get a
 * branch wrong.
 *
 * Header-only and in include/oh/ so plugins use it too: it adds no symbol
 * to the ABI, and a plugin built against it depends on nothing the host
 * exports.
 *
 * A zeroed `struct oh_list` is an empty list and a zeroed `struct oh_list_node`
 * is unlinked, so lists inside calloc'd or static structs need no set-up.
 * Walk with the node pointers and oh_list_entry():
 *
 *	for(struct oh_list_node *n = l->first; n; n = n->next) {
 *		struct item *it = oh_list_entry(n, struct item, link);
 *		...
 *	}
 *
 * Take `next` before the body when the body may unlink the element.
 */
#ifndef OH_LIST_H
#define OH_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct oh_list_node {
	struct oh_list_node *prev, *next;
};

struct oh_list {
	struct oh_list_node *first, *last;
};

/* The element that holds node (borrowed) as its member `member`. */
#define oh_list_entry(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

static inline bool oh_list_empty(const struct oh_list *l)
{
	return !l->first;
}

/* Whether n is in l (n unlinked, or the only element of another list, is
 * not); O(1). */
static inline bool oh_list_linked(const struct oh_list *l, const struct oh_list_node *n)
{
	return n->prev || l->first == n;
}

static inline void oh_list_push_front(struct oh_list *l, struct oh_list_node *n)
{
	n->prev = NULL;
	n->next = l->first;
	if(l->first)
		l->first->prev = n;
	else
		l->last = n;
	l->first = n;
}

static inline void oh_list_push_back(struct oh_list *l, struct oh_list_node *n)
{
	n->next = NULL;
	n->prev = l->last;
	if(l->last)
		l->last->next = n;
	else
		l->first = n;
	l->last = n;
}

/* Unlinks n, which must be in l, and leaves it zeroed (unlinked). */
static inline void oh_list_remove(struct oh_list *l, struct oh_list_node *n)
{
	if(n->prev)
		n->prev->next = n->next;
	else
		l->first = n->next;
	if(n->next)
		n->next->prev = n->prev;
	else
		l->last = n->prev;
	n->prev = n->next = NULL;
}

#endif
