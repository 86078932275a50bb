/*
 * Fuzz target: the command envelope as the device agent reads it
 * (src/device/dev_envelope.c over src/common/envelope.c), the ack it
 * answers with, and what the NDI module (src/device/ndi.c, in simulation:
 * nothing is spawned) makes of a valid one; also a module settings update,
 * which arrives on the device's {module}/cfg topic.
 *
 * Input: lines, each one MQTT payload for the same device: an envelope,
 * or "cfg " followed by a settings object.
 *
 * Checked: every envelope, good or bad, gets an ack that serialises, with
 * a req_id of 1..OH_REQ_ID_MAX bytes and ok true exactly when the code is
 * OK; the module's status serialises after every command.
 */
#include <string.h>

#include "dev_envelope.h"
#include "fuzz_common.h"
#include "module.h"

static void check_ack(json_t *ack, enum ack_code code)
{
	FUZZ_CHECK(ack != NULL);
	const char *rid = json_string_value(json_object_get(ack, "req_id"));
	FUZZ_CHECK(rid && strlen(rid) >= 1 && strlen(rid) <= OH_REQ_ID_MAX);
	FUZZ_CHECK(json_is_true(json_object_get(ack, "ok")) == (code == ACK_OK));
	char *text = json_dumps(ack, JSON_COMPACT);
	FUZZ_CHECK(text != NULL);
	free(text);
	json_decref(ack);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct dev_module_host host = {.device_id = "rpi-01", .simulate = true};
	struct dev_module *m = ndi_module_ops.create(&host);
	if(!m)
		abort();
	m->ops = &ndi_module_ops;
	m->name = "ndi";
	m->settings = json_object();

	struct fuzz_in in = fuzz_in(data, size);
	char *line;
	while((line = fuzz_next(&in, '\n'))) {
		char err[256] = "";
		if(!strncmp(line, "cfg ", 4)) {
			json_t *settings = json_loads(line + 4, JSON_REJECT_DUPLICATES, NULL);
			if(json_is_object(settings) &&
					!m->ops->check_settings(settings, false, "settings", err, sizeof err)) {
				json_decref(m->settings);
				m->settings = json_incref(settings);
			}
			json_decref(settings);
			free(line);
			continue;
		}
		struct envelope env;
		enum ack_code code = envelope_parse(line, strlen(line), &env, err, sizeof err);
		if(code == ACK_OK) {
			FUZZ_CHECK(env.action && *env.action && json_is_object(env.params));
			struct mod_result res = {ACK_OK, "", NULL};
			m->ops->handle(m, &env, &res);
			check_ack(ack_new(&env, res.code, res.error, res.details), res.code);
			json_t *st = m->ops->status(m);
			char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
			FUZZ_CHECK(text != NULL);
			free(text);
			json_decref(st);
		} else {
			FUZZ_CHECK(err[0] != '\0');
			check_ack(ack_new(&env, code, err, NULL), code);
		}
		envelope_clear(&env);
		free(line);
	}
	m->ops->stop_all(m);
	json_decref(m->settings);
	m->ops->destroy(m);
	return 0;
}
