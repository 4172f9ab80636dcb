/*
 * fuzz_request.c - libFuzzer target for control_parse(): any bytes a
 * client may send on NAME.sock, seen as the master sees them, must give
 * a request for a known verb with a sound argument, a refusal of one
 * printable line, or a wait for more; never a crash or undefined
 * behaviour.
 *
 * Invariants checked on every input (a broken one aborts with its text):
 *   - the framing: without a newline, MORE until PROTO_REQUEST_MAX bytes
 *     (then "request longer than"), and "incomplete request" once the
 *     client has half-closed; with one, the verdict does not depend on
 *     eof, and is the one given when the newline arrived, bytes after it
 *     aside ("one request per connection");
 *   - READY: the line is the input's first line without its newline and
 *     one trailing CR, holds no NUL; verb is its first word and names the
 *     command rq->cmd (which the master can serve); arg is the rest; scale
 *     carries N in 1..CONFIG_MAX_WORKERS written in plain digits; status
 *     has exits set exactly for "exits"; the token names no client;
 *   - BAD: the error text is one of the known refusals, non-empty, and
 *     holds no control character (it goes back as one line).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "control.h"

#define EXPECT(cond)	do {						\
	if (!(cond))							\
		broken(__LINE__, #cond, NULL);				\
} while (0)

#define EXPECT_MSG(cond, msg)	do {					\
	if (!(cond))							\
		broken(__LINE__, #cond, (msg));				\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Names the broken invariant (and the text at fault), then aborts. */
static _Noreturn void
broken(int line, const char *what, const char *msg)
{
	fprintf(stderr, "fuzz_request.c:%d: invariant broken: %s\n", line,
	    what);
	if (msg != NULL)
		fprintf(stderr, "  text: \"%s\"\n", msg);
	abort();
}

/* The refusals control_parse() may answer with. */
static const char *const refusals[] = {
	"request longer than ",
	"incomplete request",
	"malformed request",
	"one request per connection",
	"unknown request \"",
	"scale: N must be an integer from 1 to ",
};

/* A refusal: known, and one line a terminal shows as it is. */
static void
check_bad(const char *err)
{
	int known = 0;

	EXPECT(err[0] != '\0');
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		if (strncmp(err, refusals[i], strlen(refusals[i])) == 0)
			known = 1;
	EXPECT_MSG(known, err);
	for (const unsigned char *p = (const unsigned char *)err; *p; p++)
		EXPECT_MSG(*p >= 0x20 && *p != 0x7f, err);
}

/* Is s one or more decimal digits and nothing else? */
static int
digits_only(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* A request the master will serve, against the bytes it came from. */
static void
check_ready(const struct request *rq, const uint8_t *data, size_t nl)
{
	size_t len = nl, vlen;

	if (len > 0 && data[len - 1] == '\r')
		len--;
	EXPECT(memchr(data, '\0', nl) == NULL);
	EXPECT(strlen(rq->line) == len && memcmp(rq->line, data, len) == 0);
	vlen = strcspn(rq->line, " ");
	EXPECT(strlen(rq->verb) == vlen &&
	    memcmp(rq->verb, rq->line, vlen) == 0);
	EXPECT(rq->arg == rq->line + vlen + (rq->line[vlen] == ' '));
	EXPECT(rq->cmd != NULL && rq->cmd->serve != NULL &&
	    rq->cmd->verb != NULL);
	EXPECT(command_for_verb(rq->verb) == rq->cmd);
	EXPECT(strcmp(rq->verb, rq->cmd->verb) == 0 ||
	    strcmp(rq->verb, "reload") == 0);
	if (strcmp(rq->cmd->verb, "scale") == 0) {
		EXPECT(rq->count >= 1 && rq->count <= CONFIG_MAX_WORKERS);
		EXPECT_MSG(digits_only(rq->arg) &&
		    strtol(rq->arg, NULL, 10) == rq->count, rq->arg);
	}
	EXPECT(rq->exits == (strcmp(rq->cmd->verb, "status") == 0 &&
	    strcmp(rq->arg, "exits") == 0));
	EXPECT(rq->token.client == -1);
}

/* Parses in[0..len) with eof; checks the result's own invariants. */
static enum request_parse
parse(const uint8_t *in, size_t len, int eof, struct request *rq,
    char *err, size_t errlen)
{
	enum request_parse r;

	memset(err, 0x5a, errlen);
	err[errlen - 1] = '\0';
	r = control_parse((const char *)in, len, eof, rq, err, errlen);
	EXPECT(r == REQUEST_MORE || r == REQUEST_READY || r == REQUEST_BAD);
	if (r == REQUEST_BAD)
		check_bad(err);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct request rq, rq2;
	static char err[256], err2[256];
	const uint8_t *nlp = memchr(data, '\n', size);
	size_t nl = nlp != NULL ? (size_t)(nlp - data) : size;
	const uint8_t *in = data;	/* exactly size bytes: ASan sees past */
	enum request_parse r, r2;

	r = parse(in, size, 0, &rq, err, sizeof(err));
	if (nlp == NULL) {
		EXPECT(r == (size >= PROTO_REQUEST_MAX ? REQUEST_BAD :
		    REQUEST_MORE));
		if (r == REQUEST_BAD)
			EXPECT_MSG(strncmp(err, "request longer", 14) == 0, err);
		r2 = parse(in, size, 1, &rq2, err2, sizeof(err2));
		EXPECT(r2 == REQUEST_BAD);
		if (size < PROTO_REQUEST_MAX)
			EXPECT_MSG(strcmp(err2, "incomplete request") == 0, err2);
		return 0;
	}
	/* A whole line: a half-close changes nothing. */
	r2 = parse(in, size, 1, &rq2, err2, sizeof(err2));
	EXPECT(r2 == r);
	EXPECT(r != REQUEST_MORE);
	if (r == REQUEST_BAD)
		EXPECT_MSG(strcmp(err, err2) == 0, err2);
	if (nl >= PROTO_REQUEST_MAX) {
		EXPECT(r == REQUEST_BAD);
		return 0;
	}
	/* Just before its newline, the line is still awaited. */
	EXPECT(parse(in, nl, 0, &rq2, err2, sizeof(err2)) == REQUEST_MORE);
	/* As the newline arrives, the verdict on the line alone. */
	r2 = parse(in, nl + 1, 0, &rq2, err2, sizeof(err2));
	EXPECT(r2 != REQUEST_MORE);
	if (size > nl + 1) {
		/* Pipelined: a line the master could serve is refused whole. */
		EXPECT(r == REQUEST_BAD);
		if (r2 == REQUEST_READY)
			EXPECT_MSG(strcmp(err, "one request per connection") ==
			    0, err);
	} else {
		EXPECT(r2 == r);
	}
	if (r == REQUEST_READY)
		check_ready(&rq, in, nl);
	return 0;
}
