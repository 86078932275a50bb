/*
 * The state directory belongs to one host at a time.
 *
 * Two hosts on one state_dir would each load the same leases and jobs, fire
 * every job twice and overwrite each other's writes to state.db.  The first
 * host therefore holds an advisory lock on {state_dir}/host.lock, with its
 * PID written inside for people; a second one is refused, naming the file
 * and the PID holding it.  The kernel drops the lock when the process dies,
 * however it dies, so a crash never leaves a stale lock behind.
 */
#ifndef OH_STATE_LOCK_H
#define OH_STATE_LOCK_H

#include <stddef.h>

struct state_lock;

/* Creates dir and its parents (mode 0750) when missing; -1 with err naming
 * the directory otherwise. */
int state_dir_create(const char *dir, char *err, size_t errlen);

/*
 * Creates dir when missing, then locks {dir}/host.lock and writes our PID
 * into it.  Returned: release with state_lock_release(), after everything
 * that writes to the directory is closed.  NULL with err set (one line) when
 * another process holds the lock or the file cannot be opened.
 */
struct state_lock *state_lock_take(const char *dir, char *err, size_t errlen);
/* Unlocks and frees; NULL is ignored. */
void state_lock_release(struct state_lock *l);

#endif
