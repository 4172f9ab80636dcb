/*
 * coproc.c - coprocess mode: the program starts once, in work_init, and
 * each work() writes one request line to its stdin and reads one reply
 * line from its stdout: "ok", "done" or "error TEXT".  Its stderr becomes
 * log lines whenever the worker waits on it.  A coprocess that dies, or
 * replies anything else, leaves the worker unable to go on: the worker
 * logs why and exits with status EXIT_FAILED, which pmhost counts as a
 * failure and answers with a respawn after backoff.  work_fini closes its
 * stdin and gives it a bounded time to leave, then SIGTERM, then SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"

#define READ_TURN	(64 * 1024)	/* stderr bytes read per turn */
#define FINI_EOF_MS	2000		/* to leave after stdin's EOF */
#define FINI_TERM_MS	1000		/* to leave after SIGTERM */
#define DYING_MS	200		/* for an exit after a pipe closed */

/* CLOCK_MONOTONIC in milliseconds, for work_fini's deadlines. */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Closes *fd if open and marks it closed. */
static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Reaps the coprocess (it has exited, or is about to); its wait status. */
static int
reap(struct coproc_state *co)
{
	int wstatus = 0;

	while (waitpid(co->pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	co->pid = 0;
	close_fd(&co->pidfd);
	return wstatus;
}

/* Logs what is waiting on its stderr, without waiting for more. */
static void
drain_stderr(struct coproc_state *co)
{
	if (co->err_fd >= 0 && lines_read(&co->err_sink, co->err_fd,
	    READ_TURN) != 0)
		close_fd(&co->err_fd);
	lines_flush(&co->err_sink);
}

/*
 * The coprocess can no longer serve this worker: kill it if it lives, log
 * its last words and the reason, and end the worker as failed.  work_fini
 * is not run (it would wait on a coprocess that is gone); pmhost kills the
 * worker's process group, so nothing the coprocess forked survives.
 */
static _Noreturn PMHOST_PRINTF(2, 3) void
fail_worker(struct exec_state *st, const char *fmt, ...)
{
	struct coproc_state *co = &st->co;
	char why[EXEC_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (co->pid > 0) {
		kill(co->pid, SIGKILL);
		reap(co);
	}
	drain_stderr(co);
	pm_log(st->w, PM_LOG_ERROR, "exec: coprocess %s %s; ending this "
	    "worker (exit status %d)", st->prm.argv[0], why, EXIT_FAILED);
	fflush(NULL);
	_exit(EXIT_FAILED);
}

/* A pipe for the coprocess: our end (`ours`, 0 or 1) never blocks. */
static int
coproc_pipe(int fds[2], int ours)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	return fcntl(fds[ours], F_SETFL, O_NONBLOCK);
}

/* The descriptors the reply wait watches, as epoll tags. */
enum { EV_PID = 1, EV_OUT = 2, EV_ERR = 4, EV_IN = 8, EV_STOP = 16 };

/* The descriptor behind an epoll tag; -1 if it is closed. */
static int
tag_fd(const struct exec_state *st, unsigned tag)
{
	switch (tag) {
	case EV_PID:	return st->co.pidfd;
	case EV_OUT:	return st->co.out_fd;
	case EV_ERR:	return st->co.err_fd;
	case EV_IN:	return st->co.in_fd;
	default:	return st->stop_fd;
	}
}

/*
 * Starts or stops watching one descriptor; 0, or -1 if it cannot be
 * watched.  The set lives as long as the coprocess, so that a call costs
 * one epoll_wait(), not a poll() that sets up every descriptor again.
 */
static int
watch(struct exec_state *st, unsigned tag, int on)
{
	struct coproc_state *co = &st->co;
	struct epoll_event ev;
	int fd = tag_fd(st, tag);

	if (((co->watched & tag) != 0) == on || fd < 0)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.events = tag == EV_IN ? EPOLLOUT : EPOLLIN;
	ev.data.u32 = tag;
	if (!on) {
		epoll_ctl(co->epfd, EPOLL_CTL_DEL, fd, &ev);
		co->watched &= ~tag;
		return 0;
	}
	if (epoll_ctl(co->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	co->watched |= tag;
	return 0;
}

/* Waits until a watched descriptor is ready; the tags of those that are. */
static unsigned
wait_ready(struct exec_state *st, int want_in)
{
	struct coproc_state *co = &st->co;
	struct epoll_event evs[5];
	unsigned ready = 0;
	int n;

	if (watch(st, EV_IN, want_in) < 0)
		fail_worker(st, "could not be waited on (epoll_ctl: %s)",
		    strerror(errno));
	n = epoll_wait(co->epfd, evs, 5, exec_poll_timeout(st));
	if (n < 0 && errno != EINTR)
		fail_worker(st, "could not be waited on (epoll_wait: %s)",
		    strerror(errno));
	for (int i = 0; i < n; i++)
		ready |= evs[i].data.u32;
	return ready;
}

int
coproc_init(struct exec_state *st, char *err, size_t errlen)
{
	struct coproc_state *co = &st->co;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 };
	int rc = -1;

	co->in_fd = co->out_fd = co->err_fd = co->pidfd = co->epfd = -1;
	/* A write to a coprocess that died must fail with EPIPE, not kill. */
	signal(SIGPIPE, SIG_IGN);
	if (coproc_pipe(in, 1) < 0 || coproc_pipe(out, 0) < 0 ||
	    coproc_pipe(er, 0) < 0 ||
	    command_set_stdio(&st->cmd, in[0], out[1], er[1]) < 0) {
		snprintf(err, errlen, "coprocess set-up: %s", strerror(errno));
		goto out;
	}
	if (command_spawn(&st->cmd, 0, &co->pid, &co->pidfd, err, errlen) < 0) {
		co->pid = 0;
		goto out;
	}
	co->in_fd = in[1];
	co->out_fd = out[0];
	co->err_fd = er[0];
	in[1] = out[0] = er[0] = -1;
	lines_init(&co->err_sink, st->w, PM_LOG_NOTICE);
	if ((co->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    watch(st, EV_PID, 1) < 0 || watch(st, EV_OUT, 1) < 0 ||
	    watch(st, EV_ERR, 1) < 0 || watch(st, EV_STOP, 1) < 0) {
		snprintf(err, errlen, "coprocess set-up: epoll: %s",
		    strerror(errno));
		kill(co->pid, SIGKILL);
		reap(co);
		close_fd(&co->epfd);
		close_fd(&co->in_fd);
		close_fd(&co->out_fd);
		close_fd(&co->err_fd);
		goto out;
	}
	pm_log(st->w, PM_LOG_DEBUG, "exec: coprocess %s started (pid %ld)",
	    st->prm.argv[0], (long)co->pid);
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&er[i]);
	}
	return rc;
}

/* Takes the first line out of the reply buffer; its length, or -1. */
static ssize_t
take_line(struct coproc_state *co, char *line)
{
	char *nl = memchr(co->reply, '\n', co->reply_len);
	size_t len;

	if (nl == NULL)
		return -1;
	len = (size_t)(nl - co->reply);
	memcpy(line, co->reply, len);
	memmove(co->reply, nl + 1, co->reply_len - len - 1);
	co->reply_len -= len + 1;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	return (ssize_t)len;
}

/* What one reply line means for work()'s return value. */
static int
answer(struct exec_state *st, uint64_t call, const char *line)
{
	if (strcmp(line, "ok") == 0)
		return PM_CONTINUE;
	if (strcmp(line, "done") == 0)
		return PM_DONE;
	if (strcmp(line, "error") == 0 || strncmp(line, "error ", 6) == 0) {
		exec_log_failure(st, call, "error%s%s", line[5] ? ": " : "",
		    line[5] ? line + 6 : "");
		return -1;
	}
	fail_worker(st, "replied \"%.80s%s\" to call %llu, not ok, done or "
	    "error TEXT", line, strlen(line) > 80 ? "..." : "",
	    (unsigned long long)call);
}

/* Reads what its stdout holds into the reply buffer; 1 at EOF. */
static int
read_replies(struct exec_state *st)
{
	struct coproc_state *co = &st->co;

	for (;;) {
		ssize_t n;

		if (co->reply_len == REPLY_CAP) {
			if (memchr(co->reply, '\n', co->reply_len) != NULL)
				return 0;
			fail_worker(st, "sent a reply line longer than %d "
			    "bytes", REPLY_CAP);
		}
		n = read(co->out_fd, co->reply + co->reply_len,
		    REPLY_CAP - co->reply_len);
		if (n > 0) {
			const char *fresh = co->reply + co->reply_len;

			co->reply_len += (size_t)n;
			/* A reply is whole: spare the read that finds the
			 * pipe empty. */
			if (memchr(fresh, '\n', (size_t)n) != NULL)
				return 0;
			continue;
		}
		if (n == 0)
			return 1;
		if (errno == EINTR)
			continue;
		return 0;
	}
}

/*
 * The coprocess has gone (exited, or closed its stdin or stdout) without
 * replying to this call.  After a stop we passed on, that is the stop's
 * doing, and the worker is ending anyway; otherwise it is fatal.
 */
static int
gone(struct exec_state *st, uint64_t call, const char *how)
{
	struct coproc_state *co = &st->co;
	struct pollfd pf = { co->pidfd, POLLIN, 0 };
	char what[96], both[192];

	/* A closed pipe usually means it is dying: wait a moment for why. */
	if (co->pid > 0 && poll(&pf, 1, DYING_MS) > 0) {
		co->wstatus = reap(co);
		snprintf(both, sizeof(both), "%s (it %s)", how,
		    command_end_text(co->wstatus, what, sizeof(what)));
		how = both;
	} else if (co->pid == 0) {
		how = command_end_text(co->wstatus, what, sizeof(what));
	}
	if (!st->stop_forwarded)
		fail_worker(st, "%s before replying to call %llu", how,
		    (unsigned long long)call);
	drain_stderr(co);
	co->end_logged = 1;
	pm_log(st->w, PM_LOG_NOTICE, "exec: coprocess %s %s (the worker "
	    "is ending)", st->prm.argv[0], how);
	return PM_CONTINUE;
}

int
coproc_work(struct exec_state *st)
{
	struct coproc_state *co = &st->co;
	uint64_t call = pm_worker_calls(st->w) + 1;
	char req[96], line[REPLY_CAP + 1];
	size_t len, off = 0;
	int out_eof = 0;

	if (pm_worker_stopping(st->w))
		return PM_CONTINUE;
	if (st->prm.protocol == PROTO_JSON)
		len = (size_t)snprintf(req, sizeof(req), "{\"slot\":%d,"
		    "\"call\":%llu}\n", pm_worker_slot(st->w),
		    (unsigned long long)call);
	else
		len = (size_t)snprintf(req, sizeof(req), "call %llu\n",
		    (unsigned long long)call);
	for (;;) {
		unsigned ready;

		if (off < len) {
			ssize_t w = write(co->in_fd, req + off, len - off);

			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno == EPIPE)
				return gone(st, call, "closed its stdin");
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				fail_worker(st, "could not be written to (%s)",
				    strerror(errno));
		}
		if (off == len && take_line(co, line) >= 0)
			return answer(st, call, line);
		if (out_eof || co->pid == 0)
			return gone(st, call, out_eof ? "closed its stdout" :
			    "exited");
		ready = wait_ready(st, off < len);
		if ((ready & EV_ERR) && lines_read(&co->err_sink, co->err_fd,
		    READ_TURN) != 0) {
			watch(st, EV_ERR, 0);
			close_fd(&co->err_fd);
		}
		if (ready & EV_OUT)
			out_eof = read_replies(st);
		exec_forward_stop(st, (ready & EV_STOP) ? POLLIN : 0,
		    co->pid);
		if (st->stop_forwarded)
			watch(st, EV_STOP, 0);
		if (ready & EV_PID) {
			/* Its last reply may still be in the pipe. */
			watch(st, EV_PID, 0);
			co->wstatus = reap(co);
			out_eof |= read_replies(st);
		}
	}
}

/* Waits up to ms for the coprocess to exit, logging its stderr; 1 if
 * it did.  Replies nobody asked for are read and dropped. */
static int
wait_exit(struct exec_state *st, int ms)
{
	struct coproc_state *co = &st->co;
	int64_t deadline = now_ms() + ms;
	char sink[4096];

	while (co->pid > 0) {
		struct pollfd pf[3];
		int64_t left = deadline - now_ms();
		nfds_t n = 0;

		if (left <= 0)
			return 0;
		pf[n++] = (struct pollfd){ co->pidfd, POLLIN, 0 };
		if (co->out_fd >= 0)
			pf[n++] = (struct pollfd){ co->out_fd, POLLIN, 0 };
		if (co->err_fd >= 0)
			pf[n++] = (struct pollfd){ co->err_fd, POLLIN, 0 };
		if (poll(pf, n, (int)left) < 0 && errno != EINTR)
			return 0;
		for (nfds_t i = 1; i < n; i++) {
			if (pf[i].revents == 0)
				continue;
			if (pf[i].fd == co->err_fd) {
				if (lines_read(&co->err_sink, co->err_fd,
				    READ_TURN) != 0)
					close_fd(&co->err_fd);
			} else if (read(co->out_fd, sink, sizeof(sink)) == 0) {
				close_fd(&co->out_fd);
			}
		}
		if (pf[0].revents != 0)
			co->wstatus = reap(co);
	}
	return 1;
}

void
coproc_fini(struct exec_state *st)
{
	struct coproc_state *co = &st->co;
	char what[96];

	close_fd(&co->in_fd);
	if (co->pid > 0 && !wait_exit(st, FINI_EOF_MS)) {
		pm_log(st->w, PM_LOG_NOTICE, "exec: coprocess %s (pid %ld) "
		    "still running %d ms after its stdin closed; sending "
		    "SIGTERM", st->prm.argv[0], (long)co->pid, FINI_EOF_MS);
		kill(co->pid, SIGTERM);
		if (!wait_exit(st, FINI_TERM_MS)) {
			pm_log(st->w, PM_LOG_WARNING, "exec: coprocess %s "
			    "(pid %ld) ignored SIGTERM; killing it",
			    st->prm.argv[0], (long)co->pid);
			kill(co->pid, SIGKILL);
			co->wstatus = reap(co);
		}
	}
	drain_stderr(co);
	if (!co->end_logged && !(WIFEXITED(co->wstatus) &&
	    WEXITSTATUS(co->wstatus) == 0))
		pm_log(st->w, PM_LOG_NOTICE, "exec: coprocess %s %s",
		    st->prm.argv[0], command_end_text(co->wstatus, what,
		    sizeof(what)));
	close_fd(&co->out_fd);
	close_fd(&co->err_fd);
	close_fd(&co->pidfd);
	close_fd(&co->epfd);
}
