/*
 * The standard process_* metrics (CPU seconds, resident and virtual memory,
 * open and maximum descriptors, start time), named as every Prometheus
 * client library names them so that stock dashboards and alerts work.
 *
 * Read from the kernel when /metrics is rendered, never counted.  Only
 * /proc/self is read: the systemd unit sets ProcSubset=pid, which hides
 * /proc/stat and its boot time, so the start time is the process's start
 * in ticks since boot (/proc/self/stat) placed on the wall clock through
 * CLOCK_BOOTTIME.  A value the kernel will not give is left out rather
 * than shown as a misleading 0.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Field 22 of /proc/self/stat (starttime, in clock ticks since boot) as
 * seconds since the epoch; a negative value when unknown. */
static double start_time(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if(f)
		fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: count
	 * fields from the last ')'. */
	char *p = strrchr(buf, ')');
	unsigned long long ticks = 0;
	if(!p ||
			sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
					&ticks) != 1)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	struct timespec now, boot;
	if(hz <= 0 || clock_gettime(CLOCK_REALTIME, &now) || clock_gettime(CLOCK_BOOTTIME, &boot))
		return -1;
	double booted = (double)(now.tv_sec - boot.tv_sec) + (now.tv_nsec - boot.tv_nsec) / 1e9;
	return booted + (double)ticks / (double)hz;
}

/* Descriptors open now, without the one that reads the directory. */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if(!d)
		return -1;
	long n = 0;
	int own = dirfd(d);
	for(struct dirent *e; (e = readdir(d));) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if(e->d_name[0] != '.' && !*end && fd != own)
			n++;
	}
	closedir(d);
	return n;
}

/* Registered at the first value, so that a family the kernel never fed
 * is absent instead of reading 0. */
static void put(const char *name, enum metric_type type, const char *help, double v)
{
	metrics_set(metrics_family(name, type, help, NULL), NULL, v);
}

void metrics_process_update(void)
{
	static double started = -2;
	if(started == -2)
		started = start_time();
	struct rusage ru;
	if(!getrusage(RUSAGE_SELF, &ru))
		put("process_cpu_seconds_total", METRIC_COUNTER,
				"Total user and system CPU time spent in seconds.",
				(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
						(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	unsigned long pages_total = 0, pages_rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if(f && fscanf(f, "%lu %lu", &pages_total, &pages_rss) == 2) {
		double page = (double)sysconf(_SC_PAGESIZE);
		put("process_virtual_memory_bytes", METRIC_GAUGE, "Virtual memory size in bytes.",
				(double)pages_total * page);
		put("process_resident_memory_bytes", METRIC_GAUGE, "Resident memory size in bytes.",
				(double)pages_rss * page);
	}
	if(f)
		fclose(f);
	long n = open_fds();
	if(n >= 0)
		put("process_open_fds", METRIC_GAUGE, "Number of open file descriptors.", (double)n);
	struct rlimit rl;
	if(!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY)
		put("process_max_fds", METRIC_GAUGE, "Maximum number of open file descriptors.",
				(double)rl.rlim_cur);
	if(started >= 0)
		put("process_start_time_seconds", METRIC_GAUGE,
				"Start time of the process since unix epoch in seconds.", started);
}
