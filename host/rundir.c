/*
 * rundir.c - the run dir and NAME.pid.  The master holds an exclusive flock
 * on NAME.pid for its whole life; clients test the lock, never the pid, to
 * decide whether a master runs, so a stale file or a reused pid can never
 * block a start or fool a stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rundir.h"
#include "util.h"

int
rundir_resolve(const char *config_run_dir, char *dir, size_t size, char *err,
    size_t errlen)
{
	const char *env, *src;
	int n;

	if (config_run_dir != NULL) {
		src = "runDir";
		n = snprintf(dir, size, "%s", config_run_dir);
	} else if ((env = getenv("PMHOST_RUNDIR")) != NULL && *env != '\0') {
		src = "PMHOST_RUNDIR";
		if (env[0] != '/') {
			snprintf(err, errlen, "PMHOST_RUNDIR: must be an "
			    "absolute path, got '%s'", env);
			return -1;
		}
		n = snprintf(dir, size, "%s", env);
	} else if (geteuid() == 0) {
		src = "/run/pmhost";
		n = snprintf(dir, size, "/run/pmhost");
	} else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && env[0] == '/') {
		src = "XDG_RUNTIME_DIR";
		n = snprintf(dir, size, "%s/pmhost", env);
	} else {
		src = "/tmp";
		n = snprintf(dir, size, "/tmp/pmhost-%ld", (long)geteuid());
	}
	if (n < 0 || (size_t)n >= size) {
		snprintf(err, errlen, "%s: run dir path too long", src);
		return -1;
	}
	/* "/run/app/" and "/run/app" are one dir (and lstat must see a link). */
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	return 0;
}

/* dir without trailing slashes, into buf; -1 if it does not fit. */
static int
strip_slashes(const char *dir, char *buf, size_t size)
{
	size_t n = copy_str(buf, dir, size);

	if (n >= size)
		return -1;
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return 0;
}

int
rundir_check(const char *path, char *err, size_t errlen)
{
	char dir[RUNDIR_PATH_MAX];
	struct stat st;

	/* With a trailing slash, lstat() would follow a symlink. */
	if (strip_slashes(path, dir, sizeof(dir)) < 0) {
		snprintf(err, errlen, "run dir %s: path too long", path);
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		snprintf(err, errlen, "run dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "run dir %s: is a symlink, refused", dir);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "run dir %s: not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "run dir %s: owned by uid %ld, not by "
		    "uid %ld, refused", dir, (long)st.st_uid, (long)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "run dir %s: writable by group or "
		    "others (mode %04o), refused", dir,
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* mkdir -p for the parents of dir, leaving their modes to the umask. */
static int
make_parents(const char *dir, char *err, size_t errlen)
{
	char buf[RUNDIR_PATH_MAX];

	if (copy_str(buf, dir, sizeof(buf)) >= sizeof(buf)) {
		snprintf(err, errlen, "run dir %s: path too long", dir);
		return -1;
	}
	for (char *p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "run dir %s: cannot create %s: %s",
			    dir, buf, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	return 0;
}

int
rundir_prepare(const char *path, char *err, size_t errlen)
{
	char dir[RUNDIR_PATH_MAX];

	if (path[0] != '/') {
		snprintf(err, errlen, "run dir %s: not an absolute path", path);
		return -1;
	}
	/* "/run/app/" is "/run/app": created 0700 itself, not as a parent. */
	if (strip_slashes(path, dir, sizeof(dir)) < 0) {
		snprintf(err, errlen, "run dir %s: path too long", path);
		return -1;
	}
	if (make_parents(dir, err, errlen) < 0)
		return -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "run dir %s: cannot create: %s", dir,
		    strerror(errno));
		return -1;
	}
	return rundir_check(dir, err, errlen);
}

int
rundir_path(char *buf, size_t size, const char *dir, const char *name,
    const char *ext)
{
	int n = snprintf(buf, size, "%s/%s%s", dir, name, ext);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The pid written in an open pid file, 0 if none can be read. */
static pid_t
read_pid(int fd)
{
	char buf[32];
	ssize_t n;
	long v;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (parse_long(buf, 1, 0x7fffffff, &v) < 0)
		return 0;
	return (pid_t)v;
}

int
pidfile_update(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		return -1;
	return 0;
}

int
pidfile_acquire(const char *dir, const char *name, int *fd, pid_t *holder,
    char *err, size_t errlen)
{
	char path[RUNDIR_PATH_MAX];
	struct stat fst, pst;

	if (rundir_path(path, sizeof(path), dir, name, ".pid") < 0) {
		snprintf(err, errlen, "%s: pid file path too long", name);
		return -1;
	}
	for (int busy = 0;;) {
		int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
		    O_NOCTTY, 0644);

		if (f < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		if (flock(f, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;

			*holder = e == EWOULDBLOCK ? read_pid(f) : 0;
			close(f);
			if (e != EWOULDBLOCK) {
				snprintf(err, errlen, "%s: lock: %s", path,
				    strerror(e));
				return -1;
			}
			/*
			 * A client probing a stale file holds a shared lock
			 * for a few microseconds; only a live holder counts.
			 */
			if ((*holder == 0 || (kill(*holder, 0) < 0 &&
			    errno == ESRCH)) &&
			    busy++ < 5) {
				nanosleep(&(struct timespec){ 0, 2000000 },
				    NULL);
				continue;
			}
			return 1;
		}
		/*
		 * A master that stopped between our open() and flock() has
		 * unlinked the file we hold; lock the one at the path instead.
		 */
		if (fstat(f, &fst) == 0 && stat(path, &pst) == 0 &&
		    fst.st_ino == pst.st_ino && fst.st_dev == pst.st_dev) {
			/* A pid left behind: its master died uncleanly. */
			*holder = fst.st_size > 0 ? read_pid(f) : 0;
			if (pidfile_update(f) < 0) {
				snprintf(err, errlen, "%s: write: %s", path,
				    strerror(errno));
				close(f);
				return -1;
			}
			*fd = f;
			return 0;
		}
		close(f);
	}
}

void
pidfile_release(const char *dir, const char *name, int fd)
{
	char path[RUNDIR_PATH_MAX];

	/* Unlink while still holding the lock: no one can take a dead file. */
	if (rundir_path(path, sizeof(path), dir, name, ".pid") == 0)
		unlink(path);
	close(fd);
}

int
pidfile_probe(const char *dir, const char *name, pid_t *pid, char *err,
    size_t errlen)
{
	char path[RUNDIR_PATH_MAX];
	int f, r;

	if (rundir_path(path, sizeof(path), dir, name, ".pid") < 0) {
		snprintf(err, errlen, "%s: pid file path too long", name);
		return -1;
	}
	if ((f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(f, LOCK_SH | LOCK_NB) == 0) {
		*pid = read_pid(f);
		r = 0;		/* nobody holds it: stale */
	} else if (errno == EWOULDBLOCK) {
		*pid = read_pid(f);
		r = 1;
	} else {
		snprintf(err, errlen, "%s: lock: %s", path, strerror(errno));
		r = -1;
	}
	close(f);
	return r;
}

int
pidfile_prune(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[RUNDIR_PATH_MAX], sock[RUNDIR_PATH_MAX];
	struct stat fst, pst;
	int f, r = 1;

	if (rundir_path(path, sizeof(path), dir, name, ".pid") < 0 ||
	    rundir_path(sock, sizeof(sock), dir, name, ".sock") < 0) {
		snprintf(err, errlen, "%s: path too long", name);
		return -1;
	}
	if ((f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? 0 : -1;
		if (r < 0)
			snprintf(err, errlen, "%s: lock: %s", path,
			    strerror(errno));
	} else if (fstat(f, &fst) == 0 && stat(path, &pst) == 0 &&
	    fst.st_ino == pst.st_ino && fst.st_dev == pst.st_dev) {
		/* Holding the lock: no master can start in between. */
		if ((unlink(sock) < 0 && errno != ENOENT) ||
		    unlink(path) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			r = -1;
		}
	}
	close(f);
	return r;
}
