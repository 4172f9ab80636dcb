/*
 * plugin.c - loads a task plugin and checks its compatibility mark before
 * anything of it is called (PostgreSQL's module magic, field by field).
 * The probe runs the same load in a throwaway child and reports back
 * through a pipe, so a plugin that crashes or hangs while loading costs
 * the caller nothing but an error message.
 */
#include <dlfcn.h>
#include <elf.h>
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
#include "pin.h"
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
		    "pmhost speaks ABI %d; rebuild it against this pmhost's "
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

/* A name for an ELF machine number, for messages. */
static const char *
machine_name(unsigned m)
{
	switch (m) {
	case EM_386:		return "i386";
	case EM_X86_64:		return "x86-64";
	case EM_ARM:		return "arm";
	case EM_AARCH64:	return "aarch64";
	case EM_RISCV:		return "riscv";
	case EM_PPC64:		return "ppc64";
	case EM_S390:		return "s390";
	case EM_MIPS:		return "mips";
	default:		return "another machine";
	}
}

/* The first bytes of an ELF file: class, byte order, type, machine. */
static int
read_elf(const char *path, unsigned char id[EI_NIDENT], unsigned *type,
    unsigned *machine)
{
	Elf64_Ehdr h;
	int fd;
	ssize_t n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read_full(fd, &h, sizeof(h));
	close(fd);
	if (n < (ssize_t)(EI_NIDENT + 4)) {
		memset(id, 0, EI_NIDENT);
		return 0;
	}
	memcpy(id, h.e_ident, EI_NIDENT);
	*type = h.e_type;
	*machine = h.e_machine;
	return 0;
}

/*
 * Checks that path is a shared object this process can load, before
 * dlopen() would say "No such file or directory" about one built for
 * another machine.  0, or -1 naming what does not fit.
 */
static int
check_elf(const char *path, char *err, size_t errlen)
{
	unsigned char id[EI_NIDENT], own[EI_NIDENT];
	unsigned type = 0, machine = 0, own_type, own_machine = 0;

	if (read_elf(path, id, &type, &machine) < 0)
		return 0;	/* dlopen() gives the reason */
	if (memcmp(id, ELFMAG, SELFMAG) != 0) {
		snprintf(err, errlen, "%s: not an ELF file; a plugin is a "
		    "shared object (cc -shared -fPIC)", path);
		return -1;
	}
	if (read_elf("/proc/self/exe", own, &own_type, &own_machine) < 0)
		return 0;
	if (id[EI_CLASS] != own[EI_CLASS]) {
		snprintf(err, errlen, "%s: a %d-bit object, this pmhost is "
		    "%d-bit; rebuild it for this machine", path,
		    id[EI_CLASS] == ELFCLASS32 ? 32 : 64,
		    own[EI_CLASS] == ELFCLASS32 ? 32 : 64);
		return -1;
	}
	if (id[EI_DATA] != own[EI_DATA] || machine != own_machine) {
		snprintf(err, errlen, "%s: built for %s (ELF machine %u), "
		    "this pmhost runs on %s (%u); rebuild it for this machine",
		    path, machine_name(machine), machine,
		    machine_name(own_machine), own_machine);
		return -1;
	}
	if (type != ET_DYN) {
		snprintf(err, errlen, "%s: not a shared object (ELF type %u); "
		    "build it with -shared -fPIC", path, type);
		return -1;
	}
	return 0;
}

static int
plugin_load(const char *path, struct plugin *p, char *err, size_t errlen)
{
	const struct pm_plugin_magic *m;
	const char *e;

	memset(p, 0, sizeof(*p));
	if (check_elf(path, err, errlen) < 0)
		return -1;
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

int
plugin_open(const struct task_config *t, struct plugin *p, char *err,
    size_t errlen)
{
	char path[PIN_PATH_MAX];
	const char *load = pin_path(t, path, sizeof(path));
	size_t n = strlen(load);

	if (plugin_load(load, p, err, errlen) == 0)
		return 0;
	/* Its reasons name the file the person configured, not our copy. */
	if (load != t->plugin) {
		char why[PLUGIN_ERR_MAX];
		const char *at, *from = err;
		size_t k = 0;

		while ((at = strstr(from, load)) != NULL && k < sizeof(why)) {
			k += (size_t)snprintf(why + k, sizeof(why) - k, "%.*s%s",
			    (int)(at - from), from, t->plugin);
			from = at + n;
		}
		if (k < sizeof(why))
			snprintf(why + k, sizeof(why) - k, "%s", from);
		copy_str(err, why, errlen);
	}
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
	api_init(&ctx, ROLE_PROBE, -1, title, t);
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

/* Writes one report line (newlines in the text become blanks). */
static void
report_line(int fd, const char *text)
{
	char line[PLUGIN_ERR_MAX + 1];
	size_t n = copy_str(line, text, sizeof(line) - 1);

	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	(void)write_all(fd, line, n);
}

/*
 * The probe child: take on the tasks' privileges, load the plugin once,
 * run work_check() for each task, report a line per task ("ok" or the
 * reason), exit.  If the load fails, the one line "!" and the reason
 * stands for every task.  Never returns.
 */
static _Noreturn void
probe_child(const struct task_config *const *t, size_t n,
    const struct creds *creds, int fd)
{
	char err[PLUGIN_ERR_MAX] = "";
	struct plugin p;
	sigset_t all;
	int rc = 0;

	/* Die with the caller; hold none of its descriptors (a pid file!). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	close_fds_except(&fd, 1);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	pin_hold(t[0]);
	if (privs_enter(t[0], creds, err, sizeof(err)) < 0 ||
	    plugin_open(t[0], &p, err, sizeof(err)) < 0) {
		char line[PLUGIN_ERR_MAX + 2];

		snprintf(line, sizeof(line), "!%s", err);
		report_line(fd, line);
		_exit(1);
	}
	pin_drop();
	for (size_t i = 0; i < n; i++) {
		err[0] = '\0';
		if (run_check(t[i], &p, err, sizeof(err)) < 0)
			rc = 1;
		report_line(fd, err[0] != '\0' ? err : "ok");
	}
	_exit(rc);
}

/* Forks a probe child for n tasks; its pid (report on *fd), or -1. */
static pid_t
probe_fork(const struct task_config *const *t, size_t n,
    const struct creds *creds, int *fd, char *err, size_t errlen)
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
		probe_child(t, n, creds, pfd[1]);
	}
	close(pfd[1]);
	*fd = pfd[0];
	return pid;
}

pid_t
plugin_probe_start(const struct task_config *t, const struct creds *creds,
    int *fd, char *err, size_t errlen)
{
	return probe_fork(&t, 1, creds, fd, err, errlen);
}

/* The probe's verdict from its exit when it said nothing: into err. */
static void
probe_silent(int wstatus, char *err, size_t errlen)
{
	if (WIFSIGNALED(wstatus))
		snprintf(err, errlen, "plugin crashed while loading (%s%s)",
		    sigabbrev_np(WTERMSIG(wstatus)) ? "SIG" : "signal ",
		    sigabbrev_np(WTERMSIG(wstatus)) ?
		    sigabbrev_np(WTERMSIG(wstatus)) : "?");
	else
		snprintf(err, errlen, "plugin load check exited with status "
		    "%d and no report", WIFEXITED(wstatus) ?
		    WEXITSTATUS(wstatus) : -1);
}

int
plugin_probe_result(int fd, int wstatus, char *err, size_t errlen)
{
	char msg[PLUGIN_ERR_MAX + 2];
	ssize_t n;

	/* The child has exited: take what it wrote, wait for nothing more. */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	n = read_full(fd, msg, sizeof(msg) - 1);
	close(fd);
	msg[n > 0 ? n : 0] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	if (strcmp(msg, "ok") == 0 && WIFEXITED(wstatus) &&
	    WEXITSTATUS(wstatus) == 0)
		return 0;
	if (msg[0] == '\0' || strcmp(msg, "ok") == 0)
		probe_silent(wstatus, err, errlen);
	else
		copy_str(err, msg[0] == '!' ? msg + 1 : msg, errlen);
	return -1;
}

/*
 * Reads the probe's whole report until EOF or the deadline; 0, or -1 if
 * the deadline passed (the probe is then killed).
 */
static int
read_report(pid_t pid, int fd, int64_t deadline, struct buf *out)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char chunk[8192];

	for (;;) {
		int64_t left = deadline - mono_ns();
		ssize_t got;
		int r;

		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			return -1;
		}
		r = poll(&pfd, 1, (int)((left + NS_PER_MS - 1) / NS_PER_MS));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		got = read(fd, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 0;
		buf_add(out, chunk, (size_t)got);
	}
}

int
plugin_probe_tasks(const struct task_config *const *t, size_t n,
    const struct creds *creds,
    void (*fail)(void *arg, size_t i, const char *why), void *arg)
{
	/* Every task's check has its share of time. */
	int64_t budget = PLUGIN_PROBE_TIMEOUT_S * NS_PER_SEC +
	    (int64_t)(n - 1) * 100 * NS_PER_MS;
	int64_t deadline = mono_ns() + budget;
	char err[PLUGIN_ERR_MAX], *line, *save = NULL;
	struct buf report = { 0 };
	int fd, wstatus = 0, late, bad = 0;
	size_t i = 0;
	pid_t pid;

	if ((pid = probe_fork(t, n, creds, &fd, err, sizeof(err))) < 0) {
		for (i = 0; i < n; i++)
			fail(arg, i, err);
		return (int)n;
	}
	late = read_report(pid, fd, deadline, &report) < 0;
	close(fd);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	if (late)
		snprintf(err, sizeof(err), "%s: plugin load check did not "
		    "finish within %lld s", t[0]->plugin,
		    (long long)(budget / NS_PER_SEC));
	else
		probe_silent(wstatus, err, sizeof(err));
	for (line = report.p != NULL ? strtok_r(report.p, "\n", &save) : NULL;
	    line != NULL && i < n; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '!') {
			copy_str(err, line + 1, sizeof(err));
			break;
		}
		if (strcmp(line, "ok") != 0) {
			fail(arg, i, line);
			bad++;
		}
		i++;
	}
	/* Tasks the probe did not report on share its fate. */
	for (; i < n; i++, bad++)
		fail(arg, i, err);
	buf_free(&report);
	return bad;
}

/* plugin_probe()'s one failure, into its err. */
struct one_failure {
	char	*err;
	size_t	 errlen;
};

static void
note_failure(void *arg, size_t i, const char *why)
{
	struct one_failure *f = arg;

	(void)i;
	copy_str(f->err, why, f->errlen);
}

int
plugin_probe(const struct task_config *t, const struct creds *creds,
    char *err, size_t errlen)
{
	struct one_failure f = { err, errlen };

	return plugin_probe_tasks(&t, 1, creds, note_failure, &f) > 0 ? -1 :
	    0;
}
