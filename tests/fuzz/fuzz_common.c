/*
 * Helpers shared by the fuzz targets (fuzz_common.h).
 */
#include "fuzz_common.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char tmpdir[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void remove_tmpdir(void)
{
	if(tmpdir[0])
		nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

void fuzz_setup(void)
{
	static bool done;
	if(done)
		return;
	done = true;
	static const char *const vars[] = {"OH_MQTT_HOST", "OH_MQTT_PORT", "OH_MQTT_USERNAME",
			"OH_MQTT_PASSWORD", "OH_HTTP_BIND", "OH_HTTP_PORT", NULL};
	for(const char *const *v = vars; *v; v++)
		unsetenv(*v);
	/* Above the highest level: nothing is printed, but every message is
	 * still formatted up to the level check, so the callers' arguments are
	 * evaluated as in the daemon. */
	if(!getenv("OH_FUZZ_LOG"))
		log_set_level((enum log_level)(LOG_LVL_ERROR + 1));
}

const char *fuzz_tmpdir(void)
{
	if(tmpdir[0])
		return tmpdir;
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/oh-fuzz-XXXXXX", base && *base ? base : "/tmp");
	if(!mkdtemp(tmpdir)) {
		perror(tmpdir);
		abort();
	}
	atexit(remove_tmpdir);
	return tmpdir;
}

static char *copy(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if(!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

char *fuzz_next(struct fuzz_in *in, char sep)
{
	if(in->done)
		return NULL;
	const uint8_t *end = memchr(in->p, sep, in->n);
	if(!end) {
		in->done = true;
		return copy(in->p, in->n);
	}
	size_t n = (size_t)(end - in->p);
	char *s = copy(in->p, n);
	in->p += n + 1;
	in->n -= n + 1;
	return s;
}

char *fuzz_rest(struct fuzz_in *in)
{
	if(in->done)
		return NULL;
	in->done = true;
	return copy(in->p, in->n);
}
