/*
 * control.c - the master's side of NAME.sock.  Clients are served from
 * the one event loop with non-blocking I/O and a deadline each: a client
 * that is slow, oversized, malformed or gone costs a closed descriptor,
 * never a blocked or crashed master.  Peers must have the master's uid or
 * be root (SO_PEERCRED).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "util.h"

int
control_open(struct master *m)
{
	struct sockaddr_un sa;
	struct epoll_event ev;
	mode_t old;
	int fd;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		m->clients[i].fd = -1;
	if (rundir_path(m->sock_path, sizeof(m->sock_path), m->run_dir,
	    m->cfg.base_title, ".sock") < 0 ||
	    strlen(m->sock_path) >= sizeof(sa.sun_path)) {
		logmsg(PM_LOG_ERROR, "control socket %s: path too long",
		    m->sock_path);
		m->sock_path[0] = '\0';
		return -1;
	}
	/*
	 * Bound under a temporary name and renamed once listening, so that
	 * NAME.sock never exists without a listener behind it.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%ld",
	    m->sock_path, (long)getpid()) >= sizeof(sa.sun_path))
		copy_str(sa.sun_path, m->sock_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		logmsg(PM_LOG_ERROR, "socket: %s", strerror(errno));
		return -1;
	}
	/* We hold the pid file lock: a socket file left here is stale. */
	unlink(sa.sun_path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0 || rename(sa.sun_path, m->sock_path) < 0) {
		umask(old);
		logmsg(PM_LOG_ERROR, "control socket %s: %s", m->sock_path,
		    strerror(errno));
		unlink(sa.sun_path);
		close(fd);
		return -1;
	}
	umask(old);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = EV_DATA(EV_LISTEN, 0);
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		logmsg(PM_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
		close(fd);
		return -1;
	}
	m->listen_fd = fd;
	return 0;
}

/* Drops a client: closes its socket, frees its buffers. */
static void
drop(struct master *m, int i)
{
	struct client *c = &m->clients[i];

	if (c->fd < 0)
		return;
	close(c->fd);
	free(c->in);
	buf_free(&c->out);
	if (m->ro.client == i)
		m->ro.client = -1;
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void
control_close(struct master *m)
{
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		drop(m, i);
	if (m->listen_fd >= 0) {
		close(m->listen_fd);
		m->listen_fd = -1;
	}
	if (m->sock_path[0] != '\0')
		unlink(m->sock_path);
}

/* Watches a client for input or for room to write its answer. */
static void
watch(struct master *m, int i, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = EV_DATA(EV_CLIENT, i);
	if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, m->clients[i].fd, &ev) < 0)
		drop(m, i);
}

/* Writes what it can of a client's answer; drops it once all is sent. */
static void
flush_out(struct master *m, int i)
{
	struct client *c = &m->clients[i];

	while (c->outoff < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->outoff,
		    c->out.len - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			watch(m, i, EPOLLOUT);
			return;
		}
		if (n <= 0) {
			drop(m, i);
			return;
		}
		c->outoff += (size_t)n;
	}
	drop(m, i);
}

void
control_reply(struct master *m, int i, int ok, const char *fmt, ...)
{
	struct client *c;
	char text[1024];
	va_list ap;

	if (i < 0 || i >= CTL_MAX_CLIENTS || m->clients[i].fd < 0)
		return;
	c = &m->clients[i];
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* The answer is one line: no newline may split it. */
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ' ';
	buf_printf(&c->out, "%s%s%s\n", ok ? "ok" : "error",
	    text[0] != '\0' ? " " : "", text);
	c->replying = 1;
	c->deadline = mono_ns() + CTL_CLIENT_NS;
	if (c->out.oom) {
		drop(m, i);
		return;
	}
	flush_out(m, i);
}

/* Human name of a worker's state, from its cell and the master's view. */
static const char *
proc_state(const struct master *m, int idx)
{
	static const char *const phases[] = {
		[PHASE_STARTING] = "starting",
		[PHASE_INIT] = "init",
		[PHASE_HELD] = "held",
		[PHASE_IDLE] = "idle",
		[PHASE_BUSY] = "busy",
		[PHASE_EXITING] = "exiting",
	};
	uint32_t ph = atomic_load(&m->sb->cells[idx].phase);

	if (m->procs[idx].retiring && ph != PHASE_EXITING)
		return "stopping";
	return ph < nitems(phases) ? phases[ph] : "?";
}

/* RSS of a process in KiB from /proc/PID/statm; -1 if unknown. */
static long long
rss_kb(pid_t pid)
{
	char path[64], buf[128];
	unsigned long long size, res;
	ssize_t n;
	int fd;

	/* No stdio: a status request must not grow the master's heap. */
	snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &size, &res) != 2)
		return -1;
	return (long long)(res * (unsigned long long)(sysconf(_SC_PAGESIZE) /
	    1024));
}

/* One "worker" record for a live process. */
static void
put_worker(struct master *m, struct buf *b, int idx, int64_t now,
    int64_t now_real)
{
	const struct proc *p = &m->procs[idx];
	const struct sb_cell *c = &m->sb->cells[idx];
	const struct slot *s = &m->slots[p->slot];
	int64_t started = atomic_load(&c->call_started);
	uint32_t ph = atomic_load(&c->phase);

	buf_printf(b, "worker");
	proto_put_int(b, "slot", p->slot);
	proto_put_int(b, "pid", p->pid);
	proto_put(b, "state", proc_state(m, idx));
	proto_put_int(b, "start_ms", p->started_real / NS_PER_MS);
	proto_put_int(b, "run_ms", (now - p->started) / NS_PER_MS);
	proto_put_int(b, "rss_kb", rss_kb(p->pid));
	proto_put_int(b, "work", (long long)atomic_load(&c->calls));
	proto_put_int(b, "errors", (long long)atomic_load(&c->errors));
	proto_put_int(b, "restarts", (long long)s->restarts);
	proto_put_int(b, "failures", s->failures);
	proto_put_int(b, "generation", p->gen);
	if (ph == PHASE_BUSY && started != 0)
		proto_put_int(b, "call_ms", (now - started) / NS_PER_MS);
	if (s->last_exit[0] != '\0')
		proto_put(b, "last_exit", s->last_exit);
	(void)now_real;
	buf_add(b, "\n", 1);
}

/* The "status" answer: one master record, one worker record per row. */
static void
put_status(struct master *m, struct buf *b)
{
	int64_t now = mono_ns(), now_real = real_ns();
	char wtitle[PROC_TITLE_MAX];

	title_compose(wtitle, sizeof(wtitle), m->cfg.title_prefix,
	    TITLE_WORKER, m->cfg.base_title);
	buf_printf(b, "master");
	proto_put(b, "name", m->cfg.base_title);
	proto_put_int(b, "pid", getpid());
	proto_put(b, "title", m->title);
	proto_put(b, "worker_title", wtitle);
	proto_put(b, "state", m->state == MASTER_STOPPING ? "stopping" :
	    m->ro.phase != RO_IDLE ? "restarting" : "running");
	proto_put_int(b, "start_ms", m->started_real / NS_PER_MS);
	proto_put_int(b, "run_ms", (now_real - m->started_real) / NS_PER_MS);
	proto_put_int(b, "rss_kb", rss_kb(getpid()));
	proto_put_int(b, "count", m->nlive);
	proto_put_int(b, "target", m->target);
	proto_put_int(b, "generation", m->gen);
	proto_put_int(b, "stop_timeout", m->cfg.stop_timeout);
	proto_put(b, "config", m->cfg.config_path);
	proto_put(b, "plugin", m->cfg.plugin);
	proto_put(b, "run_dir", m->run_dir);
	buf_add(b, "\n", 1);

	/* Slots in order; a slot's replacement right after its worker. */
	for (int i = 0; i < m->nslots; i++) {
		const struct slot *s = &m->slots[i];

		if (s->cur >= 0)
			put_worker(m, b, s->cur, now, now_real);
		if (s->next >= 0)
			put_worker(m, b, s->next, now, now_real);
		if (s->cur >= 0 || s->next >= 0 || i >= m->target)
			continue;
		/* No process: backing off, or about to be respawned. */
		buf_printf(b, "worker");
		proto_put_int(b, "slot", i);
		proto_put(b, "state", s->respawn_at > now && s->last_failed ?
		    "backoff" : m->run_once ? "done" : "pending");
		proto_put_int(b, "restarts", (long long)s->restarts);
		proto_put_int(b, "failures", s->failures);
		if (s->respawn_at > now)
			proto_put_int(b, "respawn_in_ms",
			    (s->respawn_at - now) / NS_PER_MS);
		if (s->last_exit[0] != '\0')
			proto_put(b, "last_exit", s->last_exit);
		buf_add(b, "\n", 1);
	}
}

/* Executes one request line from client i. */
static void
dispatch(struct master *m, int i, char *line)
{
	struct client *c = &m->clients[i];
	char msg[256];
	long n;

	if (strcmp(line, "status") == 0) {
		put_status(m, &c->out);
		control_reply(m, i, 1, "%s", "");
	} else if (strcmp(line, "wakeup") == 0) {
		int k = master_wakeup(m, "wakeup command");

		control_reply(m, i, 1, "respawned %d workers", k);
	} else if (strncmp(line, "scale ", 6) == 0) {
		if (parse_long(line + 6, 1, CONFIG_MAX_WORKERS, &n) < 0)
			control_reply(m, i, 0, "scale: N must be an integer "
			    "from 1 to %d", CONFIG_MAX_WORKERS);
		else if (master_scale(m, (int)n, "scale command", msg,
		    sizeof(msg)) < 0)
			control_reply(m, i, 0, "%s", msg);
		else
			control_reply(m, i, 1, "%s", msg);
	} else if (strcmp(line, "reload") == 0) {
		c->replying = 1;
		c->deadline = 0;	/* answered when the rollout ends */
		reload_begin(m, i, "restart command");
	} else if (strcmp(line, "stop") == 0) {
		control_reply(m, i, 1, "stopping stop_timeout=%u",
		    m->cfg.stop_timeout);
		master_begin_stop(m, "stop command");
	} else {
		control_reply(m, i, 0, "unknown request \"%.40s\" (expected "
		    "status, wakeup, scale N, reload or stop)", line);
	}
}

/* Reads from client i; acts once a whole line is in. */
static void
read_request(struct master *m, int i)
{
	struct client *c = &m->clients[i];
	char *nl;

	for (;;) {
		ssize_t n;

		if (c->inlen == PROTO_REQUEST_MAX) {
			control_reply(m, i, 0, "request longer than %d bytes",
			    PROTO_REQUEST_MAX);
			return;
		}
		n = recv(c->fd, c->in + c->inlen, PROTO_REQUEST_MAX - c->inlen,
		    MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* Gone, or half-closed without a whole line. */
			if (n == 0 && c->inlen > 0 && memchr(c->in, '\n',
			    c->inlen) == NULL)
				control_reply(m, i, 0, "incomplete request");
			else
				drop(m, i);
			return;
		}
		c->inlen += (size_t)n;
		if ((nl = memchr(c->in, '\n', c->inlen)) != NULL)
			break;
	}
	*nl = '\0';
	if (nl > c->in && nl[-1] == '\r')
		nl[-1] = '\0';
	if (memchr(c->in, '\0', (size_t)(nl - c->in)) != NULL) {
		control_reply(m, i, 0, "malformed request");
		return;
	}
	/* Stop reading: one request per connection. */
	watch(m, i, 0);
	if (m->clients[i].fd >= 0)
		dispatch(m, i, c->in);
}

/*
 * Answers a client it will not serve and closes it.  What the client has
 * already sent is read first: closing with unread input would reset the
 * connection and lose the answer.
 */
static void
refuse(int fd, const char *line)
{
	char junk[PROTO_REQUEST_MAX];

	(void)recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
	(void)send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(fd, SHUT_WR);
	(void)recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
	close(fd);
}

/* Is the peer allowed: our uid, or root? */
static int
peer_allowed(int fd, uid_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	*uid = cr.uid;
	return cr.uid == 0 || cr.uid == geteuid();
}

void
control_accept(struct master *m)
{
	for (;;) {
		struct epoll_event ev;
		uid_t uid = (uid_t)-1;
		int fd, i;

		fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (!peer_allowed(fd, &uid)) {
			logmsg(PM_LOG_NOTICE, "control: refused a client with "
			    "uid %ld", (long)uid);
			refuse(fd, "error permission denied\n");
			continue;
		}
		for (i = 0; i < CTL_MAX_CLIENTS; i++)
			if (m->clients[i].fd < 0)
				break;
		if (i == CTL_MAX_CLIENTS) {
			refuse(fd, "error too many clients\n");
			continue;
		}
		memset(&m->clients[i], 0, sizeof(m->clients[i]));
		/* The request buffer exists only while a client does. */
		if ((m->clients[i].in = malloc(PROTO_REQUEST_MAX)) == NULL) {
			refuse(fd, "error out of memory\n");
			continue;
		}
		m->clients[i].fd = fd;
		m->clients[i].deadline = mono_ns() + CTL_CLIENT_NS;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = EV_DATA(EV_CLIENT, i);
		if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			drop(m, i);
	}
}

void
control_event(struct master *m, int i, uint32_t events)
{
	struct client *c = &m->clients[i];

	if (i < 0 || i >= CTL_MAX_CLIENTS || c->fd < 0)
		return;
	if (c->replying) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			flush_out(m, i);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		read_request(m, i);
}

void
control_expire(struct master *m, int64_t now)
{
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct client *c = &m->clients[i];

		if (c->fd >= 0 && c->deadline != 0 && c->deadline <= now)
			drop(m, i);
	}
}

int64_t
control_next_deadline(const struct master *m)
{
	int64_t next = 0;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		const struct client *c = &m->clients[i];

		if (c->fd >= 0 && c->deadline != 0 &&
		    (next == 0 || c->deadline < next))
			next = c->deadline;
	}
	return next;
}
