/* The device id rule, in one place for the host, its plugins and the agent. */
#include "ident.h"

bool ident_device_id_valid(const char *id, size_t len)
{
	if(!id || len < 1 || len > OH_DEVICE_ID_MAX)
		return false;
	for(size_t i = 0; i < len; i++) {
		char c = id[i];
		if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}
