/*
 * srs - the Sender Rewriting Scheme: the envelope sender of a forwarded
 * message becomes an address at our own domain, so that SPF at the final
 * destination checks our domain, and a bounce to it finds its way back.
 *
 *   SRS0=HHHHHH=TT=origdomain=origlocal@srs-domain
 *
 * HHHHHH: the first 30 bits of HMAC-SHA256(secret, "TT=origdomain=origlocal"
 * lower-cased), in base32 (RFC 4648 alphabet, compared without regard to
 * case: a mail system may change the case of a local part). TT: days since
 * the epoch modulo 1024, two base32 characters.
 *
 * A sender that already is an SRS address of another forwarder is not
 * wrapped again (which would grow it each hop) but turned into SRS1, as in
 * the original scheme: SRS0<sep>opaque@first becomes
 * SRS1=HHHHHH=first=<sep>opaque@srs-domain, and an SRS1 address keeps its
 * first forwarder and opaque part, with our hash instead. SRS1 carries no
 * timestamp (the first forwarder checks its own); its reversal gives back
 * the SRS0 address at the first forwarder.
 *
 * The local part of a result is at most 64 octets (RFC 5321 4.5.3.1.1):
 * SRS_TOOLONG otherwise, and the caller keeps the original sender.
 * Pure (no I/O); OpenSSL for the HMAC.
 */
#ifndef SLUICE_SRS_H
#define SLUICE_SRS_H

#include <stddef.h>
#include <time.h>

#define SRS_HASH_LEN		6	/* base32 characters: 30 bits */
#define SRS_SECRET_MIN		16	/* characters of a secret */
#define SRS_SECRETS_MAX		8	/* srs-secret words: rotation */
#define SRS_SECRET_MAX		255
#define SRS_MAX_AGE_DEFAULT	21	/* days */

enum srs_res {
	SRS_OK = 0,
	SRS_NOTSRS,		/* reverse: not an SRS0/SRS1 local part */
	SRS_MALFORMED,		/* SRS-shaped, but fields missing or bad */
	SRS_BADHASH,		/* no configured secret signed it */
	SRS_EXPIRED,		/* older than max_age days */
	SRS_TOOLONG,		/* the result would not fit */
	SRS_ERROR,		/* the HMAC failed (OpenSSL): temporary */
};

/*
 * Rewrite sender ("local@domain") into out as an address at srs_domain,
 * signed with secret, stamped with the day of now. The null sender and an
 * address without '@' are SRS_MALFORMED (the caller keeps them as they are).
 */
enum srs_res	srs_forward(const char *secret, time_t now,
		    const char *sender, const char *srs_domain, char *out,
		    size_t outlen);
/*
 * The address an SRS address ("local@domain"; the domain is the caller's
 * business) stands for, into out, if one of the secrets signed it and, for
 * SRS0, its stamp is at most max_age days old.
 */
enum srs_res	srs_reverse(const char *const *secrets, size_t nsecrets,
		    unsigned max_age, time_t now, const char *addr, char *out,
		    size_t outlen);
/* does the local part (of "local@domain" or bare) look like SRS0/SRS1? */
int		srs_is_srs(const char *local);
/* "ok", "not an SRS address", "bad hash", ... for logs and replies */
const char	*srs_strres(enum srs_res);

#endif
