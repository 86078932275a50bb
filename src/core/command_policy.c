/*
 * What the host lets commands arriving over MQTT do (config `mqtt_commands`).
 *
 * HTTP tokens protect HTTP only.  Any client the broker lets publish on
 * {root}/orchestrator/{module}/cmd can command devices, and the `actor` of
 * an envelope is whatever its sender wrote, so a lab that configured tokens
 * is not protected on the MQTT plane by them.  The broker's authentication
 * and ACL are the real protection there (config/mosquitto/acl.example); this
 * file is the host's own, for labs that cannot manage their broker:
 *
 *   - mqtt_commands.enabled false: no command reaches a plugin; each gets a
 *     FORBIDDEN ack naming the setting, so its sender learns why instead of
 *     waiting for an ack that never comes.
 *   - mqtt_commands.admin_actors: an admin action runs only when the
 *     envelope's actor is listed (a name the sender claims, not one it
 *     proves: docs/security.md says so).
 *
 * The check runs as the gate of dispatch_on_message() before any plugin
 * handler sees the message, so it holds for every plugin without each one repeating it, and
 * also for a plugin that subscribed to another module's command topic.
 *
 * Which actions are admin ones is the plugin's knowledge, and the ABI
 * already has one place where a plugin states it: the role its REST routes
 * need (oh_route_require).  An action `x` of module `m` is an admin action
 * exactly when the route POST /api/{m}/{x} needs the admin role; for NDI
 * that is force_release.  So a plugin marks an action admin once and both
 * planes follow, with no new ABI.  (The scheduler's unschedule acts only on
 * the sender's own jobs over MQTT, so it needs no entry.)
 */
#include "command_policy.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "topics.h"
#include "plugin_ctx.h"

/* The actor of an envelope without one, as the plugins and acks name it. */
static const char ANONYMOUS[] = "anonymous";

static void log_startup(const struct config *c)
{
	const char *root = c->topic_root;
	if(!c->mqtt_commands.enabled) {
		log_info("mqtt",
				"commands on %s/orchestrator/+/cmd are refused with FORBIDDEN "
				"(mqtt_commands.enabled is false); the HTTP API is unaffected",
				root);
		return;
	}
	if(c->mqtt_commands.admin_actors) {
		log_info("mqtt",
				"admin actions over MQTT are limited to the %zu actor(s) in "
				"mqtt_commands.admin_actors",
				c->mqtt_commands.n_admin_actors);
		return;
	}
	if(!c->http.n_tokens)
		return;
	/* Without a broker user name the broker most likely has no ACL either:
	 * then the tokens give a false sense of safety, worth a warning. */
	log_msg(c->mqtt.username ? LOG_LVL_INFO : LOG_LVL_WARN, "mqtt",
			"HTTP tokens protect HTTP only: any client the broker lets publish on "
			"%s/orchestrator/+/cmd can command devices in any actor's name, force_release "
			"included; limit it with the broker's ACL (config/mosquitto/acl.example) or "
			"mqtt_commands (docs/security.md)",
			root);
}

/* The loaded plugin whose command topic ({root}/orchestrator/{module}/cmd)
 * t is, or NULL. */
static oh_ctx *topic_owner(struct host *h, const struct topic_parts *t)
{
	if(t->place != TOPIC_ORCHESTRATOR || t->error || !topic_level_is(t->leaf, "cmd"))
		return NULL;
	for(size_t i = 0; i < h->n_plugins; i++) {
		oh_ctx *ctx = h->plugins[i];
		if(ctx->loaded && topic_level_is(t->module, ctx->module))
			return ctx;
	}
	return NULL;
}

/* Whether `action` is one the plugin keeps for admins: its REST twin,
 * POST /api/{module}/{action}, needs the admin role (see the top). */
static bool admin_action(struct host *h, const oh_ctx *ctx, const char *action)
{
	char rel[256], path[512];
	/* Only a plain name can be a route's last segment. */
	if(!h->http || !action || strpbrk(action, "/{}") ||
			snprintf(rel, sizeof rel, "/%s", action) >= (int)sizeof rel ||
			http_plugin_path(ctx, rel, path, sizeof path))
		return false;
	return http_route_role(h->http, ctx, "POST", path) >= OH_ROLE_ADMIN;
}

static bool actor_listed(const struct config *c, const char *actor)
{
	for(size_t i = 0; i < c->mqtt_commands.n_admin_actors; i++) {
		if(!strcmp(c->mqtt_commands.admin_actors[i], actor))
			return true;
	}
	return false;
}

/* Answers a refused command with FORBIDDEN; details name the setting that
 * refused it (and the device, for the command log).  Always false. */
static bool refuse(oh_ctx *ctx, const struct oh_message *msg, const struct oh_command *cmd,
		const char *setting, const char *why)
{
	/* A retained command is never run (the plugins ignore them); acking it
	 * would repeat on every reconnect. */
	if(msg->retained) {
		log_debug("mqtt", "retained command on %s dropped: %s", msg->topic, why);
		return false;
	}
	json_t *details = json_pack("{s:s}", "setting", setting);
	const char *dev = json_string_value(json_object_get(cmd->params, "device_id"));
	if(details && oh_device_id_valid(dev))
		json_object_set_new(details, "device_id", json_string(dev));
	oh_ack_publish(ctx,
			oh_ack_new(cmd->req_id, false, "FORBIDDEN", cmd->action,
					cmd->actor ? cmd->actor : ANONYMOUS, why, details));
	return false;
}

bool command_policy_allows(struct host *h, const struct oh_message *msg, const char *kind)
{
	const struct config *c = &h->cfg;
	if(c->mqtt_commands.enabled && !c->mqtt_commands.admin_actors)
		return true;
	/* "command" is also {root}/device/{id}/{module}/cmd, which the host
	 * publishes; only the orchestrator's command topics are ours to check. */
	struct topic_parts t;
	if(strcmp(kind, "command") || topic_parse(c->topic_root, msg->topic, &t) != TOPIC_ORCHESTRATOR)
		return true;
	oh_ctx *ctx = topic_owner(h, &t);

	struct oh_command cmd;
	const char *code = NULL;
	char err[256];
	/* Even a bad envelope yields its req_id (and action and actor, when
	 * they came before the fault), so a refusal still correlates.  The
	 * plugin's own oh_command_parse() on this message gets this very
	 * parse (command.c), so the envelope is parsed and validated once. */
	bool parsed = !oh_command_parse(ctx, msg, &cmd, &code, err, sizeof err);

	if(!c->mqtt_commands.enabled) {
		if(!ctx) {
			/* No plugin owns the module, so there is no evt topic to
			 * answer on; a wildcard subscriber still must not act. */
			log_debug("mqtt", "command on %s dropped: mqtt_commands.enabled is false", msg->topic);
			return false;
		}
		return refuse(ctx, msg, &cmd, "mqtt_commands.enabled",
				"commands over MQTT are disabled on this host (mqtt_commands.enabled is "
				"false); use the HTTP API");
	}

	/* A bad envelope is the plugin's to answer (BAD_JSON, BAD_REQUEST). */
	if(!ctx || !parsed || !admin_action(h, ctx, cmd.action))
		return true;
	const char *actor = cmd.actor ? cmd.actor : ANONYMOUS;
	if(actor_listed(c, actor))
		return true;
	snprintf(err, sizeof err,
			"%s is an admin action; actor \"%.120s\" is not in "
			"mqtt_commands.admin_actors",
			cmd.action, actor);
	log_warn("mqtt", "command %s on %s refused: %s", cmd.req_id, msg->topic, err);
	return refuse(ctx, msg, &cmd, "mqtt_commands.admin_actors", err);
}

void command_policy_install(struct host *h)
{
	log_startup(&h->cfg);
	dispatch_set_gate(h->dispatch, command_policy_allows);
}
