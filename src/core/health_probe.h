/*
 * orchestrator-host --probe URL: a health check that needs nothing but the
 * binary, for a container's HEALTHCHECK (the image has no curl) or a
 * supervisor's watchdog script.
 */
#ifndef OH_HEALTH_PROBE_H
#define OH_HEALTH_PROBE_H

/* Exit codes of --probe.  Docker reads 0 as healthy and 1 as unhealthy and
 * reserves 2, which is therefore only a usage error (a URL this probe
 * cannot ask), never a verdict on the host. */
enum {
	PROBE_HEALTHY = 0,   /* /healthz answered 200 with "mqtt": "connected" */
	PROBE_UNHEALTHY = 1, /* anything else: refused, timed out, 503, bad body */
	PROBE_USAGE = 2
};

/* GETs url (borrowed; "http://HOST[:PORT]/PATH", HOST a name, an IPv4
 * address or a bracketed IPv6 one) within timeout_s seconds in all, says
 * in one line on stdout (healthy) or stderr (otherwise) what it found, and
 * returns one of the codes above. */
int health_probe(const char *url, double timeout_s);

#endif
