/*
 * command.c - params.command made runnable: the program found once (on
 * PATH, or relative to the config's directory), its environment built
 * once, and a spawn that gives the child default signal dispositions, an
 * empty signal mask, the three descriptors it is handed and no other.
 * The child stays in the worker's process group, so that whatever ends
 * the worker's group ends the child and anything it forked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"

#define DEFAULT_PATH	"/usr/local/bin:/usr/bin:/bin"
#define CALL_DIGITS	20	/* a uint64_t in decimal */

extern char **environ;

/* The PATH the program is looked up on: params.env's, else the worker's. */
const char *
command_search_path(const struct exec_params *p)
{
	const char *path;

	for (size_t i = 0; p->env != NULL && p->env[i] != NULL; i++)
		if (strncmp(p->env[i], "PATH=", 5) == 0)
			return p->env[i] + 5;
	path = getenv("PATH");
	return path != NULL ? path : DEFAULT_PATH;
}

/* 0 if path is a regular file we may execute; else -1, errno set. */
static int
runnable(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return -1;
	if (S_ISDIR(sb.st_mode)) {
		errno = EISDIR;
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		errno = EACCES;
		return -1;
	}
	return access(path, X_OK);
}

/* Looks a bare program name up on a PATH list, as execvp() would. */
static int
search(const char *name, const char *search_path, char *out, size_t outlen,
    char *err, size_t errlen)
{
	const char *dir = search_path, *end;
	char denied[4096] = "";
	int denied_errno = 0;

	for (;; dir = end + 1) {
		size_t dlen;

		end = strchrnul(dir, ':');
		dlen = (size_t)(end - dir);
		/* An empty entry is the current directory (POSIX). */
		if ((size_t)snprintf(out, outlen, "%.*s%s%s", (int)dlen,
		    dlen ? dir : ".", "/", name) < outlen) {
			if (runnable(out) == 0)
				return 0;
			if (errno != ENOENT && errno != ENOTDIR &&
			    denied[0] == '\0') {
				denied_errno = errno;
				snprintf(denied, sizeof(denied), "%s", out);
			}
		}
		if (*end == '\0')
			break;
	}
	if (denied[0] != '\0')
		snprintf(err, errlen, "params.command: \"%s\": %s is not "
		    "executable (%s)", name, denied, strerror(denied_errno));
	else
		snprintf(err, errlen, "params.command: \"%s\": not found on "
		    "PATH (%s)", name, search_path);
	return -1;
}

int
command_resolve(const char *name, const char *config_dir,
    const char *search_path, char *out, size_t outlen, char *err,
    size_t errlen)
{
	const char *rel = name;

	if (strchr(name, '/') == NULL)
		return search(name, search_path, out, outlen, err, errlen);
	while (strncmp(rel, "./", 2) == 0)
		rel += 2;
	if (name[0] == '/' || config_dir == NULL) {
		if ((size_t)snprintf(out, outlen, "%s", name) >= outlen)
			goto toolong;
	} else if ((size_t)snprintf(out, outlen, "%s/%s", config_dir, rel) >=
	    outlen)
		goto toolong;
	if (runnable(out) == 0)
		return 0;
	if (errno == ENOENT || errno == ENOTDIR)
		snprintf(err, errlen, "params.command: \"%s\": %s does not "
		    "exist", name, out);
	else
		snprintf(err, errlen, "params.command: \"%s\": %s is not "
		    "executable (%s)", name, out, strerror(errno));
	return -1;
toolong:
	snprintf(err, errlen, "params.command: \"%s\": path too long", name);
	return -1;
}

/* Does env entry e set a variable that `over` sets too? */
static int
overridden(const char *e, char *const *over)
{
	size_t n = strcspn(e, "=");

	for (size_t i = 0; over != NULL && over[i] != NULL; i++)
		if (strncmp(e, over[i], n) == 0 && over[i][n] == '=')
			return 1;
	return 0;
}

/* Appends a copy of s to envp; -1 if out of memory. */
static int
env_add(char **envp, size_t *n, const char *s)
{
	if ((envp[*n] = strdup(s)) == NULL)
		return -1;
	(*n)++;
	return 0;
}

/*
 * The worker's environment, then params.env, then PMHOST_SLOT,
 * PMHOST_TITLE and (call mode) PMHOST_CALL, each set once: a later
 * setting of a name replaces an earlier one.
 */
static int
build_env(struct command *c, const struct exec_params *p, pm_worker *w,
    int with_call_var)
{
	char *ours[4], slot[32], *title;
	size_t n = 0, total = 0, nenv = 0;
	int rc = -1;

	snprintf(slot, sizeof(slot), "PMHOST_SLOT=%d", pm_worker_slot(w));
	if ((title = malloc(strlen(pm_worker_title(w)) + 14)) == NULL)
		return -1;
	sprintf(title, "PMHOST_TITLE=%s", pm_worker_title(w));
	ours[0] = slot;
	ours[1] = title;
	ours[2] = with_call_var ? "PMHOST_CALL=" : NULL;
	ours[3] = NULL;
	for (size_t i = 0; environ != NULL && environ[i] != NULL; i++)
		total++;
	for (size_t i = 0; p->env != NULL && p->env[i] != NULL; i++)
		nenv++;
	if ((c->envp = calloc(total + nenv + 4, sizeof(char *))) == NULL)
		goto out;
	for (size_t i = 0; i < total; i++)
		if (!overridden(environ[i], p->env) &&
		    !overridden(environ[i], ours) &&
		    env_add(c->envp, &n, environ[i]) < 0)
			goto out;
	for (size_t i = 0; i < nenv; i++)
		if (!overridden(p->env[i], ours) &&
		    env_add(c->envp, &n, p->env[i]) < 0)
			goto out;
	if (env_add(c->envp, &n, slot) < 0 || env_add(c->envp, &n, title) < 0)
		goto out;
	if (with_call_var) {
		/* Room for the number, written in place before each spawn. */
		if ((c->call_var = calloc(1, 13 + CALL_DIGITS)) == NULL)
			goto out;
		strcpy(c->call_var, "PMHOST_CALL=0");
		c->envp[n++] = c->call_var;
	}
	rc = 0;
out:
	free(title);
	return rc;
}

int
command_prepare(struct command *c, const struct exec_params *p,
    pm_worker *w, int with_call_var, char *err, size_t errlen)
{
	char path[4096];
	sigset_t all, none;

	memset(c, 0, sizeof(*c));
	if (command_resolve(p->argv[0], pm_worker_config_dir(w),
	    command_search_path(p), path, sizeof(path), err, errlen) < 0)
		return -1;
	c->argv = p->argv;
	if ((c->path = strdup(path)) == NULL ||
	    build_env(c, p, w, with_call_var) < 0) {
		snprintf(err, errlen, "out of memory");
		command_free(c);
		return -1;
	}
	/*
	 * Every signal back to its default (the worker ignores SIGPIPE in
	 * coprocess mode, and may have inherited other ignored signals) and
	 * none blocked: the program starts as from a clean shell.
	 */
	sigfillset(&all);
	sigemptyset(&none);
	if (posix_spawnattr_init(&c->attr) != 0 ||
	    posix_spawn_file_actions_init(&c->actions) != 0) {
		snprintf(err, errlen, "posix_spawn set-up failed");
		command_free(c);
		return -1;
	}
	c->ready = 1;
	posix_spawnattr_setsigdefault(&c->attr, &all);
	posix_spawnattr_setsigmask(&c->attr, &none);
	posix_spawnattr_setflags(&c->attr, POSIX_SPAWN_SETSIGDEF |
	    POSIX_SPAWN_SETSIGMASK);
	return 0;
}

int
command_set_stdio(struct command *c, int in_fd, int out_fd, int err_fd)
{
	posix_spawn_file_actions_destroy(&c->actions);
	if (posix_spawn_file_actions_init(&c->actions) != 0)
		return -1;
	/* dup2 clears close-on-exec on the copy; closefrom drops the rest. */
	if (posix_spawn_file_actions_adddup2(&c->actions, in_fd, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(&c->actions, out_fd, 1) != 0 ||
	    posix_spawn_file_actions_adddup2(&c->actions, err_fd, 2) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(&c->actions, 3) != 0)
		return -1;
	return 0;
}

int
command_spawn(struct command *c, uint64_t call, pid_t *pid, int *pidfd,
    char *err, size_t errlen)
{
	int rc;

	if (c->call_var != NULL)
		snprintf(c->call_var + 12, CALL_DIGITS + 1, "%llu",
		    (unsigned long long)call);
	rc = posix_spawn(pid, c->path, &c->actions, &c->attr, c->argv,
	    c->envp);
	if (rc != 0) {
		snprintf(err, errlen, "could not be started (%s: %s)",
		    c->path, strerror(rc));
		return -1;
	}
	/* Our unreaped child: its pid cannot have been reused. */
	*pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);
	if (*pidfd < 0) {
		snprintf(err, errlen, "could not be watched (pidfd_open: "
		    "%s)", strerror(errno));
		kill(*pid, SIGKILL);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -1;
	}
	return 0;
}

void
command_free(struct command *c)
{
	for (size_t i = 0; c->envp != NULL && c->envp[i] != NULL; i++)
		free(c->envp[i]);
	free(c->envp);
	free(c->path);
	if (c->ready) {
		posix_spawnattr_destroy(&c->attr);
		posix_spawn_file_actions_destroy(&c->actions);
	}
	memset(c, 0, sizeof(*c));
}

const char *
command_end_text(int wstatus, char *buf, size_t size)
{
	if (WIFEXITED(wstatus)) {
		snprintf(buf, size, "exited with status %d",
		    WEXITSTATUS(wstatus));
	} else if (WIFSIGNALED(wstatus)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(wstatus));

		if (abbrev != NULL)
			snprintf(buf, size, "killed by SIG%s%s", abbrev,
			    WCOREDUMP(wstatus) ? " (core dumped)" : "");
		else
			snprintf(buf, size, "killed by signal %d%s",
			    WTERMSIG(wstatus), WCOREDUMP(wstatus) ?
			    " (core dumped)" : "");
	} else {
		snprintf(buf, size, "ended with wait status 0x%x", wstatus);
	}
	return buf;
}
