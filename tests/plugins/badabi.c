/* badabi.c - a plugin whose mark claims a future ABI version. */
#include <pmhost.h>

extern const struct pm_plugin_magic pmhost_plugin_magic;
PMHOST_EXPORT const struct pm_plugin_magic pmhost_plugin_magic = {
	PMHOST_MAGIC, PMHOST_ABI_VERSION + 1,
	(uint32_t)sizeof(struct pm_plugin_magic), (uint32_t)sizeof(void *),
	"99.0.0"
};

int
work(pm_worker *w, void *state)
{
	(void)w;
	(void)state;
	return PM_CONTINUE;
}
