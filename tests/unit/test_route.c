/* route: patterns, states, selection (route.h) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

static void
parse_ok(struct route *r, const char *text, int rh)
{
	char	 buf[1024], err[256];

	snprintf(buf, sizeof(buf), "%s", text);
	if (route_parse(r, buf, rh, err, sizeof(err)) != 0)
		fail_msg("\"%s\": %s", text, err);
}

static void
test_patterns(void **state)
{
	(void)state;
	assert_true(route_list_match("example.org", "a@example.org"));
	assert_true(route_list_match("example.org", "a@EXAMPLE.org"));
	assert_false(route_list_match("example.org", "a@sub.example.org"));
	assert_true(route_list_match("*.example.org", "a@sub.example.org"));
	assert_false(route_list_match("*.example.org", "a@example.org"));
	assert_true(route_list_match("a.test,b.test", "x@b.test"));
	assert_true(route_list_match("robot-*@*", "robot-7@x.test"));
	assert_false(route_list_match("robot-*@*", "human@x.test"));
	assert_true(route_list_match("*", "x@y.test"));
	assert_true(route_list_match("*", ""));
	/* refusals: first match of a '!' wins over any positive */
	assert_false(route_list_match("*,!*.local", "a@b.local"));
	assert_true(route_list_match("*,!*.local", "a@b.test"));
	assert_true(route_list_match("!*.local", "a@b.test"));
	assert_false(route_list_match("!*.local", "a@b.local"));
	/* the null sender */
	assert_true(route_list_match("<>", ""));
	assert_false(route_list_match("<>", "a@b.test"));
	assert_false(route_list_match("*.test", ""));
	assert_false(route_list_match("*@*", ""));
	assert_false(route_list_match("!<>", ""));
	assert_true(route_list_match("!<>", "a@b.test"));
}

static void
test_states(void **state)
{
	char	 w[ROUTE_STATE_MAX + 1];

	(void)state;
	assert_true(route_state_match("", "dsl"));
	assert_false(route_state_match("", "offline"));
	assert_true(route_state_match("*", "offline"));
	assert_true(route_state_match("wifi,dsl", "dsl"));
	assert_true(route_state_match("wifi,DSL", "dsl"));
	assert_false(route_state_match("wifi,dsl", "ds"));
	assert_false(route_state_match("wifi,dsl", "dsl2"));
	route_state_word("  dsl \n", 7, w);
	assert_string_equal(w, "dsl");
	route_state_word("wifi-home extra words\n", 22, w);
	assert_string_equal(w, "wifi-home");
	route_state_word("", 0, w);
	assert_string_equal(w, "offline");
	route_state_word(" \n\n", 3, w);
	assert_string_equal(w, "offline");
	route_state_word("bad/state\n", 10, w);
	assert_string_equal(w, "offline");
	route_state_word("nul\0x", 5, w);
	assert_string_equal(w, "offline");
	route_state_word("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    71, w);
	assert_string_equal(w, "offline");	/* too long to be a state */
}

static void
test_parse(void **state)
{
	struct route	 r;

	(void)state;
	parse_ok(&r, "example.org,*.example.org via [192.0.2.1]:2525 tls "
	    "required", 0);
	assert_int_equal(r.kind, ROUTE_HOST);
	assert_string_equal(r.host, "192.0.2.1");
	assert_string_equal(r.port, "2525");
	assert_int_equal(r.tls, ROUTE_TLS_REQUIRED);
	assert_string_equal(r.rcpts, "example.org,*.example.org");
	parse_ok(&r, "* via mx when office,lan senders *@corp.test "
	    "rewrite-sender me@isp.test rewrite-from me@isp.test", 0);
	assert_int_equal(r.kind, ROUTE_MX);
	assert_string_equal(r.when, "office,lan");
	assert_string_equal(r.senders, "*@corp.test");
	assert_string_equal(r.rewrite_sender, "me@isp.test");
	assert_string_equal(r.rewrite_from, "me@isp.test");
	parse_ok(&r, "smtp.isp.test:587 auth /etc/sluice/isp.auth", 1);
	assert_int_equal(r.kind, ROUTE_HOST);
	assert_string_equal(r.rcpts, "*");
	assert_int_equal(r.tls, ROUTE_TLS_REQUIRED);	/* auth implies it */
	parse_ok(&r, "smtp.isp.test:587 auth /a tls optional", 1);
	assert_int_equal(r.tls, ROUTE_TLS_OPPORTUNISTIC);
	parse_ok(&r, "*.lan wait when offline", 0);
	assert_int_equal(r.kind, ROUTE_WAIT);
}

static void
test_select(void **state)
{
	struct route	 t[4];
	const struct route *r;
	int		 wait;

	(void)state;
	parse_ok(&t[0], "*.lan via [10.0.0.1]:25 when *", 0);
	parse_ok(&t[1], "* via smtp.isp.test:587 when dsl senders *@home.test",
	    0);
	parse_ok(&t[2], "* via mx when office", 0);
	parse_ok(&t[3], "hold.test wait", 0);

	r = route_select(t, 4, 1, "offline", "a@home.test", "b@x.lan", &wait);
	assert_ptr_equal(r, &t[0]);
	r = route_select(t, 4, 1, "offline", "a@home.test", "b@x.test", &wait);
	assert_null(r);
	assert_true(wait);
	r = route_select(t, 4, 1, "dsl", "a@home.test", "b@x.test", &wait);
	assert_ptr_equal(r, &t[1]);
	/* a sender the dsl route refuses: nothing else fits in dsl */
	r = route_select(t, 4, 1, "dsl", "a@other.test", "b@x.test", &wait);
	assert_null(r);
	assert_true(wait);
	r = route_select(t, 4, 1, "office", "a@other.test", "b@x.test", &wait);
	assert_ptr_equal(r, &t[2]);
	r = route_select(t, 4, 1, "wifi", "a@home.test", "b@hold.test", &wait);
	assert_null(r);
	assert_true(wait);
	/* no online source: unmatched recipients go by MX */
	r = route_select(t, 3, 0, "online", "a@b.test", "c@d.test", &wait);
	assert_null(r);
	assert_false(wait);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_select),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
