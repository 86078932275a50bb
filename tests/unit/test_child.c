/*
 * Unit tests of the child-process runner (src/common/child.c) with real
 * children on a real libevent loop: /bin/sh scripts and sleep.
 *
 * - output captured and the exit status reported once, after both the exit
 *   and the end of the output;
 * - a child that floods stdout is drained to the end (it never blocks on
 *   a full pipe) while only max_output bytes are kept;
 * - a timeout kills the whole group, a grandchild that keeps the pipe open
 *   included, and says so; one that left the group cannot delay the report;
 * - a group that ignores SIGTERM gets SIGKILL after the grace period;
 * - an exec failure comes back from child_spawn with the reason;
 * - the child gets no descriptor of ours and default signal dispositions;
 * - forget reports nothing, kill reaps at once;
 * - a callback may start another child.
 * The host's reaping (only its own pids) runs first, then the agent's
 * (subreaper: every child of the process).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "child.h"
#include "oh/defs.h"

static struct event_base *base;

struct outcome {
	int calls;
	pid_t pid;
	int status;
	bool timed_out;
	char *output; /* a copy */
	size_t len;
};

static void on_done(pid_t pid, const struct child_result *res, void *ud)
{
	struct outcome *o = ud;
	o->calls++;
	o->pid = pid;
	o->status = res->status;
	o->timed_out = res->timed_out;
	free(o->output);
	o->output = malloc(res->len + 1);
	memcpy(o->output, res->output, res->len + 1);
	o->len = res->len;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Runs the loop until *calls is non-zero or max_ms pass; the event, not a
 * sleep, ends the wait. */
static void wait_calls(const int *calls, int max_ms)
{
	bool expired = false;
	struct event *guard = evtimer_new(base, on_guard, &expired);
	struct timeval tv = {max_ms / 1000, (max_ms % 1000) * 1000};
	evtimer_add(guard, &tv);
	while(!*calls && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
}

static pid_t run(const char *script, long timeout_ms, size_t max_output, struct outcome *o)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct child_opts opts = {.timeout_ms = timeout_ms, .capture = true, .max_output = max_output};
	char err[256];
	pid_t pid = 0;
	memset(o, 0, sizeof *o);
	int rc = child_spawn(argv, &opts, on_done, o, &pid, err, sizeof err);
	if(!check_report(rc == OH_OK, __FILE__, __LINE__, script))
		printf("     %s\n", err);
	return pid;
}

static bool group_gone_within(pid_t pgid, int max_ms)
{
	double until = now_s() + max_ms / 1000.0;
	while(now_s() < until) {
		if(kill(-pgid, 0) != 0 && errno == ESRCH)
			return true;
		/* Turns of the loop reap what exits meanwhile. */
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return false;
}

static void test_output_and_status(void)
{
	struct outcome o;
	pid_t pid = run("echo hello; echo world >&1; exit 3", 10000, 1 << 20, &o);
	wait_calls(&o.calls, 10000);
	CHECK_INT_EQ(o.calls, 1);
	CHECK_INT_EQ(o.pid, pid);
	CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 3);
	CHECK(!o.timed_out);
	CHECK_STR_EQ(o.output, "hello\nworld\n");
	CHECK_INT_EQ(o.len, 12);
	CHECK_INT_EQ(child_count(), 0);
	/* Exactly once: more loop turns report nothing more. */
	struct timeval tv = {0, 100000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	CHECK_INT_EQ(o.calls, 1);
	free(o.output);

	/* No output at all is "", not NULL. */
	run("exit 0", 10000, 100, &o);
	wait_calls(&o.calls, 10000);
	CHECK_INT_EQ(o.calls, 1);
	CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
	CHECK_STR_EQ(o.output, "");
	free(o.output);
}

static void test_flood_is_drained_and_capped(void)
{
	struct outcome o;
	/* 8 MB, far more than a pipe holds: the child only exits if we keep
	 * reading past max_output. */
	run("head -c 8000000 /dev/zero | tr '\\0' x", 20000, 1000, &o);
	wait_calls(&o.calls, 20000);
	CHECK_INT_EQ(o.calls, 1);
	CHECK(!o.timed_out);
	CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
	CHECK_INT_EQ(o.len, 1000);
	CHECK(o.output && strlen(o.output) == 1000 && o.output[999] == 'x');
	free(o.output);

	/* max_output 0 keeps nothing; SIZE_MAX keeps everything. */
	run("head -c 100000 /dev/zero | tr '\\0' y", 20000, 0, &o);
	wait_calls(&o.calls, 20000);
	CHECK_INT_EQ(o.len, 0);
	free(o.output);
	run("head -c 100000 /dev/zero | tr '\\0' y", 20000, SIZE_MAX, &o);
	wait_calls(&o.calls, 20000);
	CHECK_INT_EQ(o.len, 100000);
	free(o.output);
}

static void test_timeout_kills_the_group(void)
{
	struct outcome o;
	double t0 = now_s();
	/* The background sleep is a grandchild in the same group holding the
	 * pipe open: neither the exit nor EOF would come by themselves. */
	pid_t pid = run("echo started; sleep 1000 & sleep 1000", 300, 100, &o);
	wait_calls(&o.calls, 10000);
	double took = now_s() - t0;
	CHECK_INT_EQ(o.calls, 1);
	CHECK(o.timed_out);
	CHECK(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGKILL);
	CHECK_STR_EQ(o.output, "started\n");
	CHECK(took >= 0.25 && took < 5);
	CHECK(group_gone_within(pid, 5000));
	free(o.output);
}

/* A grandchild that left the group survives the kill and holds the pipe:
 * the timeout still reports the child, without waiting for EOF. */
static void test_timeout_does_not_wait_for_eof(void)
{
	char path[] = "/tmp/oh-child-unit-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	char script[256];
	snprintf(script, sizeof script, "setsid sleep 1000 & echo $! > %s; sleep 1000", path);
	struct outcome o;
	run(script, 300, 100, &o);
	wait_calls(&o.calls, 10000);
	CHECK_INT_EQ(o.calls, 1);
	CHECK(o.timed_out);
	FILE *f = fopen(path, "r");
	long escaped = 0;
	if(f) {
		if(fscanf(f, "%ld", &escaped) != 1)
			escaped = 0;
		fclose(f);
	}
	CHECK(escaped > 1);
	if(escaped > 1)
		kill((pid_t)escaped, SIGKILL);
	unlink(path);
	free(o.output);
}

static void test_stop_group_escalates(void)
{
	struct outcome o;
	/* Ignored dispositions survive exec: the whole group ignores SIGTERM. */
	pid_t pid = run("trap '' TERM; sleep 1000; sleep 1000", -1, 100, &o);
	/* Let the trap be set before stopping it. */
	struct timeval tv = {0, 200000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	double t0 = now_s();
	CHECK(child_stop_group(pid, 0.4));
	wait_calls(&o.calls, 10000);
	double took = now_s() - t0;
	CHECK_INT_EQ(o.calls, 1);
	CHECK(!o.timed_out);
	CHECK(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGKILL);
	CHECK(took >= 0.35 && took < 5);
	CHECK(group_gone_within(pid, 5000));
	free(o.output);

	/* A group that obeys SIGTERM goes at once. */
	pid = run("exec sleep 1000", -1, 100, &o);
	CHECK(child_stop_group(pid, 30));
	wait_calls(&o.calls, 10000);
	CHECK(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGTERM);
	free(o.output);
	CHECK(!child_stop_group(pid, 1)); /* gone */
}

static void test_exec_failure(void)
{
	char *argv[] = {"/nonexistent/helper", "x", NULL};
	struct child_opts opts = {.timeout_ms = 1000, .capture = true, .max_output = 10};
	char err[256] = "";
	pid_t pid = 0;
	struct outcome o = {0};
	CHECK_INT_EQ(child_spawn(argv, &opts, on_done, &o, &pid, err, sizeof err), OH_ERR_NOT_FOUND);
	CHECK_STR_CONTAINS(err, "cannot run '/nonexistent/helper'");
	CHECK_STR_CONTAINS(err, "No such file");
	char *empty[] = {"", NULL};
	CHECK_INT_EQ(child_spawn(empty, &opts, on_done, &o, &pid, err, sizeof err), OH_ERR_INVAL);
	CHECK_INT_EQ(child_count(), 0);
	CHECK_INT_EQ(o.calls, 0);
}

static void test_clean_environment(void)
{
	/* A descriptor of ours without O_CLOEXEC, as a socket may be. */
	int fd = open("/dev/null", O_RDONLY);
	CHECK(dup2(fd, 57) == 57);
	close(fd);
	/* And a disposition the daemons set. */
	signal(SIGINT, SIG_IGN);
	struct outcome o;
	run("if [ -e /proc/self/fd/57 ]; then echo leaked; else echo closed; fi; kill -INT $$; echo survived",
			10000, 100, &o);
	wait_calls(&o.calls, 10000);
	CHECK_STR_EQ(o.output, "closed\n");
	CHECK(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGINT);
	free(o.output);
	signal(SIGINT, SIG_DFL);
	close(57);
}

static void test_forget_and_kill(void)
{
	struct outcome o;
	pid_t pid = run("exit 5", -1, 100, &o);
	child_forget(pid);
	double until = now_s() + 5;
	while(child_count() && now_s() < until) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	CHECK_INT_EQ(child_count(), 0); /* reaped all the same */
	CHECK_INT_EQ(o.calls, 0);

	pid = run("sleep 1000", -1, 100, &o);
	child_kill(pid);
	until = now_s() + 5;
	while(child_count() && now_s() < until) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	CHECK_INT_EQ(child_count(), 0);
	CHECK(kill(pid, 0) != 0 && errno == ESRCH); /* reaped by SIGCHLD, not a zombie */
	CHECK_INT_EQ(o.calls, 0);
}

/* A callback that starts the next child from inside the report. */
static struct outcome chained;

static void on_first(pid_t pid, const struct child_result *res, void *ud)
{
	char *argv[] = {"/bin/sh", "-c", "echo second", NULL};
	struct child_opts opts = {.timeout_ms = 10000, .capture = true, .max_output = 100};
	char err[256];
	pid_t next;
	CHECK_INT_EQ(child_spawn(argv, &opts, on_done, &chained, &next, err, sizeof err), OH_OK);
}

static void test_callback_starts_another(void)
{
	char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
	struct child_opts opts = {.timeout_ms = -1};
	char err[256];
	pid_t pid;
	memset(&chained, 0, sizeof chained);
	CHECK_INT_EQ(child_spawn(argv, &opts, on_first, NULL, &pid, err, sizeof err), OH_OK);
	wait_calls(&chained.calls, 10000);
	CHECK_INT_EQ(chained.calls, 1);
	CHECK_STR_EQ(chained.output, "second\n");
	free(chained.output);
}

static void test_describe_exit(void)
{
	char buf[96];
	CHECK_STR_EQ(child_describe_exit(3 << 8, buf, sizeof buf), "exited with code 3");
	CHECK_STR_CONTAINS(child_describe_exit(SIGKILL, buf, sizeof buf), "killed by signal 9");
}

static void run_all(void)
{
	test_output_and_status();
	test_flood_is_drained_and_capped();
	test_timeout_kills_the_group();
	test_timeout_does_not_wait_for_eof();
	test_stop_group_escalates();
	test_exec_failure();
	test_clean_environment();
	test_forget_and_kill();
	test_callback_starts_another();
}

int main(void)
{
	base = event_base_new();
	char *argv[] = {"true", NULL};
	struct child_opts opts = {.timeout_ms = -1};
	char err[256];
	pid_t pid;
	CHECK_INT_EQ(child_spawn(argv, &opts, NULL, NULL, &pid, err, sizeof err), OH_ERR_INVAL); /* no init */

	/* The host's way: only our own pids are reaped. */
	CHECK_INT_EQ(child_init(base, false), 0);
	CHECK_INT_EQ(child_init(base, false), 0); /* again: nothing */
	struct event_base *other = event_base_new();
	CHECK_INT_EQ(child_init(other, false), -1);
	event_base_free(other);
	run_all();
	test_describe_exit();
	/* A child someone else waits for is left to them. */
	pid_t mine = fork();
	if(mine == 0)
		_exit(7);
	struct outcome o;
	run("exit 0", -1, 10, &o);
	wait_calls(&o.calls, 10000);
	int st = 0;
	CHECK_INT_EQ(waitpid(mine, &st, 0), mine);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
	free(o.output);
	child_cleanup();

	/* The agent's way: a subreaper reaping every child. */
	CHECK_INT_EQ(child_init(base, true), 0);
	run_all();
	child_cleanup();

	event_base_free(base);
	return check_summary();
}
