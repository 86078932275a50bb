/*
 * Fuzz target: the device agent's configuration file
 * (src/device/dev_config.c, the schema walker of src/common/conf.c, and
 * each module's settings check, today the NDI module's templates).
 *
 * Input: the whole file, written to a private file first as in
 * fuzz_config.c.  An even-sized input is loaded as `--simulate` would
 * (no device_id needed), an odd-sized one as a real agent.
 *
 * Checked after a successful load: a device id the host accepts, labels an
 * array of strings, modules an object of objects, a usable topic_root and
 * a heartbeat in range.
 */
#include <string.h>

#include "dev_config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[512];
	fuzz_setup();
	if(!path[0])
		snprintf(path, sizeof path, "%s/device.json", fuzz_tmpdir());
	FILE *f = fopen(path, "wb");
	if(!f)
		abort();
	if(size)
		fwrite(data, 1, size, f);
	fclose(f);

	struct dev_config c;
	char err[512];
	bool need_id = size & 1;
	if(dev_config_load(&c, path, need_id, err, sizeof err) == 0) {
		FUZZ_CHECK(!need_id || c.device_id);
		FUZZ_CHECK(!c.device_id || dev_id_valid(c.device_id));
		FUZZ_CHECK(json_is_array(c.labels) && json_is_object(c.modules));
		size_t i;
		json_t *v;
		json_array_foreach(c.labels, i, v) FUZZ_CHECK(json_is_string(v));
		const char *key;
		json_object_foreach(c.modules, key, v) FUZZ_CHECK(json_is_object(v));
		size_t n = strlen(c.topic_root);
		FUZZ_CHECK(n > 0 && !strpbrk(c.topic_root, "+#") && c.topic_root[n - 1] != '/');
		FUZZ_CHECK(c.heartbeat_interval_s >= 0.1 && c.heartbeat_interval_s <= 86400);
		FUZZ_CHECK(c.mqtt.port >= 1 && c.mqtt.port <= 65535);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	dev_config_free(&c);
	return 0;
}
