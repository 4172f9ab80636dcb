/*
 * fuzz_reply.c - libFuzzer target for what a client makes of a master's
 * answer: status_parse() and its two renderings, status_table() and
 * status_json(); reply_ok(), the verdict of the other commands; and the
 * record encoding (proto_put(), proto_parse(), proto_decode()).  Any
 * bytes, as if a master (or whatever listens on NAME.sock) sent them, must
 * give a refusal or sound output; never a crash, a leak or undefined
 * behaviour.
 *
 * Invariants checked on every input (a broken one aborts with its text):
 *   - status_parse() accepts exactly a reply whose first verdict line is
 *     "ok" and follows a master record; a refusal has a one-line,
 *     non-empty message (the master's error text when it sent one) and
 *     leaves nothing allocated; an acceptance ties every exit record to a
 *     worker record before it, in order;
 *   - status_table(): one heading and one row per record, a blank line
 *     between masters; every line valid UTF-8 without control or bidi
 *     characters and without trailing blanks;
 *   - status_json(): one line of valid JSON (jansson, duplicate keys
 *     refused) with as many masters, workers and exits as were parsed,
 *     and texts that are valid UTF-8 shown unchanged;
 *   - reply_ok(): the verdict and text of the last non-empty line, the
 *     text one line inside the reply;
 *   - a value proto_put() encodes has no blank, '=' or control byte and
 *     decodes back unchanged through proto_parse(); proto_decode() never
 *     lengthens a string.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "client.h"
#include "proto.h"
#include "status.h"

#define EXPECT(cond)	do {						\
	if (!(cond))							\
		broken(__LINE__, #cond, NULL);				\
} while (0)

#define EXPECT_MSG(cond, msg)	do {					\
	if (!(cond))							\
		broken(__LINE__, #cond, (msg));				\
} while (0)

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Names the broken invariant (and the text at fault), then aborts. */
static _Noreturn void
broken(int line, const char *what, const char *msg)
{
	fprintf(stderr, "fuzz_reply.c:%d: invariant broken: %s\n", line,
	    what);
	if (msg != NULL)
		fprintf(stderr, "  text: \"%s\"\n", msg);
	abort();
}

/*
 * The code point of the UTF-8 sequence at p[0..n) and its length, or 0
 * if it is not valid (overlong, a surrogate, past U+10FFFF, cut short).
 * Written apart from status.c's so that the two check each other.
 */
static size_t
utf8_next(const unsigned char *p, size_t n, unsigned long *cp)
{
	size_t len;
	unsigned long c;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		c = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		c = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
	    (len == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Is s[0..n) valid UTF-8? */
static int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long cp;

	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_next(p + i, n - i, &cp)) == 0)
			return 0;
	return 1;
}

/* A table line: UTF-8, nothing that moves the cursor or reorders text. */
static void
check_table_line(const char *line, size_t n)
{
	const unsigned char *p = (const unsigned char *)line;
	unsigned long cp;
	char shown[512];

	snprintf(shown, sizeof(shown), "%.*s", (int)n, line);
	EXPECT_MSG(n == 0 || (line[n - 1] != ' ' && line[n - 1] != '\t'),
	    shown);
	for (size_t i = 0, k; i < n; i += k) {
		k = utf8_next(p + i, n - i, &cp);
		EXPECT_MSG(k != 0, shown);
		EXPECT_MSG(cp >= 0x20 && !(cp >= 0x7f && cp <= 0x9f) &&
		    cp != 0x61c && cp != 0x200e && cp != 0x200f &&
		    !(cp >= 0x202a && cp <= 0x202e) &&
		    !(cp >= 0x2066 && cp <= 0x2069), shown);
	}
	/* Headings start blank; rows with their record's name. */
	EXPECT_MSG(n == 0 || strncmp(line, "        ", 8) == 0 ||
	    strncmp(line, "Master  ", 8) == 0 ||
	    strncmp(line, "Preload ", 8) == 0 ||
	    strncmp(line, "Worker  ", 8) == 0, shown);
}

/* The table of n copies of m: its lines, their count and their text. */
static void
check_table(const struct status_master *m, size_t n)
{
	struct status_master ms[2];
	struct buf out = { 0 };
	size_t lines = 0, per = 2 + (m->has_preload ? 1 : 0) +
	    (m->nworkers > 0 ? 1 + m->nworkers : 0);

	for (size_t i = 0; i < n; i++)
		ms[i] = *m;
	status_table(ms, n, &out);
	EXPECT(!out.oom);
	EXPECT(out.len > 0 && out.p[out.len - 1] == '\n');
	EXPECT(strlen(out.p) == out.len);
	for (const char *l = out.p; *l != '\0'; ) {
		const char *e = strchr(l, '\n');

		check_table_line(l, (size_t)(e - l));
		lines++;
		l = e + 1;
	}
	EXPECT(lines == n * per + (n - 1));
	buf_free(&out);
}

/* Is the JSON value of key in o exactly the text t (if t is UTF-8)? */
static void
check_json_text(json_t *o, const char *key, const char *t)
{
	json_t *v = json_object_get(o, key);

	EXPECT_MSG(v != NULL, key);
	if (!utf8_valid(t, strlen(t)))
		return;
	EXPECT_MSG(json_is_string(v) && strcmp(json_string_value(v), t) == 0,
	    key);
}

/* The JSON document of n copies of m, against the parsed records. */
static void
check_json(const struct status_master *m, size_t n)
{
	struct status_master ms[2];
	struct buf out = { 0 };
	json_error_t jerr;
	json_t *root, *masters;

	for (size_t i = 0; i < n; i++)
		ms[i] = *m;
	status_json(ms, n, &out);
	EXPECT(!out.oom);
	EXPECT(strlen(out.p) == out.len);
	EXPECT(out.len > 0 && strchr(out.p, '\n') == out.p + out.len - 1);
	root = json_loads(out.p, JSON_REJECT_DUPLICATES, &jerr);
	EXPECT_MSG(root != NULL, jerr.text);
	masters = json_object_get(root, "masters");
	EXPECT(json_is_array(masters) && json_array_size(masters) == n);
	for (size_t i = 0; i < n; i++) {
		json_t *jm = json_array_get(masters, i), *ws, *pre;
		size_t exits = 0;

		EXPECT(json_is_object(jm));
		EXPECT(json_is_integer(json_object_get(jm, "pid")));
		EXPECT(json_is_integer(json_object_get(jm, "count")));
		check_json_text(jm, "name", status_text(&m->m, SK_NAME));
		check_json_text(jm, "config", status_text(&m->m, SK_CONFIG));
		pre = json_object_get(jm, "preload");
		EXPECT(m->has_preload ? json_is_object(pre) : json_is_null(pre));
		ws = json_object_get(jm, "workers");
		EXPECT(json_is_array(ws) && json_array_size(ws) == m->nworkers);
		for (size_t w = 0; w < m->nworkers; w++) {
			json_t *jw = json_array_get(ws, w);
			json_t *ex = json_object_get(jw, "exits");

			EXPECT(json_is_array(ex));
			exits += json_array_size(ex);
			check_json_text(jw, "state",
			    status_text(&m->workers[w], SK_W_STATE));
		}
		EXPECT(exits == m->nexits);
	}
	json_decref(root);
	buf_free(&out);
}

/*
 * status_parse()'s contract, read line by line: "error" or "ok" ends the
 * reply; it is accepted if "ok" came first, after a master record.
 * Returns 1 (accept) or 0, and the error text the master sent (or NULL).
 */
static int
status_expected(const char *s, const char **etext, size_t *elen)
{
	int have_master = 0;

	*etext = NULL;
	*elen = 0;
	while (*s != '\0') {
		size_t n = strcspn(s, "\n");

		if ((n == 5 || (n > 5 && s[5] == ' ')) &&
		    strncmp(s, "error", 5) == 0) {
			if (n > 6) {
				*etext = s + 6;
				*elen = n - 6;
			}
			return 0;
		}
		if ((n == 2 || (n > 2 && s[2] == ' ')) &&
		    strncmp(s, "ok", 2) == 0)
			return have_master;
		if (n >= 7 && strncmp(s, "master ", 7) == 0)
			have_master = 1;
		s += n + (s[n] == '\n');
	}
	return 0;
}

/* status_parse() and, on success, both renderings. */
static void
check_status(const char *reply)
{
	static const struct status_master zero;
	struct status_master m;
	char err[512];
	const char *etext;
	size_t elen;
	int want = status_expected(reply, &etext, &elen);
	int rc;

	err[0] = '\0';
	rc = status_parse(reply, &m, err, sizeof(err));
	EXPECT(rc == 0 || rc == -1);
	EXPECT((rc == 0) == want);
	if (rc < 0) {
		EXPECT(memcmp(&m, &zero, sizeof(m)) == 0);
		EXPECT(err[0] != '\0');
		EXPECT_MSG(strchr(err, '\n') == NULL, err);
		if (etext != NULL && elen < sizeof(err))
			EXPECT_MSG(strlen(err) == elen &&
			    strncmp(err, etext, elen) == 0, err);
		return;
	}
	EXPECT(m.mem != NULL);
	EXPECT(m.nworkers == 0 || m.workers != NULL);
	for (size_t k = 0; k < m.nexits; k++) {
		EXPECT(m.exit_of[k] < m.nworkers);
		EXPECT(k == 0 || m.exit_of[k - 1] <= m.exit_of[k]);
	}
	for (size_t w = 0; w < m.nworkers; w++)
		EXPECT(m.workers[w].has[SK_W_TITLE]);
	check_table(&m, 1);
	check_table(&m, 2);
	check_json(&m, 1);
	check_json(&m, 2);
	status_free(&m);
	EXPECT(memcmp(&m, &zero, sizeof(m)) == 0);
}

/* Does text hold exactly the n bytes at want? */
static int
same_text(const char *text, const char *want, size_t n)
{
	return strlen(text) == n && memcmp(text, want, n) == 0;
}

/*
 * reply_ok() against the last non-empty line of reply[0..len): its
 * verdict, and its text without the "ok "/"error " and the newline.
 * Last, as reply_ok() may cut the line's end in place.
 */
static void
check_verdict(char *reply, size_t len)
{
	struct buf b = { reply, len, len + 1, 0 };
	const char *text, *last = NULL;
	char line[512];
	size_t lastlen = 0, tlen;
	int ok, want;

	for (const char *s = reply; *s != '\0'; ) {
		size_t n = strcspn(s, "\n");

		if (n > 0) {
			last = s;
			lastlen = n;
		}
		s += n + (s[n] == '\n');
	}
	snprintf(line, sizeof(line), "%.*s", (int)lastlen,
	    last != NULL ? last : "");
	ok = reply_ok(&b, &text);
	EXPECT(ok == 0 || ok == 1);
	tlen = strlen(text);
	EXPECT_MSG(memchr(text, '\n', tlen) == NULL, line);
	if (last == NULL) {
		/* Nothing to go by: an error that says so. */
		EXPECT(ok == 0 && tlen > 0);
		return;
	}
	EXPECT_MSG(tlen == 0 || (text >= reply && text + tlen <= reply + len),
	    line);
	want = lastlen >= 2 && strncmp(last, "ok", 2) == 0 &&
	    (lastlen == 2 || last[2] == ' ');
	EXPECT_MSG(ok == want, line);
	if (ok)
		EXPECT_MSG(lastlen == 2 ? tlen == 0 :
		    same_text(text, last + 3, lastlen - 3), line);
	else if (lastlen > 6 && strncmp(last, "error ", 6) == 0)
		EXPECT_MSG(same_text(text, last + 6, lastlen - 6), line);
	else
		EXPECT_MSG(same_text(text, last, lastlen), line);
	EXPECT_MSG(ok || tlen > 0, line);
}

/* proto_put() then proto_parse() gives the value back. */
static void
check_encoding(const char *value)
{
	struct buf b = { 0 };
	struct record r;
	size_t vlen = strlen(value);
	char *copy;

	buf_add(&b, "rec", 3);
	proto_put(&b, "k", value);
	EXPECT(!b.oom);
	EXPECT(strncmp(b.p, "rec k=", 6) == 0);
	for (const unsigned char *p = (unsigned char *)b.p + 6; *p; p++)
		EXPECT(*p > ' ' && *p < 0x7f && *p != '=');
	EXPECT(proto_parse(b.p, &r) == 0);
	EXPECT(strcmp(r.type, "rec") == 0);
	EXPECT(r.n == 1 && strcmp(r.key[0], "k") == 0);
	EXPECT(strlen(r.val[0]) == vlen && memcmp(r.val[0], value, vlen) == 0);
	EXPECT(record_get(&r, "k") == r.val[0]);
	buf_free(&b);

	if ((copy = strdup(value)) == NULL)
		abort();
	proto_decode(copy);
	EXPECT(strlen(copy) <= vlen);
	if (strchr(value, '%') == NULL)
		EXPECT(strcmp(copy, value) == 0);
	free(copy);
}

/* proto_parse() on each line: pointers into the line, keys bounded. */
static void
check_records(const char *reply)
{
	char *copy = strdup(reply), *save = NULL;
	size_t clen = strlen(reply);

	if (copy == NULL)
		abort();
	for (char *l = strtok_r(copy, "\n", &save); l != NULL;
	    l = strtok_r(NULL, "\n", &save)) {
		struct record r;

		if (proto_parse(l, &r) < 0)
			continue;
		EXPECT(r.n >= 0 && r.n <= PROTO_RECORD_KEYS);
		EXPECT(r.type >= copy && r.type < copy + clen);
		for (int i = 0; i < r.n; i++) {
			EXPECT(r.key[i] >= copy && r.key[i] < copy + clen);
			EXPECT(r.val[i] >= copy && r.val[i] <= copy + clen);
			EXPECT(strchr(r.key[i], ' ') == NULL);
		}
	}
	free(copy);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Times in the table and JSON do not depend on the machine. */
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A reply is read as a string: up to its first NUL, if any. */
	char *reply = malloc(size + 1);
	size_t len;

	if (reply == NULL)
		abort();
	memcpy(reply, data, size);
	reply[size] = '\0';
	len = strlen(reply);
	check_status(reply);
	check_records(reply);
	check_encoding(reply);
	check_verdict(reply, len);
	free(reply);
	return 0;
}
