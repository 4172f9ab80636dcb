/*
 * exporter.c - "pmhost exporter": Prometheus metrics over HTTP for every
 * master of a run dir, from a process of its own, so that no master ever
 * speaks HTTP.  One poll loop and nothing that blocks: connections are
 * read and written as poll() says, and a GET /metrics asks every master
 * at once (scrape.c); requests that come while a scrape runs share its
 * answer.  What a client can hold is bounded: its request's size, its
 * connection's time, and the number of connections served together.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "msg.h"
#include "scrape.h"
#include "status.h"
#include "util.h"

#define REQUEST_MAX	8192	/* request line and headers */
#define CONN_MAX	16	/* connections served together */
#define CONN_TIME_MS	5000	/* a connection's whole life */
#define GIVE_WAY_MS	1000	/* without a whole request by then, a
				   connection gives way to a newcomer */
#define LINGER_MS	1000	/* reading what follows our answer */
#define SCRAPE_TIME_MS	2000	/* masters' time to answer */
#define ACCEPT_PAUSE_MS	100	/* out of descriptors: try again then */

/* Where a connection is: from the request to the close. */
enum conn_phase {
	CONN_FREE,
	CONN_READ,		/* reading the request */
	CONN_WAIT,		/* waiting for the masters' answers */
	CONN_WRITE,		/* writing the response */
	CONN_LINGER		/* answered; reading to EOF before closing, so
				   that unread input does not reset it */
};

struct conn {
	enum conn_phase	 phase;
	int		 fd;
	int64_t		 since;		/* accepted, mono ns */
	int64_t		 deadline;
	int		 head;		/* HEAD: the headers only */
	int		 probation;	/* let in by closing another: gives
					   way at once while it sends nothing */
	size_t		 inlen;
	char		 in[REQUEST_MAX];
	struct buf	 out;
	size_t		 off;		/* of out, written */
};

struct exporter {
	int		 lfd;
	int		 sigfd;
	int		 nconns;
	int		 scraping;
	int64_t		 accept_at;	/* 0, or when accepting resumes */
	struct scrape	 sc;
	struct cli	 every;		/* names no task: all of the run dir */
	struct pollfd	*pfd;		/* the loop's, grown as needed */
	size_t		*which;		/* the connection or request of each */
	size_t		 pfd_cap;
	char		 run_dir[RUNDIR_PATH_MAX];
	struct conn	 conns[CONN_MAX];
};

/* How a request is answered. */
enum route {
	ROUTE_METRICS,
	ROUTE_INDEX,
	ROUTE_BAD,		/* 400 */
	ROUTE_NOT_FOUND,	/* 404 */
	ROUTE_METHOD		/* 405 */
};

static const char metrics_type[] = "text/plain; version=0.0.4; charset=utf-8";
static const char text_type[] = "text/plain; charset=utf-8";

/* The reason phrase of the status codes we send. */
static const char *
reason_phrase(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	default: return "Error";
	}
}

/*
 * The end of the request's headers in in[0..len) (a blank line, CRLF or
 * bare LF), or 0 while it has not come.
 */
static size_t
headers_end(const char *in, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (in[i] != '\n')
			continue;
		if (in[i + 1] == '\n')
			return i + 2;
		if (in[i + 1] == '\r' && i + 2 < len && in[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/*
 * The route of a request line "METHOD TARGET HTTP/1.x": GET (and HEAD,
 * which HTTP asks every server to take with GET) of / or /metrics; a
 * query string is ignored.
 */
static enum route
route_request(const char *in, size_t len, int *head)
{
	char line[REQUEST_MAX + 1], *method, *target, *version, *save = NULL;
	size_t n = 0;
	int known;

	while (n < len && in[n] != '\r' && in[n] != '\n')
		n++;
	memcpy(line, in, n);
	line[n] = '\0';
	if ((method = strtok_r(line, " ", &save)) == NULL ||
	    (target = strtok_r(NULL, " ", &save)) == NULL ||
	    (version = strtok_r(NULL, " ", &save)) == NULL ||
	    strtok_r(NULL, " ", &save) != NULL ||
	    strncmp(version, "HTTP/1.", 7) != 0 || target[0] != '/')
		return ROUTE_BAD;
	target[strcspn(target, "?#")] = '\0';
	known = strcmp(target, "/metrics") == 0 || strcmp(target, "/") == 0;
	if (!known)
		return ROUTE_NOT_FOUND;
	*head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !*head)
		return ROUTE_METHOD;
	return strcmp(target, "/") == 0 ? ROUTE_INDEX : ROUTE_METRICS;
}

/* Makes c's response and starts writing it. */
static void
respond(struct conn *c, int code, const char *type, const char *body,
    size_t len, int64_t now)
{
	buf_free(&c->out);
	buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", code,
	    reason_phrase(code), type, len,
	    code == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!c->head)
		buf_add(&c->out, body, len);
	c->off = 0;
	c->phase = CONN_WRITE;
	/* Late answers (408) get a moment to be written. */
	if (c->deadline < now + LINGER_MS * NS_PER_MS)
		c->deadline = now + LINGER_MS * NS_PER_MS;
}

/* A short text response. */
static void
respond_text(struct conn *c, int code, const char *text, int64_t now)
{
	respond(c, code, text_type, text, strlen(text), now);
}

static void
conn_close(struct exporter *ex, struct conn *c)
{
	close(c->fd);
	buf_free(&c->out);
	c->fd = -1;
	c->phase = CONN_FREE;
	ex->nconns--;
}

/* Acts on a request whose headers are all in. */
static void
conn_request(struct exporter *ex, struct conn *c, int64_t now)
{
	char page[RUNDIR_PATH_MAX + 256];

	switch (route_request(c->in, c->inlen, &c->head)) {
	case ROUTE_METRICS:
		c->phase = CONN_WAIT;
		break;
	case ROUTE_INDEX:
		snprintf(page, sizeof(page), "pmhost exporter\n\nThe metrics "
		    "of every master in run dir %s are at /metrics.\n",
		    ex->run_dir);
		respond_text(c, 200, page, now);
		break;
	case ROUTE_NOT_FOUND:
		respond_text(c, 404, "not found: the metrics are at /metrics\n",
		    now);
		break;
	case ROUTE_METHOD:
		respond_text(c, 405, "method not allowed: only GET (and "
		    "HEAD)\n", now);
		break;
	default:
		respond_text(c, 400, "bad request\n", now);
		break;
	}
}

/* Reads what c sent: its request, or (lingering) whatever follows it. */
static void
conn_read(struct exporter *ex, struct conn *c, int64_t now)
{
	char sink[4096];
	ssize_t got;

	for (;;) {
		if (c->phase == CONN_LINGER)
			got = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		else
			got = recv(c->fd, c->in + c->inlen, sizeof(c->in) -
			    c->inlen, MSG_DONTWAIT);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* EOF or an error: the client is done, or gone. */
		if (got <= 0) {
			conn_close(ex, c);
			return;
		}
		if (c->phase == CONN_LINGER)
			continue;
		c->inlen += (size_t)got;
		if (headers_end(c->in, c->inlen) > 0) {
			conn_request(ex, c, now);
			return;
		}
		if (c->inlen == sizeof(c->in)) {
			respond_text(c, 431, "request too large\n", now);
			return;
		}
	}
}

/* Writes what is left of c's response; then lingers. */
static void
conn_write(struct exporter *ex, struct conn *c, int64_t now)
{
	while (c->off < c->out.len) {
		ssize_t w = send(c->fd, c->out.p + c->off, c->out.len - c->off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w < 0) {
			conn_close(ex, c);
			return;
		}
		c->off += (size_t)w;
	}
	shutdown(c->fd, SHUT_WR);
	c->phase = CONN_LINGER;
	if (c->deadline > now + LINGER_MS * NS_PER_MS)
		c->deadline = now + LINGER_MS * NS_PER_MS;
	conn_read(ex, c, now);
}

/* Runs one step of c as far as it can go without waiting. */
static void
conn_step(struct exporter *ex, struct conn *c, int64_t now)
{
	if (c->phase == CONN_READ || c->phase == CONN_LINGER)
		conn_read(ex, c, now);
	if (c->phase == CONN_WRITE)
		conn_write(ex, c, now);
}

/*
 * The connection to close for a newcomer when all are taken: of those
 * still without a whole request, the one that has waited longest if that
 * is GIVE_WAY_MS, else one let in on those terms that sent nothing yet
 * (so that a queue of idle connections passes through one place instead
 * of holding each for GIVE_WAY_MS).  NULL: none gives way.
 */
static struct conn *
give_way(struct exporter *ex, int64_t now)
{
	struct conn *old = NULL, *probation = NULL;

	for (int i = 0; i < CONN_MAX; i++) {
		struct conn *c = &ex->conns[i];

		if (c->phase != CONN_READ)
			continue;
		if (c->since + GIVE_WAY_MS * NS_PER_MS <= now &&
		    (old == NULL || c->since < old->since))
			old = c;
		else if (c->probation && c->inlen == 0 && probation == NULL)
			probation = c;
	}
	return old != NULL ? old : probation;
}

/* Takes the connections waiting to be accepted, as long as there is room. */
static void
accept_all(struct exporter *ex, int64_t now)
{
	for (;;) {
		struct conn *c = NULL, *gone = NULL;
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd;

		if (ex->nconns == CONN_MAX) {
			struct pollfd p = { .fd = ex->lfd, .events = POLLIN };

			/* Room is made only for a connection that is there. */
			if ((gone = give_way(ex, now)) == NULL ||
			    poll(&p, 1, 0) <= 0)
				return;
			conn_close(ex, gone);
		}
		fd = accept4(ex->lfd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				errmsg("exporter: accept: %s", strerror(errno));
				ex->accept_at = now + ACCEPT_PAUSE_MS *
				    NS_PER_MS;
			}
			/* EAGAIN, or a connection reset before we took it. */
			return;
		}
		for (int i = 0; i < CONN_MAX && c == NULL; i++)
			if (ex->conns[i].phase == CONN_FREE)
				c = &ex->conns[i];
		if (c == NULL) {	/* cannot be: nconns < CONN_MAX */
			close(fd);
			return;
		}
		c->fd = fd;
		c->phase = CONN_READ;
		c->since = now;
		c->deadline = now + CONN_TIME_MS * NS_PER_MS;
		c->inlen = 0;
		c->head = 0;
		c->probation = gone != NULL;
		ex->nconns++;
		/* A request is usually all there by now. */
		conn_read(ex, c, now);
	}
}

/* Asks every master of the run dir for its status, if nobody has yet. */
static void
scrape_start(struct exporter *ex, int64_t now)
{
	if (ex->scraping)
		return;
	if (scrape_begin(&ex->sc, &ex->every, "status", SCRAPE_TIME_MS) != 0) {
		for (int i = 0; i < CONN_MAX; i++)
			if (ex->conns[i].phase == CONN_WAIT)
				respond_text(&ex->conns[i], 500, "cannot read "
				    "the run dir (see the exporter's log)\n",
				    now);
		return;
	}
	ex->scraping = 1;
}

/* The scrape is over: logs who failed, and answers everyone waiting. */
static void
scrape_finish(struct exporter *ex, int64_t now)
{
	struct status_master *ms;
	struct buf body = { 0 };
	size_t n;

	for (size_t i = 0; i < ex->sc.n; i++)
		if (ex->sc.rq[i].state == SCRAPE_FAILED)
			errmsg("exporter: %s: %s", ex->sc.rq[i].t->title,
			    ex->sc.rq[i].err);
	if (scrape_rows(&ex->sc, &ms, &n) == 0) {
		status_prometheus(ms, n, &body);
		for (size_t i = 0; i < n; i++)
			status_free(&ms[i]);
		free(ms);
	} else {
		body.oom = 1;
	}
	scrape_end(&ex->sc);
	ex->scraping = 0;
	if (body.oom)
		errmsg("exporter: out of memory");
	for (int i = 0; i < CONN_MAX; i++) {
		struct conn *c = &ex->conns[i];

		if (c->phase != CONN_WAIT)
			continue;
		if (body.oom)
			respond_text(c, 500, "out of memory\n", now);
		else
			respond(c, 200, metrics_type, body.p != NULL ? body.p :
			    "", body.len, now);
		conn_write(ex, c, now);
	}
	buf_free(&body);
}

/* Closes (with a 408 when it sent no request) what has run out of time. */
static void
expire(struct exporter *ex, int64_t now)
{
	for (int i = 0; i < CONN_MAX; i++) {
		struct conn *c = &ex->conns[i];

		if (c->phase == CONN_FREE || c->deadline > now)
			continue;
		if (c->phase == CONN_READ) {
			respond_text(c, 408, "request timeout\n", now);
			conn_write(ex, c, now);
		} else {
			conn_close(ex, c);
		}
	}
	if (ex->scraping)
		scrape_expire(&ex->sc, now);
}

/* The poll() timeout: up to the nearest deadline; -1 for none. */
static int
next_timeout(const struct exporter *ex, int64_t now)
{
	int64_t next = 0;

	for (int i = 0; i < CONN_MAX; i++) {
		const struct conn *c = &ex->conns[i];
		int64_t t = c->deadline;

		if (c->phase == CONN_FREE)
			continue;
		/* Full: when the oldest idle one may give way. */
		if (c->phase == CONN_READ && ex->nconns == CONN_MAX &&
		    c->since + GIVE_WAY_MS * NS_PER_MS < t)
			t = c->since + GIVE_WAY_MS * NS_PER_MS;
		if (next == 0 || t < next)
			next = t;
	}
	if (ex->scraping && (next == 0 || ex->sc.deadline < next))
		next = ex->sc.deadline;
	if (ex->accept_at != 0 && (next == 0 || ex->accept_at < next))
		next = ex->accept_at;
	if (next == 0)
		return -1;
	return next <= now ? 0 : (int)((next - now + NS_PER_MS - 1) /
	    NS_PER_MS);
}

/*
 * Binds and listens on the --listen address; the socket, or -1 after
 * printing why (*status: the exit status).  Its address as a URL's host
 * and port goes into where.
 */
static int
listen_on(const char *value, char *where, size_t size, int *status)
{
	struct addrinfo hints, *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[CLI_HOST_MAX], port[16], h[NI_MAXHOST], s[NI_MAXSERV];
	long portnum;
	int fd = -1, e = 0, one = 1;

	*status = EXIT_USAGE;
	if (cli_listen_split(value, host, sizeof(host), &portnum) < 0) {
		errmsg("exporter: --listen %s: not ADDR:PORT", value);
		return -1;
	}
	snprintf(port, sizeof(port), "%ld", portnum);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		errmsg("exporter: --listen %s: %s", value, gai_strerror(e));
		return -1;
	}
	*status = EXIT_RUNTIME;
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		/* A restarted exporter takes its port back at once. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, SOMAXCONN) < 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		errmsg("exporter: --listen %s: %s", value, strerror(e));
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sslen, h, sizeof(h), s,
	    sizeof(s), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(where, size, "%s:%s", host, port);
	else
		snprintf(where, size, ss.ss_family == AF_INET6 ? "[%s]:%s" :
		    "%s:%s", h, s);
	return fd;
}

/* TERM and INT, read from a descriptor in the loop; -1 on error. */
static int
signals_open(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/*
 * --rundir DIR is the run dir every command resolves, as $PMHOST_RUNDIR
 * would make it (an absolute path: relative to where we started).
 */
static int
set_run_dir(struct exporter *ex, const char *dir)
{
	char cwd[RUNDIR_PATH_MAX], abs[RUNDIR_PATH_MAX], err[512];

	if (dir != NULL) {
		if (dir[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL) {
			errmsg("exporter: --rundir %s: %s", dir,
			    strerror(errno));
			return -1;
		}
		if ((size_t)snprintf(abs, sizeof(abs), "%s%s%s", dir[0] == '/' ?
		    "" : cwd, dir[0] == '/' ? "" : "/", dir) >= sizeof(abs) ||
		    setenv("PMHOST_RUNDIR", abs, 1) < 0) {
			errmsg("exporter: --rundir %s: path too long", dir);
			return -1;
		}
	}
	if (rundir_resolve(NULL, ex->run_dir, sizeof(ex->run_dir), err,
	    sizeof(err)) < 0) {
		errmsg("exporter: %s", err);
		return -1;
	}
	return 0;
}

/* Room for n pollfds (and as many indexes) in ex; 0 or -1. */
static int
pollfds_reserve(struct exporter *ex, size_t n)
{
	struct pollfd *p;
	size_t *w;

	if (n <= ex->pfd_cap)
		return 0;
	if ((p = realloc(ex->pfd, n * sizeof(*p))) == NULL)
		return -1;
	ex->pfd = p;
	if ((w = realloc(ex->which, n * sizeof(*w))) == NULL)
		return -1;
	ex->which = w;
	ex->pfd_cap = n;
	return 0;
}

/* One round of the loop: waits for anything, then acts on all of it. */
static int
exporter_step(struct exporter *ex)
{
	struct signalfd_siginfo si;
	struct pollfd *pfd;
	size_t *which, np = 0, first_scrape;
	int64_t now = mono_ns();
	int accepting, r;

	if (pollfds_reserve(ex, 2 + CONN_MAX + (ex->scraping ? ex->sc.n : 0))
	    < 0) {
		errmsg("exporter: out of memory");
		return -1;
	}
	pfd = ex->pfd;
	which = ex->which;
	if (ex->accept_at != 0 && ex->accept_at <= now)
		ex->accept_at = 0;
	accepting = ex->accept_at == 0 && (ex->nconns < CONN_MAX ||
	    give_way(ex, now) != NULL);
	pfd[np++] = (struct pollfd){ .fd = ex->sigfd, .events = POLLIN };
	pfd[np++] = (struct pollfd){ .fd = accepting ? ex->lfd : -1,
	    .events = POLLIN };
	for (int i = 0; i < CONN_MAX; i++) {
		struct conn *c = &ex->conns[i];
		short ev = c->phase == CONN_READ || c->phase == CONN_LINGER ?
		    POLLIN : c->phase == CONN_WRITE ? POLLOUT : 0;

		if (ev == 0)
			continue;
		which[np] = (size_t)i;
		pfd[np++] = (struct pollfd){ .fd = c->fd, .events = ev };
	}
	first_scrape = np;
	for (size_t i = 0; ex->scraping && i < ex->sc.n; i++)
		if (scrape_pollfd(&ex->sc, i, &pfd[np]))
			which[np++] = i;
	r = poll(pfd, np, next_timeout(ex, now));
	if (r < 0 && errno != EINTR) {
		errmsg("exporter: poll: %s", strerror(errno));
		return -1;
	}
	now = mono_ns();
	if (r > 0 && (pfd[0].revents & POLLIN) &&
	    read(ex->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		return 1;
	for (size_t k = first_scrape; r > 0 && k < np; k++)
		scrape_io(&ex->sc, which[k], pfd[k].revents);
	for (size_t k = 2; r > 0 && k < first_scrape; k++) {
		struct conn *c = &ex->conns[which[k]];

		if (pfd[k].revents != 0 && c->phase != CONN_FREE)
			conn_step(ex, c, now);
	}
	if (r > 0 && pfd[1].revents != 0)
		accept_all(ex, now);
	expire(ex, now);
	for (int i = 0; i < CONN_MAX; i++)
		if (ex->conns[i].phase == CONN_WAIT)
			scrape_start(ex, now);
	if (ex->scraping && ex->sc.waiting == 0)
		scrape_finish(ex, now);
	return 0;
}

int
cmd_exporter(const struct cli *cli)
{
	struct exporter *ex;
	char where[NI_MAXHOST + NI_MAXSERV + 4];
	int status = EXIT_OK, r;

	if ((ex = calloc(1, sizeof(*ex))) == NULL) {
		errmsg("out of memory");
		return EXIT_RUNTIME;
	}
	ex->sigfd = -1;
	for (int i = 0; i < CONN_MAX; i++)
		ex->conns[i].fd = -1;
	/* A struct cli naming no task: every master of the run dir. */
	ex->every = *cli;
	ex->every.title = NULL;
	ex->every.config = NULL;
	if (set_run_dir(ex, cli->run_dir) < 0) {
		free(ex);
		return EXIT_USAGE;
	}
	if ((ex->lfd = listen_on(cli->listen, where, sizeof(where), &r)) <
	    0) {
		free(ex);
		return r;
	}
	if ((ex->sigfd = signals_open()) < 0) {
		errmsg("exporter: signalfd: %s", strerror(errno));
		status = EXIT_RUNTIME;
	} else {
		errmsg("exporter: listening on http://%s/metrics (run dir %s)",
		    where, ex->run_dir);
	}
	while (ex->sigfd >= 0 && (r = exporter_step(ex)) == 0)
		;
	if (ex->sigfd >= 0 && r < 0)
		status = EXIT_RUNTIME;
	for (int i = 0; i < CONN_MAX; i++)
		if (ex->conns[i].phase != CONN_FREE)
			conn_close(ex, &ex->conns[i]);
	if (ex->scraping)
		scrape_end(&ex->sc);
	if (ex->sigfd >= 0)
		close(ex->sigfd);
	close(ex->lfd);
	free(ex->pfd);
	free(ex->which);
	free(ex);
	return status;
}
