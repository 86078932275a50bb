/*
 * The plugin ABI: what a plugin exports so the host can load it.
 *
 * A plugin is a shared object (or a built-in linked into the host) that
 * exports one function, `oh_plugin_entry` by default, returning a static
 * description.  The host checks `abi_version` against its own and refuses a
 * plugin built for another version, naming both numbers; it then checks
 * `abi_minor` and refuses a plugin that needs additions this host does not
 * have, naming both versions, before anything else in the plugin runs.
 * Everything the plugin registers through its context (MQTT filters, routes,
 * its UI page, timers, lease watchers) is owned by the host and torn down by
 * it when the plugin is unloaded or its init fails.  docs/plugins.md says
 * what may change within a version and what bumps it.
 */
#ifndef OH_PLUGIN_H
#define OH_PLUGIN_H

#include <jansson.h>

#include "oh/defs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a struct or function in include/oh/ changes incompatibly:
 * the host loads only plugins built for exactly this number. */
#define OH_PLUGIN_ABI_VERSION 2
/* Bumped (and reset to 0 with the version) whenever include/oh/ gains a
 * function, a constant or a meaning of a reserved field, compatibly: a host
 * of minor m runs every plugin that needs minor m or less.
 * Minor 1: oh_topic_parse (host.h, "the topic layout").
 * Minor 2: oh_plugin.device_forgotten (the first reserved slot).
 * Minor OH_ABI_MINOR_DOCS: oh_doc_* (host.h, "documents"); a scheduler
 *   check (oh_job_validate_fn) of a plugin of this minor also decides
 *   whether a job's command may lack device_id.
 * Minor OH_ABI_MINOR_WALK: oh_device_walk (host.h, "registry").
 * Minor OH_ABI_MINOR_AUDIT: oh_audit_record (host.h, "the audit trail").
 * Minor OH_ABI_MINOR_LEAD: oh_plugin.took_lead (the second reserved slot). */
#define OH_PLUGIN_ABI_MINOR 7
/* The minor each addition came with, for a plugin's abi_minor: renumbering
 * an addition is a change of one line here. */
#define OH_ABI_MINOR_DOCS 4
#define OH_ABI_MINOR_WALK 5
#define OH_ABI_MINOR_AUDIT 6
#define OH_ABI_MINOR_LEAD 7

/* The handle the host gives a plugin: its module name, settings, and every
 * service in host.h hang off it. */
typedef struct oh_ctx oh_ctx;

struct oh_plugin {
	int abi_version; /* always OH_PLUGIN_ABI_VERSION */
	/* The lowest minor that has everything the plugin calls;
	 * OH_PLUGIN_ABI_MINOR (the headers' own) is always right. */
	int abi_minor;
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
	/*
	 * Minor 2; may be NULL.  Called when the host forgets a device
	 * (DELETE /api/devices/{id}, forget_after_days), after its retained
	 * topics were cleared and before it leaves the registry, so the plugin
	 * drops what it keeps for the device: the leases it took for it, its
	 * pending commands, its own per-device state.  `device_id` is borrowed.
	 * A host of minor 1 or less never calls it.
	 */
	void (*device_forgotten)(oh_ctx *ctx, const char *device_id);
	/*
	 * Minor OH_ABI_MINOR_LEAD; may be NULL.  Called when a host of a pair
	 * (docs/ha.md) takes the lead, after it loaded the leases and jobs.
	 * With the PostgreSQL store oh_doc_load hands out nothing before this
	 * (a standby's plugin starts empty): here the plugin reads its
	 * documents and starts acting on them.  A leader that loses the lead
	 * exits, so there is no matching call.  Never called on a single host.
	 */
	void (*took_lead)(oh_ctx *ctx);
	void *reserved[6]; /* room to grow without breaking old plugins: zero */
};

typedef const struct oh_plugin *(*oh_plugin_entry_fn)(void);

/* The default exported symbol name; `path.so:symbol` in the config picks
 * another. */
#define OH_PLUGIN_ENTRY_SYMBOL "oh_plugin_entry"

/*
 * Defines the entry point, returning desc: the address of the plugin's
 * `static const struct oh_plugin`.  Write `OH_PLUGIN_ENTRY(&my_plugin)` at
 * file scope.  It is `oh_plugin_entry`, exported, unless the build names it otherwise:
 * cmake/plugin.cmake compiles each plugin once with OH_PLUGIN_ENTRY_NAME
 * set to a name of its own, so several plugins can be linked into the host
 * as built-ins, and exports `oh_plugin_entry` from the shared object.
 */
#ifdef OH_PLUGIN_ENTRY_NAME
#define OH_PLUGIN_ENTRY(desc)                                                                                \
	const struct oh_plugin *OH_PLUGIN_ENTRY_NAME(void);                                                  \
	const struct oh_plugin *OH_PLUGIN_ENTRY_NAME(void)                                                   \
	{                                                                                                    \
		return (desc);                                                                               \
	}
#else
#define OH_PLUGIN_ENTRY(desc)                                                                                \
	__attribute__((visibility("default"))) const struct oh_plugin *oh_plugin_entry(void);                \
	const struct oh_plugin *oh_plugin_entry(void)                                                        \
	{                                                                                                    \
		return (desc);                                                                               \
	}
#endif

#ifdef __cplusplus
}
#endif
#endif
