/*
 * Fuzz target: topic and device-id classification: the MQTT filter and
 * name rules and the router (src/core/topic_tree.c), the device id rule
 * (src/common/ident.c), and how the core sorts a topic into kinds
 * (metrics_topic_kind(), which decides which messages the command policy
 * sees).
 *
 * Input: lines, at most 64.  Every line is registered as a filter (when it
 * is one) and matched as a topic.
 *
 * Checked: the tree delivers a topic to exactly the filters for which
 * topic_matches() says yes, as often as each was registered; a valid topic
 * name without wildcards is also a filter that matches itself; removing
 * every registration leaves the bare root; a valid device id makes valid
 * device topics that the registry's filter matches; a command kind is only
 * given to topics under the root.
 */
#include <string.h>

#include "core.h"
#include "fuzz_common.h"
#include "ident.h"
#include "metrics.h"
#include "oh/defs.h"
#include "topic_tree.h"

#define MAX_LINES 64

struct hits {
	unsigned count[MAX_LINES];
};

static void on_match(void *value, void *ud)
{
	struct hits *h = ud;
	h->count[(size_t)value]++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct host host;
	fuzz_setup();
	host.cfg.topic_root = "/lab";

	char *line[MAX_LINES];
	size_t n = 0;
	struct fuzz_in in = fuzz_in(data, size);
	while(n < MAX_LINES && (line[n] = fuzz_next(&in, '\n')))
		n++;

	struct topic_tree *t = topic_tree_new();
	if(!t)
		abort();
	bool added[MAX_LINES];
	for(size_t i = 0; i < n; i++) {
		int rc = topic_tree_add(t, line[i], (void *)i);
		added[i] = rc == OH_OK;
		FUZZ_CHECK(added[i] == (bool)topic_filter_valid(line[i]));
	}
	for(size_t i = 0; i < n; i++) {
		struct hits h = {{0}};
		size_t calls = topic_tree_match(t, line[i], on_match, &h);
		size_t total = 0;
		for(size_t f = 0; f < n; f++)
			total += h.count[f];
		FUZZ_CHECK(calls == total);
		if(topic_name_valid(line[i])) {
			for(size_t f = 0; f < n; f++) {
				bool m = added[f] && topic_matches(line[f], line[i]);
				FUZZ_CHECK(h.count[f] == (m ? 1u : 0u));
			}
			FUZZ_CHECK(topic_filter_valid(line[i]) && topic_matches(line[i], line[i]));
		} else if(!line[i][0] || strpbrk(line[i], "+#")) {
			/* Not a topic name at all.  (Bad UTF-8 is the broker's to
			 * refuse: the router does not check it.) */
			FUZZ_CHECK(calls == 0);
		}

		size_t len = strlen(line[i]);
		if(ident_device_id_valid(line[i], len)) {
			char topic[128];
			snprintf(topic, sizeof topic, "/lab/device/%s/meta", line[i]);
			FUZZ_CHECK(topic_name_valid(topic) && topic_matches("/lab/device/+/meta", topic));
			FUZZ_CHECK(strcmp(line[i], ".") && strcmp(line[i], ".."));
		}
		const char *kind = metrics_topic_kind(&host, line[i]);
		FUZZ_CHECK(kind != NULL);
		if(strncmp(line[i], "/lab/", 5))
			FUZZ_CHECK(!strcmp(kind, "other"));
	}
	for(size_t i = 0; i < n; i++) {
		if(added[i])
			FUZZ_CHECK(topic_tree_remove(t, line[i], (void *)i) == OH_OK);
	}
	FUZZ_CHECK(topic_tree_node_count(t) == 1);
	for(size_t i = 0; i < n; i++) {
		FUZZ_CHECK(topic_tree_count(t, line[i]) == 0);
		free(line[i]);
	}
	topic_tree_free(t);
	return 0;
}
