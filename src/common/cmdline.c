/*
 * Template splitting and placeholder substitution (see cmdline.h for the
 * rules and why the order matters).
 */
#include "cmdline.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer for the word being built. */
struct buf {
	char *p;
	size_t len, cap;
};

static bool buf_put(struct buf *b, const char *s, size_t n)
{
	if(b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 32;
		while(cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if(!p)
			return false;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

static bool buf_putc(struct buf *b, char c)
{
	return buf_put(b, &c, 1);
}

void cmdline_free(char **argv)
{
	if(!argv)
		return;
	for(char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

static bool push_word(char ***argv, int *argc, struct buf *w)
{
	char **grown = realloc(*argv, ((size_t)*argc + 2) * sizeof **argv);
	if(!grown)
		return false;
	*argv = grown;
	/* An empty quoted word ('') has no buffer yet. */
	grown[*argc] = w->p ? w->p : strdup("");
	if(!grown[*argc])
		return false;
	(*argc)++;
	grown[*argc] = NULL;
	w->p = NULL;
	w->len = w->cap = 0;
	return true;
}

int cmdline_split(const char *tmpl, char ***argv_out, int *argc_out, char *err, size_t errlen)
{
	char **argv = calloc(1, sizeof *argv);
	int argc = 0;
	struct buf w = {0};
	/* A word exists once any of its characters or quotes was seen, so that
	 * '' yields an empty word but plain blanks yield none. */
	bool in_word = false;
	const char *s = tmpl ? tmpl : "";
	if(!argv)
		goto nomem;

	while(*s) {
		char c = *s;
		if(c == ' ' || c == '\t' || c == '\n') {
			if(in_word && !push_word(&argv, &argc, &w))
				goto nomem;
			in_word = false;
			s++;
			continue;
		}
		in_word = true;
		if(c == '\'') {
			const char *end = strchr(s + 1, '\'');
			if(!end) {
				snprintf(err, errlen, "unterminated single quote at offset %zu",
						(size_t)(s - tmpl));
				goto fail;
			}
			if(!buf_put(&w, s + 1, (size_t)(end - s - 1)))
				goto nomem;
			/* Make sure '' alone still allocates the (empty) word. */
			if(!w.p && !buf_put(&w, "", 0))
				goto nomem;
			s = end + 1;
		} else if(c == '"') {
			const char *start = s;
			s++;
			while(*s && *s != '"') {
				if(*s == '\\' && s[1] && strchr("\\\"$`\n", s[1])) {
					/* A backslash-newline inside double quotes is a line
					 * continuation and vanishes, as in sh. */
					if(s[1] != '\n' && !buf_putc(&w, s[1]))
						goto nomem;
					s += 2;
					continue;
				}
				if(!buf_putc(&w, *s))
					goto nomem;
				s++;
			}
			if(!*s) {
				snprintf(err, errlen, "unterminated double quote at offset %zu",
						(size_t)(start - tmpl));
				goto fail;
			}
			if(!w.p && !buf_put(&w, "", 0))
				goto nomem;
			s++;
		} else if(c == '\\') {
			if(!s[1]) {
				snprintf(err, errlen, "trailing backslash");
				goto fail;
			}
			if(s[1] == '\n') {
				/* Line continuation: joins, adds nothing. */
				s += 2;
				if(!w.p)
					in_word = false;
				continue;
			}
			if(!buf_putc(&w, s[1]))
				goto nomem;
			s += 2;
		} else {
			if(!buf_putc(&w, c))
				goto nomem;
			s++;
		}
	}
	if(in_word && !push_word(&argv, &argc, &w))
		goto nomem;
	if(argc == 0) {
		snprintf(err, errlen, "the command line is empty");
		goto fail;
	}
	*argv_out = argv;
	*argc_out = argc;
	return 0;

nomem:
	snprintf(err, errlen, "out of memory");
fail:
	free(w.p);
	cmdline_free(argv);
	return -1;
}

char *cmdline_subst(const char *word, const struct cmdline_var *vars, size_t nvars)
{
	struct buf out = {0};
	if(!buf_put(&out, "", 0))
		return NULL;
	const char *s = word;
	while(*s) {
		if(*s == '{') {
			const char *close = strchr(s + 1, '}');
			bool done = false;
			for(size_t i = 0; close && i < nvars && !done; i++) {
				size_t n = strlen(vars[i].name);
				if((size_t)(close - s - 1) == n && !strncmp(s + 1, vars[i].name, n)) {
					const char *v = vars[i].value ? vars[i].value : "";
					if(!buf_put(&out, v, strlen(v)))
						goto nomem;
					s = close + 1;
					done = true;
				}
			}
			if(done)
				continue;
		}
		if(!buf_putc(&out, *s))
			goto nomem;
		s++;
	}
	return out.p;

nomem:
	free(out.p);
	return NULL;
}

int cmdline_build(const char *tmpl, const struct cmdline_var *vars, size_t nvars, char ***argv_out,
		int *argc_out, char *err, size_t errlen)
{
	char **argv;
	int argc;
	if(cmdline_split(tmpl, &argv, &argc, err, errlen))
		return -1;
	for(int i = 0; i < argc; i++) {
		char *sub = cmdline_subst(argv[i], vars, nvars);
		if(!sub) {
			snprintf(err, errlen, "out of memory");
			cmdline_free(argv);
			return -1;
		}
		free(argv[i]);
		argv[i] = sub;
	}
	*argv_out = argv;
	*argc_out = argc;
	return 0;
}
