/*
 * topview.c - the frames of "pmhost top", from two samples of the
 * masters' status.  A task's or a slot's calls/s is the growth of its
 * calls_total between the samples over the time between them, which holds
 * whatever the workers' lifetimes (executeTimes 1 included); p50 and p99
 * are those of the calls between them, from the difference of the two
 * histograms.  A master that restarted in between has nothing to compare
 * with: its own figures stand in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hist.h"
#include "topview.h"
#include "util.h"

#define NO_VALUE	(-1.0)

/* One slot line, its figures worked out. */
struct slot_line {
	long long	 slot;
	long long	 pid;		/* -1: no process */
	const char	*state;
	double		 rate;		/* NO_VALUE: unknown */
	int64_t		 p50_ns;	/* -1: no calls */
	int64_t		 p99_ns;
	long long	 failed;
	long long	 rss_kb;	/* -1: unknown */
	long long	 restarts;
	const char	*last_exit;
	double		 key;		/* of the order asked for */
};

static const char *const sort_names[SORT_COUNT_] = {
#define TOP_SORT_NAME(id, key, name) [id] = name,
	TOP_SORTS(TOP_SORT_NAME)
#undef TOP_SORT_NAME
};

int
topview_sort_of_key(int ch)
{
	static const char keys[SORT_COUNT_] = {
#define TOP_SORT_KEY(id, key, name) [id] = key,
		TOP_SORTS(TOP_SORT_KEY)
#undef TOP_SORT_KEY
	};

	for (int i = 0; i < SORT_COUNT_; i++)
		if (keys[i] == ch)
			return i;
	return -1;
}

static const char *
task_name(const struct status_master *m)
{
	return status_text(&m->m, SK_NAME);
}

/* The master in s named name (the same process: same pid), or NULL. */
static const struct status_master *
same_master(const struct top_sample *s, const struct status_master *m)
{
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(task_name(&s->ms[i]), task_name(m)) == 0 &&
		    status_num(&s->ms[i].m, SK_PID, -1) ==
		    status_num(&m->m, SK_PID, -2))
			return &s->ms[i];
	return NULL;
}

/* The first record of slot in m, or NULL. */
static const struct status_rec *
slot_rec(const struct status_master *m, long long slot)
{
	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < m->nworkers; i++)
		if (status_num(&m->workers[i], SK_W_SLOT, -1) == slot)
			return &m->workers[i];
	return NULL;
}

/*
 * Calls per second between two records' counts (field k), or the
 * record's own rate (field own, thousandths) without a before.
 */
static double
rate_between(const struct status_rec *before, const struct status_rec *now,
    enum status_key k, enum status_key own, double dt_s)
{
	long long c0, c1;

	if (before != NULL && dt_s > 0) {
		c0 = status_num(before, k, -1);
		c1 = status_num(now, k, -1);
		/* Never backwards: a smaller count is another life. */
		if (c0 >= 0 && c1 >= c0)
			return (double)(c1 - c0) / dt_s;
	}
	if (!now->has[own])
		return NO_VALUE;
	return (double)status_num(now, own, 0) / 1000;
}

/*
 * The q quantile (ns) of the calls between two records' histograms
 * (field k), or of all of now's when there were none in between; -1
 * when there are no calls at all.
 */
static int64_t
quantile_between(const struct status_rec *before,
    const struct status_rec *now, enum status_key k, double q)
{
	struct hist h1, h0, d;
	int grew = 1;

	memset(&h1, 0, sizeof(h1));
	if (hist_parse(status_text(now, k), &h1) < 0)
		return -1;
	if (before != NULL && hist_parse(status_text(before, k), &h0) == 0) {
		memset(&d, 0, sizeof(d));
		for (int b = 0; b < SB_BUCKETS; b++) {
			if (h1.count[b] < h0.count[b])
				grew = 0;
			else
				d.count[b] = h1.count[b] - h0.count[b];
		}
		if (grew && hist_total(&d) > 0)
			return hist_quantile(&d, q);
	}
	return hist_quantile(&h1, q);
}

/* A call time as status shows it: 850us, 1.2ms, 3.4s; "-" for none. */
static void
fmt_dur(int64_t ns, char *buf, size_t size)
{
	if (ns < 0)
		copy_str(buf, "-", size);
	else if (ns < 1000000)
		snprintf(buf, size, "%lldus", (long long)(ns / 1000));
	else if (ns < 1000000000)
		snprintf(buf, size, "%.1fms", (double)ns / 1e6);
	else
		snprintf(buf, size, "%.1fs", (double)ns / 1e9);
}

static void
fmt_rate(double r, char *buf, size_t size)
{
	if (r < 0)
		copy_str(buf, "-", size);
	else
		snprintf(buf, size, "%.1f", r);
}

/* A run time: 59s, 12m03s, 5h07m, 3d04h. */
static void
fmt_uptime(long long ms, char *buf, size_t size)
{
	long long s = ms / 1000;

	if (ms < 0)
		copy_str(buf, "-", size);
	else if (s < 60)
		snprintf(buf, size, "%llds", s);
	else if (s < 3600)
		snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, size, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

/*
 * Appends a line cut to width columns (UTF-8 aware; control bytes, which
 * could move the cursor, shown as '?'), then a newline.
 */
static void
put_line(struct buf *out, const char *line, int width)
{
	int cols = 0;

	for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
		int lead = (*p & 0xc0) != 0x80;

		if (lead && width > 0 && cols == width)
			break;
		cols += lead;
		if (*p < 0x20 || *p == 0x7f)
			buf_add(out, "?", 1);
		else
			buf_add(out, (const char *)p, 1);
	}
	buf_add(out, "\n", 1);
}

/* The task's exits, all and by reason: "42 (execute_times 40, signal 2)". */
static void
fmt_exits(const char *by, char *buf, size_t size)
{
	char detail[256] = "";
	unsigned long long total = 0;
	size_t dn = 0;
	const char *p = by;

	while (*p != '\0') {
		size_t nl = strcspn(p, ":,");
		unsigned long long v;

		if (p[nl] != ':')
			break;
		v = strtoull(p + nl + 1, NULL, 10);
		total += v;
		if (v > 0 && dn < sizeof(detail))
			dn += (size_t)snprintf(detail + dn, sizeof(detail) - dn,
			    "%s%.*s %llu", dn > 0 ? ", " : "", (int)nl, p, v);
		p += nl + 1;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	if (dn > 0)
		snprintf(buf, size, "%llu (%s)", total, detail);
	else
		snprintf(buf, size, "%llu", total);
}

/* One task's line. */
static void
task_line(const struct top_sample *prev, const struct top_sample *cur,
    const struct status_master *m, int selected, int width, struct buf *out)
{
	const struct status_master *pm = same_master(prev, m);
	const struct status_rec *before = pm != NULL ? &pm->m : NULL;
	double dt = prev != NULL ? (double)(cur->at_ns - prev->at_ns) / 1e9 : 0;
	const char *state = status_text(&m->m, SK_STATE);
	char line[1024], rate[32], p50[16], p99[16], up[48], exits[300],
	    workers[32];

	if (strcmp(state, "dead") == 0 || strcmp(state, "unreachable") == 0) {
		snprintf(line, sizeof(line), "%s %-16s %-8lld %s",
		    selected ? ">" : " ", task_name(m),
		    status_num(&m->m, SK_PID, 0), state);
		put_line(out, line, width);
		return;
	}
	fmt_rate(rate_between(before, &m->m, SK_CALLS_TOTAL, SK_RATE, dt),
	    rate, sizeof(rate));
	fmt_dur(quantile_between(before, &m->m, SK_HIST, 0.5), p50,
	    sizeof(p50));
	fmt_dur(quantile_between(before, &m->m, SK_HIST, 0.99), p99,
	    sizeof(p99));
	fmt_uptime(status_num(&m->m, SK_RUN_MS, -1), up, sizeof(up));
	fmt_exits(status_text(&m->m, SK_EXITS_BY), exits, sizeof(exits));
	snprintf(workers, sizeof(workers), "%lld/%lld",
	    status_num(&m->m, SK_COUNT, 0), status_num(&m->m, SK_TARGET, 0));
	snprintf(line, sizeof(line), "%s %-16s %-8lld %-10s %-8s %9s %8s %8s "
	    "%8lld %7s %s", selected ? ">" : " ", task_name(m),
	    status_num(&m->m, SK_PID, 0), state, workers, rate, p50, p99,
	    status_num(&m->m, SK_ERRORS_TOTAL, 0), up, exits);
	put_line(out, line, width);
}

/* The figures of slot record r of master m. */
static void
slot_figures(const struct status_master *pm, const struct status_rec *r,
    double dt, struct slot_line *l)
{
	const struct status_rec *before;

	l->slot = status_num(r, SK_W_SLOT, -1);
	before = slot_rec(pm, l->slot);
	l->pid = status_num(r, SK_W_PID, -1);
	l->state = status_text(r, SK_W_STATE);
	l->rate = rate_between(before, r, SK_W_CALLS_TOTAL, SK_W_RATE, dt);
	l->p50_ns = quantile_between(before, r, SK_W_HIST, 0.5);
	l->p99_ns = quantile_between(before, r, SK_W_HIST, 0.99);
	l->failed = status_num(r, SK_W_ERRORS_TOTAL, 0);
	l->rss_kb = status_num(r, SK_W_RSS_KB, -1);
	l->restarts = status_num(r, SK_W_RESTARTS, 0);
	l->last_exit = status_text(r, SK_W_LAST_EXIT);
}

/* The figure l is ordered by, larger first (the slot: smaller first). */
static double
sort_key(const struct slot_line *l, enum top_sort by)
{
	switch (by) {
	case SORT_RATE:		return l->rate;
	case SORT_P99:		return (double)l->p99_ns;
	case SORT_MEMORY:	return (double)l->rss_kb;
	case SORT_RESTARTS:	return (double)l->restarts;
	case SORT_FAILED:	return (double)l->failed;
	default:		return -(double)l->slot;
	}
}

/* By key, larger first; by slot among equals. */
static int
line_cmp(const void *a, const void *b)
{
	const struct slot_line *x = a, *y = b;

	if (x->key != y->key)
		return x->key > y->key ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* The slot lines of m, at most max of them (0: all); lines used. */
static int
slot_lines(const struct top_sample *prev, const struct top_sample *cur,
    const struct status_master *m, const struct top_opts *o, int max,
    struct buf *out)
{
	const struct status_master *pm = same_master(prev, m);
	double dt = prev != NULL ? (double)(cur->at_ns - prev->at_ns) / 1e9 : 0;
	struct slot_line *v;
	size_t n = 0;
	int used = 0;
	char line[1024];

	snprintf(line, sizeof(line), "%-5s %-8s %-10s %9s %8s %8s %8s %8s "
	    "%8s  %s", "SLOT", "PID", "STATE", "CALLS/S", "P50", "P99",
	    "FAILED", "MEM(M)", "RESTARTS", "LAST EXIT");
	put_line(out, line, o->width);
	used++;
	if (m->nworkers == 0 ||
	    (v = calloc(m->nworkers, sizeof(*v))) == NULL)
		return used;
	for (size_t i = 0; i < m->nworkers; i++) {
		long long slot = status_num(&m->workers[i], SK_W_SLOT, -1);

		/* One line a slot: a replacement repeats its slot. */
		if (n > 0 && v[n - 1].slot == slot)
			continue;
		slot_figures(pm, &m->workers[i], dt, &v[n]);
		v[n].key = sort_key(&v[n], o->sort);
		n++;
	}
	qsort(v, n, sizeof(*v), line_cmp);
	for (size_t i = 0; i < n; i++) {
		char pid[24], rate[32], p50[16], p99[16], mem[24];

		if (max > 0 && used >= max)
			break;
		if (max > 0 && used == max - 1 && i + 1 < n) {
			snprintf(line, sizeof(line), "... %zu more slots",
			    n - i);
			put_line(out, line, o->width);
			used++;
			break;
		}
		if (v[i].pid > 0)
			snprintf(pid, sizeof(pid), "%lld", v[i].pid);
		else
			copy_str(pid, "-", sizeof(pid));
		fmt_rate(v[i].rate, rate, sizeof(rate));
		fmt_dur(v[i].p50_ns, p50, sizeof(p50));
		fmt_dur(v[i].p99_ns, p99, sizeof(p99));
		if (v[i].rss_kb >= 0)
			snprintf(mem, sizeof(mem), "%.1f",
			    (double)v[i].rss_kb / 1024);
		else
			copy_str(mem, "-", sizeof(mem));
		snprintf(line, sizeof(line), "%-5lld %-8s %-10s %9s %8s %8s "
		    "%8lld %8s %8lld  %s", v[i].slot, pid, v[i].state, rate,
		    p50, p99, v[i].failed, mem, v[i].restarts,
		    v[i].last_exit[0] != '\0' ? v[i].last_exit : "-");
		put_line(out, line, o->width);
		used++;
	}
	free(v);
	return used;
}

/* The index of the task whose slots are shown. */
static size_t
selected_task(const struct top_sample *cur, const char *name)
{
	for (size_t i = 0; name != NULL && i < cur->n; i++)
		if (strcmp(task_name(&cur->ms[i]), name) == 0)
			return i;
	return 0;
}

const char *
topview_next_task(const struct top_sample *cur, const char *name)
{
	if (cur->n == 0)
		return NULL;
	return task_name(&cur->ms[(selected_task(cur, name) + 1) % cur->n]);
}

void
topview_frame(const struct top_sample *prev, const struct top_sample *cur,
    const struct top_opts *o, struct buf *out)
{
	size_t sel = selected_task(cur, o->task);
	char line[1024], when[32];
	time_t t = (time_t)(cur->wall_ms / 1000);
	struct tm tm;
	int used = 0;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		copy_str(when, "-", sizeof(when));
	snprintf(line, sizeof(line), "pmhost top - %s - every %g s - %zu "
	    "task%s - slots by %s", when, (double)o->interval_ms / 1000,
	    cur->n, cur->n == 1 ? "" : "s", sort_names[o->sort]);
	put_line(out, line, o->width);
	used++;
	if (o->keys) {
		put_line(out, "keys: q quit, t next task, sort by s slot, "
		    "c calls/s, p p99, m memory, r restarts, f failed",
		    o->width);
		used++;
	}
	put_line(out, "", o->width);
	used++;
	if (cur->n == 0) {
		snprintf(line, sizeof(line), "no task is running (run dir %s)",
		    o->run_dir != NULL ? o->run_dir : "-");
		put_line(out, line, o->width);
		return;
	}
	snprintf(line, sizeof(line), "  %-16s %-8s %-10s %-8s %9s %8s %8s "
	    "%8s %7s %s", "TASK", "PID", "STATE", "WORKERS", "CALLS/S", "P50",
	    "P99", "FAILED", "UP", "EXITS");
	put_line(out, line, o->width);
	used++;
	for (size_t i = 0; i < cur->n; i++) {
		/* Room for the selected task's slots: other tasks give way. */
		if (o->height > 0 && used >= o->height / 2 && i != sel &&
		    i + 1 < cur->n) {
			snprintf(line, sizeof(line), "  ... %zu more tasks (t "
			    "shows the next)", cur->n - i - (i < sel));
			put_line(out, line, o->width);
			used++;
			if (sel < i)
				break;
			task_line(prev, cur, &cur->ms[sel], cur->n > 1,
			    o->width, out);
			used++;
			break;
		}
		task_line(prev, cur, &cur->ms[i], !o->every_task && i == sel &&
		    cur->n > 1, o->width, out);
		used++;
	}
	for (size_t i = 0; i < cur->n; i++) {
		const struct status_master *m = &cur->ms[i];

		if (!o->every_task && i != sel)
			continue;
		if (o->height > 0 && used + 3 > o->height)
			break;
		put_line(out, "", o->width);
		snprintf(line, sizeof(line), "slots of %s:", task_name(m));
		put_line(out, line, o->width);
		used += 2 + slot_lines(prev, cur, m, o, o->height > 0 ?
		    o->height - used - 2 : 0, out);
	}
}
