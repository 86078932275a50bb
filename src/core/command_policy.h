/*
 * The host's policy for commands that arrive over MQTT (config
 * `mqtt_commands`), checked once in the core for every plugin.  See
 * command_policy.c for why it exists and docs/security.md for how it sits
 * beside the broker's ACL.
 */
#ifndef OH_COMMAND_POLICY_H
#define OH_COMMAND_POLICY_H

#include <stdbool.h>

#include "core.h"

/* Puts the policy in front of the plugins' handlers (the gate of
 * dispatch.c) and says what the MQTT command plane allows (warning when
 * HTTP tokens are configured but the command topics are open). */
void command_policy_install(struct host *h);

/*
 * Whether msg (borrowed) may reach the plugins' handlers.  kind is
 * metrics_topic_kind(h, msg->topic).  Only commands on
 * {root}/orchestrator/{module}/cmd are checked; everything else passes.
 * When this returns false the command has been answered with a FORBIDDEN
 * ack on {root}/orchestrator/{module}/evt (unless it was retained, which is
 * dropped silently as the plugins do) and must not be delivered to a plugin.
 */
bool command_policy_allows(struct host *h, const struct oh_message *msg, const char *kind);

#endif
