/*
 * pingpong.c - the floor of coprocess mode: a bare pipe ping-pong between
 * two processes.  Starts PROGRAM (the echo coprocess) on two pipes, sends
 * it N request lines one at a time, each waiting for its reply line with a
 * blocking read(), and prints the nanoseconds the N round trips took.
 *
 *     pingpong N PROGRAM
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
	int to[2], from[2];
	char req[64], rep[64];
	long long t0;
	long n;
	pid_t pid;

	if (argc != 3) {
		fprintf(stderr, "usage: pingpong N PROGRAM\n");
		return 2;
	}
	n = strtol(argv[1], NULL, 10);
	if (pipe(to) < 0 || pipe(from) < 0)
		return 1;
	if ((pid = fork()) == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[0]); close(to[1]); close(from[0]); close(from[1]);
		execl(argv[2], argv[2], (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	t0 = now_ns();
	for (long i = 1; i <= n; i++) {
		int len = snprintf(req, sizeof(req), "call %ld\n", i);
		size_t got = 0;

		if (write(to[1], req, (size_t)len) != len)
			return 1;
		/* A reply is one short line: read until its newline. */
		while (got == 0 || rep[got - 1] != '\n') {
			ssize_t r = read(from[0], rep + got, sizeof(rep) - got);

			if (r <= 0)
				return 1;
			got += (size_t)r;
		}
	}
	printf("%lld\n", now_ns() - t0);
	close(to[1]);
	waitpid(pid, NULL, 0);
	return 0;
}
