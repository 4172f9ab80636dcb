/*
 * hello.c - the example task: greets from every worker, counts its calls,
 * and shows the whole plugin ABI in a few lines.
 *
 *     cc -shared -fPIC $(pkg-config --cflags pmhost) -o hello.so hello.c
 */
#include <stdlib.h>
#include <string.h>

#include <pmhost.h>

PMHOST_PLUGIN;

struct hello {
	char	greeting[64];
};

int
work_init(pm_worker *w, void **state)
{
	struct hello *h = calloc(1, sizeof(*h));
	const char *p;

	if (h == NULL)
		return -1;
	/* params is compact JSON; a real plugin would parse it properly. */
	strcpy(h->greeting, "hello");
	if ((p = strstr(pm_worker_params(w), "\"greeting\":\"")) != NULL) {
		p += strlen("\"greeting\":\"");
		size_t n = strcspn(p, "\"");
		if (n >= sizeof(h->greeting))
			n = sizeof(h->greeting) - 1;
		memcpy(h->greeting, p, n);
		h->greeting[n] = '\0';
	}
	*state = h;
	return 0;
}

int
work(pm_worker *w, void *state)
{
	struct hello *h = state;

	pm_log(w, PM_LOG_INFO, "%s from slot %d, call %llu", h->greeting,
	    pm_worker_slot(w), (unsigned long long)pm_worker_calls(w) + 1);
	return PM_CONTINUE;
}

void
work_fini(pm_worker *w, void *state)
{
	pm_log(w, PM_LOG_DEBUG, "slot %d done after %llu calls",
	    pm_worker_slot(w), (unsigned long long)pm_worker_calls(w));
	free(state);
}
