/*
 * dkim - DKIM signatures on OpenSSL's EVP API (dkim.h).
 *
 * Why not libopendkim: one library less to link and keep patched, and
 * OpenSSL 3 already does rsa-sha256 and Ed25519; the part that is DKIM's
 * own (relaxed canonicalization, header selection, the tag list) is small
 * and is tested here against the RFC's examples and OpenSSL verification.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim.h"

#define FOLD_COL	76	/* lines stay below 78 columns */
#define TAB_COL		8

const char *const dkim_sign_names[] = {
	"from", "sender", "reply-to", "subject", "date", "message-id", "to",
	"cc", "mime-version", "content-type", "content-transfer-encoding",
	"content-id", "content-description", "in-reply-to", "references",
	"list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post",
	"list-subscribe", "list-post", "list-owner", "list-archive",
	NULL
};

/* ---- keys ---- */

/* never prompt for a passphrase: an encrypted key is an error */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

static struct dkim_key *
key_wrap(EVP_PKEY *pkey, char *err, size_t errlen)
{
	struct dkim_key	*k;
	int		 id = EVP_PKEY_get_base_id(pkey), bits;

	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "not an RSA or Ed25519 key");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (id == EVP_PKEY_RSA && (bits < DKIM_RSA_MIN_BITS ||
	    bits > DKIM_RSA_MAX_BITS)) {
		snprintf(err, errlen, "RSA key of %d bits (%d to %d)", bits,
		    DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, errlen, "out of memory");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pkey = pkey;
	k->alg = id == EVP_PKEY_RSA ? DKIM_RSA_SHA256 : DKIM_ED25519_SHA256;
	k->bits = bits > 0 ? (unsigned)bits : 0;
	return k;
}

struct dkim_key *
dkim_key_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	BIO		*bio;
	EVP_PKEY	*pkey;

	if (len > DKIM_KEYFILE_MAX || (bio = BIO_new_mem_buf(pem,
	    (int)len)) == NULL) {
		snprintf(err, errlen, "key too large or out of memory");
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (pkey == NULL) {
		snprintf(err, errlen, "not a PEM private key (or one with a "
		    "passphrase)");
		return NULL;
	}
	return key_wrap(pkey, err, errlen);
}

struct dkim_key *
dkim_key_load(const char *path, char *err, size_t errlen)
{
	struct dkim_key	*k;
	char		*text, why[128];
	size_t		 have = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((text = malloc(DKIM_KEYFILE_MAX + 1)) == NULL) {
		close(fd);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	while (have <= DKIM_KEYFILE_MAX) {
		n = read(fd, text + have, DKIM_KEYFILE_MAX + 1 - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	if (have > DKIM_KEYFILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d octets", path,
		    DKIM_KEYFILE_MAX);
		k = NULL;
	} else if ((k = dkim_key_from_pem(text, have, why, sizeof(why))) ==
	    NULL)
		snprintf(err, errlen, "%s: %s", path, why);
	OPENSSL_cleanse(text, DKIM_KEYFILE_MAX + 1);
	free(text);
	return k;
}

struct dkim_key *
dkim_key_generate(enum dkim_alg alg, unsigned bits, char *err, size_t errlen)
{
	EVP_PKEY	*pkey;

	if (alg == DKIM_RSA_SHA256 && (bits < DKIM_RSA_MIN_BITS ||
	    bits > DKIM_RSA_MAX_BITS)) {
		snprintf(err, errlen, "RSA keys have %d to %d bits",
		    DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
		return NULL;
	}
	pkey = alg == DKIM_RSA_SHA256 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
	    (size_t)bits) : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL) {
		ERR_clear_error();
		snprintf(err, errlen, "key generation failed");
		return NULL;
	}
	return key_wrap(pkey, err, errlen);
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *
dkim_key_kind(const struct dkim_key *k)
{
	return k->alg == DKIM_RSA_SHA256 ? "rsa" : "ed25519";
}

int
dkim_key_pem(const struct dkim_key *k, struct buf *out)
{
	BIO	*bio;
	char	*p;
	long	 n;
	int	 rc = -1;

	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL,
	    NULL) == 1 && (n = BIO_get_mem_data(bio, &p)) > 0)
		rc = buf_add(out, p, (size_t)n);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

/* base64 without line breaks */
static int
b64_add(struct buf *out, const unsigned char *p, size_t n)
{
	unsigned char	*e;
	int		 len, rc;

	if (n > (size_t)1 << 20 || (e = malloc(4 * ((n + 2) / 3) + 1)) ==
	    NULL)
		return -1;
	len = EVP_EncodeBlock(e, p, (int)n);
	rc = len < 0 ? -1 : buf_add(out, e, (size_t)len);
	free(e);
	return rc;
}

int
dkim_key_public(const struct dkim_key *k, struct buf *out)
{
	unsigned char	 raw[64], *der, *q;
	size_t		 rawlen = sizeof(raw);
	int		 n, rc;

	if (k->alg == DKIM_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &rawlen) != 1)
			return -1;
		return b64_add(out, raw, rawlen);
	}
	if ((n = i2d_PUBKEY(k->pkey, NULL)) <= 0 ||
	    (der = malloc((size_t)n)) == NULL)
		return -1;
	q = der;
	rc = i2d_PUBKEY(k->pkey, &q) == n ? b64_add(out, der, (size_t)n) : -1;
	free(der);
	return rc;
}

/* ---- canonicalization ---- */

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

int
dkim_canon_header(const char *f, size_t len, struct buf *out)
{
	const char	*colon = memchr(f, ':', len);
	size_t		 nlen = colon ? (size_t)(colon - f) : len, i;
	int		 sp = 0, started = 0;

	while (nlen > 0 && is_wsp(f[nlen - 1]))
		nlen--;
	for (i = 0; i < nlen; i++)	/* no colon: never a CR or LF out */
		if (f[i] != '\r' && f[i] != '\n')
			buf_addc(out, (f[i] >= 'A' && f[i] <= 'Z') ? f[i] + 32 :
			    f[i]);
	buf_addc(out, ':');
	for (i = colon ? (size_t)(colon - f) + 1 : len; i < len; i++) {
		char c = f[i];
		/* unfold: only line ends go (a bare CR is neither white
		   space nor a line end: kept, RFC 6376 3.4.2) */
		if (c == '\n' || (c == '\r' && (i + 1 == len ||
		    f[i + 1] == '\n')))
			continue;
		if (is_wsp(c)) {
			sp = started;
			continue;
		}
		if (sp)
			buf_addc(out, ' ');
		sp = 0;
		started = 1;
		buf_addc(out, c);
	}
	return buf_add(out, "\r\n", 2);
}

static void
body_flush(struct dkim_body *b)
{
	size_t	 olen = b->olen, n = olen;

	b->olen = 0;	/* also after an error: body_emit relies on it */
	if (n == 0 || b->err)
		return;
	if (b->limit >= 0) {		/* l=: hash the first octets only */
		unsigned long long lim = (unsigned long long)b->limit;
		if (b->total >= lim)
			n = 0;
		else if (lim - b->total < n)
			n = (size_t)(lim - b->total);
	}
	b->total += olen;
	if (n > 0 && (b->out ? buf_add(b->out, b->obuf, n) == -1 :
	    EVP_DigestUpdate(b->md, b->obuf, n) != 1))
		b->err = 1;
}

static void
body_emit(struct dkim_body *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (b->olen == sizeof(b->obuf))
			body_flush(b);
		b->obuf[b->olen++] = s[i];
	}
}

static void
body_eol(struct dkim_body *b)
{
	b->wsp = 0;			/* white space at the end: dropped */
	if (b->content)
		body_emit(b, "\r\n", 2);
	else
		b->empty++;		/* written only if more text follows */
	b->content = 0;
}

int
dkim_body_init(struct dkim_body *b, struct buf *out)
{
	return dkim_body_init_ex(b, out, 0, -1);
}

int
dkim_body_init_ex(struct dkim_body *b, struct buf *out, int simple,
    long long limit)
{
	memset(b, 0, sizeof(*b));
	b->out = out;
	b->simple = simple;
	b->limit = limit;
	if (out)
		return 0;
	if ((b->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(b->md);
		b->md = NULL;
		return -1;
	}
	return 0;
}

void
dkim_body_update(struct dkim_body *b, const void *data, size_t n)
{
	const char	*p = data;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (b->cr) {
			b->cr = 0;
			body_eol(b);
			if (c == '\n')
				continue;	/* that was a CRLF */
		}
		if (c == '\r') {
			b->cr = 1;
			continue;
		}
		if (c == '\n') {
			body_eol(b);
			continue;
		}
		if (is_wsp(c) && !b->simple) {
			b->wsp = 1;
			continue;
		}
		if (!b->content)
			for (; b->empty > 0; b->empty--)
				body_emit(b, "\r\n", 2);
		if (b->wsp)
			body_emit(b, " ", 1);
		b->wsp = 0;
		b->content = 1;
		body_emit(b, &c, 1);
	}
}

int
dkim_body_final(struct dkim_body *b, unsigned char bh[DKIM_HASH_LEN])
{
	unsigned	 len = 0;
	int		 rc;

	if (b->cr)
		body_eol(b);
	if (b->content)
		body_emit(b, "\r\n", 2);	/* the last line ends */
	if (b->simple && b->total + b->olen == 0)
		body_emit(b, "\r\n", 2);	/* simple: empty is one CRLF */
	body_flush(b);
	rc = b->err ? -1 : 0;
	if (b->md) {
		if (rc == 0 && (EVP_DigestFinal_ex(b->md, bh, &len) != 1 ||
		    len != DKIM_HASH_LEN))
			rc = -1;
		EVP_MD_CTX_free(b->md);
		b->md = NULL;
	}
	return rc;
}

void
dkim_body_abort(struct dkim_body *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}

/* ---- the signature ---- */

struct field {
	size_t		 start, end, nlen;
	int		 used;
};

/* the fields of the header section, up to its empty line */
static struct field *
split_fields(const char *h, size_t len, size_t *nf)
{
	struct field	*f = NULL, *nf2;
	size_t		 n = 0, cap = 0, p = 0, e;

	while (p < len && h[p] != '\n' && !(h[p] == '\r' && p + 1 < len &&
	    h[p + 1] == '\n')) {
		const char *nl;
		for (e = p;; ) {
			nl = memchr(h + e, '\n', len - e);
			e = nl ? (size_t)(nl - h) + 1 : len;
			if (e >= len || !is_wsp(h[e]))
				break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nf2 = reallocarray(f, cap, sizeof(*f))) == NULL) {
				free(f);
				return NULL;
			}
			f = nf2;
		}
		const char *colon = memchr(h + p, ':', e - p);
		f[n].start = p;
		f[n].end = e;
		f[n].nlen = colon ? (size_t)(colon - h) - p : 0;
		while (f[n].nlen > 0 && is_wsp(h[p + f[n].nlen - 1]))
			f[n].nlen--;
		f[n].used = 0;
		n++;
		p = e;
	}
	*nf = n;
	if (f == NULL)
		f = calloc(1, sizeof(*f));	/* no fields: not an error */
	return f;
}

static int
name_is(const char *h, const struct field *f, const char *name)
{
	return f->nlen == strlen(name) && strncasecmp(h + f->start, name,
	    f->nlen) == 0;
}

/* a line of tags that folds before a token that would pass FOLD_COL */
struct fold {
	struct buf	*b;
	size_t		 col;
};

static void
fold_add(struct fold *f, const char *s, int space)
{
	size_t	 n = strlen(s);

	if (f->col > TAB_COL && f->col + (space ? 1 : 0) + n > FOLD_COL) {
		buf_add(f->b, "\n\t", 2);
		f->col = TAB_COL;
	} else if (space) {
		buf_addc(f->b, ' ');
		f->col++;
	}
	buf_add(f->b, s, n);
	f->col += n;
}

/* base64 text, broken where a line is full (FWS is allowed in it) */
static void
fold_b64(struct fold *f, const char *s, size_t n)
{
	while (n > 0) {
		size_t room;
		if (f->col >= FOLD_COL) {
			buf_add(f->b, "\n\t", 2);
			f->col = TAB_COL;
		}
		room = FOLD_COL - f->col;
		if (room > n)
			room = n;
		buf_add(f->b, s, room);
		f->col += room;
		s += room;
		n -= room;
	}
}

/* the header tags up to "b=" (h= from the fields present) */
static int
sig_prefix(const struct dkim_sign_req *r, const char *hdr,
    const struct field *fl, size_t nf, const unsigned char *bh,
    struct fold *f, struct buf *names)
{
	char		 tok[300];
	struct buf	 b64;
	size_t		 i, c;
	int		 bad;

	buf_adds(f->b, "DKIM-Signature:");
	f->col = 15;
	fold_add(f, "v=1;", 1);
	fold_add(f, r->key->alg == DKIM_RSA_SHA256 ? "a=rsa-sha256;" :
	    "a=ed25519-sha256;", 1);
	fold_add(f, "c=relaxed/relaxed;", 1);
	snprintf(tok, sizeof(tok), "d=%s;", r->domain);
	fold_add(f, tok, 1);
	snprintf(tok, sizeof(tok), "s=%s;", r->selector);
	fold_add(f, tok, 1);
	snprintf(tok, sizeof(tok), "t=%lld;", r->t);
	fold_add(f, tok, 1);
	/* h=: each instance present, From: once more (oversigned) */
	for (const char *const *nm = dkim_sign_names; *nm; nm++) {
		for (i = c = 0; i < nf; i++)
			c += name_is(hdr, &fl[i], *nm);
		if (c > DKIM_PER_NAME_MAX)
			c = DKIM_PER_NAME_MAX;
		if (strcmp(*nm, "from") == 0)
			c++;
		for (; c > 0; c--) {
			if (names->len)
				buf_addc(names, ':');
			buf_adds(names, *nm);
		}
	}
	buf_addc(names, '\0');		/* the list, NUL separated below */
	for (char *s = names->data, *e; s && *s; s = e) {
		int first = s == names->data;
		e = strchr(s, ':');
		snprintf(tok, sizeof(tok), "%s%.*s%s", first ? "h=" : "",
		    (int)(e ? (size_t)(e - s) : strlen(s)), s, e ? ":" : ";");
		fold_add(f, tok, first);
		e = e ? e + 1 : NULL;
	}
	buf_init(&b64, 128);
	bad = b64_add(&b64, bh, DKIM_HASH_LEN) == -1;
	snprintf(tok, sizeof(tok), "bh=%s;", b64.data ? b64.data : "");
	fold_add(f, tok, 1);		/* 48 columns: on one line */
	buf_free(&b64);
	fold_add(f, "b=", 1);
	return bad || names->err || f->b->err ? -1 : 0;
}

/* the signed data: the chosen fields, then the signature field itself
   without its b= value and without a final CRLF (RFC 6376 3.7) */
static int
sig_data(const char *hdr, struct field *fl, size_t nf, const char *names,
    const struct buf *sig, struct buf *data)
{
	for (const char *s = names, *e; *s; s = *e ? e + 1 : e) {
		size_t n;
		e = strchr(s, ':');
		if (e == NULL)
			e = s + strlen(s);
		n = (size_t)(e - s);
		for (size_t i = nf; i-- > 0; )	/* from the bottom up */
			if (!fl[i].used && fl[i].nlen == n &&
			    strncasecmp(hdr + fl[i].start, s, n) == 0) {
				fl[i].used = 1;
				dkim_canon_header(hdr + fl[i].start,
				    fl[i].end - fl[i].start, data);
				break;
			}
	}
	dkim_canon_header(sig->data, sig->len, data);
	if (data->err || data->len < 2)
		return -1;
	data->len -= 2;
	return 0;
}

static int
sig_compute(const struct dkim_key *k, const struct buf *data,
    unsigned char **sig, size_t *siglen)
{
	EVP_MD_CTX	*ctx;
	unsigned char	 h[DKIM_HASH_LEN];
	const unsigned char *in = (const unsigned char *)data->data;
	size_t		 inlen = data->len;
	int		 ok;

	*sig = NULL;
	if (k->alg == DKIM_ED25519_SHA256) {
		/* RFC 8463 3: Ed25519 (pure) signs the SHA-256 of the data */
		if (EVP_Digest(in, inlen, h, NULL, EVP_sha256(), NULL) != 1)
			return -1;
		in = h;
		inlen = sizeof(h);
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestSignInit(ctx, NULL, k->alg == DKIM_RSA_SHA256 ?
	    EVP_sha256() : NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(ctx, NULL, siglen, in, inlen) == 1 &&
	    (*sig = malloc(*siglen)) != NULL &&
	    EVP_DigestSign(ctx, *sig, siglen, in, inlen) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok) {
		free(*sig);
		*sig = NULL;
		return -1;
	}
	return 0;
}

int
dkim_sign(const struct dkim_sign_req *r, const char *hdr, size_t hlen,
    const unsigned char bh[DKIM_HASH_LEN], struct buf *out, char *err,
    size_t errlen)
{
	struct field	*fl;
	struct buf	 sig, names, data, b64;
	struct fold	 f;
	unsigned char	*s = NULL;
	size_t		 nf = 0, slen = 0;
	int		 rc = -1;

	if (strlen(r->domain) > 253 || strlen(r->selector) >
	    DKIM_SELECTOR_MAX) {
		snprintf(err, errlen, "domain or selector too long");
		return -1;
	}
	if ((fl = split_fields(hdr, hlen, &nf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	buf_init(&sig, 64 * 1024);
	buf_init(&names, 16 * 1024);
	buf_init(&data, hlen * 2 + 64 * 1024);
	buf_init(&b64, 8192);
	f.b = &sig;
	f.col = 0;
	if (sig_prefix(r, hdr, fl, nf, bh, &f, &names) == -1 ||
	    sig_data(hdr, fl, nf, names.data, &sig, &data) == -1) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (sig_compute(r->key, &data, &s, &slen) == -1) {
		snprintf(err, errlen, "signing with the %s key failed",
		    dkim_key_kind(r->key));
		goto done;
	}
	if (b64_add(&b64, s, slen) == -1) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	fold_b64(&f, b64.data, b64.len);
	buf_addc(&sig, '\n');
	if (sig.err || buf_add(out, sig.data, sig.len) == -1) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	rc = 0;
done:
	free(s);
	free(fl);
	buf_free(&sig);
	buf_free(&names);
	buf_free(&data);
	buf_free(&b64);
	return rc;
}
