/*
 * Server-sent events at GET /api/events, shared by the web UI's pages.
 * The functions main.c calls (events_broker_state, events_free) are
 * declared in core.h.
 */
#ifndef OH_EVENTS_H
#define OH_EVENTS_H

#include "core.h"

/* Mounts GET /api/events and subscribes to the sources it relays.  Call
 * once, after the HTTP server and the registry exist. */
int events_register(struct host *h);

#endif
