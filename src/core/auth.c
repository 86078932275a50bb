/*
 * HTTP API tokens (see auth.h).
 *
 * SHA-256 comes from GnuTLS: libmicrohttpd already links it for its TLS
 * support, so hashing adds no library to the process.  Token names and
 * digests are validated here once, at startup, so a request only ever does
 * one hash and n constant-time comparisons.
 */
#include "auth.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oh/validate.h"

#include "conf.h"
#include "config.h"
#include "log.h"

const char *auth_role_name(enum oh_role role)
{
	switch(role) {
	case OH_ROLE_NONE:
		return "none";
	case OH_ROLE_VIEWER:
		return "viewer";
	case OH_ROLE_OPERATOR:
		return "operator";
	case OH_ROLE_ADMIN:
		return "admin";
	}
	return "?";
}

static int role_parse(const char *s, enum oh_role *out)
{
	for(enum oh_role r = OH_ROLE_VIEWER; r <= OH_ROLE_ADMIN; r++) {
		if(!strcmp(s, auth_role_name(r))) {
			*out = r;
			return 0;
		}
	}
	return -1;
}

int auth_sha256(const void *data, size_t len, unsigned char out[32])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) ? -1 : 0;
}

static int hex_value(char c)
{
	if(c >= '0' && c <= '9')
		return c - '0';
	if(c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if(c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_hex32(const char *s, unsigned char out[32])
{
	if(strlen(s) != 64)
		return -1;
	for(int i = 0; i < 32; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
		if(hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static bool valid_name(const char *s)
{
	size_t len = strlen(s);
	return len >= 1 && len <= AUTH_NAME_MAX &&
			strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

/* Compares without an early exit, so the time taken says nothing about
 * how many leading bytes matched. */
static bool digest_equal(const unsigned char *a, const unsigned char *b)
{
	volatile unsigned char diff = 0;
	for(size_t i = 0; i < 32; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static const char *name_check(const json_t *v, void *ud, char *buf, size_t len)
{
	if(valid_name(json_string_value(v)))
		return NULL;
	snprintf(buf, len, "expected 1-%d of [A-Za-z0-9._-]", AUTH_NAME_MAX);
	return buf;
}

static const char *sha256_check(const json_t *v, void *ud, char *buf, size_t len)
{
	unsigned char digest[32];
	return parse_hex32(json_string_value(v), digest)
			? "expected 64 hex digits (printf %s TOKEN | sha256sum)"
			: NULL;
}

static const char *const role_names[] = {"viewer", "operator", "admin", NULL};

/* One token, checked by the one validator (include/oh/validate.h). */
static const struct oh_vfield token_fields[] = {
		OH_VFIELD("name", OH_VT_STRING, OH_VF_REQUIRED, .check = name_check),
		OH_VFIELD("role", OH_VT_STRING, OH_VF_REQUIRED, .one_of = role_names),
		OH_VFIELD("sha256", OH_VT_STRING, OH_VF_REQUIRED, .check = sha256_check),
		OH_VFIELD_END,
};
static const struct oh_vobject token_spec = OH_VOBJECT(token_fields, OH_V_REFUSE);

static int parse_one(const json_t *o, const char *where, size_t i, struct auth_token *t, char *err, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "%s[%zu]", where, i);
	/* Said before the table would call it an unknown key. */
	if(json_object_get(o, "token")) {
		conf_err(err, len,
				"%s.token: plain tokens are not accepted; store the token's "
				"SHA-256 as \"sha256\" (printf %%s TOKEN | sha256sum)",
				path);
		return -1;
	}
	if(oh_json_validate(o, &token_spec, path, NULL, err, len))
		return -1;
	role_parse(json_string_value(json_object_get(o, "role")), &t->role);
	parse_hex32(json_string_value(json_object_get(o, "sha256")), t->digest);
	snprintf(t->name, sizeof t->name, "%s", json_string_value(json_object_get(o, "name")));
	return 0;
}

int auth_tokens_parse(const json_t *arr, const char *where, struct auth_token **tokens, size_t *n, char *err,
		size_t errlen)
{
	if(!json_is_array(arr)) {
		conf_err(err, errlen, "%s: expected an array of {\"name\", \"role\", \"sha256\"}", where);
		return -1;
	}
	size_t add = json_array_size(arr);
	if(!add)
		return 0;
	struct auth_token *all = realloc(*tokens, (*n + add) * sizeof *all);
	if(!all) {
		conf_err(err, errlen, "%s: out of memory", where);
		return -1;
	}
	*tokens = all;
	for(size_t i = 0; i < add; i++) {
		struct auth_token *t = &all[*n];
		memset(t, 0, sizeof *t);
		if(parse_one(json_array_get(arr, i), where, i, t, err, errlen))
			return -1;
		for(size_t j = 0; j < *n; j++) {
			if(!strcmp(all[j].name, t->name)) {
				conf_err(err, errlen, "%s[%zu].name: \"%s\" is used twice", where, i, t->name);
				return -1;
			}
			if(digest_equal(all[j].digest, t->digest)) {
				conf_err(err, errlen, "%s[%zu].sha256: the same token as \"%s\"", where, i,
						all[j].name);
				return -1;
			}
		}
		(*n)++;
	}
	return 0;
}

int auth_tokens_load_file(const char *path, const char *where, struct auth_token **tokens, size_t *n,
		char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if(!root) {
		if(jerr.line <= 0)
			conf_err(err, errlen, "%s: %s: %s", where, path, jerr.text);
		else
			conf_err(err, errlen, "%s: %s: line %d, column %d: %s", where, path, jerr.line,
					jerr.column, jerr.text);
		return -1;
	}
	char prefix[512];
	snprintf(prefix, sizeof prefix, "%s: %s: ", where, path);
	int rc = auth_tokens_parse(root, prefix, tokens, n, err, errlen);
	json_decref(root);
	return rc;
}

const struct auth_token *auth_lookup(const struct auth_token *tokens, size_t n, const char *presented)
{
	unsigned char d[32];
	if(!presented || !*presented || auth_sha256(presented, strlen(presented), d))
		return NULL;
	const struct auth_token *found = NULL;
	for(size_t i = 0; i < n; i++) {
		/* No break: the loop takes as long whichever entry matched. */
		if(digest_equal(tokens[i].digest, d) && !found)
			found = &tokens[i];
	}
	return found;
}

bool auth_addr_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;
	if(inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if(inet_pton(AF_INET6, addr, &a6) == 1) {
		if(IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return false;
}

void auth_log_startup(const struct config *c)
{
	const char *bind = c->http.bind;
	bool loopback = auth_addr_is_loopback(bind);
	if(!c->http.n_tokens) {
		if(loopback)
			log_warn("http",
					"no API tokens configured: serving without authentication on "
					"loopback only (%s)",
					bind);
		else
			log_warn("http",
					"no API tokens configured: serving WITHOUT authentication on %s "
					"(http.allow_unauthenticated is true)",
					bind);
		return;
	}
	size_t by_role[OH_ROLE_ADMIN + 1] = {0};
	for(size_t i = 0; i < c->http.n_tokens; i++)
		by_role[c->http.tokens[i].role]++;
	log_info("http", "API tokens: %zu (%zu admin, %zu operator, %zu viewer)", c->http.n_tokens,
			by_role[OH_ROLE_ADMIN], by_role[OH_ROLE_OPERATOR], by_role[OH_ROLE_VIEWER]);
	if(!c->http.tls.enabled && !loopback)
		log_warn("http",
				"tokens travel in clear text on %s: enable http.tls or put a TLS "
				"reverse proxy in front (docs/deploy-http.md)",
				bind);
}
