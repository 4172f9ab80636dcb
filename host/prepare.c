/*
 * prepare.c - the one check of a task, shared by run, check and restart:
 * its run dir (created 0700, or checked), its control socket's path
 * length, its log file, its user and group, and its plugin loaded and
 * checked in a throwaway child under that user.
 */
#include <stdio.h>
#include <string.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "plugin.h"
#include "prepare.h"
#include "util.h"

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
