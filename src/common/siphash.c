/*
 * SipHash-2-4, written from the paper and checked against the reference
 * implementation's 64 test vectors (tests/unit/test_strmap.c), plus the
 * process key.
 *
 * Pitfalls this file exists to get right:
 * - Words are read little-endian byte by byte, never through a cast
 *   pointer: keys come at any alignment and the host may run big-endian.
 * - The last block carries the length (mod 256) in its top byte and the
 *   0-7 remaining bytes below it, so messages that differ only in trailing
 *   zero bytes hash differently.
 * - The key is drawn without blocking the event loop (entropy.h: a
 *   fallback when the entropy pool is not initialised yet at early boot,
 *   or getrandom() does not exist).
 */
#include "siphash.h"

#include <stdbool.h>

#include "entropy.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                             \
	do {                                                                                                 \
		v0 += v1;                                                                                    \
		v1 = ROTL(v1, 13);                                                                           \
		v1 ^= v0;                                                                                    \
		v0 = ROTL(v0, 32);                                                                           \
		v2 += v3;                                                                                    \
		v3 = ROTL(v3, 16);                                                                           \
		v3 ^= v2;                                                                                    \
		v0 += v3;                                                                                    \
		v3 = ROTL(v3, 21);                                                                           \
		v3 ^= v0;                                                                                    \
		v2 += v1;                                                                                    \
		v1 = ROTL(v1, 17);                                                                           \
		v1 ^= v2;                                                                                    \
		v2 = ROTL(v2, 32);                                                                           \
	} while(0)

static uint64_t load_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
			(uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
			(uint64_t)p[7] << 56;
}

uint64_t siphash24(const void *data, size_t len, const uint8_t key[SIPHASH_KEY_LEN])
{
	const uint8_t *in = data;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	const uint8_t *end = in + (len & ~(size_t)7);

	for(; in != end; in += 8) {
		uint64_t m = load_le64(in);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	switch(len & 7) {
	case 7:
		b |= (uint64_t)in[6] << 48; /* fall through */
	case 6:
		b |= (uint64_t)in[5] << 40; /* fall through */
	case 5:
		b |= (uint64_t)in[4] << 32; /* fall through */
	case 4:
		b |= (uint64_t)in[3] << 24; /* fall through */
	case 3:
		b |= (uint64_t)in[2] << 16; /* fall through */
	case 2:
		b |= (uint64_t)in[1] << 8; /* fall through */
	case 1:
		b |= (uint64_t)in[0];
		break;
	case 0:
		break;
	}
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

const uint8_t *siphash_process_key(void)
{
	static uint8_t key[SIPHASH_KEY_LEN];
	static bool drawn;
	if(!drawn) {
		/* Never waits for the kernel's pool (entropy.h). */
		entropy_bytes(key, sizeof key);
		drawn = true;
	}
	return key;
}
