/*
 * util.h - clocks and I/O loops every host module needs; nothing here
 * allocates or keeps state.
 */
#ifndef PMHOST_UTIL_H
#define PMHOST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NS_PER_SEC	1000000000LL
#define NS_PER_MS	1000000LL
#define NS_PER_US	1000LL

/* Exit statuses of every pmhost command. */
#define EXIT_OK		0	/* success */
#define EXIT_RUNTIME	1	/* not running, timeout, plugin failed */
#define EXIT_USAGE	2	/* usage or config error */

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
int64_t		mono_ns(void);
int64_t		real_ns(void);

/* write() until done or a real error; 0 or -1. */
int		write_all(int fd, const void *buf, size_t len);

/* read() until len bytes, EOF or an error; bytes read, or -1 if none. */
ssize_t		read_full(int fd, void *buf, size_t len);

/* Parses a decimal without sign or suffix into [min, max]; 0 or -1. */
int		parse_long(const char *s, long min, long max, long *out);

/* Closes every descriptor from 3 up but the n in keep. */
void		close_fds_except(const int *keep, size_t n);

/* Copies with truncation, always terminated; strlen(src). */
size_t		copy_str(char *dst, const char *src, size_t size);

#endif
