/*
 * log.h - the task's log: one line per event, "TIME LEVEL TITLE[PID]: text",
 * written with a single write() so that lines from the master and every
 * worker sharing the file never interleave.
 */
#ifndef PMHOST_LOG_H
#define PMHOST_LOG_H

#include <stdarg.h>
#include <sys/types.h>

#define PMHOST_HOST
#include "pmhost.h"

#define LOG_LINE_MAX	4096

/* Sets the threshold (PM_LOG_*) and the identity printed on each line. */
void	log_setup(int level, const char *title);

/* Re-reads the pid for the identity (after fork). */
void	log_set_identity(const char *title);

/*
 * Sends the log to path (appending, created 0640), or to stderr when path
 * is NULL.  With stdio set, stdout and stderr follow the log file too, so
 * that workers' output lands in it.  0, or -1 with errno.
 */
int	log_open(const char *path, int stdio);

/* Opens the log file again at the same path (after logrotate moved it). */
int	log_reopen(void);

/* The descriptor lines go to; a worker keeps it open across its fd sweep. */
int	log_fd(void);

int	log_level(void);

void	logmsg(int level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	vlogmsg(int level, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));

/* As vlogmsg, with another title (a plugin's pm_log in a worker). */
void	vlogmsg_as(const char *title, int level, const char *fmt, va_list ap)
	    __attribute__((format(printf, 3, 0)));

#endif
