/*
 * api.h - the host side of pmhost.h's function table: what a plugin's
 * pm_worker pointer leads to in each process that runs plugin code (a
 * worker, the preload process, the load check).  Only these processes
 * include it; the master never runs plugin code.
 */
#ifndef PMHOST_API_H
#define PMHOST_API_H

#include <stdint.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "proto.h"
#include "scoreboard.h"

enum api_role {
	ROLE_WORKER,		/* a worker: slot >= 0, has a cell */
	ROLE_PRELOAD,		/* the preload process: slot -1 */
	ROLE_PROBE		/* run/check/restart's load check: slot -1 */
};

/* What pm_worker points into; pub is first, so a pm_worker * is one. */
struct api_ctx {
	struct pm_worker	 pub;
	enum api_role		 role;
	int			 slot;
	const char		*title;
	const char		*params;
	const char		*config_dir;
	const char		*config_json;
	struct sb_cell		*cell;		/* workers only */
	struct buf		*capture;	/* probe: warning+ lines */
};

struct task_config;

/* Fills ctx for a role; strings are borrowed and must outlive it. */
void	api_init(struct api_ctx *ctx, enum api_role role, int slot,
	    const char *title, const struct task_config *t);

/* Has anyone asked this process to end (its cell's command, SIGTERM)? */
int	api_stopping(const struct api_ctx *ctx);

/* The flag a stop signal sets, for a loop that checks it inline. */
const volatile sig_atomic_t *api_stop_flag(void);

/*
 * Notes a stop request (from a signal handler: async-signal-safe), which
 * pm_worker_stopping() then reports and the stop descriptor shows.
 */
void	api_note_stop(void);

#endif
