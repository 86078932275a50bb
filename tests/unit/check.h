/*
 * A few assertion macros for the unit tests, which are plain C programs.
 *
 * Each failing check prints one line with file, line and the values seen,
 * and the test keeps going so one run shows every failure.  main() ends
 * with `return check_summary();`, which prints "N passed, N failed" and
 * returns non-zero if anything failed.  Include from one file per test
 * program: the counters are static.
 */
#ifndef OH_TEST_CHECK_H
#define OH_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

/* Under AddressSanitizer a loop costs several times what it does in the
 * release tree, and the sanitizer tree is there to catch memory errors,
 * not to repeat every sample: exhaustive and random comparisons run
 * whole in the release tree and on a tenth (at least one) under ASan. */
#if defined(__SANITIZE_ADDRESS__)
#define CHECK_SANITIZED 1
#else
#define CHECK_SANITIZED 0
#endif

static inline long check_sample(long n)
{
	return CHECK_SANITIZED ? (n + 9) / 10 : n;
}

static int check_passed;
static int check_failed;

/* Count one check; print `what` when it failed.  Returns ok so callers can
 * add context after a failure. */
static inline int check_report(int ok, const char *file, int line, const char *what)
{
	if(ok) {
		check_passed++;
	} else {
		check_failed++;
		printf("FAIL %s:%d: %s\n", file, line, what);
	}
	return ok;
}

#define CHECK(cond) check_report(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_INT_EQ(a, b)                                                                                   \
	do {                                                                                                 \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                              \
		if(!check_report(check_a_ == check_b_, __FILE__, __LINE__, #a " == " #b))                    \
			printf("     got %lld, expected %lld\n", check_a_, check_b_);                        \
	} while(0)

#define CHECK_STR_EQ(a, b)                                                                                   \
	do {                                                                                                 \
		const char *check_a_ = (a), *check_b_ = (b);                                                 \
		int check_ok_ = check_a_ && check_b_ && !strcmp(check_a_, check_b_);                         \
		if(!check_report(check_ok_, __FILE__, __LINE__, #a " equals " #b))                           \
			printf("     got \"%s\", expected \"%s\"\n", check_a_ ? check_a_ : "(null)",         \
					check_b_ ? check_b_ : "(null)");                                     \
	} while(0)

/* haystack contains needle: for error messages, which may be reworded
 * around the part that matters. */
#define CHECK_STR_CONTAINS(haystack, needle)                                                                 \
	do {                                                                                                 \
		const char *check_h_ = (haystack), *check_n_ = (needle);                                     \
		int check_ok_ = check_h_ && check_n_ && strstr(check_h_, check_n_);                          \
		if(!check_report(check_ok_, __FILE__, __LINE__, #haystack " contains " #needle))             \
			printf("     \"%s\" does not contain \"%s\"\n", check_h_ ? check_h_ : "(null)",      \
					check_n_ ? check_n_ : "(null)");                                     \
	} while(0)

/* Print the totals; the exit status for main(). */
static inline int check_summary(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed != 0;
}

#endif
