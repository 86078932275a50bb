/*
 * Spawning and reaping children (see proc.h).
 *
 * Why fork+exec and not posix_spawn: between the two the child must join a
 * new process group, reset the signals libevent caught, mark every
 * descriptor close-on-exec (our MQTT socket must not outlive us in a child,
 * or the broker would never publish our last will), and report an exec
 * failure through a close-on-exec pipe: the parent reads EOF when exec
 * succeeded, or the errno when it failed.  The agent is single-threaded, so
 * the child may call these functions safely between fork and exec.
 */
#include "proc.h"

#include "log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXEC_WAIT_MS 2000
/* After SIGKILL at shutdown, how long to wait for stragglers. */
#define KILL_WAIT_MS 2000

struct watch {
	pid_t pid;
	proc_exit_fn fn;
	void *ud;
	struct watch *next;
};

/* A group that was sent SIGTERM and gets SIGKILL at its deadline. */
struct stopping {
	pid_t pgid;
	struct timespec deadline;
	struct event *timer;
	struct stopping *next;
};

static struct event_base *proc_base;
static struct event *ev_sigchld;
static struct watch *watches;
static struct stopping *stoppings;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool group_alive(pid_t pgid)
{
	return kill(-pgid, 0) == 0 || errno == EPERM;
}

const char *proc_describe_exit(int wstatus, char *buf, size_t len)
{
	if(WIFEXITED(wstatus))
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(wstatus));
	else if(WIFSIGNALED(wstatus))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
	else
		snprintf(buf, len, "ended with status 0x%x", (unsigned)wstatus);
	return buf;
}

static void stopping_remove(struct stopping *s)
{
	for(struct stopping **pp = &stoppings; *pp; pp = &(*pp)->next) {
		if(*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if(s->timer)
		event_free(s->timer);
	free(s);
}

/* Reaps every exited child and tells whoever watched it.  Called for
 * SIGCHLD and while waiting at shutdown. */
static void reap_all(void)
{
	for(;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if(pid <= 0)
			break;
		struct watch *w = NULL;
		for(struct watch **pp = &watches; *pp; pp = &(*pp)->next) {
			if((*pp)->pid == pid) {
				w = *pp;
				*pp = w->next;
				break;
			}
		}
		if(w) {
			w->fn(pid, st, w->ud);
			free(w);
		}
	}
	/* A group whose last member went needs no SIGKILL, and its id may be
	 * reused later: drop its pending stop now. */
	struct stopping *s = stoppings;
	while(s) {
		struct stopping *next = s->next;
		if(!group_alive(s->pgid))
			stopping_remove(s);
		s = next;
	}
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	reap_all();
}

int proc_init(struct event_base *base)
{
	proc_base = base;
	/* Descendants that outlive their parent (a viewer's helper) become
	 * ours to reap, so a stopped group really empties. */
	if(prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		log_warn("proc", "cannot become child subreaper: %s", strerror(errno));
	ev_sigchld = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
	if(!ev_sigchld || event_add(ev_sigchld, NULL))
		return -1;
	return 0;
}

void proc_cleanup(void)
{
	while(stoppings)
		stopping_remove(stoppings);
	while(watches) {
		struct watch *w = watches;
		watches = w->next;
		free(w);
	}
	if(ev_sigchld)
		event_free(ev_sigchld);
	ev_sigchld = NULL;
	proc_base = NULL;
}

/* In the child, between fork and exec. */
static void child_setup(void)
{
	setpgid(0, 0);
	const int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2};
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for(size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int null = open("/dev/null", O_RDONLY);
	if(null >= 0 && null != 0) {
		dup2(null, 0);
		close(null);
	}
	/* Everything from 3 up closes at exec, including the error pipe. */
	if(close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
		long max = sysconf(_SC_OPEN_MAX);
		if(max < 0 || max > 65536)
			max = 65536;
		for(int fd = 3; fd < max; fd++) {
			int fl = fcntl(fd, F_GETFD);
			if(fl >= 0)
				fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
		}
	}
}

int proc_spawn(char *const argv[], proc_exit_fn on_exit, void *ud, pid_t *pid_out, char *err, size_t errlen)
{
	int pfd[2];
	struct watch *w = calloc(1, sizeof *w);
	if(!w) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if(pipe2(pfd, O_CLOEXEC)) {
		snprintf(err, errlen, "cannot run '%s': pipe: %s", argv[0], strerror(errno));
		goto free_watch;
	}
	pid_t pid = fork();
	if(pid < 0) {
		snprintf(err, errlen, "cannot run '%s': fork: %s", argv[0], strerror(errno));
		goto close_pipe;
	}
	if(pid == 0) {
		close(pfd[0]);
		child_setup();
		execvp(argv[0], argv);
		int e = errno;
		ssize_t wr = write(pfd[1], &e, sizeof e);
		(void)wr;
		_exit(127);
	}
	/* Also here, so a kill(-pid) right after we return cannot miss. */
	setpgid(pid, pid);
	close(pfd[1]);

	int child_errno = 0;
	struct pollfd p = {.fd = pfd[0], .events = POLLIN};
	double until = now_s() + EXEC_WAIT_MS / 1000.0;
	for(;;) {
		int left = (int)((until - now_s()) * 1000);
		if(left < 0)
			left = 0;
		int r = poll(&p, 1, left);
		if(r < 0 && errno == EINTR)
			continue;
		if(r <= 0) {
			/* Slow exec (a loaded Pi): assume it will succeed; an exit
			 * is still reported through SIGCHLD. */
			log_warn("proc", "'%s' (pid %d) has not exec'd after %d ms; assuming it runs",
					argv[0], (int)pid, EXEC_WAIT_MS);
			break;
		}
		ssize_t n = read(pfd[0], &child_errno, sizeof child_errno);
		if(n < 0 && errno == EINTR)
			continue;
		if(n != (ssize_t)sizeof child_errno)
			child_errno = 0;
		break;
	}
	close(pfd[0]);
	if(child_errno) {
		/* It exits at once; reap it here so no SIGCHLD consumer sees it. */
		while(waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		snprintf(err, errlen, "cannot run '%s': %s", argv[0], strerror(child_errno));
		free(w);
		return -1;
	}
	w->pid = pid;
	w->fn = on_exit;
	w->ud = ud;
	w->next = watches;
	watches = w;
	*pid_out = pid;
	return 0;

close_pipe:
	close(pfd[0]);
	close(pfd[1]);
free_watch:
	free(w);
	return -1;
}

void proc_forget(pid_t pid)
{
	for(struct watch **pp = &watches; *pp; pp = &(*pp)->next) {
		if((*pp)->pid == pid) {
			struct watch *w = *pp;
			*pp = w->next;
			free(w);
			return;
		}
	}
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stopping *s = arg;
	reap_all();
	/* reap_all() may have freed s; look it up again by address. */
	for(struct stopping *it = stoppings; it; it = it->next) {
		if(it == s) {
			if(group_alive(s->pgid)) {
				log_warn("proc", "process group %d ignored SIGTERM; sending SIGKILL",
						(int)s->pgid);
				kill(-s->pgid, SIGKILL);
			}
			stopping_remove(s);
			break;
		}
	}
}

bool proc_stop_group(pid_t pgid, double grace_s)
{
	if(pgid <= 1)
		return false;
	if(kill(-pgid, SIGTERM) != 0)
		return false;
	/* A stopped member would never act on SIGTERM. */
	kill(-pgid, SIGCONT);
	struct stopping *s = calloc(1, sizeof *s);
	if(!s) {
		kill(-pgid, SIGKILL);
		return true;
	}
	s->pgid = pgid;
	clock_gettime(CLOCK_MONOTONIC, &s->deadline);
	s->deadline.tv_sec += (time_t)grace_s;
	s->deadline.tv_nsec += (long)((grace_s - (double)(time_t)grace_s) * 1e9);
	if(s->deadline.tv_nsec >= 1000000000L) {
		s->deadline.tv_sec++;
		s->deadline.tv_nsec -= 1000000000L;
	}
	if(proc_base) {
		s->timer = evtimer_new(proc_base, on_kill_timer, s);
		struct timeval tv = {(time_t)grace_s, (suseconds_t)((grace_s - (double)(time_t)grace_s) * 1e6)};
		if(s->timer)
			evtimer_add(s->timer, &tv);
	}
	s->next = stoppings;
	stoppings = s;
	return true;
}

void proc_stop_all_blocking(void)
{
	double give_up = 0;
	while(stoppings) {
		reap_all();
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		struct stopping *s = stoppings;
		while(s) {
			struct stopping *next = s->next;
			if(!group_alive(s->pgid)) {
				stopping_remove(s);
			} else if(ts.tv_sec > s->deadline.tv_sec ||
					(ts.tv_sec == s->deadline.tv_sec && ts.tv_nsec >= s->deadline.tv_nsec)) {
				log_warn("proc", "process group %d ignored SIGTERM; sending SIGKILL",
						(int)s->pgid);
				kill(-s->pgid, SIGKILL);
				/* Only once: push the deadline far out. */
				s->deadline.tv_sec += 1000000;
				if(give_up == 0)
					give_up = now_s() + KILL_WAIT_MS / 1000.0;
			}
			s = next;
		}
		if(!stoppings)
			break;
		if(give_up != 0 && now_s() > give_up) {
			log_warn("proc", "some child processes did not go away; leaving them");
			break;
		}
		struct timespec nap = {0, 20 * 1000000L};
		nanosleep(&nap, NULL);
	}
	reap_all();
}
