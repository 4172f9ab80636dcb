/*
 * top.c - "pmhost top": tasks and their workers, live in a terminal or
 * as frames of plain text (-b).  Each interval it asks every master it
 * shows for its status (scrape.c) and draws what topview.c makes of the
 * last two answers.  The screen is redrawn whole each time, so plain
 * ANSI escapes and the terminal's non-canonical mode are all it takes;
 * whatever ends it (q, -n, a signal), and across Ctrl-Z, the terminal is
 * left as it was found.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "msg.h"
#include "scrape.h"
#include "topview.h"
#include "util.h"

#define INTERVAL_DEFAULT_MS	1000
#define SAMPLE_TIMEOUT_MS	1000	/* a master's time to answer */

/* Into the alternate screen, cursor hidden; and back. */
#define SCREEN_ENTER	"\033[?1049h\033[?25l"
#define SCREEN_LEAVE	"\033[?25h\033[?1049l"

struct top {
	const struct cli *cli;
	int		 interactive;	/* a terminal: keys, one screen */
	int		 sigfd;
	int		 raw;		/* the terminal is in our mode */
	struct termios	 saved;		/* ... and this was its own */
	struct top_sample prev, cur;
	struct top_opts	 o;
	char		 task[TITLE_MAX + 1];	/* whose slots are shown */
	char		 run_dir[RUNDIR_PATH_MAX];
	long		 frames;
};

static void
sample_free(struct top_sample *s)
{
	for (size_t i = 0; i < s->n; i++)
		status_free(&s->ms[i]);
	free(s->ms);
	memset(s, 0, sizeof(*s));
}

/* Asks the masters for their status: the new cur.  0 or an exit status. */
static int
take_sample(struct top *tp)
{
	struct top_sample s;
	struct scrape sc;
	int r;

	memset(&s, 0, sizeof(s));
	if ((r = scrape_begin(&sc, tp->cli, "status", SAMPLE_TIMEOUT_MS)) != 0)
		return r;
	scrape_wait(&sc);
	s.at_ns = mono_ns();
	s.wall_ms = real_ns() / NS_PER_MS;
	r = scrape_rows(&sc, &s.ms, &s.n);
	scrape_end(&sc);
	if (r < 0) {
		errmsg("out of memory");
		return EXIT_RUNTIME;
	}
	sample_free(&tp->prev);
	tp->prev = tp->cur;
	tp->cur = s;
	return 0;
}

/* Puts the terminal in our mode: keys one at a time, no echo. */
static int
term_enter(struct top *tp)
{
	struct termios t;

	if (tcgetattr(0, &tp->saved) < 0)
		return -1;
	t = tp->saved;
	/* Signals stay: Ctrl-C and Ctrl-Z reach the signalfd. */
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(0, TCSANOW, &t) < 0)
		return -1;
	tp->raw = 1;
	return write_all(1, SCREEN_ENTER, sizeof(SCREEN_ENTER) - 1);
}

/* Gives the terminal back as it was found. */
static void
term_leave(struct top *tp)
{
	if (!tp->raw)
		return;
	(void)write_all(1, SCREEN_LEAVE, sizeof(SCREEN_LEAVE) - 1);
	tcsetattr(0, TCSANOW, &tp->saved);
	tp->raw = 0;
}

/* The terminal's size into the options (80x24 when it does not say). */
static void
term_size(struct top *tp)
{
	struct winsize ws;

	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		tp->o.width = ws.ws_col;
		tp->o.height = ws.ws_row;
	} else {
		tp->o.width = 80;
		tp->o.height = 24;
	}
}

/* Draws the frame of the last two samples; 0, or -1 if output failed. */
static int
draw(struct top *tp)
{
	struct buf frame = { 0 }, screen = { 0 };
	int r = 0;

	tp->o.task = tp->task[0] != '\0' ? tp->task : NULL;
	topview_frame(tp->prev.n > 0 || tp->prev.at_ns != 0 ? &tp->prev :
	    NULL, &tp->cur, &tp->o, &frame);
	if (frame.oom) {
		buf_free(&frame);
		return -1;
	}
	if (!tp->interactive) {
		/* Frames apart by a blank line, as top -b prints them. */
		if ((tp->frames > 0 && fputs("\n", stdout) == EOF) ||
		    fwrite(frame.p, 1, frame.len, stdout) != frame.len ||
		    fflush(stdout) == EOF)
			r = -1;
		buf_free(&frame);
		return r;
	}
	/*
	 * Home, each line then clear to its end, and clear below: no
	 * flicker.  No newline after the last line, which on the bottom row
	 * would scroll the screen.
	 */
	buf_add(&screen, "\033[H", 3);
	for (size_t i = 0; i < frame.len; i++) {
		if (frame.p[i] != '\n') {
			buf_add(&screen, &frame.p[i], 1);
			continue;
		}
		buf_add(&screen, "\033[K", 3);
		if (i + 1 < frame.len)
			buf_add(&screen, "\n", 1);
	}
	buf_add(&screen, "\033[J", 3);
	if (screen.oom || write_all(1, screen.p, screen.len) < 0)
		r = -1;
	buf_free(&frame);
	buf_free(&screen);
	return r;
}

/*
 * Acts on the keys read; 1 to quit, 0 to go on (redrawing if they
 * changed the view).
 */
static int
on_keys(struct top *tp)
{
	char keys[64];
	ssize_t n = read(0, keys, sizeof(keys));
	int changed = 0;

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
		return 1;	/* the terminal is gone */
	for (ssize_t i = 0; i < n; i++) {
		const char *next;
		int sort;

		/* An escape sequence (an arrow, a function key): not ours. */
		if (keys[i] == '\033')
			break;
		if (keys[i] == 'q' || keys[i] == 'Q')
			return 1;
		if (keys[i] == 't' &&
		    (next = topview_next_task(&tp->cur, tp->task)) != NULL) {
			copy_str(tp->task, next, sizeof(tp->task));
			changed = 1;
		} else if ((sort = topview_sort_of_key(keys[i])) >= 0) {
			tp->o.sort = (enum top_sort)sort;
			changed = 1;
		}
	}
	return changed && draw(tp) < 0;
}

/*
 * Acts on a signal; 1 to quit.  Ctrl-Z gives the terminal back before
 * stopping, and takes it again (redrawn) on the way back.
 */
static int
on_signal(struct top *tp)
{
	struct signalfd_siginfo si;

	if (read(tp->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 0;
	switch (si.ssi_signo) {
	case SIGTSTP:
		term_leave(tp);
		kill(getpid(), SIGSTOP);
		/* FALLTHROUGH */
	case SIGCONT:		/* continued */
		if (tp->interactive && !tp->raw && term_enter(tp) < 0)
			return 1;
		/* FALLTHROUGH */
	case SIGWINCH:
		if (tp->interactive)
			term_size(tp);
		return tp->interactive && draw(tp) < 0;
	default:
		return 1;	/* TERM, INT, HUP, QUIT */
	}
}

/* The signals top reads from a descriptor; -1 on error. */
static int
signals_open(int interactive)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	if (interactive) {
		sigaddset(&set, SIGWINCH);
		sigaddset(&set, SIGTSTP);
		sigaddset(&set, SIGCONT);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Frames until told to stop; an exit status. */
static int
top_loop(struct top *tp)
{
	const int64_t interval = tp->o.interval_ms * NS_PER_MS;
	int64_t next_at = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = tp->sigfd, .events = POLLIN },
			{ .fd = tp->interactive ? 0 : -1, .events = POLLIN },
		};
		int64_t now = mono_ns();
		int r;

		if (now >= next_at) {
			if (next_at != 0 && (r = take_sample(tp)) != 0)
				return r;
			if (draw(tp) < 0)
				return errno == EPIPE ? EXIT_OK : EXIT_RUNTIME;
			if (++tp->frames == tp->cli->iterations)
				return EXIT_OK;
			next_at = tp->cur.at_ns + interval;
			continue;
		}
		r = poll(pfd, 2, (int)((next_at - now + NS_PER_MS - 1) /
		    NS_PER_MS));
		if (r < 0 && errno != EINTR)
			return EXIT_RUNTIME;
		if (r > 0 && pfd[0].revents != 0 && on_signal(tp))
			return EXIT_OK;
		if (r > 0 && pfd[1].revents != 0 && on_keys(tp))
			return EXIT_OK;
	}
}

int
cmd_top(const struct cli *cli)
{
	struct top tp;
	char err[512];
	int status;

	memset(&tp, 0, sizeof(tp));
	tp.cli = cli;
	tp.interactive = !cli->batch && isatty(0) && isatty(1);
	tp.o.interval_ms = cli->interval_ms > 0 ? cli->interval_ms :
	    INTERVAL_DEFAULT_MS;
	tp.o.every_task = !tp.interactive;
	tp.o.keys = tp.interactive;
	if (rundir_resolve(NULL, tp.run_dir, sizeof(tp.run_dir), err,
	    sizeof(err)) == 0)
		tp.o.run_dir = tp.run_dir;
	/* The first answers before the screen is taken: errors show. */
	if ((status = take_sample(&tp)) != 0)
		return status;
	if ((tp.sigfd = signals_open(tp.interactive)) < 0) {
		errmsg("top: signalfd: %s", strerror(errno));
		sample_free(&tp.cur);
		return EXIT_RUNTIME;
	}
	if (tp.interactive) {
		term_size(&tp);
		if (term_enter(&tp) < 0) {
			term_leave(&tp);
			errmsg("top: the terminal: %s", strerror(errno));
			status = EXIT_RUNTIME;
		}
	}
	if (status == 0)
		status = top_loop(&tp);
	term_leave(&tp);
	close(tp.sigfd);
	sample_free(&tp.prev);
	sample_free(&tp.cur);
	return status;
}
