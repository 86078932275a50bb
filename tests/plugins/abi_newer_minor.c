/*
 * Test plugin: built against headers one minor newer than the host's, and
 * calling a function only that newer host would have.  The host must refuse
 * it naming both versions ("needs plugin ABI 2.3, but this host provides
 * 2.2"), not with dlopen's "undefined symbol", and never run its init.
 */
#include "oh/host.h"
#include "oh/plugin.h"

/* What a later minor might add; this host does not export it. */
int oh_from_a_newer_minor(oh_ctx *ctx);

static int init(oh_ctx *ctx, const json_t *settings)
{
	oh_log(ctx, OH_LOG_ERROR, "init of a plugin needing a newer minor ran");
	return oh_from_a_newer_minor(ctx);
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.abi_minor = OH_PLUGIN_ABI_MINOR + 1,
		.name = "newer minor",
		.version = "0",
		.init = init,
};

OH_PLUGIN_ENTRY(&plugin)
