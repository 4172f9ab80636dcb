/*
 * main.c - pmhost's entry point: claims the argv area for process titles,
 * parses the command line, and runs the command (commands.c).
 */
#include <signal.h>
#include <stdio.h>

#include "cli.h"
#include "msg.h"
#include "title.h"

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
	msg_quiet(cli.quiet);
	return cli.cmd->run(&cli);
}
