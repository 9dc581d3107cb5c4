/*
 * addr - RFC 5321 mailbox and path parsing.
 *
 * A struct mailaddr holds the local part exactly as written (a dot-string or
 * a quoted-string, quotes included) and the domain (a name, lower-cased, or an
 * address literal "[...]"). The null path "<>" is an empty local and domain.
 * Limits are RFC 5321 section 4.5.3.1: local part 64 octets, domain 255,
 * path 256 including the brackets. Bytes >= 0x80 are accepted only with
 * ADDR_F_UTF8 (SMTPUTF8) and must then be valid UTF-8.
 */
#ifndef SLUICE_ADDR_H
#define SLUICE_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX	64
#define ADDR_DOMAIN_MAX	255
#define ADDR_PATH_MAX	256	/* "<local@domain>" */
#define ADDR_STR_MAX	(ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX)

struct mailaddr {
	char	local[ADDR_LOCAL_MAX + 1];
	char	domain[ADDR_DOMAIN_MAX + 1];
};

/* flags */
#define ADDR_F_NULL_OK		0x01	/* "<>" allowed (MAIL FROM) */
#define ADDR_F_UTF8		0x02	/* SMTPUTF8 in effect */
#define ADDR_F_POSTMASTER	0x04	/* bare "<Postmaster>" allowed (RCPT) */
#define ADDR_F_NO_BRACKETS	0x08	/* addr_parse_path: brackets optional */

enum addr_err {
	ADDR_OK = 0,
	ADDR_ESYNTAX,		/* not a valid path or mailbox */
	ADDR_ETOOLONG,		/* a length limit exceeded */
	ADDR_EROUTE,		/* a source route "<@a,@b:x@y>" */
	ADDR_ENULL,		/* "<>" where it is not allowed */
	ADDR_EUTF8,		/* 8-bit without SMTPUTF8, or invalid UTF-8 */
};

/*
 * Parse a path "<mailbox>" at the start of s[0..len). On success fills *a
 * and sets *used to the number of bytes up to and including '>'.
 */
enum addr_err	addr_parse_path(const char *s, size_t len, int flags,
		    struct mailaddr *a, size_t *used);
/* Parse a bare mailbox "local@domain" occupying all of s[0..len). */
enum addr_err	addr_parse(const char *s, size_t len, int flags,
		    struct mailaddr *a);
/* "local@domain" (or "" for the null path) into dst; returns the length. */
size_t		addr_format(const struct mailaddr *a, char *dst, size_t dstlen);
int		addr_is_null(const struct mailaddr *a);
const char	*addr_strerror(enum addr_err);
/* Whether s[0..len) is well-formed UTF-8 (RFC 3629). */
int		addr_utf8_valid(const char *s, size_t len);

#endif
