/*
 * The scheduler as plugins and clients see it: the oh_scheduler_* and
 * oh_job_* functions of include/oh/host.h, the `schedule`, `unschedule` and
 * `jobs` actions, and the REST routes under /api/{module}/jobs.
 *
 * Requests are checked with the one validator (include/oh/validate.h), a
 * table per object, so every BAD_REQUEST names the field, down to
 * "commands[2].action"; unknown keys are refused.  Each command then goes
 * through the module's own check, the one its command topic uses, so a job
 * is refused exactly when the command sent directly would be (an unknown
 * action is BAD_ACTION on both roads).  Ack codes map to HTTP statuses in one place,
 * http_status().  A job past limits.max_jobs or max_jobs_per_actor is
 * refused with LIMIT (HTTP 507: jobs are storage), naming the limit.
 */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/validate.h"

#include "plugin_ctx.h"
#include "strmap.h"
#include "timeutil.h"
#include "utf8.h"

#define PARAMS_MAX_BYTES 16384 /* what the devices accept (device-agent-protocol.md) */

/* ---- declarative validation ---------------------------------------------- */

/* A job's command; the module's own check (oh_job_validate_fn) then looks
 * at its action and params.  device_id may be absent only where the
 * module's check allows it (an action naming no one device, as NDI's
 * apply_preset) and that check was written for minor OH_ABI_MINOR_DOCS or
 * later; otherwise it is required (check_commands). */
static const struct oh_vfield command_fields[] = {
		OH_VFIELD("device_id", OH_VT_STRING, 0, .check = oh_vcheck_device_id),
		OH_VFIELD("action", OH_VT_STRING, OH_VF_REQUIRED | OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 64),
		OH_VFIELD("params", OH_VT_OBJECT, 0),
		OH_VFIELD_END,
};
static const struct oh_vobject command_spec = OH_VOBJECT(command_fields, OH_V_REFUSE);

/* The `schedule` params; the REST body is the same plus who asks. */
#define SCHEDULE_FIELDS                                                                                      \
	OH_VFIELD("at", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 64),                           \
			OH_VFIELD("cron", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 200),        \
			OH_VFIELD("commands", OH_VT_ARRAY, OH_VF_REQUIRED | OH_VF_MIN | OH_VF_MAX, .min = 1, \
					.max = SCHED_MAX_COMMANDS, .object = &command_spec),                 \
			OH_VFIELD("tz", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = TZ_NAME_MAX),  \
			OH_VFIELD("name", OH_VT_STRING, OH_VF_MAX, .max = SCHED_NAME_MAX)

static const struct oh_vfield schedule_fields[] = {SCHEDULE_FIELDS, OH_VFIELD_END};
static const struct oh_vobject schedule_spec = OH_VOBJECT(schedule_fields, OH_V_REFUSE);
static const struct oh_vfield post_fields[] = {
		SCHEDULE_FIELDS,
		OH_VFIELD("actor", OH_VT_STRING, OH_VF_MIN | OH_VF_MAX, .min = 1, .max = 120),
		OH_VFIELD_END,
};
static const struct oh_vobject post_spec = OH_VOBJECT(post_fields, OH_V_REFUSE);

static const struct oh_vfield unschedule_fields[] = {
		OH_VFIELD("job_id", OH_VT_STRING, OH_VF_REQUIRED),
		OH_VFIELD_END,
};
static const struct oh_vobject unschedule_spec = OH_VOBJECT(unschedule_fields, OH_V_REFUSE);
static const struct oh_vfield jobs_fields[] = {OH_VFIELD("owner", OH_VT_STRING, 0), OH_VFIELD_END};
static const struct oh_vobject jobs_spec = OH_VOBJECT(jobs_fields, OH_V_REFUSE);

/* The commands array (its shape checked by the table), passed through the
 * module's check and normalised to [{device_id, action, params}] (returned
 * in *out).  OH_ERR_NOT_FOUND: the module does not know an action. */
static int check_commands(struct sched_plugin *sp, const json_t *cmds, json_t **out, char *err, size_t errlen)
{
	json_t *norm = json_array();
	size_t i;
	const json_t *c;
	int rc = OH_ERR_INVAL;
	json_array_foreach(cmds, i, c)
	{
		char prefix[32];
		snprintf(prefix, sizeof prefix, "commands[%zu].", i);
		const char *dev = json_string_value(json_object_get(c, "device_id"));
		const json_t *params = json_object_get(c, "params");
		/* Only a check written for minor OH_ABI_MINOR_DOCS or later knows
		 * it may be handed a command without one. */
		bool module_decides = sp->validate && sp->ctx->desc &&
				sp->ctx->desc->abi_minor >= OH_ABI_MINOR_DOCS;
		if(!dev && !module_decides) {
			snprintf(err, errlen, "%sdevice_id: missing (expected a string)", prefix);
			goto fail;
		}
		json_t *item = json_pack("{s:s?, s:s, s:o}", "device_id", dev, "action",
				json_string_value(json_object_get(c, "action")), "params",
				json_is_object(params) ? json_deep_copy(params) : json_object());
		json_array_append_new(norm, item);
		char *text = json_dumps(json_object_get(item, "params"), JSON_COMPACT);
		size_t len = text ? strlen(text) : 0;
		free(text);
		if(len > PARAMS_MAX_BYTES) {
			snprintf(err, errlen, "%sparams: %zu bytes once serialised, devices accept at most %d",
					prefix, len, PARAMS_MAX_BYTES);
			goto fail;
		}
		if(sp->validate) {
			char why[256] = "";
			int vrc = sp->validate(sp->ctx, item, why, sizeof why);
			if(vrc) {
				snprintf(err, errlen, "%s%s", prefix, why[0] ? why : "refused by the module");
				rc = vrc == OH_ERR_NOT_FOUND ? OH_ERR_NOT_FOUND : OH_ERR_INVAL;
				goto fail;
			}
		}
	}
	*out = norm;
	return OH_OK;
fail:
	json_decref(norm);
	return rc;
}

/* The ack code of a refused job: BAD_ACTION when the module does not know
 * a command's action, BAD_REQUEST for any other invalid field. */
static const char *refusal_code(int rc)
{
	return rc == OH_ERR_INVAL ? "BAD_REQUEST" : rc == OH_ERR_NOT_FOUND ? "BAD_ACTION" : "ERROR";
}

/* {"limit": name, "value": N}, the details of a LIMIT refusal (returned). */
static json_t *limit_details(const struct scheduler *s, const char *limit)
{
	return json_pack("{s:s, s:I}", "limit", limit, "value", (json_int_t)config_limit(&s->h->cfg, limit));
}

/* Validates `schedule` params and creates the job.  OH_ERR_TOO_LARGE: a
 * limit was reached, *limit names it ("max_jobs") and err says so. */
static int create(struct sched_plugin *sp, const json_t *params, const struct oh_vobject *spec,
		const char *owner, struct job **out, const char **limit, char *err, size_t errlen)
{
	struct scheduler *s = sp->s;
	struct host *h = s->h;
	/* Fields are named as in the params (or the REST body): "commands[0].action".
	 * spec NULL: the caller checked them already. */
	if(spec && !json_is_object(params)) {
		snprintf(err, errlen, "params: expected an object");
		return OH_ERR_INVAL;
	}
	int rc = spec ? oh_json_validate(params, spec, "", NULL, err, errlen) : OH_OK;
	if(rc)
		return rc;
	const char *at = json_string_value(json_object_get(params, "at"));
	const char *cron = json_string_value(json_object_get(params, "cron"));
	if(!at == !cron) {
		snprintf(err, errlen,
				at ? "at: give either at or cron, not both"
				   : "at: one of at (an ISO 8601 time) or cron (a crontab expression) is required");
		return OH_ERR_INVAL;
	}
	struct job_req r;
	memset(&r, 0, sizeof r);
	r.owner = owner && *owner ? owner : "anonymous";
	r.name = json_string_value(json_object_get(params, "name"));
	r.tz = json_string_value(json_object_get(params, "tz"));
	if(!r.tz)
		r.tz = h->cfg.timezone && *h->cfg.timezone ? h->cfg.timezone : "UTC";
	if(!tz_valid(r.tz)) {
		snprintf(err, errlen, "tz: \"%.*s\" is not a known IANA time zone", oh_utf8_cut(r.tz, 64),
				r.tz);
		return OH_ERR_INVAL;
	}
	double now = s->now();
	char why[256] = "";
	if(cron) {
		r.kind = JOB_CRON;
		r.spec = cron;
		if(cron_parse(cron, &r.cron, why, sizeof why)) {
			snprintf(err, errlen, "cron: %s", why);
			return OH_ERR_INVAL;
		}
		time_t next;
		rc = cron_next(&r.cron, r.tz, (time_t)now, &next);
		if(rc) {
			snprintf(err, errlen,
					rc == OH_ERR_NOT_FOUND ? "cron: \"%s\" never fires"
							       : "cron: \"%s\" cannot be evaluated",
					cron);
			return OH_ERR_INVAL;
		}
		r.due = next;
	} else {
		r.kind = JOB_AT;
		r.spec = at;
		time_t t;
		if(time_parse_iso8601(at, r.tz, &t, why, sizeof why)) {
			snprintf(err, errlen, "at: %s", why);
			return OH_ERR_INVAL;
		}
		double grace = h->cfg.misfire_grace_s;
		if(now - (double)t > grace) {
			snprintf(err, errlen, "at: %s is %.0f s in the past (misfire_grace_s is %g)", at,
					now - (double)t, grace);
			return OH_ERR_INVAL;
		}
		/* Just past, within the grace: it runs at once. */
		r.due = t;
	}
	json_t *cmds = NULL;
	rc = check_commands(sp, json_object_get(params, "commands"), &cmds, err, errlen);
	if(rc)
		return rc;
	r.commands = cmds;
	rc = sched__add(sp, &r, out);
	json_decref(cmds);
	if(rc == OH_ERR_TOO_LARGE) {
		/* sched__add checks max_jobs first, so a full table means that one. */
		bool all = config_limit_reached(h->cfg.limits.max_jobs, scheduler_count(s));
		*limit = all ? "max_jobs" : "max_jobs_per_actor";
		if(all)
			snprintf(err, errlen, "limits.max_jobs (%ld) reached", h->cfg.limits.max_jobs);
		else
			snprintf(err, errlen, "limits.max_jobs_per_actor (%ld) reached for %.120s",
					h->cfg.limits.max_jobs_per_actor, r.owner);
	} else if(rc) {
		snprintf(err, errlen,
				rc == OH_ERR_IO ? "the job could not be stored, so it is not scheduled" : "%s",
				oh_strerror(rc));
	}
	return rc;
}

static int job_cmp(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	if(x->state != y->state)
		return x->state < y->state ? -1 : 1;
	if(x->due != y->due)
		return x->due < y->due ? -1 : 1;
	return strcmp(x->id, y->id);
}

json_t *sched__list(struct sched_plugin *sp, const char *owner)
{
	/* A standby fires none: it shows the leader's, as last read. */
	if(!ha_acting(sp->s->h))
		return ha_view_jobs(sp->s->h, sp->ctx->module, owner, NULL);
	struct job **all = malloc((sp->n_jobs ? sp->n_jobs : 1) * sizeof *all);
	if(!all)
		return NULL;
	size_t n = 0;
	struct strmap_iter it;
	strmap_iter_init(&it, sp->s->jobs);
	void *v;
	while(strmap_iter_next(&it, NULL, &v)) {
		struct job *j = v;
		if(j->sp == sp && n < sp->n_jobs && (!owner || !strcmp(owner, j->owner)))
			all[n++] = j;
	}
	qsort(all, n, sizeof *all, job_cmp);
	json_t *out = json_array();
	for(size_t i = 0; i < n; i++)
		json_array_append_new(out, sched__job_json(all[i]));
	free(all);
	return out;
}

/* ---- the public API ---------------------------------------------------------- */

int oh_scheduler_register(oh_ctx *ctx, oh_job_exec_fn exec, void *ud, oh_job_validate_fn validate)
{
	struct scheduler *s = ctx->host->scheduler;
	if(!s || !exec)
		return OH_ERR_INVAL;
	if(ctx->sched)
		return OH_ERR_EXISTS;
	struct sched_plugin *sp = calloc(1, sizeof *sp);
	if(!sp)
		return OH_ERR_NOMEM;
	sp->s = s;
	sp->ctx = ctx;
	sp->exec = exec;
	sp->ud = ud;
	sp->validate = validate;
	ctx->sched = sp;
	/* Routes mounted so far are removed with the plugin's other routes. */
	int rc = ctx->host->http ? sched__routes(sp) : OH_OK;
	if(!rc)
		rc = sched__load_plugin(sp);
	/* Jobs restored before a failure go with it. */
	if(rc)
		scheduler_forget_plugin(s, ctx);
	return rc;
}

static json_t *bad(const struct oh_command *cmd, const char *owner, const char *code, const char *msg,
		json_t *details)
{
	return oh_ack_new(cmd->req_id, false, code, cmd->action, owner, msg, details);
}

json_t *oh_scheduler_command(oh_ctx *ctx, const struct oh_command *cmd)
{
	const char *action = cmd->action;
	if(!action || (strcmp(action, "schedule") && strcmp(action, "unschedule") && strcmp(action, "jobs")))
		return NULL;
	const char *owner = cmd->actor && *cmd->actor ? cmd->actor : "anonymous";
	struct sched_plugin *sp = ctx->sched;
	char err[512];
	if(!sp) {
		snprintf(err, sizeof err, "module %s does not run scheduled jobs", ctx->module);
		return bad(cmd, owner, "BAD_REQUEST", err, NULL);
	}
	const json_t *params = cmd->params;
	if(!strcmp(action, "schedule")) {
		struct job *j;
		const char *limit = NULL;
		int rc = create(sp, params, &schedule_spec, owner, &j, &limit, err, sizeof err);
		if(rc == OH_ERR_TOO_LARGE)
			return bad(cmd, owner, "LIMIT", err, limit_details(sp->s, limit));
		if(rc)
			return bad(cmd, owner, refusal_code(rc), err, NULL);
		json_t *job = sched__job_json(j);
		json_t *details = json_pack("{s:s, s:O, s:O, s:O, s:s}", "job_id", j->id, "next_run",
				json_object_get(job, "next_run"), "name", json_object_get(job, "name"),
				"spec", json_object_get(job, "spec"), "tz", j->tz);
		json_decref(job);
		return oh_ack_new(cmd->req_id, true, "SCHEDULED", action, owner, NULL, details);
	}
	if(!strcmp(action, "unschedule")) {
		if(oh_json_validate(params, &unschedule_spec, "", NULL, err, sizeof err))
			return bad(cmd, owner, "BAD_REQUEST", err, NULL);
		const json_t *id = json_object_get(params, "job_id");
		struct job *j = sched__find(sp, json_string_value(id));
		if(!j) {
			snprintf(err, sizeof err, "no job %.*s in module %s",
					oh_utf8_cut(json_string_value(id), 64), json_string_value(id),
					ctx->module);
			return bad(cmd, owner, "NOT_FOUND", err, json_pack("{s:O}", "job_id", id));
		}
		if(strcmp(j->owner, owner)) {
			snprintf(err, sizeof err, "job %s belongs to %s", j->id, j->owner);
			return bad(cmd, owner, "NOT_OWNER", err,
					json_pack("{s:s, s:s}", "job_id", j->id, "owner", j->owner));
		}
		char jid[SCHED_ID_LEN + 1];
		snprintf(jid, sizeof jid, "%s", j->id);
		if(sched__remove(j))
			return bad(cmd, owner, "ERROR", "the store failed; the job is still scheduled", NULL);
		return oh_ack_new(cmd->req_id, true, "OK", action, owner, NULL,
				json_pack("{s:s}", "job_id", jid));
	}
	if(oh_json_validate(params, &jobs_spec, "", NULL, err, sizeof err))
		return bad(cmd, owner, "BAD_REQUEST", err, NULL);
	const json_t *who = json_object_get(params, "owner");
	json_t *jobs = sched__list(sp, json_string_value(who));
	if(!jobs)
		return NULL;
	return oh_ack_new(cmd->req_id, true, "OK", action, owner, NULL,
			json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(jobs), "jobs", jobs));
}

int oh_job_add(oh_ctx *ctx, const char *owner, const json_t *params, char *job_id, char *err, size_t errlen)
{
	if(!ctx->sched) {
		snprintf(err, errlen, "module %s does not run scheduled jobs", ctx->module);
		return OH_ERR_DENIED;
	}
	struct job *j;
	const char *limit = NULL;
	int rc = create(ctx->sched, params, &schedule_spec, owner, &j, &limit, err, errlen);
	if(!rc && job_id)
		snprintf(job_id, SCHED_ID_LEN + 1, "%s", j->id);
	return rc;
}

int oh_job_remove(oh_ctx *ctx, const char *job_id, const char *actor)
{
	struct job *j = ctx->sched ? sched__find(ctx->sched, job_id) : NULL;
	if(!j)
		return OH_ERR_NOT_FOUND;
	if(actor && strcmp(actor, j->owner))
		return OH_ERR_NOT_OWNER;
	return sched__remove(j);
}

json_t *oh_job_list(oh_ctx *ctx, const char *owner)
{
	return ctx->sched ? sched__list(ctx->sched, owner) : json_array();
}

json_t *oh_job_get(oh_ctx *ctx, const char *job_id)
{
	struct job *j = ctx->sched ? sched__find(ctx->sched, job_id) : NULL;
	return j ? sched__job_json(j) : NULL;
}

/* ---- REST ---------------------------------------------------------------------- */

/* The one map from ack codes to HTTP statuses. */
static unsigned http_status(const char *code)
{
	static const struct {
		const char *code;
		unsigned status;
	} map[] = {
			{"OK", 200},
			{"SCHEDULED", 201},
			{"BAD_REQUEST", 400},
			{"BAD_ACTION", 400},
			{"NOT_OWNER", 403},
			{"NOT_FOUND", 404},
			{"LIMIT", 507},
	};
	for(size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		if(!strcmp(map[i].code, code))
			return map[i].status;
	}
	return 500;
}

static void reply_err(struct oh_http_req *req, const char *code, const char *msg)
{
	oh_reply_error(req, http_status(code), code, "%s", msg);
}

static void get_jobs(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	/* The plugin's registration, not ud: it is gone if registering failed. */
	struct sched_plugin *sp = ctx->sched;
	if(!sp) {
		oh_reply_error(req, 404, "NOT_FOUND", "%s schedules no jobs", oh_module(ctx));
		return;
	}
	json_t *jobs = sched__list(sp, oh_req_query(req, "owner"));
	if(!jobs) {
		reply_err(req, "ERROR", "out of memory");
		return;
	}
	oh_reply_json(req, 200,
			json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(jobs), "jobs", jobs));
}

static void post_job(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	/* The plugin's registration, not ud: it is gone if registering failed. */
	struct sched_plugin *sp = ctx->sched;
	if(!sp) {
		oh_reply_error(req, 404, "NOT_FOUND", "%s schedules no jobs", oh_module(ctx));
		return;
	}
	const json_t *body = oh_req_body(req);
	char err[512];
	if(oh_json_validate(body, &post_spec, "", NULL, err, sizeof err)) {
		reply_err(req, "BAD_REQUEST", err);
		return;
	}
	/* Until tokens arrive the requester names itself; the authenticated
	 * caller wins once there is one. */
	const char *owner = oh_req_actor(req);
	if(!owner)
		owner = json_string_value(json_object_get(body, "actor"));
	if(!owner)
		owner = "api";
	struct job *j;
	const char *limit = NULL;
	int rc = create(sp, body, NULL, owner, &j, &limit, err, sizeof err);
	if(rc == OH_ERR_TOO_LARGE) {
		oh_reply_json(req, http_status("LIMIT"),
				json_pack("{s:{s:s, s:s, s:o}}", "error", "code", "LIMIT", "message", err,
						"details", limit_details(sp->s, limit)));
		return;
	}
	if(rc) {
		reply_err(req, refusal_code(rc), err);
		return;
	}
	oh_reply_json(req, http_status("SCHEDULED"), sched__job_json(j));
}

static void get_job(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	/* The plugin's registration, not ud: it is gone if registering failed. */
	struct sched_plugin *sp = ctx->sched;
	if(!sp) {
		oh_reply_error(req, 404, "NOT_FOUND", "%s schedules no jobs", oh_module(ctx));
		return;
	}
	const char *id = oh_req_param(req, "id");
	/* A standby holds no jobs: it shows the leader's, as last read. */
	if(!ha_acting(sp->s->h)) {
		json_t *one = id ? ha_view_jobs(sp->s->h, sp->ctx->module, NULL, id) : NULL;
		json_t *found = json_incref(json_array_get(one, 0));
		json_decref(one);
		if(found)
			oh_reply_json(req, 200, found);
		else
			reply_err(req, "NOT_FOUND", "no such job");
		return;
	}
	struct job *j = sched__find(sp, id);
	if(!j) {
		reply_err(req, "NOT_FOUND", "no such job");
		return;
	}
	oh_reply_json(req, 200, sched__job_json(j));
}

static void delete_job(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	/* The plugin's registration, not ud: it is gone if registering failed. */
	struct sched_plugin *sp = ctx->sched;
	if(!sp) {
		oh_reply_error(req, 404, "NOT_FOUND", "%s schedules no jobs", oh_module(ctx));
		return;
	}
	struct job *j = sched__find(sp, oh_req_param(req, "id"));
	if(!j) {
		reply_err(req, "NOT_FOUND", "no such job");
		return;
	}
	/* Without authentication anyone may delete (as anyone could claim any
	 * name); with it, only the owner or an admin. */
	const char *actor = oh_req_actor(req);
	if(actor && strcmp(actor, j->owner) && oh_req_role(req) < OH_ROLE_ADMIN) {
		char msg[256];
		snprintf(msg, sizeof msg, "job %s belongs to %s", j->id, j->owner);
		reply_err(req, "NOT_OWNER", msg);
		return;
	}
	json_t *doc = sched__job_json(j);
	if(sched__remove(j)) {
		json_decref(doc);
		reply_err(req, "ERROR", "the store failed; the job is still scheduled");
		return;
	}
	oh_reply_json(req, 200, json_pack("{s:b, s:o}", "deleted", true, "job", doc));
}

static const char JOB_SCHEMA[] =
		"{\"type\": \"object\", \"required\": [\"id\", \"module\", \"owner\", \"spec\", \"tz\","
		" \"commands\", \"state\"], \"properties\": {"
		"\"id\": {\"type\": \"string\"}, \"module\": {\"type\": \"string\"},"
		"\"owner\": {\"type\": \"string\"}, \"name\": {\"type\": \"string\", \"nullable\": true},"
		"\"spec\": {\"type\": \"object\", \"description\": \"{\\\"at\\\": ISO 8601} or {\\\"cron\\\": 5-field crontab}\"},"
		"\"tz\": {\"type\": \"string\"}, \"commands\": {\"type\": \"array\", \"items\": {\"type\": \"object\"}},"
		"\"created\": {\"type\": \"string\"}, \"next_run\": {\"type\": \"string\", \"nullable\": true},"
		"\"last_run\": {\"type\": \"string\", \"nullable\": true},"
		"\"last_result\": {\"type\": \"object\", \"nullable\": true},"
		"\"state\": {\"type\": \"string\", \"enum\": [\"scheduled\", \"done\"]}}}";

int sched__routes(struct sched_plugin *sp)
{
	char list_doc[2048], post_doc[3072], get_doc[2048], del_doc[2048];
	snprintf(list_doc, sizeof list_doc,
			"{\"summary\": \"List scheduled jobs\", \"parameters\": [{\"name\": \"owner\", \"in\": \"query\","
			" \"required\": false, \"schema\": {\"type\": \"string\"}}], \"responses\": {\"200\": {"
			"\"description\": \"{count, jobs}\", \"content\": {\"application/json\": {\"schema\": {"
			"\"type\": \"object\", \"required\": [\"count\", \"jobs\"], \"properties\": {\"count\": {\"type\": \"integer\"}, \"jobs\": {"
			"\"type\": \"array\", \"items\": %s}}}}}}}}",
			JOB_SCHEMA);
	snprintf(post_doc, sizeof post_doc,
			"{\"summary\": \"Schedule a job\", \"description\": \"Exactly one of at (ISO 8601; without an"
			" offset it is read in tz) or cron (5-field crontab, evaluated in tz). tz defaults to the"
			" host's timezone setting. The job is stored before the reply.\","
			" \"requestBody\": {\"required\": true, \"content\": {\"application/json\": {\"schema\": {"
			"\"type\": \"object\", \"required\": [\"commands\"], \"properties\": {"
			"\"at\": {\"type\": \"string\"}, \"cron\": {\"type\": \"string\"}, \"tz\": {\"type\": \"string\"},"
			" \"name\": {\"type\": \"string\", \"maxLength\": 200}, \"actor\": {\"type\": \"string\"},"
			" \"commands\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 100, \"items\": {"
			"\"type\": \"object\", \"required\": [\"action\"], \"properties\": {"
			"\"device_id\": {\"type\": \"string\"}, \"action\": {\"type\": \"string\"},"
			" \"params\": {\"type\": \"object\"}}}}}}}}},"
			" \"responses\": {\"201\": {\"description\": \"the job\", \"content\": {\"application/json\":"
			" {\"schema\": %s}}}, \"400\": {\"description\": \"BAD_REQUEST: invalid; the message names"
			" the field\"}, \"500\": {\"description\": \"ERROR: the job could not be stored\"},"
			" \"507\": {\"description\": \"LIMIT: limits.max_jobs or limits.max_jobs_per_actor"
			" reached (error.details.limit names it)\"}}}",
			JOB_SCHEMA);
	snprintf(get_doc, sizeof get_doc,
			"{\"summary\": \"One scheduled job\", \"responses\": {\"200\": {\"description\": \"the job\","
			" \"content\": {\"application/json\": {\"schema\": %s}}}, \"404\": {\"description\":"
			" \"NOT_FOUND: no such job\"}}}",
			JOB_SCHEMA);
	snprintf(del_doc, sizeof del_doc,
			"{\"summary\": \"Unschedule a job\", \"responses\": {\"200\": {\"description\":"
			" \"{deleted: true, job}\", \"content\": {\"application/json\": {\"schema\": {\"type\":"
			" \"object\", \"required\": [\"deleted\", \"job\"], \"properties\": {\"deleted\":"
			" {\"type\": \"boolean\"}, \"job\": %s}}}}}, \"404\": {\"description\": \"NOT_FOUND: no"
			" such job\"}, \"403\": {\"description\": \"NOT_OWNER: the authenticated caller does not"
			" own the job\"}, \"500\": {\"description\": \"ERROR: the store failed; the job is still"
			" scheduled\"}}}",
			JOB_SCHEMA);
	oh_ctx *ctx = sp->ctx;
	int rc = oh_route(ctx, "GET", "/jobs", get_jobs, NULL, list_doc);
	if(!rc)
		rc = oh_route(ctx, "POST", "/jobs", post_job, NULL, post_doc);
	if(!rc)
		rc = oh_route(ctx, "GET", "/jobs/{id}", get_job, NULL, get_doc);
	if(!rc)
		rc = oh_route(ctx, "DELETE", "/jobs/{id}", delete_job, NULL, del_doc);
	return rc;
}
