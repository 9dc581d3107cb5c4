/*
 * rewrite - header changes a route asks for on the way out.
 *
 * rewrite_from(): the message's header section (LF line ends, as in the
 * spool) with the address of its From: field replaced, the display name
 * kept ("Ann Example <ann@home.test>" -> "Ann Example <me@isp.test>"); a
 * From: without angle brackets becomes "<addr>". Only the first From: is
 * changed (a message should have one); a message without one gets none.
 * Pure: the relay reads the header section and streams the body after it.
 */
#ifndef SLUICE_REWRITE_H
#define SLUICE_REWRITE_H

#include <stddef.h>

#include "buf.h"

/* length of the header section including its empty line, or 0 if the
   text holds no complete header section */
size_t	header_section_len(const char *text, size_t len);
/* where the field that starts at p ends (after its folded lines) */
size_t	header_field_end(const char *hdr, size_t len, size_t p);
/* append the rewritten header section to out; -1 on no memory */
int	rewrite_from(const char *hdr, size_t len, const char *addr,
	    struct buf *out);

/*
 * The addresses of every field called `name` ("From", "Sender"...) in a
 * header section: each mailbox's angle-addr without its source route, or
 * its bare addr-spec without comments and folding white space; group
 * names and empty members are skipped. At most max addresses of up to
 * HEADER_ADDR_MAX - 1 octets go into out; returns how many, or -1 when a
 * field cannot be read (unbalanced quote, comment or bracket, an address
 * too long, more than max of them).
 */
#define HEADER_ADDR_MAX	513
int	header_addresses(const char *hdr, size_t len, const char *name,
	    char (*out)[HEADER_ADDR_MAX], size_t max);

#endif
