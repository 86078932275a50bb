/*
 * Unit tests of the device agent's NDI module and child process handling
 * (src/device/ndi.c, src/common/child.c) on a real libevent loop, without a
 * broker: real children (sleep, sh) in their own process groups, stop with
 * SIGTERM then SIGKILL, exec failures, children exiting by themselves, the
 * injection case, and simulation.
 */
#include "check.h"
#include "module.h"
#include "child.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct event_base *base;
static int changes;

static void on_changed(struct dev_module *m, void *ud)
{
	changes++;
}

static void run_loop_ms(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0;
}

static bool group_alive(pid_t pgid)
{
	return kill(-pgid, 0) == 0;
}

/* Runs the loop until the group is gone, up to ms; true if it went. */
static bool wait_group_gone(pid_t pgid, int ms)
{
	for(int t = 0; t < ms; t += 20) {
		if(!group_alive(pgid))
			return true;
		run_loop_ms(20);
	}
	return !group_alive(pgid);
}

static struct dev_module *make_ndi(const char *settings_json, bool simulate)
{
	struct dev_module_host host = {base, "rpi-01", simulate, on_changed, NULL};
	struct dev_module *m = ndi_module_ops.create(&host);
	m->ops = &ndi_module_ops;
	m->name = "ndi";
	m->settings = json_loads(settings_json, 0, NULL);
	return m;
}

static void free_ndi(struct dev_module *m)
{
	m->ops->stop_all(m);
	child_stop_all_blocking();
	json_decref(m->settings);
	m->ops->destroy(m);
}

/* Runs action with params (JSON text); returns the result (details owned by caller). */
static struct mod_result cmd(struct dev_module *m, const char *action, const char *params)
{
	char text[1024], err[256];
	snprintf(text, sizeof text,
			"{\"req_id\": \"t\", \"actor\": \"test\", \"action\": \"%s\", \"params\": %s}",
			action, params ? params : "{}");
	struct envelope env;
	struct mod_result res = {ACK_OK, "", NULL};
	if(envelope_parse(text, strlen(text), &env, err, sizeof err) != ACK_OK) {
		printf("     bad test envelope: %s\n", err);
		res.code = ACK_EXCEPTION;
		return res;
	}
	m->ops->handle(m, &env, &res);
	envelope_clear(&env);
	return res;
}

static json_t *fields_of(struct dev_module *m, json_t **status)
{
	*status = m->ops->status(m);
	return json_object_get(*status, "fields");
}

static const char *state_of(struct dev_module *m)
{
	static char buf[16];
	json_t *st = m->ops->status(m);
	snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(st, "state")));
	json_decref(st);
	return buf;
}

static void test_start_stop(void)
{
	struct dev_module *m = make_ndi("{\"start_cmd_template\": \"sleep 1000\", \"stop_grace_s\": 2}", false);
	CHECK_STR_EQ(state_of(m), "idle");

	changes = 0;
	struct mod_result r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_OK);
	pid_t pid = (pid_t)json_integer_value(json_object_get(r.details, "pid"));
	CHECK(pid > 0 && alive(pid));
	CHECK_INT_EQ(getpgid(pid), pid);
	CHECK_STR_EQ(json_string_value(json_object_get(r.details, "input")), "CAM-1");
	CHECK(changes >= 1);
	json_decref(r.details);

	json_t *st;
	json_t *f = fields_of(m, &st);
	CHECK_STR_EQ(json_string_value(json_object_get(st, "state")), "running");
	CHECK_STR_EQ(json_string_value(json_object_get(f, "input")), "CAM-1");
	CHECK_INT_EQ(json_integer_value(json_object_get(f, "pid")), pid);
	CHECK(json_is_false(json_object_get(f, "recording")));
	CHECK(json_is_null(json_object_get(f, "record_pid")));
	json_decref(st);

	/* start while running: a new child, the old group stopped. */
	r = cmd(m, "start", "{\"source\": \"CAM-2\"}");
	CHECK_INT_EQ(r.code, ACK_OK);
	pid_t pid2 = (pid_t)json_integer_value(json_object_get(r.details, "pid"));
	json_decref(r.details);
	CHECK(pid2 > 0 && pid2 != pid);
	CHECK(wait_group_gone(pid, 2000));

	/* set_input is start with another source. */
	r = cmd(m, "set_input", "{\"source\": \"CAM-3\"}");
	CHECK_INT_EQ(r.code, ACK_OK);
	pid_t pid3 = (pid_t)json_integer_value(json_object_get(r.details, "pid"));
	json_decref(r.details);
	CHECK(wait_group_gone(pid2, 2000));
	f = fields_of(m, &st);
	CHECK_STR_EQ(json_string_value(json_object_get(f, "input")), "CAM-3");
	json_decref(st);

	r = cmd(m, "stop", NULL);
	CHECK_INT_EQ(r.code, ACK_OK);
	CHECK_INT_EQ(json_integer_value(json_array_get(json_object_get(r.details, "stopped_pids"), 0)), pid3);
	json_decref(r.details);
	CHECK(wait_group_gone(pid3, 2000));
	f = fields_of(m, &st);
	CHECK_STR_EQ(json_string_value(json_object_get(st, "state")), "idle");
	CHECK(json_is_null(json_object_get(f, "pid")));
	CHECK(json_is_null(json_object_get(f, "input")));
	json_decref(st);

	r = cmd(m, "stop", NULL);
	CHECK_INT_EQ(r.code, ACK_OK);
	CHECK_STR_EQ(json_string_value(json_object_get(r.details, "note")), "already idle");
	json_decref(r.details);
	free_ndi(m);
}

static void test_bad_commands(void)
{
	struct dev_module *m = make_ndi("{}", false);
	struct mod_result r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_MODULE_ERROR);
	CHECK_STR_CONTAINS(r.error, "start_cmd_template is not configured");
	r = cmd(m, "start", "{}");
	CHECK_INT_EQ(r.code, ACK_BAD_REQUEST);
	CHECK_STR_CONTAINS(r.error, "params.source");
	r = cmd(m, "start", "{\"source\": 5}");
	CHECK_INT_EQ(r.code, ACK_BAD_REQUEST);
	r = cmd(m, "start", "{\"source\": \"\"}");
	CHECK_INT_EQ(r.code, ACK_BAD_REQUEST);
	r = cmd(m, "dance", NULL);
	CHECK_INT_EQ(r.code, ACK_MODULE_ERROR);
	CHECK_STR_CONTAINS(r.error, "unknown action 'dance'");
	r = cmd(m, "record_start", "{}");
	CHECK_INT_EQ(r.code, ACK_BAD_REQUEST);
	CHECK_STR_CONTAINS(r.error, "no current input");
	r = cmd(m, "record_start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_MODULE_ERROR);
	CHECK_STR_CONTAINS(r.error, "record_start_cmd_template");
	r = cmd(m, "record_stop", NULL);
	CHECK_INT_EQ(r.code, ACK_OK);
	CHECK_STR_EQ(json_string_value(json_object_get(r.details, "note")), "not recording");
	json_decref(r.details);
	free_ndi(m);
}

static void test_exec_failure(void)
{
	struct dev_module *m =
			make_ndi("{\"start_cmd_template\": \"/nonexistent/ndi-viewer '{source}'\"}", false);
	struct mod_result r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_MODULE_ERROR);
	CHECK_STR_CONTAINS(r.error, "/nonexistent/ndi-viewer");
	CHECK_STR_CONTAINS(r.error, "No such file");
	CHECK_STR_EQ(state_of(m), "idle");
	free_ndi(m);

	/* Looked up in PATH. */
	m = make_ndi("{\"start_cmd_template\": \"no-such-program-oh {source}\"}", false);
	r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_MODULE_ERROR);
	CHECK_STR_CONTAINS(r.error, "no-such-program-oh");
	free_ndi(m);
}

static void test_child_exits(void)
{
	struct dev_module *m = make_ndi("{\"start_cmd_template\": \"/bin/sh -c 'sleep 0.2; exit 3'\"}", false);
	struct mod_result r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_OK);
	json_decref(r.details);
	changes = 0;
	for(int t = 0; t < 3000 && !changes; t += 20)
		run_loop_ms(20);
	CHECK_INT_EQ(changes, 1);
	json_t *st;
	json_t *f = fields_of(m, &st);
	CHECK_STR_EQ(json_string_value(json_object_get(st, "state")), "idle");
	CHECK(json_is_null(json_object_get(f, "pid")));
	json_t *le = json_object_get(st, "last_exit");
	CHECK_INT_EQ(json_integer_value(json_object_get(le, "code")), 3);
	CHECK_STR_EQ(json_string_value(json_object_get(le, "role")), "viewer");
	json_decref(st);
	free_ndi(m);
}

static void test_group_and_sigkill(void)
{
	/* Two processes in the group: both must go on stop. */
	struct dev_module *m =
			make_ndi("{\"start_cmd_template\": \"/bin/sh -c 'sleep 1000 & sleep 1000; wait'\","
				 " \"stop_grace_s\": 2}",
					false);
	struct mod_result r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_OK);
	pid_t pid = (pid_t)json_integer_value(json_object_get(r.details, "pid"));
	json_decref(r.details);
	run_loop_ms(200);
	r = cmd(m, "stop", NULL);
	json_decref(r.details);
	CHECK(wait_group_gone(pid, 3000));
	free_ndi(m);

	/* A group that ignores SIGTERM gets SIGKILL after stop_grace_s. */
	m = make_ndi("{\"start_cmd_template\": \"/bin/sh -c 'trap \\\"\\\" TERM; sleep 1000; sleep 1000'\","
		     " \"stop_grace_s\": 0.3}",
			false);
	r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	CHECK_INT_EQ(r.code, ACK_OK);
	pid = (pid_t)json_integer_value(json_object_get(r.details, "pid"));
	json_decref(r.details);
	run_loop_ms(200);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = cmd(m, "stop", NULL);
	json_decref(r.details);
	run_loop_ms(150);
	CHECK(group_alive(pid));
	CHECK(wait_group_gone(pid, 3000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(took >= 0.25 && took < 2.5);
	free_ndi(m);
}

static void test_injection(void)
{
	char dir[] = "/tmp/test_device_ndi_XXXXXX";
	if(!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	char tmpl[512], out[300], canary[300], params[600];
	snprintf(out, sizeof out, "%s/argv", dir);
	snprintf(canary, sizeof canary, "%s/canary", dir);
	snprintf(tmpl, sizeof tmpl,
			"{\"start_cmd_template\": \"/bin/sh -c 'printf \\\"%%s|%%s\\\" \\\"$#\\\" \\\"$1\\\" > %s; exec sleep 1000' argv0 {source}\"}",
			out);
	struct dev_module *m = make_ndi(tmpl, false);
	CHECK(m->settings != NULL);
	snprintf(params, sizeof params, "{\"source\": \"x; touch %s; $(touch %s) `touch %s`\"}", canary,
			canary, canary);
	struct mod_result r = cmd(m, "start", params);
	CHECK_INT_EQ(r.code, ACK_OK);
	json_decref(r.details);
	run_loop_ms(300);
	FILE *f = fopen(out, "r");
	char got[600] = "";
	if(f) {
		size_t n = fread(got, 1, sizeof got - 1, f);
		got[n] = '\0';
		fclose(f);
	}
	char want[600];
	snprintf(want, sizeof want, "1|x; touch %s; $(touch %s) `touch %s`", canary, canary, canary);
	CHECK_STR_EQ(got, want);
	struct stat sb;
	CHECK(stat(canary, &sb) != 0 && errno == ENOENT);
	free_ndi(m);
	unlink(out);
	rmdir(dir);
}

static void test_recording(void)
{
	struct dev_module *m = make_ndi("{\"start_cmd_template\": \"sleep 1000\","
					" \"record_start_cmd_template\": \"sleep 999\", \"stop_grace_s\": 1}",
			false);
	struct mod_result r = cmd(m, "start", "{\"source\": \"CAM-1\"}");
	json_decref(r.details);
	r = cmd(m, "record_start", NULL);
	CHECK_INT_EQ(r.code, ACK_OK);
	pid_t rp = (pid_t)json_integer_value(json_object_get(r.details, "record_pid"));
	CHECK_STR_EQ(json_string_value(json_object_get(r.details, "source")), "CAM-1");
	json_decref(r.details);
	CHECK(rp > 0 && alive(rp));
	json_t *st;
	json_t *f = fields_of(m, &st);
	CHECK(json_is_true(json_object_get(f, "recording")));
	CHECK_INT_EQ(json_integer_value(json_object_get(f, "record_pid")), rp);
	json_decref(st);
	r = cmd(m, "record_stop", NULL);
	CHECK_INT_EQ(r.code, ACK_OK);
	json_decref(r.details);
	CHECK(wait_group_gone(rp, 2000));
	f = fields_of(m, &st);
	CHECK(json_is_false(json_object_get(f, "recording")));
	CHECK_STR_EQ(json_string_value(json_object_get(st, "state")), "running");
	json_decref(st);
	free_ndi(m);
}

static void test_simulate(void)
{
	struct dev_module *m = make_ndi("{}", true);
	struct mod_result r = cmd(m, "start", "{\"source\": \"CAM-9\"}");
	CHECK_INT_EQ(r.code, ACK_OK);
	CHECK(json_is_null(json_object_get(r.details, "pid")));
	CHECK(json_is_true(json_object_get(r.details, "simulated")));
	json_decref(r.details);
	json_t *st;
	json_t *f = fields_of(m, &st);
	CHECK_STR_EQ(json_string_value(json_object_get(st, "state")), "running");
	CHECK_STR_EQ(json_string_value(json_object_get(f, "input")), "CAM-9");
	json_decref(st);
	r = cmd(m, "record_start", NULL);
	CHECK_INT_EQ(r.code, ACK_OK);
	json_decref(r.details);
	r = cmd(m, "stop", NULL);
	CHECK_INT_EQ(r.code, ACK_OK);
	json_decref(r.details);
	CHECK_STR_EQ(state_of(m), "idle");
	free_ndi(m);
}

static void test_settings_check(void)
{
	char err[256];
	json_t *s = json_loads("{\"start_cmd_template\": \"x\", \"extra\": 1}", 0, NULL);
	CHECK_INT_EQ(ndi_module_ops.check_settings(s, true, "modules.ndi", err, sizeof err), -1);
	CHECK_STR_CONTAINS(err, "modules.ndi.extra: unknown key");
	CHECK_INT_EQ(ndi_module_ops.check_settings(s, false, "cfg", err, sizeof err), 0);
	json_decref(s);
	s = json_loads("{\"stop_grace_s\": \"5\"}", 0, NULL);
	CHECK_INT_EQ(ndi_module_ops.check_settings(s, false, "cfg", err, sizeof err), -1);
	CHECK_STR_CONTAINS(err, "cfg.stop_grace_s: expected a number");
	json_decref(s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if(!base || child_init(base, true)) {
		printf("cannot set up the loop\n0 passed, 1 failed\n");
		return 1;
	}
	test_start_stop();
	test_bad_commands();
	test_exec_failure();
	test_child_exits();
	test_group_and_sigkill();
	test_injection();
	test_recording();
	test_simulate();
	test_settings_check();
	child_cleanup();
	event_base_free(base);
	return check_summary();
}
