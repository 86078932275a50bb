/*
 * Request checks made before routing and authentication (see http_guard.h).
 *
 * Why each exists:
 * - The path: the auth check and the router once read the path differently
 *   ("//api/registry" needed no token but still routed), so anything that
 *   two readers could disagree on is refused rather than normalised.
 * - The Host: a page on another site can rebind its own name to 127.0.0.1
 *   and then read our answers as same-origin; only its own name can reach
 *   us that way, so refusing names we do not know closes it.
 * - Origin, Sec-Fetch-Site and Content-Type: a page on another site can send
 *   a "simple" POST (text/plain, no preflight) to a loopback host without
 *   tokens.  Requiring JSON forces a preflight, and a browser names the
 *   page's origin, so such a request is told apart from ours.
 */
#include "http_guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"

static int hex_digit(char c)
{
	if(c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	if(c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

const char *http_path_problem(const char *target)
{
	if(!target || target[0] != '/')
		return "the path must start with '/'";
	const char *p = target + 1;
	for(;;) {
		/* One segment: p up to the next '/', '?' or the end. */
		char seg[3]; /* enough to tell "." and ".." apart */
		size_t seg_len = 0;
		const char *start = p;
		for(; *p && *p != '/' && *p != '?'; p++) {
			unsigned char c = (unsigned char)*p;
			if(c == '%') {
				int hi = hex_digit(p[1]), lo = hi < 0 ? -1 : hex_digit(p[2]);
				if(lo < 0)
					return "malformed percent-encoding in the path";
				c = (unsigned char)(hi << 4 | lo);
				if(c == '/' || c == '\\')
					return "an encoded '/' or '\\' in the path";
				p += 2;
			} else if(c == '\\') {
				return "a '\\' in the path";
			} else if(c == '#') {
				return "a '#' in the request target";
			}
			if(c < 0x20 || c == 0x7f)
				return "a control character (NUL included) in the path";
			if(seg_len < sizeof seg)
				seg[seg_len] = (char)c;
			seg_len++;
		}
		if(seg_len == 0 && p == start) {
			/* Empty: fine only as the very last segment ("/", "/ui/"). */
			if(*p == '/')
				return "an empty path segment (\"//\")";
			return NULL;
		}
		if((seg_len == 1 && seg[0] == '.') || (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))
			return "a '.' or '..' segment in the path";
		if(*p != '/')
			return NULL;
		p++;
	}
}

/* ---- Host ------------------------------------------------------------------ */

/* The name part of a Host header, lower-cased, into out; false when the
 * header is malformed.  IPv6 addresses come back in inet_ntop's form. */
static bool host_name_of(const char *hdr, char *out, size_t out_len, bool *is_v6)
{
	*is_v6 = false;
	const char *end;
	const char *name = hdr;
	size_t len;
	if(hdr[0] == '[') {
		end = strchr(hdr, ']');
		if(!end)
			return false;
		name = hdr + 1;
		len = (size_t)(end - name);
		end++;
		*is_v6 = true;
	} else {
		end = hdr + strcspn(hdr, ":");
		len = (size_t)(end - hdr);
	}
	if(*end == ':') {
		/* A port: digits only, and at least one. */
		if(!end[1] || strspn(end + 1, "0123456789") != strlen(end + 1) || strlen(end + 1) > 5)
			return false;
	} else if(*end) {
		return false;
	}
	if(len == 0 || len >= out_len)
		return false;
	for(size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		bool ok = isalnum(c) || c == '.' || c == '-' || c == '_' || (*is_v6 && c == ':');
		if(!ok)
			return false;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	if(*is_v6) {
		struct in6_addr a6;
		if(inet_pton(AF_INET6, out, &a6) != 1)
			return false;
		inet_ntop(AF_INET6, &a6, out, (socklen_t)out_len);
	} else if(len > 1 && out[len - 1] == '.') {
		out[len - 1] = '\0'; /* "localhost." is "localhost" */
	}
	return true;
}

bool http_host_pattern_valid(const char *pattern)
{
	if(!pattern || !*pattern)
		return false;
	if(!strcmp(pattern, "*"))
		return true;
	char name[256];
	bool v6;
	size_t len = strlen(pattern);
	if(pattern[0] == '[') /* "[fd00::5]", without a port */
		return pattern[len - 1] == ']' && host_name_of(pattern, name, sizeof name, &v6);
	if(strchr(pattern, ':')) {
		/* A bare IPv6 address, as http.bind takes it. */
		struct in6_addr a6;
		return inet_pton(AF_INET6, pattern, &a6) == 1;
	}
	const char *p = pattern[0] == '.' ? pattern + 1 : pattern;
	return *p && *p != '.' && host_name_of(p, name, sizeof name, &v6);
}

static int add_name(struct http_host_rules *r, const char *name)
{
	char norm[256];
	size_t len = strlen(name);
	if(len == 0 || len >= sizeof norm)
		return 0;
	struct in6_addr a6;
	const char *bare = name;
	if(name[0] == '[' && name[len - 1] == ']') {
		memcpy(norm, name + 1, len - 2);
		norm[len - 2] = '\0';
		bare = norm;
	}
	if(inet_pton(AF_INET6, bare, &a6) == 1) {
		inet_ntop(AF_INET6, &a6, norm, sizeof norm);
	} else {
		for(size_t i = 0; i <= len; i++)
			norm[i] = (char)tolower((unsigned char)name[i]);
		if(len > 1 && norm[len - 1] == '.')
			norm[len - 1] = '\0';
	}
	char **grown = realloc(r->names, (r->n_names + 1) * sizeof *r->names);
	if(!grown)
		return -1;
	r->names = grown;
	if(!(r->names[r->n_names] = strdup(norm)))
		return -1;
	r->n_names++;
	return 0;
}

/* A wildcard bind answers on every address of the machine, and users reach
 * it by the machine's name or one of those addresses. */
static int add_machine_names(struct http_host_rules *r)
{
	char name[256];
	if(!gethostname(name, sizeof name - 8)) {
		name[sizeof name - 8] = '\0';
		if(add_name(r, name))
			return -1;
		if(!strchr(name, '.')) {
			strcat(name, ".local"); /* the mDNS name */
			if(add_name(r, name))
				return -1;
		}
	}
	struct ifaddrs *ifs;
	if(getifaddrs(&ifs))
		return 0;
	int rc = 0;
	for(struct ifaddrs *i = ifs; i && !rc; i = i->ifa_next) {
		char addr[INET6_ADDRSTRLEN];
		if(!i->ifa_addr)
			continue;
		if(i->ifa_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, addr, sizeof addr);
		else if(i->ifa_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, addr,
					sizeof addr);
		else
			continue;
		rc = add_name(r, addr);
	}
	freeifaddrs(ifs);
	return rc;
}

int http_host_rules_init(struct http_host_rules *r, const char *bind, char *const *allowed, size_t n_allowed)
{
	memset(r, 0, sizeof *r);
	bool wildcard = !bind || !strcmp(bind, "0.0.0.0") || !strcmp(bind, "::");
	if(wildcard ? add_machine_names(r) : add_name(r, bind))
		goto nomem;
	for(size_t i = 0; i < n_allowed; i++) {
		if(!strcmp(allowed[i], "*"))
			r->any = true;
		else if(add_name(r, allowed[i]))
			goto nomem;
	}
	return 0;

nomem:
	http_host_rules_free(r);
	return -1;
}

void http_host_rules_free(struct http_host_rules *r)
{
	for(size_t i = 0; i < r->n_names; i++)
		free(r->names[i]);
	free(r->names);
	memset(r, 0, sizeof *r);
}

static bool name_matches(const char *pattern, const char *name)
{
	if(pattern[0] != '.')
		return !strcmp(pattern, name);
	size_t pl = strlen(pattern), nl = strlen(name);
	return !strcmp(pattern + 1, name) || (nl > pl && !strcmp(name + nl - pl, pattern));
}

bool http_host_allowed(const struct http_host_rules *r, const char *host_header)
{
	if(!host_header)
		return true;
	char name[256];
	bool v6;
	if(!host_name_of(host_header, name, sizeof name, &v6))
		return false;
	if(r->any)
		return true;
	if(v6 || strspn(name, "0123456789.") == strlen(name)) {
		if(auth_addr_is_loopback(name))
			return true;
	} else {
		/* RFC 6761: browsers resolve these themselves, to loopback. */
		size_t nl = strlen(name);
		if(!strcmp(name, "localhost") || (nl > 10 && !strcmp(name + nl - 10, ".localhost")))
			return true;
	}
	for(size_t i = 0; i < r->n_names; i++) {
		if(name_matches(r->names[i], name))
			return true;
	}
	return false;
}

/* ---- browser-borne requests ------------------------------------------------------ */

bool http_content_type_is_json(const char *ct)
{
	if(!ct)
		return false;
	ct += strspn(ct, " \t");
	if(strncasecmp(ct, "application/json", 16))
		return false;
	ct += 16;
	ct += strspn(ct, " \t");
	return *ct == '\0' || *ct == ';';
}

bool http_method_changes_state(const char *m)
{
	return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH") || !strcmp(m, "DELETE");
}

bool http_origin_is_own(const char *origin, const char *host_header, bool tls)
{
	if(!origin || !host_header)
		return false;
	const char *scheme = tls ? "https://" : "http://";
	size_t sl = strlen(scheme);
	return !strncasecmp(origin, scheme, sl) && !strcasecmp(origin + sl, host_header);
}
