/*
 * dkim_verify - DKIM signature verification (RFC 6376), rsa-sha256 only
 * among the RSA algorithms (RFC 8301) and ed25519-sha256 (RFC 8463),
 * fed the message as it arrives.
 *
 * Pure: no I/O. The message is fed in chunks of any size with
 * dkimv_feed() (the header section is buffered, up to DKIMV_HDR_MAX; the
 * body is hashed as it streams by, never kept). At the end of the header
 * section the DKIM-Signature fields (the first DKIMV_SIGS_MAX from the
 * top) are parsed, their header hashes computed and one body hash
 * started for each. dkimv_verify(), after the whole message, reads the
 * key records from the dns_cache: it returns 0 when answers are missing
 * (all the questions recorded as wanted in one pass) and the caller runs
 * it again once they are in; the outcome depends only on the message,
 * the time given to dkimv_new() and the cache.
 *
 * Line ends: LF or CRLF (a bare LF counts as CRLF); in the body a bare
 * CR ends a line too, as in dkim.c.
 *
 * Results per signature (RFC 8601 names): pass; fail (bad signature,
 * body hash mismatch, expired, key revoked); policy (l= leaves part of the
 * body unsigned: it may verify, but appended content is not covered);
 * neutral is not produced; temperror (DNS); permerror (a malformed
 * signature or key record, no key, a refused algorithm, key size or RSA
 * public exponent over 64 bits).
 * reason is short printable ASCII; d, s, i and alg are printable ASCII
 * (empty when the tag was missing or unusable).
 *
 * Ownership: struct dkimv owns its buffers and hash contexts
 * (dkimv_free); the pointers returned stay valid until then.
 */
#ifndef SLUICE_DKIM_VERIFY_H
#define SLUICE_DKIM_VERIFY_H

#include <stddef.h>

#include "dns_cache.h"

#define DKIMV_SIGS_MAX	5	/* signatures verified per message; more are
				   ignored (logged by the caller) */
#define DKIMV_HDR_MAX	(256 * 1024)	/* header section kept (per session:
					   bounded memory, like Postfix's
					   100 KB header_size_limit) */
#define DKIMV_H_MAX	512	/* names in one h= */

enum dkimv_result {
	DKIMV_NONE, DKIMV_PASS, DKIMV_FAIL, DKIMV_NEUTRAL, DKIMV_POLICY,
	DKIMV_TEMPERROR, DKIMV_PERMERROR
};

struct dkimv_sig {
	enum dkimv_result	 result;
	char			 d[256], s[64], i[256];
	char			 b8[9];		/* first 8 chars of b= (RFC
						   6008 header.b) */
	char			 alg[16];	/* "rsa-sha256",
						   "ed25519-sha256" */
	char			 reason[128];	/* "bad signature", ... */
	int			 testing;	/* the key record has t=y */
};

struct dkimv;

/* now: seconds since the epoch, for x=; NULL: out of memory */
struct dkimv	*dkimv_new(long long now);
void		 dkimv_free(struct dkimv *);
/* the message as stored: header section, empty line, body; lines end
   with LF or CRLF; any chunking */
void		 dkimv_feed(struct dkimv *, const void *, size_t);
/* 1: done (results final); 0: DNS answers needed (the TXT questions for
   <s>._domainkey.<d> are recorded in the cache as wanted). Call after the
   whole message was fed; may be called again after answers came. */
int		 dkimv_verify(struct dkimv *, struct dns_cache *);
/* DKIM-Signature fields considered (<= DKIMV_SIGS_MAX) */
size_t		 dkimv_count(const struct dkimv *);
/* DKIM-Signature fields seen in the header section (may be more) */
size_t		 dkimv_seen(const struct dkimv *);
const struct dkimv_sig *dkimv_sig(const struct dkimv *, size_t);
/* the header section seen, without its empty line (for the caller's
   other checks: From:, Authentication-Results:), and whether it was cut
   at DKIMV_HDR_MAX */
const char	*dkimv_header(const struct dkimv *, size_t *len,
		    int *truncated);
const char	*dkimv_result_name(enum dkimv_result);

#endif
