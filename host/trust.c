/*
 * trust.c - path trust.  Both checks walk a path one component at a time
 * from an open directory (openat with O_NOFOLLOW), so that what is judged
 * is what is opened: no component can be swapped between the check and
 * the use.  Symlinks are resolved by hand, and only where the directory
 * holding them is safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trust.h"
#include "util.h"

#define MAX_LINKS	40	/* symlinks followed in one path, as the kernel */

/* Can nobody but root, us and also change what st describes? */
static int
owned_safely(const struct stat *st, uid_t also)
{
	if (st->st_uid != 0 && st->st_uid != geteuid() &&
	    (also == (uid_t)-1 || st->st_uid != also))
		return 0;
	if ((st->st_mode & S_IWGRP) && st->st_gid != 0)
		return 0;
	return !(st->st_mode & S_IWOTH);
}

/* Why st fails owned_safely(), for a message. */
static void
why_unsafe(const char *what, const struct stat *st, char *err,
    size_t errlen)
{
	if ((st->st_mode & S_IWOTH))
		snprintf(err, errlen, "%s: writable by every user (mode %04o)",
		    what, (unsigned)(st->st_mode & 07777));
	else if ((st->st_mode & S_IWGRP) && st->st_gid != 0)
		snprintf(err, errlen, "%s: writable by group %ld (mode %04o)",
		    what, (long)st->st_gid, (unsigned)(st->st_mode & 07777));
	else
		snprintf(err, errlen, "%s: owned by uid %ld, not by root",
		    what, (long)st->st_uid);
}

/* Is the directory st describes one whose entries only we control? */
static int
dir_safe(const struct stat *st)
{
	return owned_safely(st, (uid_t)-1);
}

/* A walk along a path: the directory reached and what remains. */
struct walk {
	int	 dirfd;			/* O_PATH directory */
	struct stat dirst;
	char	 done[PATH_MAX];	/* the directory's path, for messages */
	char	 rest[2 * PATH_MAX];	/* components still to walk */
	int	 links;
};

/* Starts at "/" with path to walk; 0 or -1. */
static int
walk_start(struct walk *w, const char *path, char *err, size_t errlen)
{
	if (path[0] != '/') {
		snprintf(err, errlen, "%s: not an absolute path", path);
		return -1;
	}
	w->links = 0;
	copy_str(w->done, "", sizeof(w->done));
	if (copy_str(w->rest, path, sizeof(w->rest)) >= sizeof(w->rest)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	w->dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0 || fstat(w->dirfd, &w->dirst) < 0) {
		snprintf(err, errlen, "/: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Takes the next component off w->rest into name; 0, or 1 at the end. */
static int
next_name(struct walk *w, char *name, size_t size)
{
	char *p = w->rest, *slash;
	size_t n;

	while (*p == '/')
		p++;
	if (*p == '\0')
		return 1;
	slash = strchr(p, '/');
	n = slash != NULL ? (size_t)(slash - p) : strlen(p);
	if (n >= size)
		n = size - 1;
	memcpy(name, p, n);
	name[n] = '\0';
	memmove(w->rest, p + n, strlen(p + n) + 1);
	return 0;
}

/* Is w->rest empty (the name just taken was the last)? */
static int
at_end(const struct walk *w)
{
	for (const char *p = w->rest; *p; p++)
		if (*p != '/')
			return 0;
	return 1;
}

/*
 * Replaces a symlink name found in w's directory by its target, in front
 * of what remains; 0 or -1.  An absolute target restarts at "/".
 */
static int
splice_link(struct walk *w, const char *name, char *err, size_t errlen)
{
	char target[PATH_MAX], joined[2 * PATH_MAX];
	ssize_t n;

	if (++w->links > MAX_LINKS) {
		snprintf(err, errlen, "%s/%s: too many symlinks", w->done,
		    name);
		return -1;
	}
	n = readlinkat(w->dirfd, name, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(err, errlen, "%s/%s: %s", w->done, name,
		    strerror(errno));
		return -1;
	}
	target[n] = '\0';
	if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", target,
	    w->rest) >= sizeof(joined)) {
		snprintf(err, errlen, "%s/%s: path too long", w->done, name);
		return -1;
	}
	copy_str(w->rest, joined, sizeof(w->rest));
	if (target[0] == '/') {
		int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 || fstat(fd, &w->dirst) < 0) {
			snprintf(err, errlen, "/: %s", strerror(errno));
			return -1;
		}
		close(w->dirfd);
		w->dirfd = fd;
		copy_str(w->done, "", sizeof(w->done));
	}
	return 0;
}

/* Steps into directory name of w's directory; 0 or -1. */
static int
enter_dir(struct walk *w, const char *name, char *err, size_t errlen)
{
	int fd = openat(w->dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	size_t len = strlen(w->done);

	if (fd < 0 || fstat(fd, &w->dirst) < 0) {
		snprintf(err, errlen, "%s/%s: %s", w->done, name,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(w->dirfd);
	w->dirfd = fd;
	snprintf(w->done + len, sizeof(w->done) - len, "/%s", name);
	return 0;
}

int
trust_path(const char *path, uid_t also, char *err, size_t errlen)
{
	char name[NAME_MAX + 1], shown[PATH_MAX + NAME_MAX + 2];
	struct walk w;
	struct stat st;
	int rc = -1;

	if (walk_start(&w, path, err, errlen) < 0)
		return -1;
	for (;;) {
		/* Every directory on the way: a sticky one may be shared. */
		if (!owned_safely(&w.dirst, also) &&
		    !((w.dirst.st_mode & S_ISVTX) && (w.dirst.st_uid == 0 ||
		    w.dirst.st_uid == geteuid()))) {
			why_unsafe(w.done[0] != '\0' ? w.done : "/", &w.dirst,
			    err, errlen);
			break;
		}
		if (next_name(&w, name, sizeof(name)) == 1) {
			rc = 0;
			break;
		}
		snprintf(shown, sizeof(shown), "%s/%s", w.done, name);
		if (fstatat(w.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			/* Not there yet: its directory decides. */
			rc = errno == ENOENT && at_end(&w) ? 0 : -1;
			if (rc < 0)
				snprintf(err, errlen, "%s: %s", shown,
				    strerror(errno));
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			if (splice_link(&w, name, err, errlen) < 0)
				break;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			/* A device of root's (/dev/null, /dev/full) is
			 * writable by all by nature, and replaceable by none. */
			if (!owned_safely(&st, also) && !(at_end(&w) &&
			    S_ISCHR(st.st_mode) && st.st_uid == 0))
				why_unsafe(shown, &st, err, errlen);
			else if (!at_end(&w))
				snprintf(err, errlen, "%s: not a directory",
				    shown);
			else
				rc = 0;
			break;
		}
		if (enter_dir(&w, name, err, errlen) < 0)
			break;
	}
	close(w.dirfd);
	return rc;
}

/* Checks an opened log file; 0 or -1 with the reason. */
static int
check_log_file(int fd, const char *path, uid_t task_uid, char *err,
    size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISCHR(st.st_mode) && st.st_uid == 0)
		return 0;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file (a log must be "
		    "one)", path);
		return -1;
	}
	if (st.st_nlink > 1) {
		snprintf(err, errlen, "%s: has %lu hard links; a log file must "
		    "have one (remove the other names)", path,
		    (unsigned long)st.st_nlink);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid() &&
	    (task_uid == (uid_t)-1 || st.st_uid != task_uid)) {
		snprintf(err, errlen, "%s: owned by uid %ld, neither root nor "
		    "the task's user", path, (long)st.st_uid);
		return -1;
	}
	return 0;
}

/*
 * The walk of trust_open_log(); with create 0 nothing is made, and a file
 * not there yet is fine (its fd is then -2).
 */
static int
open_log(const char *path, uid_t task_uid, int create, char *err,
    size_t errlen)
{
	char name[NAME_MAX + 1], shown[PATH_MAX + NAME_MAX + 2];
	struct walk w;
	struct stat st;
	int fd = -1;

	if (walk_start(&w, path, err, errlen) < 0)
		return -1;
	for (;;) {
		if (next_name(&w, name, sizeof(name)) == 1) {
			snprintf(err, errlen, "%s: a directory, not a file",
			    path);
			break;
		}
		snprintf(shown, sizeof(shown), "%s/%s", w.done, name);
		if (fstatat(w.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode)) {
			if (!dir_safe(&w.dirst)) {
				snprintf(err, errlen, "%s: a symlink in %s, "
				    "which another user can write; refused "
				    "(name the real path)", shown,
				    w.done[0] != '\0' ? w.done : "/");
				break;
			}
			if (splice_link(&w, name, err, errlen) < 0)
				break;
			continue;
		}
		if (!at_end(&w)) {
			if (enter_dir(&w, name, err, errlen) < 0)
				break;
			continue;
		}
		fd = openat(w.dirfd, name, O_WRONLY | O_APPEND |
		    (create ? O_CREAT : 0) | O_NOFOLLOW | O_NONBLOCK |
		    O_NOCTTY | O_CLOEXEC, 0640);
		if (fd < 0 && errno == ENOENT && !create) {
			fd = -2;
		} else if (fd < 0) {
			if (errno == ENXIO)
				snprintf(err, errlen, "%s: not a regular file "
				    "(a FIFO?); a log must be one", shown);
			else if (errno == ELOOP)
				snprintf(err, errlen, "%s: a symlink appeared; "
				    "refused", shown);
			else
				snprintf(err, errlen, "%s: %s", shown,
				    strerror(errno));
		} else if (check_log_file(fd, shown, task_uid, err,
		    errlen) < 0) {
			close(fd);
			fd = -1;
		}
		break;
	}
	close(w.dirfd);
	return fd;
}

int
trust_open_log(const char *path, uid_t task_uid, char *err, size_t errlen)
{
	return open_log(path, task_uid, 1, err, errlen);
}

int
trust_check_log(const char *path, uid_t task_uid, char *err, size_t errlen)
{
	int fd = open_log(path, task_uid, 0, err, errlen);

	if (fd >= 0)
		close(fd);
	return fd == -1 ? -1 : 0;
}
