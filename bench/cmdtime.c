/*
 * cmdtime.c - runs a command N times, one after the other, and prints the
 * wall time of each run (CLOCK_MONOTONIC around spawn and wait) in ns with
 * its exit status and its start:
 *
 *     cmdtime [-o OUTFILE] N COMMAND [ARG...]
 *
 * prints N lines "NS STATUS T0" (STATUS: the exit code, or 128+signal; T0:
 * the CLOCK_MONOTONIC reading right before the spawn, for figures that
 * end at a timestamp a worker writes).
 * The command's stdout goes to OUTFILE (the last run's output stays
 * there), else to /dev/null; its stderr is inherited.  posix_spawnp (a
 * vfork) keeps the timer's own share of each figure as small as it gets.
 */
#include <errno.h>
#include <fcntl.h>
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
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	const char *out = "/dev/null";
	long n;
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "-o") == 0) {
		out = argv[2];
		i = 3;
	}
	if (argc - i < 2 || (n = strtol(argv[i], NULL, 10)) < 1) {
		fprintf(stderr, "usage: cmdtime [-o OUTFILE] N COMMAND [ARG...]\n");
		return 2;
	}
	for (long k = 0; k < n; k++) {
		posix_spawn_file_actions_t fa;
		long long t0, t1;
		int st, r;
		pid_t pid;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, out,
		    O_WRONLY | O_CREAT | O_TRUNC, 0644);
		t0 = now_ns();
		r = posix_spawnp(&pid, argv[i + 1], &fa, NULL, argv + i + 1,
		    environ);
		if (r != 0) {
			fprintf(stderr, "cmdtime: %s: %s\n", argv[i + 1],
			    strerror(r));
			return 127;
		}
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		t1 = now_ns();
		posix_spawn_file_actions_destroy(&fa);
		printf("%lld %d %lld\n", t1 - t0, WIFEXITED(st) ?
		    WEXITSTATUS(st) : 128 + WTERMSIG(st), t0);
		fflush(stdout);
	}
	return 0;
}
