/*
 * Unit tests of the topic layout (src/common/topics.c): every place of the
 * layout, a root with and without its leading '/', empty levels, wildcards
 * where an id belongs, bad and over-long ids, over-long topics, and the
 * builder, whose topics must parse back into the parts they were made of.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "topics.h"

/* The level as a string, "(absent)" when it is not there. */
static const char *lv(struct topic_level l)
{
	static char bufs[4][256];
	static int at;
	char *b = bufs[at++ % 4];
	if(!l.p)
		return "(absent)";
	if(!topic_level_copy(l, b, 256))
		return "(too long)";
	return b;
}

static void check_ok(const char *root, const char *topic, enum topic_place place, const char *id,
		const char *module, const char *leaf)
{
	struct topic_parts t;
	CHECK_INT_EQ(topic_parse(root, topic, &t), place);
	CHECK_INT_EQ(t.place, place);
	if(t.error)
		printf("     %s under %s: %s\n", topic, root, t.error);
	CHECK(!t.error);
	CHECK_STR_EQ(lv(t.id), id);
	CHECK_STR_EQ(lv(t.module), module);
	CHECK_STR_EQ(lv(t.leaf), leaf);
}

static void check_other(const char *root, const char *topic)
{
	struct topic_parts t;
	CHECK_INT_EQ(topic_parse(root, topic, &t), TOPIC_OTHER);
	CHECK(!t.error);
}

static void check_bad(const char *root, const char *topic, enum topic_place place, const char *why)
{
	struct topic_parts t;
	CHECK_INT_EQ(topic_parse(root, topic, &t), place);
	CHECK_STR_CONTAINS(t.error, why);
}

static void test_places(void)
{
	check_ok("/lab", "/lab/device/rpi-01/meta", TOPIC_DEVICE, "rpi-01", "(absent)", "meta");
	check_ok("/lab", "/lab/device/rpi-01/status", TOPIC_DEVICE, "rpi-01", "(absent)", "status");
	check_ok("/lab", "/lab/device/rpi-01/ndi/evt", TOPIC_DEVICE, "rpi-01", "ndi", "evt");
	check_ok("/lab", "/lab/device/rpi-01/ndi/a/b", TOPIC_DEVICE, "rpi-01", "ndi", "a/b");
	check_ok("/lab", "/lab/orchestrator/registry", TOPIC_ORCHESTRATOR, "(absent)", "registry", "(absent)");
	check_ok("/lab", "/lab/orchestrator/ndi/cmd", TOPIC_ORCHESTRATOR, "(absent)", "ndi", "cmd");
	check_ok("/lab", "/lab/orchestrator/probe/from-h1/check.dot", TOPIC_ORCHESTRATOR, "(absent)", "probe",
			"from-h1/check.dot");
	/* "device" and "orchestrator" are only places as the first level. */
	check_ok("/lab", "/lab/device/orchestrator/device/x", TOPIC_DEVICE, "orchestrator", "device", "x");
	check_other("/lab", "/lab/devices/x/meta");
	check_other("/lab", "/lab/other/x");
}

static void test_roots(void)
{
	/* A root without the leading slash is a root of its own. */
	check_ok("lab", "lab/device/x/meta", TOPIC_DEVICE, "x", "(absent)", "meta");
	check_other("lab", "/lab/device/x/meta");
	check_other("/lab", "lab/device/x/meta");
	/* A prefix of the topic is not its root unless a '/' follows. */
	check_other("/lab", "/labx/device/x/meta");
	check_other("/lab", "/lab");
	check_other("/lab", "/lab/");
	check_other("/lab", "/lab//device/x/meta");
	/* Deeper roots. */
	check_ok("/site/a/lab", "/site/a/lab/orchestrator/ndi/evt", TOPIC_ORCHESTRATOR, "(absent)", "ndi",
			"evt");
	check_other("/site/a/lab", "/site/a/device/x/meta");
	check_other(NULL, "/lab/device/x/meta");
	check_other("/lab", NULL);
}

static void test_empty_levels(void)
{
	check_bad("/lab", "/lab/device", TOPIC_DEVICE, "no device id");
	check_bad("/lab", "/lab/device/x", TOPIC_DEVICE, "nothing after the device id");
	check_bad("/lab", "/lab/orchestrator", TOPIC_ORCHESTRATOR, "no module");
	check_bad("/lab", "/lab/device/", TOPIC_DEVICE, "empty level");
	check_bad("/lab", "/lab/device//meta", TOPIC_DEVICE, "empty level");
	check_bad("/lab", "/lab/device/x/", TOPIC_DEVICE, "empty level");
	check_bad("/lab", "/lab/device/x//evt", TOPIC_DEVICE, "empty level");
	check_bad("/lab", "/lab/device/x/ndi/", TOPIC_DEVICE, "empty level");
	check_bad("/lab", "/lab/device/x/ndi//evt", TOPIC_DEVICE, "empty level");
	check_bad("/lab", "/lab/orchestrator//cmd", TOPIC_ORCHESTRATOR, "empty level");
	check_bad("/lab", "/lab/orchestrator/ndi/", TOPIC_ORCHESTRATOR, "empty level");
	/* The levels before the fault are still there. */
	struct topic_parts t;
	topic_parse("/lab", "/lab/device/x//evt", &t);
	CHECK_STR_EQ(lv(t.id), "x");
}

static void test_ids(void)
{
	check_bad("/lab", "/lab/device/+/meta", TOPIC_DEVICE, "no + or #");
	check_bad("/lab", "/lab/device/#", TOPIC_DEVICE, "no + or #");
	check_bad("/lab", "/lab/device/a+b/ndi/evt", TOPIC_DEVICE, "no + or #");
	check_bad("/lab", "/lab/orchestrator/+/cmd", TOPIC_ORCHESTRATOR, "no + or #");
	check_bad("/lab", "/lab/device/../meta", TOPIC_DEVICE, "device id must be");
	check_bad("/lab", "/lab/device/./meta", TOPIC_DEVICE, "device id must be");
	check_bad("/lab", "/lab/device/a b/meta", TOPIC_DEVICE, "device id must be");
	/* 64 characters is the longest id. */
	char topic[128], id[70];
	memset(id, 'a', 64);
	id[64] = '\0';
	snprintf(topic, sizeof topic, "/lab/device/%s/meta", id);
	check_ok("/lab", topic, TOPIC_DEVICE, id, "(absent)", "meta");
	snprintf(topic, sizeof topic, "/lab/device/%sa/meta", id);
	check_bad("/lab", topic, TOPIC_DEVICE, "device id must be");
	/* The bad id is still reported, for the complaint. */
	struct topic_parts t;
	topic_parse("/lab", "/lab/device/../meta", &t);
	CHECK_STR_EQ(lv(t.id), "..");
	CHECK_STR_EQ(lv(t.leaf), "meta");
}

static void test_over_long(void)
{
	size_t n = TOPIC_MAX_LEN + 1;
	char *topic = malloc(n + 1);
	strcpy(topic, "/lab/device/x/ndi/");
	memset(topic + strlen(topic), 'e', n - strlen(topic));
	topic[n] = '\0';
	check_bad("/lab", topic, TOPIC_DEVICE, "longer than 65535");
	topic[n - 1] = '\0'; /* exactly the limit */
	struct topic_parts t;
	CHECK_INT_EQ(topic_parse("/lab", topic, &t), TOPIC_DEVICE);
	CHECK(!t.error);
	free(topic);

	char small[4];
	CHECK(!topic_level_copy((struct topic_level){"abcd", 4}, small, sizeof small));
	CHECK_STR_EQ(small, "");
	CHECK(topic_level_copy((struct topic_level){"abc", 3}, small, sizeof small));
	CHECK_STR_EQ(small, "abc");
}

/* Built topics parse back into the parts they were made of. */
static void check_build(const char *root, const char *id, const char *module, const char *leaf, const char *want)
{
	char *t = topic_build(root, id, module, leaf);
	CHECK_STR_EQ(t, want);
	struct topic_parts p;
	if(t && !strchr(t, '+') && (!leaf || *leaf)) {
		CHECK_INT_EQ(topic_parse(root, t, &p), id ? TOPIC_DEVICE : TOPIC_ORCHESTRATOR);
		CHECK(!p.error);
		CHECK_STR_EQ(lv(p.id), id ? id : "(absent)");
		CHECK_STR_EQ(lv(p.module), module ? module : "(absent)");
		CHECK_STR_EQ(lv(p.leaf), leaf ? leaf : "(absent)");
	}
	free(t);
}

static void test_build(void)
{
	check_build("/lab", "rpi-01", NULL, "meta", "/lab/device/rpi-01/meta");
	check_build("/lab", "rpi-01", "ndi", "cmd", "/lab/device/rpi-01/ndi/cmd");
	check_build("lab", NULL, "ndi", "evt", "lab/orchestrator/ndi/evt");
	check_build("/lab", NULL, "registry", NULL, "/lab/orchestrator/registry");
	check_build("/lab", NULL, "ndi", "", "/lab/orchestrator/ndi/");
	check_build("/lab", "+", "ndi", "evt", "/lab/device/+/ndi/evt");
	CHECK(!topic_build("/lab", NULL, NULL, "evt"));
	CHECK(!topic_build(NULL, "x", NULL, "meta"));
	char *huge = malloc(TOPIC_MAX_LEN + 1);
	memset(huge, 'x', TOPIC_MAX_LEN);
	huge[TOPIC_MAX_LEN] = '\0';
	CHECK(!topic_build("/lab", NULL, "ndi", huge));
	free(huge);
}

int main(void)
{
	test_places();
	test_roots();
	test_empty_levels();
	test_ids();
	test_over_long();
	test_build();
	return check_summary();
}
