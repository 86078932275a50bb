/*
 * Fuzz target: the host's configuration file (src/core/config.c on top of
 * the schema walker in src/common/conf.c).
 *
 * Input: the whole file.  config_load() reads a path, so the input is
 * written to a file in a private directory first (on /dev/shm when there
 * is one).  Keys that name other files (mqtt.password_file,
 * http.tokens_file, http.tls.*) are read as given; `make fuzz` runs with
 * stdin closed, so a path like /dev/stdin cannot block a run.
 *
 * Checked after a successful load: what config.h promises the rest of the
 * host (ports in range, a usable topic_root, plugin modules named
 * [a-z0-9_-]{1,32} and listed once, allowed_hosts and admin_actors valid
 * and unique, counts that match their arrays).
 */
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "http_guard.h"

static void check_config(const struct config *c)
{
	FUZZ_CHECK(c->mqtt.host && c->mqtt.port >= 1 && c->mqtt.port <= 65535);
	FUZZ_CHECK(c->mqtt.keepalive_s >= 5 && c->mqtt.keepalive_s <= 3600);
	FUZZ_CHECK(c->http.bind && c->http.port >= 0 && c->http.port <= 65535);
	size_t n = strlen(c->topic_root);
	FUZZ_CHECK(n > 0 && !strpbrk(c->topic_root, "+#") && c->topic_root[n - 1] != '/');
	FUZZ_CHECK(c->n_plugins == 0 || c->plugins);
	for(size_t i = 0; i < c->n_plugins; i++) {
		const char *m = c->plugins[i].module;
		FUZZ_CHECK(m && *m && strlen(m) <= 32);
		FUZZ_CHECK(strspn(m, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(m));
		FUZZ_CHECK(c->plugins[i].path && json_is_object(c->plugins[i].settings));
		for(size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->plugins[j].module, m));
	}
	for(size_t i = 0; i < c->http.n_allowed_hosts; i++)
		FUZZ_CHECK(http_host_pattern_valid(c->http.allowed_hosts[i]));
	for(size_t i = 0; i < c->http.n_cors_origins; i++)
		FUZZ_CHECK(c->http.cors_origins[i] && !strncmp(c->http.cors_origins[i], "http", 4));
	for(size_t i = 0; i < c->mqtt_commands.n_admin_actors; i++) {
		const char *a = c->mqtt_commands.admin_actors[i];
		FUZZ_CHECK(a && strlen(a) >= 1);
		for(size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->mqtt_commands.admin_actors[j], a));
	}
	FUZZ_CHECK(c->http.n_tokens == 0 || c->http.tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[512];
	fuzz_setup();
	if(!path[0])
		snprintf(path, sizeof path, "%s/host.json", fuzz_tmpdir());
	FILE *f = fopen(path, "wb");
	if(!f)
		abort();
	if(size)
		fwrite(data, 1, size, f);
	fclose(f);

	struct config c;
	char err[512];
	err[0] = '\0';
	if(config_load(&c, path, err, sizeof err) == 0)
		check_config(&c);
	else
		FUZZ_CHECK(err[0] != '\0');
	config_free(&c);
	return 0;
}
