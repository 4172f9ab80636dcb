/*
 * test_status.c - unit tests of "pmhost status" without a master: the wire
 * format (percent encoding both ways, record splitting, buffer growth),
 * status_parse() on canned replies (complete, failed, truncated, garbled),
 * and the exact table and JSON rendered from them, in UTC.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "unit.h"

#include "proto.h"
#include "status.h"

/*
 * What a master sends (see control.c put_status): its record, a live idle
 * worker, a busy one that was restarted twice, and a slot backing off
 * after a failure, whose last exit needs '%', '=', ' ' and UTF-8 encoded.
 * 1795765400 is 2026-11-27 07:43:20 UTC.
 */
#define CANNED_MASTER							\
	"master name=demo pid=4242 title=pmhost:Master:demo"		\
	" worker_title=pmhost:Worker:demo state=running"		\
	" start_ms=1795765400123 run_ms=3725999 rss_kb=5222 count=2"	\
	" target=3 generation=4 stop_timeout=10"			\
	" config=/etc/pm%20host/demo.json plugin=/usr/lib/pmhost/demo.so" \
	" run_dir=/run/pmhost/demo log=/run/pmhost/demo.log"		\
	" calls_total=1297 errors_total=4 rate_mcps=812500 p50_us=850"	\
	" p99_us=2400 hist=6:1000,7:297 hist_sum_ns=1500000000"		\
	" exits_by=done:0,execute_times:2,signal:3\n"
#define CANNED_IDLE							\
	"worker slot=0 pid=4243 state=idle start_ms=1795769064000"	\
	" run_ms=61500 rss_kb=2048 work=17 errors=1 restarts=0"		\
	" failures=0 generation=4 calls_total=17 recycles=0"		\
	" failures_total=0 crash_loop=0\n"
#define CANNED_BUSY							\
	"worker slot=1 pid=4250 state=busy start_ms=1795769124999"	\
	" run_ms=999 rss_kb=3100 work=1234 errors=0 restarts=2"		\
	" failures=0 generation=4 call_ms=250"				\
	" last_exit=reached%20executeTimes%20after%203%20calls,%201.50%20s" \
	" calls_total=1240 recycles=2 failures_total=0 crash_loop=0"	\
	" errors_total=3 rate_mcps=812500 p50_us=850 p99_us=2400"	\
	" hist=6:1000,7:240 hist_sum_ns=1400000000\n"			\
	"exit at_ms=1795769124000 lived_ms=1500 calls=3 failed=0"	\
	" reason=reached%20executeTimes%20after%203%20calls,%201.50%20s\n"
#define CANNED_BACKOFF							\
	"worker slot=2 state=crash-loop restarts=5 failures=3"		\
	" respawn_in_ms=400 last_exit=exited%20with%20status%203:"	\
	"%20rss%3D100%25%20of%20limit,%20caf%C3%A9"			\
	" calls_total=40 recycles=2 failures_total=3 crash_loop=1\n"
#define CANNED	CANNED_MASTER CANNED_IDLE CANNED_BUSY CANNED_BACKOFF "ok\n"

#define BACKOFF_EXIT	"exited with status 3: rss=100% of limit, caf\xC3\xA9"
#define BUSY_EXIT	"reached executeTimes after 3 calls, 1.50 s"

/* The table of CANNED, column by column (each cell padded to width + 2). */
static const char canned_table[] =
	"        pid   title               memory(m)  start          "
	"      run(s)  count  state\n"
	"Master  4242  pmhost:Master:demo  5.1        2026-11-27 07:4"
	"3:20  3725    2      running\n"
	"        pid   title               memory(m)  start          "
	"      run(s)  work   state       slot  calls  calls/s  p50  "
	"  p99    errors  recycled  failed  last exit\n"
	"Worker  4243  pmhost:Worker:demo  2.0        2026-11-27 08:4"
	"4:24  61      17     idle        0     17     -        -    "
	"  -      0       0         0       -\n"
	"Worker  4250  pmhost:Worker:demo  3.0        2026-11-27 08:4"
	"5:24  0       1234   busy        1     1240   812.5    850us"
	"  2.4ms  3       2         0       " BUSY_EXIT "\n"
	"Worker  -     pmhost:Worker:demo  -          -              "
	"      -       -      crash-loop  2     40     -        -    "
	"  -      0       2         3       " BACKOFF_EXIT
	"; respawn in 0.4 s\n";

/* The JSON object of CANNED's master, inside {"masters":[...]}. */
#define CANNED_JSON_MASTER						\
	"{\"name\":\"demo\",\"pid\":4242,\"title\":\"pmhost:Maste" \
	"r:demo\",\"state\":\"running\",\"memory_mb\":5.1,\"memor" \
	"y_kb\":5222,\"start\":\"2026-11-27 07:43:20\",\"start_un" \
	"ix_ms\":1795765400123,\"run_s\":3725.999,\"count\":2,\"t" \
	"arget\":3,\"generation\":4,\"stop_timeout\":10,\"calls_t" \
	"otal\":1297,\"errors_total\":4,\"calls_per_s\":812.500,\"" \
	"p50_s\":0.000850,\"p99_s\":0.002400,\"latency\":{\"bucke" \
	"ts\":[{\"le\":\"0.001\",\"count\":1000},{\"le\":\"0.003\"" \
	",\"count\":1297},{\"le\":\"+Inf\",\"count\":1297}],\"sum" \
	"_s\":1.500000,\"count\":1297},\"exits_by_reason\":{\"don" \
	"e\":0,\"execute_times\":2,\"signal\":3},\"config\":\"/et" \
	"c/pm host/demo.json\",\"plugin\":\"/usr/lib/pmhost/demo." \
	"so\",\"plugin_sha256\":null,\"plugin_copy\":null,\"run_d" \
	"ir\":\"/run/pmhost/demo\",\"log\":\"/run/pmhost/demo.log" \
	"\",\"preload\":null,\"workers\":[{\"slot\":0,\"pid\":424" \
	"3,\"title\":\"pmhost:Worker:demo\",\"state\":\"idle\",\"" \
	"memory_mb\":2.0,\"memory_kb\":2048,\"start\":\"2026-11-2" \
	"7 08:44:24\",\"start_unix_ms\":1795769064000,\"run_s\":6" \
	"1.500,\"work\":17,\"errors\":1,\"calls_total\":17,\"call" \
	"s_per_s\":0.000,\"p50_s\":null,\"p99_s\":null,\"errors_t" \
	"otal\":0,\"recycles\":0,\"failures_total\":0,\"latency\"" \
	":{\"buckets\":[{\"le\":\"+Inf\",\"count\":0}],\"sum_s\":" \
	"0.000000,\"count\":0},\"backoff_s\":null,\"crash_loop\":" \
	"false,\"restarts\":0,\"failures\":0,\"generation\":4,\"e" \
	"xecute_times\":null,\"limit_seconds\":null,\"call_s\":nu" \
	"ll,\"respawn_in_s\":null,\"last_exit\":null,\"exits\":[]" \
	"},{\"slot\":1,\"pid\":4250,\"title\":\"pmhost:Worker:dem" \
	"o\",\"state\":\"busy\",\"memory_mb\":3.0,\"memory_kb\":3" \
	"100,\"start\":\"2026-11-27 08:45:24\",\"start_unix_ms\":" \
	"1795769124999,\"run_s\":0.999,\"work\":1234,\"errors\":0" \
	",\"calls_total\":1240,\"calls_per_s\":812.500,\"p50_s\":" \
	"0.000850,\"p99_s\":0.002400,\"errors_total\":3,\"recycle" \
	"s\":2,\"failures_total\":0,\"latency\":{\"buckets\":[{\"" \
	"le\":\"0.001\",\"count\":1000},{\"le\":\"0.003\",\"count" \
	"\":1240},{\"le\":\"+Inf\",\"count\":1240}],\"sum_s\":1.4" \
	"00000,\"count\":1240},\"backoff_s\":null,\"crash_loop\":" \
	"false,\"restarts\":2,\"failures\":0,\"generation\":4,\"e" \
	"xecute_times\":null,\"limit_seconds\":null,\"call_s\":0." \
	"250,\"respawn_in_s\":null,\"last_exit\":\"" BUSY_EXIT "\",\"exits\":" \
	"[{\"at\":\"2026-11-27 08:45:24\",\"at_unix_ms\":17957691" \
	"24000,\"lived_s\":1.500,\"calls\":3,\"failed\":false,\"r" \
	"eason\":\"" BUSY_EXIT "\"}]},{\"slot\":2,\"pid\":null,\"title\":\"pm" \
	"host:Worker:demo\",\"state\":\"crash-loop\",\"memory_mb\"" \
	":null,\"memory_kb\":null,\"start\":null,\"start_unix_ms\"" \
	":null,\"run_s\":null,\"work\":null,\"errors\":null,\"cal" \
	"ls_total\":40,\"calls_per_s\":0.000,\"p50_s\":null,\"p99" \
	"_s\":null,\"errors_total\":0,\"recycles\":2,\"failures_t" \
	"otal\":3,\"latency\":{\"buckets\":[{\"le\":\"+Inf\",\"co" \
	"unt\":0}],\"sum_s\":0.000000,\"count\":0},\"backoff_s\":" \
	"null,\"crash_loop\":true,\"restarts\":5,\"failures\":3,\"" \
	"generation\":null,\"execute_times\":null,\"limit_seconds" \
	"\":null,\"call_s\":null,\"respawn_in_s\":0.400,\"last_ex" \
	"it\":\"" BACKOFF_EXIT "\",\"exits\":[]}]}"

static char err[128];

/* Rendered times must not depend on the machine's zone. */
static void
setup(void)
{
	ck_assert_int_eq(setenv("TZ", "UTC", 1), 0);
	tzset();
}

/* status_parse() on a private copy of reply, with err filled with junk. */
static int
parse(const char *reply, struct status_master *m)
{
	char *copy = strdup(reply);
	int r;

	ck_assert_ptr_nonnull(copy);
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	r = status_parse(copy, m, err, sizeof(err));
	free(copy);
	return r;
}

/* Parses a reply that must be accepted. */
static void
parse_ok(const char *reply, struct status_master *m)
{
	ck_assert_int_eq(parse(reply, m), 0);
}

/* Parses a reply that must be refused with exactly want in err. */
static void
parse_fails(const char *reply, const char *want)
{
	struct status_master m;

	ck_assert_int_eq(parse(reply, &m), -1);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(m.workers);
	ck_assert_uint_eq(m.nworkers, 0);
}

/* Splits and decodes a copy of line; the copy is returned for free(). */
static char *
parse_record(const char *line, struct record *r)
{
	char *copy = strdup(line);

	ck_assert_ptr_nonnull(copy);
	ck_assert_int_eq(proto_parse(copy, r), 0);
	return copy;
}

/* --- proto: buffers and percent encoding -------------------------------- */

START_TEST(proto_put_encodes_awkward_bytes)
{
	struct buf b = { 0 };

	proto_put(&b, "v", "a b=c%d\n\t\x7f\x80\xff" "caf\xC3\xA9:,/");
	proto_put(&b, "empty", "");
	proto_put_int(&b, "n", -42);
	proto_put_int(&b, "big", 9223372036854775807LL);
	ck_assert(!b.oom);
	ck_assert_str_eq(b.p, " v=a%20b%3Dc%25d%0A%09%7F%80%FFcaf%C3%A9:,/"
	    " empty= n=-42 big=9223372036854775807");
	ck_assert_uint_eq(b.len, strlen(b.p));
	buf_free(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(proto_round_trip)
{
	static const char *const vals[] = {
		"two words", "a=b=c", "100%", "%41 is not A", "line\nbreak",
		"tab\there", "", "\x80\x81\xfe\xff", "caf\xC3\xA9", " ", "%",
		"=", "\r\x01\x1f\x7f", "plain",
	};
	const int n = (int)(sizeof(vals) / sizeof(vals[0]));
	struct buf b = { 0 };
	struct record r;
	char key[16];

	buf_printf(&b, "rec");
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		proto_put(&b, key, vals[i]);
	}
	/* One line, one token per key: nothing raw splits it. */
	ck_assert_ptr_null(strchr(b.p, '\n'));
	ck_assert_ptr_null(strchr(b.p, '\t'));
	ck_assert_int_eq(proto_parse(b.p, &r), 0);
	ck_assert_str_eq(r.type, "rec");
	ck_assert_int_eq(r.n, n);
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_str_eq(r.key[i], key);
		ck_assert_str_eq(r.val[i], vals[i]);
		ck_assert_str_eq(record_get(&r, key), vals[i]);
	}
	buf_free(&b);
}
END_TEST

START_TEST(proto_parse_lenient_decoding)
{
	struct record r;
	char *line;

	/* Lower-case hex decodes; broken escapes stay as they are. */
	line = parse_record("t lc=%c3%a9%3d a=% b=%4 c=%zz d=%4g e=x%",
	    &r);
	ck_assert_int_eq(r.n, 6);
	ck_assert_str_eq(record_get(&r, "lc"), "\xC3\xA9=");
	ck_assert_str_eq(record_get(&r, "a"), "%");
	ck_assert_str_eq(record_get(&r, "b"), "%4");
	ck_assert_str_eq(record_get(&r, "c"), "%zz");
	ck_assert_str_eq(record_get(&r, "d"), "%4g");
	ck_assert_str_eq(record_get(&r, "e"), "x%");
	free(line);
}
END_TEST

START_TEST(proto_parse_tokens)
{
	struct record r;
	char *line;

	/* Runs of blanks, tokens without '=', and '=' inside a value. */
	line = parse_record("  worker   junk k=a=b  =v  e=  last=1 ", &r);
	ck_assert_str_eq(r.type, "worker");
	ck_assert_int_eq(r.n, 4);
	ck_assert_str_eq(r.key[0], "k");
	ck_assert_str_eq(r.val[0], "a=b");
	ck_assert_str_eq(r.key[1], "");
	ck_assert_str_eq(r.val[1], "v");
	ck_assert_str_eq(record_get(&r, "e"), "");
	ck_assert_str_eq(record_get(&r, "last"), "1");
	ck_assert_ptr_null(record_get(&r, "junk"));
	free(line);

	line = parse_record("ok", &r);
	ck_assert_str_eq(r.type, "ok");
	ck_assert_int_eq(r.n, 0);
	free(line);
}
END_TEST

START_TEST(proto_parse_blank_is_not_a_record)
{
	struct record r;
	char empty[] = "", blanks[] = "    ";

	ck_assert_int_eq(proto_parse(empty, &r), -1);
	ck_assert_int_eq(proto_parse(blanks, &r), -1);
}
END_TEST

START_TEST(proto_parse_caps_keys)
{
	struct buf b = { 0 };
	struct record r;
	char key[16];

	buf_printf(&b, "many");
	for (int i = 0; i < 3 * PROTO_RECORD_KEYS; i++)
		buf_printf(&b, " k%d=%d", i, i);
	ck_assert_int_eq(proto_parse(b.p, &r), 0);
	ck_assert_int_eq(r.n, PROTO_RECORD_KEYS);
	for (int i = 0; i < PROTO_RECORD_KEYS; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_str_eq(r.key[i], key);
	}
	ck_assert_str_eq(record_get(&r, "k0"), "0");
	snprintf(key, sizeof(key), "k%d", PROTO_RECORD_KEYS - 1);
	ck_assert_ptr_nonnull(record_get(&r, key));
	snprintf(key, sizeof(key), "k%d", PROTO_RECORD_KEYS);
	ck_assert_ptr_null(record_get(&r, key));
	buf_free(&b);
}
END_TEST

START_TEST(record_get_missing_key)
{
	struct record r;
	char *line;

	line = parse_record("master name=demo pid=1", &r);
	ck_assert_ptr_null(record_get(&r, "title"));
	ck_assert_ptr_null(record_get(&r, "nam"));	/* a prefix */
	ck_assert_ptr_null(record_get(&r, "names"));
	ck_assert_ptr_null(record_get(&r, ""));
	ck_assert_ptr_null(record_get(&r, "master"));	/* the type */
	ck_assert_str_eq(record_get(&r, "name"), "demo");
	free(line);

	line = parse_record("bare", &r);
	ck_assert_ptr_null(record_get(&r, "name"));
	free(line);
}
END_TEST

START_TEST(buf_printf_grows_past_64k)
{
	struct buf b = { 0 };
	char *big;

	/* Many small appends through several doublings. */
	for (int i = 0; i < 12000; i++)
		buf_printf(&b, "%05d\n", i);
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, 72000);
	ck_assert_uint_ge(b.cap, b.len + 1);
	ck_assert_uint_eq(strlen(b.p), b.len);
	ck_assert_mem_eq(b.p, "00000\n00001\n", 12);
	ck_assert_mem_eq(b.p + 65532, "10922\n", 6);
	ck_assert_str_eq(b.p + b.len - 6, "11999\n");

	/* Then one append larger than everything so far. */
	big = malloc(200000 + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'z', 200000);
	big[200000] = '\0';
	buf_printf(&b, "<%s>", big);
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, 272002);
	ck_assert_uint_ge(b.cap, b.len + 1);
	ck_assert_uint_eq(strlen(b.p), b.len);
	ck_assert_str_eq(b.p + b.len - 6, "zzzzz>");
	ck_assert_mem_eq(b.p + 71994, "11999\n<zz", 9);
	ck_assert_int_eq(b.p[272000], 'z');
	free(big);
	buf_free(&b);
}
END_TEST

START_TEST(buf_printf_first_write_large)
{
	struct buf b = { 0 };
	char *big = malloc(70000);

	ck_assert_ptr_nonnull(big);
	memset(big, 'q', 69999);
	big[69999] = '\0';
	buf_printf(&b, "%s%d", big, 7);
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, 70000);
	ck_assert_uint_eq(strlen(b.p), 70000);
	ck_assert_int_eq(b.p[69998], 'q');
	ck_assert_str_eq(b.p + 69999, "7");
	buf_add(&b, "!", 1);
	ck_assert_str_eq(b.p + 69999, "7!");
	free(big);
	buf_free(&b);
}
END_TEST

START_TEST(canned_reply_is_wire_format)
{
	struct buf b = { 0 };

	/* The same fields, in put_status()'s order, through the encoder. */
	buf_printf(&b, "master");
	proto_put(&b, "name", "demo");
	proto_put_int(&b, "pid", 4242);
	proto_put(&b, "title", "pmhost:Master:demo");
	proto_put(&b, "worker_title", "pmhost:Worker:demo");
	proto_put(&b, "state", "running");
	proto_put_int(&b, "start_ms", 1795765400123LL);
	proto_put_int(&b, "run_ms", 3725999);
	proto_put_int(&b, "rss_kb", 5222);
	proto_put_int(&b, "count", 2);
	proto_put_int(&b, "target", 3);
	proto_put_int(&b, "generation", 4);
	proto_put_int(&b, "stop_timeout", 10);
	proto_put(&b, "config", "/etc/pm host/demo.json");
	proto_put(&b, "plugin", "/usr/lib/pmhost/demo.so");
	proto_put(&b, "run_dir", "/run/pmhost/demo");
	proto_put(&b, "log", "/run/pmhost/demo.log");
	proto_put_int(&b, "calls_total", 1297);
	proto_put_int(&b, "errors_total", 4);
	proto_put_int(&b, "rate_mcps", 812500);
	proto_put_int(&b, "p50_us", 850);
	proto_put_int(&b, "p99_us", 2400);
	proto_put(&b, "hist", "6:1000,7:297");
	proto_put_int(&b, "hist_sum_ns", 1500000000);
	proto_put(&b, "exits_by", "done:0,execute_times:2,signal:3");
	buf_add(&b, "\n", 1);
	buf_printf(&b, "worker");
	proto_put_int(&b, "slot", 0);
	proto_put_int(&b, "pid", 4243);
	proto_put(&b, "state", "idle");
	proto_put_int(&b, "start_ms", 1795769064000LL);
	proto_put_int(&b, "run_ms", 61500);
	proto_put_int(&b, "rss_kb", 2048);
	proto_put_int(&b, "work", 17);
	proto_put_int(&b, "errors", 1);
	proto_put_int(&b, "restarts", 0);
	proto_put_int(&b, "failures", 0);
	proto_put_int(&b, "generation", 4);
	proto_put_int(&b, "calls_total", 17);
	proto_put_int(&b, "recycles", 0);
	proto_put_int(&b, "failures_total", 0);
	proto_put_int(&b, "crash_loop", 0);
	buf_add(&b, "\n", 1);
	buf_printf(&b, "worker");
	proto_put_int(&b, "slot", 1);
	proto_put_int(&b, "pid", 4250);
	proto_put(&b, "state", "busy");
	proto_put_int(&b, "start_ms", 1795769124999LL);
	proto_put_int(&b, "run_ms", 999);
	proto_put_int(&b, "rss_kb", 3100);
	proto_put_int(&b, "work", 1234);
	proto_put_int(&b, "errors", 0);
	proto_put_int(&b, "restarts", 2);
	proto_put_int(&b, "failures", 0);
	proto_put_int(&b, "generation", 4);
	proto_put_int(&b, "call_ms", 250);
	proto_put(&b, "last_exit", BUSY_EXIT);
	proto_put_int(&b, "calls_total", 1240);
	proto_put_int(&b, "recycles", 2);
	proto_put_int(&b, "failures_total", 0);
	proto_put_int(&b, "crash_loop", 0);
	proto_put_int(&b, "errors_total", 3);
	proto_put_int(&b, "rate_mcps", 812500);
	proto_put_int(&b, "p50_us", 850);
	proto_put_int(&b, "p99_us", 2400);
	proto_put(&b, "hist", "6:1000,7:240");
	proto_put_int(&b, "hist_sum_ns", 1400000000);
	buf_add(&b, "\n", 1);
	buf_printf(&b, "exit");
	proto_put_int(&b, "at_ms", 1795769124000LL);
	proto_put_int(&b, "lived_ms", 1500);
	proto_put_int(&b, "calls", 3);
	proto_put_int(&b, "failed", 0);
	proto_put(&b, "reason", BUSY_EXIT);
	buf_add(&b, "\n", 1);
	buf_printf(&b, "worker");
	proto_put_int(&b, "slot", 2);
	proto_put(&b, "state", "crash-loop");
	proto_put_int(&b, "restarts", 5);
	proto_put_int(&b, "failures", 3);
	proto_put_int(&b, "respawn_in_ms", 400);
	proto_put(&b, "last_exit", BACKOFF_EXIT);
	proto_put_int(&b, "calls_total", 40);
	proto_put_int(&b, "recycles", 2);
	proto_put_int(&b, "failures_total", 3);
	proto_put_int(&b, "crash_loop", 1);
	buf_add(&b, "\n", 1);
	buf_printf(&b, "%s%s\n", "ok", "");
	ck_assert_str_eq(b.p, CANNED);
	buf_free(&b);
}
END_TEST

/* --- status_parse ------------------------------------------------------- */

START_TEST(parse_canned_master)
{
	struct status_master m;

	parse_ok(CANNED, &m);
	ck_assert_str_eq(status_text(&m.m, SK_NAME), "demo");
	ck_assert_str_eq(status_text(&m.m, SK_TITLE), "pmhost:Master:demo");
	ck_assert_str_eq(status_text(&m.m, SK_WORKER_TITLE), "pmhost:Worker:demo");
	ck_assert_str_eq(status_text(&m.m, SK_STATE), "running");
	ck_assert_str_eq(status_text(&m.m, SK_CONFIG), "/etc/pm host/demo.json");
	ck_assert_str_eq(status_text(&m.m, SK_PLUGIN), "/usr/lib/pmhost/demo.so");
	ck_assert_str_eq(status_text(&m.m, SK_RUN_DIR), "/run/pmhost/demo");
	ck_assert_int_eq(status_num(&m.m, SK_PID, -1), 4242);
	ck_assert_int_eq(status_num(&m.m, SK_START_MS, 0), 1795765400123LL);
	ck_assert_int_eq(status_num(&m.m, SK_RUN_MS, 0), 3725999);
	ck_assert_int_eq(status_num(&m.m, SK_RSS_KB, -1), 5222);
	ck_assert_int_eq(status_num(&m.m, SK_COUNT, 0), 2);
	ck_assert_int_eq(status_num(&m.m, SK_TARGET, 0), 3);
	ck_assert_int_eq(status_num(&m.m, SK_GENERATION, 0), 4);
	ck_assert_int_eq(status_num(&m.m, SK_STOP_TIMEOUT, -1), 10);
	ck_assert_uint_eq(m.nworkers, 3);
	ck_assert_ptr_nonnull(m.workers);
	status_free(&m);
	ck_assert_ptr_null(m.workers);
	ck_assert_uint_eq(m.nworkers, 0);
}
END_TEST

START_TEST(parse_canned_workers)
{
	struct status_master m;
	const struct status_rec *w;

	parse_ok(CANNED, &m);
	ck_assert_uint_eq(m.nworkers, 3);

	w = &m.workers[0];
	ck_assert_int_eq(status_num(w, SK_W_SLOT, -1), 0);
	ck_assert_int_eq(status_num(w, SK_W_PID, -1), 4243);
	ck_assert_str_eq(status_text(w, SK_W_STATE), "idle");
	ck_assert_int_eq(status_num(w, SK_W_START_MS, 0), 1795769064000LL);
	ck_assert_int_eq(status_num(w, SK_W_RUN_MS, -1), 61500);
	ck_assert_int_eq(status_num(w, SK_W_RSS_KB, -1), 2048);
	ck_assert_int_eq(status_num(w, SK_W_WORK, 0), 17);
	ck_assert_int_eq(status_num(w, SK_W_ERRORS, 0), 1);
	ck_assert_int_eq(status_num(w, SK_W_RESTARTS, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_FAILURES, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_GENERATION, 0), 4);
	ck_assert_int_eq(status_num(w, SK_W_CALL_MS, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_RESPAWN_IN_MS, -1), -1);
	ck_assert_str_eq(status_text(w, SK_W_LAST_EXIT), "");

	w = &m.workers[1];
	ck_assert_int_eq(status_num(w, SK_W_SLOT, -1), 1);
	ck_assert_int_eq(status_num(w, SK_W_PID, -1), 4250);
	ck_assert_str_eq(status_text(w, SK_W_STATE), "busy");
	ck_assert_int_eq(status_num(w, SK_W_START_MS, 0), 1795769124999LL);
	ck_assert_int_eq(status_num(w, SK_W_RUN_MS, -1), 999);
	ck_assert_int_eq(status_num(w, SK_W_RSS_KB, -1), 3100);
	ck_assert_int_eq(status_num(w, SK_W_WORK, 0), 1234);
	ck_assert_int_eq(status_num(w, SK_W_ERRORS, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_RESTARTS, 0), 2);
	ck_assert_int_eq(status_num(w, SK_W_FAILURES, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_GENERATION, 0), 4);
	ck_assert_int_eq(status_num(w, SK_W_CALL_MS, -1), 250);
	ck_assert_int_eq(status_num(w, SK_W_RESPAWN_IN_MS, -1), -1);
	ck_assert_str_eq(status_text(w, SK_W_LAST_EXIT), BUSY_EXIT);

	/* No process: absent numbers take the "none" defaults. */
	w = &m.workers[2];
	ck_assert_int_eq(status_num(w, SK_W_SLOT, -1), 2);
	ck_assert_int_eq(status_num(w, SK_W_PID, -1), -1);
	ck_assert_str_eq(status_text(w, SK_W_STATE), "crash-loop");
	ck_assert_int_eq(status_num(w, SK_W_START_MS, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_RUN_MS, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_RSS_KB, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_WORK, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_ERRORS, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_RESTARTS, 0), 5);
	ck_assert_int_eq(status_num(w, SK_W_FAILURES, 0), 3);
	ck_assert_int_eq(status_num(w, SK_W_GENERATION, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_CALL_MS, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_RESPAWN_IN_MS, -1), 400);
	ck_assert_str_eq(status_text(w, SK_W_LAST_EXIT), BACKOFF_EXIT);
	ck_assert_int_eq(status_num(w, SK_W_FAILURES_TOTAL, 0), 3);
	ck_assert_int_eq(status_num(w, SK_W_CRASH_LOOP, 0), 1);

	/* The busy slot's one remembered exit follows its worker. */
	ck_assert_uint_eq(m.nexits, 1);
	ck_assert_uint_eq(m.exit_of[0], 1);
	ck_assert_int_eq(status_num(&m.exits[0], SK_E_LIVED_MS, 0), 1500);
	ck_assert_str_eq(status_text(&m.exits[0], SK_E_REASON), BUSY_EXIT);
	status_free(&m);
}
END_TEST

START_TEST(parse_ok_with_text_and_trailing_lines)
{
	struct status_master m;

	/* "ok TEXT" ends the reply too, and nothing after it counts. */
	parse_ok(CANNED_MASTER CANNED_IDLE "ok done\n" CANNED_BUSY
	    "error too late\n", &m);
	ck_assert_uint_eq(m.nworkers, 1);
	ck_assert_int_eq(status_num(&m.workers[0], SK_W_PID, -1), 4243);
	status_free(&m);

	/* No newline after the last line. */
	parse_ok(CANNED_MASTER "ok", &m);
	ck_assert_uint_eq(m.nworkers, 0);
	ck_assert_ptr_null(m.workers);
	ck_assert_str_eq(status_text(&m.m, SK_NAME), "demo");
	status_free(&m);
}
END_TEST

START_TEST(parse_error_line)
{
	parse_fails(CANNED_MASTER CANNED_IDLE CANNED_BUSY
	    "error scale: N must be an integer from 1 to 64\n",
	    "scale: N must be an integer from 1 to 64");
	parse_fails("error request longer than 1024 bytes\n",
	    "request longer than 1024 bytes");
	/* The error wins even over a master record and an "ok" after it. */
	parse_fails(CANNED_MASTER "error busy\nok\n", "busy");
}
END_TEST

START_TEST(parse_error_without_text)
{
	parse_fails(CANNED_MASTER "error\n", "the master reported an error");
	parse_fails(CANNED_MASTER "error \n", "the master reported an error");
}
END_TEST

START_TEST(parse_error_text_truncated)
{
	struct status_master m;
	char *copy = strdup(CANNED_MASTER "error 0123456789abcdef\n");
	char small[12];

	ck_assert_ptr_nonnull(copy);
	memset(small, '#', sizeof(small));
	ck_assert_int_eq(status_parse(copy, &m, small, 8), -1);
	ck_assert_str_eq(small, "0123456");
	ck_assert_mem_eq(small + 8, "####", 4);
	free(copy);
}
END_TEST

START_TEST(parse_truncated_reply)
{
	/* Cut inside the last record: no "ok" ever arrived. */
	static const char full[] = CANNED;
	char cut[sizeof(full)];
	size_t at = strlen(CANNED_MASTER CANNED_IDLE CANNED_BUSY) + 30;

	memcpy(cut, full, at);
	cut[at] = '\0';
	parse_fails(cut, "incomplete status reply");
	parse_fails(CANNED_MASTER CANNED_IDLE, "incomplete status reply");
	parse_fails(CANNED_MASTER, "incomplete status reply");
	parse_fails("", "incomplete status reply");
	parse_fails("\n\n", "incomplete status reply");
}
END_TEST

START_TEST(parse_without_master)
{
	parse_fails("ok\n", "incomplete status reply");
	parse_fails(CANNED_IDLE CANNED_BUSY CANNED_BACKOFF "ok\n",
	    "incomplete status reply");
	/* Only a record of exactly type "master" counts. */
	parse_fails("masters name=demo pid=1\nMaster name=demo\nok\n",
	    "incomplete status reply");
}
END_TEST

START_TEST(parse_garbage_ignored)
{
	struct status_master m;

	parse_ok("hello world\n"
	    "\n"
	    "    \n"
	    "=junk==\n"
	    "okay\n"		/* not "ok" */
	    "oktext\n"
	    "errors=5\n"	/* not "error" */
	    "erroneous x=1\n"
	    "workers slot=9 pid=9\n"
	    "\x01\x02\xff\n"
	    CANNED_MASTER
	    "master-ish name=other\n"
	    "!@#$%^&*()\n"
	    CANNED_IDLE
	    "slave slot=7\n"
	    CANNED_BUSY CANNED_BACKOFF
	    "ok\n", &m);
	ck_assert_str_eq(status_text(&m.m, SK_NAME), "demo");
	ck_assert_int_eq(status_num(&m.m, SK_PID, -1), 4242);
	ck_assert_uint_eq(m.nworkers, 3);
	ck_assert_int_eq(status_num(&m.workers[0], SK_W_SLOT, -1), 0);
	ck_assert_int_eq(status_num(&m.workers[1], SK_W_SLOT, -1), 1);
	ck_assert_int_eq(status_num(&m.workers[2], SK_W_SLOT, -1), 2);
	status_free(&m);
}
END_TEST

START_TEST(parse_unknown_keys_ignored)
{
	struct status_master m;

	parse_ok("master future=1 name=demo colour=blue pid=12 x= =y"
	    " state=running\n"
	    "worker slot=3 shiny=yes pid=99 nested=a%3Db state=idle\n"
	    "ok\n", &m);
	ck_assert_str_eq(status_text(&m.m, SK_NAME), "demo");
	ck_assert_int_eq(status_num(&m.m, SK_PID, -1), 12);
	ck_assert_str_eq(status_text(&m.m, SK_STATE), "running");
	ck_assert_uint_eq(m.nworkers, 1);
	ck_assert_int_eq(status_num(&m.workers[0], SK_W_SLOT, -1), 3);
	ck_assert_int_eq(status_num(&m.workers[0], SK_W_PID, -1), 99);
	ck_assert_str_eq(status_text(&m.workers[0], SK_W_STATE), "idle");
	status_free(&m);
}
END_TEST

START_TEST(parse_bad_numbers_default)
{
	struct status_master m;
	const struct status_rec *w;

	parse_ok("master name=demo pid=abc start_ms=12x run_ms= rss_kb=-"
	    " count=1.5 target=0x10 generation=%2B stop_timeout=ten\n"
	    "worker slot=one pid=12three start_ms=1e3 run_ms=x rss_kb=?"
	    " work=-- errors=%00 restarts=NaN failures=2%20 generation=4.0"
	    " call_ms=soon respawn_in_ms=later\n"
	    "worker slot=-7 pid=+5 rss_kb=-1 work=-3 call_ms=0"
	    " respawn_in_ms=0\n"
	    "ok\n", &m);
	ck_assert_int_eq(status_num(&m.m, SK_PID, -1), -1);
	ck_assert_int_eq(status_num(&m.m, SK_START_MS, 0), 0);
	ck_assert_int_eq(status_num(&m.m, SK_RUN_MS, 0), 0);
	ck_assert_int_eq(status_num(&m.m, SK_RSS_KB, -1), -1);
	ck_assert_int_eq(status_num(&m.m, SK_COUNT, 0), 0);
	ck_assert_int_eq(status_num(&m.m, SK_TARGET, 0), 0);
	ck_assert_int_eq(status_num(&m.m, SK_GENERATION, 0), 0);
	ck_assert_int_eq(status_num(&m.m, SK_STOP_TIMEOUT, -1), -1);
	ck_assert_uint_eq(m.nworkers, 2);

	w = &m.workers[0];
	ck_assert_int_eq(status_num(w, SK_W_SLOT, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_PID, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_START_MS, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_RUN_MS, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_RSS_KB, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_WORK, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_ERRORS, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_RESTARTS, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_FAILURES, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_GENERATION, 0), 0);
	ck_assert_int_eq(status_num(w, SK_W_CALL_MS, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_RESPAWN_IN_MS, -1), -1);

	/* Real numbers, signs included, are taken as they are. */
	w = &m.workers[1];
	ck_assert_int_eq(status_num(w, SK_W_SLOT, -1), -7);
	ck_assert_int_eq(status_num(w, SK_W_PID, -1), 5);
	ck_assert_int_eq(status_num(w, SK_W_RSS_KB, -1), -1);
	ck_assert_int_eq(status_num(w, SK_W_WORK, 0), -3);
	ck_assert_int_eq(status_num(w, SK_W_CALL_MS, -1), 0);
	ck_assert_int_eq(status_num(w, SK_W_RESPAWN_IN_MS, -1), 0);
	status_free(&m);
}
END_TEST

START_TEST(parse_too_many_keys)
{
	struct buf b = { 0 };
	struct status_master m;

	/* Real keys first, then far more than a record holds. */
	buf_printf(&b, "master name=demo pid=7 state=running");
	for (int i = 0; i < 4 * PROTO_RECORD_KEYS; i++)
		buf_printf(&b, " extra%d=%d", i, i);
	buf_printf(&b, " count=99\nworker slot=1 pid=8");
	for (int i = 0; i < 4 * PROTO_RECORD_KEYS; i++)
		buf_printf(&b, " x%d=y", i);
	buf_printf(&b, "\nok\n");
	parse_ok(b.p, &m);
	ck_assert_str_eq(status_text(&m.m, SK_NAME), "demo");
	ck_assert_int_eq(status_num(&m.m, SK_PID, -1), 7);
	ck_assert_str_eq(status_text(&m.m, SK_STATE), "running");
	/* However many keys come first, none is dropped. */
	ck_assert_int_eq(status_num(&m.m, SK_COUNT, 0), 99);
	ck_assert_uint_eq(m.nworkers, 1);
	ck_assert_int_eq(status_num(&m.workers[0], SK_W_SLOT, -1), 1);
	ck_assert_int_eq(status_num(&m.workers[0], SK_W_PID, -1), 8);
	status_free(&m);
	buf_free(&b);
}
END_TEST

START_TEST(parse_long_values_kept)
{
	struct buf b = { 0 };
	struct status_master m;
	char *longv = malloc(1001);

	ck_assert_ptr_nonnull(longv);
	memset(longv, 'v', 1000);
	longv[1000] = '\0';
	buf_printf(&b, "master");
	proto_put(&b, "name", longv);
	proto_put(&b, "title", longv);
	proto_put(&b, "state", longv);
	proto_put(&b, "config", longv);
	buf_printf(&b, "\nworker");
	proto_put(&b, "state", longv);
	proto_put(&b, "last_exit", longv);
	buf_printf(&b, "\nok\n");
	parse_ok(b.p, &m);
	/* Values are kept whole, however long. */
	ck_assert_uint_eq(strlen(status_text(&m.m, SK_NAME)), 1000);
	ck_assert_uint_eq(strlen(status_text(&m.m, SK_TITLE)), 1000);
	ck_assert_uint_eq(strlen(status_text(&m.m, SK_STATE)), 1000);
	ck_assert_uint_eq(strlen(status_text(&m.m, SK_CONFIG)), 1000);
	ck_assert_uint_eq(strlen(status_text(&m.workers[0], SK_W_STATE)),
	    1000);
	ck_assert_uint_eq(strlen(status_text(&m.workers[0],
	    SK_W_LAST_EXIT)), 1000);
	status_free(&m);
	buf_free(&b);
	free(longv);
}
END_TEST

/* --- status_table ------------------------------------------------------- */

/* The table (or JSON) of the given replies, one master each. */
static char *
render(const char *const *replies, size_t n, int json)
{
	struct status_master ms[4];
	struct buf out = { 0 };

	ck_assert_uint_le(n, 4);
	for (size_t i = 0; i < n; i++)
		parse_ok(replies[i], &ms[i]);
	if (json)
		status_json(ms, n, &out);
	else
		status_table(ms, n, &out);
	ck_assert(!out.oom);
	for (size_t i = 0; i < n; i++)
		status_free(&ms[i]);
	return out.p;	/* NULL when nothing was appended */
}

/*
 * Where a line's columns start: its first byte, and every non-blank byte
 * after at least two blanks (cells are padded to width + 2, and no cell
 * of these tables holds two blanks in a row).
 */
static int
column_starts(const char *line, size_t len, size_t *at, int max)
{
	int n = 0;

	for (size_t p = 0; p < len; p++) {
		if (line[p] == ' ')
			continue;
		if (p == 0 || (p >= 2 && line[p - 1] == ' ' &&
		    line[p - 2] == ' ')) {
			ck_assert_int_lt(n, max);
			at[n++] = p;
		}
	}
	return n;
}

/*
 * Checks every table line: no trailing blank; headers (starting with
 * blanks) open a block whose rows start each column at the header's
 * offsets.  Returns the number of rows checked.
 */
static int
check_layout(const char *text)
{
	size_t head[24], row[24];
	int nhead = 0, rows = 0;

	for (const char *l = text; *l != '\0';) {
		const char *nl = strchr(l, '\n');
		size_t len;

		ck_assert_ptr_nonnull(nl);	/* every line ends */
		len = (size_t)(nl - l);
		if (len > 0)
			ck_assert_int_ne(l[len - 1], ' ');
		if (len == 0) {
			nhead = 0;
		} else if (l[0] == ' ') {
			ck_assert_mem_eq(l, "        ", 8);
			nhead = column_starts(l, len, head, 24);
			ck_assert_int_eq(head[0], 8);
		} else {
			int n = column_starts(l, len, row, 24);

			ck_assert_int_gt(nhead, 0);
			ck_assert_int_eq(row[0], 0);
			/* The type column, then exactly the header's. */
			ck_assert_int_eq(n, nhead + 1);
			for (int c = 0; c < nhead; c++)
				ck_assert_int_eq(row[c + 1], head[c]);
			rows++;
		}
		l = nl + 1;
	}
	return rows;
}

START_TEST(table_canned_exact)
{
	const char *r[] = { CANNED };
	char *t = render(r, 1, 0);

	ck_assert_str_eq(t, canned_table);
	free(t);
}
END_TEST

START_TEST(table_backoff_row)
{
	const char *r[] = { CANNED_MASTER CANNED_BACKOFF "ok\n" };
	char *t = render(r, 1, 0), *row;

	ck_assert_ptr_nonnull(t);
	row = strstr(t, "\nWorker");
	ck_assert_ptr_nonnull(row);
	ck_assert_str_eq(row + 1,
	    "Worker  -     pmhost:Worker:demo  -          -                    "
	    "-       -      crash-loop  2     40     -        -    -    0"
	    "       2         3       " BACKOFF_EXIT "; respawn in 0.4 s\n");
	free(t);
}
END_TEST

START_TEST(table_aligned)
{
	const char *r[] = { CANNED };
	const char *wide[] = {
		"master name=w pid=1 title=pmhost:Master:a-rather-long-title"
		" worker_title=x state=stopping start_ms=0 run_ms=12"
		" rss_kb=-1 count=1234567 target=2\n"
		"worker slot=0 pid=2147483 state=exiting start_ms=1"
		" run_ms=86400000 rss_kb=104857600 work=9876543210 restarts=77"
		" failures=1\n"
		"worker slot=1234 state=pending restarts=123456789012"
		" last_exit=stopped%20after%200%20calls\n"
		"ok\n",
	};
	char *t;

	t = render(r, 1, 0);
	ck_assert_int_eq(check_layout(t), 4);
	free(t);
	t = render(wide, 1, 0);
	ck_assert_int_eq(check_layout(t), 3);
	/* A worker started 1 ms past the epoch; 100 GiB of RSS. */
	ck_assert_ptr_nonnull(strstr(t, "  1970-01-01 00:00:00  86400  "));
	ck_assert_ptr_nonnull(strstr(t, "Master  1     "));
	ck_assert_ptr_nonnull(strstr(t, "  102400.0  "));
	free(t);
}
END_TEST

START_TEST(table_escapes_and_display_width)
{
	/* A title in CJK (two columns a character), a right-to-left override
	 * and an escape sequence in a last exit, bytes that are not UTF-8. */
	const char *r[] = {
		"master name=w pid=1 title=%E4%BB%BB%E5%8A%A1 worker_title=w"
		" state=running start_ms=0 run_ms=0 rss_kb=1 count=1 target=1\n"
		"worker slot=0 pid=2 state=idle start_ms=0 run_ms=0 rss_kb=1"
		" work=1 restarts=0 failures=0 last_exit=a%E2%80%AEb%1B%5B2Jc%FFd"
		"\n"
		"ok\n",
	};
	char *t = render(r, 1, 0);

	/* Escaped, never raw. */
	ck_assert_ptr_nonnull(strstr(t, "a\\u202eb\\u001b[2Jc\\xffd\n"));
	ck_assert_ptr_null(strstr(t, "\xe2\x80\xae"));
	ck_assert_ptr_null(strstr(t, "\x1b"));
	/* The CJK title is four columns wide, so the next column of the
	 * master row lines up with the heading's. */
	ck_assert_ptr_nonnull(strstr(t, "        pid  title  memory(m)"));
	ck_assert_ptr_nonnull(strstr(t, "Master  1    \xe4\xbb\xbb\xe5\x8a\xa1   "
	    "0.0"));
	free(t);
}
END_TEST

START_TEST(json_invalid_utf8_becomes_replacement_characters)
{
	const char *r[] = {
		"master name=q pid=1 title=t state=running start_ms=1 run_ms=1"
		" config=/etc/%FF%FEcfg%C3.json plugin=/p%ED%A0%80.so"
		" run_dir=/r%F0%9F%98%80\n"
		"ok\n",
	};
	char *j = render(r, 1, 1);

	ck_assert_ptr_nonnull(strstr(j, "\"config\":\"/etc/\\ufffd\\ufffdcfg"
	    "\\ufffd.json\""));
	/* An encoded surrogate is not UTF-8 either; a real emoji is. */
	ck_assert_ptr_nonnull(strstr(j, "\"plugin\":\"/p\\ufffd\\ufffd"
	    "\\ufffd.so\""));
	ck_assert_ptr_nonnull(strstr(j, "\"run_dir\":\"/r\xf0\x9f\x98\x80\""));
	free(j);
}
END_TEST

START_TEST(table_unknown_values)
{
	const char *r[] = {
		"master name=u pid=3 title=t worker_title=w state=running"
		" start_ms=0 run_ms=500 rss_kb=-1 count=1\n"
		"worker slot=0 pid=4 state=idle start_ms=1795765400999"
		" run_ms=1999 work=0\n"
		"ok\n",
	};
	char *t = render(r, 1, 0);

	/* No start time and no RSS become "-"; a live worker's run rounds
	 * down to whole seconds, and no last exit is "-". */
	ck_assert_str_eq(t,
	    "        pid  title  memory(m)  start                run(s)  "
	    "count  state\n"
	    "Master  3    t      -          -                    0       "
	    "1      running\n"
	    "        pid  title  memory(m)  start                run(s)  "
	    "work   state    slot  calls  calls/s  p50  p99  errors  "
	    "recycled  failed  last exit\n"
	    "Worker  4    w      -          2026-11-27 07:43:20  1       "
	    "0      idle     0     0      -        -    -    0       0"
	    "         0       -\n");
	free(t);
}
END_TEST

START_TEST(table_two_masters)
{
	const char *one[] = { CANNED };
	const char *other[] = {
		"master name=b pid=77 title=pmhost:Master:b worker_title=x"
		" state=restarting start_ms=1795765400000 run_ms=1 rss_kb=1"
		" count=0\nok\n",
	};
	const char *both[] = { one[0], other[0] };
	char *a = render(one, 1, 0), *b = render(other, 1, 0);
	char *t = render(both, 2, 0);
	size_t alen = strlen(a);

	ck_assert_uint_eq(strlen(t), alen + 1 + strlen(b));
	ck_assert_mem_eq(t, a, alen);
	ck_assert_int_eq(t[alen], '\n');
	ck_assert_str_eq(t + alen + 1, b);
	/* Exactly one blank line: the block ends with one newline. */
	ck_assert_int_eq(a[alen - 1], '\n');
	ck_assert_int_ne(a[alen - 2], '\n');
	ck_assert_int_eq(check_layout(t), 4 + 1);
	free(a);
	free(b);
	free(t);
}
END_TEST

START_TEST(table_zero_masters)
{
	struct buf out = { 0 };

	status_table(NULL, 0, &out);
	ck_assert_uint_eq(out.len, 0);
	ck_assert(out.p == NULL || out.p[0] == '\0');
	buf_free(&out);
}
END_TEST

/* --- status_json -------------------------------------------------------- */

START_TEST(json_canned_exact)
{
	const char *r[] = { CANNED };
	char *j = render(r, 1, 1);

	ck_assert_str_eq(j, "{\"masters\":[" CANNED_JSON_MASTER "]}\n");
	free(j);
}
END_TEST

START_TEST(json_zero_masters)
{
	struct buf out = { 0 };

	status_json(NULL, 0, &out);
	ck_assert_str_eq(out.p, "{\"masters\":[]}\n");
	ck_assert_uint_eq(out.len, 15);
	buf_free(&out);
}
END_TEST

START_TEST(json_two_masters)
{
	const char *r[] = {
		CANNED,
		"master name=b pid=77 title=tb worker_title=wb"
		" state=stopping start_ms=1795765400000 run_ms=1 rss_kb=1"
		" count=0 target=1 generation=2 stop_timeout=3 config=/c"
		" plugin=/p run_dir=/r\nok\n",
	};
	char *j = render(r, 2, 1);

	ck_assert_str_eq(j, "{\"masters\":[" CANNED_JSON_MASTER
	    ",{\"name\":\"b\",\"pid\":77,\"title\":\"tb\",\"state\":\"stopping\","
	    "\"memory_mb\":0.0,\"memory_kb\":1,"
	    "\"start\":\"2026-11-27 07:43:20\","
	    "\"start_unix_ms\":1795765400000,\"run_s\":0.001,\"count\":0,"
	    "\"target\":1,\"generation\":2,\"stop_timeout\":3,"
	    "\"calls_total\":0,\"errors_total\":0,\"calls_per_s\":0.000,"
	    "\"p50_s\":null,\"p99_s\":null,\"latency\":{\"buckets\":["
	    "{\"le\":\"+Inf\",\"count\":0}],\"sum_s\":0.000000,"
	    "\"count\":0},\"exits_by_reason\":{},"
	    "\"config\":\"/c\",\"plugin\":\"/p\",\"plugin_sha256\":null,\"plugin_copy\":null,\"run_dir\":\"/r\","
	    "\"log\":null,\"preload\":null,\"workers\":[]}]}\n");
	free(j);
}
END_TEST

START_TEST(json_escapes)
{
	const char *r[] = {
		"master name=q%22 pid=1 title=a%22b%5Cc%09d%0Ae%01f%7Fg%20"
		"%C3%A9 worker_title=w%5C%22 state=running"
		" start_ms=1795765400123 run_ms=1000 rss_kb=1024 count=0"
		" target=1 generation=1 stop_timeout=5 config=/c%22.json"
		" plugin=/p%5C.so run_dir=/r%1F\n"
		"worker slot=0 state=pending restarts=0 failures=0"
		" last_exit=x%22y%5Cz%0D%08%2F\n"
		"ok\n",
	};
	char *j = render(r, 1, 1);

	ck_assert_str_eq(j,
	    "{\"masters\":[{\"name\":\"q\\\"\",\"pid\":1,"
	    "\"title\":\"a\\\"b\\\\c\\u0009d\\u000ae\\u0001f\\u007fg "
	    "\xC3\xA9\",\"state\":\"running\",\"memory_mb\":1.0,"
	    "\"memory_kb\":1024,\"start\":\"2026-11-27 07:43:20\","
	    "\"start_unix_ms\":1795765400123,\"run_s\":1.000,\"count\":0,"
	    "\"target\":1,\"generation\":1,\"stop_timeout\":5,"
	    "\"calls_total\":0,\"errors_total\":0,\"calls_per_s\":0.000,"
	    "\"p50_s\":null,\"p99_s\":null,\"latency\":{\"buckets\":["
	    "{\"le\":\"+Inf\",\"count\":0}],\"sum_s\":0.000000,"
	    "\"count\":0},\"exits_by_reason\":{},"
	    "\"config\":\"/c\\\".json\",\"plugin\":\"/p\\\\.so\",\"plugin_sha256\":null,\"plugin_copy\":null,"
	    "\"run_dir\":\"/r\\u001f\",\"log\":null,\"preload\":null,"
	    "\"workers\":["
	    "{\"slot\":0,\"pid\":null,\"title\":\"w\\\\\\\"\","
	    "\"state\":\"pending\",\"memory_mb\":null,\"memory_kb\":null,"
	    "\"start\":null,\"start_unix_ms\":null,\"run_s\":null,"
	    "\"work\":null,\"errors\":null,\"calls_total\":0,"
	    "\"calls_per_s\":0.000,\"p50_s\":null,\"p99_s\":null,"
	    "\"errors_total\":0,\"recycles\":0,\"failures_total\":0,"
	    "\"latency\":{\"buckets\":[{\"le\":\"+Inf\",\"count\":0}],"
	    "\"sum_s\":0.000000,\"count\":0},\"backoff_s\":null,"
	    "\"crash_loop\":false,"
	    "\"restarts\":0,\"failures\":0,"
	    "\"generation\":null,\"execute_times\":null,\"limit_seconds\":null,\"call_s\":null,\"respawn_in_s\":null,"
	    "\"last_exit\":\"x\\\"y\\\\z\\u000d\\u0008/\","
	    "\"exits\":[]}]}]}\n");
	/* Nothing raw below 0x20 is left anywhere in the document. */
	for (const unsigned char *p = (const unsigned char *)j; *p; p++)
		if (p[1] != '\0')
			ck_assert_int_ge(*p, 0x20);
	free(j);
}
END_TEST

static Suite *
status_suite(void)
{
	Suite *s = suite_create("status");
	TCase *tp = tcase_create("proto");
	TCase *tc = tcase_create("status");

	tcase_add_test(tp, proto_put_encodes_awkward_bytes);
	tcase_add_test(tp, proto_round_trip);
	tcase_add_test(tp, proto_parse_lenient_decoding);
	tcase_add_test(tp, proto_parse_tokens);
	tcase_add_test(tp, proto_parse_blank_is_not_a_record);
	tcase_add_test(tp, proto_parse_caps_keys);
	tcase_add_test(tp, record_get_missing_key);
	tcase_add_test(tp, buf_printf_grows_past_64k);
	tcase_add_test(tp, buf_printf_first_write_large);
	tcase_add_test(tp, canned_reply_is_wire_format);
	suite_add_tcase(s, tp);

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, parse_canned_master);
	tcase_add_test(tc, parse_canned_workers);
	tcase_add_test(tc, parse_ok_with_text_and_trailing_lines);
	tcase_add_test(tc, parse_error_line);
	tcase_add_test(tc, parse_error_without_text);
	tcase_add_test(tc, parse_error_text_truncated);
	tcase_add_test(tc, parse_truncated_reply);
	tcase_add_test(tc, parse_without_master);
	tcase_add_test(tc, parse_garbage_ignored);
	tcase_add_test(tc, parse_unknown_keys_ignored);
	tcase_add_test(tc, parse_bad_numbers_default);
	tcase_add_test(tc, parse_too_many_keys);
	tcase_add_test(tc, parse_long_values_kept);
	tcase_add_test(tc, table_canned_exact);
	tcase_add_test(tc, table_backoff_row);
	tcase_add_test(tc, table_aligned);
	tcase_add_test(tc, table_unknown_values);
	tcase_add_test(tc, table_escapes_and_display_width);
	tcase_add_test(tc, json_invalid_utf8_becomes_replacement_characters);
	tcase_add_test(tc, table_two_masters);
	tcase_add_test(tc, table_zero_masters);
	tcase_add_test(tc, json_canned_exact);
	tcase_add_test(tc, json_zero_masters);
	tcase_add_test(tc, json_two_masters);
	tcase_add_test(tc, json_escapes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(status_suite());
}
