/*
 * File-descriptor watches and child processes for plugins (host.h, "file
 * descriptors and child processes").
 *
 * Like timers, these are registrations the host owns: each plugin context
 * keeps a list of its watches and running children in `struct plugin_io`,
 * and plugin_io_free() tears them all down when the plugin goes.
 *
 * Children run through the runner the device agent uses too
 * (src/common/child.c): in a process group of their own so a timeout can
 * kill the whole group, with stdin on /dev/null, stdout captured on the
 * loop and stderr inherited (it lands in the host's log); `done` runs once,
 * after the child has exited and its output ended.  The runner is set up on
 * the first spawn and let go when the last plugin with children goes.
 */
#include "plugin_ctx.h"

#include <event2/event.h>
#include <stdlib.h>

#include "child.h"
#include "oh/list.h"

struct oh_watch {
	struct oh_list_node link; /* in plugin_io.watches */
	oh_ctx *ctx;
	struct event *ev; /* NULL while paused (events == 0) */
	int fd;
	int events;
	oh_watch_fn fn;
	void *ud;
};

/* A child a plugin started, until done runs or the plugin goes. */
struct spawned {
	struct oh_list_node link; /* in plugin_io.children */
	oh_ctx *ctx;
	pid_t pid;
	oh_spawn_done_fn done;
	void *ud;
};

struct plugin_io {
	struct oh_list watches;  /* of struct oh_watch */
	struct oh_list children; /* of struct spawned */
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
	oh_list_push_front(&io->watches, &w->link);
	return w;
}

/* Whether w is one of ctx's live watches: a plugin that cancels after the
 * host already tore its registrations down must not touch freed memory. */
static bool watch_known(oh_ctx *ctx, const struct oh_watch *w)
{
	if(!w || !ctx->io)
		return false;
	for(const struct oh_list_node *n = ctx->io->watches.first; n; n = n->next) {
		if(n == &w->link)
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
	oh_list_remove(&w->ctx->io->watches, &w->link);
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

static void on_child_done(pid_t pid, const struct child_result *res, void *ud)
{
	struct spawned *sp = ud;
	oh_list_remove(&sp->ctx->io->children, &sp->link);
	sp->done(sp->ctx, res->status, res->timed_out, res->output, res->len, sp->ud);
	free(sp);
}

int oh_spawn(oh_ctx *ctx, char *const argv[], unsigned timeout_ms, size_t max_output, oh_spawn_done_fn done,
		void *ud)
{
	if(!argv || !argv[0] || !argv[0][0] || !done)
		return OH_ERR_INVAL;
	struct plugin_io *io = io_of(ctx);
	if(!io)
		return OH_ERR_NOMEM;
	if(child_init(ctx->host->base, false))
		return OH_ERR_IO;
	struct spawned *sp = calloc(1, sizeof *sp);
	if(!sp)
		return OH_ERR_NOMEM;
	sp->ctx = ctx;
	sp->done = done;
	sp->ud = ud;
	const struct child_opts opts = {
			.timeout_ms = (long)timeout_ms, .capture = true, .max_output = max_output};
	char err[256];
	/* Not logged here: a plugin retrying every few seconds decides how
	 * often to say so. */
	int rc = child_spawn(argv, &opts, on_child_done, sp, &sp->pid, err, sizeof err);
	if(rc) {
		free(sp);
		return rc;
	}
	oh_list_push_front(&io->children, &sp->link);
	return OH_OK;
}

/* ---- teardown ------------------------------------------------------------- */

void plugin_io_free(oh_ctx *ctx)
{
	struct plugin_io *io = ctx->io;
	if(io) {
		while(!oh_list_empty(&io->watches))
			watch_free(oh_list_entry(io->watches.first, struct oh_watch, link));
		while(!oh_list_empty(&io->children)) {
			struct spawned *sp = oh_list_entry(io->children.first, struct spawned, link);
			oh_list_remove(&io->children, &sp->link);
			child_kill(sp->pid);
			free(sp);
		}
		free(io);
		ctx->io = NULL;
	}
	/* The runner holds the loop's SIGCHLD: let it go with the last child,
	 * so a host on another loop (tests) can take it up. */
	if(!child_count())
		child_cleanup();
}
