/*
 * Turning a command template from the module config into an argv, safely.
 *
 * The template ("ndi-viewer --source '{source}'") is split into words with
 * shell-like quoting first, and only then are `{source}` and `{device_id}`
 * replaced inside each word.  A substituted value therefore never creates,
 * removes or joins words and is never interpreted by a shell: the source
 * name `x; rm -rf /` stays one harmless argument.
 */
#ifndef OH_CMDLINE_H
#define OH_CMDLINE_H

#include <stddef.h>

/*
 * Splits tmpl (borrowed) into words.  Rules, a subset of POSIX sh:
 * - unquoted blanks (space, tab, newline) separate words;
 * - '...' keeps everything literally up to the next ';
 * - "..." keeps everything literally except that a backslash escapes
 *   \ " $ ` and newline (elsewhere it stays a backslash);
 * - outside quotes a backslash makes the next character literal;
 * - quotes and escapes join with adjacent text: a'b'"c" is one word abc,
 *   and '' is one empty word.
 * No expansion of any kind ($VAR, globs, ~) happens.
 *
 * On success stores a NULL-terminated array in *argv (returned: free with
 * cmdline_free()) and its length in *argc, returning 0.  On an unterminated
 * quote, a trailing backslash or a template with no words, returns -1 with a
 * message in err.
 */
int cmdline_split(const char *tmpl, char ***argv, int *argc, char *err, size_t errlen);

struct cmdline_var {
	const char *name; /* without braces: "source" */
	const char *value;
};

/*
 * Returns word (borrowed) with every `{name}` of vars replaced by its value,
 * in one left-to-right pass (a value containing "{device_id}" is not
 * expanded again).  Unknown `{...}` and lone braces are kept as they are.
 * Returned: free(); NULL when out of memory.
 */
char *cmdline_subst(const char *word, const struct cmdline_var *vars, size_t nvars);

/* Split then substitute: the argv a module runs.  Same contract as
 * cmdline_split(). */
int cmdline_build(const char *tmpl, const struct cmdline_var *vars, size_t nvars, char ***argv, int *argc,
		char *err, size_t errlen);

void cmdline_free(char **argv);

#endif
