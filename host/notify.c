/*
 * notify.c - the notify protocol: one datagram per message to the socket
 * in NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).  The
 * socket is per process by nature, hence the file-level state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "util.h"

static struct {
	int			 fd;	/* -1: not under a notify manager */
	struct sockaddr_un	 addr;
	socklen_t		 addrlen;
	int64_t			 watchdog_ns;
} nt = { .fd = -1 };

void
notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *usec = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	size_t len;
	long v;

	/* Whatever a parent set up is not ours (a group's masters). */
	if (nt.fd >= 0)
		close(nt.fd);
	nt.fd = -1;
	nt.watchdog_ns = 0;
	if (usec != NULL && parse_long(usec, 1, 0x7fffffffffffL, &v) == 0 &&
	    (wpid == NULL || (parse_long(wpid, 1, 0x7fffffff, &v) == 0 &&
	    (pid_t)v == getpid())))
		nt.watchdog_ns = (int64_t)strtoll(usec, NULL, 10) *
		    NS_PER_US / 2;
	if (path != NULL && (path[0] == '/' || path[0] == '@') &&
	    (len = strlen(path)) < sizeof(nt.addr.sun_path)) {
		memset(&nt.addr, 0, sizeof(nt.addr));
		nt.addr.sun_family = AF_UNIX;
		memcpy(nt.addr.sun_path, path, len);
		/* "@name": the abstract namespace starts with a NUL byte. */
		if (path[0] == '@')
			nt.addr.sun_path[0] = '\0';
		nt.addrlen = (socklen_t)(offsetof(struct sockaddr_un,
		    sun_path) + len + (path[0] == '/' ? 1 : 0));
		nt.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	}
	if (nt.fd < 0)
		nt.watchdog_ns = 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

void
notify_send(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (nt.fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)sendto(nt.fd, msg, (size_t)n < sizeof(msg) ? (size_t)n :
		    sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT,
		    (struct sockaddr *)&nt.addr, nt.addrlen);
}

int64_t
notify_watchdog_ns(void)
{
	return nt.watchdog_ns;
}
