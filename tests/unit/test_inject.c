/*
 * test_inject - the pure helpers of `sluice inject` (src/cli/inject_util.c):
 * content sniffing, --header checks, SMTP reply lines, dot-stuffing and
 * HOST:PORT.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "inject.h"

static void
sniffs(const char *p, size_t n, const char *type, const char *sub,
    const char *charset)
{
	struct inject_type	 t;

	inject_sniff((const unsigned char *)p, n, &t);
	assert_string_equal(t.type, type);
	assert_string_equal(t.subtype, sub);
	if (charset == NULL)
		assert_null(t.charset);
	else
		assert_string_equal(t.charset, charset);
}

#define SNIFF(lit, type, sub, cs) sniffs(lit, sizeof(lit) - 1, type, sub, cs)

static void
test_sniff(void **state)
{
	(void)state;
	SNIFF("%PDF-1.7\n%\xe2\xe3", "application", "pdf", NULL);
	SNIFF("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image", "png", NULL);
	SNIFF("\xff\xd8\xff\xe0\0\x10JFIF", "image", "jpeg", NULL);
	SNIFF("GIF89a\x01\0", "image", "gif", NULL);
	SNIFF("GIF87a", "image", "gif", NULL);
	SNIFF("PK\x03\x04\x14\0", "application", "zip", NULL);
	SNIFF("PK\x05\x06", "application", "zip", NULL);
	SNIFF("\x1f\x8b\x08\0", "application", "gzip", NULL);
	SNIFF("plain text\r\n\tindented\f", "text", "plain", "us-ascii");
	SNIFF("Gr\xc3\xbc\xc3\x9f" "e\n", "text", "plain", "utf-8");
	SNIFF("", "text", "plain", "us-ascii");
	/* latin-1, a NUL, an escape, a truncated sequence, an overlong */
	SNIFF("Gr\xfc\xdf" "e", "application", "octet-stream", NULL);
	SNIFF("a\0b", "application", "octet-stream", NULL);
	SNIFF("\x1b[31mred", "application", "octet-stream", NULL);
	SNIFF("abc\xc3", "application", "octet-stream", NULL);
	SNIFF("\xc0\xaf", "application", "octet-stream", NULL);
	/* too short to be the magic */
	SNIFF("%PDF", "text", "plain", "us-ascii");
	SNIFF("\x89PNG", "application", "octet-stream", NULL);
	SNIFF("\x1f\x8b", "application", "octet-stream", NULL);
}

static void
header_ok(const char *arg, const char *name, const char *value)
{
	char		 n[INJECT_HDR_NAME_MAX + 1];
	const char	*v = NULL, *why;

	why = inject_header_check(arg, n, sizeof(n), &v);
	if (why != NULL)
		fail_msg("%s: %s", arg, why);
	assert_string_equal(n, name);
	assert_string_equal(v, value);
}

static void
header_bad(const char *arg)
{
	char		 n[INJECT_HDR_NAME_MAX + 1];
	const char	*v = NULL;

	if (inject_header_check(arg, n, sizeof(n), &v) == NULL)
		fail_msg("accepted: %s", arg);
}

static void
test_header(void **state)
{
	char	 longname[INJECT_HDR_NAME_MAX + 8];

	(void)state;
	header_ok("X-Robot: yes", "X-Robot", "yes");
	header_ok("X-Empty:", "X-Empty", "");
	header_ok("Reply-To:\t r@example.test", "Reply-To", "r@example.test");
	header_ok("X-Utf8: Gr\xc3\xbc\xc3\x9f" "e", "X-Utf8", "Gr\xc3\xbc\xc3\x9f" "e");
	header_ok("X-Colon: a: b", "X-Colon", "a: b");
	header_bad("X: a\r\nBcc: x");
	header_bad("X: a\nBcc: x");
	header_bad("X: a\rb");
	header_bad("X: a\x01");
	header_bad("X: \xc3");
	header_bad("NoColon");
	header_bad(": value");
	header_bad("Bad Name: v");
	header_bad("X-Name : v");
	header_bad("N\xc3\xa4me: v");
	header_bad("From: x@example.test");
	header_bad("from: x@example.test");
	header_bad("TO: x");
	header_bad("Cc: x");
	header_bad("BCC: x");
	header_bad("Date: x");
	header_bad("Message-Id: <x@y>");
	header_bad("MIME-Version: 1.0");
	header_bad("Subject: x");
	header_bad("Content-Type: text/html");
	header_bad("content-transfer-encoding: 8bit");
	memset(longname, 'X', sizeof(longname) - 2);
	longname[sizeof(longname) - 2] = ':';
	longname[sizeof(longname) - 1] = '\0';
	header_bad(longname);
}

static void
test_reply_line(void **state)
{
	int	 code, more;

	(void)state;
	assert_int_equal(inject_reply_line("250 ok", 6, &code, &more), 0);
	assert_int_equal(code, 250);
	assert_int_equal(more, 0);
	assert_int_equal(inject_reply_line("250-PIPELINING", 14, &code, &more),
	    0);
	assert_int_equal(more, 1);
	assert_int_equal(inject_reply_line("354", 3, &code, &more), 0);
	assert_int_equal(code, 354);
	assert_int_equal(inject_reply_line("535 5.7.8 no", 12, &code, &more), 0);
	assert_int_equal(code, 535);
	assert_int_equal(inject_reply_line("25", 2, &code, &more), -1);
	assert_int_equal(inject_reply_line("2500", 4, &code, &more), -1);
	assert_int_equal(inject_reply_line("150 x", 5, &code, &more), -1);
	assert_int_equal(inject_reply_line("650 x", 5, &code, &more), -1);
	assert_int_equal(inject_reply_line("2x0 x", 5, &code, &more), -1);
	assert_int_equal(inject_reply_line("HTTP/1.1", 8, &code, &more), -1);
}

static void
stuffs(const char *in, const char *want)
{
	struct buf	 b;

	buf_init(&b, 1 << 20);
	assert_int_equal(inject_data_stuff(in, strlen(in), &b), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void
test_data_stuff(void **state)
{
	struct buf	 b;

	(void)state;
	stuffs("a\nb\n", "a\r\nb\r\n.\r\n");
	stuffs("a\r\nb", "a\r\nb\r\n.\r\n");
	stuffs(".x\n..y\n.\n", "..x\r\n...y\r\n..\r\n.\r\n");
	stuffs("a\rb\r\n.", "a\r\nb\r\n..\r\n.\r\n");
	stuffs("", ".\r\n");
	stuffs("\n\n", "\r\n\r\n.\r\n");
	stuffs("x.\n.", "x.\r\n..\r\n.\r\n");
	/* the cap: a sticky error, never a truncated message */
	buf_init(&b, 8);
	assert_int_equal(inject_data_stuff("0123456789\n", 11, &b), -1);
	buf_free(&b);
}

static void
test_hostport(void **state)
{
	char	 h[INJECT_HOST_MAX + 1], p[8];

	(void)state;
	assert_int_equal(inject_hostport("127.0.0.1:587", h, sizeof(h), p,
	    sizeof(p)), 0);
	assert_string_equal(h, "127.0.0.1");
	assert_string_equal(p, "587");
	assert_int_equal(inject_hostport("[::1]:465", h, sizeof(h), p,
	    sizeof(p)), 0);
	assert_string_equal(h, "::1");
	assert_string_equal(p, "465");
	assert_int_equal(inject_hostport("mx.example.test:25", h, sizeof(h), p,
	    sizeof(p)), 0);
	assert_string_equal(h, "mx.example.test");
	assert_int_equal(inject_hostport("host", h, sizeof(h), p, sizeof(p)),
	    -1);
	assert_int_equal(inject_hostport(":25", h, sizeof(h), p, sizeof(p)),
	    -1);
	assert_int_equal(inject_hostport("h:", h, sizeof(h), p, sizeof(p)), -1);
	assert_int_equal(inject_hostport("h:0", h, sizeof(h), p, sizeof(p)),
	    -1);
	assert_int_equal(inject_hostport("h:65536", h, sizeof(h), p,
	    sizeof(p)), -1);
	assert_int_equal(inject_hostport("h:2x", h, sizeof(h), p, sizeof(p)),
	    -1);
	assert_int_equal(inject_hostport("::1:25", h, sizeof(h), p, sizeof(p)),
	    -1);
	assert_int_equal(inject_hostport("[::1]25", h, sizeof(h), p,
	    sizeof(p)), -1);
	assert_int_equal(inject_hostport("a b:25", h, sizeof(h), p, sizeof(p)),
	    -1);
	assert_int_equal(inject_hostport("h:25", h, 1, p, sizeof(p)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_reply_line),
		cmocka_unit_test(test_data_stuff),
		cmocka_unit_test(test_hostport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
