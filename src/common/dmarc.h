/*
 * dmarc - a pure DMARC evaluator (RFC 7489, with the DMARCbis t= tag).
 *
 * dmarc_check() reads the _dmarc TXT records through a struct dns_cache
 * and never talks to the network: when an answer is missing it returns 0
 * (the question is recorded as wanted in the cache); the caller answers
 * it and calls dmarc_check() again from the start. It is deterministic
 * over the cache and changes nothing else.
 *
 * Policy discovery (RFC 7489 6.6.3): TXT at _dmarc.<From domain>, then,
 * when none of its strings starts with "v=DMARC1", at _dmarc.<organizational
 * domain>. Several DMARC records at one name: no record (none). A
 * temporary DNS error on either lookup: temperror. A record that starts
 * with "v=DMARC1" and is otherwise invalid: permerror (RFC 7489 11.2:
 * "a syntactically incorrect DMARC record"), and no fallback to the
 * organizational domain, since a record was found. A record whose p= (or
 * sp=) is missing or invalid but with a valid rua= URI is read as p=none
 * (RFC 7489 6.6.3).
 *
 * Record syntax (dmarc_parse): tag names and the v= value are case
 * sensitive (DKIM's tag-list rule, RFC 6376 3.2; %x44... in the ABNF);
 * the keyword values of p, sp, adkim, aspf, t are read without case (ABNF
 * literal strings are case-insensitive, RFC 5234 2.3). Space is allowed
 * around ';' and '='. Unknown tags are ignored; a known tag repeated, a
 * segment without '=' or with a bad tag name, or a bad value of a policy
 * tag (p, sp, adkim, aspf, pct, t) makes the record invalid; the reporting tags (rua, ruf, fo, rf, ri)
 * are not checked, except rua for the p= rule above.
 *
 * Organizational domain: libpsl's built-in Public Suffix List (ICANN and
 * private sections), the domain itself when it is a public suffix. Names
 * must be ASCII (A-labels: the caller converts U-labels).
 *
 * No aligned pass, but an identifier that would align had a temporary
 * error (spf_temp, dkim[].temp): temperror, not fail, so that a late DNS
 * answer never gets a message rejected.
 *
 * pct below 100 is applied to all mail (no sampling); pct=0 or t=y means
 * "do not act" (dmarc_enforceable). np= (DMARCbis) is parsed but not
 * applied: it needs a lookup of whether the From domain exists.
 */
#ifndef SLUICE_DMARC_H
#define SLUICE_DMARC_H

#include <stddef.h>

#include "dns_cache.h"

enum dmarc_result { DMARC_NONE, DMARC_PASS, DMARC_FAIL, DMARC_TEMPERROR,
	DMARC_PERMERROR };
enum dmarc_policy { DMARC_P_UNSET = 0, DMARC_P_NONE, DMARC_P_QUARANTINE,
	DMARC_P_REJECT };

#define DMARC_DKIM_MAX	5
#define DMARC_NAME_MAX	253	/* a domain without its trailing dot */

struct dmarc_query {
	const char	*from_domain;	/* the one RFC5322.From domain */
	const char	*spf_domain;	/* MAIL FROM domain ("" for the null
					   sender: then no SPF alignment) */
	int		 spf_pass;	/* SPF said pass for spf_domain */
	size_t		 ndkim;		/* at most DMARC_DKIM_MAX are read */
	struct {
		const char	*d;
		int		 pass;	/* DKIM said pass for d */
		int		 temp;	/* DKIM said temperror for d */
	} dkim[DMARC_DKIM_MAX];
	int		 spf_temp;	/* SPF said temperror for spf_domain */
};

struct dmarc_record {
	enum dmarc_policy p, sp;	/* sp defaults to p */
	enum dmarc_policy np;		/* DMARCbis, defaults to sp; unused */
	int		 adkim_strict, aspf_strict;	/* adkim=s / aspf=s */
	unsigned	 pct;		/* 0..100, default 100 */
	int		 testing;	/* DMARCbis t=y */
	int		 p_from_rua;	/* p=none because p= was bad, rua= good */
};

struct dmarc_outcome {
	enum dmarc_result	 result;
	enum dmarc_policy	 policy;	/* p=, or sp= for a subdomain
					   of the org domain where the record
					   came from; P_UNSET when no record */
	char			 record_domain[256];	/* where the record was
					   found ("" when none) */
	char			 reason[128];	/* short printable ASCII */
	int			 dkim_aligned, spf_aligned;
	struct dmarc_record	 record;	/* valid when policy is set */
};

/*
 * 1 if the p/sp rule says to act: policy is quarantine or reject,
 * record.pct > 0 and not record.testing. It does not look at the result:
 * act only on DMARC_FAIL. pct below 100 is applied to all mail (sluice
 * does not sample).
 */
int	dmarc_enforceable(const struct dmarc_outcome *);

/* parse a record text: 0 ok, -1 not a DMARC record or invalid (err) */
int	dmarc_parse(const char *txt, struct dmarc_record *, char *err,
	    size_t errlen);

/* 1 if txt starts with the v=DMARC1 tag (valid or not otherwise) */
int	dmarc_is_record(const char *txt);

/* the organizational domain (lower case) into out; -1 if domain is not a
   valid name or does not fit */
int	dmarc_org_domain(const char *domain, char *out, size_t outlen);

/* 1 done; 0 DNS answers needed (recorded as wanted in the cache) */
int	dmarc_check(const struct dmarc_query *, struct dns_cache *,
	    struct dmarc_outcome *);

const char	*dmarc_result_name(enum dmarc_result);
const char	*dmarc_policy_name(enum dmarc_policy);

#endif
