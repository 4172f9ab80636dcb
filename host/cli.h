/*
 * cli.h - the command line, parsed into a plain struct.
 *
 * cli_parse() is pure: it reads argv, never the environment or the file
 * system, and reports every usage error as a message (exit code 2).
 */
#ifndef PMHOST_CLI_H
#define PMHOST_CLI_H

#include <stddef.h>

#define CLI_TIMEOUT_MAX	86400	/* stop --timeout, seconds */
#define CLI_SCALE_MAX	4096	/* scale N */

enum cli_command {
	CMD_NONE,
	CMD_RUN,
	CMD_STOP,
	CMD_RESTART,
	CMD_STATUS,
	CMD_WAKEUP,
	CMD_SCALE,
	CMD_CHECK,
	CMD_HELP,
	CMD_VERSION
};

struct cli {
	enum cli_command cmd;
	enum cli_command help_topic;	/* CMD_HELP: CMD_NONE for general */
	const char	*config;	/* CONFIG argument, or NULL */
	const char	*title;		/* --title NAME, or NULL */
	int		 all;		/* stop --all */
	int		 daemon;	/* run -d */
	const char	*log_file;	/* run --log-file */
	int		 log_level;	/* run --log-level; -1 if not given */
	long		 timeout;	/* stop --timeout SECONDS; -1 if not given */
	int		 json;		/* status --json */
	long		 scale;		/* scale N */
};

/*
 * Fills *cli from argv (argv[0] is the program).  0 on success; -1 on a
 * usage error with a one-line message (no "pmhost: " prefix) in err.
 */
int		 cli_parse(int argc, char **argv, struct cli *cli, char *err,
		    size_t errlen);

/* Help text for one command, or the general help for CMD_NONE. */
const char	*cli_help(enum cli_command cmd);

/* "run", "stop", ... ("help", "version"; "?" for CMD_NONE) */
const char	*cli_command_name(enum cli_command cmd);

#endif
