/*
 * status.h - what "pmhost status" shows, as one schema: every field a
 * master reports, with its wire key, the record it belongs to, how --json
 * shows it and which table column (if any) it fills.  The master writes
 * records by these keys (serve.c); the command parses them back and
 * renders process_manage's table or one JSON document.  Parsing and
 * rendering are pure: unit-tested on canned replies.
 */
#ifndef PMHOST_STATUS_H
#define PMHOST_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/*
 * The schema, one line per field:
 *   X(ID, wire key, record, type, JSON form, JSON key, column, cell, col#)
 * record: M master, P its preload process, W worker, E one of a slot's
 * last exits (after its worker record).  type: I integer, T text.
 * JSON form: J_INT, J_INTN (null when < 0), J_LIVE (null without a
 *   process), J_SECS (ms as seconds, null when < 0), J_MEM (KiB as
 *   KEY_mb and KEY_kb), J_TIME (ms as "date time" and KEY_unix_ms),
 *   J_TEXT, J_TEXTN (null when empty), J_BOOL (0 false, else true),
 *   J_RATE (thousandths as a decimal), J_USEC (us as seconds, null when
 *   absent), J_HIST (hist.h's text as {"buckets", "sum_s", "count"}, its
 *   sum from the next field), J_COUNTS ("a:1,b:2" as {"a":1,"b":2}),
 *   J_NONE (not in --json).
 * cell: how the table shows it; col#: its column, 0 for none.  A worker
 * record without "title" shows its master's "worker_title".
 * The order of the lines is the order of --json.
 */
#define STATUS_FIELDS(X)						\
	X(NAME,		"name",		M, T, J_TEXT, NULL, NULL, C_TEXT, 0)	\
	X(PID,		"pid",		M, I, J_INT, NULL, "pid", C_INT, 1)	\
	X(TITLE,	"title",	M, T, J_TEXT, NULL, "title", C_TEXT, 2) \
	X(WORKER_TITLE,	"worker_title",	M, T, J_NONE, NULL, NULL, C_TEXT, 0)	\
	X(STATE,	"state",	M, T, J_TEXT, NULL, "state", C_TEXT, 7) \
	X(RSS_KB,	"rss_kb",	M, I, J_MEM, "memory", "memory(m)", C_MEM, 3) \
	X(START_MS,	"start_ms",	M, I, J_TIME, "start", "start", C_TIME, 4) \
	X(RUN_MS,	"run_ms",	M, I, J_SECS, "run_s", "run(s)", C_SECS, 5) \
	X(COUNT,	"count",	M, I, J_INT, NULL, "count", C_INT, 6)	\
	X(TARGET,	"target",	M, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(GENERATION,	"generation",	M, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(STOP_TIMEOUT,	"stop_timeout",	M, I, J_INTN, NULL, NULL, C_INT, 0)	\
	X(CALLS_TOTAL,	"calls_total",	M, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(ERRORS_TOTAL,	"errors_total",	M, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(RATE,		"rate_mcps",	M, I, J_RATE, "calls_per_s", NULL,	\
	    C_RATE, 0)							\
	X(P50_US,	"p50_us",	M, I, J_USEC, "p50_s", NULL, C_DUR, 0)	\
	X(P99_US,	"p99_us",	M, I, J_USEC, "p99_s", NULL, C_DUR, 0)	\
	X(HIST,		"hist",		M, T, J_HIST, "latency", NULL, C_TEXT, 0) \
	X(HIST_SUM_NS,	"hist_sum_ns",	M, I, J_NONE, NULL, NULL, C_INT, 0)	\
	X(EXITS_BY,	"exits_by",	M, T, J_COUNTS, "exits_by_reason", NULL, \
	    C_TEXT, 0)							\
	X(CONFIG,	"config",	M, T, J_TEXT, NULL, NULL, C_TEXT, 0)	\
	X(PLUGIN,	"plugin",	M, T, J_TEXT, NULL, NULL, C_TEXT, 0)	\
	X(PLUGIN_SHA256, "plugin_sha256", M, T, J_TEXTN, NULL, NULL, C_TEXT, 0) \
	X(PLUGIN_COPY,	"plugin_copy",	M, T, J_TEXTN, NULL, NULL, C_TEXT, 0)	\
	X(RUN_DIR,	"run_dir",	M, T, J_TEXT, NULL, NULL, C_TEXT, 0)	\
	X(LOG,		"log",		M, T, J_TEXTN, NULL, NULL, C_TEXT, 0)	\
	X(P_PID,	"pid",		P, I, J_INT, NULL, "pid", C_INT, 1)	\
	X(P_TITLE,	"title",	P, T, J_TEXT, NULL, "title", C_TEXT, 2) \
	X(P_STATE,	"state",	P, T, J_TEXT, NULL, "state", C_TEXT, 7) \
	X(P_RSS_KB,	"rss_kb",	P, I, J_MEM, "memory", "memory(m)", C_MEM, 3) \
	X(P_START_MS,	"start_ms",	P, I, J_TIME, "start", "start", C_TIME, 4) \
	X(P_RUN_MS,	"run_ms",	P, I, J_SECS, "run_s", "run(s)", C_SECS, 5) \
	X(P_RESTARTS,	"restarts",	P, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(P_LAST_EXIT,	"last_exit",	P, T, J_TEXTN, NULL, NULL, C_TEXT, 0)	\
	X(W_SLOT,	"slot",		W, I, J_INT, NULL, "slot", C_INT, 8)	\
	X(W_PID,	"pid",		W, I, J_LIVE, NULL, "pid", C_LIVE, 1)	\
	X(W_TITLE,	"title",	W, T, J_TEXT, NULL, "title", C_TEXT, 2) \
	X(W_STATE,	"state",	W, T, J_TEXT, NULL, "state", C_TEXT, 7) \
	X(W_RSS_KB,	"rss_kb",	W, I, J_MEM, "memory", "memory(m)", C_MEM, 3) \
	X(W_START_MS,	"start_ms",	W, I, J_TIME, "start", "start", C_TIME, 4) \
	X(W_RUN_MS,	"run_ms",	W, I, J_SECS, "run_s", "run(s)", C_SECS, 5) \
	X(W_WORK,	"work",		W, I, J_LIVE, NULL, "work", C_LIVE, 6)	\
	X(W_ERRORS,	"errors",	W, I, J_LIVE, NULL, NULL, C_INT, 0)	\
	X(W_CALLS_TOTAL, "calls_total",	W, I, J_INT, NULL, "calls", C_INT, 9)	\
	X(W_RATE,	"rate_mcps",	W, I, J_RATE, "calls_per_s", "calls/s",	\
	    C_RATE, 10)							\
	X(W_P50_US,	"p50_us",	W, I, J_USEC, "p50_s", "p50", C_DUR, 11) \
	X(W_P99_US,	"p99_us",	W, I, J_USEC, "p99_s", "p99", C_DUR, 12) \
	X(W_ERRORS_TOTAL, "errors_total", W, I, J_INT, NULL, "errors", C_INT, \
	    13)								\
	X(W_RECYCLES,	"recycles",	W, I, J_INT, NULL, "recycled", C_INT, 14) \
	X(W_FAILURES_TOTAL, "failures_total", W, I, J_INT, NULL, "failed",	\
	    C_INT, 15)							\
	X(W_HIST,	"hist",		W, T, J_HIST, "latency", NULL, C_TEXT, 0) \
	X(W_HIST_SUM_NS, "hist_sum_ns",	W, I, J_NONE, NULL, NULL, C_INT, 0)	\
	X(W_BACKOFF_MS,	"backoff_ms",	W, I, J_SECS, "backoff_s", NULL, C_INT, 0) \
	X(W_CRASH_LOOP,	"crash_loop",	W, I, J_BOOL, NULL, NULL, C_INT, 0)	\
	X(W_RESTARTS,	"restarts",	W, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(W_FAILURES,	"failures",	W, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(W_GENERATION,	"generation",	W, I, J_LIVE, NULL, NULL, C_INT, 0)	\
	X(W_MAX_CALLS,	"max_calls",	W, I, J_INTN, "execute_times", NULL,	\
	    C_INT, 0)							\
	X(W_LIFETIME_S,	"lifetime_s",	W, I, J_INTN, "limit_seconds", NULL,	\
	    C_INT, 0)							\
	X(W_CALL_MS,	"call_ms",	W, I, J_SECS, "call_s", NULL, C_INT, 0) \
	X(W_RESPAWN_IN_MS, "respawn_in_ms", W, I, J_SECS, "respawn_in_s", NULL, \
	    C_INT, 0)							\
	X(W_LAST_EXIT,	"last_exit",	W, T, J_TEXTN, NULL, "last exit",	\
	    C_LAST, 16)							\
	X(E_AT_MS,	"at_ms",	E, I, J_TIME, "at", NULL, C_INT, 0)	\
	X(E_LIVED_MS,	"lived_ms",	E, I, J_SECS, "lived_s", NULL, C_INT, 0) \
	X(E_CALLS,	"calls",	E, I, J_INT, NULL, NULL, C_INT, 0)	\
	X(E_FAILED,	"failed",	E, I, J_BOOL, NULL, NULL, C_INT, 0)	\
	X(E_REASON,	"reason",	E, T, J_TEXT, NULL, NULL, C_TEXT, 0)

#define STATUS_ENUM(id, key, rec, type, json, jkey, col, cell, no) SK_##id,
enum status_key {
	STATUS_FIELDS(STATUS_ENUM)
	SK_COUNT_
};
#undef STATUS_ENUM

/*
 * One parsed record: each field's value, if the master sent it, as the
 * place of its text in the reply's copy (numbers are read from it when
 * asked for).  10 000 workers make 10 000 records: each is small.
 */
struct status_rec {
	const char	*base;		/* the reply's copy */
	unsigned char	 has[SK_COUNT_];
	uint32_t	 off[SK_COUNT_];	/* a text's place in base */
};

struct status_master {
	char		*mem;		/* the reply's copy the texts live in */
	struct status_rec m;
	int		 has_preload;
	struct status_rec preload;	/* its preload process, if any */
	size_t		 nworkers;
	struct status_rec *workers;
	size_t		 nexits;
	struct status_rec *exits;	/* a slot's last exits, oldest first */
	size_t		*exit_of;	/* the worker record each follows */
};

/* Master side: appends " key=value" for field k (proto encoding). */
void	status_put_num(struct buf *b, enum status_key k, long long v);
void	status_put_text(struct buf *b, enum status_key k, const char *v);

/* A field's number (def when absent or not a number) or text ("" when
 * absent). */
long long	 status_num(const struct status_rec *r, enum status_key k,
		    long long def);
const char	*status_text(const struct status_rec *r, enum status_key k);

/*
 * Parses a master's "status" reply.  0, or -1 with a message in err (the
 * master's "error" line, or what was malformed).
 */
int	status_parse(const char *reply, struct status_master *m, char *err,
	    size_t errlen);
void	status_free(struct status_master *m);

/* Appends the table for n masters (a blank line between them). */
void	status_table(const struct status_master *ms, size_t n, struct buf *out);

/* Appends {"masters":[...]} for n masters, newline-terminated. */
void	status_json(const struct status_master *ms, size_t n, struct buf *out);

/*
 * Appends the Prometheus text exposition of n masters: each metric's
 * HELP and TYPE once, then its samples, labelled task (and slot, reason,
 * state, le).
 */
void	status_prometheus(const struct status_master *ms, size_t n,
	    struct buf *out);

#endif
