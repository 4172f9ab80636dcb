/*
 * rundir.h - where a task's pid file and control socket live, and the pid
 * file lock that says whether its master runs.
 *
 * "Is NAME running" is answered by the flock on NAME.pid alone: a pid file
 * nobody holds locked is stale whatever pid it contains.
 */
#ifndef PMHOST_RUNDIR_H
#define PMHOST_RUNDIR_H

#include <stddef.h>
#include <sys/types.h>

#define RUNDIR_PATH_MAX	4096
#define SOCKET_PATH_MAX	108	/* sizeof(sun_path): NAME.sock must fit */

/*
 * The run dir for a task: its runDir when set, else $PMHOST_RUNDIR, else
 * /run/pmhost for root, else $XDG_RUNTIME_DIR/pmhost, else /tmp/pmhost-UID.
 * 0, or -1 with a message in err.
 */
int	rundir_resolve(const char *config_run_dir, char *dir, size_t size,
	    char *err, size_t errlen);

/*
 * Creates dir (0700, parents as needed) or checks the existing one: a real
 * directory, not a symlink, owned by us, not writable by group or others.
 * 0, or -1 with a message in err.
 */
int	rundir_prepare(const char *dir, char *err, size_t errlen);

/* Checks an existing dir as rundir_prepare would, without creating it. */
int	rundir_check(const char *dir, char *err, size_t errlen);

/* dir/NAME.ext into buf; -1 if it does not fit. */
int	rundir_path(char *buf, size_t size, const char *dir, const char *name,
	    const char *ext);

/*
 * Takes NAME.pid's lock and writes our pid into it.  0 with *fd holding the
 * lock (*holder: the pid a master that died without cleaning up left in
 * the file, else 0); 1 if another master holds it (its pid in *holder, 0
 * if unreadable); -1 on error with a message in err.
 */
int	pidfile_acquire(const char *dir, const char *name, int *fd,
	    pid_t *holder, char *err, size_t errlen);

/* Rewrites the pid in a held pid file (after the master forked away). */
int	pidfile_update(int fd);

/* Removes NAME.pid and drops the lock. */
void	pidfile_release(const char *dir, const char *name, int fd);

/*
 * Removes a stale NAME.pid and NAME.sock: only when nobody holds the
 * lock, and while we hold it.  1 if removed, 0 if a master runs, -1 on
 * error with a message in err.
 */
int	pidfile_prune(const char *dir, const char *name, char *err,
	    size_t errlen);

/*
 * Is NAME's master running?  1 with its pid in *pid (from the file, taken
 * while the lock was seen held), 0 if not (no file, or nobody holds the
 * lock: then *pid is the dead master's, read from the stale file, or 0),
 * -1 on error with a message in err.
 */
int	pidfile_probe(const char *dir, const char *name, pid_t *pid,
	    char *err, size_t errlen);

#endif
