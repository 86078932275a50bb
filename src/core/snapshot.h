/*
 * The registry snapshot, built from the registry, the leases and the
 * plugin table, published coalesced on {root}/orchestrator/registry and
 * handed to listeners.  See snapshot.c.
 */
#ifndef OH_SNAPSHOT_H
#define OH_SNAPSHOT_H

#include "core.h"

struct shared_buf;

/* After h->registry and h->leases exist: it registers for their changes. */
struct snapshot *snapshot_new(struct host *h);
/* Before h->registry and h->leases are freed. */
void snapshot_free(struct snapshot *s);
/* Something that appears in the snapshot changed (the loaded modules; the
 * registry and the leases tell through their change handlers).  Moves
 * host.generation and schedules a publish. */
void snapshot_mark_dirty(struct snapshot *s);
/* The current snapshot, rebuilt if anything changed; a new reference
 * (shared_buf_unref), NULL when out of memory. */
struct shared_buf *snapshot_get(struct snapshot *s);
/* GET /api/registry?since=SEQ: *out (a new reference) is the devices
 * changed and removed after snapshot SEQ, with the locks, the modules and
 * the current seq ({"devices", "removed", "locks", "modules", "ts", "seq",
 * "since", "delta": true}), or the whole snapshot (*whole) when removals
 * that old are forgotten or SEQ is newer than the current one (an earlier
 * run).  OH_ERR_NOMEM with *out NULL. */
int snapshot_delta(struct snapshot *s, uint64_t since, struct shared_buf **out, bool *whole);
/* The seq of the latest snapshot: what snapshot_get gives or a delta
 * brings to (it may be built only when asked for). */
uint64_t snapshot_seq(const struct snapshot *s);
/* Link callbacks: the broker acknowledged message mid; a new connection. */
void snapshot_published(struct snapshot *s, int mid);
void snapshot_on_connect(struct snapshot *s);
/* Publishes the final snapshot at once (shutdown). */
void snapshot_flush(struct snapshot *s);
/* fn (with ud) is called at each new seq, whether or not the broker is
 * there to receive it (the UI's event stream); it takes the snapshot
 * (snapshot_get) or a delta itself, so that none is built for nobody.  Up
 * to 8 listeners. */
void snapshot_on_publish(struct snapshot *s, void (*fn)(void *ud), void *ud);

#endif
