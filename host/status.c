/*
 * status.c - the status schema's table (status.h), the records a master
 * writes by it, and the two renderings of a parsed reply: process_manage's
 * table (rows Master and Worker; columns pid, title, memory(m), start,
 * run(s), then count or work, then pmhost's own) and one JSON document.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hist.h"
#include "status.h"
#include "util.h"

enum rec_kind { M, W, P, E };
enum val_type { I, T };
enum json_form { J_INT, J_INTN, J_LIVE, J_SECS, J_MEM, J_TIME, J_TEXT,
	J_TEXTN, J_BOOL, J_RATE, J_USEC, J_HIST, J_COUNTS, J_NONE };
enum cell_form { C_INT, C_LIVE, C_TEXT, C_MEM, C_TIME, C_SECS, C_LAST,
	C_RATE, C_DUR };

static const struct field {
	const char	*key;
	unsigned char	 rec;
	unsigned char	 type;
	unsigned char	 json;
	const char	*json_key;
	const char	*column;
	unsigned char	 cell;
	unsigned char	 colno;
} fields[SK_COUNT_] = {
#define STATUS_ROW(id, key, rec, type, json, jkey, col, cell, no)	\
	[SK_##id] = { key, rec, type, json, jkey, col, cell, no },
	STATUS_FIELDS(STATUS_ROW)
#undef STATUS_ROW
};

static size_t utf8_len(const unsigned char *p);

#define NCOLS		16	/* the highest col# in the schema */
#define STATUS_CELL_MAX	320	/* a last exit and its respawn time */

void
status_put_num(struct buf *b, enum status_key k, long long v)
{
	proto_put_int(b, fields[k].key, v);
}

void
status_put_text(struct buf *b, enum status_key k, const char *v)
{
	proto_put(b, fields[k].key, v);
}

/* A decimal integer, all of val (as strtoll reads it); -1 if not. */
static int
parse_int(const char *val, long long *out)
{
	const char *p = val + (*val == '-');
	unsigned long long u = 0;
	char *end;
	int n = 0;

	/* Plain digits, too few to overflow: what a master sends. */
	for (; *p >= '0' && *p <= '9' && n < 18; p++, n++)
		u = u * 10 + (unsigned)(*p - '0');
	if (n > 0 && *p == '\0') {
		*out = *val == '-' ? -(long long)u : (long long)u;
		return 0;
	}
	if (*val == '\0')
		return -1;
	*out = strtoll(val, &end, 10);
	return *end == '\0' ? 0 : -1;
}

long long
status_num(const struct status_rec *r, enum status_key k, long long def)
{
	long long v;

	/* Checked when parsed: a field it has is a number. */
	if (!r->has[k] || fields[k].type != I ||
	    parse_int(r->base + r->off[k], &v) < 0)
		return def;
	return v;
}

const char *
status_text(const struct status_rec *r, enum status_key k)
{
	return r->has[k] ? r->base + r->off[k] : "";
}

/*
 * The schema's keys by (record kind, key), in an open-addressed table
 * built on first use: a 10 000-worker reply holds 300 000 keys.
 */
#define KEY_SLOTS	256	/* a power of two, > 2 * SK_COUNT_ */

static unsigned
key_hash(enum rec_kind rec, const char *key, size_t len)
{
	unsigned h = 2166136261u ^ (unsigned)rec;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	return h & (KEY_SLOTS - 1);
}

/* The field of key (len bytes) in a record of kind rec, or -1. */
static int
key_field(enum rec_kind rec, const char *key, size_t len)
{
	static signed char table[KEY_SLOTS];
	static int built;
	unsigned h;

	if (!built) {
		memset(table, -1, sizeof(table));
		for (int k = 0; k < SK_COUNT_; k++) {
			h = key_hash(fields[k].rec, fields[k].key,
			    strlen(fields[k].key));
			while (table[h] >= 0)
				h = (h + 1) & (KEY_SLOTS - 1);
			table[h] = (signed char)k;
		}
		built = 1;
	}
	for (h = key_hash(rec, key, len); table[h] >= 0;
	    h = (h + 1) & (KEY_SLOTS - 1)) {
		int k = table[h];

		if (fields[k].rec == rec && strncmp(fields[k].key, key,
		    len) == 0 && fields[k].key[len] == '\0')
			return k;
	}
	return -1;
}

/* Stores one decoded key=value of a record of kind rec. */
static void
rec_set(struct status_rec *r, enum rec_kind rec, const char *key,
    size_t keylen, const char *val)
{
	int k = key_field(rec, key, keylen);
	long long v;

	if (k < 0)
		return;
	r->off[k] = (uint32_t)(val - r->base);
	/* Not a number: as if absent. */
	r->has[k] = fields[k].type != I || parse_int(val, &v) == 0;
}

/* Splits "TYPE k=v k=v" in place into r; -1 if it is not such a line. */
static int
rec_parse(char *line, enum rec_kind rec, const char *base,
    struct status_rec *r)
{
	char *p = line;

	/* A field's place is read only where it has one. */
	memset(r->has, 0, sizeof(r->has));
	r->base = base;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return -1;
	while (*p != '\0' && *p != ' ')
		p++;
	while (*p != '\0') {
		char *tok, *eq = NULL;

		while (*p == ' ')
			p++;
		for (tok = p; *p != '\0' && *p != ' '; p++)
			if (*p == '=' && eq == NULL)
				eq = p;
		if (*p == ' ')
			*p++ = '\0';
		if (eq == NULL)
			continue;
		*eq = '\0';
		proto_decode(eq + 1);
		rec_set(r, rec, tok, (size_t)(eq - tok), eq + 1);
	}
	return 0;
}

int
status_parse(const char *reply, struct status_master *m, char *err,
    size_t errlen)
{
	size_t end = strlen(reply);
	char *line, *save = NULL;
	int have_master = 0, done = 0;

	memset(m, 0, sizeof(*m));
	if (end > UINT32_MAX) {
		snprintf(err, errlen, "status reply too large");
		return -1;
	}
	if ((m->mem = strdup(reply)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (line = strtok_r(m->mem, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "error", 5) == 0 &&
		    (line[5] == ' ' || line[5] == '\0')) {
			snprintf(err, errlen, "%s", line[5] && line[6] ?
			    line + 6 : "the master reported an error");
			status_free(m);
			return -1;
		}
		if (strcmp(line, "ok") == 0 || strncmp(line, "ok ", 3) == 0) {
			done = 1;
			break;
		}
		if (strncmp(line, "master ", 7) == 0) {
			rec_parse(line, M, m->mem, &m->m);
			have_master = 1;
		} else if (strncmp(line, "preload ", 8) == 0) {
			rec_parse(line, P, m->mem, &m->preload);
			m->has_preload = 1;
		} else if (strncmp(line, "exit ", 5) == 0 && m->nworkers > 0) {
			struct status_rec *e = realloc(m->exits,
			    (m->nexits + 1) * sizeof(*e));
			size_t *of = e == NULL ? NULL : realloc(m->exit_of,
			    (m->nexits + 1) * sizeof(*of));

			if (e != NULL)
				m->exits = e;
			if (of == NULL) {
				snprintf(err, errlen, "out of memory");
				status_free(m);
				return -1;
			}
			m->exit_of = of;
			of[m->nexits] = m->nworkers - 1;
			rec_parse(line, E, m->mem, &e[m->nexits++]);
		} else if (strncmp(line, "worker ", 7) == 0) {
			struct status_rec *w = m->workers;

			/* Doubling: thousands of workers, few copies. */
			if ((m->nworkers & (m->nworkers - 1)) == 0)
				w = realloc(m->workers, (m->nworkers == 0 ? 1 :
				    2 * m->nworkers) * sizeof(*w));
			if (w == NULL) {
				snprintf(err, errlen, "out of memory");
				status_free(m);
				return -1;
			}
			m->workers = w;
			rec_parse(line, W, m->mem, &w[m->nworkers++]);
		}
	}
	if (!have_master || !done) {
		snprintf(err, errlen, "incomplete status reply");
		status_free(m);
		return -1;
	}
	/* A worker without a title of its own shows its master's: its
	 * text, or the empty one at the end of the copy. */
	for (size_t i = 0; i < m->nworkers; i++)
		if (!m->workers[i].has[SK_W_TITLE]) {
			m->workers[i].off[SK_W_TITLE] =
			    m->m.has[SK_WORKER_TITLE] ?
			    m->m.off[SK_WORKER_TITLE] : (uint32_t)end;
			m->workers[i].has[SK_W_TITLE] = 1;
		}
	return 0;
}

void
status_free(struct status_master *m)
{
	free(m->workers);
	free(m->exits);
	free(m->exit_of);
	free(m->mem);
	memset(m, 0, sizeof(*m));
}

/* "2026-11-27 07:43:20" in local time. */
static void
fmt_time(long long ms, char *buf, size_t size)
{
	/* Workers started together share their second: the last one. */
	static time_t last_t = -1;
	static char last[32];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0) {
		copy_str(buf, "-", size);
		return;
	}
	if (t != last_t) {
		if (localtime_r(&t, &tm) == NULL) {
			copy_str(buf, "-", size);
			return;
		}
		strftime(last, sizeof(last), "%Y-%m-%d %H:%M:%S", &tm);
		last_t = t;
	}
	copy_str(buf, last, size);
}

/* n in decimal, without printf (a table has a dozen per row). */
static void
fmt_int(long long n, char *buf, size_t size)
{
	char digits[24], *p = digits + sizeof(digits);
	unsigned long long u = n < 0 ? -(unsigned long long)n :
	    (unsigned long long)n;

	*--p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (n < 0)
		*--p = '-';
	copy_str(buf, p, size);
}

/* The table cell of field k in record r. */
static void
cell_text(const struct status_rec *r, int k, char *buf, size_t size)
{
	long long n = fields[k].type == I ? status_num(r, (enum status_key)k,
	    -1) : -1, respawn;
	const char *t = status_text(r, (enum status_key)k);

	switch (fields[k].cell) {
	case C_INT:
	case C_LIVE:
		/* Absent: a count is 0, anything else unknown. */
		if (!r->has[k] && fields[k].json != J_INT)
			copy_str(buf, "-", size);
		else
			fmt_int(r->has[k] ? n : 0, buf, size);
		break;
	case C_MEM:
		if (n < 0)
			copy_str(buf, "-", size);
		else
			snprintf(buf, size, "%.1f", (double)n / 1024);
		break;
	case C_TIME:
		fmt_time(r->has[k] ? n : 0, buf, size);
		break;
	case C_SECS:
		if (n < 0)
			copy_str(buf, "-", size);
		else
			fmt_int(n / 1000, buf, size);
		break;
	case C_RATE:
		if (!r->has[k])
			copy_str(buf, "-", size);
		else
			snprintf(buf, size, "%.1f", (double)n / 1000);
		break;
	case C_DUR:
		/* A call time as a person reads it: 850us, 1.2ms, 3.4s. */
		if (!r->has[k] || n < 0)
			copy_str(buf, "-", size);
		else if (n < 1000)
			snprintf(buf, size, "%lldus", n);
		else if (n < 1000000)
			snprintf(buf, size, "%.1fms", (double)n / 1000);
		else
			snprintf(buf, size, "%.1fs", (double)n / 1000000);
		break;
	case C_LAST:
		respawn = status_num(r, SK_W_RESPAWN_IN_MS, -1);
		if (t[0] == '\0' && respawn >= 0)
			snprintf(buf, size, "respawn in %.1f s",
			    (double)respawn / 1000);
		else if (t[0] == '\0')
			copy_str(buf, "-", size);
		else if (respawn >= 0)
			snprintf(buf, size, "%s; respawn in %.1f s", t,
			    (double)respawn / 1000);
		else
			copy_str(buf, t, size);
		break;
	default:
		copy_str(buf, r->has[k] ? t : "-", size);
		break;
	}
}

/* The code point of the valid UTF-8 sequence at p and its length, or 0. */
static size_t
utf8_decode(const unsigned char *p, unsigned long *cp)
{
	size_t n = utf8_len(p);

	if (n == 1)
		*cp = p[0];
	else if (n == 2)
		*cp = (unsigned long)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
	else if (n == 3)
		*cp = (unsigned long)(p[0] & 0x0f) << 12 |
		    (unsigned long)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
	else if (n == 4)
		*cp = (unsigned long)(p[0] & 0x07) << 18 |
		    (unsigned long)(p[1] & 0x3f) << 12 |
		    (unsigned long)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
	return n;
}

/* A control or bidi formatting character: shown escaped, never raw. */
static int
unprintable(unsigned long cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x61c ||
	    cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069);
}

/* Columns a printable code point takes on a terminal: 0, 1 or 2. */
static int
cp_width(unsigned long cp)
{
	if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x1ab0 && cp <= 0x1aff) ||
	    (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0xfe20 && cp <= 0xfe2f) ||
	    cp == 0x200b || cp == 0x200c || cp == 0x200d || cp == 0xfeff)
		return 0;
	if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
	    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
	    (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
	    (cp >= 0xffe0 && cp <= 0xffe6) ||
	    (cp >= 0x1f300 && cp <= 0x1f64f) ||
	    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
	    (cp >= 0x20000 && cp <= 0x3fffd))
		return 2;
	return 1;
}

/*
 * Copies a cell for a terminal: control and bidi characters as \uXXXX,
 * bytes that are not UTF-8 as \xNN, so no cell can move the cursor,
 * reorder the line or break the alignment.
 */
static void
cell_clean(const char *in, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;

	while (*p != '\0' && o + 8 < size) {
		unsigned long cp = 0;
		size_t n = utf8_decode(p, &cp);

		if (n == 0)
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
		else if (unprintable(cp))
			o += (size_t)snprintf(out + o, size - o, "\\u%04lx", cp);
		else {
			memcpy(out + o, p, n);
			o += n;
		}
		p += n == 0 ? 1 : n;
	}
	out[o] = '\0';
}

/* The columns a cleaned cell takes on a terminal. */
static int
display_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int w = 0;

	while (*p != '\0') {
		unsigned long cp = 0;
		size_t n = utf8_decode(p, &cp);

		w += n == 0 ? 1 : cp_width(cp);
		p += n == 0 ? 1 : n;
	}
	return w;
}

/* The field filling column col (1-based) of a record kind; -1: none. */
static int
column_field(enum rec_kind rec, int col)
{
	for (int k = 0; k < SK_COUNT_; k++)
		if (fields[k].rec == rec && fields[k].colno == col)
			return k;
	return -1;
}

/* A record kind's columns: the field of each, and how many it fills. */
struct columns {
	int	 field[NCOLS];
	int	 last;
};

static void
columns_of(enum rec_kind rec, struct columns *cols)
{
	cols->last = 0;
	for (int c = 1; c <= NCOLS; c++)
		if ((cols->field[c - 1] = column_field(rec, c)) >= 0)
			cols->last = c;
}

/*
 * A table row: its cells, in column order, as offsets into the table's
 * text (each cell ends with a NUL), and the columns each takes on a
 * terminal.  Thousands of workers make thousands of rows: a row holds
 * no text of its own.
 */
struct row {
	const char	*type;
	int		 ncols;
	size_t		 off[NCOLS];
	int		 width[NCOLS];
};

/*
 * Appends a cell, cleaned for a terminal, to text, and returns the
 * columns it takes.  Printable ASCII, what nearly every cell is, is
 * copied as it is.
 */
static int
cell_put(struct buf *text, const char *raw)
{
	char clean[STATUS_CELL_MAX];
	const unsigned char *p = (const unsigned char *)raw;
	size_t n;

	while (*p >= 0x20 && *p < 0x7f)
		p++;
	if (*p == '\0') {
		n = (size_t)(p - (const unsigned char *)raw);
		buf_add(text, raw, n + 1);
		return (int)n;
	}
	cell_clean(raw, clean, sizeof(clean));
	buf_add(text, clean, strlen(clean) + 1);
	return display_width(clean);
}

static void
make_row(const struct status_rec *r, enum rec_kind rec,
    const struct columns *cols, struct row *row, struct buf *text)
{
	row->type = rec == M ? "Master" : rec == P ? "Preload" : "Worker";
	row->ncols = cols->last;
	for (int c = 0; c < cols->last; c++) {
		char raw[STATUS_CELL_MAX];
		int k = cols->field[c];

		/* A column this kind does not fill: a dash. */
		if (k < 0)
			copy_str(raw, "-", sizeof(raw));
		else
			cell_text(r, k, raw, sizeof(raw));
		row->off[c] = text->len;
		row->width[c] = cell_put(text, raw);
	}
}

/* Appends one line: a type column, then cells padded to widths. */
static void
put_line(struct buf *out, const char *type, const char *const *cells,
    const int *cellw, int ncells, const int *width)
{
	buf_printf(out, "%-8s", type);
	for (int c = 0; c < ncells; c++) {
		/* Padded by what a terminal shows, not by bytes. */
		int pad = c == ncells - 1 ? 0 : width[c] + 2 - cellw[c];
		size_t n = strlen(cells[c]);

		if (buf_reserve(out, n + (size_t)(pad > 0 ? pad : 0)) < 0)
			return;
		memcpy(out->p + out->len, cells[c], n);
		out->len += n;
		if (pad > 0) {
			memset(out->p + out->len, ' ', (size_t)pad);
			out->len += (size_t)pad;
		}
		out->p[out->len] = '\0';
	}
	/* No trailing blanks. */
	while (out->len > 0 && out->p[out->len - 1] == ' ')
		out->p[--out->len] = '\0';
	buf_add(out, "\n", 1);
}

/* A row's line. */
static void
put_row(struct buf *out, const struct row *row, const struct buf *text,
    const int *width)
{
	const char *cells[NCOLS];

	for (int c = 0; c < row->ncols; c++)
		cells[c] = text->p + row->off[c];
	put_line(out, row->type, cells, row->width, row->ncols, width);
}

/* The headings of a record kind's columns, and the columns each takes. */
static int
headings(enum rec_kind rec, const char **h, int *w)
{
	int n = 0;

	for (int c = 1; c <= NCOLS; c++) {
		int k = column_field(rec, c);

		if (k < 0)
			break;
		h[n] = fields[k].column;
		w[n] = display_width(h[n]);
		n++;
	}
	return n;
}

static void
widen(int *width, const int *w, int n)
{
	for (int c = 0; c < n; c++)
		if (w[c] > width[c])
			width[c] = w[c];
}

static void
table_one(const struct status_master *m, struct buf *out)
{
	const char *mhead[NCOLS], *whead[NCOLS];
	int width[NCOLS] = { 0 }, mw[NCOLS], ww[NCOLS], nm, nw;
	struct columns mc, pc, wc;
	struct row mr, pr, *wr;
	struct buf text = { 0 };

	if ((wr = calloc(m->nworkers + 1, sizeof(*wr))) == NULL) {
		out->oom = 1;
		return;
	}
	columns_of(M, &mc);
	columns_of(P, &pc);
	columns_of(W, &wc);
	nm = headings(M, mhead, mw);
	nw = headings(W, whead, ww);
	make_row(&m->m, M, &mc, &mr, &text);
	make_row(&m->preload, P, &pc, &pr, &text);
	for (size_t i = 0; i < m->nworkers; i++)
		make_row(&m->workers[i], W, &wc, &wr[i], &text);
	if (text.oom) {
		out->oom = 1;
		goto done;
	}
	/* One set of widths, so master and worker columns line up. */
	widen(width, ww, nw);
	widen(width, mw, nm);
	widen(width, mr.width, mr.ncols);
	if (m->has_preload)
		widen(width, pr.width, pr.ncols);
	for (size_t i = 0; i < m->nworkers; i++)
		widen(width, wr[i].width, wr[i].ncols);
	/* A heading is padded like a cell: the last column has no width. */
	put_line(out, "", mhead, mw, nm, width);
	put_row(out, &mr, &text, width);
	if (m->has_preload)
		put_row(out, &pr, &text, width);
	if (m->nworkers > 0)
		put_line(out, "", whead, ww, nw, width);
	for (size_t i = 0; i < m->nworkers; i++)
		put_row(out, &wr[i], &text, width);
done:
	free(text.p);
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

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[0] == 0xe0 && p[1] < 0xa0) ||
		    (p[0] == 0xed && p[1] >= 0xa0))
			return 0;
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80 || (p[0] == 0xf0 && p[1] < 0x90) ||
		    (p[0] == 0xf4 && p[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

/*
 * Appends s as a JSON string.  Output is always valid JSON: each byte
 * that does not start a valid UTF-8 sequence becomes U+FFFD.
 */
static void
json_str(struct buf *out, const char *s)
{
	buf_add(out, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; ) {
		const unsigned char *run = p;
		size_t n;

		/* Printable ASCII but the two escaped: as it is, in one go. */
		while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			buf_add(out, (const char *)run, (size_t)(p - run));
		if (*p == '\0')
			break;
		n = utf8_len(p);
		if (*p == '"' || *p == '\\')
			buf_printf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(out, "\\u%04x", *p);
		else if (n == 0)
			buf_add(out, "\\ufffd", 6);
		else
			buf_add(out, (const char *)p, n);
		p += n == 0 ? 1 : n;
	}
	buf_add(out, "\"", 1);
}

/*
 * A histogram's text (hist.h) as {"buckets":[{"le":..,"count":..}...],
 * "sum_s":..,"count":..}, its counts cumulative as in Prometheus; only
 * the buckets calls fell in are listed, and "+Inf".
 */
static void
json_hist(const char *text, long long sum_ns, struct buf *out)
{
	struct hist h;
	uint64_t cum = 0;

	memset(&h, 0, sizeof(h));
	if (hist_parse(text, &h) < 0)
		memset(&h, 0, sizeof(h));
	buf_add(out, "{\"buckets\":[", 12);
	for (int b = 0; b < SB_BUCKETS; b++) {
		cum += h.count[b];
		if (h.count[b] != 0 || b == SB_BUCKETS - 1)
			buf_printf(out, "%s{\"le\":\"%s\",\"count\":%llu}",
			    out->p[out->len - 1] == '[' ? "" : ",", hist_le(b),
			    (unsigned long long)cum);
	}
	buf_printf(out, "],\"sum_s\":%.6f,\"count\":%llu}",
	    (double)sum_ns / 1e9, (unsigned long long)cum);
}

/* "a:1,b:2" as {"a":1,"b":2}; names are plain words. */
static void
json_counts(const char *text, struct buf *out)
{
	const char *p = text;
	int first = 1;

	buf_add(out, "{", 1);
	while (*p != '\0') {
		size_t nl = strcspn(p, ":,");
		char name[64];

		if (p[nl] != ':' || nl == 0 || nl >= sizeof(name))
			break;
		memcpy(name, p, nl);
		name[nl] = '\0';
		buf_printf(out, "%s", first ? "" : ",");
		json_str(out, name);
		buf_printf(out, ":%llu", strtoull(p + nl + 1, NULL, 10));
		first = 0;
		p += nl + 1;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	buf_add(out, "}", 1);
}

/* ,"key":... for field k of record r, in its JSON form. */
static void
json_field(const struct status_rec *r, int k, struct buf *out, int first)
{
	const struct field *f = &fields[k];
	const char *key = f->json_key != NULL ? f->json_key : f->key;
	long long n = status_num(r, (enum status_key)k, -1);
	const char *t = status_text(r, (enum status_key)k);
	char when[32], num[24];

	/* Without printf where it can: 10 000 workers, 40 fields each. */
	if (!first)
		buf_add(out, ",", 1);
	buf_add(out, "\"", 1);
	buf_add(out, key, strlen(key));
	if (f->json == J_MEM)
		buf_add(out, "_mb", 3);
	buf_add(out, "\":", 2);
	switch (f->json) {
	case J_INT:
		fmt_int(status_num(r, (enum status_key)k, 0), num, sizeof(num));
		buf_add(out, num, strlen(num));
		break;
	case J_INTN:
	case J_LIVE:
		if (!r->has[k] || (f->json == J_INTN && n < 0)) {
			buf_add(out, "null", 4);
		} else {
			fmt_int(n, num, sizeof(num));
			buf_add(out, num, strlen(num));
		}
		break;
	case J_SECS:
		if (n < 0)
			buf_add(out, "null", 4);
		else
			buf_printf(out, "%.3f", (double)n / 1000);
		break;
	case J_MEM:
		if (n < 0)
			buf_printf(out, "null,\"%s_kb\":null", key);
		else
			buf_printf(out, "%.1f,\"%s_kb\":%lld", (double)n / 1024,
			    key, n);
		break;
	case J_TIME:
		if (!r->has[k]) {
			buf_printf(out, "null,\"%s_unix_ms\":null", key);
		} else {
			fmt_time(n, when, sizeof(when));
			json_str(out, when);
			buf_printf(out, ",\"%s_unix_ms\":%lld", key, n);
		}
		break;
	case J_BOOL:
		buf_printf(out, "%s", status_num(r, (enum status_key)k, 0) ?
		    "true" : "false");
		break;
	case J_RATE:
		buf_printf(out, "%.3f", (double)status_num(r,
		    (enum status_key)k, 0) / 1000);
		break;
	case J_USEC:
		if (!r->has[k] || n < 0)
			buf_add(out, "null", 4);
		else
			buf_printf(out, "%.6f", (double)n / 1e6);
		break;
	case J_HIST:
		json_hist(t, status_num(r, (enum status_key)(k + 1), 0), out);
		break;
	case J_COUNTS:
		json_counts(t, out);
		break;
	case J_TEXTN:
		if (t[0] == '\0') {
			buf_add(out, "null", 4);
			break;
		}
		/* FALLTHROUGH */
	default:
		json_str(out, t);
		break;
	}
}

/* The JSON object of one record (without its closing brace). */
static void
json_rec(const struct status_rec *r, enum rec_kind rec, struct buf *out)
{
	int first = 1;

	buf_add(out, "{", 1);
	for (int k = 0; k < SK_COUNT_; k++) {
		if (fields[k].rec != rec || fields[k].json == J_NONE)
			continue;
		json_field(r, k, out, first);
		first = 0;
	}
}

static void
json_master(const struct status_master *m, struct buf *out)
{
	json_rec(&m->m, M, out);
	buf_add(out, ",\"preload\":", 11);
	if (m->has_preload) {
		json_rec(&m->preload, P, out);
		buf_add(out, "}", 1);
	} else {
		buf_add(out, "null", 4);
	}
	buf_add(out, ",\"workers\":[", 12);
	for (size_t i = 0; i < m->nworkers; i++) {
		int first = 1;

		if (i > 0)
			buf_add(out, ",", 1);
		json_rec(&m->workers[i], W, out);
		/* Its slot's last exits, oldest first. */
		buf_add(out, ",\"exits\":[", 10);
		for (size_t k = 0; k < m->nexits; k++) {
			if (m->exit_of[k] != i)
				continue;
			if (!first)
				buf_add(out, ",", 1);
			json_rec(&m->exits[k], E, out);
			buf_add(out, "}", 1);
			first = 0;
		}
		buf_add(out, "]}", 2);
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

/* --- Prometheus text exposition ------------------------------------------ */

/* A label value, escaped as the format wants (\\, \", \n). */
static void
prom_label(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			buf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			buf_add(out, "\\n", 2);
		else
			buf_add(out, s, 1);
	}
}

static void
prom_head(struct buf *out, const char *name, const char *type,
    const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* name{task="T"[,slot="S"]} value */
static void
prom_sample(struct buf *out, const char *name, const struct status_master *m,
    long long slot, const char *extra, double v)
{
	buf_printf(out, "%s{task=\"", name);
	prom_label(out, status_text(&m->m, SK_NAME));
	buf_add(out, "\"", 1);
	if (slot >= 0)
		buf_printf(out, ",slot=\"%lld\"", slot);
	if (extra != NULL)
		buf_printf(out, ",%s", extra);
	buf_printf(out, "} %.15g\n", v);
}

/*
 * Did m's master answer?  Not when its row says it died, or (the
 * exporter's rows) that it did not answer in time.
 */
static int
prom_up(const struct status_master *m)
{
	const char *state = status_text(&m->m, SK_STATE);

	return strcmp(state, "dead") != 0 && strcmp(state, "unreachable") != 0;
}

/* A per-slot counter or gauge over every live master's workers. */
static void
prom_slots(struct buf *out, const struct status_master *ms, size_t n,
    const char *name, const char *type, const char *help, enum status_key k,
    double scale)
{
	prom_head(out, name, type, help);
	for (size_t i = 0; i < n; i++) {
		long long last = -1;

		for (size_t w = 0; w < ms[i].nworkers; w++) {
			const struct status_rec *r = &ms[i].workers[w];
			long long slot = status_num(r, SK_W_SLOT, -1);

			/* One series a slot: a replacement repeats its slot. */
			if (!r->has[k] || slot == last)
				continue;
			last = slot;
			prom_sample(out, name, &ms[i], slot, NULL,
			    (double)status_num(r, k, 0) * scale);
		}
	}
}

void
status_prometheus(const struct status_master *ms, size_t n, struct buf *out)
{
	/* Every state status shows a slot in (serve.c). */
	static const char *const states[] = { "starting", "init", "held",
	    "idle", "busy", "exiting", "stopping", "backoff", "crash-loop",
	    "pending", "done" };

	prom_head(out, "pmhost_up", "gauge",
	    "Whether the task's master answered (1), or died or did not "
	    "answer (0).");
	for (size_t i = 0; i < n; i++)
		prom_sample(out, "pmhost_up", &ms[i], -1, NULL, prom_up(&ms[i]));
	prom_head(out, "pmhost_master_start_time_seconds", "gauge",
	    "When the task's master started, in seconds since the epoch.");
	for (size_t i = 0; i < n; i++)
		if (ms[i].m.has[SK_START_MS])
			prom_sample(out, "pmhost_master_start_time_seconds",
			    &ms[i], -1, NULL, (double)status_num(&ms[i].m,
			    SK_START_MS, 0) / 1000);
	prom_head(out, "pmhost_workers", "gauge",
	    "Worker slots of the task by state.");
	for (size_t i = 0; i < n; i++) {
		if (!prom_up(&ms[i]))
			continue;
		for (size_t s = 0; s < sizeof(states) / sizeof(states[0]);
		    s++) {
			char label[48];
			size_t count = 0;

			for (size_t w = 0; w < ms[i].nworkers; w++)
				count += strcmp(status_text(&ms[i].workers[w],
				    SK_W_STATE), states[s]) == 0;
			snprintf(label, sizeof(label), "state=\"%s\"",
			    states[s]);
			prom_sample(out, "pmhost_workers", &ms[i], -1, label,
			    (double)count);
		}
	}
	prom_slots(out, ms, n, "pmhost_worker_calls_total", "counter",
	    "work() calls made in the slot, by all its workers.",
	    SK_W_CALLS_TOTAL, 1);
	prom_slots(out, ms, n, "pmhost_worker_failed_calls_total", "counter",
	    "work() calls that returned an error, in the slot.",
	    SK_W_ERRORS_TOTAL, 1);
	prom_slots(out, ms, n, "pmhost_worker_restarts_total", "counter",
	    "Workers started in the slot after its first.", SK_W_RESTARTS, 1);
	prom_slots(out, ms, n, "pmhost_worker_backoff_seconds_total",
	    "counter", "Time the slot spent waiting out backoffs.",
	    SK_W_BACKOFF_MS, 0.001);
	prom_slots(out, ms, n, "pmhost_worker_memory_bytes", "gauge",
	    "Resident memory of the slot's worker.", SK_W_RSS_KB, 1024);
	prom_head(out, "pmhost_worker_exits_total", "counter",
	    "Workers of the task that ended, by reason.");
	for (size_t i = 0; i < n; i++) {
		const char *p = status_text(&ms[i].m, SK_EXITS_BY);

		while (*p != '\0') {
			size_t nl = strcspn(p, ":,");
			char label[80];

			if (p[nl] != ':' || nl >= 48)
				break;
			snprintf(label, sizeof(label), "reason=\"%.*s\"",
			    (int)nl, p);
			prom_sample(out, "pmhost_worker_exits_total", &ms[i],
			    -1, label, strtod(p + nl + 1, NULL));
			p += nl + 1;
			p += strcspn(p, ",");
			if (*p == ',')
				p++;
		}
	}
	prom_head(out, "pmhost_work_duration_seconds", "histogram",
	    "Time work() calls took (sampled in executeUSleep 0 workers).");
	for (size_t i = 0; i < n; i++) {
		struct hist h;
		uint64_t cum = 0;

		if (!prom_up(&ms[i]) || !ms[i].m.has[SK_HIST] ||
		    hist_parse(status_text(&ms[i].m, SK_HIST), &h) < 0)
			continue;
		for (int b = 0; b < SB_BUCKETS; b++) {
			char label[32];

			cum += h.count[b];
			snprintf(label, sizeof(label), "le=\"%s\"", hist_le(b));
			prom_sample(out, "pmhost_work_duration_seconds_bucket",
			    &ms[i], -1, label, (double)cum);
		}
		prom_sample(out, "pmhost_work_duration_seconds_sum", &ms[i],
		    -1, NULL, (double)status_num(&ms[i].m, SK_HIST_SUM_NS, 0) /
		    1e9);
		prom_sample(out, "pmhost_work_duration_seconds_count", &ms[i],
		    -1, NULL, (double)cum);
	}
}
