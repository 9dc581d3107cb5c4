/*
 * test_smtp_reply - the SMTP reply parser and EHLO keywords
 * (src/deliver/smtp_reply.c).
 *
 * Every well-formed case is fed one-shot and byte by byte; both must give
 * the same reply and consume the same bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"

#define S(lit)	lit, sizeof(lit) - 1

/* Feed in chunks of `chunk` bytes until the parser stops; bytes used. */
static size_t
feed(struct smtp_reply_parser *p, const char *in, size_t len, size_t chunk)
{
	size_t	 pos = 0, n, used;

	smtp_reply_init(p);
	while (pos < len && p->state == SMTP_R_MORE) {
		n = len - pos < chunk ? len - pos : chunk;
		used = smtp_reply_feed(p, in + pos, n);
		assert_true(used <= n);
		pos += used;
		if (used < n)
			break;
	}
	return pos;
}

/* One-shot and bytewise agree; returns the one-shot parser's result. */
static size_t
parse(struct smtp_reply_parser *p, const char *in, size_t len)
{
	struct smtp_reply_parser	 b;
	size_t				 used, used_b;

	used = feed(p, in, len, len ? len : 1);
	used_b = feed(&b, in, len, 1);
	assert_int_equal(p->state, b.state);
	assert_int_equal(p->err, b.err);
	if (p->state == SMTP_R_DONE) {
		assert_int_equal(used, used_b);
		assert_int_equal(p->reply.code, b.reply.code);
		assert_string_equal(p->reply.enh, b.reply.enh);
		assert_int_equal(p->reply.text.len, b.reply.text.len);
		assert_memory_equal(p->reply.text.data ? p->reply.text.data :
		    "", b.reply.text.data ? b.reply.text.data : "",
		    p->reply.text.len);
	}
	smtp_reply_free(&b);
	return used;
}

static const char *
text(const struct smtp_reply_parser *p)
{
	return p->reply.text.data ? p->reply.text.data : "";
}

static void
test_single_line(void **state)
{
	struct smtp_reply_parser	 p;

	(void)state;
	assert_int_equal(parse(&p, S("250 2.1.0 Ok\r\n")), 14);
	assert_int_equal(p.state, SMTP_R_DONE);
	assert_int_equal(p.reply.code, 250);
	assert_string_equal(p.reply.enh, "2.1.0");
	assert_string_equal(text(&p), "Ok");
	smtp_reply_free(&p);

	parse(&p, S("354 End data with <CR><LF>.<CR><LF>\r\n"));
	assert_int_equal(p.reply.code, 354);
	assert_string_equal(p.reply.enh, "");
	assert_string_equal(text(&p), "End data with <CR><LF>.<CR><LF>");
	smtp_reply_free(&p);

	/* no text at all, and a bare LF line end */
	parse(&p, S("250\n"));
	assert_int_equal(p.state, SMTP_R_DONE);
	assert_int_equal(p.reply.code, 250);
	assert_string_equal(text(&p), "");
	smtp_reply_free(&p);

	/* an enhanced code of another class is just text */
	parse(&p, S("250 5.1.1 odd\r\n"));
	assert_string_equal(p.reply.enh, "");
	assert_string_equal(text(&p), "5.1.1 odd");
	smtp_reply_free(&p);

	parse(&p, S("550 5.1.10 null MX\r\n"));
	assert_string_equal(p.reply.enh, "5.1.10");
	assert_string_equal(text(&p), "null MX");
	smtp_reply_free(&p);
}

static void
test_incomplete(void **state)
{
	struct smtp_reply_parser	 p;

	(void)state;
	assert_int_equal(parse(&p, S("250-first\r\n250 sec")), 18);
	assert_int_equal(p.state, SMTP_R_MORE);
	assert_int_equal(smtp_reply_feed(&p, S("ond\r\n")), 5);
	assert_int_equal(p.state, SMTP_R_DONE);
	assert_string_equal(text(&p), "first\nsecond");
	smtp_reply_free(&p);
}

/* The parser stops after one reply: the rest is the next reply's. */
static void
test_pipelined(void **state)
{
	struct smtp_reply_parser	 p;
	const char			 in[] = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	    "354 go\r\n";
	size_t				 used;

	(void)state;
	smtp_reply_init(&p);
	used = smtp_reply_feed(&p, in, sizeof(in) - 1);
	assert_int_equal(used, 14);
	smtp_reply_reset(&p);
	used += smtp_reply_feed(&p, in + used, sizeof(in) - 1 - used);
	assert_int_equal(used, 28);
	assert_string_equal(p.reply.enh, "2.1.5");
	smtp_reply_reset(&p);
	used += smtp_reply_feed(&p, in + used, sizeof(in) - 1 - used);
	assert_int_equal(used, sizeof(in) - 1);
	assert_int_equal(p.reply.code, 354);
	smtp_reply_free(&p);
}

static void
test_garbage(void **state)
{
	static const struct {
		const char		*in;
		size_t			 len;
		enum smtp_reply_err	 err;
	} cases[] = {
		{ S("hello\r\n"), SMTP_RE_SYNTAX },
		{ S("25\r\n"), SMTP_RE_SYNTAX },
		{ S("250x Ok\r\n"), SMTP_RE_SYNTAX },
		{ S("199 too low\r\n"), SMTP_RE_SYNTAX },
		{ S("600 too high\r\n"), SMTP_RE_SYNTAX },
		{ S("260 second digit\r\n"), SMTP_RE_SYNTAX },
		{ S("\r\n"), SMTP_RE_SYNTAX },
		{ S("250 a\0b\r\n"), SMTP_RE_SYNTAX },
		{ S("HTTP/1.1 400 Bad Request\r\n"), SMTP_RE_SYNTAX },
		{ S("250-a\r\n251 b\r\n"), SMTP_RE_MISMATCH },
		{ S("250-a\r\nxyz\r\n"), SMTP_RE_SYNTAX },
	};
	struct smtp_reply_parser	 p;
	size_t				 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse(&p, cases[i].in, cases[i].len);
		assert_int_equal(p.state, SMTP_R_ERROR);
		assert_int_equal(p.err, cases[i].err);
		/* a dead parser eats nothing more */
		assert_int_equal(smtp_reply_feed(&p, S("250 ok\r\n")), 0);
		smtp_reply_free(&p);
	}
}

/* A 10 MB line is refused at the cap, never buffered whole. */
static void
test_too_long(void **state)
{
	struct smtp_reply_parser	 p;
	size_t				 len = 10 << 20, used;
	char				*big;

	(void)state;
	assert_non_null(big = malloc(len));
	memset(big, 'x', len);
	memcpy(big, "250 ", 4);
	used = feed(&p, big, len, 65536);
	assert_int_equal(p.state, SMTP_R_ERROR);
	assert_int_equal(p.err, SMTP_RE_TOO_LONG);
	assert_true(used <= SMTP_REPLY_LINE_MAX);
	smtp_reply_free(&p);

	/* exactly at the cap (CRLF included) is fine, one more is not */
	big[SMTP_REPLY_LINE_MAX - 2] = '\r';
	big[SMTP_REPLY_LINE_MAX - 1] = '\n';
	parse(&p, big, SMTP_REPLY_LINE_MAX);
	assert_int_equal(p.state, SMTP_R_DONE);
	assert_int_equal(p.reply.text.len, SMTP_REPLY_LINE_MAX - 6);
	smtp_reply_free(&p);
	memset(big, 'x', SMTP_REPLY_LINE_MAX + 1);
	memcpy(big, "250 ", 4);
	big[SMTP_REPLY_LINE_MAX - 1] = '\r';
	big[SMTP_REPLY_LINE_MAX] = '\n';
	parse(&p, big, SMTP_REPLY_LINE_MAX + 1);
	assert_int_equal(p.err, SMTP_RE_TOO_LONG);
	smtp_reply_free(&p);
	free(big);
}

static void
test_too_many_lines(void **state)
{
	struct smtp_reply_parser	 p;
	char				 in[8 * (SMTP_REPLY_LINES_MAX + 1)];
	size_t				 n = 0, i;

	(void)state;
	for (i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "250-x\r\n");
	n += (size_t)snprintf(in + n, sizeof(in) - n, "250 x\r\n");
	parse(&p, in, n);
	assert_int_equal(p.state, SMTP_R_DONE);
	assert_int_equal(p.reply.nlines, SMTP_REPLY_LINES_MAX);
	smtp_reply_free(&p);
	n = 0;
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "250-x\r\n");
	n += (size_t)snprintf(in + n, sizeof(in) - n, "250 x\r\n");
	parse(&p, in, n);
	assert_int_equal(p.state, SMTP_R_ERROR);
	assert_int_equal(p.err, SMTP_RE_TOO_MANY);
	smtp_reply_free(&p);
}

static void
test_format(void **state)
{
	struct smtp_reply_parser	 p;
	char				 out[64];

	(void)state;
	parse(&p, S("550-5.1.1 no \x1b[31msuch\r\n550 5.1.1 user\tthere\r\n"));
	smtp_reply_format(&p.reply, out, sizeof(out));
	assert_string_equal(out, "550 5.1.1 no ?[31msuch user?there");
	smtp_reply_format(&p.reply, out, 8);
	assert_string_equal(out, "550 5.1");
	smtp_reply_free(&p);
	parse(&p, S("221\r\n"));
	smtp_reply_format(&p.reply, out, sizeof(out));
	assert_string_equal(out, "221");
	smtp_reply_free(&p);
}

static void
test_ehlo(void **state)
{
	struct smtp_reply_parser	 p;
	struct smtp_ext			 e;

	(void)state;
	parse(&p, S("250-mx.example.test greets you\r\n"
	    "250-PIPELINING\r\n250-SIZE 10240000\r\n250-starttls\r\n"
	    "250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH CRAM-MD5 login PLAIN\r\n"
	    "250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n"));
	smtp_ehlo_parse(&p.reply, &e);
	assert_int_equal(e.flags, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE |
	    SMTP_EXT_STARTTLS | SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 |
	    SMTP_EXT_AUTH | SMTP_EXT_CHUNKING | SMTP_EXT_ENHANCED |
	    SMTP_EXT_DSN);
	assert_int_equal(e.size, 10240000);
	assert_int_equal(e.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN |
	    SMTP_AUTH_OTHER);
	smtp_reply_free(&p);

	/* the greeting line is not a keyword; old AUTH=; bad SIZE */
	parse(&p, S("250-PIPELINING\r\n250-AUTH=LOGIN\r\n"
	    "250-SIZE 99999999999999999999999\r\n250-SIZEX\r\n250 X-FOO\r\n"));
	smtp_ehlo_parse(&p.reply, &e);
	assert_int_equal(e.flags, SMTP_EXT_AUTH | SMTP_EXT_SIZE);
	assert_int_equal(e.auth, SMTP_AUTH_LOGIN);
	assert_int_equal(e.size, 0);
	smtp_reply_free(&p);

	parse(&p, S("250 only.a.greeting\r\n"));
	smtp_ehlo_parse(&p.reply, &e);
	assert_int_equal(e.flags, 0);
	smtp_reply_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_too_many_lines),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_ehlo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
