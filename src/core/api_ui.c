/*
 * The web UI: plain HTML, CSS and JavaScript compiled into the daemon
 * (src/web/, see cmake/embed.cmake), no build step and nothing fetched from
 * elsewhere.
 *
 * Every page is src/web/shell.html with its {{TOKENS}} filled in at request
 * time: the header with navigation and the broker-state badge, the page's
 * main content and its script.  The home page and the devices page are the
 * core's; a plugin's page (oh_ui_page) is its own HTML placed in the same
 * shell, its script served at /ui/{module}/page.js.  Plugin HTML is trusted
 * (it ships with the daemon); titles, names and errors are escaped, and
 * device data only ever reaches the DOM through textContent (app.js), which
 * the Content-Security-Policy (no inline script or style) backs up.
 *
 * Pages are rendered per request: a few kilobytes of copying, cheaper than
 * keeping a cache in step with plugins and the broker state.
 */
#include "plugin_ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "events.h"
#include "http.h"
#include "mqtt_link.h"
#include "strbuf.h"

#define WEB_DIR "src/web/"
#define HTML_TYPE "text/html; charset=utf-8"
#define JS_TYPE "text/javascript; charset=utf-8"

/* Text made safe for element content and quoted attribute values. */
static void sb_esc(struct strbuf *b, const char *s)
{
	if(!s)
		return;
	const char *run = s;
	for(; *s; s++) {
		const char *rep = NULL;
		switch(*s) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			continue;
		}
		strbuf_add(b, run, (size_t)(s - run));
		strbuf_puts(b, rep);
		run = s + 1;
	}
	strbuf_add(b, run, (size_t)(s - run));
}

__attribute__((format(printf, 2, 3))) static void sb_printf_esc(struct strbuf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	sb_esc(b, tmp);
}

/* ---- the shell ------------------------------------------------------------------ */

struct page {
	const char *id;      /* "home", "devices", "docs", a module, "" */
	const char *title;   /* plain text */
	const char *content; /* trusted HTML */
	const char *script;  /* URL of the page's script, or NULL */
};

static bool has_page(const oh_ctx *c)
{
	/* /ui/devices and /ui/activity are the core's; a plugin named so
	 * cannot take them. */
	return c->loaded && c->ui_title && c->ui_html && strcmp(c->module, "devices") &&
			strcmp(c->module, "activity");
}

static void nav_link(struct strbuf *b, const char *href, const char *label, bool current)
{
	strbuf_puts(b, "<a href=\"");
	sb_esc(b, href);
	strbuf_puts(b, current ? "\" aria-current=\"page\">" : "\">");
	sb_esc(b, label);
	strbuf_puts(b, "</a>");
}

static void render_nav(struct host *h, struct strbuf *b, const char *current)
{
	nav_link(b, "/", "Home", !strcmp(current, "home"));
	nav_link(b, "/ui/devices", "Devices", !strcmp(current, "devices"));
	nav_link(b, "/ui/activity", "Activity", !strcmp(current, "activity"));
	for(size_t i = 0; i < h->n_plugins; i++) {
		oh_ctx *c = h->plugins[i];
		if(!has_page(c))
			continue;
		char href[96];
		snprintf(href, sizeof href, "/ui/%s", c->module);
		nav_link(b, href, c->ui_title, !strcmp(current, c->module));
	}
	nav_link(b, "/docs", "API docs", !strcmp(current, "docs"));
}

static bool broker_up(struct host *h)
{
	return h->link && mqtt_link_connected(h->link);
}

/* On a pair (docs/ha.md): which node this is, its role, and a link to
 * the leader; nothing on a single host. */
static void render_ha(struct host *h, struct strbuf *b)
{
	if(!ha_paired(h))
		return;
	json_t *health = json_object();
	ha_health(h, health);
	const char *role = json_string_value(json_object_get(health, "role"));
	json_t *leader = json_object_get(health, "leader");
	const char *lnode = json_string_value(json_object_get(leader, "node_id"));
	const char *lurl = json_string_value(json_object_get(leader, "advertise_url"));
	strbuf_puts(b, "<span id=\"ha-node\" class=\"badge\" data-role=\"");
	sb_esc(b, role);
	strbuf_puts(b, "\" title=\"This node and the leader (docs/ha.md)\">node ");
	sb_esc(b, h->cfg.ha.node_id);
	strbuf_puts(b, " · ");
	sb_esc(b, role);
	if(strcmp(role, "leader")) {
		strbuf_puts(b, " · leader ");
		if(lurl) {
			strbuf_puts(b, "<a href=\"");
			sb_esc(b, lurl);
			strbuf_puts(b, "\">");
		}
		sb_esc(b, lnode ? lnode : "unknown");
		if(lurl)
			strbuf_puts(b, "</a>");
	}
	strbuf_puts(b, "</span>");
	json_decref(health);
}

/* Fills shell.html; returns the page (free()) or NULL. */
static char *render(struct host *h, const struct page *p, size_t *len)
{
	const struct embedded_file *shell = embedded_find(WEB_DIR "shell.html");
	if(!shell)
		return NULL;
	struct strbuf b = {0};
	const char *t = (const char *)shell->data, *end = t + shell->len;
	while(t < end) {
		const char *open = memmem(t, (size_t)(end - t), "{{", 2);
		if(!open) {
			strbuf_add(&b, t, (size_t)(end - t));
			break;
		}
		strbuf_add(&b, t, (size_t)(open - t));
		const char *close = memmem(open, (size_t)(end - open), "}}", 2);
		if(!close) {
			strbuf_add(&b, open, (size_t)(end - open));
			break;
		}
		size_t n = (size_t)(close - open - 2);
		const char *name = open + 2;
#define IS(tok) (n == sizeof tok - 1 && !memcmp(name, tok, n))
		if(IS("TITLE")) {
			sb_esc(&b, p->title);
		} else if(IS("PAGE")) {
			sb_esc(&b, p->id);
		} else if(IS("NAV")) {
			render_nav(h, &b, p->id);
		} else if(IS("BROKER_STATE")) {
			strbuf_puts(&b, broker_up(h) ? "connected" : "disconnected");
		} else if(IS("HA")) {
			render_ha(h, &b);
		} else if(IS("SCRIPT")) {
			if(p->script) {
				strbuf_puts(&b, "<script src=\"");
				sb_esc(&b, p->script);
				strbuf_puts(&b, "\" defer></script>");
			}
		} else if(IS("CONTENT")) {
			strbuf_puts(&b, p->content);
		} else {
			strbuf_add(&b, open, (size_t)(close + 2 - open)); /* not ours: as is */
		}
#undef IS
		t = close + 2;
	}
	if(b.failed) {
		free(b.data);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

static void reply_page(struct host *h, struct oh_http_req *req, unsigned status, const struct page *p)
{
	size_t len = 0;
	char *html = render(h, p, &len);
	if(!html) {
		oh_reply_error(req, 500, "INTERNAL", "cannot render the page");
		return;
	}
	http_reply_copy(req, status, HTML_TYPE, html, len);
	free(html);
}

static bool wants_html(struct oh_http_req *req)
{
	const char *accept = oh_req_header(req, "Accept");
	return accept && strstr(accept, "text/html");
}

/* 404 as a page for browsers, as the usual JSON error for everyone else. */
static void not_found(struct host *h, struct oh_http_req *req, const char *what)
{
	if(!wants_html(req)) {
		oh_reply_error(req, 404, "NOT_FOUND", "%s", what);
		return;
	}
	struct strbuf b = {0};
	strbuf_puts(&b, "<section class=\"card\"><p class=\"error\">");
	sb_esc(&b, what);
	strbuf_puts(&b, "</p><p><a href=\"/\">Back to the start page</a></p></section>");
	struct page p = {"", "Not found", b.failed ? "" : b.data, NULL};
	reply_page(h, req, 404, &p);
	free(b.data);
}

/* ---- pages ------------------------------------------------------------------------ */

static void get_home(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	bool up = broker_up(h);
	struct strbuf b = {0};
	strbuf_puts(&b,
			"<section class=\"card\" aria-labelledby=\"broker-h\">"
			"<h2 id=\"broker-h\">Broker</h2><p><span class=\"badge\" data-broker-badge data-state=\"");
	strbuf_puts(&b, up ? "connected\">connected" : "disconnected\">disconnected");
	strbuf_puts(&b, "</span> <span class=\"muted\">");
	sb_printf_esc(&b, "mqtt://%s:%d", h->cfg.mqtt.host, h->cfg.mqtt.port);
	strbuf_puts(&b, "</span></p></section>");

	strbuf_puts(&b,
			"<section class=\"card\" aria-labelledby=\"devices-h\">"
			"<h2 id=\"devices-h\">Devices</h2><p><span id=\"device-count\">");
	sb_printf_esc(&b, "%zu", registry_size(h->registry));
	strbuf_puts(&b,
			"</span> known, <span id=\"online-count\">?</span> online, "
			"<span id=\"stale-count\">?</span> stale. <a href=\"/ui/devices\">Show devices</a>"
			"</p></section>");

	strbuf_puts(&b,
			"<section class=\"card\" aria-labelledby=\"plugins-h\">"
			"<h2 id=\"plugins-h\">Plugins</h2>");
	if(!h->n_plugins)
		strbuf_puts(&b, "<p class=\"muted\">No plugins configured.</p>");
	else
		strbuf_puts(&b, "<ul class=\"plugins\" id=\"plugin-list\">");
	for(size_t i = 0; i < h->n_plugins; i++) {
		oh_ctx *c = h->plugins[i];
		strbuf_puts(&b, "<li data-module=\"");
		sb_esc(&b, c->module);
		strbuf_puts(&b, "\"><span class=\"plugin-name\">");
		if(has_page(c)) {
			strbuf_puts(&b, "<a href=\"/ui/");
			sb_esc(&b, c->module);
			strbuf_puts(&b, "\">");
			sb_esc(&b, c->ui_title);
			strbuf_puts(&b, "</a>");
		} else {
			sb_esc(&b, c->loaded && c->desc && c->desc->name ? c->desc->name : c->module);
		}
		strbuf_puts(&b, "</span> <code>");
		sb_esc(&b, c->module);
		strbuf_puts(&b, "</code>");
		if(c->loaded && c->desc && c->desc->version) {
			strbuf_puts(&b, " <span class=\"muted\">");
			sb_esc(&b, c->desc->version);
			strbuf_puts(&b, "</span>");
		}
		if(c->loaded) {
			strbuf_puts(&b, " <span class=\"badge ok\">loaded</span>");
		} else {
			strbuf_puts(&b, " <span class=\"badge bad\">not loaded</span> <span class=\"error\">");
			sb_esc(&b, c->error);
			strbuf_puts(&b, "</span>");
		}
		strbuf_puts(&b, "</li>");
	}
	if(h->n_plugins)
		strbuf_puts(&b, "</ul>");
	strbuf_puts(&b, "</section>");
	if(b.failed) {
		free(b.data);
		oh_reply_error(req, 500, "INTERNAL", "out of memory");
		return;
	}
	struct page p = {"home", "Orchestrator", b.data, "/static/home.js"};
	reply_page(h, req, 200, &p);
	free(b.data);
}

/* A page whose content is a fixed fragment under src/web/. */
static void reply_fragment(struct host *h, struct oh_http_req *req, const char *id, const char *title,
		const char *file, const char *script)
{
	const struct embedded_file *f = embedded_find(file);
	if(!f) {
		oh_reply_error(req, 500, "INTERNAL", "%s is not built in", file);
		return;
	}
	/* Embedded files end in a NUL, so the bytes are a string. */
	struct page p = {id, title, (const char *)f->data, script};
	reply_page(h, req, 200, &p);
}

static void get_devices_page(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	reply_fragment(ud, req, "devices", "Devices", WEB_DIR "devices.html", "/static/devices.js");
}

static void get_activity_page(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	reply_fragment(ud, req, "activity", "Activity", WEB_DIR "activity.html", "/static/activity.js");
}

static void get_docs(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	reply_fragment(ud, req, "docs", "API docs", WEB_DIR "docs.html", "/static/docs.js");
}

static oh_ctx *page_owner(struct host *h, const char *module)
{
	oh_ctx *c = module ? plugins_find(h, module) : NULL;
	return c && has_page(c) ? c : NULL;
}

static void get_plugin_page(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	const char *module = oh_req_param(req, "module");
	oh_ctx *c = page_owner(h, module);
	if(!c) {
		char what[160];
		snprintf(what, sizeof what, "no page for \"%s\": no loaded plugin of that name has one",
				module ? module : "");
		not_found(h, req, what);
		return;
	}
	char script[96];
	snprintf(script, sizeof script, "/ui/%s/page.js", c->module);
	struct page p = {c->module, c->ui_title, c->ui_html, c->ui_script ? script : NULL};
	reply_page(h, req, 200, &p);
}

static void get_plugin_script(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	struct host *h = ud;
	const char *module = oh_req_param(req, "module");
	oh_ctx *c = page_owner(h, module);
	if(!c || !c->ui_script) {
		oh_reply_error(req, 404, "NOT_FOUND", "no script for \"%s\"", module ? module : "");
		return;
	}
	http_reply_copy(req, 200, JS_TYPE, c->ui_script, strlen(c->ui_script));
}

static void get_static(oh_ctx *ctx, struct oh_http_req *req, void *ud)
{
	const char *file = oh_req_param(req, "file");
	char path[256];
	const struct embedded_file *f = NULL;
	/* One path segment, so nothing outside src/web/; the HTML files are
	 * the shell and page fragments, not pages by themselves. */
	size_t n = file ? strlen(file) : 0;
	if(file && n < 128 && !(n >= 5 && !strcmp(file + n - 5, ".html"))) {
		snprintf(path, sizeof path, WEB_DIR "%s", file);
		f = embedded_find(path);
	}
	if(!f) {
		oh_reply_error(req, 404, "NOT_FOUND", "no static file \"%s\"", file ? file : "");
		return;
	}
	http_reply_static(req, 200, f->content_type, f->data, f->len);
}

/* OpenAPI responses: a page, and a 404 that is a page for browsers
 * (Accept: text/html) and the JSON error for everyone else. */
#define DOC_HTML(status, text)                                                                               \
	"\"" status "\": {\"description\": \"" text "\", \"content\": {\"text/html\": {\"schema\":"          \
	" {\"type\": \"string\"}}}}"
#define DOC_NOT_FOUND_PAGE(text)                                                                               \
	"\"404\": {\"description\": \"NOT_FOUND: " text "\", \"content\": {\"application/json\": {\"schema\":" \
	" {\"$ref\": \"#/components/schemas/Error\"}}, \"text/html\": {\"schema\": {\"type\": \"string\"}}}}"

int api_ui_register(struct host *h)
{
	static const struct {
		const char *method, *path;
		oh_http_fn fn;
		const char *openapi;
	} routes[] = {
			{"GET", "/", get_home,
					"{\"summary\": \"Web UI: start page with the plugins and the broker state\","
					" \"tags\": [\"ui\"], \"responses\": {" DOC_HTML("200", "the page") "}}"},
			{"GET", "/ui/devices", get_devices_page,
					"{\"summary\": \"Web UI: live table of devices\", \"tags\": [\"ui\"],"
					" \"responses\": {" DOC_HTML("200", "the page") "}}"},
			{"GET", "/ui/activity", get_activity_page,
					"{\"summary\": \"Web UI: the audit trail, filtered, live, with CSV export\","
					" \"tags\": [\"ui\"], \"responses\": {" DOC_HTML("200", "the page") "}}"},
			{"GET", "/ui/{module}", get_plugin_page,
					"{\"summary\": \"Web UI: a plugin's page inside the shared shell\", \"tags\": [\"ui\"],"
					" \"parameters\": [{\"name\": \"module\", \"in\": \"path\", \"required\": true,"
					" \"schema\": {\"type\": \"string\"}}],"
					" \"responses\": {" DOC_HTML("200", "the page") ", " DOC_NOT_FOUND_PAGE(
							"no loaded plugin with a page of that name") "}}"},
			{"GET", "/ui/{module}/page.js", get_plugin_script,
					"{\"summary\": \"Web UI: a plugin page's script\", \"tags\": [\"ui\"],"
					" \"parameters\": [{\"name\": \"module\", \"in\": \"path\", \"required\": true,"
					" \"schema\": {\"type\": \"string\"}}],"
					" \"responses\": {\"200\": {\"description\": \"JavaScript\", \"content\":"
					" {\"text/javascript\": {\"schema\": {\"type\": \"string\"}}}},"
					" \"404\": {\"description\": \"NOT_FOUND: no such plugin page or no script\"}}}"},
			{"GET", "/static/{file}", get_static,
					"{\"summary\": \"Web UI: shared scripts and styles (compiled into the daemon)\","
					" \"tags\": [\"ui\"], \"parameters\": [{\"name\": \"file\", \"in\": \"path\","
					" \"required\": true, \"schema\": {\"type\": \"string\"}}],"
					" \"responses\": {\"200\": {\"description\": \"the file, typed by its extension\","
					" \"content\": {\"text/javascript\": {\"schema\": {\"type\": \"string\"}},"
					" \"text/css\": {\"schema\": {\"type\": \"string\"}},"
					" \"image/svg+xml\": {\"schema\": {\"type\": \"string\"}}}},"
					" \"404\": {\"description\": \"NOT_FOUND: no such file\"}}}"},
			{"GET", "/docs", get_docs,
					"{\"summary\": \"Web UI: this API, rendered from /openapi.json, with a form to try"
					" each call\", \"tags\": [\"ui\"], \"responses\": {" DOC_HTML(
							"200", "the page") "}}"},
	};
	for(size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		int rc = http_route_add(h->http, NULL, routes[i].method, routes[i].path, routes[i].fn, h,
				routes[i].openapi);
		if(rc)
			return rc;
	}
	return events_register(h);
}
