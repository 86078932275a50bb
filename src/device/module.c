/*
 * The table of module types built into the agent.  Adding a module means
 * writing its ops and listing them here.
 */
#include "module.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct dev_module_ops *const module_types[] = {
		&ndi_module_ops,
		NULL,
};

const struct dev_module_ops *dev_module_find(const char *name)
{
	for(size_t i = 0; module_types[i]; i++) {
		if(!strcmp(module_types[i]->name, name))
			return module_types[i];
	}
	return NULL;
}

const char *dev_module_names(void)
{
	return "ndi";
}

void mod_result_fail(struct mod_result *res, enum ack_code code, const char *fmt, ...)
{
	va_list ap;
	res->code = code;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof res->error, fmt, ap);
	va_end(ap);
}
