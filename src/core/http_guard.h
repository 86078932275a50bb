/*
 * The checks every HTTP request passes before anything routes or
 * authenticates it: a canonical path, a Host that names this host, and, for
 * methods that change state, a request a browser on another site cannot
 * have forged.  They are pure functions over strings, so the unit tests and
 * the fuzzers drive them without a server; http.c applies them in one place.
 */
#ifndef OH_HTTP_GUARD_H
#define OH_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/*
 * NULL when the path of a raw request target (as the client sent it, before
 * percent-decoding, query included) is canonical; otherwise a short reason.
 * Refused: a target not starting with '/', empty segments ("//"), "." and
 * ".." segments (also percent-encoded), percent-encoded '/', '\' and control
 * bytes (NUL among them), a raw '\', and malformed percent escapes.  Only a
 * single trailing '/' is tolerated.  A canonical path decodes to one string
 * with the same segments, so auth and routing see the same thing.
 */
const char *http_path_problem(const char *target);

/* Which names a request's Host header may carry (DNS-rebinding defence). */
struct http_host_rules {
	char **names; /* lower-case host names or addresses, no port;
	                        * ".example.org" also matches its subdomains */
	size_t n_names;
	bool any; /* "*" was listed: no check */
};

/*
 * Builds the rules: loopback names and addresses always; the bind address,
 * or for a wildcard bind the machine's host name and interface addresses;
 * then `allowed` (http.allowed_hosts, borrowed).  Returns 0, or -1 on
 * out-of-memory.  Free with http_host_rules_free().
 */
int http_host_rules_init(struct http_host_rules *r, const char *bind, char *const *allowed, size_t n_allowed);
void http_host_rules_free(struct http_host_rules *r);

/* Whether a Host header value ("name", "name:port", "[v6]:port") is one
 * the rules allow.  NULL (an HTTP/1.0 request without Host) is allowed:
 * browsers always send one. */
bool http_host_allowed(const struct http_host_rules *r, const char *host_header);

/* A usable http.allowed_hosts entry: a host name, an address, ".suffix" or
 * "*"; no scheme, port or path. */
bool http_host_pattern_valid(const char *pattern);

/* Content-Type is application/json, parameters (charset) allowed. */
bool http_content_type_is_json(const char *content_type);

/* POST, PUT, PATCH and DELETE. */
bool http_method_changes_state(const char *method);

/* Origin equals scheme "://" host_header (the page was served by us). */
bool http_origin_is_own(const char *origin, const char *host_header, bool tls);

#endif
