/*
 * Unit tests of the scheduler's timing logic on a fake wall clock: catch-up
 * runs once or is MISSED once (never a series), clock steps neither repeat
 * nor lose runs, one-off jobs finish and are purged, the next run is durable
 * before commands are dispatched, a run whose next run cannot be stored
 * (another process holds the database) is not dispatched until it can be,
 * jobs due in the same second run in one turn with their commands before
 * their reports, commands due soon are parsed ahead, and 100,000 jobs stay
 * cheap.
 *
 * The real scheduler runs on a real event base with a fake plugin context;
 * events are published into an unconnected MQTT link (queued, unseen).
 */
#include "check.h"

#include <event2/event.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mqtt_link.h"
#include "plugin_ctx.h"
#include "scheduler.h"
#include "store.h"
#include "timeutil.h"

static double fake_now;
static double fake_clock(void)
{
	return fake_now;
}

static struct host H;
static oh_ctx CTX;
static oh_ctx *PLUGINS[1];

struct call {
	char owner[64], device[64];
};
static struct call calls[64];
static int n_calls;
static char stored_next_at_dispatch[64];

static void read_stored(const char *id, const char *module, const char *text, size_t len, void *ud)
{
	json_t *doc = json_loadb(text, len, 0, NULL);
	snprintf(stored_next_at_dispatch, sizeof stored_next_at_dispatch, "%s",
			json_is_string(json_object_get(doc, "next_run"))
					? json_string_value(json_object_get(doc, "next_run"))
					: "null");
	json_decref(doc);
}

/* test_same_second_runs_in_one_turn: the jobs of a turn, and how many of
 * them had reported FIRED when a command was executed. */
static char turn_ids[40][40];
static int n_turn_ids, fired_before_exec;

static json_t *exec(oh_ctx *ctx, const char *job_id, const char *owner, const json_t *command, void *ud)
{
	for(int i = 0; i < n_turn_ids; i++) {
		struct job *t = sched__find(CTX.sched, turn_ids[i]);
		if(t && !strcmp(t->last.code, "FIRED"))
			fired_before_exec++;
	}
	if(n_calls < 64) {
		snprintf(calls[n_calls].owner, sizeof calls[0].owner, "%s", owner);
		snprintf(calls[n_calls].device, sizeof calls[0].device, "%s",
				json_string_value(json_object_get(command, "device_id")));
	}
	n_calls++;
	if(H.store)
		store_job_load(H.store, read_stored, NULL);
	const char *dev = json_string_value(json_object_get(command, "device_id"));
	if(!strcmp(dev, "busy"))
		return oh_ack_new("r", false, "DENIED", "start", owner, "reserved",
				json_pack("{s:s}", "holder", "bob"));
	return oh_ack_new("r", true, "DISPATCHED", "start", owner, NULL, NULL);
}

static time_t at(const char *iso)
{
	time_t t = 0;
	time_parse_iso8601(iso, "UTC", &t, NULL, 0);
	return t;
}

static struct job *add(const char *cron, const char *at_iso, const char *device)
{
	struct job *j = NULL;
	char err[256] = "";
	json_t *params = json_pack("{s:[{s:s, s:s}]}", "commands", "device_id", device, "action", "start");
	json_object_set_new(params, cron ? "cron" : "at", json_string(cron ? cron : at_iso));
	char id[40];
	if(!CHECK(oh_job_add(&CTX, "alice", params, id, err, sizeof err) == OH_OK))
		printf("     %s\n", err);
	else
		j = sched__find(CTX.sched, id);
	json_decref(params);
	return j;
}

static void setup(const char *state_dir)
{
	memset(&H, 0, sizeof H);
	H.base = event_base_new();
	H.cfg.misfire_grace_s = 60;
	H.cfg.timezone = "UTC";
	H.cfg.topic_root = "/lab";
	struct mqtt_link_opts mo = {.host = "127.0.0.1",
			.port = 1,
			.client_id = "unit",
			.keepalive_s = 30,
			.log_prefix = "mqtt"};
	struct mqtt_link_callbacks cb = {0};
	H.link = mqtt_link_new(H.base, &mo, &cb, NULL);
	char err[256];
	H.store = state_dir ? store_open_dir(state_dir, err, sizeof err) : NULL;
	CHECK(scheduler_init(&H) == OH_OK);
	H.scheduler->now = fake_clock;
	memset(&CTX, 0, sizeof CTX);
	CTX.host = &H;
	CTX.module = "t";
	CTX.loaded = true;
	CTX.evt_topic = "/lab/orchestrator/t/evt";
	PLUGINS[0] = &CTX;
	H.plugins = PLUGINS;
	H.n_plugins = 1;
	CHECK(oh_scheduler_register(&CTX, exec, NULL, NULL) == OH_OK);
	CHECK(scheduler_load(H.scheduler) == OH_OK);
	n_calls = 0;
}

static void teardown(void)
{
	scheduler_forget_plugin(H.scheduler, &CTX);
	scheduler_free(H.scheduler);
	mqtt_link_free(H.link);
	store_close(H.store);
	event_base_free(H.base);
	H.plugins = NULL;
}

static void test_catch_up_is_one_run_or_one_miss(void)
{
	setup(NULL);
	fake_now = (double)at("2030-01-01T00:00:30Z");
	struct job *j = add("* * * * *", NULL, "d1");
	CHECK_INT_EQ(j->due, at("2030-01-01T00:01:00Z"));

	/* Ten runs passed, the last 30 s ago: inside the grace, one run. */
	fake_now = (double)at("2030-01-01T00:10:30Z");
	j->due = at("2030-01-01T00:01:00Z");
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 0); /* 9.5 min late: MISSED, not run */
	CHECK_STR_EQ(j->last.code, "MISSED");
	CHECK_INT_EQ(j->last_run, 0);
	CHECK_INT_EQ(j->due, at("2030-01-01T00:11:00Z"));
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 0); /* one MISSED, not a series */

	/* 30 s late is inside the 60 s grace: one run, then the next minute. */
	fake_now = (double)at("2030-01-01T00:11:30Z");
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);
	CHECK_STR_EQ(j->last.code, "FIRED");
	CHECK_INT_EQ(j->last.due, at("2030-01-01T00:11:00Z"));
	CHECK_INT_EQ(j->due, at("2030-01-01T00:12:00Z"));
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);
	CHECK_STR_EQ(calls[0].owner, "alice");
	teardown();
}

static void test_clock_steps(void)
{
	setup(NULL);
	fake_now = (double)at("2030-01-01T00:00:10Z");
	struct job *j = add("* * * * *", NULL, "d1");
	/* A hair before the due time (monotonic timer vs wall clock) is on time. */
	fake_now = (double)at("2030-01-01T00:01:00Z") - 0.0005;
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);
	CHECK_INT_EQ(j->due, at("2030-01-01T00:02:00Z"));

	/* Stepped back 40 s: the same minute must not run again. */
	fake_now = (double)at("2030-01-01T00:00:20Z");
	sched__poll(H.scheduler);
	fake_now = (double)at("2030-01-01T00:01:00Z");
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);

	/* Early by the wall clock: nothing yet. */
	fake_now = (double)at("2030-01-01T00:01:59Z");
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);

	/* Stepped forward 20 s past a due time: it runs, once. */
	fake_now = (double)at("2030-01-01T00:02:20Z");
	sched__poll(H.scheduler);
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 2);
	CHECK_INT_EQ(j->due, at("2030-01-01T00:03:00Z"));
	teardown();
}

static void test_one_off_finishes_and_is_purged(void)
{
	setup(NULL);
	fake_now = (double)at("2030-01-01T00:00:00Z");
	struct job *j = add(NULL, "2030-01-01T00:00:05Z", "d1");
	struct job *k = add(NULL, "2030-01-01T00:00:05Z", "busy");
	char kid[40];
	snprintf(kid, sizeof kid, "%s", k->id);
	fake_now = (double)at("2030-01-01T00:00:05Z");
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 2);
	CHECK_INT_EQ(j->state, JOB_DONE);
	CHECK_STR_EQ(j->last.code, "FIRED");
	CHECK_INT_EQ(j->last.dispatched, 1);
	CHECK_INT_EQ(k->last.dispatched, 0);
	CHECK_INT_EQ(k->last.skipped, 1);
	json_t *doc = oh_job_get(&CTX, kid);
	CHECK(json_is_null(json_object_get(doc, "next_run")));
	CHECK_STR_EQ(json_string_value(json_object_get(doc, "state")), "done");
	json_decref(doc);
	CHECK_INT_EQ(scheduler_count(H.scheduler), 2);
	fake_now += SCHED_DONE_KEEP_S + 1;
	sched__poll(H.scheduler);
	CHECK_INT_EQ(scheduler_count(H.scheduler), 0);
	CHECK_INT_EQ(n_calls, 2);
	teardown();
}

static void test_next_run_is_durable_before_dispatch(void)
{
	char dir[] = "/tmp/oh-sched-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setup(dir);
	fake_now = (double)at("2030-01-01T00:00:10Z");
	struct job *j = add("*/5 * * * *", NULL, "d1");
	char id[40];
	snprintf(id, sizeof id, "%s", j->id);
	fake_now = (double)at("2030-01-01T00:05:00Z");
	stored_next_at_dispatch[0] = '\0';
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);
	/* What the store held while the command was being dispatched. */
	CHECK_STR_EQ(stored_next_at_dispatch, "2030-01-01T00:10:00Z");
	teardown();

	/* Restart ("kill -9" after the dispatch): the job is back, the run is
	 * not repeated. */
	setup(dir);
	fake_now = (double)at("2030-01-01T00:05:01Z");
	j = sched__find(CTX.sched, id);
	if(CHECK(j != NULL)) {
		CHECK_INT_EQ(j->due, at("2030-01-01T00:10:00Z"));
		CHECK_STR_EQ(j->last.code, "FIRED");
		CHECK_INT_EQ(j->last_run, at("2030-01-01T00:05:00Z"));
		CHECK_STR_EQ(j->owner, "alice");
	}
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 0);
	CHECK_INT_EQ(oh_job_remove(&CTX, id, "bob"), OH_ERR_NOT_OWNER);
	CHECK_INT_EQ(oh_job_remove(&CTX, id, "alice"), OH_OK);
	CHECK_INT_EQ(oh_job_remove(&CTX, id, "alice"), OH_ERR_NOT_FOUND);
	teardown();
	setup(dir);
	CHECK_INT_EQ(scheduler_count(H.scheduler), 0);
	teardown();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* Stored job documents as the host writes them and as it may find them
 * (names, cron, results, done, repeated keys, wrong types, unreadable):
 * each is stored twice, as it is and indented, which only jansson reads,
 * and the two jobs restored must be the same. */
static const char *const stored_docs[] = {
		"{\"id\":\"x\",\"module\":\"t\",\"owner\":\"bob\",\"name\":\"nightly\",\"spec\":{\"cron\":\"0 6 * * MON-FRI\"},"
		"\"tz\":\"Europe/Berlin\",\"commands\":[{\"device_id\":\"d\",\"action\":\"start\",\"params\":{\"n\":-12,"
		"\"a\":[true,false,null,{}],\"s\":\"x y/z\"}}],\"created\":\"2029-12-31T10:00:00Z\","
		"\"next_run\":\"2030-01-02T05:00:00Z\",\"last_run\":\"2030-01-01T05:00:00Z\",\"last_result\":{\"code\":"
		"\"FIRED\",\"at\":\"2030-01-01T05:00:00Z\",\"due\":\"2030-01-01T05:00:00Z\",\"dispatched\":3,\"skipped\":1},"
		"\"state\":\"scheduled\"}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[],"
		"\"next_run\":null,\"last_result\":{\"code\":\"MISSED\",\"at\":\"2030-01-01T00:10:00Z\",\"dispatched\":\"3\"},"
		"\"state\":\"done\"}",
		"{\"owner\":\"o\",\"name\":7,\"spec\":{\"at\":\"2030-01-01T00:00:00Z\",\"at\":\"2030-01-03T00:00:00Z\"},"
		"\"tz\":\"UTC\",\"commands\":[1],\"commands\":[2,3],\"next_run\":\"2030-01-03T00:00:00Z\","
		"\"last_result\":{\"code\":\"FIRED\"},\"last_result\":null,\"state\":\"scheduled\",\"extra\":{\"k\":[]}}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"spec\":{\"cron\":\"*/5 * * * *\"},\"tz\":"
		"\"UTC\",\"commands\":[],\"next_run\":\"2030-01-01T00:05:00Z\",\"last_result\":{\"code\":5}}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\",\"cron\":\"* * * * *\"},\"tz\":\"UTC\","
		"\"commands\":[]}",
		"{\"owner\":\"o\",\"spec\":\"2030-01-01T00:00:00Z\",\"tz\":\"UTC\",\"commands\":[]}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":{}}",
		"{\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[]}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"Mars/Olympus\",\"commands\":[]}",
		"{\"owner\":\"o\",\"spec\":{\"cron\":\"61 * * * *\"},\"tz\":\"UTC\",\"commands\":[]}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[],"
		"\"created\":\"2030-01-01T00:00:00Z\",\"state\":\"done\",\"last_run\":\"not a time\"}",
		/* Not plain: escapes, a real, UTF-8, a big integer, white space. */
		"{\"owner\":\"o\\\"q\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[],"
		"\"next_run\":\"2030-01-01T00:00:00Z\"}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[{\"v\":0.5}],"
		"\"next_run\":\"2030-01-01T00:00:00Z\"}",
		"{\"owner\":\"caf\xc3\xa9\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[],"
		"\"next_run\":\"2030-01-01T00:00:00Z\",\"last_result\":{\"code\":\"FIRED\",\"dispatched\":"
		"12345678901234567890}}",
		"{\"owner\":\"o\", \"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[]}",
		/* Not JSON at all, or cut short. */
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[01]}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[],}",
		"{\"owner\":\"o\",\"spec\":{\"at\":\"2030-01-01T00:00:00Z\"},\"tz\":\"UTC\",\"commands\":[]",
		"[\"owner\"]",
};

static void insert_job(sqlite3 *db, const char *id, const char *doc)
{
	sqlite3_stmt *st;
	CHECK(sqlite3_prepare_v2(db, "INSERT INTO jobs(id, module, doc) VALUES(?1, 't', ?2)", -1, &st, NULL) ==
			SQLITE_OK);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, doc, -1, SQLITE_TRANSIENT);
	CHECK(sqlite3_step(st) == SQLITE_DONE);
	sqlite3_finalize(st);
}

/* The two restored jobs agree; *same counts those that do. */
static void check_same_job(const char *a_id, const char *b_id, size_t *same)
{
	struct job *a = sched__find(CTX.sched, a_id), *b = sched__find(CTX.sched, b_id);
	if(!CHECK((a == NULL) == (b == NULL))) {
		printf("     %s %s, %s %s\n", a_id, a ? "restored" : "not restored", b_id,
				b ? "restored" : "not");
		return;
	}
	if(!a)
		return;
	int failed = check_failed;
	CHECK_STR_EQ(a->owner, b->owner);
	CHECK_STR_EQ(a->tz, b->tz);
	CHECK_STR_EQ(a->spec, b->spec);
	CHECK_STR_EQ(a->commands, b->commands);
	CHECK_STR_EQ(a->name ? a->name : "(none)", b->name ? b->name : "(none)");
	CHECK_INT_EQ(a->kind, b->kind);
	CHECK(!memcmp(&a->cron, &b->cron, sizeof a->cron));
	CHECK_INT_EQ(a->due, b->due);
	CHECK_INT_EQ(a->created, b->created);
	CHECK_INT_EQ(a->last_run, b->last_run);
	CHECK_STR_EQ(a->last.code, b->last.code);
	CHECK_INT_EQ(a->last.at, b->last.at);
	CHECK_INT_EQ(a->last.due, b->last.due);
	CHECK_INT_EQ(a->last.dispatched, b->last.dispatched);
	CHECK_INT_EQ(a->last.skipped, b->last.skipped);
	CHECK_INT_EQ(a->state, b->state);
	bool ok = check_failed == failed;
	if(!ok)
		printf("     %s and %s differ\n", a_id, b_id);
	*same += ok;
}

static void test_stored_jobs_read_without_a_tree(void)
{
	char dir[] = "/tmp/oh-sched-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	/* The host's own documents: scheduled, cron, fired, done, skipped. */
	setup(dir);
	fake_now = (double)at("2030-01-01T00:00:00Z");
	add(NULL, "2030-01-01T00:00:05Z", "d1");
	add(NULL, "2030-01-01T00:00:05Z", "busy");
	add("*/5 * * * *", NULL, "d2");
	add(NULL, "2030-06-01T00:00:00Z", "d3");
	fake_now = (double)at("2030-01-01T00:00:05Z");
	sched__poll(H.scheduler);
	scheduler_flush(H.scheduler);
	teardown();

	char path[256];
	snprintf(path, sizeof path, "%s/state.db", dir);
	sqlite3 *db = NULL;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	json_t *docs = json_array();
	sqlite3_stmt *st;
	CHECK(sqlite3_prepare_v2(db, "SELECT doc FROM jobs", -1, &st, NULL) == SQLITE_OK);
	while(sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(docs, json_string((const char *)sqlite3_column_text(st, 0)));
	sqlite3_finalize(st);
	CHECK_INT_EQ(json_array_size(docs), 4);
	for(size_t i = 0; i < sizeof stored_docs / sizeof stored_docs[0]; i++)
		json_array_append_new(docs, json_string(stored_docs[i]));
	CHECK(sqlite3_exec(db, "DELETE FROM jobs", NULL, NULL, NULL) == SQLITE_OK);
	size_t i, host_docs = 4, not_plain = 8;
	json_t *v;
	json_array_foreach(docs, i, v)
	{
		char id[16];
		snprintf(id, sizeof id, "p%zu", i);
		insert_job(db, id, json_string_value(v));
		/* jansson's reading of the same document, indented. */
		json_t *tree = json_loads(json_string_value(v), 0, NULL);
		char *indented = tree ? json_dumps(tree, JSON_INDENT(1)) : strdup(json_string_value(v));
		snprintf(id, sizeof id, "j%zu", i);
		insert_job(db, id, indented);
		free(indented);
		json_decref(tree);
	}
	sqlite3_close(db);

	setup(dir);
	size_t same = 0, n = json_array_size(docs);
	for(i = 0; i < n; i++) {
		char a[16], b[16];
		snprintf(a, sizeof a, "p%zu", i);
		snprintf(b, sizeof b, "j%zu", i);
		check_same_job(a, b, &same);
	}
	/* Readable, the same both ways: the host's four, five plain ones
	 * above and three that are not (the big integer is not JSON for
	 * jansson either). */
	CHECK_INT_EQ(same, host_docs + 5 + 3);
	CHECK_INT_EQ(scheduler_count(H.scheduler), 2 * same);
	/* The host's documents and the plain ones above were read without
	 * jansson; the others and the indented copies with it. */
	CHECK_INT_EQ(H.scheduler->loaded_plain, n - not_plain);
	teardown();
	json_decref(docs);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Another process holding the database's write lock, as a backup or the
 * sqlite3 shell would: a second connection does the same. */
static sqlite3 *lock_db(const char *dir)
{
	char path[256];
	snprintf(path, sizeof path, "%s/state.db", dir);
	sqlite3 *db = NULL;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	return db;
}

static void unlock_db(sqlite3 *db)
{
	CHECK(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

static void test_unstored_run_is_not_dispatched(void)
{
	char dir[] = "/tmp/oh-sched-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setup(dir);
	fake_now = (double)at("2030-01-01T00:00:10Z");
	struct job *j = add("*/5 * * * *", NULL, "d1");
	char id[40];
	snprintf(id, sizeof id, "%s", j->id);

	/* Due while the database is locked: its advance cannot be stored, so
	 * the run must not leave (a crash after it would repeat it), and the
	 * loop must not stall waiting for the lock. */
	sqlite3 *other = lock_db(dir);
	fake_now = (double)at("2030-01-01T00:05:00Z");
	double t0 = mono_s();
	sched__poll(H.scheduler);
	double took = mono_s() - t0;
	CHECK_INT_EQ(n_calls, 0);
	if(!CHECK(took < 0.5))
		printf("     a poll with the database locked took %.3f s\n", took);
	CHECK_INT_EQ(j->due, at("2030-01-01T00:05:00Z"));
	CHECK_INT_EQ(j->last_run, 0);
	CHECK_STR_EQ(j->last.code, "");
	CHECK_INT_EQ(j->state, JOB_SCHEDULED);
	CHECK_INT_EQ(scheduler_count(H.scheduler), 1);

	/* Released, but the retry waits its second: nothing yet. */
	unlock_db(other);
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 0);

	/* Then the run goes, once, 20 s late (inside the grace), with its next
	 * run stored before the dispatch. */
	usleep(1100 * 1000);
	fake_now = (double)at("2030-01-01T00:05:20Z");
	stored_next_at_dispatch[0] = '\0';
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);
	CHECK_STR_EQ(stored_next_at_dispatch, "2030-01-01T00:10:00Z");
	CHECK_STR_EQ(j->last.code, "FIRED");
	CHECK_INT_EQ(j->last.due, at("2030-01-01T00:05:00Z"));
	CHECK_INT_EQ(j->due, at("2030-01-01T00:10:00Z"));
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);
	teardown();

	/* Nothing repeats after a restart. */
	setup(dir);
	fake_now = (double)at("2030-01-01T00:05:30Z");
	j = sched__find(CTX.sched, id);
	if(CHECK(j != NULL))
		CHECK_INT_EQ(j->due, at("2030-01-01T00:10:00Z"));
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 0);

	/* A job cannot be created while the database is locked (not stored,
	 * so not scheduled), and can again afterwards. */
	other = lock_db(dir);
	char err[256] = "", nid[40];
	json_t *params = json_pack("{s:s, s:[{s:s, s:s}]}", "cron", "* * * * *", "commands", "device_id",
			"d2", "action", "start");
	t0 = mono_s();
	CHECK_INT_EQ(oh_job_add(&CTX, "alice", params, nid, err, sizeof err), OH_ERR_IO);
	CHECK(mono_s() - t0 < 0.5);
	CHECK_INT_EQ(scheduler_count(H.scheduler), 1);
	unlock_db(other);
	CHECK_INT_EQ(oh_job_add(&CTX, "alice", params, nid, err, sizeof err), OH_OK);
	CHECK_INT_EQ(scheduler_count(H.scheduler), 2);
	json_decref(params);
	teardown();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* Jobs due in the same second, more than one store batch of them, run in
 * one poll, and every one's commands are executed before any run is
 * reported: no FIRED (nor the DISPATCHED acks a plugin publishes) goes out
 * between two commands of the second. */
static void test_same_second_runs_in_one_turn(void)
{
	char dir[] = "/tmp/oh-sched-unit-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setup(dir);
	fake_now = (double)at("2030-01-01T00:00:10Z");
	n_turn_ids = 0;
	for(int i = 0; i < 40; i++) {
		char dev[16];
		snprintf(dev, sizeof dev, "d%02d", i);
		struct job *j = add(NULL, "2030-01-01T00:01:00Z", dev);
		if(!CHECK(j != NULL))
			break;
		snprintf(turn_ids[n_turn_ids++], sizeof turn_ids[0], "%s", j->id);
	}
	CHECK(n_turn_ids > SCHED_BATCH_MAX);
	fired_before_exec = 0;
	fake_now = (double)at("2030-01-01T00:01:00Z");
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, n_turn_ids);
	CHECK_INT_EQ(fired_before_exec, 0);
	for(int i = 0; i < n_turn_ids; i++) {
		struct job *j = sched__find(CTX.sched, turn_ids[i]);
		if(CHECK(j != NULL))
			CHECK_STR_EQ(j->last.code, "FIRED");
	}
	n_turn_ids = 0;
	teardown();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* The commands of jobs due within SCHED_PREPARE_S are parsed ahead by a
 * loop timer; the run uses (and drops) them, and so does a job that goes
 * before its run. */
static void test_commands_are_parsed_ahead(void)
{
	setup(NULL);
	fake_now = (double)at("2030-01-01T00:00:59Z") + 0.5;
	struct job *a = add(NULL, "2030-01-01T00:01:00Z", "d1");
	struct job *b = add(NULL, "2030-01-01T00:01:00Z", "d2");
	struct job *later = add(NULL, "2030-01-01T00:01:05Z", "d3");
	if(!CHECK(a && b && later)) {
		teardown();
		return;
	}
	event_base_loop(H.base, EVLOOP_NONBLOCK);
	CHECK(a->cmds_ahead != NULL && b->cmds_ahead != NULL);
	CHECK(later->cmds_ahead == NULL);
	CHECK_INT_EQ(H.scheduler->n_prepared, 2);
	char id[40];
	snprintf(id, sizeof id, "%s", b->id);
	CHECK_INT_EQ(oh_job_remove(&CTX, id, "alice"), OH_OK);
	CHECK_INT_EQ(H.scheduler->n_prepared, 1);
	fake_now = (double)at("2030-01-01T00:01:00Z");
	sched__poll(H.scheduler);
	CHECK_INT_EQ(n_calls, 1);
	CHECK_STR_EQ(calls[0].device, "d1");
	CHECK(a->cmds_ahead == NULL);
	CHECK_INT_EQ(H.scheduler->n_prepared, 0);
	teardown();
}

static void test_hundred_thousand_jobs(void)
{
	setup(NULL);
	fake_now = (double)at("2030-01-01T00:00:00Z");
	const int N = 100000;
	struct mallinfo2 before = mallinfo2();
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char when[32];
	for(int i = 0; i < N; i++) {
		time_t t = at("2030-01-01T00:00:00Z") + (time_t)((i * 7919L) % 86400);
		time_format_utc(t, when, sizeof when);
		char dev[32];
		snprintf(dev, sizeof dev, "rpi-%05d", i);
		struct job *j = add(i % 2 ? "0 6 * * MON-FRI" : NULL, when, dev);
		if(!j)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	struct mallinfo2 after = mallinfo2();
	CHECK_INT_EQ(scheduler_count(H.scheduler), N);
	double per_job = (double)(after.uordblks - before.uordblks) / N;
	printf("100000 jobs: %.0f bytes per job in memory, %.2f us per add\n", per_job,
			((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / N / 1e3);
	CHECK(per_job < 1024);
	/* Heap order holds: run the earliest few, in order. */
	fake_now = (double)at("2030-01-01T00:00:02Z");
	sched__poll(H.scheduler);
	CHECK(n_calls >= 1);
	CHECK(H.scheduler->heap[0]->due > at("2030-01-01T00:00:02Z"));
	/* A poll with nothing due is O(1). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for(int i = 0; i < 100000; i++)
		sched__poll(H.scheduler);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e5 / 1e3;
	printf("idle poll with 100000 jobs: %.3f us\n", us);
	CHECK(us < 50);
	teardown();
}

int main(void)
{
	test_catch_up_is_one_run_or_one_miss();
	test_clock_steps();
	test_one_off_finishes_and_is_purged();
	test_next_run_is_durable_before_dispatch();
	test_unstored_run_is_not_dispatched();
	test_stored_jobs_read_without_a_tree();
	test_same_second_runs_in_one_turn();
	test_commands_are_parsed_ahead();
	test_hundred_thousand_jobs();
	return check_summary();
}
