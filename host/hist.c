/*
 * hist.c - call-time histograms: folding the scoreboard's per-worker
 * counts, estimating quantiles, and the compact text status replies
 * carry them in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

void
hist_add_cell(struct hist *h, const struct sb_cell *c)
{
	for (int b = 0; b < SB_BUCKETS; b++)
		h->count[b] += atomic_load_explicit(&c->w.hist[b],
		    memory_order_relaxed);
	h->sum_ns += atomic_load_explicit(&c->w.sum_ns, memory_order_relaxed);
}

void
hist_add(struct hist *h, const struct hist *src)
{
	for (int b = 0; b < SB_BUCKETS; b++)
		h->count[b] += src->count[b];
	h->sum_ns += src->sum_ns;
}

uint64_t
hist_total(const struct hist *h)
{
	uint64_t n = 0;

	for (int b = 0; b < SB_BUCKETS; b++)
		n += h->count[b];
	return n;
}

int64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t total = hist_total(h), seen = 0;
	double rank;

	if (total == 0)
		return -1;
	rank = q * (double)total;
	for (int b = 0; b < SB_BUCKETS; b++) {
		double lo, hi;

		if ((double)(seen + h->count[b]) < rank || h->count[b] == 0) {
			seen += h->count[b];
			continue;
		}
		/* The open bucket above 60 s says no more than "over". */
		if (b == SB_BUCKETS - 1)
			return sb_bucket_le_ns[SB_BUCKETS - 2];
		lo = b == 0 ? 0 : (double)sb_bucket_le_ns[b - 1];
		hi = (double)sb_bucket_le_ns[b];
		return (int64_t)(lo + (hi - lo) * (rank - (double)seen) /
		    (double)h->count[b]);
	}
	return sb_bucket_le_ns[SB_BUCKETS - 2];
}

void
hist_format(const struct hist *h, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int b = 0; b < SB_BUCKETS && n < size; b++)
		if (h->count[b] != 0)
			n += (size_t)snprintf(buf + n, size - n, "%s%d:%llu",
			    n > 0 ? "," : "", b,
			    (unsigned long long)h->count[b]);
}

int
hist_parse(const char *text, struct hist *h)
{
	const char *p = text;

	memset(h->count, 0, sizeof(h->count));
	while (*p != '\0') {
		char *end;
		long b = strtol(p, &end, 10);
		unsigned long long n;

		if (end == p || *end != ':' || b < 0 || b >= SB_BUCKETS)
			return -1;
		p = end + 1;
		n = strtoull(p, &end, 10);
		if (end == p || (*end != ',' && *end != '\0'))
			return -1;
		h->count[b] = n;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

const char *
hist_le(int bucket)
{
	static const char *const le[SB_BUCKETS] = {
		"1e-06", "3e-06", "1e-05", "3e-05", "0.0001", "0.0003",
		"0.001", "0.003", "0.01", "0.03", "0.1", "0.3",
		"1", "3", "10", "30", "60", "+Inf",
	};

	return bucket >= 0 && bucket < SB_BUCKETS ? le[bucket] : "+Inf";
}
