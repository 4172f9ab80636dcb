/*
 * call.c - call mode: each work() runs the command once and waits for it,
 * in one poll() over the child's pidfd, its stdout and stderr (read into
 * log lines as they come) and the worker's stop descriptor.  Exit 0 is a
 * good call; any other end is a failed call (a negative return), logged
 * with the exit status or signal.  The two output pipes live as long as
 * the worker and serve every call.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"

#define READ_TURN	(64 * 1024)	/* bytes read per stream per turn */

/* A pipe whose read end (ours) never blocks; both ends close on exec. */
static int
output_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	return fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

int
call_init(struct exec_state *st, char *err, size_t errlen)
{
	struct call_state *cs = &st->call;

	cs->out[0] = cs->out[1] = cs->err[0] = cs->err[1] = -1;
	cs->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (cs->null_fd < 0 || output_pipe(cs->out) < 0 ||
	    output_pipe(cs->err) < 0 || command_set_stdio(&st->cmd,
	    cs->null_fd, cs->out[1], cs->err[1]) < 0) {
		snprintf(err, errlen, "call set-up: %s", strerror(errno));
		call_fini(st);
		return -1;
	}
	lines_init(&cs->out_sink, st->w, PM_LOG_INFO);
	lines_init(&cs->err_sink, st->w, PM_LOG_NOTICE);
	return 0;
}

void
call_fini(struct exec_state *st)
{
	struct call_state *cs = &st->call;
	int *fds[] = { &cs->null_fd, &cs->out[0], &cs->out[1], &cs->err[0],
	    &cs->err[1] };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			(void)close(*fds[i]);
		*fds[i] = -1;
	}
}

/*
 * Waits for the child to end, logging its output meanwhile and passing a
 * stop on to it.  Returns its wait status.
 */
static int
wait_child(struct exec_state *st, pid_t pid, int pidfd)
{
	struct call_state *cs = &st->call;
	struct pollfd pf[4];
	int wstatus;

	pf[0].fd = pidfd;
	pf[1].fd = cs->out[0];
	pf[2].fd = cs->err[0];
	pf[3].fd = st->stop_fd;
	for (int i = 0; i < 4; i++)
		pf[i].events = POLLIN;
	for (;;) {
		nfds_t n = st->stop_fd >= 0 && !st->stop_forwarded ? 4 : 3;

		for (int i = 0; i < 4; i++)
			pf[i].revents = 0;
		if (poll(pf, n, exec_poll_timeout(st)) < 0 && errno != EINTR)
			break;
		if (pf[1].revents != 0)
			(void)lines_read(&cs->out_sink, cs->out[0], READ_TURN);
		if (pf[2].revents != 0)
			(void)lines_read(&cs->err_sink, cs->err[0], READ_TURN);
		exec_forward_stop(st, pf[3].revents, pid);
		if (pf[0].revents != 0)
			break;
	}
	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR) {
			wstatus = 0;
			break;
		}
	}
	/* What it wrote before it ended is in the pipes: log it now. */
	(void)lines_read(&cs->out_sink, cs->out[0], READ_TURN);
	(void)lines_read(&cs->err_sink, cs->err[0], READ_TURN);
	lines_flush(&cs->out_sink);
	lines_flush(&cs->err_sink);
	return wstatus;
}

int
call_work(struct exec_state *st)
{
	uint64_t call = pm_worker_calls(st->w) + 1;
	char err[EXEC_ERR_MAX], what[96];
	int pidfd, wstatus;
	pid_t pid;

	/* Asked to stop before the call began: do not start the command. */
	if (pm_worker_stopping(st->w))
		return PM_CONTINUE;
	if (command_spawn(&st->cmd, call, &pid, &pidfd, err, sizeof(err)) < 0) {
		exec_log_failure(st, call, "%s %s", st->prm.argv[0], err);
		return -1;
	}
	wstatus = wait_child(st, pid, pidfd);
	close(pidfd);
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
		return PM_CONTINUE;
	command_end_text(wstatus, what, sizeof(what));
	/* Ended by the SIGTERM we passed on: the stop's doing, not a fault. */
	if (st->stop_forwarded && WIFSIGNALED(wstatus) &&
	    WTERMSIG(wstatus) == SIGTERM) {
		pm_log(st->w, PM_LOG_NOTICE, "exec: call %llu: %s %s (the "
		    "worker is ending)", (unsigned long long)call,
		    st->prm.argv[0], what);
		return PM_CONTINUE;
	}
	exec_log_failure(st, call, "%s %s", st->prm.argv[0], what);
	return -1;
}
