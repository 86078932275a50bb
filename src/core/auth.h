/*
 * HTTP API tokens: parsing the configured token list, checking a presented
 * bearer token against it, and the role names.
 *
 * Tokens are never stored: the configuration holds each token's SHA-256,
 * a name (the actor of everything done with it) and a role.  A presented
 * token is hashed and compared with every stored digest in constant time.
 */
#ifndef OH_AUTH_H
#define OH_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "oh/host.h"

#define AUTH_NAME_MAX 64

struct auth_token {
	char name[AUTH_NAME_MAX + 1];
	enum oh_role role;
	unsigned char digest[32]; /* SHA-256 of the token */
};

/* "viewer", "operator", "admin" ("none" for OH_ROLE_NONE). */
const char *auth_role_name(enum oh_role role);

/*
 * Appends the token objects of arr ([{"name", "role", "sha256"}]) to
 * *tokens / *n (grown with realloc; the caller frees *tokens).  Names must
 * be 1-64 of [A-Za-z0-9._-], roles viewer/operator/admin, sha256 64 hex
 * digits; names and digests must be unique, also against entries already in
 * *tokens.  A plain "token" key is refused with a hint how to hash it.  On
 * error returns -1 with one line in err starting with `where` (e.g.
 * "host.json: http.tokens"), followed by "[i].field: ...".
 */
int auth_tokens_parse(const json_t *arr, const char *where, struct auth_token **tokens, size_t *n, char *err,
		size_t errlen);

/* Reads a JSON file holding such an array and appends it as above; errors
 * name `where` and the file. */
int auth_tokens_load_file(const char *path, const char *where, struct auth_token **tokens, size_t *n,
		char *err, size_t errlen);

/* The token whose digest matches SHA-256(presented), or NULL.  Every stored
 * digest is compared, each in constant time. */
const struct auth_token *auth_lookup(const struct auth_token *tokens, size_t n, const char *presented);

/* SHA-256 of data into out; 0, or -1 if the hash is unavailable. */
int auth_sha256(const void *data, size_t len, unsigned char out[32]);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104; false for anything
 * else, including text that is not an IP address. */
bool auth_addr_is_loopback(const char *addr);

struct config;
/* Logs at startup how the API is protected: a warning without tokens
 * (loopback only, or explicitly unauthenticated), or without TLS on a
 * non-loopback address. */
void auth_log_startup(const struct config *c);

#endif
