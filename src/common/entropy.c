/*
 * Random bytes without blocking (entropy.h).
 *
 * Pitfalls this file exists to get right:
 * - getrandom(..., 0) blocks until the kernel's pool is initialised, which
 *   at early boot (a lab host started by systemd before the network) can
 *   take minutes, with the event loop stuck: always GRND_NONBLOCK, and EAGAIN
 *   means "use the next source", not "retry".
 * - getrandom() may return fewer bytes than asked (signals) and may not
 *   exist (ENOSYS on old kernels, EPERM under a seccomp filter).
 * - The last resort must still give distinct values on every call within
 *   the process, since callers use them as unique ids: a counter run through
 *   a bijective mixer does, whatever the seed.
 */
#include "entropy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static bool from_getrandom(uint8_t *p, size_t len)
{
	size_t got = 0;
	while(got < len) {
		ssize_t n = getrandom(p + got, len - got, GRND_NONBLOCK);
		if(n > 0)
			got += (size_t)n;
		else if(n < 0 && errno == EINTR)
			continue;
		else
			return false; /* EAGAIN (pool not ready), ENOSYS, EPERM */
	}
	return true;
}

static bool from_urandom(uint8_t *p, size_t len)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if(fd < 0)
		return false;
	size_t got = 0;
	while(got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if(n > 0)
			got += (size_t)n;
		else if(!(n < 0 && errno == EINTR))
			break;
	}
	close(fd);
	return got == len;
}

/* SplitMix64's finaliser: a bijection on 64-bit words. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static struct {
	uint64_t state;
	bool seeded;
} fallback;

static void fallback_seed(void)
{
	struct timespec mono, real;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	uint64_t s = mix64((uint64_t)real.tv_sec * 1000000000u + (uint64_t)real.tv_nsec);
	s ^= mix64(((uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec) ^ 0x5851f42d4c957f2dULL);
	s ^= mix64((uint64_t)getpid() ^ 0x14057b7ef767814fULL);
	/* Stack, code and data addresses: ASLR moves them from run to run. */
	s ^= mix64((uint64_t)(uintptr_t)&mono);
	s ^= mix64((uint64_t)(uintptr_t)fallback_seed ^ 0x2545f4914f6cdd1dULL);
	s ^= mix64((uint64_t)(uintptr_t)&fallback ^ 0x9e3779b97f4a7c15ULL);
	fallback.state = s;
	fallback.seeded = true;
}

void entropy__fallback(void *buf, size_t len)
{
	if(!fallback.seeded)
		fallback_seed();
	uint8_t *p = buf;
	while(len) {
		fallback.state += 0x9e3779b97f4a7c15ULL; /* odd: the full 2^64 period */
		uint64_t v = mix64(fallback.state);
		size_t n = len < 8 ? len : 8;
		for(size_t i = 0; i < n; i++)
			p[i] = (uint8_t)(v >> (8 * i));
		p += n;
		len -= n;
	}
}

bool entropy_bytes(void *buf, size_t len)
{
	if(from_getrandom(buf, len) || from_urandom(buf, len))
		return true;
	entropy__fallback(buf, len);
	return false;
}
