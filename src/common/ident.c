/*
 * The device id rule, in one place for the host, its plugins and the agent.
 *
 * An id becomes a topic level (/lab/device/{id}/...), a REST path segment
 * (/api/devices/{id}), a lease key, and on the device it is filled into the
 * commands it runs ({device_id} in a recording's path, say).  So besides the
 * alphabet, "." and ".." are refused: they pass it, but mean the current and
 * the parent directory to every path normaliser on the way (an HTTP router,
 * a bridge remapping topics, a shell building a file name).  Before this, a
 * command to device ".." went out on /lab/device/../ndi/cmd.
 */
#include "ident.h"

bool ident_device_id_valid(const char *id, size_t len)
{
	if(!id || len < 1 || len > OH_DEVICE_ID_MAX)
		return false;
	if(id[0] == '.' && (len == 1 || (len == 2 && id[1] == '.')))
		return false;
	for(size_t i = 0; i < len; i++) {
		char c = id[i];
		if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
				   c == '_' || c == '-'))
			return false;
	}
	return true;
}
