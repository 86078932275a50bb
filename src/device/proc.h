/*
 * Child processes of the device agent: spawned in their own process group
 * without a shell, exec failures reported synchronously, exits noticed via a
 * libevent SIGCHLD event, and groups stopped with SIGTERM then SIGKILL after
 * a grace period.  One instance per process (signals are process-wide).
 */
#ifndef OH_DEVICE_PROC_H
#define OH_DEVICE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct event_base;

/* Called from the loop when a watched child has exited; wstatus as from
 * waitpid(). */
typedef void (*proc_exit_fn)(pid_t pid, int wstatus, void *ud);

/* Installs the SIGCHLD event on base and makes this process the subreaper
 * of its descendants, so a group's grandchildren are reaped here too.
 * Returns 0 or -1. */
int proc_init(struct event_base *base);
/* Frees the event and any pending stop timers (does not signal anyone). */
void proc_cleanup(void);

/*
 * Runs argv (borrowed; argv[0] looked up in PATH) in a new process group
 * whose id is the child's pid, with stdin from /dev/null, stdout and stderr
 * inherited, default signal dispositions, and no other descriptor of ours.
 * Waits only until the exec has happened (at most 2 s): an exec failure is
 * returned as -1 with "cannot run 'prog': reason" in err.  On success stores
 * the pid and watches it: on_exit(ud) runs when it exits.
 */
int proc_spawn(char *const argv[], proc_exit_fn on_exit, void *ud, pid_t *pid, char *err, size_t errlen);

/* Stops watching pid: its exit is reaped without a callback. */
void proc_forget(pid_t pid);

/* Sends SIGTERM to process group pgid now and SIGKILL after grace_s if any
 * member remains.  Returns false if the group was already gone. */
bool proc_stop_group(pid_t pgid, double grace_s);

/* For shutdown: waits (blocking, reaping) for every group being stopped to
 * go, sends SIGKILL to those still there at their deadline, and gives up
 * after a further 2 s. */
void proc_stop_all_blocking(void);

/* "exited with code 3" / "killed by signal 9 (Killed)" into buf. */
const char *proc_describe_exit(int wstatus, char *buf, size_t len);

#endif
