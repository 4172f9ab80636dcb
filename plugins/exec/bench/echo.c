/*
 * echo.c - the benchmark's coprocess: answers "ok" to every request line
 * on stdin, with one read() and one write() per request and no stdio
 * buffering, until EOF.  The least work a coprocess can do per call.
 */
#include <string.h>
#include <unistd.h>

int
main(void)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(0, buf, sizeof(buf))) > 0) {
		/* One "ok" per newline: requests may arrive together. */
		for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p)))
		    != NULL; p++)
			if (write(1, "ok\n", 3) != 3)
				return 1;
	}
	return 0;
}
