/*
 * launch.c - starts a command and says exactly when: takes a
 * CLOCK_MONOTONIC timestamp immediately before execvp() and leaves it in
 * TSFILE, so the harness's own start-up never enters a figure.
 *
 *     launch TSFILE COMMAND [ARG...]
 *
 * TSFILE is mapped before the timestamp is taken: between the clock read
 * and execvp() there is one store to memory and no system call.  The page
 * cache keeps the store after exec unmaps the file.  TSFILE then holds the
 * timestamp in ns as decimal text padded with spaces.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define TS_LEN	32

int
main(int argc, char **argv)
{
	struct timespec ts;
	char *map;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: launch TSFILE COMMAND [ARG...]\n");
		return 2;
	}
	if ((fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) < 0 || ftruncate(fd, TS_LEN) < 0) {
		fprintf(stderr, "launch: %s: %s\n", argv[1], strerror(errno));
		return 127;
	}
	map = mmap(NULL, TS_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "launch: mmap %s: %s\n", argv[1],
		    strerror(errno));
		return 127;
	}
	close(fd);
	/* Fault the page in now, not after the clock read. */
	memset(map, ' ', TS_LEN);
	map[TS_LEN - 1] = '\n';
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(map, TS_LEN - 1, "%lld", (long long)ts.tv_sec * 1000000000LL +
	    ts.tv_nsec);
	execvp(argv[2], argv + 2);
	fprintf(stderr, "launch: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
