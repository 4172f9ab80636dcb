/*
 * module.h - the "pmhost" PHP extension: the pmhost\ functions and
 * constants a task script calls, reporting on the worker this process is.
 */
#ifndef PHP_MODULE_H
#define PHP_MODULE_H

#include <stdbool.h>

#include <php.h>

#include <pmhost.h>

extern zend_module_entry pmhost_module_entry;

/* The host handle the functions answer for (the worker, or the preload). */
void		 module_bind(pm_worker *w);
pm_worker	*module_worker(void);

/* The task's params as a PHP array; module_set_params() takes p over. */
void		 module_set_params(zval *p);
zval		*module_params(void);

/*
 * Did the script ask to end this worker after the current call (setStop(),
 * pmhost\done())?  Clears the request.  Read after every work call, hence
 * inline.
 */
extern bool	 module_done_asked;

static inline bool
module_take_done(void)
{
	bool d = module_done_asked;

	module_done_asked = false;
	return d;
}

/* Manage::start() registrations: [config, init, work] arrays, in order. */
HashTable	*module_registrations(void);

/* Logs a PHP error line (from the SAPI) at the level syslog_type maps to. */
void		 module_log_php(const char *msg, int syslog_type);

#endif
