/*
 * test_milter_proto - milter packets (src/smtpd/milter_proto.c): our
 * commands byte for byte, the filter's replies accepted or refused, and
 * the header lines we build from SMFIR_ADDHEADER.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "milter_proto.h"

#define S(lit)	lit, sizeof(lit) - 1

static enum milter_perr
parse(const char *p, size_t len, struct milter_reply *r)
{
	return milter_reply_parse(p, len, r);
}

static void
test_frame_len(void **state)
{
	unsigned char	 ok[4] = { 0, 0, 0, 1 }, zero[4] = { 0, 0, 0, 0 };
	unsigned char	 max[4] = { 0, 1, 0, 0 }, big[4] = { 0, 1, 0, 1 };
	unsigned char	 huge[4] = { 0xff, 0xff, 0xff, 0xff };

	(void)state;
	assert_int_equal(milter_frame_len(ok), 1);
	assert_int_equal(milter_frame_len(max), MILTER_REPLY_MAX);
	assert_int_equal(milter_frame_len(zero), -1);
	assert_int_equal(milter_frame_len(big), -1);	/* the 1 MB header */
	assert_int_equal(milter_frame_len(huge), -1);
}

static void
test_builders(void **state)
{
	struct buf	 b;
	const char	*strs[2] = { "Subject", "hi" };
	const char	*mac[2] = { "i", "Q1" };

	(void)state;
	buf_init(&b, 4096);
	milter_put_optneg(&b, MILTER_ACTIONS, 0x10);
	assert_int_equal(b.len, 17);
	assert_memory_equal(b.data, "\0\0\0\x0dO\0\0\0\x06\0\0\0\x21\0\0\0\x10",
	    17);
	buf_reset(&b);
	milter_put_strs(&b, MILTER_C_HEADER, strs, 2);
	assert_int_equal(b.len, 4 + 1 + 8 + 3);
	assert_memory_equal(b.data, "\0\0\0\x0cLSubject\0hi\0", 16);
	buf_reset(&b);
	milter_put_cmd(&b, MILTER_C_EOH, NULL, 0);
	assert_memory_equal(b.data, "\0\0\0\x01N", 5);
	buf_reset(&b);
	milter_put_connect(&b, "[127.0.0.1]", '4', 2525, "127.0.0.1");
	assert_memory_equal(b.data, "\0\0\0\x1a" "C[127.0.0.1]\0" "4\x09\xdd"
	    "127.0.0.1\0", 30);
	buf_reset(&b);
	milter_put_connect(&b, "localhost", 'U', 0, "");
	assert_memory_equal(b.data, "\0\0\0\x0c" "Clocalhost\0U", 16);
	buf_reset(&b);
	milter_put_body(&b, S("a\nb\n\nc"));
	assert_int_equal(b.len, 4 + 1 + 9);
	assert_memory_equal(b.data, "\0\0\0\x0a" "Ba\r\nb\r\n\r\nc", 14);
	buf_reset(&b);
	milter_put_macros(&b, MILTER_C_BODYEOB, mac, 1);
	assert_memory_equal(b.data, "\0\0\0\x07" "DEi\0Q1\0", 11);
	buf_free(&b);
}

static void
test_simple_replies(void **state)
{
	struct milter_reply	 r;
	const char		*ok = "acdrtps";

	(void)state;
	for (const char *p = ok; *p; p++) {
		assert_int_equal(parse(p, 1, &r), MILTER_OK);
		assert_int_equal(r.cmd, *p);
	}
	assert_int_equal(parse(S("cX"), &r), MILTER_E_EXTRA);
	assert_int_equal(parse(S("z"), &r), MILTER_E_CMD);
	assert_int_equal(parse("", 0, &r), MILTER_E_LEN);
}

static void
test_optneg(void **state)
{
	struct milter_reply	 r;

	(void)state;
	assert_int_equal(parse(S("O\0\0\0\x06\0\0\0\x21\0\0\0\x40"), &r),
	    MILTER_OK);
	assert_int_equal(r.version, 6);
	assert_int_equal(r.actions, 0x21);
	assert_int_equal(r.protocol, 0x40);
	assert_int_equal(parse(S("O\0\0\0\x06\0\0\0\x21\0\0"), &r),
	    MILTER_E_SHORT);
	assert_int_equal(parse(S("O\0\0\0\x07\0\0\0\x21\0\0\0\x40"), &r),
	    MILTER_E_VERSION);
	assert_int_equal(parse(S("O\0\0\0\x01\0\0\0\x21\0\0\0\x40"), &r),
	    MILTER_E_VERSION);
}

static void
test_replycode(void **state)
{
	struct milter_reply	 r;

	(void)state;
	assert_int_equal(parse(S("y554 5.7.1 Gtube pattern\0"), &r), MILTER_OK);
	assert_string_equal(r.text, "554 5.7.1 Gtube pattern");
	/* control bytes become '?', the first line only, "-" is a space */
	assert_int_equal(parse(S("y451-4.7.1 a\x01" "b\r\n451 4.7.1 c\0"),
	    &r), MILTER_OK);
	assert_string_equal(r.text, "451 4.7.1 a?b");
	assert_int_equal(parse(S("y250 ok\0"), &r), MILTER_E_CODE);
	assert_int_equal(parse(S("y55\0"), &r), MILTER_E_CODE);
	assert_int_equal(parse(S("y5501 x\0"), &r), MILTER_E_CODE);
	assert_int_equal(parse(S("y554 no nul"), &r), MILTER_E_STR);
	assert_int_equal(parse(S("y554 x\0more"), &r), MILTER_E_EXTRA);
}

static void
test_headers(void **state)
{
	struct milter_reply	 r;

	(void)state;
	assert_int_equal(parse(S("hX-Spam\0Yes\0"), &r), MILTER_OK);
	assert_string_equal(r.name, "X-Spam");
	assert_int_equal(r.valuelen, 3);
	assert_memory_equal(r.value, "Yes", 3);
	assert_int_equal(parse(S("i\0\0\0\x01X-A\0b\0"), &r), MILTER_OK);
	assert_int_equal(r.index, 1);
	assert_int_equal(parse(S("m\0\0\0\x02Subject\0\0"), &r), MILTER_OK);
	assert_int_equal(r.valuelen, 0);
	assert_int_equal(parse(S("hX-Spam\0Yes"), &r), MILTER_E_STR);
	assert_int_equal(parse(S("hX-Spam"), &r), MILTER_E_STR);
	assert_int_equal(parse(S("h\0v\0"), &r), MILTER_E_HDR);
	assert_int_equal(parse(S("hX:Y\0v\0"), &r), MILTER_E_HDR);
	assert_int_equal(parse(S("hX Y\0v\0"), &r), MILTER_E_HDR);
	assert_int_equal(parse(S("hX\0v\0z"), &r), MILTER_E_EXTRA);
	assert_int_equal(parse(S("i\0\0\0"), &r), MILTER_E_SHORT);
	assert_int_equal(parse(S("qspam\0"), &r), MILTER_OK);
	assert_int_equal(r.strlen, 4);
	assert_int_equal(parse(S("q"), &r), MILTER_E_STR);
}

static void
test_hdr_line(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(milter_hdr_line(&b, "X-A", S("one")), 0);
	assert_int_equal(milter_hdr_line(&b, "X-B", S("two\r\n\tthree")), 0);
	assert_string_equal(b.data, "X-A: one\nX-B: two\n\tthree\n");
	/* refused, and nothing of it stays */
	assert_int_equal(milter_hdr_line(&b, "X-C", S("a\nb")), -1);
	assert_int_equal(milter_hdr_line(&b, "X-C", S("a\n\n b")), -1);
	assert_int_equal(milter_hdr_line(&b, "X-C", S("a\n")), -1);
	assert_int_equal(milter_hdr_line(&b, "X-C", S("a\x01")), -1);
	assert_int_equal(milter_hdr_line(&b, "X:C", S("a")), -1);
	assert_string_equal(b.data, "X-A: one\nX-B: two\n\tthree\n");
	/* over the cap: an error, sticky */
	assert_int_equal(milter_hdr_line(&b, "X-Long", S("0123456789"
	    "0123456789012345678901234567890123456789")), -1);
	assert_true(b.err);
	buf_free(&b);
}

static void
test_hdr_split(void **state)
{
	size_t	 nl, vo;

	(void)state;
	assert_int_equal(milter_hdr_split(S("Subject: hi"), &nl, &vo), 0);
	assert_int_equal(nl, 7);
	assert_int_equal(vo, 9);
	assert_int_equal(milter_hdr_split(S("Subject :hi"), &nl, &vo), 0);
	assert_int_equal(nl, 7);
	assert_int_equal(vo, 9);
	assert_int_equal(milter_hdr_split(S("X:"), &nl, &vo), 0);
	assert_int_equal(vo, 2);
	assert_int_equal(milter_hdr_split(S(": x"), &nl, &vo), -1);
	assert_int_equal(milter_hdr_split(S("no colon"), &nl, &vo), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_simple_replies),
		cmocka_unit_test(test_optneg),
		cmocka_unit_test(test_replycode),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_hdr_line),
		cmocka_unit_test(test_hdr_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
