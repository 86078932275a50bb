/*
 * Counters, gauges and histograms for GET /metrics (Prometheus text format).
 *
 * One process-wide registry, used from the loop thread only.  Every family
 * has a fixed set of label names and at most METRICS_MAX_SERIES label-value
 * combinations; later combinations are counted under the value "other", so
 * a misbehaving client or plugin cannot grow the registry without bound.
 * Families and series are never freed: they stay reachable from the
 * registry until exit, and a counter keeps its value when a plugin unloads.
 */
#ifndef OH_METRICS_H
#define OH_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct host;
struct metric;

#define METRICS_MAX_LABELS 3
#define METRICS_MAX_SERIES 64

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_HISTOGRAM
};

/* Finds or creates the family `name` (borrowed strings, copied).  labels:
 * comma-separated label names ("method,route,code"), or NULL for none.
 * Returns NULL on a bad name, out of memory, or when `name` exists with
 * another type or other labels (logged once). */
struct metric *metrics_family(const char *name, enum metric_type type, const char *help, const char *labels);
/* values: one string per label name (borrowed); NULL when the family has none. */
void metrics_add(struct metric *m, const char *const *values, double n);
void metrics_set(struct metric *m, const char *const *values, double v);
/* Histograms: buckets 0.0005 s .. 10 s, plus +Inf. */
void metrics_observe(struct metric *m, const char *const *values, double v);

/* The exposition text of every family (returned; free()), or NULL. */
char *metrics_render(size_t *len);

/* Adds n to the label-less counter `name` registered by api_metrics_register()
 * (the scheduler's); a no-op for an unknown name. */
void metrics_count(const char *name, double n);

/* Counts one refusal in oh_limit_refusals_total{limit="max_devices"}; limit
 * (borrowed) is a name of config.h's limits table, others are ignored. */
void metrics_limit_refusal(const char *limit);
/* Registers oh_limit_refusals_total with 0 for every limit, so a rate()
 * over one has a start. */
void metrics_limits_register(void);

/* Core hooks.  A broker message received (out false) or published (out
 * true), counted by its kind (from metrics_topic_kind). */
void metrics_mqtt_message(bool out, const char *kind);
/* "registry", "command", ... for a topic under h's root: one of a few static
 * strings, so callers may compare the pointer (METRICS_KIND_EVENT is the
 * host's own {root}/orchestrator/{module}/evt, and see below). */
const char *metrics_topic_kind(const struct host *h, const char *topic);
extern const char METRICS_KIND_EVENT[];
/* "command" for {root}/device/{id}/{module}/cmd, a command to a device,
 * told by its pointer from the host's own {root}/orchestrator/{module}/cmd
 * (also "command", the same label). */
extern const char METRICS_KIND_DEVICE_COMMAND[];
/* An HTTP reply queued `seconds` after its request line arrived; route is
 * the pattern the path matched (whatever the method) or NULL (no route). */
void metrics_http_request(const char *method, const char *route, unsigned status, double seconds);
/* metrics_process.c: the process_* families, read from /proc/self now. */
void metrics_process_update(void);
/* A copy of s that lives until exit, one per distinct string (route
 * patterns, which a request may outlive); NULL on out-of-memory. */
const char *metrics_intern(const char *s);

#endif
