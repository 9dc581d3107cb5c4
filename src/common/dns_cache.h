/*
 * dns_cache - the DNS answers one message's checks (SPF, DKIM keys,
 * DMARC) have seen, and the questions they still want answered.
 *
 * The evaluators (spf.c, dkim_verify.c, dmarc.c) are pure: they never
 * talk to the network. They read answers with dns_cache_get(); an answer
 * not in the cache yet is recorded as wanted and NULL comes back, and the
 * evaluator returns "need more" to its caller. The caller (the smtp
 * process, or a unit test with a table of answers) asks the wanted
 * questions, stores the answers with dns_cache_put(), and runs the
 * evaluator again from the start. An evaluation is deterministic over the
 * cache, so running it again is cheap and correct, and a test can answer
 * every question from a table.
 *
 * Names are compared without case and without a trailing dot. Answers are
 * strings: TXT records as the concatenation of their character-strings
 * (RFC 7208 3.3), A and AAAA as inet_ntop text, MX and PTR as host names
 * (MX without the preference, in the order of the answer).
 *
 * Bounds: DNS_CACHE_MAX questions per cache, DNS_CACHE_RR_MAX records per
 * answer (more are dropped), DNS_CACHE_TXT_MAX octets per TXT record.
 * A get past the question cap returns the shared DNS_R_TEMP answer
 * dns_cache_full, so an evaluator ends with a temporary error instead of
 * waiting for ever.
 */
#ifndef SLUICE_DNS_CACHE_H
#define SLUICE_DNS_CACHE_H

#include <stddef.h>

#define DNS_CACHE_MAX		256
#define DNS_CACHE_RR_MAX	64
#define DNS_CACHE_TXT_MAX	4096
#define DNS_CACHE_NAME_MAX	255

enum dns_rr { DNS_RR_A = 1, DNS_RR_AAAA, DNS_RR_MX, DNS_RR_TXT, DNS_RR_PTR };

enum dns_rstatus {
	DNS_R_OK = 0,		/* n records (n may be 0: NODATA) */
	DNS_R_NXDOMAIN,		/* the name does not exist */
	DNS_R_TEMP		/* timeout, SERVFAIL, no memory: try later */
};

struct dns_rrset {
	enum dns_rstatus	 status;
	size_t			 n;
	char			**rr;
};

struct dns_cache;

extern const struct dns_rrset dns_cache_full;

struct dns_cache	*dns_cache_new(void);
void			 dns_cache_free(struct dns_cache *);

/*
 * The answer for (type, name), or NULL when it is not known yet: the
 * question is then recorded as wanted (once). A name that is not a
 * valid domain (empty, over 255 octets, an empty label, a label over 63)
 * gets a DNS_R_NXDOMAIN answer at once, without a question.
 */
const struct dns_rrset	*dns_cache_get(struct dns_cache *, enum dns_rr,
			    const char *name);

/*
 * The questions wanted and not yet taken: each call returns the next one
 * (and marks it taken), 0 when there is none left.
 */
int	dns_cache_next_wanted(struct dns_cache *, enum dns_rr *,
	    const char **name);

/* questions wanted or asked and not answered yet */
size_t	dns_cache_pending(const struct dns_cache *);

/*
 * Store the answer to a question (wanted or not). rr[0..n) are copied
 * (the caller keeps its strings). 0, or -1 when out of memory (the
 * question is then answered DNS_R_TEMP, so nothing waits for ever).
 */
int	dns_cache_put(struct dns_cache *, enum dns_rr, const char *name,
	    enum dns_rstatus, const char *const *rr, size_t n);

const char	*dns_rr_name(enum dns_rr);

#endif
