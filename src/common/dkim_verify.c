/*
 * dkim_verify - DKIM verification, streaming. See dkim_verify.h.
 *
 * Two phases. Header: bytes are kept (up to DKIMV_HDR_MAX) until the
 * empty line; then the fields are split once and indexed by name (sorted,
 * so h= selection from the bottom up is a binary search per name), every
 * DKIM-Signature considered is parsed, its header hash computed (the
 * SHA-256 of the canonical signed fields and of the signature field
 * without its b= value), and a body hash context started (dkim.c's
 * canonicalization, with its l= limit). Body: bytes go to every context
 * and are forgotten.
 *
 * dkimv_verify() finishes the body hashes once and decides what it can
 * without DNS (malformed, expired, body hash mismatch, l= beyond the
 * body); each other signature waits for its key record in the cache and
 * is decided on the first call that finds it there.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "encoding.h"
#include "buf.h"
#include "dkim.h"
#include "dkim_verify.h"

#define TAGS_MAX	64		/* tags in one signature or key record */
#define SIGB_MAX	1024		/* b= octets: an 8192-bit RSA signature */
#define KEYP_MAX	4096		/* p= octets */
#define RSA_E_MAX_BITS	64		/* the public exponent (65537 is 17
					   bits): a key as large as its modulus
					   costs a private-key operation per
					   check (27 ms at 3072 bits) */
#define SCRATCH_MAX	(4 * DKIMV_HDR_MAX + 64)
#define NONE32		UINT32_MAX

enum vstate {
	VS_DONE,	/* result final (set at parse time or from the body) */
	VS_BODY,	/* parsed, the body being hashed */
	VS_KEY		/* body hash matches: the key decides */
};

struct vsig {
	struct dkimv_sig pub;
	enum vstate	 st;
	int		 ed25519, hsimple, bsimple;
	long long	 l;			/* -1: no l= */
	long long	 xnow;			/* the time, for x= */
	unsigned long long btotal;		/* canonical body octets */
	char		 idom[256];		/* the domain of i= */
	unsigned char	 bh[DKIM_HASH_LEN];	/* from bh= */
	unsigned char	 hh[DKIM_HASH_LEN];	/* the header hash */
	unsigned char	 b[SIGB_MAX];
	size_t		 blen;
	struct dkim_body body;
};

struct dkimv {
	long long	 now;
	struct buf	 hdr;
	size_t		 hlen;		/* the fields, without the empty line */
	int		 in_body, ended, bol, crbol, truncated, nomem;
	size_t		 seen, nsig;
	struct vsig	 sig[DKIMV_SIGS_MAX];
};

/* one header field: offsets into the header section */
struct vfield {
	uint32_t	 start, end, nlen;
};

/* a named field, for the index sorted by name (no case), then position */
struct vname {
	const char	*name;
	uint32_t	 nlen, idx;
};

struct vfields {
	struct vfield	*f;
	uint32_t	 n;
	struct vname	*sorted;
	uint32_t	 ns;
};

struct tag {
	size_t		 name, nlen;	/* offsets into the tag list */
	size_t		 eq, val, vlen, segend;
};

struct taglist {
	const char	*s;
	struct tag	 t[TAGS_MAX];
	size_t		 n;
};

static const char *const result_names[] = {
	"none", "pass", "fail", "neutral", "policy", "temperror", "permerror"
};

const char *
dkimv_result_name(enum dkimv_result r)
{
	return (unsigned)r < sizeof(result_names) / sizeof(result_names[0]) ?
	    result_names[r] : "none";
}

/* ---- small helpers ---- */

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
set_result(struct vsig *s, enum dkimv_result r, const char *reason)
{
	s->st = VS_DONE;
	s->pub.result = r;
	snprintf(s->pub.reason, sizeof(s->pub.reason), "%s", reason);
}

/* ASCII letters only, so the answer does not depend on the locale */
static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int
ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* copy a value into a string of size out, or -1 if it does not fit */
static int
copy_val(char *out, size_t size, const char *v, size_t n)
{
	if (n >= size)
		return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

/* 1*76DIGIT, saturated at LLONG_MAX; -1 if not digits */
static int
number(const char *v, size_t n, long long *out)
{
	long long	 x = 0;

	if (n == 0 || n > 76)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (x > (LLONG_MAX - 9) / 10)
			x = LLONG_MAX;
		else
			x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

/*
 * base64 with white space (FWS) anywhere: -1 on a character outside the
 * alphabet, padding that is not at the end or not to a multiple of 4, or
 * more than max octets.
 */
static int
b64_decode(const char *s, size_t n, unsigned char *out, size_t max,
    size_t *olen)
{
	unsigned	 acc = 0;
	size_t		 chars = 0, pad = 0, o = 0;
	int		 v;

	for (size_t i = 0; i < n; i++) {
		if (is_ws(s[i]))
			continue;
		if (s[i] == '=') {
			if (++pad > 2)
				return -1;
			chars++;
			continue;
		}
		if (pad > 0 || (v = base64_value((unsigned char)s[i])) == -1)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		if (++chars % 4 == 0) {
			if (o + 3 > max)
				return -1;
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (chars % 4 != 0)
		return -1;
	if (pad > 0) {		/* the last quantum had 4 - pad characters */
		size_t keep = 3 - pad;
		acc <<= 6 * pad;
		if (o + keep > max)
			return -1;
		if (keep >= 1)
			out[o++] = (unsigned char)(acc >> 16);
		if (keep == 2)
			out[o++] = (unsigned char)(acc >> 8);
	}
	*olen = o;
	return 0;
}

/* ---- tag lists (RFC 6376 3.2) ---- */

/*
 * Split s[0..n) into tags. White space (FWS) may surround names, "=" and
 * values; a value holds VALCHARs and inner white space. Empty tag-specs
 * (";;", a trailing ";") are allowed. 0, -1 on bad syntax, -2 on a
 * duplicate tag (its index in *dup).
 */
static int
tags_parse(const char *s, size_t n, struct taglist *tl, size_t *dup)
{
	size_t	 p = 0, seg, q;

	tl->s = s;
	tl->n = 0;
	while (p <= n) {
		const char *semi = memchr(s + p, ';', n - p);
		struct tag *t;
		seg = semi ? (size_t)(semi - s) : n;
		for (q = p; q < seg && is_ws(s[q]); q++)
			;
		if (q == seg)
			goto next;		/* empty tag-spec */
		if (tl->n == TAGS_MAX)
			return -1;
		t = &tl->t[tl->n];
		t->name = q;
		if (!((s[q] >= 'a' && s[q] <= 'z') || (s[q] >= 'A' &&
		    s[q] <= 'Z')))
			return -1;
		while (q < seg && ((s[q] >= 'a' && s[q] <= 'z') ||
		    (s[q] >= 'A' && s[q] <= 'Z') || (s[q] >= '0' &&
		    s[q] <= '9') || s[q] == '_'))
			q++;
		t->nlen = q - t->name;
		while (q < seg && is_ws(s[q]))
			q++;
		if (q == seg || s[q] != '=')
			return -1;
		t->eq = q++;
		while (q < seg && is_ws(s[q]))
			q++;
		t->val = q;
		t->segend = seg;
		for (t->vlen = 0; q < seg; q++) {
			if (!is_ws(s[q]) && (s[q] < 0x21 || s[q] > 0x7e))
				return -1;
			if (!is_ws(s[q]))
				t->vlen = q + 1 - t->val;
		}
		for (size_t i = 0; i < tl->n; i++)
			if (tl->t[i].nlen == t->nlen && memcmp(s + tl->t[i].name,
			    s + t->name, t->nlen) == 0) {
				*dup = tl->n;
				return -2;
			}
		tl->n++;
next:
		p = seg + 1;
	}
	return 0;
}

/* the tag called name, or NULL */
static const struct tag *
tag_get(const struct taglist *tl, const char *name)
{
	size_t	 len = strlen(name);

	for (size_t i = 0; i < tl->n; i++)
		if (tl->t[i].nlen == len && memcmp(tl->s + tl->t[i].name, name,
		    len) == 0)
			return &tl->t[i];
	return NULL;
}

#define TV(tl, t)	((tl)->s + (t)->val)

/* is item one of the colon-separated values of t (white space around) */
static int
tag_has(const struct taglist *tl, const struct tag *t, const char *item)
{
	const char	*v = TV(tl, t), *e = v + t->vlen;

	while (v < e) {
		const char *c = memchr(v, ':', (size_t)(e - v)), *ie;
		ie = c ? c : e;
		while (v < ie && is_ws(*v))
			v++;
		const char *te = ie;
		while (te > v && is_ws(te[-1]))
			te--;
		if (ieq(v, (size_t)(te - v), item))
			return 1;
		v = c ? c + 1 : e;
	}
	return 0;
}

/* ---- the header section ---- */

/* names compared without case (ASCII), shorter first on a tie */
static int
name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	for (size_t i = 0; i < an && i < bn; i++)
		if (lower(a[i]) != lower(b[i]))
			return (unsigned char)lower(a[i]) <
			    (unsigned char)lower(b[i]) ? -1 : 1;
	return an < bn ? -1 : an > bn;
}

static int
vname_cmp(const void *x, const void *y)
{
	const struct vname	*a = x, *b = y;
	int			 r = name_cmp(a->name, a->nlen, b->name, b->nlen);

	return r ? r : a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int
vfield_add(struct vfields *fs, size_t *cap, const char *h, size_t start,
    size_t end)
{
	struct vfield	*f;
	const char	*colon = memchr(h + start, ':', end - start);
	size_t		 nlen;

	if (fs->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		if ((f = reallocarray(fs->f, ncap, sizeof(*f))) == NULL)
			return -1;
		fs->f = f;
		*cap = ncap;
	}
	nlen = colon ? (size_t)(colon - h) - start : 0;
	while (nlen > 0 && (h[start + nlen - 1] == ' ' ||
	    h[start + nlen - 1] == '\t'))
		nlen--;
	f = &fs->f[fs->n++];
	f->start = (uint32_t)start;
	f->end = (uint32_t)end;
	f->nlen = (uint32_t)nlen;
	return 0;
}

/*
 * Split h[0..len) into fields (a line starting with white space continues
 * the field above) and sort the named ones by name, then position, so the
 * instances of a name are one run, the bottom one last. Sorting, not
 * hashing: field names are the sender's, and a crafted set of colliding
 * names must not make this quadratic. 0 or -1 (out of memory).
 */
static int
vfields_build(struct vfields *fs, const char *h, size_t len)
{
	size_t	 cap = 0, p = 0, e;

	memset(fs, 0, sizeof(*fs));
	while (p < len) {
		const char *nl;
		for (e = p;;) {
			nl = memchr(h + e, '\n', len - e);
			e = nl ? (size_t)(nl - h) + 1 : len;
			if (e >= len || (h[e] != ' ' && h[e] != '\t'))
				break;
		}
		if (vfield_add(fs, &cap, h, p, e) == -1)
			return -1;
		p = e;
	}
	if ((fs->sorted = calloc(fs->n ? fs->n : 1, sizeof(*fs->sorted))) ==
	    NULL)
		return -1;
	for (uint32_t i = 0; i < fs->n; i++)
		if (fs->f[i].nlen > 0) {	/* no name: never signed */
			struct vname *vn = &fs->sorted[fs->ns++];
			vn->name = h + fs->f[i].start;
			vn->nlen = fs->f[i].nlen;
			vn->idx = i;
		}
	qsort(fs->sorted, fs->ns, sizeof(*fs->sorted), vname_cmp);
	return 0;
}

static void
vfields_free(struct vfields *fs)
{
	free(fs->f);
	free(fs->sorted);
}

/* the k-th instance of name from the bottom, or NONE32 */
static uint32_t
vfields_find(const struct vfields *fs, const char *name, size_t nlen,
    size_t k)
{
	size_t	 lo = 0, hi = fs->ns, mid, end;

	while (lo < hi) {		/* the first one after the run */
		mid = lo + (hi - lo) / 2;
		if (name_cmp(fs->sorted[mid].name, fs->sorted[mid].nlen, name,
		    nlen) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	end = lo;
	if (end <= k)
		return NONE32;
	mid = end - 1 - k;
	if (name_cmp(fs->sorted[mid].name, fs->sorted[mid].nlen, name,
	    nlen) != 0)
		return NONE32;
	return fs->sorted[mid].idx;
}

/* a field in canonical form (c=simple: as is, each line ending in CRLF;
   c=relaxed: dkim.c's) */
static void
canon_field(const char *f, size_t len, int simple, struct buf *out)
{
	if (!simple) {
		dkim_canon_header(f, len, out);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (f[i] == '\n' && (i == 0 || f[i - 1] != '\r'))
			buf_addc(out, '\r');
		buf_addc(out, f[i]);
	}
	if (len == 0 || f[len - 1] != '\n') {	/* the last, unterminated */
		if (len == 0 || f[len - 1] != '\r')
			buf_addc(out, '\r');
		buf_addc(out, '\n');
	}
}

/* ---- one signature ---- */

struct hname {
	const char	*name;
	size_t		 len;
	uint32_t	 next;		/* the field it takes, or NONE32 */
};

/*
 * The header hash: the fields named in h= (each name takes the last
 * instance not yet taken; none left: nothing), then the signature field
 * f with its b= value [bstart, bend) removed and no final CRLF.
 */
static int
header_hash(struct vsig *s, const char *h, const struct vfields *fs,
    const struct vfield *self, const struct hname *hn, size_t nh,
    size_t bstart, size_t bend)
{
	struct buf	 scratch;
	EVP_MD_CTX	*md;
	unsigned	 len = 0;
	int		 ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	buf_init(&scratch, SCRATCH_MAX);
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < nh; i++) {
		const struct vfield *f;
		if (hn[i].next == NONE32)
			continue;		/* oversigned */
		f = &fs->f[hn[i].next];
		buf_reset(&scratch);
		canon_field(h + f->start, f->end - f->start, s->hsimple,
		    &scratch);
		ok = !scratch.err && EVP_DigestUpdate(md, scratch.data,
		    scratch.len) == 1;
	}
	buf_reset(&scratch);
	buf_add(&scratch, h + self->start, bstart - self->start);
	buf_add(&scratch, h + bend, self->end - bend);
	if (ok && !scratch.err) {
		struct buf c;
		buf_init(&c, SCRATCH_MAX);
		canon_field(scratch.data, scratch.len, s->hsimple, &c);
		ok = !c.err && c.len >= 2 && EVP_DigestUpdate(md, c.data,
		    c.len - 2) == 1 && EVP_DigestFinal_ex(md, s->hh, &len) ==
		    1 && len == DKIM_HASH_LEN;
		buf_free(&c);
	} else
		ok = 0;
	buf_free(&scratch);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* parse h= into names and pick their fields; 0, or -1 with a reason */
static int
sig_h(struct vsig *s, const struct taglist *tl, const struct tag *t,
    const struct vfields *fs, struct hname *hn, size_t *nh)
{
	const char	*v = TV(tl, t), *e = v + t->vlen;
	int		 from = 0;

	*nh = 0;
	while (v <= e) {
		const char *c = memchr(v, ':', (size_t)(e - v)), *ie, *te;
		ie = c ? c : e;
		while (v < ie && is_ws(*v))
			v++;
		for (te = ie; te > v && is_ws(te[-1]); te--)
			;
		if (te == v || *nh == DKIMV_H_MAX) {
			set_result(s, DKIMV_PERMERROR, te == v ?
			    "empty name in h=" : "too many names in h=");
			return -1;
		}
		for (const char *x = v; x < te; x++)
			if (is_ws(*x)) {
				set_result(s, DKIMV_PERMERROR, "bad h=");
				return -1;
			}
		hn[*nh].name = v;
		hn[*nh].len = (size_t)(te - v);
		hn[*nh].next = NONE32;
		from |= ieq(v, hn[*nh].len, "from");
		/* the k-th time the name is listed: its k-th field from the
		   bottom (none left: nothing, RFC 6376 5.4.2) */
		size_t k = 0;
		for (size_t j = 0; j < *nh; j++)
			k += hn[j].len == hn[*nh].len && strncasecmp(hn[j].name,
			    v, hn[j].len) == 0;
		hn[*nh].next = vfields_find(fs, v, hn[*nh].len, k);
		(*nh)++;
		if (c == NULL)
			break;
		v = c + 1;
	}
	if (!from) {
		set_result(s, DKIMV_PERMERROR, "From not signed");
		return -1;
	}
	return 0;
}

/* a domain name as DKIM uses it (letters, digits, '-', '_'; labels
   separated by single dots) */
static int
domain_ok(const char *v, size_t n, size_t max)
{
	if (n == 0 || n > max || v[0] == '.' || v[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' &&
		    v[i] <= 'Z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '-' ||
		    (v[i] == '.' && v[i - 1] != '.') || v[i] == '_'))
			return 0;
	return 1;
}

static int
hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* i= (dkim-quoted-printable) decoded into pub.i, its domain checked
   against d=; 0, -1 (bad i=) or -2 (not in d=) */
static int
sig_i(struct vsig *s, const char *v, size_t n)
{
	char		 out[256];
	size_t		 o = 0, dl, d = strlen(s->pub.d);
	const char	*at, *dom;

	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)v[k];
		if (is_ws((char)c))
			continue;
		if (c == '=') {
			int hi, lo;
			if (n - k < 3 || (hi = hex_val(v[k + 1])) == -1 ||
			    (lo = hex_val(v[k + 2])) == -1)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			k += 2;
		}
		if (c < 0x21 || c > 0x7e || o + 1 >= sizeof(out))
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if ((at = strrchr(out, '@')) == NULL)
		return -1;
	dom = at + 1;
	dl = strlen(dom);
	if (!domain_ok(dom, dl, 253))
		return -1;
	if (!(dl == d || (dl > d && dom[dl - d - 1] == '.')) ||
	    strcasecmp(dom + dl - d, s->pub.d) != 0)
		return -2;
	memcpy(s->pub.i, out, o + 1);
	memcpy(s->idom, dom, dl + 1);
	return 0;
}

/* c=: header[/body], each simple or relaxed; 0 or -1 */
static int
canon_parse(const char *v, size_t n, int *hs, int *bs)
{
	const char	*sl = memchr(v, '/', n);
	size_t		 hl = sl ? (size_t)(sl - v) : n;

	*hs = *bs = 1;
	if (ieq(v, hl, "relaxed"))
		*hs = 0;
	else if (!ieq(v, hl, "simple"))
		return -1;
	if (sl == NULL)
		return 0;
	if (ieq(sl + 1, n - hl - 1, "relaxed"))
		*bs = 0;
	else if (!ieq(sl + 1, n - hl - 1, "simple"))
		return -1;
	return 0;
}

/* what can be reported even of a broken signature: d, s, a, b8 */
static void
sig_report(struct vsig *s, const struct taglist *tl)
{
	const struct tag	*t;

	if ((t = tag_get(tl, "d")) != NULL && domain_ok(TV(tl, t), t->vlen,
	    253))
		copy_val(s->pub.d, sizeof(s->pub.d), TV(tl, t), t->vlen);
	if ((t = tag_get(tl, "s")) != NULL && domain_ok(TV(tl, t), t->vlen,
	    sizeof(s->pub.s) - 1))
		copy_val(s->pub.s, sizeof(s->pub.s), TV(tl, t), t->vlen);
	if ((t = tag_get(tl, "a")) != NULL && domain_ok(TV(tl, t), t->vlen,
	    sizeof(s->pub.alg) - 1))
		copy_val(s->pub.alg, sizeof(s->pub.alg), TV(tl, t), t->vlen);
	if ((t = tag_get(tl, "b")) != NULL) {
		size_t o = 0;
		for (size_t k = 0; k < t->vlen && o < 8; k++)
			if (!is_ws(TV(tl, t)[k]))
				s->pub.b8[o++] = TV(tl, t)[k];
		s->pub.b8[o] = '\0';
	}
}

#define FAIL(r, w)	do { set_result(s, r, w); return -1; } while (0)

/* l=, t=, x=, bh= and b=: 0, or -1 with the result set */
static int
sig_values(struct vsig *s, const struct taglist *tl)
{
	const struct tag	*t;
	long long		 ts = -1, x = -1;
	size_t			 len;

	s->l = -1;
	if ((t = tag_get(tl, "l")) != NULL && number(TV(tl, t), t->vlen,
	    &s->l) == -1)
		FAIL(DKIMV_PERMERROR, "bad l=");
	if ((t = tag_get(tl, "t")) != NULL && number(TV(tl, t), t->vlen,
	    &ts) == -1)
		FAIL(DKIMV_PERMERROR, "bad t=");
	if ((t = tag_get(tl, "x")) != NULL && number(TV(tl, t), t->vlen,
	    &x) == -1)
		FAIL(DKIMV_PERMERROR, "bad x=");
	if (x >= 0 && ts >= 0 && x < ts)
		FAIL(DKIMV_PERMERROR, "x= before t=");
	t = tag_get(tl, "bh");
	if (b64_decode(TV(tl, t), t->vlen, s->bh, sizeof(s->bh), &len) == -1)
		FAIL(DKIMV_PERMERROR, "bad base64 in bh=");
	if (len != DKIM_HASH_LEN)
		FAIL(DKIMV_PERMERROR, "bh= is not a SHA-256 hash");
	t = tag_get(tl, "b");
	if (b64_decode(TV(tl, t), t->vlen, s->b, sizeof(s->b), &s->blen) ==
	    -1)
		FAIL(DKIMV_PERMERROR, "bad base64 in b=");
	if (s->blen == 0)
		FAIL(DKIMV_PERMERROR, "empty b=");
	if (x >= 0 && x < s->xnow)
		FAIL(DKIMV_FAIL, "signature expired");
	return 0;
}

/* the tags that need no header: 0, or -1 with the result set */
static int
sig_tags(struct vsig *s, const struct taglist *tl)
{
	static const char *const req[] = { "v", "a", "b", "bh", "d", "h", "s" };
	const struct tag	*t;
	char			 why[64];
	size_t			 len;
	int			 rc;

	for (size_t k = 0; k < sizeof(req) / sizeof(req[0]); k++)
		if (tag_get(tl, req[k]) == NULL) {
			snprintf(why, sizeof(why), "missing %s=", req[k]);
			set_result(s, DKIMV_PERMERROR, why);
			return -1;
		}
	t = tag_get(tl, "v");
	if (!ieq(TV(tl, t), t->vlen, "1"))
		FAIL(DKIMV_PERMERROR, "bad v=");
	t = tag_get(tl, "a");
	if (ieq(TV(tl, t), t->vlen, "rsa-sha256"))
		s->ed25519 = 0;
	else if (ieq(TV(tl, t), t->vlen, "ed25519-sha256"))
		s->ed25519 = 1;
	else if (ieq(TV(tl, t), t->vlen, "rsa-sha1"))
		FAIL(DKIMV_PERMERROR, "rsa-sha1 not accepted");
	else
		FAIL(DKIMV_PERMERROR, "unknown algorithm");
	if (s->pub.d[0] == '\0')
		FAIL(DKIMV_PERMERROR, "bad d=");
	if (s->pub.s[0] == '\0')
		FAIL(DKIMV_PERMERROR, "bad s=");
	s->hsimple = s->bsimple = 1;
	if ((t = tag_get(tl, "c")) != NULL && canon_parse(TV(tl, t), t->vlen,
	    &s->hsimple, &s->bsimple) == -1)
		FAIL(DKIMV_PERMERROR, "bad c=");
	if ((t = tag_get(tl, "q")) != NULL && !tag_has(tl, t, "dns/txt"))
		FAIL(DKIMV_PERMERROR, "unsupported q=");
	if ((t = tag_get(tl, "i")) != NULL) {
		if ((rc = sig_i(s, TV(tl, t), t->vlen)) != 0)
			FAIL(DKIMV_PERMERROR, rc == -1 ? "bad i=" :
			    "i= not in d=");
	} else {
		len = strlen(s->pub.d);		/* at most 253 */
		s->pub.i[0] = '@';
		memcpy(s->pub.i + 1, s->pub.d, len + 1);
		memcpy(s->idom, s->pub.d, len + 1);
	}
	return sig_values(s, tl);
}
#undef FAIL

/* the DKIM-Signature field f: parse, hash the header, start the body */
static void
sig_parse(struct dkimv *v, struct vsig *s, const char *h,
    const struct vfields *fs, const struct vfield *f)
{
	struct taglist	*tl;
	struct hname	*hn;
	const struct tag *bt;
	size_t		 vs, ve = f->end, dup = 0, nh;
	int		 rc;

	s->xnow = v->now;
	vs = (size_t)((const char *)memchr(h + f->start, ':', f->end -
	    f->start) - h) + 1;
	if (ve > vs && h[ve - 1] == '\n')
		ve--;
	if (ve > vs && h[ve - 1] == '\r')
		ve--;
	tl = malloc(sizeof(*tl));
	hn = calloc(DKIMV_H_MAX, sizeof(*hn));
	if (tl == NULL || hn == NULL) {
		set_result(s, DKIMV_TEMPERROR, "out of memory");
		goto done;
	}
	if ((rc = tags_parse(h + vs, ve - vs, tl, &dup)) != 0) {
		char why[64];
		if (rc == -2)
			snprintf(why, sizeof(why), "duplicate tag %.*s=",
			    (int)(tl->t[dup].nlen > 16 ? 16 : tl->t[dup].nlen),
			    h + vs + tl->t[dup].name);
		set_result(s, DKIMV_PERMERROR, rc == -2 ? why :
		    "bad tag list");
		goto done;
	}
	sig_report(s, tl);
	if (v->nomem) {
		set_result(s, DKIMV_TEMPERROR, "out of memory");
		goto done;
	}
	if (v->truncated) {
		set_result(s, DKIMV_PERMERROR, "header section too large");
		goto done;
	}
	if (sig_tags(s, tl) == -1 || sig_h(s, tl, tag_get(tl, "h"), fs, hn,
	    &nh) == -1)
		goto done;
	bt = tag_get(tl, "b");
	if (header_hash(s, h, fs, f, hn, nh, vs + bt->eq + 1,
	    vs + bt->segend) == -1 || dkim_body_init_ex(&s->body, NULL,
	    s->bsimple, s->l) == -1) {
		set_result(s, DKIMV_TEMPERROR, "out of memory");
		goto done;
	}
	s->st = VS_BODY;
done:
	free(tl);
	free(hn);
}

/* ---- the key ---- */

/* a key record that parses: a tag list, v=DKIM1 first if there */
static int
key_parse(const char *r, struct taglist *tl)
{
	const struct tag	*t;
	size_t			 dup;

	if (tags_parse(r, strlen(r), tl, &dup) != 0)
		return -1;
	if ((t = tag_get(tl, "v")) != NULL && (t != &tl->t[0] ||
	    !ieq(TV(tl, t), t->vlen, "DKIM1")))
		return -1;
	return 0;
}

/* p= decoded: a raw Ed25519 key, or an RSA SubjectPublicKeyInfo (or
   RSAPublicKey, which RFC 6376 3.6.1 names); NULL if it is neither */
static EVP_PKEY *
key_decode(const unsigned char *p, size_t plen, int ed)
{
	const unsigned char	*q = p;
	EVP_PKEY		*pk;

	if (ed)
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p,
		    plen);
	if ((pk = d2i_PUBKEY(NULL, &q, (long)plen)) != NULL &&
	    (size_t)(q - p) == plen)
		return pk;
	EVP_PKEY_free(pk);
	q = p;
	if ((pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)plen)) != NULL &&
	    (size_t)(q - p) != plen) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	return pk;
}

/* the size of an RSA key's public exponent (INT_MAX if unknown) */
static int
rsa_e_bits(const EVP_PKEY *pk)
{
	BIGNUM	*e = NULL;
	int	 bits = INT_MAX;

	if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1)
		bits = BN_num_bits(e);
	BN_free(e);
	return bits;
}

/* the public key of record tl for signature s, or NULL with the result */
static EVP_PKEY *
key_make(struct vsig *s, const struct taglist *tl)
{
	const struct tag	*t;
	unsigned char		*p;
	EVP_PKEY		*pk;
	size_t			 plen;
	int			 ed = 0, bits;

#define FAIL(r, w)	do { set_result(s, r, w); return NULL; } while (0)
	if ((t = tag_get(tl, "h")) != NULL && !tag_has(tl, t, "sha256"))
		FAIL(DKIMV_PERMERROR, "key h= does not allow sha256");
	if ((t = tag_get(tl, "k")) != NULL) {
		if (ieq(TV(tl, t), t->vlen, "ed25519"))
			ed = 1;
		else if (!ieq(TV(tl, t), t->vlen, "rsa"))
			FAIL(DKIMV_PERMERROR, "unknown key type");
	}
	if (ed != s->ed25519)
		FAIL(DKIMV_PERMERROR, "key type does not match a=");
	if ((t = tag_get(tl, "s")) != NULL && !tag_has(tl, t, "*") &&
	    !tag_has(tl, t, "email"))
		FAIL(DKIMV_PERMERROR, "key not for email");
	if ((t = tag_get(tl, "t")) != NULL) {
		if (tag_has(tl, t, "s") && strcasecmp(s->idom, s->pub.d) != 0)
			FAIL(DKIMV_PERMERROR, "i= domain not d= (key t=s)");
		s->pub.testing = tag_has(tl, t, "y");
	}
	if ((t = tag_get(tl, "p")) == NULL)
		FAIL(DKIMV_PERMERROR, "key record without p=");
	if (t->vlen == 0)
		FAIL(DKIMV_FAIL, "key revoked");
	if ((p = malloc(KEYP_MAX)) == NULL)
		FAIL(DKIMV_TEMPERROR, "out of memory");
	if (b64_decode(TV(tl, t), t->vlen, p, KEYP_MAX, &plen) == -1) {
		free(p);
		FAIL(DKIMV_PERMERROR, "bad base64 in key p=");
	}
	pk = key_decode(p, plen, ed);
	free(p);
	ERR_clear_error();
	if (pk == NULL || (!ed && EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)) {
		EVP_PKEY_free(pk);
		FAIL(DKIMV_PERMERROR, ed ? "bad Ed25519 key" : "bad RSA key");
	}
	bits = EVP_PKEY_get_bits(pk);
	if (!ed && (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS)) {
		EVP_PKEY_free(pk);
		FAIL(DKIMV_PERMERROR, bits < DKIM_RSA_MIN_BITS ?
		    "key too short" : "key too long");
	}
	if (!ed && rsa_e_bits(pk) > RSA_E_MAX_BITS) {
		EVP_PKEY_free(pk);
		FAIL(DKIMV_PERMERROR, "RSA exponent too large");
	}
#undef FAIL
	return pk;
}

/* the signature over the header hash: 1 good, 0 bad */
static int
sig_check(const struct vsig *s, EVP_PKEY *pk)
{
	EVP_PKEY_CTX	*pc = NULL;
	EVP_MD_CTX	*md = NULL;
	int		 ok = 0;

	if (s->ed25519) {
		/* RFC 8463 3: PureEdDSA over the SHA-256 of the data */
		ok = (md = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
		    EVP_DigestVerify(md, s->b, s->blen, s->hh,
		    sizeof(s->hh)) == 1;
	} else {
		ok = (pc = EVP_PKEY_CTX_new(pk, NULL)) != NULL &&
		    EVP_PKEY_verify_init(pc) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		    EVP_PKEY_verify(pc, s->b, s->blen, s->hh,
		    sizeof(s->hh)) == 1;
	}
	EVP_MD_CTX_free(md);
	EVP_PKEY_CTX_free(pc);
	ERR_clear_error();
	return ok;
}

/* the key of s from the cache: 0 when its answer is not there yet */
static int
sig_key(struct vsig *s, struct dns_cache *c)
{
	const struct dns_rrset	*rr;
	struct taglist		*tl;
	EVP_PKEY		*pk;
	char			 name[512], why[128];
	size_t			 i;

	snprintf(name, sizeof(name), "%s._domainkey.%s", s->pub.s, s->pub.d);
	if ((rr = dns_cache_get(c, DNS_RR_TXT, name)) == NULL)
		return 0;
	if (rr->status == DNS_R_TEMP) {
		snprintf(why, sizeof(why), "DNS error for %s", name);
		set_result(s, DKIMV_TEMPERROR, why);
		return 1;
	}
	if (rr->status != DNS_R_OK || rr->n == 0) {
		snprintf(why, sizeof(why), "no key for %s", name);
		set_result(s, DKIMV_PERMERROR, why);
		return 1;
	}
	if ((tl = malloc(sizeof(*tl))) == NULL) {
		set_result(s, DKIMV_TEMPERROR, "out of memory");
		return 1;
	}
	for (i = 0; i < rr->n; i++)
		if (key_parse(rr->rr[i], tl) == 0)
			break;
	if (i == rr->n)
		set_result(s, DKIMV_PERMERROR, "bad key record");
	else if ((pk = key_make(s, tl)) != NULL) {
		if (!sig_check(s, pk))
			set_result(s, DKIMV_FAIL, "bad signature");
		else if (s->l >= 0 && (unsigned long long)s->l < s->btotal) {
			snprintf(why, sizeof(why), "l= covers %lld of %llu "
			    "body octets", s->l, s->btotal);
			set_result(s, DKIMV_POLICY, why);
		} else
			set_result(s, DKIMV_PASS, "");
		EVP_PKEY_free(pk);
	}
	free(tl);
	return 1;
}

/* ---- the message ---- */

struct dkimv *
dkimv_new(long long now)
{
	struct dkimv	*v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return NULL;
	v->now = now;
	v->bol = 1;
	buf_init(&v->hdr, DKIMV_HDR_MAX + 2);	/* and the empty line */
	return v;
}

void
dkimv_free(struct dkimv *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nsig; i++)
		if (v->sig[i].st == VS_BODY)
			dkim_body_abort(&v->sig[i].body);
	buf_free(&v->hdr);
	free(v);
}

/* the fields are all there: find, parse and start the signatures */
static void
hdr_done(struct dkimv *v)
{
	struct vfields	 fs;
	const char	*h = v->hdr.data ? v->hdr.data : "";

	v->in_body = 1;
	v->hlen = v->hdr.len;
	if (v->hlen > DKIMV_HDR_MAX) {
		v->truncated = 1;
		v->hlen = DKIMV_HDR_MAX;
	}
	if (vfields_build(&fs, h, v->hlen) == -1) {
		vfields_free(&fs);
		v->seen = v->nsig = 1;
		set_result(&v->sig[0], DKIMV_TEMPERROR, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < fs.n; i++) {
		const struct vfield *f = &fs.f[i];
		if (!ieq(h + f->start, f->nlen, "dkim-signature"))
			continue;
		v->seen++;
		if (v->nsig < DKIMV_SIGS_MAX)
			sig_parse(v, &v->sig[v->nsig++], h, &fs, f);
	}
	vfields_free(&fs);
}

/* header bytes up to the empty line: how many of p[0..n) were header */
static size_t
hdr_feed(struct dkimv *v, const char *p, size_t n)
{
	size_t	 i, room;
	int	 end = 0;

	for (i = 0; i < n && !end; i++) {
		char c = p[i];
		if (c == '\n') {
			end = v->bol || v->crbol;
			v->bol = 1;
			v->crbol = 0;
		} else if (c == '\r' && v->bol) {
			v->bol = 0;
			v->crbol = 1;
		} else
			v->bol = v->crbol = 0;
	}
	room = v->hdr.max - v->hdr.len;
	if (room < i)
		v->truncated = 1;
	if (buf_add(&v->hdr, p, room < i ? room : i) == -1)
		v->nomem = 1;
	if (end) {
		if (!v->truncated && !v->nomem) {	/* the empty line */
			v->hdr.len--;
			if (v->hdr.len > 0 && v->hdr.data[v->hdr.len - 1] ==
			    '\r')
				v->hdr.len--;
			v->hdr.data[v->hdr.len] = '\0';
		}
		hdr_done(v);
	}
	return i;
}

void
dkimv_feed(struct dkimv *v, const void *data, size_t n)
{
	const char	*p = data;
	size_t		 k;

	if (v->ended || n == 0)
		return;
	if (!v->in_body) {
		k = hdr_feed(v, p, n);
		p += k;
		n -= k;
	}
	if (!v->in_body || n == 0)
		return;
	for (size_t i = 0; i < v->nsig; i++)
		if (v->sig[i].st == VS_BODY)
			dkim_body_update(&v->sig[i].body, p, n);
}

/* the end of the message: the body hashes are final */
static void
body_done(struct dkimv *v)
{
	unsigned char	 got[DKIM_HASH_LEN];
	char		 why[128];

	v->ended = 1;
	if (!v->in_body)
		hdr_done(v);
	for (size_t i = 0; i < v->nsig; i++) {
		struct vsig *s = &v->sig[i];
		if (s->st != VS_BODY)
			continue;
		if (dkim_body_final(&s->body, got) == -1) {
			set_result(s, DKIMV_TEMPERROR, "out of memory");
			continue;
		}
		s->btotal = s->body.total;
		if (s->l >= 0 && (unsigned long long)s->l > s->btotal) {
			snprintf(why, sizeof(why), "l= %lld beyond the %llu "
			    "body octets", s->l, s->btotal);
			set_result(s, DKIMV_PERMERROR, why);
		} else if (memcmp(got, s->bh, sizeof(got)) != 0)
			set_result(s, DKIMV_FAIL, "body hash mismatch");
		else
			s->st = VS_KEY;
	}
}

int
dkimv_verify(struct dkimv *v, struct dns_cache *c)
{
	int	 done = 1;

	if (!v->ended)
		body_done(v);
	for (size_t i = 0; i < v->nsig; i++)
		if (v->sig[i].st == VS_KEY && !sig_key(&v->sig[i], c))
			done = 0;
	return done;
}

size_t
dkimv_count(const struct dkimv *v)
{
	return v->nsig;
}

size_t
dkimv_seen(const struct dkimv *v)
{
	return v->seen;
}

const struct dkimv_sig *
dkimv_sig(const struct dkimv *v, size_t i)
{
	return i < v->nsig ? &v->sig[i].pub : NULL;
}

const char *
dkimv_header(const struct dkimv *v, size_t *len, int *truncated)
{
	*len = v->in_body ? v->hlen : v->hdr.len;
	if (truncated)
		*truncated = v->truncated;
	return v->hdr.data ? v->hdr.data : "";
}
