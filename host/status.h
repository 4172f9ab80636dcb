/*
 * status.h - what "pmhost status" shows: the master's reply parsed into
 * plain structs, and the two renderings of it (process_manage's table and
 * one JSON document).  Pure: no I/O, unit-tested on canned replies.
 */
#ifndef PMHOST_STATUS_H
#define PMHOST_STATUS_H

#include <stddef.h>
#include <time.h>

#include "proto.h"

#define STATUS_TEXT	256
#define STATUS_PATH	4096

struct status_worker {
	int		 slot;
	long		 pid;		/* -1: no process (backoff, pending) */
	char		 state[16];
	long long	 start_ms;	/* wall clock, ms since the epoch */
	long long	 run_ms;
	long long	 rss_kb;	/* -1: unknown */
	long long	 work;		/* work() calls completed */
	long long	 errors;
	long long	 restarts;
	long long	 failures;
	long long	 generation;
	long long	 call_ms;	/* current call's age; -1: none */
	long long	 respawn_in_ms;	/* -1: none pending */
	char		 last_exit[STATUS_TEXT];
};

struct status_master {
	char		 name[72];
	char		 title[160];
	char		 worker_title[160];
	char		 state[16];
	char		 config[STATUS_PATH];
	char		 plugin[STATUS_PATH];
	char		 run_dir[STATUS_PATH];
	long		 pid;
	long long	 start_ms;
	long long	 run_ms;
	long long	 rss_kb;
	long long	 count;		/* live workers */
	long long	 target;
	long long	 generation;
	long long	 stop_timeout;
	size_t		 nworkers;
	struct status_worker *workers;
};

/*
 * Parses a master's "status" reply (modified in place).  0, or -1 with a
 * message in err (the master's "error" line, or what was malformed).
 */
int	status_parse(char *reply, struct status_master *m, char *err,
	    size_t errlen);
void	status_free(struct status_master *m);

/* Appends the table for n masters (a blank line between them). */
void	status_table(const struct status_master *ms, size_t n, struct buf *out);

/* Appends {"masters":[...]} for n masters, newline-terminated. */
void	status_json(const struct status_master *ms, size_t n, struct buf *out);

#endif
