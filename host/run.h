/*
 * run.h - starting masters: in the foreground, detached, or as a group of
 * one per task; and checking a config without starting anything.
 */
#ifndef PMHOST_RUN_H
#define PMHOST_RUN_H

#include "config.h"

/* Checks and starts one task detached, as "run -d" does; an exit status. */
int	start_detached(const struct task_config *t);

#endif
