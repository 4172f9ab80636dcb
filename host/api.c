/*
 * api.c - the functions behind pmhost.h's table, for every process that
 * runs plugin code.  A stop request reaches a plugin three ways: the flag
 * pm_worker_stopping() reads, the cell's command the master writes, and a
 * descriptor (an eventfd) for plugins that block in poll().  The flag and
 * the descriptor are per process by nature (a signal handler sets them),
 * hence file-level.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "log.h"

static volatile sig_atomic_t	 stop_noted;
static int			 stop_efd = -1;

void
api_note_stop(void)
{
	uint64_t one = 1;
	int saved = errno;

	stop_noted = 1;
	if (stop_efd >= 0)
		(void)write(stop_efd, &one, sizeof(one));
	errno = saved;
}

const volatile sig_atomic_t *
api_stop_flag(void)
{
	return &stop_noted;
}

int
api_stopping(const struct api_ctx *ctx)
{
	return stop_noted || (ctx->cell != NULL &&
	    atomic_load_explicit(&ctx->cell->cmd, memory_order_relaxed) >=
	    CELL_EXIT);
}

static const struct api_ctx *
ctx_of(const pm_worker *w)
{
	return (const struct api_ctx *)w;
}

static int
api_slot(const pm_worker *w)
{
	return ctx_of(w)->slot;
}

static const char *
api_title(const pm_worker *w)
{
	return ctx_of(w)->title;
}

static uint64_t
api_calls(const pm_worker *w)
{
	const struct sb_cell *c = ctx_of(w)->cell;

	return c == NULL ? 0 : atomic_load_explicit(&c->w.calls,
	    memory_order_relaxed);
}

static const char *
api_params(const pm_worker *w)
{
	return ctx_of(w)->params;
}

static int
api_stopping_fn(const pm_worker *w)
{
	return api_stopping(ctx_of(w));
}

/* pm_log(): one line in the task's log under the process's title. */
static void
api_vlog(pm_worker *w, int level, const char *fmt, va_list ap)
{
	struct api_ctx *ctx = (struct api_ctx *)w;

	if (level < PM_LOG_DEBUG)
		level = PM_LOG_DEBUG;
	if (level > PM_LOG_ERROR)
		level = PM_LOG_ERROR;
	if (ctx->capture != NULL) {
		char line[LOG_LINE_MAX];

		/* A load check's reasons go back to the command that asked. */
		if (level < PM_LOG_WARNING)
			return;
		vsnprintf(line, sizeof(line), fmt, ap);
		buf_printf(ctx->capture, "%s%s", ctx->capture->len ? "; " : "",
		    line);
		return;
	}
	vlogmsg(level, fmt, ap);
}

/* Calls api_vlog with a va_list of its own (pm_log_str). */
static void
log_fmt(pm_worker *w, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	api_vlog(w, level, fmt, ap);
	va_end(ap);
}

static void
api_log_str(pm_worker *w, int level, const char *msg)
{
	log_fmt(w, level, "%s", msg != NULL ? msg : "(null)");
}

/*
 * The stop descriptor, made on first use.  From then on the master also
 * sends SIGTERM with a stop request (the cell says so), since a plugin
 * blocked in poll() watches no futex; a request already made shows at once.
 */
static int
api_stop_fd(pm_worker *w)
{
	struct api_ctx *ctx = (struct api_ctx *)w;
	uint64_t one = 1;

	if (stop_efd >= 0)
		return stop_efd;
	if ((stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return -1;
	if (ctx->cell != NULL)
		atomic_store(&ctx->cell->w.wants_term, 1);
	if (api_stopping(ctx))
		(void)write(stop_efd, &one, sizeof(one));
	return stop_efd;
}

static const char *
api_config_dir(const pm_worker *w)
{
	return ctx_of(w)->config_dir;
}

static int
api_stop_reason(const pm_worker *w)
{
	const struct api_ctx *ctx = ctx_of(w);
	uint32_t cmd = ctx->cell != NULL ? atomic_load(&ctx->cell->cmd) :
	    CELL_RUN;

	if (cmd == CELL_EXPIRE)
		return PM_STOP_LIFETIME;
	if (cmd == CELL_TIMEOUT)
		return PM_STOP_TIMEOUT;
	return api_stopping(ctx) ? PM_STOP_STOP : PM_STOP_NONE;
}

static const char *
api_config_json(const pm_worker *w)
{
	return ctx_of(w)->config_json;
}

static const struct pm_host_api host_api = {
	.size = sizeof(struct pm_host_api),
	.slot = api_slot,
	.title = api_title,
	.calls = api_calls,
	.params = api_params,
	.stopping = api_stopping_fn,
	.vlog = api_vlog,
	.log_str = api_log_str,
	.stop_fd = api_stop_fd,
	.config_dir = api_config_dir,
	.stop_reason = api_stop_reason,
	.config_json = api_config_json,
};

void
api_init(struct api_ctx *ctx, enum api_role role, int slot,
    const char *title, const struct task_config *t)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->pub.api = &host_api;
	ctx->role = role;
	ctx->slot = slot;
	ctx->title = title;
	ctx->params = t->params;
	ctx->config_dir = t->config_dir;
	ctx->config_json = t->json;
}
