/*
 * Unit tests of the intrusive list (src/common/list.h): a zeroed list is
 * empty, pushes at either end keep order, removal of the first, last,
 * middle and only element fixes both neighbours and both ends, a removed
 * node reads as unlinked and can be pushed again, and list_entry finds the
 * element from a node that is not its first member.
 */
#include <stdlib.h>

#include "check.h"
#include "list.h"

struct item {
	int value;
	struct list_node link; /* not first: list_entry must subtract */
};

/* The values from first to last, checking every back pointer on the way
 * and that `last` is where the walk ended; "" for an empty list. */
static const char *order(const struct list *l)
{
	static char buf[64];
	size_t len = 0;
	const struct list_node *prev = NULL;
	buf[0] = '\0';
	for(const struct list_node *n = l->first; n; n = n->next) {
		if(n->prev != prev)
			return "broken prev";
		const struct item *it = list_entry(n, struct item, link);
		if(len + 2 < sizeof buf)
			buf[len++] = (char)('0' + it->value);
		buf[len] = '\0';
		prev = n;
	}
	if(l->last != prev)
		return "broken last";
	return buf;
}

int main(void)
{
	struct list l = {0};
	struct item it[5] = {{0}};
	for(int i = 0; i < 5; i++)
		it[i].value = i;

	CHECK(list_empty(&l));
	CHECK_STR_EQ(order(&l), "");
	CHECK(!list_linked(&l, &it[0].link));

	list_push_back(&l, &it[1].link);
	list_push_back(&l, &it[2].link);
	list_push_front(&l, &it[0].link);
	list_push_back(&l, &it[3].link);
	list_push_back(&l, &it[4].link);
	CHECK_STR_EQ(order(&l), "01234");
	CHECK(!list_empty(&l));
	for(int i = 0; i < 5; i++)
		CHECK(list_linked(&l, &it[i].link));
	CHECK(list_entry(l.first, struct item, link) == &it[0]);
	CHECK(list_entry(l.last, struct item, link) == &it[4]);

	list_remove(&l, &it[2].link); /* middle */
	CHECK_STR_EQ(order(&l), "0134");
	CHECK(!list_linked(&l, &it[2].link));
	CHECK(!it[2].link.prev && !it[2].link.next);
	list_remove(&l, &it[0].link); /* first */
	CHECK_STR_EQ(order(&l), "134");
	list_remove(&l, &it[4].link); /* last */
	CHECK_STR_EQ(order(&l), "13");
	list_push_front(&l, &it[4].link); /* a removed node goes back in */
	CHECK_STR_EQ(order(&l), "413");
	list_remove(&l, &it[1].link);
	list_remove(&l, &it[4].link);
	CHECK_STR_EQ(order(&l), "3");
	/* The only element is linked though both its pointers are NULL. */
	CHECK(list_linked(&l, &it[3].link));
	list_remove(&l, &it[3].link); /* only */
	CHECK(list_empty(&l));
	CHECK(!l.last);
	CHECK_STR_EQ(order(&l), "");

	/* Removing while walking, taking next first, as the users do. */
	for(int i = 0; i < 5; i++)
		list_push_back(&l, &it[i].link);
	struct list_node *next;
	for(struct list_node *n = l.first; n; n = next) {
		next = n->next;
		if(list_entry(n, struct item, link)->value % 2)
			list_remove(&l, n);
	}
	CHECK_STR_EQ(order(&l), "024");
	return check_summary();
}
