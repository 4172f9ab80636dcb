/*
 * main.c - pmhost's entry point: claims the argv area for process titles,
 * parses the command line, and hands over to the command.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "commands.h"
#include "title.h"

void
errmsg(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write: lines from concurrent commands stay whole. */
	fprintf(stderr, "pmhost: %s\n", buf);
}

int
main(int argc, char **argv)
{
	struct cli cli;
	char err[512];

	title_init(argc, argv);
	/* A master that hangs up on us must not kill a client command. */
	signal(SIGPIPE, SIG_IGN);
	if (cli_parse(argc, argv, &cli, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EXIT_USAGE;
	}
	switch (cli.cmd) {
	case CMD_HELP:
		fputs(cli_help(cli.help_topic), stdout);
		return EXIT_OK;
	case CMD_VERSION:
		printf("pmhost %s (plugin ABI %d)\n", PMHOST_VERSION,
		    PMHOST_ABI_VERSION);
		return EXIT_OK;
	case CMD_RUN:
		return cmd_run(&cli);
	case CMD_CHECK:
		return cmd_check(&cli);
	case CMD_STOP:
		return cmd_stop(&cli);
	case CMD_STATUS:
		return cmd_status(&cli);
	case CMD_RESTART:
		return cmd_restart(&cli);
	case CMD_WAKEUP:
		return cmd_wakeup(&cli);
	case CMD_SCALE:
		return cmd_scale(&cli);
	case CMD_NONE:
		break;
	}
	errmsg("missing command (try 'pmhost --help')");
	return EXIT_USAGE;
}
