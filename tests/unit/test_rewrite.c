/* rewrite: header_section_len and rewrite_from (rewrite.h) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rewrite.h"

static void
expect(const char *in, const char *out)
{
	struct buf	 b;

	buf_init(&b, 65536);
	assert_int_equal(rewrite_from(in, strlen(in), "me@isp.test", &b), 0);
	assert_string_equal(b.data ? b.data : "", out);
	buf_free(&b);
}

static void
test_section(void **state)
{
	(void)state;
	assert_int_equal(header_section_len("A: b\n\nbody\n", 11), 6);
	assert_int_equal(header_section_len("\nbody\n", 6), 1);
	assert_int_equal(header_section_len("A: b\nC: d\n", 10), 0);
	assert_int_equal(header_section_len("", 0), 0);
}

static void
test_from(void **state)
{
	(void)state;
	expect("From: \"Ann Example\" <ann@home.test>\nTo: b@c.test\n\n",
	    "From: \"Ann Example\" <me@isp.test>\nTo: b@c.test\n\n");
	expect("Subject: x\nfrom: ann@home.test (Ann)\n\n",
	    "Subject: x\nFrom: <me@isp.test>\n\n");
	/* folded; only the first From: changes */
	expect("From: Ann\n Example\n\t<ann@home.test>\nFrom: b@x.test\n\n",
	    "From: Ann\n Example <me@isp.test>\nFrom: b@x.test\n\n");
	expect("From: \"a<b\" <c@d.test>\n\n", "From: \"a<b\" <me@isp.test>\n\n");
	expect("From: x <y\n\n", "From: <me@isp.test>\n\n");
	/* no From: at all: nothing is added */
	expect("To: a@b.test\n\n", "To: a@b.test\n\n");
	/* a field merely starting with From */
	expect("From-Ish: x\n\n", "From-Ish: x\n\n");
}

static int
addrs(const char *hdr, char (*out)[HEADER_ADDR_MAX], size_t max)
{
	return header_addresses(hdr, strlen(hdr), "From", out, max);
}

static void
test_addresses(void **state)
{
	char	 a[4][HEADER_ADDR_MAX];

	(void)state;
	assert_int_equal(addrs("From: ann@x.test\n", a, 4), 1);
	assert_string_equal(a[0], "ann@x.test");
	assert_int_equal(addrs("Subject: x\nfrom: Ann <ann@x.test>\n", a, 4),
	    1);
	assert_string_equal(a[0], "ann@x.test");
	assert_int_equal(addrs("From: \"Doe, Ann\" <ann@x.test>, "
	    "bob@y.test (Bob, B.)\n", a, 4), 2);
	assert_string_equal(a[0], "ann@x.test");
	assert_string_equal(a[1], "bob@y.test");
	/* folded, a source route, a group, a comment with <> inside */
	assert_int_equal(addrs("From: Ann\n <@relay.test:ann@x.test>\n", a,
	    4), 1);
	assert_string_equal(a[0], "ann@x.test");
	assert_int_equal(addrs("From: team: ann@x.test, bob@y.test;\n", a, 4),
	    2);
	assert_string_equal(a[1], "bob@y.test");
	assert_int_equal(addrs("From: (<evil@z.test>) ann@x.test\n", a, 4), 1);
	assert_string_equal(a[0], "ann@x.test");
	assert_int_equal(addrs("From: \"ann@x.test\" <evil@z.test>\n", a, 4),
	    1);
	assert_string_equal(a[0], "evil@z.test");
	/* every From: field counts */
	assert_int_equal(addrs("From: a@x.test\nTo: c@x.test\nFrom: b@x.test\n",
	    a, 4), 2);
	assert_string_equal(a[1], "b@x.test");
	assert_int_equal(addrs("From: undisclosed:;\n", a, 4), 0);
	assert_int_equal(addrs("To: a@x.test\n", a, 4), 0);
	assert_int_equal(addrs("From-Foo: a@x.test\n", a, 4), 0);
	/* unreadable */
	assert_int_equal(addrs("From: <a@x.test\n", a, 4), -1);
	assert_int_equal(addrs("From: \"a@x.test\n", a, 4), -1);
	assert_int_equal(addrs("From: (a@x.test\n", a, 4), -1);
	assert_int_equal(addrs("From: a@x, b@x, c@x, d@x, e@x\n", a, 4), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_section),
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
