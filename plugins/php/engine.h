/*
 * engine.h - the PHP engine of this process: started once (in the preload
 * process, a worker, or the load check), carried into forked workers, and
 * ended with the process.
 */
#ifndef PHP_ENGINE_H
#define PHP_ENGINE_H

#include <stddef.h>

#include <pmhost.h>

enum engine_mode {
	ENGINE_LINT,	/* compile only: no extensions, no compat classes */
	ENGINE_RUN	/* everything a task script may use */
};

/*
 * Starts the engine and its one request for script (whose path $argv[0]
 * and $_SERVER name), with ini_extra ("key=value" lines, may be NULL)
 * after php.ini.  0, or -1 with the reason in err.
 */
int	engine_start(enum engine_mode mode, const char *script,
	    const char *ini_extra, char *err, size_t errlen);

/* What a process forked from a running engine must redo for itself. */
void	engine_after_fork(void);

/*
 * Ends the request as php-cli does at exit: shutdown functions,
 * destructors, output buffers, extensions' request shutdown.
 */
void	engine_end_request(void);

/* Ends the request and the engine: engine_start() may then run again. */
void	engine_stop(void);

#endif
