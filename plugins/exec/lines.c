/*
 * lines.c - a child's output stream cut into log lines.  Reads are
 * non-blocking and bounded per turn, so a child that floods its output
 * cannot hold the worker away from its other descriptors; memory is one
 * fixed buffer per stream, so it cannot grow either: a line longer than
 * LINE_CAP is logged up to the cap, marked, and the rest of it dropped.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"

void
lines_init(struct line_sink *s, pm_worker *w, int level)
{
	s->w = w;
	s->level = level;
	s->skipping = 0;
	s->len = 0;
}

/* Logs buf[0..len) as one line, without a trailing carriage return. */
static void
emit(struct line_sink *s, char *line, size_t len, int truncated)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	/* A NUL byte would end the log line early. */
	for (char *nul = line; (nul = memchr(nul, '\0', len -
	    (size_t)(nul - line))) != NULL; )
		*nul = '?';
	pm_log(s->w, s->level, "%s%s", line, truncated ? " [line truncated]" :
	    "");
}

/* Logs every complete line in the buffer and keeps the partial rest. */
static void
split(struct line_sink *s)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(s->buf + start, '\n', s->len - start)) != NULL) {
		size_t end = (size_t)(nl - s->buf);

		if (s->skipping)
			s->skipping = 0;
		else
			emit(s, s->buf + start, end - start, 0);
		start = end + 1;
	}
	if (start > 0) {
		memmove(s->buf, s->buf + start, s->len - start);
		s->len -= start;
	}
	if (s->len == LINE_CAP) {
		/* A full buffer without a newline: log its head once. */
		if (!s->skipping)
			emit(s, s->buf, s->len, 1);
		s->skipping = 1;
		s->len = 0;
	}
}

int
lines_read(struct line_sink *s, int fd, size_t budget)
{
	while (budget > 0) {
		size_t room = LINE_CAP - s->len;
		ssize_t n;

		if (room > budget)
			room = budget;
		n = read(fd, s->buf + s->len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		if (n == 0) {
			lines_flush(s);
			return 1;
		}
		budget -= (size_t)n;
		s->len += (size_t)n;
		split(s);
	}
	return 0;
}

void
lines_flush(struct line_sink *s)
{
	if (s->len > 0 && !s->skipping)
		emit(s, s->buf, s->len, 0);
	s->len = 0;
	s->skipping = 0;
}
