/* ratelimit: connection counts, sliding windows, the bound; DNSBL names */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "ratelimit.h"

static void
test_conns(void **state)
{
	struct ratelimit	*r = ratelimit_new(16);

	(void)state;
	assert_non_null(r);
	assert_int_equal(ratelimit_conn_open(r, "192.0.2.1", 100), 1);
	assert_int_equal(ratelimit_conn_open(r, "192.0.2.1", 100), 2);
	assert_int_equal(ratelimit_conn_open(r, "192.0.2.2", 100), 1);
	ratelimit_conn_close(r, "192.0.2.1", 101);
	assert_int_equal(ratelimit_conn_open(r, "192.0.2.1", 102), 2);
	ratelimit_conn_close(r, "192.0.2.1", 103);
	ratelimit_conn_close(r, "192.0.2.1", 103);
	/* the last close forgets the client */
	assert_int_equal(ratelimit_count(r), 1);
	/* a close nobody opened is ignored */
	ratelimit_conn_close(r, "198.51.100.1", 104);
	ratelimit_conn_close(r, "192.0.2.1", 104);
	assert_int_equal(ratelimit_count(r), 1);
	ratelimit_free(r);
	ratelimit_new(0) == NULL ? (void)0 : fail();
}

static void
test_window(void **state)
{
	struct ratelimit	*r = ratelimit_new(16);

	(void)state;
	/* 3 a minute: the fourth in the same minute is refused */
	assert_true(ratelimit_hit(r, "a", 600, 3, 60));
	assert_true(ratelimit_hit(r, "a", 610, 3, 60));
	assert_true(ratelimit_hit(r, "a", 620, 3, 60));
	assert_false(ratelimit_hit(r, "a", 630, 3, 60));
	/* refusals are not counted; another key has its own count */
	assert_true(ratelimit_hit(r, "b", 630, 3, 60));
	/* the next minute starts: the last one still weighs on it */
	assert_false(ratelimit_hit(r, "a", 660, 3, 60));	/* 3*60/60 */
	assert_true(ratelimit_hit(r, "a", 681, 3, 60));	/* 3*39/60 + 0 */
	assert_true(ratelimit_hit(r, "a", 682, 3, 60));	/* 3*38/60 + 1 */
	assert_false(ratelimit_hit(r, "a", 683, 3, 60));	/* 3*37/60 + 2 */
	/* two minutes on, all is forgotten */
	for (int i = 0; i < 3; i++)
		assert_true(ratelimit_hit(r, "a", 800, 3, 60));
	assert_false(ratelimit_hit(r, "a", 800, 3, 60));
	/* limit 0: off */
	for (int i = 0; i < 100; i++)
		assert_true(ratelimit_hit(r, "c", 800, 0, 60));
	ratelimit_free(r);
}

static void
test_window_edge(void **state)
{
	struct ratelimit	*r = ratelimit_new(4);
	unsigned		 n = 0;

	(void)state;
	/* a burst at the end of one window and the start of the next
	   cannot get twice the limit through */
	for (int i = 0; i < 10; i++)
		n += (unsigned)ratelimit_hit(r, "k", 3599, 10, 3600);
	for (int i = 0; i < 10; i++)
		n += (unsigned)ratelimit_hit(r, "k", 3600, 10, 3600);
	assert_int_equal(n, 10);
	ratelimit_free(r);
}

static void
test_bound(void **state)
{
	struct ratelimit	*r = ratelimit_new(4);
	char			 k[32];

	(void)state;
	/* a connected client is kept over idle ones when the table is full */
	assert_int_equal(ratelimit_conn_open(r, "busy", 1), 1);
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "10.0.0.%d", i);
		ratelimit_hit(r, k, 10 + i, 5, 60);
		assert_true(ratelimit_count(r) <= 4);
	}
	assert_int_equal(ratelimit_conn_open(r, "busy", 200), 2);
	/* the idlest is the one forgotten: 10.0.0.99 is still counted */
	for (int i = 0; i < 4; i++)
		ratelimit_hit(r, "10.0.0.99", 110, 5, 60);
	assert_false(ratelimit_hit(r, "10.0.0.99", 110, 5, 60));
	/* a key longer than the key size is cut, never overflows */
	{
		char long_key[RATELIMIT_KEY_MAX * 2];
		memset(long_key, 'x', sizeof(long_key) - 1);
		long_key[sizeof(long_key) - 1] = '\0';
		assert_true(ratelimit_hit(r, long_key, 120, 5, 60));
	}
	ratelimit_free(r);
}

static void
test_dnsbl_name(void **state)
{
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	char			 n[DNSBL_NAME_MAX + 1], zone[300];

	(void)state;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.2", &s4.sin_addr);
	assert_int_equal(dnsbl_name((struct sockaddr *)&s4, "bl.test", n,
	    sizeof(n)), 0);
	assert_string_equal(n, "2.0.0.127.bl.test");
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:1:2::abcd", &s6.sin6_addr);
	assert_int_equal(dnsbl_name((struct sockaddr *)&s6, "bl.test", n,
	    sizeof(n)), 0);
	assert_string_equal(n, "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0."
	    "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test");
	inet_pton(AF_INET6, "::ffff:192.0.2.5", &s6.sin6_addr);
	assert_int_equal(dnsbl_name((struct sockaddr *)&s6, "bl.test", n,
	    sizeof(n)), 0);
	assert_string_equal(n, "5.2.0.192.bl.test");
	/* too long for a domain name: refused, not cut */
	memset(zone, 'a', sizeof(zone) - 1);
	zone[sizeof(zone) - 1] = '\0';
	assert_int_equal(dnsbl_name((struct sockaddr *)&s4, zone, n,
	    sizeof(n)), -1);
	assert_int_equal(dnsbl_name((struct sockaddr *)&s4, "bl.test", n, 8),
	    -1);
}

static void
test_dnsbl_listed(void **state)
{
	struct sockaddr_in	 s4;
	static const struct { const char *a; int listed; } t[] = {
		{ "127.0.0.2", 1 }, { "127.0.0.10", 1 }, { "127.1.2.3", 1 },
		{ "127.255.255.254", 0 }, { "127.255.255.252", 0 },
		{ "10.0.0.2", 0 }, { "192.0.2.1", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		inet_pton(AF_INET, t[i].a, &s4.sin_addr);
		assert_int_equal(dnsbl_listed_addr((struct sockaddr *)&s4),
		    t[i].listed);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conns),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_window_edge),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_dnsbl_name),
		cmocka_unit_test(test_dnsbl_listed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
