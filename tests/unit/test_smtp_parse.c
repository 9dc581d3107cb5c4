/*
 * test_smtp_parse - SMTP command line parsers (src/smtpd/smtp_parse.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_parse.h"

static enum smtp_perr
cmd(const char *line, struct smtp_cmd *c)
{
	return smtp_parse_cmd(line, strlen(line), c);
}

static void
expect_cmd(const char *line, enum smtp_verb verb, const char *arg)
{
	struct smtp_cmd	 c;

	assert_int_equal(cmd(line, &c), SMTP_P_OK);
	assert_int_equal(c.verb, verb);
	assert_int_equal(c.arglen, strlen(arg));
	assert_memory_equal(c.arg, arg, c.arglen);
	/* arg always points inside the line (or at its end) */
	assert_true(c.arg >= line && c.arg + c.arglen <= line + strlen(line));
}

static enum smtp_perr
mail(const char *arg, struct smtp_mail_args *m)
{
	return smtp_parse_mail(arg, strlen(arg), m);
}

static enum smtp_perr
rcpt(const char *arg, int utf8, struct smtp_rcpt_args *r)
{
	return smtp_parse_rcpt(arg, strlen(arg), utf8, r);
}

static void
test_cmd_verbs(void **state)
{
	(void)state;
	expect_cmd("HELO x", SMTP_V_HELO, "x");
	expect_cmd("ehlo client.example", SMTP_V_EHLO, "client.example");
	expect_cmd("MAIL FROM:<a@b>", SMTP_V_MAIL, "FROM:<a@b>");
	expect_cmd("Rcpt TO:<a@b>", SMTP_V_RCPT, "TO:<a@b>");
	expect_cmd("DATA", SMTP_V_DATA, "");
	expect_cmd("BDAT 10 LAST", SMTP_V_BDAT, "10 LAST");
	expect_cmd("RSET", SMTP_V_RSET, "");
	expect_cmd("NOOP whatever", SMTP_V_NOOP, "whatever");
	expect_cmd("quit", SMTP_V_QUIT, "");
	expect_cmd("VRFY u", SMTP_V_VRFY, "u");
	expect_cmd("EXPN l", SMTP_V_EXPN, "l");
	expect_cmd("HELP", SMTP_V_HELP, "");
	expect_cmd("StartTLS", SMTP_V_STARTTLS, "");
	expect_cmd("AUTH PLAIN AGFAAGI=", SMTP_V_AUTH, "PLAIN AGFAAGI=");
	expect_cmd("FOO bar", SMTP_V_UNKNOWN, "bar");
	expect_cmd("MAILX", SMTP_V_UNKNOWN, "");
	expect_cmd("", SMTP_V_UNKNOWN, "");
}

static void
test_cmd_spaces(void **state)
{
	(void)state;
	/* Trailing spaces go, the single separator is the only one eaten. */
	expect_cmd("HELO x   ", SMTP_V_HELO, "x");
	expect_cmd("DATA ", SMTP_V_DATA, "");
	expect_cmd("QUIT    ", SMTP_V_QUIT, "");
	expect_cmd("HELO  x", SMTP_V_HELO, " x");
	expect_cmd("NOOP a b\t", SMTP_V_NOOP, "a b\t");
}

static void
test_cmd_errors(void **state)
{
	struct smtp_cmd	 c;

	(void)state;
	assert_int_equal(cmd("MAIL:FROM:<a@b>", &c), SMTP_P_SYNTAX);
	assert_int_equal(c.verb, SMTP_V_MAIL);	/* still reported */
	assert_int_equal(cmd("HELO\tx", &c), SMTP_P_SYNTAX);
	assert_int_equal(cmd("QUIT\r", &c), SMTP_P_SYNTAX);
	assert_int_equal(cmd("X-FOO", &c), SMTP_P_SYNTAX);
	assert_int_equal(c.verb, SMTP_V_UNKNOWN);
	/* No verb at all: unknown (500), not a syntax error. */
	assert_int_equal(cmd(" HELO x", &c), SMTP_P_OK);
	assert_int_equal(c.verb, SMTP_V_UNKNOWN);
	assert_int_equal(smtp_parse_cmd("HELO x\0y", 8, &c), SMTP_P_NUL);
	assert_int_equal(smtp_parse_cmd("\0", 1, &c), SMTP_P_NUL);
	assert_int_equal(smtp_parse_cmd("QUIT\0", 5, &c), SMTP_P_NUL);
	/* Only len bytes are looked at. */
	assert_int_equal(smtp_parse_cmd("QUIT\0", 4, &c), SMTP_P_OK);
	assert_int_equal(c.verb, SMTP_V_QUIT);
}

static void
test_mail_golden(void **state)
{
	struct smtp_mail_args	 m;

	(void)state;
	assert_int_equal(mail("FROM:<a@B.org>", &m), SMTP_P_OK);
	assert_string_equal(m.from.local, "a");
	assert_string_equal(m.from.domain, "b.org");
	assert_int_equal(m.size, 0);
	assert_int_equal(m.body, SMTP_BODY_7BIT);
	assert_int_equal(m.smtputf8, 0);
	assert_int_equal(m.addr_err, ADDR_OK);

	assert_int_equal(mail("from: <a@b>", &m), SMTP_P_OK);
	assert_int_equal(mail("FROM:<>", &m), SMTP_P_OK);
	assert_true(addr_is_null(&m.from));

	assert_int_equal(mail("FROM:<a@b> SIZE=12345 BODY=8BITMIME "
	    "SMTPUTF8 AUTH=<> RET=HDRS ENVID=QQ314159", &m), SMTP_P_OK);
	assert_int_equal(m.size, 12345);
	assert_int_equal(m.body, SMTP_BODY_8BITMIME);
	assert_int_equal(m.smtputf8, 1);

	assert_int_equal(mail("FROM:<a@b> size=0 body=7bit smtputf8", &m),
	    SMTP_P_OK);
	assert_int_equal(m.body, SMTP_BODY_7BIT);
	assert_int_equal(m.smtputf8, 1);
	/* Several spaces between parameters are tolerated. */
	assert_int_equal(mail("FROM:<a@b>  SIZE=1   BODY=7BIT", &m), SMTP_P_OK);
	assert_int_equal(m.size, 1);
}

static void
test_mail_size(void **state)
{
	struct smtp_mail_args	 m;

	(void)state;
	assert_int_equal(mail("FROM:<a@b> SIZE=18446744073709551615", &m),
	    SMTP_P_OK);
	assert_true(m.size == 18446744073709551615ULL);
	assert_int_equal(mail("FROM:<a@b> SIZE=18446744073709551616", &m),
	    SMTP_P_PARAM);
	assert_int_equal(mail("FROM:<a@b> SIZE=99999999999999999999999", &m),
	    SMTP_P_PARAM);
	assert_int_equal(mail("FROM:<a@b> SIZE=0000000000000000000000042", &m),
	    SMTP_P_OK);
	assert_int_equal(m.size, 42);
	assert_int_equal(mail("FROM:<a@b> SIZE=", &m), SMTP_P_PARAM);
	assert_int_equal(mail("FROM:<a@b> SIZE", &m), SMTP_P_PARAM);
	assert_int_equal(mail("FROM:<a@b> SIZE=-1", &m), SMTP_P_PARAM);
	assert_int_equal(mail("FROM:<a@b> SIZE=+1", &m), SMTP_P_PARAM);
	assert_int_equal(mail("FROM:<a@b> SIZE=1k", &m), SMTP_P_PARAM);
	assert_int_equal(mail("FROM:<a@b> SIZE=1 SIZE=1", &m), SMTP_P_PARAM);
}

static void
test_mail_params_bad(void **state)
{
	static const char *const bad[] = {
		"FROM:<a@b> BODY=BINARYMIME",
		"FROM:<a@b> BODY=8BIT",
		"FROM:<a@b> BODY=",
		"FROM:<a@b> BODY",
		"FROM:<a@b> BODY=7BIT BODY=7BIT",
		"FROM:<a@b> SMTPUTF8=yes",
		"FROM:<a@b> SMTPUTF8 SMTPUTF8",
		"FROM:<a@b> AUTH",
		"FROM:<a@b> RET",
		"FROM:<a@b> ENVID=",
		"FROM:<a@b> XFOO",
		"FROM:<a@b> XFOO=1",
		"FROM:<a@b> NOTIFY=NEVER",
		"FROM:<a@b> =1",
		"FROM:<a@b> -SIZE=1",
		"FROM:<a@b> SIZE=1=2",
		"FROM:<a@b> SIZE=1\t",
		"FROM:<a@b> S_ZE=1",
		"FROM:<a@b> AUTH=a\x01",
	};
	struct smtp_mail_args	 m;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mail(bad[i], &m) != SMTP_P_PARAM)
			fail_msg("not SMTP_P_PARAM: %s", bad[i]);
}

static void
test_mail_syntax(void **state)
{
	struct smtp_mail_args	 m;

	(void)state;
	assert_int_equal(mail("", &m), SMTP_P_SYNTAX);
	assert_int_equal(mail("FROM", &m), SMTP_P_SYNTAX);
	assert_int_equal(mail("FROM <a@b>", &m), SMTP_P_SYNTAX);
	assert_int_equal(mail("TO:<a@b>", &m), SMTP_P_SYNTAX);
	assert_int_equal(mail("FROM:<a@b>SIZE=1", &m), SMTP_P_SYNTAX);
	assert_int_equal(mail("FROM:<a@b>x", &m), SMTP_P_SYNTAX);
}

static void
test_mail_addr(void **state)
{
	struct smtp_mail_args	 m;
	char			 l[70], s[200];

	(void)state;
	assert_int_equal(mail("FROM:", &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_ESYNTAX);
	assert_int_equal(mail("FROM:a@b", &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_ESYNTAX);
	assert_int_equal(mail("FROM:  <a@b>", &m), SMTP_P_ADDR);
	assert_int_equal(mail("FROM:<a@b@c>", &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_ESYNTAX);
	assert_int_equal(mail("FROM:<@r1,@r2:a@b>", &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_EROUTE);
	assert_int_equal(mail("FROM:<Postmaster>", &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_ESYNTAX);
	memset(l, 'x', 65);
	l[65] = '\0';
	snprintf(s, sizeof(s), "FROM:<%s@b>", l);
	assert_int_equal(mail(s, &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_ETOOLONG);
	/* An address error is reported even when the params are bad too. */
	assert_int_equal(mail("FROM:<a@@b> XFOO", &m), SMTP_P_ADDR);
}

static void
test_mail_utf8(void **state)
{
	struct smtp_mail_args	 m;

	(void)state;
	assert_int_equal(mail("FROM:<j\xc3\xb6@b>", &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_EUTF8);
	assert_int_equal(mail("FROM:<j\xc3\xb6@b> SMTPUTF8", &m), SMTP_P_OK);
	assert_string_equal(m.from.local, "j\xc3\xb6");
	assert_int_equal(mail("FROM:<j\xc3\xb6@b> SIZE=1 SMTPUTF8 "
	    "BODY=8BITMIME", &m), SMTP_P_OK);
	assert_int_equal(mail("FROM:<j\xc3@b> SMTPUTF8", &m), SMTP_P_ADDR);
	assert_int_equal(m.addr_err, ADDR_EUTF8);
	/* A bad parameter is reported before the missing SMTPUTF8. */
	assert_int_equal(mail("FROM:<j\xc3\xb6@b> XFOO", &m), SMTP_P_PARAM);
	/* After a failed parse nothing half-parsed remains. */
	assert_int_equal(mail("FROM:<j\xc3\xb6@b>", &m), SMTP_P_ADDR);
	assert_true(addr_is_null(&m.from));
}

static void
test_rcpt(void **state)
{
	struct smtp_rcpt_args	 r;

	(void)state;
	assert_int_equal(rcpt("TO:<U@Example.org>", 0, &r), SMTP_P_OK);
	assert_string_equal(r.to.local, "U");
	assert_string_equal(r.to.domain, "example.org");
	assert_int_equal(r.addr_err, ADDR_OK);
	assert_int_equal(rcpt("to: <u@x>", 0, &r), SMTP_P_OK);
	assert_int_equal(rcpt("TO:<Postmaster>", 0, &r), SMTP_P_OK);
	assert_string_equal(r.to.local, "Postmaster");
	assert_string_equal(r.to.domain, "");
	assert_int_equal(rcpt("TO:<u@x> NOTIFY=SUCCESS,FAILURE "
	    "ORCPT=rfc822;u@x", 0, &r), SMTP_P_OK);
	assert_int_equal(rcpt("TO:<>", 0, &r), SMTP_P_ADDR);
	assert_int_equal(r.addr_err, ADDR_ENULL);
	assert_int_equal(rcpt("TO:<@a:u@x>", 0, &r), SMTP_P_ADDR);
	assert_int_equal(r.addr_err, ADDR_EROUTE);
	assert_int_equal(rcpt("TO:<\xc3\xbc@x>", 0, &r), SMTP_P_ADDR);
	assert_int_equal(r.addr_err, ADDR_EUTF8);
	assert_int_equal(rcpt("TO:<\xc3\xbc@x>", 1, &r), SMTP_P_OK);
	assert_int_equal(rcpt("", 0, &r), SMTP_P_SYNTAX);
	assert_int_equal(rcpt("FROM:<u@x>", 0, &r), SMTP_P_SYNTAX);
	assert_int_equal(rcpt("TO:<u@x>junk", 0, &r), SMTP_P_SYNTAX);
	assert_int_equal(rcpt("TO:<u@x> SIZE=1", 0, &r), SMTP_P_PARAM);
	assert_int_equal(rcpt("TO:<u@x> NOTIFY", 0, &r), SMTP_P_PARAM);
	assert_int_equal(rcpt("TO:<u@x> NOTIFY=NEVER NOTIFY=NEVER", 0, &r),
	    SMTP_P_PARAM);
	assert_int_equal(rcpt("TO:<u@x> ORCPT=a ORCPT=a", 0, &r),
	    SMTP_P_PARAM);
	assert_int_equal(rcpt("TO:<u@x> =x", 0, &r), SMTP_P_PARAM);
}

static void
test_bdat(void **state)
{
	struct smtp_bdat_args	 b;
	static const char *const bad[] = {
		"", " ", "LAST", "-1", "+1", "1x", "1 last x", "1  LAST",
		"1 LAS", "1 LASTT", "1 ", " 1", "1\tLAST",
		"18446744073709551616", "1 LAST ",
	};
	size_t			 i;

	(void)state;
	assert_int_equal(smtp_parse_bdat("0", 1, &b), SMTP_P_OK);
	assert_int_equal(b.size, 0);
	assert_int_equal(b.last, 0);
	assert_int_equal(smtp_parse_bdat("1048576 LAST", 12, &b), SMTP_P_OK);
	assert_int_equal(b.size, 1048576);
	assert_int_equal(b.last, 1);
	assert_int_equal(smtp_parse_bdat("7 last", 6, &b), SMTP_P_OK);
	assert_int_equal(b.last, 1);
	assert_int_equal(smtp_parse_bdat("18446744073709551615", 20, &b),
	    SMTP_P_OK);
	assert_true(b.size == 18446744073709551615ULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (smtp_parse_bdat(bad[i], strlen(bad[i]), &b) !=
		    SMTP_P_SYNTAX)
			fail_msg("not SMTP_P_SYNTAX: '%s'", bad[i]);
}

static void
test_helo(void **state)
{
	char	 h[300];

	(void)state;
	assert_int_equal(smtp_parse_helo("mx.example.org", 14), SMTP_P_OK);
	assert_int_equal(smtp_parse_helo("[192.0.2.1]", 11), SMTP_P_OK);
	assert_int_equal(smtp_parse_helo("x", 1), SMTP_P_OK);
	assert_int_equal(smtp_parse_helo("b\xc3\xbc" "cher.de", 9), SMTP_P_OK);
	assert_int_equal(smtp_parse_helo("", 0), SMTP_P_SYNTAX);
	assert_int_equal(smtp_parse_helo("a b", 3), SMTP_P_SYNTAX);
	assert_int_equal(smtp_parse_helo("a\tb", 3), SMTP_P_SYNTAX);
	assert_int_equal(smtp_parse_helo("a\rb", 3), SMTP_P_SYNTAX);
	assert_int_equal(smtp_parse_helo("ab\x7f", 3), SMTP_P_SYNTAX);
	assert_int_equal(smtp_parse_helo("a\0b", 3), SMTP_P_SYNTAX);
	assert_int_equal(smtp_parse_helo("\xc3(", 2), SMTP_P_SYNTAX);
	assert_int_equal(smtp_parse_helo("\xc3\xbc\x01", 3), SMTP_P_SYNTAX);
	memset(h, 'h', sizeof(h));
	assert_int_equal(smtp_parse_helo(h, 255), SMTP_P_OK);
	assert_int_equal(smtp_parse_helo(h, 256), SMTP_P_SYNTAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_verbs),
		cmocka_unit_test(test_cmd_spaces),
		cmocka_unit_test(test_cmd_errors),
		cmocka_unit_test(test_mail_golden),
		cmocka_unit_test(test_mail_size),
		cmocka_unit_test(test_mail_params_bad),
		cmocka_unit_test(test_mail_syntax),
		cmocka_unit_test(test_mail_addr),
		cmocka_unit_test(test_mail_utf8),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_helo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
