/*
 * The NDI module: runs a viewer (start_cmd_template) and optionally a
 * recorder (record_start_cmd_template) as child process groups, and reports
 * them as {"state": "idle"|"running", "fields": {"input", "pid",
 * "recording", "record_pid"}}.
 *
 * Behaviour chosen where the protocol is silent, matching the deployed agent
 * where known:
 * - start while running restarts with the new source (the old group is
 *   stopped first); set_input is start with the new source;
 * - stop ends the viewer and the recorder; stop when idle is OK with a note;
 * - record_start without a source records the current input; record_stop
 *   when not recording is OK with a note;
 * - a child that exits by itself is noticed: its fields are cleared, the
 *   status is republished with "last_exit" saying how it ended, and any
 *   processes it left in its group are stopped;
 * - an unknown action is a MODULE_ERROR (the module, not the envelope, does
 *   not know it), missing or mistyped params are BAD_REQUEST;
 * - in simulation nothing is spawned: actions succeed and the fields show
 *   the input with null pids.
 */
#include "cmdline.h"
#include "log.h"
#include "module.h"
#include "child.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define DEFAULT_STOP_GRACE_S 5.0

/* The two children the module runs, which start, stop, exit and report
 * alike and differ only in names. */
enum role_id {
	VIEWER,
	RECORDER,
	N_ROLES
};

struct role_desc {
	const char *name;         /* "viewer": in logs and last_exit.role */
	const char *template_key; /* the settings key of its command */
	const char *pid_key;      /* its pid in the fields and the ack details */
	const char *source_key;   /* its source in the ack details */
};

static const struct role_desc roles[N_ROLES] = {
		[VIEWER] = {"viewer", "start_cmd_template", "pid", "input"},
		[RECORDER] = {"recorder", "record_start_cmd_template", "record_pid", "source"},
};

struct role {
	bool on;      /* running (in simulation without a pid) */
	char *source; /* NULL when off */
	pid_t pid;    /* its group; 0 if none */
};

struct ndi {
	struct dev_module base;
	struct role role[N_ROLES];
	json_t *last_exit; /* how the last child ended by itself, or NULL */
};

static const struct oh_vfield ndi_fields[] = {
		OH_VFIELD("start_cmd_template", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD("record_start_cmd_template", OH_VT_STRING, OH_VF_NULL),
		OH_VFIELD("stop_grace_s", OH_VT_NUMBER, OH_VF_MIN | OH_VF_MAX, 0, 3600),
		OH_VFIELD_END,
};

static int ndi_check_settings(const json_t *settings, bool strict, const char *prefix, char *err, size_t errlen)
{
	const struct oh_vobject spec = OH_VOBJECT(ndi_fields, strict ? OH_V_REFUSE : OH_V_IGNORE);
	if(oh_json_validate(settings, &spec, prefix, NULL, err, errlen))
		return -1;
	/* A template that cannot be split would fail every start: say so now. */
	const char *keys[] = {"start_cmd_template", "record_start_cmd_template"};
	for(size_t i = 0; i < 2; i++) {
		const json_t *t = json_object_get(settings, keys[i]);
		if(!json_is_string(t))
			continue;
		char **argv;
		int argc;
		char why[160];
		if(cmdline_split(json_string_value(t), &argv, &argc, why, sizeof why)) {
			snprintf(err, errlen, "%s.%s: %s", prefix, keys[i], why);
			return -1;
		}
		cmdline_free(argv);
	}
	return 0;
}

static struct dev_module *ndi_create(const struct dev_module_host *host)
{
	struct ndi *n = calloc(1, sizeof *n);
	if(!n)
		return NULL;
	n->base.host = *host;
	return &n->base;
}

static double grace_of(const struct ndi *n)
{
	const json_t *g = json_object_get(n->base.settings, "stop_grace_s");
	return json_is_number(g) ? json_number_value(g) : DEFAULT_STOP_GRACE_S;
}

static void changed(struct ndi *n)
{
	if(n->base.host.status_changed)
		n->base.host.status_changed(&n->base, n->base.host.ud);
}

/* Stops role r's group (SIGTERM, SIGKILL after the grace) and marks it off. */
static void stop_role(struct ndi *n, enum role_id r)
{
	struct role *ro = &n->role[r];
	if(ro->pid) {
		child_forget(ro->pid);
		child_stop_group(ro->pid, grace_of(n));
	}
	ro->pid = 0;
	ro->on = false;
	free(ro->source);
	ro->source = NULL;
}

/* A child of this role started again: its earlier exit is no longer news
 * (the other role's is). */
static void forget_exit(struct ndi *n, enum role_id r)
{
	const char *was = json_string_value(json_object_get(n->last_exit, "role"));
	if(was && !strcmp(was, roles[r].name)) {
		json_decref(n->last_exit);
		n->last_exit = NULL;
	}
}

static void on_child_exit(pid_t pid, const struct child_result *res, void *ud)
{
	struct ndi *n = ud;
	int wstatus = res->status;
	enum role_id r = 0;
	while(r < N_ROLES && n->role[r].pid != pid)
		r++;
	if(r == N_ROLES)
		return;
	struct role *ro = &n->role[r];
	ro->pid = 0;
	ro->on = false;
	free(ro->source);
	ro->source = NULL;
	const char *role = roles[r].name;
	char how[96];
	char ts[DEV_TS_LEN];
	child_describe_exit(wstatus, how, sizeof how);
	log_warn("ndi", "%s: %s (pid %d) %s", n->base.host.device_id, role, (int)pid, how);
	json_decref(n->last_exit);
	n->last_exit = json_pack("{s:s, s:i, s:o, s:o, s:s, s:s}", "role", role, "pid", (int)pid, "code",
			WIFEXITED(wstatus) ? json_integer(WEXITSTATUS(wstatus)) : json_null(), "signal",
			WIFSIGNALED(wstatus) ? json_integer(WTERMSIG(wstatus)) : json_null(), "reason", how,
			"ts", dev_ts_now(ts));
	/* Helpers it started in its group would otherwise linger unowned. */
	child_stop_group(pid, grace_of(n));
	changed(n);
}

/* Builds the argv for the template under settings key tkey; fails the
 * result when it is not configured or does not split. */
static char **build_argv(struct ndi *n, const char *tkey, const char *source, struct mod_result *res)
{
	const json_t *t = json_object_get(n->base.settings, tkey);
	if(!json_is_string(t) || !json_string_length(t)) {
		mod_result_fail(res, ACK_MODULE_ERROR, "%s is not configured for module ndi", tkey);
		return NULL;
	}
	const struct cmdline_var vars[] = {
			{"source", source},
			{"device_id", n->base.host.device_id},
	};
	char **argv;
	int argc;
	char why[160];
	if(cmdline_build(json_string_value(t), vars, 2, &argv, &argc, why, sizeof why)) {
		mod_result_fail(res, ACK_MODULE_ERROR, "%s: %s", tkey, why);
		return NULL;
	}
	return argv;
}

/* params.source, a non-empty string: required by start, optional for
 * record_start (the current input then).  The other params are the host's
 * or extras relayed untouched, so they are left alone. */
static const struct oh_vfield source_required[] = {
		OH_VFIELD("source", OH_VT_STRING, OH_VF_REQUIRED | OH_VF_MIN, .min = 1),
		OH_VFIELD_END,
};
static const struct oh_vfield source_optional[] = {
		OH_VFIELD("source", OH_VT_STRING, OH_VF_MIN, .min = 1),
		OH_VFIELD_END,
};

/* The command's source, NULL when absent (or null); fails res naming the
 * field when it is wrong, or missing and required. */
static const char *param_source(const struct envelope *env, bool required, struct mod_result *res)
{
	const struct oh_vobject spec = OH_VOBJECT(required ? source_required : source_optional, OH_V_IGNORE);
	char why[256];
	if(oh_json_validate(env->params, &spec, "params", NULL, why, sizeof why)) {
		mod_result_fail(res, ACK_BAD_REQUEST, "%s", why);
		return NULL;
	}
	return json_string_value(json_object_get(env->params, "source"));
}

/*
 * The one start path of both roles: builds the command from the role's
 * template (validated before anything is stopped), stops the role's child
 * and starts the new one in its place, or in simulation only marks the role
 * on.  Fails res when the command cannot be built or run.
 */
static void start_role(struct ndi *n, enum role_id r, const char *source, struct mod_result *res)
{
	const struct role_desc *d = &roles[r];
	struct role *ro = &n->role[r];
	char *copy = strdup(source);
	if(!copy) {
		mod_result_fail(res, ACK_EXCEPTION, "out of memory");
		return;
	}
	if(n->base.host.simulate) {
		stop_role(n, r);
		ro->on = true;
		ro->source = copy;
		res->details = json_pack("{s:n, s:s, s:b}", d->pid_key, d->source_key, copy, "simulated", 1);
		changed(n);
		return;
	}
	char **argv = build_argv(n, d->template_key, copy, res);
	if(!argv) {
		free(copy);
		return;
	}
	bool was_running = ro->on;
	stop_role(n, r);
	pid_t pid;
	char why[256];
	/* stdout inherited: the viewer's output goes where the agent's does. */
	const struct child_opts opts = {.timeout_ms = -1};
	int rc = child_spawn(argv, &opts, on_child_exit, n, &pid, why, sizeof why);
	cmdline_free(argv);
	if(rc) {
		free(copy);
		mod_result_fail(res, ACK_MODULE_ERROR, "%s", why);
		if(was_running)
			changed(n);
		return;
	}
	log_info("ndi", "%s: %s started for '%s' (pid %d)", n->base.host.device_id, d->name, copy, (int)pid);
	ro->on = true;
	ro->pid = pid;
	ro->source = copy;
	forget_exit(n, r);
	res->details = json_pack("{s:i, s:s}", d->pid_key, (int)pid, d->source_key, copy);
	changed(n);
}

static void do_start(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	const char *source = param_source(env, true, res);
	if(source)
		start_role(n, VIEWER, source, res);
}

static void do_stop(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	if(!n->role[VIEWER].on && !n->role[RECORDER].on) {
		res->details = json_pack("{s:s}", "note", "already idle");
		return;
	}
	json_t *stopped = json_array();
	for(enum role_id r = 0; r < N_ROLES; r++) {
		if(n->role[r].pid)
			json_array_append_new(stopped, json_integer(n->role[r].pid));
		stop_role(n, r);
	}
	res->details = json_pack("{s:o}", "stopped_pids", stopped ? stopped : json_array());
	changed(n);
}

static void do_record_start(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	const char *source = param_source(env, false, res);
	if(res->code != ACK_OK)
		return;
	if(!source)
		source = n->role[VIEWER].source;
	if(!source) {
		mod_result_fail(res, ACK_BAD_REQUEST,
				"params.source: missing, and there is no current input to record");
		return;
	}
	start_role(n, RECORDER, source, res);
}

static void do_record_stop(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	struct role *rec = &n->role[RECORDER];
	if(!rec->on) {
		res->details = json_pack("{s:s}", "note", "not recording");
		return;
	}
	json_t *pid = rec->pid ? json_integer(rec->pid) : json_null();
	stop_role(n, RECORDER);
	res->details = json_pack("{s:o}", "stopped_pid", pid);
	changed(n);
}

static const struct {
	const char *action;
	void (*fn)(struct ndi *n, const struct envelope *env, struct mod_result *res);
	const char *needs; /* the setting without which it cannot run, or NULL */
} ndi_actions[] = {
		{"start", do_start, "start_cmd_template"},
		{"set_input", do_start, "start_cmd_template"},
		{"stop", do_stop, NULL},
		{"record_start", do_record_start, "record_start_cmd_template"},
		{"record_stop", do_record_stop, "record_start_cmd_template"},
};

static void ndi_handle(struct dev_module *m, const struct envelope *env, struct mod_result *res)
{
	struct ndi *n = (struct ndi *)m;
	for(size_t i = 0; i < sizeof ndi_actions / sizeof ndi_actions[0]; i++) {
		if(!strcmp(ndi_actions[i].action, env->action)) {
			ndi_actions[i].fn(n, env, res);
			return;
		}
	}
	mod_result_fail(res, ACK_MODULE_ERROR,
			"unknown action '%.64s' for module ndi (expected start, stop, set_input, record_start or record_stop)",
			env->action);
}

static json_t *ndi_status(struct dev_module *m)
{
	struct ndi *n = (struct ndi *)m;
	const struct role *v = &n->role[VIEWER], *rec = &n->role[RECORDER];
	json_t *fields = json_pack("{s:o, s:o, s:b, s:o}", "input",
			v->source ? dev_json_text(v->source) : json_null(), "pid",
			v->pid ? json_integer(v->pid) : json_null(), "recording", rec->on, "record_pid",
			rec->pid ? json_integer(rec->pid) : json_null());
	json_t *st = json_pack("{s:s, s:o}", "state", v->on || rec->on ? "running" : "idle", "fields",
			fields ? fields : json_object());
	if(st && n->last_exit)
		json_object_set(st, "last_exit", n->last_exit);
	return st;
}

/* {"actions": [...]}: what this device can do now.  The templates say how,
 * which is the device's business: they would show every API reader the
 * programs, paths and options of the machine. */
static json_t *ndi_capabilities(struct dev_module *m)
{
	json_t *actions = json_array();
	for(size_t i = 0; actions && i < sizeof ndi_actions / sizeof ndi_actions[0]; i++) {
		const json_t *t = ndi_actions[i].needs ? json_object_get(m->settings, ndi_actions[i].needs)
						       : NULL;
		if(!ndi_actions[i].needs || m->host.simulate || json_string_length(t))
			json_array_append_new(actions, json_string(ndi_actions[i].action));
	}
	return actions ? json_pack("{s:o}", "actions", actions) : NULL;
}

static void ndi_stop_all(struct dev_module *m)
{
	struct ndi *n = (struct ndi *)m;
	for(enum role_id r = 0; r < N_ROLES; r++)
		stop_role(n, r);
}

static void ndi_destroy(struct dev_module *m)
{
	struct ndi *n = (struct ndi *)m;
	for(enum role_id r = 0; r < N_ROLES; r++) {
		if(n->role[r].pid)
			child_forget(n->role[r].pid);
		free(n->role[r].source);
	}
	json_decref(n->last_exit);
	free(n);
}

const struct dev_module_ops ndi_module_ops = {
		.name = "ndi",
		.check_settings = ndi_check_settings,
		.create = ndi_create,
		.handle = ndi_handle,
		.status = ndi_status,
		.capabilities = ndi_capabilities,
		.stop_all = ndi_stop_all,
		.destroy = ndi_destroy,
};
