/*
 * One host per state directory: a POSIX record lock on {state_dir}/host.lock.
 *
 * Why fcntl(F_SETLK) and not flock(): F_GETLK tells a refused host which PID
 * holds the lock, straight from the kernel, with no race against the PID
 * written in the file; and record locks are not inherited across fork(), so
 * a child a plugin starts can never keep the state locked after the host
 * is gone.  The price: closing *any* descriptor of this file in this process
 * drops the lock, so nothing but this file may open host.lock.
 *
 * The file is never unlinked: removing it while another process waits to
 * open it would let two processes lock two different files of that name.
 */
#include "state_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct state_lock {
	int fd;
};

int state_dir_create(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	if(snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
		snprintf(err, errlen, "state_dir: %s: path too long", dir);
		return -1;
	}
	for(char *p = path + 1; *p; p++) {
		if(*p != '/')
			continue;
		*p = '\0';
		if(mkdir(path, 0750) && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if(mkdir(path, 0750) && errno != EEXIST)
		goto fail;
	return 0;

fail:
	snprintf(err, errlen, "state_dir: cannot create %s: %s", path, strerror(errno));
	return -1;
}

/* The PID in the file, for when the kernel cannot say (the holder is in
 * another PID namespace, e.g. a container sharing the volume). */
static long pid_in_file(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if(n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

struct state_lock *state_lock_take(const char *dir, char *err, size_t errlen)
{
	if(state_dir_create(dir, err, errlen))
		return NULL;
	char path[4200];
	snprintf(path, sizeof path, "%s/host.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if(fd < 0) {
		snprintf(err, errlen, "state_dir: cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if(fcntl(fd, F_SETLK, &fl)) {
		int e = errno;
		if(e != EACCES && e != EAGAIN) {
			snprintf(err, errlen, "state_dir: cannot lock %s: %s", path, strerror(e));
			close(fd);
			return NULL;
		}
		struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
		long pid = 0;
		if(fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK)
			pid = who.l_pid;
		if(pid <= 0)
			pid = pid_in_file(fd);
		close(fd);
		if(pid > 0)
			snprintf(err, errlen,
					"state_dir: %s is locked by process %ld: another"
					" orchestrator-host is using this state directory",
					path, pid);
		else
			snprintf(err, errlen,
					"state_dir: %s is locked by another process: another"
					" orchestrator-host is using this state directory",
					path);
		return NULL;
	}
	struct state_lock *l = malloc(sizeof *l);
	if(!l) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	l->fd = fd;
	/* For people and for a holder the kernel cannot name (pid_in_file). */
	char pid[24];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if(ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n) {
		snprintf(err, errlen, "state_dir: cannot write %s: %s", path, strerror(errno));
		state_lock_release(l);
		return NULL;
	}
	return l;
}

void state_lock_release(struct state_lock *l)
{
	if(!l)
		return;
	/* Still ours until close(): the next host finds an empty file, not a
	 * PID that may belong to some other process by now.  A failure is
	 * harmless: the next holder overwrites it. */
	int rc = ftruncate(l->fd, 0);
	(void)rc;
	close(l->fd);
	free(l);
}
