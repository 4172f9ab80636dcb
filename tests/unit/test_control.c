/*
 * test_control.c - unit tests of the control protocol's parsers without a
 * socket: control_parse() (what a master makes of a client's bytes: the
 * framing, the verb's command, the arguments of scale and status, and the
 * exact refusals) and reply_ok() (the verdict a command reads from an
 * answer).  tests/fuzz/ drives the same functions with any bytes.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "unit.h"

#include "client.h"
#include "commands.h"
#include "control.h"

static struct request rq;
static char err[256];

/* Parses a C string as a client's bytes. */
static enum request_parse
parse(const char *in, int eof)
{
	memset(err, 0, sizeof(err));
	return control_parse(in, strlen(in), eof, &rq, err, sizeof(err));
}

/* in is refused with exactly why. */
static void
refused(const char *in, const char *why)
{
	ck_assert_int_eq(parse(in, 0), REQUEST_BAD);
	ck_assert_str_eq(err, why);
}

START_TEST(whole_requests_name_their_command)
{
	static const struct { const char *in, *verb, *cmd; } cases[] = {
		{ "status\n", "status", "status" },
		{ "wakeup\n", "wakeup", "wakeup" },
		{ "scale 3\n", "scale", "scale" },
		{ "restart\n", "restart", "restart" },
		{ "reload\n", "reload", "restart" },	/* first release */
		{ "stop\n", "stop", "stop" },
	};

	for (size_t i = 0; i < nitems(cases); i++) {
		ck_assert_int_eq(parse(cases[i].in, 0), REQUEST_READY);
		ck_assert_str_eq(rq.verb, cases[i].verb);
		ck_assert_ptr_eq(rq.cmd, command_find(cases[i].cmd));
		ck_assert_int_eq(rq.token.client, -1);
	}
}
END_TEST

START_TEST(crlf_ends_a_line_too)
{
	ck_assert_int_eq(parse("status exits\r\n", 0), REQUEST_READY);
	ck_assert_str_eq(rq.line, "status exits");
	ck_assert_str_eq(rq.arg, "exits");
	ck_assert_int_eq(rq.exits, 1);
	/* Only one CR, only at the end. */
	ck_assert_int_eq(parse("status exits\r\r\n", 0), REQUEST_READY);
	ck_assert_str_eq(rq.arg, "exits\r");
	ck_assert_int_eq(rq.exits, 0);
}
END_TEST

START_TEST(status_exits_only_for_exits)
{
	ck_assert_int_eq(parse("status\n", 0), REQUEST_READY);
	ck_assert_int_eq(rq.exits, 0);
	ck_assert_int_eq(parse("status exit\n", 0), REQUEST_READY);
	ck_assert_int_eq(rq.exits, 0);
	ck_assert_int_eq(parse("status exits\n", 0), REQUEST_READY);
	ck_assert_int_eq(rq.exits, 1);
}
END_TEST

START_TEST(scale_takes_1_to_16384)
{
	static const char *const bad[] = { "scale\n", "scale \n", "scale 0\n",
	    "scale 16385\n", "scale -1\n", "scale +1\n", "scale 1e3\n",
	    "scale 0x10\n", "scale 2 3\n", "scale 99999999999999999999999\n" };

	ck_assert_int_eq(parse("scale 1\n", 0), REQUEST_READY);
	ck_assert_int_eq(rq.count, 1);
	ck_assert_int_eq(parse("scale 16384\n", 0), REQUEST_READY);
	ck_assert_int_eq(rq.count, 16384);
	for (size_t i = 0; i < nitems(bad); i++)
		refused(bad[i], "scale: N must be an integer from 1 to 16384");
}
END_TEST

START_TEST(a_line_arrives_in_pieces)
{
	ck_assert_int_eq(parse("", 0), REQUEST_MORE);
	ck_assert_int_eq(parse("sta", 0), REQUEST_MORE);
	ck_assert_int_eq(parse("status", 0), REQUEST_MORE);
	ck_assert_int_eq(parse("status\n", 0), REQUEST_READY);
	/* Half-closed before the newline. */
	ck_assert_int_eq(parse("sta", 1), REQUEST_BAD);
	ck_assert_str_eq(err, "incomplete request");
	/* Half-closed after it changes nothing. */
	ck_assert_int_eq(parse("status\n", 1), REQUEST_READY);
}
END_TEST

START_TEST(framing_refusals)
{
	char big[PROTO_REQUEST_MAX + 2];

	ck_assert_int_eq(control_parse("sta\0tus\n", 8, 0, &rq, err,
	    sizeof(err)), REQUEST_BAD);
	ck_assert_str_eq(err, "malformed request");
	refused("status\nstatus\n", "one request per connection");
	refused("status\nx", "one request per connection");

	/* PROTO_REQUEST_MAX bytes, newline included, is the longest line. */
	memset(big, 's', sizeof(big));
	memcpy(big, "status ", 7);
	big[PROTO_REQUEST_MAX - 1] = '\n';
	ck_assert_int_eq(control_parse(big, PROTO_REQUEST_MAX, 0, &rq, err,
	    sizeof(err)), REQUEST_READY);
	ck_assert_uint_eq(strlen(rq.line), PROTO_REQUEST_MAX - 1);
	big[PROTO_REQUEST_MAX - 1] = 's';
	ck_assert_int_eq(control_parse(big, PROTO_REQUEST_MAX - 1, 0, &rq, err,
	    sizeof(err)), REQUEST_MORE);
	ck_assert_int_eq(control_parse(big, PROTO_REQUEST_MAX, 0, &rq, err,
	    sizeof(err)), REQUEST_BAD);
	ck_assert_str_eq(err, "request longer than 1024 bytes");
	big[PROTO_REQUEST_MAX] = '\n';
	ck_assert_int_eq(control_parse(big, PROTO_REQUEST_MAX + 1, 0, &rq, err,
	    sizeof(err)), REQUEST_BAD);
	ck_assert_str_eq(err, "request longer than 1024 bytes");
}
END_TEST

START_TEST(unknown_verbs_are_quoted_on_one_line)
{
	refused("frobnicate now\n", "unknown request \"frobnicate now\" "
	    "(expected status, wakeup, scale N, restart or stop)");
	refused("\n", "unknown request \"\" "
	    "(expected status, wakeup, scale N, restart or stop)");
	/* Commands a master does not serve, and over-long verbs. */
	refused("run x\n", "unknown request \"run x\" "
	    "(expected status, wakeup, scale N, restart or stop)");
	refused("statusstatusstatus\n", "unknown request "
	    "\"statusstatusstatus\" "
	    "(expected status, wakeup, scale N, restart or stop)");
	/* Control characters do not reach the client's terminal. */
	refused("wake\rup\033[2J\n", "unknown request \"wake?up?[2J\" "
	    "(expected status, wakeup, scale N, restart or stop)");
	/* At most 40 bytes of the line. */
	refused("0123456789012345678901234567890123456789tail\n",
	    "unknown request \"0123456789012345678901234567890123456789\" "
	    "(expected status, wakeup, scale N, restart or stop)");
}
END_TEST

/* reply_ok() on a copy of s: its verdict and text. */
static int
verdict(const char *s, char *text, size_t size)
{
	struct buf b = { 0 };
	const char *t;
	int ok;

	buf_add(&b, s, strlen(s));
	ck_assert(!b.oom);
	ok = reply_ok(&b, &t);
	ck_assert_uint_lt(strlen(t), size);
	strcpy(text, t);
	buf_free(&b);
	return ok;
}

START_TEST(reply_verdict_is_the_last_line_without_its_newline)
{
	char t[128];

	ck_assert_int_eq(verdict("ok woke up: respawned 0 workers\n", t,
	    sizeof(t)), 1);
	ck_assert_str_eq(t, "woke up: respawned 0 workers");
	ck_assert_int_eq(verdict("ok\n", t, sizeof(t)), 1);
	ck_assert_str_eq(t, "");
	ck_assert_int_eq(verdict("master pid=1\nok scaled 1 -> 2", t,
	    sizeof(t)), 1);
	ck_assert_str_eq(t, "scaled 1 -> 2");
	/* Blank lines after the verdict are not the verdict. */
	ck_assert_int_eq(verdict("ok stopping\n\n\n", t, sizeof(t)), 1);
	ck_assert_str_eq(t, "stopping");
	ck_assert_int_eq(verdict("okay\n", t, sizeof(t)), 0);
	ck_assert_str_eq(t, "okay");
}
END_TEST

START_TEST(reply_errors_carry_their_text)
{
	char t[128];

	ck_assert_int_eq(verdict("error the task is stopping\n", t,
	    sizeof(t)), 0);
	ck_assert_str_eq(t, "the task is stopping");
	ck_assert_int_eq(verdict("ok\nerror late\n", t, sizeof(t)), 0);
	ck_assert_str_eq(t, "late");
	/* Never an empty error. */
	ck_assert_int_eq(verdict("error \n", t, sizeof(t)), 0);
	ck_assert_str_eq(t, "error ");
	ck_assert_int_eq(verdict("\n\n", t, sizeof(t)), 0);
	ck_assert_str_eq(t, "the master sent no verdict");
	ck_assert_int_eq(verdict("", t, sizeof(t)), 0);
	ck_assert_str_eq(t, "the master sent no verdict");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("control");
	TCase *tp = tcase_create("control_parse");
	TCase *tr = tcase_create("reply_ok");

	tcase_add_test(tp, whole_requests_name_their_command);
	tcase_add_test(tp, crlf_ends_a_line_too);
	tcase_add_test(tp, status_exits_only_for_exits);
	tcase_add_test(tp, scale_takes_1_to_16384);
	tcase_add_test(tp, a_line_arrives_in_pieces);
	tcase_add_test(tp, framing_refusals);
	tcase_add_test(tp, unknown_verbs_are_quoted_on_one_line);
	suite_add_tcase(s, tp);
	tcase_add_test(tr, reply_verdict_is_the_last_line_without_its_newline);
	tcase_add_test(tr, reply_errors_carry_their_text);
	suite_add_tcase(s, tr);
	return unit_run(s);
}
