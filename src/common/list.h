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
 * A zeroed `struct list` is an empty list and a zeroed `struct list_node`
 * is unlinked, so lists inside calloc'd or static structs need no set-up.
 * Walk with the node pointers and list_entry():
 *
 *	for(struct list_node *n = l->first; n; n = n->next) {
 *		struct item *it = list_entry(n, struct item, link);
 *		...
 *	}
 *
 * Take `next` before the body when the body may unlink the element.
 */
#ifndef OH_LIST_H
#define OH_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

struct list {
	struct list_node *first, *last;
};

/* The element that holds node (borrowed) as its member `member`. */
#define list_entry(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

static inline bool list_empty(const struct list *l)
{
	return !l->first;
}

/* Whether n is in l (n unlinked, or the only element of another list, is
 * not); O(1). */
static inline bool list_linked(const struct list *l, const struct list_node *n)
{
	return n->prev || l->first == n;
}

static inline void list_push_front(struct list *l, struct list_node *n)
{
	n->prev = NULL;
	n->next = l->first;
	if(l->first)
		l->first->prev = n;
	else
		l->last = n;
	l->first = n;
}

static inline void list_push_back(struct list *l, struct list_node *n)
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
static inline void list_remove(struct list *l, struct list_node *n)
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
