/*
 * Unit tests of the general services include/oh/host.h gives plugins
 * (src/core/plugin_lib.c) and of the ABI's struct shapes:
 *
 * - oh_map: put (and the value it replaced), get, remove, size, foreach
 *   that removes the entry it is given, foreach stopping early, free with
 *   a value destructor;
 * - oh_cmdline_split: quoting, {name} substitution that never splits a
 *   value, and errors that say why;
 * - struct oh_command: a copy stays valid when the original is gone (the
 *   req_id used to point into the original's own buffer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "oh/host.h"

static int freed;

static void count_free(void *value)
{
	freed++;
	free(value);
}

/* Removes every entry whose value is odd; counts the visits. */
static int drop_odd(const char *key, void *value, void *ud)
{
	struct oh_map *m = ud;
	if((uintptr_t)value % 2)
		CHECK(oh_map_remove(m, key) == value);
	return 0;
}

static int stop_at_three(const char *key, void *value, void *ud)
{
	int *seen = ud;
	return ++*seen == 3 ? 42 : 0;
}

static void test_map(void)
{
	struct oh_map *m = oh_map_new();
	void *old = (void *)1;
	if(!CHECK(m))
		return;
	CHECK_INT_EQ(oh_map_put(m, "cam-1", (void *)10, &old), OH_OK);
	CHECK(old == NULL);
	CHECK_INT_EQ(oh_map_put(m, "cam-1", (void *)11, &old), OH_OK);
	CHECK(old == (void *)10);
	CHECK(oh_map_get(m, "cam-1") == (void *)11);
	CHECK(oh_map_get(m, "cam-2") == NULL);
	CHECK(oh_map_remove(m, "cam-2") == NULL);
	CHECK(oh_map_remove(m, "cam-1") == (void *)11);
	CHECK_INT_EQ(oh_map_size(m), 0);

	/* The key is copied: the caller's buffer may change afterwards. */
	char key[32];
	for(uintptr_t i = 1; i <= 1000; i++) {
		snprintf(key, sizeof key, "dev-%u", (unsigned)i);
		CHECK_INT_EQ(oh_map_put(m, key, (void *)i, NULL), OH_OK);
	}
	CHECK_INT_EQ(oh_map_size(m), 1000);
	CHECK(oh_map_get(m, "dev-777") == (void *)777);
	CHECK_INT_EQ(oh_map_foreach(m, drop_odd, m), 0);
	CHECK_INT_EQ(oh_map_size(m), 500);
	CHECK(oh_map_get(m, "dev-777") == NULL && oh_map_get(m, "dev-778") == (void *)778);
	oh_map_compact(m);
	CHECK(oh_map_get(m, "dev-1000") == (void *)1000);
	int seen = 0;
	CHECK_INT_EQ(oh_map_foreach(m, stop_at_three, &seen), 42);
	CHECK_INT_EQ(seen, 3);
	oh_map_free(m, NULL);

	m = oh_map_new();
	for(int i = 0; i < 5; i++) {
		snprintf(key, sizeof key, "k%d", i);
		oh_map_put(m, key, malloc(8), NULL);
	}
	freed = 0;
	oh_map_free(m, count_free);
	CHECK_INT_EQ(freed, 5);
	oh_map_free(NULL, count_free);
}

static void test_cmdline(void)
{
	char **argv = NULL;
	int argc = -1;
	char err[160];
	const struct oh_cmdline_var vars[] = {{"source", "x; rm -rf / 'q'"}, {"device_id", "cam-1"}};

	CHECK_INT_EQ(oh_cmdline_split("viewer --source '{source}' -d \"{device_id}\" a\\ b", vars, 2, &argv,
				     &argc, err, sizeof err),
			OH_OK);
	CHECK_INT_EQ(argc, 6);
	if(argc == 6) {
		CHECK_STR_EQ(argv[0], "viewer");
		CHECK_STR_EQ(argv[2], "x; rm -rf / 'q'");
		CHECK_STR_EQ(argv[4], "cam-1");
		CHECK_STR_EQ(argv[5], "a b");
		CHECK(argv[6] == NULL);
	}
	oh_cmdline_free(argv);

	CHECK_INT_EQ(oh_cmdline_split("helper --list", NULL, 0, &argv, &argc, err, sizeof err), OH_OK);
	CHECK_INT_EQ(argc, 2);
	oh_cmdline_free(argv);

	argv = (char **)&err; /* must be reset, not left dangling */
	CHECK_INT_EQ(oh_cmdline_split("viewer 'open", NULL, 0, &argv, &argc, err, sizeof err), OH_ERR_INVAL);
	CHECK(argv == NULL);
	CHECK_STR_CONTAINS(err, "quote");
	CHECK_INT_EQ(oh_cmdline_split("   ", NULL, 0, &argv, &argc, err, sizeof err), OH_ERR_INVAL);
	CHECK(err[0] != '\0');
}

static void test_command_copy(void)
{
	/* No req_id in the envelope: the host generates one. */
	json_t *env = json_pack("{s:s, s:{}}", "action", "start", "params");
	struct oh_message msg = {.topic = "/lab/orchestrator/x/cmd", .json = env};
	struct oh_command *orig = malloc(sizeof *orig), copy;
	const char *code = NULL;
	char err[128];
	if(!CHECK(orig && env))
		return;
	CHECK_INT_EQ(oh_command_parse(NULL, &msg, orig, &code, err, sizeof err), OH_OK);
	copy = *orig;
	memset(orig, 0xAA, sizeof *orig);
	free(orig);
	CHECK_INT_EQ(strlen(copy.req_id), 32);
	CHECK_INT_EQ(strspn(copy.req_id, "0123456789abcdef"), 32);
	CHECK_STR_EQ(copy.action, "start");

	/* The envelope's own, up to OH_REQ_ID_MAX bytes, kept whole. */
	char long_id[OH_REQ_ID_MAX + 1];
	memset(long_id, 'r', OH_REQ_ID_MAX);
	long_id[OH_REQ_ID_MAX] = '\0';
	json_object_set_new(env, "req_id", json_string(long_id));
	CHECK_INT_EQ(oh_command_parse(NULL, &msg, &copy, &code, err, sizeof err), OH_OK);
	CHECK_STR_EQ(copy.req_id, long_id);
	json_decref(env);
}

int main(void)
{
	test_map();
	test_cmdline();
	test_command_copy();
	return check_summary();
}
