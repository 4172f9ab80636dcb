/*
 * proto.c - framing of the control protocol: text buffers, percent
 * encoding of record values, and the client's request/reply exchange.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"

/* Makes room for n more bytes (and a NUL); 0 or -1. */
int
buf_reserve(struct buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return -1;
	if (b->len + n + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	/* Once into the room there is; again only if it did not fit. */
	if (buf_reserve(b, 64) < 0)
		return;
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < room) {
		b->len += (size_t)n;
		return;
	}
	if (n < 0 || buf_reserve(b, (size_t)n) < 0) {
		b->p[b->len] = '\0';
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Bytes that cannot appear raw in a value. */
static int
needs_escape(unsigned char c)
{
	return c <= ' ' || c == '%' || c == '=' || c >= 0x7f;
}

/* " key=" */
static void
put_key(struct buf *b, const char *key)
{
	size_t n = strlen(key);

	if (buf_reserve(b, n + 2) < 0)
		return;
	b->p[b->len] = ' ';
	memcpy(b->p + b->len + 1, key, n);
	b->p[b->len + n + 1] = '=';
	b->len += n + 2;
	b->p[b->len] = '\0';
}

void
proto_put(struct buf *b, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";

	const unsigned char *s = (const unsigned char *)value;

	put_key(b, key);
	while (*s != '\0') {
		const unsigned char *run = s;
		char e[3];

		/* Plain bytes in one piece: status replies are large. */
		while (*s != '\0' && !needs_escape(*s))
			s++;
		if (s > run)
			buf_add(b, (const char *)run, (size_t)(s - run));
		if (*s == '\0')
			break;
		e[0] = '%';
		e[1] = hex[*s >> 4];
		e[2] = hex[*s & 15];
		buf_add(b, e, 3);
		s++;
	}
}

void
proto_put_int(struct buf *b, const char *key, long long v)
{
	char digits[24], *p = digits + sizeof(digits);
	unsigned long long u = v < 0 ? -(unsigned long long)v :
	    (unsigned long long)v;

	/* Without printf: a 10 000-worker status writes 300 000 of these. */
	put_key(b, key);
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	buf_add(b, p, (size_t)(digits + sizeof(digits) - p));
}

/* Value of a hex digit, or -1. */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
proto_decode(char *s)
{
	char *w = s;

	for (; *s; s++) {
		int hi, lo;

		if (*s == '%' && (hi = hexval(s[1])) >= 0 &&
		    (lo = hexval(s[2])) >= 0) {
			*w++ = (char)(hi << 4 | lo);
			s += 2;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

int
proto_parse(char *line, struct record *r)
{
	char *save = NULL, *tok;

	memset(r, 0, sizeof(*r));
	if ((r->type = strtok_r(line, " ", &save)) == NULL)
		return -1;
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		char *eq = strchr(tok, '=');

		if (eq == NULL || r->n == PROTO_RECORD_KEYS)
			continue;
		*eq = '\0';
		proto_decode(eq + 1);
		r->key[r->n] = tok;
		r->val[r->n] = eq + 1;
		r->n++;
	}
	return 0;
}

const char *
record_get(const struct record *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->key[i], key) == 0)
			return r->val[i];
	return NULL;
}

/* poll() one fd for events until deadline (0: none); >0 ready, 0 timeout. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int ms = -1, r;

		if (deadline != 0) {
			int64_t left = deadline - mono_ns();

			if (left <= 0)
				return 0;
			ms = (int)((left + NS_PER_MS - 1) / NS_PER_MS);
		}
		r = poll(&p, 1, ms);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

/* A pidfd on the peer of a connected socket, or -1. */
static int
peer_pidfd(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	/* pid 0: the peer is in a pid namespace we cannot see into. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    cr.pid <= 0)
		return -1;
	return (int)syscall(SYS_pidfd_open, cr.pid, 0);
}

enum proto_result
proto_call(const char *sock_path, const char *req, int timeout_ms,
    struct buf *reply, int *pidfd, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int64_t deadline = timeout_ms < 0 ? 0 :
	    mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
	char chunk[65536], line[PROTO_REQUEST_MAX + 1];
	int fd, n;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (copy_str(sa.sun_path, sock_path, sizeof(sa.sun_path)) >=
	    sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", sock_path);
		return PROTO_FAILED;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return PROTO_FAILED;
	}
	/*
	 * Non-blocking: a full backlog (a master stopped, or flooded) says
	 * EAGAIN instead of holding us; try again until the deadline.
	 */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		if (e == EAGAIN && (deadline == 0 || mono_ns() < deadline)) {
			nanosleep(&(struct timespec){ 0, 10 * NS_PER_MS },
			    NULL);
			continue;
		}
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return PROTO_NO_MASTER;
		if (e == EAGAIN)
			snprintf(err, errlen, "%s: the master takes no "
			    "connection (its backlog is full)", sock_path);
		else
			snprintf(err, errlen, "%s: %s", sock_path, strerror(e));
		return PROTO_FAILED;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (pidfd != NULL)
		*pidfd = peer_pidfd(fd);
	/* One write, one wakeup of the master.  One that refuses us
	 * answers before it reads: read its answer anyway. */
	n = snprintf(line, sizeof(line), "%s\n", req);
	if (write_all(fd, line, (size_t)n < sizeof(line) ? (size_t)n :
	    sizeof(line) - 1) < 0 && errno != EPIPE && errno != ECONNRESET) {
		snprintf(err, errlen, "%s: %s", sock_path, strerror(errno));
		close(fd);
		return PROTO_FAILED;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t got;
		int r = wait_fd(fd, POLLIN, deadline);

		if (r == 0) {
			snprintf(err, errlen, "%s: no reply within %d ms",
			    sock_path, timeout_ms);
			close(fd);
			return PROTO_FAILED;
		}
		got = read(fd, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		/* A reset after the answer arrived ends the answer. */
		if (got < 0 && errno == ECONNRESET && reply->len > 0)
			break;
		if (got < 0) {
			snprintf(err, errlen, "%s: %s", sock_path,
			    strerror(errno));
			close(fd);
			return PROTO_FAILED;
		}
		if (got == 0)
			break;
		buf_add(reply, chunk, (size_t)got);
		if (reply->len > PROTO_REPLY_MAX || reply->oom) {
			snprintf(err, errlen, "%s: reply too large", sock_path);
			close(fd);
			return PROTO_FAILED;
		}
	}
	close(fd);
	if (reply->len == 0) {
		snprintf(err, errlen, "%s: the master closed the connection "
		    "without a reply", sock_path);
		return PROTO_FAILED;
	}
	return PROTO_OK;
}
