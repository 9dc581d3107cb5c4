/*
 * fuzz_dkim - libFuzzer target for src/common/dkim.c (canonicalization and
 * signing of message headers and bodies: untrusted input).
 *
 * Input: raw message bytes, split at the first empty line. Invariants:
 *  - relaxed body canonicalization gives the same bytes whether the body
 *    comes whole or one octet at a time; its output has only CRLF line
 *    ends, no white space before them, no run of white space, and does
 *    not end in an empty line (RFC 6376 3.4.4);
 *  - relaxed header canonicalization of any field is one CRLF-ended line
 *    without LF or CRLF inside (a bare CR is kept), lower-case before its
 *    first colon;
 *  - signing the header section always succeeds (with an Ed25519 key made
 *    once) and gives one field whose lines stay below 78 columns where
 *    they can be broken.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
body_canon(const char *p, size_t n, size_t step, struct buf *out)
{
	struct dkim_body b;

	if (dkim_body_init(&b, out) == -1)
		abort();
	for (size_t i = 0; i < n; i += step)
		dkim_body_update(&b, p + i, n - i < step ? n - i : step);
	if (dkim_body_final(&b, NULL) == -1)
		abort();
}

static void
check_body(const char *body, size_t blen)
{
	struct buf	 a, b;

	buf_init(&a, 4 * blen + 16);
	buf_init(&b, 4 * blen + 16);
	body_canon(body, blen, blen ? blen : 1, &a);
	body_canon(body, blen, 1, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();
	for (size_t i = 0; i < a.len; i++) {
		char c = a.data[i];
		if (c == '\n' && (i == 0 || a.data[i - 1] != '\r'))
			abort();
		if (c == '\r' && (i + 1 == a.len || a.data[i + 1] != '\n'))
			abort();
		if (c == '\t' || (c == ' ' && i + 1 < a.len &&
		    (a.data[i + 1] == ' ' || a.data[i + 1] == '\r')))
			abort();
	}
	if (a.len >= 4 && memcmp(a.data + a.len - 4, "\r\n\r\n", 4) == 0)
		abort();
	if (a.len > 0 && (a.len < 2 || memcmp(a.data + a.len - 2, "\r\n", 2)))
		abort();
	buf_free(&a);
	buf_free(&b);
}

static void
check_fields(const char *h, size_t hlen)
{
	struct buf	 c;
	size_t		 p = 0;

	while (p < hlen) {
		const char *nl = memchr(h + p, '\n', hlen - p);
		size_t e = nl ? (size_t)(nl - h) + 1 : hlen;
		buf_init(&c, 2 * (e - p) + 8);
		if (dkim_canon_header(h + p, e - p, &c) == -1)
			abort();
		for (size_t i = 0; i + 2 < c.len; i++)	/* a bare CR stays */
			if (c.data[i] == '\n' || (c.data[i] == '\r' &&
			    c.data[i + 1] == '\n'))
				abort();
		for (size_t i = 0; i < c.len && c.data[i] != ':'; i++)
			if (c.data[i] >= 'A' && c.data[i] <= 'Z')
				abort();
		buf_free(&c);
		p = e;
	}
}

static void
check_sign(const char *h, size_t hlen)
{
	static struct dkim_key	*key;
	struct dkim_sign_req	 r = { "example.test", "fuzz", NULL, 1 };
	unsigned char		 bh[DKIM_HASH_LEN] = { 0 };
	struct buf		 out;
	char			 err[256];

	if (key == NULL && (key = dkim_key_generate(DKIM_ED25519_SHA256, 0,
	    err, sizeof(err))) == NULL)
		abort();
	r.key = key;
	buf_init(&out, 1 << 20);
	if (dkim_sign(&r, h, hlen, bh, &out, err, sizeof(err)) == -1)
		abort();
	if (out.len < 16 || memcmp(out.data, "DKIM-Signature:", 15) != 0 ||
	    out.data[out.len - 1] != '\n')
		abort();
	for (size_t i = 0, col = 0; i < out.len; i++) {
		col = out.data[i] == '\n' ? 0 : col + 1;
		if (col >= 78)
			abort();
	}
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*t = (const char *)data, *sep;
	size_t		 hlen = size;

	if (size > 256 * 1024)
		return 0;
	for (sep = t; (sep = memchr(sep, '\n', size - (size_t)(sep - t))) &&
	    (size_t)(sep - t) + 1 < size; sep++)
		if (sep[1] == '\n') {
			hlen = (size_t)(sep - t) + 2;
			break;
		}
	check_fields(t, hlen);
	check_sign(t, hlen);
	check_body(t + hlen, size - hlen);
	return 0;
}
