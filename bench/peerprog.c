/*
 * peerprog.c - the looping program supervisord runs, the peer's
 * equivalent of a sleeping bench worker: it appends "FIRST SLOT PID NS 0"
 * (CLOCK_MONOTONIC, taken first thing in main) to RECORDS in one O_APPEND
 * write, then sleeps in a loop until it is signalled.
 *
 *     peerprog RECORDS SLOT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct timespec ts;
	char buf[128];
	int fd, n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (argc < 3)
		return 2;
	n = snprintf(buf, sizeof(buf), "FIRST %d %ld %lld 0\n", atoi(argv[2]),
	    (long)getpid(), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	if ((fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) >= 0) {
		if (write(fd, buf, (size_t)n) != n) {
			/* The harness notices the missing record. */
		}
		close(fd);
	}
	for (;;)
		sleep(3600);
}
