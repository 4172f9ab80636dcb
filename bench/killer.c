/*
 * killer.c - sends a signal with a timestamp taken right before kill(),
 * and optionally times how long a set of processes takes to be gone.
 *
 *     killer SIG PID [WATCHPID...]
 *
 * Opens a pidfd on each WATCHPID first, then takes T0 (CLOCK_MONOTONIC)
 * and kills PID.  Prints "T0 NS".  With WATCHPIDs it then polls their
 * pidfds (readable once the process has exited) for up to 5 s and prints
 *     GONE NS        when the last one exited (or "GONE -1" on timeout)
 *     ALIVE100 N     how many were still alive 100 ms after T0
 * A pid that is already gone when opened counts as gone at T0.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	int n = argc - 3, left = 0, alive100 = -1;
	struct pollfd *pfds;
	long long t0, last = 0;
	pid_t target;
	int sig;

	if (argc < 3) {
		fprintf(stderr, "usage: killer SIG PID [WATCHPID...]\n");
		return 2;
	}
	sig = atoi(argv[1]);
	target = (pid_t)atol(argv[2]);
	if ((pfds = calloc((size_t)(n > 0 ? n : 1), sizeof(*pfds))) == NULL)
		return 1;
	for (int i = 0; i < n; i++) {
		pfds[i].fd = (int)syscall(SYS_pidfd_open, atol(argv[3 + i]), 0);
		pfds[i].events = POLLIN;
		if (pfds[i].fd >= 0)
			left++;
	}
	t0 = now_ns();
	if (kill(target, sig) < 0) {
		perror("killer: kill");
		return 1;
	}
	printf("T0 %lld\n", t0);
	if (n == 0)
		return 0;
	last = t0;
	while (left > 0) {
		long long now = now_ns();
		int ms, r;

		if (alive100 < 0 && now - t0 >= 100000000LL)
			alive100 = left;
		if (now - t0 > 5000000000LL)
			break;
		ms = alive100 < 0 ? (int)((t0 + 100000000LL - now) / 1000000) + 1 :
		    100;
		r = poll(pfds, (nfds_t)n, ms);
		if (r < 0 && errno != EINTR)
			break;
		now = now_ns();
		for (int i = 0; r > 0 && i < n; i++) {
			if (pfds[i].fd < 0 || pfds[i].revents == 0)
				continue;
			close(pfds[i].fd);
			pfds[i].fd = -1;
			left--;
			last = now;
		}
	}
	if (alive100 < 0)
		alive100 = left;
	printf("GONE %lld\nALIVE100 %d\n", left > 0 ? -1LL : last, alive100);
	return 0;
}
