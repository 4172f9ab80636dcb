/*
 * command.c - runs a command handler's program for one job: the payload on
 * its stdin, PGQUEUE_JOB_ID / PGQUEUE_ATTEMPT / PGQUEUE_QUEUE in its
 * environment, its stderr passed on to the log and its tail kept as the
 * job's error.  Exit 0 is success.  The program stays in the worker's
 * process group, so it dies with the worker (pmhost kills the group).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgqueue.h"

#define TAIL_MAX	512		/* stderr bytes kept for the error */
#define NOPIDFD_POLL_MS	20		/* without pidfd_open: waitpid steps */

extern char **environ;

/* What the program writes to stderr: passed on, its end kept. */
struct tail {
	char	buf[TAIL_MAX];
	size_t	len;
};

/* Keeps the last TAIL_MAX bytes seen. */
static void
tail_add(struct tail *t, const char *p, size_t n)
{
	if (n >= TAIL_MAX) {
		memcpy(t->buf, p + n - TAIL_MAX, TAIL_MAX);
		t->len = TAIL_MAX;
		return;
	}
	if (t->len + n > TAIL_MAX) {
		size_t drop = t->len + n - TAIL_MAX;

		memmove(t->buf, t->buf + drop, t->len - drop);
		t->len -= drop;
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

/* Reads what is there of the program's stderr; 0 at EOF. */
static int
drain(int fd, struct tail *t)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		if ((n = read(fd, buf, sizeof(buf))) == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		(void)!write(2, buf, (size_t)n);
		tail_add(t, buf, (size_t)n);
	}
}

/* environ plus the job's variables (replacing any inherited ones). */
static char **
job_environ(const struct pgq_params *p, long long id, int attempt,
    char vars[3][96])
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + 4, sizeof(char *))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "PGQUEUE_", 8) != 0)
			env[k++] = environ[i];
	snprintf(vars[0], 96, "PGQUEUE_JOB_ID=%lld", id);
	snprintf(vars[1], 96, "PGQUEUE_ATTEMPT=%d", attempt);
	snprintf(vars[2], 96, "PGQUEUE_QUEUE=%s", p->queue);
	for (int i = 0; i < 3; i++)
		env[k++] = vars[i];
	env[k] = NULL;
	return env;
}

/* "exit 3: <stderr's tail>" and the like, on one line. */
static void
describe(int status, int timed_out, int timeout_ms, const struct tail *t,
    char *err, size_t errlen)
{
	char said[TAIL_MAX + 1] = "";
	size_t n = 0;
	int len;

	if (timed_out)
		len = snprintf(err, errlen, "timed out after %d ms (killed)",
		    timeout_ms);
	else if (WIFEXITED(status))
		len = snprintf(err, errlen, "exit %d", WEXITSTATUS(status));
	else
		len = snprintf(err, errlen, "killed by SIG%s%s",
		    sigabbrev_np(WTERMSIG(status)) != NULL ?
		    sigabbrev_np(WTERMSIG(status)) : "?",
		    WCOREDUMP(status) ? " (core dumped)" : "");
	for (size_t i = 0; i < t->len; i++) {
		char c = t->buf[i];

		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		if (c == ' ' && (n == 0 || said[n - 1] == ' '))
			continue;
		said[n++] = c;
	}
	while (n > 0 && said[n - 1] == ' ')
		n--;
	said[n] = '\0';
	if (n > 0 && len > 0 && (size_t)len < errlen)
		snprintf(err + len, errlen - (size_t)len, ": %s", said);
}

/*
 * Feeds the payload, collects stderr, waits for the exit or the timeout.
 * The wait status, or -1 if the program could not be waited for.
 */
static int
supervise(pid_t pid, int in, int out, const char *payload, int timeout_ms,
    struct tail *t, int *timed_out)
{
	size_t len = strlen(payload), sent = 0;
	int64_t deadline = timeout_ms > 0 ?
	    mono_ns() + timeout_ms * NS_PER_MS : 0;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status = -1;

	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = in, .events = POLLOUT },
			{ .fd = out, .events = POLLIN },
			{ .fd = pidfd, .events = POLLIN },
		};
		int ms = pidfd < 0 ? NOPIDFD_POLL_MS : -1;
		pid_t r;

		if (deadline != 0) {
			int64_t left = deadline - mono_ns();
			int left_ms = left <= 0 ? 0 :
			    (int)((left + NS_PER_MS - 1) / NS_PER_MS);

			if (left <= 0) {
				kill(pid, SIGKILL);
				*timed_out = 1;
				deadline = 0;
			} else if (ms < 0 || left_ms < ms)
				ms = left_ms;
		}
		if ((r = waitpid(pid, &status, WNOHANG)) == pid)
			break;
		if (r < 0 && errno != EINTR)
			break;
		if (poll(pfd, 3, ms) < 0 && errno != EINTR)
			break;
		if (in >= 0 && pfd[0].revents != 0) {
			ssize_t n = write(in, payload + sent, len - sent);

			if (n > 0)
				sent += (size_t)n;
			/* EPIPE: it does not read its stdin; fine. */
			if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
			    sent == len) {
				close(in);
				in = -1;
			}
		}
		if (out >= 0 && pfd[1].revents != 0 && drain(out, t) == 0) {
			close(out);
			out = -1;
		}
	}
	/* What is left; a grandchild keeping the pipe open is not waited. */
	if (out >= 0) {
		drain(out, t);
		close(out);
	}
	if (in >= 0)
		close(in);
	if (pidfd >= 0)
		close(pidfd);
	return status;
}

/*
 * Runs the command for job id, attempt `attempt`: 0 if it exited 0, else
 * 1 with why in err (it could not start, exited non-zero, died, or timed
 * out).
 */
int
command_run(pm_worker *w, const struct pgq_params *p, const char *payload,
    long long id, int attempt, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	struct sigaction ign, old;
	int in[2], out[2], rc, status, timed_out = 0;
	struct tail t = { .len = 0 };
	char vars[3][96], **env;
	pid_t pid;

	if ((env = job_environ(p, id, attempt, vars)) == NULL) {
		snprintf(err, errlen, "cannot run %s: out of memory",
		    p->program);
		return 1;
	}
	if (pipe2(in, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot run %s: pipe: %s", p->program,
		    strerror(errno));
		free(env);
		return 1;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot run %s: pipe: %s", p->program,
		    strerror(errno));
		close(in[0]);
		close(in[1]);
		free(env);
		return 1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	rc = posix_spawn(&pid, p->program, &fa, NULL, p->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(in[0]);
	close(out[1]);
	if (rc != 0) {
		snprintf(err, errlen, "cannot run %s: %s", p->program,
		    strerror(rc));
		close(in[1]);
		close(out[0]);
		return 1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	/* A program that ignores its stdin must not kill us with SIGPIPE. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old);
	status = supervise(pid, in[1], out[0], payload, p->handler_timeout_ms,
	    &t, &timed_out);
	sigaction(SIGPIPE, &old, NULL);
	if (status == -1) {
		snprintf(err, errlen, "lost track of %s (pid %d): %s",
		    p->program, (int)pid, strerror(errno));
		return 1;
	}
	if (!timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	describe(status, timed_out, p->handler_timeout_ms, &t, err, errlen);
	pm_log(w, PM_LOG_DEBUG, "pgqueue: job %lld: %s: %s", id, p->argv[0],
	    err);
	return 1;
}
