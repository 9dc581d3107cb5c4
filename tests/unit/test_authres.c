/* authres: whose Authentication-Results field is it, and writing ours
   so that no value from the message can break it */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authres.h"

#define ID	"mx.example.org"
#define X16	"xxxxxxxxxxxxxxxx"
#define X64	X16 X16 X16 X16

static int
ours(const char *v)
{
	return authres_is_ours(v, strlen(v), ID);
}

static void
test_is_ours(void **state)
{
	(void)state;
	assert_true(ours("mx.example.org; spf=pass smtp.mailfrom=a@b.c"));
	assert_true(ours(" MX.Example.ORG; none"));
	assert_true(ours("mx.example.org;"));
	/* comments, nested, with quoted-pairs, before and after the id */
	assert_true(ours(" (from (the) edge \\) ) mx.example.org (ours\\()"
	    " ; dkim=pass"));
	/* folded */
	assert_true(ours("\r\n\tmx.example.org\r\n ;\r\n\tspf=pass"));
	assert_true(ours("\n mx.example.org\n\t; none"));
	/* a version after the id */
	assert_true(ours("mx.example.org 1; spf=pass"));
	assert_true(ours("mx.example.org (v) 1 (one); none"));
	/* a quoted id */
	assert_true(ours("\"mx.example.org\"; none"));
	assert_true(ours("\"mx.exa\\mple.org\" 1; none"));
	/* a trailing dot names the same host: still ours, renamed */
	assert_true(ours("mx.example.org.; spf=pass"));
	assert_true(ours("\"MX.example.org.\"; none"));
	assert_false(ours("mx.example.org..; none"));
	assert_false(ours("x.example.org.; none"));
	assert_true(authres_is_ours(".; none", 7, "."));	/* fuzz */
}

static void
test_not_ours(void **state)
{
	char	 longid[400];

	(void)state;
	/* garbage and empty */
	assert_false(ours(""));
	assert_false(ours("   "));
	assert_false(ours(";"));
	assert_false(ours("; mx.example.org; none"));
	assert_false(ours("mx.example.org"));		/* no ';' */
	assert_false(ours("mx.example.org none"));
	assert_false(ours("mx.example.org 1x; none"));
	assert_false(ours("mx.example.org 1 2; none"));
	assert_false(ours("mx.example.org, evil; none"));
	assert_false(ours("mx.example.org@evil; none"));
	assert_false(ours("(unterminated mx.example.org; none"));
	assert_false(ours("mx.example.org (open; none"));
	assert_false(ours("mx.example.org (\\"));
	assert_false(ours("\"mx.example.org; none"));
	assert_false(ours("\"mx.example.org\\"));
	assert_false(ours("\x01mx.example.org; none"));
	assert_false(ours("\"mx.example.org\x01\"; none"));
	assert_false(authres_is_ours("\"mx.example.org\\\0\"; none", 22,
	    ID));
	/* other ids, and prefixes and suffixes of ours */
	assert_false(ours("other.example.org; none"));
	assert_false(ours("mx.example; none"));
	assert_false(ours("mx.example.or; none"));
	assert_false(ours("mx.example.org.evil; none"));
	assert_false(ours("mx.example.orgx; none"));
	assert_false(ours("example.org; none"));
	assert_false(ours("\"mx.example.org \"; none"));
	/* the length is obeyed: no ';' within it */
	assert_false(authres_is_ours("mx.example.org; none", 14, ID));
	assert_true(authres_is_ours("mx.example.org; none", 15, ID));
	/* NUL inside */
	assert_false(authres_is_ours("mx.example.org\0; none", 21, ID));
	/* no id of ours */
	assert_false(authres_is_ours("mx.example.org; none", 20, ""));
	assert_false(authres_is_ours("mx.example.org; none", 20, NULL));
	assert_false(authres_is_ours(NULL, 0, ID));
	/* an id too long to be anyone's */
	memset(longid, 'a', sizeof(longid) - 8);
	memcpy(longid + sizeof(longid) - 8, "; none", 7);
	assert_false(authres_is_ours(longid, strlen(longid), longid));
}

/* the field is one header field: the first line named, every other one
   starting with a TAB, no CR, LF at the end, no line over 78 octets */
static void
check_field(const struct buf *b, int longok)
{
	size_t	 col = 0;

	assert_true(b->len > 24);
	assert_memory_equal(b->data, "Authentication-Results: ", 24);
	assert_int_equal(b->data[b->len - 1], '\n');
	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];

		assert_true(c != '\r' && c != '\0' && c < 0x7f);
		if (c == '\n') {
			if (i + 1 < b->len)
				assert_int_equal(b->data[i + 1], '\t');
			col = 0;
			continue;
		}
		col += c == '\t' ? 8 : 1;
		if (!longok)
			assert_true(col <= 78);
	}
}

static void
format_is(const char *id, const struct authres_entry *e, size_t n,
    const char *want)
{
	struct buf	 b;

	buf_init(&b, 1 << 16);
	assert_int_equal(authres_format(&b, id, e, n), 0);
	check_field(&b, 0);
	assert_string_equal(b.data, want);
	/* and we would recognise it as ours */
	assert_true(authres_is_ours(b.data + 23, b.len - 23, id));
	buf_free(&b);
}

static void
test_format(void **state)
{
	struct authres_entry	 e[3] = {
		{ "spf", "pass", NULL,
		    { { "smtp.mailfrom", "user+tag@example.com" } }, 1 },
		{ "dkim", "pass", NULL, { { "header.d", "example.com" },
		    { "header.s", "sel-2024" }, { "header.b", "abcdEFGH" } },
		    3 },
		{ "dmarc", "pass", "aligned DKIM example.com",
		    { { "header.from", "example.com" },
		    { "policy.dmarc", "reject" } }, 2 },
	};

	(void)state;
	format_is(ID, NULL, 0, "Authentication-Results: mx.example.org; none\n");
	format_is(ID, e, 3, "Authentication-Results: mx.example.org;\n"
	    "\tspf=pass smtp.mailfrom=user+tag@example.com;\n"
	    "\tdkim=pass header.d=example.com header.s=sel-2024 "
	    "header.b=abcdEFGH;\n"
	    "\tdmarc=pass (aligned DKIM example.com) header.from=example.com"
	    "\n\tpolicy.dmarc=reject\n");
	e[0].nprops = 0;
	e[1].nprops = 0;
	format_is(ID, e, 2, "Authentication-Results: mx.example.org;\n"
	    "\tspf=pass;\n\tdkim=pass\n");
	e[0].comment = "";	/* empty after cleaning: left out */
	e[1].comment = "()\\";
	format_is(ID, e, 2, "Authentication-Results: mx.example.org;\n"
	    "\tspf=pass;\n\tdkim=pass\n");
	/* an id that is not a token is quoted */
	format_is("mx example\"org", NULL, 0,
	    "Authentication-Results: \"mx example\\\"org\"; none\n");
}

static void
value_is(const char *v, const char *want)
{
	struct authres_entry	 e = { "dmarc", "fail", NULL,
	    { { "header.from", v } }, 1 };
	struct buf		 b;
	const char		*p;

	buf_init(&b, 1 << 16);
	assert_int_equal(authres_format(&b, ID, &e, 1), 0);
	check_field(&b, 1);
	p = strstr(b.data, "header.from=");
	assert_non_null(p);
	p += strlen("header.from=");
	if (strlen(p) != strlen(want) + 1 || memcmp(p, want, strlen(want)))
		fail_msg("got %s want %s", p, want);
	buf_free(&b);
}

static void
test_format_values(void **state)
{
	char	 big[258], want[300];

	(void)state;
	value_is("example.com", "example.com");
	value_is("a_b-c.d+e", "a_b-c.d+e");
	value_is("@example.com", "@example.com");
	value_is("first.last@example.com", "first.last@example.com");
	/* anything else is a quoted string */
	value_is("", "\"\"");
	value_is("John Doe", "\"John Doe\"");
	value_is("a;b", "\"a;b\"");
	value_is("a=b", "\"a=b\"");
	value_is("a(b)", "\"a(b)\"");
	value_is("say \"hi\"", "\"say \\\"hi\\\"\"");
	value_is("back\\slash", "\"back\\\\slash\"");
	value_is("a@", "\"a@\"");
	value_is("a@b@c", "\"a@b@c\"");
	value_is("a..b@example.com", "\"a..b@example.com\"");
	value_is(".a@example.com", "\".a@example.com\"");
	value_is("a@example.com.", "\"a@example.com.\"");
	value_is("a@exa_mple", "\"a@exa_mple\"");
	/* controls and non-ASCII are dropped */
	value_is("ex\xc3\xa4mple.com", "\"exmple.com\"");
	value_is("a\tb\x7f" "c", "\"abc\"");
	/* a hostile From: never ends the field or adds a line */
	value_is("evil.com\r\nX-Injected: yes; dkim=pass",
	    "\"evil.comX-Injected: yes; dkim=pass\"");
	value_is("\"\r\n\r\nbody", "\"\\\"body\"");
	value_is("x\n\tdkim=pass", "\"xdkim=pass\"");
	/* a value is cut after 256 octets */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[0] = '"';
	value_is(big + 1, big + 1);		/* 256: bare */
	memcpy(want, "\"\\\"", 3);
	memset(want + 3, 'a', 255);
	memcpy(want + 258, "...\"", 5);
	value_is(big, want);			/* 257: cut */
}

static void
test_format_comment(void **state)
{
	struct authres_entry	 e = { "dmarc", "fail",
	    "x) (y\\ z\r\nReceived: b\t\t c", { { 0 } }, 0 };
	struct buf		 b;
	char			 word[151];

	(void)state;
	format_is(ID, &e, 1, "Authentication-Results: mx.example.org;\n"
	    "\tdmarc=fail (x y z Received: b c)\n");
	/* a long word is cut every 64 octets */
	memset(word, 'x', 150);
	word[150] = '\0';
	e.comment = word;
	format_is(ID, &e, 1, "Authentication-Results: mx.example.org;\n"
	    "\tdmarc=fail\n\t(" X64 "\n\t" X64 "\n\txxxxxxxxxxxxxxxxxxxxxx)\n");
	e.comment = " \xc3\xa4ligned\x01 \x7f (DKIM) ";
	format_is(ID, &e, 1, "Authentication-Results: mx.example.org;\n"
	    "\tdmarc=fail (ligned DKIM)\n");
	/* long comments fold between words, a long value is never split */
	e.comment = "one two three four five six seven eight nine ten eleven "
	    "twelve thirteen fourteen fifteen sixteen seventeen eighteen";
	e.props[0].name = "header.from";
	e.props[0].value = "a-very-long-subdomain-name.of-an-even-longer-"
	    "organizational-domain.example";
	e.nprops = 1;
	buf_init(&b, 1 << 16);
	assert_int_equal(authres_format(&b, ID, &e, 1), 0);
	check_field(&b, 1);
	assert_string_equal(b.data, "Authentication-Results: mx.example.org;\n"
	    "\tdmarc=fail (one two three four five six seven eight nine ten "
	    "eleven\n"
	    "\ttwelve thirteen fourteen fifteen sixteen seventeen eighteen)\n"
	    "\theader.from=a-very-long-subdomain-name.of-an-even-longer-"
	    "organizational-domain.example\n");
	buf_free(&b);
}

static void
test_format_errors(void **state)
{
	struct authres_entry	 e = { "spf", "pass", "a comment",
	    { { "smtp.mailfrom", "example.com" } }, 1 };
	struct buf		 b;

	(void)state;
	buf_init(&b, 1 << 16);
	buf_adds(&b, "X: y\n");
	/* the caller's bugs: nothing is appended */
	e.method = "sp f";
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	e.method = "spf";
	e.result = "pass;";
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	e.result = "pass";
	e.props[0].name = "mailfrom";
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	e.props[0].name = "smtp.mail from";
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	e.props[0].name = "smtp.";
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	e.props[0].name = "smtp.mailfrom";
	e.props[0].value = NULL;
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	e.props[0].value = "example.com";
	e.nprops = 5;
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	e.nprops = 1;
	assert_int_equal(authres_format(&b, "", &e, 1), -1);
	assert_int_equal(authres_format(&b, NULL, &e, 1), -1);
	assert_string_equal(b.data, "X: y\n");
	/* appended after what is there */
	assert_int_equal(authres_format(&b, ID, &e, 1), 0);
	assert_string_equal(b.data, "X: y\nAuthentication-Results: "
	    "mx.example.org;\n\tspf=pass (a comment) "
	    "smtp.mailfrom=example.com\n");
	buf_free(&b);
	/* the buffer's cap */
	buf_init(&b, 40);
	assert_int_equal(authres_format(&b, ID, &e, 1), -1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_ours),
		cmocka_unit_test(test_not_ours),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_values),
		cmocka_unit_test(test_format_comment),
		cmocka_unit_test(test_format_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
