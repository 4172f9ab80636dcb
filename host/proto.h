/*
 * proto.h - the control protocol spoken over NAME.sock, both sides.
 *
 * A client sends one request line (at most PROTO_REQUEST_MAX bytes with
 * its newline): "status", "wakeup", "scale N", "reload", "stop".  The
 * master answers with zero or more record lines, "TYPE key=value ...",
 * values percent-encoded, and a last line "ok[ TEXT]" or "error TEXT",
 * then closes the connection.
 */
#ifndef PMHOST_PROTO_H
#define PMHOST_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_REQUEST_MAX	1024
#define PROTO_REPLY_MAX		(16 * 1024 * 1024)
#define PROTO_RECORD_KEYS	48

/* A growing text buffer; oom sticks once an allocation failed. */
struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 oom;
};

/* Room for n more bytes and a NUL: 0, or -1 (b->oom set). */
int	buf_reserve(struct buf *b, size_t n);
void	buf_add(struct buf *b, const char *s, size_t n);
void	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	buf_free(struct buf *b);

/* Appends " key=value" with value percent-encoded. */
void	proto_put(struct buf *b, const char *key, const char *value);
void	proto_put_int(struct buf *b, const char *key, long long v);

/* Decodes %XX in place (lenient: a bad escape stays as it is). */
void	proto_decode(char *s);

/* One decoded record line: its type and its key/value pairs. */
struct record {
	const char	*type;
	int		 n;
	const char	*key[PROTO_RECORD_KEYS];
	const char	*val[PROTO_RECORD_KEYS];
};

/* Splits and decodes line in place; 0, or -1 if it is not a record. */
int	proto_parse(char *line, struct record *r);

/* The value of key in r, or NULL. */
const char *record_get(const struct record *r, const char *key);

enum proto_result {
	PROTO_OK,		/* a complete reply is in *reply */
	PROTO_NO_MASTER,	/* nothing listens on the socket */
	PROTO_FAILED		/* see err */
};

/*
 * Sends req to the master at sock_path and reads its whole reply, waiting
 * at most timeout_ms (-1: no limit).  With pidfd non-NULL, it also opens a
 * pidfd on the master (-1 if that fails), taken from the connection's
 * peer credentials while the master is known to be alive: its pid in our
 * pid namespace, whatever the pid file inside its own says.
 */
enum proto_result proto_call(const char *sock_path, const char *req,
	    int timeout_ms, struct buf *reply, int *pidfd, char *err,
	    size_t errlen);

#endif
