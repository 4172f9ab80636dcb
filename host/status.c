/*
 * status.c - parses a master's status records and renders them, either as
 * process_manage's table (rows Master and Worker; columns pid, title,
 * memory(m), start, run(s), then count or work, then pmhost's own: state,
 * slot, restarts, last exit) or as one JSON document with the same facts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "status.h"
#include "util.h"

/* An integer field of r, or def when absent or not a number. */
static long long
num(const struct record *r, const char *key, long long def)
{
	const char *v = record_get(r, key);
	char *end;
	long long n;

	if (v == NULL || *v == '\0')
		return def;
	n = strtoll(v, &end, 10);
	return *end == '\0' ? n : def;
}

/* Copies a text field of r into dst (empty when absent). */
static void
text(const struct record *r, const char *key, char *dst, size_t size)
{
	const char *v = record_get(r, key);

	copy_str(dst, v != NULL ? v : "", size);
}

static void
parse_master(const struct record *r, struct status_master *m)
{
	text(r, "name", m->name, sizeof(m->name));
	text(r, "title", m->title, sizeof(m->title));
	text(r, "worker_title", m->worker_title, sizeof(m->worker_title));
	text(r, "state", m->state, sizeof(m->state));
	text(r, "config", m->config, sizeof(m->config));
	text(r, "plugin", m->plugin, sizeof(m->plugin));
	text(r, "run_dir", m->run_dir, sizeof(m->run_dir));
	m->pid = (long)num(r, "pid", -1);
	m->start_ms = num(r, "start_ms", 0);
	m->run_ms = num(r, "run_ms", 0);
	m->rss_kb = num(r, "rss_kb", -1);
	m->count = num(r, "count", 0);
	m->target = num(r, "target", 0);
	m->generation = num(r, "generation", 0);
	m->stop_timeout = num(r, "stop_timeout", -1);
}

static void
parse_worker(const struct record *r, struct status_worker *w)
{
	memset(w, 0, sizeof(*w));
	w->slot = (int)num(r, "slot", -1);
	w->pid = (long)num(r, "pid", -1);
	text(r, "state", w->state, sizeof(w->state));
	w->start_ms = num(r, "start_ms", 0);
	w->run_ms = num(r, "run_ms", -1);
	w->rss_kb = num(r, "rss_kb", -1);
	w->work = num(r, "work", 0);
	w->errors = num(r, "errors", 0);
	w->restarts = num(r, "restarts", 0);
	w->failures = num(r, "failures", 0);
	w->generation = num(r, "generation", 0);
	w->call_ms = num(r, "call_ms", -1);
	w->respawn_in_ms = num(r, "respawn_in_ms", -1);
	text(r, "last_exit", w->last_exit, sizeof(w->last_exit));
}

int
status_parse(char *reply, struct status_master *m, char *err, size_t errlen)
{
	char *line, *save = NULL;
	int have_master = 0, done = 0;

	memset(m, 0, sizeof(*m));
	for (line = strtok_r(reply, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		struct record r;

		if (strncmp(line, "error", 5) == 0 &&
		    (line[5] == ' ' || line[5] == '\0')) {
			snprintf(err, errlen, "%s", line[5] ? line + 6 :
			    "the master reported an error");
			status_free(m);
			return -1;
		}
		if (strcmp(line, "ok") == 0 || strncmp(line, "ok ", 3) == 0) {
			done = 1;
			break;
		}
		if (proto_parse(line, &r) < 0)
			continue;
		if (strcmp(r.type, "master") == 0) {
			parse_master(&r, m);
			have_master = 1;
		} else if (strcmp(r.type, "worker") == 0) {
			struct status_worker *w = realloc(m->workers,
			    (m->nworkers + 1) * sizeof(*w));

			if (w == NULL) {
				snprintf(err, errlen, "out of memory");
				status_free(m);
				return -1;
			}
			m->workers = w;
			parse_worker(&r, &w[m->nworkers++]);
		}
	}
	if (!have_master || !done) {
		snprintf(err, errlen, "incomplete status reply");
		status_free(m);
		return -1;
	}
	return 0;
}

void
status_free(struct status_master *m)
{
	free(m->workers);
	m->workers = NULL;
	m->nworkers = 0;
}

/* "2026-11-27 07:43:20" in local time. */
static void
fmt_time(long long ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || localtime_r(&t, &tm) == NULL)
		copy_str(buf, "-", size);
	else
		strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

/* RSS in MiB with one decimal, "-" if unknown. */
static void
fmt_mem(long long kb, char *buf, size_t size)
{
	if (kb < 0)
		copy_str(buf, "-", size);
	else
		snprintf(buf, size, "%.1f", (double)kb / 1024);
}

/* The cells of one table row. */
struct row {
	const char	*type;
	char		 pid[24], mem[24], start[32], run[24], num[24];
	const char	*title, *state;
	char		 slot[16], restarts[24];
	char		 last[STATUS_TEXT + 48];
};

enum { COL_PID, COL_TITLE, COL_MEM, COL_START, COL_RUN, COL_NUM, COL_STATE,
	COL_SLOT, COL_RESTARTS, NCOLS };

static const char *
cell(const struct row *r, int col)
{
	switch (col) {
	case COL_PID:		return r->pid;
	case COL_TITLE:		return r->title;
	case COL_MEM:		return r->mem;
	case COL_START:		return r->start;
	case COL_RUN:		return r->run;
	case COL_NUM:		return r->num;
	case COL_STATE:		return r->state;
	case COL_SLOT:		return r->slot;
	default:		return r->restarts;
	}
}

static void
master_row(const struct status_master *m, struct row *r)
{
	memset(r, 0, sizeof(*r));
	r->type = "Master";
	snprintf(r->pid, sizeof(r->pid), "%ld", m->pid);
	r->title = m->title;
	fmt_mem(m->rss_kb, r->mem, sizeof(r->mem));
	fmt_time(m->start_ms, r->start, sizeof(r->start));
	snprintf(r->run, sizeof(r->run), "%lld", m->run_ms / 1000);
	snprintf(r->num, sizeof(r->num), "%lld", m->count);
	r->state = m->state;
}

static void
worker_row(const struct status_master *m, const struct status_worker *w,
    struct row *r)
{
	memset(r, 0, sizeof(*r));
	r->type = "Worker";
	r->title = m->worker_title;
	r->state = w->state;
	snprintf(r->slot, sizeof(r->slot), "%d", w->slot);
	snprintf(r->restarts, sizeof(r->restarts), "%lld", w->restarts);
	if (w->pid > 0) {
		snprintf(r->pid, sizeof(r->pid), "%ld", w->pid);
		fmt_mem(w->rss_kb, r->mem, sizeof(r->mem));
		fmt_time(w->start_ms, r->start, sizeof(r->start));
		snprintf(r->run, sizeof(r->run), "%lld", w->run_ms / 1000);
		snprintf(r->num, sizeof(r->num), "%lld", w->work);
	} else {
		copy_str(r->pid, "-", sizeof(r->pid));
		copy_str(r->mem, "-", sizeof(r->mem));
		copy_str(r->start, "-", sizeof(r->start));
		copy_str(r->run, "-", sizeof(r->run));
		copy_str(r->num, "-", sizeof(r->num));
	}
	if (w->last_exit[0] == '\0' && w->respawn_in_ms >= 0)
		snprintf(r->last, sizeof(r->last), "respawn in %.1f s",
		    (double)w->respawn_in_ms / 1000);
	else if (w->last_exit[0] == '\0')
		copy_str(r->last, "-", sizeof(r->last));
	else if (w->respawn_in_ms >= 0)
		snprintf(r->last, sizeof(r->last), "%s; respawn in %.1f s",
		    w->last_exit, (double)w->respawn_in_ms / 1000);
	else
		copy_str(r->last, w->last_exit, sizeof(r->last));
}

/* Appends one line: a type column, then cells padded to widths. */
static void
put_line(struct buf *out, const char *type, const char *const *cells,
    int ncells, const int *width, const char *last)
{
	buf_printf(out, "%-8s", type);
	for (int c = 0; c < ncells; c++)
		buf_printf(out, "%-*s", width[c] + 2, cells[c]);
	if (last != NULL)
		buf_printf(out, "%s", last);
	/* No trailing blanks. */
	while (out->len > 0 && out->p[out->len - 1] == ' ')
		out->p[--out->len] = '\0';
	buf_add(out, "\n", 1);
}

static void
table_one(const struct status_master *m, struct buf *out)
{
	static const char *const mhead[] = { "pid", "title", "memory(m)",
	    "start", "run(s)", "count", "state" };
	static const char *const whead[] = { "pid", "title", "memory(m)",
	    "start", "run(s)", "work", "state", "slot", "restarts" };
	struct row mr, *wr;
	int width[NCOLS];
	const char *cells[NCOLS];

	if ((wr = calloc(m->nworkers + 1, sizeof(*wr))) == NULL) {
		out->oom = 1;
		return;
	}
	master_row(m, &mr);
	for (size_t i = 0; i < m->nworkers; i++)
		worker_row(m, &m->workers[i], &wr[i]);
	/* One set of widths, so master and worker columns line up. */
	for (int c = 0; c < NCOLS; c++) {
		width[c] = (int)strlen(whead[c]);
		if (c < 7 && (int)strlen(mhead[c]) > width[c])
			width[c] = (int)strlen(mhead[c]);
		if (c < 7 && (int)strlen(cell(&mr, c)) > width[c])
			width[c] = (int)strlen(cell(&mr, c));
		for (size_t i = 0; i < m->nworkers; i++)
			if ((int)strlen(cell(&wr[i], c)) > width[c])
				width[c] = (int)strlen(cell(&wr[i], c));
	}
	put_line(out, "", mhead, 7, width, NULL);
	for (int c = 0; c < 7; c++)
		cells[c] = cell(&mr, c);
	put_line(out, mr.type, cells, 7, width, NULL);
	put_line(out, "", whead, NCOLS, width, "last exit");
	for (size_t i = 0; i < m->nworkers; i++) {
		for (int c = 0; c < NCOLS; c++)
			cells[c] = cell(&wr[i], c);
		put_line(out, wr[i].type, cells, NCOLS, width, wr[i].last);
	}
	free(wr);
}

void
status_table(const struct status_master *ms, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_add(out, "\n", 1);
		table_one(&ms[i], out);
	}
}

/* Appends s as a JSON string. */
static void
json_str(struct buf *out, const char *s)
{
	buf_add(out, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_printf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(out, "\\u%04x", *p);
		else
			buf_add(out, (const char *)p, 1);
	}
	buf_add(out, "\"", 1);
}

/* ,"key":"value" (or null when empty and nullable) */
static void
json_kv_str(struct buf *out, const char *key, const char *v, int nullable)
{
	buf_printf(out, ",\"%s\":", key);
	if (nullable && v[0] == '\0')
		buf_add(out, "null", 4);
	else
		json_str(out, v);
}

/* ,"key":n (or null when n < 0 and nullable) */
static void
json_kv_num(struct buf *out, const char *key, long long v, int nullable)
{
	if (nullable && v < 0)
		buf_printf(out, ",\"%s\":null", key);
	else
		buf_printf(out, ",\"%s\":%lld", key, v);
}

static void
json_kv_secs(struct buf *out, const char *key, long long ms)
{
	if (ms < 0)
		buf_printf(out, ",\"%s\":null", key);
	else
		buf_printf(out, ",\"%s\":%.3f", key, (double)ms / 1000);
}

static void
json_kv_mb(struct buf *out, const char *key, long long kb)
{
	if (kb < 0)
		buf_printf(out, ",\"%s\":null", key);
	else
		buf_printf(out, ",\"%s\":%.1f", key, (double)kb / 1024);
}

static void
json_worker(const struct status_master *m, const struct status_worker *w,
    struct buf *out)
{
	char start[32] = "";
	int live = w->pid > 0;

	if (live)
		fmt_time(w->start_ms, start, sizeof(start));
	buf_printf(out, "{\"slot\":%d", w->slot);
	json_kv_num(out, "pid", live ? w->pid : -1, 1);
	json_kv_str(out, "title", m->worker_title, 0);
	json_kv_str(out, "state", w->state, 0);
	json_kv_mb(out, "memory_mb", live ? w->rss_kb : -1);
	json_kv_num(out, "memory_kb", live ? w->rss_kb : -1, 1);
	json_kv_str(out, "start", start, 1);
	json_kv_num(out, "start_unix_ms", live ? w->start_ms : -1, 1);
	json_kv_secs(out, "run_s", live ? w->run_ms : -1);
	json_kv_num(out, "work", live ? w->work : -1, 1);
	json_kv_num(out, "errors", live ? w->errors : -1, 1);
	json_kv_num(out, "restarts", w->restarts, 0);
	json_kv_num(out, "failures", w->failures, 0);
	json_kv_num(out, "generation", live ? w->generation : -1, 1);
	json_kv_secs(out, "call_s", w->call_ms);
	json_kv_secs(out, "respawn_in_s", w->respawn_in_ms);
	json_kv_str(out, "last_exit", w->last_exit, 1);
	buf_add(out, "}", 1);
}

static void
json_master(const struct status_master *m, struct buf *out)
{
	char start[32];

	fmt_time(m->start_ms, start, sizeof(start));
	buf_add(out, "{\"name\":", 8);
	json_str(out, m->name);
	json_kv_num(out, "pid", m->pid, 0);
	json_kv_str(out, "title", m->title, 0);
	json_kv_str(out, "state", m->state, 0);
	json_kv_mb(out, "memory_mb", m->rss_kb);
	json_kv_num(out, "memory_kb", m->rss_kb, 1);
	json_kv_str(out, "start", start, 0);
	json_kv_num(out, "start_unix_ms", m->start_ms, 0);
	json_kv_secs(out, "run_s", m->run_ms);
	json_kv_num(out, "count", m->count, 0);
	json_kv_num(out, "target", m->target, 0);
	json_kv_num(out, "generation", m->generation, 0);
	json_kv_num(out, "stop_timeout", m->stop_timeout, 1);
	json_kv_str(out, "config", m->config, 0);
	json_kv_str(out, "plugin", m->plugin, 0);
	json_kv_str(out, "run_dir", m->run_dir, 0);
	buf_add(out, ",\"workers\":[", 12);
	for (size_t i = 0; i < m->nworkers; i++) {
		if (i > 0)
			buf_add(out, ",", 1);
		json_worker(m, &m->workers[i], out);
	}
	buf_add(out, "]}", 2);
}

void
status_json(const struct status_master *ms, size_t n, struct buf *out)
{
	buf_add(out, "{\"masters\":[", 12);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_add(out, ",", 1);
		json_master(&ms[i], out);
	}
	buf_add(out, "]}\n", 3);
}
