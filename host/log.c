/*
 * log.c - the one log of a task.  In the master, lines (its own and its
 * workers') are formatted here and written without ever blocking: what
 * the reader cannot take yet waits in a bounded buffer that the event
 * loop flushes when the descriptor has room; beyond it, lines are dropped
 * and the count is logged once the reader catches up.  In any other
 * process, lines are records on its stderr pipe, for the master to
 * format.  The log is per process by nature (like syslog), so its state
 * is file-level.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "trust.h"
#include "util.h"

#define LOG_BUFFER_MAX	(1024 * 1024)	/* lines waiting for a slow reader */

static struct {
	int		 fd;		/* the sink: log file or our stderr */
	int		 is_socket;	/* send(MSG_DONTWAIT) to it */
	int		 pipe_fd;	/* a child's records go here; -1 */
	int		 level;
	enum log_format	 format;
	int		 journal;	/* stderr is the journal: "<N>" */
	char		*path;		/* NULL: stderr */
	uid_t		 task_uid;
	char		 title[160];
	char		 task[72];
	pid_t		 pid;
	char		*out;		/* lines waiting for the reader */
	size_t		 outlen;
	size_t		 outcap;
	unsigned long long dropped;
	int		 drop_errno;	/* why the last write failed; 0: slow */
} logst = { .fd = 2, .pipe_fd = -1, .level = PM_LOG_INFO,
	.task_uid = (uid_t)-1 };

void
log_setup(int level, const char *title)
{
	logst.level = level;
	copy_str(logst.title, title, sizeof(logst.title));
	logst.pid = getpid();
}

void
log_set_task(const char *task, enum log_format format)
{
	copy_str(logst.task, task, sizeof(logst.task));
	logst.format = format;
}

int
log_level(void)
{
	return logst.level;
}

/* Is fd the stream systemd's journal gave us ($JOURNAL_STREAM)? */
static int
is_journal(int fd)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(fd, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/*
 * A descriptor for stderr that we may make non-blocking without touching
 * the caller's terminal or pipe: a fresh open of it where that gives a
 * description of our own, else stderr itself.
 */
static int
open_stderr(int *is_socket)
{
	struct stat st;
	int fd;

	*is_socket = 0;
	if (fstat(2, &st) < 0)
		return dup(2);
	if (S_ISSOCK(st.st_mode)) {
		*is_socket = 1;
		return fcntl(2, F_DUPFD_CLOEXEC, 3);
	}
	if (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && isatty(2))) {
		fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK |
		    O_CLOEXEC | O_NOCTTY);
		if (fd >= 0)
			return fd;
	}
	return fcntl(2, F_DUPFD_CLOEXEC, 3);
}

/* Makes fd the sink, once what waits went to the old one if it could. */
static void
install(int fd, int is_socket)
{
	if (logst.outlen > 0 && logst.fd >= 0)
		log_flush();
	if (logst.fd > 2)
		close(logst.fd);
	logst.fd = fd;
	logst.is_socket = is_socket;
}

int
log_open(const char *path, uid_t task_uid, char *err, size_t errlen)
{
	int fd, is_socket = 0;
	char *copy = NULL;

	if (path == NULL) {
		if ((fd = open_stderr(&is_socket)) < 0) {
			snprintf(err, errlen, "stderr: %s", strerror(errno));
			return -1;
		}
		logst.journal = is_journal(2);
	} else {
		if ((copy = strdup(path)) == NULL) {
			snprintf(err, errlen, "%s: out of memory", path);
			return -1;
		}
		if ((fd = trust_open_log(path, task_uid, err, errlen)) < 0) {
			free(copy);
			return -1;
		}
		logst.journal = 0;
	}
	free(logst.path);
	logst.path = copy;
	logst.task_uid = task_uid;
	install(fd, is_socket);
	return 0;
}

int
log_reopen(char *err, size_t errlen)
{
	int fd;

	if (logst.path == NULL)
		return 0;
	if ((fd = trust_open_log(logst.path, logst.task_uid, err,
	    errlen)) < 0)
		return -1;
	install(fd, 0);
	return 0;
}

void
log_own_stdio(void)
{
	if (logst.fd > 2) {
		dup2(logst.fd, 1);
		dup2(logst.fd, 2);
	}
}

/* One write to the sink, never blocking: bytes taken, or -1. */
static ssize_t
sink_write(const char *p, size_t n)
{
	ssize_t w;

	do {
		if (logst.is_socket)
			w = send(logst.fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			w = write(logst.fd, p, n);
	} while (w < 0 && errno == EINTR);
	return w;
}

/* Keeps bytes for later; 0, or -1 when the buffer is full. */
static int
keep(const char *p, size_t n)
{
	if (logst.outlen + n > LOG_BUFFER_MAX)
		return -1;
	if (logst.outlen + n > logst.outcap) {
		size_t cap = logst.outcap ? logst.outcap : 16384;
		char *b;

		while (cap < logst.outlen + n)
			cap *= 2;
		if ((b = realloc(logst.out, cap)) == NULL)
			return -1;
		logst.out = b;
		logst.outcap = cap;
	}
	memcpy(logst.out + logst.outlen, p, n);
	logst.outlen += n;
	return 0;
}

/* Lines of one turn of the master's loop, written together. */
static int batching;

#define BATCH_FLUSH	65536		/* a batch this large is written */

void
log_batch_begin(void)
{
	batching = 1;
}

void
log_batch_end(void)
{
	batching = 0;
	if (logst.outlen > 0)
		log_flush();
}

/* Writes one whole line, or keeps it, or drops it. */
static void
put(const char *line, size_t n)
{
	ssize_t w = 0;

	if (batching) {
		if (keep(line, n) < 0)
			logst.dropped++;
		else if (logst.outlen >= BATCH_FLUSH)
			log_flush();
		return;
	}
	if (logst.outlen == 0) {
		w = sink_write(line, n);
		if (w == (ssize_t)n)
			return;
		if (w < 0 && errno != EAGAIN) {
			/* The reader is gone or broken: nowhere to write. */
			logst.drop_errno = errno;
			logst.dropped++;
			return;
		}
		if (w < 0)
			w = 0;
	}
	if (keep(line + w, n - (size_t)w) < 0)
		logst.dropped++;
}

/* Length of the valid UTF-8 sequence at s[0..left) (1 to 4), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t left)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 :
	    s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ?
	    4 : 0;

	if (n == 0 || n > left)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong forms, surrogates, and beyond U+10FFFF. */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/*
 * Appends text to a JSON string under construction in buf.  The line
 * stays valid JSON whatever a plugin wrote: a byte that does not start
 * valid UTF-8 becomes U+FFFD, and no character is cut in two.
 */
static size_t
json_text(char *buf, size_t n, size_t size, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len && n + 8 < size; ) {
		unsigned char c = p[i];
		size_t k = utf8_seq(p + i, len - i);

		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
		} else if (k == 0) {
			memcpy(buf + n, "\\ufffd", 6);
			n += 6;
		} else {
			memcpy(buf + n, p + i, k);
			n += k;
		}
		i += k == 0 ? 1 : k;
	}
	return n;
}

/* The syslog priority of a level, for journald's "<N>" prefix. */
static int
priority(int level)
{
	static const int prio[] = { 7, 6, 5, 4, 3 };

	return level >= 0 && level <= PM_LOG_ERROR ? prio[level] : 6;
}

/*
 * Formats one line from o in the log's format into line (of
 * LOG_LINE_MAX + 512 bytes), stamped when; its length, newline included.
 */
static size_t
format_line(const struct log_origin *o, int level, const char *text,
    size_t len, const char *when, char *line)
{
	static const char *const roles[] = { "master", "worker", "preload" };
	const size_t size = LOG_LINE_MAX + 512;
	/* A worker's line is of the master's task. */
	const char *task = o->task[0] != '\0' ? o->task : logst.task;
	size_t n = 0, max = LOG_LINE_MAX;

	/* One event, one line: a newline inside would forge another. */
	if (len > max)
		len = max;
	if (logst.format == LOG_JSON) {
		/* The journal reads the priority from its own prefix. */
		if (logst.journal)
			n = (size_t)snprintf(line, size, "<%d>",
			    priority(level));
		n += (size_t)snprintf(line + n, size - n, "{\"time\":\"%s\","
		    "\"level\":\"%s\",\"task\":\"", when,
		    log_level_name(level));
		n = json_text(line, n, size, task, strlen(task));
		n += (size_t)snprintf(line + n, size - n, "\",\"role\":"
		    "\"%s\",\"pid\":%ld", roles[o->role], (long)o->pid);
		if (o->slot >= 0)
			n += (size_t)snprintf(line + n, size - n,
			    ",\"slot\":%d", o->slot);
		n += (size_t)snprintf(line + n, size - n,
		    ",\"message\":\"");
		n = json_text(line, n, size, text, len);
		n += (size_t)snprintf(line + n, size - n, "\"}");
	} else {
		char who[200];

		/* A worker's slot follows its title: "...:Worker:app#3[PID]". */
		if (o->slot >= 0)
			snprintf(who, sizeof(who), "%s#%d[%ld]", o->title,
			    o->slot, (long)o->pid);
		else
			snprintf(who, sizeof(who), "%s[%ld]", o->title,
			    (long)o->pid);
		if (logst.journal)
			n = (size_t)snprintf(line, size, "<%d>%s %s: ",
			    priority(level), log_level_name(level), who);
		else
			n = (size_t)snprintf(line, size, "%s %s %s: ",
			    when, log_level_name(level), who);
		if (n > size - 2)
			n = size - 2;
		if (len > size - 2 - n)
			len = size - 2 - n;
		memcpy(line + n, text, len);
		for (size_t i = n; i < n + len; i++)
			if (line[i] == '\n' || line[i] == '\r')
				line[i] = ' ';
		n += len;
	}
	if (n > size - 1)
		n = size - 1;
	line[n++] = '\n';
	return n;
}

/* Formats one line from o in the log's format and writes it. */
static void
emit(const struct log_origin *o, int level, const char *text, size_t len)
{
	char line[LOG_LINE_MAX + 512], when[64];
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(when + n, sizeof(when) - n, ".%03ld",
	    ts.tv_nsec / 1000000);
	strftime(when + n, sizeof(when) - n, "%z", &tm);
	put(line, format_line(o, level, text, len, when, line));
}

/*
 * An orphaned worker's last line: formatted when armed, around the place
 * of its time stamp, which the signal handler fills in with nothing but
 * async-signal-safe arithmetic.
 */
static struct {
	int	 fd;
	long	 utc_offset;		/* seconds east of UTC */
	char	 zone[8];		/* "+0000" */
	char	 line[LOG_LINE_MAX + 512];
	size_t	 len;
	size_t	 at;			/* where the stamp goes; len: none */
} lastw = { .fd = -1 };

int
log_sink_fd(void)
{
	return logst.fd;
}

int
log_last_word_arm(const struct log_origin *o, const char *text)
{
	struct tm tm;
	time_t now = time(NULL);
	char *mark;

	if (logst.fd < 0 || (lastw.fd = fcntl(logst.fd, F_DUPFD_CLOEXEC,
	    3)) < 0)
		return -1;
	localtime_r(&now, &tm);
	lastw.utc_offset = tm.tm_gmtoff;
	strftime(lastw.zone, sizeof(lastw.zone), "%z", &tm);
	lastw.len = format_line(o, PM_LOG_WARNING, text, strlen(text), "\001",
	    lastw.line);
	mark = memchr(lastw.line, '\001', lastw.len);
	lastw.at = mark != NULL ? (size_t)(mark - lastw.line) : lastw.len;
	return lastw.fd;
}

/* n as digits, zero-padded to width, at p; the end. */
static char *
put_digits(char *p, long n, int width)
{
	for (int i = width - 1; i >= 0; i--, n /= 10)
		p[i] = (char)('0' + n % 10);
	return p + width;
}

void
log_last_word(void)
{
	char out[LOG_LINE_MAX + 600], *p = out;
	struct timespec ts;
	long days, secs, y, m, d, era, doe, yoe, doy, mp;

	if (lastw.fd < 0)
		return;
	memcpy(p, lastw.line, lastw.at);
	p += lastw.at;
	if (lastw.at < lastw.len) {
		clock_gettime(CLOCK_REALTIME, &ts);
		secs = (long)ts.tv_sec + lastw.utc_offset;
		days = secs / 86400;
		secs %= 86400;
		/* The civil date of a day count (proleptic Gregorian). */
		days += 719468;
		era = days / 146097;
		doe = days - era * 146097;
		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
		mp = (5 * doy + 2) / 153;
		d = doy - (153 * mp + 2) / 5 + 1;
		m = mp < 10 ? mp + 3 : mp - 9;
		y = yoe + era * 400 + (m <= 2);
		p = put_digits(p, y, 4);
		*p++ = '-';
		p = put_digits(p, m, 2);
		*p++ = '-';
		p = put_digits(p, d, 2);
		*p++ = 'T';
		p = put_digits(p, secs / 3600, 2);
		*p++ = ':';
		p = put_digits(p, secs / 60 % 60, 2);
		*p++ = ':';
		p = put_digits(p, secs % 60, 2);
		*p++ = '.';
		p = put_digits(p, ts.tv_nsec / 1000000, 3);
		memcpy(p, lastw.zone, strlen(lastw.zone));
		p += strlen(lastw.zone);
		memcpy(p, lastw.line + lastw.at + 1, lastw.len - lastw.at - 1);
		p += lastw.len - lastw.at - 1;
	}
	if (write(lastw.fd, out, (size_t)(p - out)) < 0) {
		/* Nowhere else to say it. */
	}
}

/* Our own origin: the master's lines. */
static void
own_origin(struct log_origin *o)
{
	o->title = logst.title;
	o->task = logst.task;
	o->role = ROLE_MASTER_LOG;
	o->pid = logst.pid;
	o->slot = -1;
}

void
log_line(const struct log_origin *o, int level, const char *text,
    size_t len)
{
	if (level < logst.level)
		return;
	/* A full buffer drops the line before the work of formatting it. */
	if (logst.outlen > LOG_BUFFER_MAX - (LOG_LINE_MAX + 512)) {
		logst.dropped++;
		return;
	}
	emit(o, level, text, len);
}

/* A child's record: LOG_RECORD, the level digit, the text, a newline. */
static void
to_pipe(int level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX + 4];
	int n;

	line[0] = LOG_RECORD;
	line[1] = (char)('0' + level);
	n = vsnprintf(line + 2, LOG_LINE_MAX, fmt, ap);
	if (n < 0)
		return;
	if (n > LOG_LINE_MAX - 1)
		n = LOG_LINE_MAX - 1;
	for (int i = 2; i < n + 2; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n + 2] = '\n';
	/* Only a dead master closes the pipe, and its workers die with it. */
	(void)write_all(logst.pipe_fd, line, (size_t)n + 3);
}

void
vlogmsg(int level, const char *fmt, va_list ap)
{
	struct log_origin o;
	char text[LOG_LINE_MAX];
	int n, saved = errno;

	if (level < logst.level)
		return;
	if (logst.pipe_fd >= 0) {
		to_pipe(level, fmt, ap);
	} else {
		n = vsnprintf(text, sizeof(text), fmt, ap);
		if (n >= (int)sizeof(text)) {
			/* Too long: keep the head and mark the cut. */
			n = sizeof(text) - 1;
			memcpy(text + n - 3, "...", 3);
		}
		own_origin(&o);
		if (n > 0)
			emit(&o, level, text, (size_t)n);
	}
	errno = saved;
}

void
logmsg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlogmsg(level, fmt, ap);
	va_end(ap);
}

int
log_waiting_fd(void)
{
	return logst.outlen > 0 ? logst.fd : -1;
}

void
log_flush(void)
{
	char note[128];
	struct log_origin o;
	size_t off = 0;

	while (off < logst.outlen) {
		ssize_t w = sink_write(logst.out + off, logst.outlen - off);

		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0) {
			/* Gone: what waits is lost with it. */
			logst.drop_errno = w < 0 ? errno : EPIPE;
			logst.dropped++;
			off = logst.outlen;
			break;
		}
		off += (size_t)w;
	}
	if (off > 0 && off < logst.outlen)
		memmove(logst.out, logst.out + off, logst.outlen - off);
	logst.outlen -= off;
	if (logst.outlen == 0 && logst.dropped > 0 && !batching) {
		int err = logst.drop_errno;
		int n = snprintf(note, sizeof(note), "%llu log lines dropped: "
		    "%s%s", logst.dropped, err != 0 ? "writing the log "
		    "failed: " : "the log's reader was too slow", err != 0 ?
		    strerror(err) : "");

		logst.dropped = 0;
		logst.drop_errno = 0;
		own_origin(&o);
		emit(&o, PM_LOG_WARNING, note, (size_t)n);
	}
}

void
log_drain(int timeout_ms)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * NS_PER_MS;

	for (;;) {
		struct pollfd p = { .fd = log_waiting_fd(), .events = POLLOUT };
		int64_t left = deadline - mono_ns();

		log_flush();
		if (log_waiting_fd() < 0 || left <= 0)
			return;
		p.fd = log_waiting_fd();
		(void)poll(&p, 1, (int)(left / NS_PER_MS) + 1);
	}
}

void
log_to_pipe(int fd, int keep_sink)
{
	/*
	 * The master's buffer is not ours; its sink, closed with the rest of
	 * the master's descriptors, is forgotten, but by a spawner process,
	 * which keeps it for its workers' last word (worker.c).
	 */
	logst.pipe_fd = fd;
	free(logst.out);
	logst.out = NULL;
	logst.outlen = logst.outcap = 0;
	if (!keep_sink)
		logst.fd = -1;
}
