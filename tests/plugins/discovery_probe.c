/*
 * Test plugin: NDI source discovery (src/plugins/ndi/ndi_discovery.c) behind
 * routes of its own, so the discovery tests do not depend on the NDI
 * plugin's REST layer.
 *
 *   GET /api/{module}/sources[?detail=1]  {"sources": [...]}
 *   GET /api/{module}/state[?name=N]      {"mdns": "running"|..., "any": bool,
 *                                          "has": bool (with name)}
 *
 * Settings are the discovery's own, checked against its table
 * (ndi_discovery_settings_spec) with the one validator; any other key is
 * refused, as the NDI plugin does.
 *
 * The build links the NDI plugin's own ndi_discovery.c and
 * ndi_avahi_poll.c into this probe (CMakeLists.txt), with the plugin's
 * Avahi build option, so it runs exactly the code the plugin runs; the host
 * exports none of a built-in plugin's symbols to borrow.  The entry point is
 * the only symbol it exports.
 */
#include <stdbool.h>
#include <string.h>

#include "oh/host.h"
#include "oh/plugin.h"

#include "../../src/plugins/ndi/ndi_discovery.h"

static bool truthy(const char *v)
{
	return v && (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"));
}

static void get_sources(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	json_t *list = ndi_discovery_list(ud, truthy(oh_req_query(req, "detail")));
	if(!list) {
		oh_reply_error(req, 500, "ERROR", "out of memory");
		return;
	}
	oh_reply_json(req, 200, json_pack("{s:o}", "sources", list));
}

static void get_state(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	json_t *body = json_pack(
			"{s:s, s:b}", "mdns", ndi_discovery_mdns_state(ud), "any", ndi_discovery_any(ud));
	const char *name = oh_req_query(req, "name");
	if(name)
		json_object_set_new(body, "has", json_boolean(ndi_discovery_has(ud, name)));
	oh_reply_json(req, 200, body);
}

static int probe_init(oh_ctx *ctx, const json_t *settings)
{
	char err[256];
	if(oh_json_validate(settings, &ndi_discovery_settings_spec, "settings", NULL, err, sizeof err))
		return oh_fail(ctx, "%s", err);
	struct ndi_discovery *d = ndi_discovery_new(ctx, settings);
	if(!d)
		return OH_ERR_INVAL;
	oh_set_data(ctx, d, NULL);
	if(oh_route(ctx, "GET", "/sources", get_sources, d, NULL) ||
			oh_route(ctx, "GET", "/state", get_state, d, NULL))
		return oh_fail(ctx, "cannot add routes");
	return OH_OK;
}

static void probe_cleanup(oh_ctx *ctx)
{
	/* Here, not in a free_fn: the discovery's timers and watches must
	 * still exist when it releases them. */
	ndi_discovery_free(oh_data(ctx));
	oh_set_data(ctx, NULL, NULL);
}

static const struct oh_plugin probe = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.name = "NDI discovery probe",
		.version = "1",
		.init = probe_init,
		.cleanup = probe_cleanup,
};

/* Exported (visibility default) though the rest of the probe is hidden. */
OH_PLUGIN_ENTRY(&probe)
