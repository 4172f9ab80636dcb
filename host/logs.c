/*
 * logs.c - "pmhost logs": the last lines of a task's log file and, with
 * -f, every line appended after them.  The file is the one the running
 * master writes (its status says), else the one its config names.  A
 * follower survives rotation: when the path is renamed or replaced, the
 * rest of the old file is read, then the new one from its start.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "commands.h"
#include "msg.h"
#include "names.h"
#include "status.h"
#include "util.h"

#define LOGS_DEFAULT_LINES	10
#define CHUNK			65536
#define LINE_CAP		(1 << 20)	/* a longer line is cut */

/* What is shown: a slot's lines, lines at a level or above. */
struct filter {
	long	slot;			/* -1: every line */
	int	level;			/* -1: every level */
};

/* A line's level by its second word (or JSON "level"); info if none. */
static int
line_level(const char *p, size_t n)
{
	const char *end = p + n, *w;
	char name[16];
	size_t k;
	int lv;

	if (n > 0 && p[0] == '{') {
		const char *key = memmem(p, n, "\"level\":\"", 9);

		if (key == NULL)
			return PM_LOG_INFO;
		w = key + 9;
	} else if (n > 0 && p[0] == '<') {
		/* journald: "<N>LEVEL who: text" */
		const char *gt = memchr(p, '>', n);

		if (gt == NULL)
			return PM_LOG_INFO;
		w = gt + 1;
	} else {
		const char *sp = memchr(p, ' ', n);

		if (sp == NULL)
			return PM_LOG_INFO;
		w = sp + 1;
	}
	for (k = 0; w + k < end && k < sizeof(name) - 1 &&
	    w[k] != ' ' && w[k] != '"'; k++)
		name[k] = w[k];
	name[k] = '\0';
	lv = log_level_from_name(name);
	return lv >= 0 ? lv : PM_LOG_INFO;
}

/* Does text (of len n) start with prefix, then slot, then one of ends? */
static int
starts_slot(const char *p, size_t n, const char *prefix, long slot,
    const char *ends)
{
	char want[64];
	int w = snprintf(want, sizeof(want), "%s%ld", prefix, slot);

	return n > (size_t)w && memcmp(p, want, (size_t)w) == 0 &&
	    strchr(ends, p[w]) != NULL;
}

/*
 * Is the line about slot?  A worker's own lines name it after the title
 * ("...#3[PID]:", JSON "slot":3); the master's lines about it start
 * "worker 3 " or "slot 3:".
 */
static int
line_slot(const char *p, size_t n, long slot)
{
	char tag[40];
	const char *msg;
	size_t tl;

	if (n > 0 && p[0] == '{') {
		tl = (size_t)snprintf(tag, sizeof(tag), "\"slot\":%ld,", slot);
		if (memmem(p, n, tag, tl) != NULL)
			return 1;
		msg = memmem(p, n, "\"message\":\"", 11);
		if (msg == NULL)
			return 0;
		msg += 11;
	} else {
		tl = (size_t)snprintf(tag, sizeof(tag), "#%ld[", slot);
		if ((msg = memmem(p, n, ": ", 2)) == NULL)
			return 0;
		/* The tag is in the "who" part, before the first ": ". */
		if (memmem(p, (size_t)(msg - p), tag, tl) != NULL)
			return 1;
		msg += 2;
	}
	n -= (size_t)(msg - p);
	return starts_slot(msg, n, "worker ", slot, " (:") ||
	    starts_slot(msg, n, "slot ", slot, ":");
}

static int
shown(const struct filter *f, const char *p, size_t n)
{
	if (f->level >= 0 && line_level(p, n) < f->level)
		return 0;
	if (f->slot >= 0 && !line_slot(p, n, f->slot))
		return 0;
	return 1;
}

/*
 * Where the last `want` shown lines of the file begin: scans back from
 * size in chunks.  A line cut by a chunk's start is carried into the next
 * (earlier) chunk; a line longer than LINE_CAP is judged by its end.
 */
static off_t
tail_start(int fd, off_t size, const struct filter *f, long want)
{
	char *buf;
	size_t carry = 0;		/* the cut line's, at buf + CHUNK */
	off_t pos = size, start = size;
	long found = 0;

	if (want <= 0)
		return size;
	if ((buf = malloc(CHUNK + LINE_CAP)) == NULL)
		return 0;
	while (pos > 0 && found < want) {
		size_t k = pos >= CHUNK ? CHUNK : (size_t)pos;
		char *data = buf + CHUNK - k, *q, *nl;

		pos -= (off_t)k;
		if (pread(fd, data, k, pos) != (ssize_t)k)
			break;
		/* [data, q) ends with the latest line not yet judged. */
		q = buf + CHUNK + carry;
		if (pos + (off_t)k == size && q[-1] == '\n')
			q--;		/* the file's final newline */
		while (found < want) {
			for (nl = q - 1; nl >= data && *nl != '\n'; nl--)
				;
			if (nl < data)
				break;	/* it starts in an earlier chunk */
			if (shown(f, nl + 1, (size_t)(q - nl - 1))) {
				found++;
				start = pos + (off_t)(nl + 1 - data);
			}
			q = nl;
		}
		if (found >= want)
			break;
		carry = (size_t)(q - data);
		if (carry > LINE_CAP)
			carry = LINE_CAP;	/* judged by its start */
		memmove(buf + CHUNK, data, carry);
		if (pos == 0 && shown(f, buf + CHUNK, carry))
			start = 0;	/* the file's first line */
	}
	free(buf);
	return start;
}

/* Lines being printed: a partial last line waits for its end. */
struct printer {
	const struct filter *f;
	char	*part;
	size_t	 len;
};

static void
print_line(struct printer *pr, const char *p, size_t n)
{
	if (shown(pr->f, p, n)) {
		fwrite(p, 1, n, stdout);
		putchar('\n');
	}
}

/* Prints the complete lines of p (and of what waited before it). */
static void
feed(struct printer *pr, const char *p, size_t n)
{
	const char *nl;

	while (n > 0 && (nl = memchr(p, '\n', n)) != NULL) {
		size_t k = (size_t)(nl - p);

		if (pr->len > 0) {
			size_t room = LINE_CAP - pr->len;

			memcpy(pr->part + pr->len, p, k < room ? k : room);
			print_line(pr, pr->part, pr->len + (k < room ? k :
			    room));
			pr->len = 0;
		} else {
			print_line(pr, p, k);
		}
		p += k + 1;
		n -= k + 1;
	}
	if (n > 0) {
		size_t room = LINE_CAP - pr->len;

		memcpy(pr->part + pr->len, p, n < room ? n : room);
		pr->len += n < room ? n : room;
	}
}

/* Reads fd from where it is to its end, printing; -1 on a read error. */
static int
drain(int fd, struct printer *pr)
{
	char buf[CHUNK];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		feed(pr, buf, (size_t)n);
	fflush(stdout);
	return n < 0 && errno != EINTR && errno != EAGAIN ? -1 : 0;
}

/* Opens the log: a regular file only (a FIFO's lines are not ours). */
static int
open_log_file(const char *path, int quiet_missing)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		if (!(quiet_missing && errno == ENOENT))
			errmsg("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		errmsg("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Follows path from fd's position on: waits on inotify for the file to
 * grow, be truncated, or be replaced at its path (rotation).  Returns
 * only on an error (or SIGINT/SIGTERM's default action ends us).
 */
static int
follow(const char *path, int fd, struct printer *pr)
{
	char dir[PATH_MAX], evbuf[4096];
	const char *base = strrchr(path, '/');
	int in, wd_file;
	struct stat st;

	if (base == NULL) {
		copy_str(dir, ".", sizeof(dir));
		base = path;
	} else {
		size_t dl = (size_t)(base - path);

		snprintf(dir, sizeof(dir), "%.*s", (int)(dl ? dl : 1), path);
		base++;
	}
	if ((in = inotify_init1(IN_CLOEXEC)) < 0) {
		errmsg("inotify: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	if (inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO) < 0) {
		errmsg("%s: inotify: %s", dir, strerror(errno));
		close(in);
		return EXIT_RUNTIME;
	}
	wd_file = inotify_add_watch(in, path, IN_MODIFY);
	for (;;) {
		int replaced = 0;
		ssize_t n;

		if (drain(fd, pr) < 0) {
			errmsg("%s: %s", path, strerror(errno));
			break;
		}
		/* Truncated in place (copytruncate): start again. */
		if (fstat(fd, &st) == 0 && lseek(fd, 0, SEEK_CUR) > st.st_size)
			lseek(fd, 0, SEEK_SET);
		n = read(in, evbuf, sizeof(evbuf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errmsg("inotify: %s", strerror(errno));
			break;
		}
		for (char *p = evbuf; p < evbuf + n; ) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->wd != wd_file && ev->len > 0 &&
			    strcmp(ev->name, base) == 0)
				replaced = 1;
			p += sizeof(*ev) + ev->len;
		}
		if (replaced) {
			int nfd;

			/* The rest of the old file, then the new one. */
			(void)drain(fd, pr);
			if ((nfd = open_log_file(path, 1)) < 0)
				continue;
			close(fd);
			fd = nfd;
			if (wd_file >= 0)
				inotify_rm_watch(in, wd_file);
			wd_file = inotify_add_watch(in, path, IN_MODIFY);
		}
	}
	close(in);
	close(fd);
	return EXIT_RUNTIME;
}

/*
 * The log file of t: the running master's (from its status), else its
 * config's logFile, else NAME.log in the run dir (where -d logs).  0, 1
 * if it logs to stderr (printed), or -1 (printed).
 */
static int
log_path_of(struct target *t, char *path, size_t size)
{
	int r = target_find(t);

	if (r < 0)
		return -1;
	if (r == 1) {
		struct status_master sm;
		struct buf reply = { 0 };
		char err[512];

		if (target_call(t, "status", REQUEST_TIMEOUT_MS, &reply,
		    NULL) != PROTO_OK) {
			buf_free(&reply);
			return -1;
		}
		if (status_parse(reply.p, &sm, err, sizeof(err)) < 0) {
			errmsg("%s: %s", t->title, err);
			buf_free(&reply);
			return -1;
		}
		copy_str(path, status_text(&sm.m, SK_LOG), size);
		status_free(&sm);
		buf_free(&reply);
		if (path[0] == '\0') {
			errmsg("%s: its master (pid %ld) logs to the standard "
			    "error of the command that runs it (under systemd, "
			    "see journalctl -u UNIT)", t->title, (long)t->pid);
			return 1;
		}
		return 0;
	}
	if (t->task != NULL && t->task->log_file != NULL &&
	    t->task->log_file[0] != '\0') {
		copy_str(path, t->task->log_file, size);
		return 0;
	}
	if (rundir_path(path, size, t->run_dir, t->title, ".log") < 0) {
		errmsg("%s: log path too long", t->title);
		return -1;
	}
	return 0;
}

int
cmd_logs(const struct cli *cli)
{
	struct filter f = { cli->slot, cli->level };
	struct printer pr = { &f, NULL, 0 };
	char path[RUNDIR_PATH_MAX + PATH_MAX];
	struct targets ts;
	struct stat st;
	int fd, r;

	if ((r = targets_collect(cli, &ts)) != 0)
		return r;
	if (ts.n != 1) {
		errmsg("%s names %zu tasks; pick one with --title NAME",
		    cli->config, ts.n);
		targets_free(&ts);
		return EXIT_USAGE;
	}
	r = log_path_of(&ts.v[0], path, sizeof(path));
	if (r == 0 && (fd = open_log_file(path, 0)) < 0)
		r = -1;
	targets_free(&ts);
	if (r != 0)
		return EXIT_RUNTIME;
	if ((pr.part = malloc(LINE_CAP)) == NULL || fstat(fd, &st) < 0) {
		errmsg("out of memory");
		free(pr.part);
		close(fd);
		return EXIT_RUNTIME;
	}
	lseek(fd, tail_start(fd, st.st_size, &f, cli->lines >= 0 ?
	    cli->lines : LOGS_DEFAULT_LINES), SEEK_SET);
	if (!cli->follow) {
		/* Up to where the file ended when we looked. */
		char buf[CHUNK];
		off_t left = st.st_size - lseek(fd, 0, SEEK_CUR);
		ssize_t n;

		while (left > 0 && (n = read(fd, buf, left < CHUNK ?
		    (size_t)left : CHUNK)) > 0) {
			feed(&pr, buf, (size_t)n);
			left -= n;
		}
		if (pr.len > 0)
			print_line(&pr, pr.part, pr.len);
		fflush(stdout);
		free(pr.part);
		close(fd);
		return ferror(stdout) ? EXIT_RUNTIME : EXIT_OK;
	}
	r = follow(path, fd, &pr);
	free(pr.part);
	return r;
}
