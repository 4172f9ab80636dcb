/*
 * call.h - calling a script's callables from C, and how each call ended:
 * returned, threw (the exception is reported and cleared), exit()ed, or
 * hit a fatal error.
 */
#ifndef PHP_CALL_H
#define PHP_CALL_H

#include <stdbool.h>
#include <stddef.h>

#include <php.h>

#include <pmhost.h>

enum call_end {
	CALL_RETURNED,
	CALL_THREW,	/* an uncaught exception, logged: go on */
	CALL_EXITED,	/* exit() or die(): the request is over */
	CALL_FATAL	/* a fatal error: the request is over */
};

/* A callable resolved once; "direct" ones are entered without
 * zend_call_function(), with the frame flags and $this or scope given. */
struct callable {
	zval			 fn;
	zend_fcall_info_cache	 fcc;
	bool			 direct;
	uint32_t		 frame_info;
	void			*this_or_scope;
	const char		*what;		/* "work", "init", ... */
};

/*
 * Resolves fn (a callable zval) into c for calls with argc arguments.
 * 0, or -1 with why in err.  c keeps a reference to fn.
 */
int		callable_set(struct callable *c, zval *fn, uint32_t argc,
		    const char *what, char *err, size_t errlen);
void		callable_clear(struct callable *c);

/*
 * Calls c with argv; ret receives its return value (undefined unless
 * CALL_RETURNED).  An exception is logged at error level with its class,
 * message and file:line, then cleared.
 */
enum call_end	call_invoke(pm_worker *w, struct callable *c, zval *ret,
		    uint32_t argc, zval *argv);

/* "RuntimeException: boom in /srv/task.php:12" of a Throwable. */
void		call_describe(zend_object *ex, char *buf, size_t len);

/* The exit status exit() asked for (PHP's EG(exit_status)). */
int		call_exit_status(void);

/*
 * Where in c's own code the last exit() came from ("FILE:LINE": the exit,
 * or the call that led to it), if it came through c's code; else 0.
 */
int		call_exit_place(const struct callable *c, char *buf,
		    size_t len);

/* Has this request met a fatal error?  Its "MESSAGE in FILE:LINE". */
int		call_fatal_error(char *buf, size_t len);

#endif
