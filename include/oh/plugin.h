/*
 * The plugin ABI: what a plugin exports so the host can load it.
 *
 * A plugin is a shared object (or a built-in linked into the host) that
 * exports one function, `oh_plugin_entry` by default, returning a static
 * description.  The host checks `abi_version` against its own and refuses a
 * plugin built for another version, naming both numbers.  Everything the
 * plugin registers through its context (MQTT filters, routes, its UI page,
 * timers, lease watchers) is owned by the host and torn down by it when the
 * plugin is unloaded or its init fails.
 */
#ifndef OH_PLUGIN_H
#define OH_PLUGIN_H

#include <jansson.h>

#include "oh/defs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a struct or function in include/oh/ changes incompatibly. */
#define OH_PLUGIN_ABI_VERSION 1

/* The handle the host gives a plugin: its module name, settings, and every
 * service in host.h hang off it. */
typedef struct oh_ctx oh_ctx;

struct oh_plugin {
	int abi_version;     /* always OH_PLUGIN_ABI_VERSION */
	const char *name;    /* human-readable, e.g. "NDI video" */
	const char *version; /* the plugin's own version */
	/*
	 * Called once after loading.  `settings` is borrowed (the config's
	 * plugins[].settings, an empty object when absent).  Return OH_OK, or
	 * an error after explaining it with oh_fail().
	 */
	int (*init)(oh_ctx *ctx, const json_t *settings);
	/* Called before unload; may be NULL.  Registrations are removed by the
	 * host afterwards, so this only frees the plugin's own state. */
	void (*cleanup)(oh_ctx *ctx);
	void *reserved[8]; /* room to grow without breaking old plugins */
};

typedef const struct oh_plugin *(*oh_plugin_entry_fn)(void);

/* The default exported symbol name; `path.so:symbol` in the config picks
 * another. */
#define OH_PLUGIN_ENTRY_SYMBOL "oh_plugin_entry"

#ifdef __cplusplus
}
#endif
#endif
