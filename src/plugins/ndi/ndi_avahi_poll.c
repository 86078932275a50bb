/*
 * An AvahiPoll on the host's loop: Avahi's watches become oh_watch_*
 * registrations and its timeouts one-shot oh_timer_add timers, so
 * libavahi-client needs no thread and no poll loop of its own.  A watch or
 * timeout freed from inside its own callback is freed when the callback
 * returns.
 */
#ifdef OH_HAVE_AVAHI
#include "ndi_avahi_poll.h"

#include <stdlib.h>
#include <sys/time.h>

struct AvahiWatch {
	oh_ctx *ctx;
	struct oh_watch *w;
	AvahiWatchEvent revents;
	AvahiWatchCallback cb;
	void *userdata;
	bool in_cb, dead;
};

struct AvahiTimeout {
	oh_ctx *ctx;
	oh_timer_id t; /* OH_TIMER_NONE when disarmed or just fired */
	AvahiTimeoutCallback cb;
	void *userdata;
	bool in_cb, dead;
};
static int to_oh_events(AvahiWatchEvent e)
{
	return (e & AVAHI_WATCH_IN ? OH_WATCH_READ : 0) | (e & AVAHI_WATCH_OUT ? OH_WATCH_WRITE : 0);
}

static void on_av_watch(oh_ctx *ctx, int fd, int events, void *ud)
{
	AvahiWatch *w = ud;
	w->revents = (events & OH_WATCH_READ ? AVAHI_WATCH_IN : 0) |
			(events & OH_WATCH_WRITE ? AVAHI_WATCH_OUT : 0);
	/* The callback may free this watch: then only after it returns. */
	w->in_cb = true;
	w->cb(w, fd, w->revents, w->userdata);
	w->in_cb = false;
	if(w->dead)
		free(w);
	else
		w->revents = 0;
}

static AvahiWatch *av_watch_new(
		const AvahiPoll *api, int fd, AvahiWatchEvent event, AvahiWatchCallback cb, void *userdata)
{
	AvahiWatch *w = calloc(1, sizeof *w);
	if(!w)
		return NULL;
	w->ctx = api->userdata;
	w->cb = cb;
	w->userdata = userdata;
	w->w = oh_watch_add(w->ctx, fd, to_oh_events(event), on_av_watch, w);
	if(!w->w) {
		free(w);
		return NULL;
	}
	return w;
}

static void av_watch_update(AvahiWatch *w, AvahiWatchEvent event)
{
	oh_watch_update(w->ctx, w->w, to_oh_events(event));
}

static AvahiWatchEvent av_watch_get_events(AvahiWatch *w)
{
	return w->revents;
}

static void av_watch_free(AvahiWatch *w)
{
	oh_watch_cancel(w->ctx, w->w);
	w->w = NULL;
	if(w->in_cb)
		w->dead = true;
	else
		free(w);
}

static void on_av_timeout(oh_ctx *ctx, void *ud)
{
	AvahiTimeout *t = ud;
	t->t = OH_TIMER_NONE; /* one-shot: the host already freed it */
	t->in_cb = true;
	t->cb(t, t->userdata);
	t->in_cb = false;
	if(t->dead)
		free(t);
}

static void av_timeout_arm(AvahiTimeout *t, const struct timeval *tv)
{
	if(t->t) {
		oh_timer_cancel(t->ctx, t->t);
		t->t = OH_TIMER_NONE;
	}
	if(!tv)
		return;
	/* Avahi's times are absolute, on the wall clock (gettimeofday). */
	struct timeval now;
	gettimeofday(&now, NULL);
	long long us = (long long)(tv->tv_sec - now.tv_sec) * 1000000LL + (tv->tv_usec - now.tv_usec);
	unsigned ms = us <= 0 ? 0 : us > 86400000000LL ? 86400000u : (unsigned)((us + 999) / 1000);
	t->t = oh_timer_add(t->ctx, ms, false, on_av_timeout, t);
	if(!t->t)
		oh_log(t->ctx, OH_LOG_ERROR, "cannot arm a timer for Avahi");
}

static AvahiTimeout *av_timeout_new(
		const AvahiPoll *api, const struct timeval *tv, AvahiTimeoutCallback cb, void *userdata)
{
	AvahiTimeout *t = calloc(1, sizeof *t);
	if(!t)
		return NULL;
	t->ctx = api->userdata;
	t->cb = cb;
	t->userdata = userdata;
	av_timeout_arm(t, tv);
	return t;
}

static void av_timeout_update(AvahiTimeout *t, const struct timeval *tv)
{
	av_timeout_arm(t, tv);
}

static void av_timeout_free(AvahiTimeout *t)
{
	av_timeout_arm(t, NULL);
	if(t->in_cb)
		t->dead = true;
	else
		free(t);
}

void ndi_avahi_poll_init(AvahiPoll *poll, oh_ctx *ctx)
{
	*poll = (AvahiPoll){
			.userdata = ctx,
			.watch_new = av_watch_new,
			.watch_update = av_watch_update,
			.watch_get_events = av_watch_get_events,
			.watch_free = av_watch_free,
			.timeout_new = av_timeout_new,
			.timeout_update = av_timeout_update,
			.timeout_free = av_timeout_free,
	};
}

#endif
