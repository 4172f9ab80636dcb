/*
 * privs.h - the user and group a task's workers run as.  Names are
 * resolved once in the master (config errors if unknown); workers and
 * plugin probes apply them after fork, before any plugin code runs.
 */
#ifndef PMHOST_PRIVS_H
#define PMHOST_PRIVS_H

#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

struct creds {
	int	 set;		/* 0: keep the master's identity */
	uid_t	 uid;
	gid_t	 gid;
	int	 ngroups;
	gid_t	*groups;	/* supplementary groups */
	char	 home[256];	/* for HOME in the worker's environment */
	char	 name[64];
};

/*
 * Resolves user (name or number) and group (name or number; NULL: the
 * user's primary group).  Both NULL: c->set = 0.  Refuses when we are not
 * root.  0, or -1 with "user: ..." / "group: ..." in err.
 */
int	creds_resolve(const char *user, const char *group, struct creds *c,
	    char *err, size_t errlen);

/* setgroups, setgid, setuid, in that order, then checks root is gone. */
int	creds_apply(const struct creds *c, char *err, size_t errlen);

struct task_config;

/*
 * The master's descriptor limit raised to what want workers' pipes need
 * (as root, the hard limit too, up to fs.nr_open; else the soft one to
 * the hard one).  Workers get back the limit pmhost was started with
 * (privs_enter), unless the task sets limits.nofile.  0 or -1.
 */
int	privs_raise_nofile(rlim_t want);

/*
 * Everything a process that runs the task's plugin code takes on before
 * it loads the plugin: the task's resource limits (while still root, so a
 * hard limit may rise), its user and group, and no new privileges (unless
 * the task turned that off); then the user's HOME, USER and LOGNAME, the
 * task's env and workingDirectory.  0, or -1 with the reason in err.
 */
int	privs_enter(const struct task_config *t, const struct creds *c,
	    char *err, size_t errlen);

/* A deep copy of src; 0, or -1 without memory. */
int	creds_copy(struct creds *dst, const struct creds *src);
void	creds_free(struct creds *c);

#endif
