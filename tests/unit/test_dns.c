/*
 * test_dns - the pure parts of the MX resolver (src/common/dns.c): record
 * selection, null MX, caps, literals, names, error texts, loop pruning,
 * and the callback rules that need no DNS server (literals, cancel).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "dns.h"

static void
rec(struct dns_mxrec *r, unsigned pref, const char *name)
{
	r->pref = pref;
	snprintf(r->name, sizeof(r->name), "%s", name);
}

static void
test_select_orders_by_pref(void **state)
{
	struct dns_mxrec	 r[4];
	uint64_t		 rng = 1;
	int			 nullmx;

	(void)state;
	rec(&r[0], 30, "c.test");
	rec(&r[1], 10, "a.test.");
	rec(&r[2], 20, "b.test");
	rec(&r[3], 5, "z.test");
	assert_int_equal(dns_mx_select(r, 4, DNS_MX_MAX, &rng, &nullmx), 4);
	assert_false(nullmx);
	assert_string_equal(r[0].name, "z.test");
	assert_string_equal(r[1].name, "a.test");	/* trailing dot gone */
	assert_string_equal(r[2].name, "b.test");
	assert_string_equal(r[3].name, "c.test");
}

/* run the selection of three equal MXs after a 5 with a seed */
static void
order_for_seed(uint64_t seed, char *out, size_t outlen)
{
	struct dns_mxrec	 r[4];
	int			 nullmx;

	rec(&r[0], 10, "a");
	rec(&r[1], 10, "b");
	rec(&r[2], 5, "first");
	rec(&r[3], 10, "c");
	assert_int_equal(dns_mx_select(r, 4, DNS_MX_MAX, &seed, &nullmx), 4);
	assert_string_equal(r[0].name, "first");
	snprintf(out, outlen, "%s%s%s", r[1].name, r[2].name, r[3].name);
}

static void
test_select_shuffles_equal_prefs(void **state)
{
	char		 o[16], again[16];
	const char	*perms[] = { "abc", "acb", "bac", "bca", "cab", "cba" };
	int		 seen[6] = { 0 }, k, nseen = 0;
	uint64_t	 seed;

	(void)state;
	for (seed = 0; seed < 200; seed++) {
		order_for_seed(seed, o, sizeof(o));
		order_for_seed(seed, again, sizeof(again));
		assert_string_equal(o, again);	/* a seed decides it */
		for (k = 0; k < 6; k++)
			if (strcmp(o, perms[k]) == 0)
				break;
		assert_true(k < 6);	/* a permutation, nothing lost */
		seen[k] = 1;
	}
	for (k = 0; k < 6; k++)
		nseen += seen[k];
	assert_int_equal(nseen, 6);		/* every order happens */
}

static void
test_null_mx(void **state)
{
	struct dns_mxrec	 r[2];
	uint64_t		 rng = 7;
	int			 nullmx;

	(void)state;
	rec(&r[0], 0, "");
	assert_int_equal(dns_mx_select(r, 1, DNS_MX_MAX, &rng, &nullmx), 0);
	assert_true(nullmx);
	rec(&r[0], 0, ".");
	dns_mx_select(r, 1, DNS_MX_MAX, &rng, &nullmx);
	assert_true(nullmx);
	/* "." with another preference is not RFC 7505: just no host */
	rec(&r[0], 10, ".");
	assert_int_equal(dns_mx_select(r, 1, DNS_MX_MAX, &rng, &nullmx), 0);
	assert_false(nullmx);
	/* "0 ." beside a real MX: the root one is dropped */
	rec(&r[0], 0, ".");
	rec(&r[1], 10, "mx.test");
	assert_int_equal(dns_mx_select(r, 2, DNS_MX_MAX, &rng, &nullmx), 1);
	assert_false(nullmx);
	assert_string_equal(r[0].name, "mx.test");
}

static void
test_select_dedupes_and_caps(void **state)
{
	struct dns_mxrec	 r[50];
	uint64_t		 rng = 42;
	size_t			 i, n;
	int			 nullmx;

	(void)state;
	for (i = 0; i < 50; i++) {
		char name[32];

		snprintf(name, sizeof(name), "mx%zu.test", i);
		rec(&r[i], (unsigned)(50 - i), name);
	}
	rec(&r[49], 100, "MX48.test");		/* mx48 again, worse pref */
	n = dns_mx_select(r, 50, DNS_MX_MAX, &rng, &nullmx);
	assert_int_equal(n, DNS_MX_MAX);
	for (i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "mx%zu.test", 48 - i);
		assert_string_equal(r[i].name, want);
		assert_int_equal(r[i].pref, 2 + i);
	}
}

static void
test_result_caps(void **state)
{
	struct dns_mx_result	 res;
	struct sockaddr_in	 s4;
	int			 i;

	(void)state;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	dns_result_init(&res, "example.test");
	for (i = 0; i < DNS_ADDR_MAX; i++)
		assert_int_equal(dns_result_add(&res, 10, "mx.test",
		    (struct sockaddr *)&s4, sizeof(s4)), 0);
	assert_int_equal(dns_result_add(&res, 10, "mx.test",
	    (struct sockaddr *)&s4, sizeof(s4)), -1);
	assert_int_equal(res.count, DNS_ADDR_MAX);
	s4.sin_family = AF_UNIX;
	dns_result_init(&res, "example.test");
	assert_int_equal(dns_result_add(&res, 10, "mx.test",
	    (struct sockaddr *)&s4, sizeof(s4)), -1);
}

static void
expect_text(enum dns_status st, const char *detail, const char *want)
{
	struct dns_mx_result	 res;

	dns_result_init(&res, "example.org");
	dns_result_fail(&res, st, detail);
	assert_int_equal(res.status, st);
	assert_int_equal(res.count, 0);
	assert_string_equal(res.error, want);
}

static void
test_error_texts(void **state)
{
	struct dns_mx_result	 res;

	(void)state;
	expect_text(DNS_NULLMX, NULL,
	    "5.1.10 null MX: example.org does not accept mail");
	expect_text(DNS_NXDOMAIN, NULL, "5.1.2 domain not found: example.org");
	expect_text(DNS_NOHOSTS, NULL,
	    "5.4.4 no address for any mail exchanger of example.org");
	expect_text(DNS_BADNAME, NULL, "5.1.2 bad domain name: example.org");
	expect_text(DNS_LOOP, NULL,
	    "5.4.6 mail for example.org loops back to myself");
	expect_text(DNS_TEMPFAIL, "Timeout",
	    "4.4.3 DNS temporary failure for example.org: Timeout");
	expect_text(DNS_TEMPFAIL, "bad\r\nline",
	    "4.4.3 DNS temporary failure for example.org: bad??line");
	expect_text(DNS_CANCELLED, NULL,
	    "4.4.3 DNS lookup for example.org cancelled");
	/* hostile names come out printable (P7) */
	dns_result_init(&res, "ex\x01" "ample\xff");
	assert_string_equal(res.domain, "ex?ample?");
	assert_string_equal(dns_status_name(DNS_TEMPFAIL), "TEMPFAIL");
	assert_string_equal(dns_status_name((enum dns_status)99), "?");
}

static void
test_literals(void **state)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 a[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(dns_parse_literal("example.test", &ss, &len), 0);
	assert_int_equal(dns_parse_literal("[192.0.2.1]", &ss, &len), 1);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a,
	    sizeof(a));
	assert_string_equal(a, "192.0.2.1");
	assert_int_equal(dns_parse_literal("[ipv6:2001:DB8::1]", &ss, &len), 1);
	assert_int_equal(ss.ss_family, AF_INET6);
	inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a,
	    sizeof(a));
	assert_string_equal(a, "2001:db8::1");
	assert_int_equal(dns_parse_literal("[192.0.2]", &ss, &len), -1);
	assert_int_equal(dns_parse_literal("[300.0.2.1]", &ss, &len), -1);
	assert_int_equal(dns_parse_literal("[192.0.2.1", &ss, &len), -1);
	assert_int_equal(dns_parse_literal("[]", &ss, &len), -1);
	assert_int_equal(dns_parse_literal("[2001:db8::1]", &ss, &len), -1);
	assert_int_equal(dns_parse_literal("[IPv6:192.0.2.1]", &ss, &len), -1);
	assert_int_equal(dns_parse_literal("[tag:stuff]", &ss, &len), -1);
	assert_int_equal(dns_parse_literal("[IPv6:0000:0000:0000:0000:0000:"
	    "0000:0000:0000:0000:0000]", &ss, &len), -1);
}

static void
test_names(void **state)
{
	char	 big[300];

	(void)state;
	assert_int_equal(dns_check_name("example.test"), 0);
	assert_int_equal(dns_check_name("example.test."), 0);
	assert_int_equal(dns_check_name("_x-1.Example.TEST"), 0);
	assert_int_equal(dns_check_name(""), -1);
	assert_int_equal(dns_check_name("."), -1);
	assert_int_equal(dns_check_name("a..b"), -1);
	assert_int_equal(dns_check_name(".a"), -1);
	assert_int_equal(dns_check_name("a b"), -1);
	assert_int_equal(dns_check_name("a\\.b"), -1);
	assert_int_equal(dns_check_name("bl\xc3\xa5.test"), -1);
	memset(big, 'a', 64);
	big[64] = '\0';
	assert_int_equal(dns_check_name(big), -1);	/* label of 64 */
	big[63] = '\0';
	assert_int_equal(dns_check_name(big), 0);
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (i % 2) ? '.' : 'a';
	big[253] = '\0';	/* "a.a. ... a": 253 */
	assert_int_equal(dns_check_name(big), 0);
	big[253] = '.';
	big[254] = 'a';
	big[255] = '\0';
	assert_int_equal(dns_check_name(big), -1);
}

static void
add_host(struct dns_mx_result *res, unsigned pref, const char *ip)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 lit[64];

	snprintf(lit, sizeof(lit), strchr(ip, ':') ? "[IPv6:%s]" : "[%s]", ip);
	assert_int_equal(dns_parse_literal(lit, &ss, &len), 1);
	assert_int_equal(dns_result_add(res, pref, ip, (struct sockaddr *)&ss,
	    len), 0);
}

static void
self_add(struct dns_self *self, const char *lit)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;

	assert_int_equal(dns_parse_literal(lit, &ss, &len), 1);
	assert_int_equal(dns_self_add(self, (struct sockaddr *)&ss), 0);
}

static void
test_prune_self(void **state)
{
	struct dns_mx_result	 res;
	struct dns_self		 self;

	(void)state;
	dns_self_init(&self);
	self_add(&self, "[127.0.0.1]");
	self_add(&self, "[127.0.0.1]");		/* kept once */
	self_add(&self, "[IPv6:::ffff:192.0.2.9]");	/* mapped -> IPv4 */
	assert_int_equal(self.n, 2);
	dns_result_init(&res, "example.test");
	add_host(&res, 10, "127.0.0.2");
	add_host(&res, 20, "::1");
	add_host(&res, 20, "127.0.0.1");	/* us */
	add_host(&res, 30, "127.0.0.3");
	assert_int_equal(dns_mx_prune_self(&res, &self), 3);
	assert_int_equal(res.status, DNS_OK);
	assert_int_equal(res.count, 1);
	assert_string_equal(res.hosts[0].name, "127.0.0.2");
	/* we are the best MX: nothing is left, a loop */
	dns_result_init(&res, "example.test");
	add_host(&res, 10, "192.0.2.9");
	add_host(&res, 20, "127.0.0.2");
	assert_int_equal(dns_mx_prune_self(&res, &self), 2);
	assert_int_equal(res.status, DNS_LOOP);
	assert_string_equal(res.error,
	    "5.4.6 mail for example.test loops back to myself");
	/* not us: untouched */
	dns_result_init(&res, "example.test");
	add_host(&res, 10, "127.0.0.2");
	assert_int_equal(dns_mx_prune_self(&res, &self), 0);
	assert_int_equal(res.count, 1);
	dns_self_free(&self);
	/* a wildcard brings in the interfaces, loopback included */
	dns_self_init(&self);
	self_add(&self, "[0.0.0.0]");
	dns_result_init(&res, "example.test");
	add_host(&res, 10, "127.0.0.1");
	assert_int_equal(dns_mx_prune_self(&res, &self), 1);
	assert_int_equal(res.status, DNS_LOOP);
	dns_self_free(&self);
}

struct got {
	int			 calls;
	enum dns_status		 status;
	size_t			 count;
	char			 error[DNS_ERR_MAX];
};

static void
on_result(void *arg, const struct dns_mx_result *res)
{
	struct got	*g = arg;

	g->calls++;
	g->status = res->status;
	g->count = res->count;
	snprintf(g->error, sizeof(g->error), "%s", res->error);
}

static void
test_async_literal_and_badname(void **state)
{
	struct event_base	*base;
	struct dns		*d;
	struct dns_conf		 conf = { .server = "127.0.0.1:1" };
	struct got		 lit = { 0 }, bad = { 0 }, badlit = { 0 };
	char			 err[128];

	(void)state;
	base = event_base_new();
	assert_non_null(base);
	d = dns_new(base, &conf, err, sizeof(err));
	assert_non_null(d);
	assert_int_equal(dns_mx(d, "[127.0.0.5]", on_result, &lit), 0);
	assert_int_equal(dns_mx(d, "no spaces.test", on_result, &bad), 0);
	assert_int_equal(dns_mx(d, "[1.2.3]", on_result, &badlit), 0);
	assert_int_equal(lit.calls, 0);		/* never from dns_mx() */
	event_base_dispatch(base);
	assert_int_equal(lit.calls, 1);
	assert_int_equal(lit.status, DNS_OK);
	assert_int_equal(lit.count, 1);
	assert_int_equal(bad.calls, 1);
	assert_int_equal(bad.status, DNS_BADNAME);
	assert_int_equal(badlit.calls, 1);
	assert_int_equal(badlit.status, DNS_BADNAME);
	dns_free(d);
	event_base_free(base);
}

static void
test_free_cancels(void **state)
{
	struct event_base	*base;
	struct dns		*d;
	struct dns_conf		 conf = { .server = "127.0.0.1:1" };
	struct got		 a = { 0 }, b = { 0 };
	char			 err[128];

	(void)state;
	base = event_base_new();
	assert_non_null(base);
	d = dns_new(base, &conf, err, sizeof(err));
	assert_non_null(d);
	assert_int_equal(dns_mx(d, "[127.0.0.5]", on_result, &a), 0);
	assert_int_equal(dns_mx(d, "example.test", on_result, &b), 0);
	dns_free(d);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, DNS_CANCELLED);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.status, DNS_CANCELLED);
	assert_string_equal(b.error, "4.4.3 DNS lookup for example.test "
	    "cancelled");
	event_base_loop(base, EVLOOP_NONBLOCK);	/* nothing left to fire */
	assert_int_equal(a.calls, 1);
	event_base_free(base);
}

struct freer {
	struct dns	*dns;
	int		 calls;
};

static void
on_result_free(void *arg, const struct dns_mx_result *res)
{
	struct freer	*f = arg;

	f->calls++;
	assert_int_equal(res->status, DNS_OK);
	dns_free(f->dns);	/* allowed: never inside c-ares or dns_mx() */
}

static void
test_callback_may_free(void **state)
{
	struct event_base	*base;
	struct dns_conf		 conf = { .server = "127.0.0.1:1" };
	struct freer		 f = { 0 };
	char			 err[128];

	(void)state;
	base = event_base_new();
	assert_non_null(base);
	f.dns = dns_new(base, &conf, err, sizeof(err));
	assert_non_null(f.dns);
	assert_int_equal(dns_mx(f.dns, "[IPv6:::1]", on_result_free, &f), 0);
	event_base_dispatch(base);
	assert_int_equal(f.calls, 1);
	event_base_free(base);
}

static void
test_bad_servers(void **state)
{
	struct event_base	*base;
	struct dns		*d;
	struct dns_conf		 conf = { 0 };
	const char		*bad[] = { "", "localhost:53", "127.0.0.1:",
	    "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:53x", "::1:53",
	    "[::1", "[::1]x", "[127.0.0.1]:53", "127.0.0.1:-5" };
	const char		*good[] = { "127.0.0.1:5353", "127.0.0.1",
	    "[::1]:53", "[::1]" };
	char			 err[128];
	size_t			 i;

	(void)state;
	base = event_base_new();
	assert_non_null(base);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		conf.server = bad[i];
		err[0] = '\0';
		assert_null(dns_new(base, &conf, err, sizeof(err)));
		assert_true(strstr(err, "bad server address") != NULL);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		conf.server = good[i];
		d = dns_new(base, &conf, err, sizeof(err));
		assert_non_null(d);
		dns_free(d);
	}
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select_orders_by_pref),
		cmocka_unit_test(test_select_shuffles_equal_prefs),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_select_dedupes_and_caps),
		cmocka_unit_test(test_result_caps),
		cmocka_unit_test(test_error_texts),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_prune_self),
		cmocka_unit_test(test_async_literal_and_badname),
		cmocka_unit_test(test_free_cancels),
		cmocka_unit_test(test_callback_may_free),
		cmocka_unit_test(test_bad_servers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
