/* noabi.c - a plugin that forgot PMHOST_PLUGIN. */
#include <pmhost.h>

int
work(pm_worker *w, void *state)
{
	(void)w;
	(void)state;
	return PM_CONTINUE;
}
