/*
 * log.c - the one log of a process.  The log is per process by nature
 * (like syslog), so its state is file-level; workers inherit it at fork
 * and keep writing to the same file as their master.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "util.h"

static struct {
	int	 fd;		/* 2, or the log file */
	int	 level;
	int	 stdio;		/* stdout/stderr follow the file */
	char	*path;		/* NULL: stderr */
	char	 title[160];
	pid_t	 pid;
} logst = { .fd = 2, .level = PM_LOG_INFO };

void
log_setup(int level, const char *title)
{
	logst.level = level;
	log_set_identity(title);
}

void
log_set_identity(const char *title)
{
	copy_str(logst.title, title, sizeof(logst.title));
	logst.pid = getpid();
}

/* Opens path for appending; the descriptor or -1. */
static int
open_log_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY, 0640);
}

/* Makes fd the log target, pointing stdout/stderr at it if asked. */
static void
install_fd(int fd)
{
	if (logst.stdio) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (logst.fd > 2)
		close(logst.fd);
	logst.fd = fd;
}

int
log_open(const char *path, int stdio)
{
	int fd;

	if (path == NULL) {
		free(logst.path);
		logst.path = NULL;
		if (logst.fd > 2)
			close(logst.fd);
		logst.fd = 2;
		return 0;
	}
	if ((fd = open_log_file(path)) < 0)
		return -1;
	free(logst.path);
	if ((logst.path = strdup(path)) == NULL) {
		close(fd);
		return -1;
	}
	logst.stdio = stdio;
	install_fd(fd);
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (logst.path == NULL)
		return 0;
	if ((fd = open_log_file(logst.path)) < 0)
		return -1;
	install_fd(fd);
	return 0;
}

int
log_fd(void)
{
	return logst.fd;
}

int
log_level(void)
{
	return logst.level;
}

/* Formats one line and writes it with a single write(). */
static void
emit(const char *title, int level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r, saved = errno;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ld", ts.tv_nsec / 1000000);
	n += (size_t)r;
	n += strftime(line + n, sizeof(line) - n, "%z", &tm);
	r = snprintf(line + n, sizeof(line) - n, " %s %s[%ld]: ",
	    log_level_name(level), title, (long)logst.pid);
	if (r > 0)
		n += (size_t)r;
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n >= sizeof(line) - 1) {
		/* Too long: keep the head and mark the cut. */
		n = sizeof(line) - 1;
		memcpy(line + n - 3, "...", 3);
	}
	/* One event, one line: a newline inside would forge another entry. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	(void)write_all(logst.fd, line, n);
	errno = saved;
}

void
vlogmsg_as(const char *title, int level, const char *fmt, va_list ap)
{
	if (level < logst.level)
		return;
	emit(title, level, fmt, ap);
}

void
vlogmsg(int level, const char *fmt, va_list ap)
{
	vlogmsg_as(logst.title, level, fmt, ap);
}

void
logmsg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlogmsg(level, fmt, ap);
	va_end(ap);
}
