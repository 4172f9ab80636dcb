/*
 * spool.c - the example task: workers take job files from a spool
 * directory, and each job is finished exactly once whatever kills them.
 *
 * Layout under params "dir" (work_init makes what is missing, as mkdir -p):
 *	incoming/	jobs to do.  A producer writes a job under a hidden
 *			name (".x") or on the same filesystem elsewhere, then
 *			renames it into place: hidden names are never taken.
 *	work/N/		jobs claimed by slot N, and the slot's lock, .lock
 *	done/		finished jobs; with the built-in, NAME.sum beside each
 *	failed/		jobs that cannot be read, or whose command failed
 *
 * Guarantees, whatever instruction a worker dies at (SIGKILL, crash, OOM
 * killer, workTimeout, stopTimeout):
 *  - A job is in exactly one of these directories at any time: it moves
 *    only by rename(2), which is atomic within one filesystem.
 *  - No two workers hold one job.  A claim is a rename out of incoming/: one
 *    worker wins, the others get ENOENT and try another name.  Only the
 *    holder of work/N/.lock touches the jobs in work/N/.
 *  - Every job reaches done/ or failed/, once.  Processing may run twice
 *    (at-least-once): a command must be idempotent; the built-in is.
 *
 * Crash points, for job J claimed by slot N (built-in):
 *  1. Before the claim: J is in incoming/.
 *  2. After it, while J is read or done/.J.sum.tmp written: J is in work/N/.
 *     The next worker of slot N processes J again in its first work() call
 *     (the temporary file is truncated and written anew), or, if slot N no
 *     longer runs, another worker moves J back into incoming/ (see below).
 *  3. After done/.J.sum.tmp became done/J.sum, before J moved into done/:
 *     J is in work/N/ and is processed again as in 2; the same result
 *     replaces the old one (atomically), then J moves.
 *  4. After J moved into done/: nothing is left to do, and J is in no
 *     directory a worker takes jobs from, so nothing processes it again.
 * Hence done/J implies a complete done/J.sum, and J reaches done/ once.
 * With a command, 2 and 3 read "the command ran, in part or in full, but J
 * did not move": it runs again.
 *
 * Why recovery waits for the first work() call, and the lock: in a restart,
 * slot N's replacement runs work_init while the old worker of slot N still
 * works in work/N/; its first work() call comes after the old one is gone.
 * The lock makes that a rule: a worker takes work/N/.lock (flock; the
 * kernel drops it when its holders die) in its first call, keeps it, and
 * does nothing without it.  A command inherits the lock, so no one takes
 * over a slot while the command of its dead worker still runs, and two
 * tasks pointed at one spool cannot share a slot.
 *
 * Orphaned slots: after a crash and a lower maxWorkerNum (or scale), work/N/
 * may hold jobs of a slot that no longer runs.  Each worker, in its first
 * call and every 10 s, takes the lock of every other slot that is free and
 * moves its jobs back into incoming/.
 *
 * Not guaranteed: durability across a power loss (nothing is fsync'ed).
 * Job names must be unique: a job named like one in done/ replaces it.
 *
 * params, a JSON object read by a minimal parser for the compact JSON that
 * pmhost hands over (no library):
 *	"dir"		absolute path of the spool; required
 *	"command"	shell command run per job as /bin/sh -c COMMAND sh PATH
 *			($1 is the job in work/N/); exit 0 moves the job to
 *			done/, anything else to failed/
 *	"batch"		jobs per work() call, 1 to 10000; default 1
 * Without "command", the built-in writes done/NAME.sum: the job's FNV-1a
 * 64-bit hash in 16 hex digits, a space, its size in bytes, a newline.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* flock, d_type under -std=c11 */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmhost.h>

PMHOST_PLUGIN;

#define BATCH_MAX	10000
#define CHUNK		64	/* names read from a directory at once */
#define NS_PER_SEC	1000000000LL
#define ADOPT_EVERY_NS	(10 * NS_PER_SEC)
#define LOCK_WARN_NS	(2 * NS_PER_SEC)
#define LOCK_NAME	".lock"
#define SUM_SUFFIX	".sum"
#define TMP_SUFFIX	".sum.tmp"

#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

struct params {
	char	*dir;
	char	*command;		/* NULL: the built-in */
	long	 batch;
};

struct spool {
	struct params	 p;
	char		 slot_name[16];
	char		 slot_path[PATH_MAX];	/* DIR/work/N */
	int		 incoming_fd;
	DIR		*incoming;		/* our place in its listing */
	int		 work_fd;
	int		 slot_fd;		/* work/N/ */
	int		 done_fd;
	int		 failed_fd;
	int		 lock_fd;		/* work/N/.lock once held */
	int64_t		 lock_busy_since;
	int		 lock_warned;
	int		 recover;		/* work/N/ may hold jobs */
	int64_t		 adopt_at;		/* next look for orphans */
	uint64_t	 rng;
};

/* What became of a job. */
enum job_end {
	JOB_DONE,
	JOB_FAILED,
	JOB_KEPT		/* still in work/N/: a spool error, logged */
};

typedef char	job_name[NAME_MAX + 1];

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* xorshift64*: where in a listing a worker starts trying names. */
static uint64_t
next_random(struct spool *sp)
{
	uint64_t x = sp->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sp->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static int
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* -- params: just enough JSON for one flat object ----------------------- */

struct json {
	const char	*p;
	const char	*err;
};

static void
json_ws(struct json *j)
{
	while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
	    *j->p == '\r')
		j->p++;
}

static int
hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t
utf8_put(char *buf, uint32_t cp)
{
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xc0 | cp >> 6);
		buf[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | cp >> 12);
		buf[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	buf[0] = (char)(0xf0 | cp >> 18);
	buf[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	buf[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	buf[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * The JSON string at j->p, unescaped into a malloc'd *out.  Decoded text is
 * never longer than its escaped form, which bounds the buffer.  \u0000 is
 * refused: the result is a C string.
 */
static int
json_string(struct json *j, char **out)
{
	const char *s = j->p;
	char *buf = NULL;
	size_t n = 0;

	if (*s++ != '"') {
		j->err = "a string expected";
		return -1;
	}
	if ((buf = malloc(strlen(s) + 1)) == NULL) {
		j->err = "out of memory";
		return -1;
	}
	for (;;) {
		unsigned char c = (unsigned char)*s++;
		uint32_t cp, lo;

		if (c == '"')
			break;
		if (c < 0x20) {
			j->err = "unterminated string";
			goto fail;
		}
		if (c != '\\') {
			buf[n++] = (char)c;
			continue;
		}
		switch (c = (unsigned char)*s++) {
		case '"': case '\\': case '/':
			cp = c;
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			if (hex4(s, &cp) < 0)
				goto bad_escape;
			s += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && s[0] == '\\' &&
			    s[1] == 'u' && hex4(s + 2, &lo) == 0 &&
			    lo >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
				s += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff)
				goto bad_escape;
			if (cp == 0) {
				j->err = "\\u0000 in a string";
				goto fail;
			}
			break;
		default:
			goto bad_escape;
		}
		n += utf8_put(buf + n, cp);
	}
	buf[n] = '\0';
	*out = buf;
	j->p = s;
	return 0;
bad_escape:
	j->err = "bad escape in a string";
fail:
	free(buf);
	j->p = s - 1;
	return -1;
}

/* A JSON integer from min to max; 1 if the value is something else. */
static int
json_long(struct json *j, long min, long max, long *out)
{
	const char *s = j->p;
	int neg = *s == '-';
	long v = 0;

	if (neg)
		s++;
	if (*s < '0' || *s > '9')
		return 1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (LONG_MAX - (*s - '0')) / 10)
			return 1;
		v = v * 10 + (*s - '0');
	}
	if (*s == '.' || *s == 'e' || *s == 'E')
		return 1;
	if (neg)
		v = -v;
	if (v < min || v > max)
		return 1;
	j->p = s;
	*out = v;
	return 0;
}

/* Reads params into p; every problem is logged naming its key. */
static int
parse_params(pm_worker *w, const char *text, struct params *p)
{
	struct json j = { text, NULL };
	char *key = NULL;

	p->batch = 1;
	json_ws(&j);
	if (*j.p++ != '{') {
		pm_log(w, PM_LOG_ERROR, "spool: params must be an object with "
		    "at least \"dir\", got %.40s", text);
		return -1;
	}
	for (int first = 1;; first = 0) {
		json_ws(&j);
		if (first && *j.p == '}') {
			j.p++;
			break;
		}
		if (json_string(&j, &key) < 0)
			goto syntax;
		json_ws(&j);
		if (*j.p++ != ':') {
			j.err = "':' expected";
			goto syntax;
		}
		json_ws(&j);
		if (strcmp(key, "dir") == 0) {
			free(p->dir);
			p->dir = NULL;
			if (*j.p != '"')
				goto type;
			if (json_string(&j, &p->dir) < 0)
				goto syntax;
		} else if (strcmp(key, "command") == 0) {
			free(p->command);
			p->command = NULL;
			if (strncmp(j.p, "null", 4) == 0)
				j.p += 4;
			else if (*j.p != '"')
				goto type;
			else if (json_string(&j, &p->command) < 0)
				goto syntax;
		} else if (strcmp(key, "batch") == 0) {
			if (json_long(&j, 1, BATCH_MAX, &p->batch) != 0) {
				pm_log(w, PM_LOG_ERROR, "spool: params.batch: "
				    "must be an integer from 1 to %d, "
				    "got %.20s", BATCH_MAX, j.p);
				goto fail;
			}
		} else {
			pm_log(w, PM_LOG_ERROR, "spool: params.%s: unknown "
			    "key (known: dir, command, batch)", key);
			goto fail;
		}
		free(key);
		key = NULL;
		json_ws(&j);
		if (*j.p == '}') {
			j.p++;
			break;
		}
		if (*j.p++ != ',') {
			j.err = "',' or '}' expected";
			goto syntax;
		}
	}
	json_ws(&j);
	if (*j.p != '\0') {
		j.err = "text after the object";
		goto syntax;
	}
	if (p->dir == NULL || p->dir[0] != '/') {
		pm_log(w, PM_LOG_ERROR, "spool: params.dir: %s",
		    p->dir == NULL ? "required (the spool directory)" :
		    "must be an absolute path");
		return -1;
	}
	if (p->command != NULL && p->command[0] == '\0') {
		pm_log(w, PM_LOG_ERROR, "spool: params.command: must not be "
		    "empty (leave it out for the built-in)");
		return -1;
	}
	return 0;
type:
	pm_log(w, PM_LOG_ERROR, "spool: params.%s: must be a string%s, "
	    "got %.20s", key, strcmp(key, "command") == 0 ? " or null" : "",
	    j.p);
	goto fail;
syntax:
	pm_log(w, PM_LOG_ERROR, "spool: params: %s at offset %ld",
	    j.err != NULL ? j.err : "invalid JSON", (long)(j.p - text));
fail:
	free(key);
	return -1;
}

/* -- the spool's directories ------------------------------------------- */

/* mkdir -p. */
static int
make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *s = buf + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(buf, 0777) < 0 && errno != EEXIST)
			return -1;
		if (c == '\0')
			return 0;
		*s = c;
	}
}

/* Opens directory name under dirfd, creating it if missing. */
static int
open_subdir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0777) < 0 && errno != EEXIST)
		return -1;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* A fresh listing of dirfd (which stays open). */
static DIR *
open_listing(int dirfd)
{
	DIR *d;
	int fd;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return NULL;
	if ((d = fdopendir(fd)) == NULL)
		close(fd);
	return d;
}

/* Up to CHUNK job names from d: neither hidden nor directories. */
static int
read_names(DIR *d, job_name *names)
{
	struct dirent *de;
	int n = 0;

	while (n < CHUNK && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || de->d_type == DT_DIR)
			continue;
		memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
	}
	return n;
}

static void
spool_free(struct spool *sp)
{
	int *fds[] = { &sp->incoming_fd, &sp->work_fd, &sp->slot_fd,
	    &sp->done_fd, &sp->failed_fd, &sp->lock_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			(void)close(*fds[i]);
	if (sp->incoming != NULL)
		closedir(sp->incoming);
	free(sp->p.dir);
	free(sp->p.command);
	free(sp);
}

/*
 * Takes work/N/.lock for the rest of the worker's life: 0 when held, 1
 * while another process holds it (try again next call), -1 on error.
 */
static int
take_slot_lock(pm_worker *w, struct spool *sp)
{
	int fd, err;
	int64_t now;

	fd = openat(sp->slot_fd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0666);
	if (fd < 0) {
		pm_log(w, PM_LOG_ERROR, "spool: %s/%s: %s", sp->slot_path,
		    LOCK_NAME, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		sp->lock_fd = fd;
		if (sp->lock_warned)
			pm_log(w, PM_LOG_NOTICE, "spool: %s/%s: got it",
			    sp->slot_path, LOCK_NAME);
		return 0;
	}
	err = errno;
	close(fd);
	if (err != EWOULDBLOCK) {
		pm_log(w, PM_LOG_ERROR, "spool: %s/%s: flock: %s",
		    sp->slot_path, LOCK_NAME, strerror(err));
		return -1;
	}
	/* Briefly held by a worker adopting orphans, or a dying command. */
	now = mono_ns();
	if (sp->lock_busy_since == 0)
		sp->lock_busy_since = now;
	else if (!sp->lock_warned && now - sp->lock_busy_since >=
	    LOCK_WARN_NS) {
		pm_log(w, PM_LOG_WARNING, "spool: %s/%s is held by another "
		    "process (another task on this spool, or something a "
		    "command left running); waiting for it", sp->slot_path,
		    LOCK_NAME);
		sp->lock_warned = 1;
	}
	return 1;
}

/* -- processing -------------------------------------------------------- */

/*
 * The built-in: writes done/NAME.sum for work/N/NAME, through a temporary
 * file renamed into place, and copies its line into result.  0 when the
 * result is in place, 1 when the job itself is bad, -1 on a spool error;
 * logged.
 */
static int
checksum_job(pm_worker *w, struct spool *sp, const char *name,
    char *result, size_t size_result)
{
	char buf[65536], tmp[NAME_MAX + 1], sum[NAME_MAX + 1];
	uint64_t hash = FNV_OFFSET, size = 0;
	struct stat st;
	const char *why;
	ssize_t n;
	int fd, out, len, err;

	if (has_suffix(name, SUM_SUFFIX)) {
		why = "its name ends in " SUM_SUFFIX ", as results do";
		goto bad_job;
	}
	if (strlen(name) + strlen("." TMP_SUFFIX) > NAME_MAX) {
		why = "its name is too long for a result file";
		goto bad_job;
	}
	fd = openat(sp->slot_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		pm_log(w, PM_LOG_ERROR, "spool: %s/%s vanished", sp->slot_path,
		    name);
		return -1;
	}
	if (fd < 0) {
		why = errno == ELOOP ? "not a regular file" : strerror(errno);
		goto bad_job;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		why = "not a regular file";
		goto bad_job;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			why = strerror(errno);
			close(fd);
			goto bad_job;
		}
		for (ssize_t i = 0; i < n; i++) {
			hash ^= (unsigned char)buf[i];
			hash *= FNV_PRIME;
		}
		size += (uint64_t)n;
	}
	close(fd);

	snprintf(tmp, sizeof(tmp), ".%s%s", name, TMP_SUFFIX);
	snprintf(sum, sizeof(sum), "%s%s", name, SUM_SUFFIX);
	len = snprintf(result, size_result, "%016" PRIx64 " %" PRIu64 "\n",
	    hash, size);
	out = openat(sp->done_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0666);
	if (out < 0)
		goto spool_error;
	if (write_all(out, result, (size_t)len) < 0) {
		err = errno;
		close(out);
		errno = err;
		goto spool_error;
	}
	if (close(out) < 0 || renameat(sp->done_fd, tmp, sp->done_fd,
	    sum) < 0)
		goto spool_error;
	result[len - 1] = '\0';
	return 0;
bad_job:
	pm_log(w, PM_LOG_WARNING, "spool: job %s failed: %s", name, why);
	return 1;
spool_error:
	err = errno;
	unlinkat(sp->done_fd, tmp, 0);
	pm_log(w, PM_LOG_ERROR, "spool: %s/done/%s: %s; job %s stays in %s",
	    sp->p.dir, tmp, strerror(err), name, sp->slot_path);
	return -1;
}

/*
 * Runs the command on work/N/NAME: 0 when it exits 0, 1 when it fails, -1
 * when it cannot be started; logged.
 */
static int
run_command(pm_worker *w, struct spool *sp, const char *name)
{
	char path[PATH_MAX];
	char *argv[] = { "sh", "-c", sp->p.command, "sh", path, NULL };
	struct stat st;
	pid_t pid;
	int status;

	if (snprintf(path, sizeof(path), "%s/%s", sp->slot_path, name) >=
	    (int)sizeof(path)) {
		pm_log(w, PM_LOG_WARNING, "spool: job %s failed: its path is "
		    "too long", name);
		return 1;
	}
	if (fstatat(sp->slot_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		pm_log(w, PM_LOG_ERROR, "spool: %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		pm_log(w, PM_LOG_WARNING, "spool: job %s failed: not a "
		    "regular file", name);
		return 1;
	}
	if ((pid = fork()) < 0) {
		pm_log(w, PM_LOG_ERROR, "spool: job %s: fork: %s; it stays "
		    "in %s", name, strerror(errno), sp->slot_path);
		return -1;
	}
	if (pid == 0) {
		/* The command holds the slot lock too: see the top. */
		fcntl(sp->lock_fd, F_SETFD, 0);
		execv("/bin/sh", argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			pm_log(w, PM_LOG_ERROR, "spool: job %s: waitpid: %s",
			    name, strerror(errno));
			return -1;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		pm_log(w, PM_LOG_WARNING, "spool: job %s failed: command "
		    "exited %d", name, WEXITSTATUS(status));
	else
		pm_log(w, PM_LOG_WARNING, "spool: job %s failed: command "
		    "killed by signal %d", name, WTERMSIG(status));
	return 1;
}

/* Processes work/N/NAME and moves it into done/ or failed/. */
static enum job_end
process_job(pm_worker *w, struct spool *sp, const char *name)
{
	char sum[NAME_MAX + 1], result[64] = "command exited 0";
	int rc;

	rc = sp->p.command != NULL ? run_command(w, sp, name) :
	    checksum_job(w, sp, name, result, sizeof(result));
	if (rc < 0) {
		sp->recover = 1;
		return JOB_KEPT;
	}
	/* A result from an earlier, interrupted run must not outlive it. */
	if (rc == 1 && sp->p.command == NULL && snprintf(sum, sizeof(sum),
	    "%s%s", name, SUM_SUFFIX) < (int)sizeof(sum))
		unlinkat(sp->done_fd, sum, 0);
	if (renameat(sp->slot_fd, name, rc == 0 ? sp->done_fd : sp->failed_fd,
	    name) < 0) {
		pm_log(w, PM_LOG_ERROR, "spool: %s/%s: rename into %s/: %s",
		    sp->slot_path, name, rc == 0 ? "done" : "failed",
		    strerror(errno));
		sp->recover = 1;
		return JOB_KEPT;
	}
	if (rc == 0)
		pm_log(w, PM_LOG_DEBUG, "spool: job %s done: %s (slot %s)",
		    name, result, sp->slot_name);
	return rc == 0 ? JOB_DONE : JOB_FAILED;
}

/*
 * Finishes what an earlier worker of this slot left in work/N/.  Names are
 * read before any is moved.  0 once the directory is empty, 1 if a stop
 * came first, -1 if a job stays (logged).
 */
static int
recover_slot(pm_worker *w, struct spool *sp)
{
	job_name names[CHUNK];
	DIR *d;
	int n;

	for (;;) {
		if ((d = open_listing(sp->slot_fd)) == NULL) {
			pm_log(w, PM_LOG_ERROR, "spool: %s: %s", sp->slot_path,
			    strerror(errno));
			return -1;
		}
		n = read_names(d, names);
		closedir(d);
		if (n == 0) {
			sp->recover = 0;
			return 0;
		}
		for (int i = 0; i < n; i++) {
			if (pm_worker_stopping(w))
				return 1;
			pm_log(w, PM_LOG_INFO, "spool: recovering job %s from "
			    "%s", names[i], sp->slot_path);
			if (process_job(w, sp, names[i]) == JOB_KEPT)
				return -1;
		}
	}
}

/* Moves the jobs of work/SLOT/ back into incoming/ if its lock is free. */
static void
requeue_slot(pm_worker *w, struct spool *sp, const char *slot)
{
	job_name names[CHUNK];
	int dirfd, lockfd = -1, n = 0;
	DIR *d;

	dirfd = openat(sp->work_fd, slot, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return;
	lockfd = openat(dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0666);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0)
		goto out;
	do {
		if ((d = open_listing(dirfd)) == NULL)
			break;
		n = read_names(d, names);
		closedir(d);
		for (int i = 0; i < n; i++) {
			if (renameat(dirfd, names[i], sp->incoming_fd,
			    names[i]) < 0) {
				pm_log(w, PM_LOG_ERROR, "spool: requeue "
				    "work/%s/%s: %s", slot, names[i],
				    strerror(errno));
				goto out;
			}
			pm_log(w, PM_LOG_INFO, "spool: requeued job %s left in "
			    "work/%s/ by a worker that is gone", names[i],
			    slot);
		}
	} while (n == CHUNK);
out:
	if (lockfd >= 0)
		close(lockfd);
	close(dirfd);
}

/* Requeues the jobs of every other slot nobody holds. */
static void
adopt_orphans(pm_worker *w, struct spool *sp)
{
	struct dirent *de;
	DIR *d;

	if ((d = open_listing(sp->work_fd)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		const char *s = de->d_name;

		if (s[strspn(s, "0123456789")] != '\0' || s[0] == '\0' ||
		    strcmp(s, sp->slot_name) == 0)
			continue;
		requeue_slot(w, sp, s);
	}
	closedir(d);
}

/*
 * Claims and processes up to batch jobs.  A worker keeps its place in the
 * listing of incoming/ from call to call and starts over at its end, so a
 * large directory is read once per pass, not once per call (claimed names
 * leave holes that each fresh listing would read through again).  Within
 * each chunk of names it starts at a random one, so that workers reading
 * the same part of the listing try different jobs.
 */
static int
take_new_jobs(pm_worker *w, struct spool *sp)
{
	job_name names[CHUNK];
	long left = sp->p.batch;
	int n, rewound = 0;

	if (sp->incoming == NULL &&
	    (sp->incoming = open_listing(sp->incoming_fd)) == NULL) {
		pm_log(w, PM_LOG_ERROR, "spool: %s/incoming: %s", sp->p.dir,
		    strerror(errno));
		return -1;
	}
	while (left > 0) {
		int start;

		if ((n = read_names(sp->incoming, names)) == 0) {
			/* Jobs that came in behind us show on a new pass. */
			if (rewound++)
				break;
			rewinddir(sp->incoming);
			continue;
		}
		start = (int)(next_random(sp) % (uint64_t)n);
		for (int i = 0; i < n && left > 0; i++) {
			const char *name = names[(start + i) % n];

			if (pm_worker_stopping(w))
				return 0;
			if (renameat(sp->incoming_fd, name, sp->slot_fd,
			    name) < 0) {
				if (errno == ENOENT)	/* another's now */
					continue;
				pm_log(w, PM_LOG_ERROR, "spool: claim "
				    "incoming/%s: %s", name, strerror(errno));
				return -1;
			}
			left--;
			if (process_job(w, sp, name) == JOB_KEPT)
				return -1;
		}
	}
	return 0;
}

/* -- the plugin's entry points ----------------------------------------- */

/*
 * Reads params and makes the directories.  It must not look into work/N/:
 * in a restart, the old worker of this slot may still be using it.
 */
int
work_init(pm_worker *w, void **state)
{
	struct spool *sp;
	const char *what = "";
	int root = -1;

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return -1;
	sp->incoming_fd = sp->work_fd = sp->slot_fd = -1;
	sp->done_fd = sp->failed_fd = sp->lock_fd = -1;
	if (parse_params(w, pm_worker_params(w), &sp->p) < 0)
		goto fail;
	snprintf(sp->slot_name, sizeof(sp->slot_name), "%d",
	    pm_worker_slot(w));
	if (snprintf(sp->slot_path, sizeof(sp->slot_path), "%s/work/%s",
	    sp->p.dir, sp->slot_name) >= (int)sizeof(sp->slot_path)) {
		pm_log(w, PM_LOG_ERROR, "spool: params.dir: too long");
		goto fail;
	}
	if (make_dirs(sp->p.dir) < 0 ||
	    (root = open(sp->p.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto sys_error;
	if ((sp->incoming_fd = open_subdir(root, what = "incoming")) < 0 ||
	    (sp->work_fd = open_subdir(root, what = "work")) < 0 ||
	    (sp->done_fd = open_subdir(root, what = "done")) < 0 ||
	    (sp->failed_fd = open_subdir(root, what = "failed")) < 0)
		goto sys_error;
	what = sp->slot_path + strlen(sp->p.dir) + 1;
	if ((sp->slot_fd = open_subdir(sp->work_fd, sp->slot_name)) < 0)
		goto sys_error;
	close(root);
	sp->recover = 1;
	sp->rng = ((uint64_t)getpid() << 32 ^ (uint64_t)mono_ns()) | 1;
	*state = sp;
	return 0;
sys_error:
	pm_log(w, PM_LOG_ERROR, "spool: %s%s%s: %s", sp->p.dir,
	    what[0] != '\0' ? "/" : "", what, strerror(errno));
	if (root >= 0)
		close(root);
fail:
	spool_free(sp);
	return -1;
}

/*
 * Slot lock, then what an earlier worker of the slot left, then orphaned
 * slots now and then, then new jobs.
 */
int
work(pm_worker *w, void *state)
{
	struct spool *sp = state;
	int64_t now;
	int rc;

	if (sp->lock_fd < 0 && (rc = take_slot_lock(w, sp)) != 0)
		return rc < 0 ? -1 : PM_CONTINUE;
	if (sp->recover && (rc = recover_slot(w, sp)) != 0)
		return rc < 0 ? -1 : PM_CONTINUE;
	now = mono_ns();
	if (now >= sp->adopt_at) {
		adopt_orphans(w, sp);
		sp->adopt_at = now + ADOPT_EVERY_NS;
	}
	return take_new_jobs(w, sp) < 0 ? -1 : PM_CONTINUE;
}

void
work_fini(pm_worker *w, void *state)
{
	(void)w;
	spool_free(state);
}
