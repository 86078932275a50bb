/*
 * Unit tests of plugin timers (src/core/plugin_api.c) on a real event base
 * with fake plugin contexts: a handle stays harmless after its timer ended
 * (fired, cancelled, torn down), even when a new timer was added since; a
 * handle of another plugin is ignored; and the id table behind the handles
 * stays correct through tens of thousands of adds and cancels in any order.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "plugin_ctx.h"

static struct host h;
static oh_ctx a, b;
static int fired;

static void on_fire(oh_ctx *ctx, void *ud)
{
	fired++;
}

static void setup(void)
{
	memset(&h, 0, sizeof h);
	h.base = event_base_new();
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	a.host = b.host = &h;
	a.module = "a";
	b.module = "b";
	fired = 0;
}

static void teardown(void)
{
	plugin_timers_free(&a);
	plugin_timers_free(&b);
	event_base_free(h.base);
}

static void run_until_fired(int n)
{
	for(int i = 0; i < 1000 && fired < n; i++)
		event_base_loop(h.base, EVLOOP_ONCE);
}

static void test_stale_handles_are_harmless(void)
{
	setup();
	oh_timer_id first = oh_timer_add(&a, 1, false, on_fire, NULL);
	CHECK(first != OH_TIMER_NONE);
	CHECK_INT_EQ(plugin_timers_count(&a), 1);
	run_until_fired(1);
	CHECK_INT_EQ(fired, 1);
	CHECK_INT_EQ(plugin_timers_count(&a), 0);

	/* Fired: cancelling does nothing, also after a new timer was added
	 * (which would have reused the memory of an address handle). */
	oh_timer_id second = oh_timer_add(&a, 3600 * 1000, false, on_fire, NULL);
	CHECK(second != OH_TIMER_NONE && second > first);
	oh_timer_cancel(&a, first);
	oh_timer_cancel(&a, first);
	CHECK_INT_EQ(plugin_timers_count(&a), 1);

	/* Another plugin's handle, 0, and one never issued: ignored. */
	oh_timer_cancel(&b, second);
	oh_timer_cancel(&a, OH_TIMER_NONE);
	oh_timer_cancel(&a, (oh_timer_id)0x7fffffff);
	CHECK_INT_EQ(plugin_timers_count(&a), 1);

	/* Cancelled twice. */
	oh_timer_cancel(&a, second);
	oh_timer_cancel(&a, second);
	CHECK_INT_EQ(plugin_timers_count(&a), 0);

	/* A repeating timer, cancelled, then its handle again. */
	oh_timer_id rep = oh_timer_add(&a, 1, true, on_fire, NULL);
	run_until_fired(3);
	CHECK(fired >= 3);
	oh_timer_cancel(&a, rep);
	oh_timer_cancel(&a, rep);
	CHECK_INT_EQ(plugin_timers_count(&a), 0);

	/* Torn down (the plugin unloaded) and a stale cancel after. */
	oh_timer_id gone = oh_timer_add(&a, 3600 * 1000, false, on_fire, NULL);
	plugin_timers_free(&a);
	oh_timer_cancel(&a, gone);
	CHECK_INT_EQ(plugin_timers_count(&a), 0);
	teardown();
}

static void test_many_timers_any_order(void)
{
	setup();
	enum {
		N = 40000
	};
	oh_timer_id *t = calloc(N, sizeof *t);
	size_t *order = calloc(N, sizeof *order);
	if(!CHECK(t && order))
		return;
	int nulls = 0;
	for(size_t i = 0; i < N; i++) {
		t[i] = oh_timer_add(i % 2 ? &a : &b, 3600 * 1000, i % 3 == 0, on_fire, NULL);
		nulls += !t[i];
		order[i] = i;
	}
	CHECK_INT_EQ(nulls, 0);
	CHECK_INT_EQ(plugin_timers_count(&a) + plugin_timers_count(&b), N);

	/* Cancel three quarters in a shuffled order, each through its owner,
	 * each twice and once through the other plugin. */
	srand(7);
	for(size_t i = N - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1), x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	for(size_t k = 0; k < N * 3 / 4; k++) {
		size_t i = order[k];
		oh_ctx *own = i % 2 ? &a : &b, *other = i % 2 ? &b : &a;
		oh_timer_cancel(other, t[i]);
		oh_timer_cancel(own, t[i]);
		oh_timer_cancel(own, t[i]);
	}
	CHECK_INT_EQ(plugin_timers_count(&a) + plugin_timers_count(&b), N / 4);

	/* The rest are all still found: cancelling each ends exactly one. */
	size_t left = N / 4;
	int wrong = 0;
	for(size_t k = N * 3 / 4; k < N; k++) {
		size_t i = order[k];
		oh_timer_cancel(i % 2 ? &a : &b, t[i]);
		left--;
		wrong += plugin_timers_count(&a) + plugin_timers_count(&b) != left;
	}
	CHECK_INT_EQ(wrong, 0);
	CHECK_INT_EQ(plugin_timers_count(&a) + plugin_timers_count(&b), 0);
	free(t);
	free(order);
	teardown();
}

int main(void)
{
	test_stale_handles_are_harmless();
	test_many_timers_any_order();
	return check_summary();
}
