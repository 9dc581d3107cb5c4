/*
 * authres - Authentication-Results header fields (RFC 8601).
 *
 * authres_is_ours() tells whether a field found in an incoming message
 * claims to come from our authserv-id, so that the caller can remove it
 * before adding its own (RFC 8601 5: a forged field naming us must not
 * reach the user). It reads only the start of the value: CFWS (comments
 * nested, quoted-pairs, folding), the authserv-id as a token or a quoted
 * string, an optional version number, then the ';' that must follow.
 * Anything else is garbage and not ours.
 *
 * authres_format() writes our own field from a list of method results.
 * Values that come from the message (header.from, smtp.mailfrom, ...) are
 * untrusted: they are written as a token or a dot-atom-like address when
 * they are made of letters, digits and -._+ (with at most one '@'), and
 * as a quoted string otherwise, with '\' and '"' escaped and control and
 * non-ASCII octets dropped, so no value can end the field, start a line
 * or add a property. In comments, TAB, CR and LF become spaces and
 * '(' ')' '\', other controls and non-ASCII octets are dropped. Lines
 * are folded (LF TAB) before each method and, when the next item would
 * pass 78 columns (a TAB counted as 8), before a property or
 * between the words of a comment (a word is cut every 64 octets); a value
 * is never split, but one over 256 octets is cut there and ends in "..."
 * (quoted), so that no line passes 998 octets (RFC 5322 2.1.1).
 */
#ifndef SLUICE_AUTHRES_H
#define SLUICE_AUTHRES_H

#include <stddef.h>

#include "buf.h"

#define AUTHRES_PROPS_MAX	4

/*
 * 1 if an Authentication-Results field value (after the colon, may be
 * folded) names authserv_id (case-insensitive, CFWS and comments skipped,
 * an optional version number after the id allowed, a trailing dot on
 * either name ignored); 0 otherwise (also on garbage).
 */
int	authres_is_ours(const char *value, size_t len,
	    const char *authserv_id);

struct authres_prop {
	const char	*name;		/* "ptype.property": "header.d" */
	const char	*value;		/* untrusted */
};

struct authres_entry {
	const char		*method;	/* "spf", "dkim", "dmarc" */
	const char		*result;	/* "pass", "fail", ... */
	const char		*comment;	/* NULL or untrusted text */
	struct authres_prop	 props[AUTHRES_PROPS_MAX];
	size_t			 nprops;
};

/*
 * Append one "Authentication-Results: id; ..." field ending in LF to out
 * ("id; none" when n is 0). 0, or -1 on a buffer error or when a method,
 * result or property name is not a keyword (letters, digits, '-', '_',
 * and '.' in property names: a bug of the caller, nothing is appended).
 */
int	authres_format(struct buf *out, const char *authserv_id,
	    const struct authres_entry *, size_t n);

#endif
