/* dns_cache: wanted questions, answers, names, caps (dns_cache.h) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dns_cache.h"

static void
test_want_then_answer(void **state)
{
	struct dns_cache	*c = dns_cache_new();
	const struct dns_rrset	*a;
	const char		*rr[] = { "v=spf1 -all", "other" }, *name;
	enum dns_rr		 t;

	(void)state;
	assert_non_null(c);
	assert_null(dns_cache_get(c, DNS_RR_TXT, "Example.ORG."));
	/* asked twice, wanted once */
	assert_null(dns_cache_get(c, DNS_RR_TXT, "example.org"));
	/* another type is another question */
	assert_null(dns_cache_get(c, DNS_RR_A, "example.org"));
	assert_int_equal(dns_cache_pending(c), 2);
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 1);
	assert_int_equal(t, DNS_RR_TXT);
	assert_string_equal(name, "Example.ORG");
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 1);
	assert_int_equal(t, DNS_RR_A);
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 0);
	/* asked, not answered: still pending, not wanted again */
	assert_null(dns_cache_get(c, DNS_RR_TXT, "example.org"));
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 0);
	assert_int_equal(dns_cache_put(c, DNS_RR_TXT, "EXAMPLE.org.",
	    DNS_R_OK, rr, 2), 0);
	assert_int_equal(dns_cache_pending(c), 1);
	a = dns_cache_get(c, DNS_RR_TXT, "example.org");
	assert_non_null(a);
	assert_int_equal(a->status, DNS_R_OK);
	assert_int_equal(a->n, 2);
	assert_string_equal(a->rr[0], "v=spf1 -all");
	assert_string_equal(a->rr[1], "other");
	assert_int_equal(dns_cache_put(c, DNS_RR_A, "example.org",
	    DNS_R_TEMP, NULL, 0), 0);
	a = dns_cache_get(c, DNS_RR_A, "example.org");
	assert_int_equal(a->status, DNS_R_TEMP);
	assert_int_equal(a->n, 0);
	assert_int_equal(dns_cache_pending(c), 0);
	dns_cache_free(c);
}

static void
test_bad_names(void **state)
{
	struct dns_cache	*c = dns_cache_new();
	const struct dns_rrset	*a;
	const char		*name;
	enum dns_rr		 t;
	char			 label[80], longname[300];
	const char		*bad[] = { "", ".", "a..b", ".a", label,
	    longname };

	(void)state;
	memset(label, 'x', 64);
	snprintf(label + 64, sizeof(label) - 64, ".org");
	memset(longname, 0, sizeof(longname));
	for (size_t i = 0; i + 2 < 280; i += 2)
		memcpy(longname + i, "a.", 2);
	longname[280] = 'a';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		a = dns_cache_get(c, DNS_RR_TXT, bad[i]);
		assert_non_null(a);
		assert_int_equal(a->status, DNS_R_NXDOMAIN);
	}
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 0);
	dns_cache_free(c);
}

static void
test_caps(void **state)
{
	struct dns_cache	*c = dns_cache_new();
	const struct dns_rrset	*a;
	char			 name[64], big[DNS_CACHE_TXT_MAX + 100];
	const char		*many[DNS_CACHE_RR_MAX + 5], *one[] = { big };

	(void)state;
	for (size_t i = 0; i < DNS_CACHE_MAX; i++) {
		snprintf(name, sizeof(name), "n%zu.test", i);
		assert_null(dns_cache_get(c, DNS_RR_A, name));
	}
	/* full: a temporary error, never "wait for ever" */
	a = dns_cache_get(c, DNS_RR_A, "one-more.test");
	assert_ptr_equal(a, &dns_cache_full);
	assert_int_equal(a->status, DNS_R_TEMP);
	for (size_t i = 0; i < DNS_CACHE_RR_MAX + 5; i++)
		many[i] = "192.0.2.1";
	assert_int_equal(dns_cache_put(c, DNS_RR_A, "n0.test", DNS_R_OK,
	    many, DNS_CACHE_RR_MAX + 5), 0);
	a = dns_cache_get(c, DNS_RR_A, "n0.test");
	assert_int_equal(a->n, DNS_CACHE_RR_MAX);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dns_cache_put(c, DNS_RR_A, "n1.test", DNS_R_OK,
	    one, 1), 0);
	a = dns_cache_get(c, DNS_RR_A, "n1.test");
	assert_int_equal(strlen(a->rr[0]), DNS_CACHE_TXT_MAX);
	/* an answer replaces the earlier one */
	assert_int_equal(dns_cache_put(c, DNS_RR_A, "n1.test",
	    DNS_R_NXDOMAIN, NULL, 0), 0);
	a = dns_cache_get(c, DNS_RR_A, "n1.test");
	assert_int_equal(a->status, DNS_R_NXDOMAIN);
	assert_int_equal(a->n, 0);
	dns_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_want_then_answer),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
