/*
 * GET /metrics: what the host keeps anyway (link state, registry and lease
 * counts, connections, uptime) copied into gauges just before the metrics
 * registry (metrics.c) renders.  Apart from metrics.c because it reads the
 * registry, the leases, the scheduler and the HTTP server, which all count
 * into metrics.c: the counters stay at the bottom, this route at the top.
 */
#include "core.h"

#include <stdlib.h>

#include "http.h"
#include "metrics.h"
#include "mqtt_link.h"
#include "scheduler.h"
#include "timeutil.h"

/* ---- GET /metrics --------------------------------------------------------- */

/* Copies what the host keeps anyway into the registry, just before rendering. */
static void update_host_values(struct host *h)
{
	static struct metric *up, *reconnects, *leases, *devices, *snaps, *snap_bytes, *gzip_slice, *bad,
			*uptime, *jobs, *info, *conns, *streams, *merges, *merge_secs, *behind, *acting, *held;
	if(!up) {
		up = metrics_family("oh_mqtt_connected", METRIC_GAUGE, "1 while the broker connection is up",
				NULL);
		reconnects = metrics_family("oh_mqtt_reconnects_total", METRIC_COUNTER,
				"Reconnection attempts to the broker", NULL);
		/* The link's queue has no cap of its own (mqtt_link.c): watch it. */
		held = metrics_family("oh_mqtt_held_messages", METRIC_GAUGE,
				"Messages read while many publishes waited for the broker, not yet handled",
				NULL);
		bad = metrics_family("oh_mqtt_bad_payloads_total", METRIC_COUNTER,
				"Registry messages refused as malformed", NULL);
		snaps = metrics_family("oh_snapshot_publishes_total", METRIC_COUNTER,
				"Registry snapshots published", NULL);
		snap_bytes = metrics_family("oh_snapshot_bytes_total", METRIC_COUNTER,
				"Bytes of registry snapshots published", NULL);
		gzip_slice = metrics_family("oh_http_gzip_slice_max_seconds", METRIC_GAUGE,
				"The most CPU time the loop spent on one compression slice", NULL);
		devices = metrics_family("oh_devices", METRIC_GAUGE, "Devices in the registry", NULL);
		leases = metrics_family("oh_leases_held", METRIC_GAUGE, "Reservations held", NULL);
		jobs = metrics_family("oh_scheduler_jobs", METRIC_GAUGE, "Jobs waiting to run", NULL);
		uptime = metrics_family("oh_uptime_seconds", METRIC_GAUGE, "Seconds since start", NULL);
		info = metrics_family("oh_build_info", METRIC_GAUGE, "Always 1; the version", "version");
		conns = metrics_family("oh_http_connections", METRIC_GAUGE,
				"Open HTTP connections (limits.max_http_connections)", NULL);
		streams = metrics_family("oh_sse_clients", METRIC_GAUGE,
				"Open event streams (limits.max_sse_clients)", NULL);
		merges = metrics_family("oh_registry_merges_total", METRIC_COUNTER,
				"Device meta and status messages merged into the registry", NULL);
		merge_secs = metrics_family("oh_registry_merge_seconds_total", METRIC_COUNTER,
				"Time the loop spent merging them", NULL);
		behind = metrics_family("oh_sse_behind_peak_bytes", METRIC_GAUGE,
				"The most an event stream has been behind since start, unsent plus held back"
				" (limits.max_sse_backlog_bytes)",
				NULL);
		acting = metrics_family("oh_ha_acting", METRIC_GAUGE,
				"1 while this host acts: a single host, or the leader of a pair (docs/ha.md)",
				NULL);
	}
	metrics_set(up, NULL, h->link && mqtt_link_connected(h->link));
	metrics_set(reconnects, NULL, h->link ? (double)mqtt_link_reconnects(h->link) : 0);
	metrics_set(held, NULL, h->link ? (double)mqtt_link_held(h->link) : 0);
	metrics_set(bad, NULL, (double)h->stats.bad_payloads);
	metrics_set(snaps, NULL, (double)h->stats.snapshots_published);
	metrics_set(snap_bytes, NULL, (double)h->stats.snapshot_bytes);
	metrics_set(gzip_slice, NULL, h->stats.gzip_slice_max_s);
	metrics_set(behind, NULL, (double)h->stats.sse_behind_peak);
	metrics_set(devices, NULL, h->registry ? (double)registry_size(h->registry) : 0);
	metrics_set(leases, NULL, h->leases ? (double)leases_count(h->leases) : 0);
	metrics_set(jobs, NULL, h->scheduler ? (double)h->scheduler->n : 0);
	metrics_set(uptime, NULL, (double)(long)(time_now_mono() - h->started_mono));
	metrics_set(conns, NULL, h->http ? (double)http_server_connections(h->http) : 0);
	metrics_set(streams, NULL, h->http ? (double)http_server_streams(h->http) : 0);
	metrics_set(acting, NULL, ha_acting(h));
	metrics_set(merges, NULL, (double)h->stats.registry_merges);
	metrics_set(merge_secs, NULL, h->stats.registry_merge_seconds);
	const char *version = OH_VERSION;
	metrics_set(info, &version, 1);
	metrics_process_update();
}

static void get_metrics(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	update_host_values(ud);
	size_t len = 0;
	char *text = metrics_render(&len);
	if(!text) {
		oh_reply_error(req, 500, "INTERNAL", "out of memory");
		return;
	}
	http_reply_copy(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

int api_metrics_register(struct host *h)
{
	/* Counted elsewhere; registered here so they read 0 before the first event. */
	metrics_family("oh_scheduler_jobs_scheduled_total", METRIC_COUNTER, "Jobs added to the scheduler",
			NULL);
	metrics_family("oh_scheduler_jobs_fired_total", METRIC_COUNTER, "Job runs started", NULL);
	metrics_family("oh_scheduler_jobs_missed_total", METRIC_COUNTER,
			"Job runs missed (later than misfire_grace_s)", NULL);
	metrics_family("oh_http_gzip_compressions_total", METRIC_COUNTER,
			"gzip copies made of shared HTTP bodies (one per snapshot or device list)", NULL);
	metrics_family("oh_http_gzip_input_bytes_total", METRIC_COUNTER,
			"Bytes of shared HTTP bodies compressed", NULL);
	metrics_family("oh_http_gzip_output_bytes_total", METRIC_COUNTER, "Bytes of their gzip copies", NULL);
	metrics_family("oh_http_gzip_seconds_total", METRIC_COUNTER,
			"CPU time the loop spent compressing, in slices", NULL);
	metrics_family("oh_http_not_modified_total", METRIC_COUNTER, "304 answers to If-None-Match", NULL);
	metrics_family("oh_mqtt_command_parses_total", METRIC_COUNTER,
			"Command envelopes parsed and validated (oh_command_parse): one per MQTT command,"
			" however many look at it",
			NULL);
	metrics_limits_register();
	return http_route_add(h->http, NULL, "GET", "/metrics", get_metrics, h,
			"{\"summary\": \"Counters, gauges and histograms in Prometheus text format\","
			" \"responses\": {\"200\": {\"description\": \"text/plain; version=0.0.4\","
			" \"content\": {\"text/plain\": {\"schema\": {\"type\": \"string\"}}}}}}");
}
