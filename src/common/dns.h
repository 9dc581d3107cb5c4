/*
 * dns - asynchronous mail-exchanger lookup on c-ares and libevent.
 *
 * dns_mx() turns a recipient domain into the ordered list of addresses to
 * try (RFC 5321 section 5.1):
 *   - MX records sorted by preference, random order among equal ones;
 *     at most DNS_MX_MAX hosts are kept (the most preferred);
 *   - each MX host resolved to AAAA and A (IPv6 first unless
 *     dns_conf.prefer_ipv4), at most DNS_ADDR_PER_HOST addresses per host
 *     and family, DNS_ADDR_MAX in all;
 *   - no MX records but the name exists: an implicit MX (the domain's own
 *     addresses, preference 0);
 *   - a single MX "0 ." (RFC 7505): DNS_NULLMX, a permanent refusal;
 *   - NXDOMAIN: DNS_NXDOMAIN, permanent;
 *   - SERVFAIL, REFUSED, timeouts, bad or truncated answers, no memory:
 *     DNS_TEMPFAIL, never a permanent status (P3);
 *   - MX hosts without addresses are skipped; if none is left the status is
 *     DNS_TEMPFAIL when any of their lookups failed temporarily, else
 *     DNS_NOHOSTS (permanent);
 *   - an address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") needs no
 *     DNS: one host, preference 0.
 * The server is dns_conf.server (port 53 if none given), else the
 * nameservers of /etc/resolv.conf.
 * CNAMEs are followed by the recursive server; the records it returns are
 * read through the chain by c-ares. Queries never use the search list.
 *
 * Callbacks: every dns_mx() that returned 0 has its callback called exactly
 * once, always from the event loop (never from inside dns_mx()), so the
 * callback may start new lookups or call dns_free(). dns_free() with
 * lookups in flight calls each of their callbacks, from inside dns_free(),
 * with DNS_CANCELLED; during that call dns_mx() on the same resolver fails.
 * The result and everything it points to is valid only during the
 * callback. dns_mx() returns -1 (callback never called) only when the
 * request could not be started (no memory, resolver being freed).
 *
 * "Is this MX us?" (loop detection, 5.4.6) is answered against a set of
 * addresses the caller builds from its own listen addresses (struct
 * dns_self), not against all of loopback: the tests run every server on
 * 127.x, and in production a host may well relay to another MTA on its
 * own loopback. A wildcard listen address (0.0.0.0, ::) adds every
 * interface address of that family (getifaddrs) and loopback. Ports are
 * not compared, like Postfix's inet_interfaces.
 *
 * The pure steps (record selection, result assembly, literal parsing,
 * status texts) are exported for the unit tests.
 */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include "dns_cache.h"

#define DNS_NAME_MAX		255	/* a domain name in text form */
#define DNS_MX_MAX		20	/* MX hosts kept, the most preferred */
#define DNS_MX_RAW_MAX		1024	/* MX records read from one answer */
#define DNS_ADDR_PER_HOST	8	/* addresses kept per host and family */
#define DNS_ADDR_MAX		64	/* addresses in a result */
#define DNS_ERR_MAX		256	/* error text, with its status code */

struct event_base;
struct dns;

enum dns_status {
	DNS_OK = 0,
	DNS_NULLMX,	/* 5.1.10: the domain accepts no mail (RFC 7505) */
	DNS_NXDOMAIN,	/* 5.1.2: the domain does not exist */
	DNS_NOHOSTS,	/* 5.4.4: no MX host has an address */
	DNS_BADNAME,	/* 5.1.2: not a valid domain or address literal */
	DNS_LOOP,	/* 5.4.6: all usable MXs are us (dns_mx_prune_self) */
	DNS_TEMPFAIL,	/* 4.4.3: try again later */
	DNS_CANCELLED	/* dns_free() with the lookup in flight */
};

struct dns_conf {
	const char	*server;	/* "IP:PORT", "[V6]:PORT" or NULL */
	unsigned	 timeout_ms;	/* per try; 0: default (3000) */
	unsigned	 tries;		/* 0: default (2) */
	int		 prefer_ipv4;	/* A before AAAA within a host */
};

/* one address to try, in order */
struct dns_host {
	unsigned		 pref;
	char			 name[DNS_NAME_MAX + 1];
	int			 family;	/* AF_INET or AF_INET6 */
	struct sockaddr_storage	 addr;		/* port 0 */
	socklen_t		 addrlen;
};

struct dns_mx_result {
	enum dns_status	 status;
	char		 domain[DNS_NAME_MAX + 1];
	int		 implicit;	/* no MX records: the domain itself */
	size_t		 count;
	struct dns_host	 hosts[DNS_ADDR_MAX];
	size_t		 mx_records;	/* MX records in the answer */
	size_t		 mx_skipped;	/* dropped: cap, no address, failure */
	size_t		 mx_tempfail;	/* hosts whose lookup failed for now */
	char		 error[DNS_ERR_MAX];	/* "5.1.2 ..." unless OK */
};

typedef void	(*dns_mx_cb)(void *arg, const struct dns_mx_result *);

struct dns	*dns_new(struct event_base *, const struct dns_conf *,
		    char *err, size_t errlen);
void		 dns_free(struct dns *);
void		 dns_set_seed(struct dns *, uint64_t);
int		 dns_mx(struct dns *, const char *domain, dns_mx_cb, void *arg);
/* the addresses of one host (a smarthost): no MX lookup, same result */
int		 dns_host(struct dns *, const char *name, dns_mx_cb, void *arg);
const char	*dns_status_name(enum dns_status);

/*
 * One question of any type dns_cache knows (TXT, A, AAAA, MX, PTR), for
 * the SPF, DKIM and DMARC checks; the answer comes as strings in the
 * form dns_cache_put() takes (see dns_cache.h). The callback rules are
 * those of dns_mx(): called exactly once, from the event loop; with
 * cancelled set (and DNS_R_TEMP) when dns_free() ends the lookup. At
 * most DNS_CACHE_RR_MAX records are passed on.
 */
typedef void	(*dns_rr_cb)(void *arg, enum dns_rstatus,
		    const char *const *rr, size_t n, int cancelled);
int		 dns_rr(struct dns *, enum dns_rr, const char *name,
		    dns_rr_cb, void *arg);

/* our own addresses, for loop detection */
struct dns_self {
	struct sockaddr_storage	*addrs;
	size_t			 n, cap;
};

void	dns_self_init(struct dns_self *);
void	dns_self_free(struct dns_self *);
int	dns_self_add(struct dns_self *, const struct sockaddr *);
int	dns_addr_is_local(const struct dns_self *, const struct sockaddr *);
int	dns_mx_prune_self(struct dns_mx_result *, const struct dns_self *);

/* pure steps, exported for tests */
struct dns_mxrec {
	unsigned	 pref;
	char		 name[DNS_NAME_MAX + 1];
};

uint64_t	dns_rand_next(uint64_t *state);
size_t		dns_mx_select(struct dns_mxrec *, size_t n, size_t max,
		    uint64_t *rng, int *nullmx);
int		dns_parse_literal(const char *domain, struct sockaddr_storage *,
		    socklen_t *);
int		dns_check_name(const char *);
void		dns_result_init(struct dns_mx_result *, const char *domain);
int		dns_result_add(struct dns_mx_result *, unsigned pref,
		    const char *name, const struct sockaddr *, socklen_t);
void		dns_result_fail(struct dns_mx_result *, enum dns_status,
		    const char *detail);

#endif
