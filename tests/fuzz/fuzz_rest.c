/*
 * Fuzz target: the REST request bodies, each route's table and handler:
 * the NDI plugin's POST /send, /reserve, /renew, /release, /force_release
 * and GET /devices, /sources, /status (src/plugins/ndi/ndi_rest.c), and the
 * scheduler's /jobs routes with the validation they share with the
 * `schedule` action (src/core/scheduler_api.c).  Handlers are called as
 * http.c calls them once a request passed its checks (fuzz_host.h), so the
 * bodies reach the same ndi_run()/ndi_dispatch() and the same job
 * creation as in the daemon.
 *
 * Input: lines "METHOD /api/ndi/route<TAB>body", with MQTT lines
 * ("/lab/device/rpi-01/meta<TAB>{...}") mixed in to register devices the
 * requests can name.  Jobs created on the way are then run on the fake
 * clock.
 *
 * Checked: every request gets exactly one answer (fuzz_host.c) with a
 * status the API documents, never a 500 (a failure of the host itself:
 * none of these inputs can cause one).
 */
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_host.h"

/* The statuses the routes' OpenAPI descriptions list. */
static bool documented(unsigned status)
{
	static const unsigned list[] = {200, 201, 202, 400, 403, 404, 409, 413, 502, 503, 504};
	for(size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
		if(list[i] == status)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct host h;
	struct fuzz_host_opts o = {.plugins = true};
	fuzz_host_start(&h, &o);

	struct fuzz_in in = fuzz_in(data, size);
	char *line;
	while((line = fuzz_next(&in, '\n'))) {
		unsigned status = fuzz_host_line(&h, line);
		/* 500 is for the host's own failures (out of memory, the store),
		 * which none of these inputs can cause. */
		FUZZ_CHECK(!status || documented(status));
		free(line);
	}
	fuzz_host_run_jobs(&h, 8);
	fuzz_host_stop(&h);
	return 0;
}
