/*
 * test_addr - RFC 5321 path and mailbox parsing (src/common/addr.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "addr.h"

/* Parse s as a path with flags; on success also check *used. */
static enum addr_err
path(const char *s, int flags, struct mailaddr *a)
{
	size_t		 used = 12345;
	enum addr_err	 e;

	e = addr_parse_path(s, strlen(s), flags, a, &used);
	if (e == ADDR_OK)
		assert_int_equal(used, strchr(s, '>') ?
		    (size_t)(strrchr(s, '>') - s) + 1 : strcspn(s, " "));
	else
		assert_true(addr_is_null(a));	/* never half-filled */
	return e;
}

static void
expect_ok(const char *s, int flags, const char *local, const char *domain)
{
	struct mailaddr	 a;

	assert_int_equal(path(s, flags, &a), ADDR_OK);
	assert_string_equal(a.local, local);
	assert_string_equal(a.domain, domain);
}

static void
expect_err(const char *s, int flags, enum addr_err want)
{
	struct mailaddr	 a;

	assert_int_equal(path(s, flags, &a), want);
}

/* A string of n copies of c. */
static char *
rep(char *dst, char c, size_t n)
{
	memset(dst, c, n);
	dst[n] = '\0';
	return dst;
}

/* A domain of exactly n octets: "aaa...a.bb" style labels of <= 63. */
static char *
domain_of(char *dst, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		dst[i] = (i % 50 == 49 && i + 1 < n) ? '.' : 'd';
	dst[n] = '\0';
	return dst;
}

static void
test_golden(void **state)
{
	(void)state;
	expect_ok("<user@example.com>", 0, "user", "example.com");
	expect_ok("<User.Name+tag@Example.COM>", 0, "User.Name+tag",
	    "example.com");
	expect_ok("<!#$%&'*+-/=?^_`{|}~@x.y>", 0, "!#$%&'*+-/=?^_`{|}~", "x.y");
	expect_ok("<a@b>", 0, "a", "b");
	expect_ok("<a@1.2.3.4>", 0, "a", "1.2.3.4");	/* digit labels */
	expect_ok("<a@x-y.z0>", 0, "a", "x-y.z0");
	expect_ok("<\"john doe\"@x.org>", 0, "\"john doe\"", "x.org");
	expect_ok("<\"a\\\"b\\\\c\"@x.org>", 0, "\"a\\\"b\\\\c\"", "x.org");
	expect_ok("<\"a>b@c\"@x.org>", 0, "\"a>b@c\"", "x.org");
	expect_ok("<\"\"@x.org>", 0, "\"\"", "x.org");
	expect_ok("<a@[192.0.2.1]>", 0, "a", "[192.0.2.1]");
	expect_ok("<a@[IPv6:2001:db8::1]>", 0, "a", "[IPv6:2001:db8::1]");
	expect_ok("<a@[ipv6:::1]>", 0, "a", "[ipv6:::1]");
	expect_ok("<a@[IPv6:::ffff:192.0.2.1]>", 0, "a",
	    "[IPv6:::ffff:192.0.2.1]");
	/* The path ends at '>': what follows belongs to the caller. */
	expect_ok("<a@b> SIZE=10", 0, "a", "b");
}

static void
test_null_and_postmaster(void **state)
{
	struct mailaddr	 a;
	size_t		 used = 0;

	(void)state;
	assert_int_equal(addr_parse_path("<>", 2, ADDR_F_NULL_OK, &a, &used),
	    ADDR_OK);
	assert_int_equal(used, 2);
	assert_true(addr_is_null(&a));
	expect_err("<>", 0, ADDR_ENULL);
	expect_err("<>", ADDR_F_POSTMASTER, ADDR_ENULL);
	expect_ok("<Postmaster>", ADDR_F_POSTMASTER, "Postmaster", "");
	expect_ok("<POSTMASTER>", ADDR_F_POSTMASTER, "POSTMASTER", "");
	expect_ok("<postmaster>", ADDR_F_POSTMASTER, "postmaster", "");
	expect_err("<Postmaster>", 0, ADDR_ESYNTAX);
	expect_err("<\"Postmaster\">", ADDR_F_POSTMASTER, ADDR_ESYNTAX);
	expect_err("<postmasters>", ADDR_F_POSTMASTER, ADDR_ESYNTAX);
	expect_err("<user>", ADDR_F_POSTMASTER, ADDR_ESYNTAX);
	expect_ok("<postmaster@x.org>", 0, "postmaster", "x.org");
	assert_false(addr_is_null(&(struct mailaddr){ "p", "" }));
}

static void
test_source_route(void **state)
{
	(void)state;
	expect_err("<@a,@b:x@y>", 0, ADDR_EROUTE);
	expect_err("<@a:x@y>", ADDR_F_NULL_OK, ADDR_EROUTE);
	expect_err("<@a.example,@[1.2.3.4]:x@y>", 0, ADDR_EROUTE);
	/* Broken routes are plain syntax errors. */
	expect_err("<@a,b:x@y>", 0, ADDR_ESYNTAX);
	expect_err("<@a:x>", 0, ADDR_ESYNTAX);
	expect_err("<@a:x@y", 0, ADDR_ESYNTAX);
	expect_err("<@>", 0, ADDR_ESYNTAX);
	expect_err("<@a>", 0, ADDR_ESYNTAX);
	expect_err("<@a,@b:x@y@z>", 0, ADDR_ESYNTAX);
}

static void
test_syntax_errors(void **state)
{
	static const char *const bad[] = {
		"", "<", ">", "a@b", "<a@b", "a@b>", "<a@b@c>", "@b>",
		"<a@>", "<@>", "<a>", "<.a@b>", "<a.@b>", "<a..b@b>",
		"<a@b.>", "<a@.b>", "<a@b..c>", "<a@-b>", "<a@b->",
		"<a@b-.c>", "<a@b_c>", "<a b@c>", "<a@b c>",
		"<\"a@b>", "<\"a\"b@c>", "<\"a\\\x01\"@b>", "<\"a\tb\"@c>",
		"<a@[1.2.3]>", "<a@[1.2.3.256]>", "<a@[IPv6:1.2.3.4]>",
		"<a@[IPv6:]>", "<a@[]>", "<a@[1.2.3.4>", "<a@[::1]>",
		"<a@[tag:foo]>", "<a@[1.2.3.4]x>", "<a@[01.2.3.4]>",
		"<a\x01@b>", "<a@b\x7f>", "< a@b>", "<a@b >", "<<a@b>>",
		"<a@b,c>", "<a@b:c>", "<(comment)a@b>", "<a\\b@c>",
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_err(bad[i], ADDR_F_NULL_OK | ADDR_F_POSTMASTER |
		    ADDR_F_UTF8, ADDR_ESYNTAX);
}

static void
test_embedded_nul(void **state)
{
	struct mailaddr	 a;
	size_t		 used;

	(void)state;
	assert_int_equal(addr_parse_path("<a\0b@c>", 7, 0, &a, &used),
	    ADDR_ESYNTAX);
	assert_int_equal(addr_parse_path("<a@c\0>", 6, 0, &a, &used),
	    ADDR_ESYNTAX);
	assert_int_equal(addr_parse_path("<\"a\0\"@c>", 8, 0, &a, &used),
	    ADDR_ESYNTAX);
	assert_int_equal(addr_parse("a@b\0", 4, 0, &a), ADDR_ESYNTAX);
	/* Length-bounded: the bytes after len are never read. */
	assert_int_equal(addr_parse_path("<a@b>", 4, 0, &a, &used),
	    ADDR_ESYNTAX);
	assert_int_equal(addr_parse_path("<", 1, ADDR_F_NULL_OK, &a, &used),
	    ADDR_ESYNTAX);
}

static void
test_local_length(void **state)
{
	char	 l[80], s[200];

	(void)state;
	snprintf(s, sizeof(s), "<%s@x.org>", rep(l, 'a', 64));
	expect_ok(s, 0, l, "x.org");
	snprintf(s, sizeof(s), "<%s@x.org>", rep(l, 'a', 65));
	expect_err(s, 0, ADDR_ETOOLONG);
	/* Quoted: the quotes count, as written. */
	l[0] = '"';
	memset(l + 1, 'q', 62);
	l[63] = '"';
	l[64] = '\0';
	snprintf(s, sizeof(s), "<%s@x.org>", l);
	expect_ok(s, 0, l, "x.org");
	snprintf(s, sizeof(s), "<\"%s\"@x.org>", rep(l, 'q', 63));
	expect_err(s, 0, ADDR_ETOOLONG);
}

static void
test_path_length(void **state)
{
	char	 d[300], s[400];

	(void)state;
	/* "<a@" + 252 + ">" = 256 */
	snprintf(s, sizeof(s), "<a@%s>", domain_of(d, 252));
	assert_int_equal(strlen(s), 256);
	expect_ok(s, 0, "a", d);
	snprintf(s, sizeof(s), "<a@%s>", domain_of(d, 253));
	assert_int_equal(strlen(s), 257);
	expect_err(s, 0, ADDR_ETOOLONG);
	/* Bare (no brackets) is held to the same 256 with brackets. */
	snprintf(s, sizeof(s), "a@%s", domain_of(d, 252));
	expect_ok(s, ADDR_F_NO_BRACKETS, "a", d);
	snprintf(s, sizeof(s), "a@%s", domain_of(d, 253));
	expect_err(s, ADDR_F_NO_BRACKETS, ADDR_ETOOLONG);
	/* A syntax error wins over the length. */
	snprintf(s, sizeof(s), "<a@%s.>", domain_of(d, 290));
	expect_err(s, 0, ADDR_ESYNTAX);
}

static void
test_domain_length(void **state)
{
	struct mailaddr	 a;
	char		 d[300], s[400];

	(void)state;
	/* Only a bare mailbox can reach the domain limit (path is 256). */
	snprintf(s, sizeof(s), "a@%s", domain_of(d, 255));
	assert_int_equal(addr_parse(s, strlen(s), 0, &a), ADDR_OK);
	assert_string_equal(a.domain, d);
	snprintf(s, sizeof(s), "a@%s", domain_of(d, 256));
	assert_int_equal(addr_parse(s, strlen(s), 0, &a), ADDR_ETOOLONG);
	assert_true(addr_is_null(&a));
}

static void
test_label_length(void **state)
{
	char	 l[80], s[300], want[200];

	(void)state;
	snprintf(want, sizeof(want), "%s.org", rep(l, 'l', 63));
	snprintf(s, sizeof(s), "<a@%s>", want);
	expect_ok(s, 0, "a", want);
	snprintf(s, sizeof(s), "<a@%s.org>", rep(l, 'l', 64));
	expect_err(s, 0, ADDR_ETOOLONG);
}

static void
test_utf8(void **state)
{
	(void)state;
	expect_err("<j\xc3\xb6rg@x.org>", 0, ADDR_EUTF8);
	expect_ok("<j\xc3\xb6rg@x.org>", ADDR_F_UTF8, "j\xc3\xb6rg", "x.org");
	expect_ok("<a@b\xc3\xbc" "CHER.de>", ADDR_F_UTF8, "a",
	    "b\xc3\xbc" "cher.de");
	expect_ok("<\"\xe2\x82\xac x\"@x.org>", ADDR_F_UTF8,
	    "\"\xe2\x82\xac x\"", "x.org");
	expect_ok("<\xf0\x9f\x93\xa7@x.org>", ADDR_F_UTF8, "\xf0\x9f\x93\xa7",
	    "x.org");
	expect_err("<a@b\xc3\xbc.de>", 0, ADDR_EUTF8);
	/* Invalid UTF-8 even with SMTPUTF8. */
	expect_err("<\xc3@x.org>", ADDR_F_UTF8, ADDR_EUTF8);
	expect_err("<\xc0\xaf@x.org>", ADDR_F_UTF8, ADDR_EUTF8); /* overlong */
	expect_err("<\xe0\x80\xaf@x.org>", ADDR_F_UTF8, ADDR_EUTF8);
	expect_err("<\xed\xa0\x80@x.org>", ADDR_F_UTF8, ADDR_EUTF8); /* D800 */
	expect_err("<\xf4\x90\x80\x80@x.org>", ADDR_F_UTF8, ADDR_EUTF8);
	expect_err("<\xff@x.org>", ADDR_F_UTF8, ADDR_EUTF8);
	expect_err("<\x80@x.org>", ADDR_F_UTF8, ADDR_EUTF8);
	expect_err("<a@x.org\xc3>", ADDR_F_UTF8, ADDR_EUTF8);
	/* 8-bit is never allowed inside an address literal. */
	expect_err("<a@[1.2.3.\xc3\xbc]>", ADDR_F_UTF8, ADDR_ESYNTAX);
	assert_true(addr_utf8_valid("", 0));
	assert_true(addr_utf8_valid("a\xc3\xb6\xe2\x82\xac\xf0\x9f\x93\xa7",
	    10));
	assert_false(addr_utf8_valid("\xe2\x82", 2));
	assert_false(addr_utf8_valid("\xf5\x80\x80\x80", 4));
}

static void
test_no_brackets(void **state)
{
	struct mailaddr	 a;
	size_t		 used = 0;

	(void)state;
	assert_int_equal(addr_parse_path("u@x.org SIZE=1", 14,
	    ADDR_F_NO_BRACKETS, &a, &used), ADDR_OK);
	assert_int_equal(used, 7);
	assert_string_equal(a.local, "u");
	expect_ok("<u@x.org>", ADDR_F_NO_BRACKETS, "u", "x.org");
	expect_err("u@x.org", 0, ADDR_ESYNTAX);
	expect_err("u@x.org>", ADDR_F_NO_BRACKETS, ADDR_ESYNTAX);
	expect_err(" u@x.org", ADDR_F_NO_BRACKETS, ADDR_ESYNTAX);
	expect_ok("postmaster", ADDR_F_NO_BRACKETS | ADDR_F_POSTMASTER,
	    "postmaster", "");
}

static void
test_addr_parse(void **state)
{
	struct mailaddr	 a;

	(void)state;
	assert_int_equal(addr_parse("A@B.C", 5, 0, &a), ADDR_OK);
	assert_string_equal(a.local, "A");
	assert_string_equal(a.domain, "b.c");
	assert_int_equal(addr_parse("<a@b>", 5, 0, &a), ADDR_ESYNTAX);
	assert_int_equal(addr_parse("a@b ", 4, 0, &a), ADDR_ESYNTAX);
	assert_int_equal(addr_parse("", 0, 0, &a), ADDR_ENULL);
	assert_int_equal(addr_parse("", 0, ADDR_F_NULL_OK, &a), ADDR_OK);
	assert_true(addr_is_null(&a));
	assert_int_equal(addr_parse("postmaster", 10, 0, &a), ADDR_ESYNTAX);
	assert_int_equal(addr_parse("postmaster", 10, ADDR_F_POSTMASTER, &a),
	    ADDR_OK);
	assert_int_equal(addr_parse("@a:b@c", 6, 0, &a), ADDR_ESYNTAX);
}

static void
test_format(void **state)
{
	struct mailaddr	 a;
	char		 out[ADDR_STR_MAX + 1], small[6];

	(void)state;
	assert_int_equal(addr_parse("Us.er@Ex.ORG", 12, 0, &a), ADDR_OK);
	assert_int_equal(addr_format(&a, out, sizeof(out)), 12);
	assert_string_equal(out, "Us.er@ex.org");
	/* snprintf-like: full length returned, truncated output ended. */
	assert_int_equal(addr_format(&a, small, sizeof(small)), 12);
	assert_string_equal(small, "Us.er");
	assert_int_equal(addr_format(&a, small, 0), 12);
	memset(&a, 0, sizeof(a));
	assert_int_equal(addr_format(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(addr_parse("postmaster", 10, ADDR_F_POSTMASTER, &a),
	    ADDR_OK);
	assert_int_equal(addr_format(&a, out, sizeof(out)), 10);
	assert_string_equal(out, "postmaster");
}

static void
test_strerror(void **state)
{
	(void)state;
	assert_string_equal(addr_strerror(ADDR_EROUTE),
	    "source routes are not accepted");
	assert_non_null(strstr(addr_strerror(ADDR_ETOOLONG), "64"));
	assert_non_null(strstr(addr_strerror(ADDR_EUTF8), "SMTPUTF8"));
	assert_non_null(strstr(addr_strerror(ADDR_ENULL), "<>"));
	assert_non_null(strstr(addr_strerror(ADDR_ESYNTAX), "syntax"));
	assert_non_null(strstr(addr_strerror((enum addr_err)99), "unknown"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_null_and_postmaster),
		cmocka_unit_test(test_source_route),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_local_length),
		cmocka_unit_test(test_path_length),
		cmocka_unit_test(test_domain_length),
		cmocka_unit_test(test_label_length),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_no_brackets),
		cmocka_unit_test(test_addr_parse),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
