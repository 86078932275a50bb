/*
 * What the host keeps per plugin: the context behind the opaque oh_ctx, and
 * the registrations it must tear down when the plugin goes.
 */
#ifndef OH_PLUGIN_CTX_H
#define OH_PLUGIN_CTX_H

#include "core.h"

/* A plugin's timers by id (plugin_api.c): the handles plugins hold are
 * ids, not addresses. */
struct plugin_timers;

/* The plugins linked into the host, by name ("builtin:ndi"): a table
 * cmake/plugin.cmake generates from the oh_add_plugin() calls, ended by a
 * NULL name. */
struct builtin_plugin {
	const char *name;
	oh_plugin_entry_fn entry;
};
extern const struct builtin_plugin builtin_plugins[];

struct oh_ctx {
	struct host *host;
	char *module;
	char *path;
	const struct oh_plugin *desc;
	void *dl; /* dlopen handle, NULL for built-ins */
	bool loaded;
	bool initialising;
	char error[512];

	void *data;
	void (*free_data)(void *);

	struct plugin_timers *timers;
	oh_lease_expired_fn lease_expired;
	void *lease_expired_ud;

	char *ui_title;
	char *ui_html;
	char *ui_script;

	struct plugin_io *io; /* fd watches and children (plugin_io.c) */
	void *sched;          /* the scheduler's per-plugin state (scheduler.c) */

	char *evt_topic; /* {root}/orchestrator/{module}/evt */
};

/* While held, oh_ack_publish() records acks but sends them only when the
 * outermost hold ends, in order (command.c).  The scheduler holds them
 * while a turn's commands go out, so that no event delays a command. */
void command_hold_acks(bool on);
void plugins_lease_expired(struct host *h, const char *key, const char *holder);
void plugin_timers_free(oh_ctx *ctx);
/* How many timers ctx holds (for tests and diagnostics). */
size_t plugin_timers_count(const oh_ctx *ctx);
/* Cancels the plugin's fd watches and kills its children (plugin_io.c). */
void plugin_io_free(oh_ctx *ctx);
/* Runs the unloads DELETE /api/plugins/{module} deferred to a loop turn
 * that did not come (api_plugins.c); the host calls it on shutdown while
 * plugins and HTTP are still up. */
void api_plugins_stop(struct host *h);

#endif
