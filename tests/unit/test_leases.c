/*
 * Unit tests of the leases (src/core/leases.c) through the plugin API, on a
 * host whose broker link is never started: arguments a plugin passes on
 * from clients (no actor, no key, a NaN, infinite or huge lease_s) are
 * refused with OH_ERR_INVAL and change nothing; an expiry in the store that is
 * not a time ends the lease instead of overflowing a time_t; and while another
 * process holds the database, a write fails at once with OH_ERR_IO instead
 * of stalling the loop, and works again when the lock is released.  Renew
 * and release of a free key, and of one another actor holds, say which.
 */
#include <event2/event.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "mqtt_link.h"
#include "plugin_ctx.h"
#include "store.h"

static struct host h;
static oh_ctx ctx;

static void setup(const char *state_dir)
{
	char err[256];
	memset(&h, 0, sizeof h);
	if(config_load(&h.cfg, NULL, err, sizeof err))
		abort();
	h.base = event_base_new();
	h.dispatch = dispatch_new(&h);
	h.registry = registry_new(&h);
	struct mqtt_link_opts mo = {.host = "127.0.0.1", .port = 1, .client_id = "unit"};
	struct mqtt_link_callbacks cb = {0};
	h.link = mqtt_link_new(h.base, &mo, &cb, &h);
	h.store = state_dir ? store_open_dir(state_dir, err, sizeof err) : NULL;
	h.leases = leases_new(&h);
	if(!h.dispatch || !h.registry || !h.link || !h.leases || (state_dir && !h.store))
		abort();
	memset(&ctx, 0, sizeof ctx);
	ctx.host = &h;
	ctx.module = "t";
}

static void teardown(void)
{
	leases_free(h.leases);
	registry_free(h.registry);
	dispatch_free(h.dispatch);
	mqtt_link_free(h.link);
	store_close(h.store);
	event_base_free(h.base);
	config_free(&h.cfg);
}

/* The leases as the snapshot shows them (returned). */
static json_t *leases_json(void)
{
	char *text = leases_to_text(h.leases);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	return j;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bad_arguments_are_refused(void)
{
	setup(NULL);
	struct oh_lease l;
	const double bad[] = {NAN, -NAN, INFINITY, -INFINITY, 0, -1, 1e300, OH_LEASE_MAX_S * 2};
	for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if(!CHECK(oh_lease_take(&ctx, "t:a", "alice", bad[i], &l) == OH_ERR_INVAL))
			printf("     lease_s %g was accepted\n", bad[i]);
	}
	CHECK_INT_EQ(leases_count(h.leases), 0);
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:a", NULL, 10, &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:a", "", 10, &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_take(&ctx, NULL, "alice", 10, &l), OH_ERR_INVAL);

	/* The longest lease there is, then one held by alice. */
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:long", "alice", OH_LEASE_MAX_S, &l), OH_OK);
	CHECK(l.remaining_s > OH_LEASE_MAX_S - 10);
	json_t *all = leases_json();
	CHECK(json_string_value(json_object_get(json_object_get(all, "t:long"), "expires_at")) != NULL);
	json_decref(all);
	CHECK_INT_EQ(oh_lease_force_release(&ctx, "t:long", &l), OH_OK);
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:a", "alice", 10, &l), OH_OK);

	/* A plugin passing on a command without an actor. */
	CHECK_INT_EQ(oh_lease_renew(&ctx, "t:a", NULL, 10, &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_renew(&ctx, "t:a", "", 10, &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_release(&ctx, "t:a", NULL, &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_release(&ctx, "t:a", "", &l), OH_ERR_INVAL);
	for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_INT_EQ(oh_lease_renew(&ctx, "t:a", "alice", bad[i], &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_renew(&ctx, NULL, "alice", 10, &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_release(&ctx, NULL, "alice", &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_force_release(&ctx, NULL, &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_can_use(&ctx, NULL, "alice", &l), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_lease_get(&ctx, NULL, &l), OH_ERR_INVAL);

	/* None of it changed the lease. */
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:a", &l), OH_OK);
	CHECK_STR_EQ(l.holder, "alice");
	CHECK(l.remaining_s > 9 && l.remaining_s <= 10);
	CHECK_INT_EQ(oh_lease_can_use(&ctx, "t:a", NULL, &l), OH_ERR_IN_USE);
	CHECK_INT_EQ(oh_lease_renew(&ctx, "t:a", "alice", 20, &l), OH_OK);
	CHECK_INT_EQ(oh_lease_release(&ctx, "t:a", "alice", &l), OH_OK);
	CHECK_INT_EQ(leases_count(h.leases), 0);
	teardown();
}

/* The outcomes reserve/renew and release/force_release share, each of which
 * names the holder when another actor holds the key. */
static void test_holder_outcomes(void)
{
	struct oh_lease l;
	setup(NULL);
	CHECK_INT_EQ(oh_lease_renew(&ctx, "t:b", "alice", 10, &l), OH_ERR_NOT_HELD);
	CHECK_INT_EQ(oh_lease_release(&ctx, "t:b", "alice", &l), OH_ERR_NOT_HELD);
	CHECK_INT_EQ(oh_lease_force_release(&ctx, "t:b", &l), OH_ERR_NOT_HELD);
	CHECK_INT_EQ(leases_count(h.leases), 0);

	CHECK_INT_EQ(oh_lease_take(&ctx, "t:b", "alice", 10, &l), OH_OK);
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:b", "alice", 30, &l), OH_OK); /* her own: extended */
	CHECK(l.remaining_s > 29);
	memset(&l, 0, sizeof l);
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:b", "bob", 10, &l), OH_ERR_IN_USE);
	CHECK_STR_EQ(l.holder, "alice");
	memset(&l, 0, sizeof l);
	CHECK_INT_EQ(oh_lease_renew(&ctx, "t:b", "bob", 10, &l), OH_ERR_NOT_OWNER);
	CHECK_STR_EQ(l.holder, "alice");
	memset(&l, 0, sizeof l);
	CHECK_INT_EQ(oh_lease_release(&ctx, "t:b", "bob", &l), OH_ERR_NOT_OWNER);
	CHECK_STR_EQ(l.holder, "alice");
	CHECK_INT_EQ(leases_count(h.leases), 1);

	memset(&l, 0, sizeof l);
	CHECK_INT_EQ(oh_lease_force_release(&ctx, "t:b", &l), OH_OK);
	CHECK_STR_EQ(l.holder, "alice");
	CHECK_INT_EQ(leases_count(h.leases), 0);
	teardown();
}

/* The snapshot's leases, written without a tree, are byte for byte what
 * jansson writes of one (escapes, UTF-8, a string jansson refuses left out). */
static void test_text_is_what_jansson_writes(void)
{
	static const char *const names[] = {"t:plain", "t:\"q\"", "t:back\\slash", "t:nl\n\x01",
			"t:caf\xc3\xa9", "t:\xff", "t:\x7f", "t:/"};
	struct oh_lease l;
	setup(NULL);
	json_t *tree = json_object();
	for(size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		/* Each name as a key and, on a lease of its own, as a holder. */
		char key[32];
		snprintf(key, sizeof key, "t:h%zu", i);
		CHECK_INT_EQ(oh_lease_take(&ctx, names[i], "alice", 60, &l), OH_OK);
		CHECK_INT_EQ(oh_lease_take(&ctx, key, names[i] + 2, 60, &l), OH_OK);
	}
	struct oh_lease got;
	for(size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char key[32];
		snprintf(key, sizeof key, "t:h%zu", i);
		CHECK_INT_EQ(leases_get(h.leases, names[i], &got), OH_OK);
		json_object_set_new(tree, names[i], host_lease_json(got.holder, got.expires_at));
		CHECK_INT_EQ(leases_get(h.leases, key, &got), OH_OK);
		json_object_set_new(tree, key, host_lease_json(got.holder, got.expires_at));
	}
	char *text = leases_to_text(h.leases);
	json_t *back = text ? json_loads(text, 0, NULL) : NULL;
	char *want = json_dumps(tree, JSON_COMPACT | JSON_SORT_KEYS),
	     *have = json_dumps(back, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(back != NULL && want && have);
	if(want && have)
		CHECK_STR_EQ(have, want);
	/* The two invalid ones are left out, as jansson leaves them. */
	CHECK_INT_EQ(json_object_size(back), 2 * (sizeof names / sizeof names[0]) - 2);
	/* Each lease's text as jansson writes it, in the text's own order. */
	const char *k;
	json_t *v;
	json_object_foreach(back, k, v)
	{
		json_t *one = json_pack("{s:O}", k, json_object_get(tree, k));
		char *piece = json_dumps(one, JSON_COMPACT);
		if(piece)
			piece[strlen(piece) - 1] = '\0'; /* the member, without the braces */
		CHECK(piece && strstr(text, piece + 1) != NULL);
		free(piece);
		json_decref(one);
	}
	free(want);
	free(have);
	free(text);
	json_decref(back);
	json_decref(tree);
	teardown();
}

static sqlite3 *open_db(const char *dir)
{
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", dir);
	sqlite3 *db = NULL;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	return db;
}

static void test_stored_expiry_not_a_time_ends_the_lease(void)
{
	char dir[] = "/tmp/oh-leases-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setup(dir);
	teardown();
	sqlite3 *db = open_db(dir);
	CHECK(sqlite3_exec(db,
			      "INSERT INTO leases VALUES('t:inf', 'bob', 9e999);"
			      "INSERT INTO leases VALUES('t:far', 'bob', 1e300);"
			      "INSERT INTO leases VALUES('t:late', 'bob', 4e9);"
			      "INSERT INTO leases VALUES('t:ok', 'bob', strftime('%s', 'now') + 3600)",
			      NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);

	setup(dir);
	CHECK_INT_EQ(leases_load(h.leases), OH_OK);
	json_t *all = leases_json(); /* no time_t out of range */
	json_decref(all);
	struct oh_lease l;
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:inf", &l), OH_ERR_NOT_FOUND);
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:far", &l), OH_ERR_NOT_FOUND);
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:ok", &l), OH_OK);
	/* Far, but a time: kept as granted. */
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:late", &l), OH_OK);
	CHECK(l.expires_at == 4e9);
	CHECK_INT_EQ(leases_count(h.leases), 2);
	teardown();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

static void test_locked_database_fails_fast(void)
{
	char dir[] = "/tmp/oh-leases-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setup(dir);
	struct oh_lease l;
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:held", "alice", 60, &l), OH_OK);

	/* A backup or the sqlite3 shell holds the write lock. */
	sqlite3 *other = open_db(dir);
	CHECK(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	double t0 = mono_s();
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:new", "alice", 60, &l), OH_ERR_IO);
	CHECK_INT_EQ(oh_lease_renew(&ctx, "t:held", "alice", 120, &l), OH_ERR_IO);
	CHECK_INT_EQ(oh_lease_release(&ctx, "t:held", "alice", &l), OH_ERR_IO);
	double took = mono_s() - t0;
	if(!CHECK(took < 0.3))
		printf("     three writes against a locked database took %.3f s\n", took);
	/* Nothing changed: no new lease, the old one as it was. */
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:new", &l), OH_ERR_NOT_FOUND);
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:held", &l), OH_OK);
	CHECK(l.remaining_s <= 60);

	CHECK(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(other);
	CHECK_INT_EQ(oh_lease_take(&ctx, "t:new", "alice", 60, &l), OH_OK);
	CHECK_INT_EQ(oh_lease_release(&ctx, "t:held", "alice", &l), OH_OK);
	teardown();

	/* What was acknowledged is what is stored. */
	setup(dir);
	CHECK_INT_EQ(leases_load(h.leases), OH_OK);
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:new", &l), OH_OK);
	CHECK_INT_EQ(oh_lease_get(&ctx, "t:held", &l), OH_ERR_NOT_FOUND);
	teardown();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	test_bad_arguments_are_refused();
	test_holder_outcomes();
	test_text_is_what_jansson_writes();
	test_stored_expiry_not_a_time_ends_the_lease();
	test_locked_database_fails_fast();
	return check_summary();
}
