/*
 * control.h - the master's side of NAME.sock: accepting clients, reading
 * and parsing one request line from each, and sending each answer.  control.c owns
 * every field here.  It never acts on a request: it hands the master a
 * request value, and the master answers it (now, or later through the
 * request's reply token, as a restart does).
 */
#ifndef PMHOST_CONTROL_H
#define PMHOST_CONTROL_H

#include <stdint.h>

#include "proto.h"
#include "rundir.h"

#define CTL_MAX_CLIENTS	64
#define CTL_CLIENT_NS	(10 * NS_PER_SEC)	/* a request's whole budget */

/* Names a request's client for as long as it is connected. */
struct reply_token {
	int		 client;	/* -1: none (e.g. SIGHUP) */
	uint64_t	 serial;	/* the client's connection number */
};

struct command;

/*
 * One request line: its verb (the first word), the command it names, and
 * its argument (the rest), checked and parsed for the verbs that take one.
 */
struct request {
	char			 line[PROTO_REQUEST_MAX];
	char			 verb[16];	/* "": none, or too long */
	const char		*arg;		/* into line */
	const struct command	*cmd;		/* never NULL once parsed */
	long			 count;		/* scale: N */
	int			 exits;		/* status: with last exits */
	struct reply_token	 token;
};

/* What the bytes a client has sent so far amount to. */
enum request_parse {
	REQUEST_MORE,		/* no whole line yet */
	REQUEST_READY,		/* a request to serve */
	REQUEST_BAD		/* refused: answer with the error text */
};

/* A control socket connection. */
struct client {
	int		 fd;		/* -1: free */
	uint64_t	 serial;
	char		*in;		/* PROTO_REQUEST_MAX bytes, while open */
	size_t		 inlen;
	struct buf	 out;
	size_t		 outoff;
	int64_t		 deadline;	/* mono ns; 0 while answered later */
	int64_t		 last_active;	/* mono ns of its last bytes */
	int		 replying;	/* request taken; out is the answer */
};

struct control {
	int		 epfd;
	int		 listen_fd;
	int		 reserve_fd;	/* given up to answer at EMFILE */
	int64_t		 emfile_logged;	/* mono ns of the last such line */
	int64_t		 paused_until;	/* listener out of epoll till then */
	char		 sock_path[RUNDIR_PATH_MAX];
	uint64_t	 serials;
	struct client	 clients[CTL_MAX_CLIENTS];
};

/*
 * Parses what a client has sent: in holds its first len bytes, eof says it
 * will send no more.  REQUEST_READY fills *rq (token aside) for a known
 * verb with a valid argument; REQUEST_BAD puts the answer's error text,
 * one line, in err.  Pure: no I/O, no state.
 */
enum request_parse control_parse(const char *in, size_t len, int eof,
	    struct request *rq, char *err, size_t errlen);

/* Binds dir/NAME.sock and watches it in epfd; 0, or -1 (logged). */
int	control_open(struct control *ctl, int epfd, const char *dir,
	    const char *name);
void	control_close(struct control *ctl);

/* Takes every pending connection. */
void	control_accept(struct control *ctl);

/*
 * Handles an event on client i.  1 with *rq filled when a whole request
 * has arrived (the client waits for an answer), else 0.
 */
int	control_event(struct control *ctl, int i, uint32_t events,
	    struct request *rq);

/*
 * Answers the request behind tok: body (may be NULL) then "ok TEXT" or
 * "error TEXT"; a client that has gone is skipped.
 */
void	control_answer(struct control *ctl, struct reply_token tok,
	    const struct buf *body, int ok, const char *text);

/* Keeps tok's client waiting past its deadline (answered later). */
void	control_defer(struct control *ctl, struct reply_token tok);

/* Is the client behind tok still there to read an answer? */
int	control_waiting(struct control *ctl, struct reply_token tok);

void	control_expire(struct control *ctl, int64_t now);
int64_t	control_next_deadline(const struct control *ctl);

/* The token that answers nobody (signals). */
#define NO_CLIENT	((struct reply_token){ -1, 0 })

#endif
