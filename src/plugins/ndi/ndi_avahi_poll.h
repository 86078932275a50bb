/*
 * Avahi's event-loop abstraction (AvahiPoll) implemented on the host's loop
 * through include/oh/host.h.  Every watch and timeout belongs to the
 * plugin's context, so the host also frees them if the plugin goes.
 */
#ifndef OH_NDI_AVAHI_POLL_H
#define OH_NDI_AVAHI_POLL_H

#include <avahi-common/watch.h>

#include "oh/host.h"

/* Fills poll; it stays valid as long as ctx. */
void ndi_avahi_poll_init(AvahiPoll *poll, oh_ctx *ctx);

#endif
