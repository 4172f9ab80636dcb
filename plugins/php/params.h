/*
 * params.h - what the PHP plugin itself reads from the task's params: the
 * script to run and extra php.ini settings.  Every other key is the
 * script's own and reaches PHP untouched.
 */
#ifndef PHP_PARAMS_H
#define PHP_PARAMS_H

#include <limits.h>
#include <stddef.h>

#include <pmhost.h>

/* script: absolute (as given if the host names no config dir);
 * ini: "key=value" lines, or NULL. */
struct php_params {
	char	 script[PATH_MAX];
	char	*ini;
};

/*
 * Reads params (compact JSON) into p.  0, or -1 with the reason in err,
 * naming the key.  p->ini is malloc'd: params_free() releases it.
 */
int	params_read(const pm_worker *w, struct php_params *p, char *err,
	    size_t errlen);
void	params_free(struct php_params *p);

#endif
