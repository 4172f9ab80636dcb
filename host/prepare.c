/*
 * prepare.c - the one check of a task, shared by run, check and restart:
 * its run dir (created 0700, or checked), its control socket's path
 * length, its log file, its user and group, and its plugin loaded and
 * checked in a throwaway child under that user.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "plugin.h"
#include "prepare.h"
#include "trust.h"
#include "util.h"

/*
 * As root, the paths the master reads or writes must be changeable by no
 * one but root (the log: and the task's user).  A weak one refuses the
 * task, or with strictPaths false is noted in p->warnings.  0, or -1 with
 * the refusal in err.
 */
static int
check_paths(const struct task_config *t, struct prepared *p,
    const char *where, char *err, size_t errlen)
{
	const struct {
		const char	*key;
		const char	*path;
		uid_t		 also;
	} paths[] = {
		{ "config file", t->config_path, (uid_t)-1 },
		{ "plugin", t->plugin, (uid_t)-1 },
		{ "run dir", p->run_dir, (uid_t)-1 },
		{ "log file", p->log_path, p->creds.set ? p->creds.uid :
		    (uid_t)-1 },
	};
	char why[PATH_MAX + 128];

	if (geteuid() != 0)
		return 0;
	for (size_t i = 0; i < nitems(paths); i++) {
		size_t n = strlen(p->warnings);

		if (paths[i].path == NULL || paths[i].path[0] == '\0' ||
		    trust_path(paths[i].path, paths[i].also, why,
		    sizeof(why)) == 0)
			continue;
		if (t->strict_paths) {
			snprintf(err, errlen, "%s: %s%s: %s; refused, as the "
			    "master runs as root (make it root's and not "
			    "writable by others, or set \"strictPaths\": "
			    "false)", t->config_path, where, paths[i].key, why);
			return -1;
		}
		snprintf(p->warnings + n, sizeof(p->warnings) - n, "%s%s: %s",
		    n > 0 ? "; " : "", paths[i].key, why);
	}
	return 0;
}

/*
 * What a load check's failure is about: the plugin, unless the reason
 * names a key the check applied before loading it (as the task's user).
 */
static const char *
probe_subject(const char *why)
{
	static const char *const keys[] = { "workingDirectory:", "env.",
	    "limits." };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strncmp(why, keys[i], strlen(keys[i])) == 0)
			return "";
	return "plugin: ";
}

/* Is path a directory?  0, or -1 with why. */
static int
dir_check(const char *path, char *why, size_t size)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, size, "%s: not a directory", path);
		return -1;
	}
	return 0;
}

int
prepare_task(const struct task_config *t, const struct overrides *ov,
    unsigned flags, struct prepared *p, char *err, size_t errlen)
{
	char why[PLUGIN_ERR_MAX], sock[RUNDIR_PATH_MAX], where[80] = "";

	memset(p, 0, sizeof(*p));
	if (flags & PREP_NAME_TASK)
		snprintf(where, sizeof(where), "task %s: ", t->base_title);
	p->task = t;
	p->log_level = ov != NULL && ov->log_level >= 0 ? ov->log_level :
	    t->log_level >= 0 ? t->log_level : PM_LOG_INFO;
	if (rundir_resolve(t->run_dir, p->run_dir, sizeof(p->run_dir), why,
	    sizeof(why)) < 0 || ((flags & PREP_MAKE_RUNDIR) &&
	    rundir_prepare(p->run_dir, why, sizeof(why)) < 0)) {
		snprintf(err, errlen, "%s: %s", t->base_title, why);
		return EXIT_RUNTIME;
	}
	if (rundir_path(sock, sizeof(sock), p->run_dir, t->base_title,
	    ".sock") < 0 || strlen(sock) >= SOCKET_PATH_MAX) {
		snprintf(err, errlen, "%s: run dir %s: too long for the control "
		    "socket %s.sock (at most %d bytes in all)", t->base_title,
		    p->run_dir, t->base_title, SOCKET_PATH_MAX - 1);
		return EXIT_RUNTIME;
	}
	if (ov != NULL && ov->log_file != NULL)
		copy_str(p->log_path, ov->log_file, sizeof(p->log_path));
	else if (t->log_file != NULL)
		copy_str(p->log_path, t->log_file, sizeof(p->log_path));
	else if (ov != NULL && ov->detached && rundir_path(p->log_path,
	    sizeof(p->log_path), p->run_dir, t->base_title, ".log") < 0)
		copy_str(p->log_path, "/dev/null", sizeof(p->log_path));
	if (creds_resolve(t->user, t->group, &p->creds, why,
	    sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s%s", t->config_path, where, why);
		return EXIT_USAGE;
	}
	if (p->log_path[0] != '\0' && trust_check_log(p->log_path,
	    p->creds.set ? p->creds.uid : (uid_t)-1, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: log file: %s", t->base_title, why);
		prepared_free(p);
		return EXIT_USAGE;
	}
	if (check_paths(t, p, where, err, errlen) < 0) {
		prepared_free(p);
		return EXIT_USAGE;
	}
	if (t->working_dir != NULL && dir_check(t->working_dir, why,
	    sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %sworkingDirectory: %s",
		    t->config_path, where, why);
		prepared_free(p);
		return EXIT_USAGE;
	}
	if ((flags & PREP_PROBE) && plugin_probe(t, &p->creds, why,
	    sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s%s%s", t->config_path, where,
		    probe_subject(why), why);
		prepared_free(p);
		return EXIT_USAGE;
	}
	return 0;
}

/* Two optional strings: both absent, or equal. */
static int
same_str(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* Do two prepared tasks load their plugin the same way? */
static int
same_probe(const struct prepared *a, const struct prepared *b)
{
	const struct task_config *x = a->task, *y = b->task;

	if (strcmp(x->plugin, y->plugin) != 0 ||
	    !same_str(x->env, y->env) ||
	    !same_str(x->working_dir, y->working_dir) ||
	    a->creds.set != b->creds.set || x->no_new_privs != y->no_new_privs ||
	    memcmp(x->limits, y->limits, sizeof(x->limits)) != 0)
		return 0;
	if (!a->creds.set)
		return 1;
	return a->creds.uid == b->creds.uid && a->creds.gid == b->creds.gid &&
	    a->creds.ngroups == b->creds.ngroups &&
	    memcmp(a->creds.groups, b->creds.groups,
	    (size_t)a->creds.ngroups * sizeof(gid_t)) == 0;
}

/* Orders prepared tasks so that same_probe() ones are next to each other. */
static const struct prepared *sort_base;

static int
probe_order(const void *a, const void *b)
{
	const struct prepared *x = &sort_base[*(const size_t *)a];
	const struct prepared *y = &sort_base[*(const size_t *)b];
	int c = strcmp(x->task->plugin, y->task->plugin);

	if (c != 0)
		return c;
	if (x->creds.uid != y->creds.uid)
		return x->creds.uid < y->creds.uid ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* One group's probe: maps its failures back to the caller's indexes. */
struct group_probe {
	const struct prepared *ps;
	const size_t	*idx;		/* the group's task indexes */
	unsigned	 flags;
	void		(*fail)(void *, size_t, const char *);
	void		*arg;
};

static void
group_failed(void *arg, size_t i, const char *why)
{
	struct group_probe *g = arg;
	const struct task_config *t = g->ps[g->idx[i]].task;
	char msg[PLUGIN_ERR_MAX + PATH_MAX + 128];

	if (g->flags & PREP_NAME_TASK)
		snprintf(msg, sizeof(msg), "%s: task %s: %s%s",
		    t->config_path, t->base_title, probe_subject(why), why);
	else
		snprintf(msg, sizeof(msg), "%s: %s%s", t->config_path,
		    probe_subject(why), why);
	g->fail(g->arg, g->idx[i], msg);
}

size_t
prepare_probe(const struct prepared *ps, size_t n, unsigned flags,
    void (*fail)(void *arg, size_t i, const char *message), void *arg)
{
	const struct task_config **group;
	size_t *idx, bad = 0;

	idx = calloc(n, sizeof(*idx));
	group = calloc(n, sizeof(*group));
	if (idx == NULL || group == NULL) {
		for (size_t i = 0; i < n; i++)
			fail(arg, i, "out of memory");
		free(idx);
		free(group);
		return n;
	}
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	sort_base = ps;
	qsort(idx, n, sizeof(*idx), probe_order);
	for (size_t lo = 0, hi; lo < n; lo = hi) {
		struct group_probe g = { ps, idx + lo, flags, fail, arg };

		for (hi = lo; hi < n && same_probe(&ps[idx[lo]], &ps[idx[hi]]);
		    hi++)
			group[hi - lo] = ps[idx[hi]].task;
		bad += (size_t)plugin_probe_tasks(group, hi - lo,
		    &ps[idx[lo]].creds, group_failed, &g);
	}
	free(idx);
	free(group);
	return bad;
}

void
prepared_free(struct prepared *p)
{
	creds_free(&p->creds);
}
