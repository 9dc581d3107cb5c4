/* dkim: relaxed canonicalization (RFC 6376 3.4.5) and sign-then-verify */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "dkim.h"

static void
canon_body(const char *in, size_t chunk, const char *want)
{
	struct dkim_body b;
	struct buf	 out;
	size_t		 len = strlen(in);

	buf_init(&out, 1 << 20);
	assert_int_equal(dkim_body_init(&b, &out), 0);
	for (size_t i = 0; i < len; i += chunk)	/* in pieces */
		dkim_body_update(&b, in + i, len - i < chunk ? len - i : chunk);
	assert_int_equal(dkim_body_final(&b, NULL), 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data ? out.data : "", want, out.len);
	buf_free(&out);
}

static void
canon_header(const char *in, const char *want)
{
	struct buf	 out;

	buf_init(&out, 1 << 20);
	assert_int_equal(dkim_canon_header(in, strlen(in), &out), 0);
	assert_string_equal(out.data, want);
	buf_free(&out);
}

static void
test_canon_rfc(void **state)
{
	(void)state;
	/* RFC 6376 3.4.5, both in CRLF and in the spool's LF */
	canon_header("A: X\r\n", "a:X\r\n");
	canon_header("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
	canon_header("B : Y\t\n\tZ  \n", "b:Y Z\r\n");
	for (size_t c = 1; c < 20; c++) {
		canon_body(" C \r\nD \t E\r\n\r\n\r\n", c, " C\r\nD E\r\n");
		canon_body(" C \nD \t E\n\n\n", c, " C\r\nD E\r\n");
	}
}

static void
test_canon_edges(void **state)
{
	(void)state;
	canon_body("", 1, "");			/* empty body: empty */
	canon_body("\n\n\r\n", 1, "");		/* only empty lines */
	canon_body("  \t\n \n", 1, "");		/* only white space */
	canon_body("x", 1, "x\r\n");		/* the last line ends */
	canon_body("x\r", 1, "x\r\n");
	canon_body("a\n\n\nb\n\n", 1, "a\r\n\r\n\r\nb\r\n");
	canon_body("a \n  \nb", 2, "a\r\n\r\nb\r\n");
	canon_body("a\rb\r\n", 1, "a\r\nb\r\n");	/* as on the wire */
	canon_header("SUBJECT:\t  hello   world \t\n", "subject:hello world\r\n");
	canon_header("X-Empty:\n", "x-empty:\r\n");
	canon_header("Folded: a\n  b\n\tc\n", "folded:a b c\r\n");
	/* a bare CR is kept (only CRLF, or the spool's LF, unfolds) */
	canon_header("S: a \rb\r\n", "s:a \rb\r\n");
	canon_header("S: a\r\n\tb\r", "s:a b\r\n");
}

/* ---- an independent check: parse the field, recompute, verify ---- */

/* the value of tag t in the signature (folding removed) */
static char *
tag(const char *sig, const char *t)
{
	char		 pat[8], *out = calloc(1, strlen(sig) + 1);
	const char	*p = sig;
	size_t		 n = 0;

	snprintf(pat, sizeof(pat), "%s=", t);
	assert_non_null(out);
	while ((p = strstr(p, pat)) != NULL) {
		char before = p == sig ? ';' : p[-1];
		if (before == ';' || before == ' ' || before == '\t')
			break;
		p++;
	}
	assert_non_null(p);
	for (p += strlen(pat); *p && *p != ';'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			out[n++] = *p;
	return out;
}

static unsigned char *
unb64(const char *s, size_t *len)
{
	size_t		 n = strlen(s);
	unsigned char	*o = malloc(n);
	int		 r;

	assert_non_null(o);
	r = EVP_DecodeBlock(o, (const unsigned char *)s, (int)n);
	assert_true(r >= 0);
	*len = (size_t)r - (n >= 1 && s[n - 1] == '=') - (n >= 2 &&
	    s[n - 2] == '=');
	return o;
}

/* append the canonical form of the last unused field called name */
static void
pick(const char *hdr, char *used, const char *name, struct buf *data)
{
	const char	*starts[256];
	size_t		 ends[256], n = 0, p = 0, nl = strlen(name);

	while (hdr[p] && hdr[p] != '\n') {
		size_t e = p;
		for (;;) {
			const char *x = strchr(hdr + e, '\n');
			e = (size_t)(x - hdr) + 1;
			if (hdr[e] != ' ' && hdr[e] != '\t')
				break;
		}
		starts[n] = hdr + p;
		ends[n++] = e - p;
		p = e;
	}
	while (n-- > 0)
		if (!used[starts[n] - hdr] && strncasecmp(starts[n], name, nl) ==
		    0 && starts[n][nl] == ':') {
			used[starts[n] - hdr] = 1;
			dkim_canon_header(starts[n], ends[n], data);
			return;
		}
}

/* verify the first field of msg (the signature) over the rest */
static int
verify(const char *msg, const struct dkim_key *k)
{
	const char	*nl = msg, *body;
	char		*sigf, *b, *bh, *h, *used;
	struct buf	 data, pub;
	struct dkim_body bb;
	unsigned char	 hash[DKIM_HASH_LEN], *sig, *want, d[DKIM_HASH_LEN];
	size_t		 siglen, wantlen, sl;
	EVP_MD_CTX	*ctx;
	int		 ok;

	do
		nl = strchr(nl, '\n') + 1;
	while (*nl == '\t' || *nl == ' ');
	sl = (size_t)(nl - msg);
	sigf = strndup(msg, sl);
	b = tag(sigf, "b");
	bh = tag(sigf, "bh");
	h = tag(sigf, "h");
	/* the body hash */
	body = strstr(nl, "\n\n") + 2;
	assert_int_equal(dkim_body_init(&bb, NULL), 0);
	dkim_body_update(&bb, body, strlen(body));
	assert_int_equal(dkim_body_final(&bb, hash), 0);
	want = unb64(bh, &wantlen);
	ok = wantlen == sizeof(hash) && memcmp(want, hash, wantlen) == 0;
	free(want);
	/* the header data */
	buf_init(&data, 1 << 20);
	used = calloc(1, strlen(nl) + 1);
	for (char *s = h, *e; s; s = e) {
		if ((e = strchr(s, ':')) != NULL)
			*e++ = '\0';
		pick(nl, used, s, &data);
	}
	/* the signature field without the b= value */
	char *bpos = strstr(sigf, "\tb=") ? strstr(sigf, "\tb=") :
	    strstr(sigf, " b=");
	assert_non_null(bpos);
	bpos[3] = '\0';
	dkim_canon_header(sigf, strlen(sigf), &data);
	data.len -= 2;
	sig = unb64(b, &siglen);
	/* the verifying key from its DNS form, as a receiver has it */
	buf_init(&pub, 8192);
	assert_int_equal(dkim_key_public(k, &pub), 0);
	size_t plen;
	unsigned char *p = unb64(pub.data, &plen);
	const unsigned char *pp = p;
	EVP_PKEY *pk = k->alg == DKIM_RSA_SHA256 ? d2i_PUBKEY(NULL, &pp,
	    (long)plen) : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
	    p, plen);
	assert_non_null(pk);
	ctx = EVP_MD_CTX_new();
	if (k->alg == DKIM_RSA_SHA256)
		ok = ok && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
		    pk) == 1 && EVP_DigestVerify(ctx, sig, siglen,
		    (unsigned char *)data.data, data.len) == 1;
	else
		ok = ok && EVP_Digest(data.data, data.len, d, NULL,
		    EVP_sha256(), NULL) == 1 && EVP_DigestVerifyInit(ctx, NULL,
		    NULL, NULL, pk) == 1 && EVP_DigestVerify(ctx, sig, siglen,
		    d, sizeof(d)) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	free(p);
	free(sig);
	free(used);
	free(sigf);
	free(b);
	free(bh);
	free(h);
	buf_free(&data);
	buf_free(&pub);
	return ok;
}

static const char msg_hdr[] =
    "Received: from x by y; Mon, 1 Jan 2026 00:00:00 +0000\n"
    "From: Ann <ann@example.test>\n"
    "To: bob@remote.test,\n"
    "  carl@remote.test\n"
    "Subject:   a   folded\n"
    "\tsubject\n"
    "Date: Mon, 1 Jan 2026 00:00:00 +0000\n"
    "Message-ID: <1@example.test>\n"
    "X-Unsigned: yes\n"
    "\n";
static const char msg_body[] = "Hello  there\n\n.dot\n\n\n";

/* sign, check the field's shape, then verify it; a change breaks it */
static void
round_trip(const struct dkim_key *k)
{
	struct dkim_body b;
	struct dkim_sign_req r = { "example.test", "sel1", k, 1767225600 };
	unsigned char	 bh[DKIM_HASH_LEN];
	struct buf	 out, msg;
	char		 err[256];
	char		*h;

	assert_int_equal(dkim_body_init(&b, NULL), 0);
	dkim_body_update(&b, msg_body, strlen(msg_body));
	assert_int_equal(dkim_body_final(&b, bh), 0);
	buf_init(&out, 1 << 20);
	assert_int_equal(dkim_sign(&r, msg_hdr, strlen(msg_hdr), bh, &out, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(out.data, "d=example.test;"));
	assert_non_null(strstr(out.data, "t=1767225600;"));
	h = tag(out.data, "h");
	assert_string_equal(h, "from:from:subject:date:message-id:to");
	free(h);
	for (const char *l = out.data, *e; *l; l = e + 1) {
		e = strchr(l, '\n');
		assert_non_null(e);
		assert_true(e - l < 78);	/* folded */
	}
	buf_init(&msg, 1 << 20);
	buf_add(&msg, out.data, out.len);
	buf_adds(&msg, msg_hdr);
	buf_adds(&msg, msg_body);
	assert_true(verify(msg.data, k));
	/* a changed body, a changed header, an added From: all fail */
	msg.data[msg.len - 5] = 'X';
	assert_false(verify(msg.data, k));
	msg.data[msg.len - 5] = msg_body[strlen(msg_body) - 5];
	assert_true(verify(msg.data, k));
	char *s = strstr(msg.data, "a   folded");
	s[0] = 'A';
	assert_false(verify(msg.data, k));
	s[0] = 'a';
	buf_reset(&msg);
	buf_add(&msg, out.data, out.len);
	buf_adds(&msg, msg_hdr);
	msg.len--;			/* before the empty line */
	buf_adds(&msg, "From: mallory@evil.test\n\n");
	buf_adds(&msg, msg_body);
	assert_false(verify(msg.data, k));
	buf_free(&msg);
	buf_free(&out);
}

static void
test_rsa(void **state)
{
	struct dkim_key	*k, *k2;
	struct buf	 pem;
	char		 err[256];

	(void)state;
	k = dkim_key_generate(DKIM_RSA_SHA256, 1024, err, sizeof(err));
	assert_non_null(k);
	assert_string_equal(dkim_key_kind(k), "rsa");
	round_trip(k);
	/* through PEM and back */
	buf_init(&pem, 65536);
	assert_int_equal(dkim_key_pem(k, &pem), 0);
	k2 = dkim_key_from_pem(pem.data, pem.len, err, sizeof(err));
	assert_non_null(k2);
	round_trip(k2);
	dkim_key_free(k2);
	buf_free(&pem);
	dkim_key_free(k);
	assert_null(dkim_key_generate(DKIM_RSA_SHA256, 512, err, sizeof(err)));
}

static void
test_ed25519(void **state)
{
	struct dkim_key	*k;
	struct buf	 pub;
	char		 err[256];

	(void)state;
	k = dkim_key_generate(DKIM_ED25519_SHA256, 0, err, sizeof(err));
	assert_non_null(k);
	assert_string_equal(dkim_key_kind(k), "ed25519");
	buf_init(&pub, 4096);
	assert_int_equal(dkim_key_public(k, &pub), 0);
	assert_int_equal(pub.len, 44);		/* 32 octets, raw */
	buf_free(&pub);
	round_trip(k);
	dkim_key_free(k);
}

static void
test_bad_keys(void **state)
{
	char	 err[256];
	const char garbage[] = "-----BEGIN PRIVATE KEY-----\nnonsense\n"
	    "-----END PRIVATE KEY-----\n";

	(void)state;
	assert_null(dkim_key_from_pem(garbage, strlen(garbage), err,
	    sizeof(err)));
	assert_non_null(strstr(err, "PEM"));
	assert_null(dkim_key_from_pem("", 0, err, sizeof(err)));
	assert_null(dkim_key_load("/nonexistent/key", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/key"));
}

/* many fields of one name: at most DKIM_PER_NAME_MAX signed, still valid */
static void
test_many_fields(void **state)
{
	struct dkim_key	*k;
	struct dkim_body b;
	struct dkim_sign_req r = { "example.test", "s", NULL, 1 };
	unsigned char	 bh[DKIM_HASH_LEN];
	struct buf	 hdr, out;
	char		 err[256];

	(void)state;
	k = dkim_key_generate(DKIM_ED25519_SHA256, 0, err, sizeof(err));
	assert_non_null(k);
	r.key = k;
	buf_init(&hdr, 1 << 20);
	for (int i = 0; i < 1000; i++)
		buf_addf(&hdr, "To: r%d@remote.test\n", i);
	buf_adds(&hdr, "\n");
	assert_int_equal(dkim_body_init(&b, NULL), 0);
	assert_int_equal(dkim_body_final(&b, bh), 0);
	buf_init(&out, 1 << 20);
	assert_int_equal(dkim_sign(&r, hdr.data, hdr.len, bh, &out, err,
	    sizeof(err)), 0);
	/* "from" once (none present, oversigned) and 32 "to" */
	char *h = tag(out.data, "h");
	size_t n = 0;
	for (char *p = h; (p = strstr(p, "to")) != NULL; p++)
		n++;
	assert_int_equal(n, DKIM_PER_NAME_MAX);
	free(h);
	buf_free(&out);
	buf_free(&hdr);
	dkim_key_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canon_rfc),
		cmocka_unit_test(test_canon_edges),
		cmocka_unit_test(test_rsa),
		cmocka_unit_test(test_ed25519),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_many_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
