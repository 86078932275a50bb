/*
 * Test plugin: declares a minor newer than the host's but calls nothing the
 * host lacks, so dlopen succeeds: the host's check of the description, not
 * the dynamic linker, must refuse it, before init.
 */
#include "oh/host.h"
#include "oh/plugin.h"

static int init(oh_ctx *ctx, const json_t *settings)
{
	oh_log(ctx, OH_LOG_ERROR, "init of a plugin needing a newer minor ran");
	return OH_OK;
}

static const struct oh_plugin plugin = {
		.abi_version = OH_PLUGIN_ABI_VERSION,
		.abi_minor = OH_PLUGIN_ABI_MINOR + 1,
		.name = "newer minor, no new calls",
		.version = "0",
		.init = init,
};

OH_PLUGIN_ENTRY(&plugin)
