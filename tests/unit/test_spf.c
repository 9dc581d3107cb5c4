/*
 * spf: RFC 7208 check_host() with DNS answered from a table in each test
 * (no network). run() calls spf_check(), answers every wanted question
 * from the table (a name not in it is NXDOMAIN) and loops until done,
 * asserting that it ends.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "spf.h"

#define NV	16

struct rrdef {
	enum dns_rr	 type;
	const char	*name;
	enum dns_rstatus st;
	const char	*v[NV];
};

#define TXT(n, ...)	{ DNS_RR_TXT, n, DNS_R_OK, { __VA_ARGS__ } }
#define A(n, ...)	{ DNS_RR_A, n, DNS_R_OK, { __VA_ARGS__ } }
#define AAAA(n, ...)	{ DNS_RR_AAAA, n, DNS_R_OK, { __VA_ARGS__ } }
#define MX(n, ...)	{ DNS_RR_MX, n, DNS_R_OK, { __VA_ARGS__ } }
#define PTR(n, ...)	{ DNS_RR_PTR, n, DNS_R_OK, { __VA_ARGS__ } }
#define TEMP(t, n)	{ t, n, DNS_R_TEMP, { NULL } }
#define EMPTY(t, n)	{ t, n, DNS_R_OK, { NULL } }
#define END		{ 0, NULL, 0, { NULL } }

static int	rounds;		/* spf_check() calls that returned 0 */
static unsigned	asked;		/* questions answered */

static void
answer(struct dns_cache *dc, const struct rrdef *tab, enum dns_rr t,
    const char *name)
{
	size_t	 n = 0;

	asked++;
	for (; tab->name != NULL; tab++)
		if (tab->type == t && strcasecmp(tab->name, name) == 0)
			break;
	if (tab->name == NULL) {
		assert_int_equal(dns_cache_put(dc, t, name, DNS_R_NXDOMAIN,
		    NULL, 0), 0);
		return;
	}
	while (n < NV && tab->v[n] != NULL)
		n++;
	assert_int_equal(dns_cache_put(dc, t, name, tab->st, tab->v, n), 0);
}

static void
set_ip(struct sockaddr_storage *ss, const char *ip)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') == NULL) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	}
}

static struct spf_outcome
run_cache(struct dns_cache *dc, const struct rrdef *tab, const char *ip,
    const char *sender, const char *helo, const char *domain)
{
	struct sockaddr_storage	 ss;
	struct spf_query	 q = { NULL, sender, helo, domain,
				    "mx.receiver.example", 1700000000 };
	struct spf_outcome	 out;
	enum dns_rr		 t;
	const char		*name;

	set_ip(&ss, ip);
	q.ip = (struct sockaddr *)&ss;
	asked = 0;
	for (rounds = 0;; rounds++) {
		assert_true(rounds < 40);
		if (spf_check(&q, dc, &out) == 1)
			break;
		assert_true(dns_cache_pending(dc) > 0);
		while (dns_cache_next_wanted(dc, &t, &name))
			answer(dc, tab, t, name);
	}
	assert_true(out.result <= SPF_PERMERROR);
	assert_true(strlen(out.reason) > 0);
	for (const char *p = out.reason; *p != '\0'; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	return out;
}

static struct spf_outcome
run(const struct rrdef *tab, const char *ip, const char *sender,
    const char *domain)
{
	struct dns_cache	*dc = dns_cache_new();
	struct spf_outcome	 out;

	assert_non_null(dc);
	out = run_cache(dc, tab, ip, sender, "helo.example.org", domain);
	dns_cache_free(dc);
	return out;
}

/* the result for one record at example.com, other answers from tab */
static enum spf_result
rec(const char *record, const struct rrdef *tab, const char *ip)
{
	struct rrdef		 t[64];
	size_t			 n = 0;

	memset(t, 0, sizeof(t));
	t[n].type = DNS_RR_TXT;
	t[n].name = "example.com";
	t[n].st = DNS_R_OK;
	t[n++].v[0] = record;
	for (; tab != NULL && tab->name != NULL && n < 63; tab++)
		t[n++] = *tab;
	return run(t, ip, "user@example.com", "example.com").result;
}

static void
test_results(void **state)
{
	struct rrdef	 tab[] = {
		TXT("example.com", "google-site-verification=x",
		    "v=spf1 ip4:192.0.2.0/24 -all"),
		TXT("plain.example", "just text", "v=spf10 -all"),
		END
	};
	struct spf_outcome o;

	(void)state;
	o = run(tab, "192.0.2.3", "user@example.com", "example.com");
	assert_int_equal(o.result, SPF_PASS);
	assert_string_equal(o.reason, "ip4:192.0.2.0/24 matched");
	assert_string_equal(spf_result_name(o.result), "pass");
	o = run(tab, "198.51.100.1", "user@example.com", "example.com");
	assert_int_equal(o.result, SPF_FAIL);
	assert_string_equal(o.reason, "all matched");
	o = run(tab, "192.0.2.3", "user@nothere.example", "nothere.example");
	assert_int_equal(o.result, SPF_NONE);
	assert_non_null(strstr(o.reason, "no SPF record"));
	o = run(tab, "192.0.2.3", "user@plain.example", "plain.example");
	assert_int_equal(o.result, SPF_NONE);
	o = run(tab, "192.0.2.3", "user@localhost", "localhost");
	assert_int_equal(o.result, SPF_NONE);	/* not multi-label */

	assert_int_equal(rec("v=spf1 ~all", NULL, "192.0.2.3"), SPF_SOFTFAIL);
	assert_int_equal(rec("v=spf1 ?all", NULL, "192.0.2.3"), SPF_NEUTRAL);
	assert_int_equal(rec("v=spf1 +all", NULL, "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1", NULL, "192.0.2.3"), SPF_NEUTRAL);
	assert_int_equal(rec("v=spf1 ip4:10.0.0.1", NULL, "192.0.2.3"),
	    SPF_NEUTRAL);
	assert_int_equal(rec("V=SPF1 IP4:192.0.2.3 -ALL", NULL, "192.0.2.3"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1   ip4:192.0.2.3   -all  ", NULL,
	    "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 -ip4:192.0.2.3 +all", NULL,
	    "192.0.2.3"), SPF_FAIL);

	assert_string_equal(spf_result_name(SPF_NONE), "none");
	assert_string_equal(spf_result_name(SPF_NEUTRAL), "neutral");
	assert_string_equal(spf_result_name(SPF_FAIL), "fail");
	assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
	assert_string_equal(spf_result_name(SPF_TEMPERROR), "temperror");
	assert_string_equal(spf_result_name(SPF_PERMERROR), "permerror");
}

static void
test_ip_cidr(void **state)
{
	const char	*r6 = "v=spf1 ip6:2001:db8::/32 ip4:192.0.2.128/25 -all";

	(void)state;
	assert_int_equal(rec(r6, NULL, "2001:db8::cb01"), SPF_PASS);
	assert_int_equal(rec(r6, NULL, "2001:db9::1"), SPF_FAIL);
	assert_int_equal(rec(r6, NULL, "192.0.2.200"), SPF_PASS);
	assert_int_equal(rec(r6, NULL, "192.0.2.127"), SPF_FAIL);
	/* an IPv4-mapped IPv6 client is an IPv4 client */
	assert_int_equal(rec(r6, NULL, "::ffff:192.0.2.200"), SPF_PASS);
	assert_int_equal(rec(r6, NULL, "::ffff:192.0.2.1"), SPF_FAIL);
	assert_int_equal(rec("v=spf1 ip4:0.0.0.0/0 -all", NULL, "192.0.2.1"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 ip4:0.0.0.0/0 -all", NULL, "2001:db8::1"),
	    SPF_FAIL);
	assert_int_equal(rec("v=spf1 ip6:::/0 -all", NULL, "2001:db8::1"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 ip6:::/0 -all", NULL, "192.0.2.1"),
	    SPF_FAIL);
	assert_int_equal(rec("v=spf1 ip4:192.0.2.3/32 -all", NULL,
	    "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 ip4:192.0.3.0/23 -all", NULL,
	    "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 ip6:2001:db8::cb00/121 -all", NULL,
	    "2001:db8::cb01"), SPF_PASS);
	assert_int_equal(rec("v=spf1 ip6:2001:db8::cb00/128 -all", NULL,
	    "2001:db8::cb01"), SPF_FAIL);
}

static void
test_a_mx(void **state)
{
	struct rrdef	 tab[] = {
		A("example.com", "192.0.2.10", "192.0.2.11"),
		AAAA("example.com", "2001:db8::10"),
		A("other.example", "198.51.100.7"),
		AAAA("other.example", "2001:db8:1::7"),
		MX("example.com", "mx1.example.com", "mx2.example.com"),
		A("mx1.example.com", "203.0.113.1"),
		A("mx2.example.com", "203.0.113.130"),
		AAAA("mx2.example.com", "2001:db8:2::1"),
		END
	};
	struct spf_outcome o;

	(void)state;
	assert_int_equal(rec("v=spf1 a -all", tab, "192.0.2.11"), SPF_PASS);
	assert_int_equal(rec("v=spf1 a -all", tab, "192.0.2.12"), SPF_FAIL);
	assert_int_equal(rec("v=spf1 a/24 -all", tab, "192.0.2.99"), SPF_PASS);
	assert_int_equal(rec("v=spf1 a -all", tab, "2001:db8::10"), SPF_PASS);
	assert_int_equal(rec("v=spf1 a -all", tab, "2001:db8::11"), SPF_FAIL);
	assert_int_equal(rec("v=spf1 a//64 -all", tab, "2001:db8::ffff"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 a/24//64 -all", tab, "2001:db8::ffff"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 a/24//64 -all", tab, "192.0.2.200"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 a/24//64 -all", tab, "192.0.3.1"),
	    SPF_FAIL);
	assert_int_equal(rec("v=spf1 a:other.example/24 -all", tab,
	    "198.51.100.1"), SPF_PASS);
	assert_int_equal(rec("v=spf1 a:other.example//48 -all", tab,
	    "2001:db8:1::99"), SPF_PASS);
	assert_int_equal(rec("v=spf1 a:other.example -all", tab,
	    "::ffff:198.51.100.7"), SPF_PASS);
	assert_int_equal(rec("v=spf1 mx -all", tab, "203.0.113.130"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 mx -all", tab, "203.0.113.2"), SPF_FAIL);
	assert_int_equal(rec("v=spf1 mx/24 -all", tab, "203.0.113.2"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 mx -all", tab, "2001:db8:2::1"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 mx//32 -all", tab, "2001:db8:99::1"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 mx:other.example -all", tab,
	    "203.0.113.1"), SPF_FAIL);	/* no MX: a void lookup */
	/* an A lookup failing temporarily is a temperror, never a fail */
	{
		struct rrdef t2[] = { TEMP(DNS_RR_A, "other.example"), END };

		o.result = rec("v=spf1 a:other.example -all", t2, "192.0.2.1");
		assert_int_equal(o.result, SPF_TEMPERROR);
	}
}

static void
test_mx_one_pass(void **state)
{
	struct rrdef	 tab[] = {
		TXT("example.com", "v=spf1 mx -all"),
		MX("example.com", "a.example.com", "b.example.com",
		    "c.example.com"),
		A("a.example.com", "192.0.2.1"),
		A("b.example.com", "192.0.2.2"),
		A("c.example.com", "192.0.2.3"),
		END
	};
	struct spf_outcome o;

	(void)state;
	/* TXT, then MX, then the three hosts' addresses together */
	o = run(tab, "192.0.2.3", "u@example.com", "example.com");
	assert_int_equal(o.result, SPF_PASS);
	assert_int_equal(rounds, 3);
	assert_int_equal(asked, 5);
	assert_int_equal(o.lookups, 1);
}

static void
test_include(void **state)
{
	struct rrdef	 tab[] = {
		TXT("pass.example", "v=spf1 ip4:192.0.2.0/24 -all"),
		TXT("fail.example", "v=spf1 -all"),
		TXT("soft.example", "v=spf1 ~all"),
		TXT("temp.example", "v=spf1 a:down.example -all"),
		TEMP(DNS_RR_A, "down.example"),
		TEMP(DNS_RR_TXT, "txttemp.example"),
		TXT("perm.example", "v=spf1 foo:bar -all"),
		END
	};
	struct spf_outcome o;

	(void)state;
	assert_int_equal(rec("v=spf1 include:pass.example -all", tab,
	    "192.0.2.9"), SPF_PASS);
	assert_int_equal(rec("v=spf1 include:pass.example -all", tab,
	    "198.51.100.9"), SPF_FAIL);
	/* an included fail or softfail is "no match": go on */
	assert_int_equal(rec("v=spf1 include:fail.example ~all", tab,
	    "192.0.2.9"), SPF_SOFTFAIL);
	assert_int_equal(rec("v=spf1 include:soft.example ip4:192.0.2.9 -all",
	    tab, "192.0.2.9"), SPF_PASS);
	assert_int_equal(rec("v=spf1 -include:pass.example +all", tab,
	    "192.0.2.9"), SPF_FAIL);
	/* no record at the target: permerror */
	assert_int_equal(rec("v=spf1 include:none.example +all", tab,
	    "192.0.2.9"), SPF_PERMERROR);
	assert_int_equal(rec("v=spf1 include:temp.example +all", tab,
	    "192.0.2.9"), SPF_TEMPERROR);
	assert_int_equal(rec("v=spf1 include:txttemp.example +all", tab,
	    "192.0.2.9"), SPF_TEMPERROR);
	assert_int_equal(rec("v=spf1 include:perm.example +all", tab,
	    "192.0.2.9"), SPF_PERMERROR);
	/* %{d} in an include is the included domain */
	{
		struct rrdef t2[] = {
			TXT("example.com", "v=spf1 include:pass.example -all"),
			TXT("pass.example", "v=spf1 exists:%{d}.x.example -all"),
			A("pass.example.x.example", "127.0.0.2"),
			END
		};

		o = run(t2, "192.0.2.9", "u@example.com", "example.com");
		assert_int_equal(o.result, SPF_PASS);
		assert_string_equal(o.reason, "include:pass.example matched");
		assert_int_equal(o.lookups, 2);
	}
}

static void
test_redirect(void **state)
{
	struct rrdef	 tab[] = {
		TXT("spf.example", "v=spf1 ip4:192.0.2.0/24 -all"),
		TXT("neutral.example", "v=spf1 ?all"),
		END
	};
	struct spf_outcome o;

	(void)state;
	assert_int_equal(rec("v=spf1 redirect=spf.example", tab,
	    "192.0.2.9"), SPF_PASS);
	assert_int_equal(rec("v=spf1 redirect=spf.example", tab,
	    "198.51.100.9"), SPF_FAIL);
	/* the modifier may come first; mechanisms are tried before */
	assert_int_equal(rec("v=spf1 redirect=spf.example ip4:198.51.100.9",
	    tab, "198.51.100.9"), SPF_PASS);
	/* ignored when there is an all */
	assert_int_equal(rec("v=spf1 redirect=spf.example ?all", tab,
	    "198.51.100.9"), SPF_NEUTRAL);
	/* no record at the target: permerror, not none */
	assert_int_equal(rec("v=spf1 redirect=none.example", tab,
	    "192.0.2.9"), SPF_PERMERROR);
	assert_int_equal(rec("v=spf1 redirect=spf.example redirect=x.example",
	    tab, "192.0.2.9"), SPF_PERMERROR);
	{
		struct rrdef t2[] = {
			TXT("example.com", "v=spf1 redirect=_spf.%{d}"),
			TXT("_spf.example.com", "v=spf1 ip4:192.0.2.9 -all"),
			END
		};

		o = run(t2, "192.0.2.9", "u@example.com", "example.com");
		assert_int_equal(o.result, SPF_PASS);
		assert_int_equal(o.lookups, 1);
	}
}

static void
test_exists_macros(void **state)
{
	struct rrdef	 tab[] = {
		A("3.2.0.192.in-addr.bad.strong.lp._spf.example.com",
		    "127.0.0.2"),
		A("1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1"
		    ".0.0.2.ip6._spf.example.com", "127.0.0.2"),
		A("user.example.com.list.example", "127.0.0.2"),
		END
	};
	struct rrdef	 t[4] = {
		TXT("email.example.com",
		    "v=spf1 exists:%{ir}.%{v}.%{lr-}.lp._spf.%{d2} -all"),
		END
	};
	struct spf_outcome o;

	(void)state;
	memcpy(&t[1], tab, sizeof(tab[0]));
	o = run(t, "192.0.2.3", "strong-bad@email.example.com",
	    "email.example.com");
	assert_int_equal(o.result, SPF_PASS);
	o = run(t, "192.0.2.4", "strong-bad@email.example.com",
	    "email.example.com");
	assert_int_equal(o.result, SPF_FAIL);
	/* exists asks for an A record even for an IPv6 client */
	assert_int_equal(rec("v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all", tab,
	    "2001:db8::cb01"), SPF_PASS);
	assert_int_equal(rec("v=spf1 exists:%{l}.%{o}.list.example -all", tab,
	    "192.0.2.3"), SPF_PASS);
}

static void
test_ptr(void **state)
{
	struct rrdef	 tab[] = {
		PTR("3.2.0.192.in-addr.arpa", "mail.example.com",
		    "other.example.net"),
		A("mail.example.com", "192.0.2.3"),
		PTR("4.2.0.192.in-addr.arpa", "liar.example.com"),
		A("liar.example.com", "192.0.2.99"),
		PTR("1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0"
		    ".1.0.0.2.ip6.arpa", "v6.example.com"),
		AAAA("v6.example.com", "2001:db8::cb01"),
		TEMP(DNS_RR_PTR, "5.2.0.192.in-addr.arpa"),
		PTR("6.2.0.192.in-addr.arpa", "n1.x.example", "n2.x.example",
		    "n3.x.example", "n4.x.example", "n5.x.example",
		    "n6.x.example", "n7.x.example", "n8.x.example",
		    "n9.x.example", "n10.x.example", "mail.example.com"),
		PTR("8.2.0.192.in-addr.arpa", "slow.example.com",
		    "fast.example.com", "other.example.net"),
		TEMP(DNS_RR_A, "slow.example.com"),
		A("fast.example.com", "192.0.2.1"),
		PTR("9.2.0.192.in-addr.arpa", "slow.example.com",
		    "ok.example.com"),
		A("ok.example.com", "192.0.2.9"),
		END
	};

	(void)state;
	assert_int_equal(rec("v=spf1 ptr -all", tab, "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 ptr:example.com -all", tab,
	    "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 ptr:example.net -all", tab,
	    "192.0.2.3"), SPF_FAIL);	/* other.example.net has no A */
	assert_int_equal(rec("v=spf1 ptr:ample.com -all", tab,
	    "192.0.2.3"), SPF_FAIL);	/* a suffix, not a subdomain */
	/* the name's address is not the client: not validated */
	assert_int_equal(rec("v=spf1 ptr -all", tab, "192.0.2.4"), SPF_FAIL);
	assert_int_equal(rec("v=spf1 ptr -all", tab, "2001:db8::cb01"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 ptr -all", tab, "192.0.2.7"), SPF_FAIL);
	/*
	 * A DNS error on the PTR lookup, or on the address of a name under
	 * the target, is a temperror (5.5 says no match: then "ptr -all"
	 * would be a fail, and DMARC a reject, because DNS was late).
	 */
	assert_int_equal(rec("v=spf1 ptr ?all", tab, "192.0.2.5"),
	    SPF_TEMPERROR);
	assert_int_equal(rec("v=spf1 ptr -all", tab, "192.0.2.5"),
	    SPF_TEMPERROR);
	assert_int_equal(rec("v=spf1 ptr -all", tab, "192.0.2.8"),
	    SPF_TEMPERROR);
	/* ... unless another name matches */
	assert_int_equal(rec("v=spf1 ptr -all", tab, "192.0.2.9"), SPF_PASS);
	/* a name not under the target is not looked up: its error is none */
	assert_int_equal(rec("v=spf1 ptr:example.net -all", tab,
	    "192.0.2.8"), SPF_FAIL);
	/* only the first 10 names count (4.6.4) */
	assert_int_equal(rec("v=spf1 ptr -all", tab, "192.0.2.6"), SPF_FAIL);
}

static void
expand(const char *macro, const char *ip, int exp, const char *want)
{
	struct sockaddr_storage	 ss;
	struct spf_query	 q = { NULL, "strong-bad@email.example.com",
				    "mx.example.org", "email.example.com",
				    "mx.receiver.example", 1700000000 };
	char			 out[1024];

	set_ip(&ss, ip);
	q.ip = (struct sockaddr *)&ss;
	assert_int_equal(spf_expand(&q, "email.example.com", macro, exp, out,
	    sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void
test_macro_rfc(void **state)
{
	const char	*v4 = "192.0.2.3", *v6 = "2001:db8::cb01";

	(void)state;
	/* RFC 7208 7.4 */
	expand("%{s}", v4, 0, "strong-bad@email.example.com");
	expand("%{o}", v4, 0, "email.example.com");
	expand("%{d}", v4, 0, "email.example.com");
	expand("%{d4}", v4, 0, "email.example.com");
	expand("%{d3}", v4, 0, "email.example.com");
	expand("%{d2}", v4, 0, "example.com");
	expand("%{d1}", v4, 0, "com");
	expand("%{dr}", v4, 0, "com.example.email");
	expand("%{d2r}", v4, 0, "example.email");
	expand("%{l}", v4, 0, "strong-bad");
	expand("%{l-}", v4, 0, "strong.bad");
	expand("%{lr}", v4, 0, "strong-bad");
	expand("%{lr-}", v4, 0, "bad.strong");
	expand("%{l1r-}", v4, 0, "strong");
	expand("%{ir}.%{v}._spf.%{d2}", v4, 0,
	    "3.2.0.192.in-addr._spf.example.com");
	expand("%{lr-}.lp._spf.%{d2}", v4, 0, "bad.strong.lp._spf.example.com");
	expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", v4, 0,
	    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", v4, 0,
	    "3.2.0.192.in-addr.strong.lp._spf.example.com");
	expand("%{d2}.trusted-domains.example.net", v4, 0,
	    "example.com.trusted-domains.example.net");
	expand("%{ir}.%{v}._spf.%{d2}", v6, 0,
	    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	    ".ip6._spf.example.com");
	/* the other letters, escapes and transformers */
	expand("%{i}", v4, 0, "192.0.2.3");
	expand("%{i}", "::ffff:192.0.2.3", 0, "192.0.2.3");
	expand("%{v}", "::ffff:192.0.2.3", 0, "in-addr");
	expand("%{i}", v6, 0, "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
	    ".0.0.0.0.c.b.0.1");
	expand("%{p}", v4, 0, "unknown");
	expand("%{h}", v4, 0, "mx.example.org");
	expand("%{c}", v6, 1, "2001:db8::cb01");
	expand("%{r}", v4, 1, "mx.receiver.example");
	expand("%{t}", v4, 1, "1700000000");
	expand("%%%_%-", v4, 1, "% %20");
	expand("%{D}", v4, 0, "email.example.com");
	expand("%{S}", v4, 1, "strong-bad%40email.example.com");
	/* 7.3: upper case is URL-escaped in a domain-spec too */
	expand("%{S}.x.example", v4, 0, "strong-bad%40email.example.com"
	    ".x.example");
	expand("%{I}", "2001:db8::cb01", 0, "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0"
	    ".0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1");
	expand("%{l}", v4, 1, "strong-bad");
	expand("%{d2r+-.}", v4, 0, "example.email");
	expand("%{l-+}", v4, 0, "strong.bad");
	expand("%{d20}", v4, 0, "email.example.com");
	expand("x %{l} y", v4, 1, "x strong-bad y");
	/* malformed macros */
	{
		struct sockaddr_storage	 ss;
		struct spf_query q = { NULL, "a@b.example", "h", "b.example",
				    NULL, 0 };
		const char *bad[] = { "%", "%{", "%{d", "%{x}", "%{d0}",
		    "%{d2r", "%a", "%{d}%", "a b", "%{d!}", "%{c}", "%{R}",
		    "%{t}.x", NULL };
		char out[64];

		set_ip(&ss, "192.0.2.1");
		q.ip = (struct sockaddr *)&ss;
		for (size_t i = 0; bad[i] != NULL; i++)
			assert_int_equal(spf_expand(&q, "b.example", bad[i],
			    0, out, sizeof(out)), -1);
		assert_int_equal(spf_expand(&q, "b.example", "%{r}", 1, out,
		    sizeof(out)), 0);
		assert_string_equal(out, "unknown");
	}
}

static void
test_truncate(void **state)
{
	struct sockaddr_storage	 ss;
	char			 lp[200], sender[300], out[512];
	struct spf_query	 q = { NULL, sender, "h.example", "b.example",
				    NULL, 0 };

	(void)state;
	/* 7.3: an expansion over 253 octets loses labels on the left */
	memset(lp, 'a', sizeof(lp));
	for (size_t i = 50; i < sizeof(lp); i += 51)
		lp[i] = '.';
	lp[sizeof(lp) - 1] = '\0';
	snprintf(sender, sizeof(sender), "%s@b.example", lp);
	set_ip(&ss, "192.0.2.1");
	q.ip = (struct sockaddr *)&ss;
	assert_int_equal(spf_expand(&q, "b.example",
	    "%{l}.%{l}.%{d}", 0, out, sizeof(out)), 0);
	assert_true(strlen(out) <= 253);
	assert_true(out[0] != '.');
	assert_non_null(strstr(out, ".b.example"));
	assert_int_equal(strspn(out, "a"), 50);
}

/*
 * CPU: a 4 KB record of DNS-querying terms full of macros would expand
 * ~1,000 values (each cut and re-joined) per evaluation, and the
 * evaluation runs again after every DNS round. One macro-string may
 * expand at most SPF_EXPAND_WORK octets of values: past that, permerror.
 */
static void
test_expand_work(void **state)
{
	struct sockaddr_storage	 ss;
	char			 lp[301], sender[400], rec[4096], out[512];
	struct spf_query	 q = { NULL, sender, "h.example", "b.example",
				    NULL, 0 };
	struct rrdef		 tab[] = {
		{ DNS_RR_TXT, "b.example", DNS_R_OK, { rec } },
		END
	};
	struct spf_outcome	 o;
	size_t			 n;

	(void)state;
	for (n = 0; n < sizeof(lp) - 1; n++)
		lp[n] = n % 2 ? '.' : 'a';
	lp[n] = '\0';
	snprintf(sender, sizeof(sender), "%s@b.example", lp);
	set_ip(&ss, "192.0.2.1");
	q.ip = (struct sockaddr *)&ss;
	/* a dozen long values: still expanded */
	assert_int_equal(spf_expand(&q, "b.example", "%{s}%{s}%{s}%{s}%{s}"
	    "%{s}%{s}%{s}%{s}%{s}%{s}%{s}.x.example", 0, out, sizeof(out)), 0);
	assert_true(strlen(out) <= SPF_DOMAIN_MAX);
	/* many more: an error, at once */
	n = (size_t)snprintf(rec, sizeof(rec), "v=spf1 exists:");
	while (n + 8 < sizeof(rec) - 16)
		n += (size_t)snprintf(rec + n, sizeof(rec) - n, "%%{sr}");
	snprintf(rec + n, sizeof(rec) - n, ".x.example -all");
	assert_int_equal(spf_expand(&q, "b.example", rec + 14, 0, out,
	    sizeof(out)), -1);
	o = run(tab, "192.0.2.1", sender, "b.example");
	assert_int_equal(o.result, SPF_PERMERROR);
	assert_non_null(strstr(o.reason, "macro expansion too long"));
}

/*
 * A trailing dot on the domain (MAIL FROM:<u@example.com.>) names the same
 * domain: %{d} and %{o} are the same as without it, so the sender cannot
 * make a -exists: point at an invalid name and skip it.
 */
static void
test_trailing_dot(void **state)
{
	struct rrdef	 tab[] = {
		TXT("example.com", "v=spf1 -exists:%{d1}.deny.example +all"),
		A("com.deny.example", "127.0.0.2"),
		A("com.example.deny.example", "127.0.0.2"),
		END
	};
	struct spf_outcome o;

	(void)state;
	o = run(tab, "192.0.2.3", "u@example.com", "example.com");
	assert_int_equal(o.result, SPF_FAIL);
	o = run(tab, "192.0.2.3", "u@example.com.", "example.com.");
	assert_int_equal(o.result, SPF_FAIL);
	tab[0].v[0] = "v=spf1 -exists:%{o1}.deny.example +all";
	o = run(tab, "192.0.2.3", "u@example.com.", "example.com.");
	assert_int_equal(o.result, SPF_FAIL);
	tab[0].v[0] = "v=spf1 -exists:%{o2r}.deny.example +all";
	o = run(tab, "192.0.2.3", "u@example.com.", "example.com.");
	assert_int_equal(o.result, SPF_FAIL);
	tab[0].v[0] = "v=spf1 -exists:%{s}.deny.example +all";
	o = run(tab, "192.0.2.3", "u@example.com.", "example.com.");
	/* u@example.com.deny.example has no A: no match */
	assert_int_equal(o.result, SPF_PASS);
}

static void
test_multiple_records(void **state)
{
	struct rrdef	 tab[] = {
		TXT("example.com", "v=spf1 +all", "v=spf1 -all"),
		TXT("two.example", "v=spf1 -all", "V=SPF1 ?all"),
		END
	};
	struct spf_outcome o;

	(void)state;
	o = run(tab, "192.0.2.3", "u@example.com", "example.com");
	assert_int_equal(o.result, SPF_PERMERROR);
	assert_non_null(strstr(o.reason, "more than one"));
	assert_int_equal(rec("v=spf1 include:two.example +all", tab,
	    "192.0.2.1"), SPF_PERMERROR);
}

static void
test_include_loop(void **state)
{
	struct rrdef	 tab[] = {
		TXT("a.example", "v=spf1 include:b.example -all"),
		TXT("b.example", "v=spf1 include:a.example -all"),
		TXT("self.example", "v=spf1 redirect=self.example"),
		END
	};
	struct spf_outcome o;

	(void)state;
	o = run(tab, "192.0.2.3", "u@a.example", "a.example");
	assert_int_equal(o.result, SPF_PERMERROR);
	assert_true(o.lookups <= SPF_LOOKUP_MAX + 1);
	o = run(tab, "192.0.2.3", "u@self.example", "self.example");
	assert_int_equal(o.result, SPF_PERMERROR);
}

static void
test_lookup_limit(void **state)
{
	struct rrdef	 tab[16];
	char		 names[12][32];
	struct spf_outcome o;
	char		 r10[512], r11[512];

	(void)state;
	memset(tab, 0, sizeof(tab));
	snprintf(r10, sizeof(r10), "v=spf1");
	for (int i = 0; i < 11; i++) {
		snprintf(names[i], sizeof(names[i]), "i%d.example", i);
		tab[i + 1].type = DNS_RR_TXT;
		tab[i + 1].name = names[i];
		tab[i + 1].v[0] = "v=spf1 ?all";
	}
	for (int i = 0; i < 10; i++) {
		size_t l = strlen(r10);

		snprintf(r10 + l, sizeof(r10) - l, " include:i%d.example", i);
	}
	snprintf(r11, sizeof(r11), "%s include:i10.example ip4:192.0.2.3",
	    r10);
	snprintf(r10 + strlen(r10), sizeof(r10) - strlen(r10),
	    " ip4:192.0.2.3");
	tab[0].type = DNS_RR_TXT;
	tab[0].name = "example.com";
	tab[0].v[0] = r10;
	o = run(tab, "192.0.2.3", "u@example.com", "example.com");
	assert_int_equal(o.result, SPF_PASS);
	assert_int_equal(o.lookups, 10);
	tab[0].v[0] = r11;
	o = run(tab, "192.0.2.3", "u@example.com", "example.com");
	assert_int_equal(o.result, SPF_PERMERROR);
	assert_string_equal(o.reason, "more than 10 DNS lookups");
	/* ip4, ip6 and all do not count; nested includes do */
	{
		struct rrdef t2[] = {
			TXT("example.com", "v=spf1 include:n.example "
			    "a:x1.example a:x2.example ip4:192.0.2.3"),
			TXT("n.example", "v=spf1 a:y1.example a:y2.example "
			    "a:y3.example a:y4.example a:y5.example "
			    "a:y6.example a:y7.example a:y8.example ?all"),
			A("y1.example", "10.0.0.1"), A("y2.example", "10.0.0.1"),
			A("y3.example", "10.0.0.1"), A("y4.example", "10.0.0.1"),
			A("y5.example", "10.0.0.1"), A("y6.example", "10.0.0.1"),
			A("y7.example", "10.0.0.1"), A("y8.example", "10.0.0.1"),
			A("x1.example", "10.0.0.1"), A("x2.example", "10.0.0.1"),
			END
		};

		o = run(t2, "192.0.2.3", "u@example.com", "example.com");
		assert_int_equal(o.result, SPF_PERMERROR);
	}
}

static void
test_mx_limit(void **state)
{
	struct rrdef	 tab[] = {
		MX("ten.example", "m1.example", "m2.example", "m3.example",
		    "m4.example", "m5.example", "m6.example", "m7.example",
		    "m8.example", "m9.example", "m10.example"),
		MX("eleven.example", "m1.example", "m2.example", "m3.example",
		    "m4.example", "m5.example", "m6.example", "m7.example",
		    "m8.example", "m9.example", "m10.example", "m11.example"),
		A("m10.example", "192.0.2.3"),
		A("m11.example", "192.0.2.3"),
		END
	};
	struct spf_outcome o;

	(void)state;
	assert_int_equal(rec("v=spf1 mx:ten.example -all", tab, "192.0.2.3"),
	    SPF_PASS);
	assert_int_equal(rec("v=spf1 mx:eleven.example -all", tab,
	    "192.0.2.3"), SPF_PERMERROR);
	{
		struct rrdef t2[] = {
			TXT("example.com", "v=spf1 mx:eleven.example -all"),
			tab[1], END
		};

		o = run(t2, "192.0.2.3", "u@example.com", "example.com");
		assert_non_null(strstr(o.reason, "more than 10 MX"));
	}
}

static void
test_void_limit(void **state)
{
	struct rrdef	 tab[] = {
		EMPTY(DNS_RR_A, "empty.example"),
		END
	};
	struct spf_outcome o;

	(void)state;
	/* two void lookups are allowed, the third is a permerror */
	assert_int_equal(rec("v=spf1 a:v1.example a:empty.example "
	    "ip4:192.0.2.3 -all", tab, "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 a:v1.example a:empty.example "
	    "exists:v3.example ip4:192.0.2.3 -all", tab, "192.0.2.3"),
	    SPF_PERMERROR);
	{
		struct rrdef t2[] = {
			TXT("example.com", "v=spf1 mx:v1.example a:v2.example "
			    "exists:v3.example +all"),
			END
		};

		o = run(t2, "192.0.2.3", "u@example.com", "example.com");
		assert_int_equal(o.result, SPF_PERMERROR);
		assert_int_equal(o.void_lookups, 3);
		assert_non_null(strstr(o.reason, "void"));
	}
}

static void
test_temperror(void **state)
{
	struct rrdef	 tab[] = {
		TEMP(DNS_RR_TXT, "example.com"),
		END
	};
	struct spf_outcome o;

	(void)state;
	o = run(tab, "192.0.2.3", "u@example.com", "example.com");
	assert_int_equal(o.result, SPF_TEMPERROR);
	assert_string_equal(o.reason, "DNS timeout for TXT example.com");
	{
		struct rrdef t2[] = {
			TXT("example.com", "v=spf1 mx exists:x.example -all"),
			MX("example.com", "m1.example", "m2.example"),
			A("m1.example", "10.0.0.1"),
			TEMP(DNS_RR_A, "m2.example"),
			END
		};

		o = run(t2, "192.0.2.3", "u@example.com", "example.com");
		assert_int_equal(o.result, SPF_TEMPERROR);
	}
	assert_int_equal(rec("v=spf1 exists:x.example -all",
	    (struct rrdef[]){ TEMP(DNS_RR_A, "x.example"), END }, "192.0.2.3"),
	    SPF_TEMPERROR);
	assert_int_equal(rec("v=spf1 mx:x.example -all",
	    (struct rrdef[]){ TEMP(DNS_RR_MX, "x.example"), END },
	    "192.0.2.3"), SPF_TEMPERROR);
	/* an MX host that matches decides, whatever another host's error */
	{
		struct rrdef t3[] = {
			TXT("example.com", "v=spf1 mx -all"),
			MX("example.com", "m1.example", "m2.example"),
			TEMP(DNS_RR_A, "m1.example"),
			A("m2.example", "192.0.2.3"),
			END
		};

		o = run(t3, "192.0.2.3", "u@example.com", "example.com");
		assert_int_equal(o.result, SPF_PASS);
		o = run(t3, "192.0.2.4", "u@example.com", "example.com");
		assert_int_equal(o.result, SPF_TEMPERROR);
	}
	/* a match before the failing lookup decides */
	assert_int_equal(rec("v=spf1 ip4:192.0.2.3 exists:x.example -all",
	    (struct rrdef[]){ TEMP(DNS_RR_A, "x.example"), END }, "192.0.2.3"),
	    SPF_PASS);
}

static void
test_syntax(void **state)
{
	const char *bad[] = {
		"v=spf1 ip4:1.2.3.4/33 -all",
		"v=spf1 ip4:1.2.3.4/ -all",
		"v=spf1 ip4:1.2.3.4/024 -all",
		"v=spf1 ip4:1.2.3 -all",
		"v=spf1 ip4:1.2.3.256 -all",
		"v=spf1 ip4 -all",
		"v=spf1 ip4: -all",
		"v=spf1 ip6:2001:db8::/129 -all",
		"v=spf1 ip6:2001:db8:::1 -all",
		"v=spf1 ip6:192.0.2.1 -all",
		"v=spf1 foo -all",
		"v=spf1 foo:bar.example -all",
		"v=spf1 include: -all",
		"v=spf1 include -all",
		"v=spf1 exists -all",
		"v=spf1 exists: -all",
		"v=spf1 a: -all",
		"v=spf1 a:example -all",
		"v=spf1 a:[192.0.2.1] -all",
		"v=spf1 a:foo.example/33 -all",
		"v=spf1 a:foo.example//129 -all",
		"v=spf1 a/24/64 -all",
		"v=spf1 mx:foo.example/ -all",
		"v=spf1 a:foo.123 -all",
		"v=spf1 a:foo.-bar -all",
		"v=spf1 ptr: -all",
		"v=spf1 -all:x",
		"v=spf1 all/24",
		"v=spf1 exists:%{x}.example -all",
		"v=spf1 exists:%{d0}.example -all",
		"v=spf1 exists:%{d.example -all",
		"v=spf1 exists:%.example -all",
		"v=spf1 redirect= -all",
		"v=spf1 redirect",
		"v=spf1 exp= -all",
		"v=spf1 exp=a.example exp=b.example",
		"v=spf1 foo=%{x} -all",
		"v=spf1 =foo -all",
		"v=spf1 *all",
		"v=spf1 -all\tip4:192.0.2.3",
		"v=spf1 ip4:192.0.2.3 \xc3\xa9",
		"v=spf1 ++all",
		/* c, r and t belong to explanation text only (7.2) */
		"v=spf1 exists:%{c}.x.example -all",
		"v=spf1 exists:%{r}.x.example -all",
		"v=spf1 -include:%{t}.x.example",
		NULL
	};

	(void)state;
	for (size_t i = 0; bad[i] != NULL; i++) {
		struct rrdef	 t[2] = { TXT("example.com", bad[i]), END };
		struct spf_outcome o;

		o = run(t, "192.0.2.3", "u@example.com", "example.com");
		if (o.result != SPF_PERMERROR)
			fail_msg("not a permerror: %s", bad[i]);
	}
	/* an error after the matching term is still an error (4.6) */
	assert_int_equal(rec("v=spf1 +all foo", NULL, "192.0.2.3"),
	    SPF_PERMERROR);
	/* well formed: unknown modifiers, exp (not fetched), macros */
	assert_int_equal(rec("v=spf1 foo=bar x-y.z=%{d} exp=explain.%{d} "
	    "+all", NULL, "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 ip4:192.0.2.3 a:%{d} mx:%{d}/24 "
	    "ptr:foo.example. exists:%{i}.x.example include:%{d2}", NULL,
	    "192.0.2.3"), SPF_PASS);
	assert_int_equal(rec("v=spf1 a:foo.123-4 ip4:192.0.2.3", NULL,
	    "192.0.2.3"), SPF_PASS);
}

static void
test_null_sender(void **state)
{
	struct rrdef	 tab[] = {
		TXT("helo.example.org",
		    "v=spf1 exists:%{l}.%{o}.%{h}.x.example -all"),
		A("postmaster.helo.example.org.helo.example.org.x.example",
		    "127.0.0.2"),
		A("postmaster.b.example.helo.example.org.x.example",
		    "127.0.0.2"),
		TXT("b.example", "v=spf1 exists:%{l}.%{o}.%{h}.x.example -all"),
		END
	};
	struct spf_outcome o;

	(void)state;
	o = run(tab, "192.0.2.3", "", "helo.example.org");
	assert_int_equal(o.result, SPF_PASS);
	/* a sender without local-part: postmaster */
	o = run(tab, "192.0.2.3", "@b.example", "b.example");
	assert_int_equal(o.result, SPF_PASS);
	o = run(tab, "192.0.2.3", "joe@b.example", "b.example");
	assert_int_equal(o.result, SPF_FAIL);
}

static void
test_rounds(void **state)
{
	struct rrdef	 tab[] = {
		TXT("example.com", "v=spf1 a include:inc.example -all"),
		A("example.com", "10.0.0.1"),
		TXT("inc.example", "v=spf1 ip4:192.0.2.3"),
		END
	};
	struct sockaddr_storage	 ss;
	struct spf_query	 q = { NULL, "u@example.com", "h.example",
				    "example.com", NULL, 0 };
	struct spf_outcome	 o;
	struct dns_cache	*dc = dns_cache_new();

	(void)state;
	set_ip(&ss, "192.0.2.3");
	q.ip = (struct sockaddr *)&ss;
	assert_int_equal(spf_check(&q, dc, &o), 0);
	assert_int_equal(spf_check(&q, dc, &o), 0);	/* same, again */
	assert_int_equal(dns_cache_pending(dc), 1);
	o = run_cache(dc, tab, "192.0.2.3", q.sender, q.helo, q.domain);
	assert_int_equal(o.result, SPF_PASS);
	assert_int_equal(rounds, 3);	/* TXT, A, TXT of the include */
	/* done: a further call answers at once, the same */
	assert_int_equal(spf_check(&q, dc, &o), 1);
	assert_int_equal(o.result, SPF_PASS);
	dns_cache_free(dc);
}

static void
test_cache_full(void **state)
{
	struct rrdef	 tab[] = {
		TXT("example.com", "v=spf1 a:h1.example a:h2.example "
		    "a:h3.example a:h4.example a:h5.example -all"),
		A("h1.example", "10.0.0.1"), A("h2.example", "10.0.0.1"),
		A("h3.example", "10.0.0.1"), A("h4.example", "10.0.0.1"),
		A("h5.example", "10.0.0.1"),
		END
	};
	struct dns_cache	*dc = dns_cache_new();
	struct spf_outcome	 o;
	char			 name[64];

	(void)state;
	for (int i = 0; i < DNS_CACHE_MAX - 3; i++) {
		snprintf(name, sizeof(name), "filler%d.example", i);
		dns_cache_put(dc, DNS_RR_A, name, DNS_R_NXDOMAIN, NULL, 0);
	}
	o = run_cache(dc, tab, "192.0.2.3", "u@example.com", "h.example",
	    "example.com");
	assert_int_equal(o.result, SPF_TEMPERROR);
	assert_non_null(strstr(o.reason, "too many DNS questions"));
	dns_cache_free(dc);
}

static void
test_bad_client(void **state)
{
	struct sockaddr		 sa;
	struct spf_query	 q = { &sa, "u@example.com", "h", "example.com",
				    NULL, 0 };
	struct spf_outcome	 o;
	struct dns_cache	*dc = dns_cache_new();

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_int_equal(spf_check(&q, dc, &o), 1);
	assert_int_equal(o.result, SPF_PERMERROR);
	assert_int_equal(dns_cache_pending(dc), 0);
	dns_cache_free(dc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_results),
		cmocka_unit_test(test_ip_cidr),
		cmocka_unit_test(test_a_mx),
		cmocka_unit_test(test_mx_one_pass),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_redirect),
		cmocka_unit_test(test_exists_macros),
		cmocka_unit_test(test_ptr),
		cmocka_unit_test(test_macro_rfc),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_expand_work),
		cmocka_unit_test(test_trailing_dot),
		cmocka_unit_test(test_multiple_records),
		cmocka_unit_test(test_include_loop),
		cmocka_unit_test(test_lookup_limit),
		cmocka_unit_test(test_mx_limit),
		cmocka_unit_test(test_void_limit),
		cmocka_unit_test(test_temperror),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_null_sender),
		cmocka_unit_test(test_rounds),
		cmocka_unit_test(test_cache_full),
		cmocka_unit_test(test_bad_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
