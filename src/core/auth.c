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

static int parse_one(const json_t *o, const char *where, size_t i, struct auth_token *t, char *err, size_t len)
{
	if(!json_is_object(o)) {
		conf_err(err, len, "%s[%zu]: expected an object {\"name\", \"role\", \"sha256\"}", where, i);
		return -1;
	}
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)o, key, v)
	{
		if(!strcmp(key, "token")) {
			conf_err(err, len,
					"%s[%zu].token: plain tokens are not accepted; store the token's "
					"SHA-256 as \"sha256\" (printf %%s TOKEN | sha256sum)",
					where, i);
			return -1;
		}
		if(strcmp(key, "name") && strcmp(key, "role") && strcmp(key, "sha256")) {
			conf_err(err, len, "%s[%zu].%s: unknown key", where, i, key);
			return -1;
		}
	}
	const json_t *name = json_object_get(o, "name");
	const json_t *role = json_object_get(o, "role");
	const json_t *hash = json_object_get(o, "sha256");
	if(!json_is_string(name) || !valid_name(json_string_value(name))) {
		conf_err(err, len, "%s[%zu].name: expected 1-%d of [A-Za-z0-9._-]", where, i, AUTH_NAME_MAX);
		return -1;
	}
	if(!json_is_string(role) || role_parse(json_string_value(role), &t->role)) {
		conf_err(err, len, "%s[%zu].role: expected \"viewer\", \"operator\" or \"admin\"", where, i);
		return -1;
	}
	if(!json_is_string(hash) || parse_hex32(json_string_value(hash), t->digest)) {
		conf_err(err, len, "%s[%zu].sha256: expected 64 hex digits (printf %%s TOKEN | sha256sum)",
				where, i);
		return -1;
	}
	snprintf(t->name, sizeof t->name, "%s", json_string_value(name));
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
