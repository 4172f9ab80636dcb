/*
 * script.h - the task script: its syntax check, and what running its top
 * level yields, in either of the two forms a script may take.
 */
#ifndef PHP_SCRIPT_H
#define PHP_SCRIPT_H

#include <stddef.h>

#include <php.h>

#include <pmhost.h>

enum script_form {
	FORM_RETURN,	/* return ['init' => f, 'work' => f, 'fini' => f] */
	FORM_MANAGE	/* (new Manage($config))->...->start() */
};

/* init and fini are IS_UNDEF when absent; config is FORM_MANAGE's. */
struct script_code {
	enum script_form form;
	zval	init, work, fini;
	zval	config;
};

/* Compiles path without running it; -1 after logging why at error level. */
int	script_lint(pm_worker *w, const char *path);

/*
 * Runs path's top level and finds its code: the array it returned, or the
 * Manage it started (the one named like this task's baseTitle when it
 * starts several).  -1 after logging why at error level.
 */
int	script_load(pm_worker *w, const char *path,
	    struct script_code *code);
void	script_code_clear(struct script_code *code);

/*
 * Names, in one warning, the keys of a Manage's $config that differ from
 * the JSON config, as far as a plugin can see it (titlePrefix and
 * baseTitle, from the process title).
 */
void	script_compare_config(pm_worker *w, const char *path,
	    const struct script_code *code);

#endif
