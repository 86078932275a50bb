/*
 * What the fuzz targets share: the libFuzzer entry point, a quiet log, a
 * private scratch directory, cutting an input into fields, and a check
 * that aborts (so libFuzzer reports the input) when a property the code
 * promises does not hold.
 *
 * Inputs are text where the parser reads text: fields are lines, so the
 * seeds in corpus/ can be read and edited by hand.  Each target's header
 * comment says how it reads its input.
 */
#ifndef OH_FUZZ_COMMON_H
#define OH_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Once per process: drops the OH_* environment overrides (the input alone
 * decides), and silences the log unless OH_FUZZ_LOG is set, since a log
 * line per input would be most of the run time. */
void fuzz_setup(void);

/* A directory of this process's own (under /dev/shm when there is one:
 * the SQLite store fsyncs), removed at exit.  Static; never NULL. */
const char *fuzz_tmpdir(void);

/* The input being cut into fields. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
	bool done;
};

static inline struct fuzz_in fuzz_in(const uint8_t *data, size_t size)
{
	return (struct fuzz_in){data, size, false};
}

/* The next field, up to sep (not included) or the end, as a NUL-terminated
 * copy (returned, free()); NULL once the input is used up.  A NUL byte
 * inside a field ends the C string there, as it would for the parser. */
char *fuzz_next(struct fuzz_in *in, char sep);

/* The rest of the input, as fuzz_next. */
char *fuzz_rest(struct fuzz_in *in);

/* A property the code promises: abort with its text when it fails. */
#define FUZZ_CHECK(cond)                                                                                     \
	do {                                                                                                 \
		if(!(cond)) {                                                                                \
			fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);        \
			abort();                                                                             \
		}                                                                                            \
	} while(0)

#endif
