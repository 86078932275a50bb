/*
 * The general-purpose services of include/oh/host.h: string maps and
 * command lines from settings.
 *
 * They are thin doors onto src/common's strmap and cmdline, so a plugin
 * (built in or a shared object) gets the host's collision-resistant hash
 * and its shell-free command splitting without carrying copies of either,
 * and without seeing the host's private headers.  Nothing here needs a
 * context: these are data structures, not registrations.
 */
#include "plugin_ctx.h"

#include <stdint.h>
#include <stdio.h>

#include "cmdline.h"
#include "strmap.h"

/* struct oh_map is never defined: the handle is the host's strmap. */
static struct strmap *map_of(const struct oh_map *map)
{
	return (struct strmap *)(uintptr_t)map;
}

struct oh_map *oh_map_new(void)
{
	return (struct oh_map *)strmap_new();
}

void oh_map_free(struct oh_map *map, void (*free_value)(void *value))
{
	if(map)
		strmap_free(map_of(map), free_value);
}

int oh_map_put(struct oh_map *map, const char *key, void *value, void **old)
{
	int err = 0;
	void *prev = strmap_put(map_of(map), key, value, &err);
	if(err)
		return OH_ERR_NOMEM;
	if(old)
		*old = prev;
	return OH_OK;
}

void *oh_map_get(const struct oh_map *map, const char *key)
{
	return strmap_get(map_of(map), key);
}

void *oh_map_remove(struct oh_map *map, const char *key)
{
	return strmap_remove(map_of(map), key);
}

size_t oh_map_size(const struct oh_map *map)
{
	return strmap_size(map_of(map));
}

void oh_map_compact(struct oh_map *map)
{
	strmap_compact(map_of(map));
}

int oh_map_foreach(struct oh_map *map, int (*fn)(const char *key, void *value, void *ud), void *ud)
{
	/* strmap's iterator tolerates removing the entry it just returned,
	 * which is exactly what fn may do. */
	struct strmap_iter it;
	const char *key;
	void *value;
	strmap_iter_init(&it, map_of(map));
	while(strmap_iter_next(&it, &key, &value)) {
		int rc = fn(key, value, ud);
		if(rc)
			return rc;
	}
	return 0;
}

int oh_cmdline_split(const char *tmpl, const struct oh_cmdline_var *vars, size_t nvars, char ***argv,
		int *argc, char *err, size_t errlen)
{
	if(!tmpl || !argv || !argc || (nvars && !vars)) {
		snprintf(err, errlen, "no command line");
		return OH_ERR_INVAL;
	}
	/* The same two-field shape, so the table goes through as it is. */
	_Static_assert(sizeof(struct oh_cmdline_var) == sizeof(struct cmdline_var), "cmdline_var layout");
	*argv = NULL;
	*argc = 0;
	if(cmdline_build(tmpl, (const struct cmdline_var *)vars, nvars, argv, argc, err, errlen))
		return OH_ERR_INVAL;
	return OH_OK;
}

void oh_cmdline_free(char **argv)
{
	cmdline_free(argv);
}
