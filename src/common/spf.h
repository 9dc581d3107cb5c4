/*
 * spf - the Sender Policy Framework check_host() function (RFC 7208),
 * pure: DNS answers come from a struct dns_cache (dns_cache.h).
 *
 * spf_check() evaluates the SPF record of query->domain for the client
 * address. When it needs an answer the cache does not have, it records
 * the question (and every other question it can already tell it will
 * need, e.g. the addresses of all MX hosts) and returns 0; the caller
 * asks them, stores the answers with dns_cache_put() and calls
 * spf_check() again, which starts over. It returns 1 with *out filled
 * once the result is known. A full cache answers DNS_R_TEMP, so the
 * loop always ends (in temperror at worst).
 *
 * Limits (RFC 7208 4.6.4): 10 DNS-querying terms per evaluation, 2 void
 * lookups, 10 MX hosts per mx, the first 10 PTR names per ptr; includes
 * nest at most SPF_DEPTH_MAX deep. The exp= modifier is checked for
 * syntax only, never fetched; %{p} expands to "unknown".
 *
 * Errors: the result says it (temperror, permerror), reason says why.
 */
#ifndef SLUICE_SPF_H
#define SLUICE_SPF_H

#include <sys/socket.h>

#include <stddef.h>

#include "dns_cache.h"

#define SPF_LOOKUP_MAX	10	/* DNS-querying terms */
#define SPF_VOID_MAX	2	/* lookups answered NXDOMAIN or empty */
#define SPF_MX_MAX	10	/* MX hosts of one mx */
#define SPF_PTR_MAX	10	/* PTR names of one ptr */
#define SPF_DEPTH_MAX	10	/* include/redirect nesting */
#define SPF_DOMAIN_MAX	253	/* expanded names are cut to this */

enum spf_result {
	SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL,
	SPF_TEMPERROR, SPF_PERMERROR
};

struct spf_query {
	const struct sockaddr	*ip;	  /* the client: AF_INET, AF_INET6 (a v4-mapped ::ffff:a.b.c.d counts as IPv4) */
	const char	*sender;	  /* MAIL FROM address, "" for the null sender (then postmaster@helo is used, RFC 7208 2.4) */
	const char	*helo;		  /* HELO/EHLO argument */
	const char	*domain;	  /* the domain to check: the sender's domain, or the HELO name for a null sender */
	const char	*receiver;	  /* our host name, for %{r} */
	long long	 now;		  /* %{t} */
};

struct spf_outcome {
	enum spf_result	 result;
	char		 reason[256];	/* short, printable ASCII, for logs and an Authentication-Results comment */
	unsigned	 lookups, void_lookups;
};

/* 1: done, *out filled; 0: DNS answers needed (they are recorded in the cache as wanted) */
int		 spf_check(const struct spf_query *, struct dns_cache *,
		    struct spf_outcome *out);
/* "none","neutral","pass","fail","softfail","temperror","permerror" (RFC 8601 names) */
const char	*spf_result_name(enum spf_result);

/*
 * Expand the macro-string macro (RFC 7208 7) for query q, with domain as
 * %{d}, into out (always NUL ended). exp: explanation text, where an
 * upper-case macro letter is URL-escaped; otherwise the result is cut
 * from the left to SPF_DOMAIN_MAX octets, label by label, as for a DNS
 * name (7.3). 0, or -1 for a syntax error or an unusable client address.
 */
int		 spf_expand(const struct spf_query *q, const char *domain,
		    const char *macro, int exp, char *out, size_t outlen);

#endif
