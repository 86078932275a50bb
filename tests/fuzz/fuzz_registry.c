/*
 * Fuzz target: registry input, the devices' retained meta and status
 * merged into their documents (src/core/registry.c), through the real
 * dispatcher (src/core/dispatch.c: topic routing, JSON parsing, the
 * payload limit).
 *
 * Input: lines "topic<TAB>payload" (fuzz_host.h), e.g.
 * "/lab/device/rpi-01/meta<TAB>{...}".
 *
 * Checked: the snapshot, which registry.c writes by hand into a buffer of
 * computed size, is valid JSON whose length matches; every device in it is
 * keyed by a valid id equal to its document's device_id; the fields the
 * protocol types (device_doc.c, known_fields) have their types, so readers
 * of the snapshot need not defend themselves; each device's own document
 * agrees with the snapshot.
 */
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_host.h"
#include "device_doc.h"
#include "snapshot.h"
#include "ident.h"
#include "oh/validate.h"
#include "shared_buf.h"

static void check_device(struct host *h, const char *id, const json_t *doc)
{
	char err[256];
	FUZZ_CHECK(ident_device_id_valid(id, strlen(id)));
	FUZZ_CHECK(json_is_object(doc));
	/* The merge's own table; online is the host's, null until heard. */
	for(const struct oh_vfield *f = device_doc_fields(); f->name; f++) {
		const json_t *v = json_object_get(doc, f->name);
		if(v && strcmp(f->name, "online"))
			FUZZ_CHECK(oh_json_validate_value(v, f, f->name, NULL, err, sizeof err) == 0);
	}
	FUZZ_CHECK(json_is_boolean(json_object_get(doc, "stale")));
	const json_t *device_id = json_object_get(doc, "device_id");
	FUZZ_CHECK(json_is_string(device_id) && !strcmp(json_string_value(device_id), id));
	const json_t *online = json_object_get(doc, "online");
	FUZZ_CHECK(json_is_boolean(online) || json_is_null(online));

	char *own = registry_device_json(h->registry, id);
	FUZZ_CHECK(own != NULL);
	json_t *parsed = json_loads(own, 0, NULL);
	FUZZ_CHECK(parsed && json_equal(parsed, doc));
	json_decref(parsed);
	free(own);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct host h;
	struct fuzz_host_opts o = {0};
	fuzz_host_start(&h, &o);

	struct fuzz_in in = fuzz_in(data, size);
	char *line;
	while((line = fuzz_next(&in, '\n'))) {
		fuzz_host_line(&h, line);
		free(line);
	}

	struct shared_buf *snap = snapshot_get(h.snapshot);
	FUZZ_CHECK(snap != NULL);
	FUZZ_CHECK(strlen(snap->data) == snap->len);
	json_error_t jerr;
	json_t *doc = json_loadb(snap->data, snap->len, JSON_REJECT_DUPLICATES, &jerr);
	if(!doc)
		fprintf(stderr, "snapshot: %s: %.200s\n", jerr.text, snap->data);
	FUZZ_CHECK(doc != NULL);
	const json_t *devices = json_object_get(doc, "devices");
	FUZZ_CHECK(json_is_object(devices));
	FUZZ_CHECK(json_object_size(devices) == registry_size(h.registry));
	const char *id;
	json_t *dev;
	json_object_foreach((json_t *)devices, id, dev) check_device(&h, id, dev);
	json_decref(doc);
	shared_buf_unref(snap);

	fuzz_host_stop(&h);
	return 0;
}
