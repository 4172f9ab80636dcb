/*
 * trust.h - which paths a master may trust, and opening a log file so that
 * nobody else's symlink, hard link or FIFO can redirect what it writes.
 *
 * A directory is safe when only root or the master's own user can change
 * it: owned by one of them, not writable by its group (unless that is
 * root's) or by others.  A symlink is followed only in a safe directory.
 */
#ifndef PMHOST_TRUST_H
#define PMHOST_TRUST_H

#include <stddef.h>
#include <sys/types.h>

/*
 * As root, the strict check of a path the master reads or writes (the
 * config file, the plugin, the run dir, the log): every directory on the
 * way (symlinks resolved) and the object itself must be changeable by
 * nobody but root or also (the task's user for a log; -1: nobody).  A
 * sticky directory such as /tmp may lie on the way.  A path that does not
 * exist is judged by the directory it would be made in.  0, or -1 with
 * "PATH: what is wrong" in err.
 */
int	trust_path(const char *path, uid_t also, char *err, size_t errlen);

/*
 * Opens path for appending (created 0640).  Refused: a symlink in a
 * directory another user can write, anything but a regular file or a
 * character device of root's (/dev/null), a file with more than one link,
 * a file owned by anyone but root, us or task_uid (-1: nobody).  Never
 * blocks (a FIFO is refused, not waited on).  The descriptor, or -1 with
 * the reason in err.
 */
int	trust_open_log(const char *path, uid_t task_uid, char *err,
	    size_t errlen);

/* Would trust_open_log() take path?  Creates nothing; 0 or -1. */
int	trust_check_log(const char *path, uid_t task_uid, char *err,
	    size_t errlen);

#endif
