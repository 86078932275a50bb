/*
 * The audit query's SQL, shared by both store backends (store_sqlite.c,
 * store_pg.c) so that they filter alike.  It sits below them, apart from
 * the store's front (store.c), which calls the backends: one way, no cycle.
 */
#include "store.h"

#include <stdio.h>

int store__audit_where(const struct store_audit_filter *f, size_t limit, char mark, char *sql, size_t size,
		size_t len, struct store_audit_arg *args)
{
	/* Each filter present is a condition, so that each can use its index;
	 * the values are bound, never spliced in. */
	const struct {
		bool on;
		const char *cond;
		struct store_audit_arg arg;
	} conds[] = {{f->kind != NULL, "kind =", {'s', f->kind, 0, 0}},
			{f->action != NULL, "action =", {'s', f->action, 0, 0}},
			{f->actor != NULL, "actor =", {'s', f->actor, 0, 0}},
			{f->device_id != NULL, "device_id =", {'s', f->device_id, 0, 0}},
			{f->code != NULL, "code =", {'s', f->code, 0, 0}},
			{f->module != NULL, "module =", {'s', f->module, 0, 0}},
			{f->since > 0, "ts >=", {'d', NULL, f->since, 0}},
			{f->until > 0, "ts <", {'d', NULL, f->until, 0}},
			{f->before_seq > 0, "seq <", {'i', NULL, 0, f->before_seq}}};
	int n = 0;
	for(size_t i = 0; i < sizeof conds / sizeof conds[0]; i++) {
		if(conds[i].on) {
			args[n++] = conds[i].arg;
			len += (size_t)snprintf(sql + len, size - len, " AND %s %c%d", conds[i].cond, mark, n);
		}
	}
	args[n++] = (struct store_audit_arg){'i', NULL, 0, (long long)limit};
	snprintf(sql + len, size - len, " ORDER BY seq DESC LIMIT %c%d", mark, n);
	return n;
}
