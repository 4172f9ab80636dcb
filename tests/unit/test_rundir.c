/*
 * test_rundir.c - unit tests of the run dir and NAME.pid: where the run dir
 * is (runDir, then $PMHOST_RUNDIR, then the defaults), which directories
 * rundir_prepare() creates or refuses and with what message, and that the
 * flock on NAME.pid alone answers "is it running", seen from other
 * processes (flock locks belong to open file descriptions, so the other
 * side is always a forked child).  Runs as root, in a mkdtemp dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "unit.h"

#include "rundir.h"
#include "util.h"

#define CHILD_DEADLINE_MS	5000
#define NOBODY			65534

/* What a forked child found, sent back through a pipe. */
struct report {
	int	r;
	pid_t	pid;
	char	text[512];
};

typedef void	child_fn(struct report *, const void *);

static char	base[64];		/* this suite's mkdtemp dir */
static char	tmp[256];		/* this test's dir inside it */
static char	err[512];
static char	want[1024];
static mode_t	saved_umask;
static char	*saved_env[2];
static const char *const env_names[2] = { "PMHOST_RUNDIR", "XDG_RUNTIME_DIR" };

/* --- fixtures ----------------------------------------------------------- */

/* The suite's dir, made and removed in the runner, whatever the tests do. */
static void
suite_setup(void)
{
	snprintf(base, sizeof(base), "/tmp/pmhost-test-rundir-XXXXXX");
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		abort();
	}
}

static int
remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
suite_teardown(void)
{
	nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
setup(void)
{
	static int n;

	snprintf(tmp, sizeof(tmp), "%s/t%d-%ld", base, n++, (long)getpid());
	ck_assert_int_eq(mkdir(tmp, 0700), 0);
	saved_umask = umask(022);
	for (int i = 0; i < 2; i++) {
		const char *v = getenv(env_names[i]);

		saved_env[i] = v != NULL ? strdup(v) : NULL;
	}
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
}

static void
teardown(void)
{
	umask(saved_umask);
	for (int i = 0; i < 2; i++) {
		if (saved_env[i] != NULL)
			setenv(env_names[i], saved_env[i], 1);
		else
			unsetenv(env_names[i]);
		free(saved_env[i]);
		saved_env[i] = NULL;
	}
}

/* --- helpers ------------------------------------------------------------ */

/* tmp/rel in a static buffer that stays valid for 7 more calls. */
static const char *
in_tmp(const char *rel)
{
	static char bufs[8][RUNDIR_PATH_MAX];
	static unsigned next;
	char *b = bufs[next++ % nitems(bufs)];

	snprintf(b, RUNDIR_PATH_MAX, "%s/%s", tmp, rel);
	return b;
}

static void
write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, content, strlen(content)), 0);
	close(fd);
}

/* The whole file as a string; "" if missing. */
static const char *
read_file(const char *path)
{
	static char buf[256];
	ssize_t n = 0;
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		n = read_full(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	ck_assert_msg(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return st.st_mode;
}

static void
assert_err(const char *fmt, const char *arg)
{
	snprintf(want, sizeof(want), fmt, arg);
	ck_assert_str_eq(err, want);
}

/* Reaps pid within the deadline (SIGKILL past it); its wait status. */
static int
reap(pid_t pid)
{
	int64_t deadline = mono_ns() + CHILD_DEADLINE_MS * NS_PER_MS;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		ck_assert_int_eq(r, 0);
		if (mono_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("child %ld missed its deadline",
			    (long)pid);
		}
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

/* Waits for fd to be readable (or at EOF) within the deadline. */
static void
await(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	ck_assert_msg(poll(&p, 1, CHILD_DEADLINE_MS) == 1,
	    "child sent nothing within %d ms", CHILD_DEADLINE_MS);
}

/* Runs fn in a forked child and returns what it reported. */
static struct report
in_child(child_fn *fn, const void *arg)
{
	struct report rep;
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		memset(&rep, 0, sizeof(rep));
		rep.r = -99;
		fn(&rep, arg);
		_exit(write_all(p[1], &rep, sizeof(rep)) == 0 ? 0 : 1);
	}
	ck_assert_int_gt(pid, 0);
	close(p[1]);
	await(p[0]);
	ck_assert_int_eq(read_full(p[0], &rep, sizeof(rep)),
	    (ssize_t)sizeof(rep));
	close(p[0]);
	ck_assert_int_eq(reap(pid), 0);
	return rep;
}

/* A process that holds a lock on a file until it is told to let go. */
struct holder {
	pid_t	pid;
	int	go;		/* closing it releases the holder */
};

static struct holder
hold_lock(const char *path, const char *content, int how)
{
	struct holder h;
	int ready[2], go[2];

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	if ((h.pid = fork()) == 0) {
		struct pollfd pfd = { .fd = go[0], .events = POLLIN };
		int fd;

		close(ready[0]);
		close(go[1]);
		if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0 ||
		    write_all(fd, content, strlen(content)) < 0 ||
		    flock(fd, how) < 0)
			_exit(1);
		if (write_all(ready[1], "r", 1) < 0)
			_exit(1);
		poll(&pfd, 1, 2 * CHILD_DEADLINE_MS);
		_exit(0);
	}
	ck_assert_int_gt(h.pid, 0);
	close(ready[1]);
	close(go[0]);
	h.go = go[1];
	await(ready[0]);
	ck_assert_int_eq(read(ready[0], &(char){ 0 }, 1), 1);
	close(ready[0]);
	return h;
}

static void
let_go(struct holder *h)
{
	close(h->go);
	ck_assert_int_eq(reap(h->pid), 0);
}

/* A pid no process has: a child that has been reaped. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	ck_assert_int_gt(pid, 0);
	reap(pid);
	return pid;
}

static void
child_probe(struct report *rep, const void *name)
{
	rep->r = pidfile_probe(tmp, name, &rep->pid, rep->text,
	    sizeof(rep->text));
}

static void
child_acquire(struct report *rep, const void *name)
{
	int fd = -1;

	rep->r = pidfile_acquire(tmp, name, &fd, &rep->pid, rep->text,
	    sizeof(rep->text));
	if (rep->r == 0) {
		rep->pid = getpid();
		pidfile_release(tmp, name, fd);
	}
}

/* --- rundir_prepare: creating and accepting ----------------------------- */

START_TEST(prepare_creates_with_parents)
{
	const char *dir = in_tmp("a/b/run");

	ck_assert_msg(rundir_prepare(dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert(S_ISDIR(mode_of(dir)));
	ck_assert_uint_eq(mode_of(dir) & 07777, 0700);
	/* Parents get ordinary modes: only the run dir itself is private. */
	ck_assert(S_ISDIR(mode_of(in_tmp("a/b"))));
	ck_assert_uint_eq(mode_of(in_tmp("a")) & 07777, 0755);
}
END_TEST

START_TEST(prepare_mode_despite_umask)
{
	const char *dir = in_tmp("run");

	umask(0);
	ck_assert_msg(rundir_prepare(dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(mode_of(dir) & 07777, 0700);
}
END_TEST

START_TEST(prepare_trailing_slash_still_0700)
{
	char dir[RUNDIR_PATH_MAX];

	/* "runDir": "/var/run/app/" must make the same dir as without "/". */
	snprintf(dir, sizeof(dir), "%s/", in_tmp("run"));
	ck_assert_msg(rundir_prepare(dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(mode_of(in_tmp("run")) & 07777, 0700);
}
END_TEST

START_TEST(prepare_accepts_existing_0700)
{
	const char *dir = in_tmp("run");

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_msg(rundir_prepare(dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(mode_of(dir) & 07777, 0700);
	ck_assert_int_eq(rundir_check(dir, err, sizeof(err)), 0);
}
END_TEST

START_TEST(prepare_accepts_existing_0755)
{
	const char *dir = in_tmp("run");

	/* Readable by others is allowed; only writable is refused. */
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_msg(rundir_prepare(dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(mode_of(dir) & 07777, 0755);
}
END_TEST

/* --- rundir_prepare: refusals ------------------------------------------- */

START_TEST(prepare_refuses_symlink)
{
	const char *dir = in_tmp("link");

	ck_assert_int_eq(mkdir(in_tmp("real"), 0700), 0);
	ck_assert_int_eq(symlink(in_tmp("real"), dir), 0);
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: is a symlink, refused", dir);
	ck_assert_int_eq(rundir_check(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: is a symlink, refused", dir);
}
END_TEST

START_TEST(prepare_refuses_symlink_with_trailing_slash)
{
	char dir[RUNDIR_PATH_MAX];

	ck_assert_int_eq(mkdir(in_tmp("real"), 0700), 0);
	ck_assert_int_eq(symlink(in_tmp("real"), in_tmp("link")), 0);
	snprintf(dir, sizeof(dir), "%s/", in_tmp("link"));
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "is a symlink, refused") != NULL,
	    "message '%s' lacks 'is a symlink, refused'", err);
}
END_TEST

START_TEST(prepare_refuses_dangling_symlink)
{
	const char *dir = in_tmp("link");

	ck_assert_int_eq(symlink(in_tmp("nowhere"), dir), 0);
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: is a symlink, refused", dir);
	/* The target must not have been created through the link. */
	ck_assert_int_eq(access(in_tmp("nowhere"), F_OK), -1);
}
END_TEST

START_TEST(prepare_refuses_regular_file)
{
	const char *dir = in_tmp("file");

	write_file(dir, "x");
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: not a directory", dir);
}
END_TEST

START_TEST(prepare_refuses_0777)
{
	const char *dir = in_tmp("run");

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: writable by group or others (mode 0777), "
	    "refused", dir);
	/* Refused, not repaired. */
	ck_assert_uint_eq(mode_of(dir) & 07777, 0777);
}
END_TEST

START_TEST(prepare_refuses_group_writable)
{
	const char *dir = in_tmp("run");

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 0770), 0);
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: writable by group or others (mode 0770), "
	    "refused", dir);
}
END_TEST

START_TEST(prepare_refuses_others_writable)
{
	const char *dir = in_tmp("run");

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 01702), 0);
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: writable by group or others (mode 1702), "
	    "refused", dir);
}
END_TEST

START_TEST(prepare_refuses_foreign_owner)
{
	const char *dir = in_tmp("run");

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chown(dir, NOBODY, NOBODY), 0);
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: owned by uid 65534, not by uid 0, refused",
	    dir);
}
END_TEST

START_TEST(prepare_refuses_relative)
{
	int cwd = open(".", O_RDONLY | O_DIRECTORY);

	ck_assert_int_ge(cwd, 0);
	ck_assert_int_eq(chdir(tmp), 0);
	ck_assert_int_eq(rundir_prepare("rel/run", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "run dir rel/run: not an absolute path");
	ck_assert_int_eq(access("rel", F_OK), -1);
	ck_assert_int_eq(rundir_prepare("", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "run dir : not an absolute path");
	ck_assert_int_eq(fchdir(cwd), 0);
	close(cwd);
}
END_TEST

START_TEST(prepare_parent_is_a_file)
{
	const char *dir = in_tmp("file/run");

	write_file(in_tmp("file"), "x");
	ck_assert_int_eq(rundir_prepare(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: cannot create: Not a directory", dir);
}
END_TEST

START_TEST(check_does_not_create)
{
	const char *dir = in_tmp("missing");

	ck_assert_int_eq(rundir_check(dir, err, sizeof(err)), -1);
	assert_err("run dir %s: No such file or directory", dir);
	ck_assert_int_eq(access(dir, F_OK), -1);
}
END_TEST

/* --- rundir_resolve ----------------------------------------------------- */

START_TEST(resolve_config_first)
{
	char dir[RUNDIR_PATH_MAX];

	setenv("PMHOST_RUNDIR", "/env/dir", 1);
	ck_assert_int_eq(rundir_resolve("/cfg/dir", dir, sizeof(dir), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(dir, "/cfg/dir");
	/* Even a relative PMHOST_RUNDIR is not looked at then. */
	setenv("PMHOST_RUNDIR", "rel", 1);
	ck_assert_int_eq(rundir_resolve("/cfg/dir", dir, sizeof(dir), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(dir, "/cfg/dir");
}
END_TEST

START_TEST(resolve_env_second)
{
	char dir[RUNDIR_PATH_MAX];

	setenv("PMHOST_RUNDIR", "/env/dir", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/0", 1);
	ck_assert_int_eq(rundir_resolve(NULL, dir, sizeof(dir), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(dir, "/env/dir");
}
END_TEST

START_TEST(resolve_env_relative_refused)
{
	char dir[RUNDIR_PATH_MAX];

	setenv("PMHOST_RUNDIR", "rel/dir", 1);
	ck_assert_int_eq(rundir_resolve(NULL, dir, sizeof(dir), err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err,
	    "PMHOST_RUNDIR: must be an absolute path, got 'rel/dir'");
}
END_TEST

START_TEST(resolve_root_default)
{
	char dir[RUNDIR_PATH_MAX];

	unsetenv("PMHOST_RUNDIR");
	setenv("XDG_RUNTIME_DIR", "/run/user/0", 1);
	ck_assert_int_eq(rundir_resolve(NULL, dir, sizeof(dir), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(dir, "/run/pmhost");
	/* An empty PMHOST_RUNDIR counts as unset. */
	setenv("PMHOST_RUNDIR", "", 1);
	ck_assert_int_eq(rundir_resolve(NULL, dir, sizeof(dir), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(dir, "/run/pmhost");
}
END_TEST

/* rundir_resolve(NULL) as uid 65534, XDG_RUNTIME_DIR set to xdg or unset. */
static void
child_resolve_as_nobody(struct report *rep, const void *xdg)
{
	unsetenv("PMHOST_RUNDIR");
	if (xdg != NULL)
		setenv("XDG_RUNTIME_DIR", xdg, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
	if (seteuid(NOBODY) < 0)
		return;
	rep->r = rundir_resolve(NULL, rep->text, sizeof(rep->text), err,
	    sizeof(err));
}

START_TEST(resolve_user_defaults)
{
	struct report rep;

	rep = in_child(child_resolve_as_nobody, "/run/user/65534");
	ck_assert_int_eq(rep.r, 0);
	ck_assert_str_eq(rep.text, "/run/user/65534/pmhost");
	rep = in_child(child_resolve_as_nobody, "relative/xdg");
	ck_assert_int_eq(rep.r, 0);
	ck_assert_str_eq(rep.text, "/tmp/pmhost-65534");
	rep = in_child(child_resolve_as_nobody, NULL);
	ck_assert_int_eq(rep.r, 0);
	ck_assert_str_eq(rep.text, "/tmp/pmhost-65534");
}
END_TEST

START_TEST(resolve_too_long)
{
	char dir[RUNDIR_PATH_MAX], path[256];

	memset(path, 'd', sizeof(path));
	path[0] = '/';
	path[200] = '\0';
	ck_assert_int_eq(rundir_resolve(path, dir, sizeof(dir), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(dir, path);
	/* Whether NAME.sock fits is checked where NAME is known (run). */
	path[200] = 'd';
	path[201] = '\0';
	ck_assert_int_eq(rundir_resolve(path, dir, sizeof(dir), err,
	    sizeof(err)), 0);
	ck_assert_str_eq(dir, path);
	/* Too long for the caller's buffer is refused, naming the source. */
	setenv("PMHOST_RUNDIR", path, 1);
	ck_assert_int_eq(rundir_resolve(NULL, dir, 100, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "PMHOST_RUNDIR: run dir path too long");
	ck_assert_int_eq(rundir_resolve("/cfg/dir", dir, 8, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "runDir: run dir path too long");
}
END_TEST

/* --- rundir_path -------------------------------------------------------- */

START_TEST(path_joins)
{
	char buf[RUNDIR_PATH_MAX];

	ck_assert_int_eq(rundir_path(buf, sizeof(buf), "/run/pmhost",
	    "process", ".pid"), 0);
	ck_assert_str_eq(buf, "/run/pmhost/process.pid");
	ck_assert_int_eq(rundir_path(buf, sizeof(buf), "/d", "n", ""), 0);
	ck_assert_str_eq(buf, "/d/n");
}
END_TEST

START_TEST(path_exact_fit)
{
	char buf[16];

	/* "/d/process.pid" is 14 characters. */
	ck_assert_int_eq(rundir_path(buf, 15, "/d", "process", ".pid"), 0);
	ck_assert_str_eq(buf, "/d/process.pid");
	ck_assert_int_eq(rundir_path(buf, 14, "/d", "process", ".pid"), -1);
	ck_assert_int_eq(rundir_path(buf, 0, "/d", "process", ".pid"), -1);
}
END_TEST

/* --- pidfile_acquire / pidfile_release ---------------------------------- */

START_TEST(acquire_writes_pid)
{
	char pid[32];
	pid_t holder = -7;
	int fd = -1;

	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(holder, 0);	/* a new file: nobody died before */
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	ck_assert_str_eq(read_file(in_tmp("task.pid")), pid);
	ck_assert(S_ISREG(mode_of(in_tmp("task.pid"))));
	/* The lock must not leak into programs the master executes. */
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(acquire_holds_lock)
{
	struct report rep;
	int fd = -1;
	pid_t holder;

	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	rep = in_child(child_probe, "task");
	ck_assert_int_eq(rep.r, 1);
	ck_assert_int_eq(rep.pid, getpid());
	/* Another task's name is not affected. */
	rep = in_child(child_probe, "other");
	ck_assert_int_eq(rep.r, 0);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(second_acquire_refused)
{
	struct report rep;
	int fd = -1;
	pid_t holder;

	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	rep = in_child(child_acquire, "task");
	ck_assert_int_eq(rep.r, 1);
	ck_assert_int_eq(rep.pid, getpid());
	/* The refused attempt left the holder's file alone. */
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	ck_assert_str_eq(read_file(in_tmp("task.pid")), want);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(second_acquire_same_process_refused)
{
	int fd = -1, fd2 = -1;
	pid_t holder = 0;

	/* A second open file description conflicts even in one process. */
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd2, &holder, err,
	    sizeof(err)), 1);
	ck_assert_int_eq(holder, getpid());
	ck_assert_int_eq(fd2, -1);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(release_unlinks_and_unlocks)
{
	struct report rep;
	int fd = -1;
	pid_t holder;

	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	pidfile_release(tmp, "task", fd);
	ck_assert_int_eq(access(in_tmp("task.pid"), F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	rep = in_child(child_probe, "task");
	ck_assert_int_eq(rep.r, 0);
	rep = in_child(child_acquire, "task");
	ck_assert_int_eq(rep.r, 0);
}
END_TEST

START_TEST(crashed_holder_leaves_stale_file)
{
	struct report rep;
	int fd = -1;
	pid_t holder;

	/* Closed without release, as when the master is SIGKILLed. */
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	close(fd);
	ck_assert_int_eq(access(in_tmp("task.pid"), F_OK), 0);
	rep = in_child(child_probe, "task");
	ck_assert_int_eq(rep.r, 0);
	rep = in_child(child_acquire, "task");
	ck_assert_int_eq(rep.r, 0);
}
END_TEST

START_TEST(stale_file_acquired)
{
	char pid[32];
	pid_t holder = -7;
	int fd = -1;

	/* A dead pid with more digits than ours: all of it is replaced. */
	write_file(in_tmp("task.pid"), "4194304999\n");
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(holder, 0);	/* not a pid: not reported */
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	ck_assert_str_eq(read_file(in_tmp("task.pid")), pid);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(stale_file_names_its_dead_master)
{
	char content[32];
	pid_t holder = -7, dead = dead_pid();
	int fd = -1;

	snprintf(content, sizeof(content), "%ld\n", (long)dead);
	write_file(in_tmp("task.pid"), content);
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(holder, dead);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(prune_removes_stale_files_only)
{
	struct holder h;

	/* Stale: the pid file and the socket go. */
	write_file(in_tmp("task.pid"), "4242\n");
	write_file(in_tmp("task.sock"), "");
	ck_assert_int_eq(pidfile_prune(tmp, "task", err, sizeof(err)), 1);
	ck_assert_int_eq(access(in_tmp("task.pid"), F_OK), -1);
	ck_assert_int_eq(access(in_tmp("task.sock"), F_OK), -1);
	/* Nothing there: nothing to do, not an error. */
	ck_assert_int_eq(pidfile_prune(tmp, "task", err, sizeof(err)), 1);
	/* Held by a live master: left alone. */
	write_file(in_tmp("task.sock"), "");
	h = hold_lock(in_tmp("task.pid"), "4242\n", LOCK_EX);
	ck_assert_int_eq(pidfile_prune(tmp, "task", err, sizeof(err)), 0);
	ck_assert_int_eq(access(in_tmp("task.pid"), F_OK), 0);
	ck_assert_int_eq(access(in_tmp("task.sock"), F_OK), 0);
	let_go(&h);
}
END_TEST

START_TEST(stale_file_with_live_pid_acquired)
{
	char pid[32];
	pid_t holder;
	int fd = -1;

	/* Pid 1 is alive, but nobody holds the lock: the file is stale. */
	write_file(in_tmp("task.pid"), "1\n");
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	ck_assert_str_eq(read_file(in_tmp("task.pid")), pid);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(acquire_held_with_unreadable_pid)
{
	struct holder h;
	pid_t holder = -7;
	int fd = -1;

	h = hold_lock(in_tmp("task.pid"), "garbage\n", LOCK_EX);
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 1);
	ck_assert_int_eq(holder, 0);
	let_go(&h);
}
END_TEST

START_TEST(acquire_held_by_other_process)
{
	char content[32];
	struct holder h;
	pid_t holder = -7;
	int fd = -1;

	/* The holder's lock counts, whatever pid the file names. */
	snprintf(content, sizeof(content), "%ld\n", (long)getppid());
	h = hold_lock(in_tmp("task.pid"), content, LOCK_EX);
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 1);
	ck_assert_int_eq(holder, getppid());
	let_go(&h);
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	pidfile_release(tmp, "task", fd);
}
END_TEST

START_TEST(acquire_refuses_symlink)
{
	const char *target = in_tmp("target");
	pid_t holder;
	int fd = -1;

	write_file(target, "precious\n");
	ck_assert_int_eq(symlink(target, in_tmp("task.pid")), 0);
	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), -1);
	assert_err("%s: Too many levels of symbolic links",
	    in_tmp("task.pid"));
	ck_assert_str_eq(read_file(target), "precious\n");
	ck_assert_int_eq(pidfile_probe(tmp, "task", &holder, err,
	    sizeof(err)), -1);
	assert_err("%s: Too many levels of symbolic links",
	    in_tmp("task.pid"));
}
END_TEST

START_TEST(acquire_missing_dir)
{
	const char *dir = in_tmp("missing");
	pid_t holder;
	int fd = -1;

	ck_assert_int_eq(pidfile_acquire(dir, "task", &fd, &holder, err,
	    sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s/task.pid: No such file or directory",
	    dir);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(access(dir, F_OK), -1);
}
END_TEST

/* --- pidfile_update ----------------------------------------------------- */

static void
child_update(struct report *rep, const void *fdp)
{
	rep->r = pidfile_update(*(const int *)fdp);
	rep->pid = getpid();
}

START_TEST(update_after_fork)
{
	struct report rep, probe;
	pid_t holder;
	int fd = -1;

	ck_assert_int_eq(pidfile_acquire(tmp, "task", &fd, &holder, err,
	    sizeof(err)), 0);
	/* The daemonised master rewrites the file; the lock stays held. */
	rep = in_child(child_update, &fd);
	ck_assert_int_eq(rep.r, 0);
	snprintf(want, sizeof(want), "%ld\n", (long)rep.pid);
	ck_assert_str_eq(read_file(in_tmp("task.pid")), want);
	probe = in_child(child_probe, "task");
	ck_assert_int_eq(probe.r, 1);
	ck_assert_int_eq(probe.pid, rep.pid);
	ck_assert_int_eq(pidfile_update(fd), 0);
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	ck_assert_str_eq(read_file(in_tmp("task.pid")), want);
	pidfile_release(tmp, "task", fd);
}
END_TEST

/* --- pidfile_probe ------------------------------------------------------ */

START_TEST(probe_missing)
{
	pid_t pid = -7;

	ck_assert_int_eq(pidfile_probe(tmp, "task", &pid, err, sizeof(err)),
	    0);
	ck_assert_int_eq(pid, -7);
	ck_assert_int_eq(access(in_tmp("task.pid"), F_OK), -1);
}
END_TEST

START_TEST(probe_stale)
{
	char content[32];
	pid_t pid = -7;

	pid_t dead = dead_pid();

	snprintf(content, sizeof(content), "%ld\n", (long)dead);
	write_file(in_tmp("task.pid"), content);
	ck_assert_int_eq(pidfile_probe(tmp, "task", &pid, err, sizeof(err)),
	    0);
	/* The dead master's pid, for "status" to name. */
	ck_assert_int_eq(pid, dead);
	/* Probing is read-only: the stale file is left as it was. */
	ck_assert_str_eq(read_file(in_tmp("task.pid")), content);
}
END_TEST

START_TEST(probe_held)
{
	struct holder h;
	pid_t pid = -7;

	h = hold_lock(in_tmp("task.pid"), "4242\n", LOCK_EX);
	ck_assert_int_eq(pidfile_probe(tmp, "task", &pid, err, sizeof(err)),
	    1);
	ck_assert_int_eq(pid, 4242);
	let_go(&h);
	pid = -7;
	ck_assert_int_eq(pidfile_probe(tmp, "task", &pid, err, sizeof(err)),
	    0);
	ck_assert_int_eq(pid, 4242);	/* the file it left */
}
END_TEST

START_TEST(probe_held_unreadable_pid)
{
	struct holder h;
	pid_t pid = -7;

	h = hold_lock(in_tmp("task.pid"), "", LOCK_EX);
	ck_assert_int_eq(pidfile_probe(tmp, "task", &pid, err, sizeof(err)),
	    1);
	ck_assert_int_eq(pid, 0);
	let_go(&h);
}
END_TEST

static Suite *
rundir_suite(void)
{
	Suite *s = suite_create("rundir");
	TCase *tc = tcase_create("rundir");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, prepare_creates_with_parents);
	tcase_add_test(tc, prepare_mode_despite_umask);
	tcase_add_test(tc, prepare_trailing_slash_still_0700);
	tcase_add_test(tc, prepare_accepts_existing_0700);
	tcase_add_test(tc, prepare_accepts_existing_0755);
	tcase_add_test(tc, prepare_refuses_symlink);
	tcase_add_test(tc, prepare_refuses_symlink_with_trailing_slash);
	tcase_add_test(tc, prepare_refuses_dangling_symlink);
	tcase_add_test(tc, prepare_refuses_regular_file);
	tcase_add_test(tc, prepare_refuses_0777);
	tcase_add_test(tc, prepare_refuses_group_writable);
	tcase_add_test(tc, prepare_refuses_others_writable);
	tcase_add_test(tc, prepare_refuses_foreign_owner);
	tcase_add_test(tc, prepare_refuses_relative);
	tcase_add_test(tc, prepare_parent_is_a_file);
	tcase_add_test(tc, check_does_not_create);
	tcase_add_test(tc, resolve_config_first);
	tcase_add_test(tc, resolve_env_second);
	tcase_add_test(tc, resolve_env_relative_refused);
	tcase_add_test(tc, resolve_root_default);
	tcase_add_test(tc, resolve_user_defaults);
	tcase_add_test(tc, resolve_too_long);
	tcase_add_test(tc, path_joins);
	tcase_add_test(tc, path_exact_fit);
	tcase_add_test(tc, acquire_writes_pid);
	tcase_add_test(tc, acquire_holds_lock);
	tcase_add_test(tc, second_acquire_refused);
	tcase_add_test(tc, second_acquire_same_process_refused);
	tcase_add_test(tc, release_unlinks_and_unlocks);
	tcase_add_test(tc, crashed_holder_leaves_stale_file);
	tcase_add_test(tc, stale_file_acquired);
	tcase_add_test(tc, stale_file_names_its_dead_master);
	tcase_add_test(tc, prune_removes_stale_files_only);
	tcase_add_test(tc, stale_file_with_live_pid_acquired);
	tcase_add_test(tc, acquire_held_with_unreadable_pid);
	tcase_add_test(tc, acquire_held_by_other_process);
	tcase_add_test(tc, acquire_refuses_symlink);
	tcase_add_test(tc, acquire_missing_dir);
	tcase_add_test(tc, update_after_fork);
	tcase_add_test(tc, probe_missing);
	tcase_add_test(tc, probe_stale);
	tcase_add_test(tc, probe_held);
	tcase_add_test(tc, probe_held_unreadable_pid);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(rundir_suite());
}
