/*
 * scrape.h - the status of many masters at once: one request to each
 * master a command names (or to every master of the run dir), all in
 * flight together under one deadline, so that a slow or hung master costs
 * the others nothing.  The caller drives the descriptors from its own
 * poll loop (the exporter) or lets scrape_wait() do it (top).
 */
#ifndef PMHOST_SCRAPE_H
#define PMHOST_SCRAPE_H

#include <poll.h>
#include <stdint.h>

#include "client.h"
#include "status.h"

/* Where one master's request stands. */
enum scrape_state {
	SCRAPE_ABSENT,		/* no master runs (nor died) there */
	SCRAPE_DEAD,		/* its master died, leaving its pid file */
	SCRAPE_WAITING,		/* the request is out, the reply coming */
	SCRAPE_ANSWERED,	/* the whole reply is in */
	SCRAPE_FAILED		/* no answer, a broken one, or too late */
};

struct scrape_req {
	struct target	*t;
	enum scrape_state state;
	int		 fd;		/* while waiting; else -1 */
	struct buf	 reply;
	char		 err[256];	/* why it failed */
};

struct scrape {
	struct targets	 ts;
	struct scrape_req *rq;		/* one per target */
	size_t		 n;
	size_t		 waiting;
	int64_t		 deadline;	/* mono ns */
};

/*
 * Names the targets as status does (cli's --title or CONFIG, else every
 * pid file of the run dir) and sends each running master req ("status",
 * "status exits").  0, or an exit status after printing why.
 */
int	scrape_begin(struct scrape *sc, const struct cli *cli, const char *req,
	    int timeout_ms);

/* Fills pfd with what waiting request i needs; 0 if it needs nothing. */
int	scrape_pollfd(const struct scrape *sc, size_t i, struct pollfd *pfd);

/* Reads what request i's master sent (revents from poll()). */
void	scrape_io(struct scrape *sc, size_t i, short revents);

/* Fails every request still waiting once the deadline has passed. */
void	scrape_expire(struct scrape *sc, int64_t now);

/* Polls until every request is answered or the deadline has passed. */
void	scrape_wait(struct scrape *sc);

/*
 * The answers as status rows, in title order: a live master's reply; a
 * "dead" row for one that died; an "unreachable" row (state, name, pid)
 * for one that did not answer, with why in its request's err.  *ms is
 * NULL when n is 0; status_free() each row and free(*ms).  0, or -1 out
 * of memory.
 */
int	scrape_rows(struct scrape *sc, struct status_master **ms, size_t *n);

/* Closes what is still open and frees everything. */
void	scrape_end(struct scrape *sc);

#endif
