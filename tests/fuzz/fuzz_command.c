/*
 * Fuzz target: the command envelope on the host side: the core's
 * mqtt_commands policy (src/core/command_policy.c), the envelope parser
 * every plugin uses (oh_command_parse, src/core/command.c), the scheduler's
 * schedule/unschedule/jobs actions (src/core/scheduler_api.c), and the NDI
 * plugin's actions, leases and relays (src/plugins/ndi/ndi_commands.c),
 * plus the device acks and statuses it follows (ndi_pending.c,
 * ndi_status.c).
 *
 * Input: lines "topic<TAB>payload" (fuzz_host.h), usually
 * "/lab/orchestrator/ndi/cmd<TAB>{envelope}", with device meta, status and
 * acks ("/lab/device/{id}/ndi/evt") mixed in.  Jobs scheduled on the way
 * are then run on the fake clock.
 *
 * Checked: oh_command_parse() on its own, for each envelope: a failure
 * names a code and says why, a success has a non-empty action, params an
 * object, and a req_id of 1..OH_REQ_ID_MAX bytes either way; everything
 * else by the sanitizers and the leak check at teardown.
 */
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_host.h"

static void check_parse(const char *payload)
{
	json_t *json = json_loads(payload, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	struct oh_message msg = {.topic = "/lab/orchestrator/ndi/cmd",
			.payload = payload,
			.len = strlen(payload),
			.json = json,
			.error = json ? NULL : "not JSON"};
	struct oh_command cmd;
	const char *code = NULL;
	char err[256];
	int rc = oh_command_parse(NULL, &msg, &cmd, &code, err, sizeof err);
	FUZZ_CHECK(strlen(cmd.req_id) >= 1 && strlen(cmd.req_id) <= OH_REQ_ID_MAX);
	if(rc) {
		FUZZ_CHECK(code && err[0]);
	} else {
		FUZZ_CHECK(!code && cmd.action && cmd.action[0] && json_is_object(cmd.params));
		FUZZ_CHECK(!cmd.actor || (strlen(cmd.actor) >= 1 && strlen(cmd.actor) <= 120));
	}
	json_decref(json);
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
		const char *tab = strchr(line, '\t');
		if(tab && strstr(line, "/orchestrator/"))
			check_parse(tab + 1);
		fuzz_host_line(&h, line);
		free(line);
	}
	fuzz_host_run_jobs(&h, 8);
	fuzz_host_stop(&h);
	return 0;
}
