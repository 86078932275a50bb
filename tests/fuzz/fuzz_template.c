/*
 * Fuzz target: the device agent's command templates (src/common/cmdline.c,
 * as the NDI module of src/device/ndi.c uses them): splitting
 * start_cmd_template into words, then filling {source} and {device_id}
 * into each word.
 *
 * Input: the source on the first line, the device id on the second, the
 * template (newlines allowed) after them.
 *
 * Checked, the promise cmdline.h makes about injection: filling in values
 * never creates, removes or joins words (cmdline_build gives as many words
 * as cmdline_split), a word that is exactly "{source}" becomes exactly the
 * source, whatever it contains, and a word without braces is unchanged.
 * The NDI module's settings check agrees with the splitter.
 */
#include <string.h>

#include "cmdline.h"
#include "fuzz_common.h"
#include "module.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct fuzz_in in = fuzz_in(data, size);
	char *source = fuzz_next(&in, '\n');
	char *device_id = fuzz_next(&in, '\n');
	char *tmpl = fuzz_rest(&in);
	if(!tmpl)
		goto out;

	const struct cmdline_var vars[] = {{"source", source}, {"device_id", device_id}};
	char **words, **argv;
	int n_words, argc;
	char err[160];
	int split = cmdline_split(tmpl, &words, &n_words, err, sizeof err);
	int built = cmdline_build(tmpl, vars, 2, &argv, &argc, err, sizeof err);
	FUZZ_CHECK(split == built);
	if(!split) {
		FUZZ_CHECK(argc == n_words && n_words >= 1 && !words[n_words] && !argv[argc]);
		for(int i = 0; i < argc; i++) {
			if(!strcmp(words[i], "{source}"))
				FUZZ_CHECK(!strcmp(argv[i], source));
			else if(!strcmp(words[i], "{device_id}"))
				FUZZ_CHECK(!strcmp(argv[i], device_id));
			else if(!strchr(words[i], '{'))
				FUZZ_CHECK(!strcmp(argv[i], words[i]));
		}
		cmdline_free(words);
		cmdline_free(argv);
	}

	/* The module refuses at configuration time exactly what cannot split. */
	json_t *settings = json_pack("{s:s}", "start_cmd_template", tmpl);
	if(settings) {
		int rc = ndi_module_ops.check_settings(settings, true, "modules.ndi", err, sizeof err);
		FUZZ_CHECK((rc == 0) == (split == 0));
		json_decref(settings);
	}
out:
	free(source);
	free(device_id);
	free(tmpl);
	return 0;
}
