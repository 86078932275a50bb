/*
 * Unit tests of the MQTT topic router (src/core/topic_tree.c).
 *
 * Covers the examples of MQTT 3.1.1 section 4.7, filter and name validity,
 * empty levels, several values per filter, removal with pruning, and counts;
 * then cross-checks the tree against the standalone matcher and against
 * libmosquitto's mosquitto_topic_matches_sub() on random filters and topics
 * from a small alphabet (so collisions and edge cases are frequent), and
 * finally routes through 100,000 filters. Prints "N passed, N failed" last
 * and exits non-zero on any failure.
 *
 * Build and run (from the repository root):
 *   gcc -std=c17 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *     -Iinclude -Isrc/core src/core/topic_tree.c tests/unit/test_topic_tree.c \
 *     -lmosquitto -o /tmp/ttt && /tmp/ttt
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "oh/defs.h"
#include "topic_tree.h"

#include "check.h"

/* CHECK with the filter and topic that failed, for table-driven and random
 * cases where the line number alone says little. */
#define CHECK_FT(cond, f, t)                                                                                 \
	do {                                                                                                 \
		if(!check_report(!!(cond), __FILE__, __LINE__, #cond))                                       \
			printf("     filter \"%s\", topic \"%s\"\n", (f), (t));                              \
	} while(0)

#define V(i) ((void *)(uintptr_t)(i))

/* ---- helpers ---- */

/* Records up to 16 delivered values in order; counts all of them. */
struct seen {
	size_t n;
	void *v[16];
};

static void record(void *value, void *ud)
{
	struct seen *s = ud;

	if(s->n < 16)
		s->v[s->n] = value;
	s->n++;
}

/* Counts deliveries per value index into an array of counters. */
static void tally(void *value, void *ud)
{
	unsigned *counts = ud;

	counts[(uintptr_t)value]++;
}

static void ignore(void *value, void *ud)
{
	(void)value;
	(void)ud;
}

static int mosq_matches(const char *filter, const char *topic)
{
	bool r = false;

	if(mosquitto_topic_matches_sub(filter, topic, &r) != MOSQ_ERR_SUCCESS)
		return -1;
	return r ? 1 : 0;
}

/* How many times a tree holding only `filter` delivers for `topic`. */
static size_t tree_matches(const char *filter, const char *topic)
{
	struct topic_tree *t = topic_tree_new();
	size_t n;

	if(!t || topic_tree_add(t, filter, V(1))) {
		topic_tree_free(t);
		return (size_t)-1;
	}
	n = topic_tree_match(t, topic, ignore, NULL);
	topic_tree_free(t);
	return n;
}

/* One matching case, checked three ways. */
static void expect(const char *filter, const char *topic, int want)
{
	CHECK_FT(topic_matches(filter, topic) == want, filter, topic);
	CHECK_FT(tree_matches(filter, topic) == (size_t)want, filter, topic);
	CHECK_FT(mosq_matches(filter, topic) == want, filter, topic);
}

/* ---- tests ---- */

/* The examples of MQTT 3.1.1 sections 4.7.1.2, 4.7.1.3 and 4.7.2. */
static void test_spec_table(void)
{
	expect("sport/tennis/player1/#", "sport/tennis/player1", 1);
	expect("sport/tennis/player1/#", "sport/tennis/player1/ranking", 1);
	expect("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1);
	expect("sport/tennis/player1/#", "sport/tennis/player2", 0);
	expect("sport/#", "sport", 1);
	expect("sport/#", "sport/tennis", 1);
	expect("sport/#", "sports", 0);
	expect("sport/tennis/#", "sport/tennis", 1);
	expect("sport/tennis/#", "sport/tennis/player1/ranking", 1);
	expect("sport/tennis/#", "sport", 0);
	expect("#", "sport/tennis/player1", 1);
	expect("#", "/", 1);
	expect("sport/tennis/+", "sport/tennis/player1", 1);
	expect("sport/tennis/+", "sport/tennis/player2", 1);
	expect("sport/tennis/+", "sport/tennis/player1/ranking", 0);
	expect("sport/+", "sport", 0);
	expect("sport/+", "sport/", 1);
	expect("sport/+/player1", "sport/tennis/player1", 1);
	expect("+/tennis/#", "sport/tennis", 1);
	expect("+/tennis/#", "sport/tennis/player1", 1);
	expect("+/+", "/finance", 1);
	expect("/+", "/finance", 1);
	expect("+", "/finance", 0);
	expect("+", "finance", 1);

	/* Topics starting with '$' (4.7.2). */
	expect("#", "$SYS/monitor/Clients", 0);
	expect("#", "$SYS", 0);
	expect("+", "$SYS", 0);
	expect("+/monitor/Clients", "$SYS/monitor/Clients", 0);
	expect("$SYS/#", "$SYS/monitor/Clients", 1);
	expect("$SYS/#", "$SYS", 1);
	expect("$SYS/monitor/+", "$SYS/monitor/Clients", 1);
	expect("$SYS/monitor/+", "$SYS/monitor", 0);
	/* Only the first level is special. */
	expect("a/+", "a/$x", 1);
	expect("a/#", "a/$x/b", 1);
	expect("+/$x", "a/$x", 1);
}

static void test_validity(void)
{
	static const char *bad_filters[] = {
			"",
			"a/#/b",
			"a#",
			"a/b+",
			"#/a",
			"++",
			"+a",
			"a+/b",
			"##",
			"sport/tennis#",
			"sport/tennis/#/ranking",
			"sport+",
			"#/",
			"a/#/",
			"\xC0\xAF",
			"\xED\xA0\x80",
			"\xF4\x90\x80\x80",
			"a/\xE2\x82",
			"\xFF",
			"\x80",
	};
	static const char *good_filters[] = {
			"#",
			"+",
			"+/+",
			"/+",
			"/",
			"//",
			"a//b",
			"sport/tennis/#",
			"+/tennis/#",
			"sport/+/player1",
			"$SYS/#",
			"+/#",
			"/#",
			"a/+/",
			"caf\xC3\xA9/+",
			"\xF0\x9F\x98\x80",
			"\xEF\xBF\xBF",
			"\x01",
	};
	static const char *bad_names[] = {
			"",
			"a/+",
			"#",
			"a/b#",
			"+",
			"\xC0\xAF",
			"\xED\xBF\xBF",
	};
	static const char *good_names[] = {
			"a",
			"/",
			"//",
			"a//b",
			"$SYS/x",
			"caf\xC3\xA9",
			" ",
			"a/b/c/",
	};
	struct topic_tree *t = topic_tree_new();
	char *big;

	for(size_t i = 0; i < sizeof(bad_filters) / sizeof(*bad_filters); i++) {
		CHECK_FT(!topic_filter_valid(bad_filters[i]), bad_filters[i], "");
		CHECK_FT(topic_tree_add(t, bad_filters[i], V(1)) == OH_ERR_INVAL, bad_filters[i], "");
		CHECK_FT(topic_tree_remove(t, bad_filters[i], V(1)) == OH_ERR_INVAL, bad_filters[i], "");
		CHECK_FT(topic_tree_count(t, bad_filters[i]) == 0, bad_filters[i], "");
		CHECK_FT(!topic_matches(bad_filters[i], "a"), bad_filters[i], "a");
	}
	for(size_t i = 0; i < sizeof(good_filters) / sizeof(*good_filters); i++) {
		CHECK_FT(topic_filter_valid(good_filters[i]), good_filters[i], "");
	}
	for(size_t i = 0; i < sizeof(bad_names) / sizeof(*bad_names); i++) {
		CHECK_FT(!topic_name_valid(bad_names[i]), "", bad_names[i]);
		CHECK_FT(!topic_matches("#", bad_names[i]), "#", bad_names[i]);
	}
	for(size_t i = 0; i < sizeof(good_names) / sizeof(*good_names); i++) {
		CHECK_FT(topic_name_valid(good_names[i]), "", good_names[i]);
	}
	CHECK(!topic_filter_valid(NULL));
	CHECK(!topic_name_valid(NULL));
	CHECK(topic_tree_add(t, NULL, V(1)) == OH_ERR_INVAL);
	CHECK(topic_tree_node_count(t) == 1);

	/* A topic carrying wildcards is not a topic name: even a filter equal
	 * to it byte for byte does not take it. */
	CHECK(topic_tree_add(t, "a/+", V(1)) == OH_OK);
	CHECK(topic_tree_add(t, "#", V(2)) == OH_OK);
	CHECK(topic_tree_match(t, "a/+", ignore, NULL) == 0);
	CHECK(topic_tree_match(t, "a/#", ignore, NULL) == 0);
	CHECK(topic_tree_match(t, "", ignore, NULL) == 0);
	CHECK(topic_tree_match(t, NULL, ignore, NULL) == 0);
	CHECK(topic_tree_match(t, "a/b", ignore, NULL) == 2);

	/* The 65535-byte limit, for filters, names and the tree's matcher. */
	big = malloc(TOPIC_MAX_LEN + 2);
	memset(big, 'a', TOPIC_MAX_LEN + 1);
	big[TOPIC_MAX_LEN + 1] = '\0';
	CHECK(!topic_filter_valid(big));
	CHECK(!topic_name_valid(big));
	CHECK(topic_tree_match(t, big, ignore, NULL) == 0);
	big[TOPIC_MAX_LEN] = '\0';
	CHECK(topic_filter_valid(big));
	CHECK(topic_name_valid(big));
	CHECK(topic_tree_match(t, big, ignore, NULL) == 1);
	free(big);
	topic_tree_free(t);
}

static void test_empty_levels(void)
{
	expect("a//b", "a//b", 1);
	expect("a//b", "a/b", 0);
	expect("a/+/b", "a//b", 1);
	expect("a/+/+", "a//", 1);
	expect("a/#", "a//", 1);
	expect("/", "/", 1);
	expect("/", "//", 0);
	expect("+", "/", 0);
	expect("+/+", "/", 1);
	expect("/+", "/", 1);
	expect("+/", "/", 1);
	expect("//", "//", 1);
	expect("+/+/+", "//", 1);
	expect("+/+", "//", 0);
	expect("/#", "/", 1);
	expect("/#", "a", 0);
	expect("/lab/device/+/meta", "/lab/device/cam1/meta", 1);
	expect("/lab/device/+/meta", "lab/device/cam1/meta", 0);
	expect("/lab/device/+/meta", "/lab/device//meta", 1);
	expect("a/", "a", 0);
	expect("a", "a/", 0);
	expect("a/+", "a/", 1);
}

static void test_values(void)
{
	struct topic_tree *t = topic_tree_new();
	struct seen s;

	CHECK(t != NULL);
	CHECK(topic_tree_count(t, "a/b") == 0);
	CHECK(topic_tree_add(t, "a/b", V(1)) == OH_OK);
	CHECK(topic_tree_add(t, "a/b", V(2)) == OH_OK);
	CHECK(topic_tree_add(t, "a/b", V(3)) == OH_OK);
	/* The same pair twice is stored twice. */
	CHECK(topic_tree_add(t, "a/b", V(2)) == OH_OK);
	CHECK(topic_tree_add(t, "a/+", V(4)) == OH_OK);
	CHECK(topic_tree_add(t, "a/#", NULL) == OH_OK);
	CHECK(topic_tree_count(t, "a/b") == 4);
	CHECK(topic_tree_count(t, "a/+") == 1);
	CHECK(topic_tree_count(t, "a/#") == 1);
	/* count is per exact filter, not per match. */
	CHECK(topic_tree_count(t, "a") == 0);
	CHECK(topic_tree_count(t, "a/c") == 0);
	CHECK(topic_tree_count(t, "#") == 0);

	memset(&s, 0, sizeof(s));
	CHECK(topic_tree_match(t, "a/b", record, &s) == 6);
	CHECK(s.n == 6);
	memset(&s, 0, sizeof(s));
	CHECK(topic_tree_match(t, "a", record, &s) == 1);
	CHECK(s.n == 1 && s.v[0] == NULL);
	CHECK(topic_tree_match(t, "a/c", ignore, NULL) == 2);
	CHECK(topic_tree_match(t, "a/b/c", ignore, NULL) == 1);
	CHECK(topic_tree_match(t, "b", ignore, NULL) == 0);

	/* Values of one filter arrive in registration order, and removing one
	 * keeps the order of the rest. */
	{
		struct topic_tree *o = topic_tree_new();

		CHECK(topic_tree_add(o, "x", V(1)) == OH_OK);
		CHECK(topic_tree_add(o, "x", V(2)) == OH_OK);
		CHECK(topic_tree_add(o, "x", V(3)) == OH_OK);
		CHECK(topic_tree_add(o, "x", V(4)) == OH_OK);
		CHECK(topic_tree_remove(o, "x", V(2)) == OH_OK);
		memset(&s, 0, sizeof(s));
		CHECK(topic_tree_match(o, "x", record, &s) == 3);
		CHECK(s.v[0] == V(1) && s.v[1] == V(3) && s.v[2] == V(4));
		topic_tree_free(o);
	}

	/* Removal: one pair at a time. */
	CHECK(topic_tree_remove(t, "a/b", V(9)) == OH_ERR_NOT_FOUND);
	CHECK(topic_tree_remove(t, "a/c", V(1)) == OH_ERR_NOT_FOUND);
	CHECK(topic_tree_remove(t, "a/b/c/d", V(1)) == OH_ERR_NOT_FOUND);
	CHECK(topic_tree_remove(t, "a/b", V(2)) == OH_OK);
	CHECK(topic_tree_count(t, "a/b") == 3);
	CHECK(topic_tree_remove(t, "a/b", V(2)) == OH_OK);
	CHECK(topic_tree_count(t, "a/b") == 2);
	CHECK(topic_tree_remove(t, "a/b", V(2)) == OH_ERR_NOT_FOUND);
	CHECK(topic_tree_match(t, "a/b", ignore, NULL) == 4);
	topic_tree_free(t);
}

static void test_pruning(void)
{
	struct topic_tree *t = topic_tree_new();

	CHECK(topic_tree_node_count(t) == 1);
	CHECK(topic_tree_add(t, "a/b/c/d", V(1)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 5);
	CHECK(topic_tree_add(t, "a/b", V(2)) == OH_OK);
	CHECK(topic_tree_add(t, "a/+/c/#", V(3)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 8);
	CHECK(topic_tree_add(t, "a/b/c/d", V(4)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 8);

	/* d still has a value: nothing is pruned. */
	CHECK(topic_tree_remove(t, "a/b/c/d", V(1)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 8);
	/* Now c and d go, b stays for its own value. */
	CHECK(topic_tree_remove(t, "a/b/c/d", V(4)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 6);
	CHECK(topic_tree_count(t, "a/b/c/d") == 0);
	CHECK(topic_tree_match(t, "a/b/c/d", ignore, NULL) == 1);
	CHECK(topic_tree_remove(t, "a/b", V(2)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 5);
	CHECK(topic_tree_remove(t, "a/+/c/#", V(3)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 1);
	CHECK(topic_tree_match(t, "a/b/c/d", ignore, NULL) == 0);

	/* Many literal siblings, removed in an order unlike insertion, exercise
	 * the child table's growth and backward-shift deletion. */
	{
		char f[32];
		int ok = 1;

		for(int i = 0; i < 5000; i++) {
			snprintf(f, sizeof(f), "s/%d", i);
			ok &= topic_tree_add(t, f, V(i + 1)) == OH_OK;
		}
		CHECK(ok);
		CHECK(topic_tree_node_count(t) == 5002);
		for(int i = 0; i < 5000; i += 2) {
			snprintf(f, sizeof(f), "s/%d", i);
			ok &= topic_tree_remove(t, f, V(i + 1)) == OH_OK;
		}
		CHECK(ok);
		for(int i = 0; i < 5000; i++) {
			struct seen s = {0};

			snprintf(f, sizeof(f), "s/%d", i);
			topic_tree_match(t, f, record, &s);
			ok &= (i % 2) ? (s.n == 1 && s.v[0] == V(i + 1)) : s.n == 0;
		}
		CHECK(ok);
		for(int i = 4999; i >= 1; i -= 2) {
			snprintf(f, sizeof(f), "s/%d", i);
			ok &= topic_tree_remove(t, f, V(i + 1)) == OH_OK;
		}
		CHECK(ok);
		CHECK(topic_tree_node_count(t) == 1);
	}
	topic_tree_free(t);
}

/* A filter of 30,000 levels: adding, matching and freeing must not recurse
 * once per level. */
static void test_deep(void)
{
	size_t levels = 30000;
	char *f = malloc(levels * 2);
	struct topic_tree *t = topic_tree_new();

	for(size_t i = 0; i < levels; i++) {
		f[2 * i] = 'a';
		f[2 * i + 1] = '/';
	}
	f[levels * 2 - 1] = '\0';
	CHECK(topic_tree_add(t, f, V(1)) == OH_OK);
	f[levels * 2 - 2] = '+';
	CHECK(topic_tree_add(t, f, V(2)) == OH_OK);
	f[levels * 2 - 2] = 'a';
	CHECK(topic_tree_add(t, "#", V(3)) == OH_OK);
	CHECK(topic_tree_add(t, "a/#", V(4)) == OH_OK);
	CHECK(topic_tree_node_count(t) == levels + 4);
	CHECK(topic_tree_match(t, f, ignore, NULL) == 4);
	CHECK(topic_matches("a/+/#", f));
	topic_tree_free(t);
	free(f);
}

/* ---- random cross-checks ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Du) >> 32) % n;
}

static const char *const alphabet[] = {"a", "b", "$x", "", "ab", "$SYS"};
#define ALPHABET_N (sizeof(alphabet) / sizeof(*alphabet))

static void random_topic(char *buf, size_t size)
{
	/* A single empty level would be the empty string, which is not a
	 * topic name at all: draw again. */
	do {
		int levels = 1 + (int)rnd(4);

		buf[0] = '\0';
		for(int i = 0; i < levels; i++) {
			if(i)
				strncat(buf, "/", size - strlen(buf) - 1);
			strncat(buf, alphabet[rnd(ALPHABET_N)], size - strlen(buf) - 1);
		}
	} while(!buf[0]);
}

static void random_filter(char *buf, size_t size)
{
	/* As for topics, an empty string is no filter: draw again. */
	do {
		int levels = 1 + (int)rnd(4);

		buf[0] = '\0';
		for(int i = 0; i < levels; i++) {
			uint32_t r = rnd(ALPHABET_N + 3);
			const char *lvl = r < ALPHABET_N ? alphabet[r] : "+";

			if(i)
				strncat(buf, "/", size - strlen(buf) - 1);
			/* `#` only as the last level. */
			if(i == levels - 1 && rnd(4) == 0)
				lvl = "#";
			strncat(buf, lvl, size - strlen(buf) - 1);
		}
	} while(!buf[0]);
}

static void test_random_pairs(void)
{
	char f[64], tp[64];
	int bad = 0;

	for(long i = 0; i < check_sample(20000); i++) {
		random_filter(f, sizeof(f));
		random_topic(tp, sizeof(tp));
		int mine = topic_matches(f, tp);
		int mosq = mosq_matches(f, tp);
		size_t tree = tree_matches(f, tp);

		if(mine != mosq || tree != (size_t)mine) {
			if(bad++ < 10) {
				fprintf(stderr, "mismatch: filter \"%s\" topic \"%s\": mine %d tree %zu mosquitto %d\n",
						f, tp, mine, tree, mosq);
			}
		}
	}
	CHECK(bad == 0);
}

/* Many random filters in one tree (duplicates included); every random topic
 * must reach exactly the values whose filter matches it. */
static void test_random_tree(void)
{
	enum {
		NF = 600,
		NT = 3000
	};
	static char filters[NF][64];
	static unsigned counts[NF + 1], want[NF + 1];
	static bool present[NF + 1];
	struct topic_tree *t = topic_tree_new();
	char tp[64];
	int bad = 0, ok = 1;

	for(int i = 0; i < NF; i++) {
		random_filter(filters[i], sizeof(filters[i]));
		ok &= topic_tree_add(t, filters[i], V(i + 1)) == OH_OK;
		present[i + 1] = true;
	}
	CHECK(ok);

	for(int round = 0; round < 3; round++) {
		for(int k = 0; k < NT; k++) {
			size_t calls, sum = 0;

			random_topic(tp, sizeof(tp));
			memset(counts, 0, sizeof(counts));
			calls = topic_tree_match(t, tp, tally, counts);
			for(int i = 0; i < NF; i++) {
				int m = present[i + 1] && topic_matches(filters[i], tp);

				want[i + 1] = (unsigned)m;
				if(present[i + 1] && m != mosq_matches(filters[i], tp))
					bad++;
				sum += (size_t)m;
			}
			if(calls != sum || memcmp(counts, want, sizeof(counts))) {
				if(bad++ < 10)
					fprintf(stderr, "tree mismatch on topic \"%s\"\n", tp);
			}
		}
		/* Then remove a random part of what is left and check again; the
		 * last round runs with nothing registered. */
		for(int i = 0; i < NF; i++) {
			if(present[i + 1] && (round == 1 || rnd(2))) {
				ok &= topic_tree_remove(t, filters[i], V(i + 1)) == OH_OK;
				present[i + 1] = false;
			}
		}
		CHECK(ok);
	}
	CHECK(bad == 0);
	CHECK(topic_tree_node_count(t) == 1);
	topic_tree_free(t);
}

/* ---- scale ---- */

enum {
	BIG_N = 100000
};

static void big_filter(char *buf, size_t size, int i)
{
	int num = i / 4;

	switch(i % 4) {
	case 0:
		snprintf(buf, size, "lab/device/%d/+/meta", num);
		break;
	case 1:
		snprintf(buf, size, "lab/device/%d/#", num);
		break;
	case 2:
		snprintf(buf, size, "+/device/%d/state", num);
		break;
	default:
		snprintf(buf, size, "/lab/%d/+", num);
		break;
	}
}

static void test_scale(void)
{
	struct topic_tree *t = topic_tree_new();
	static unsigned counts[BIG_N + 1];
	char f[64], tp[64];
	int ok = 1;

	for(int i = 0; i < BIG_N; i++) {
		big_filter(f, sizeof(f), i);
		ok &= topic_tree_add(t, f, V(i)) == OH_OK;
	}
	CHECK(ok);
	/* Plus a catch-all that every non-$ topic reaches. */
	CHECK(topic_tree_add(t, "#", V(BIG_N)) == OH_OK);

	/* Targeted: each topic hits exactly the filters built for its number. */
	for(int num = 0; num < BIG_N / 4; num += 7) {
		memset(counts, 0, sizeof(counts));
		snprintf(tp, sizeof(tp), "lab/device/%d/cam/meta", num);
		ok &= topic_tree_match(t, tp, tally, counts) == 3;
		ok &= counts[4 * num] == 1 && counts[4 * num + 1] == 1 && counts[BIG_N] == 1;

		memset(counts, 0, sizeof(counts));
		snprintf(tp, sizeof(tp), "lab/device/%d/state", num);
		ok &= topic_tree_match(t, tp, tally, counts) == 3;
		ok &= counts[4 * num + 1] == 1 && counts[4 * num + 2] == 1 && counts[BIG_N] == 1;

		memset(counts, 0, sizeof(counts));
		snprintf(tp, sizeof(tp), "/lab/%d/x", num);
		ok &= topic_tree_match(t, tp, tally, counts) == 2;
		ok &= counts[4 * num + 3] == 1 && counts[BIG_N] == 1;

		snprintf(tp, sizeof(tp), "$SYS/device/%d/state", num);
		ok &= topic_tree_match(t, tp, ignore, NULL) == 0;
	}
	CHECK(ok);

	/* Brute force against the standalone matcher for a few topics. */
	for(int k = 0; k < (CHECK_SANITIZED ? 2 : 12); k++) {
		static const char *const shapes[] = {
				"lab/device/%u/x/meta",
				"x/device/%u/state",
				"/lab/%u/",
				"lab/device/%u",
		};
		unsigned sum = 0;
		size_t calls;

		snprintf(tp, sizeof(tp), shapes[k % 4], rnd(BIG_N / 4));
		memset(counts, 0, sizeof(counts));
		calls = topic_tree_match(t, tp, tally, counts);
		for(int i = 0; i < BIG_N; i++) {
			unsigned m;

			big_filter(f, sizeof(f), i);
			m = (unsigned)topic_matches(f, tp);
			ok &= counts[i] == m;
			sum += m;
		}
		ok &= counts[BIG_N] == 1;
		ok &= calls == sum + 1;
	}
	CHECK(ok);

	/* Throughput on distinct topics; printed, not asserted, since sanitiser
	 * builds are many times slower. */
	{
		enum {
			NMSG = 1000000
		};
		size_t total = 0;
		clock_t c0 = clock();
		double secs;

		long nmsg = check_sample(NMSG);
		for(long k = 0; k < nmsg; k++) {
			snprintf(tp, sizeof(tp), "lab/device/%ld/c%ld/meta", k % (BIG_N / 4), k);
			total += topic_tree_match(t, tp, ignore, NULL);
		}
		secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
		CHECK(total == (size_t)nmsg * 3);
		printf("scale: %d filters, %ld matches in %.3f s (%.2f M/s, snprintf included)\n", BIG_N + 1,
				nmsg, secs, secs > 0 ? nmsg / secs / 1e6 : 0.0);
	}

	for(int i = 0; i < BIG_N; i++) {
		big_filter(f, sizeof(f), i);
		ok &= topic_tree_remove(t, f, V(i)) == OH_OK;
	}
	CHECK(ok);
	CHECK(topic_tree_remove(t, "#", V(BIG_N)) == OH_OK);
	CHECK(topic_tree_node_count(t) == 1);
	topic_tree_free(t);

	/* Freeing a full tree (not emptied first) must release every node;
	 * the sanitiser's leak check is what verifies this. */
	t = topic_tree_new();
	for(int i = 0; i < BIG_N; i++) {
		big_filter(f, sizeof(f), i);
		ok &= topic_tree_add(t, f, V(i)) == OH_OK;
	}
	CHECK(ok);
	topic_tree_free(t);
	topic_tree_free(NULL);
}

int main(void)
{
	mosquitto_lib_init();
	test_spec_table();
	test_validity();
	test_empty_levels();
	test_values();
	test_pruning();
	test_deep();
	test_random_pairs();
	test_random_tree();
	test_scale();
	mosquitto_lib_cleanup();
	return check_summary();
}
