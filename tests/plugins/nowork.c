/* nowork.c - a plugin with the mark and work_init but no work(). */
#include <pmhost.h>

PMHOST_PLUGIN;

int
work_init(pm_worker *w, void **state)
{
	(void)w;
	*state = 0;
	return 0;
}
