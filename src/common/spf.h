/*
 * spf - RFC 7208 check_host(), pure: DNS answers come from a dns_cache.
 * spf_check() returns 0 after recording the questions it needs (all MX
 * hosts' or PTR names' addresses at once); the caller answers them with
 * dns_cache_put() and calls again, which starts over; 1 when done. A
 * full cache answers DNS_R_TEMP, so the loop ends (temperror at worst).
 * Limits (4.6.4): 10 DNS-querying terms, 2 void lookups, 10 MX hosts per
 * mx, the first 10 PTR names per ptr, includes SPF_DEPTH_MAX deep. exp=
 * is checked for syntax only, never fetched; %{p} is "unknown". Errors
 * are results (temperror, permerror); reason says why. A DNS error in
 * ptr is a temperror (5.5 says no match: a late answer must not fail).
 * A domain-spec whose macro values pass SPF_EXPAND_WORK octets is a
 * permerror (no legitimate record comes near; a hostile one would cost
 * milliseconds per evaluation, and evaluations repeat per DNS round).
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
#define SPF_EXPAND_WORK	4096	/* octets of macro values in one
				   macro-string (CPU); more: permerror */

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

/* expand a macro-string (7) with domain as %{d} into out (NUL ended); exp:
   explanation text (c r t allowed), else a name cut from the left to
   SPF_DOMAIN_MAX (7.3); upper-case letters are URL-escaped in both; -1 on
   a syntax error */
int		 spf_expand(const struct spf_query *q, const char *domain,
		    const char *macro, int exp, char *out, size_t outlen);

#endif
