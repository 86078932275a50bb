/*
 * Unit tests of plain JSON text read without a tree (src/core/json_text.c):
 * whatever it takes as plain, jansson reads too, to values whose compact
 * dump is that very text, and an object's members come out as jansson
 * sees them.  On fixtures, then on random documents and on random
 * mutations of them (a byte changed, dropped or doubled), so that a
 * damaged row is either refused here (and left to jansson) or really is
 * plain JSON.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "json_text.h"

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

static void test_fixtures(void)
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
static void test_members(void)
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
			*n += (size_t)sprintf(out + *n, "\"k%d\":", i); /* unique: see test_members */
		random_text(out, n, depth + 1);
		if(i > 1 || rand() % 20 == 0)
			out[(*n)++] = ',';
	}
	out[(*n)++] = object ? '}' : ']';
}

static void test_random(void)
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
	test_fixtures();
	test_members();
	test_random();
	return check_summary();
}
