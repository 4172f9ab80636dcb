/*
 * spawner.c - worker processes forked from the master, or cloned by the
 * task's preload process on the master's request.  Signals stay blocked
 * across fork() (the master's mask is its set-up), so a child cannot act
 * on one before it has reset them.  A worker's stdout and stderr are pipes
 * to the master, which turns what comes through them into log lines
 * (pipes, so that /dev/stdout opens).  The preload process is supervised
 * like a slot: restarted after a failure with the same growing backoff.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evtag.h"
#include "log.h"
#include "policy.h"
#include "spawner.h"
#include "util.h"

void
spawner_init_fork(struct spawner *sp)
{
	int index = sp->index;

	/* Its place among the master's spawners is for life. */
	memset(sp, 0, sizeof(*sp));
	sp->index = index;
	sp->state = SPAWNER_FORK;
	sp->master = getpid();
	sp->sock = -1;
	sp->out[0].fd = sp->out[1].fd = -1;
}

/* A pipe the master reads ([0], non-blocking) and a child writes. */
static int
stream(int sv[2])
{
	if (pipe2(sv, O_CLOEXEC) < 0)
		return -1;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	return 0;
}

/* Closes the four ends of two pipes (an -1 is skipped). */
static void
close_pipes(int a[2], int b[2])
{
	int e = errno;

	for (int i = 0; i < 2; i++) {
		if (a[i] >= 0)
			close(a[i]);
		if (b[i] >= 0)
			close(b[i]);
	}
	errno = e;
}

/* Who the preload process's lines are from. */
static struct log_origin
origin(const struct spawner *sp)
{
	struct log_origin o = { sp->title, "", ROLE_PRELOAD_LOG, sp->pid,
	    -1 };

	return o;
}

/* Watches fd in the master's epoll under tag and i. */
static void
watch(struct spawner *sp, int fd, enum ev_tag tag, int i, int op)
{
	struct epoll_event ev;

	if (fd < 0)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = EV_DATA(tag, i);
	if (epoll_ctl(sp->epfd, op, fd, &ev) < 0)
		logmsg(PM_LOG_ERROR, "preload: epoll_ctl: %s",
		    strerror(errno));
}

/* Registers (op ADD) or re-tags (MOD) the preload's descriptors. */
static void
watch_all(struct spawner *sp, int op)
{
	watch(sp, sp->sock, EV_PRELOAD, sp->index, op);
	watch(sp, sp->out[0].fd, EV_PRELOAD_OUT, 2 * sp->index, op);
	watch(sp, sp->out[1].fd, EV_PRELOAD_OUT, 2 * sp->index + 1, op);
}

/* Forks the preload process; 0, or -1 (logged, a restart planned). */
static int
start_preload(struct spawner *sp)
{
	struct preload_args pa;
	int sv[2] = { -1, -1 }, so[2] = { -1, -1 }, se[2] = { -1, -1 };
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    stream(so) < 0 || stream(se) < 0) {
		logmsg(PM_LOG_ERROR, "preload: %s", strerror(errno));
		close_pipes(so, se);
		close_pipes(sv, (int[2]){ -1, -1 });
		goto later;
	}
	memset(&pa, 0, sizeof(pa));
	pa.cfg = sp->cfg;
	pa.creds = sp->creds;
	pa.sb = sp->sb;
	pa.master = sp->master;
	pa.sock = sv[1];
	pa.out_fd = so[1];
	pa.err_fd = se[1];
	pa.ready_fd = sp->ready_fd;
	pa.load = sp->loads;
	if ((pid = fork()) < 0) {
		logmsg(PM_LOG_ERROR, "preload: fork: %s", strerror(errno));
		close_pipes(so, se);
		close_pipes(sv, (int[2]){ -1, -1 });
		goto later;
	}
	if (pid == 0)
		preload_main(&pa);
	setpgid(pid, pid);
	close(sv[1]);
	close(so[1]);
	close(se[1]);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	sp->pid = pid;
	sp->sock = sv[0];
	sp->inflight = 0;
	outstream_init(&sp->out[0], so[0], 0);
	outstream_init(&sp->out[1], se[0], 1);
	sp->started = mono_ns();
	sp->started_real = real_ns();
	sp->state = SPAWNER_STARTING;
	watch_all(sp, EPOLL_CTL_ADD);
	logmsg(PM_LOG_DEBUG, "%s pid %ld started", spawner_what(sp),
	    (long)pid);
	return 0;
later:
	sp->state = SPAWNER_DOWN;
	sp->respawn_at = mono_ns() + policy_after_exit(&sp->failures,
	    EXIT_FAILED, 0) + BACKOFF_BASE_NS;
	return -1;
}

const char *
spawner_what(const struct spawner *sp)
{
	return sp->loads ? "preload process" : "spawner process";
}

int
spawner_init_preload(struct spawner *sp, int epfd,
    const struct task_config *cfg, const struct creds *creds,
    struct scoreboard *sb, int ready_fd, int loads)
{
	spawner_init_fork(sp);
	sp->loads = loads;
	sp->epfd = epfd;
	sp->cfg = cfg;
	sp->creds = creds;
	sp->sb = sb;
	sp->ready_fd = ready_fd;
	title_compose(sp->title, sizeof(sp->title), cfg->title_prefix,
	    loads ? TITLE_PRELOAD : TITLE_SPAWNER, cfg->base_title);
	return start_preload(sp);
}

int
spawner_ready(const struct spawner *sp)
{
	return sp->state == SPAWNER_FORK || sp->state == SPAWNER_READY;
}

int
spawner_can_take(const struct spawner *sp)
{
	return sp->state == SPAWNER_FORK || (sp->state == SPAWNER_READY &&
	    sp->inflight < SPAWN_WINDOW);
}

int
spawner_spawn(struct spawner *sp, const struct worker_args *a, pid_t *pid,
    int out[2])
{
	struct worker_args wa = *a;
	struct preload_req rq;
	int so[2], se[2] = { -1, -1 };
	pid_t p;

	*pid = 0;
	if (sp->state != SPAWNER_FORK) {
		if (sp->state != SPAWNER_READY ||
		    sp->inflight >= SPAWN_WINDOW) {
			errno = EAGAIN;
			return -1;
		}
		rq.cell = (uint32_t)(a->cell - a->sb->cells);
		rq.slot = a->slot;
		rq.hold = a->ready_fd >= 0;
		rq.merged = a->merged;
		if (send(sp->sock, &rq, sizeof(rq), MSG_NOSIGNAL |
		    MSG_DONTWAIT) != (ssize_t)sizeof(rq))
			return -1;
		sp->inflight++;
		return 0;
	}
	if (stream(so) < 0)
		return -1;
	if (!a->merged && stream(se) < 0) {
		close_pipes(so, se);
		return -1;
	}
	wa.out_fd = so[1];
	wa.err_fd = a->merged ? so[1] : se[1];
	wa.plugin = NULL;
	wa.preload_sock = -1;
	if ((p = fork()) < 0) {
		close_pipes(so, se);
		return -1;
	}
	if (p == 0)
		worker_main(&wa);
	/* Both sides set the group, so neither can act before it exists. */
	setpgid(p, p);
	close(so[1]);
	if (se[1] >= 0)
		close(se[1]);
	*pid = p;
	out[0] = so[0];
	out[1] = se[0];
	return 0;
}

int
spawner_reply(struct spawner *sp, struct preload_rep *rep, int fds[2])
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { rep, sizeof(*rep) };
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t n;

	fds[0] = fds[1] = -1;
	if (sp->sock < 0)
		return 0;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(sp->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0)
		return -1;
	/* Anything but its "ready" answers a request (even cut short). */
	if (((size_t)n != sizeof(*rep) || rep->kind != PRELOAD_READY) &&
	    sp->inflight > 0)
		sp->inflight--;
	for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS &&
		    (cm->cmsg_len == CMSG_LEN(2 * sizeof(int)) ||
		    cm->cmsg_len == CMSG_LEN(sizeof(int))))
			memcpy(fds, CMSG_DATA(cm), cm->cmsg_len -
			    CMSG_LEN(0));
	if ((size_t)n != sizeof(*rep)) {
		close_pipes(fds, (int[2]){ -1, -1 });
		fds[0] = fds[1] = -1;
		return 0;
	}
	/*
	 * Out of descriptors, the kernel kept some of the worker's pipes:
	 * a worker whose output nobody reads must not run.  It is reaped as
	 * a stranger; its slot counts a failed start.
	 */
	if (msg.msg_flags & MSG_CTRUNC) {
		close_pipes(fds, (int[2]){ -1, -1 });
		fds[0] = fds[1] = -1;
		if (rep->kind == PRELOAD_SPAWNED && rep->pid > 0) {
			kill(rep->pid, SIGKILL);
			rep->pid = -EMFILE;
		}
	}
	/* The master never waits on a worker's pipe. */
	for (int k = 0; k < 2; k++)
		if (fds[k] >= 0)
			fcntl(fds[k], F_SETFL, O_NONBLOCK);
	if (rep->kind == PRELOAD_READY && sp->state == SPAWNER_STARTING) {
		sp->state = SPAWNER_READY;
		logmsg(sp->loads ? PM_LOG_INFO : PM_LOG_DEBUG, "%s pid %ld is "
		    "ready", spawner_what(sp), (long)sp->pid);
	}
	return 1;
}

void
spawner_output(struct spawner *sp, int stream)
{
	struct log_origin o = origin(sp);

	if (stream >= 0 && stream < 2)
		outstream_read(&sp->out[stream], &o);
}

int
spawner_owns(const struct spawner *sp, pid_t pid)
{
	return sp->state != SPAWNER_FORK && sp->pid > 0 && sp->pid == pid;
}

void
spawner_exited(struct spawner *sp, int wstatus, int64_t now, char *text,
    size_t size)
{
	struct log_origin o = origin(sp);
	struct exit_facts f;
	enum exit_class cls;
	int64_t delay;
	int was = sp->state;

	for (int k = 0; k < 2; k++)
		outstream_close(&sp->out[k], &o);
	if (sp->sock >= 0)
		close(sp->sock);
	sp->sock = -1;
	sp->inflight = 0;
	memset(&f, 0, sizeof(f));
	f.wstatus = wstatus;
	f.lived_ns = now - sp->started;
	f.stop_killed = was == SPAWNER_STOPPED;
	cls = policy_classify(&f, text, size);
	copy_str(sp->last_exit, text, sizeof(sp->last_exit));
	if (was == SPAWNER_STOPPED) {
		logmsg(PM_LOG_DEBUG, "%s (pid %ld) exited: %s",
		    spawner_what(sp), (long)sp->pid, text);
		sp->pid = 0;
		return;
	}
	/* A preload that served its workers a while was a healthy run. */
	delay = policy_after_exit(&sp->failures, EXIT_FAILED,
	    was == SPAWNER_READY && f.lived_ns >= HEALTHY_RUN_NS);
	sp->respawn_at = now + delay;
	sp->state = SPAWNER_DOWN;
	logmsg(PM_LOG_WARNING, "%s (pid %ld) exited: %s; starting it "
	    "again in %.1f s (workers keep running)", spawner_what(sp),
	    (long)sp->pid, text, (double)delay / NS_PER_SEC);
	(void)cls;
	sp->pid = 0;
}

void
spawner_tick(struct spawner *sp, int64_t now)
{
	if (sp->state == SPAWNER_DOWN && sp->respawn_at <= now &&
	    start_preload(sp) == 0)
		sp->restarts++;
}

int64_t
spawner_next_deadline(const struct spawner *sp)
{
	return sp->state == SPAWNER_DOWN ? sp->respawn_at : 0;
}

void
spawner_set_index(struct spawner *sp, int index)
{
	sp->index = index;
	if (sp->state != SPAWNER_FORK)
		watch_all(sp, EPOLL_CTL_MOD);
}

void
spawner_retarget(struct spawner *sp, const struct task_config *cfg,
    const struct creds *creds)
{
	sp->cfg = cfg;
	sp->creds = creds;
}

void
spawner_release(struct spawner *sp)
{
	if (sp->state != SPAWNER_FORK && sp->pid > 0)
		kill(sp->pid, SIGKILL);
	for (int k = 0; k < 2; k++)
		if (sp->out[k].fd >= 0)
			close(sp->out[k].fd);
	free(sp->out[0].part);
	free(sp->out[1].part);
	if (sp->sock >= 0)
		close(sp->sock);
	spawner_init_fork(sp);
}

void
spawner_stop(struct spawner *sp)
{
	if (sp->state == SPAWNER_FORK)
		return;
	if (sp->pid > 0)
		kill(sp->pid, SIGTERM);
	sp->state = SPAWNER_STOPPED;
}
