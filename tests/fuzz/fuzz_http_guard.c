/*
 * Fuzz target: the checks every HTTP request passes first
 * (src/core/http_guard.c): the request path, the Host header against rules
 * built by http_host_rules_init(), http.allowed_hosts patterns, and the
 * Content-Type and Origin rules.
 *
 * Input, lines: the bind address, then http.allowed_hosts as one
 * comma-separated line, then request targets / header values, each tried
 * as all of them.
 *
 * Checked: a path accepted as canonical decodes to segments with no ".",
 * "..", empty segment (but a trailing '/'), '/', '\' or control byte, so
 * auth and router see one string; an allowed Host is made of host-name
 * characters and is allowed in any letter case; an allowed_hosts entry
 * that passes http_host_pattern_valid() lets its own name in, with or
 * without a port.
 */
#include <ctype.h>
#include <string.h>

#include "fuzz_common.h"
#include "http_guard.h"

static int hex(char c)
{
	if(c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void check_canonical(const char *target)
{
	/* The query is not the path's business. */
	size_t end = strcspn(target, "?");
	FUZZ_CHECK(target[0] == '/' && strcspn(target, "\\#") >= end);
	const char *seg = target + 1;
	for(;;) {
		size_t raw = strcspn(seg, "/?");
		if(seg + raw > target + end)
			raw = (size_t)(target + end - seg);
		char dec[4096];
		size_t n = 0;
		for(size_t i = 0; i < raw; i++) {
			unsigned char c = (unsigned char)seg[i];
			if(c == '%') {
				FUZZ_CHECK(i + 2 < raw && hex(seg[i + 1]) >= 0 && hex(seg[i + 2]) >= 0);
				c = (unsigned char)(hex(seg[i + 1]) << 4 | hex(seg[i + 2]));
				i += 2;
			}
			FUZZ_CHECK(c >= 0x20 && c != 0x7f && c != '/' && c != '\\');
			if(n < sizeof dec - 1)
				dec[n++] = (char)c;
		}
		dec[n] = '\0';
		bool last = seg[raw] != '/';
		if(n == 0) {
			/* Empty: only as the very last segment. */
			FUZZ_CHECK(last);
			return;
		}
		FUZZ_CHECK(strcmp(dec, ".") && strcmp(dec, ".."));
		if(last)
			return;
		seg += raw + 1;
	}
}

static char *rules_list[64];

static void check_pattern(const char *p)
{
	if(!strcmp(p, "*"))
		return;
	char *allowed[1] = {(char *)p};
	struct http_host_rules r;
	FUZZ_CHECK(http_host_rules_init(&r, "127.0.0.1", allowed, 1) == 0);
	char host[600];
	if(p[0] == '.')
		snprintf(host, sizeof host, "%s", p + 1);
	else if(p[0] != '[' && strchr(p, ':'))
		snprintf(host, sizeof host, "[%s]", p);
	else
		snprintf(host, sizeof host, "%s", p);
	FUZZ_CHECK(http_host_allowed(&r, host));
	char with_port[640];
	snprintf(with_port, sizeof with_port, "%s:8080", host);
	FUZZ_CHECK(http_host_allowed(&r, with_port));
	if(p[0] == '.') {
		snprintf(with_port, sizeof with_port, "sub%s", p);
		FUZZ_CHECK(http_host_allowed(&r, with_port));
	}
	http_host_rules_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	struct fuzz_in in = fuzz_in(data, size);
	char *bind = fuzz_next(&in, '\n');
	char *allowed_line = fuzz_next(&in, '\n');
	if(!bind)
		return 0;

	/* Only entries config.c would accept reach the rules. */
	size_t n_allowed = 0;
	if(allowed_line) {
		char *save = NULL;
		for(char *a = strtok_r(allowed_line, ",", &save); a && n_allowed < 64;
				a = strtok_r(NULL, ",", &save)) {
			if(http_host_pattern_valid(a))
				rules_list[n_allowed++] = a;
		}
	}
	struct http_host_rules rules;
	if(http_host_rules_init(&rules, *bind ? bind : NULL, rules_list, n_allowed))
		abort();

	char *prev = NULL, *line;
	while((line = fuzz_next(&in, '\n'))) {
		if(!http_path_problem(line))
			check_canonical(line);
		if(http_host_allowed(&rules, line)) {
			FUZZ_CHECK(strspn(line,
						   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
						   "0123456789.-_:[]") == strlen(line));
			char upper[4096];
			if(strlen(line) < sizeof upper) {
				snprintf(upper, sizeof upper, "%s", line);
				for(char *c = upper; *c; c++)
					*c = (char)toupper((unsigned char)*c);
				FUZZ_CHECK(http_host_allowed(&rules, upper));
			}
		}
		if(http_host_pattern_valid(line))
			check_pattern(line);
		(void)http_content_type_is_json(line);
		(void)http_method_changes_state(line);
		(void)http_origin_is_own(line, prev ? prev : "localhost", size & 1);
		free(prev);
		prev = line;
	}
	free(prev);
	http_host_rules_free(&rules);
	free(bind);
	free(allowed_line);
	return 0;
}
