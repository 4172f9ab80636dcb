/*
 * scrape.c - one status request to each of many masters, all in flight at
 * once under one deadline: non-blocking connections on their NAME.sock,
 * read as poll() says, so that a master that is slow, hung or flooded
 * holds up nobody.  What each answered becomes a status row (status.h);
 * a master that died or did not answer becomes a row saying so.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "msg.h"
#include "scrape.h"
#include "util.h"

/* Ends request r in state st, with why it failed (when it did). */
static void
finish(struct scrape *sc, struct scrape_req *r, enum scrape_state st,
    const char *why)
{
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	if (r->state == SCRAPE_WAITING)
		sc->waiting--;
	r->state = st;
	if (why != NULL)
		copy_str(r->err, why, sizeof(r->err));
}

/*
 * Connects to t's socket without waiting and sends req: the master
 * answers once the whole line is in and our side is shut.
 */
static void
send_request(struct scrape *sc, struct scrape_req *r, const char *req)
{
	struct sockaddr_un sa;
	char line[PROTO_REQUEST_MAX + 1];
	size_t len;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (rundir_path(sa.sun_path, sizeof(sa.sun_path), r->t->run_dir,
	    r->t->title, ".sock") < 0) {
		copy_str(r->err, "socket path too long", sizeof(r->err));
		r->state = SCRAPE_FAILED;
		return;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) < 0) {
		snprintf(r->err, sizeof(r->err), "socket: %s", strerror(errno));
		r->state = SCRAPE_FAILED;
		return;
	}
	/* A Unix socket connects at once or not at all (EAGAIN: backlog). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		/* Gone between the lock and the socket: a master stopping. */
		if (e == ENOENT || e == ECONNREFUSED) {
			r->state = SCRAPE_ABSENT;
			return;
		}
		if (e == EAGAIN)
			copy_str(r->err, "the master takes no connection (its "
			    "backlog is full)", sizeof(r->err));
		else
			snprintf(r->err, sizeof(r->err), "%s: %s", sa.sun_path,
			    strerror(e));
		r->state = SCRAPE_FAILED;
		return;
	}
	len = (size_t)snprintf(line, sizeof(line), "%s\n", req);
	if (len >= sizeof(line) || write(fd, line, len) != (ssize_t)len) {
		snprintf(r->err, sizeof(r->err), "sending the request: %s",
		    len >= sizeof(line) ? "too long" : strerror(errno));
		close(fd);
		r->state = SCRAPE_FAILED;
		return;
	}
	shutdown(fd, SHUT_WR);
	r->fd = fd;
	r->state = SCRAPE_WAITING;
	sc->waiting++;
}

int
scrape_begin(struct scrape *sc, const struct cli *cli, const char *req,
    int timeout_ms)
{
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->deadline = mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
	if ((r = targets_collect(cli, &sc->ts)) != 0)
		return r;
	if (sc->ts.n > 0 &&
	    (sc->rq = calloc(sc->ts.n, sizeof(*sc->rq))) == NULL) {
		targets_free(&sc->ts);
		errmsg("out of memory");
		return EXIT_RUNTIME;
	}
	sc->n = sc->ts.n;
	for (size_t i = 0; i < sc->n; i++) {
		struct scrape_req *q = &sc->rq[i];

		q->t = &sc->ts.v[i];
		q->fd = -1;
		switch (target_find(q->t)) {
		case 1:
			send_request(sc, q, req);
			break;
		case 0:
			q->state = q->t->dead ? SCRAPE_DEAD : SCRAPE_ABSENT;
			break;
		default:
			copy_str(q->err, "its pid file cannot be read",
			    sizeof(q->err));
			q->state = SCRAPE_FAILED;
			break;
		}
	}
	return 0;
}

int
scrape_pollfd(const struct scrape *sc, size_t i, struct pollfd *pfd)
{
	if (i >= sc->n || sc->rq[i].state != SCRAPE_WAITING)
		return 0;
	pfd->fd = sc->rq[i].fd;
	pfd->events = POLLIN;
	pfd->revents = 0;
	return 1;
}

void
scrape_io(struct scrape *sc, size_t i, short revents)
{
	struct scrape_req *r = &sc->rq[i];
	char chunk[65536];

	if (r->state != SCRAPE_WAITING || revents == 0)
		return;
	for (;;) {
		ssize_t got = read(r->fd, chunk, sizeof(chunk));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return;
		/* A reset after the answer arrived ends the answer. */
		if (got == 0 || (got < 0 && errno == ECONNRESET &&
		    r->reply.len > 0)) {
			finish(sc, r, r->reply.len > 0 ? SCRAPE_ANSWERED :
			    SCRAPE_FAILED, r->reply.len > 0 ? NULL :
			    "the master closed the connection without a reply");
			return;
		}
		if (got < 0) {
			finish(sc, r, SCRAPE_FAILED, strerror(errno));
			return;
		}
		buf_add(&r->reply, chunk, (size_t)got);
		if (r->reply.len > PROTO_REPLY_MAX || r->reply.oom) {
			finish(sc, r, SCRAPE_FAILED, "reply too large");
			return;
		}
	}
}

void
scrape_expire(struct scrape *sc, int64_t now)
{
	if (now < sc->deadline)
		return;
	for (size_t i = 0; i < sc->n; i++)
		if (sc->rq[i].state == SCRAPE_WAITING)
			finish(sc, &sc->rq[i], SCRAPE_FAILED,
			    "no reply in time");
}

void
scrape_wait(struct scrape *sc)
{
	struct pollfd *pfd;
	size_t *which;

	pfd = calloc(sc->n + 1, sizeof(*pfd));
	which = calloc(sc->n + 1, sizeof(*which));
	while (sc->waiting > 0 && pfd != NULL && which != NULL) {
		int64_t left = sc->deadline - mono_ns();
		size_t np = 0;
		int r;

		if (left <= 0)
			break;
		for (size_t i = 0; i < sc->n; i++)
			if (scrape_pollfd(sc, i, &pfd[np]))
				which[np++] = i;
		r = poll(pfd, np, (int)((left + NS_PER_MS - 1) / NS_PER_MS));
		if (r < 0 && errno != EINTR)
			break;
		for (size_t k = 0; r > 0 && k < np; k++)
			scrape_io(sc, which[k], pfd[k].revents);
	}
	free(pfd);
	free(which);
	/* Whatever is left waiting now fails, out of time or of memory. */
	sc->deadline = 0;
	scrape_expire(sc, mono_ns());
}

/*
 * The row of a master that gave no reply: its name, the pid its pid file
 * names, the state, and its start (the pid file's time).  0 or -1.
 */
static int
bare_row(const struct target *t, const char *state, struct status_master *sm)
{
	char path[RUNDIR_PATH_MAX], err[64];
	struct buf b = { 0 };
	struct stat st;
	int r;

	buf_printf(&b, "master");
	status_put_text(&b, SK_NAME, t->title);
	if (t->pid > 0)
		status_put_num(&b, SK_PID, t->pid);
	status_put_text(&b, SK_TITLE, t->title);
	status_put_text(&b, SK_STATE, state);
	status_put_num(&b, SK_COUNT, 0);
	if (rundir_path(path, sizeof(path), t->run_dir, t->title,
	    ".pid") == 0 && stat(path, &st) == 0)
		status_put_num(&b, SK_START_MS, (long long)st.st_mtim.tv_sec *
		    1000 + st.st_mtim.tv_nsec / 1000000);
	status_put_text(&b, SK_RUN_DIR, t->run_dir);
	buf_printf(&b, "\nok\n");
	r = b.p != NULL && !b.oom ? status_parse(b.p, sm, err, sizeof(err)) :
	    -1;
	buf_free(&b);
	return r;
}

int
scrape_rows(struct scrape *sc, struct status_master **ms, size_t *n)
{
	struct status_master *v;
	char err[256];

	*ms = NULL;
	*n = 0;
	if (sc->n == 0)
		return 0;
	if ((v = calloc(sc->n, sizeof(*v))) == NULL)
		return -1;
	for (size_t i = 0; i < sc->n; i++) {
		struct scrape_req *r = &sc->rq[i];

		if (r->state == SCRAPE_ANSWERED &&
		    status_parse(r->reply.p, &v[*n], err, sizeof(err)) < 0) {
			copy_str(r->err, err, sizeof(r->err));
			r->state = SCRAPE_FAILED;
		}
		if (r->state == SCRAPE_ANSWERED ||
		    (r->state == SCRAPE_DEAD &&
		    bare_row(r->t, "dead", &v[*n]) == 0) ||
		    (r->state == SCRAPE_FAILED &&
		    bare_row(r->t, "unreachable", &v[*n]) == 0))
			(*n)++;
	}
	if (*n == 0) {
		free(v);
		v = NULL;
	}
	*ms = v;
	return 0;
}

void
scrape_end(struct scrape *sc)
{
	for (size_t i = 0; i < sc->n; i++) {
		if (sc->rq[i].fd >= 0)
			close(sc->rq[i].fd);
		buf_free(&sc->rq[i].reply);
	}
	free(sc->rq);
	targets_free(&sc->ts);
	memset(sc, 0, sizeof(*sc));
}
