/* ctorcrash.c - a plugin that crashes while being loaded. */
#include <signal.h>

#include <pmhost.h>

PMHOST_PLUGIN;

__attribute__((constructor)) static void
crash_on_load(void)
{
	raise(SIGSEGV);
}

int
work(pm_worker *w, void *state)
{
	(void)w;
	(void)state;
	return PM_CONTINUE;
}
