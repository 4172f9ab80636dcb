/*
 * topview.h - what "pmhost top" shows, as a pure function of two samples
 * of the masters' status: a line per task with its totals, then a line
 * per slot of the selected task (or of every task).  Rates come from the
 * calls counted between the two samples, call times from the histogram
 * of the calls between them; nothing here reads a clock or a terminal.
 */
#ifndef PMHOST_TOPVIEW_H
#define PMHOST_TOPVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* The masters' status at one moment. */
struct top_sample {
	struct status_master *ms;
	size_t		 n;
	int64_t		 at_ns;		/* CLOCK_MONOTONIC */
	int64_t		 wall_ms;	/* CLOCK_REALTIME, for the header */
};

/* The orders of the slot lines, each with its key. */
#define TOP_SORTS(X)							\
	X(SORT_SLOT,	's', "slot")					\
	X(SORT_RATE,	'c', "calls/s")					\
	X(SORT_P99,	'p', "p99")					\
	X(SORT_MEMORY,	'm', "memory")					\
	X(SORT_RESTARTS, 'r', "restarts")				\
	X(SORT_FAILED,	'f', "failed calls")

#define TOP_SORT_ENUM(id, key, name) id,
enum top_sort {
	TOP_SORTS(TOP_SORT_ENUM)
	SORT_COUNT_
};
#undef TOP_SORT_ENUM

struct top_opts {
	enum top_sort	 sort;
	const char	*task;		/* the task whose slots are shown;
					   NULL or not found: the first */
	int		 every_task;	/* every task's slots, one after
					   another (batch) */
	int		 keys;		/* show the keys line */
	int		 width;		/* columns, 0: no limit */
	int		 height;	/* lines, 0: no limit */
	long		 interval_ms;
	const char	*run_dir;	/* for "no task is running" */
};

/*
 * Appends the frame for cur to out, lines ending in "\n", none wider
 * than o->width nor more than o->height of them.  prev (may be NULL: the
 * first frame) is the sample before: rates and call times are of what
 * happened between the two; without it, the masters' own.
 */
void	topview_frame(const struct top_sample *prev,
	    const struct top_sample *cur, const struct top_opts *o,
	    struct buf *out);

/* The order a key asks for, or -1 if it asks for none. */
int	topview_sort_of_key(int ch);

/* The name of the task after name in cur (wrapping), or NULL if none. */
const char *topview_next_task(const struct top_sample *cur, const char *name);

#endif
