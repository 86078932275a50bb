/*
 * Unit tests for ndi_discovery_split_argv() (src/plugins/ndi/ndi_discovery.c):
 * how settings.discovery_helper's command line becomes argv without a
 * shell: blanks, both quotes, backslashes, empty words, and the errors.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "oh/defs.h"
#include "../../src/plugins/ndi/ndi_discovery.h"

/* Splits line and compares with the expected words (NULL-terminated). */
static void expect(const char *line, const char *const *want)
{
	char **argv = NULL;
	const char *err = NULL;
	int rc = ndi_discovery_split_argv(line, &argv, &err);
	if(!check_report(rc == OH_OK, __FILE__, __LINE__, line)) {
		printf("     error: %s\n", err ? err : "(none)");
		return;
	}
	size_t n = 0;
	while(want[n] && argv[n]) {
		CHECK_STR_EQ(argv[n], want[n]);
		n++;
	}
	if(!check_report(!want[n] && !argv[n], __FILE__, __LINE__, line))
		printf("     word count differs at %zu\n", n);
	ndi_discovery_argv_free(argv);
}

static void expect_error(const char *line, const char *needle)
{
	char **argv = (char **)1;
	const char *err = NULL;
	CHECK_INT_EQ(ndi_discovery_split_argv(line, &argv, &err), OH_ERR_INVAL);
	CHECK(argv == NULL);
	CHECK_STR_CONTAINS(err, needle);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

int main(void)
{
	expect("ndi-discover", W("ndi-discover"));
	expect("  /usr/bin/ndi-discover   --json\t-t 2 \n", W("/usr/bin/ndi-discover", "--json", "-t", "2"));
	expect("helper 'two words' \"and three words\"", W("helper", "two words", "and three words"));
	expect("a'b'c\"d\"e", W("abcde"));
	expect("a '' \"\" b", W("a", "", "", "b"));
	expect("plain\\ escaped \\'q\\' \\\\", W("plain escaped", "'q'", "\\"));
	/* No expansions: what a shell would expand stays literal. */
	expect("echo $HOME * ~ `id` $(id)", W("echo", "$HOME", "*", "~", "`id`", "$(id)"));
	/* In single quotes nothing is special; in double quotes only \" \\ \$ \`. */
	expect("'a\\b \"c\"'", W("a\\b \"c\""));
	expect("\"a\\\"b \\\\ \\$x \\n\"", W("a\"b \\ $x \\n"));
	expect("\"it's\"", W("it's"));
	expect("STUDIO-PC\\ (Camera\\ 1)", W("STUDIO-PC (Camera 1)"));

	expect_error("", "empty");
	expect_error(" \t\n", "empty");
	expect_error(NULL, "empty");
	expect_error("run 'open", "unterminated single quote");
	expect_error("run \"open", "unterminated double quote");
	expect_error("run \"a\\\"", "unterminated double quote");
	expect_error("run \\", "trailing backslash");

	ndi_discovery_argv_free(NULL);
	return check_summary();
}
