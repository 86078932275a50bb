/*
 * NDI source discovery: which NDI senders exist right now.
 *
 * Three origins are merged by source name:
 *   "mdns"    NDI senders announce themselves over mDNS/DNS-SD as `_ndi._tcp`
 *             services named "MACHINE (Stream name)"; they are browsed and
 *             resolved through avahi-daemon (libavahi-client, as the NDI
 *             runtime does on Linux) and kept current as they come and go.
 *   "helper"  settings.discovery_helper, a command printing a JSON list of
 *             sources, run at startup and every discovery_interval_s.
 *   "static"  settings.sources, a fixed list.
 *
 * Everything runs on the host's loop through include/oh/host.h (fd watches,
 * timers, oh_spawn); the list is answered from memory at once.  When
 * avahi-daemon is not running this is logged once, the other origins are
 * served, and mDNS is picked up when the daemon appears.  Without
 * libavahi-client at build time (no OH_HAVE_AVAHI) mDNS is "unavailable".
 *
 * Lifetime: free the discovery from the plugin's cleanup(), while the
 * host's registrations (timers, watches, children) still exist; the host
 * tears those down right after cleanup() without calling back.
 */
#ifndef NDI_DISCOVERY_H
#define NDI_DISCOVERY_H

#include <stdbool.h>

#include <jansson.h>

#include "oh/host.h"
#include "oh/validate.h"

struct ndi_discovery;

/* The settings keys ndi_discovery_new() reads, as entries of the one
 * validator (include/oh/validate.h), ended by OH_VFIELD_END: the plugin adds
 * them to its own settings table, so every key is checked once, there.
 * The spec is the same fields alone, unknown keys refused (a plugin whose
 * settings are only these). */
extern const struct oh_vfield ndi_discovery_settings[];
extern const struct oh_vobject ndi_discovery_settings_spec;

/*
 * settings (borrowed, may be NULL): the plugin's settings object; reads
 *   "sources"                    array of strings (default [])
 *   "discovery_helper"           command line (split like a shell would, but
 *                                no shell runs it), array of strings (argv),
 *                                or null (default)
 *   "discovery_interval_s"       how often the helper re-runs (default 30)
 *   "discovery_helper_timeout_s" when the helper is killed (default 5)
 *   "mdns"                       browse _ndi._tcp through Avahi (default true)
 * settings must have passed ndi_discovery_settings (above); the values are
 * only read here.  Starts the helper and the mDNS browser.  Returns the
 * discovery (free with ndi_discovery_free), or NULL on allocation failure.
 */
struct ndi_discovery *ndi_discovery_new(oh_ctx *ctx, const json_t *settings);
/* Stops everything; d may be NULL.  Call from cleanup() (see above). */
void ndi_discovery_free(struct ndi_discovery *d);

/*
 * The current merged list, sorted by name, deduplicated by name.  Names only
 * (an array of strings), or with detail an array of objects
 *   {"name", "host", "address", "port", "origin": ["mdns"|"helper"|"static", ...]}
 * where host/address/port are null when no origin knows them (mDNS wins
 * over the helper).  Returned: json_decref; NULL only on allocation failure.
 */
json_t *ndi_discovery_list(struct ndi_discovery *d, bool detail);
/* Whether name (borrowed) is currently known from any origin. */
bool ndi_discovery_has(struct ndi_discovery *d, const char *name);
/* Whether any source is known (from any origin). */
bool ndi_discovery_any(struct ndi_discovery *d);
/* "running" (browsing through avahi-daemon), "unavailable" (no daemon, no
 * D-Bus, or built without Avahi) or "disabled" (settings.mdns false). */
const char *ndi_discovery_mdns_state(struct ndi_discovery *d);

#endif
