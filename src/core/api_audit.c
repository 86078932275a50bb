/*
 * GET /api/audit: the audit trail, filtered, newest first, paged by keyset
 * (next_cursor: the seq to continue below, never an offset, so a page does
 * not shift while records arrive).  JSON pages are small (limit <= 1000).
 * Exports (?format=csv or Accept: text/csv, ?format=jsonl) are streamed:
 * EXPORT_CHUNK rows per loop turn, and none while the client has more than
 * EXPORT_BACKLOG bytes unread, so a 100 MB export neither sits in memory
 * nor holds the loop.
 */
#include "audit.h"

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/validate.h"

#include "http.h"
#include "log.h"
#include "store.h"
#include "strbuf.h"
#include "timeutil.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define EXPORT_MAX 100000000
#define EXPORT_CHUNK 500
#define EXPORT_BACKLOG (256 * 1024)
#define EXPORT_WAIT_MS 5

enum format {
	FMT_JSON,
	FMT_CSV,
	FMT_JSONL
};

/* ---- the query: one validator table ------------------------------------------------- */

/* since, until: an ISO 8601 time or seconds since the epoch, in *out;
 * false when s is neither. */
static bool time_of(const char *s, double *out)
{
	char *end;
	double t = strtod(s, &end);
	time_t tt;

	if(*s && !*end && isfinite(t) && t >= 0) {
		*out = t;
		return true;
	}
	if(time_parse_iso8601(s, "UTC", &tt, NULL, 0))
		return false;
	*out = (double)tt;
	return true;
}

static const char *time_check(const json_t *v, void *ud, char *buf, size_t len)
{
	const char *s = json_string_value(v);
	double t;
	if(time_of(s, &t))
		return NULL;
	snprintf(buf, len, "\"%.40s\" is not a time (ISO 8601, e.g. 2026-12-01T08:00:00Z, or epoch seconds)",
			s);
	return buf;
}

static const char *cursor_check(const json_t *v, void *ud, char *buf, size_t len)
{
	const char *s = json_string_value(v);
	if(*s && strspn(s, "0123456789") == strlen(s) && strlen(s) < 19)
		return NULL;
	return "must be a next_cursor from an earlier page";
}

static const char *const kinds[] = {"command", "lease", "job", "route", "plugin", "device", NULL};
static const char *const formats[] = {"json", "csv", "jsonl", NULL};

static const struct oh_vfield query_fields[] = {
		OH_VFIELD("device_id", OH_VT_STRING, 0, .check = oh_vcheck_device_id),
		OH_VFIELD("actor", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 512),
		OH_VFIELD("action", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 64),
		OH_VFIELD("code", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 64),
		OH_VFIELD("module", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 64),
		OH_VFIELD("kind", OH_VT_STRING, 0, .one_of = kinds),
		OH_VFIELD("since", OH_VT_STRING, 0, .check = time_check),
		OH_VFIELD("until", OH_VT_STRING, 0, .check = time_check),
		OH_VFIELD("limit", OH_VT_INT, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = EXPORT_MAX),
		OH_VFIELD("cursor", OH_VT_STRING, 0, .check = cursor_check),
		OH_VFIELD("format", OH_VT_STRING, 0, .one_of = formats),
		OH_VFIELD_END,
};
static const struct oh_vobject query_spec = OH_VOBJECT(query_fields, OH_V_REFUSE);

/* A checked since or until (time_check()); 0 when absent. */
static double time_value(const char *s)
{
	double t = 0;
	if(s)
		time_of(s, &t);
	return t;
}

/* The query, checked; NULL after answering 400.  Returned (json_decref);
 * f's strings borrow from it. */
static json_t *read_query(struct oh_http_req *req, struct store_audit_filter *f, enum format *fmt, long *limit)
{
	json_t *q = http_req_query_json(req);
	if(!q) {
		oh_reply_error(req, 503, "NO_MEMORY", "out of memory");
		return NULL;
	}
	/* limit is a number in the validator's terms. */
	const char *ls = json_string_value(json_object_get(q, "limit"));
	if(ls && *ls && strspn(ls, "0123456789") == strlen(ls) && strlen(ls) < 12)
		json_object_set_new(q, "limit", json_integer(strtoll(ls, NULL, 10)));
	char err[256];
	if(oh_json_validate(q, &query_spec, "", NULL, err, sizeof err)) {
		/* "": the names are the parameters' own. */
		oh_reply_error(req, 400, "BAD_REQUEST", "%s", err);
		json_decref(q);
		return NULL;
	}
	memset(f, 0, sizeof *f);
	f->device_id = json_string_value(json_object_get(q, "device_id"));
	f->actor = json_string_value(json_object_get(q, "actor"));
	f->action = json_string_value(json_object_get(q, "action"));
	f->code = json_string_value(json_object_get(q, "code"));
	f->module = json_string_value(json_object_get(q, "module"));
	f->kind = json_string_value(json_object_get(q, "kind"));
	f->since = time_value(json_string_value(json_object_get(q, "since")));
	f->until = time_value(json_string_value(json_object_get(q, "until")));
	const char *cursor = json_string_value(json_object_get(q, "cursor"));
	f->before_seq = cursor ? strtoll(cursor, NULL, 10) : 0;
	const char *format = json_string_value(json_object_get(q, "format"));
	const char *accept = oh_req_header(req, "Accept");
	*fmt = format                                          ? (!strcmp(format, "csv")                                    ? FMT_CSV
												 : !strcmp(format, "jsonl") ? FMT_JSONL
															    : FMT_JSON)
			: accept && strstr(accept, "text/csv") ? FMT_CSV
							       : FMT_JSON;
	json_t *lim = json_object_get(q, "limit");
	*limit = lim ? (long)json_integer_value(lim) : *fmt == FMT_JSON ? PAGE_DEFAULT : EXPORT_MAX;
	if(*fmt == FMT_JSON && *limit > PAGE_MAX) {
		oh_reply_error(req, 400, "BAD_REQUEST",
				"limit: %ld is out of range 1..%d (a page; export more with format=csv or jsonl)",
				*limit, PAGE_MAX);
		json_decref(q);
		return NULL;
	}
	return q;
}

/* ---- formats -------------------------------------------------------------------------- */

static const char csv_header[] = "seq,ts,kind,action,actor,requested_by,token,device_id,module,req_id,code,"
				 "latency_ms,error,detail\r\n";

/* One CSV cell (RFC 4180).  A cell a spreadsheet would run as a formula
 * (=, +, @ first) gets a leading apostrophe. */
static void csv_cell(struct strbuf *b, const char *v)
{
	if(!v)
		return;
	bool quote = strpbrk(v, ",\"\r\n") != NULL;
	if(quote)
		strbuf_putc(b, '"');
	if(*v == '=' || *v == '+' || *v == '@' || *v == '\t')
		strbuf_putc(b, '\'');
	for(const char *p = v; *p; p++) {
		if(*p == '"')
			strbuf_putc(b, '"');
		strbuf_putc(b, *p);
	}
	if(quote)
		strbuf_putc(b, '"');
}

static void csv_row(struct strbuf *b, const struct store_audit *r)
{
	json_t *j = audit_json(r);
	strbuf_printf(b, "%lld,", r->seq);
	csv_cell(b, json_string_value(json_object_get(j, "ts")));
	const char *cols[] = {r->kind, r->action, r->actor, r->requested_by, r->token, r->device_id,
			r->module, r->req_id, r->code};
	for(size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
		strbuf_putc(b, ',');
		csv_cell(b, cols[i]);
	}
	strbuf_putc(b, ',');
	if(r->latency_ms >= 0)
		strbuf_printf(b, "%.3f", r->latency_ms);
	strbuf_putc(b, ',');
	csv_cell(b, r->error);
	strbuf_putc(b, ',');
	csv_cell(b, r->detail);
	strbuf_puts(b, "\r\n");
	json_decref(j);
}

static void jsonl_row(struct strbuf *b, const struct store_audit *r)
{
	json_t *j = audit_json(r);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if(text) {
		strbuf_puts(b, text);
		strbuf_putc(b, '\n');
	} else {
		b->failed = true;
	}
	free(text);
	json_decref(j);
}

/* ---- a JSON page ------------------------------------------------------------------------ */

struct page {
	struct host *host;
	struct oh_http_req *req; /* NULL once the client left */
	json_t *records;
	long long last;
	size_t limit;
};

static void page_row(const struct store_audit *r, void *ud)
{
	struct page *p = ud;
	json_array_append_new(p->records, audit_json(r));
	p->last = r->seq;
}

static void page_gone(struct oh_http_req *req, void *ud)
{
	((struct page *)ud)->req = NULL;
}

/* The page's rows are in (at once on SQLite, a round trip later on
 * PostgreSQL): the deferred reply. */
static void page_done(int rc, size_t got, void *ud)
{
	struct page *p = ud;
	if(p->req && rc) {
		oh_reply_error(p->req, 503, "STORE", "the audit trail cannot be read now: %s", oh_strerror(rc));
	} else if(p->req) {
		char cursor[24];
		snprintf(cursor, sizeof cursor, "%lld", p->last);
		oh_reply_json(p->req, 200,
				json_pack("{s:O, s:o, s:b}", "records", p->records, "next_cursor",
						got == p->limit && p->last > 1 ? json_string(cursor)
									       : json_null(),
						"enabled", p->host->audit != NULL));
	}
	json_decref(p->records);
	free(p);
}

/* ---- an export ------------------------------------------------------------------------ */

struct export
{
	struct host *host;
	struct http_stream *st;
	struct event *ev;
	json_t *query; /* owns the filter's strings */
	struct store_audit_filter f;
	enum format fmt;
	long left; /* rows still wanted */
	struct strbuf buf;
	long long last;
	size_t want;   /* rows asked of the query in flight */
	bool querying; /* a query is in flight: its end frees x if gone */
	bool gone;
};

static void export_free(struct export *x)
{
	event_free(x->ev);
	json_decref(x->query);
	strbuf_free(&x->buf);
	free(x);
}

static void export_gone(struct http_stream *st, void *ud)
{
	struct export *x = ud;
	if(x->querying)
		x->gone = true;
	else
		export_free(x);
}

static void export_row(const struct store_audit *r, void *ud)
{
	struct export *x = ud;
	if(x->fmt == FMT_CSV)
		csv_row(&x->buf, r);
	else
		jsonl_row(&x->buf, r);
	x->last = r->seq;
}

static void export_arm(struct export *x, int ms)
{
	struct timeval tv = {0, ms * 1000};
	event_add(x->ev, &tv);
}

static void export_step(evutil_socket_t fd, short what, void *arg);

/* A chunk's rows are in: sent, then the next chunk, or the end. */
static void export_chunk(int rc, size_t got, void *ud)
{
	struct export *x = ud;
	x->querying = false;
	if(x->gone) {
		export_free(x);
		return;
	}
	x->left -= (long)got;
	x->f.before_seq = x->last;
	size_t len = x->buf.len;
	char *text = strbuf_take(&x->buf);
	if(rc || (len && !text) || (len && http_stream_write(x->st, text, len))) {
		free(text);
		log_warn("audit", "an export ended early: %s", rc ? "the store failed" : "out of memory");
		http_stream_abort(x->st);
		return;
	}
	free(text);
	if(got < x->want || x->left <= 0)
		http_stream_close(x->st); /* export_gone frees x */
	else
		export_arm(x, 0);
}

/* One chunk per loop turn; none while the client has much unread. */
static void export_step(evutil_socket_t fd, short what, void *arg)
{
	struct export *x = arg;
	if(http_stream_backlog(x->st) > EXPORT_BACKLOG) {
		export_arm(x, EXPORT_WAIT_MS);
		return;
	}
	x->want = x->left < EXPORT_CHUNK ? (size_t)x->left : EXPORT_CHUNK;
	x->querying = true;
	int rc = store_audit_query(x->host->store, &x->f, x->want, export_row, export_chunk, x);
	if(rc)
		export_chunk(rc, 0, x);
}

static void start_export(struct host *h, struct oh_http_req *req, json_t *q,
		const struct store_audit_filter *f, enum format fmt, long limit)
{
	struct export *x = calloc(1, sizeof *x);
	if(x)
		x->ev = evtimer_new(h->base, export_step, x);
	if(!x || !x->ev) {
		free(x);
		json_decref(q);
		oh_reply_error(req, 503, "NO_MEMORY", "out of memory");
		return;
	}
	x->host = h;
	x->query = q;
	x->f = *f;
	x->fmt = fmt;
	x->left = limit;
	x->st = http_reply_stream(req, fmt == FMT_CSV ? "text/csv; charset=utf-8" : "application/x-ndjson",
			export_gone, x);
	if(!x->st) {
		export_free(x);
		oh_reply_error(req, 503, "NO_MEMORY", "cannot open the export");
		return;
	}
	if(fmt == FMT_CSV) {
		http_req_add_header(req, "Content-Disposition", "attachment; filename=\"audit.csv\"");
		http_stream_write(x->st, csv_header, sizeof csv_header - 1);
	}
	export_arm(x, 0);
}

/* ---- the route ---------------------------------------------------------------------------- */

static void get_audit(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	struct store_audit_filter f;
	enum format fmt;
	long limit;
	json_t *q = read_query(req, &f, &fmt, &limit);
	if(!q)
		return;
	if(!store_has_audit(h->store)) {
		json_decref(q);
		oh_reply_error(req, 503, "NO_STORE", "this host's store keeps no audit trail (%s)",
				h->store ? store_backend(h->store) : "none");
		return;
	}
	/* What was done a moment ago is in the answer. */
	audit_flush(h);
	if(fmt != FMT_JSON) {
		start_export(h, req, q, &f, fmt, limit);
		return;
	}
	struct page *p = calloc(1, sizeof *p);
	if(p && !(p->records = json_array())) {
		free(p);
		p = NULL;
	}
	if(!p) {
		json_decref(q);
		oh_reply_error(req, 503, "NO_MEMORY", "out of memory");
		return;
	}
	*p = (struct page){.host = h, .req = req, .records = p->records, .limit = (size_t)limit};
	oh_req_on_gone(req, page_gone, p);
	int rc = store_audit_query(h->store, &f, (size_t)limit, page_row, page_done, p);
	json_decref(q);
	if(rc)
		page_done(rc, 0, p);
}

#define AUDIT_RECORD_SCHEMA                                                                                  \
	"{\"type\": \"object\", \"required\": [\"seq\", \"ts\", \"kind\"], \"properties\": {"                \
	"\"seq\": {\"type\": \"integer\"}, \"ts\": {\"type\": \"string\", \"format\": \"date-time\"},"       \
	" \"kind\": {\"type\": \"string\", \"enum\": [\"command\", \"lease\", \"job\", \"route\","           \
	" \"plugin\", \"device\"]}, \"action\": {\"type\": \"string\", \"nullable\": true},"                 \
	" \"actor\": {\"type\": \"string\", \"nullable\": true}, \"requested_by\": {\"type\": \"string\","   \
	" \"nullable\": true}, \"token\": {\"type\": \"string\", \"nullable\": true}, \"device_id\":"        \
	" {\"type\": \"string\", \"nullable\": true}, \"module\": {\"type\": \"string\", \"nullable\":"      \
	" true}, \"req_id\": {\"type\": \"string\", \"nullable\": true}, \"code\": {\"type\": \"string\","   \
	" \"nullable\": true}, \"latency_ms\": {\"type\": \"number\", \"nullable\": true}, \"error\":"       \
	" {\"type\": \"string\", \"nullable\": true}, \"detail\": {\"type\": \"object\", \"nullable\":"      \
	" true}}}"

#define QUERY_PARAM(name, schema, what)                                                                      \
	"{\"name\": \"" name "\", \"in\": \"query\", \"required\": false, \"schema\": " schema               \
	", \"description\": \"" what "\"}"

int api_audit_register(struct host *h)
{
	return http_route_add(h->http, NULL, "GET", "/api/audit", get_audit, h,
			"{\"summary\": \"The audit trail: who did what, when\","
			" \"description\": \"Records of command outcomes, lease and job changes, job runs,"
			" routes, plugin loads and devices (docs/audit.md), newest first. Pages by keyset:"
			" pass next_cursor back as cursor. format=csv (or Accept: text/csv) and format=jsonl"
			" stream every matching record (limit caps them).\","
			" \"parameters\": [" QUERY_PARAM("device_id", "{\"type\": \"string\"}",
					"only this device") ", " QUERY_PARAM("actor", "{\"type\": \"string\"}",
					"only this actor") ", " QUERY_PARAM("action", "{\"type\": \"string\"}",
					"only this action") ", " QUERY_PARAM("code", "{\"type\": \"string\"}",
					"only this result code") ", " QUERY_PARAM("module",
					"{\"type\": \"string\"}", "only this module") ", " QUERY_PARAM("kind",
					"{\"type\": \"string\", \"enum\": [\"command\", \"lease\", \"job\", \"route\","
					" \"plugin\", \"device\"]}",
					"only this kind") ", " QUERY_PARAM("since", "{\"type\": \"string\"}",
					"from this time on (ISO 8601 or epoch seconds)") ", " QUERY_PARAM("until",
					"{\"type\": \"string\"}", "before this time") ", " QUERY_PARAM("limit",
					"{\"type\": \"integer\", \"minimum\": 1}",
					"records per page (default 100, at most 1000; exports: all)") ", " QUERY_PARAM("cursor",
					"{\"type\": \"string\"}",
					"next_cursor of the previous page") ", " QUERY_PARAM("format",
					"{\"type\": \"string\", \"enum\": [\"json\", \"csv\", \"jsonl\"]}",
					"json (a page), csv or jsonl (streamed)") "],"
										  " \"responses\": {\"200\": {\"description\": \"a page, or the export\", \"content\":"
										  " {\"application/json\": {\"schema\": {\"type\": \"object\", \"required\": [\"records\","
										  " \"next_cursor\"], \"properties\": {\"records\": {\"type\": \"array\", \"items\": " AUDIT_RECORD_SCHEMA
										  "}, \"next_cursor\": {\"type\": \"string\", \"nullable\": true,"
										  " \"description\": \"null on the last page\"}, \"enabled\": {\"type\": \"boolean\","
										  " \"description\": \"audit.enabled\"}}}},"
										  " \"text/csv\": {\"schema\": {\"type\": \"string\"}},"
										  " \"application/x-ndjson\": {\"schema\": {\"type\": \"string\"}}}},"
										  " \"400\": {\"description\": \"BAD_REQUEST: a parameter is wrong (named)\"},"
										  " \"503\": {\"description\": \"STORE: the store cannot be read now\"}}}");
}
