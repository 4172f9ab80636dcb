/*
 * spawner.c - worker processes forked from the master.  Signals stay
 * blocked across fork() (the master's mask is its set-up), so the child
 * cannot act on one before worker_main() has reset them.  Each worker's
 * stdout and stderr are pipes to the master, which turns what comes
 * through them into log lines (pipes, so that /dev/stdout opens).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "spawner.h"

void
spawner_init(struct spawner *sp)
{
	sp->master = getpid();
}

/* A pipe the master reads ([0], non-blocking) and the worker writes. */
static int
stream(int sv[2])
{
	if (pipe2(sv, O_CLOEXEC) < 0)
		return -1;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	return 0;
}

int
spawner_spawn(struct spawner *sp, const struct worker_args *a, pid_t *pid,
    int out[2])
{
	struct worker_args wa = *a;
	int so[2], se[2], e;
	pid_t p;

	(void)sp;
	if (stream(so) < 0)
		return -1;
	if (stream(se) < 0) {
		e = errno;
		close(so[0]);
		close(so[1]);
		errno = e;
		return -1;
	}
	wa.out_fd = so[1];
	wa.err_fd = se[1];
	if ((p = fork()) < 0) {
		e = errno;
		close(so[0]);
		close(so[1]);
		close(se[0]);
		close(se[1]);
		errno = e;
		return -1;
	}
	if (p == 0)
		worker_main(&wa);
	/* Both sides set the group, so neither can act before it exists. */
	setpgid(p, p);
	close(so[1]);
	close(se[1]);
	*pid = p;
	out[0] = so[0];
	out[1] = se[0];
	return 0;
}
