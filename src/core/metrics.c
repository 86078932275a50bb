/*
 * The metrics registry; GET /metrics is api_metrics.c.
 *
 * Families are kept in registration order in one list and series in a short
 * list per family; both are small by construction (fixed label sets, a cap
 * on series), so lookups are linear scans with strcmp, which is cheaper
 * than hashing at these sizes.  Values that the host already keeps (leases,
 * snapshots, reconnects) are not counted twice: api_metrics.c copies them
 * into gauges and counters when /metrics is rendered.  This file calls
 * nothing of the core but the plugin context (plugin_ctx.c), so every
 * other file may count into it.  Plugins count through
 * oh_metric_count() and oh_metric_observe(), under oh_{module}_.
 */
#include "metrics.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"
#include "topics.h"

static const double bucket_le[] = {
		0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof bucket_le / sizeof bucket_le[0])

struct series {
	struct series *next;
	char *values[METRICS_MAX_LABELS];
	double value;                     /* counter, gauge; histogram: sum */
	unsigned long count;              /* histogram */
	unsigned long buckets[N_BUCKETS]; /* histogram, not cumulative */
};

struct metric {
	struct metric *next;
	char *name;
	char *help;
	enum metric_type type;
	int n_labels;
	char *labels[METRICS_MAX_LABELS];
	struct series *series, **tail;
	size_t n_series;
	struct series *other; /* the overflow series */
};

static struct {
	struct metric *head, **tail;
	struct interned {
		struct interned *next;
		char s[];
	} * strings;
} reg;

static bool name_valid(const char *s)
{
	if(!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for(; *s; s++) {
		if(!isalnum((unsigned char)*s) && *s != '_')
			return false;
	}
	return true;
}

static struct metric *family_find(const char *name)
{
	for(struct metric *m = reg.head; m; m = m->next) {
		if(!strcmp(m->name, name))
			return m;
	}
	return NULL;
}

static void family_free(struct metric *m)
{
	free(m->name);
	free(m->help);
	for(int i = 0; i < m->n_labels; i++)
		free(m->labels[i]);
	free(m);
}

struct metric *metrics_family(const char *name, enum metric_type type, const char *help, const char *labels)
{
	char buf[METRICS_MAX_LABELS * 64];
	if(!name_valid(name))
		return NULL;
	struct metric *m = family_find(name);
	if(m) {
		/* Same type and labels: the caller just wants the handle. */
		snprintf(buf, sizeof buf, "%s", labels ? labels : "");
		char have[sizeof buf] = "";
		for(int i = 0; i < m->n_labels; i++)
			snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? "," : "",
					m->labels[i]);
		if(m->type == type && !strcmp(have, buf))
			return m;
		return NULL;
	}
	m = calloc(1, sizeof *m);
	if(!m)
		return NULL;
	m->name = strdup(name);
	m->help = strdup(help ? help : "");
	m->type = type;
	m->tail = &m->series;
	if(!m->name || !m->help)
		goto fail;
	if(labels && *labels) {
		snprintf(buf, sizeof buf, "%s", labels);
		char *save = NULL;
		for(char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if(m->n_labels == METRICS_MAX_LABELS || !name_valid(t) || !strcmp(t, "le"))
				goto fail;
			m->labels[m->n_labels] = strdup(t);
			if(!m->labels[m->n_labels++])
				goto fail;
		}
	}
	if(!reg.tail)
		reg.tail = &reg.head;
	*reg.tail = m;
	reg.tail = &m->next;
	return m;

fail:
	family_free(m);
	return NULL;
}

static struct series *series_new(struct metric *m, const char *const *values)
{
	struct series *s = calloc(1, sizeof *s);
	if(!s)
		return NULL;
	for(int i = 0; i < m->n_labels; i++) {
		s->values[i] = strdup(values && values[i] ? values[i] : "");
		if(!s->values[i]) {
			for(int j = 0; j < i; j++)
				free(s->values[j]);
			free(s);
			return NULL;
		}
	}
	*m->tail = s;
	m->tail = &s->next;
	m->n_series++;
	return s;
}

static struct series *series_get(struct metric *m, const char *const *values)
{
	for(struct series *s = m->series; s; s = s->next) {
		int i = 0;
		while(i < m->n_labels && !strcmp(s->values[i], values && values[i] ? values[i] : ""))
			i++;
		if(i == m->n_labels)
			return s;
	}
	if(m->n_series < METRICS_MAX_SERIES)
		return series_new(m, values);
	/* Over the cap: one shared series with every label "other". */
	if(!m->other) {
		const char *other[METRICS_MAX_LABELS] = {"other", "other", "other"};
		m->other = series_new(m, other);
	}
	return m->other;
}

void metrics_add(struct metric *m, const char *const *values, double n)
{
	struct series *s = m ? series_get(m, values) : NULL;
	if(s)
		s->value += n;
}

void metrics_set(struct metric *m, const char *const *values, double v)
{
	struct series *s = m ? series_get(m, values) : NULL;
	if(s)
		s->value = v;
}

void metrics_observe(struct metric *m, const char *const *values, double v)
{
	struct series *s = m && m->type == METRIC_HISTOGRAM ? series_get(m, values) : NULL;
	if(!s)
		return;
	s->value += v;
	s->count++;
	for(size_t i = 0; i < N_BUCKETS; i++) {
		if(v <= bucket_le[i]) {
			s->buckets[i]++;
			break;
		}
	}
}

const char *metrics_intern(const char *s)
{
	for(struct interned *i = reg.strings; i; i = i->next) {
		if(!strcmp(i->s, s))
			return i->s;
	}
	size_t len = strlen(s);
	struct interned *i = malloc(sizeof *i + len + 1);
	if(!i)
		return NULL;
	memcpy(i->s, s, len + 1);
	i->next = reg.strings;
	reg.strings = i;
	return i->s;
}

/* ---- rendering ------------------------------------------------------------ */

/* Text escaped as the exposition format wants: backslash and newline, and
 * the double quote inside label values. */
static void out_escaped(struct strbuf *o, const char *v, bool quotes)
{
	for(; *v; v++) {
		if(*v == '\\' || (quotes && *v == '"')) {
			strbuf_putc(o, '\\');
			strbuf_putc(o, *v);
		} else if(*v == '\n') {
			strbuf_puts(o, "\\n");
		} else {
			strbuf_putc(o, *v);
		}
	}
}

/* A label value: \, " and newline escaped, as the format requires. */
static void out_label_value(struct strbuf *o, const char *v)
{
	out_escaped(o, v, true);
}

/* {a="x",b="y"[,le="0.5"]}, or nothing when there are no labels. */
static void out_labels(struct strbuf *o, const struct metric *m, const struct series *s, const char *le)
{
	if(!m->n_labels && !le)
		return;
	strbuf_printf(o, "{");
	for(int i = 0; i < m->n_labels; i++) {
		strbuf_printf(o, "%s%s=\"", i ? "," : "", m->labels[i]);
		out_label_value(o, s->values[i]);
		strbuf_printf(o, "\"");
	}
	if(le)
		strbuf_printf(o, "%sle=\"%s\"", m->n_labels ? "," : "", le);
	strbuf_printf(o, "}");
}

/* HELP text: only \ and newline are escaped there. */
static void out_help(struct strbuf *o, const char *help)
{
	out_escaped(o, help, false);
}

static void render_family(struct strbuf *o, const struct metric *m)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	strbuf_printf(o, "# HELP %s ", m->name);
	out_help(o, m->help);
	strbuf_printf(o, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
	if(!m->series && !m->n_labels && m->type != METRIC_HISTOGRAM) {
		/* A family without labels exists from registration: show its 0. */
		strbuf_printf(o, "%s 0\n", m->name);
		return;
	}
	for(const struct series *s = m->series; s; s = s->next) {
		if(m->type != METRIC_HISTOGRAM) {
			strbuf_printf(o, "%s", m->name);
			out_labels(o, m, s, NULL);
			strbuf_printf(o, " %.17g\n", s->value);
			continue;
		}
		unsigned long cum = 0;
		for(size_t i = 0; i < N_BUCKETS; i++) {
			char le[32];
			snprintf(le, sizeof le, "%g", bucket_le[i]);
			cum += s->buckets[i];
			strbuf_printf(o, "%s_bucket", m->name);
			out_labels(o, m, s, le);
			strbuf_printf(o, " %lu\n", cum);
		}
		strbuf_printf(o, "%s_bucket", m->name);
		out_labels(o, m, s, "+Inf");
		strbuf_printf(o, " %lu\n%s_sum", s->count, m->name);
		out_labels(o, m, s, NULL);
		strbuf_printf(o, " %.17g\n%s_count", s->value, m->name);
		out_labels(o, m, s, NULL);
		strbuf_printf(o, " %lu\n", s->count);
	}
}

char *metrics_render(size_t *len)
{
	struct strbuf o = {0};
	for(const struct metric *m = reg.head; m; m = m->next)
		render_family(&o, m);
	*len = o.len;
	return strbuf_take(&o);
}

/* ---- core hooks ----------------------------------------------------------- */

void metrics_count(const char *name, double n)
{
	struct metric *m = family_find(name);
	if(m && !m->n_labels && m->type == METRIC_COUNTER)
		metrics_add(m, NULL, n);
}

const char METRICS_KIND_EVENT[] = "event";
const char METRICS_KIND_DEVICE_COMMAND[] = "command";

const char *metrics_topic_kind(const struct host *h, const char *topic)
{
	struct topic_parts t;
	enum topic_place place = topic_parse(h->cfg.topic_root ? h->cfg.topic_root : "", topic, &t);
	if(t.error)
		return "other";
	if(place == TOPIC_DEVICE && !t.module.p) /* device/{id}/meta|status */
		return topic_level_is(t.leaf, "meta") || topic_level_is(t.leaf, "status") ? "registry"
											  : "other";
	if(place == TOPIC_DEVICE) { /* device/{id}/{module}/cmd|evt|status */
		if(topic_level_is(t.leaf, "cmd"))
			return METRICS_KIND_DEVICE_COMMAND;
		if(topic_level_is(t.leaf, "evt"))
			return "ack";
		if(topic_level_is(t.leaf, "status"))
			return "module_status";
		return "other";
	}
	if(place == TOPIC_ORCHESTRATOR) {
		if(topic_level_is(t.module, "registry") && !t.leaf.p)
			return "snapshot";
		if(topic_level_is(t.leaf, "cmd"))
			return "command";
		if(topic_level_is(t.leaf, "evt"))
			return METRICS_KIND_EVENT;
	}
	return "other";
}

void metrics_mqtt_message(bool out, const char *kind)
{
	static struct metric *in_m, *out_m;
	if(!in_m)
		in_m = metrics_family("oh_mqtt_messages_received_total", METRIC_COUNTER,
				"MQTT messages received, by the kind of topic", "kind");
	if(!out_m)
		out_m = metrics_family("oh_mqtt_messages_sent_total", METRIC_COUNTER,
				"MQTT messages published, by the kind of topic", "kind");
	metrics_add(out ? out_m : in_m, &kind, 1);
}

void metrics_http_request(const char *method, const char *route, unsigned status, double seconds)
{
	static struct metric *m, *duration;
	static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
	if(!m)
		m = metrics_family("oh_http_requests_total", METRIC_COUNTER,
				"HTTP requests answered, by method, route pattern and status",
				"method,route,code");
	if(!duration)
		duration = metrics_family("oh_http_request_duration_seconds", METRIC_HISTOGRAM,
				"Time from the request line to the reply being queued, by method and route pattern",
				"method,route");
	const char *meth = "other";
	for(size_t i = 0; method && i < sizeof methods / sizeof methods[0]; i++) {
		if(!strcmp(method, methods[i]))
			meth = methods[i];
	}
	char code[8];
	snprintf(code, sizeof code, "%u", status);
	const char *values[] = {meth, route ? route : "unmatched", code};
	metrics_add(m, values, 1);
	metrics_observe(duration, values, seconds);
}

/* ---- limits: oh_limit_refusals_total{limit} -------------------------------- */

static struct metric *limit_family(void)
{
	static struct metric *m;
	if(!m)
		m = metrics_family("oh_limit_refusals_total", METRIC_COUNTER,
				"Requests refused because a limits.* cap was reached, by limit", "limit");
	return m;
}

void metrics_limit_refusal(const char *limit)
{
	/* Only the names of the limits table: the label set stays fixed. */
	for(size_t i = 0; limit && config_limit_name(i); i++) {
		if(!strcmp(config_limit_name(i), limit)) {
			const char *values[] = {config_limit_name(i)};
			metrics_add(limit_family(), values, 1);
			return;
		}
	}
	log_debug("metrics", "refusal of unknown limit %s not counted", limit ? limit : "(null)");
}

void metrics_limits_register(void)
{
	/* Every limit reads 0 until refused, so a rate() over it has a start. */
	for(size_t i = 0; config_limit_name(i); i++) {
		const char *values[] = {config_limit_name(i)};
		metrics_add(limit_family(), values, 0);
	}
}

void oh_limit_refused(oh_ctx *ctx, const char *name)
{
	metrics_limit_refusal(name);
}

/* ---- plugins: oh_metric_count / oh_metric_observe ------------------------- */

/* "oh_{module}_{name}" and the label name from a "name{label}" argument. */
static struct metric *plugin_family(oh_ctx *ctx, const char *name, enum metric_type type, bool labelled)
{
	char base[128], full[192], label[64] = "";
	const char *brace = name ? strchr(name, '{') : NULL;
	if(!name)
		return NULL;
	if(brace) {
		snprintf(base, sizeof base, "%.*s", (int)(brace - name), name);
		snprintf(label, sizeof label, "%s", brace + 1);
		char *end = strchr(label, '}');
		if(!end || end[1]) {
			oh_log(ctx, OH_LOG_WARN, "metric %s: expected name or name{label}", name);
			return NULL;
		}
		*end = '\0';
	} else {
		snprintf(base, sizeof base, "%s", name);
	}
	if(labelled && !label[0])
		snprintf(label, sizeof label, "kind");
	snprintf(full, sizeof full, "oh_%s_%s", oh_module(ctx), base);
	char help[96];
	snprintf(help, sizeof help, "Reported by plugin %s", oh_module(ctx));
	struct metric *m = family_find(full);
	if(m)
		return m->type == type && m->n_labels == (labelled ? 1 : 0) ? m : NULL;
	m = metrics_family(full, type, help, labelled ? label : NULL);
	if(!m)
		oh_log(ctx, OH_LOG_WARN, "metric %s: invalid name or label", full);
	return m;
}

/*
 * The families plugins named last, so a counter bumped per command (every
 * ack counts commands_total{code}) is not a name built with snprintf and a
 * walk of every family each time.  Keyed by the text of the module and the
 * name (a plugin may pass a buffer it reuses); families live as long as the
 * process, so an entry never dangles.  Long names are simply not kept.
 */
#define FAMILY_CACHE 8
static struct {
	char module[32], name[96];
	enum metric_type type;
	bool labelled;
	struct metric *m;
} family_cache[FAMILY_CACHE];
static unsigned family_cache_next;

static struct metric *plugin_family_cached(oh_ctx *ctx, const char *name, enum metric_type type, bool labelled)
{
	const char *module = oh_module(ctx);
	if(!name || !module)
		return plugin_family(ctx, name, type, labelled);
	for(size_t i = 0; i < FAMILY_CACHE; i++) {
		if(family_cache[i].m && family_cache[i].type == type && family_cache[i].labelled == labelled &&
				!strcmp(family_cache[i].name, name) && !strcmp(family_cache[i].module, module))
			return family_cache[i].m;
	}
	struct metric *m = plugin_family(ctx, name, type, labelled);
	if(m && strlen(name) < sizeof family_cache[0].name && strlen(module) < sizeof family_cache[0].module) {
		unsigned i = family_cache_next++ % FAMILY_CACHE;
		strcpy(family_cache[i].module, module);
		strcpy(family_cache[i].name, name);
		family_cache[i].type = type;
		family_cache[i].labelled = labelled;
		family_cache[i].m = m;
	}
	return m;
}

void oh_metric_count(oh_ctx *ctx, const char *name, const char *label_value, unsigned long n)
{
	struct metric *m = plugin_family_cached(ctx, name, METRIC_COUNTER, label_value != NULL);
	metrics_add(m, label_value ? &label_value : NULL, (double)n);
}

void oh_metric_observe(oh_ctx *ctx, const char *name, double seconds)
{
	metrics_observe(plugin_family_cached(ctx, name, METRIC_HISTOGRAM, false), NULL, seconds);
}
