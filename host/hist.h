/*
 * hist.h - work() call-time histograms (the scoreboard's buckets): their
 * sums, quantiles and their text form in status replies.
 */
#ifndef PMHOST_HIST_H
#define PMHOST_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "scoreboard.h"

struct hist {
	uint64_t	 count[SB_BUCKETS];	/* per bucket, not cumulative */
	uint64_t	 sum_ns;
};

/* Adds a cell's counts (read with atomics) to h. */
void	hist_add_cell(struct hist *h, const struct sb_cell *c);

/* Adds src to h. */
void	hist_add(struct hist *h, const struct hist *src);

/* Calls counted in h. */
uint64_t hist_total(const struct hist *h);

/*
 * The q quantile (0 < q < 1) in ns, interpolated within its bucket as
 * Prometheus's histogram_quantile() does; -1 for an empty histogram.
 */
int64_t	hist_quantile(const struct hist *h, double q);

/* Writes h's non-zero buckets as "B:N,B:N" (B the bucket index). */
void	hist_format(const struct hist *h, char *buf, size_t size);

/* Reads hist_format()'s text into h (sum_ns untouched); 0 or -1. */
int	hist_parse(const char *text, struct hist *h);

/* A bucket's upper bound for metrics: "1e-06" .. "60", "+Inf". */
const char *hist_le(int bucket);

#endif
