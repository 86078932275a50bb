/*
 * Unit tests of json_text_compact() (src/common/json_text.c), the writer of
 * every ack: its text must be json_dumps(v, JSON_COMPACT)'s, byte for byte,
 * for any value a plugin can build, and it must fail where jansson fails.
 * Checked on fixed edge cases and on generated trees of every type (strings
 * with quotes, backslashes, control characters, NULs, multi-byte and broken
 * UTF-8; integers at their limits; reals, which jansson writes; trees deeper
 * than the writer goes itself).
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

int main(void)
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
	return check_summary();
}
