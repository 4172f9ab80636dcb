/*
 * evtag.h - what a master's epoll event is about: a tag in the high half
 * of its data, an index (a client, a cell) in the low half.
 */
#ifndef PMHOST_EVTAG_H
#define PMHOST_EVTAG_H

#include <stdint.h>

enum ev_tag {
	EV_SIGNAL,		/* the signalfd */
	EV_LISTEN,		/* NAME.sock */
	EV_CLIENT,		/* a control connection */
	EV_READY,		/* the eventfd workers ring after work_init */
	EV_OUT,			/* a worker's stdout (index: its cell) */
	EV_ERR,			/* a worker's stderr and log records */
	EV_LOG,			/* the log has room again */
	EV_PRELOAD,		/* a preload process's socket (index: which) */
	EV_PRELOAD_OUT		/* its stdout (2 * which) or stderr (+ 1) */
};

#define EV_DATA(tag, i)	(((uint64_t)(tag) << 32) | (uint32_t)(i))
#define EV_TAG(data)	((enum ev_tag)((data) >> 32))
#define EV_INDEX(data)	((int)(uint32_t)(data))

#endif
