/*
 * One device on the bus: its MQTT connection (with its own last will), its
 * retained meta and status, its heartbeat, and the routing of device-level
 * commands, module commands and module cfg updates.  The real agent runs one;
 * --simulate runs many in one process.
 */
#ifndef OH_DEVICE_AGENT_H
#define OH_DEVICE_AGENT_H

#include <jansson.h>
#include <stdbool.h>

#include "dev_config.h"

#ifdef OH_VERSION
#define OH_DEVICE_VERSION OH_VERSION
#else
#define OH_DEVICE_VERSION "0.1.0"
#endif

struct event_base;
struct agent;

/*
 * A device named id (borrowed, copied) configured by cfg (borrowed: must
 * outlive the agent).  simulate: modules ack without spawning anything.
 * Returned: free with agent_free(); NULL on bad options or no memory
 * (logged).
 */
struct agent *agent_new(struct event_base *base, const struct dev_config *cfg, const char *id, bool simulate);

/* Starts connecting and the heartbeat.  Returns 0 or -1. */
int agent_start(struct agent *a);

/* First half of a clean shutdown: asks every module to stop its children
 * (then wait with child_stop_all_blocking()). */
void agent_stop_modules(struct agent *a);

/* Second half: publishes module statuses and {"online": false} retained,
 * then disconnects cleanly (so the broker does not send the will). */
void agent_go_offline(struct agent *a);

void agent_free(struct agent *a);

const char *agent_id(const struct agent *a);

#endif
