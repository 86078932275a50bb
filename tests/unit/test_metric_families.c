/*
 * Unit tests of the plugins' metric families (oh_metric_count and
 * oh_metric_observe, src/core/metrics.c), which remember the families named
 * last so that a counter bumped per command costs no name formatting: the
 * memory is by the text of the module and the name, so two plugins with one
 * name, a buffer reused for another name, a type that does not match, and
 * more names than it keeps all still count where they should.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"
#include "plugin_ctx.h"

static oh_ctx a, b;

/* The value of the series line starting with `line` in the exposition, or
 * -1 when there is none. */
static double value_of(const char *line)
{
	size_t len = 0;
	char *text = metrics_render(&len);
	double v = -1;
	size_t n = strlen(line);
	for(char *p = text; p && *p;) {
		if(!strncmp(p, line, n) && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
		char *nl = strchr(p, '\n');
		p = nl ? nl + 1 : NULL;
	}
	free(text);
	return v;
}

int main(void)
{
	char name[64];
	a.module = "alpha";
	b.module = "beta";

	/* One name, two plugins: two families. */
	strcpy(name, "jobs_total{code}");
	oh_metric_count(&a, name, "OK", 1);
	oh_metric_count(&a, name, "OK", 2);
	oh_metric_count(&b, name, "OK", 5);
	CHECK(value_of("oh_alpha_jobs_total{code=\"OK\"}") == 3);
	CHECK(value_of("oh_beta_jobs_total{code=\"OK\"}") == 5);

	/* The same buffer, another name. */
	strcpy(name, "runs_total{code}");
	oh_metric_count(&a, name, "FAILED", 1);
	CHECK(value_of("oh_alpha_runs_total{code=\"FAILED\"}") == 1);
	CHECK(value_of("oh_alpha_jobs_total{code=\"OK\"}") == 3);

	/* A histogram of a counter's name is refused, before and after the
	 * counter was remembered; the counter is untouched. */
	oh_metric_observe(&a, "runs_total", 0.5);
	CHECK(value_of("oh_alpha_runs_total_count") == -1);
	oh_metric_count(&a, "runs_total{code}", "FAILED", 1);
	CHECK(value_of("oh_alpha_runs_total{code=\"FAILED\"}") == 2);

	/* More names than are remembered, twice over: each counts its own. */
	for(int round = 0; round < 2; round++) {
		for(int i = 0; i < 20; i++) {
			char n[32];
			snprintf(n, sizeof n, "n%d_total{k}", i);
			oh_metric_count(i % 2 ? &a : &b, n, "x", (unsigned long)(i + 1));
		}
	}
	int right = 0;
	for(int i = 0; i < 20; i++) {
		char line[64];
		snprintf(line, sizeof line, "oh_%s_n%d_total{k=\"x\"}", i % 2 ? "alpha" : "beta", i);
		right += value_of(line) == 2.0 * (i + 1);
	}
	CHECK(right == 20);
	CHECK(value_of("oh_alpha_jobs_total{code=\"OK\"}") == 3);
	CHECK(value_of("oh_beta_jobs_total{code=\"OK\"}") == 5);
	return check_summary();
}
