/*
 * A whole host for the fuzz targets that need one (registry, command,
 * rest, job_store), built as main.c's host_start() builds it but without
 * sockets: an HTTP server that never listens (routes are mounted, and
 * called directly), and an MQTT link that is never started, whose
 * publishes fuzz_host.c takes as sent (and checks).  The NDI plugin runs
 * with mDNS off, the scheduler reads a fake clock, and max_payload_bytes
 * is 4096.
 *
 * Input lines drive it:
 *   topic<TAB>payload          an MQTT message from the broker; "!topic"
 *                              makes it retained; no TAB: empty payload
 *   METHOD /path<TAB>body      an HTTP request that passed http.c's checks
 *                              (path, Host, token, Content-Type); only
 *                              plugin routes (/api/{module}/...) are called
 */
#ifndef OH_FUZZ_HOST_H
#define OH_FUZZ_HOST_H

#include <stdbool.h>

#include "core.h"

struct store;

struct fuzz_host_opts {
	bool plugins;        /* load the configured plugins (NDI) */
	struct store *store; /* borrowed, kept open by the caller; NULL: none */
};

/* The scheduler's wall clock, seconds; starts at 2030-01-01T00:00:00Z. */
extern double fuzz_host_now;

/* Builds the host in *h (zeroed first); aborts when that fails, since
 * every input would then test nothing. */
void fuzz_host_start(struct host *h, const struct fuzz_host_opts *o);
/* Tears it down as host_stop() does, leaving o->store open. */
void fuzz_host_stop(struct host *h);

/* One line as above; returns the HTTP status for a request, 0 otherwise. */
unsigned fuzz_host_line(struct host *h, const char *line);

/* Moves the fake clock to each due job in turn and runs the scheduler's
 * poll, at most `rounds` times. */
void fuzz_host_run_jobs(struct host *h, int rounds);

#endif
