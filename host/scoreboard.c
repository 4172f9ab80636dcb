/*
 * scoreboard.c - mapping the shared worker table and the futex doorbell
 * through which the master wakes a sleeping worker.
 */
#include <limits.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "scoreboard.h"
#include "util.h"

const int64_t sb_bucket_le_ns[SB_BUCKETS - 1] = {
	1000, 3000, 10000, 30000, 100000, 300000,
	1000000, 3000000, 10000000, 30000000, 100000000, 300000000,
	1000000000, 3000000000, 10000000000, 30000000000, 60000000000,
};

struct scoreboard *
scoreboard_create(void)
{
	void *p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	return p;
}

void
scoreboard_destroy(struct scoreboard *sb)
{
	if (sb != NULL)
		munmap(sb, sizeof(*sb));
}

void
scoreboard_ring(struct sb_cell *c)
{
	atomic_fetch_add(&c->doorbell, 1);
	/* Not FUTEX_PRIVATE: the sleeper is another process. */
	syscall(SYS_futex, &c->doorbell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void
scoreboard_wait(struct sb_cell *c, uint32_t seen, int64_t deadline)
{
	struct timespec ts, *tp = NULL;

	if (deadline > 0) {
		ts.tv_sec = deadline / NS_PER_SEC;
		ts.tv_nsec = deadline % NS_PER_SEC;
		tp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
	syscall(SYS_futex, &c->doorbell, FUTEX_WAIT_BITSET, seen, tp, NULL,
	    FUTEX_BITSET_MATCH_ANY);
}
