/*
 * Logging for the daemon and its plugins: one line per event on stderr,
 * human-readable by default or JSON for log shippers.
 */
#ifndef OH_LOG_H
#define OH_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LVL_DEBUG,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERROR
};

void log_set_level(enum log_level lvl);
/* Whether a line at lvl would be written (to skip work only a log needs). */
bool log_enabled(enum log_level lvl);
void log_set_json(int on);
int log_level_parse(const char *text, enum log_level *out);

/* `source` names who speaks ("mqtt", "registry", a plugin's module). */
void log_msg(enum log_level lvl, const char *source, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level lvl, const char *source, const char *fmt, va_list ap);

/* An error before logging is set up (the command line, the configuration):
 * in text mode "prog: message" alone, the one line scripts and people read;
 * in JSON mode a JSON line at level error like every other, so a log
 * shipper never meets plain text. */
void log_early_error(const char *prog, const char *source, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

#define log_debug(src, ...) log_msg(LOG_LVL_DEBUG, src, __VA_ARGS__)
#define log_info(src, ...) log_msg(LOG_LVL_INFO, src, __VA_ARGS__)
#define log_warn(src, ...) log_msg(LOG_LVL_WARN, src, __VA_ARGS__)
#define log_error(src, ...) log_msg(LOG_LVL_ERROR, src, __VA_ARGS__)

#endif
