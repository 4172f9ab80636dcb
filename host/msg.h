/*
 * msg.h - what a command says to the person who ran it: errors on stderr
 * ("pmhost: ..." lines), confirmations on stdout (silenced by -q).  Used
 * by every command, never by a master (it logs instead).
 */
#ifndef PMHOST_MSG_H
#define PMHOST_MSG_H

/* Prints "pmhost: " and the message to stderr, one write per line. */
void	errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a one-line confirmation on stdout unless quiet. */
void	say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* -q: say() prints nothing. */
void	msg_quiet(int quiet);

#endif
