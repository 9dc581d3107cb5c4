/*
 * dns - asynchronous MX lookup on c-ares, driven by libevent. See dns.h
 * for the contract (ordering, statuses, callback rules, caps).
 *
 * Shape: c-ares reports which sockets it wants watched through
 * ARES_OPT_SOCK_STATE_CB; each gets a persistent libevent event that calls
 * ares_process_fd(), and one timer follows ares_timeout(). A request first
 * asks for MX records, then for AAAA and A of every kept host, all in
 * parallel; `pending` counts the c-ares queries still out (plus one while
 * a batch is being started, because c-ares may call back synchronously).
 * When it drops to zero the result is assembled and the user callback is
 * run from a separate event, so it never runs inside c-ares or dns_mx().
 */
#include <sys/random.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ares.h>
#include <errno.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"

#ifndef T_MX
#define T_MX	15
#endif
#ifndef T_A
#define T_A	1
#endif
#ifndef T_AAAA
#define T_AAAA	28
#endif
#define DNS_CLASS_IN		1
#define DNS_TIMEOUT_MS		3000
#define DNS_TRIES		2
#define DNS_SELF_MAX		4096

struct dns_sock {
	struct dns_sock	*next;
	ares_socket_t	 fd;
	struct event	*ev;
};

struct dns_req;
struct dns_hostq;

/* one dns_rr() question */
struct dns_rrq {
	struct dns_rrq		*next, **prevp;
	struct dns		*dns;
	dns_rr_cb		 cb;
	void			*arg;
	struct event		*done_ev;
	enum dns_rr		 type;
	enum dns_rstatus	 status;
	char			**rr;
	size_t			 n;
};

/* the callback argument of one A or AAAA query */
struct dns_sub {
	struct dns_hostq	*host;
	int			 family;
};

/* one MX host being resolved */
struct dns_hostq {
	struct dns_req		*req;
	unsigned		 pref;
	char			 name[DNS_NAME_MAX + 1];
	struct dns_sub		 sub[2];	/* [0] AF_INET6, [1] AF_INET */
	struct in6_addr		 a6[DNS_ADDR_PER_HOST];
	struct in_addr		 a4[DNS_ADDR_PER_HOST];
	size_t			 n6, n4;
	int			 temp;		/* a lookup failed for now */
	char			 why[64];	/* its c-ares error */
};

struct dns_req {
	struct dns_req		*next, **prevp;
	struct dns		*dns;
	dns_mx_cb		 cb;
	void			*arg;
	struct event		*done_ev;
	int			 pending;
	int			 finished;	/* result final */
	struct dns_hostq	*hosts;
	size_t			 nhosts;
	struct dns_mx_result	 res;
};

struct dns {
	struct event_base	*base;
	ares_channel		 chan;
	struct event		*timer;
	struct dns_sock		*socks;
	struct dns_req		*reqs;
	struct dns_rrq		*rrqs;
	uint64_t		 rng;
	int			 prefer_ipv4;
	int			 closing;
};

static void	dns_arm_timer(struct dns *);
static void	dns_req_release(struct dns_req *);
static void	dns_rrq_free(struct dns_rrq *);
static void	dns_rrq_unlink(struct dns_rrq *);

/* ---- pure steps ---- */

/* splitmix64: small, seedable, good enough to spread load among MXs */
uint64_t
dns_rand_next(uint64_t *state)
{
	uint64_t	 z;

	z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* uniform in [0, n) for the small n used here (bias < n / 2^64) */
static size_t
dns_rand_below(uint64_t *state, size_t n)
{
	return (size_t)(dns_rand_next(state) % n);
}

static int
dns_is_root(const char *name)
{
	return name[0] == '\0' || strcmp(name, ".") == 0;
}

static int
dns_mxrec_cmp(const void *a, const void *b)
{
	const struct dns_mxrec	*x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	/* a total order, so the shuffle alone decides among equals */
	return strcasecmp(x->name, y->name);
}

/* Fisher-Yates within each run of equal preference */
static void
dns_mx_shuffle(struct dns_mxrec *r, size_t n, uint64_t *rng)
{
	struct dns_mxrec	 t;
	size_t			 start, end, i, j;

	for (start = 0; start < n; start = end) {
		for (end = start + 1; end < n && r[end].pref == r[start].pref;
		    end++)
			;
		for (i = end - 1; i > start; i--) {
			j = start + dns_rand_below(rng, i - start + 1);
			if (j != i) {
				t = r[i];
				r[i] = r[j];
				r[j] = t;
			}
		}
	}
}

/*
 * Order the MX records of one answer in place and return how many to use
 * (at most max). *nullmx is set for the RFC 7505 record "0 ." alone; other
 * root exchanges are dropped, trailing dots removed, and a host listed
 * twice is kept once, at its best preference.
 */
size_t
dns_mx_select(struct dns_mxrec *r, size_t n, size_t max, uint64_t *rng,
    int *nullmx)
{
	size_t	 i, j, k, len;

	*nullmx = (n == 1 && r[0].pref == 0 && dns_is_root(r[0].name));
	if (*nullmx)
		return 0;
	for (i = k = 0; i < n; i++) {
		if (dns_is_root(r[i].name))
			continue;
		len = strlen(r[i].name);
		if (r[i].name[len - 1] == '.')
			r[i].name[len - 1] = '\0';
		r[k++] = r[i];
	}
	n = k;
	if (n > 1)
		qsort(r, n, sizeof(*r), dns_mxrec_cmp);
	dns_mx_shuffle(r, n, rng);
	for (i = k = 0; i < n; i++) {
		for (j = 0; j < k; j++)
			if (strcasecmp(r[j].name, r[i].name) == 0)
				break;
		if (j == k)
			r[k++] = r[i];
	}
	return k < max ? k : max;
}

/*
 * A domain we are willing to query: letters, digits, '-' and '_', labels
 * of 1..63, at most 253 without the one optional trailing dot. Returns 0
 * if valid.
 * XXX: internationalised domains must arrive as A-labels; converting
 * U-labels is the caller's business (SMTPUTF8).
 */
int
dns_check_name(const char *s)
{
	size_t	 len, i, label = 0;

	len = strnlen(s, DNS_NAME_MAX + 1);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -1;
		if (++label > 63)
			return -1;
	}
	return 0;
}

/*
 * "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). Returns 1 and
 * fills *ss for a valid literal, 0 if domain is not a literal, -1 for a
 * malformed or unsupported (general) literal.
 */
int
dns_parse_literal(const char *domain, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	char		 in[64];
	size_t		 len;
	const char	*p;

	if (domain[0] != '[')
		return 0;
	len = strnlen(domain, sizeof(in) + 8);
	if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof(in))
		return -1;
	memcpy(in, domain + 1, len - 2);
	in[len - 2] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (strncasecmp(in, "IPv6:", 5) == 0) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		p = in + 5;
		if (inet_pton(AF_INET6, p, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		*sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, in, &s4->sin_addr) != 1)
			return -1;
		s4->sin_family = AF_INET;
		*sslen = sizeof(*s4);
	}
	return 1;
}

/* printable ASCII only: the text goes into logs and DSNs (P7) */
static void
dns_clean(char *dst, size_t dstlen, const char *src)
{
	size_t	 i;

	for (i = 0; src[i] != '\0' && i + 1 < dstlen; i++)
		dst[i] = (src[i] < 0x20 || src[i] > 0x7e) ? '?' : src[i];
	dst[i] = '\0';
}

void
dns_result_init(struct dns_mx_result *res, const char *domain)
{
	memset(res, 0, sizeof(*res));
	res->status = DNS_OK;
	dns_clean(res->domain, sizeof(res->domain), domain);
}

/* Append one address; -1 (and nothing added) when the result is full. */
int
dns_result_add(struct dns_mx_result *res, unsigned pref, const char *name,
    const struct sockaddr *sa, socklen_t salen)
{
	struct dns_host	*h;

	if (res->count >= DNS_ADDR_MAX || salen > sizeof(h->addr) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return -1;
	h = &res->hosts[res->count++];
	memset(h, 0, sizeof(*h));
	h->pref = pref;
	dns_clean(h->name, sizeof(h->name), name);
	h->family = sa->sa_family;
	memcpy(&h->addr, sa, salen);
	h->addrlen = salen;
	return 0;
}

/* Set a failure status and its enhanced-status text; drops addresses. */
void
dns_result_fail(struct dns_mx_result *res, enum dns_status st,
    const char *detail)
{
	const char	*d = res->domain, *why = detail ? detail : "";
	const char	*sep = detail ? ": " : "";
	char		 clean[128];

	dns_clean(clean, sizeof(clean), why);
	res->status = st;
	res->count = 0;
	switch (st) {
	case DNS_OK:
		res->error[0] = '\0';
		break;
	case DNS_NULLMX:
		snprintf(res->error, sizeof(res->error),
		    "5.1.10 null MX: %s does not accept mail", d);
		break;
	case DNS_NXDOMAIN:
		snprintf(res->error, sizeof(res->error),
		    "5.1.2 domain not found: %s", d);
		break;
	case DNS_NOHOSTS:
		snprintf(res->error, sizeof(res->error),
		    "5.4.4 no address for any mail exchanger of %s%s%s", d,
		    sep, clean);
		break;
	case DNS_BADNAME:
		snprintf(res->error, sizeof(res->error),
		    "5.1.2 bad domain name: %s", d);
		break;
	case DNS_LOOP:
		snprintf(res->error, sizeof(res->error),
		    "5.4.6 mail for %s loops back to myself", d);
		break;
	case DNS_TEMPFAIL:
		snprintf(res->error, sizeof(res->error),
		    "4.4.3 DNS temporary failure for %s%s%s", d, sep, clean);
		break;
	case DNS_CANCELLED:
		snprintf(res->error, sizeof(res->error),
		    "4.4.3 DNS lookup for %s cancelled", d);
		break;
	}
}

const char *
dns_status_name(enum dns_status st)
{
	static const char *const names[] = {
		[DNS_OK] = "OK", [DNS_NULLMX] = "NULLMX",
		[DNS_NXDOMAIN] = "NXDOMAIN", [DNS_NOHOSTS] = "NOHOSTS",
		[DNS_BADNAME] = "BADNAME", [DNS_LOOP] = "LOOP",
		[DNS_TEMPFAIL] = "TEMPFAIL", [DNS_CANCELLED] = "CANCELLED",
	};

	if ((size_t)st >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[st];
}

/* ---- our own addresses ---- */

void
dns_self_init(struct dns_self *s)
{
	memset(s, 0, sizeof(*s));
}

void
dns_self_free(struct dns_self *s)
{
	free(s->addrs);
	memset(s, 0, sizeof(*s));
}

/* ::ffff:a.b.c.d compares as a.b.c.d */
static void
dns_addr_norm(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		struct sockaddr_in *o = (struct sockaddr_in *)out;

		o->sin_family = AF_INET;
		o->sin_addr = in->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in->sin6_addr)) {
			struct sockaddr_in *o = (struct sockaddr_in *)out;

			o->sin_family = AF_INET;
			memcpy(&o->sin_addr, &in->sin6_addr.s6_addr[12], 4);
		} else {
			struct sockaddr_in6 *o = (struct sockaddr_in6 *)out;

			o->sin6_family = AF_INET6;
			o->sin6_addr = in->sin6_addr;
		}
	}
}

static int
dns_self_push(struct dns_self *s, const struct sockaddr *sa)
{
	struct sockaddr_storage	 n, *na;
	size_t			 ncap;

	dns_addr_norm(sa, &n);
	if (n.ss_family != AF_INET && n.ss_family != AF_INET6)
		return 0;
	if (dns_addr_is_local(s, (struct sockaddr *)&n))
		return 0;
	if (s->n == s->cap) {
		if (s->cap >= DNS_SELF_MAX)
			return -1;
		ncap = s->cap ? s->cap * 2 : 8;
		na = reallocarray(s->addrs, ncap, sizeof(*na));
		if (na == NULL)
			return -1;
		s->addrs = na;
		s->cap = ncap;
	}
	s->addrs[s->n++] = n;
	return 0;
}

static int
dns_is_wildcard(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(
		    &((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

/*
 * Add a listen address to our set. A wildcard adds every interface
 * address (loopback included); "::" adds IPv4 ones too, because a Linux
 * dual-stack socket accepts both. Returns -1 on allocation failure.
 */
int
dns_self_add(struct dns_self *s, const struct sockaddr *sa)
{
	struct ifaddrs	*ifa, *i;
	int		 rc = 0;

	if (!dns_is_wildcard(sa))
		return dns_self_push(s, sa);
	if (getifaddrs(&ifa) == -1)
		return -1;
	for (i = ifa; i != NULL && rc == 0; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == sa->sa_family ||
		    (sa->sa_family == AF_INET6 &&
		    i->ifa_addr->sa_family == AF_INET))
			rc = dns_self_push(s, i->ifa_addr);
	}
	freeifaddrs(ifa);
	return rc;
}

int
dns_addr_is_local(const struct dns_self *s, const struct sockaddr *sa)
{
	struct sockaddr_storage	 n;
	size_t			 i;

	dns_addr_norm(sa, &n);
	for (i = 0; i < s->n; i++) {
		if (s->addrs[i].ss_family != n.ss_family)
			continue;
		if (n.ss_family == AF_INET &&
		    memcmp(&((struct sockaddr_in *)&n)->sin_addr,
		    &((struct sockaddr_in *)&s->addrs[i])->sin_addr, 4) == 0)
			return 1;
		if (n.ss_family == AF_INET6 &&
		    memcmp(&((struct sockaddr_in6 *)&n)->sin6_addr,
		    &((struct sockaddr_in6 *)&s->addrs[i])->sin6_addr, 16) == 0)
			return 1;
	}
	return 0;
}

/*
 * RFC 5321 5.1: if we are one of the MXs, drop ourselves and every MX of
 * equal or worse preference (they would relay back to us). Nothing left:
 * DNS_LOOP. Returns the number of addresses removed.
 */
int
dns_mx_prune_self(struct dns_mx_result *res, const struct dns_self *s)
{
	size_t		 i, k;
	unsigned	 cut = 0;
	int		 found = 0, removed;

	if (res->status != DNS_OK)
		return 0;
	for (i = 0; i < res->count; i++)
		if (dns_addr_is_local(s,
		    (const struct sockaddr *)&res->hosts[i].addr) &&
		    (!found || res->hosts[i].pref < cut)) {
			cut = res->hosts[i].pref;
			found = 1;
		}
	if (!found)
		return 0;
	for (i = k = 0; i < res->count; i++)
		if (res->hosts[i].pref < cut)
			res->hosts[k++] = res->hosts[i];
	removed = (int)(res->count - k);
	res->count = k;
	if (k == 0)
		dns_result_fail(res, DNS_LOOP, NULL);
	return removed;
}

/* ---- c-ares glue ---- */

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns	*d = arg;

	(void)fd;
	(void)what;
	ares_process_fd(d->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_arm_timer(d);
}

static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns	*d = arg;

	ares_process_fd(d->chan, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_arm_timer(d);
}

static void
dns_arm_timer(struct dns *d)
{
	struct timeval	 tv, *tvp;

	if (d->closing)
		return;
	tvp = ares_timeout(d->chan, NULL, &tv);
	if (tvp != NULL)
		evtimer_add(d->timer, tvp);
	else
		evtimer_del(d->timer);
}

/*
 * c-ares wants fd watched for reading and/or writing, or (0, 0) forgotten.
 * XXX: if the event cannot be allocated the socket goes unwatched and its
 * query ends by timeout (a temporary failure), which is the safe outcome.
 */
static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns	 *d = data;
	struct dns_sock	 *s, **sp;
	short		  what;

	for (sp = &d->socks; *sp != NULL; sp = &(*sp)->next)
		if ((*sp)->fd == fd)
			break;
	s = *sp;
	if (s != NULL && s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL) {
			*sp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			log_warnx("dns: out of memory watching a socket");
			return;
		}
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	}
	what = EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0);
	s->ev = event_new(d->base, fd, what, dns_sock_cb, d);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1)
		log_warnx("dns: cannot watch socket %d", (int)fd);
}

/* "HOST:PORT", "[V6]:PORT", or a bare address (port 53), as c-ares CSV */
static int
dns_server_csv(const char *server, char *out, size_t outlen)
{
	char		 host[INET6_ADDRSTRLEN + 1], *end;
	const char	*p, *port = NULL;
	unsigned char	 bin[sizeof(struct in6_addr)];
	unsigned long	 pn = 53;
	size_t		 hl;
	int		 v6 = 0, n;

	if (server[0] == '[') {
		if ((p = strchr(server, ']')) == NULL)
			return -1;
		hl = (size_t)(p - server - 1);
		server++;
		v6 = 1;
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			return -1;
	} else if ((p = strchr(server, ':')) != NULL) {
		if (strchr(p + 1, ':') != NULL)
			return -1;	/* a bare IPv6 address needs [] */
		hl = (size_t)(p - server);
		port = p + 1;
	} else
		hl = strlen(server);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, server, hl);
	host[hl] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1)
		return -1;
	if (port != NULL) {
		errno = 0;
		pn = strtoul(port, &end, 10);
		if (port[0] < '0' || port[0] > '9' || *end != '\0' ||
		    errno != 0 || pn == 0 || pn > 65535)
			return -1;
	}
	n = snprintf(out, outlen, v6 ? "[%s]:%lu" : "%s:%lu", host, pn);
	return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

static uint64_t
dns_seed(void)
{
	uint64_t	 s;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) == (ssize_t)sizeof(s))
		return s;
	/* only the spread of load among equal MXs depends on it */
	return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

static int
dns_init_channel(struct dns *d, const struct dns_conf *conf, char *err,
    size_t errlen)
{
	struct ares_options	 o;
	char			 csv[INET6_ADDRSTRLEN + 16];
	int			 rc;

	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH;
	o.timeout = conf->timeout_ms ? (int)conf->timeout_ms : DNS_TIMEOUT_MS;
	o.tries = conf->tries ? (int)conf->tries : DNS_TRIES;
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = d;
	rc = ares_init_options(&d->chan, &o, ARES_OPT_FLAGS |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver: %s", ares_strerror(rc));
		return -1;
	}
	if (conf->server == NULL)
		return 0;
	if (dns_server_csv(conf->server, csv, sizeof(csv)) == -1) {
		snprintf(err, errlen, "resolver: bad server address (want "
		    "IP:PORT or [IPv6]:PORT)");
		ares_destroy(d->chan);
		return -1;
	}
	if ((rc = ares_set_servers_ports_csv(d->chan, csv)) != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver: %s", ares_strerror(rc));
		ares_destroy(d->chan);
		return -1;
	}
	return 0;
}

struct dns *
dns_new(struct event_base *base, const struct dns_conf *conf, char *err,
    size_t errlen)
{
	static const struct dns_conf	 defconf;
	struct dns			*d;
	int				 rc;

	if (conf == NULL)
		conf = &defconf;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver: %s", ares_strerror(rc));
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->timer = evtimer_new(base, dns_timer_cb, d)) == NULL) {
		snprintf(err, errlen, "resolver: out of memory");
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	d->base = base;
	d->rng = dns_seed();
	d->prefer_ipv4 = conf->prefer_ipv4;
	if (dns_init_channel(d, conf, err, errlen) == -1) {
		event_free(d->timer);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	return d;
}

void
dns_set_seed(struct dns *d, uint64_t seed)
{
	d->rng = seed;
}

static void
dns_req_free(struct dns_req *r)
{
	if (r->done_ev != NULL)
		event_free(r->done_ev);
	free(r->hosts);
	free(r);
}

static void
dns_req_unlink(struct dns_req *r)
{
	if (r->next != NULL)
		r->next->prevp = r->prevp;
	*r->prevp = r->next;
}

void
dns_free(struct dns *d)
{
	struct dns_req	*r;
	struct dns_rrq	*q;
	struct dns_sock	*s;

	if (d == NULL)
		return;
	d->closing = 1;
	/* calls back every query with ARES_EDESTRUCTION, closes sockets */
	ares_destroy(d->chan);
	while ((r = d->reqs) != NULL) {
		dns_req_unlink(r);
		dns_result_fail(&r->res, DNS_CANCELLED, NULL);
		r->cb(r->arg, &r->res);
		dns_req_free(r);
	}
	while ((q = d->rrqs) != NULL) {
		dns_rrq_unlink(q);
		q->cb(q->arg, DNS_R_TEMP, NULL, 0, 1);
		dns_rrq_free(q);
	}
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	event_free(d->timer);
	free(d);
	ares_library_cleanup();
}

/* ---- one dns_rr() question ---- */

static void
dns_rrq_free(struct dns_rrq *q)
{
	if (q->done_ev != NULL)
		event_free(q->done_ev);
	for (size_t i = 0; i < q->n; i++)
		free(q->rr[i]);
	free(q->rr);
	free(q);
}

static void
dns_rrq_unlink(struct dns_rrq *q)
{
	if (q->next != NULL)
		q->next->prevp = q->prevp;
	*q->prevp = q->next;
}

static void
dns_rrq_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_rrq	*q = arg;

	(void)fd;
	(void)what;
	dns_rrq_unlink(q);
	q->cb(q->arg, q->status, (const char *const *)q->rr, q->n, 0);
	dns_rrq_free(q);
}

/* Keep one more record (a copy of len octets); -1 when out of memory. */
static int
dns_rrq_add(struct dns_rrq *q, const char *s, size_t len)
{
	char	*c;

	if (q->n == DNS_CACHE_RR_MAX)
		return 0;
	if (q->rr == NULL &&
	    (q->rr = calloc(DNS_CACHE_RR_MAX, sizeof(char *))) == NULL)
		return -1;
	if (len > DNS_CACHE_TXT_MAX)
		len = DNS_CACHE_TXT_MAX;
	if ((c = malloc(len + 1)) == NULL)
		return -1;
	memcpy(c, s, len);
	c[len] = '\0';
	q->rr[q->n++] = c;
	return 0;
}

/* TXT: each record's character-strings joined (RFC 7208 3.3) */
static int
dns_rrq_txt(struct dns_rrq *q, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext	*txt, *t;
	char			*rec;
	size_t			 len = 0;
	int			 rc = 0, have = 0;

	if (ares_parse_txt_reply_ext(abuf, alen, &txt) != ARES_SUCCESS)
		return -1;
	if ((rec = malloc(DNS_CACHE_TXT_MAX)) == NULL) {
		ares_free_data(txt);
		return -1;
	}
	for (t = txt; t != NULL && rc == 0; t = t->next) {
		if (t->record_start && have) {
			rc = dns_rrq_add(q, rec, len);
			len = 0;
		}
		have = 1;
		if (t->length > DNS_CACHE_TXT_MAX - len)
			len = DNS_CACHE_TXT_MAX;	/* cut */
		else {
			memcpy(rec + len, t->txt, t->length);
			len += t->length;
		}
	}
	if (rc == 0 && have)
		rc = dns_rrq_add(q, rec, len);
	free(rec);
	ares_free_data(txt);
	return rc;
}

static int
dns_rrq_addrs(struct dns_rrq *q, const unsigned char *abuf, int alen)
{
	struct ares_addrttl	 t4[DNS_CACHE_RR_MAX];
	struct ares_addr6ttl	 t6[DNS_CACHE_RR_MAX];
	char			 txt[INET6_ADDRSTRLEN];
	int			 n = DNS_CACHE_RR_MAX, rc;

	if (q->type == DNS_RR_A)
		rc = ares_parse_a_reply(abuf, alen, NULL, t4, &n);
	else
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n);
	if (rc == ARES_ENODATA)
		return 0;
	if (rc != ARES_SUCCESS)
		return -1;
	for (int i = 0; i < n && i < DNS_CACHE_RR_MAX; i++) {
		if (inet_ntop(q->type == DNS_RR_A ? AF_INET : AF_INET6,
		    q->type == DNS_RR_A ? (void *)&t4[i].ipaddr :
		    (void *)&t6[i].ip6addr, txt, sizeof(txt)) == NULL)
			return -1;
		if (dns_rrq_add(q, txt, strlen(txt)) == -1)
			return -1;
	}
	return 0;
}

static int
dns_rrq_names(struct dns_rrq *q, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply	*mx, *m;
	struct hostent		*he;
	struct in_addr		 dummy;
	int			 rc = 0;

	if (q->type == DNS_RR_MX) {
		if ((rc = ares_parse_mx_reply(abuf, alen, &mx)) ==
		    ARES_ENODATA)
			return 0;
		if (rc != ARES_SUCCESS)
			return -1;
		for (m = mx; m != NULL && rc == 0; m = m->next)
			rc = dns_rrq_add(q, m->host, strlen(m->host));
		ares_free_data(mx);
		return rc;
	}
	memset(&dummy, 0, sizeof(dummy));
	if ((rc = ares_parse_ptr_reply(abuf, alen, &dummy, sizeof(dummy),
	    AF_INET, &he)) == ARES_ENODATA)
		return 0;
	if (rc != ARES_SUCCESS)
		return -1;
	if (he->h_name != NULL)
		rc = dns_rrq_add(q, he->h_name, strlen(he->h_name));
	for (size_t i = 0; rc == 0 && he->h_aliases != NULL &&
	    he->h_aliases[i] != NULL; i++)
		if (he->h_name == NULL ||
		    strcasecmp(he->h_aliases[i], he->h_name) != 0)
			rc = dns_rrq_add(q, he->h_aliases[i],
			    strlen(he->h_aliases[i]));
	ares_free_hostent(he);
	return rc;
}

/*
 * A name for dns_rr(): SPF macros may put any printable octet into a
 * label (an `exists` on a local part), so only the lengths, empty
 * labels, controls, space and the escape character are refused.
 */
static int
dns_rr_name_ok(const char *s)
{
	size_t	 len, label = 0;

	len = strnlen(s, DNS_NAME_MAX + 1);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (c <= ' ' || c >= 0x7f || c == '\\' ||
		    ++label > 63)
			return -1;
	}
	return label == 0 ? -1 : 0;
}

static void
dns_rrq_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_rrq	*q = arg;
	int		 rc;

	(void)timeouts;
	if (status == ARES_SUCCESS) {
		if (q->type == DNS_RR_TXT)
			rc = dns_rrq_txt(q, abuf, alen);
		else if (q->type == DNS_RR_A || q->type == DNS_RR_AAAA)
			rc = dns_rrq_addrs(q, abuf, alen);
		else
			rc = dns_rrq_names(q, abuf, alen);
		q->status = rc == 0 ? DNS_R_OK : DNS_R_TEMP;
	} else if (status == ARES_ENODATA)
		q->status = DNS_R_OK;
	else if (status == ARES_ENOTFOUND)
		q->status = DNS_R_NXDOMAIN;
	else
		q->status = DNS_R_TEMP;
	if (!q->dns->closing)
		event_active(q->done_ev, EV_TIMEOUT, 1);
}

int
dns_rr(struct dns *d, enum dns_rr type, const char *name, dns_rr_cb cb,
    void *arg)
{
	struct dns_rrq	*q;
	int		 t;

	switch (type) {
	case DNS_RR_A:		t = T_A; break;
	case DNS_RR_AAAA:	t = T_AAAA; break;
	case DNS_RR_MX:		t = T_MX; break;
	case DNS_RR_TXT:	t = 16; break;
	case DNS_RR_PTR:	t = 12; break;
	default:		return -1;
	}
	if (d->closing || (q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	if ((q->done_ev = event_new(d->base, -1, 0, dns_rrq_done_cb,
	    q)) == NULL) {
		free(q);
		return -1;
	}
	q->dns = d;
	q->cb = cb;
	q->arg = arg;
	q->type = type;
	q->status = DNS_R_TEMP;
	if ((q->next = d->rrqs) != NULL)
		q->next->prevp = &q->next;
	d->rrqs = q;
	q->prevp = &d->rrqs;
	if (dns_rr_name_ok(name) == -1) {
		q->status = DNS_R_NXDOMAIN;
		event_active(q->done_ev, EV_TIMEOUT, 1);
		return 0;
	}
	ares_query(d->chan, name, DNS_CLASS_IN, t, dns_rrq_cb, q);
	dns_arm_timer(d);
	return 0;
}

/* ---- one request ---- */

static void
dns_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req	*r = arg;

	(void)fd;
	(void)what;
	dns_req_unlink(r);
	r->cb(r->arg, &r->res);
	dns_req_free(r);
}

static void
dns_req_finish(struct dns_req *r)
{
	r->finished = 1;
	if (!r->dns->closing)
		event_active(r->done_ev, EV_TIMEOUT, 1);
}

/* Is a c-ares status a temporary failure (P3)? NODATA/NXDOMAIN are not. */
static int
dns_ares_temp(int status)
{
	return status != ARES_SUCCESS && status != ARES_ENODATA &&
	    status != ARES_ENOTFOUND;
}

static void
dns_hostq_addrs(struct dns_hostq *h, int family, const unsigned char *abuf,
    int alen)
{
	struct ares_addrttl	 t4[DNS_ADDR_PER_HOST];
	struct ares_addr6ttl	 t6[DNS_ADDR_PER_HOST];
	int			 n = DNS_ADDR_PER_HOST, rc, i;

	if (family == AF_INET)
		rc = ares_parse_a_reply(abuf, alen, NULL, t4, &n);
	else
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n);
	if (rc != ARES_SUCCESS) {
		if (dns_ares_temp(rc)) {
			h->temp = 1;
			snprintf(h->why, sizeof(h->why), "%s",
			    ares_strerror(rc));
		}
		return;
	}
	for (i = 0; i < n && i < DNS_ADDR_PER_HOST; i++) {
		if (family == AF_INET)
			h->a4[h->n4++] = t4[i].ipaddr;
		else
			memcpy(&h->a6[h->n6++], &t6[i].ip6addr, 16);
	}
}

static void
dns_addr_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_sub		*s = arg;
	struct dns_hostq	*h = s->host;

	(void)timeouts;
	if (status == ARES_SUCCESS)
		dns_hostq_addrs(h, s->family, abuf, alen);
	else if (dns_ares_temp(status)) {
		h->temp = 1;
		snprintf(h->why, sizeof(h->why), "%s", ares_strerror(status));
	}
	dns_req_release(h->req);
}

/* one host's addresses into the result, preferred family first */
static void
dns_hostq_emit(struct dns_mx_result *res, const struct dns_hostq *h,
    int prefer_ipv4)
{
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	size_t			 i;
	int			 pass;

	for (pass = 0; pass < 2; pass++) {
		if ((pass == 0) == (prefer_ipv4 != 0)) {
			for (i = 0; i < h->n4; i++) {
				memset(&s4, 0, sizeof(s4));
				s4.sin_family = AF_INET;
				s4.sin_addr = h->a4[i];
				dns_result_add(res, h->pref, h->name,
				    (struct sockaddr *)&s4, sizeof(s4));
			}
		} else {
			for (i = 0; i < h->n6; i++) {
				memset(&s6, 0, sizeof(s6));
				s6.sin6_family = AF_INET6;
				s6.sin6_addr = h->a6[i];
				dns_result_add(res, h->pref, h->name,
				    (struct sockaddr *)&s6, sizeof(s6));
			}
		}
	}
}

/* All host lookups are in: build the ordered list or the failure. */
static void
dns_req_assemble(struct dns_req *r)
{
	struct dns_mx_result	*res = &r->res;
	const char		*why = NULL;
	size_t			 i;

	for (i = 0; i < r->nhosts; i++) {
		const struct dns_hostq *h = &r->hosts[i];

		if (h->n4 + h->n6 == 0) {
			res->mx_skipped++;
			if (h->temp) {
				res->mx_tempfail++;
				if (why == NULL)
					why = h->why;
			}
			continue;
		}
		dns_hostq_emit(res, h, r->dns->prefer_ipv4);
	}
	if (res->count > 0)
		return;
	if (res->mx_tempfail > 0)
		dns_result_fail(res, DNS_TEMPFAIL, why);
	else
		dns_result_fail(res, DNS_NOHOSTS, res->implicit ?
		    "no MX records and no address" : NULL);
}

/* One c-ares query fewer outstanding; the last one completes the request. */
static void
dns_req_release(struct dns_req *r)
{
	if (--r->pending > 0 || r->finished)
		return;
	if (r->dns->closing) {
		r->finished = 1;	/* dns_free() reports it */
		return;
	}
	if (r->hosts != NULL && r->res.status == DNS_OK)
		dns_req_assemble(r);
	dns_req_finish(r);
}

/* Start AAAA and A lookups for the n chosen hosts. */
static void
dns_req_hosts(struct dns_req *r, const struct dns_mxrec *recs, size_t n)
{
	struct dns_hostq	*h;
	size_t			 i;
	int			 k;

	if ((r->hosts = calloc(n, sizeof(*r->hosts))) == NULL) {
		dns_result_fail(&r->res, DNS_TEMPFAIL, "out of memory");
		return;
	}
	r->nhosts = n;
	for (i = 0; i < n; i++) {
		h = &r->hosts[i];
		h->req = r;
		h->pref = recs[i].pref;
		memcpy(h->name, recs[i].name, sizeof(h->name));
		h->sub[0].family = AF_INET6;
		h->sub[1].family = AF_INET;
		for (k = 0; k < 2; k++) {
			h->sub[k].host = h;
			r->pending++;
			ares_query(r->dns->chan, h->name, DNS_CLASS_IN,
			    k == 0 ? T_AAAA : T_A, dns_addr_cb, &h->sub[k]);
		}
	}
}

/* RFC 5321 5.1: the name exists but has no MX: it is its own MX */
static void
dns_req_implicit(struct dns_req *r)
{
	struct dns_mxrec	 self;

	r->res.implicit = 1;
	self.pref = 0;
	memcpy(self.name, r->res.domain, sizeof(self.name));
	dns_req_hosts(r, &self, 1);
}

/* An MX answer: select the hosts, or detect null MX. */
static void
dns_req_mx_answer(struct dns_req *r, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply	*mx = NULL, *m;
	struct dns_mxrec	*recs;
	size_t			 n = 0, total = 0;
	int			 rc, nullmx;

	rc = ares_parse_mx_reply(abuf, alen, &mx);
	if (rc == ARES_ENODATA)
		goto implicit;
	if (rc != ARES_SUCCESS) {
		dns_result_fail(&r->res, DNS_TEMPFAIL, ares_strerror(rc));
		return;
	}
	for (m = mx; m != NULL; m = m->next)
		total++;
	recs = calloc(total < DNS_MX_RAW_MAX ? total : DNS_MX_RAW_MAX,
	    sizeof(*recs));
	if (recs == NULL) {
		ares_free_data(mx);
		dns_result_fail(&r->res, DNS_TEMPFAIL, "out of memory");
		return;
	}
	for (m = mx; m != NULL && n < DNS_MX_RAW_MAX; m = m->next) {
		if (strlen(m->host) > DNS_NAME_MAX)
			continue;	/* cannot happen in DNS; be sure */
		recs[n].pref = m->priority;
		memcpy(recs[n].name, m->host, strlen(m->host) + 1);
		n++;
	}
	ares_free_data(mx);
	r->res.mx_records = total;
	if (total == 0) {
		free(recs);
		goto implicit;
	}
	n = dns_mx_select(recs, n, DNS_MX_MAX, &r->dns->rng, &nullmx);
	r->res.mx_skipped = total - n;
	if (nullmx)
		dns_result_fail(&r->res, DNS_NULLMX, NULL);
	else if (n == 0)
		dns_result_fail(&r->res, DNS_NOHOSTS, "only root MX records");
	else
		dns_req_hosts(r, recs, n);
	free(recs);
	return;
implicit:
	dns_req_implicit(r);
}

static void
dns_mx_query_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req	*r = arg;

	(void)timeouts;
	r->pending++;	/* hold the request while host queries start */
	switch (status) {
	case ARES_SUCCESS:
		dns_req_mx_answer(r, abuf, alen);
		break;
	case ARES_ENODATA:
		dns_req_implicit(r);
		break;
	case ARES_ENOTFOUND:
		dns_result_fail(&r->res, DNS_NXDOMAIN, NULL);
		break;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		dns_result_fail(&r->res, DNS_CANCELLED, NULL);
		break;
	default:
		dns_result_fail(&r->res, DNS_TEMPFAIL, ares_strerror(status));
		break;
	}
	dns_req_release(r);	/* the hold */
	dns_req_release(r);	/* the MX query */
}

static int
dns_req_literal(struct dns_req *r, const char *domain)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 rc;

	rc = dns_parse_literal(domain, &ss, &sslen);
	if (rc == 1)
		dns_result_add(&r->res, 0, domain, (struct sockaddr *)&ss,
		    sslen);
	else if (rc == -1)
		dns_result_fail(&r->res, DNS_BADNAME, NULL);
	return rc;
}

/* Start a lookup: the MX of domain, or (host) only its own addresses. */
static int
dns_start(struct dns *d, const char *domain, int host, dns_mx_cb cb,
    void *arg)
{
	struct dns_req	*r;

	if (d->closing || (r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	if ((r->done_ev = event_new(d->base, -1, 0, dns_done_cb, r)) == NULL) {
		free(r);
		return -1;
	}
	r->dns = d;
	r->cb = cb;
	r->arg = arg;
	if ((r->next = d->reqs) != NULL)
		r->next->prevp = &r->next;
	d->reqs = r;
	r->prevp = &d->reqs;
	dns_result_init(&r->res, domain);
	if (dns_req_literal(r, domain) != 0) {
		dns_req_finish(r);
		return 0;
	}
	if (dns_check_name(domain) == -1) {
		dns_result_fail(&r->res, DNS_BADNAME, NULL);
		dns_req_finish(r);
		return 0;
	}
	if (host) {
		r->pending = 1;	/* a hold while the queries start */
		dns_req_implicit(r);
		r->res.implicit = 0;
		dns_req_release(r);
	} else {
		r->pending = 2;	/* the MX query, and a hold */
		ares_query(d->chan, domain, DNS_CLASS_IN, T_MX,
		    dns_mx_query_cb, r);
		dns_req_release(r);
	}
	dns_arm_timer(d);
	return 0;
}

int
dns_mx(struct dns *d, const char *domain, dns_mx_cb cb, void *arg)
{
	return dns_start(d, domain, 0, cb, arg);
}

int
dns_host(struct dns *d, const char *name, dns_mx_cb cb, void *arg)
{
	return dns_start(d, name, 1, cb, arg);
}
