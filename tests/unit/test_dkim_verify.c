/*
 * dkim_verify: signatures made by dkim_sign() and by hand (EVP in this
 * file) verified from a table of DNS answers; every malformed tag and
 * key record the verifier must refuse; l=, oversigning, limits, chunking;
 * and fixed vectors signed by another implementation (golden/dkim_verify).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "dkim.h"
#include "dkim_verify.h"
#include "dns_cache.h"

#define NOW	1700000000LL

struct answer {
	const char		*name;
	enum dns_rstatus	 st;
	const char		*rr[3];
	size_t			 n;
};

static struct dkim_key	*rsa, *ed;
static char		 rsa_txt[1024], ed_txt[256];

static const char hdr1[] =
    "Received: from a.example.net by b.example.org\n"
    "From: Alice <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: hello there\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
    "Message-ID: <1@example.org>\n";
static const char body1[] = "Hi Bob,\n\n  how are you?  \n\n\n";

/* ---- helpers ---- */

static void
txt_for(const struct dkim_key *k, char *out, size_t size)
{
	struct buf	 p;

	buf_init(&p, 8192);
	assert_int_equal(dkim_key_public(k, &p), 0);
	snprintf(out, size, "v=DKIM1; k=%s; p=%s", dkim_key_kind(k), p.data);
	buf_free(&p);
}

static int
setup(void **state)
{
	char	 err[128];

	(void)state;
	rsa = dkim_key_generate(DKIM_RSA_SHA256, 1024, err, sizeof(err));
	ed = dkim_key_generate(DKIM_ED25519_SHA256, 0, err, sizeof(err));
	if (rsa == NULL || ed == NULL)
		return -1;
	txt_for(rsa, rsa_txt, sizeof(rsa_txt));
	txt_for(ed, ed_txt, sizeof(ed_txt));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dkim_key_free(rsa);
	dkim_key_free(ed);
	return 0;
}

/* the usual answers: rsa at "rsa", ed25519 at "ed", for example.org */
static const struct answer *
keys(void)
{
	static struct answer a[3];

	a[0] = (struct answer){ "rsa._domainkey.example.org", DNS_R_OK,
	    { rsa_txt }, 1 };
	a[1] = (struct answer){ "ed._domainkey.example.org", DNS_R_OK,
	    { ed_txt }, 1 };
	a[2] = (struct answer){ NULL, DNS_R_OK, { NULL }, 0 };
	return a;
}

/* answer every wanted question from tab (not there: NXDOMAIN) */
static size_t
answer_all(struct dns_cache *c, const struct answer *tab)
{
	enum dns_rr	 type;
	const char	*name;
	size_t		 asked = 0;

	while (dns_cache_next_wanted(c, &type, &name)) {
		const struct answer *a = tab;
		assert_int_equal(type, DNS_RR_TXT);
		while (a && a->name && strcmp(a->name, name) != 0)
			a++;
		if (a && a->name)
			assert_int_equal(dns_cache_put(c, type, name, a->st,
			    a->rr, a->n), 0);
		else
			assert_int_equal(dns_cache_put(c, type, name,
			    DNS_R_NXDOMAIN, NULL, 0), 0);
		asked++;
	}
	return asked;
}

/* feed msg in pieces of chunk octets and verify it with tab's answers */
static struct dkimv *
run_at(const char *msg, size_t len, size_t chunk, const struct answer *tab,
    long long now)
{
	struct dkimv		*v = dkimv_new(now);
	struct dns_cache	*c = dns_cache_new();
	int			 rounds = 0;

	assert_non_null(v);
	assert_non_null(c);
	for (size_t i = 0; i < len; i += chunk)
		dkimv_feed(v, msg + i, len - i < chunk ? len - i : chunk);
	while (!dkimv_verify(v, c)) {
		/* every question at once: one round is enough */
		assert_int_equal(rounds++, 0);
		assert_true(answer_all(c, tab) > 0);
	}
	assert_int_equal(dkimv_verify(v, c), 1);	/* again: same */
	dns_cache_free(c);
	return v;
}

static struct dkimv *
run(const char *msg, const struct answer *tab)
{
	return run_at(msg, strlen(msg), strlen(msg) + 1, tab, NOW);
}

/* the result of the only (or first) signature */
#define expect(m, t, r, w)	expect_at(__LINE__, m, t, r, w)

static void
expect_at(int line, const char *msg, const struct answer *tab, enum dkimv_result r,
    const char *reason)
{
	struct dkimv		*v = run(msg, tab);
	const struct dkimv_sig	*s;

	assert_true(dkimv_count(v) >= 1);
	s = dkimv_sig(v, 0);
	if (s->result != r || (reason && strcmp(s->reason, reason) != 0))
		print_error("line %d: got %s \"%s\", want %s \"%s\"\n", line,
		    dkimv_result_name(s->result), s->reason,
		    dkimv_result_name(r), reason ? reason : "");
	assert_int_equal(s->result, r);
	if (reason)
		assert_string_equal(s->reason, reason);
	dkimv_free(v);
}

/* hdr and body signed by dkim_sign (relaxed/relaxed), as one message */
static char *
signed_msg(const struct dkim_key *k, const char *sel, const char *hdr,
    const char *body)
{
	struct dkim_sign_req	 r = { "example.org", sel, k, NOW - 60 };
	struct dkim_body	 b;
	unsigned char		 bh[DKIM_HASH_LEN];
	struct buf		 out;
	char			 err[128];

	assert_int_equal(dkim_body_init(&b, NULL), 0);
	dkim_body_update(&b, body, strlen(body));
	assert_int_equal(dkim_body_final(&b, bh), 0);
	buf_init(&out, 16 << 20);
	assert_int_equal(dkim_sign(&r, hdr, strlen(hdr), bh, &out, err,
	    sizeof(err)), 0);
	buf_adds(&out, hdr);
	buf_addc(&out, '\n');
	buf_adds(&out, body);
	assert_int_equal(out.err, 0);
	return out.data;
}

static char *
b64(const unsigned char *p, size_t n)
{
	char	*o = malloc(4 * ((n + 2) / 3) + 1);

	assert_non_null(o);
	assert_true(EVP_EncodeBlock((unsigned char *)o, p, (int)n) >= 0);
	return o;
}

static char *
sha_b64(const char *s, size_t n)
{
	unsigned char	 h[32];

	assert_int_equal(EVP_Digest(s, n, h, NULL, EVP_sha256(), NULL), 1);
	return b64(h, sizeof(h));
}

/* a raw signature over data with pk (Ed25519: over its SHA-256) */
static char *
evp_sign(EVP_PKEY *pk, const char *data, size_t n)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	unsigned char	 h[32], sig[1024];
	const unsigned char *in = (const unsigned char *)data;
	size_t		 siglen = sizeof(sig);
	int		 is_ed = EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519;

	if (is_ed) {
		assert_int_equal(EVP_Digest(data, n, h, NULL, EVP_sha256(),
		    NULL), 1);
		in = h;
		n = sizeof(h);
	}
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, is_ed ? NULL :
	    EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, in, n), 1);
	EVP_MD_CTX_free(ctx);
	return b64(sig, siglen);
}

/*
 * A message signed by hand with c=simple/<canon>: signed (the fields
 * named in h=, CRLF ended, in h= order from the bottom up: here each
 * named once) come after the signature; cbody is the canonical body the
 * test states (its hash is bh=), body what is sent.
 */
static char *
hand_msg2(EVP_PKEY *pk, const char *tags, const char *signed_hdr,
    const char *data_hdr, const char *cbody, const char *body)
{
	struct buf	 f, data, msg;
	char		*bh = sha_b64(cbody, strlen(cbody)), *sig;

	buf_init(&f, 1 << 20);
	buf_init(&data, 1 << 20);
	buf_init(&msg, 1 << 20);
	buf_addf(&f, "DKIM-Signature: %s; bh=%s;\r\n\tb=", tags, bh);
	buf_adds(&data, data_hdr);
	buf_add(&data, f.data, f.len);
	sig = evp_sign(pk, data.data, data.len);
	buf_addf(&msg, "%s%s\r\n%s\r\n%s", f.data, sig, signed_hdr, body);
	assert_int_equal(msg.err, 0);
	free(bh);
	free(sig);
	buf_free(&f);
	buf_free(&data);
	return msg.data;
}

static char *
hand_msg(EVP_PKEY *pk, const char *tags, const char *signed_hdr,
    const char *cbody, const char *body)
{
	return hand_msg2(pk, tags, signed_hdr, signed_hdr, cbody, body);
}

static char *
replace(const char *s, const char *from, const char *to)
{
	const char	*p = strstr(s, from);
	struct buf	 b;

	assert_non_null(p);
	buf_init(&b, 32 << 20);
	buf_add(&b, s, (size_t)(p - s));
	buf_adds(&b, to);
	buf_adds(&b, p + strlen(from));
	assert_int_equal(b.err, 0);
	return b.data;
}

static char *
lf_to_crlf(const char *s)
{
	struct buf	 b;

	buf_init(&b, 32 << 20);
	for (; *s; s++) {
		if (*s == '\n')
			buf_addc(&b, '\r');
		buf_addc(&b, *s);
	}
	return b.data;
}

/* ---- signed by dkim_sign ---- */

static void
check_pass(const char *msg, const char *sel, const char *alg)
{
	struct dkimv		*v = run(msg, keys());
	const struct dkimv_sig	*s = dkimv_sig(v, 0);
	const char		*b = strstr(msg, " b=");
	size_t			 hlen;
	int			 trunc;

	assert_int_equal(dkimv_count(v), 1);
	assert_int_equal(s->result, DKIMV_PASS);
	assert_string_equal(s->reason, "");
	assert_string_equal(s->d, "example.org");
	assert_string_equal(s->s, sel);
	assert_string_equal(s->i, "@example.org");
	assert_string_equal(s->alg, alg);
	assert_non_null(b);
	assert_memory_equal(s->b8, b + 3, 8);
	assert_int_equal(s->b8[8], '\0');
	assert_null(dkimv_sig(v, 1));
	dkimv_header(v, &hlen, &trunc);
	assert_int_equal(trunc, 0);
	assert_int_equal(hlen, strstr(msg, "\n\n") ? (size_t)(strstr(msg,
	    "\n\n") - msg) + 1 : (size_t)(strstr(msg, "\r\n\r\n") - msg) + 2);
	dkimv_free(v);
}

static void
test_sign_verify(void **state)
{
	char	*m, *c;

	(void)state;
	m = signed_msg(rsa, "rsa", hdr1, body1);
	check_pass(m, "rsa", "rsa-sha256");
	c = lf_to_crlf(m);			/* as on the wire */
	check_pass(c, "rsa", "rsa-sha256");
	free(c);
	free(m);
	m = signed_msg(ed, "ed", hdr1, body1);
	check_pass(m, "ed", "ed25519-sha256");
	free(m);
	m = signed_msg(ed, "ed", hdr1, "");	/* relaxed: empty body */
	check_pass(m, "ed", "ed25519-sha256");
	free(m);
}

static void
test_tamper(void **state)
{
	char	*m, *t;

	(void)state;
	m = signed_msg(rsa, "rsa", hdr1, body1);
	t = replace(m, "how are", "who are");	/* the body */
	expect(t, keys(), DKIMV_FAIL, "body hash mismatch");
	free(t);
	t = replace(m, "how are you?  \n", "how are you?  \nP.S.\n");
	expect(t, keys(), DKIMV_FAIL, "body hash mismatch");
	free(t);
	t = replace(m, "hello there", "hello here");	/* a signed field */
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	t = replace(m, "To: bob", "To: eve");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	/* relaxed: white space changes and trailing empty lines survive */
	t = replace(m, "Subject: hello there", "subject:   hello \t there ");
	expect(t, keys(), DKIMV_PASS, "");
	free(t);
	t = replace(m, "you?  \n", "you? \t \n\n\n\n");
	expect(t, keys(), DKIMV_PASS, "");
	free(t);
	/* a bare CR is not white space (RFC 6376 3.4.2 unfolds CRLF WSP
	   only): put into a signed field, it breaks the signature */
	t = replace(m, "hello there", "hello \rthere");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	t = replace(m, "To: bob", "To:\r bob");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	/* a field not signed, added anywhere */
	t = replace(m, "Received:", "X-Spam: no\nReceived:");
	expect(t, keys(), DKIMV_PASS, "");
	free(t);
	t = replace(m, "\n\nHi Bob", "\nX-Later: yes\n\nHi Bob");
	expect(t, keys(), DKIMV_PASS, "");
	free(t);
	/* a second From: above: the signer oversigned From */
	t = replace(m, "Received:", "From: mallory@example.net\nReceived:");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	/* ... and below the signed one */
	t = replace(m, "To: bob", "From: mallory@example.net\nTo: bob");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	/* a second Subject: (signed once, not oversigned) above: the bottom
	   one is the signed one, so it still passes */
	t = replace(m, "Received:", "Subject: other\nReceived:");
	expect(t, keys(), DKIMV_PASS, "");
	free(t);
	free(m);
}

/* ---- signed by hand ---- */

static const char shdr[] =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "Subject: Is dinner ready?\r\n";

#define STAGS	"v=1; a=rsa-sha256; c=simple/simple; d=example.org; " \
		"s=rsa; h=from:subject"

static void
test_simple(void **state)
{
	EVP_PKEY	*pk = rsa->pkey;
	char		*m, *t;

	(void)state;
	/* simple/simple: body as is, trailing empty lines dropped */
	m = hand_msg(pk, STAGS, shdr, "Hi.\r\n\r\nWe lost the game.\r\n",
	    "Hi.\r\n\r\nWe lost the game.\r\n\r\n\r\n");
	expect(m, keys(), DKIMV_PASS, "");
	/* simple: any white space change breaks it */
	t = replace(m, "Is dinner", "Is  dinner");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	t = replace(m, "subject; bh", "subject ; bh");	/* the signature */
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	t = replace(m, "the game.", "the game. ");
	expect(t, keys(), DKIMV_FAIL, "body hash mismatch");
	free(t);
	/* stored with LF line ends: the same message */
	t = replace(m, "\r\n", "\n");
	while (strstr(t, "\r\n")) {
		char *u = replace(t, "\r\n", "\n");
		free(t);
		t = u;
	}
	expect(t, keys(), DKIMV_PASS, "");
	free(t);
	free(m);
	/* the empty body: one CRLF (RFC 6376 3.4.3); no body at all too */
	m = hand_msg(pk, STAGS, shdr, "\r\n", "");
	expect(m, keys(), DKIMV_PASS, "");
	free(m);
	m = hand_msg(pk, STAGS, shdr, "\r\n", "\r\n\r\n");
	expect(m, keys(), DKIMV_PASS, "");
	free(m);
	/* ed25519, relaxed body over simple header, i= a subdomain */
	m = hand_msg(ed->pkey, "v=1; a=ed25519-sha256; c=simple/relaxed; "
	    "d=example.org; i=joe@news.example.org; s=ed; h=from:subject",
	    shdr, " C\r\nD E\r\n", " C \r\nD \t E\r\n\r\n\r\n");
	expect(m, keys(), DKIMV_PASS, "");
	free(m);
	/* relaxed empty body: empty (RFC 6376 3.4.4) */
	m = hand_msg(ed->pkey, "v=1; a=ed25519-sha256; c=simple/relaxed; "
	    "d=example.org; s=ed; h=from:subject", shdr, "", "\r\n \r\n");
	expect(m, keys(), DKIMV_PASS, "");
	free(m);
}

/* a name listed twice takes the bottom instance, then the one above */
static void
test_instances(void **state)
{
	char	*m, *t;

	(void)state;
	m = hand_msg2(rsa->pkey, "v=1; a=rsa-sha256; d=example.org; s=rsa; "
	    "h=subject:From:SUBJECT:from:subject", "Subject: one\r\n"
	    "From: a@example.org\r\nsubject: two\r\n", "subject: two\r\n"
	    "From: a@example.org\r\nSubject: one\r\n", "x\r\n", "x\r\n");
	expect(m, keys(), DKIMV_PASS, "");
	t = replace(m, "Subject: one", "Subject: 1");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	/* a third Subject: above is taken by the third subject in h= */
	t = replace(m, "Subject: one", "Subject: zero\r\nSubject: one");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	/* ... and one below shifts all of them */
	t = replace(m, "subject: two\r\n", "subject: two\r\nSubject: 3\r\n");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	/* a field that is not signed, with the same start of name */
	t = replace(m, "subject: two\r\n", "subject: two\r\nSubjects: 3\r\n"
	    "Subjec: 4\r\nFrom : \r\n");
	expect(t, keys(), DKIMV_FAIL, "bad signature");
	free(t);
	t = replace(m, "subject: two\r\n", "subject: two\r\nSubjects: 3\r\n"
	    "Subjec: 4\r\n");
	expect(t, keys(), DKIMV_PASS, "");
	free(t);
	free(m);
}

/* the body canonicalizations themselves (RFC 6376 3.4.5) and l= */
static void
canon(const char *in, int simple, long long l, const char *want,
    unsigned long long total)
{
	for (size_t chunk = 1; chunk < 8; chunk++) {
		struct dkim_body b;
		struct buf	 out;
		size_t		 n = strlen(in);

		buf_init(&out, 1 << 20);
		assert_int_equal(dkim_body_init_ex(&b, &out, simple, l), 0);
		for (size_t i = 0; i < n; i += chunk)
			dkim_body_update(&b, in + i, n - i < chunk ? n - i :
			    chunk);
		assert_int_equal(dkim_body_final(&b, NULL), 0);
		assert_int_equal(out.len, strlen(want));
		assert_memory_equal(out.data ? out.data : "", want, out.len);
		assert_int_equal(b.total, total);
		buf_free(&out);
	}
}

static void
test_body_canon(void **state)
{
	(void)state;
	canon(" C \r\nD \t E\r\n\r\n\r\n", 1, -1, " C \r\nD \t E\r\n", 12);
	canon(" C \nD \t E\n\n\n", 1, -1, " C \r\nD \t E\r\n", 12);
	canon("", 1, -1, "\r\n", 2);
	canon("\r\n\r\n", 1, -1, "\r\n", 2);
	canon("x", 1, -1, "x\r\n", 3);
	canon(" \r\n", 1, -1, " \r\n", 3);	/* white space is content */
	canon("a\r\n\r\nb", 1, -1, "a\r\n\r\nb\r\n", 8);
	canon(" C \r\nD \t E\r\n\r\n\r\n", 0, -1, " C\r\nD E\r\n", 9);
	canon("", 0, -1, "", 0);
	/* l=: the first octets hashed, all counted */
	canon(" C \r\nD \t E\r\n", 1, 5, " C \r\n", 12);
	canon(" C \r\nD \t E\r\n", 0, 0, "", 9);
	canon(" C \r\nD \t E\r\n", 0, 100, " C\r\nD E\r\n", 9);
}

static void
test_l(void **state)
{
	EVP_PKEY	*pk = rsa->pkey;
	char		*m, *t;

	(void)state;
	/* l= the whole body */
	m = hand_msg(pk, STAGS "; l=11", shdr, "Hi.\r\nBye.\r\n",
	    "Hi.\r\nBye.\r\n");
	expect(m, keys(), DKIMV_PASS, "");
	/* content appended: verifies, but only partly covered */
	t = replace(m, "Bye.\r\n", "Bye.\r\nBuy cheap stuff!\r\n");
	expect(t, keys(), DKIMV_POLICY, "l= covers 11 of 29 body octets");
	free(t);
	/* the covered part changed: fails */
	t = replace(m, "Hi.", "Ho.");
	expect(t, keys(), DKIMV_FAIL, "body hash mismatch");
	free(t);
	/* the body shorter than l= */
	t = replace(m, "Bye.\r\n", "");
	expect(t, keys(), DKIMV_PERMERROR, "l= 11 beyond the 5 body octets");
	free(t);
	free(m);
	m = hand_msg(pk, STAGS "; l=20", shdr, "Hi.\r\nBye.\r\n",
	    "Hi.\r\nBye.\r\n");
	expect(m, keys(), DKIMV_PERMERROR, "l= 20 beyond the 11 body octets");
	free(m);
	/* l=0: nothing covered */
	m = hand_msg(pk, STAGS "; l=0", shdr, "", "Hi.\r\n");
	expect(m, keys(), DKIMV_POLICY, "l= covers 0 of 5 body octets");
	free(m);
}

/* ---- malformed signatures: decided without DNS ---- */

#define GOODBH	"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define GOODB	"dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ=="

static void
bad(const char *tags, enum dkimv_result r, const char *reason)
{
	struct dkimv		*v = dkimv_new(NOW);
	struct dns_cache	*c = dns_cache_new();
	char			 msg[4096];
	enum dns_rr		 type;
	const char		*name;

	snprintf(msg, sizeof(msg), "DKIM-Signature: %s\nFrom: a@example.org"
	    "\nSubject: x\n\nbody\n", tags);
	dkimv_feed(v, msg, strlen(msg));
	assert_int_equal(dkimv_verify(v, c), 1);	/* no DNS needed */
	assert_int_equal(dns_cache_next_wanted(c, &type, &name), 0);
	assert_int_equal(dkimv_count(v), 1);
	if (dkimv_sig(v, 0)->result != r || strcmp(dkimv_sig(v, 0)->reason,
	    reason) != 0)
		print_error("%s: got %s \"%s\"\n", tags, dkimv_result_name(
		    dkimv_sig(v, 0)->result), dkimv_sig(v, 0)->reason);
	assert_int_equal(dkimv_sig(v, 0)->result, r);
	assert_string_equal(dkimv_sig(v, 0)->reason, reason);
	dkimv_free(v);
	dns_cache_free(c);
}

#define T0	"v=1; a=rsa-sha256; d=example.org; s=rsa; h=from:subject; "
#define PE	DKIMV_PERMERROR

static void
test_bad_tags(void **state)
{
	(void)state;
	/* the base: only the body hash is wrong */
	bad(T0 "bh=" GOODBH "; b=" GOODB, DKIMV_FAIL, "body hash mismatch");
	bad(T0 "bh=" GOODBH "; b=" GOODB ";", DKIMV_FAIL,
	    "body hash mismatch");
	bad(" v = 1 ;a=rsa-sha256;\n\td=example.org ; s=rsa; h = from : subj"
	    "ect ; bh=47DEQpj8HBSa+/TImW+5JCeuQe\n Rkm5NMpJWZG3hSuFU=; b=" GOODB
	    "; z=x ; foo_1=bar", DKIMV_FAIL, "body hash mismatch");
	/* base64 */
	bad(T0 "bh=" GOODBH "; b=dGhp!cyBp", PE, "bad base64 in b=");
	bad(T0 "bh=" GOODBH "; b=dGhpcy", PE, "bad base64 in b=");
	bad(T0 "bh=" GOODBH "; b=dGh=pcyBp", PE, "bad base64 in b=");
	bad(T0 "bh=" GOODBH "; b=dGhpc===", PE, "bad base64 in b=");
	bad(T0 "bh=" GOODBH "; b=", PE, "empty b=");
	bad(T0 "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU; b=" GOODB, PE,
	    "bad base64 in bh=");
	bad(T0 "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=x; b=" GOODB,
	    PE, "bad base64 in bh=");
	bad(T0 "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3h*uFU=; b=" GOODB,
	    PE, "bad base64 in bh=");
	bad(T0 "bh=" GOODB "; b=" GOODB, PE, "bh= is not a SHA-256 hash");
	/* required tags */
	bad("a=rsa-sha256; d=example.org; s=rsa; h=from; bh=" GOODBH "; b="
	    GOODB, PE, "missing v=");
	bad("v=1; d=example.org; s=rsa; h=from; bh=" GOODBH "; b=" GOODB, PE,
	    "missing a=");
	bad(T0 "bh=" GOODBH, PE, "missing b=");
	bad(T0 "b=" GOODB, PE, "missing bh=");
	bad("v=1; a=rsa-sha256; s=rsa; h=from; bh=" GOODBH "; b=" GOODB, PE,
	    "missing d=");
	bad("v=1; a=rsa-sha256; d=example.org; s=rsa; bh=" GOODBH "; b="
	    GOODB, PE, "missing h=");
	bad("v=1; a=rsa-sha256; d=example.org; h=from; bh=" GOODBH "; b="
	    GOODB, PE, "missing s=");
	/* syntax, duplicates, values */
	bad(T0 "bh=" GOODBH "; b=" GOODB "; d=example.net", PE,
	    "duplicate tag d=");
	bad(T0 "v=1; bh=" GOODBH "; b=" GOODB, PE, "duplicate tag v=");
	bad(T0 "bh=" GOODBH "; b=" GOODB "; 1x=2", PE, "bad tag list");
	bad(T0 "bh=" GOODBH "; b=" GOODB "; novalue", PE, "bad tag list");
	bad(T0 "bh=" GOODBH "; b=" GOODB "; n=caf\xc3\xa9", PE,
	    "bad tag list");
	bad("v=2; a=rsa-sha256; d=example.org; s=rsa; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "bad v=");
	bad("v=1; a=rsa-sha256; d=example.org; s=rsa; h=subject:to; bh="
	    GOODBH "; b=" GOODB, PE, "From not signed");
	bad("v=1; a=rsa-sha256; d=example.org; s=rsa; h=from::to; bh="
	    GOODBH "; b=" GOODB, PE, "empty name in h=");
	bad("v=1; a=rsa-sha1; d=example.org; s=rsa; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "rsa-sha1 not accepted");
	bad("v=1; a=rsa-md5; d=example.org; s=rsa; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "unknown algorithm");
	bad("v=1; a=ed448-sha512; d=example.org; s=rsa; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "unknown algorithm");
	bad(T0 "c=relaxed/loose; bh=" GOODBH "; b=" GOODB, PE, "bad c=");
	bad(T0 "c=fancy; bh=" GOODBH "; b=" GOODB, PE, "bad c=");
	bad(T0 "q=http/well-known; bh=" GOODBH "; b=" GOODB, PE,
	    "unsupported q=");
	bad(T0 "d=exa$mple.org; bh=" GOODBH "; b=" GOODB, PE,
	    "duplicate tag d=");
	bad("v=1; a=rsa-sha256; d=exa$mple.org; s=rsa; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "bad d=");
	bad("v=1; a=rsa-sha256; d=example.org; s=r/sa; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "bad s=");
	bad(T0 "i=joe@example.net; bh=" GOODBH "; b=" GOODB, PE,
	    "i= not in d=");
	bad(T0 "i=joe@badexample.org; bh=" GOODBH "; b=" GOODB, PE,
	    "i= not in d=");
	bad(T0 "i=joe.example.org; bh=" GOODBH "; b=" GOODB, PE, "bad i=");
	/* an empty label is no domain (i= is reported as header.i) */
	bad(T0 "i=joe@.example.org; bh=" GOODBH "; b=" GOODB, PE, "bad i=");
	bad(T0 "i=joe@a..example.org; bh=" GOODBH "; b=" GOODB, PE,
	    "bad i=");
	bad("v=1; a=rsa-sha256; d=example..org; s=rsa; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "bad d=");
	bad("v=1; a=rsa-sha256; d=example.org; s=a..b; h=from; bh=" GOODBH
	    "; b=" GOODB, PE, "bad s=");
	bad(T0 "i=joe=4@example.org; bh=" GOODBH "; b=" GOODB, PE, "bad i=");
	bad(T0 "i=joe=40example.org; bh=" GOODBH "; b=" GOODB, DKIMV_FAIL,
	    "body hash mismatch");	/* =40 is '@' */
	bad(T0 "l=12a; bh=" GOODBH "; b=" GOODB, PE, "bad l=");
	bad(T0 "x=soon; bh=" GOODBH "; b=" GOODB, PE, "bad x=");
	bad(T0 "t=1700000000; x=1600000000; bh=" GOODBH "; b=" GOODB, PE,
	    "x= before t=");
	/* time */
	bad(T0 "x=1699999999; bh=" GOODBH "; b=" GOODB, DKIMV_FAIL,
	    "signature expired");
	bad(T0 "x=1700000000; bh=" GOODBH "; b=" GOODB, DKIMV_FAIL,
	    "body hash mismatch");
	bad(T0 "t=1800000000; bh=" GOODBH "; b=" GOODB, DKIMV_FAIL,
	    "body hash mismatch");	/* t= in the future: ignored */
}

/* ---- key records ---- */

static void
test_keys(void **state)
{
	char		*m = signed_msg(rsa, "rsa", hdr1, body1), txt[1200];
	char		*me = signed_msg(ed, "rsa", hdr1, body1);
	struct answer	 a[2] = { { "rsa._domainkey.example.org", DNS_R_OK,
	    { NULL }, 1 }, { NULL, DNS_R_OK, { NULL }, 0 } };
	const char	*p = strstr(rsa_txt, "p=") + 2;
	EVP_PKEY	*weak;
	struct dkim_key	 wk;
	struct buf	 wp;

	(void)state;
	expect(m, a + 1, PE, "no key for rsa._domainkey.example.org");
	a[0].st = DNS_R_NXDOMAIN;
	a[0].n = 0;
	expect(m, a, PE, "no key for rsa._domainkey.example.org");
	a[0].st = DNS_R_OK;			/* NODATA */
	expect(m, a, PE, "no key for rsa._domainkey.example.org");
	a[0].st = DNS_R_TEMP;
	expect(m, a, DKIMV_TEMPERROR, "DNS error for "
	    "rsa._domainkey.example.org");
	a[0].st = DNS_R_OK;
	a[0].n = 1;
	a[0].rr[0] = txt;
#define KEY(fmt, r, why) do {						\
	snprintf(txt, sizeof(txt), fmt, p);				\
	expect(m, a, r, why);						\
} while (0)
	KEY("p=%s", DKIMV_PASS, "");
	KEY("v=DKIM1;k=rsa;h=sha1:sha256;s=email;t=y:x;n=hi there;p=%s",
	    DKIMV_PASS, "");
	KEY("v=DKIM1; p=; k=rsa%.0s", DKIMV_FAIL, "key revoked");
	KEY("v=DKIM1; k=ed25519; p=%s", PE, "key type does not match a=");
	KEY("v=DKIM1; k=dsa; p=%s", PE, "unknown key type");
	KEY("v=DKIM1; h=sha1; p=%s", PE, "key h= does not allow sha256");
	KEY("v=DKIM1; s=web; p=%s", PE, "key not for email");
	KEY("v=DKIM1; s=web:*; p=%s", DKIMV_PASS, "");
	KEY("v=DKIM1; k=rsa%.0s", PE, "key record without p=");
	KEY("v=DKIM1; p=AAAA%s", PE, "bad RSA key");
	KEY("v=DKIM1; p=!%s", PE, "bad base64 in key p=");
	KEY("k=rsa; v=DKIM1; p=%s", PE, "bad key record");
	KEY("v=DKIM2; p=%s", PE, "bad key record");
	KEY("v=DKIM1; p=%s; p=x", PE, "bad key record");
	KEY("v=DKIM1; t=s; p=%s", DKIMV_PASS, "");	/* i= is @d= */
	/* p= as a bare RSAPublicKey (PKCS#1), as RFC 6376 3.6.1 words it */
	{
		unsigned char *der = NULL;
		int dlen = i2d_PublicKey(rsa->pkey, &der);
		char *pk1;
		assert_true(dlen > 0);
		pk1 = b64(der, (size_t)dlen);
		snprintf(txt, sizeof(txt), "v=DKIM1; p=%s", pk1);
		expect(m, a, DKIMV_PASS, "");
		free(pk1);
		OPENSSL_free(der);
	}
	/* several records: the first that parses */
	a[0].n = 3;
	a[0].rr[0] = "google-site-verification=abc";
	a[0].rr[1] = rsa_txt;
	a[0].rr[2] = "v=DKIM1; p=";
	expect(m, a, DKIMV_PASS, "");
	a[0].rr[1] = "v=DKIM1; p=";
	a[0].rr[2] = rsa_txt;
	expect(m, a, DKIMV_FAIL, "key revoked");
	/* an ed25519 signature against an RSA key */
	a[0].n = 1;
	a[0].rr[0] = rsa_txt;
	expect(me, a, PE, "key type does not match a=");
	/* the testing flag is reported */
	snprintf(txt, sizeof(txt), "%s; t=y", ed_txt);
	a[0].rr[0] = txt;
	{
		struct dkimv *v = run(me, a);
		assert_int_equal(dkimv_sig(v, 0)->result, DKIMV_PASS);
		assert_int_equal(dkimv_sig(v, 0)->testing, 1);
		dkimv_free(v);
	}
	/* a 512-bit RSA key (dkim_sign refuses those: signed by hand) */
	weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	assert_non_null(weak);
	free(m);
	m = hand_msg(weak, STAGS, shdr, "Hi.\r\n", "Hi.\r\n");
	wk.pkey = weak;
	wk.alg = DKIM_RSA_SHA256;
	buf_init(&wp, 8192);
	assert_int_equal(dkim_key_public(&wk, &wp), 0);
	snprintf(txt, sizeof(txt), "v=DKIM1; p=%s", wp.data);
	expect(m, a, PE, "key too short");
	buf_free(&wp);
	EVP_PKEY_free(weak);
	/* a public exponent of 1,000 bits: each check would cost a
	   private-key operation (a hostile key record times 5 signatures
	   per message); 65537 is the norm, more than 64 bits is refused */
	{
		OSSL_PARAM_BLD *pb = OSSL_PARAM_BLD_new();
		EVP_PKEY_CTX *fc = EVP_PKEY_CTX_new_from_name(NULL, "RSA",
		    NULL);
		BIGNUM *n = NULL, *e = BN_new();
		OSSL_PARAM *pa;
		EVP_PKEY *big = NULL;
		unsigned char *der = NULL;
		char *pk1;
		int dlen;

		assert_int_equal(EVP_PKEY_get_bn_param(rsa->pkey,
		    OSSL_PKEY_PARAM_RSA_N, &n), 1);
		assert_int_equal(BN_rand(e, 1000, BN_RAND_TOP_ONE,
		    BN_RAND_BOTTOM_ODD), 1);
		assert_int_equal(OSSL_PARAM_BLD_push_BN(pb,
		    OSSL_PKEY_PARAM_RSA_N, n), 1);
		assert_int_equal(OSSL_PARAM_BLD_push_BN(pb,
		    OSSL_PKEY_PARAM_RSA_E, e), 1);
		assert_non_null(pa = OSSL_PARAM_BLD_to_param(pb));
		assert_int_equal(EVP_PKEY_fromdata_init(fc), 1);
		assert_int_equal(EVP_PKEY_fromdata(fc, &big,
		    EVP_PKEY_PUBLIC_KEY, pa), 1);
		assert_true((dlen = i2d_PUBKEY(big, &der)) > 0);
		pk1 = b64(der, (size_t)dlen);
		snprintf(txt, sizeof(txt), "v=DKIM1; p=%s", pk1);
		expect(m, a, PE, "RSA exponent too large");
		free(pk1);
		OPENSSL_free(der);
		EVP_PKEY_free(big);
		OSSL_PARAM_free(pa);
		EVP_PKEY_CTX_free(fc);
		OSSL_PARAM_BLD_free(pb);
		BN_free(n);
		BN_free(e);
	}
	/* i= in a subdomain and a key with t=s */
	free(m);
	m = hand_msg(rsa->pkey, STAGS "; i=@sub.example.org", shdr, "Hi.\r\n",
	    "Hi.\r\n");
	snprintf(txt, sizeof(txt), "v=DKIM1; t=s; p=%s", p);
	expect(m, a, PE, "i= domain not d= (key t=s)");
	snprintf(txt, sizeof(txt), "v=DKIM1; t=y; p=%s", p);
	expect(m, a, DKIMV_PASS, "");
	free(m);
	free(me);
#undef KEY
}

/* ---- several signatures, limits, chunks ---- */

static void
test_many(void **state)
{
	struct dkimv		*v;
	struct dns_cache	*c;
	char			*m = strdup(body1), *hdr = strdup(hdr1);
	enum dns_rr		 type;
	const char		*name;
	size_t			 n = 0;

	(void)state;
	/* six signatures, each signing the header below it */
	for (int i = 0; i < 6; i++) {
		char *s = signed_msg(i % 2 ? rsa : ed, i % 2 ? "rsa" : "ed",
		    hdr, body1);
		char *cut = strstr(s, "\n\n");
		free(hdr);
		hdr = strndup(s, (size_t)(cut - s) + 1);
		free(m);
		m = s;
	}
	v = run(m, keys());
	assert_int_equal(dkimv_count(v), DKIMV_SIGS_MAX);
	assert_int_equal(dkimv_seen(v), 6);
	for (size_t i = 0; i < dkimv_count(v); i++)
		assert_int_equal(dkimv_sig(v, i)->result, DKIMV_PASS);
	assert_string_equal(dkimv_sig(v, 0)->s, "rsa");	/* from the top */
	assert_string_equal(dkimv_sig(v, 1)->s, "ed");
	dkimv_free(v);
	/* all the keys asked at once, each once */
	v = dkimv_new(NOW);
	c = dns_cache_new();
	dkimv_feed(v, m, strlen(m));
	assert_int_equal(dkimv_verify(v, c), 0);
	assert_int_equal(dkimv_verify(v, c), 0);
	while (dns_cache_next_wanted(c, &type, &name))
		n++;
	assert_int_equal(n, 2);
	const char *rr[1] = { rsa_txt };
	dns_cache_put(c, DNS_RR_TXT, "rsa._domainkey.example.org", DNS_R_OK,
	    rr, 1);
	rr[0] = ed_txt;
	dns_cache_put(c, DNS_RR_TXT, "ed._domainkey.example.org", DNS_R_OK,
	    rr, 1);
	assert_int_equal(dkimv_verify(v, c), 1);
	assert_int_equal(dkimv_sig(v, 4)->result, DKIMV_PASS);
	dkimv_free(v);
	dns_cache_free(c);
	free(m);
	free(hdr);
}

static void
test_no_signature(void **state)
{
	struct dkimv		*v;
	struct dns_cache	*c = dns_cache_new();
	size_t			 len;
	const char		*h;

	(void)state;
	v = run("From: a@example.org\n\nhi\n", keys());
	assert_int_equal(dkimv_count(v), 0);
	assert_int_equal(dkimv_seen(v), 0);
	assert_null(dkimv_sig(v, 0));
	h = dkimv_header(v, &len, NULL);
	assert_int_equal(len, 20);
	assert_memory_equal(h, "From: a@example.org\n", 20);
	dkimv_free(v);
	/* nothing fed; only a header, no empty line; only a body */
	v = dkimv_new(NOW);
	assert_int_equal(dkimv_verify(v, c), 1);
	assert_int_equal(dkimv_count(v), 0);
	dkimv_free(v);
	v = run("From: a@example.org", keys());
	h = dkimv_header(v, &len, NULL);
	assert_int_equal(len, 19);
	dkimv_free(v);
	v = run("\r\nDKIM-Signature: v=1\r\n", keys());
	assert_int_equal(dkimv_count(v), 0);
	dkimv_header(v, &len, NULL);
	assert_int_equal(len, 0);
	dkimv_free(v);
	dns_cache_free(c);
}

static void
test_chunks(void **state)
{
	char		*msgs[4];
	size_t		 chunks[] = { 1, 2, 3, 7, 64, 4096 };

	(void)state;
	msgs[0] = signed_msg(rsa, "rsa", hdr1, body1);
	msgs[1] = lf_to_crlf(msgs[0]);
	msgs[2] = hand_msg(rsa->pkey, STAGS "; l=11", shdr, "Hi.\r\nBye.\r\n",
	    "Hi.\r\nBye.\r\nmore\r\n\r\n");
	msgs[3] = replace(msgs[0], "Hi Bob", "Hi Rob");
	for (size_t m = 0; m < 4; m++) {
		size_t len = strlen(msgs[m]);
		struct dkimv *one = run_at(msgs[m], len, len, keys(), NOW);
		for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]);
		    k++) {
			struct dkimv *v = run_at(msgs[m], len, chunks[k],
			    keys(), NOW);
			assert_int_equal(dkimv_count(v), dkimv_count(one));
			assert_memory_equal(dkimv_sig(v, 0), dkimv_sig(one, 0),
			    sizeof(struct dkimv_sig));
			dkimv_free(v);
		}
		dkimv_free(one);
		free(msgs[m]);
	}
}

static void
test_big(void **state)
{
	struct buf		 h;
	struct dkimv		*v;
	const struct dkimv_sig	*s;
	char			*m;
	size_t			 len;
	int			 trunc;

	(void)state;
	/* 1,000 fields and a 100 KB folded one, all signed: fine */
	buf_init(&h, 4 << 20);
	buf_adds(&h, hdr1);
	for (int i = 0; i < 1000; i++)
		buf_addf(&h, "Comments: field %d\n", i);
	buf_adds(&h, "References:");
	for (int i = 0; i < 4000; i++)
		buf_addf(&h, "\n <%08d.x@ref.example.org>", i);
	buf_addc(&h, '\n');
	assert_true(h.len > 100000);
	m = signed_msg(ed, "ed", h.data, body1);
	expect(m, keys(), DKIMV_PASS, "");
	free(m);
	/* past DKIMV_HDR_MAX: permerror, the header kept to the cap, the
	   body still read */
	while (h.len <= DKIMV_HDR_MAX)
		buf_adds(&h, "X-Filler: 0123456789012345678901234567890123456"
		    "789\n");
	assert_int_equal(h.err, 0);
	m = signed_msg(ed, "ed", h.data, body1);
	v = dkimv_new(NOW);
	dkimv_feed(v, m, strlen(m));
	for (int i = 0; i < 1000; i++)
		dkimv_feed(v, "more body text\n", 15);
	struct dns_cache *c = dns_cache_new();
	assert_int_equal(dkimv_verify(v, c), 1);
	assert_int_equal(dkimv_count(v), 1);
	s = dkimv_sig(v, 0);
	assert_int_equal(s->result, DKIMV_PERMERROR);
	assert_string_equal(s->reason, "header section too large");
	assert_string_equal(s->d, "example.org");
	dkimv_header(v, &len, &trunc);
	assert_int_equal(trunc, 1);
	assert_int_equal(len, DKIMV_HDR_MAX);
	dkimv_free(v);
	dns_cache_free(c);
	free(m);
	buf_free(&h);
}

/* ---- signed by another implementation ---- */

static char *
slurp(const char *path)
{
	FILE	*f = fopen(path, "rb");
	char	*p = calloc(1, 1 << 20);
	size_t	 n;

	assert_non_null(f);
	assert_non_null(p);
	n = fread(p, 1, (1 << 20) - 1, f);
	p[n] = '\0';
	fclose(f);
	return p;
}

static void
golden(const char *base, const char *sel, const char *alg)
{
	char		 path[256], *msg, *txt, name[128];
	struct answer	 a[2] = { { name, DNS_R_OK, { NULL }, 1 },
	    { NULL, DNS_R_OK, { NULL }, 0 } };
	struct dkimv	*v;

	snprintf(path, sizeof(path), "golden/dkim_verify/%s.eml", base);
	msg = slurp(path);
	snprintf(path, sizeof(path), "golden/dkim_verify/%s.txt", sel);
	txt = slurp(path);
	txt[strcspn(txt, "\n")] = '\0';
	snprintf(name, sizeof(name), "%s._domainkey.example.com", sel);
	a[0].rr[0] = txt;
	v = run(msg, a);
	assert_int_equal(dkimv_count(v), 1);
	if (dkimv_sig(v, 0)->result != DKIMV_PASS)
		print_error("%s: %s\n", base, dkimv_sig(v, 0)->reason);
	assert_int_equal(dkimv_sig(v, 0)->result, DKIMV_PASS);
	assert_string_equal(dkimv_sig(v, 0)->alg, alg);
	dkimv_free(v);
	free(msg);
	free(txt);
}

static void
test_golden(void **state)
{
	(void)state;
	golden("rsa-relaxed", "rsa", "rsa-sha256");
	golden("rsa-simple", "rsa", "rsa-sha256");
	golden("rsa-relaxed-simple", "rsa", "rsa-sha256");
	golden("ed25519-relaxed", "ed", "ed25519-sha256");
	golden("ed25519-simple", "ed", "ed25519-sha256");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_canon),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_instances),
		cmocka_unit_test(test_l),
		cmocka_unit_test(test_bad_tags),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_no_signature),
		cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_big),
		cmocka_unit_test(test_golden),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
