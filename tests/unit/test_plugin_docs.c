/*
 * Unit tests of plugins' documents (oh_doc_*, src/core/plugin_docs.c) on
 * the SQLite store: what one module puts it loads again after the store is
 * reopened (a restart), and no other module sees it; delete removes one key
 * (a missing one is fine); puts between oh_doc_begin and oh_doc_commit are
 * kept together; bad collection names, keys and documents are refused with
 * OH_ERR_INVAL and change nothing; a host without a store keeps nothing and
 * says OH_OK.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "plugin_ctx.h"
#include "store.h"

static struct host h;

static oh_ctx ctx_of(const char *module)
{
	oh_ctx c;
	memset(&c, 0, sizeof c);
	c.host = &h;
	c.module = (char *)module;
	return c;
}

static void collect(oh_ctx *ctx, const char *key, const json_t *doc, void *ud)
{
	json_object_set((json_t *)ud, key, (json_t *)doc);
}

/* Every document of module's collection, as {key: doc} (returned). */
static json_t *load_all(const char *module, const char *collection)
{
	oh_ctx c = ctx_of(module);
	json_t *all = json_object();
	CHECK_INT_EQ(oh_doc_load(&c, collection, collect, all), OH_OK);
	return all;
}

static void reopen(const char *dir)
{
	char err[256];
	store_close(h.store);
	h.store = store_open_dir(dir, err, sizeof err);
	CHECK(h.store != NULL);
}

int main(void)
{
	char dir[] = "/tmp/oh-docs-unit-XXXXXX", err[256];
	CHECK(mkdtemp(dir) != NULL);
	h.store = store_open_dir(dir, err, sizeof err);
	CHECK(h.store != NULL);
	oh_ctx ndi = ctx_of("ndi"), other = ctx_of("other");
	json_t *a = json_pack("{s:s, s:b}", "source", "CAM-1", "recording", 0);
	json_t *b = json_pack("{s:n}", "source");

	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", "dev-1", a), OH_OK);
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", "dev-2", b), OH_OK);
	CHECK_INT_EQ(oh_doc_put(&other, "routes", "dev-1", b), OH_OK);
	reopen(dir);
	json_t *got = load_all("ndi", "routes");
	CHECK_INT_EQ(json_object_size(got), 2);
	CHECK(json_equal(json_object_get(got, "dev-1"), a));
	CHECK(json_equal(json_object_get(got, "dev-2"), b));
	json_decref(got);
	got = load_all("other", "routes");
	CHECK(json_equal(json_object_get(got, "dev-1"), b)); /* its own, not ndi's */
	json_decref(got);
	got = load_all("ndi", "presets");
	CHECK_INT_EQ(json_object_size(got), 0);
	json_decref(got);

	/* Delete, also of what is not there. */
	CHECK_INT_EQ(oh_doc_delete(&ndi, "routes", "dev-2"), OH_OK);
	CHECK_INT_EQ(oh_doc_delete(&ndi, "routes", "nobody"), OH_OK);
	got = load_all("ndi", "routes");
	CHECK_INT_EQ(json_object_size(got), 1);
	json_decref(got);

	/* One transaction for a set (a preset applied). */
	CHECK_INT_EQ(oh_doc_begin(&ndi), OH_OK);
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", "dev-3", a), OH_OK);
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", "dev-4", a), OH_OK);
	CHECK_INT_EQ(oh_doc_commit(&ndi), OH_OK);
	reopen(dir);
	got = load_all("ndi", "routes");
	CHECK_INT_EQ(json_object_size(got), 3);
	json_decref(got);

	/* Refused, changing nothing. */
	json_t *arr = json_array();
	CHECK_INT_EQ(oh_doc_put(&ndi, "Routes", "x", a), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_doc_put(&ndi, "", "x", a), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", "", a), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", NULL, a), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", "x", arr), OH_ERR_INVAL);
	char long_key[300];
	memset(long_key, 'k', sizeof long_key - 1);
	long_key[sizeof long_key - 1] = '\0';
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", long_key, a), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_doc_delete(&ndi, "no/slash", "x"), OH_ERR_INVAL);
	CHECK_INT_EQ(oh_doc_load(&ndi, "routes", NULL, NULL), OH_ERR_INVAL);
	got = load_all("ndi", "routes");
	CHECK_INT_EQ(json_object_size(got), 3);
	json_decref(got);

	/* No state_dir: nothing kept, nothing refused. */
	store_close(h.store);
	h.store = NULL;
	CHECK_INT_EQ(oh_doc_put(&ndi, "routes", "dev-1", a), OH_OK);
	got = load_all("ndi", "routes");
	CHECK_INT_EQ(json_object_size(got), 0);
	json_decref(got);

	json_decref(arr);
	json_decref(a);
	json_decref(b);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_summary();
}
