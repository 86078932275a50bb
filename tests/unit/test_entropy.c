/*
 * Unit tests of the random bytes behind request ids and hash keys
 * (src/common/entropy.c): the kernel is asked without ever blocking
 * (GRND_NONBLOCK), an entropy pool that is not ready yet (EAGAIN at early
 * boot) or a missing getrandom() still gives distinct ids, and the
 * last-resort generator never repeats.
 *
 * getrandom() is replaced here: this definition wins over the C library's
 * for the host's own (statically linked) code.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "core.h"
#include "entropy.h"

static int calls, blocking_calls;
static int fail_with; /* 0: the real thing */

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	calls++;
	if(!(flags & GRND_NONBLOCK))
		blocking_calls++;
	if(fail_with) {
		errno = fail_with;
		return -1;
	}
	return syscall(SYS_getrandom, buf, len, flags);
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* n ids from host_new_id, all 32 lowercase hex digits and all distinct. */
static void check_ids(int n)
{
	char(*ids)[33] = calloc((size_t)n, sizeof *ids);
	if(!CHECK(ids != NULL))
		return;
	int bad = 0;
	for(int i = 0; i < n; i++) {
		host_new_id(ids[i], sizeof ids[i]);
		if(strlen(ids[i]) != 32 || strspn(ids[i], "0123456789abcdef") != 32)
			bad++;
	}
	CHECK_INT_EQ(bad, 0);
	qsort(ids, (size_t)n, sizeof *ids, cmp_id);
	int dup = 0;
	for(int i = 1; i < n; i++)
		dup += !strcmp(ids[i - 1], ids[i]);
	CHECK_INT_EQ(dup, 0);
	free(ids);
}

static void test_never_blocks(void)
{
	calls = blocking_calls = 0;
	fail_with = 0;
	check_ids(1000);
	CHECK(calls >= 1000);
	CHECK_INT_EQ(blocking_calls, 0);
}

static void test_pool_not_ready_or_no_syscall(void)
{
	/* Early boot: the pool is not initialised (/dev/urandom takes over). */
	fail_with = EAGAIN;
	check_ids(1000);
	/* An old kernel or a seccomp filter. */
	fail_with = ENOSYS;
	check_ids(1000);
	fail_with = 0;
}

static void test_fallback_generator(void)
{
	enum {
		N = 20000
	};
	char(*ids)[33] = calloc(N, sizeof *ids);
	if(!CHECK(ids != NULL))
		return;
	static const char hex[] = "0123456789abcdef";
	int zero = 0;
	for(int i = 0; i < N; i++) {
		unsigned char raw[16];
		entropy__fallback(raw, sizeof raw);
		int nz = 0;
		for(int k = 0; k < 16; k++) {
			ids[i][2 * k] = hex[raw[k] >> 4];
			ids[i][2 * k + 1] = hex[raw[k] & 15];
			nz |= raw[k];
		}
		zero += !nz;
	}
	CHECK_INT_EQ(zero, 0);
	qsort(ids, N, sizeof *ids, cmp_id);
	int dup = 0;
	for(int i = 1; i < N; i++)
		dup += !strcmp(ids[i - 1], ids[i]);
	CHECK_INT_EQ(dup, 0);
	free(ids);

	/* Odd lengths are filled to the last byte. */
	unsigned char odd[13];
	memset(odd, 0, sizeof odd);
	int tries = 0;
	do
		entropy__fallback(odd, sizeof odd);
	while(!odd[12] && ++tries < 8);
	CHECK(odd[12] != 0);
}

int main(void)
{
	test_never_blocks();
	test_pool_not_ready_or_no_syscall();
	test_fallback_generator();
	return check_summary();
}
