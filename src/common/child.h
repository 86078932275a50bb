/*
 * The one child-process runner of the host and the device agent: a child
 * runs argv (no shell) on the libevent loop without blocking it, in a
 * process group of its own, with stdin on /dev/null, its standard output
 * either captured (up to a limit) or inherited, stderr inherited, default
 * signal dispositions and no descriptor of ours.  Its exit is noticed
 * through a libevent SIGCHLD event and reported once, with its wait status
 * and output; an optional timeout kills its group; a group can also be
 * stopped with SIGTERM and, after a grace period, SIGKILL.
 *
 * The host runs plugins' helpers through it (oh_spawn, plugin_io.c); the
 * agent runs the NDI viewer and recorder (src/device/ndi.c).
 *
 * Process-wide state, because signals are process-wide: child_init() once
 * per process before the first child, child_cleanup() at the end.
 */
#ifndef OH_COMMON_CHILD_H
#define OH_COMMON_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct event_base;

struct child_opts {
	long timeout_ms;   /* < 0: none; else the group is killed (SIGKILL) after it */
	bool capture;      /* stdout to a pipe read on the loop; else inherited */
	size_t max_output; /* with capture: bytes kept (any value); the rest is read and dropped */
};

struct child_result {
	int status;         /* as from waitpid(); -1 when someone else reaped it */
	bool timed_out;     /* the timeout killed it */
	const char *output; /* borrowed for the call: what was captured, NUL-terminated ("" if none) */
	size_t len;
};

/* Called from the loop once the child has exited (and, with capture, its
 * output reached EOF or the timeout). */
typedef void (*child_done_fn)(pid_t pid, const struct child_result *res, void *ud);

/*
 * Installs the SIGCHLD event on base (borrowed; outlives the runner).  With
 * subreaper, this process also becomes the reaper of its descendants, so a
 * stopped group's grandchildren are reaped here and the group really
 * empties; a subreaper reaps every child of the process, so only a process
 * that starts children through this runner alone may ask for it.  Calling
 * it again with the same base does nothing.  Returns 0, or -1 when libevent
 * cannot watch SIGCHLD or the runner is bound to another base.
 */
int child_init(struct event_base *base, bool subreaper);

/* Frees the runner: the SIGCHLD event, the records of children and any
 * pending stop timers.  Signals nobody: children still running are left
 * to run (kill them first with child_kill() when they must go). */
void child_cleanup(void);

/* How many children are running or not yet reported. */
size_t child_count(void);

/*
 * Starts argv (borrowed; argv[0] looked up in PATH) as described at the
 * top.  The exec happens before this returns, so an exec failure comes
 * back here: OH_ERR_NOT_FOUND (no such program, or not executable),
 * OH_ERR_NOMEM, OH_ERR_IO, with "cannot run 'prog': reason" in err; also
 * OH_ERR_INVAL for an empty argv or no child_init().  On OH_OK stores the
 * pid (which is also the group id) and done(ud) runs when it has ended;
 * done may be NULL.
 */
int child_spawn(char *const argv[], const struct child_opts *opts, child_done_fn done, void *ud, pid_t *pid,
		char *err, size_t errlen);

/* Stops reporting pid: its end is reaped without a callback. */
void child_forget(pid_t pid);

/* Kills pid's group and pid now (SIGKILL), without a callback: for owners
 * that go away (a plugin unloaded).  Reaps it when that takes at most
 * 50 ms (it normally takes microseconds); a child stuck in the kernel is
 * left to the next SIGCHLD, and child_count() counts it until then. */
void child_kill(pid_t pid);

/* Sends SIGTERM (and SIGCONT) to process group pgid now and SIGKILL after
 * grace_s if any member remains.  Returns false if the group was already
 * gone. */
bool child_stop_group(pid_t pgid, double grace_s);

/* For shutdown: waits (blocking, reaping) for every group being stopped to
 * go, sends SIGKILL to those still there at their deadline, and gives up
 * after a further 2 s. */
void child_stop_all_blocking(void);

/* "exited with code 3" / "killed by signal 9 (Killed)" into buf. */
const char *child_describe_exit(int wstatus, char *buf, size_t len);

#endif
