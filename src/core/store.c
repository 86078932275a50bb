/*
 * The store's front (store.h): picks the configured backend and forwards
 * each call to its ops, so that callers never ask which one it is, and an
 * op a backend leaves out has one meaning here (nothing to do, or done at
 * once).
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "oh/defs.h"

struct store {
	const struct store_ops *ops;
	void *b;   /* owned: ops->close */
	int depth; /* store_begin nesting, for store_in_txn and the commit handler */
	void (*on_commit)(void *ud, bool ok);
	void *on_commit_ud;
};

static struct store *wrap(const struct store_ops *ops, void *b, char *err, size_t errlen)
{
	struct store *s = b ? calloc(1, sizeof *s) : NULL;
	if(!s) {
		if(b) {
			ops->close(b);
			snprintf(err, errlen, "store: out of memory");
		}
		return NULL;
	}
	s->ops = ops;
	s->b = b;
	return s;
}

struct store *store_open(const struct config *cfg, struct event_base *base, char *err, size_t errlen)
{
	if(cfg->store.backend && !strcmp(cfg->store.backend, "postgresql"))
		return wrap(&store_pg_ops, store_pg_open(cfg, base, err, errlen), err, errlen);
	return store_open_dir(cfg->state_dir, err, errlen);
}

struct store *store_open_dir(const char *dir, char *err, size_t errlen)
{
	return wrap(&store_sqlite_ops, store_sqlite_open(dir, err, errlen), err, errlen);
}

void store_close(struct store *s)
{
	if(!s)
		return;
	s->ops->close(s->b);
	free(s);
}

const char *store_backend(const struct store *s)
{
	return s->ops->name;
}

void *store_backend_state(struct store *s, const struct store_ops *ops)
{
	return s && s->ops == ops ? s->b : NULL;
}

int store_lease_put(struct store *s, const struct store_lease *lease)
{
	return s->ops->lease_put(s->b, lease);
}

int store_lease_delete(struct store *s, const char *key)
{
	return s->ops->lease_delete(s->b, key);
}

int store_lease_load(struct store *s, store_lease_fn fn, void *ud)
{
	return s->ops->lease_load(s->b, fn, ud);
}

int store_job_put(struct store *s, const char *id, const char *module, const json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	int rc = text ? s->ops->job_put(s->b, id, module, text) : OH_ERR_NOMEM;
	free(text);
	return rc;
}

int store_job_delete(struct store *s, const char *id)
{
	return s->ops->job_delete(s->b, id);
}

int store_job_load(struct store *s, store_job_fn fn, void *ud)
{
	return s->ops->job_load(s->b, fn, ud);
}

int store_job_run(struct store *s, const char *id, int64_t due)
{
	return s->ops->job_run ? s->ops->job_run(s->b, id, due) : OH_OK;
}

int store_device_put(struct store *s, const char *id, const char *doc, size_t len, double last_seen)
{
	return s->ops->device_put(s->b, id, doc, len, last_seen);
}

int store_device_delete(struct store *s, const char *id)
{
	return s->ops->device_delete(s->b, id);
}

int store_device_load(struct store *s, store_device_fn fn, void *ud)
{
	return s->ops->device_load(s->b, fn, ud);
}

int store_doc_put(struct store *s, const char *module, const char *collection, const char *key,
		const json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	int rc = text ? s->ops->doc_put(s->b, module, collection, key, text) : OH_ERR_NOMEM;
	free(text);
	return rc;
}

int store_doc_delete(struct store *s, const char *module, const char *collection, const char *key)
{
	return s->ops->doc_delete(s->b, module, collection, key);
}

int store_doc_load(struct store *s, const char *module, const char *collection, store_doc_fn fn, void *ud)
{
	return s->ops->doc_load(s->b, module, collection, fn, ud);
}

int store_begin(struct store *s)
{
	int rc = s->ops->begin(s->b, false);
	s->depth += !rc;
	return rc;
}

int store_begin_relaxed(struct store *s)
{
	int rc = s->ops->begin(s->b, true);
	s->depth += !rc;
	return rc;
}

int store_commit(struct store *s)
{
	int rc = s->ops->commit(s->b);
	if(s->depth > 0 && --s->depth == 0 && s->on_commit)
		s->on_commit(s->on_commit_ud, rc == OH_OK);
	return rc;
}

bool store_in_txn(const struct store *s)
{
	return s->depth > 0;
}

void store_on_commit(struct store *s, void (*fn)(void *ud, bool ok), void *ud)
{
	s->on_commit = fn;
	s->on_commit_ud = ud;
}

bool store_has_audit(const struct store *s)
{
	return s && s->ops->audit_insert && s->ops->audit_query && s->ops->audit_prune;
}

int store_audit_insert(struct store *s, struct store_audit *r)
{
	return s->ops->audit_insert ? s->ops->audit_insert(s->b, r) : OH_ERR_IO;
}

int store_audit_query(struct store *s, const struct store_audit_filter *f, size_t limit, store_audit_fn fn,
		store_audit_done_fn done, void *ud)
{
	return s->ops->audit_query ? s->ops->audit_query(s->b, f, limit, fn, done, ud) : OH_ERR_IO;
}

int store_audit_prune(struct store *s, double before, long long max_rows, size_t batch, size_t *removed)
{
	*removed = 0;
	return s->ops->audit_prune ? s->ops->audit_prune(s->b, before, max_rows, batch, removed) : OH_ERR_IO;
}

void store_release_memory(struct store *s)
{
	if(s && s->ops->release_memory)
		s->ops->release_memory(s->b);
}

bool store_pending(const struct store *s)
{
	return s && s->ops->pending && s->ops->pending(s->b);
}

void store_when_committed(struct store *s, store_done_fn fn, void *ud)
{
	if(s && s->ops->when_committed)
		s->ops->when_committed(s->b, fn, ud);
	else
		fn(OH_OK, ud);
}
