/*
 * Spawning, watching, reaping and stopping children (see child.h).
 *
 * What this file exists to get right:
 * - posix_spawn, not fork: the exec error comes back synchronously (glibc
 *   runs the child on a vfork-like stack and waits for the exec), and the
 *   process group, signal dispositions and mask are set before the exec,
 *   so a kill(-pid) right after child_spawn() returns cannot miss.
 * - No descriptor of ours may reach a child: the agent's MQTT socket open in
 *   a viewer would keep the broker from publishing the agent's last will,
 *   and the host's HTTP and broker sockets may lack O_CLOEXEC.  Everything
 *   from 3 up is closed in the child.
 * - libevent catches SIGINT/SIGTERM and the daemons ignore SIGPIPE; a child
 *   gets the default dispositions and an empty mask.
 * - Reaping: the host reaps only the pids it started (waitpid(pid)), so it
 *   never steals a child someone else waits for; a subreaper (the agent)
 *   reaps every child (waitpid(-1)), orphaned grandchildren included, so a
 *   stopped group's members do not linger as zombies that kill(-pgid, 0)
 *   still counts.
 * - A captured child is reported once it has both exited and closed its
 *   output, so no output is lost; a grandchild that keeps the pipe open can
 *   delay that only until the timeout, which stops waiting for EOF.
 * - The reports of one SIGCHLD are collected before any callback runs: a
 *   callback may start, forget or kill other children.
 * - The output buffer grows as output arrives, doubling up to max_output
 *   (plus the NUL), so a generous limit costs nothing until a child writes
 *   that much; every size computation is checked, as max_output may be
 *   anything up to SIZE_MAX.
 */
#include "child.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oh/list.h"
#include "log.h"
#include "oh/defs.h"

extern char **environ;

/* child_kill(): how many 1 ms waits for a killed child to be reapable. */
#define KILL_REAP_TRIES 50

/* After SIGKILL at shutdown, how long to wait for stragglers. */
#define KILL_WAIT_MS 2000

struct child {
	struct oh_list_node link; /* in children */
	pid_t pid;
	int fd;           /* read end of the stdout pipe; -1 if none or closed */
	struct event *rd; /* on fd */
	struct event *deadline;
	char *buf;       /* NULL until output arrives */
	size_t len, cap; /* cap > len whenever buf is set */
	size_t max;      /* max_output, at most SIZE_MAX - 1 */
	bool reaped;
	bool timed_out;
	int status;
	child_done_fn done; /* NULL once forgotten */
	void *ud;
};

/* A group that was sent SIGTERM and gets SIGKILL at its deadline. */
struct stopping {
	struct oh_list_node link; /* in stoppings */
	pid_t pgid;
	struct timespec deadline;
	struct event *timer;
};

static struct event_base *base;
static struct event *ev_sigchld;
static bool subreaper;
static struct oh_list children;  /* of struct child */
static struct oh_list stoppings; /* of struct stopping */

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

const char *child_describe_exit(int wstatus, char *buf, size_t len)
{
	if(wstatus == -1)
		snprintf(buf, len, "ended, how is unknown (reaped elsewhere)");
	else if(WIFEXITED(wstatus))
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(wstatus));
	else if(WIFSIGNALED(wstatus))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
	else
		snprintf(buf, len, "ended with status 0x%x", (unsigned)wstatus);
	return buf;
}

static struct child *find(pid_t pid)
{
	for(struct oh_list_node *n = children.first; n; n = n->next) {
		struct child *c = oh_list_entry(n, struct child, link);
		if(c->pid == pid)
			return c;
	}
	return NULL;
}

static void close_pipe(struct child *c)
{
	if(c->rd) {
		event_free(c->rd);
		c->rd = NULL;
	}
	if(c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static void child_free(struct child *c)
{
	close_pipe(c);
	if(c->deadline)
		event_free(c->deadline);
	free(c->buf);
	free(c);
}

/* Stops watching c (output, deadline, report) and leaves it listed until
 * SIGCHLD reaps it.  For a child just sent SIGKILL: that is a loop turn
 * away, but a blocking wait here could hold the loop on a child stuck in
 * the kernel (uninterruptible sleep). */
static void abandon(struct child *c)
{
	close_pipe(c);
	if(c->deadline) {
		event_free(c->deadline);
		c->deadline = NULL;
	}
	c->done = NULL;
}

/* Reports c (already unlinked) and frees it. */
static void report(struct child *c)
{
	if(c->done) {
		if(c->buf)
			c->buf[c->len] = '\0'; /* cap > len */
		struct child_result res = {c->status, c->timed_out, c->buf ? c->buf : "", c->len};
		c->done(c->pid, &res, c->ud);
	}
	child_free(c);
}

/* A child is done once it has exited and its output is complete. */
static bool finished(const struct child *c)
{
	return c->reaped && c->fd < 0;
}

static void stopping_remove(struct stopping *s)
{
	oh_list_remove(&stoppings, &s->link);
	if(s->timer)
		event_free(s->timer);
	free(s);
}

static void mark_reaped(pid_t pid, int status)
{
	struct child *c = find(pid);
	if(c && !c->reaped) {
		c->reaped = true;
		c->status = status;
	}
}

/* Reaps every exited child and reports those that are finished.  Called
 * for SIGCHLD, after a timeout and while waiting at shutdown. */
static void reap_all(void)
{
	if(subreaper) {
		int st;
		pid_t pid;
		while((pid = waitpid(-1, &st, WNOHANG)) > 0 || (pid < 0 && errno == EINTR)) {
			if(pid > 0)
				mark_reaped(pid, st); /* an orphan's pid is no child of ours */
		}
	} else {
		for(struct oh_list_node *n = children.first; n; n = n->next) {
			struct child *c = oh_list_entry(n, struct child, link);
			if(c->reaped)
				continue;
			int st = 0;
			pid_t r;
			while((r = waitpid(c->pid, &st, WNOHANG)) < 0 && errno == EINTR)
				;
			if(r == c->pid) {
				mark_reaped(c->pid, st);
			} else if(r < 0) {
				/* ECHILD: someone reaped it behind our back; how it ended
				 * is lost. */
				log_warn("child", "child %ld vanished: %s", (long)c->pid, strerror(errno));
				mark_reaped(c->pid, -1);
			}
		}
	}
	/* Collect first, report after: a callback may change the list. */
	struct oh_list done = {0};
	struct oh_list_node *next;
	for(struct oh_list_node *n = children.first; n; n = next) {
		next = n->next;
		if(finished(oh_list_entry(n, struct child, link))) {
			oh_list_remove(&children, n);
			oh_list_push_back(&done, n);
		}
	}
	while(!oh_list_empty(&done)) {
		struct child *c = oh_list_entry(done.first, struct child, link);
		oh_list_remove(&done, &c->link);
		report(c);
	}
	/* A group whose last member went needs no SIGKILL, and its id may be
	 * reused later: drop its pending stop now. */
	for(struct oh_list_node *n = stoppings.first; n; n = next) {
		next = n->next;
		struct stopping *s = oh_list_entry(n, struct stopping, link);
		if(!group_alive(s->pgid))
			stopping_remove(s);
	}
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	reap_all();
}

int child_init(struct event_base *b, bool reap_all_children)
{
	if(ev_sigchld)
		return b == base ? 0 : -1;
	if(reap_all_children && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		log_warn("child", "cannot become child subreaper: %s", strerror(errno));
	ev_sigchld = evsignal_new(b, SIGCHLD, on_sigchld, NULL);
	if(!ev_sigchld || event_add(ev_sigchld, NULL)) {
		if(ev_sigchld)
			event_free(ev_sigchld);
		ev_sigchld = NULL;
		return -1;
	}
	base = b;
	subreaper = reap_all_children;
	return 0;
}

void child_cleanup(void)
{
	while(!oh_list_empty(&stoppings))
		stopping_remove(oh_list_entry(stoppings.first, struct stopping, link));
	while(!oh_list_empty(&children)) {
		struct child *c = oh_list_entry(children.first, struct child, link);
		oh_list_remove(&children, &c->link);
		child_free(c);
	}
	if(ev_sigchld)
		event_free(ev_sigchld);
	ev_sigchld = NULL;
	base = NULL;
	subreaper = false;
}

size_t child_count(void)
{
	size_t n = 0;
	for(struct oh_list_node *it = children.first; it; it = it->next)
		n++;
	return n;
}

/* Room for `more` bytes after the output so far, and a NUL; false (the
 * bytes are dropped) when memory runs out.  len + more <= max < SIZE_MAX. */
static bool reserve(struct child *c, size_t more)
{
	size_t want = c->len + more + 1;
	if(want <= c->cap)
		return true;
	size_t cap = c->cap ? c->cap : 4096;
	while(cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if(cap > c->max + 1)
		cap = c->max + 1;
	char *buf = realloc(c->buf, cap);
	if(!buf)
		return false;
	c->buf = buf;
	c->cap = cap;
	return true;
}

/* Unlinks and reports c if it is finished. */
static void report_if_finished(struct child *c)
{
	if(!finished(c))
		return;
	oh_list_remove(&children, &c->link);
	report(c);
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	char chunk[4096];
	/* At most a pipe's worth per wake-up: the event is level-triggered and
	 * comes back next turn, so a child that writes without end shares the
	 * loop instead of holding it. */
	for(int reads = 0; reads < 16; reads++) {
		ssize_t n = read(c->fd, chunk, sizeof chunk);
		if(n > 0) {
			/* Past max_output we keep draining so the child never blocks
			 * on a full pipe, but drop the bytes. */
			size_t keep = c->max - c->len;
			if(keep > (size_t)n)
				keep = (size_t)n;
			if(keep && !reserve(c, keep)) {
				log_warn("child", "out of memory for the output of child %ld; keeping the first %zu bytes",
						(long)c->pid, c->len);
				c->max = c->len;
				continue;
			}
			if(keep)
				memcpy(c->buf + c->len, chunk, keep);
			c->len += keep;
			continue;
		}
		if(n < 0 && errno == EINTR)
			continue;
		if(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* EOF (or a read error, which we treat alike). */
		close_pipe(c);
		report_if_finished(c);
		return;
	}
}

static void kill_child(pid_t pid)
{
	/* The group first (helpers that fork), then the child itself in case
	 * it left the group. */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	c->timed_out = true;
	kill_child(c->pid);
	/* A grandchild that left the group could hold the pipe open forever:
	 * stop waiting for EOF.  The SIGCHLD of the kill reports it, or now if
	 * it had exited already. */
	close_pipe(c);
	report_if_finished(c);
}

#if !(defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34)))
/* Without posix_spawn_file_actions_addclosefrom_np: mark ours close-on-exec
 * instead (harmless here, as these processes never exec themselves). */
static void cloexec_from(int lowfd)
{
	long max = sysconf(_SC_OPEN_MAX);
	if(max < 0 || max > 65536)
		max = 65536;
	for(int fd = lowfd; fd < max; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if(fl >= 0)
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
}
#endif

/* The attributes every child gets (see the top); 0 or an errno. */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, int out_fd)
{
	sigset_t none, defaults;
	sigemptyset(&none);
	sigemptyset(&defaults);
	const int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2};
	for(size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&defaults, sigs[i]);
	int rc = posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if(!rc && out_fd >= 0)
		rc = posix_spawn_file_actions_adddup2(fa, out_fd, STDOUT_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	if(!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
#else
	cloexec_from(STDERR_FILENO + 1);
#endif
	if(!rc)
		rc = posix_spawnattr_setpgroup(attr, 0);
	if(!rc)
		rc = posix_spawnattr_setsigmask(attr, &none);
	if(!rc)
		rc = posix_spawnattr_setsigdefault(attr, &defaults);
	if(!rc)
		rc = posix_spawnattr_setflags(
				attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	return rc;
}

/* posix_spawnp with the attributes above; 0 or an errno. */
static int spawn(char *const argv[], int out_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc = posix_spawn_file_actions_init(&fa);
	if(rc)
		return rc;
	rc = posix_spawnattr_init(&attr);
	if(rc) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	rc = spawn_setup(&fa, &attr, out_fd);
	if(!rc)
		rc = posix_spawnp(pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

int child_spawn(char *const argv[], const struct child_opts *opts, child_done_fn done, void *ud,
		pid_t *pid_out, char *err, size_t errlen)
{
	if(!argv || !argv[0] || !argv[0][0]) {
		snprintf(err, errlen, "cannot run an empty command");
		return OH_ERR_INVAL;
	}
	if(!ev_sigchld) {
		snprintf(err, errlen, "cannot run '%s': children are not watched (no child_init)", argv[0]);
		return OH_ERR_INVAL;
	}
	struct child *c = calloc(1, sizeof *c);
	if(!c) {
		snprintf(err, errlen, "cannot run '%s': out of memory", argv[0]);
		return OH_ERR_NOMEM;
	}
	c->fd = -1;
	c->done = done;
	c->ud = ud;
	/* One byte is kept for the NUL, so max + 1 never wraps. */
	c->max = opts->max_output < SIZE_MAX ? opts->max_output : SIZE_MAX - 1;

	int pipefd[2] = {-1, -1};
	if(opts->capture) {
		if(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK)) {
			snprintf(err, errlen, "cannot run '%s': pipe: %s", argv[0], strerror(errno));
			child_free(c);
			return OH_ERR_IO;
		}
		c->fd = pipefd[0];
		/* The child's end must block like any stdout. */
		fcntl(pipefd[1], F_SETFL, fcntl(pipefd[1], F_GETFL) & ~O_NONBLOCK);
	}
	int e = spawn(argv, pipefd[1], &c->pid);
	if(pipefd[1] >= 0)
		close(pipefd[1]);
	if(e) {
		/* Not logged here: a caller retrying every few seconds decides
		 * how often to say so. */
		snprintf(err, errlen, "cannot run '%s': %s", argv[0], strerror(e));
		child_free(c);
		return e == ENOMEM ? OH_ERR_NOMEM : e == ENOENT || e == EACCES ? OH_ERR_NOT_FOUND : OH_ERR_IO;
	}

	bool ok = true;
	if(c->fd >= 0) {
		c->rd = event_new(base, c->fd, EV_READ | EV_PERSIST, on_output, c);
		ok = c->rd && !event_add(c->rd, NULL);
	}
	if(ok && opts->timeout_ms >= 0) {
		c->deadline = evtimer_new(base, on_deadline, c);
		struct timeval tv = {opts->timeout_ms / 1000, (suseconds_t)(opts->timeout_ms % 1000) * 1000};
		ok = c->deadline && !evtimer_add(c->deadline, &tv);
	}
	if(!ok) {
		/* Started but untrackable: kill it now rather than leak it, and
		 * let SIGCHLD reap it. */
		kill_child(c->pid);
		abandon(c);
		oh_list_push_front(&children, &c->link);
		snprintf(err, errlen, "cannot run '%s': out of memory", argv[0]);
		return OH_ERR_NOMEM;
	}
	oh_list_push_front(&children, &c->link);
	*pid_out = c->pid;
	return OH_OK;
}

void child_forget(pid_t pid)
{
	struct child *c = find(pid);
	if(c)
		c->done = NULL;
}

void child_kill(pid_t pid)
{
	struct child *c = find(pid);
	if(!c)
		return;
	if(!c->reaped) {
		kill_child(pid);
		/* SIGKILL lands within a scheduler tick: wait that long at most,
		 * so an owner going away at shutdown leaves no zombie behind, and
		 * leave a child stuck in the kernel to SIGCHLD rather than hold
		 * the loop for it. */
		for(int tries = 0; tries < KILL_REAP_TRIES && !c->reaped; tries++) {
			pid_t r = waitpid(pid, NULL, WNOHANG);
			if(r == pid || (r < 0 && errno == ECHILD))
				c->reaped = true;
			else if(r == 0)
				nanosleep(&(struct timespec){0, 1000000}, NULL);
		}
		if(!c->reaped) {
			abandon(c);
			return;
		}
	}
	oh_list_remove(&children, &c->link);
	child_free(c);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	struct stopping *s = arg;
	reap_all();
	/* reap_all() may have freed s; look it up again by address. */
	for(struct oh_list_node *n = stoppings.first; n; n = n->next) {
		if(n == &s->link) {
			if(group_alive(s->pgid)) {
				log_warn("child", "process group %d ignored SIGTERM; sending SIGKILL",
						(int)s->pgid);
				kill(-s->pgid, SIGKILL);
			}
			stopping_remove(s);
			break;
		}
	}
}

bool child_stop_group(pid_t pgid, double grace_s)
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
	time_t whole = (time_t)grace_s;
	long frac_ns = (long)((grace_s - (double)whole) * 1e9);
	clock_gettime(CLOCK_MONOTONIC, &s->deadline);
	s->deadline.tv_sec += whole;
	s->deadline.tv_nsec += frac_ns;
	if(s->deadline.tv_nsec >= 1000000000L) {
		s->deadline.tv_sec++;
		s->deadline.tv_nsec -= 1000000000L;
	}
	if(base) {
		s->timer = evtimer_new(base, on_kill_timer, s);
		struct timeval tv = {whole, (suseconds_t)(frac_ns / 1000)};
		if(s->timer)
			evtimer_add(s->timer, &tv);
	}
	oh_list_push_front(&stoppings, &s->link);
	return true;
}

void child_stop_all_blocking(void)
{
	double give_up = 0;
	while(!oh_list_empty(&stoppings)) {
		reap_all();
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		struct oh_list_node *next;
		for(struct oh_list_node *n = stoppings.first; n; n = next) {
			next = n->next;
			struct stopping *s = oh_list_entry(n, struct stopping, link);
			if(!group_alive(s->pgid)) {
				stopping_remove(s);
			} else if(ts.tv_sec > s->deadline.tv_sec ||
					(ts.tv_sec == s->deadline.tv_sec && ts.tv_nsec >= s->deadline.tv_nsec)) {
				log_warn("child", "process group %d ignored SIGTERM; sending SIGKILL",
						(int)s->pgid);
				kill(-s->pgid, SIGKILL);
				/* Only once: push the deadline far out. */
				s->deadline.tv_sec += 1000000;
				if(give_up == 0)
					give_up = now_s() + KILL_WAIT_MS / 1000.0;
			}
		}
		if(oh_list_empty(&stoppings))
			break;
		if(give_up != 0 && now_s() > give_up) {
			log_warn("child", "some child processes did not go away; leaving them");
			break;
		}
		struct timespec nap = {0, 20 * 1000000L};
		nanosleep(&nap, NULL);
	}
	reap_all();
}
