/*
 * output.c - a child's stdout and stderr, read by the master from the
 * non-blocking ends of their pipes and logged a line at a time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"

void
outstream_init(struct outstream *os, int fd, int is_err)
{
	os->fd = fd;
	os->is_err = is_err;
	os->part = NULL;
}

/* Logs one whole line of the stream. */
static void
put_line(const struct outstream *os, const struct log_origin *o,
    const char *line, size_t len)
{
	int level = os->is_err == OUT_STDERR ? PM_LOG_WARNING : PM_LOG_INFO;

	/* A record: its level, then its text (host messages, pm_log). */
	if (os->is_err != OUT_STDOUT && len >= 2 && line[0] == LOG_RECORD &&
	    line[1] >= '0' && line[1] <= '0' + PM_LOG_ERROR) {
		level = line[1] - '0';
		line += 2;
		len -= 2;
	}
	log_line(o, level, line, len);
}

/* Splits data into lines, the first continuing what was left before. */
static void
take(struct outstream *os, const struct log_origin *o, const char *data,
    size_t n)
{
	while (n > 0) {
		const char *nl = memchr(data, '\n', n);
		size_t len = nl != NULL ? (size_t)(nl - data) : n;
		struct linebuf *lb = os->part;

		if (nl != NULL && (lb == NULL || lb->len == 0)) {
			/* A whole line: logged from where it lies. */
			put_line(os, o, data, len);
		} else {
			/* Part of a line: kept until its end comes. */
			if (lb == NULL && (lb = os->part = calloc(1,
			    sizeof(*lb))) == NULL)
				return;
			for (size_t done = 0; done < len; ) {
				size_t c = len - done;

				if (c > sizeof(lb->p) - lb->len)
					c = sizeof(lb->p) - lb->len;
				memcpy(lb->p + lb->len, data + done, c);
				lb->len += c;
				done += c;
				/* Too long for one line: out in pieces. */
				if (lb->len == sizeof(lb->p)) {
					put_line(os, o, lb->p, lb->len);
					lb->len = 0;
				}
			}
			if (nl != NULL) {
				put_line(os, o, lb->p, lb->len);
				lb->len = 0;
			}
		}
		if (nl == NULL)
			return;
		data += len + 1;
		n -= len + 1;
	}
}

/* Logs the unfinished line and frees its buffer. */
static void
flush_part(struct outstream *os, const struct log_origin *o)
{
	if (os->part != NULL && os->part->len > 0)
		put_line(os, o, os->part->p, os->part->len);
	free(os->part);
	os->part = NULL;
}

/* Reads up to rounds chunks of what waits in the pipe. */
static void
read_some(struct outstream *os, const struct log_origin *o, int rounds)
{
	char buf[65536];

	for (int r = 0; os->fd >= 0 && r < rounds; r++) {
		ssize_t n = read(os->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* The child (and all it forked) closed it. */
			flush_part(os, o);
			close(os->fd);
			os->fd = -1;
			return;
		}
		take(os, o, buf, (size_t)n);
	}
}

void
outstream_read(struct outstream *os, const struct log_origin *o)
{
	/* Two chunks a turn: a flooding child cannot starve the loop. */
	read_some(os, o, 2);
}

void
outstream_close(struct outstream *os, const struct log_origin *o)
{
	/* A dead child's last words, all of them (a pipe holds 1 MiB). */
	read_some(os, o, 1024);
	flush_part(os, o);
	if (os->fd >= 0)
		close(os->fd);
	os->fd = -1;
}
