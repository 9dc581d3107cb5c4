/*
 * addr - RFC 5321 path and mailbox parsing. See addr.h.
 *
 * Contract: pure functions over (pointer, length); input need not be
 * NUL-terminated and may hold any bytes. A scan walks the grammar once and
 * only records offsets; limits are checked after the syntax is known to be
 * valid, so a long but well-formed address reports ADDR_ETOOLONG and a
 * malformed one ADDR_ESYNTAX whatever its length. 8-bit bytes are checked
 * where they occur (ADDR_EUTF8 at the first offending byte). On error *a is
 * left zeroed (a null path), never half-filled.
 *
 * Decisions: source routes are parsed (so a real route gets the clear
 * ADDR_EROUTE, garbage after "<@" gets ADDR_ESYNTAX) and refused; the
 * domain of an address literal is kept as written, a domain name is
 * lower-cased (ASCII only); an empty quoted local part ("") is valid
 * grammar and accepted.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "addr.h"

#define LABEL_MAX	63

struct scan {
	const unsigned char	*s;
	size_t			 len;
	size_t			 i;		/* cursor */
	int			 flags;
	size_t			 lstart, llen;	/* local part */
	size_t			 dstart, dlen;	/* 0: no domain */
	size_t			 maxlabel;
	int			 quoted;	/* quoted local part */
	int			 literal;	/* domain is "[...]" */
};

static int
is_alnum(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* RFC 5322 atext */
static int
is_atext(unsigned c)
{
	return is_alnum(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", (int)c) != NULL);
}

/* Length of the well-formed UTF-8 sequence (RFC 3629) at s, 0 if none. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned	 lo = 0x80, hi = 0xbf;
	size_t		 n, k;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (s[0] == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;	/* overlong */
		else if (s[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (k = 2; k < n; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

int
addr_utf8_valid(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, n;

	for (i = 0; i < len; i += n)
		if ((n = utf8_seq(p + i, len - i)) == 0)
			return 0;
	return 1;
}

/* Step over one 8-bit character at the cursor, if SMTPUTF8 allows it. */
static enum addr_err
scan_u8(struct scan *sc)
{
	size_t	 n;

	if (!(sc->flags & ADDR_F_UTF8))
		return ADDR_EUTF8;
	if ((n = utf8_seq(sc->s + sc->i, sc->len - sc->i)) == 0)
		return ADDR_EUTF8;
	sc->i += n;
	return ADDR_OK;
}

/* Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE */
static enum addr_err
scan_quoted(struct scan *sc)
{
	enum addr_err	 e;
	unsigned	 c;

	for (sc->i++; sc->i < sc->len; ) {
		c = sc->s[sc->i];
		if (c == '"') {
			sc->i++;
			return ADDR_OK;
		}
		if (c == '\\') {
			if (sc->i + 1 >= sc->len || sc->s[sc->i + 1] < 32 ||
			    sc->s[sc->i + 1] > 126)
				return ADDR_ESYNTAX;
			sc->i += 2;
		} else if (c >= 0x80) {
			if ((e = scan_u8(sc)) != ADDR_OK)
				return e;
		} else if (c >= 32 && c <= 126)
			sc->i++;
		else
			return ADDR_ESYNTAX;	/* controls, unterminated */
	}
	return ADDR_ESYNTAX;
}

/* Dot-string = Atom *("." Atom), atoms of atext or UTF-8 characters. */
static enum addr_err
scan_dotstring(struct scan *sc)
{
	enum addr_err	 e;
	size_t		 atom;
	unsigned	 c;

	for (;;) {
		atom = sc->i;
		while (sc->i < sc->len) {
			c = sc->s[sc->i];
			if (is_atext(c))
				sc->i++;
			else if (c < 0x80)
				break;
			else if ((e = scan_u8(sc)) != ADDR_OK)
				return e;
		}
		if (sc->i == atom)
			return ADDR_ESYNTAX;	/* "", "..", ".x", "x." */
		if (sc->i >= sc->len || sc->s[sc->i] != '.')
			return ADDR_OK;
		sc->i++;
	}
}

/* Local-part = Dot-string / Quoted-string */
static enum addr_err
scan_local(struct scan *sc)
{
	enum addr_err	 e;

	sc->lstart = sc->i;
	if (sc->i < sc->len && sc->s[sc->i] == '"') {
		sc->quoted = 1;
		e = scan_quoted(sc);
	} else
		e = scan_dotstring(sc);
	sc->llen = sc->i - sc->lstart;
	return e;
}

/* address-literal: IPv4 or "IPv6:" checked with inet_pton, nothing else. */
static enum addr_err
scan_literal(struct scan *sc)
{
	unsigned char	 a6[16];
	char		 tmp[64];
	size_t		 start = sc->i + 1, n;
	unsigned	 c;

	for (sc->i = start; sc->i < sc->len; sc->i++) {
		c = sc->s[sc->i];
		if (c == ']')
			break;
		if (c < 33 || c > 126 || c == '[' || c == '\\')
			return ADDR_ESYNTAX;
	}
	if (sc->i >= sc->len)
		return ADDR_ESYNTAX;
	n = sc->i - start;
	sc->i++;
	/* The longest valid text, "IPv6:" and a mapped IPv6, is 50 octets. */
	if (n == 0 || n >= sizeof(tmp))
		return ADDR_ESYNTAX;
	memcpy(tmp, sc->s + start, n);
	tmp[n] = '\0';
	if (n > 5 && strncasecmp(tmp, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, tmp + 5, a6) != 1)
			return ADDR_ESYNTAX;
	} else if (inet_pton(AF_INET, tmp, a6) != 1)
		return ADDR_ESYNTAX;
	return ADDR_OK;
}

/* Domain = sub-domain *("." sub-domain), LDH labels, or an address literal. */
static enum addr_err
scan_domain(struct scan *sc)
{
	enum addr_err	 e;
	size_t		 label;
	unsigned	 c;

	sc->dstart = sc->i;
	if (sc->i < sc->len && sc->s[sc->i] == '[') {
		sc->literal = 1;
		if ((e = scan_literal(sc)) != ADDR_OK)
			return e;
		sc->dlen = sc->i - sc->dstart;
		return ADDR_OK;
	}
	for (;;) {
		label = sc->i;
		while (sc->i < sc->len) {
			c = sc->s[sc->i];
			if (is_alnum(c) || (c == '-' && sc->i > label))
				sc->i++;
			else if (c >= 0x80) {
				if ((e = scan_u8(sc)) != ADDR_OK)
					return e;
			} else
				break;
		}
		if (sc->i == label || sc->s[sc->i - 1] == '-')
			return ADDR_ESYNTAX;
		if (sc->i - label > sc->maxlabel)
			sc->maxlabel = sc->i - label;
		if (sc->i >= sc->len || sc->s[sc->i] != '.')
			break;
		sc->i++;
	}
	sc->dlen = sc->i - sc->dstart;
	return ADDR_OK;
}

/*
 * Mailbox = Local-part "@" ( Domain / address-literal ). A missing "@"
 * leaves dlen 0 and is judged by finish() (the Postmaster case).
 */
static enum addr_err
scan_mailbox(struct scan *sc)
{
	enum addr_err	 e;

	if ((e = scan_local(sc)) != ADDR_OK)
		return e;
	if (sc->i >= sc->len || sc->s[sc->i] != '@')
		return ADDR_OK;
	sc->i++;
	return scan_domain(sc);
}

/* Check a scanned mailbox against the limits and copy it out. */
static enum addr_err
finish(const struct scan *sc, size_t pathlen, struct mailaddr *a)
{
	size_t	 k;

	if (sc->dlen == 0 && (sc->quoted || !(sc->flags & ADDR_F_POSTMASTER) ||
	    sc->llen != 10 ||
	    strncasecmp((const char *)sc->s + sc->lstart, "postmaster", 10)))
		return ADDR_ESYNTAX;
	if (sc->llen > ADDR_LOCAL_MAX || sc->dlen > ADDR_DOMAIN_MAX ||
	    sc->maxlabel > LABEL_MAX || pathlen > ADDR_PATH_MAX)
		return ADDR_ETOOLONG;
	memcpy(a->local, sc->s + sc->lstart, sc->llen);
	a->local[sc->llen] = '\0';
	for (k = 0; k < sc->dlen; k++) {
		a->domain[k] = (char)sc->s[sc->dstart + k];
		if (!sc->literal && a->domain[k] >= 'A' && a->domain[k] <= 'Z')
			a->domain[k] += 'a' - 'A';
	}
	a->domain[sc->dlen] = '\0';
	return ADDR_OK;
}

/*
 * After "<@": A-d-l ":" Mailbox ">". A well-formed route is refused with
 * ADDR_EROUTE so the client learns why; anything else is a syntax error.
 */
static enum addr_err
scan_route(struct scan *sc)
{
	enum addr_err	 e;

	for (;;) {
		if (sc->i >= sc->len || sc->s[sc->i] != '@')
			return ADDR_ESYNTAX;
		sc->i++;
		if ((e = scan_domain(sc)) != ADDR_OK)
			return e;
		if (sc->i < sc->len && sc->s[sc->i] == ',') {
			sc->i++;
			continue;
		}
		if (sc->i >= sc->len || sc->s[sc->i] != ':')
			return ADDR_ESYNTAX;
		sc->i++;
		break;
	}
	sc->dlen = 0;
	if ((e = scan_mailbox(sc)) != ADDR_OK)
		return e;
	if (sc->dlen == 0 || sc->i >= sc->len || sc->s[sc->i] != '>')
		return ADDR_ESYNTAX;
	return ADDR_EROUTE;
}

static void
scan_init(struct scan *sc, const char *s, size_t len, int flags, size_t i)
{
	memset(sc, 0, sizeof(*sc));
	sc->s = (const unsigned char *)s;
	sc->len = len;
	sc->flags = flags;
	sc->i = i;
}

/* ADDR_F_NO_BRACKETS: a mailbox ending at a space or the end of input. */
static enum addr_err
parse_bare(const char *s, size_t len, int flags, struct mailaddr *a,
    size_t *used)
{
	struct scan	 sc;
	enum addr_err	 e;

	scan_init(&sc, s, len, flags, 0);
	if ((e = scan_mailbox(&sc)) != ADDR_OK)
		return e;
	if (sc.i < len && s[sc.i] != ' ')
		return ADDR_ESYNTAX;
	/* Held to the same limit as if it had been bracketed. */
	if ((e = finish(&sc, sc.i + 2, a)) != ADDR_OK)
		return e;
	*used = sc.i;
	return ADDR_OK;
}

enum addr_err
addr_parse_path(const char *s, size_t len, int flags, struct mailaddr *a,
    size_t *used)
{
	struct scan	 sc;
	enum addr_err	 e;

	memset(a, 0, sizeof(*a));
	if (len > 0 && s[0] != '<' && (flags & ADDR_F_NO_BRACKETS))
		e = parse_bare(s, len, flags, a, used);
	else if (len < 2 || s[0] != '<')
		return ADDR_ESYNTAX;
	else if (s[1] == '>') {
		if (!(flags & ADDR_F_NULL_OK))
			return ADDR_ENULL;
		*used = 2;
		return ADDR_OK;
	} else {
		scan_init(&sc, s, len, flags, 1);
		if (s[1] == '@')
			return scan_route(&sc);
		if ((e = scan_mailbox(&sc)) != ADDR_OK)
			return e;
		if (sc.i >= len || s[sc.i] != '>')
			return ADDR_ESYNTAX;
		if ((e = finish(&sc, sc.i + 1, a)) == ADDR_OK)
			*used = sc.i + 1;
	}
	if (e != ADDR_OK)
		memset(a, 0, sizeof(*a));
	return e;
}

enum addr_err
addr_parse(const char *s, size_t len, int flags, struct mailaddr *a)
{
	struct scan	 sc;
	enum addr_err	 e;

	memset(a, 0, sizeof(*a));
	if (len == 0)
		return (flags & ADDR_F_NULL_OK) ? ADDR_OK : ADDR_ENULL;
	scan_init(&sc, s, len, flags, 0);
	if ((e = scan_mailbox(&sc)) != ADDR_OK)
		return e;
	if (sc.i != len)
		return ADDR_ESYNTAX;
	/* No path limit: a bare mailbox is bounded by local and domain. */
	if ((e = finish(&sc, 0, a)) != ADDR_OK)
		memset(a, 0, sizeof(*a));
	return e;
}

/*
 * Like snprintf: returns the length of the full text and writes at most
 * dstlen - 1 bytes plus a NUL, so ret >= dstlen means it did not fit.
 * ADDR_STR_MAX + 1 bytes always suffice.
 */
size_t
addr_format(const struct mailaddr *a, char *dst, size_t dstlen)
{
	size_t	 ll = strlen(a->local), dl = strlen(a->domain);
	size_t	 n = ll + (dl ? 1 + dl : 0), k = 0;

	if (dstlen == 0)
		return n;
	if (ll > dstlen - 1 - k)
		ll = dstlen - 1 - k;
	memcpy(dst + k, a->local, ll);
	k += ll;
	if (dl && k < dstlen - 1) {
		dst[k++] = '@';
		if (dl > dstlen - 1 - k)
			dl = dstlen - 1 - k;
		memcpy(dst + k, a->domain, dl);
		k += dl;
	}
	dst[k] = '\0';
	return n;
}

int
addr_is_null(const struct mailaddr *a)
{
	return a->local[0] == '\0' && a->domain[0] == '\0';
}

const char *
addr_strerror(enum addr_err e)
{
	switch (e) {
	case ADDR_OK:
		return "address ok";
	case ADDR_ESYNTAX:
		return "bad address syntax";
	case ADDR_ETOOLONG:
		return "address too long (local part max 64 octets, "
		    "domain 255, path 256)";
	case ADDR_EROUTE:
		return "source routes are not accepted";
	case ADDR_ENULL:
		return "the null path <> is not allowed here";
	case ADDR_EUTF8:
		return "non-ASCII address needs SMTPUTF8 and valid UTF-8";
	}
	return "unknown address error";
}
