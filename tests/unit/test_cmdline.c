/*
 * Unit tests of command-line handling (src/common/cmdline.c), used for the
 * device agent's command templates and the NDI discovery helper: shell-like
 * splitting, then placeholder substitution inside each word, so a
 * substituted value never becomes more than one argument.
 */
#include "check.h"
#include "cmdline.h"

#include <stdlib.h>

/* Splits tmpl and compares with the expected words (NULL-terminated). */
static void expect_split(const char *tmpl, const char *const *want, int line)
{
	char **argv = NULL;
	int argc = -1;
	char err[160] = "";
	int rc = cmdline_split(tmpl, &argv, &argc, err, sizeof err);
	int n = 0;
	while(want[n])
		n++;
	int ok = rc == 0 && argc == n;
	for(int i = 0; ok && i < n; i++)
		ok = !strcmp(argv[i], want[i]);
	ok = ok && argv[n] == NULL;
	check_report(ok, __FILE__, line, tmpl);
	if(!ok) {
		printf("     rc %d, err \"%s\", got %d words:", rc, err, argc);
		for(int i = 0; rc == 0 && i < argc; i++)
			printf(" [%s]", argv[i]);
		printf("\n");
	}
	if(rc == 0)
		cmdline_free(argv);
}

#define SPLIT(tmpl, ...)                                                                                     \
	do {                                                                                                 \
		const char *const want_[] = {__VA_ARGS__, NULL};                                             \
		expect_split(tmpl, want_, __LINE__);                                                         \
	} while(0)

static void expect_split_error(const char *tmpl, const char *needle, int line)
{
	char **argv = NULL;
	int argc = 0;
	char err[160] = "";
	int rc = cmdline_split(tmpl, &argv, &argc, err, sizeof err);
	check_report(rc == -1 && strstr(err, needle), __FILE__, line, tmpl);
	if(rc == 0)
		cmdline_free(argv);
	else if(!strstr(err, needle))
		printf("     err \"%s\" lacks \"%s\"\n", err, needle);
}

static void test_split(void)
{
	SPLIT("ndi-viewer '{source}'", "ndi-viewer", "{source}");
	SPLIT("  a   b\tc\n d ", "a", "b", "c", "d");
	SPLIT("a'b c'd", "ab cd");
	SPLIT("'' x", "", "x");
	SPLIT("\"\"", "");
	SPLIT("a \"b \\\" \\\\ \\$ \\x\" c", "a", "b \" \\ $ \\x", "c");
	SPLIT("a\\ b c", "a b", "c");
	SPLIT("\\'q\\'", "'q'");
	SPLIT("'it'\\''s'", "it's");
	SPLIT("\"it's\"", "it's");
	SPLIT("a\\\nb", "ab");
	SPLIT("$HOME ~ *.c `id` $(id) ;|&", "$HOME", "~", "*.c", "`id`", "$(id)", ";|&");
	SPLIT("rec --out \"/rec/{device_id} {source}.mkv\"", "rec", "--out", "/rec/{device_id} {source}.mkv");
}

/* Command lines as a discovery helper is configured. */
static void test_split_helper_lines(void)
{
	SPLIT("  /usr/bin/ndi-discover   --json\t-t 2 \n", "/usr/bin/ndi-discover", "--json", "-t", "2");
	SPLIT("helper 'two words' \"and three words\"", "helper", "two words", "and three words");
	SPLIT("a '' \"\" b", "a", "", "", "b");
	SPLIT("plain\\ escaped \\'q\\' \\\\", "plain escaped", "'q'", "\\");
	/* No expansions: what a shell would expand stays literal. */
	SPLIT("echo $HOME * ~ `id` $(id)", "echo", "$HOME", "*", "~", "`id`", "$(id)");
	SPLIT("'a\\b \"c\"'", "a\\b \"c\"");
	SPLIT("\"a\\\"b \\\\ \\$x \\n\"", "a\"b \\ $x \\n");
	SPLIT("STUDIO-PC\\ (Camera\\ 1)", "STUDIO-PC (Camera 1)");
}

static void test_split_errors(void)
{
	expect_split_error("a 'b", "unterminated single quote", __LINE__);
	expect_split_error("a \"b", "unterminated double quote", __LINE__);
	expect_split_error("a \\", "trailing backslash", __LINE__);
	expect_split_error("", "empty", __LINE__);
	expect_split_error("   \t ", "empty", __LINE__);
	expect_split_error(NULL, "empty", __LINE__);
}

static const struct cmdline_var vars[] = {
		{"source", "CAM-1"},
		{"device_id", "rpi-01"},
};

static void test_subst(void)
{
	char *s = cmdline_subst("{source}", vars, 2);
	CHECK_STR_EQ(s, "CAM-1");
	free(s);
	s = cmdline_subst("/rec/{device_id}/{source}-{source}.mkv", vars, 2);
	CHECK_STR_EQ(s, "/rec/rpi-01/CAM-1-CAM-1.mkv");
	free(s);
	/* Unknown placeholders and lone braces stay. */
	s = cmdline_subst("{} {x} { {source", vars, 2);
	CHECK_STR_EQ(s, "{} {x} { {source");
	free(s);
	s = cmdline_subst("", vars, 2);
	CHECK_STR_EQ(s, "");
	free(s);
	/* One pass: a value that looks like a placeholder is not expanded. */
	const struct cmdline_var tricky[] = {{"source", "{device_id}"}, {"device_id", "rpi"}};
	s = cmdline_subst("{source}/{device_id}", tricky, 2);
	CHECK_STR_EQ(s, "{device_id}/rpi");
	free(s);
	/* NULL value: empty. */
	const struct cmdline_var none[] = {{"source", NULL}};
	s = cmdline_subst("[{source}]", none, 1);
	CHECK_STR_EQ(s, "[]");
	free(s);
}

static void expect_build(const char *tmpl, const char *source, const char *const *want, int line)
{
	const struct cmdline_var v[] = {{"source", source}, {"device_id", "rpi-01"}};
	char **argv = NULL;
	int argc = -1;
	char err[160] = "";
	int rc = cmdline_build(tmpl, v, 2, &argv, &argc, err, sizeof err);
	int n = 0;
	while(want[n])
		n++;
	int ok = rc == 0 && argc == n;
	for(int i = 0; ok && i < n; i++)
		ok = !strcmp(argv[i], want[i]);
	check_report(ok, __FILE__, line, tmpl);
	if(!ok) {
		printf("     rc %d, err \"%s\", got %d words:", rc, err, argc);
		for(int i = 0; rc == 0 && i < argc; i++)
			printf(" [%s]", argv[i]);
		printf("\n");
	}
	if(rc == 0)
		cmdline_free(argv);
}

#define BUILD(tmpl, source, ...)                                                                             \
	do {                                                                                                 \
		const char *const want_[] = {__VA_ARGS__, NULL};                                             \
		expect_build(tmpl, source, want_, __LINE__);                                                 \
	} while(0)

static void test_build_injection(void)
{
	/* The point of splitting first: whatever the source, one word. */
	BUILD("ndi-viewer '{source}'", "x; rm -rf /", "ndi-viewer", "x; rm -rf /");
	BUILD("ndi-viewer {source}", "x; rm -rf /", "ndi-viewer", "x; rm -rf /");
	BUILD("ndi-viewer \"{source}\"", "a\" \"b", "ndi-viewer", "a\" \"b");
	BUILD("ndi-viewer {source}", "$(touch /tmp/pwned)", "ndi-viewer", "$(touch /tmp/pwned)");
	BUILD("ndi-viewer {source}", "`id`", "ndi-viewer", "`id`");
	BUILD("ndi-viewer {source}", "a b\tc\nd", "ndi-viewer", "a b\tc\nd");
	BUILD("ndi-viewer {source}", "' '", "ndi-viewer", "' '");
	BUILD("ndi-viewer {source}", "", "ndi-viewer", "");
	BUILD("ndi-viewer --name={source} --id {device_id}", "CAM 1 (studio)", "ndi-viewer",
			"--name=CAM 1 (studio)", "--id", "rpi-01");
	/* The program itself may come from a placeholder, still one word. */
	BUILD("{source} -v", "/bin/echo hi", "/bin/echo hi", "-v");
	BUILD("/bin/sh -c 'echo \"$0\"' {source}", "x; rm -rf /", "/bin/sh", "-c", "echo \"$0\"",
			"x; rm -rf /");
}

int main(void)
{
	test_split_helper_lines();
	test_split();
	test_split_errors();
	test_subst();
	test_build_injection();
	return check_summary();
}
