/*
 * output.h - what a child of the master writes to its stdout and stderr
 * pipes, turned into log lines a line at a time: stdout at info, stderr
 * at warning, log records (LOG_RECORD) at their own level.  A partial line
 * waits for its end; a line longer than a log line is cut in pieces.
 */
#ifndef PMHOST_OUTPUT_H
#define PMHOST_OUTPUT_H

#include <stddef.h>

#include "log.h"

/* A partial line, until its newline comes. */
struct linebuf {
	size_t		 len;
	char		 p[LOG_LINE_MAX];
};

/* One of a child's output pipes, as the master reads it. */
/* Which stream: stdout, stderr, or both through one pipe. */
enum { OUT_STDOUT, OUT_STDERR, OUT_BOTH };

struct outstream {
	int		 fd;		/* -1: closed */
	int		 is_err;	/* OUT_*: stderr and both carry records;
					   stderr's other lines are warnings */
	struct linebuf	*part;
};

void	outstream_init(struct outstream *os, int fd, int is_err);

/*
 * Reads what is there (a bounded amount per call) and logs its lines as
 * from o.  At EOF the last partial line is logged and the pipe closed.
 */
void	outstream_read(struct outstream *os, const struct log_origin *o);

/* Reads what is left, logs it, closes: the child is gone. */
void	outstream_close(struct outstream *os, const struct log_origin *o);

#endif
