/*
 * Test plugin: built for the next ABI version.  The host must refuse it
 * before calling anything but the entry point, naming both versions.
 */
#include "oh/host.h"
#include "oh/plugin.h"

static int init(oh_ctx *ctx, const json_t *settings)
{
	/* Never reached: a host that called this would have trusted a layout
	 * it does not know. */
	oh_log(ctx, OH_LOG_ERROR, "init of a plugin with the wrong ABI version ran");
	return OH_OK;
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION + 1,
		.name = "wrong ABI version",
		.version = "0",
		.init = init,
};

const struct oh_plugin *oh_plugin_entry(void)
{
	return &plugin;
}
