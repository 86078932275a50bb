/*
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF"),
 * the keyed hash behind strmap: with a secret random key, a client cannot
 * choose keys that all land in one bucket, as it could with FNV-1a.
 *
 * siphash_process_key() is the per-process random key, drawn once without
 * ever blocking (entropy_bytes(): getrandom with GRND_NONBLOCK, then
 * /dev/urandom, then clocks, pid and addresses).  It is a hash-flooding
 * defence, not a cryptographic secret.
 */
#ifndef OH_SIPHASH_H
#define OH_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* The 64-bit SipHash-2-4 of len bytes at data (borrowed) under key (16
 * bytes, borrowed); the reference implementation's output read as a
 * little-endian integer. */
uint64_t siphash24(const void *data, size_t len, const uint8_t key[SIPHASH_KEY_LEN]);

/* The process's random key (16 bytes, static: never freed), drawn on the
 * first call.  Single-threaded callers only, like the rest of the host. */
const uint8_t *siphash_process_key(void);

#endif
