/*
 * notify.h - systemd's notify protocol (sd_notify(3)), spoken directly
 * over the datagram socket named by NOTIFY_SOCKET, without libsystemd.
 * Everything here is a no-op when the variable is not set.
 */
#ifndef PMHOST_NOTIFY_H
#define PMHOST_NOTIFY_H

#include <stdint.h>

/*
 * Reads NOTIFY_SOCKET and WATCHDOG_USEC (honouring WATCHDOG_PID) and takes
 * them out of the environment, so that workers do not inherit them.
 */
void	notify_init(void);

/* Sends one message ("READY=1\nSTATUS=..."); silently drops it on error. */
void	notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog period in ns (half of WATCHDOG_USEC); 0 if none. */
int64_t	notify_watchdog_ns(void);

#endif
