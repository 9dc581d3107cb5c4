/*
 * mask - codes, header rewriting and VERP of the masked relay (mask.h).
 *
 * Every length is measured before a copy; the header scanner works on
 * hdr[0..len) with explicit ends and never reads past them; everything
 * written goes through one column-tracking writer over a capped buf.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "addr.h"
#include "encoding.h"
#include "mask.h"
#include "rewrite.h"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* n bytes of p as base32 (n * 8 / 5 characters, no padding) into out */
static void
b32_encode(const unsigned char *p, size_t n, char *out, size_t nchars)
{
	uint32_t	 acc = 0;
	int		 bits = 0;
	size_t		 k = 0;

	for (size_t i = 0; i < n && k < nchars; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 5 && k < nchars) {
			out[k++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	out[k] = '\0';
}

static int
key_ok(const char *key)
{
	size_t	 n;

	if (key == NULL)
		return 0;
	n = strnlen(key, MASK_KEY_MAX + 1);
	return n >= MASK_KEY_MIN && n <= MASK_KEY_MAX;
}

/* the first nchars * 5 bits of HMAC-SHA256(key, data) in base32 */
static int
mac_b32(const char *key, const char *data, size_t dlen, char *out,
    size_t nchars)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;

	if (nchars * 5 > 256 || HMAC(EVP_sha256(), key, (int)strlen(key),
	    (const unsigned char *)data, dlen, md, &mdlen) == NULL ||
	    mdlen * 8 < nchars * 5)
		return -1;
	b32_encode(md, (nchars * 5 + 7) / 8, out, nchars);
	return 0;
}

static const char *
kind_name(enum mask_kind kind)
{
	return kind == MASK_SERVICE ? "service" : kind == MASK_USER ? "user" :
	    NULL;
}

/* the MAC characters of a code's random part under key */
static int
code_mac(enum mask_kind kind, const char *key, const char *rnd,
    char mac[MASK_MAC_LEN + 1])
{
	char	 data[16 + MASK_RAND_LEN];
	int	 k;

	k = snprintf(data, sizeof(data), "%s:%.*s", kind_name(kind),
	    MASK_RAND_LEN, rnd);
	if (k < 0 || (size_t)k >= sizeof(data))
		return -1;
	return mac_b32(key, data, (size_t)k, mac, MASK_MAC_LEN);
}

int
mask_code_new(enum mask_kind kind, const char *key, char *code,
    size_t codelen)
{
	unsigned char	 r[MASK_RAND_LEN * 5 / 8];

	if (codelen > 0)
		code[0] = '\0';
	if (kind_name(kind) == NULL || !key_ok(key) ||
	    codelen < MASK_CODE_LEN + 1 || RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	b32_encode(r, sizeof(r), code, MASK_RAND_LEN);
	if (code_mac(kind, key, code, code + MASK_RAND_LEN) == -1) {
		code[0] = '\0';
		return -1;
	}
	return 0;
}

enum mask_kind
mask_local_parse(const char *local, char *code, size_t codelen)
{
	enum mask_kind	 kind;
	size_t		 n;

	if (codelen > 0)
		code[0] = '\0';
	if (local == NULL)
		return MASK_NONE;
	if (strncasecmp(local, "service-", 8) == 0) {
		kind = MASK_SERVICE;
		local += 8;
	} else if (strncasecmp(local, "user-", 5) == 0) {
		kind = MASK_USER;
		local += 5;
	} else
		return MASK_NONE;
	n = strlen(local);
	if (n >= codelen)
		return kind;	/* code stays "": never valid */
	for (size_t i = 0; i <= n; i++) {
		char c = local[i];
		code[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	return kind;
}

/* lower-case copy of a base32 string of exactly n characters, or -1 */
static int
b32_lower(const char *s, size_t n, char *out)
{
	if (s == NULL || strnlen(s, n + 1) != n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = base32_value((unsigned char)s[i]);
		if (v < 0)
			return -1;
		out[i] = b32[v];
	}
	out[n] = '\0';
	return 0;
}

int
mask_code_valid(enum mask_kind kind, const char *code,
    const char *const *keys, size_t nkeys)
{
	char	 lc[MASK_CODE_LEN + 1], mac[MASK_MAC_LEN + 1];
	int	 ok = 0;

	if (kind_name(kind) == NULL || b32_lower(code, MASK_CODE_LEN, lc) ==
	    -1)
		return 0;
	for (size_t i = 0; i < nkeys; i++) {
		if (!key_ok(keys[i]))
			continue;
		if (code_mac(kind, keys[i], lc, mac) == -1)
			return -1;
		ok |= CRYPTO_memcmp(mac, lc + MASK_RAND_LEN, MASK_MAC_LEN) ==
		    0;
	}
	return ok;
}

/* the text a VERP MAC covers: "bounce:PAIR-MSGNO" */
static int
verp_mac(const char *key, const char *pair, unsigned long long msgno,
    char mac[MASK_VERP_MAC_LEN + 1])
{
	char	 data[64];
	int	 k;

	k = snprintf(data, sizeof(data), "bounce:%s-%llu", pair, msgno);
	if (k < 0 || (size_t)k >= sizeof(data))
		return -1;
	return mac_b32(key, data, (size_t)k, mac, MASK_VERP_MAC_LEN);
}

int
mask_verp_new(const char *key, const char *pair_code,
    unsigned long long msgno, char *out, size_t outlen)
{
	char	 pair[MASK_CODE_LEN + 1], mac[MASK_VERP_MAC_LEN + 1];
	size_t	 pl;
	int	 k;

	if (outlen > 0)
		out[0] = '\0';
	if (pair_code == NULL || !key_ok(key))
		return -1;
	pl = strnlen(pair_code, MASK_CODE_LEN + 1);
	if (pl == 0 || pl > MASK_CODE_LEN ||
	    b32_lower(pair_code, pl, pair) == -1 ||
	    verp_mac(key, pair, msgno, mac) == -1)
		return -1;
	k = snprintf(out, outlen, "bounce-%s-%llu-%s", pair, msgno, mac);
	if (k < 0 || (size_t)k >= outlen || k > ADDR_LOCAL_MAX) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

/* a decimal number without sign or leading zero that fits, into *v */
static int
parse_msgno(const char *s, size_t n, unsigned long long *v)
{
	unsigned long long	 x = 0;

	if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (x > (~0ULL - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

int
mask_verp_parse(const char *local, const char *const *keys, size_t nkeys,
    char *pair_code, size_t pclen, unsigned long long *msgno)
{
	char			 pair[MASK_CODE_LEN + 1];
	char			 mac[MASK_VERP_MAC_LEN + 1];
	char			 want[MASK_VERP_MAC_LEN + 1];
	const char		*p, *d1, *d2;
	size_t			 n, pl;
	unsigned long long	 no;
	int			 ok = 0;

	if (pclen > 0)
		pair_code[0] = '\0';
	if (local == NULL || (n = strnlen(local, ADDR_LOCAL_MAX + 1)) >
	    ADDR_LOCAL_MAX || n < 7 || strncasecmp(local, "bounce-", 7) != 0)
		return -1;
	p = local + 7;
	if ((d1 = memchr(p, '-', n - 7)) == NULL ||
	    (d2 = memchr(d1 + 1, '-', (size_t)(local + n - d1 - 1))) == NULL)
		return -1;
	pl = (size_t)(d1 - p);
	if (pl == 0 || pl > MASK_CODE_LEN ||
	    (size_t)(local + n - d2 - 1) != MASK_VERP_MAC_LEN)
		return -1;
	memcpy(pair, p, pl);
	pair[pl] = '\0';
	if (b32_lower(pair, pl, pair) == -1 ||
	    b32_lower(d2 + 1, MASK_VERP_MAC_LEN, mac) == -1 ||
	    parse_msgno(d1 + 1, (size_t)(d2 - d1 - 1), &no) == -1)
		return -1;
	for (size_t i = 0; i < nkeys; i++) {
		if (!key_ok(keys[i]))
			continue;
		if (verp_mac(keys[i], pair, no, want) == -1)
			return -1;
		ok |= CRYPTO_memcmp(want, mac, MASK_VERP_MAC_LEN) == 0;
	}
	if (!ok || pclen <= pl)
		return -1;
	memcpy(pair_code, pair, pl + 1);
	*msgno = no;
	return 0;
}

/* ---- header scanning --------------------------------------------------- */


/* length of the field name of f[0..n) (printable, then ':'), or 0 */
static size_t
field_name(const char *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)f[i];
		if (c == ':')
			return i;
		if (c <= ' ' || c >= 0x7f)
			return 0;
	}
	return 0;
}

static int
name_is(const char *f, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(f, name, n) == 0;
}

/* is a field of this name copied to the relayed copy as it is? */
static int
field_copied(const char *f, size_t n)
{
	static const char *const names[] = { "Subject", "Date", "Message-ID",
	    "References", "In-Reply-To", "MIME-Version", "Auto-Submitted" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (name_is(f, n, names[i]))
			return 1;
	return (n > 8 && strncasecmp(f, "Content-", 8) == 0) ||
	    (n > 5 && strncasecmp(f, "List-", 5) == 0);
}

/* step over the comment at s[*i] == '('; -1 if it does not end */
static int
skip_comment(const char *s, size_t n, size_t *i)
{
	int	 depth = 0;

	for (; *i < n; (*i)++) {
		char c = s[*i];
		if (c == '\\')
			(*i)++;
		else if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0) {
			(*i)++;
			return 0;
		}
	}
	return -1;
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/* is addr[0..outlen) a NUL-terminated mailbox addr_parse accepts? */
static int
addr_ok(const char *a, size_t outlen)
{
	struct mailaddr	 ma;
	size_t		 n;

	if (a == NULL || (n = strnlen(a, outlen)) == 0 || n == outlen)
		return 0;
	return addr_parse(a, n, ADDR_F_UTF8, &ma) == ADDR_OK;
}

/*
 * One mailbox s[0..n) of an address list: 1 and its address (comments and
 * white space out, source route out, normalised by addr_parse), 0 if it is
 * empty, 2 if it is no address, -1 if it cannot be read. *plen is the
 * length of the display name before '<', 0 without an angle-addr.
 */
static int
mailbox(const char *s, size_t n, char addr[ADDR_STR_MAX + 1], size_t *plen)
{
	struct mailaddr	 ma;
	char		 raw[ADDR_STR_MAX + 2];
	size_t		 i = 0, a = 0, b = 0, k = 0;
	int		 angle = 0, q = 0, any = 0;

	*plen = 0;
	while (i < n) {
		char c = s[i];
		if (q) {
			i += c == '\\' ? 2 : 1;
			q = c != '"';
			continue;
		}
		if (c == '(') {
			if (skip_comment(s, n, &i) == -1)
				return -1;
			continue;
		}
		i++;
		if (is_wsp(c))
			continue;
		if (c == '<') {
			if (angle)
				return -1;
			angle = 1;
			a = i;
			*plen = i - 1;
		} else if (c == '>') {
			if (angle != 1)
				return -1;
			angle = 2;
			b = i - 1;
		} else if (angle == 2)
			return -1;	/* text after the angle-addr */
		else {
			any = 1;
			q = c == '"';
		}
	}
	if (q || angle == 1)
		return -1;
	if (angle == 0 && !any)
		return 0;
	if (angle == 2) {
		const char *colon;
		s += a;
		n = b - a;
		if (n > 0 && s[0] == '@') {	/* obsolete source route */
			if ((colon = memchr(s, ':', n)) == NULL)
				return 2;
			n -= (size_t)(colon + 1 - s);
			s = colon + 1;
		}
	}
	for (i = 0, q = 0; i < n; i++) {
		char c = s[i];
		if (!q && c == '(') {
			if (skip_comment(s, n, &i) == -1)
				return -1;
			i--;
			continue;
		}
		if (!q && is_wsp(c))
			continue;
		if (k + 2 >= sizeof(raw))
			return 2;
		if (c == '"')
			q = !q;
		else if (q && c == '\\' && i + 1 < n) {
			raw[k++] = c;
			c = s[++i];
		}
		raw[k++] = c;
	}
	if (addr_parse(raw, k, ADDR_F_UTF8, &ma) != ADDR_OK ||
	    addr_format(&ma, addr, ADDR_STR_MAX + 1) > ADDR_STR_MAX)
		return 2;
	return 1;
}

/*
 * Split an address list v[0..n) into mailboxes (group names and their
 * ':' ';' dropped) and call fn on each: fn returns 0 to go on, anything
 * else to stop with that value. 0 at the end, -1 if the list cannot be
 * read (unbalanced quote, comment or angle bracket).
 */
static int
list_walk(const char *v, size_t n, int (*fn)(void *, const char *, size_t),
    void *arg)
{
	size_t	 start = 0, i = 0;
	int	 q = 0, angle = 0, r;

	while (i <= n) {
		char c = i < n ? v[i] : ',';
		if (q) {
			if (i == n)
				return -1;
			i += c == '\\' ? 2 : 1;
			q = c != '"';
			continue;
		}
		if (c == '(' && i < n) {
			if (skip_comment(v, n, &i) == -1)
				return -1;
			continue;
		}
		if (c == '"')
			q = 1;
		else if (c == '<')
			angle = 1;
		else if (c == '>')
			angle = 0;
		else if (c == ':' && !angle)
			start = i + 1;		/* a group's name */
		else if ((c == ',' || c == ';') && (!angle || i == n)) {
			if ((r = fn(arg, v + start, i - start)) != 0)
				return r;
			start = i + 1;
		}
		i++;
	}
	return q ? -1 : 0;
}

/* ---- the writer -------------------------------------------------------- */

#define FOLD_AT	78

struct rw {
	const struct mask_map	*map;
	struct buf		*out;
	size_t			 col;	/* octets since the last LF */
	int			 items;	/* items written on this field */
	enum mask_err		 err;
	/* the To:/Cc: walk */
	const char		*fname;
	size_t			 count;
	/* the From: walk */
	const char		*phrase;
	size_t			 plen;
	int			 found;
};

static void
rw_put(struct rw *w, const char *s, size_t n)
{
	const char	*nl;

	buf_add(w->out, s, n);
	for (nl = NULL; n > 0 && (nl = memchr(s, '\n', n)) != NULL;) {
		n -= (size_t)(nl + 1 - s);
		s = nl + 1;
		w->col = 0;
	}
	w->col += n;
}

static void
rw_puts(struct rw *w, const char *s)
{
	rw_put(w, s, strlen(s));
}

/* start a field: "Name:" */
static void
rw_field(struct rw *w, const char *name)
{
	rw_puts(w, name);
	rw_puts(w, ":");
	w->items = 0;
}

/* one item of a field after punct (",", ""): on this line or folded */
static void
rw_item(struct rw *w, const char *punct, const char *s, size_t n)
{
	rw_puts(w, punct);
	if (w->items > 0 && w->col + 1 + n > FOLD_AT)
		rw_puts(w, "\n ");
	else
		rw_puts(w, " ");
	rw_put(w, s, n);
	w->items++;
}

static void
rw_end(struct rw *w)
{
	rw_puts(w, "\n");
}

/* "<addr>" as an item */
static void
rw_addr(struct rw *w, const char *punct, const char *addr)
{
	char	 a[ADDR_STR_MAX + 3];
	int	 k;

	k = snprintf(a, sizeof(a), "<%s>", addr);
	if (k < 0 || (size_t)k >= sizeof(a)) {
		w->err = MASK_ERR_ARGS;
		return;
	}
	rw_item(w, punct, a, (size_t)k);
}

/* ---- the From: display name -------------------------------------------- */

#define NAME_TOKENS	32
#define NAME_JOINED	(MASK_NAME_MAX + NAME_TOKENS + 8 + ADDR_DOMAIN_MAX)

enum tok_type { T_ATOM, T_QUOTED, T_ENC };

struct name {
	char	 text[MASK_NAME_MAX + 1];	/* words; encoded words as read */
	size_t	 tlen;
	char	 dec[MASK_NAME_MAX + 1];	/* all of it decoded: leak check */
	size_t	 dlen;
	struct {
		enum tok_type	 type;
		size_t		 off, len;
	}	 tok[NAME_TOKENS];
	size_t	 ntok;
	int	 has_enc, has8;
};

static int
name_add(char *s, size_t *len, char c)
{
	if (*len >= MASK_NAME_MAX)
		return -1;
	s[(*len)++] = c;
	s[*len] = '\0';
	return 0;
}

/* a character of a word, for text and dec: controls refused */
static int
name_addc(struct name *nm, char c)
{
	unsigned char	 u = (unsigned char)c;

	if ((u < 0x20 && u != '\t') || u == 0x7f)
		return -1;
	if (u >= 0x80)
		nm->has8 = 1;
	if (name_add(nm->text, &nm->tlen, c) == -1 ||
	    name_add(nm->dec, &nm->dlen, c) == -1)
		return -1;
	return 0;
}

static int
hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* the B text t[0..n) decoded into out (at most n octets); length or -1 */
static int
b_decode(const char *t, size_t n, char *out)
{
	size_t	 k = 0;

	if (n == 0 || n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (t[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad || (v[j] = base64_value(
			    (unsigned char)t[i + j])) < 0)
				return -1;
		}
		out[k++] = (char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[k++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[k++] = (char)((v[2] & 3) << 6 | v[3]);
	}
	return (int)k;
}

/* the Q text t[0..n) as a phrase allows it decoded into out; or -1 */
static int
q_decode(const char *t, size_t n, char *out)
{
	size_t	 k = 0;

	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (c == '=') {
			int h, l;
			if (i + 2 >= n)
				return -1;
			if ((h = hex_val(t[i + 1])) < 0 ||
			    (l = hex_val(t[i + 2])) < 0)
				return -1;
			out[k++] = (char)(h << 4 | l);
			i += 2;
		} else if (c == '_')
			out[k++] = ' ';
		else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '!' || c == '*' ||
		    c == '+' || c == '-' || c == '/')
			out[k++] = c;
		else
			return -1;
	}
	return (int)k;
}

/*
 * If s[0..n) is an RFC 2047 encoded word as a phrase may hold one, its
 * text decoded into out (at most n octets): the length; -1 if it is not
 * an encoded word (an atom then), -2 for a charset we cannot check.
 */
static int
encword(const char *s, size_t n, char *out)
{
	const char	*q1, *t;
	size_t		 csn;

	if (n < 8 || n > 75 || s[0] != '=' || s[1] != '?' ||
	    s[n - 2] != '?' || s[n - 1] != '=')
		return -1;
	if ((q1 = memchr(s + 2, '?', n - 4)) == NULL ||
	    (csn = (size_t)(q1 - s - 2)) == 0 || q1 + 3 > s + n - 2 ||
	    q1[2] != '?')
		return -1;
	for (size_t i = 0; i < csn; i++) {
		char c = s[2 + i];
		if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\"/[]?.=", c))
			return -1;
	}
	t = q1 + 3;
	if (t >= s + n - 2 || memchr(t, '?', (size_t)(s + n - 2 - t)))
		return -1;
	/* '@' in these hides from a byte search */
	if (strncasecmp(s + 2, "utf-7", 5) == 0)
		return -2;
	if (q1[1] == 'B' || q1[1] == 'b')
		return b_decode(t, (size_t)(s + n - 2 - t), out);
	if (q1[1] == 'Q' || q1[1] == 'q')
		return q_decode(t, (size_t)(s + n - 2 - t), out);
	return -1;
}

static int
is_word_end(char c)
{
	return is_wsp(c) || c == '(' || c == '"';
}

/* a quoted string's content into nm; *i at the opening quote */
static int
name_quoted(struct name *nm, const char *s, size_t n, size_t *i)
{
	for ((*i)++; *i < n; (*i)++) {
		char c = s[*i];
		if (c == '"') {
			(*i)++;
			return 0;
		}
		if (c == '\\') {
			if (++(*i) >= n)
				return -1;
			c = s[*i];
		} else if (c == '\n')
			continue;		/* unfolding */
		if (name_addc(nm, c) == -1)
			return -1;
	}
	return -1;
}

/* an atom or encoded word s[b..e) into nm */
static int
name_atom(struct name *nm, const char *s, size_t b, size_t e)
{
	char	 dec[80];
	int	 k;

	for (size_t i = b; i < e; i++)
		if (strchr("<>[]:;@\\,", s[i]) || s[i] == '\0')
			return -1;
	if ((k = encword(s + b, e - b, dec)) == -2)
		return -1;
	if (k < 0) {
		nm->tok[nm->ntok - 1].type = T_ATOM;
		for (size_t i = b; i < e; i++)
			if (name_addc(nm, s[i]) == -1)
				return -1;
		return 0;
	}
	nm->tok[nm->ntok - 1].type = T_ENC;
	nm->has_enc = 1;
	for (size_t i = b; i < e; i++)
		if (name_add(nm->text, &nm->tlen, s[i]) == -1)
			return -1;
	for (int i = 0; i < k; i++)
		if (name_add(nm->dec, &nm->dlen, dec[i]) == -1)
			return -1;
	return 0;
}

/* the words of a display name s[0..n), comments left out; or -1 */
static int
name_parse(struct name *nm, const char *s, size_t n)
{
	size_t	 i = 0;

	memset(nm, 0, sizeof(*nm));
	while (i < n) {
		if (is_wsp(s[i])) {
			i++;
			continue;
		}
		if (s[i] == '(') {
			if (skip_comment(s, n, &i) == -1)
				return -1;
			continue;
		}
		if (nm->ntok == NAME_TOKENS)
			return -1;
		nm->tok[nm->ntok].off = nm->tlen;
		nm->ntok++;
		if (s[i] == '"') {
			nm->tok[nm->ntok - 1].type = T_QUOTED;
			if (name_quoted(nm, s, n, &i) == -1)
				return -1;
		} else {
			size_t b = i;
			while (i < n && !is_word_end(s[i]))
				i++;
			if (name_atom(nm, s, b, i) == -1)
				return -1;
		}
		nm->tok[nm->ntok - 1].len = nm->tlen - nm->tok[nm->ntok - 1].off;
	}
	return 0;
}

/* would the decoded name show an address ('@', a full-width '@') or
   controls? then it is not used */
static int
name_leaks(const struct name *nm)
{
	if (nm->dlen == 0 || memchr(nm->dec, '@', nm->dlen) ||
	    memmem(nm->dec, nm->dlen, "\xef\xbc\xa0", 3) ||
	    memmem(nm->dec, nm->dlen, "\xef\xb9\xab", 3))
		return 1;
	for (size_t i = 0; i < nm->dlen; i++) {
		unsigned char u = (unsigned char)nm->dec[i];
		if ((u < 0x20 && u != '\t') || u == 0x7f)
			return 1;
	}
	return 0;
}

/* s[0..n) escaped for a quoted string, appended to out[*k..cap) */
static int
quote_add(char *out, size_t *k, size_t cap, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (*k + 3 > cap)
			return -1;
		if (s[i] == '"' || s[i] == '\\')
			out[(*k)++] = '\\';
		out[(*k)++] = s[i];
	}
	return 0;
}

/* the words joined with single spaces, then " via DOMAIN" */
static size_t
name_join(const struct name *nm, const char *domain, char *out, size_t cap)
{
	size_t	 k = 0;
	int	 r;

	for (size_t t = 0; t < nm->ntok; t++) {
		if (t > 0)
			out[k++] = ' ';
		memcpy(out + k, nm->text + nm->tok[t].off, nm->tok[t].len);
		k += nm->tok[t].len;
	}
	r = snprintf(out + k, cap - k, " via %s", domain);
	return r < 0 || (size_t)r >= cap - k ? 0 : k + (size_t)r;
}

/* raw UTF-8 "NAME via DOMAIN" as B encoded words of whole characters */
static void
put_name_utf8(struct rw *w, const char *u, size_t n)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char	 ew[80];

	while (n > 0) {
		size_t c = n < 45 ? n : 45, k = 0;
		while (c < n && c > 1 && ((unsigned char)u[c] & 0xc0) == 0x80)
			c--;			/* not inside a character */
		k = (size_t)snprintf(ew, sizeof(ew), "=?UTF-8?B?");
		for (size_t i = 0; i < c; i += 3) {
			unsigned v = (unsigned char)u[i] << 16;
			if (i + 1 < c)
				v |= (unsigned)(unsigned char)u[i + 1] << 8;
			if (i + 2 < c)
				v |= (unsigned char)u[i + 2];
			ew[k++] = b64[v >> 18 & 63];
			ew[k++] = b64[v >> 12 & 63];
			ew[k++] = i + 1 < c ? b64[v >> 6 & 63] : '=';
			ew[k++] = i + 2 < c ? b64[v & 63] : '=';
		}
		ew[k++] = '?';
		ew[k++] = '=';
		rw_item(w, "", ew, k);
		u += c;
		n -= c;
	}
}

/* the display name s[0..n) as From: items; -1 (nothing written) if it
   cannot be used */
static int
put_name(struct rw *w, const char *s, size_t n)
{
	struct name	 nm;
	const char	*dom = w->map->domain;
	char		 q[2 * NAME_JOINED + 4], joined[NAME_JOINED];
	size_t		 k = 0, jn;

	if (name_parse(&nm, s, n) == -1 || name_leaks(&nm) ||
	    (nm.has_enc && nm.has8))
		return -1;
	if (nm.has_enc) {
		for (size_t t = 0; t < nm.ntok; t++) {
			const char *tp = nm.text + nm.tok[t].off;
			k = 0;
			if (nm.tok[t].type == T_QUOTED) {
				q[k++] = '"';
				if (quote_add(q, &k, sizeof(q), tp,
				    nm.tok[t].len) == -1)
					return -1;
				q[k++] = '"';
				rw_item(w, "", q, k);
			} else
				rw_item(w, "", tp, nm.tok[t].len);
		}
		k = (size_t)snprintf(q, sizeof(q), "\"via %s\"", dom);
		rw_item(w, "", q, k);
		return 0;
	}
	if ((jn = name_join(&nm, dom, joined, sizeof(joined))) == 0)
		return -1;
	if (nm.has8) {
		if (!addr_utf8_valid(joined, jn))
			return -1;
		put_name_utf8(w, joined, jn);
		return 0;
	}
	q[k++] = '"';
	if (quote_add(q, &k, sizeof(q), joined, jn) == -1)
		return -1;
	q[k++] = '"';
	rw_item(w, "", q, k);
	return 0;
}

/* ---- mask_rewrite ------------------------------------------------------ */

/* list_walk: the first mailbox of From: */
static int
from_first(void *arg, const char *s, size_t n)
{
	struct rw	*w = arg;
	char		 addr[ADDR_STR_MAX + 1];
	size_t		 plen;
	int		 r;

	if ((r = mailbox(s, n, addr, &plen)) <= 0)
		return r;
	w->phrase = s;
	w->plen = plen;
	w->found = 1;
	return 1;
}

/* the one From: (and Reply-To:) from the first From: field v[0..n) */
static void
put_from(struct rw *w, const char *v, size_t n)
{
	char	 anon[sizeof(MASK_ANON_NAME) + ADDR_DOMAIN_MAX + 8];
	int	 k;

	w->found = 0;
	if (v != NULL)
		(void)list_walk(v, n, from_first, w);
	rw_field(w, "From");
	if (!w->found || w->plen == 0 || put_name(w, w->phrase, w->plen) ==
	    -1) {
		k = snprintf(anon, sizeof(anon), "\"%s via %s\"",
		    MASK_ANON_NAME, w->map->domain);
		rw_item(w, "", anon, (size_t)k);
	}
	rw_addr(w, "", w->map->from_mask);
	rw_end(w);
	if (w->map->reply_to != NULL) {
		rw_field(w, "Reply-To");
		rw_addr(w, "", w->map->reply_to);
		rw_end(w);
	}
}

/* list_walk, first pass: readable, and not too many mailboxes? */
static int
list_count(void *arg, const char *s, size_t n)
{
	struct rw	*w = arg;
	char		 addr[ADDR_STR_MAX + 1];
	size_t		 plen;
	int		 r;

	if ((r = mailbox(s, n, addr, &plen)) <= 0)
		return r;
	if (++w->count > MASK_ADDRS_MAX) {
		w->err = MASK_ERR_ADDRS;
		return -2;
	}
	return 0;
}

/* list_walk, second pass: each address mapped and written */
static int
list_map(void *arg, const char *s, size_t n)
{
	struct rw	*w = arg;
	char		 addr[ADDR_STR_MAX + 1], m[ADDR_STR_MAX + 1];
	size_t		 plen;
	int		 r;

	if (mailbox(s, n, addr, &plen) != 1)
		return 0;
	m[0] = '\0';
	r = w->map->map_addr(w->map->arg, addr, m, sizeof(m));
	if (r == MASK_ADDR_DROP)
		return 0;
	if (r != MASK_ADDR_KEEP || !addr_ok(m, sizeof(m))) {
		w->err = MASK_ERR_MAP;
		return -2;
	}
	if (w->items == 0)
		rw_field(w, w->fname);
	rw_addr(w, w->items ? "," : "", m);
	return 0;
}

/* a To:/Cc: field: 0 (written, or left out), -1 with w->err */
static int
put_list(struct rw *w, const char *fname, const char *v, size_t n)
{
	int	 r;

	w->fname = fname;
	w->count = 0;
	w->items = 0;
	if ((r = list_walk(v, n, list_count, w)) == -2)
		return -1;
	if (r != 0)
		return 0;		/* unreadable: left out whole */
	if (list_walk(v, n, list_map, w) != 0)
		return -1;
	if (w->items > 0)
		rw_end(w);
	return 0;
}

/* a kept field f[0..n) as it is, unless a line is too long or has CR/NUL */
static void
put_copy(struct rw *w, const char *f, size_t n)
{
	size_t	 col = 0;

	for (size_t i = 0; i < n; i++) {
		if (f[i] == '\0' || f[i] == '\r')
			return;
		col = f[i] == '\n' ? 0 : col + 1;
		if (col > MASK_LINE_MAX)
			return;
	}
	rw_put(w, f, n);
	if (n > 0 && f[n - 1] != '\n')
		rw_end(w);
}

static int
map_ok(const struct mask_map *m)
{
	size_t	 n;

	if (m == NULL || m->map_addr == NULL || m->domain == NULL ||
	    m->mark == NULL || !addr_ok(m->from_mask, ADDR_STR_MAX + 1) ||
	    (m->reply_to != NULL && !addr_ok(m->reply_to, ADDR_STR_MAX + 1)))
		return 0;
	n = strnlen(m->domain, ADDR_DOMAIN_MAX + 1);
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = m->domain[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	n = strnlen(m->mark, MASK_MARK_MAX + 1);
	if (n == 0 || n > MASK_MARK_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (m->mark[i] <= ' ' || m->mark[i] >= 0x7f)
			return 0;
	return 1;
}

/* one field hdr[p..e) of the input into w */
static void
rewrite_field(struct rw *w, const char *f, size_t n, int *from_done)
{
	size_t		 nl = field_name(f, n);
	const char	*v = f + nl + 1;
	size_t		 vn = n - nl - 1;

	if (nl == 0)
		return;			/* no field: dropped */
	if (name_is(f, nl, "From")) {
		if (!*from_done)
			put_from(w, v, vn);
		*from_done = 1;
	} else if (name_is(f, nl, "To"))
		(void)put_list(w, "To", v, vn);
	else if (name_is(f, nl, "Cc"))
		(void)put_list(w, "Cc", v, vn);
	else if (field_copied(f, nl))
		put_copy(w, f, n);
}

int
mask_rewrite(const char *hdr, size_t len, const struct mask_map *map,
    struct buf *out, enum mask_err *why)
{
	struct rw	 w;
	size_t		 p = 0, e, start = out->len;
	int		 from_done = 0, blank = 0;

	memset(&w, 0, sizeof(w));
	w.map = map;
	w.out = out;
	if (!map_ok(map) || (hdr == NULL && len > 0))
		w.err = MASK_ERR_ARGS;
	while (w.err == MASK_OK && p < len) {
		if (hdr[p] == '\n') {
			blank = 1;	/* the end of the header section */
			break;
		}
		e = header_field_end(hdr, len, p);
		rewrite_field(&w, hdr + p, e - p, &from_done);
		if (out->len - start > MASK_OUT_MAX)
			w.err = MASK_ERR_TOOBIG;
		p = e;
	}
	if (w.err == MASK_OK && !from_done)
		put_from(&w, NULL, 0);
	if (w.err == MASK_OK) {
		rw_field(&w, MASK_MARK_FIELD);
		rw_item(&w, "", map->mark, strlen(map->mark));
		rw_end(&w);
		if (blank)
			rw_end(&w);
	}
	if (w.err == MASK_OK && out->err != BUF_OK)
		w.err = out->err == BUF_ENOMEM ? MASK_ERR_NOMEM :
		    MASK_ERR_TOOBIG;
	if (w.err == MASK_OK && out->len - start > MASK_OUT_MAX)
		w.err = MASK_ERR_TOOBIG;
	if (why != NULL)
		*why = w.err;
	return w.err == MASK_OK ? 0 : -1;
}

const char *
mask_strerr(enum mask_err e)
{
	switch (e) {
	case MASK_OK:		return "ok";
	case MASK_ERR_ARGS:	return "bad mask map";
	case MASK_ERR_ADDRS:	return "too many addresses in a header field";
	case MASK_ERR_TOOBIG:	return "rewritten header section too large";
	case MASK_ERR_NOMEM:	return "out of memory";
	case MASK_ERR_MAP:	return "address mapping failed";
	}
	return "unknown";
}

/* ---- checks on the incoming section ------------------------------------ */

/*
 * The value v[0..n) without comments, folding and unquoted white space
 * into dst; -1 if it cannot be read or does not fit.
 */
static int
clean_value(const char *v, size_t n, char *dst, size_t dstlen)
{
	size_t	 i = 0, k = 0;
	int	 q = 0;

	while (i < n) {
		char c = v[i];
		if (!q && c == '(') {
			if (skip_comment(v, n, &i) == -1)
				return -1;
			continue;
		}
		i++;
		if (c == '\0')
			return -1;
		if (c == '\n' || c == '\r' || (!q && (c == ' ' || c == '\t')))
			continue;
		if (k + 3 > dstlen)
			return -1;
		if (c == '"')
			q = !q;
		else if (q && c == '\\' && i < n) {
			dst[k++] = c;
			c = v[i++];
		}
		dst[k++] = c;
	}
	if (q)
		return -1;
	dst[k] = '\0';
	return 0;
}

/* calls fn on the value of every field of the section; stops at non-0 */
static int
each_field(const char *hdr, size_t len, const char *name,
    int (*fn)(const char *, size_t, const void *), const void *arg)
{
	size_t	 p = 0, e, nl;
	int	 r;

	while (p < len && hdr[p] != '\n') {
		e = header_field_end(hdr, len, p);
		nl = field_name(hdr + p, e - p);
		if (nl > 0 && name_is(hdr + p, nl, name) &&
		    (r = fn(hdr + p + nl + 1, e - p - nl - 1, arg)) != 0)
			return r;
		p = e;
	}
	return 0;
}

static int
mark_is(const char *v, size_t n, const void *arg)
{
	const char	*mark = arg;

	while (n > 0 && is_wsp(v[0])) {
		v++;
		n--;
	}
	while (n > 0 && is_wsp(v[n - 1]))
		n--;
	return n == strlen(mark) && strncasecmp(v, mark, n) == 0;
}

int
mask_mark_present(const char *hdr, size_t len, const char *mark)
{
	if (hdr == NULL || mark == NULL || mark[0] == '\0')
		return 0;
	return each_field(hdr, len, MASK_MARK_FIELD, mark_is, mark) == 1;
}

static int
auto_submitted(const char *v, size_t n, const void *arg)
{
	char	 c[256];
	size_t	 k;

	(void)arg;
	if (clean_value(v, n, c, sizeof(c)) == -1)
		return 1;		/* unreadable: not "no" */
	k = strcspn(c, ";");
	return !(k == 2 && strncasecmp(c, "no", 2) == 0);
}

static int
precedence(const char *v, size_t n, const void *arg)
{
	char	 c[64];

	(void)arg;
	return clean_value(v, n, c, sizeof(c)) == 0 &&
	    (strcasecmp(c, "bulk") == 0 || strcasecmp(c, "junk") == 0 ||
	    strcasecmp(c, "list") == 0);
}

/* is the parameter p[0..n) ("name=value", value maybe quoted) this? */
static int
param_is(const char *p, size_t n, const char *name, const char *value)
{
	size_t	 nl = strlen(name), k = 0;
	char	 val[64];

	if (n <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != '=')
		return 0;
	for (size_t i = nl + 1; i < n; i++) {
		if (p[i] == '"')
			continue;
		if (p[i] == '\\' && i + 1 < n)
			i++;
		if (k + 1 >= sizeof(val))
			return 0;
		val[k++] = p[i];
	}
	val[k] = '\0';
	return strcasecmp(val, value) == 0;
}

static int
read_receipt(const char *v, size_t n, const void *arg)
{
	char	 c[2048];
	size_t	 i, b;
	int	 q = 0;

	(void)arg;
	if (clean_value(v, n, c, sizeof(c)) == -1 ||
	    strncasecmp(c, "multipart/report", 16) != 0 ||
	    (c[16] != ';' && c[16] != '\0'))
		return 0;
	for (i = b = 17; c[16] != '\0'; i++) {
		if (c[i] == '\0' || (c[i] == ';' && !q)) {
			if (param_is(c + b, i - b, "report-type",
			    "disposition-notification"))
				return 1;
			if (c[i] == '\0')
				break;
			b = i + 1;
		} else if (c[i] == '"')
			q = !q;
		else if (c[i] == '\\' && q && c[i + 1] != '\0')
			i++;
	}
	return 0;
}

int
mask_auto_submitted(const char *hdr, size_t len)
{
	if (hdr == NULL)
		return 0;
	return each_field(hdr, len, "Auto-Submitted", auto_submitted, NULL) ||
	    each_field(hdr, len, "Precedence", precedence, NULL) ||
	    each_field(hdr, len, "Content-Type", read_receipt, NULL);
}
