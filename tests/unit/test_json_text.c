/*
 * Unit tests of json_text_compact() (src/common/json_text.c), the writer of
 * every ack: its text must be json_dumps(v, JSON_COMPACT)'s, byte for byte,
 * for any value a plugin can build, and it must fail where jansson fails.
 * Checked on fixed edge cases and on generated trees of every type (strings
 * with quotes, backslashes, control characters, NULs, multi-byte and broken
 * UTF-8; integers at their limits; reals, which jansson writes; trees deeper
 * than the writer goes itself).
 *
 * And the reader of plain text (json_text_value_end, json_text_member):
 * whatever it takes as plain, jansson reads too, to values whose compact
 * dump is that very text, and an object's members come out as jansson sees
 * them; on fixtures, on random texts and on random mutations of them (a
 * byte changed, dropped or doubled), so that a damaged row is either
 * refused there (and left to jansson) or really is plain JSON.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json_text.h"

static unsigned long long rng = 88172645463325252ULL;

static unsigned next(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* Pieces strings are made of: plain, escaped, multi-byte, broken. */
static const char *const pieces[] = {"a", "req-1", " ", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x01",
		"\x1f", "\x7f", "é", "€", "😀", "\xe2\x80\xa8", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xc0\xaf", "\x80"};

static json_t *gen_string(bool valid)
{
	char buf[256];
	size_t len = 0;
	int n = (int)next(12);
	for(int i = 0; i < n; i++) {
		/* The last five pieces are not UTF-8. */
		size_t count = sizeof pieces / sizeof pieces[0] - (valid ? 5 : 0);
		const char *p = next(9) == 0 && !valid ? "\0" : pieces[next((unsigned)count)];
		size_t l = *p ? strlen(p) : 1;
		memcpy(buf + len, p, l);
		len += l;
	}
	return valid ? json_stringn(buf, len) : json_stringn_nocheck(buf, len);
}

static json_t *gen(int depth, bool broken)
{
	switch(next(depth > 4 ? 7 : 9)) {
	case 0:
		return json_true();
	case 1:
		return json_false();
	case 2:
		return json_null();
	case 3: {
		static const json_int_t edge[] = {0, -1, 9, 10, -10, INT64_MAX, INT64_MIN, 1234567890123LL};
		return json_integer(next(2) ? edge[next(8)] : (json_int_t)next(1000000) - 500000);
	}
	case 4:
		return next(40) ? gen_string(true) : json_real(next(2) ? 0.5 : 60.0);
	case 5:
		return gen_string(!broken || next(4));
	case 6:
		return json_stringn("\0x", 2);
	case 7: {
		json_t *a = json_array();
		for(unsigned i = next(5); i > 0; i--)
			json_array_append_new(a, gen(depth + 1, broken));
		return a;
	}
	default: {
		json_t *o = json_object();
		for(unsigned i = next(6); i > 0; i--) {
			json_t *k = gen_string(!broken || next(4));
			json_object_setn_new_nocheck(o, json_string_value(k), json_string_length(k),
					gen(depth + 1, broken));
			json_decref(k);
		}
		return o;
	}
	}
}

/* Both NULL, or the same text. */
static int same(const json_t *v)
{
	char *mine = json_text_compact(v), *theirs = json_dumps(v, JSON_COMPACT);
	int ok = (!mine && !theirs) || (mine && theirs && !strcmp(mine, theirs));
	if(!ok)
		fprintf(stderr, "json_text_compact: %s\njson_dumps:        %s\n", mine ? mine : "(null)",
				theirs ? theirs : "(null)");
	free(mine);
	free(theirs);
	return ok;
}

static void test_compact(void)
{
	/* An ack as oh_ack_new makes it, with warnings. */
	json_t *ack = json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:n, s:{s:s, s:s}, s:[s]}", "req_id", "r-1",
			"ok", 1, "code", "DISPATCHED", "action", "start", "actor", "app \"x\"", "ts",
			"2026-12-07T06:00:00Z", "error", "details", "device_id", "cam-1", "topic",
			"/lab/device/cam-1/ndi/cmd", "warnings",
			"device_id: device cam-1 is not in the registry");
	CHECK(same(ack));
	char *text = json_text_compact(ack);
	CHECK_STR_CONTAINS(text, "\"actor\":\"app \\\"x\\\"\"");
	free(text);
	json_decref(ack);

	/* Edges: empty containers, a lone scalar (refused without
	 * JSON_ENCODE_ANY), a real, a cycle, a deep tree. */
	json_t *v = json_pack("{s:{}, s:[], s:[[]], s:f, s:I}", "o", "a", "aa", "r", 0.1, "i",
			(json_int_t)INT64_MIN);
	CHECK(same(v));
	json_decref(v);
	v = json_string("x");
	CHECK(json_text_compact(v) == NULL);
	json_decref(v);
	v = json_array();
	json_array_append(v, v);
	CHECK(same(v));
	json_array_clear(v);
	json_decref(v);
	v = json_array();
	json_t *in = v;
	for(int i = 0; i < 60; i++) {
		json_t *next_level = json_object();
		json_array_append_new(in, next_level);
		in = json_array();
		json_object_set_new(next_level, "k\n", in);
	}
	CHECK(same(v));
	json_decref(v);

	/* Generated trees, valid and with broken strings. */
	int agreed = 0, n = (int)check_sample(20000), failed_both = 0;
	for(int i = 0; i < n; i++) {
		bool broken = i % 4 == 3;
		json_t *t = next(2) ? json_object() : json_array();
		for(unsigned k = next(6) + 1; k > 0; k--) {
			if(json_is_object(t)) {
				json_t *key = gen_string(!broken || next(3));
				json_object_setn_new_nocheck(t, json_string_value(key),
						json_string_length(key), gen(1, broken));
				json_decref(key);
			} else {
				json_array_append_new(t, gen(1, broken));
			}
		}
		char *d = json_dumps(t, JSON_COMPACT);
		failed_both += !d;
		free(d);
		agreed += same(t);
		json_decref(t);
	}
	CHECK_INT_EQ(agreed, n);
	/* The generator does reach jansson's failures. */
	CHECK(failed_both > 0);
}

/* ---- reading plain text ---------------------------------------------------------- */

static bool plain(const char *text)
{
	size_t n = strlen(text);
	return json_text_value_end(text, text + n) == text + n;
}

/* If text is plain, jansson reads it and writes it back the same. */
static bool agrees(const char *text)
{
	if(!plain(text))
		return true;
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	char *back = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	bool same = back && !strcmp(back, text);
	if(!same)
		printf("     plain here, but jansson reads \"%s\" as %s\n", text, back ? back : "an error");
	free(back);
	json_decref(j);
	return same;
}

static void test_plain_fixtures(void)
{
	static const char *const yes[] = {"{}", "[]", "0", "-7", "123456789012345678", "true", "false",
			"null", "\"\"", "\"a b/c~\"", "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", "[[[]]]"};
	static const char *const no[] = {"", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" :1}", " 1", "1 ", "01",
			"-", "1.5", "1e3", "1234567890123456789", "\"a\\\"b\"", "\"caf\xc3\xa9\"",
			"\"tab\t\"", "tru", "nul", "{\"a\"}", "{1:2}", "[1 2]", "\"\x7f\"", "{\"a\":1}}"};
	for(size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if(!CHECK(plain(yes[i])))
			printf("     \"%s\" should be plain\n", yes[i]);
		CHECK(agrees(yes[i]));
	}
	for(size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		if(!CHECK(!plain(no[i])))
			printf("     \"%s\" should not be plain\n", no[i]);
	}
	/* Deeper than JSON_TEXT_DEPTH_MAX: refused, not overflowed. */
	char deep[2 * JSON_TEXT_DEPTH_MAX + 8];
	size_t d = JSON_TEXT_DEPTH_MAX + 2;
	memset(deep, '[', d);
	memset(deep + d, ']', d);
	deep[2 * d] = '\0';
	CHECK(!plain(deep));
}

/* The members of an object, as jansson has them (the last of a repeated
 * key), and a bad one stops the walk. */
static void test_plain_members(void)
{
	const char *text = "{\"a\":1,\"b\":{\"c\":[2]},\"a\":\"x\"}";
	struct json_text_obj o;
	const char *k, *v;
	size_t kl, vl, n = 0;
	json_text_object(&o, text, text + strlen(text));
	const char *a = NULL;
	size_t al = 0;
	while(json_text_member(&o, &k, &kl, &v, &vl)) {
		n++;
		if(JSON_TEXT_KEY_IS(k, kl, "a")) {
			a = v;
			al = vl;
		}
		if(JSON_TEXT_KEY_IS(k, kl, "b"))
			CHECK(vl == strlen("{\"c\":[2]}") && !memcmp(v, "{\"c\":[2]}", vl));
	}
	CHECK(!o.bad);
	CHECK_INT_EQ(n, 3);
	CHECK(a && al == 3 && !memcmp(a, "\"x\"", 3));
	static const char *const bad[] = {
			"{\"a\":1,}", "{\"a\":1}x", "{\"a\":1.5}", "[1]", "{\"a\":1", "{\"a\"}"};
	for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_text_object(&o, bad[i], bad[i] + strlen(bad[i]));
		while(json_text_member(&o, &k, &kl, &v, &vl))
			;
		if(!CHECK(o.bad))
			printf("     \"%s\" read as a plain object\n", bad[i]);
	}
	/* Cut short after a comma, in a buffer of exactly its bytes (no NUL
	 * behind it): refused without a read past the end (ASan). */
	static const char cut[] = "{\"a\":1,";
	char *exact = malloc(sizeof cut - 1);
	if(CHECK(exact != NULL)) {
		memcpy(exact, cut, sizeof cut - 1);
		json_text_object(&o, exact, exact + sizeof cut - 1);
		while(json_text_member(&o, &k, &kl, &v, &vl))
			;
		CHECK(o.bad);
		free(exact);
	}
}

/* Random JSON-like text into out (room for at least 4 KB): mostly valid,
 * plain or not, with a stray token now and then. */
static void random_text(char *out, size_t *n, int depth)
{
	static const char *const atoms[] = {"0", "-12", "345", "1.5", "1e3", "true", "false", "null", "\"\"",
			"\"start\"", "\"x y\"", "\"q\\\"\"", "\"caf\xc3\xa9\"", "01", "99999999999999999999",
			" 1", "tru"};
	int kind = rand() % (depth > 4 ? 3 : 5);
	if(kind < 3) {
		const char *a = atoms[rand() % (sizeof atoms / sizeof atoms[0])];
		memcpy(out + *n, a, strlen(a));
		*n += strlen(a);
		return;
	}
	bool object = kind == 4;
	out[(*n)++] = object ? '{' : '[';
	for(int i = rand() % 4; i > 0; i--) {
		if(object)
			*n += (size_t)sprintf(out + *n, "\"k%d\":", i); /* unique: see test_plain_members */
		random_text(out, n, depth + 1);
		if(i > 1 || rand() % 20 == 0)
			out[(*n)++] = ',';
	}
	out[(*n)++] = object ? '}' : ']';
}

static void test_plain_random(void)
{
	srand(16);
	int n_plain = 0, bad = 0;
	char text[8192];
	for(int i = 0; i < 3000 && bad < 5; i++) {
		size_t n = 0;
		random_text(text, &n, 0);
		text[n] = '\0';
		n_plain += plain(text);
		bad += !CHECK(agrees(text));
		/* A byte changed, dropped or doubled, as in a damaged row. */
		for(int m = 0; m < 8 && n > 0; m++) {
			char mut[8192];
			size_t at = (size_t)rand() % n;
			memcpy(mut, text, n + 1);
			if(m % 3 == 0)
				mut[at] = "{}[],:\"0-1a \\.e"[rand() % 15];
			else if(m % 3 == 1)
				memmove(mut + at, mut + at + 1, n - at);
			else
				memmove(mut + at + 1, mut + at, n - at + 1);
			bad += !CHECK(agrees(mut));
		}
	}
	/* The generator makes both kinds. */
	if(!CHECK(n_plain > 150 && n_plain < 2850))
		printf("     %d plain of 3000\n", n_plain);
}

int main(void)
{
	test_compact();
	test_plain_fixtures();
	test_plain_members();
	test_plain_random();
	return check_summary();
}
