/*
 * The durable scheduler's internal interface, shared by scheduler.c (jobs,
 * the timer heap, persistence, firing, catch-up) and scheduler_api.c
 * (validation, the `schedule`/`unschedule`/`jobs` actions, REST routes).
 * Plugins see only the "scheduler" section of include/oh/host.h.
 *
 * Time model: a job's due time is a wall-clock instant in whole seconds,
 * because that is what is persisted and what a user means.  All jobs sit in
 * one binary min-heap ordered by due time; one monotonic libevent timer is
 * armed for the earliest.  When it fires the wall clock is read again, and
 * a 1 s clock watch re-arms the timer when the wall clock is stepped.
 */
#ifndef OH_SCHEDULER_H
#define OH_SCHEDULER_H

#include <stdint.h>

#include "core.h"
#include "cron.h"

/* A finished one-off job stays listed this long before it is purged. */
#define SCHED_DONE_KEEP_S 3600
/* Most jobs run in one loop turn; the rest follow on the next turn so a
 * burst of due jobs cannot starve MQTT and HTTP. */
#define SCHED_TURN_MAX 256
/* Jobs stored in a turn's first transaction, and in its first two.
 * Small, because every job of a batch is stored before the first of them
 * is dispatched: the first few commands leave after a tiny commit, and the
 * broker passes them on while the rest are stored. */
#define SCHED_FIRST_BATCH 4
#define SCHED_BATCH_MAX 32
/* The commands of jobs due within SCHED_PREPARE_S are parsed ahead (at
 * most SCHED_PREPARE_MAX jobs at a time), so that a due turn only stores
 * and sends.  Nothing is stored ahead: that would open a window in which a
 * killed host skips a run. */
#define SCHED_PREPARE_S 1.0
#define SCHED_PREPARE_MAX 1024
/* Outcomes (last_result) are stored this long after a run, many per
 * transaction: they are a report, unlike next_run, which is stored before
 * the run so a crash can never repeat it. */
#define SCHED_OUTCOME_FLUSH_MS 200
#define SCHED_MAX_COMMANDS 100
#define SCHED_NAME_MAX 200
#define SCHED_ID_LEN 32

enum job_kind {
	JOB_AT,
	JOB_CRON
};
enum job_state {
	JOB_SCHEDULED,
	JOB_DONE
};

/* What a plugin registered (oh_ctx.sched). */
struct sched_plugin {
	struct scheduler *s;
	oh_ctx *ctx;
	oh_job_exec_fn exec;
	void *ud;
	int (*validate)(oh_ctx *ctx, const json_t *command, char *err, size_t errlen);
	size_t n_jobs;
};

/* The outcome of the last run (or miss).  code[0] == '\0': none yet. */
struct job_result {
	int64_t at;  /* when it was recorded */
	int64_t due; /* the run it is about */
	uint32_t dispatched, skipped;
	char code[12]; /* FIRED, MISSED, STARTED */
};

/*
 * One job in one allocation: the fixed part, then the immutable strings
 * (owner, name, tz, spec text, commands as compact JSON) in text[].  The
 * commands are parsed only when the job fires or is listed, which keeps a
 * job at a few hundred bytes instead of a tree of jansson values.
 */
struct job {
	struct sched_plugin *sp;
	int64_t due; /* next run; for a done job, when it is purged */
	int64_t created;
	int64_t last_run; /* 0: never */
	struct job_result last;
	struct cron_expr cron; /* JOB_CRON only */
	uint32_t heap_idx;     /* UINT32_MAX: not in the heap */
	uint8_t kind, state;
	bool firing, removed;
	bool outcome_dirty; /* last_result not yet stored */
	json_t *cmds_ahead; /* the commands parsed ahead of a run (owned), or NULL */
	char id[SCHED_ID_LEN + 1];
	const char *owner, *name /* NULL when unnamed */, *tz, *spec, *commands;
	char text[];
};

struct scheduler {
	struct host *h;
	struct strmap *jobs;   /* id -> struct job */
	struct strmap *owners; /* owner -> its number of jobs (>= 1), as a pointer */
	struct {
		double retry_mono; /* after a store failure nothing runs before this; 0: none */
		bool failing;      /* said so in the log; say when it recovers */
	} backoff;
	struct job **heap;
	uint32_t n, cap;
	struct event *timer;             /* the earliest due job */
	struct event *watch;             /* 1 s clock-step watch */
	struct event *flush;             /* stores the outcomes of recent runs */
	struct event *prep;              /* parses the commands of jobs due soon */
	size_t n_prepared;               /* jobs with cmds_ahead */
	char (*dirty)[SCHED_ID_LEN + 1]; /* ids of jobs with outcome_dirty */
	size_t n_dirty, cap_dirty;
	double clock_offset; /* wall - mono at the last watch */
	bool loaded;
	size_t loaded_plain; /* jobs the last load read without jansson (json_text.h) */
	double (*now)(void); /* the wall clock; tests may replace it */
};

int scheduler_init(struct host *h);
/* Restores every persisted job whose module registered an executor, and
 * arms the timer; past-due runs are then run or recorded as missed on the
 * first loop turn.  Call after the plugins and the leases are loaded. */
int scheduler_load(struct scheduler *s);
/* Stores pending outcomes (also done by scheduler_free). */
void scheduler_flush(struct scheduler *s);
void scheduler_free(struct scheduler *s);
/* Drops the plugin's jobs from memory (not from the store) and its
 * registration; called when the plugin is torn down. */
void scheduler_forget_plugin(struct scheduler *s, oh_ctx *ctx);
size_t scheduler_count(const struct scheduler *s);

/* ---- shared between scheduler.c and scheduler_api.c ------------------------ */

/* A validated request to create a job (strings borrowed). */
struct job_req {
	const char *owner, *name, *tz, *spec;
	enum job_kind kind;
	struct cron_expr cron;
	int64_t due;
	const json_t *commands; /* validated array of {device_id, action, params} */
};

/* Creates, persists and arms a job; *out is the new job.  OH_ERR_IO when
 * the store refused (nothing is kept), OH_ERR_NOMEM. */
int sched__add(struct sched_plugin *sp, const struct job_req *r, struct job **out);
/* Removes from memory and store.  OH_ERR_IO leaves the job in place. */
int sched__remove(struct job *j);
struct job *sched__find(struct sched_plugin *sp, const char *id);
/* The job as the API shows and the store keeps it; returned. */
json_t *sched__job_json(const struct job *j);
/* All jobs of sp (owner NULL: everyone's) sorted by next run; returned. */
json_t *sched__list(struct sched_plugin *sp, const char *owner);
/* Restores sp's stored jobs when it registers after scheduler_load(). */
int sched__load_plugin(struct sched_plugin *sp);
/* What the timer does: runs the jobs due by s->now() (up to a turn) and
 * re-arms.  Exposed for tests that drive a fake clock. */
void sched__poll(struct scheduler *s);
/* Mounts the REST routes of a registered plugin. */
int sched__routes(struct sched_plugin *sp);

#endif
