/*
 * pin.c - pinned plugin code: the copy of a task's plugin that run or
 * restart checked, kept in the run dir while any process of the task may
 * load it.  A copy (rather than a memfd or the original inode) keeps a
 * real path in /proc/PID/maps, perf and gdb, and survives a truncation
 * of the original in place, which would kill every process mapping it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pin.h"
#include "sha256.h"
#include "util.h"

#define PIN_DIR		"plugins"
#define PIN_HASH_LEN	16		/* hex digits of the hash in names */
#define PIN_SIZE_MAX	((off_t)1 << 30)

/* snprintf into a path buffer; 0, or -1 if it did not fit. */
static int fmt_path(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fmt_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* RUN_DIR/plugins, created (mode 0700) if missing; 0 or -1 with err. */
static int
pin_dir(const char *run_dir, char *dir, size_t size, char *err,
    size_t errlen)
{
	struct stat st;

	if (fmt_path(dir, size, "%s/%s", run_dir, PIN_DIR) < 0) {
		snprintf(err, errlen, "run dir %s: path too long", run_dir);
		return -1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/* Ours, as the run dir is: nobody else may put a plugin there. */
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		snprintf(err, errlen, "%s: not a directory of uid %ld that "
		    "only it can write", dir, (long)geteuid());
		return -1;
	}
	return 0;
}

/* Copies from to to while hashing it; 0 or -1 with err. */
static int
copy_hashed(int from, int to, const char *shown, char hex[SHA256_HEX],
    char *err, size_t errlen)
{
	char buf[65536];
	struct sha256 h;
	ssize_t n;

	sha256_init(&h);
	while ((n = read(from, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", shown, strerror(errno));
			return -1;
		}
		if (write_all(to, buf, (size_t)n) < 0) {
			snprintf(err, errlen, "copying %s: %s", shown,
			    strerror(errno));
			return -1;
		}
		sha256_add(&h, buf, (size_t)n);
	}
	sha256_hex(&h, hex);
	return 0;
}

int
pin_plugin(struct task_config *t, const char *run_dir, char *err,
    size_t errlen)
{
	char dir[PIN_PATH_MAX], tmp[PIN_PATH_MAX], path[PIN_PATH_MAX];
	char hex[SHA256_HEX];
	struct stat st;
	int from, to = -1;

	if (pin_dir(run_dir, dir, sizeof(dir), err, errlen) < 0)
		return -1;
	if ((from = open(t->plugin, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		/* In the words dlopen() and so check use for it. */
		snprintf(err, errlen, "%s: cannot open shared object file: %s",
		    t->plugin, strerror(errno));
		return PIN_BAD_PLUGIN;
	}
	if (fstat(from, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > PIN_SIZE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most 1 GiB",
		    t->plugin);
		close(from);
		return PIN_BAD_PLUGIN;
	}
	if (fmt_path(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, t->base_title,
	    (long)getpid()) < 0 || fmt_path(path, sizeof(path), "%s/%s-%s.so",
	    dir, t->base_title, "0123456789abcdef") < 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		close(from);
		return -1;
	}
	unlink(tmp);
	if ((to = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0444)) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (copy_hashed(from, to, t->plugin, hex, err, errlen) < 0)
		goto fail;
	/* Readable by a task's user that reaches it by its descriptor. */
	if (fchmod(to, 0444) < 0 || close(to) < 0) {
		to = -1;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	to = -1;
	(void)fmt_path(path, sizeof(path), "%s/%s-%.*s.so", dir,
	    t->base_title, PIN_HASH_LEN, hex);
	/*
	 * The same content has the same name: a twin already there (the
	 * running generation's) is kept, so that both share one file.
	 */
	if (link(tmp, path) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	unlink(tmp);
	close(from);
	if ((t->pinned = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	copy_str(t->plugin_sha256, hex, sizeof(t->plugin_sha256));
	return 0;
fail:
	if (to >= 0)
		close(to);
	unlink(tmp);
	close(from);
	return -1;
}

void
pin_release(struct task_config *t, int remove)
{
	if (t->pinned == NULL)
		return;
	if (remove)
		unlink(t->pinned);
	free(t->pinned);
	t->pinned = NULL;
}

/* This process's descriptor of its pinned copy (pin_hold), or -1. */
static int held_fd = -1;

void
pin_hold(const struct task_config *t)
{
	if (t->pinned != NULL && held_fd < 0)
		held_fd = open(t->pinned, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

void
pin_drop(void)
{
	if (held_fd >= 0)
		close(held_fd);
	held_fd = -1;
}

const char *
pin_path(const struct task_config *t, char *buf, size_t size)
{
	if (t->pinned == NULL)
		return t->plugin;
	if (access(t->pinned, R_OK) == 0 || held_fd < 0)
		return t->pinned;
	snprintf(buf, size, "/proc/self/fd/%d", held_fd);
	return buf;
}

/* Is name "TASK-" followed by PIN_HASH_LEN hex digits and ".so"? */
static int
copy_of(const char *name, const char *task)
{
	size_t n = strlen(task);

	if (strncmp(name, task, n) != 0 || name[n] != '-')
		return 0;
	name += n + 1;
	for (int i = 0; i < PIN_HASH_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		    (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return strcmp(name + PIN_HASH_LEN, ".so") == 0;
}

void
pin_sweep(const char *run_dir, const char *name, const char *keep)
{
	char dir[PIN_PATH_MAX], path[PIN_PATH_MAX];
	const char *kb = keep != NULL ? strrchr(keep, '/') : NULL;
	struct dirent *de;
	DIR *d;

	if (fmt_path(dir, sizeof(dir), "%s/%s", run_dir, PIN_DIR) < 0 ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!copy_of(de->d_name, name) ||
		    (kb != NULL && strcmp(de->d_name, kb + 1) == 0))
			continue;
		if (fmt_path(path, sizeof(path), "%s/%s", dir,
		    de->d_name) == 0)
			unlink(path);
	}
	closedir(d);
}
