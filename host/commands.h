/*
 * commands.h - one function per pmhost command; each returns the process
 * exit status (0 success, 1 runtime failure, 2 usage or config error) and
 * prints its own errors as "pmhost: ..." lines on stderr.
 */
#ifndef PMHOST_COMMANDS_H
#define PMHOST_COMMANDS_H

#include "cli.h"

#define EXIT_OK		0
#define EXIT_RUNTIME	1
#define EXIT_USAGE	2

int	cmd_run(const struct cli *cli);
int	cmd_check(const struct cli *cli);
int	cmd_stop(const struct cli *cli);
int	cmd_status(const struct cli *cli);
int	cmd_restart(const struct cli *cli);
int	cmd_wakeup(const struct cli *cli);
int	cmd_scale(const struct cli *cli);

struct config;
struct task_config;

/* Loads a config file, printing every problem; 0 or -1. */
int	load_config(const char *path, struct config *cfg);

/* Checks and starts one task detached, as "run -d" does; an exit status. */
int	start_detached(const struct task_config *t);

/* Prints "pmhost: " and the message to stderr. */
void	errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
