/*
 * File-descriptor watches and child processes for plugins (host.h, "file
 * descriptors and child processes").
 *
 * Like timers, these are registrations the host owns: each plugin context
 * keeps a list of its watches and running children in `struct plugin_io`,
 * and plugin_io_free() tears them all down when the plugin goes.
 *
 * Children are started with posix_spawn (exec errors come back
 * synchronously), in a process group of their own so a timeout can kill the
 * whole group, with stdin on /dev/null, stdout on a non-blocking pipe watched
 * on the loop and stderr inherited (it lands in the host's log).  The host
 * has no SIGCHLD handler, so a child is reaped by polling waitpid(WNOHANG)
 * on a short timer once its output reached EOF or its time ran out; `done`
 * runs once, after the reap.
 *
 * The output buffer grows as output arrives, doubling up to max_output
 * (plus the terminating NUL), so a generous max_output costs nothing until
 * a child writes that much; every size computation is checked, because
 * max_output may be anything up to SIZE_MAX.
 */
#include "plugin_ctx.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

extern char **environ;

struct oh_watch {
	struct oh_watch *prev, *next;
	oh_ctx *ctx;
	struct event *ev; /* NULL while paused (events == 0) */
	int fd;
	int events;
	oh_watch_fn fn;
	void *ud;
};

struct child {
	struct child *prev, *next;
	oh_ctx *ctx;
	pid_t pid;
	int fd; /* read end of the stdout pipe, -1 once closed */
	struct event *rd;
	struct event *deadline;
	struct event *reap;
	unsigned reap_polls;
	char *buf;       /* NULL until output arrives */
	size_t len, cap; /* cap > len whenever buf is set */
	size_t max;      /* max_output, at most SIZE_MAX - 1 */
	bool timed_out;
	oh_spawn_done_fn done;
	void *ud;
};

struct plugin_io {
	struct oh_watch *watches;
	struct child *children;
};

static struct plugin_io *io_of(oh_ctx *ctx)
{
	if(!ctx->io)
		ctx->io = calloc(1, sizeof *ctx->io);
	return ctx->io;
}

/* ---- watches -------------------------------------------------------------- */

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct oh_watch *w = arg;
	int events = 0;
	if(what & EV_READ)
		events |= OH_WATCH_READ;
	if(what & EV_WRITE)
		events |= OH_WATCH_WRITE;
	/* fn may cancel this watch (freeing it); nothing touches w afterwards. */
	w->fn(w->ctx, (int)fd, events, w->ud);
}

static int watch_arm(struct oh_watch *w, int events)
{
	if(w->ev) {
		event_free(w->ev);
		w->ev = NULL;
	}
	w->events = events & (OH_WATCH_READ | OH_WATCH_WRITE);
	if(!w->events)
		return OH_OK;
	short what = EV_PERSIST;
	if(w->events & OH_WATCH_READ)
		what |= EV_READ;
	if(w->events & OH_WATCH_WRITE)
		what |= EV_WRITE;
	w->ev = event_new(w->ctx->host->base, w->fd, what, on_watch, w);
	if(!w->ev)
		return OH_ERR_NOMEM;
	if(event_add(w->ev, NULL)) {
		event_free(w->ev);
		w->ev = NULL;
		return OH_ERR_IO;
	}
	return OH_OK;
}

struct oh_watch *oh_watch_add(oh_ctx *ctx, int fd, int events, oh_watch_fn fn, void *ud)
{
	if(fd < 0 || !fn)
		return NULL;
	struct plugin_io *io = io_of(ctx);
	if(!io)
		return NULL;
	struct oh_watch *w = calloc(1, sizeof *w);
	if(!w)
		return NULL;
	w->ctx = ctx;
	w->fd = fd;
	w->fn = fn;
	w->ud = ud;
	if(watch_arm(w, events)) {
		free(w);
		return NULL;
	}
	w->next = io->watches;
	if(io->watches)
		io->watches->prev = w;
	io->watches = w;
	return w;
}

/* Whether w is one of ctx's live watches: a plugin that cancels after the
 * host already tore its registrations down must not touch freed memory. */
static bool watch_known(oh_ctx *ctx, const struct oh_watch *w)
{
	if(!w || !ctx->io)
		return false;
	for(const struct oh_watch *it = ctx->io->watches; it; it = it->next) {
		if(it == w)
			return true;
	}
	return false;
}

int oh_watch_update(oh_ctx *ctx, struct oh_watch *w, int events)
{
	if(!watch_known(ctx, w))
		return OH_ERR_NOT_FOUND;
	if(w->ev && w->events == (events & (OH_WATCH_READ | OH_WATCH_WRITE)))
		return OH_OK;
	return watch_arm(w, events);
}

static void watch_free(struct oh_watch *w)
{
	struct plugin_io *io = w->ctx->io;
	if(w->prev)
		w->prev->next = w->next;
	else
		io->watches = w->next;
	if(w->next)
		w->next->prev = w->prev;
	if(w->ev)
		event_free(w->ev);
	free(w);
}

void oh_watch_cancel(oh_ctx *ctx, struct oh_watch *w)
{
	if(watch_known(ctx, w))
		watch_free(w);
}

/* ---- children ------------------------------------------------------------- */

static void child_unlink(struct child *c)
{
	struct plugin_io *io = c->ctx->io;
	if(c->prev)
		c->prev->next = c->next;
	else
		io->children = c->next;
	if(c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void child_close_pipe(struct child *c)
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
	child_close_pipe(c);
	if(c->deadline)
		event_free(c->deadline);
	if(c->reap)
		event_free(c->reap);
	free(c->buf);
	free(c);
}

static void child_kill(struct child *c)
{
	/* The group first (helpers that fork), then the child itself in case
	 * it left the group. */
	kill(-c->pid, SIGKILL);
	kill(c->pid, SIGKILL);
}

/* Polls waitpid until the child is gone; then reports it, exactly once. */
static void child_try_reap(struct child *c)
{
	int status = 0;
	pid_t r = waitpid(c->pid, &status, WNOHANG);
	if(r == 0) {
		/* Still running (e.g. it closed stdout early): poll quickly at
		 * first, then every 100 ms; the deadline still applies. */
		unsigned ms = c->reap_polls++ < 20 ? 5 : 100;
		struct timeval tv = {0, (suseconds_t)ms * 1000};
		event_add(c->reap, &tv);
		return;
	}
	if(r < 0 && errno == EINTR) {
		struct timeval tv = {0, 1000};
		event_add(c->reap, &tv);
		return;
	}
	if(r < 0) {
		/* ECHILD: someone else reaped it (SIGCHLD ignored); we cannot know
		 * how it ended. */
		log_warn("plugins", "child %ld of %s vanished: %s", (long)c->pid, c->ctx->module,
				strerror(errno));
		status = -1;
	}
	child_unlink(c);
	child_close_pipe(c);
	if(c->buf)
		c->buf[c->len] = '\0'; /* cap > len */
	c->done(c->ctx, status, c->timed_out, c->buf ? c->buf : "", c->len, c->ud);
	child_free(c);
}

static void on_child_reap(evutil_socket_t fd, short what, void *arg)
{
	child_try_reap(arg);
}

/* Room for `more` bytes after the output so far, and a NUL; false (the
 * bytes are dropped) when memory runs out.  len + more <= max < SIZE_MAX. */
static bool child_reserve(struct child *c, size_t more)
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

static void on_child_output(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	char chunk[4096];
	for(;;) {
		ssize_t n = read(c->fd, chunk, sizeof chunk);
		if(n > 0) {
			/* Past max_output we keep draining so the child never blocks
			 * on a full pipe, but drop the bytes. */
			size_t keep = c->max - c->len;
			if(keep > (size_t)n)
				keep = (size_t)n;
			if(keep && !child_reserve(c, keep)) {
				log_warn("plugins",
						"out of memory for the output of child %ld of %s; "
						"keeping the first %zu bytes",
						(long)c->pid, c->ctx->module, c->len);
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
		child_close_pipe(c);
		child_try_reap(c);
		return;
	}
}

static void on_child_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	c->timed_out = true;
	child_kill(c);
	/* A grandchild that left the group could hold the pipe open forever:
	 * stop waiting for EOF and reap the child we started. */
	child_close_pipe(c);
	event_del(c->reap);
	child_try_reap(c);
}

int oh_spawn(oh_ctx *ctx, char *const argv[], unsigned timeout_ms, size_t max_output, oh_spawn_done_fn done,
		void *ud)
{
	if(!argv || !argv[0] || !argv[0][0] || !done)
		return OH_ERR_INVAL;
	int rc = OH_ERR_NOMEM;
	struct plugin_io *io = io_of(ctx);
	if(!io)
		return OH_ERR_NOMEM;
	struct child *c = calloc(1, sizeof *c);
	if(!c)
		return OH_ERR_NOMEM;
	c->ctx = ctx;
	c->fd = -1;
	c->done = done;
	c->ud = ud;
	/* One byte is kept for the NUL, so max + 1 never wraps. */
	c->max = max_output < SIZE_MAX ? max_output : SIZE_MAX - 1;

	int pipefd[2];
	if(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK)) {
		rc = OH_ERR_IO;
		goto out_child;
	}
	c->fd = pipefd[0];
	/* The child's end must block like any stdout. */
	fcntl(pipefd[1], F_SETFL, fcntl(pipefd[1], F_GETFL) & ~O_NONBLOCK);

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	if(posix_spawn_file_actions_init(&fa))
		goto out_pipe;
	if(posix_spawnattr_init(&attr))
		goto out_fa;
	sigset_t none, defaults;
	sigemptyset(&none);
	sigemptyset(&defaults);
	/* The host ignores SIGPIPE and libevent catches SIGINT/SIGTERM; a
	 * helper should get the usual dispositions and an empty mask. */
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGCHLD);
	sigaddset(&defaults, SIGHUP);
	if(posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0) ||
			posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO)
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
			/* Sockets of the broker link and HTTP server may lack
			 * O_CLOEXEC; a helper must not inherit them. */
			|| posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)
#endif
			|| posix_spawnattr_setpgroup(&attr, 0) || posix_spawnattr_setsigmask(&attr, &none) ||
			posix_spawnattr_setsigdefault(&attr, &defaults) ||
			posix_spawnattr_setflags(&attr,
					POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
		goto out_attr;

	int err = posix_spawnp(&c->pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if(err) {
		/* Not logged here: a plugin retrying every few seconds decides
		 * how often to say so. */
		rc = err == ENOMEM                               ? OH_ERR_NOMEM
				: err == ENOENT || err == EACCES ? OH_ERR_NOT_FOUND
								 : OH_ERR_IO;
		goto out_child;
	}

	c->rd = event_new(ctx->host->base, c->fd, EV_READ | EV_PERSIST, on_child_output, c);
	c->deadline = event_new(ctx->host->base, -1, 0, on_child_deadline, c);
	c->reap = event_new(ctx->host->base, -1, 0, on_child_reap, c);
	if(!c->rd || !c->deadline || !c->reap) {
		/* Started but untrackable: kill it now rather than leak it. */
		child_kill(c);
		waitpid(c->pid, NULL, 0);
		goto out_child;
	}
	event_add(c->rd, NULL);
	struct timeval tv = {timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000};
	event_add(c->deadline, &tv);
	c->next = io->children;
	if(io->children)
		io->children->prev = c;
	io->children = c;
	return OH_OK;

out_attr:
	posix_spawnattr_destroy(&attr);
out_fa:
	posix_spawn_file_actions_destroy(&fa);
out_pipe:
	close(pipefd[1]);
out_child:
	child_free(c);
	return rc;
}

/* ---- teardown ------------------------------------------------------------- */

void plugin_io_free(oh_ctx *ctx)
{
	struct plugin_io *io = ctx->io;
	if(!io)
		return;
	while(io->watches)
		watch_free(io->watches);
	while(io->children) {
		struct child *c = io->children;
		child_kill(c);
		/* SIGKILL cannot be refused, so this wait is short. */
		while(waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		child_unlink(c);
		child_free(c);
	}
	free(io);
	ctx->io = NULL;
}
