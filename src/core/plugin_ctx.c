/*
 * A plugin's context as the rest of the core reads it: who it is, its
 * state, its log line, and the lookup of a context by module.  These read
 * struct oh_ctx and call nothing else of the core, so the metrics, the
 * route table, the command envelopes and the scheduler can name a plugin
 * without depending on the loader (plugins.c) or the services
 * (plugin_api.c), which depend on them.
 */
#include "plugin_ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

const char *oh_module(const oh_ctx *ctx)
{
	return ctx->module;
}
const char *oh_topic_root(const oh_ctx *ctx)
{
	return ctx->host->cfg.topic_root;
}
void *oh_data(const oh_ctx *ctx)
{
	return ctx->data;
}

void oh_set_data(oh_ctx *ctx, void *data, void (*free_fn)(void *))
{
	ctx->data = data;
	ctx->free_data = free_fn;
}

void oh_log(oh_ctx *ctx, enum oh_log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg((enum log_level)lvl, ctx->module, fmt, ap);
	va_end(ap);
}

int oh_fail(oh_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
	va_end(ap);
	return OH_ERR_INVAL;
}

/* ---- the table of contexts (struct host.plugins, filled by plugins.c) ---- */

json_t *plugins_modules_json(struct host *h)
{
	json_t *out = json_array();
	for(size_t i = 0; i < h->n_plugins; i++) {
		if(h->plugins[i]->loaded)
			json_array_append_new(out, json_string(h->plugins[i]->module));
	}
	return out;
}

oh_ctx *plugins_find(struct host *h, const char *module)
{
	for(size_t i = 0; i < h->n_plugins; i++) {
		if(!strcmp(h->plugins[i]->module, module))
			return h->plugins[i];
	}
	return NULL;
}
