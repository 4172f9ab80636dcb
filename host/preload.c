/*
 * preload.c - the preload process.  It takes on the task's privileges,
 * loads the plugin, calls work_preload(), says it is ready, then serves
 * the master's requests one at a time: for each, two pipes and a clone
 * with CLONE_PARENT, so the new worker is the master's child.  clone()
 * runs no pthread_atfork() handler; that is the plugin's to know
 * (pmhost.h says so).  It stays single-threaded, so no lock is held
 * across a clone.  It dies with the master.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "plugin.h"
#include "pin.h"
#include "preload.h"
#include "title.h"
#include "util.h"
#include "worker.h"

/* Sends a reply, with the descriptors of fds that are not -1. */
static int
reply(int sock, const struct preload_rep *rep, const int *fds)
{
	int nfds = fds == NULL ? 0 : fds[1] < 0 ? 1 : 2;
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { (void *)rep, sizeof(*rep) };
	struct msghdr msg;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fds != NULL) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
	}
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * Clones a worker for rq: in the child, the worker's life (never
 * returns); here, the reply to the master with the worker's pipes.
 */
static void
spawn(const struct preload_args *pa, const struct plugin *pl,
    const struct preload_req *rq)
{
	struct preload_rep rep = { PRELOAD_SPAWNED, rq->cell, 0 };
	struct worker_args wa;
	int so[2], se[2], ours[2];
	long pid;

	if (rq->cell >= SB_CELLS) {
		rep.pid = -EINVAL;
		(void)reply(pa->sock, &rep, NULL);
		return;
	}
	if (pipe2(so, O_CLOEXEC) < 0) {
		rep.pid = -errno;
		(void)reply(pa->sock, &rep, NULL);
		return;
	}
	if (rq->merged) {
		se[0] = -1;
		se[1] = -1;
	} else if (pipe2(se, O_CLOEXEC) < 0) {
		rep.pid = -errno;
		close(so[0]);
		close(so[1]);
		(void)reply(pa->sock, &rep, NULL);
		return;
	}
	memset(&wa, 0, sizeof(wa));
	wa.cfg = pa->cfg;
	wa.creds = pa->creds;
	wa.cell = &pa->sb->cells[rq->cell];
	wa.sb = pa->sb;
	wa.slot = rq->slot;
	wa.master = pa->master;
	wa.ready_fd = rq->hold ? pa->ready_fd : -1;
	wa.out_fd = so[1];
	wa.err_fd = rq->merged ? so[1] : se[1];
	wa.merged = rq->merged;
	wa.plugin = pl;
	wa.preload_sock = pa->sock;

	pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL,
	    NULL);
	if (pid == 0) {
		close(so[0]);
		close(se[0]);
		if (!rq->hold)
			close(pa->ready_fd);
		worker_main(&wa);
	}
	close(so[1]);
	close(se[1]);
	if (pid < 0) {
		rep.pid = -errno;
		close(so[0]);
		close(se[0]);
		(void)reply(pa->sock, &rep, NULL);
		return;
	}
	rep.pid = (int32_t)pid;
	ours[0] = so[0];
	ours[1] = se[0];
	(void)reply(pa->sock, &rep, ours);
	close(so[0]);
	close(se[0]);
}

/*
 * Keeps only what the process uses; logs go to the master.  A spawner
 * (as the master's user) keeps the log too: its workers take it over to
 * say so if their master dies (worker.c).
 */
static void
setup(const struct preload_args *pa)
{
	int keep[3] = { pa->sock, pa->ready_fd, pa->load ? -1 :
	    log_sink_fd() };
	sigset_t none;
	int fd;

	setpgid(0, 0);
	if (dup2(pa->out_fd, 1) < 0 || dup2(pa->err_fd, 2) < 0)
		_exit(70);
	close_fds_except(keep, 3);
	if ((fd = open("/dev/null", O_RDONLY | O_NOCTTY)) >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	log_to_pipe(2, !pa->load);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Nothing of it outlives the master. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != pa->master)
		_exit(70);
}

/* Spawns a worker per request until the master lets go. */
static _Noreturn void
serve(const struct preload_args *pa, const struct plugin *pl)
{
	for (;;) {
		struct preload_req rq;
		ssize_t n = recv(pa->sock, &rq, sizeof(rq), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);	/* the master let go of us */
		if ((size_t)n == sizeof(rq))
			spawn(pa, pl, &rq);
	}
}

_Noreturn void
preload_main(const struct preload_args *pa)
{
	struct preload_rep ready = { PRELOAD_READY, 0, 0 };
	char title[PROC_TITLE_MAX], err[PLUGIN_ERR_MAX];
	struct api_ctx ctx;
	struct plugin pl;

	setup(pa);
	title_compose(title, sizeof(title), pa->cfg->title_prefix,
	    pa->load ? TITLE_PRELOAD : TITLE_SPAWNER, pa->cfg->base_title);
	title_set(title);
	if (!pa->load) {
		/* A spawner: its workers load the plugin themselves. */
		if (reply(pa->sock, &ready, NULL) < 0)
			_exit(70);
		serve(pa, NULL);
	}
	pin_hold(pa->cfg);
	if (privs_enter(pa->cfg, pa->creds, err, sizeof(err)) < 0) {
		logmsg(PM_LOG_ERROR, "preload: %s", err);
		_exit(70);
	}
	/* The privilege change cleared the parent-death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != pa->master)
		_exit(70);
	if (plugin_open(pa->cfg, &pl, err, sizeof(err)) < 0) {
		logmsg(PM_LOG_ERROR, "preload: cannot load plugin: %s", err);
		_exit(70);
	}
	pin_drop();
	if (pl.preload != NULL) {
		int rc;

		api_init(&ctx, ROLE_PRELOAD, -1, title, pa->cfg);
		if ((rc = pl.preload(&ctx.pub)) != 0) {
			logmsg(PM_LOG_ERROR, "preload: work_preload() returned "
			    "%d", rc);
			_exit(70);
		}
	}
	fflush(NULL);
	if (reply(pa->sock, &ready, NULL) < 0)
		_exit(70);
	serve(pa, &pl);
}
