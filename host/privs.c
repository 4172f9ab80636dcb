/*
 * privs.c - resolving and dropping to a task's user and group.  The drop
 * sets supplementary groups first and uid last, then verifies that root
 * cannot be regained, as a privilege drop that half-worked must not run
 * plugin code.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/prctl.h>
#include <sys/resource.h>

#include "config.h"
#include "privs.h"
#include "util.h"

/* A numeric id in s, or -1. */
static long
numeric_id(const char *s)
{
	long v;

	if (parse_long(s, 0, INT_MAX - 1, &v) < 0)
		return -1;
	return v;
}

int
creds_resolve(const char *user, const char *group, struct creds *c,
    char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	long id;
	int n;

	memset(c, 0, sizeof(*c));
	if (user == NULL && group == NULL)
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen, "%s: can only be set when pmhost runs "
		    "as root", user != NULL ? "user" : "group");
		return -1;
	}
	c->uid = geteuid();
	c->gid = getegid();
	if (user != NULL) {
		errno = 0;
		if ((id = numeric_id(user)) >= 0)
			pw = getpwuid((uid_t)id);
		else
			pw = getpwnam(user);
		if (pw == NULL && id < 0) {
			snprintf(err, errlen, "user: unknown user \"%s\"", user);
			return -1;
		}
		c->uid = pw != NULL ? pw->pw_uid : (uid_t)id;
		c->gid = pw != NULL ? pw->pw_gid : (gid_t)id;
		if (pw != NULL) {
			copy_str(c->home, pw->pw_dir, sizeof(c->home));
			copy_str(c->name, pw->pw_name, sizeof(c->name));
		}
	}
	if (group != NULL) {
		if ((id = numeric_id(group)) >= 0)
			gr = getgrgid((gid_t)id);
		else
			gr = getgrnam(group);
		if (gr == NULL && id < 0) {
			snprintf(err, errlen, "group: unknown group \"%s\"",
			    group);
			return -1;
		}
		c->gid = gr != NULL ? gr->gr_gid : (gid_t)id;
	}
	/* The user's supplementary groups, as login would set them. */
	if (c->name[0] != '\0') {
		n = 0;
		getgrouplist(c->name, c->gid, NULL, &n);
		if (n < 1)
			n = 1;
		if ((c->groups = calloc((size_t)n, sizeof(gid_t))) == NULL) {
			snprintf(err, errlen, "user: out of memory");
			return -1;
		}
		if (getgrouplist(c->name, c->gid, c->groups, &n) < 0) {
			snprintf(err, errlen, "user: cannot list groups of "
			    "\"%s\"", c->name);
			creds_free(c);
			return -1;
		}
		c->ngroups = n;
	} else {
		if ((c->groups = calloc(1, sizeof(gid_t))) == NULL) {
			snprintf(err, errlen, "group: out of memory");
			return -1;
		}
		c->groups[0] = c->gid;
		c->ngroups = 1;
	}
	c->set = 1;
	return 0;
}

int
creds_apply(const struct creds *c, char *err, size_t errlen)
{
	if (!c->set)
		return 0;
	if (setgroups((size_t)c->ngroups, c->groups) < 0 ||
	    setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0) {
		snprintf(err, errlen, "cannot switch to uid %ld gid %ld: %s",
		    (long)c->uid, (long)c->gid, strerror(errno));
		return -1;
	}
	if (c->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen, "privilege drop to uid %ld did not "
		    "hold", (long)c->uid);
		return -1;
	}
	return 0;
}

/* The descriptor limit pmhost was started with, for its workers. */
static struct rlimit inherited_nofile;
static int nofile_raised;

int
privs_raise_nofile(rlim_t want)
{
	struct rlimit rl;
	long max = 0;
	FILE *f;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (!nofile_raised)
		inherited_nofile = rl;
	nofile_raised = 1;
	/* As root the hard limit may rise too, up to fs.nr_open. */
	if (geteuid() == 0 && rl.rlim_max != RLIM_INFINITY &&
	    rl.rlim_max < want) {
		if ((f = fopen("/proc/sys/fs/nr_open", "re")) != NULL) {
			if (fscanf(f, "%ld", &max) != 1)
				max = 0;
			fclose(f);
		}
		if (max > 0 && (rlim_t)max < want)
			want = (rlim_t)max;
		rl.rlim_max = want;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		/* Not root: the soft limit up to the hard one. */
		if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -1;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -1;
	}
	return 0;
}

/* setrlimit() of each limit the task sets, soft and hard alike. */
static int
apply_limits(const struct task_config *t, char *err, size_t errlen)
{
	static const int resource[LIMIT_COUNT] = {
		[LIMIT_NOFILE] = RLIMIT_NOFILE,
		[LIMIT_NPROC] = RLIMIT_NPROC,
		[LIMIT_CORE] = RLIMIT_CORE,
		[LIMIT_AS] = RLIMIT_AS,
	};

	/* What the master raised for itself is not the task's. */
	if (nofile_raised && !t->limits[LIMIT_NOFILE].set)
		(void)setrlimit(RLIMIT_NOFILE, &inherited_nofile);
	for (int i = 0; i < LIMIT_COUNT; i++) {
		struct rlimit rl;

		if (!t->limits[i].set)
			continue;
		rl.rlim_cur = rl.rlim_max = t->limits[i].value == UINT64_MAX ?
		    RLIM_INFINITY : (rlim_t)t->limits[i].value;
		if (setrlimit(resource[i], &rl) < 0) {
			snprintf(err, errlen, "limits.%s: cannot set %llu: %s",
			    config_limit_name((enum limit_id)i),
			    (unsigned long long)t->limits[i].value,
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

int
privs_enter(const struct task_config *t, const struct creds *c, char *err,
    size_t errlen)
{
	if (apply_limits(t, err, errlen) < 0)
		return -1;
	if (c != NULL && creds_apply(c, err, errlen) < 0)
		return -1;
	if (t->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "no new privileges: %s", strerror(errno));
		return -1;
	}
	if (c != NULL && c->set) {
		/*
		 * The uid change made us undumpable, which also hides our
		 * own /proc/self/fd from us (the pinned plugin is loaded
		 * through it) and keeps the plugin from dumping core.
		 */
		prctl(PR_SET_DUMPABLE, 1);
		if (c->home[0] != '\0')
			setenv("HOME", c->home, 1);
		if (c->name[0] != '\0') {
			setenv("USER", c->name, 1);
			setenv("LOGNAME", c->name, 1);
		}
	}
	/* The task's own settings win, as systemd's Environment= does. */
	if (config_env_apply(t, err, errlen) < 0)
		return -1;
	/* As the task's user: a directory it cannot enter is an error. */
	if (t->working_dir != NULL && chdir(t->working_dir) < 0) {
		snprintf(err, errlen, "workingDirectory: %s: %s",
		    t->working_dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
creds_copy(struct creds *dst, const struct creds *src)
{
	*dst = *src;
	dst->groups = NULL;
	if (src->ngroups == 0)
		return 0;
	if ((dst->groups = calloc((size_t)src->ngroups, sizeof(gid_t))) ==
	    NULL)
		return -1;
	memcpy(dst->groups, src->groups, (size_t)src->ngroups *
	    sizeof(gid_t));
	return 0;
}

void
creds_free(struct creds *c)
{
	free(c->groups);
	c->groups = NULL;
	c->ngroups = 0;
}
