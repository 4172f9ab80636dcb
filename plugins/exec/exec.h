/*
 * exec.h - what the files of the exec plugin share: its parsed params, the
 * resolved command with its environment, the child-output line sinks, and
 * the per-worker state of each mode.  One worker runs one child at a time
 * (call mode) or one coprocess for its whole life.
 */
#ifndef EXEC_H
#define EXEC_H

#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pmhost.h"

#define EXEC_ERR_MAX	1024	/* a params or spawn error message */
#define LINE_CAP	3072	/* longest child output line logged whole */
#define REPLY_CAP	4096	/* longest coprocess reply line */
#define EXIT_FAILED	70	/* worker exit when its coprocess fails */

enum exec_mode { MODE_CALL, MODE_COPROCESS };
enum exec_protocol { PROTO_LINE, PROTO_JSON };

/* params, validated: argv and env are NULL-terminated and owned here. */
struct exec_params {
	char		**argv;
	char		**env;		/* "NAME=VALUE" */
	enum exec_mode	  mode;
	enum exec_protocol protocol;
};

/* The program to run, ready for posix_spawn() again and again. */
struct command {
	char		 *path;		/* resolved executable */
	char		**argv;		/* exec_params' */
	char		**envp;		/* owned, NULL-terminated */
	char		 *call_var;	/* "PMHOST_CALL=N" in envp */
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t actions;
	int		  ready;	/* attr and actions initialised */
};

/* A child's output stream turned into log lines at one level. */
struct line_sink {
	pm_worker	*w;
	int		 level;
	int		 skipping;	/* dropping a long line's tail */
	size_t		 len;
	char		 buf[LINE_CAP + 1];
};

struct call_state {
	int		 null_fd;	/* the child's stdin */
	int		 out[2];	/* pipes kept for every call */
	int		 err[2];
	struct line_sink out_sink, err_sink;
};

struct coproc_state {
	pid_t		 pid;		/* 0: none (reaped) */
	int		 pidfd;
	int		 wstatus;	/* once reaped */
	int		 end_logged;	/* its end is logged */
	int		 in_fd;		/* its stdin; -1: closed */
	int		 out_fd;	/* its stdout: the replies */
	int		 err_fd;	/* its stderr; -1 after EOF */
	int		 epfd;		/* what a reply wait watches */
	unsigned	 watched;	/* which of them, as tags */
	struct line_sink err_sink;
	size_t		 reply_len;
	char		 reply[REPLY_CAP + 1];
};

struct exec_state {
	pm_worker	*w;
	struct exec_params prm;
	struct command	 cmd;
	int		 stop_fd;	/* -1: host without one */
	int		 stop_forwarded;
	int64_t		 fail_logged_ns; /* last failed call logged */
	uint64_t	 fails_quiet;	/* failed calls left out since */
	struct call_state call;
	struct coproc_state co;
};

/* params.c: parse and check params; err gets every problem, "; "-joined. */
int	params_parse(const char *json, struct exec_params *p, char *err,
	    size_t errlen);
void	params_free(struct exec_params *p);

/* command.c */
/* Finds the program into out (PATH, or relative to config_dir); 0 or -1. */
int	command_resolve(const char *name, const char *config_dir,
	    const char *search_path, char *out, size_t outlen, char *err,
	    size_t errlen);
/* The PATH the program is looked up on. */
const char *command_search_path(const struct exec_params *p);
/* Resolves the program and builds its environment and spawn attributes. */
int	command_prepare(struct command *c, const struct exec_params *p,
	    pm_worker *w, int with_call_var, char *err, size_t errlen);
/* The descriptors the child gets as 0, 1 and 2 (and no others). */
int	command_set_stdio(struct command *c, int in_fd, int out_fd,
	    int err_fd);
/* Starts the program (PMHOST_CALL=call if set up); its pid and a pidfd. */
int	command_spawn(struct command *c, uint64_t call, pid_t *pid,
	    int *pidfd, char *err, size_t errlen);
void	command_free(struct command *c);
/* "exited with status N" or "killed by SIGX (core dumped)". */
const char *command_end_text(int wstatus, char *buf, size_t size);

/* lines.c */
void	lines_init(struct line_sink *s, pm_worker *w, int level);
/* Logs the lines fd holds, reading at most budget bytes; 1 at EOF. */
int	lines_read(struct line_sink *s, int fd, size_t budget);
/* Logs an unfinished last line as it is. */
void	lines_flush(struct line_sink *s);

/* exec.c */
/* poll() timeout while a child runs: -1, or a tick without a stop fd. */
int	exec_poll_timeout(const struct exec_state *st);
/* Passes a stop request on to the process group; 1 if it did now. */
int	exec_forward_stop(struct exec_state *st, short stop_revents,
	    pid_t child);
/* Logs "exec: call N: ..." for a failed call, at most once a second. */
void	exec_log_failure(struct exec_state *st, uint64_t call,
	    const char *fmt, ...) PMHOST_PRINTF(3, 4);

/* call.c and coproc.c: each mode's share of work_init, work, work_fini. */
int	call_init(struct exec_state *st, char *err, size_t errlen);
int	call_work(struct exec_state *st);
void	call_fini(struct exec_state *st);
int	coproc_init(struct exec_state *st, char *err, size_t errlen);
int	coproc_work(struct exec_state *st);
void	coproc_fini(struct exec_state *st);

#endif /* EXEC_H */
