/*
 * config.h - the task configuration as the rest of the host sees it.
 *
 * config.c is the only file that knows JSON: it reads a config file,
 * validates every key strictly, applies process_manage's defaults and
 * hands out plain structs.  A config with any error yields no tasks.
 */
#ifndef PMHOST_CONFIG_H
#define PMHOST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_BYTES	(1024 * 1024)	/* larger files are refused */
#define CONFIG_MAX_WORKERS	16384
#define CONFIG_MAX_TITLE	64		/* baseTitle, titlePrefix */

enum schedule {
	SCHEDULE_DELAY,		/* sleep executeUSleep after each call */
	SCHEDULE_RATE		/* start a call every executeUSleep */
};

/* A resource limit applied in workers: soft and hard alike. */
struct limit {
	int		 set;		/* 0: left as inherited */
	uint64_t	 value;		/* RLIM_INFINITY for "infinity" */
};

enum limit_id { LIMIT_NOFILE, LIMIT_NPROC, LIMIT_CORE, LIMIT_AS,
	LIMIT_COUNT };

/* One task: one master, one identity (base_title). */
struct task_config {
	char		*config_path;	/* absolute path of the config file */
	char		*config_dir;	/* its directory */
	char		*plugin;	/* absolute path of the .so */
	char		*title_prefix;	/* "process_m" */
	char		*base_title;	/* "process" */
	long long	 check_interval;/* s; <= 0: run once, no respawn */
	int		 max_workers;	/* >= 1 */
	uint64_t	 execute_times;	/* 0: unlimited */
	uint64_t	 execute_usleep;/* us */
	uint64_t	 limit_seconds;	/* 0: no lifetime limit */
	uint64_t	 execute_times_jitter;	/* each life adds [0, this] */
	uint64_t	 limit_seconds_jitter;	/* the same, in seconds */
	char		*params;	/* compact JSON text, "null" if absent */
	unsigned	 stop_timeout;	/* s, default 5 */
	unsigned	 work_timeout;	/* s, 0: off */
	unsigned	 max_rss_mb;	/* 0: off */
	enum schedule	 schedule;
	char		*user;		/* NULL: do not change */
	char		*group;		/* NULL: user's primary group */
	char		*run_dir;	/* absolute; NULL: the default */
	char		*log_file;	/* absolute; NULL: stderr / run dir */
	int		 log_level;	/* PM_LOG_*; -1: not set (info) */
	int		 strict_paths;	/* as root: refuse paths others can
					   write (default 1) */
	int		 no_new_privs;	/* workers: PR_SET_NO_NEW_PRIVS
					   (default 1) */
	struct limit	 limits[LIMIT_COUNT];
	int		 preload;	/* workers forked from a preload
					   process that loaded the plugin */
	int		 log_format;	/* logFormat: 0 text, 1 json */
	char		*env;		/* "env": its object as JSON; NULL */
	char		*working_dir;	/* absolute; NULL: "/" */
	/* The plugin as run and restart pinned it (pin.h); not keys. */
	char		*pinned;	/* its copy's path; NULL: not pinned */
	char		 plugin_sha256[65];
	char		*json;		/* all of it as compact JSON */
};

/*
 * Sets the task's env in this process (a worker's, the load check's, the
 * preload process's); 0, or -1 with the reason in err.
 */
int	config_env_apply(const struct task_config *t, char *err, size_t errlen);

/* "nofile", "nproc", "core", "as": the names in the limits object. */
const char	*config_limit_name(enum limit_id id);

struct config {
	size_t			 ntasks;
	struct task_config	*tasks;
};

/* Every problem found, one message each, in the order found. */
struct config_errors {
	size_t	  count;
	char	**msgs;
};

/*
 * Reads and validates the file at path.  0 and *cfg filled, or -1 with
 * every problem appended to errs as "PATH: KEY: what is wrong" (or
 * "PATH:LINE:COLUMN: ..." for syntax errors).
 */
int	config_load(const char *path, struct config *cfg,
	    struct config_errors *errs);

/*
 * As config_load, for text already in memory; path names it in messages
 * and is the base for relative paths (it need not exist).
 */
int	config_parse(const char *text, size_t len, const char *path,
	    struct config *cfg, struct config_errors *errs);

void	config_free(struct config *cfg);
void	config_errors_free(struct config_errors *errs);

/* Copies one task into fresh storage (for a master outliving its config). */
int	task_config_copy(struct task_config *dst,
	    const struct task_config *src);
void	task_config_free(struct task_config *tc);

#endif
