/*
 * The main() of a fuzz target in the normal builds: runs every input named
 * on the command line (a file, or each file of a directory in name order)
 * through LLVMFuzzerTestOneInput() once, as libFuzzer does when given
 * files.  So the committed corpus is replayed by the gcc builds of
 * `make test`, under ASan+UBSan in the sanitizer build, without clang.
 *
 * Each input is copied into a buffer of exactly its size, so reading one
 * byte past it is caught by ASan as it would be under libFuzzer.  Finding
 * no input at all fails: an empty or misplaced corpus must not pass.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if(!f) {
		perror(path);
		return -1;
	}
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	for(size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
		n += got;
		if(n == cap) {
			uint8_t *grown = realloc(buf, cap *= 2);
			if(!grown) {
				free(buf);
				buf = NULL;
			}
			buf = grown;
		}
	}
	int bad = ferror(f);
	fclose(f);
	if(!buf || bad) {
		fprintf(stderr, "%s: %s\n", path, buf ? "read error" : "out of memory");
		free(buf);
		return -1;
	}
	/* Exactly n bytes, so an overread is a heap-buffer-overflow. */
	uint8_t *exact = malloc(n ? n : 1);
	if(!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, n);
	free(buf);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 0;
}

static int skip_dot(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

int main(int argc, char **argv)
{
	int runs = 0;
	for(int i = 1; i < argc; i++) {
		struct stat st;
		if(stat(argv[i], &st)) {
			perror(argv[i]);
			return 1;
		}
		if(!S_ISDIR(st.st_mode)) {
			if(run_file(argv[i]))
				return 1;
			runs++;
			continue;
		}
		struct dirent **names;
		int n = scandir(argv[i], &names, skip_dot, alphasort);
		if(n < 0) {
			perror(argv[i]);
			return 1;
		}
		for(int k = 0; k < n; k++) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
			if(!stat(path, &st) && S_ISREG(st.st_mode)) {
				if(run_file(path))
					return 1;
				runs++;
			}
			free(names[k]);
		}
		free(names);
	}
	if(!runs) {
		fprintf(stderr, "usage: %s FILE|DIR...: no inputs found\n", argv[0]);
		return 1;
	}
	printf("%d inputs replayed\n", runs);
	return 0;
}
