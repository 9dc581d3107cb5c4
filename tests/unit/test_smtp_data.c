/*
 * test_smtp_data - the DATA / BDAT decoder (src/smtpd/smtp_data.c).
 *
 * Every DOT-mode case is decoded one-shot, byte by byte and in several
 * pseudo-random chunkings; all must give the same output, errors, done
 * and consumed count, and no call may add more than len + 1 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "smtp_data.h"

#define S(lit)	lit, sizeof(lit) - 1
#define MAXLINE	1000
#define ALL	((size_t)-1)

struct result {
	struct buf	 out;
	size_t		 consumed;
	unsigned	 errors;
	int		 done;
};

/*
 * Decode in[0..len) with chunks of `chunk` bytes (0: random sizes from
 * seed), stopping when the decoder says done, as a session would.
 */
static void
run(enum smtp_data_mode mode, int strict, const char *in, size_t len,
    size_t chunk, unsigned seed, int finish, struct result *r)
{
	struct smtp_data_dec	 d;
	size_t			 pos = 0, n, c, before;

	buf_init(&r->out, 1 << 20);
	smtp_data_init(&d, mode, strict, MAXLINE);
	while (pos < len && !d.done) {
		n = chunk ? chunk : 1 + (size_t)(rand_r(&seed) % 17);
		if (n > len - pos)
			n = len - pos;
		before = r->out.len;
		c = smtp_data_feed(&d, in + pos, n, &r->out);
		assert_true(r->out.len - before <= n + 1);
		assert_true(c == n || (d.done && c < n));
		pos += c;
	}
	if (finish)
		smtp_data_finish(&d, &r->out);
	assert_int_equal(r->out.err, BUF_OK);
	assert_int_equal(d.inbytes, pos);
	assert_int_equal(d.outbytes, r->out.len);
	r->consumed = pos;
	r->errors = d.errors;
	r->done = d.done;
}

/* One-shot, byte-wise and random chunkings must all give `want`. */
static void
check(enum smtp_data_mode mode, int strict, const char *in, size_t len,
    const char *want, size_t wantlen, int done, size_t consumed,
    unsigned errors)
{
	struct result	 r;
	size_t		 chunks[] = { ALL, 1, 2, 3, 0, 0, 0, 0 };
	unsigned	 k;

	if (consumed == ALL)
		consumed = len;
	for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		run(mode, strict, in, len, chunks[k] == ALL ? len + 1 :
		    chunks[k], k, mode == SMTP_DATA_BDAT, &r);
		if (r.out.len != wantlen ||
		    (wantlen && memcmp(r.out.data, want, wantlen)))
			fail_msg("chunking %u: output mismatch (got %zu "
			    "bytes, want %zu)", k, r.out.len, wantlen);
		assert_int_equal(r.done, done);
		assert_int_equal(r.consumed, consumed);
		assert_int_equal(r.errors, errors);
		buf_free(&r.out);
	}
}

static void
dot(int strict, const char *in, size_t len, const char *want,
    size_t wantlen, size_t consumed, unsigned errors)
{
	check(SMTP_DATA_DOT, strict, in, len, want, wantlen, 1, consumed,
	    errors);
}

static void
test_dot_golden(void **state)
{
	int	 strict;

	(void)state;
	for (strict = 0; strict <= 1; strict++) {
		dot(strict, S("Subject: x\r\n\r\nbody\r\n.\r\n"),
		    S("Subject: x\n\nbody\n"), ALL, 0);
		/* Empty message: the terminator right at the start. */
		dot(strict, S(".\r\n"), S(""), ALL, 0);
		dot(strict, S("\r\n.\r\n"), S("\n"), ALL, 0);
		/* Dot-unstuffing, only at line starts. */
		dot(strict, S("..\r\n.\r\n"), S(".\n"), ALL, 0);
		dot(strict, S("..x\r\n...\r\n.\r\n"), S(".x\n..\n"), ALL, 0);
		dot(strict, S(".x\r\n.\r\n"), S("x\n"), ALL, 0);
		dot(strict, S("x.\r\ny..\r\n.\r\n"), S("x.\ny..\n"), ALL, 0);
		dot(strict, S("a\r\n. \r\n.\r\n"), S("a\n \n"), ALL, 0);
		/* Stops right after the terminator; the rest is pipelined. */
		dot(strict, S("a\r\n.\r\nQUIT\r\n"), S("a\n"), 6, 0);
		dot(strict, S(".\r\n.\r\n"), S(""), 3, 0);
	}
}

static void
test_dot_unterminated(void **state)
{
	(void)state;
	check(SMTP_DATA_DOT, 1, S("abc"), S("abc"), 0, ALL, 0);
	check(SMTP_DATA_DOT, 1, S("a\r\n."), S("a\n"), 0, ALL, 0);
	check(SMTP_DATA_DOT, 1, S("a\r\n.\r"), S("a\n"), 0, ALL, 0);
	check(SMTP_DATA_DOT, 1, S("a\r\n"), S("a\n"), 0, ALL, 0);
	check(SMTP_DATA_DOT, 1, S(""), S(""), 0, ALL, 0);
}

/*
 * SMTP smuggling: each sequence between "a" and the smuggled command must
 * not end data in either mode; only the final CR LF '.' CR LF does, and the
 * command ends up inside the message. The expected outputs spell out the
 * policy: strict keeps bare bytes and does not unstuff after them;
 * non-strict makes a bare CR or LF a line end and unstuffs after it.
 */
#define CMD	"MAIL FROM:<evil@x>\r\n"
#define OCMD	"MAIL FROM:<evil@x>\n"
#define END	"\r\n.\r\n"
#define LF	SMTP_DATA_E_BARE_LF
#define CR	SMTP_DATA_E_BARE_CR

static void
test_smuggling(void **state)
{
	(void)state;
	/* variant           strict output           non-strict output */
	dot(1, S("a\n.\n" CMD END), S("a\n.\n" OCMD "\n"), ALL, LF);
	dot(0, S("a\n.\n" CMD END), S("a\n\n" OCMD "\n"), ALL, LF);
	dot(1, S("a\r\n.\n" CMD END), S("a\n\n" OCMD "\n"), ALL, LF);
	dot(0, S("a\r\n.\n" CMD END), S("a\n\n" OCMD "\n"), ALL, LF);
	dot(1, S("a\n.\r\n" CMD END), S("a\n.\n" OCMD "\n"), ALL, LF);
	dot(0, S("a\n.\r\n" CMD END), S("a\n\n" OCMD "\n"), ALL, LF);
	dot(1, S("a\r.\r\n" CMD END), S("a\r.\n" OCMD "\n"), ALL, CR);
	dot(0, S("a\r.\r\n" CMD END), S("a\n\n" OCMD "\n"), ALL, CR);
	dot(1, S("a\r\n.\r" CMD END), S("a\n\r" OCMD "\n"), ALL, CR);
	dot(0, S("a\r\n.\r" CMD END), S("a\n\n" OCMD "\n"), ALL, CR);
	dot(1, S("a\r.\r" CMD END), S("a\r.\r" OCMD "\n"), ALL, CR);
	dot(0, S("a\r.\r" CMD END), S("a\n\n" OCMD "\n"), ALL, CR);
	dot(1, S("a\n.\r" CMD END), S("a\n.\r" OCMD "\n"), ALL, LF | CR);
	dot(0, S("a\n.\r" CMD END), S("a\n\n" OCMD "\n"), ALL, LF | CR);
	dot(1, S("a\r\n.\r\r\n" CMD END), S("a\n\r\n" OCMD "\n"), ALL, CR);
	dot(0, S("a\r\n.\r\r\n" CMD END), S("a\n\n\n" OCMD "\n"), ALL, CR);
	dot(1, S("a\r\n.\n\r\n" CMD END), S("a\n\n\n" OCMD "\n"), ALL, LF);
	dot(0, S("a\r\n.\n\r\n" CMD END), S("a\n\n\n" OCMD "\n"), ALL, LF);
	/* The same right at the start of data. */
	dot(1, S(".\n" CMD END), S("\n" OCMD "\n"), ALL, LF);
	dot(0, S(".\n" CMD END), S("\n" OCMD "\n"), ALL, LF);
	dot(1, S(".\r" CMD END), S("\r" OCMD "\n"), ALL, CR);
	dot(0, S(".\r" CMD END), S("\n" OCMD "\n"), ALL, CR);
	dot(1, S("\n.\n" CMD END), S("\n.\n" OCMD "\n"), ALL, LF);
	dot(0, S("\n.\n" CMD END), S("\n\n" OCMD "\n"), ALL, LF);
	dot(1, S("\n.\r\n" CMD END), S("\n.\n" OCMD "\n"), ALL, LF);
	dot(0, S("\n.\r\n" CMD END), S("\n\n" OCMD "\n"), ALL, LF);
}

/*
 * The converse: the raw bytes CR LF '.' CR LF end data even when the CR LF
 * follows a bare CR or LF, because P6 is about the raw bytes only.
 */
static void
test_real_end_after_bare(void **state)
{
	(void)state;
	dot(1, S("a\r\r\n.\r\nX"), S("a\r\n"), 7, CR);
	dot(0, S("a\r\r\n.\r\nX"), S("a\n\n"), 7, CR);
	dot(1, S("a\n\r\n.\r\nX"), S("a\n\n"), 7, LF);
	dot(0, S("a\n\r\n.\r\nX"), S("a\n\n"), 7, LF);
}

static void
test_bare_in_text(void **state)
{
	(void)state;
	dot(1, S("a\nb\rc\r\n.\r\n"), S("a\nb\rc\n"), ALL, LF | CR);
	dot(0, S("a\nb\rc\r\n.\r\n"), S("a\nb\nc\n"), ALL, LF | CR);
	/* Non-strict unstuffs after a bare line end, strict does not. */
	dot(1, S("a\n..b\r\n.\r\n"), S("a\n..b\n"), ALL, LF);
	dot(0, S("a\n..b\r\n.\r\n"), S("a\n.b\n"), ALL, LF);
	dot(0, S("a\r\r\r\n.\r\n"), S("a\n\n\n"), ALL, CR);
	dot(1, S("a\r\r\r\n.\r\n"), S("a\r\r\n"), ALL, CR);
}

static void
test_nul(void **state)
{
	(void)state;
	dot(1, S("a\0b\r\n\0\r\n.\r\n"), S("a\0b\n\0\n"), ALL,
	    SMTP_DATA_E_NUL);
	dot(0, S(".\0\r\n.\r\n"), S("\0\n"), ALL, SMTP_DATA_E_NUL);
}

/*
 * A line of n octets including CR LF (dot-stuffed if asked), then the
 * terminator, and the output it must decode to.
 */
static void
long_line(int strict, size_t n, int stuffed, unsigned errors)
{
	char	*in, *want;
	size_t	 skip = stuffed ? 1 : 0;

	assert_non_null(in = malloc(n + 3));
	assert_non_null(want = malloc(n));
	memset(in, 'x', n - 2);
	if (stuffed)
		in[0] = in[1] = '.';
	memcpy(in + n - 2, "\r\n.\r\n", 5);
	memcpy(want, in + skip, n - 2 - skip);
	want[n - 2 - skip] = '\n';
	dot(strict, in, n + 3, want, n - 1 - skip, ALL, errors);
	free(in);
	free(want);
}

static void
test_line_length(void **state)
{
	int	 strict;

	(void)state;
	for (strict = 0; strict <= 1; strict++) {
		long_line(strict, 1000, 0, 0);
		long_line(strict, 1001, 0, SMTP_DATA_E_LONG_LINE);
		/* The stuffing dot counts: it is on the wire. */
		long_line(strict, 1000, 1, 0);
		long_line(strict, 1001, 1, SMTP_DATA_E_LONG_LINE);
		long_line(strict, 5000, 0, SMTP_DATA_E_LONG_LINE);
	}
}

static void
test_line_length_reset(void **state)
{
	struct smtp_data_dec	 d;
	struct buf		 out;
	char			 in[2000];

	(void)state;
	/* Two 999-octet lines: each is counted on its own. */
	memset(in, 'y', sizeof(in));
	memcpy(in + 997, "\r\n", 2);
	memcpy(in + 1996, "\r\n", 2);
	buf_init(&out, 1 << 16);
	smtp_data_init(&d, SMTP_DATA_DOT, 1, MAXLINE);
	assert_int_equal(smtp_data_feed(&d, in, 1998, &out), 1998);
	assert_int_equal(d.errors, 0);
	/* Non-strict: a bare LF ends a line for counting too; strict not. */
	memcpy(in + 997, "\n", 1);
	smtp_data_init(&d, SMTP_DATA_DOT, 0, MAXLINE);
	(void)smtp_data_feed(&d, in, 1998, &out);
	assert_int_equal(d.errors, SMTP_DATA_E_BARE_LF);
	smtp_data_init(&d, SMTP_DATA_DOT, 1, MAXLINE);
	(void)smtp_data_feed(&d, in, 1998, &out);
	assert_int_equal(d.errors, SMTP_DATA_E_BARE_LF | SMTP_DATA_E_LONG_LINE);
	/* maxline 0: no limit. */
	memset(in, 'z', sizeof(in));
	smtp_data_init(&d, SMTP_DATA_DOT, 1, 0);
	(void)smtp_data_feed(&d, in, sizeof(in), &out);
	assert_int_equal(d.errors, 0);
	buf_free(&out);
}

static void
test_after_done(void **state)
{
	struct smtp_data_dec	 d;
	struct buf		 out;

	(void)state;
	buf_init(&out, 1024);
	smtp_data_init(&d, SMTP_DATA_DOT, 1, MAXLINE);
	assert_int_equal(smtp_data_feed(&d, S(".\r\nRSET\r\n"), &out), 3);
	assert_true(d.done);
	assert_int_equal(smtp_data_feed(&d, S("RSET\r\n"), &out), 0);
	smtp_data_finish(&d, &out);	/* no effect once done */
	assert_int_equal(out.len, 0);
	assert_int_equal(d.inbytes, 3);
	buf_free(&out);
}

static void
test_pending_cr_output_bound(void **state)
{
	struct smtp_data_dec	 d;
	struct buf		 out;

	(void)state;
	buf_init(&out, 1024);
	smtp_data_init(&d, SMTP_DATA_DOT, 1, MAXLINE);
	assert_int_equal(smtp_data_feed(&d, S("a\r"), &out), 2);
	assert_int_equal(out.len, 1);	/* CR held back */
	assert_int_equal(smtp_data_feed(&d, S("b"), &out), 1);
	assert_int_equal(out.len, 3);	/* len + 1 */
	assert_memory_equal(out.data, "a\rb", 3);
	assert_int_equal(d.outbytes, 3);
	assert_int_equal(d.inbytes, 3);
	buf_free(&out);
}

static void
test_buf_full(void **state)
{
	struct smtp_data_dec	 d;
	struct buf		 out;

	(void)state;
	/* A full buffer does not stop the search for the end of data. */
	buf_init(&out, 4);
	smtp_data_init(&d, SMTP_DATA_DOT, 1, MAXLINE);
	assert_int_equal(smtp_data_feed(&d, S("0123456789\r\n.\r\nX"), &out),
	    15);
	assert_true(d.done);
	assert_int_equal(out.err, BUF_ETOOBIG);
	assert_int_equal(d.outbytes, 11);
	buf_free(&out);
}

static void
bdat(int strict, const char *in, size_t len, const char *want,
    size_t wantlen, unsigned errors)
{
	check(SMTP_DATA_BDAT, strict, in, len, want, wantlen, 0, ALL, errors);
}

static void
test_bdat(void **state)
{
	int	 strict;

	(void)state;
	for (strict = 0; strict <= 1; strict++) {
		bdat(strict, S("a\r\nb\r\n"), S("a\nb\n"), 0);
		bdat(strict, S("a\r\nb"), S("a\nb\n"), 0);
		bdat(strict, S(""), S(""), 0);
		/* No dot handling and no terminator in BDAT. */
		bdat(strict, S("..a\r\n.\r\nb\r\n"), S("..a\n.\nb\n"), 0);
		bdat(strict, S("a\nb"), S("a\nb\n"), LF);
		bdat(strict, S("\0\r\n"), S("\0\n"), SMTP_DATA_E_NUL);
	}
	/* A pending CR at the end is a bare CR. */
	bdat(1, S("a\r"), S("a\r\n"), CR);
	bdat(0, S("a\r"), S("a\n"), CR);
	bdat(1, S("a\rb"), S("a\rb\n"), CR);
	bdat(0, S("a\rb"), S("a\nb\n"), CR);
	bdat(1, S("a\r\r\n"), S("a\r\n"), CR);
	bdat(0, S("a\r\r\n"), S("a\n\n"), CR);
	/* Strict bare LF output ends in LF: nothing appended. */
	bdat(1, S("a\n"), S("a\n"), LF);
}

static void
test_bdat_chunks(void **state)
{
	struct smtp_data_dec	 d;
	struct buf		 out;

	(void)state;
	/* CR LF split across two BDAT chunks is one line end. */
	buf_init(&out, 1024);
	smtp_data_init(&d, SMTP_DATA_BDAT, 1, MAXLINE);
	assert_int_equal(smtp_data_feed(&d, S("a\r"), &out), 2);
	assert_int_equal(smtp_data_feed(&d, S("\nb"), &out), 2);
	smtp_data_finish(&d, &out);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "a\nb\n", 4);
	assert_int_equal(d.errors, 0);
	assert_int_equal(d.done, 0);
	assert_int_equal(d.inbytes, 4);
	assert_int_equal(d.outbytes, 4);
	buf_free(&out);
}

static void
test_bdat_line_length(void **state)
{
	char	 in[1100], want[1100];

	(void)state;
	memset(in, 'b', sizeof(in));
	memset(want, 'b', sizeof(want));
	memcpy(in + 998, "\r\n", 2);
	want[998] = '\n';
	bdat(1, in, 1000, want, 999, 0);
	memcpy(in + 998, "b\r\n", 3);
	want[998] = 'b';
	want[999] = '\n';
	bdat(1, in, 1001, want, 1000, SMTP_DATA_E_LONG_LINE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dot_golden),
		cmocka_unit_test(test_dot_unterminated),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_real_end_after_bare),
		cmocka_unit_test(test_bare_in_text),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_line_length_reset),
		cmocka_unit_test(test_after_done),
		cmocka_unit_test(test_pending_cr_output_bound),
		cmocka_unit_test(test_buf_full),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_bdat_chunks),
		cmocka_unit_test(test_bdat_line_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
