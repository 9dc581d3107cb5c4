/*
 * spf - RFC 7208 check_host() over a dns_cache (spf.h).
 *
 * One evaluation walks the record of a domain twice: a syntax pass (a
 * record with an error anywhere is a permerror, 4.6) and an evaluation
 * pass, left to right, recursing for include and redirect. Nothing is
 * kept between calls: the counters (lookups, void lookups) and the
 * reason live in a context on the stack, so a run after more answers
 * arrived starts over and reaches the same point deterministically.
 *
 * Terms are not stored: both passes re-read them from the record text,
 * which stays in the cache for the whole call. Stack use per include
 * level is a few hundred octets plus the transient expansion buffers.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "spf.h"

#define R_NEED		(-1)	/* an answer is missing */
#define R_NOMATCH	(-2)	/* go on with the next term */
#define R_MATCH		(-3)
#define R_OK		(-4)

#define SPF_EXPAND_MAX	1024	/* work buffer for one expansion */

struct spf_ctx {
	const struct spf_query	*q;
	struct dns_cache	*dc;
	int			 af;	/* AF_INET (also v4-mapped), AF_INET6 */
	unsigned char		 ip[16];
	const char		*local;	/* sender's local-part */
	size_t			 llen;
	const char		*sdom;	/* sender's domain */
	size_t			 sdlen;	/* without a trailing dot */
	unsigned		 lookups, voids;
	char			 reason[256];
};

enum spf_mech {
	M_ALL, M_INCLUDE, M_A, M_MX, M_PTR, M_IP4, M_IP6, M_EXISTS,
	M_REDIRECT, M_EXP, M_MODIFIER
};

struct spf_term {
	const char	*text;		/* the term without qualifier */
	size_t		 len;
	char		 qual;
	enum spf_mech	 mech;
	const char	*arg;		/* domain-spec, NULL if none */
	size_t		 alen;
	unsigned	 cidr4, cidr6;
	unsigned char	 net[16];	/* ip4, ip6 */
};

static const struct {
	const char	*name;
	enum spf_mech	 mech;
} spf_mechs[] = {
	{ "all", M_ALL }, { "include", M_INCLUDE }, { "a", M_A },
	{ "mx", M_MX }, { "ptr", M_PTR }, { "ip4", M_IP4 }, { "ip6", M_IP6 },
	{ "exists", M_EXISTS },
};

/* output that either keeps its head (text) or its tail (domain names) */
struct obuf {
	char	*p;
	size_t	 cap;		/* with the NUL */
	size_t	 len;
	int	 tail;
	int	 cut;
};

static int	spf_eval(struct spf_ctx *, const char *, unsigned);

/* ---- characters ---- */

static int
is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static int
is_alpha(int ch)
{
	return (ch | 0x20) >= 'a' && (ch | 0x20) <= 'z';
}

static int
is_alnum(int ch)
{
	return is_digit(ch) || is_alpha(ch);
}

static int
is_namech(int ch)
{
	return is_alnum(ch) || ch == '-' || ch == '_' || ch == '.';
}

static void
ob_add(struct obuf *o, const char *s, size_t n)
{
	size_t	 room = o->cap - 1;

	if (!o->tail) {
		if (n > room - o->len) {
			n = room - o->len;
			o->cut = 1;
		}
	} else if (n >= room) {
		s += n - room;
		n = room;
		o->len = 0;
		o->cut = 1;
	} else if (o->len + n > room) {
		size_t	 drop = o->len + n - room;

		memmove(o->p, o->p + drop, o->len - drop);
		o->len -= drop;
		o->cut = 1;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
ob_adds(struct obuf *o, const char *s)
{
	ob_add(o, s, strlen(s));
}

/* ---- macros (section 7) ---- */

struct macro {
	const char	*lit;		/* %% %_ %-: the text */
	int		 letter;	/* lower case */
	int		 upper;
	unsigned	 keep;		/* 0: all parts */
	int		 rev;
	char		 delims[8];	/* NUL ended, "." if none given */
};

/*
 * The macro-expand at s (s[0] == '%'): its length, 0 if malformed.
 * c, r and t are letters of explanation text only (7.2).
 */
static size_t
macro_parse(const char *s, size_t n, int exp, struct macro *m)
{
	size_t	 i = 2, nd = 0;
	int	 digits = 0;

	memset(m, 0, sizeof(*m));
	if (n < 2)
		return 0;
	switch (s[1]) {
	case '%':	m->lit = "%";	return 2;
	case '_':	m->lit = " ";	return 2;
	case '-':	m->lit = "%20";	return 2;
	case '{':	break;
	default:	return 0;
	}
	if (i >= n || strchr("slodiphcrtvSLODIPHCRTV", s[i]) == NULL ||
	    s[i] == '\0')
		return 0;
	m->upper = s[i] >= 'A' && s[i] <= 'Z';
	m->letter = s[i++] | 0x20;
	if (!exp && strchr("crt", m->letter) != NULL)
		return 0;
	for (; i < n && is_digit(s[i]); i++, digits = 1)
		if (m->keep < 1000)
			m->keep = m->keep * 10 + (unsigned)(s[i] - '0');
	if (digits && m->keep == 0)
		return 0;	/* a part count of zero is not allowed */
	if (i < n && (s[i] | 0x20) == 'r') {
		m->rev = 1;
		i++;
	}
	for (; i < n && s[i] != '\0' && strchr(".-+,/_=", s[i]) != NULL; i++)
		if (nd < sizeof(m->delims) - 1 && strchr(m->delims, s[i]) == NULL)
			m->delims[nd++] = s[i];
	if (i >= n || s[i] != '}')
		return 0;
	if (nd == 0)
		m->delims[0] = '.';
	return i + 1;
}

/* the text of a literal character: printable ASCII but '%' (and SP in exp) */
static int
macro_literal(int ch, int exp)
{
	return (ch > 0x20 && ch < 0x7f && ch != '%') || (exp && ch == ' ');
}

/* 0 if s[0..n) is a macro-string; *endmacro: it ends with a macro-expand */
static int
macro_check(const char *s, size_t n, int exp, int *endmacro)
{
	struct macro	 m;
	size_t		 i = 0, k;

	*endmacro = 0;
	while (i < n) {
		if (s[i] == '%') {
			if ((k = macro_parse(s + i, n - i, exp, &m)) == 0)
				return -1;
			i += k;
			*endmacro = 1;
		} else if (macro_literal((unsigned char)s[i], exp)) {
			i++;
			*endmacro = 0;
		} else
			return -1;
	}
	return 0;
}

/* IPv6 address as 32 dot-separated nibbles, in order or reversed */
static void
ip6_nibbles(const unsigned char ip[16], int rev, char out[64])
{
	static const char hex[] = "0123456789abcdef";
	size_t	 o = 0;

	for (int i = 0; i < 32; i++) {
		int	 k = rev ? 31 - i : i;
		int	 nib = k % 2 ? ip[k / 2] & 0xf : ip[k / 2] >> 4;

		if (i > 0)
			out[o++] = '.';
		out[o++] = hex[nib];
	}
	out[o] = '\0';
}

/* the value of a macro letter, before transformers */
static void
macro_value(const struct spf_ctx *c, int letter, const char *domain,
    struct obuf *v)
{
	char	 tmp[INET6_ADDRSTRLEN + 64];

	switch (letter) {
	case 's':
		ob_add(v, c->local, c->llen);
		ob_add(v, "@", 1);
		ob_add(v, c->sdom, c->sdlen);
		break;
	case 'o':
		ob_add(v, c->sdom, c->sdlen);
		break;
	case 'l':
		ob_add(v, c->local, c->llen);
		break;
	case 'd':
		ob_adds(v, domain);
		break;
	case 'i':
		if (c->af == AF_INET6)
			ip6_nibbles(c->ip, 0, tmp);
		else if (inet_ntop(AF_INET, c->ip, tmp, sizeof(tmp)) == NULL)
			tmp[0] = '\0';
		ob_adds(v, tmp);
		break;
	case 'p':	/* 7.3: "unknown" rather than PTR validation */
		ob_adds(v, "unknown");
		break;
	case 'v':
		ob_adds(v, c->af == AF_INET ? "in-addr" : "ip6");
		break;
	case 'h':
		ob_adds(v, c->q->helo != NULL ? c->q->helo : "");
		break;
	case 'c':
		if (inet_ntop(c->af, c->ip, tmp, sizeof(tmp)) == NULL)
			tmp[0] = '\0';
		ob_adds(v, tmp);
		break;
	case 'r':
		ob_adds(v, c->q->receiver != NULL && *c->q->receiver != '\0' ?
		    c->q->receiver : "unknown");
		break;
	case 't':
		snprintf(tmp, sizeof(tmp), "%lld", c->q->now);
		ob_adds(v, tmp);
		break;
	}
}

/* add one part of v (from b to e) joined by '.' */
static void
part_add(struct obuf *o, const char *b, size_t n, int *first)
{
	if (!*first)
		ob_add(o, ".", 1);
	*first = 0;
	ob_add(o, b, n);
}

/*
 * 7.3: split v on the delimiters, reverse if asked, keep the rightmost
 * m->keep parts, join with '.'. Linear: the parts are found by scanning.
 */
static void
macro_transform(const struct macro *m, const char *v, size_t n,
    struct obuf *o)
{
	size_t	 nparts = 1, keep, i, pos, start;
	int	 first = 1;

	for (i = 0; i < n; i++)
		if (strchr(m->delims, v[i]) != NULL && v[i] != '\0')
			nparts++;
	keep = m->keep == 0 || m->keep > nparts ? nparts : m->keep;
	if (!m->rev) {
		/* parts nparts-keep .. nparts-1, in order */
		size_t	 skip = nparts - keep;

		for (pos = 0; skip > 0; pos++)
			if (strchr(m->delims, v[pos]) != NULL)
				skip--;
		for (start = pos; pos <= n; pos++)
			if (pos == n || strchr(m->delims, v[pos]) != NULL) {
				part_add(o, v + start, pos - start, &first);
				start = pos + 1;
			}
		return;
	}
	/* reversed: parts keep-1 .. 0 of the original order */
	for (pos = 0, i = 0; pos < n; pos++)
		if (strchr(m->delims, v[pos]) != NULL && ++i == keep)
			break;
	for (;;) {
		for (start = pos; start > 0 &&
		    strchr(m->delims, v[start - 1]) == NULL; start--)
			;
		part_add(o, v + start, pos - start, &first);
		if (start == 0)
			break;
		pos = start - 1;
	}
}

/* URL-escape (7.3) what is not unreserved */
static void
macro_escape(const char *s, size_t n, struct obuf *o)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char	 ch = (unsigned char)s[i];
		char		 e[3] = { '%', hex[ch >> 4], hex[ch & 0xf] };

		if (is_alnum(ch) || ch == '-' || ch == '.' || ch == '_' ||
		    ch == '~')
			ob_add(o, s + i, 1);
		else
			ob_add(o, e, 3);
	}
}

/*
 * expand the macro-string s[0..n) into o; -1 on a syntax error, -2 past
 * SPF_EXPAND_WORK octets of values (CPU: the record is hostile, and the
 * whole evaluation runs again after every DNS round)
 */
static int
macro_expand(const struct spf_ctx *c, const char *domain, const char *s,
    size_t n, int exp, struct obuf *o)
{
	char		 vb[SPF_EXPAND_MAX], tb[SPF_EXPAND_MAX];
	struct obuf	 v = { vb, sizeof(vb), 0, 0, 0 };
	struct obuf	 t = { tb, sizeof(tb), 0, 0, 0 };
	struct macro	 m;
	size_t		 i = 0, k, work = 0;

	while (i < n) {
		if (s[i] != '%') {
			if (!macro_literal((unsigned char)s[i], exp))
				return -1;
			for (k = i; k < n && s[k] != '%'; k++)
				if (!macro_literal((unsigned char)s[k], exp))
					return -1;
			ob_add(o, s + i, k - i);
			i = k;
			continue;
		}
		if ((k = macro_parse(s + i, n - i, exp, &m)) == 0)
			return -1;
		i += k;
		if (m.lit != NULL) {
			ob_adds(o, m.lit);
			continue;
		}
		v.len = t.len = 0;
		vb[0] = tb[0] = '\0';
		macro_value(c, m.letter, domain, &v);
		if ((work += v.len) > SPF_EXPAND_WORK)
			return -2;
		macro_transform(&m, vb, v.len, &t);
		if (m.upper)		/* 7.3: in a domain-spec too */
			macro_escape(tb, t.len, o);
		else
			ob_add(o, tb, t.len);
	}
	return 0;
}

/*
 * The name a domain-spec expands to: without a trailing dot, cut from
 * the left label by label to SPF_DOMAIN_MAX (7.3). -1 on a syntax error,
 * -2 when the values are too long (macro_expand).
 */
static int
spf_target(const struct spf_ctx *c, const char *spec, size_t n,
    const char *domain, char out[SPF_DOMAIN_MAX + 1])
{
	char		 buf[SPF_EXPAND_MAX];
	struct obuf	 o = { buf, sizeof(buf), 0, 1, 0 };
	const char	*p = buf, *dot;
	size_t		 len;
	int		 r;

	buf[0] = '\0';
	if ((r = macro_expand(c, domain, spec, n, 0, &o)) < 0)
		return r;
	len = o.len;
	if (len > 0 && buf[len - 1] == '.')
		len--;
	if (o.cut && (dot = memchr(p, '.', len)) != NULL) {
		len -= (size_t)(dot + 1 - p);	/* a partial first label */
		p = dot + 1;
	}
	while (len > SPF_DOMAIN_MAX && (dot = memchr(p, '.', len)) != NULL) {
		len -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	if (len > SPF_DOMAIN_MAX) {
		p += len - SPF_DOMAIN_MAX;
		len = SPF_DOMAIN_MAX;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

/* ---- record syntax (section 4.6.1, 12) ---- */

/* domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro-expand */
static int
domain_spec_ok(const char *s, size_t n)
{
	size_t	 b, e;
	int	 endmacro, alpha = 0, dash = 0;

	if (n == 0 || macro_check(s, n, 0, &endmacro) == -1)
		return 0;
	if (endmacro)
		return 1;
	if (s[n - 1] == '.')
		n--;
	for (e = b = n; b > 0 && (is_alnum(s[b - 1]) || s[b - 1] == '-'); b--) {
		alpha |= is_alpha(s[b - 1]);
		dash |= s[b - 1] == '-';
	}
	if (b == e || b == 0 || s[b - 1] != '.')
		return 0;
	/* toplabel: alphanumerics and '-', not at either end, not all digits */
	return s[b] != '-' && s[e - 1] != '-' && (alpha || dash);
}

/* "0" or a number without a leading zero, at most max; -1 if not */
static int
cidr_parse(const char *s, size_t n, unsigned max)
{
	unsigned	 v = 0;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v > max ? -1 : (int)v;
}

/* strip a dual-cidr-length ("/24", "//64", "/24//64") off s[0..*n) */
static int
dual_cidr(const char *s, size_t *n, struct spf_term *t)
{
	size_t	 e = *n, p = e;
	int	 v;

	while (p > 0 && is_digit(s[p - 1]))
		p--;
	if (p < e && p >= 2 && s[p - 1] == '/' && s[p - 2] == '/') {
		if ((v = cidr_parse(s + p, e - p, 128)) == -1)
			return -1;
		t->cidr6 = (unsigned)v;
		for (e = p = p - 2; p > 0 && is_digit(s[p - 1]); p--)
			;
	}
	if (p < e && p >= 1 && s[p - 1] == '/') {
		if ((v = cidr_parse(s + p, e - p, 32)) == -1)
			return -1;
		t->cidr4 = (unsigned)v;
		e = p - 1;
	}
	*n = e;
	return 0;
}

/* ip4:/ip6: network [ "/" cidr ] */
static int
ip_network(const char *s, size_t n, int af, struct spf_term *t)
{
	const char	*slash = memchr(s, '/', n);
	size_t		 alen = slash != NULL ? (size_t)(slash - s) : n;
	char		 buf[INET6_ADDRSTRLEN];
	int		 v;

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(af, buf, t->net) != 1)
		return -1;
	if (slash == NULL)
		return 0;
	if ((v = cidr_parse(slash + 1, n - alen - 1,
	    af == AF_INET ? 32 : 128)) == -1)
		return -1;
	if (af == AF_INET)
		t->cidr4 = (unsigned)v;
	else
		t->cidr6 = (unsigned)v;
	return 0;
}

/* ":" domain-spec, optional or required */
static int
colon_spec(const char *s, size_t n, int required, struct spf_term *t)
{
	if (n == 0)
		return required ? -1 : 0;
	if (s[0] != ':' || !domain_spec_ok(s + 1, n - 1))
		return -1;
	t->arg = s + 1;
	t->alen = n - 1;
	return 0;
}

static int
spf_parse_modifier(const char *name, size_t nl, const char *v, size_t vn,
    struct spf_term *t)
{
	int	 endmacro;

	if (nl == 8 && strncasecmp(name, "redirect", 8) == 0)
		t->mech = M_REDIRECT;
	else if (nl == 3 && strncasecmp(name, "exp", 3) == 0)
		t->mech = M_EXP;
	else {
		t->mech = M_MODIFIER;	/* unknown: ignored, but well formed */
		return macro_check(v, vn, 0, &endmacro);
	}
	if (!domain_spec_ok(v, vn))
		return -1;
	t->arg = v;
	t->alen = vn;
	return 0;
}

/* parse one term s[0..n) (no spaces); -1 on a syntax error */
static int
spf_parse_term(const char *s, size_t n, struct spf_term *t)
{
	size_t	 i;

	memset(t, 0, sizeof(*t));
	t->text = s;
	t->len = n;
	t->qual = '+';
	t->cidr4 = 32;
	t->cidr6 = 128;
	if (n > 0 && is_alpha(s[0])) {
		for (i = 1; i < n && is_namech(s[i]); i++)
			;
		if (i < n && s[i] == '=')
			return spf_parse_modifier(s, i, s + i + 1, n - i - 1, t);
	}
	if (n > 0 && (s[0] == '+' || s[0] == '-' || s[0] == '~' ||
	    s[0] == '?')) {
		t->qual = s[0];
		t->text = ++s;
		t->len = --n;
	}
	for (i = 0; i < n && is_alnum(s[i]); i++)
		;
	for (size_t k = 0; k < sizeof(spf_mechs) / sizeof(spf_mechs[0]); k++)
		if (strlen(spf_mechs[k].name) == i &&
		    strncasecmp(s, spf_mechs[k].name, i) == 0) {
			t->mech = spf_mechs[k].mech;
			s += i;
			n -= i;
			goto found;
		}
	return -1;
found:
	switch (t->mech) {
	case M_ALL:
		return n == 0 ? 0 : -1;
	case M_INCLUDE:
	case M_EXISTS:
		return colon_spec(s, n, 1, t);
	case M_PTR:
		return colon_spec(s, n, 0, t);
	case M_A:
	case M_MX:
		if (dual_cidr(s, &n, t) == -1)
			return -1;
		return colon_spec(s, n, 0, t);
	case M_IP4:
	case M_IP6:
		if (n < 2 || s[0] != ':')
			return -1;
		return ip_network(s + 1, n - 1,
		    t->mech == M_IP4 ? AF_INET : AF_INET6, t);
	default:
		return -1;
	}
}

/* the next term of a record at *p, 0 at the end */
static int
next_term(const char **p, const char **term, size_t *len)
{
	const char	*s = *p;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	*term = s;
	while (*s != ' ' && *s != '\0')
		s++;
	*len = (size_t)(s - *term);
	*p = s;
	return 1;
}

static int
is_spf1(const char *rr)
{
	return strncasecmp(rr, "v=spf1", 6) == 0 &&
	    (rr[6] == ' ' || rr[6] == '\0');
}

/* ---- results and DNS ---- */

static int
spf_perm(struct spf_ctx *c, const char *what, const char *arg, size_t alen)
{
	if (alen > 200)
		alen = 200;
	snprintf(c->reason, sizeof(c->reason), "%s%.*s", what, (int)alen,
	    arg != NULL ? arg : "");
	return SPF_PERMERROR;
}

static int
spf_temp(struct spf_ctx *c, const struct dns_rrset *rs, enum dns_rr t,
    const char *name)
{
	snprintf(c->reason, sizeof(c->reason), "%s %s %s",
	    rs == &dns_cache_full ? "too many DNS questions, at" :
	    "DNS timeout for", dns_rr_name(t), name);
	return SPF_TEMPERROR;
}

/* an NXDOMAIN or empty answer: no match, or a permerror past the limit */
static int
spf_void(struct spf_ctx *c)
{
	if (++c->voids > SPF_VOID_MAX) {
		snprintf(c->reason, sizeof(c->reason),
		    "more than %d void DNS lookups", SPF_VOID_MAX);
		return SPF_PERMERROR;
	}
	return R_NOMATCH;
}

static int
ip_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	size_t		 full = bits / 8;
	unsigned	 rest = bits % 8;
	unsigned char	 mask;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* does an address of the answer match the client within bits */
static int
rrset_match(const struct spf_ctx *c, const struct dns_rrset *rs,
    unsigned bits)
{
	unsigned char	 a[16];

	if (rs->status != DNS_R_OK)
		return 0;
	for (size_t i = 0; i < rs->n; i++)
		if (inet_pton(c->af, rs->rr[i], a) == 1 &&
		    ip_match(a, c->ip, bits))
			return 1;
	return 0;
}

static enum dns_rr
addr_rr(const struct spf_ctx *c)
{
	return c->af == AF_INET ? DNS_RR_A : DNS_RR_AAAA;
}

/* the single SPF record of domain in *rec, or a result (4.5) */
static int
spf_record(struct spf_ctx *c, const char *domain, const char **rec)
{
	const struct dns_rrset	*rs;

	*rec = NULL;
	if ((rs = dns_cache_get(c->dc, DNS_RR_TXT, domain)) == NULL)
		return R_NEED;
	if (rs->status == DNS_R_TEMP)
		return spf_temp(c, rs, DNS_RR_TXT, domain);
	for (size_t i = 0; rs->status == DNS_R_OK && i < rs->n; i++) {
		if (!is_spf1(rs->rr[i]))
			continue;
		if (*rec != NULL)
			return spf_perm(c, "more than one SPF record for ",
			    domain, strlen(domain));
		*rec = rs->rr[i];
	}
	if (*rec == NULL) {
		snprintf(c->reason, sizeof(c->reason),
		    "no SPF record for %s", domain);
		return SPF_NONE;
	}
	return R_OK;
}

/* ---- mechanisms (section 5) ---- */

static int
spf_a(struct spf_ctx *c, const char *target, const struct spf_term *t)
{
	const struct dns_rrset	*rs;

	if ((rs = dns_cache_get(c->dc, addr_rr(c), target)) == NULL)
		return R_NEED;
	if (rs->status == DNS_R_TEMP)
		return spf_temp(c, rs, addr_rr(c), target);
	if (rs->status != DNS_R_OK || rs->n == 0)
		return spf_void(c);
	return rrset_match(c, rs, c->af == AF_INET ? t->cidr4 : t->cidr6) ?
	    R_MATCH : R_NOMATCH;
}

/* mx: every host's addresses are asked in one pass (latency) */
static int
spf_mx(struct spf_ctx *c, const char *target, const struct spf_term *t)
{
	const struct dns_rrset	*rs, *a, *temp = NULL;
	const char		*tname = NULL;
	unsigned		 bits = c->af == AF_INET ? t->cidr4 : t->cidr6;
	int			 need = 0;

	if ((rs = dns_cache_get(c->dc, DNS_RR_MX, target)) == NULL)
		return R_NEED;
	if (rs->status == DNS_R_TEMP)
		return spf_temp(c, rs, DNS_RR_MX, target);
	if (rs->status != DNS_R_OK || rs->n == 0)
		return spf_void(c);
	if (rs->n > SPF_MX_MAX)
		return spf_perm(c, "more than 10 MX hosts for ", target,
		    strlen(target));
	for (size_t i = 0; i < rs->n; i++)
		if (dns_cache_get(c->dc, addr_rr(c), rs->rr[i]) == NULL)
			need = 1;
	if (need)
		return R_NEED;
	/* a host that matches decides, else the first DNS error: temperror */
	for (size_t i = 0; i < rs->n; i++) {
		a = dns_cache_get(c->dc, addr_rr(c), rs->rr[i]);
		if (a == NULL)		/* not reached: answered above */
			return R_NEED;
		if (rrset_match(c, a, bits))
			return R_MATCH;
		if (a->status == DNS_R_TEMP && temp == NULL) {
			temp = a;
			tname = rs->rr[i];
		}
	}
	return temp != NULL ? spf_temp(c, temp, addr_rr(c), tname) :
	    R_NOMATCH;
}

/* name is target or a subdomain of it (no case, no trailing dot) */
static int
name_under(const char *name, const char *target)
{
	size_t	 n = strlen(name), t = strlen(target);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (t > 0 && target[t - 1] == '.')
		t--;
	if (t == 0 || n < t || strncasecmp(name + n - t, target, t) != 0)
		return 0;
	return n == t || name[n - t - 1] == '.';
}

/* the PTR question for the client: d.c.b.a.in-addr.arpa or nibbles.ip6.arpa */
static void
ptr_name(const struct spf_ctx *c, char out[128])
{
	if (c->af == AF_INET) {
		snprintf(out, 128, "%u.%u.%u.%u.in-addr.arpa", c->ip[3],
		    c->ip[2], c->ip[1], c->ip[0]);
		return;
	}
	ip6_nibbles(c->ip, 1, out);
	memcpy(out + 63, ".ip6.arpa", sizeof(".ip6.arpa"));
}

/*
 * ptr (5.5): names of the client under target whose addresses include
 * the client. Only the first SPF_PTR_MAX names count (4.6.4); names not
 * under target are not looked up. XXX: a DNS error (on the PTR, or on
 * the address of a name under target when no other name matches) is a
 * temperror, where 5.5 says no match: a late answer must not turn
 * "ptr -all" into a fail, and a DMARC fail into a reject.
 */
static int
spf_ptr(struct spf_ctx *c, const char *target)
{
	const struct dns_rrset	*rs, *a, *temp = NULL;
	const char		*tname = NULL;
	char			 rev[128];
	size_t			 n;
	int			 need = 0;

	ptr_name(c, rev);
	if ((rs = dns_cache_get(c->dc, DNS_RR_PTR, rev)) == NULL)
		return R_NEED;
	if (rs->status == DNS_R_TEMP)
		return spf_temp(c, rs, DNS_RR_PTR, rev);
	if (rs->status != DNS_R_OK || rs->n == 0)
		return spf_void(c);
	n = rs->n < SPF_PTR_MAX ? rs->n : SPF_PTR_MAX;
	for (size_t i = 0; i < n; i++)
		if (name_under(rs->rr[i], target) &&
		    dns_cache_get(c->dc, addr_rr(c), rs->rr[i]) == NULL)
			need = 1;
	if (need)
		return R_NEED;
	for (size_t i = 0; i < n; i++) {
		if (!name_under(rs->rr[i], target))
			continue;
		a = dns_cache_get(c->dc, addr_rr(c), rs->rr[i]);
		if (a != NULL && rrset_match(c, a, c->af == AF_INET ? 32 : 128))
			return R_MATCH;
		if (a != NULL && a->status == DNS_R_TEMP && temp == NULL) {
			temp = a;
			tname = rs->rr[i];
		}
	}
	return temp != NULL ? spf_temp(c, temp, addr_rr(c), tname) :
	    R_NOMATCH;
}

/* exists: an A record, whatever the client's family (5.7) */
static int
spf_exists(struct spf_ctx *c, const char *target)
{
	const struct dns_rrset	*rs;

	if ((rs = dns_cache_get(c->dc, DNS_RR_A, target)) == NULL)
		return R_NEED;
	if (rs->status == DNS_R_TEMP)
		return spf_temp(c, rs, DNS_RR_A, target);
	if (rs->status != DNS_R_OK || rs->n == 0)
		return spf_void(c);
	return R_MATCH;
}

/* include (5.2): the table of results to match / no match / error */
static int
spf_include(struct spf_ctx *c, const char *target, unsigned depth)
{
	int	 r = spf_eval(c, target, depth + 1);

	switch (r) {
	case SPF_PASS:
		return R_MATCH;
	case SPF_FAIL:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL:
		return R_NOMATCH;
	case SPF_NONE:
		return spf_perm(c, "no SPF record for include:", target,
		    strlen(target));
	default:
		return r;	/* need, temperror, permerror */
	}
}

/* count a DNS-querying term and find the name it is about */
static int
spf_term_target(struct spf_ctx *c, const struct spf_term *t,
    const char *domain, char target[SPF_DOMAIN_MAX + 1])
{
	if (++c->lookups > SPF_LOOKUP_MAX)
		return spf_perm(c, "more than 10 DNS lookups", NULL, 0);
	if (t->arg == NULL) {
		snprintf(target, SPF_DOMAIN_MAX + 1, "%s", domain);
		return R_OK;
	}
	switch (spf_target(c, t->arg, t->alen, domain, target)) {
	case -1:
		return spf_perm(c, "bad macro in ", t->text, t->len);
	case -2:
		return spf_perm(c, "macro expansion too long in ", t->text,
		    t->len);
	}
	return R_OK;
}

static int
spf_mech(struct spf_ctx *c, const struct spf_term *t, const char *domain,
    unsigned depth)
{
	char	 target[SPF_DOMAIN_MAX + 1];
	int	 r;

	switch (t->mech) {
	case M_ALL:
		return R_MATCH;
	case M_IP4:
		return c->af == AF_INET && ip_match(t->net, c->ip, t->cidr4) ?
		    R_MATCH : R_NOMATCH;
	case M_IP6:
		return c->af == AF_INET6 && ip_match(t->net, c->ip, t->cidr6) ?
		    R_MATCH : R_NOMATCH;
	default:
		break;
	}
	if ((r = spf_term_target(c, t, domain, target)) != R_OK)
		return r;
	switch (t->mech) {
	case M_A:	return spf_a(c, target, t);
	case M_MX:	return spf_mx(c, target, t);
	case M_PTR:	return spf_ptr(c, target);
	case M_EXISTS:	return spf_exists(c, target);
	case M_INCLUDE:	return spf_include(c, target, depth);
	default:	return R_NOMATCH;	/* modifiers */
	}
}

/* ---- check_host() ---- */

/* the whole record is well formed (4.6); its redirect= in *redir */
static int
spf_syntax(struct spf_ctx *c, const char *rec, struct spf_term *redir,
    int *has_all)
{
	struct spf_term	 t;
	const char	*p = rec + 6, *s;
	size_t		 len;
	int		 nexp = 0;

	*has_all = 0;
	redir->text = NULL;
	for (s = rec; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			return spf_perm(c, "control or non-ASCII octet in "
			    "the SPF record", NULL, 0);
	while (next_term(&p, &s, &len)) {
		if (spf_parse_term(s, len, &t) == -1)
			return spf_perm(c, "syntax error at ", s, len);
		if (t.mech == M_ALL)
			*has_all = 1;
		else if (t.mech == M_EXP && nexp++ > 0)
			return spf_perm(c, "exp= twice", NULL, 0);
		else if (t.mech == M_REDIRECT) {
			if (redir->text != NULL)
				return spf_perm(c, "redirect= twice", NULL, 0);
			*redir = t;
		}
	}
	return R_OK;
}

static enum spf_result
qual_result(char q)
{
	switch (q) {
	case '-':	return SPF_FAIL;
	case '~':	return SPF_SOFTFAIL;
	case '?':	return SPF_NEUTRAL;
	default:	return SPF_PASS;
	}
}

/* redirect= (6.1): the target's result, none being a permerror */
static int
spf_redirect(struct spf_ctx *c, const struct spf_term *t, const char *domain,
    unsigned depth)
{
	char	 target[SPF_DOMAIN_MAX + 1];
	int	 r;

	if ((r = spf_term_target(c, t, domain, target)) != R_OK)
		return r;
	if ((r = spf_eval(c, target, depth + 1)) == SPF_NONE)
		return spf_perm(c, "no SPF record for redirect=", target,
		    strlen(target));
	return r;
}

/* check_host(ip, domain, sender): a result, or R_NEED */
static int
spf_eval(struct spf_ctx *c, const char *domain, unsigned depth)
{
	struct spf_term	 t, redir;
	const char	*rec, *p, *s;
	size_t		 len;
	int		 r, has_all;

	if (depth > SPF_DEPTH_MAX)
		return spf_perm(c, "include loop or too deep", NULL, 0);
	if ((r = spf_record(c, domain, &rec)) != R_OK)
		return r;
	memset(&redir, 0, sizeof(redir));
	if ((r = spf_syntax(c, rec, &redir, &has_all)) != R_OK)
		return r;
	for (p = rec + 6; next_term(&p, &s, &len); ) {
		if (spf_parse_term(s, len, &t) == -1)
			return spf_perm(c, "syntax error at ", s, len);
		if (t.mech >= M_REDIRECT)
			continue;
		if ((r = spf_mech(c, &t, domain, depth)) == R_MATCH) {
			snprintf(c->reason, sizeof(c->reason), "%.*s matched",
			    (int)(t.len > 200 ? 200 : t.len), t.text);
			return qual_result(t.qual);
		}
		if (r != R_NOMATCH)
			return r;
	}
	if (redir.text != NULL && !has_all)
		return spf_redirect(c, &redir, domain, depth);
	snprintf(c->reason, sizeof(c->reason), "no mechanism matched in %s",
	    domain);
	return SPF_NEUTRAL;
}

/* 4.3: a domain of two labels or more, each of 1 to 63 octets */
static int
domain_ok(const char *d)
{
	size_t	 len = strlen(d), label = 0, labels = 1;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (d[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			labels++;
		} else if (++label > 63)
			return 0;
	}
	return label > 0 && labels >= 2;
}

static int
spf_ctx_init(struct spf_ctx *c, const struct spf_query *q,
    struct dns_cache *dc)
{
	const char	*at;

	memset(c, 0, sizeof(*c));
	c->q = q;
	c->dc = dc;
	if (q->ip == NULL)
		return -1;
	if (q->ip->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)q->ip;

		c->af = AF_INET;
		memcpy(c->ip, &sin->sin_addr, 4);
	} else if (q->ip->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)q->ip;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			c->af = AF_INET;
			memcpy(c->ip, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			c->af = AF_INET6;
			memcpy(c->ip, sin6->sin6_addr.s6_addr, 16);
		}
	} else
		return -1;
	/* 4.3: no local-part is "postmaster"; the null sender is the HELO's */
	c->local = "postmaster";
	c->llen = strlen(c->local);
	c->sdom = q->helo != NULL ? q->helo : "";
	if (q->sender != NULL && *q->sender != '\0') {
		if ((at = strrchr(q->sender, '@')) == NULL)
			c->sdom = q->sender;
		else {
			c->sdom = at + 1;
			if (at > q->sender) {
				c->local = q->sender;
				c->llen = (size_t)(at - q->sender);
			}
		}
	}
	/* "example.com." is example.com: %{o1} must not be "" */
	c->sdlen = strlen(c->sdom);
	if (c->sdlen > 0 && c->sdom[c->sdlen - 1] == '.')
		c->sdlen--;
	return 0;
}

static void
spf_reason(struct spf_outcome *out, const char *r)
{
	size_t	 i;

	for (i = 0; r[i] != '\0' && i < sizeof(out->reason) - 1; i++)
		out->reason[i] = r[i] >= 0x20 && r[i] < 0x7f ? r[i] : '?';
	out->reason[i] = '\0';
}

int
spf_check(const struct spf_query *q, struct dns_cache *dc,
    struct spf_outcome *out)
{
	struct spf_ctx	 c;
	char		 domain[SPF_DOMAIN_MAX + 1];
	int		 r;

	memset(out, 0, sizeof(*out));
	if (spf_ctx_init(&c, q, dc) == -1) {
		out->result = SPF_PERMERROR;
		spf_reason(out, "client address not IPv4 or IPv6");
		return 1;
	}
	if (q->domain == NULL || !domain_ok(q->domain)) {
		out->result = SPF_NONE;
		spf_reason(out, "not a multi-label domain name");
		return 1;
	}
	/* domain_ok() said it fits, a trailing dot aside: %{d1} is no "" */
	snprintf(domain, sizeof(domain), "%s", q->domain);
	if (domain[0] != '\0' && domain[strlen(domain) - 1] == '.')
		domain[strlen(domain) - 1] = '\0';
	r = spf_eval(&c, domain, 0);
	out->lookups = c.lookups;
	out->void_lookups = c.voids;
	if (r == R_NEED) {
		out->result = SPF_NONE;
		spf_reason(out, "waiting for DNS answers");
		return 0;
	}
	out->result = (enum spf_result)r;
	spf_reason(out, c.reason);
	return 1;
}

int
spf_expand(const struct spf_query *q, const char *domain, const char *macro,
    int exp, char *out, size_t outlen)
{
	struct spf_ctx	 c;
	char		 buf[SPF_EXPAND_MAX];
	struct obuf	 o = { buf, sizeof(buf), 0, 0, 0 };

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (spf_ctx_init(&c, q, NULL) == -1)
		return -1;
	if (!exp) {
		char	 name[SPF_DOMAIN_MAX + 1];

		if (spf_target(&c, macro, strlen(macro), domain, name) < 0)
			return -1;
		snprintf(out, outlen, "%s", name);
		return 0;
	}
	buf[0] = '\0';
	if (macro_expand(&c, domain, macro, strlen(macro), 1, &o) < 0)
		return -1;
	snprintf(out, outlen, "%s", buf);
	return 0;
}

const char *
spf_result_name(enum spf_result r)
{
	switch (r) {
	case SPF_NONE:		return "none";
	case SPF_NEUTRAL:	return "neutral";
	case SPF_PASS:		return "pass";
	case SPF_FAIL:		return "fail";
	case SPF_SOFTFAIL:	return "softfail";
	case SPF_TEMPERROR:	return "temperror";
	case SPF_PERMERROR:	return "permerror";
	}
	return "?";
}
