/*
 * Plugins' documents (oh_doc_* in include/oh/host.h): a plugin's small
 * durable state, in the host's store beside leases and jobs.  The module
 * name is the namespace, added here, so a plugin names only its own
 * collections; the names are checked once here, so every backend behind
 * store.h gets the same short, plain strings.
 */
#include "plugin_ctx.h"

#include <stdbool.h>
#include <string.h>

#include "store.h"

#define COLLECTION_MAX 64
#define KEY_MAX 255

static bool collection_ok(const char *c)
{
	size_t n = c ? strlen(c) : 0;
	if(n < 1 || n > COLLECTION_MAX)
		return false;
	return strspn(c, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static bool key_ok(const char *k)
{
	size_t n = k ? strlen(k) : 0;
	return n >= 1 && n <= KEY_MAX;
}

int oh_doc_put(oh_ctx *ctx, const char *collection, const char *key, const json_t *doc)
{
	if(!collection_ok(collection) || !key_ok(key) || !json_is_object(doc))
		return OH_ERR_INVAL;
	return ctx->host->store ? store_doc_put(ctx->host->store, ctx->module, collection, key, doc) : OH_OK;
}

int oh_doc_delete(oh_ctx *ctx, const char *collection, const char *key)
{
	if(!collection_ok(collection) || !key_ok(key))
		return OH_ERR_INVAL;
	return ctx->host->store ? store_doc_delete(ctx->host->store, ctx->module, collection, key) : OH_OK;
}

struct load {
	oh_ctx *ctx;
	oh_doc_fn fn;
	void *ud;
};

static void load_one(const char *key, json_t *doc, void *ud)
{
	struct load *l = ud;
	if(json_is_object(doc))
		l->fn(l->ctx, key, doc, l->ud);
}

int oh_doc_load(oh_ctx *ctx, const char *collection, oh_doc_fn fn, void *ud)
{
	if(!collection_ok(collection) || !fn)
		return OH_ERR_INVAL;
	if(!ctx->host->store)
		return OH_OK;
	struct load l = {ctx, fn, ud};
	return store_doc_load(ctx->host->store, ctx->module, collection, load_one, &l);
}

int oh_doc_begin(oh_ctx *ctx)
{
	return ctx->host->store ? store_begin(ctx->host->store) : OH_OK;
}

int oh_doc_commit(oh_ctx *ctx)
{
	return ctx->host->store ? store_commit(ctx->host->store) : OH_OK;
}
