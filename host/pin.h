/*
 * pin.h - the plugin code a task runs, pinned.  run and restart copy the
 * configured plugin file into the run dir (RUNDIR/plugins/NAME-HASH.so,
 * read-only, HASH the start of its SHA-256), check the copy, and every
 * process of the task loads the copy: a plugin file renamed over,
 * rewritten, truncated or deleted changes nothing until the next restart.
 */
#ifndef PMHOST_PIN_H
#define PMHOST_PIN_H

#include <stddef.h>

#include "config.h"

#define PIN_PATH_MAX	4096

#define PIN_BAD_PLUGIN	(-2)	/* the configured file cannot be read */

/*
 * Copies t->plugin into run_dir's plugins directory: t->pinned and
 * t->plugin_sha256 are set.  0, or with the reason in err PIN_BAD_PLUGIN
 * (the plugin's fault: a config error) or -1 (the copy's: the machine's).
 */
int	pin_plugin(struct task_config *t, const char *run_dir, char *err,
	    size_t errlen);

/* Forgets t's pinned copy and, if remove, deletes it. */
void	pin_release(struct task_config *t, int remove);

/*
 * In a process about to load t's plugin, while it still has the master's
 * identity: opens the pinned copy, so that after taking on a task's user
 * (who cannot enter the run dir) it loads it through the descriptor.
 */
void	pin_hold(const struct task_config *t);

/* Closes what pin_hold() opened: the plugin is loaded. */
void	pin_drop(void);

/*
 * The path to load t's plugin from in this process: its copy by name if
 * this process may open it, else through the descriptor pin_hold() kept
 * (/proc/self/fd/N), else, when not pinned, the configured file.
 */
const char *pin_path(const struct task_config *t, char *buf, size_t size);

/* Deletes the copies of task name in run_dir but keep (or all if NULL). */
void	pin_sweep(const char *run_dir, const char *name, const char *keep);

#endif
