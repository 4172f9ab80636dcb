/*
 * control.c - the master's side of NAME.sock.  Clients are served from
 * the one event loop with non-blocking I/O and a deadline each: a client
 * that is slow, oversized, malformed or gone costs a closed descriptor,
 * never a blocked or crashed master.  Peers must have the master's uid or
 * be root (SO_PEERCRED).  A request is bound to its connection: one whose
 * client has hung up before the master acts on it is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "control.h"
#include "evtag.h"
#include "log.h"
#include "util.h"

int
control_open(struct control *ctl, int epfd, const char *dir,
    const char *name)
{
	struct sockaddr_un sa;
	struct epoll_event ev;
	mode_t old;
	int fd;

	memset(ctl, 0, sizeof(*ctl));
	ctl->epfd = epfd;
	ctl->listen_fd = -1;
	/* Held so that a full descriptor table can still answer a client. */
	ctl->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		ctl->clients[i].fd = -1;
	if (rundir_path(ctl->sock_path, sizeof(ctl->sock_path), dir, name,
	    ".sock") < 0 || strlen(ctl->sock_path) >= sizeof(sa.sun_path)) {
		logmsg(PM_LOG_ERROR, "control socket %s: path too long",
		    ctl->sock_path);
		ctl->sock_path[0] = '\0';
		return -1;
	}
	/*
	 * Bound under a temporary name and renamed once listening, so that
	 * NAME.sock never exists without a listener behind it.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%ld",
	    ctl->sock_path, (long)getpid()) >= sizeof(sa.sun_path))
		copy_str(sa.sun_path, ctl->sock_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		logmsg(PM_LOG_ERROR, "socket: %s", strerror(errno));
		ctl->sock_path[0] = '\0';
		return -1;
	}
	/* We hold the pid file lock: a socket file left here is stale. */
	unlink(sa.sun_path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0 || rename(sa.sun_path, ctl->sock_path) < 0) {
		umask(old);
		logmsg(PM_LOG_ERROR, "control socket %s: %s", ctl->sock_path,
		    strerror(errno));
		unlink(sa.sun_path);
		close(fd);
		ctl->sock_path[0] = '\0';
		return -1;
	}
	umask(old);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = EV_DATA(EV_LISTEN, 0);
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		logmsg(PM_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
		close(fd);
		return -1;
	}
	ctl->listen_fd = fd;
	return 0;
}

/* Drops a client: closes its socket, frees its buffers. */
static void
drop(struct control *ctl, int i)
{
	struct client *c = &ctl->clients[i];

	if (c->fd < 0)
		return;
	close(c->fd);
	free(c->in);
	buf_free(&c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void
control_close(struct control *ctl)
{
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		drop(ctl, i);
	if (ctl->listen_fd >= 0) {
		close(ctl->listen_fd);
		ctl->listen_fd = -1;
	}
	if (ctl->reserve_fd > 0)
		close(ctl->reserve_fd);
	ctl->reserve_fd = -1;
	if (ctl->sock_path[0] != '\0')
		unlink(ctl->sock_path);
	ctl->sock_path[0] = '\0';
}

/* Watches a client for input or for room to write its answer. */
static void
watch(struct control *ctl, int i, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = EV_DATA(EV_CLIENT, i);
	if (epoll_ctl(ctl->epfd, EPOLL_CTL_MOD, ctl->clients[i].fd, &ev) < 0)
		drop(ctl, i);
}

/* Writes what it can of a client's answer; drops it once all is sent. */
static void
flush_out(struct control *ctl, int i)
{
	struct client *c = &ctl->clients[i];

	while (c->outoff < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->outoff,
		    c->out.len - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			watch(ctl, i, EPOLLOUT);
			return;
		}
		if (n <= 0) {
			drop(ctl, i);
			return;
		}
		c->outoff += (size_t)n;
	}
	drop(ctl, i);
}

/* The client behind tok, or NULL if it has gone. */
static struct client *
token_client(struct control *ctl, struct reply_token tok)
{
	struct client *c;

	if (tok.client < 0 || tok.client >= CTL_MAX_CLIENTS)
		return NULL;
	c = &ctl->clients[tok.client];
	return c->fd >= 0 && c->serial == tok.serial ? c : NULL;
}

/* Queues a final line for client i and starts sending. */
static void
reply_line(struct control *ctl, int i, int ok, const char *text)
{
	struct client *c = &ctl->clients[i];
	size_t start = c->out.len;

	buf_printf(&c->out, "%s%s%s", ok ? "ok" : "error",
	    text[0] != '\0' ? " " : "", text);
	/* The answer is one line: no newline may split it. */
	for (size_t k = start; k < c->out.len; k++)
		if (c->out.p[k] == '\n' || c->out.p[k] == '\r')
			c->out.p[k] = ' ';
	buf_add(&c->out, "\n", 1);
	c->replying = 1;
	c->deadline = mono_ns() + CTL_CLIENT_NS;
	if (c->out.oom) {
		drop(ctl, i);
		return;
	}
	flush_out(ctl, i);
}

void
control_answer(struct control *ctl, struct reply_token tok,
    const struct buf *body, int ok, const char *text)
{
	struct client *c = token_client(ctl, tok);

	if (c == NULL)
		return;
	if (body != NULL && body->len > 0)
		buf_add(&c->out, body->p, body->len);
	reply_line(ctl, tok.client, ok, text);
}

void
control_defer(struct control *ctl, struct reply_token tok)
{
	struct client *c = token_client(ctl, tok);

	if (c != NULL)
		c->deadline = 0;
}

/* Has the peer closed its socket altogether (not just its sending side)? */
static int
peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

int
control_waiting(struct control *ctl, struct reply_token tok)
{
	struct client *c = token_client(ctl, tok);

	return c != NULL && !peer_gone(c->fd);
}

/* Splits the request's line into verb and argument. */
static void
split_request(struct request *rq)
{
	size_t n;

	n = strcspn(rq->line, " ");
	rq->verb[0] = '\0';
	if (n < sizeof(rq->verb)) {
		memcpy(rq->verb, rq->line, n);
		rq->verb[n] = '\0';
	}
	rq->arg = rq->line[n] == ' ' ? rq->line + n + 1 : rq->line + n;
}

/* scale's N: 1 to maxWorkerNum's limit. */
static int
scale_arg(struct request *rq, char *err, size_t errlen)
{
	if (parse_long(rq->arg, 1, CONFIG_MAX_WORKERS, &rq->count) < 0) {
		snprintf(err, errlen, "scale: N must be an integer from 1 to "
		    "%d", CONFIG_MAX_WORKERS);
		return -1;
	}
	return 0;
}

/* status's optional "exits": each slot's last exits too (for --json). */
static int
status_arg(struct request *rq, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	rq->exits = strcmp(rq->arg, "exits") == 0;
	return 0;
}

/* The verbs whose argument means something; the others ignore theirs. */
static const struct {
	const char	*verb;
	int		(*parse)(struct request *rq, char *err, size_t errlen);
} verb_args[] = {
	{ "scale", scale_arg },
	{ "status", status_arg },
};

/*
 * The first 40 bytes of a request line, to quote in an answer: control
 * characters become '?', so that the answer stays one line that a
 * terminal shows as it is.
 */
static void
quote_line(const char *line, char out[41])
{
	size_t n;

	for (n = 0; n < 40 && line[n] != '\0'; n++)
		out[n] = (unsigned char)line[n] < 0x20 || line[n] == 0x7f ?
		    '?' : line[n];
	out[n] = '\0';
}

enum request_parse
control_parse(const char *in, size_t len, int eof, struct request *rq,
    char *err, size_t errlen)
{
	const char *nl = memchr(in, '\n', len);
	size_t n;

	memset(rq, 0, sizeof(*rq));
	rq->token = NO_CLIENT;
	/* The newline counts: a line fills at most PROTO_REQUEST_MAX. */
	if (nl == NULL ? len >= PROTO_REQUEST_MAX :
	    (size_t)(nl - in) >= PROTO_REQUEST_MAX) {
		snprintf(err, errlen, "request longer than %d bytes",
		    PROTO_REQUEST_MAX);
		return REQUEST_BAD;
	}
	if (nl == NULL && !eof)
		return REQUEST_MORE;
	if (nl == NULL) {
		snprintf(err, errlen, "incomplete request");
		return REQUEST_BAD;
	}
	n = (size_t)(nl - in);
	if (memchr(in, '\0', n) != NULL) {
		snprintf(err, errlen, "malformed request");
		return REQUEST_BAD;
	}
	/* One request per connection: more after it is refused whole. */
	if (n + 1 < len) {
		snprintf(err, errlen, "one request per connection");
		return REQUEST_BAD;
	}
	/* A line may end in CRLF, as telnet and nc -C send it. */
	if (n > 0 && in[n - 1] == '\r')
		n--;
	memcpy(rq->line, in, n);
	rq->line[n] = '\0';
	split_request(rq);
	rq->cmd = command_for_verb(rq->verb);
	if (rq->cmd == NULL || rq->cmd->serve == NULL) {
		char quoted[41];

		quote_line(rq->line, quoted);
		snprintf(err, errlen, "unknown request \"%s\" (expected "
		    "status, wakeup, scale N, restart or stop)", quoted);
		rq->cmd = NULL;
		return REQUEST_BAD;
	}
	for (size_t i = 0; i < nitems(verb_args); i++)
		if (strcmp(rq->cmd->verb, verb_args[i].verb) == 0 &&
		    verb_args[i].parse(rq, err, errlen) < 0)
			return REQUEST_BAD;
	return REQUEST_READY;
}

/* Reads from client i; 1 with *rq once a whole request is in. */
static int
read_request(struct control *ctl, int i, struct request *rq)
{
	struct client *c = &ctl->clients[i];
	enum request_parse r = REQUEST_MORE;
	char err[256];

	while (r == REQUEST_MORE) {
		ssize_t n;

		n = recv(c->fd, c->in + c->inlen, PROTO_REQUEST_MAX - c->inlen,
		    MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		/* Gone; a half-close after part of a line is answered. */
		if (n < 0 || (n == 0 && c->inlen == 0)) {
			drop(ctl, i);
			return 0;
		}
		c->inlen += (size_t)n;
		if (n > 0)
			c->last_active = mono_ns();
		r = control_parse(c->in, c->inlen, n == 0, rq, err,
		    sizeof(err));
	}
	if (r == REQUEST_BAD) {
		reply_line(ctl, i, 0, err);
		return 0;
	}
	/* Stop reading: one request per connection. */
	watch(ctl, i, 0);
	if (c->fd < 0)
		return 0;
	if (peer_gone(c->fd)) {
		logmsg(PM_LOG_NOTICE, "control: dropped request \"%.40s\": "
		    "its client has gone", rq->verb);
		drop(ctl, i);
		return 0;
	}
	c->replying = 1;
	rq->token.client = i;
	rq->token.serial = c->serial;
	return 1;
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

/*
 * Out of descriptors: the pending connection would stay in the backlog and
 * the listener readable, so give up the reserve descriptor, take the
 * connection, answer it, and take the reserve back.  Logged once a minute.
 * 1 if a connection was taken (there may be more), 0 if none was waiting.
 */
static int
shed(struct control *ctl, int err)
{
	int64_t now = mono_ns();
	int fd;

	if (ctl->emfile_logged == 0 || now - ctl->emfile_logged >
	    60 * NS_PER_SEC) {
		logmsg(PM_LOG_ERROR, "control: cannot take a client: %s; "
		    "refusing clients until descriptors are free",
		    strerror(err));
		ctl->emfile_logged = now;
	}
	if (ctl->reserve_fd >= 0)
		close(ctl->reserve_fd);
	/* cppcheck-suppress nullPointer ; accept4() takes NULL, NULL */
	fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		refuse(fd, "error the master is out of file descriptors\n");
	ctl->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd >= 0;
}

/*
 * A free client slot, or, with none, the slot of the longest-idle client
 * that has not sent a whole request, dropped for a new one: idle or
 * leaked connections never lock out stop or status.  -1 if every client
 * waits for an answer.
 */
static int
free_slot(struct control *ctl)
{
	int victim = -1;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		const struct client *c = &ctl->clients[i];

		if (c->fd < 0)
			return i;
		if (c->replying || c->deadline == 0)
			continue;	/* its request is being answered */
		if (victim < 0 ||
		    c->last_active < ctl->clients[victim].last_active)
			victim = i;
	}
	if (victim >= 0)
		drop(ctl, victim);
	return victim;
}

void
control_accept(struct control *ctl)
{
	/* A spare lost to a shortage comes back when it can. */
	if (ctl->reserve_fd < 0)
		ctl->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (;;) {
		struct epoll_event ev;
		struct client *c;
		uid_t uid = (uid_t)-1;
		int fd, i;

		/* cppcheck-suppress nullPointer ; accept4() takes NULL, NULL */
		fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			/* accept() fails so even with nothing waiting. */
			if (ctl->reserve_fd >= 0) {
				if (shed(ctl, errno))
					continue;
				return;
			}
			/* Nothing to shed: stop listening for a moment. */
			if (epoll_ctl(ctl->epfd, EPOLL_CTL_DEL, ctl->listen_fd,
			    NULL) == 0)
				ctl->paused_until = mono_ns() + NS_PER_SEC;
			ctl->reserve_fd = open("/dev/null", O_RDONLY |
			    O_CLOEXEC);
			return;
		}
		if (fd < 0)
			return;
		if (!peer_allowed(fd, &uid)) {
			logmsg(PM_LOG_NOTICE, "control: refused a client with "
			    "uid %ld", (long)uid);
			refuse(fd, "error permission denied\n");
			continue;
		}
		if ((i = free_slot(ctl)) < 0) {
			refuse(fd, "error too many clients\n");
			continue;
		}
		c = &ctl->clients[i];
		memset(c, 0, sizeof(*c));
		/* The request buffer exists only while a client does. */
		if ((c->in = malloc(PROTO_REQUEST_MAX)) == NULL) {
			c->fd = -1;
			refuse(fd, "error out of memory\n");
			continue;
		}
		c->fd = fd;
		c->serial = ++ctl->serials;
		c->deadline = mono_ns() + CTL_CLIENT_NS;
		c->last_active = mono_ns();
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = EV_DATA(EV_CLIENT, i);
		if (epoll_ctl(ctl->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			drop(ctl, i);
	}
}

int
control_event(struct control *ctl, int i, uint32_t events,
    struct request *rq)
{
	struct client *c;

	if (i < 0 || i >= CTL_MAX_CLIENTS || ctl->clients[i].fd < 0)
		return 0;
	c = &ctl->clients[i];
	if (c->replying) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			flush_out(ctl, i);
		return 0;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		return read_request(ctl, i, rq);
	return 0;
}

void
control_expire(struct control *ctl, int64_t now)
{
	if (ctl->paused_until != 0 && ctl->paused_until <= now) {
		struct epoll_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = EV_DATA(EV_LISTEN, 0);
		if (epoll_ctl(ctl->epfd, EPOLL_CTL_ADD, ctl->listen_fd,
		    &ev) == 0)
			ctl->paused_until = 0;
		else
			ctl->paused_until = now + NS_PER_SEC;
	}
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct client *c = &ctl->clients[i];

		if (c->fd >= 0 && c->deadline != 0 && c->deadline <= now)
			drop(ctl, i);
	}
}

int64_t
control_next_deadline(const struct control *ctl)
{
	int64_t next = ctl->paused_until;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		const struct client *c = &ctl->clients[i];

		if (c->fd >= 0 && c->deadline != 0 &&
		    (next == 0 || c->deadline < next))
			next = c->deadline;
	}
	return next;
}
