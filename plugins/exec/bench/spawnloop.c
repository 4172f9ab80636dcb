/*
 * spawnloop.c - the floor of call mode: a bare C loop that runs a program
 * N times, each to its end, and prints the nanoseconds the loop took.
 *
 *     spawnloop fork|spawn N PROGRAM [ARG...]
 *
 * fork: fork() + execv() + waitpid(); spawn: posix_spawn() (vfork-like
 * in glibc) + waitpid().  The child's stdio is the loop's own.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long long t0;
	long n;
	int use_fork;

	if (argc < 4) {
		fprintf(stderr, "usage: spawnloop fork|spawn N PROGRAM "
		    "[ARG...]\n");
		return 2;
	}
	use_fork = strcmp(argv[1], "fork") == 0;
	n = strtol(argv[2], NULL, 10);
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		pid_t pid;
		int st;

		if (use_fork) {
			if ((pid = fork()) == 0) {
				execv(argv[3], argv + 3);
				_exit(127);
			}
		} else if (posix_spawn(&pid, argv[3], NULL, NULL, argv + 3,
		    environ) != 0) {
			pid = -1;
		}
		if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			fprintf(stderr, "spawnloop: run %ld failed\n", i);
			return 1;
		}
	}
	printf("%lld\n", now_ns() - t0);
	return 0;
}
