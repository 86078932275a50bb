/*
 * Random bytes for ids and hash keys, drawn without ever blocking the
 * event loop.
 *
 * The one way the host and its libraries get randomness: getrandom() with
 * GRND_NONBLOCK, then /dev/urandom (which never blocks, though before the
 * kernel's pool is initialised at early boot its output may be weak), then
 * a generator seeded from clocks, the pid and addresses that ASLR moves,
 * for when neither is available (ENOSYS, a seccomp filter, no /dev).
 */
#ifndef OH_ENTROPY_H
#define OH_ENTROPY_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Fills buf (borrowed, len bytes) and returns true when the bytes came from
 * the kernel, false when from the fallback generator.  Either way they are
 * unique within the process and differ between runs: good for request ids
 * and hash-flooding keys, never for secrets.  Single-threaded callers only.
 */
bool entropy_bytes(void *buf, size_t len);

/* The fallback generator alone (SplitMix64 in counter mode: no value
 * repeats within 2^64 words), exposed for tests. */
void entropy__fallback(void *buf, size_t len);

#endif
