/*
 * commands.h - every pmhost command, one entry each in one table: its
 * name, options and arguments (for cli.c), its help, the function that
 * runs it, and for the commands a running master answers, the request
 * verb and the master's handler (serve.c).  Adding a command is an entry
 * here and its handler.
 */
#ifndef PMHOST_COMMANDS_H
#define PMHOST_COMMANDS_H

#include "proto.h"
#include "util.h"

struct cli;
struct master;
struct request;

/* How a command's positional arguments are read (cli.c). */
enum arg_rule {
	ARGS_NONE,		/* none */
	ARGS_CONFIG,		/* CONFIG, required */
	ARGS_TARGET,		/* --title NAME or CONFIG, one required */
	ARGS_TARGET_OPT,	/* --title NAME or CONFIG, or neither */
	ARGS_STOP,		/* --title NAME, CONFIG or --all */
	ARGS_SCALE,		/* a target, then N */
	ARGS_HELP		/* [COMMAND] */
};

/* A master's answer to one request: record lines, then ok/error TEXT. */
struct reply {
	struct buf	 body;
	char		 text[1024];
};

enum serve_result {
	SERVE_OK,
	SERVE_ERROR,
	SERVE_LATER		/* answered when the work is done */
};

struct command {
	const char	*name;
	unsigned	 opts;		/* OPT_* (cli.h) it accepts */
	enum arg_rule	 args;
	const char	*usage;		/* "pmhost scale (--title NAME | ...) N" */
	const char	*summary;	/* one line; NULL: not listed */
	const char	*help;		/* the rest of 'pmhost help NAME' */
	int		(*run)(const struct cli *cli);
	const char	*verb;		/* control request; NULL: none */
	enum serve_result (*serve)(struct master *m, const struct request *rq,
			    struct reply *rp);
};

/* The command called name (an alias finds its command), or NULL. */
const struct command *command_find(const char *name);

/* The command a master's request verb names, or NULL. */
const struct command *command_for_verb(const char *verb);

/* The closest command name to a misspelt one, or NULL. */
const char	*command_suggest(const char *name);

/* Every command, for help: calls fn on each listed one in order. */
void		 commands_each(void (*fn)(const struct command *, void *),
		    void *arg);

/* The command-side handlers (run.c, ctl.c, logs.c, exporter.c, top.c). */
int	cmd_run(const struct cli *cli);
int	cmd_check(const struct cli *cli);
int	cmd_stop(const struct cli *cli);
int	cmd_status(const struct cli *cli);
int	cmd_restart(const struct cli *cli);
int	cmd_request(const struct cli *cli);
int	cmd_logs(const struct cli *cli);
int	cmd_exporter(const struct cli *cli);
int	cmd_top(const struct cli *cli);
int	cmd_help(const struct cli *cli);
int	cmd_version(const struct cli *cli);

/* The master-side handlers (serve.c). */
enum serve_result serve_status(struct master *m, const struct request *rq,
	    struct reply *rp);
enum serve_result serve_stop(struct master *m, const struct request *rq,
	    struct reply *rp);
enum serve_result serve_restart(struct master *m, const struct request *rq,
	    struct reply *rp);
enum serve_result serve_wakeup(struct master *m, const struct request *rq,
	    struct reply *rp);
enum serve_result serve_scale(struct master *m, const struct request *rq,
	    struct reply *rp);

#endif
