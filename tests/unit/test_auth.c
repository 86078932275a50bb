/*
 * Unit tests of auth.c: SHA-256, parsing the token list, looking a token
 * up, and which addresses count as loopback.
 */
#include <stdlib.h>

#include "auth.h"
#include "check.h"

static int parse(const char *text, struct auth_token **t, size_t *n, char *err, size_t len)
{
	json_error_t jerr;
	json_t *arr = json_loads(text, 0, &jerr);
	if(!arr) {
		printf("bad test JSON: %s\n", jerr.text);
		return -2;
	}
	int rc = auth_tokens_parse(arr, "host.json: http.tokens", t, n, err, len);
	json_decref(arr);
	return rc;
}

/* printf %s abc | sha256sum */
#define ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/* printf %s def | sha256sum */
#define DEF "cb8379ac2098aa165029e3938a51da0bcecfc008fd6795f401178647f96c5b34"
/* printf %s xyz | sha256sum */
#define XYZ "3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282"

static void test_sha256(void)
{
	unsigned char d[32];
	CHECK_INT_EQ(auth_sha256("abc", 3, d), 0);
	CHECK_INT_EQ(d[0], 0xba);
	CHECK_INT_EQ(d[31], 0xad);
}

static void test_parse_and_lookup(void)
{
	struct auth_token *t = NULL;
	size_t n = 0;
	char err[512] = "";
	int rc = parse("[{\"name\": \"alice\", \"role\": \"viewer\", \"sha256\": \"" ABC "\"},"
		       " {\"name\": \"ops.bot-1\", \"role\": \"admin\", \"sha256\": \"" XYZ "\"}]",
			&t, &n, err, sizeof err);
	CHECK_INT_EQ(rc, 0);
	CHECK_INT_EQ(n, 2);
	const struct auth_token *a = auth_lookup(t, n, "abc");
	CHECK(a && !strcmp(a->name, "alice") && a->role == OH_ROLE_VIEWER);
	a = auth_lookup(t, n, "xyz");
	CHECK(a && !strcmp(a->name, "ops.bot-1") && a->role == OH_ROLE_ADMIN);
	CHECK(auth_lookup(t, n, "abcd") == NULL);
	CHECK(auth_lookup(t, n, "") == NULL);
	CHECK(auth_lookup(t, n, NULL) == NULL);
	CHECK(auth_lookup(t, n, ABC) == NULL); /* the digest is not the token */

	/* appending checks duplicates against what is there */
	rc = parse("[{\"name\": \"alice\", \"role\": \"admin\", \"sha256\": \"" DEF "\"}]", &t, &n, err,
			sizeof err);
	CHECK_INT_EQ(rc, -1);
	CHECK_STR_CONTAINS(err, "http.tokens[0].name: \"alice\" is used twice");
	rc = parse("[{\"name\": \"bob\", \"role\": \"operator\", \"sha256\": \"" XYZ "\"}]", &t, &n, err,
			sizeof err);
	CHECK_INT_EQ(rc, -1);
	CHECK_STR_CONTAINS(err, "http.tokens[0].sha256: the same token as \"ops.bot-1\"");
	free(t);
}

static void test_parse_errors(void)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
			{"[{\"name\": \"a\", \"role\": \"admin\", \"token\": \"abc\"}]",
					"[0].token: plain tokens"},
			{"[{\"name\": \"a\", \"role\": \"root\", \"sha256\": \"" ABC "\"}]", "[0].role"},
			{"[{\"name\": \"a b\", \"role\": \"admin\", \"sha256\": \"" ABC "\"}]", "[0].name"},
			{"[{\"role\": \"admin\", \"sha256\": \"" ABC "\"}]", "[0].name"},
			{"[{\"name\": \"a\", \"role\": \"admin\", \"sha256\": \"abc\"}]", "[0].sha256"},
			{"[{\"name\": \"a\", \"role\": \"admin\", \"sha256\": \"" ABC "\", \"x\": 1}]",
					"[0].x: unknown key"},
			{"[{\"name\": \"a\", \"role\": \"admin\", \"sha256\": \"" ABC "\"},"
			 " {\"name\": \"a\", \"role\": \"admin\", \"sha256\": \"" XYZ "\"}]",
					"[1].name: \"a\" is used twice"},
			{"[3]", "[0]: expected an object"},
			{"{}", "expected an array"},
	};
	for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct auth_token *t = NULL;
		size_t n = 0;
		char err[512] = "";
		CHECK_INT_EQ(parse(cases[i].json, &t, &n, err, sizeof err), -1);
		CHECK_STR_CONTAINS(err, cases[i].msg);
		CHECK_STR_CONTAINS(err, "host.json: http.tokens");
		free(t);
	}
}

static void test_loopback(void)
{
	CHECK(auth_addr_is_loopback("127.0.0.1"));
	CHECK(auth_addr_is_loopback("127.1.2.3"));
	CHECK(auth_addr_is_loopback("::1"));
	CHECK(auth_addr_is_loopback("::ffff:127.0.0.1"));
	CHECK(!auth_addr_is_loopback("0.0.0.0"));
	CHECK(!auth_addr_is_loopback("::"));
	CHECK(!auth_addr_is_loopback("10.0.0.1"));
	CHECK(!auth_addr_is_loopback("128.0.0.1"));
	CHECK(!auth_addr_is_loopback("localhost"));
	CHECK(!auth_addr_is_loopback(""));
}

int main(void)
{
	test_sha256();
	test_parse_and_lookup();
	test_parse_errors();
	test_loopback();
	return check_summary();
}
