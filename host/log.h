/*
 * log.h - the task's log.  The master is its only writer: its own lines,
 * and every line its workers produce (pm_log, host messages, whatever a
 * plugin writes to stdout or stderr), which reach it through pipes.  The
 * master never blocks on the log: lines wait in a bounded buffer while
 * the reader is slow, and are dropped (and counted) beyond it.
 *
 * A process other than the master (a worker, the preload process) logs
 * by writing records to its stderr pipe; log_to_pipe() switches to that.
 */
#ifndef PMHOST_LOG_H
#define PMHOST_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#define PMHOST_HOST
#include "pmhost.h"

#define LOG_LINE_MAX	4096
#define LOG_RECORD	'\036'	/* starts a record on a child's stderr pipe */

enum log_format {
	LOG_TEXT,		/* "TIME LEVEL TITLE[PID]: text" */
	LOG_JSON		/* one JSON object per line */
};

enum log_role { ROLE_MASTER_LOG, ROLE_WORKER_LOG, ROLE_PRELOAD_LOG };

/* Who a line is from. */
struct log_origin {
	const char	*title;		/* "process_m:Worker:app" */
	const char	*task;		/* baseTitle */
	enum log_role	 role;
	pid_t		 pid;
	int		 slot;		/* -1: none */
};

/* Sets the threshold (PM_LOG_*) and this process's identity. */
void	log_setup(int level, const char *title);

/* The task's name and the format of lines (the master's). */
void	log_set_task(const char *task, enum log_format format);

/*
 * Sends the log to path (appending, created 0640; see trust_open_log for
 * what is refused: task_uid may own the file), or to stderr when path is
 * NULL.  0, or -1 with the reason in err and the log where it was.
 */
int	log_open(const char *path, uid_t task_uid, char *err, size_t errlen);

/* Opens the log file again at the same path (after logrotate moved it). */
int	log_reopen(char *err, size_t errlen);

/* Points stdout and stderr at the log file too (a detached master's). */
void	log_own_stdio(void);

int	log_level(void);

/* A line on behalf of another process (a worker's, read from its pipe). */
void	log_line(const struct log_origin *o, int level, const char *text,
	    size_t len);

void	logmsg(int level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	vlogmsg(int level, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));

/* The master's loop: the descriptor to watch for room, when lines wait. */
int	log_waiting_fd(void);

/* Writes what waits, as far as the reader takes it. */
void	log_flush(void);

/*
 * The master's loop: the lines of one turn are kept and written together
 * at its end (or each 64 KiB), one write() for many lines.
 */
void	log_batch_begin(void);
void	log_batch_end(void);

/* At exit: waits for the reader at most timeout_ms to take what waits. */
void	log_drain(int timeout_ms);

/*
 * In a worker, before its descriptors are closed: keeps a descriptor of
 * the master's log and formats the line text (from o, a warning) for
 * log_last_word().  The descriptor to keep, or -1.
 */
int	log_last_word_arm(const struct log_origin *o, const char *text);

/* Writes the armed line, stamped now; async-signal-safe. */
void	log_last_word(void);

/* The log's descriptor (the file, or the master's stderr). */
int	log_sink_fd(void);

/*
 * In a child of the master: log records to fd (its stderr pipe); the
 * log's own descriptor is kept (for log_sink_fd()) if keep_sink.
 */
void	log_to_pipe(int fd, int keep_sink);

#endif
