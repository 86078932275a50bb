/*
 * Log lines go to stderr unbuffered so a supervisor (systemd, docker, a test
 * harness) sees them at once.  JSON mode escapes the message with jansson so
 * any byte a device sent us stays a valid string.
 */
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_LVL_INFO;
static int json_mode;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level lvl)
{
	min_level = lvl;
}
bool log_enabled(enum log_level lvl)
{
	return lvl >= min_level;
}
void log_set_json(int on)
{
	json_mode = on;
}

int log_level_parse(const char *text, enum log_level *out)
{
	for(int i = 0; i < 4; i++) {
		if(!strcmp(text, level_names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_vmsg(enum log_level lvl, const char *source, const char *fmt, va_list ap)
{
	if(lvl < min_level)
		return;
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[96];
	snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
			tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

	if(json_mode) {
		json_t *line = json_pack("{s:s, s:s, s:s, s:s}", "ts", when, "level", level_names[lvl],
				"source", source ? source : "host", "msg", msg);
		char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
		if(text)
			fprintf(stderr, "%s\n", text);
		free(text);
		json_decref(line);
	} else {
		fprintf(stderr, "%s %-5s [%s] %s\n", when, level_names[lvl], source ? source : "host", msg);
	}
}

void log_msg(enum log_level lvl, const char *source, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, source, fmt, ap);
	va_end(ap);
}

void log_early_error(const char *prog, const char *source, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if(json_mode) {
		log_vmsg(LOG_LVL_ERROR, source, fmt, ap);
	} else {
		fprintf(stderr, "%s: ", prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}
