/*
 * fuzz_smtp_data - libFuzzer target for src/smtpd/smtp_data.c.
 *
 * Input: a control byte (bit 0 strict, bit 1 BDAT, bits 2-7 a small
 * maxline, 0 meaning 1000), a chunking seed byte, then raw client bytes.
 * Invariants, each against an oracle computed from the raw input:
 *  - random chunking gives the same output, counters, errors and done;
 *  - DOT: done iff the input holds CR LF '.' CR LF (or starts with
 *    ".\r\n"), consumed ends right after the first one;
 *  - each flag is set iff its cause is in the consumed bytes;
 *  - non-strict output has no CR; strict output has CR only with BARE_CR;
 *  - output never exceeds input (+1 for BDAT finish), per call <= len + 1;
 *  - output without CR re-encodes (CRLF, dot-stuffing) to input that
 *    decodes back to the same output without bare CR/LF.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_data.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct res {
	struct buf		 out;
	struct smtp_data_dec	 d;
	size_t			 consumed;
};

/* Decode in chunks (chunk 0: sizes from seed); finish in BDAT mode. */
static void
decode(int mode, int strict, size_t maxline, const char *in, size_t len,
    size_t chunk, unsigned seed, struct res *r)
{
	size_t	 pos = 0, n, c, before;

	buf_init(&r->out, 2 * len + 16);
	smtp_data_init(&r->d, mode, strict, maxline);
	while (pos < len && !r->d.done) {
		seed = seed * 1103515245u + 12345u;
		n = chunk ? chunk : 1 + (seed >> 16) % 64;
		if (n > len - pos)
			n = len - pos;
		before = r->out.len;
		c = smtp_data_feed(&r->d, in + pos, n, &r->out);
		if (r->out.len - before > n + 1 || c > n ||
		    (c < n && !r->d.done))
			abort();
		pos += c;
	}
	if (mode == SMTP_DATA_BDAT)
		smtp_data_finish(&r->d, &r->out);
	if (r->out.err != BUF_OK || r->d.outbytes != r->out.len ||
	    r->d.inbytes != pos)
		abort();
	r->consumed = pos;
}

static void
same(const struct res *a, const struct res *b)
{
	if (a->out.len != b->out.len || a->consumed != b->consumed ||
	    a->d.done != b->d.done || a->d.errors != b->d.errors ||
	    (a->out.len && memcmp(a->out.data, b->out.data, a->out.len)))
		abort();
}

/* What the flags must be, from the raw consumed bytes alone. */
static unsigned
oracle_errors(const char *in, size_t n, int bdat)
{
	unsigned	 e = 0;
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (in[i] == '\0')
			e |= SMTP_DATA_E_NUL;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			e |= SMTP_DATA_E_BARE_LF;
		/* A CR at the very end is still pending, unless finished. */
		if (in[i] == '\r' && ((i + 1 < n && in[i + 1] != '\n') ||
		    (i + 1 == n && bdat)))
			e |= SMTP_DATA_E_BARE_CR;
	}
	return e;
}

static size_t
oracle_end(const char *in, size_t len)
{
	const char	*p;

	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	if ((p = memmem(in, len, "\r\n.\r\n", 5)) != NULL)
		return (size_t)(p - in) + 5;
	return 0;
}

/* LF -> CR LF, dot-stuffed, plus the terminator in DOT mode. */
static void
encode(const struct buf *o, int dot, struct buf *e)
{
	size_t	 i;
	int	 bol = 1;

	buf_init(e, 3 * o->len + 16);
	for (i = 0; i < o->len; i++) {
		if (dot && bol && o->data[i] == '.')
			buf_addc(e, '.');
		if (o->data[i] == '\n')
			buf_add(e, "\r\n", 2);
		else
			buf_addc(e, o->data[i]);
		bol = o->data[i] == '\n';
	}
	if (dot)
		buf_add(e, ".\r\n", 3);
}

static void
round_trip(const struct res *r, int mode)
{
	struct buf	 e;
	struct res	 r2;

	if (memchr(r->out.data ? r->out.data : "", '\r', r->out.len) ||
	    (mode == SMTP_DATA_DOT && !r->d.done))
		return;
	encode(&r->out, mode == SMTP_DATA_DOT, &e);
	decode(mode, 1, 0, e.data ? e.data : "", e.len, 0, 7, &r2);
	if (r2.out.len != r->out.len || (r->out.len &&
	    memcmp(r2.out.data, r->out.data, r->out.len)) ||
	    (r2.d.errors & ~SMTP_DATA_E_NUL) ||
	    r2.d.done != (mode == SMTP_DATA_DOT) || r2.consumed != e.len)
		abort();
	buf_free(&e);
	buf_free(&r2.out);
}

static void
check(const struct res *r, int mode, int strict, const char *in,
    size_t len)
{
	size_t		 end = 0;
	unsigned	 want;
	int		 has_cr;

	if (mode == SMTP_DATA_DOT)
		end = oracle_end(in, len);
	if (r->d.done != (end != 0) || r->consumed != (end ? end : len))
		abort();
	want = oracle_errors(in, r->consumed, mode == SMTP_DATA_BDAT);
	if ((r->d.errors & ~SMTP_DATA_E_LONG_LINE) != want)
		abort();
	has_cr = r->out.len && memchr(r->out.data, '\r', r->out.len);
	if (has_cr && (!strict || !(r->d.errors & SMTP_DATA_E_BARE_CR)))
		abort();
	if (r->out.len > r->consumed + (mode == SMTP_DATA_BDAT))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct res	 one, bytes, rnd;
	const char	*in;
	size_t		 len, maxline;
	int		 mode, strict;

	if (size < 2)
		return 0;
	strict = data[0] & 1;
	mode = (data[0] & 2) ? SMTP_DATA_BDAT : SMTP_DATA_DOT;
	maxline = (data[0] >> 2) ? (size_t)(data[0] >> 2) : 1000;
	in = (const char *)data + 2;
	len = size - 2;

	decode(mode, strict, maxline, in, len, len + 1, 0, &one);
	decode(mode, strict, maxline, in, len, 1, 0, &bytes);
	decode(mode, strict, maxline, in, len, 0, data[1], &rnd);
	same(&one, &bytes);
	same(&one, &rnd);
	check(&one, mode, strict, in, len);
	round_trip(&one, mode);
	buf_free(&one.out);
	buf_free(&bytes.out);
	buf_free(&rnd.out);
	return 0;
}
