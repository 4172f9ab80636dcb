/*
 * plugin.c - loads a task plugin and checks its compatibility mark before
 * anything of it is called (PostgreSQL's module magic, field by field).
 * The probe runs the same load in a throwaway child and reports back
 * through a pipe, so a plugin that crashes or hangs while loading costs
 * the caller nothing but an error message.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "plugin.h"
#include "privs.h"
#include "title.h"
#include "util.h"

/* Compares the plugin's mark with ours; 0, or -1 naming the mismatch. */
static int
check_magic(const char *path, const struct pm_plugin_magic *m, char *err,
    size_t errlen)
{
	if (m->magic != PMHOST_MAGIC) {
		snprintf(err, errlen, "%s: PMHOST_PLUGIN mark is damaged "
		    "(magic 0x%08x, expected 0x%08x)", path, m->magic,
		    PMHOST_MAGIC);
		return -1;
	}
	if (m->abi_version != PMHOST_ABI_VERSION) {
		snprintf(err, errlen, "%s: built for pmhost ABI %u, this "
		    "pmhost speaks ABI %u; rebuild it against this pmhost's "
		    "pmhost.h", path, m->abi_version, PMHOST_ABI_VERSION);
		return -1;
	}
	if (m->magic_size != sizeof(struct pm_plugin_magic)) {
		snprintf(err, errlen, "%s: PMHOST_PLUGIN mark has size %u, "
		    "expected %zu", path, m->magic_size,
		    sizeof(struct pm_plugin_magic));
		return -1;
	}
	if (m->pointer_size != sizeof(void *)) {
		snprintf(err, errlen, "%s: built for %u-byte pointers, this "
		    "pmhost uses %zu", path, m->pointer_size, sizeof(void *));
		return -1;
	}
	return 0;
}

int
plugin_open(const char *path, struct plugin *p, char *err, size_t errlen)
{
	const struct pm_plugin_magic *m;
	const char *e;

	memset(p, 0, sizeof(*p));
	if ((p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(err, errlen, "%s", e != NULL ? e : path);
		return -1;
	}
	dlerror();
	m = dlsym(p->handle, PMHOST_MAGIC_SYMBOL);
	if (m == NULL) {
		snprintf(err, errlen, "%s: no PMHOST_PLUGIN mark (symbol %s "
		    "not found); state 'PMHOST_PLUGIN;' once in the plugin's "
		    "source and rebuild", path, PMHOST_MAGIC_SYMBOL);
		goto fail;
	}
	if (check_magic(path, m, err, errlen) < 0)
		goto fail;
	/* POSIX allows converting dlsym()'s result to a function pointer. */
	*(void **)&p->work = dlsym(p->handle, "work");
	if (p->work == NULL) {
		e = dlerror();
		snprintf(err, errlen, "%s: no work() function (%s)", path,
		    e != NULL ? e : "symbol not found");
		goto fail;
	}
	*(void **)&p->check = dlsym(p->handle, "work_check");
	*(void **)&p->preload = dlsym(p->handle, "work_preload");
	*(void **)&p->init = dlsym(p->handle, "work_init");
	*(void **)&p->fini = dlsym(p->handle, "work_fini");
	dlerror();
	return 0;
fail:
	dlclose(p->handle);
	p->handle = NULL;
	return -1;
}

/*
 * Runs the plugin's own check of its params, if it has one; 0, or -1 with
 * what it logged (or its return value) in err.
 */
static int
run_check(const struct task_config *t, const struct plugin *p, char *err,
    size_t errlen)
{
	char title[PROC_TITLE_MAX];
	struct buf said = { 0 };
	struct api_ctx ctx;
	int rc;

	if (p->check == NULL)
		return 0;
	title_compose(title, sizeof(title), t->title_prefix, TITLE_WORKER,
	    t->base_title);
	api_init(&ctx, ROLE_PROBE, -1, title, t->params, t->config_dir);
	ctx.capture = &said;
	rc = p->check(&ctx.pub);
	if (rc != 0) {
		if (said.len > 0)
			snprintf(err, errlen, "%s", said.p);
		else
			snprintf(err, errlen, "%s: work_check() returned %d",
			    t->plugin, rc);
	}
	buf_free(&said);
	return rc == 0 ? 0 : -1;
}

/* The probe child: load, check, report, exit.  Never returns. */
static _Noreturn void
probe_child(const struct task_config *t, const struct creds *creds, int fd)
{
	char err[PLUGIN_ERR_MAX] = "";
	struct plugin p;
	sigset_t all;
	int rc = 0;

	/* Die with the caller; hold none of its descriptors (a pid file!). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0U, 0);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (privs_enter(t, creds, err, sizeof(err)) < 0)
		rc = 1;
	else if (plugin_open(t->plugin, &p, err, sizeof(err)) < 0 ||
	    run_check(t, &p, err, sizeof(err)) < 0)
		rc = 1;
	if (rc == 0)
		copy_str(err, "ok", sizeof(err));
	(void)write_all(fd, err, strlen(err));
	_exit(rc);
}

pid_t
plugin_probe_start(const struct task_config *t, const struct creds *creds,
    int *fd, char *err, size_t errlen)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		probe_child(t, creds, pfd[1]);
	}
	close(pfd[1]);
	*fd = pfd[0];
	return pid;
}

int
plugin_probe_result(int fd, int wstatus, char *err, size_t errlen)
{
	char msg[PLUGIN_ERR_MAX];
	ssize_t n;

	/* The child has exited: take what it wrote, wait for nothing more. */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	n = read_full(fd, msg, sizeof(msg) - 1);
	close(fd);
	msg[n > 0 ? n : 0] = '\0';
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 &&
	    strcmp(msg, "ok") == 0)
		return 0;
	if (WIFSIGNALED(wstatus)) {
		snprintf(err, errlen, "plugin crashed while loading (%s%s)",
		    sigabbrev_np(WTERMSIG(wstatus)) ? "SIG" : "signal ",
		    sigabbrev_np(WTERMSIG(wstatus)) ?
		    sigabbrev_np(WTERMSIG(wstatus)) : "?");
		return -1;
	}
	if (msg[0] == '\0')
		snprintf(err, errlen, "plugin load check exited with status "
		    "%d and no report", WIFEXITED(wstatus) ?
		    WEXITSTATUS(wstatus) : -1);
	else
		copy_str(err, msg, errlen);
	return -1;
}

int
plugin_probe(const struct task_config *t, const struct creds *creds,
    char *err, size_t errlen)
{
	int64_t deadline = mono_ns() + PLUGIN_PROBE_TIMEOUT_S * NS_PER_SEC;
	struct pollfd pfd;
	int fd, wstatus, r;
	pid_t pid;

	if ((pid = plugin_probe_start(t, creds, &fd, err, errlen)) < 0)
		return -1;
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		int64_t left = deadline - mono_ns();

		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(fd);
			snprintf(err, errlen, "%s: plugin load check did not "
			    "finish within %d s", t->plugin,
			    PLUGIN_PROBE_TIMEOUT_S);
			return -1;
		}
		r = poll(&pfd, 1, (int)((left + NS_PER_MS - 1) / NS_PER_MS));
		if (r > 0 || (r < 0 && errno != EINTR))
			break;
	}
	/* The report or EOF comes just before _exit(); the wait is short. */
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	return plugin_probe_result(fd, wstatus, err, errlen);
}
