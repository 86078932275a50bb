/*
 * Unit tests of a device's compact form (src/core/device_doc.c): a
 * fragment thaws into the tree it was frozen from, byte for byte, and
 * merging a run of messages with a freeze and a thaw between each one
 * gives the same document as the old way, one tree merged into for the
 * whole run, and merging straight into the fragment (device_doc_plan and
 * device_doc_write, the registry's way for a device without a tree) gives
 * the same bytes too: on fixtures, then on random documents (unicode,
 * escapes, "\u0000", reals, deep values, known fields of the wrong type, the
 * host's fields).  Also the size accounting of limits.max_device_bytes, and a
 * warm start's fragments made from the stored text without a tree.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device_doc.h"

/* The host's fields at a step of a run, as the registry would set them. */
static const char *step_last_seen(int step)
{
	return step % 3 ? "2026-12-07T03:00:00Z" : NULL;
}
static bool step_stale(int step)
{
	return step % 2;
}
static int step_online(int step)
{
	return step % 5 ? step % 4 ? 1 : 0 : -1;
}

/* Merges a message into doc the registry's way, and sets the host's
 * fields as its refresh does; *changed and why as the merge says. */
static void merge(json_t *doc, const json_t *msg, int step, bool *changed, char *why, size_t len)
{
	device_doc_merge(doc, msg, why, len, changed);
	const char *ls = step_last_seen(step);
	json_object_set_new(doc, "last_seen", ls ? json_string(ls) : json_null());
	json_object_set_new(doc, "stale", json_boolean(step_stale(step)));
	int online = step_online(step);
	json_object_set_new(doc, "online", online >= 0 ? json_boolean(online) : json_null());
}

/* Messages device_doc_plan left to the tree. */
static int plan_refusals;

/* The same message merged straight into the fragment (device_doc_plan and
 * device_doc_write); true when it agrees with the tree (tree: the document
 * before the merge, its bytes; changed, why: what the tree's merge said). */
static bool plan_agrees(char **frag, size_t *len, const json_t *tree_before, const json_t *msg, int step,
		bool changed, const char *why, const json_t *tree_after)
{
	static struct device_doc_plan plan;
	size_t before, after;
	bool plan_changed = false;
	char plan_why[256];
	if(!device_doc_plan(&plan, *frag, *len, msg, &before, &after, &plan_changed, plan_why, sizeof plan_why)) {
		/* The registry thaws instead, as the tree above did. */
		plan_refusals++;
		free(*frag);
		*frag = device_doc_freeze(
				json_string_value(json_object_get(tree_after, "device_id")), tree_after, len);
		return *frag != NULL;
	}
	size_t n;
	char *out = device_doc_write(&plan, step_last_seen(step), step_stale(step), step_online(step), &n);
	if(!out)
		return false;
	char *want = json_dumps(tree_after, JSON_COMPACT);
	size_t kl = device_doc_key_len(out);
	bool same = want && n - kl == strlen(want) && !memcmp(out + kl, want, n - kl) &&
			before == device_doc_bytes(tree_before) && after == device_doc_bytes(tree_after) &&
			plan_changed == changed && !strcmp(plan_why, why);
	if(!same)
		printf("     plan %s\n     tree %s\n     bytes %zu/%zu -> %zu/%zu, changed %d/%d, why '%s'/'%s'\n",
				out + kl, want, before, device_doc_bytes(tree_before), after,
				device_doc_bytes(tree_after), plan_changed, changed, plan_why, why);
	free(want);
	free(*frag);
	*frag = out;
	*len = n;
	return same;
}

/* Runs msgs (borrowed) three ways from {"device_id": id}: one tree for the
 * whole run, a freeze and a thaw between each message, and straight into
 * the fragment; true when all three dump to the same bytes after every
 * message. */
static bool parity(const char *id, json_t *const *msgs, size_t n)
{
	json_t *old = json_pack("{s:s}", "device_id", id);
	char *frag = NULL, *direct = NULL;
	size_t len = 0, direct_len = 0;
	bool same = true;
	frag = device_doc_freeze(id, old, &len);
	direct = device_doc_freeze(id, old, &direct_len);
	for(size_t i = 0; i < n && same; i++) {
		json_t *before = json_deep_copy(old);
		bool changed = false;
		char why[256];
		merge(old, msgs[i], (int)i, &changed, why, sizeof why);
		json_t *doc = device_doc_thaw(frag, len);
		CHECK(doc != NULL);
		if(!doc)
			break;
		bool ignored = false;
		char why2[256];
		merge(doc, msgs[i], (int)i, &ignored, why2, sizeof why2);
		free(frag);
		frag = device_doc_freeze(id, doc, &len);
		char *a = json_dumps(old, JSON_COMPACT), *b = json_dumps(doc, JSON_COMPACT);
		size_t kl = device_doc_key_len(frag);
		same = a && b && !strcmp(a, b) && len - kl == strlen(a) && !memcmp(frag + kl, a, len - kl);
		if(!same)
			printf("     after message %zu:\n     old %s\n     new %s\n", i, a, b);
		same = same && plan_agrees(&direct, &direct_len, before, msgs[i], (int)i, changed, why, old);
		free(a);
		free(b);
		json_decref(doc);
		json_decref(before);
	}
	free(frag);
	free(direct);
	json_decref(old);
	return same;
}

static void test_freeze_thaw(void)
{
	json_t *doc = json_loads(
			"{\"device_id\":\"rpi-01\",\"z\":1,\"a\":[1.5,-0.1,1e300,5e-324],"
			"\"s\":\"caf\\u00e9 \\\"q\\\" \\\\ \\n\\u0001\\u0000x\",\"o\":{\"b\":null,\"a\":{}}}",
			JSON_ALLOW_NUL, NULL);
	CHECK(doc != NULL);
	size_t len = 0;
	char *frag = device_doc_freeze("rpi-01", doc, &len);
	CHECK(frag != NULL);
	CHECK_INT_EQ(len, strlen(frag));
	CHECK(!strncmp(frag, "\"rpi-01\":{\"device_id\":\"rpi-01\",\"z\":1,", 37));
	CHECK_INT_EQ(device_doc_key_len(frag), strlen("\"rpi-01\":"));
	json_t *back = device_doc_thaw(frag, len);
	CHECK(json_equal(doc, back));
	size_t len2 = 0;
	char *frag2 = device_doc_freeze("rpi-01", back, &len2);
	CHECK(len2 == len && !memcmp(frag, frag2, len));
	free(frag2);
	json_decref(back);
	free(frag);
	json_decref(doc);
}

static void test_fixtures(void)
{
	static const char *const run[] = {
			"{\"device_id\":\"rpi-01\",\"name\":\"Cam 1\",\"modules\":[\"ndi\"],\"version\":\"1.4.2\"}",
			"{\"online\":true,\"seq\":0,\"cpu\":7.25,\"ndi\":{\"state\":\"idle\"}}",
			/* wrong types of known fields: left out, the rest merges */
			"{\"modules\":5,\"labels\":[1],\"feature\":null,\"ts\":7,\"extra\":[{\"x\":\"\\u2603\"}]}",
			"{\"online\":\"yes\",\"name\":\"Cam \\\"one\\\"\",\"seq\":1,\"cpu\":0.1}",
			"{\"ndi\":null,\"seq\":18446744073709551615,\"n\":-9223372036854775808}",
			"{\"capabilities\":{\"ndi\":{\"inputs\":[\"a\",\"b\"]}},\"z\":{},\"a\":[]}",
			"{\"seq\":2,\"last_seen\":\"forged\",\"stale\":true,\"name\":\"\\u0000nul\"}",
			/* Equal to what is held though written otherwise (json_equal):
			 * kept as held, in its order; 1 and 1.0 differ. */
			"{\"o\":{\"a\":1,\"b\":[0.5,{\"c\":null,\"d\":2}]},\"r\":0.0,\"n\":1}",
			"{\"o\":{\"b\":[0.5,{\"d\":2,\"c\":null}],\"a\":1},\"r\":-0.0,\"n\":1.0}",
			"{\"o\":{\"b\":[0.5,{\"d\":2,\"c\":null}],\"a\":2},\"new\":\"x\",\"online\":false}",
			/* Keys the plan leaves to the tree: the caller thaws. */
			"{\"a\\\"b\":1,\"tab\\t\":2}",
	};
	json_t *msgs[sizeof run / sizeof run[0]];
	size_t n = 0;
	for(size_t i = 0; i < sizeof run / sizeof run[0]; i++) {
		/* The big integer does not fit jansson: that message is skipped,
		 * as the envelope parser would refuse it. */
		json_t *m = json_loads(run[i], JSON_ALLOW_NUL, NULL);
		if(m)
			msgs[n++] = m;
	}
	CHECK(n >= 6);
	plan_refusals = 0;
	CHECK(parity("rpi-01", msgs, n));
	CHECK_INT_EQ(plan_refusals, 1); /* the escaped keys */
	for(size_t i = 0; i < n; i++)
		json_decref(msgs[i]);
}

/* ---- random documents ------------------------------------------------------------ */

static json_t *random_value(int depth)
{
	static const char *const strs[] = {"", "a", "caf\xc3\xa9", "\"q\"", "\\", "\n\t\x01", "\xe2\x98\x83",
			"2026-12-07T03:00:00Z", "ndi"};
	switch(rand() % (depth > 2 ? 6 : 8)) {
	case 0:
		return json_null();
	case 1:
		return json_boolean(rand() % 2);
	case 2:
		return json_integer((json_int_t)rand() * (rand() % 2 ? 1 : -1) * (rand() % 2 ? 1 : 1000003));
	case 3:
		return json_real((double)rand() / (rand() + 1) * (rand() % 2 ? 1e-300 : 1e10));
	case 4:
		return json_string(strs[rand() % (sizeof strs / sizeof strs[0])]);
	case 5:
		return json_stringn("a\0b", 3);
	case 6: {
		json_t *a = json_array();
		for(int i = rand() % 4; i > 0; i--)
			json_array_append_new(a, random_value(depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for(int i = rand() % 4; i > 0; i--) {
			char k[8];
			snprintf(k, sizeof k, "k%d", rand() % 6);
			json_object_set_new(o, k, random_value(depth + 1));
		}
		return o;
	}
	}
}

static void test_random(void)
{
	static const char *const keys[] = {"modules", "capabilities", "labels", "feature", "version", "ts",
			"online", "name", "hostname", "last_seen", "stale", "seq", "cpu", "ndi", "x", "y"};
	enum {
		RUNS = 300,
		MSGS = 12
	};
	srand(16);
	plan_refusals = 0;
	bool all = true;
	for(long run = 0; run < check_sample(RUNS) && all; run++) {
		json_t *msgs[MSGS];
		for(int i = 0; i < MSGS; i++) {
			msgs[i] = json_object();
			for(int k = rand() % 5; k >= 0; k--) {
				const char *key = keys[rand() % (sizeof keys / sizeof keys[0])];
				json_t *v = random_value(0);
				/* Known fields get their type half the time. */
				if(!strcmp(key, "modules") && rand() % 2) {
					json_decref(v);
					v = json_pack("[s]", "ndi");
				}
				json_object_set_new(msgs[i], key, v);
			}
		}
		all = parity("dev-1", msgs, MSGS);
		for(int i = 0; i < MSGS; i++)
			json_decref(msgs[i]);
	}
	CHECK(all);
	CHECK_INT_EQ(plan_refusals, 0);
}

/* A warm start's fragment from the stored text is what the registry made
 * by parsing it: the same bytes (load_device's fallback is that path). */
static bool stored_parity(const char *id, const json_t *doc, const char *last_seen)
{
	size_t len, fast_len;
	char *stored = device_doc_freeze(id, doc, &len);
	size_t kl = device_doc_key_len(stored);
	bool has_modules;
	char *fast = device_doc_from_stored(id, stored + kl, len - kl, last_seen, &fast_len, &has_modules);
	json_t *parsed = json_loadb(stored + kl, len - kl, JSON_ALLOW_NUL, NULL);
	json_t *rebuilt = json_pack("{s:s}", "device_id", id);
	json_object_del(parsed, "online");
	json_object_del(parsed, "stale");
	json_object_del(parsed, "last_seen");
	json_object_del(parsed, "device_id");
	json_object_update(rebuilt, parsed);
	json_object_set_new(rebuilt, "last_seen", last_seen ? json_string(last_seen) : json_null());
	json_object_set_new(rebuilt, "stale", json_false());
	json_object_set_new(rebuilt, "online", json_null());
	size_t slow_len;
	char *slow = device_doc_freeze(id, rebuilt, &slow_len);
	bool same = fast && fast_len == slow_len && !memcmp(fast, slow, slow_len) &&
			has_modules == (json_object_get(doc, "modules") != NULL);
	if(!same)
		printf("     stored %s\n     fast   %s\n     parsed %s\n", stored, fast ? fast : "(null)",
				slow);
	free(stored);
	free(fast);
	free(slow);
	json_decref(parsed);
	json_decref(rebuilt);
	return same;
}

static void test_stored(void)
{
	json_t *doc = json_loads(
			"{\"device_id\":\"d\",\"online\":true,\"modules\":[\"ndi\"],"
			"\"x\":{\"online\":1,\"s\":\"}\\\",\"},\"last_seen\":\"t\",\"stale\":true,\"e\":[]}",
			0, NULL);
	CHECK(doc != NULL);
	CHECK(stored_parity("d", doc, "2026-12-07T03:00:00Z"));
	CHECK(stored_parity("d", doc, NULL));
	json_decref(doc);
	/* Not an object as the host writes it: the caller parses instead. */
	size_t len;
	bool m;
	CHECK(device_doc_from_stored("d", "{\"a\":1} ", 8, NULL, &len, &m) == NULL);
	CHECK(device_doc_from_stored("d", "{\"a\":", 5, NULL, &len, &m) == NULL);
	CHECK(device_doc_from_stored("d", "[1]", 3, NULL, &len, &m) == NULL);
	/* Random documents, as merges leave them. */
	srand(17);
	bool all = true;
	for(long run = 0; run < check_sample(500) && all; run++) {
		json_t *d = json_pack("{s:s}", "device_id", "dev-1");
		for(int k = rand() % 8; k >= 0; k--) {
			char key[8];
			static const char *const named[] = {
					"online", "stale", "last_seen", "modules", "device_id"};
			if(rand() % 3)
				snprintf(key, sizeof key, "k%d", rand() % 6);
			else
				snprintf(key, sizeof key, "%s", named[rand() % 5]);
			json_object_set_new(d, key, random_value(0));
		}
		all = stored_parity("dev-1", d, run % 2 ? "2026-12-07T03:00:00Z" : NULL);
		json_decref(d);
	}
	CHECK(all);
}

/* The size a merge predicts is the size the merged document measures. */
static void test_bytes(void)
{
	json_t *doc = json_pack("{s:s,s:i}", "device_id", "rpi-01", "seq", 1);
	size_t bytes = device_doc_bytes(doc);
	CHECK_INT_EQ(bytes, strlen("{\"device_id\":\"rpi-01\",\"seq\":1}"));
	json_t *msg = json_loads("{\"seq\":22,\"name\":\"a\\\"b\",\"online\":true,\"modules\":7}", 0, NULL);
	size_t predicted = device_doc_merged_bytes(doc, bytes, msg);
	char why[256];
	bool changed = false;
	CHECK(device_doc_merge(doc, msg, why, sizeof why, &changed));
	CHECK_STR_CONTAINS(why, "modules");
	CHECK(changed);
	CHECK_INT_EQ(predicted, device_doc_bytes(doc));
	/* The same message again (a heartbeat) changes nothing. */
	CHECK_INT_EQ(device_doc_merged_bytes(doc, predicted, msg), predicted);
	json_decref(msg);
	json_decref(doc);
}

/* A change of the host's fields only (a device gone stale): no message,
 * the same bytes as refreshing the tree. */
static void test_plan_host_only(void)
{
	static struct device_doc_plan plan;
	json_t *doc = json_loads("{\"device_id\":\"d\",\"online\":true,\"x\":[1],\"stale\":false,"
				 "\"last_seen\":\"2026-12-07T03:00:00Z\"}",
			0, NULL);
	size_t len, before, after, n;
	bool changed = false;
	char why[8];
	char *frag = device_doc_freeze("d", doc, &len);
	CHECK(device_doc_plan(&plan, frag, len, NULL, &before, &after, &changed, why, sizeof why));
	CHECK(!changed && before == after && before == device_doc_bytes(doc));
	char *out = device_doc_write(&plan, NULL, true, 0, &n);
	CHECK_STR_EQ(out,
			"\"d\":{\"device_id\":\"d\",\"online\":false,\"x\":[1],\"stale\":true,\"last_seen\":null}");
	CHECK_INT_EQ(n, strlen(out));
	/* Not a fragment: the caller thaws instead. */
	CHECK(!device_doc_plan(&plan, "\"d\":[1]", 7, NULL, &before, &after, &changed, why, sizeof why));
	free(out);
	free(frag);
	json_decref(doc);
}

/* A snapshot's devices counted in its text, as parsing counts them. */
static void test_count_snapshot(void)
{
	static const char *const snaps[] = {
			"{\"devices\":{},\"locks\":{},\"modules\":[],\"ts\":\"t\",\"seq\":1}",
			"{\"devices\":{\"a\":{\"x\":\"}\\\"{\",\"y\":[{},[]]},\"b\":{}},\"locks\":{\"ndi:a\":{}},\"seq\":2}",
			"{\"devices\":{\"a\":{\"device_id\":\"a\",\"n\":1.5e3,\"o\":null}},\"locks\":{}}",
	};
	for(size_t i = 0; i < sizeof snaps / sizeof snaps[0]; i++) {
		json_t *j = json_loads(snaps[i], 0, NULL);
		CHECK(j != NULL);
		CHECK_INT_EQ(device_doc_count_snapshot(snaps[i], strlen(snaps[i])),
				(long)json_object_size(json_object_get(j, "devices")));
		json_decref(j);
	}
	CHECK_INT_EQ(device_doc_count_snapshot("{\"locks\":{}}", 11), -1);
	CHECK_INT_EQ(device_doc_count_snapshot("{\"devices\":{\"a\":", 17), -1);
}

int main(void)
{
	test_freeze_thaw();
	test_fixtures();
	test_random();
	test_bytes();
	test_stored();
	test_count_snapshot();
	test_plan_host_only();
	return check_summary();
}
