/*
 * test_milter_proto - milter packets (src/smtpd/milter_proto.c): our
 * commands byte for byte, the filter's replies accepted or refused, and
 * the header lines we build from SMFIR_ADDHEADER; and the `milter`
 * directive of the config (kept here, beside the milter code it feeds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
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
	assert_memory_equal(b.data, "\0\0\0\x0dO\0\0\0\x06\0\0\0\xff\0\0\0\x10",
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

/* one edit on a fresh copy of sec0; the result in *out */
static int
edit(const char *sec0, int ins, int del, const char *name, uint32_t idx,
    const char *line, char *out, size_t outlen)
{
	struct buf	 sec, tmp;
	int		 rc;

	buf_init(&sec, 256);
	buf_init(&tmp, 256);
	buf_adds(&sec, sec0);
	rc = milter_hdr_edit(&sec, &tmp, ins, del, name, idx, line,
	    line ? strlen(line) : 0);
	snprintf(out, outlen, "%s", sec.data ? sec.data : "");
	buf_free(&sec);
	buf_free(&tmp);
	return rc;
}

static void
test_hdr_edit(void **state)
{
	const char	*sec = "Received: one\n\tfolded\nX-Spam: yes\n"
	    "Subject: hi\nx-spam: again\n";
	char		 out[512];

	(void)state;
	/* change the second X-Spam (any case), folded fields are one */
	assert_int_equal(edit(sec, 0, 0, "X-Spam", 2, "X-Spam: no\n", out,
	    sizeof(out)), 1);
	assert_string_equal(out, "Received: one\n\tfolded\nX-Spam: yes\n"
	    "Subject: hi\nX-Spam: no\n");
	/* remove the first */
	assert_int_equal(edit(sec, 0, 1, "x-spam", 1, NULL, out,
	    sizeof(out)), 1);
	assert_string_equal(out, "Received: one\n\tfolded\nSubject: hi\n"
	    "x-spam: again\n");
	/* past the last one: added at the end; a removal does nothing */
	assert_int_equal(edit(sec, 0, 0, "X-Spam", 3, "X-Spam: 3\n", out,
	    sizeof(out)), 1);
	assert_string_equal(out + strlen(sec), "X-Spam: 3\n");
	assert_int_equal(edit(sec, 0, 1, "X-Spam", 3, NULL, out,
	    sizeof(out)), 0);
	assert_string_equal(out, sec);
	assert_int_equal(edit(sec, 0, 1, "X-Other", 1, NULL, out,
	    sizeof(out)), 0);
	/* a prefix of a name is not the name */
	assert_int_equal(edit(sec, 0, 1, "X-Spa", 1, NULL, out,
	    sizeof(out)), 0);
	/* index 0 of a change matches nothing: added at the end */
	assert_int_equal(edit(sec, 0, 0, "X-Spam", 0, "X-Spam: 0\n", out,
	    sizeof(out)), 1);
	assert_string_equal(out + strlen(sec), "X-Spam: 0\n");
	/* insert: before the index-th field, 0 first, past the end last */
	assert_int_equal(edit(sec, 1, 0, "X-New", 0, "X-New: a\n", out,
	    sizeof(out)), 1);
	assert_string_equal(out, "X-New: a\nReceived: one\n\tfolded\n"
	    "X-Spam: yes\nSubject: hi\nx-spam: again\n");
	assert_int_equal(edit(sec, 1, 0, "X-New", 1, "X-New: b\n", out,
	    sizeof(out)), 1);
	assert_string_equal(out, "Received: one\n\tfolded\nX-New: b\n"
	    "X-Spam: yes\nSubject: hi\nx-spam: again\n");
	assert_int_equal(edit(sec, 1, 0, "X-New", 99, "X-New: c\n", out,
	    sizeof(out)), 1);
	assert_string_equal(out + strlen(sec), "X-New: c\n");
	/* an empty section */
	assert_int_equal(edit("", 1, 0, "X-New", 3, "X-New: d\n", out,
	    sizeof(out)), 1);
	assert_string_equal(out, "X-New: d\n");
	/* over the cap: -1, the section unchanged */
	{
		struct buf	 s1, t1;
		buf_init(&s1, 32);
		buf_init(&t1, 32);
		buf_adds(&s1, "Subject: hi\n");
		assert_int_equal(milter_hdr_edit(&s1, &t1, 1, 0, "X", 0,
		    "X: 01234567890123456789\n", 24), -1);
		assert_string_equal(s1.data, "Subject: hi\n");
		buf_free(&s1);
		buf_free(&t1);
	}
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

/* load a config from text; 0 or -1 with err */
static int
load(const char *text, struct config *c, char *err, size_t errlen)
{
	FILE	*fp = fmemopen((void *)(uintptr_t)text, strlen(text), "r");

	assert_non_null(fp);
	return config_load_fp(c, fp, "t.conf", err, errlen);
}

static void
test_config(void **state)
{
	struct config	*c = malloc(sizeof(*c));
	char		 err[512], out[4096];
	FILE		*fp;
	size_t		 n;
	static const struct {
		const char	*line, *want;
	} bad[] = {
		{ "milter a unix:/run/a.sock\n", "t.conf:1: milter: unix: " },
		{ "milter a inet:localhost:1\n", "not inet:IP:PORT" },
		{ "milter a inet:127.0.0.1:0\n", "not inet:IP:PORT" },
		{ "milter a inet:127.0.0.1:70000\n", "not inet:IP:PORT" },
		{ "milter a inet:127.0.0.1\n", "not inet:IP:PORT" },
		{ "milter a\n", "NAME inet:HOST:PORT" },
		{ "milter a/b inet:127.0.0.1:1\n", "bad name" },
		{ "milter a inet:127.0.0.1:1 timeout\n", "NAME inet:HOST:PORT" },
		{ "milter a inet:127.0.0.1:1 timeout 2h\n", "timeout: 1s to 1h" },
		{ "milter a inet:127.0.0.1:1 on-failure x\n", "on-failure:" },
		{ "milter a inet:127.0.0.1:1 retries 3\n", "unknown option" },
		{ "milter a inet:127.0.0.1:1\nmilter a inet:127.0.0.1:2\n",
		    "t.conf:2: milter: a defined twice" },
	};

	(void)state;
	assert_non_null(c);
	assert_int_equal(load("hostname h.test\n", c, err, sizeof(err)), 0);
	assert_int_equal(c->nmilters, 0);
	assert_int_equal(load("milter rspamd inet:127.0.0.1:11332\n"
	    "milter av inet:[::1]:3310 timeout 2m on-failure accept\n"
	    "milter x inet:10.0.0.1:1 on-failure reject timeout 1s\n", c,
	    err, sizeof(err)), 0);
	assert_int_equal(c->nmilters, 3);
	assert_string_equal(c->milters[0].name, "rspamd");
	assert_string_equal(c->milters[0].host, "127.0.0.1");
	assert_string_equal(c->milters[0].port, "11332");
	assert_int_equal(c->milters[0].timeout, 10);
	assert_int_equal(c->milters[0].on_failure, MILTER_FAIL_TEMPFAIL);
	assert_string_equal(c->milters[1].host, "::1");
	assert_int_equal(c->milters[1].timeout, 120);
	assert_int_equal(c->milters[1].on_failure, MILTER_FAIL_ACCEPT);
	assert_int_equal(c->milters[2].on_failure, MILTER_FAIL_REJECT);
	assert_int_equal(c->milters[2].timeout, 1);
	fp = tmpfile();
	assert_non_null(fp);
	config_dump(c, fileno(fp));
	rewind(fp);
	n = fread(out, 1, sizeof(out) - 1, fp);
	out[n] = '\0';
	fclose(fp);
	assert_non_null(strstr(out, "milter rspamd inet:127.0.0.1:11332\n"
	    "milter av inet:[::1]:3310 timeout 2m on-failure accept\n"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load(bad[i].line, c, err, sizeof(err)), -1);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].line, err,
			    bad[i].want);
	}
	free(c);
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
		cmocka_unit_test(test_hdr_edit),
		cmocka_unit_test(test_hdr_split),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
