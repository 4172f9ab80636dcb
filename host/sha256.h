/*
 * sha256.h - SHA-256 of a byte stream, as the hex digest sha256sum
 * prints.
 */
#ifndef PMHOST_SHA256_H
#define PMHOST_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_HEX	65	/* 64 hex digits and a NUL */

struct sha256 {
	uint32_t	 h[8];
	uint64_t	 len;
	unsigned char	 buf[64];
	size_t		 used;
};

void	sha256_init(struct sha256 *s);
void	sha256_add(struct sha256 *s, const void *data, size_t n);

/* Finishes the digest into hex; s must be initialised again to reuse. */
void	sha256_hex(struct sha256 *s, char hex[SHA256_HEX]);

#endif
