/*
 * cli.h - the command line, parsed into a plain struct.
 *
 * cli_parse() is pure: it reads argv and the command table (commands.h),
 * never the environment or the file system, and reports every usage error
 * as a message (exit code 2).
 */
#ifndef PMHOST_CLI_H
#define PMHOST_CLI_H

#include <stddef.h>

#include "commands.h"
#include "config.h"

/* What status prints. */
enum out_format { OUT_TABLE, OUT_JSON, OUT_PROMETHEUS };

#define CLI_TIMEOUT_MAX	86400	/* stop --timeout, seconds */
#define CLI_SCALE_MAX	CONFIG_MAX_WORKERS	/* scale N */
#define CLI_LINES_MAX	1000000	/* logs -n N */
#define CLI_INTERVAL_MIN_MS 100		/* top --interval, ms */
#define CLI_INTERVAL_MAX_MS 3600000
#define CLI_HOST_MAX	256	/* exporter --listen: the address part */

/* Options, as bits so that a command lists the ones it accepts. */
enum opt_id {
	OPT_DAEMON	= 1 << 0,
	OPT_LOG_FILE	= 1 << 1,
	OPT_LOG_LEVEL	= 1 << 2,
	OPT_TITLE	= 1 << 3,
	OPT_ALL		= 1 << 4,
	OPT_TIMEOUT	= 1 << 5,
	OPT_JSON	= 1 << 6,
	OPT_QUIET	= 1 << 7,
	OPT_PRUNE	= 1 << 8,
	OPT_FOLLOW	= 1 << 9,
	OPT_LINES	= 1 << 10,
	OPT_SLOT	= 1 << 11,
	OPT_LEVEL	= 1 << 12,
	OPT_FORMAT	= 1 << 13,
	OPT_LOG_FORMAT	= 1 << 14,
	OPT_LISTEN	= 1 << 15,
	OPT_RUNDIR	= 1 << 16,
	OPT_BATCH	= 1 << 17,
	OPT_ITERATIONS	= 1 << 18,
	OPT_INTERVAL	= 1 << 19
};

struct cli {
	const struct command *cmd;	/* NULL only after an error */
	const struct command *help_topic; /* help: NULL for general */
	const char	*config;	/* CONFIG argument, or NULL */
	const char	*title;		/* --title NAME, or NULL */
	int		 all;		/* stop --all */
	int		 daemon;	/* run -d */
	const char	*log_file;	/* run --log-file */
	int		 log_level;	/* run --log-level; -1 if not given */
	long		 timeout;	/* stop --timeout SECONDS; -1 if not given */
	int		 json;		/* status --json, --format json */
	int		 format;	/* status --format: OUT_* */
	int		 log_format;	/* run --log-format: LOG_*; -1 */
	long		 scale;		/* scale N */
	int		 quiet;		/* -q: no confirmation line */
	int		 prune;		/* status --prune */
	int		 follow;	/* logs -f */
	long		 lines;		/* logs -n N; -1 if not given */
	long		 slot;		/* logs --slot S; -1 if not given */
	int		 level;		/* logs --level L; -1 if not given */
	const char	*listen;	/* exporter --listen ADDR:PORT */
	const char	*run_dir;	/* exporter --rundir DIR, or NULL */
	int		 batch;		/* top -b */
	long		 iterations;	/* top -n N; -1 if not given */
	long		 interval_ms;	/* top --interval; -1 if not given */
};

/*
 * Fills *cli from argv (argv[0] is the program).  0 on success; -1 on a
 * usage error with a one-line message (no "pmhost: " prefix) in err.
 */
int		 cli_parse(int argc, char **argv, struct cli *cli, char *err,
		    size_t errlen);

/*
 * Splits exporter's --listen value: "PORT", ":PORT", "ADDR:PORT" or
 * "[IPV6]:PORT", the address 127.0.0.1 when none is given.  0, or -1 if
 * it is none of these or the port is not 0 to 65535.
 */
int		 cli_listen_split(const char *value, char *host, size_t hostlen,
		    long *port);

/* Writes the help of cmd (NULL: the general help) into out. */
void		 cli_help(const struct command *cmd, struct buf *out);

#endif
