/*
 * srs - the Sender Rewriting Scheme (srs.h).
 *
 * Every field is measured before it is copied; every result is built with
 * snprintf into the caller's buffer and checked for truncation.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "addr.h"
#include "encoding.h"
#include "srs.h"

#define SRS_DATA_MAX	(ADDR_DOMAIN_MAX + ADDR_LOCAL_MAX * 2 + 16)

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int
is_sep(char c)
{
	return c == '=' || c == '+' || c == '-';
}

int
srs_is_srs(const char *local)
{
	return strlen(local) >= 5 && (strncasecmp(local, "SRS0", 4) == 0 ||
	    strncasecmp(local, "SRS1", 4) == 0) && is_sep(local[4]);
}

/* the day stamp of now: days since the epoch mod 1024, 2 chars + NUL */
static unsigned
srs_day(time_t now)
{
	return now < 0 ? 0 : (unsigned)((now / 86400) % 1024);
}

static void
srs_stamp(unsigned day, char tt[3])
{
	tt[0] = b32[(day >> 5) & 31];
	tt[1] = b32[day & 31];
	tt[2] = '\0';
}

/*
 * The hash of the fields a[0..n) joined with '=', lower-cased, under
 * secret: SRS_HASH_LEN base32 characters + NUL into h.
 */
static enum srs_res
srs_hash(const char *secret, const char *const *a, const size_t *alen,
    size_t n, char h[SRS_HASH_LEN + 1])
{
	unsigned char	 data[SRS_DATA_MAX], md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	size_t		 len = 0, sl = strlen(secret);
	uint32_t	 v;

	for (size_t i = 0; i < n; i++) {
		if (alen[i] + 1 > sizeof(data) - len)
			return SRS_TOOLONG;
		if (i > 0)
			data[len++] = '=';
		for (size_t k = 0; k < alen[i]; k++) {
			unsigned char c = (unsigned char)a[i][k];
			data[len++] = c >= 'A' && c <= 'Z' ?
			    (unsigned char)(c - 'A' + 'a') : c;
		}
	}
	if (sl == 0 || sl > SRS_SECRET_MAX ||
	    HMAC(EVP_sha256(), secret, (int)sl, data, len, md, &mdlen) ==
	    NULL || mdlen < 4)
		return SRS_ERROR;
	v = (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 |
	    (uint32_t)md[2] << 8 | md[3];
	for (int i = 0; i < SRS_HASH_LEN; i++)
		h[i] = b32[(v >> (27 - 5 * i)) & 31];
	h[SRS_HASH_LEN] = '\0';
	return SRS_OK;
}

/* a local part we can put after our prefix: a dot-string, no quotes */
static int
plain_local(const char *s, size_t n)
{
	if (n == 0 || n > ADDR_LOCAL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f || strchr("\"\\(),:;<>@[]", c))
			return 0;
	}
	return 1;
}

/* out = "local@domain"; SRS_TOOLONG if the local part or out overflows */
static enum srs_res
srs_put(char *out, size_t outlen, const char *local, size_t ll,
    const char *domain)
{
	int	 k;

	if (ll > ADDR_LOCAL_MAX)
		return SRS_TOOLONG;
	k = snprintf(out, outlen, "%.*s@%s", (int)ll, local, domain);
	if (k < 0 || (size_t)k >= outlen) {
		if (outlen)
			out[0] = '\0';
		return SRS_TOOLONG;
	}
	return SRS_OK;
}

/* SRS0<sep>opaque@first or SRS1<sep>HASH=first=opaque@x into SRS1 */
static enum srs_res
srs_forward_srs(const char *secret, const char *local, size_t ll,
    const char *domain, const char *srs_domain, char *out, size_t outlen)
{
	const char	*host = domain, *rest = local + 4, *p, *e = local + ll;
	const char	*a[2];
	size_t		 al[2], hl = strlen(domain);
	char		 h[SRS_HASH_LEN + 1], nl[ADDR_LOCAL_MAX * 2];
	enum srs_res	 r;
	int		 k;

	if (strncasecmp(local, "SRS1", 4) == 0) {
		/* SRS1<sep>HASH=host=<sep>opaque */
		if ((p = memchr(local + 5, '=', (size_t)(e - local - 5))) ==
		    NULL)
			return SRS_MALFORMED;
		host = p + 1;
		if ((p = memchr(host, '=', (size_t)(e - host))) == NULL ||
		    p == host)
			return SRS_MALFORMED;
		hl = (size_t)(p - host);
		rest = p + 1;
		if (e - rest < 2 || !is_sep(*rest))
			return SRS_MALFORMED;
	}
	a[0] = host;
	al[0] = hl;
	a[1] = rest;
	al[1] = (size_t)(e - rest);
	if ((r = srs_hash(secret, a, al, 2, h)) != SRS_OK)
		return r;
	k = snprintf(nl, sizeof(nl), "SRS1=%s=%.*s=%.*s", h, (int)al[0],
	    a[0], (int)al[1], a[1]);
	if (k < 0 || (size_t)k >= sizeof(nl))
		return SRS_TOOLONG;
	return srs_put(out, outlen, nl, (size_t)k, srs_domain);
}

enum srs_res
srs_forward(const char *secret, time_t now, const char *sender,
    const char *srs_domain, char *out, size_t outlen)
{
	const char	*at, *a[3];
	size_t		 al[3], ll;
	char		 tt[3], h[SRS_HASH_LEN + 1], nl[ADDR_LOCAL_MAX * 2];
	enum srs_res	 r;
	int		 k;

	if (outlen)
		out[0] = '\0';
	if (sender == NULL || (at = strrchr(sender, '@')) == NULL ||
	    at == sender || at[1] == '\0' || srs_domain == NULL ||
	    srs_domain[0] == '\0' || strlen(at + 1) > ADDR_DOMAIN_MAX ||
	    strchr(at + 1, '=') != NULL)
		return SRS_MALFORMED;
	ll = (size_t)(at - sender);
	if (!plain_local(sender, ll))
		return SRS_MALFORMED;
	if (srs_is_srs(sender) && ll > 5)
		return srs_forward_srs(secret, sender, ll, at + 1, srs_domain,
		    out, outlen);
	srs_stamp(srs_day(now), tt);
	a[0] = tt;
	al[0] = 2;
	a[1] = at + 1;
	al[1] = strlen(at + 1);
	a[2] = sender;
	al[2] = ll;
	if ((r = srs_hash(secret, a, al, 3, h)) != SRS_OK)
		return r;
	k = snprintf(nl, sizeof(nl), "SRS0=%s=%s=%s=%.*s", h, tt, at + 1,
	    (int)ll, sender);
	if (k < 0 || (size_t)k >= sizeof(nl))
		return SRS_TOOLONG;
	return srs_put(out, outlen, nl, (size_t)k, srs_domain);
}

/* does one of the secrets give hash h (case-insensitive) over a[]? */
static enum srs_res
srs_verify(const char *const *secrets, size_t nsecrets, const char *h,
    const char *const *a, const size_t *al, size_t n)
{
	char		 want[SRS_HASH_LEN + 1];
	enum srs_res	 r;

	for (size_t i = 0; i < nsecrets; i++) {
		unsigned diff = 0;
		if (secrets[i] == NULL)
			continue;
		if ((r = srs_hash(secrets[i], a, al, n, want)) != SRS_OK)
			return r;
		for (size_t k = 0; k < SRS_HASH_LEN; k++)
			diff |= (unsigned)(base32_value((unsigned char)h[k]) ^
			    base32_value((unsigned char)want[k]));
		if (diff == 0)
			return SRS_OK;
	}
	return SRS_BADHASH;
}

/* a hash field: SRS_HASH_LEN base32 characters, then '=' */
static int
hash_field(const char *p, const char *e)
{
	if (e - p < SRS_HASH_LEN + 1 || p[SRS_HASH_LEN] != '=')
		return 0;
	for (int i = 0; i < SRS_HASH_LEN; i++)
		if (base32_value((unsigned char)p[i]) < 0)
			return 0;
	return 1;
}

/* SRS0=HASH=TT=domain=local */
static enum srs_res
srs_reverse0(const char *const *secrets, size_t nsecrets, unsigned max_age,
    time_t now, const char *p, const char *e, char *out, size_t outlen)
{
	const char	*h = p, *tt, *dom, *loc, *a[3];
	size_t		 al[3];
	char		 domain[ADDR_DOMAIN_MAX + 1];
	unsigned	 day, age;
	enum srs_res	 r;
	int		 t0, t1;

	if (!hash_field(p, e))
		return SRS_MALFORMED;
	tt = p + SRS_HASH_LEN + 1;
	if (e - tt < 3 || (t0 = base32_value((unsigned char)tt[0])) < 0 ||
	    (t1 = base32_value((unsigned char)tt[1])) < 0 || tt[2] != '=')
		return SRS_MALFORMED;
	dom = tt + 3;
	if ((loc = memchr(dom, '=', (size_t)(e - dom))) == NULL ||
	    loc == dom || (size_t)(loc - dom) > ADDR_DOMAIN_MAX ||
	    memchr(dom, '@', (size_t)(loc - dom)) != NULL)
		return SRS_MALFORMED;
	a[0] = tt;
	al[0] = 2;
	a[1] = dom;
	al[1] = (size_t)(loc - dom);
	loc++;
	if (loc >= e)
		return SRS_MALFORMED;
	a[2] = loc;
	al[2] = (size_t)(e - loc);
	if ((r = srs_verify(secrets, nsecrets, h, a, al, 3)) != SRS_OK)
		return r;
	day = (unsigned)(t0 << 5 | t1);
	age = (srs_day(now) + 1024 - day) % 1024;
	if (age > max_age)
		return SRS_EXPIRED;
	snprintf(domain, sizeof(domain), "%.*s", (int)al[1], dom);
	return srs_put(out, outlen, loc, al[2], domain);
}

/* SRS1=HASH=host=<sep>opaque: back to SRS0<sep>opaque@host */
static enum srs_res
srs_reverse1(const char *const *secrets, size_t nsecrets, const char *p,
    const char *e, char *out, size_t outlen)
{
	const char	*host, *rest, *a[2];
	size_t		 al[2];
	char		 domain[ADDR_DOMAIN_MAX + 1], nl[ADDR_LOCAL_MAX + 8];
	enum srs_res	 r;
	int		 k;

	if (!hash_field(p, e))
		return SRS_MALFORMED;
	host = p + SRS_HASH_LEN + 1;
	if ((rest = memchr(host, '=', (size_t)(e - host))) == NULL ||
	    rest == host || (size_t)(rest - host) > ADDR_DOMAIN_MAX ||
	    memchr(host, '@', (size_t)(rest - host)) != NULL)
		return SRS_MALFORMED;
	a[0] = host;
	al[0] = (size_t)(rest - host);
	rest++;
	if (rest >= e || !is_sep(*rest) || e - rest < 2)
		return SRS_MALFORMED;
	a[1] = rest;
	al[1] = (size_t)(e - rest);
	if ((r = srs_verify(secrets, nsecrets, p, a, al, 2)) != SRS_OK)
		return r;
	snprintf(domain, sizeof(domain), "%.*s", (int)al[0], host);
	k = snprintf(nl, sizeof(nl), "SRS0%.*s", (int)al[1], rest);
	if (k < 0 || (size_t)k >= sizeof(nl))
		return SRS_TOOLONG;
	return srs_put(out, outlen, nl, (size_t)k, domain);
}

enum srs_res
srs_reverse(const char *const *secrets, size_t nsecrets, unsigned max_age,
    time_t now, const char *addr, char *out, size_t outlen)
{
	const char	*at, *e;
	char		 local[ADDR_LOCAL_MAX + 1];
	size_t		 ll;

	if (outlen)
		out[0] = '\0';
	if (addr == NULL)
		return SRS_NOTSRS;
	at = strrchr(addr, '@');
	ll = at ? (size_t)(at - addr) : strlen(addr);
	if (ll > ADDR_LOCAL_MAX)
		return srs_is_srs(addr) ? SRS_MALFORMED : SRS_NOTSRS;
	snprintf(local, sizeof(local), "%.*s", (int)ll, addr);
	if (!srs_is_srs(local))
		return SRS_NOTSRS;
	if (local[4] != '=')
		return SRS_MALFORMED;
	e = local + ll;
	if (local[3] == '0')
		return srs_reverse0(secrets, nsecrets, max_age, now, local + 5,
		    e, out, outlen);
	return srs_reverse1(secrets, nsecrets, local + 5, e, out, outlen);
}

const char *
srs_strres(enum srs_res r)
{
	switch (r) {
	case SRS_OK:		return "ok";
	case SRS_NOTSRS:	return "not an SRS address";
	case SRS_MALFORMED:	return "malformed SRS address";
	case SRS_BADHASH:	return "SRS hash does not verify";
	case SRS_EXPIRED:	return "SRS address expired";
	case SRS_TOOLONG:	return "SRS address too long";
	case SRS_ERROR:		return "SRS hash failed";
	}
	return "unknown";
}
