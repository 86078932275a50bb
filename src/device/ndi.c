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
#include "proc.h"
#include "util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define DEFAULT_STOP_GRACE_S 5.0

struct ndi {
	struct dev_module base;
	char *input;      /* the viewer's source; NULL when idle */
	pid_t pid;        /* the viewer's group; 0 if none */
	bool sim_running; /* simulation: a viewer "runs" without a pid */
	bool recording;
	char *record_source;
	pid_t record_pid;
	json_t *last_exit; /* how the last child ended by itself, or NULL */
};

static const struct jfield ndi_fields[] = {
		{"start_cmd_template", JF_STRING_NULL, false},
		{"record_start_cmd_template", JF_STRING_NULL, false},
		{"stop_grace_s", JF_NUMBER, false},
		{NULL, JF_ANY, false},
};

static int ndi_check_settings(const json_t *settings, bool strict, const char *prefix, char *err, size_t errlen)
{
	if(jcheck_object(settings, ndi_fields, !strict, prefix, err, errlen))
		return -1;
	const json_t *grace = json_object_get(settings, "stop_grace_s");
	if(grace && (json_number_value(grace) < 0 || json_number_value(grace) > 3600)) {
		snprintf(err, errlen, "%s.stop_grace_s: %g is out of range 0..3600", prefix,
				json_number_value(grace));
		return -1;
	}
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

static void stop_child(struct ndi *n, pid_t *pid)
{
	if(!*pid)
		return;
	proc_forget(*pid);
	proc_stop_group(*pid, grace_of(n));
	*pid = 0;
}

static void stop_viewer(struct ndi *n)
{
	stop_child(n, &n->pid);
	n->sim_running = false;
	free(n->input);
	n->input = NULL;
}

static void stop_recorder(struct ndi *n)
{
	stop_child(n, &n->record_pid);
	n->recording = false;
	free(n->record_source);
	n->record_source = NULL;
}

/* A child of this role started again: its earlier exit is no longer news
 * (the other role's is). */
static void forget_exit(struct ndi *n, const char *role)
{
	const char *was = json_string_value(json_object_get(n->last_exit, "role"));
	if(was && !strcmp(was, role)) {
		json_decref(n->last_exit);
		n->last_exit = NULL;
	}
}

static void on_child_exit(pid_t pid, int wstatus, void *ud)
{
	struct ndi *n = ud;
	const char *role;
	if(pid == n->pid) {
		role = "viewer";
		n->pid = 0;
		free(n->input);
		n->input = NULL;
	} else if(pid == n->record_pid) {
		role = "recorder";
		n->record_pid = 0;
		n->recording = false;
		free(n->record_source);
		n->record_source = NULL;
	} else {
		return;
	}
	char how[96];
	char ts[DEV_TS_LEN];
	proc_describe_exit(wstatus, how, sizeof how);
	log_warn("ndi", "%s: %s (pid %d) %s", n->base.host.device_id, role, (int)pid, how);
	json_decref(n->last_exit);
	n->last_exit = json_pack("{s:s, s:i, s:o, s:o, s:s, s:s}", "role", role, "pid", (int)pid, "code",
			WIFEXITED(wstatus) ? json_integer(WEXITSTATUS(wstatus)) : json_null(), "signal",
			WIFSIGNALED(wstatus) ? json_integer(WTERMSIG(wstatus)) : json_null(), "reason", how,
			"ts", dev_ts_now(ts));
	/* Helpers it started in its group would otherwise linger unowned. */
	proc_stop_group(pid, grace_of(n));
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

static const char *param_source(const struct envelope *env, bool required, struct mod_result *res)
{
	const json_t *s = json_object_get(env->params, "source");
	if(!s || json_is_null(s)) {
		if(required)
			mod_result_fail(res, ACK_BAD_REQUEST,
					"params.source: missing (expected a non-empty string)");
		return NULL;
	}
	if(!json_is_string(s) || !json_string_length(s)) {
		mod_result_fail(res, ACK_BAD_REQUEST, "params.source: expected a non-empty string");
		return NULL;
	}
	return json_string_value(s);
}

/*
 * Builds the command from template_key, stops the viewer (or the recorder)
 * and starts the new child in its place.  Returns its pid, or 0 after
 * failing res; the command is validated before anything is stopped.
 */
static pid_t replace_child(struct ndi *n, const char *template_key, const char *source, bool recorder,
		struct mod_result *res)
{
	char **argv = build_argv(n, template_key, source, res);
	if(!argv)
		return 0;
	bool was_running = recorder ? n->recording : n->pid != 0;
	if(recorder)
		stop_recorder(n);
	else
		stop_viewer(n);
	pid_t pid;
	char why[256];
	int rc = proc_spawn(argv, on_child_exit, n, &pid, why, sizeof why);
	cmdline_free(argv);
	if(rc) {
		mod_result_fail(res, ACK_MODULE_ERROR, "%s", why);
		if(was_running)
			changed(n);
		return 0;
	}
	log_info("ndi", "%s: %s started for '%s' (pid %d)", n->base.host.device_id,
			recorder ? "recorder" : "viewer", source, (int)pid);
	return pid;
}

static void do_start(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	const char *source = param_source(env, true, res);
	if(!source)
		return;
	char *copy = strdup(source);
	if(!copy) {
		mod_result_fail(res, ACK_EXCEPTION, "out of memory");
		return;
	}
	if(n->base.host.simulate) {
		stop_viewer(n);
		n->input = copy;
		n->sim_running = true;
		res->details = json_pack("{s:s, s:n, s:b}", "input", source, "pid", "simulated", 1);
		changed(n);
		return;
	}
	pid_t pid = replace_child(n, "start_cmd_template", source, false, res);
	if(!pid) {
		free(copy);
		return;
	}
	n->pid = pid;
	n->input = copy;
	forget_exit(n, "viewer");
	res->details = json_pack("{s:i, s:s}", "pid", (int)pid, "input", source);
	changed(n);
}

static void do_stop(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	if(!n->pid && !n->sim_running && !n->recording) {
		res->details = json_pack("{s:s}", "note", "already idle");
		return;
	}
	json_t *stopped = json_array();
	if(n->pid)
		json_array_append_new(stopped, json_integer(n->pid));
	if(n->record_pid)
		json_array_append_new(stopped, json_integer(n->record_pid));
	stop_viewer(n);
	stop_recorder(n);
	res->details = json_pack("{s:o}", "stopped_pids", stopped ? stopped : json_array());
	changed(n);
}

static void do_record_start(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	const char *source = param_source(env, false, res);
	if(res->code != ACK_OK)
		return;
	if(!source)
		source = n->input;
	if(!source) {
		mod_result_fail(res, ACK_BAD_REQUEST,
				"params.source: missing, and there is no current input to record");
		return;
	}
	char *copy = strdup(source);
	if(!copy) {
		mod_result_fail(res, ACK_EXCEPTION, "out of memory");
		return;
	}
	if(n->base.host.simulate) {
		stop_recorder(n);
		n->recording = true;
		n->record_source = copy;
		res->details = json_pack("{s:n, s:s, s:b}", "record_pid", "source", copy, "simulated", 1);
		changed(n);
		return;
	}
	pid_t pid = replace_child(n, "record_start_cmd_template", source, true, res);
	if(!pid) {
		free(copy);
		return;
	}
	n->recording = true;
	n->record_pid = pid;
	n->record_source = copy;
	forget_exit(n, "recorder");
	res->details = json_pack("{s:i, s:s}", "record_pid", (int)pid, "source", copy);
	changed(n);
}

static void do_record_stop(struct ndi *n, const struct envelope *env, struct mod_result *res)
{
	if(!n->recording) {
		res->details = json_pack("{s:s}", "note", "not recording");
		return;
	}
	json_t *pid = n->record_pid ? json_integer(n->record_pid) : json_null();
	stop_recorder(n);
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
	bool running = n->pid || n->sim_running || n->recording;
	json_t *fields = json_pack("{s:o, s:o, s:b, s:o}", "input",
			n->input ? dev_json_text(n->input) : json_null(), "pid",
			n->pid ? json_integer(n->pid) : json_null(), "recording", n->recording, "record_pid",
			n->record_pid ? json_integer(n->record_pid) : json_null());
	json_t *st = json_pack("{s:s, s:o}", "state", running ? "running" : "idle", "fields",
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
	stop_viewer(n);
	stop_recorder(n);
}

static void ndi_destroy(struct dev_module *m)
{
	struct ndi *n = (struct ndi *)m;
	if(n->pid)
		proc_forget(n->pid);
	if(n->record_pid)
		proc_forget(n->record_pid);
	free(n->input);
	free(n->record_source);
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
