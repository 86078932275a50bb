/*
 * Loading plugins.
 *
 * Built-ins and shared objects travel the same road: an entry function
 * returns the plugin's description, its ABI version and minor are checked,
 * init runs with the settings, and on failure everything it registered is
 * torn down while the other plugins keep running.  The built-ins are the
 * table cmake/plugin.cmake generates (builtin_plugins[]), so adding one is
 * a CMake call, not an edit here.
 */
#include "plugin_ctx.h"

#include <dlfcn.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "http.h"
#include "log.h"
#include "snapshot.h"
#include "topics.h"
#include "scheduler.h"

static void teardown(oh_ctx *ctx)
{
	struct host *h = ctx->host;
	dispatch_remove_owner(h->dispatch, ctx);
	if(h->http)
		http_remove_owner(h->http, ctx);
	plugin_timers_free(ctx);
	plugin_io_free(ctx);
	scheduler_forget_plugin(h->scheduler, ctx);
	ctx->lease_expired = NULL;
	if(ctx->free_data && ctx->data)
		ctx->free_data(ctx->data);
	ctx->data = NULL;
	ctx->free_data = NULL;
	free(ctx->ui_title);
	free(ctx->ui_html);
	free(ctx->ui_script);
	ctx->ui_title = ctx->ui_html = ctx->ui_script = NULL;
}

/* Whether desc needs additions this host lacks (a later minor, or a
 * nonsensical negative one); then ctx->error names both versions. */
static bool needs_newer(oh_ctx *ctx, const struct oh_plugin *desc)
{
	if(desc->abi_minor >= 0 && desc->abi_minor <= OH_PLUGIN_ABI_MINOR)
		return false;
	snprintf(ctx->error, sizeof ctx->error, "needs plugin ABI %d.%d, but this host provides %d.%d",
			desc->abi_version, desc->abi_minor, OH_PLUGIN_ABI_VERSION, OH_PLUGIN_ABI_MINOR);
	return true;
}

/* A shared object calling a function added in a later minor fails
 * dlopen(RTLD_NOW) on that symbol, so look at its description with lazy
 * binding (the entry point only returns a pointer) to say why in terms of
 * versions; true when that explains the failure. */
static bool explain_newer(oh_ctx *ctx, const char *file, const char *symbol)
{
	void *lazy = dlopen(file, RTLD_LAZY | RTLD_LOCAL);
	if(!lazy)
		return false;
	oh_plugin_entry_fn fn;
	*(void **)&fn = dlsym(lazy, symbol);
	const struct oh_plugin *desc = fn ? fn() : NULL;
	bool newer = desc && desc->abi_version == OH_PLUGIN_ABI_VERSION && needs_newer(ctx, desc);
	dlclose(lazy);
	return newer;
}

static oh_plugin_entry_fn resolve(oh_ctx *ctx)
{
	const char *path = ctx->path;
	if(!strncmp(path, "builtin:", 8)) {
		for(const struct builtin_plugin *b = builtin_plugins; b->name; b++) {
			if(!strcmp(b->name, path + 8))
				return b->entry;
		}
		snprintf(ctx->error, sizeof ctx->error, "no built-in plugin named \"%s\"", path + 8);
		return NULL;
	}
	/* "file.so:symbol" picks the entry point; a colon elsewhere is part
	 * of the file name. */
	char file[4096];
	snprintf(file, sizeof file, "%s", path);
	const char *symbol = OH_PLUGIN_ENTRY_SYMBOL;
	char *colon = strrchr(file, ':');
	if(colon && colon > file && !strchr(colon, '/')) {
		*colon = '\0';
		symbol = colon + 1;
	}
	ctx->dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
	if(!ctx->dl) {
		snprintf(ctx->error, sizeof ctx->error, "cannot load: %s", dlerror());
		explain_newer(ctx, file, symbol);
		return NULL;
	}
	oh_plugin_entry_fn fn;
	*(void **)&fn = dlsym(ctx->dl, symbol);
	if(!fn)
		snprintf(ctx->error, sizeof ctx->error, "%s has no symbol %s", file, symbol);
	return fn;
}

static int load_one(struct host *h, oh_ctx *ctx)
{
	oh_plugin_entry_fn entry = resolve(ctx);
	if(!entry)
		return OH_ERR_NOT_FOUND;
	const struct oh_plugin *desc = entry();
	if(!desc) {
		snprintf(ctx->error, sizeof ctx->error, "entry point returned no description");
		return OH_ERR_INVAL;
	}
	if(desc->abi_version != OH_PLUGIN_ABI_VERSION) {
		snprintf(ctx->error, sizeof ctx->error,
				"built for plugin ABI version %d, but this host speaks version %d",
				desc->abi_version, OH_PLUGIN_ABI_VERSION);
		return OH_ERR_VERSION;
	}
	/* Before init: a plugin needing newer additions would otherwise fail
	 * later, or in dlopen, on a symbol the host lacks. */
	if(needs_newer(ctx, desc))
		return OH_ERR_VERSION;
	if(!desc->init) {
		snprintf(ctx->error, sizeof ctx->error, "description has no init function");
		return OH_ERR_INVAL;
	}
	ctx->desc = desc;
	const json_t *settings = NULL;
	for(size_t i = 0; i < h->cfg.n_plugins; i++) {
		if(!strcmp(h->cfg.plugins[i].module, ctx->module))
			settings = h->cfg.plugins[i].settings;
	}
	ctx->initialising = true;
	int rc = desc->init(ctx, settings);
	ctx->initialising = false;
	if(rc) {
		if(!ctx->error[0])
			snprintf(ctx->error, sizeof ctx->error, "init failed: %s", oh_strerror(rc));
		if(desc->cleanup)
			desc->cleanup(ctx);
		return rc;
	}
	return OH_OK;
}

/* The audit record of a load or unload (docs/audit.md). */
static void plugin_record(struct host *h, const oh_ctx *ctx, const char *action, bool ok, const char *actor)
{
	json_t *detail = json_pack("{s:s}", "path", ctx->path);
	/* A refused plugin's description may be gone with its code. */
	if(ok && ctx->desc && ctx->desc->version)
		json_object_set_new(detail, "version", json_string(ctx->desc->version));
	const char *token = actor ? actor : http_current_token();
	struct audit_rec r = {.kind = "plugin",
			.action = action,
			.actor = token,
			.token = token,
			.module = ctx->module,
			.code = ok ? "OK" : "REFUSED",
			.error = ok ? NULL : ctx->error,
			.detail = detail,
			.latency_ms = -1};
	audit_record(h, &r);
	json_decref(detail);
}

int plugins_load_all(struct host *h)
{
	h->plugins = calloc(h->cfg.n_plugins ? h->cfg.n_plugins : 1, sizeof *h->plugins);
	if(!h->plugins)
		return OH_ERR_NOMEM;
	for(size_t i = 0; i < h->cfg.n_plugins; i++) {
		const struct plugin_conf *pc = &h->cfg.plugins[i];
		oh_ctx *ctx = calloc(1, sizeof *ctx);
		if(!ctx)
			return OH_ERR_NOMEM;
		ctx->host = h;
		ctx->module = strdup(pc->module);
		ctx->path = strdup(pc->path);
		ctx->evt_topic = topic_build(h->cfg.topic_root, NULL, pc->module, "evt");
		if(!ctx->module || !ctx->path || !ctx->evt_topic)
			return OH_ERR_NOMEM;
		h->plugins[h->n_plugins++] = ctx;

		if(load_one(h, ctx)) {
			teardown(ctx);
			if(ctx->dl) {
				dlclose(ctx->dl);
				ctx->dl = NULL;
			}
			log_error("plugins", "plugin %s (%s) refused: %s", ctx->module, ctx->path, ctx->error);
			plugin_record(h, ctx, "load", false, NULL);
			continue;
		}
		ctx->loaded = true;
		log_info("plugins", "loaded %s (%s %s) from %s", ctx->module,
				ctx->desc->name ? ctx->desc->name : ctx->module,
				ctx->desc->version ? ctx->desc->version : "", ctx->path);
		plugin_record(h, ctx, "load", true, NULL);
	}
	snapshot_mark_dirty(h->snapshot);
	return OH_OK;
}

void plugins_unload_all(struct host *h)
{
	for(size_t i = h->n_plugins; i-- > 0;) {
		oh_ctx *ctx = h->plugins[i];
		if(ctx->loaded && ctx->desc->cleanup)
			ctx->desc->cleanup(ctx);
		teardown(ctx);
		if(ctx->dl)
			dlclose(ctx->dl);
		free(ctx->module);
		free(ctx->path);
		free(ctx->evt_topic);
		free(ctx);
	}
	free(h->plugins);
	h->plugins = NULL;
	h->n_plugins = 0;
}

/*
 * Unloads one plugin at run time: its cleanup runs while its registrations
 * still work (so it can say goodbye or answer what it left open), then the
 * host tears down everything it registered and closes the shared object.
 * The caller must not be inside one of this plugin's callbacks: after
 * dlclose its code is gone (api_plugins.c defers to a fresh loop turn).
 */
int plugins_unload(struct host *h, const char *module, const char *actor)
{
	oh_ctx *ctx = plugins_find(h, module);
	if(!ctx)
		return OH_ERR_NOT_FOUND;
	if(!ctx->loaded)
		return OH_ERR_NOT_HELD;
	/* Not loaded from here on: nothing (lease expiry, the snapshot, a
	 * second unload) reaches the plugin through this context again. */
	ctx->loaded = false;
	if(ctx->desc->cleanup)
		ctx->desc->cleanup(ctx);
	teardown(ctx);
	plugin_record(h, ctx, "unload", true, actor);
	/* Acks the plugin left waiting for the batch go before it is gone. */
	audit_flush(h);
	ctx->desc = NULL;
	if(ctx->dl) {
		dlclose(ctx->dl);
		ctx->dl = NULL;
	}
	snprintf(ctx->error, sizeof ctx->error, "unloaded");
	log_info("plugins", "unloaded %s (%s)", ctx->module, ctx->path);
	snapshot_mark_dirty(h->snapshot);
	return OH_OK;
}

void plugins_device_forgotten(struct host *h, const char *id)
{
	for(size_t i = 0; i < h->n_plugins; i++) {
		oh_ctx *ctx = h->plugins[i];
		if(ctx->loaded && ctx->desc->device_forgotten)
			ctx->desc->device_forgotten(ctx, id);
	}
}

void plugins_took_lead(struct host *h)
{
	for(size_t i = 0; i < h->n_plugins; i++) {
		oh_ctx *ctx = h->plugins[i];
		if(ctx->loaded && ctx->desc->abi_minor >= OH_ABI_MINOR_LEAD && ctx->desc->took_lead)
			ctx->desc->took_lead(ctx);
	}
}

json_t *plugins_status_json(struct host *h)
{
	json_t *out = json_array();
	for(size_t i = 0; i < h->n_plugins; i++) {
		oh_ctx *c = h->plugins[i];
		json_t *item = json_pack(
				"{s:s, s:s, s:b}", "module", c->module, "path", c->path, "loaded", c->loaded);
		json_object_set_new(item, "error", c->loaded ? json_null() : json_string(c->error));
		if(c->loaded && c->desc->name)
			json_object_set_new(item, "name", json_string(c->desc->name));
		if(c->loaded && c->desc->version)
			json_object_set_new(item, "version", json_string(c->desc->version));
		if(c->loaded && c->ui_title)
			json_object_set_new(item, "ui", json_sprintf("/ui/%s", c->module));
		json_array_append_new(out, item);
	}
	return out;
}

void plugins_lease_expired(struct host *h, const char *key, const char *holder)
{
	const char *colon = strchr(key, ':');
	if(!colon)
		return;
	char module[64];
	snprintf(module, sizeof module, "%.*s", (int)(colon - key), key);
	oh_ctx *ctx = plugins_find(h, module);
	if(ctx && ctx->loaded && ctx->lease_expired)
		ctx->lease_expired(ctx, key, holder, ctx->lease_expired_ud);
}
