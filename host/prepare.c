/*
 * prepare.c - the one check of a task, shared by run, check and restart:
 * its run dir (created 0700, or checked), its control socket's path
 * length, its log file, its user and group, and its plugin loaded and
 * checked in a throwaway child under that user.
 */
#include <stdio.h>
#include <string.h>
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
	if ((flags & PREP_PROBE) && plugin_probe(t, &p->creds, why,
	    sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %splugin: %s", t->config_path, where,
		    why);
		prepared_free(p);
		return EXIT_USAGE;
	}
	return 0;
}

void
prepared_free(struct prepared *p)
{
	creds_free(&p->creds);
}
