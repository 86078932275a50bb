/*
 * Fuzz target: the documents the host reads back from its store at start:
 * a scheduled job (job_from_stored in src/core/scheduler.c: read from the
 * text when it is plain, json_text.c, else by jansson), then listed,
 * fired on the fake clock through the NDI plugin's executor and stored
 * again; and a device's last merged document, which the registry loads for
 * a warm start (src/core/registry.c).  A store edited by hand, restored
 * from an old version or damaged must not take the host down.
 *
 * Input: the job document on the first line (JSON, stored for module
 * "ndi" as the host stores it), the device document after it (stored as
 * text, as is).
 *
 * Checked: the host starts; the job, when loaded, lists as a document of
 * the shape GET /api/ndi/jobs promises and survives its runs.
 */
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_host.h"
#include "oh/defs.h"
#include "store.h"

static struct store *open_store(void)
{
	static struct store *st;
	if(!st) {
		char dir[512], err[512];
		snprintf(dir, sizeof dir, "%s/state", fuzz_tmpdir());
		if(!(st = store_open_dir(dir, err, sizeof err))) {
			fprintf(stderr, "fuzz: %s\n", err);
			abort();
		}
	}
	return st;
}

static void check_list(struct host *h)
{
	json_t *jobs = oh_job_list(plugins_find(h, "ndi"), NULL);
	FUZZ_CHECK(json_is_array(jobs) && json_array_size(jobs) <= 1);
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j)
	{
		FUZZ_CHECK(json_is_string(json_object_get(j, "id")));
		FUZZ_CHECK(json_is_string(json_object_get(j, "owner")));
		FUZZ_CHECK(json_is_object(json_object_get(j, "spec")));
		FUZZ_CHECK(json_is_array(json_object_get(j, "commands")));
		const char *state = json_string_value(json_object_get(j, "state"));
		FUZZ_CHECK(state && (!strcmp(state, "scheduled") || !strcmp(state, "done")));
	}
	char *text = json_dumps(jobs, JSON_COMPACT);
	FUZZ_CHECK(text != NULL);
	free(text);
	json_decref(jobs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct store *st = open_store();
	struct fuzz_in in = fuzz_in(data, size);
	char *job = fuzz_next(&in, '\n');
	char *device = fuzz_rest(&in);
	json_t *doc = job ? json_loads(job, JSON_DECODE_ANY, NULL) : NULL;
	/* The store keeps what the host wrote: an object, or an array when
	 * damaged; a bare scalar does not serialise. */
	if(json_is_object(doc) || json_is_array(doc))
		FUZZ_CHECK(store_job_put(st, "0123456789abcdef0123456789abcdef", "ndi", doc) == OH_OK);
	if(device && *device)
		FUZZ_CHECK(store_device_put(st, "rpi-01", device, strlen(device), 1893455990.0) == OH_OK);

	struct host h;
	struct fuzz_host_opts o = {.plugins = true, .store = st};
	fuzz_host_start(&h, &o);
	check_list(&h);
	fuzz_host_run_jobs(&h, 4);
	check_list(&h);
	fuzz_host_stop(&h);

	store_job_delete(st, "0123456789abcdef0123456789abcdef");
	store_device_delete(st, "rpi-01");
	json_decref(doc);
	free(job);
	free(device);
	return 0;
}
