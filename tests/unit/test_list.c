/*
 * Unit tests of the intrusive list (include/oh/list.h): a zeroed list is
 * empty, pushes at either end keep order, removal of the first, last,
 * middle and only element fixes both neighbours and both ends, a removed
 * node reads as unlinked and can be pushed again, and oh_list_entry finds the
 * element from a node that is not its first member.
 */
#include <stdlib.h>

#include "check.h"
#include "oh/list.h"

struct item {
	int value;
	struct oh_list_node link; /* not first: oh_list_entry must subtract */
};

/* The values from first to last, checking every back pointer on the way
 * and that `last` is where the walk ended; "" for an empty list. */
static const char *order(const struct oh_list *l)
{
	static char buf[64];
	size_t len = 0;
	const struct oh_list_node *prev = NULL;
	buf[0] = '\0';
	for(const struct oh_list_node *n = l->first; n; n = n->next) {
		if(n->prev != prev)
			return "broken prev";
		const struct item *it = oh_list_entry(n, struct item, link);
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
	struct oh_list l = {0};
	struct item it[5] = {{0}};
	for(int i = 0; i < 5; i++)
		it[i].value = i;

	CHECK(oh_list_empty(&l));
	CHECK_STR_EQ(order(&l), "");
	CHECK(!oh_list_linked(&l, &it[0].link));

	oh_list_push_back(&l, &it[1].link);
	oh_list_push_back(&l, &it[2].link);
	oh_list_push_front(&l, &it[0].link);
	oh_list_push_back(&l, &it[3].link);
	oh_list_push_back(&l, &it[4].link);
	CHECK_STR_EQ(order(&l), "01234");
	CHECK(!oh_list_empty(&l));
	for(int i = 0; i < 5; i++)
		CHECK(oh_list_linked(&l, &it[i].link));
	CHECK(oh_list_entry(l.first, struct item, link) == &it[0]);
	CHECK(oh_list_entry(l.last, struct item, link) == &it[4]);

	oh_list_remove(&l, &it[2].link); /* middle */
	CHECK_STR_EQ(order(&l), "0134");
	CHECK(!oh_list_linked(&l, &it[2].link));
	CHECK(!it[2].link.prev && !it[2].link.next);
	oh_list_remove(&l, &it[0].link); /* first */
	CHECK_STR_EQ(order(&l), "134");
	oh_list_remove(&l, &it[4].link); /* last */
	CHECK_STR_EQ(order(&l), "13");
	oh_list_push_front(&l, &it[4].link); /* a removed node goes back in */
	CHECK_STR_EQ(order(&l), "413");
	oh_list_remove(&l, &it[1].link);
	oh_list_remove(&l, &it[4].link);
	CHECK_STR_EQ(order(&l), "3");
	/* The only element is linked though both its pointers are NULL. */
	CHECK(oh_list_linked(&l, &it[3].link));
	oh_list_remove(&l, &it[3].link); /* only */
	CHECK(oh_list_empty(&l));
	CHECK(!l.last);
	CHECK_STR_EQ(order(&l), "");

	/* Removing while walking, taking next first, as the users do. */
	for(int i = 0; i < 5; i++)
		oh_list_push_back(&l, &it[i].link);
	struct oh_list_node *next;
	for(struct oh_list_node *n = l.first; n; n = next) {
		next = n->next;
		if(oh_list_entry(n, struct item, link)->value % 2)
			oh_list_remove(&l, n);
	}
	CHECK_STR_EQ(order(&l), "024");
	return check_summary();
}
