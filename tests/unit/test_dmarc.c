/* dmarc: record syntax, organizational domains, policy discovery over a
   table of DNS answers, alignment and the enforcement rule */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "dmarc.h"

/* ---- a DNS table: names not listed are NXDOMAIN ---- */

struct answer {
	const char		*name;
	enum dns_rstatus	 st;
	const char		*rr[4];
};

static const struct answer dns_table[] = {
	{ "_dmarc.example.com", DNS_R_OK,
	    { "v=spf1 -all", "v=DMARC1; p=reject; sp=quarantine" } },
	{ "_dmarc.sub2.example.com", DNS_R_OK, { "v=DMARC1; p=none" } },
	{ "_dmarc.other.example.com", DNS_R_OK, { "not dmarc", "v=spf1" } },
	{ "_dmarc.nosp.test", DNS_R_OK, { "v=DMARC1; p=reject" } },
	{ "_dmarc.strict.test", DNS_R_OK,
	    { "v=DMARC1; p=reject; adkim=s; aspf=s" } },
	{ "_dmarc.multi.test", DNS_R_OK,
	    { "v=DMARC1; p=reject", "v=DMARC1; p=none" } },
	{ "_dmarc.a.multi.test", DNS_R_OK,
	    { "v=DMARC1; p=reject", "v=DMARC1 ; p=reject" } },
	{ "_dmarc.temp.test", DNS_R_TEMP, { NULL } },
	{ "_dmarc.bad.test", DNS_R_OK, { "v=DMARC1; p=rejekt" } },
	{ "_dmarc.sub.bad.test", DNS_R_OK, { "v=DMARC1; pct=200; p=none" } },
	{ "_dmarc.empty.test", DNS_R_OK, { NULL } },
	{ "_dmarc.none.test", DNS_R_OK, { "v=DMARC1; p=none" } },
	{ "_dmarc.q.test", DNS_R_OK, { "v=DMARC1; p=quarantine" } },
	{ "_dmarc.pct0.test", DNS_R_OK, { "v=DMARC1; p=reject; pct=0" } },
	{ "_dmarc.pct1.test", DNS_R_OK, { "v=DMARC1; p=reject; pct=1" } },
	{ "_dmarc.testing.test", DNS_R_OK, { "v=DMARC1; p=reject; t=y" } },
	{ "_dmarc.co.uk", DNS_R_OK, { "v=DMARC1; p=quarantine" } },
	{ "_dmarc.example.co.uk", DNS_R_OK, { "v=DMARC1; p=reject" } },
	{ NULL, DNS_R_OK, { NULL } }
};

static void
answer_all(struct dns_cache *c)
{
	enum dns_rr	 t;
	const char	*name;

	while (dns_cache_next_wanted(c, &t, &name)) {
		const struct answer *a;
		size_t n = 0;

		assert_int_equal(t, DNS_RR_TXT);
		for (a = dns_table; a->name != NULL; a++)
			if (strcasecmp(a->name, name) == 0)
				break;
		if (a->name == NULL) {
			assert_int_equal(dns_cache_put(c, t, name,
			    DNS_R_NXDOMAIN, NULL, 0), 0);
			continue;
		}
		while (n < 4 && a->rr[n] != NULL)
			n++;
		assert_int_equal(dns_cache_put(c, t, name, a->st, a->rr, n),
		    0);
	}
}

/* run dmarc_check to the end; returns the number of DNS rounds */
static int
run(const struct dmarc_query *q, struct dmarc_outcome *o)
{
	struct dns_cache	*c = dns_cache_new();
	struct dmarc_outcome	 again;
	int			 rounds = 0;

	assert_non_null(c);
	while (dmarc_check(q, c, o) == 0) {
		assert_int_equal(dns_cache_pending(c), 1);
		answer_all(c);
		assert_true(++rounds <= 3);
	}
	/* deterministic over the cache, and asks nothing more */
	assert_int_equal(dmarc_check(q, c, &again), 1);
	assert_memory_equal(o, &again, sizeof(again));
	assert_int_equal(dns_cache_pending(c), 0);
	dns_cache_free(c);
	return rounds;
}

static struct dmarc_query
query(const char *from, const char *spf, int spf_pass, const char *d,
    int dpass)
{
	struct dmarc_query	 q;

	memset(&q, 0, sizeof(q));
	q.from_domain = from;
	q.spf_domain = spf;
	q.spf_pass = spf_pass;
	if (d != NULL) {
		q.ndkim = 1;
		q.dkim[0].d = d;
		q.dkim[0].pass = dpass;
	}
	return q;
}

/* ---- record syntax ---- */

static void
parse_ok(const char *txt, struct dmarc_record *r)
{
	char	 err[128] = "";

	if (dmarc_parse(txt, r, err, sizeof(err)) != 0)
		fail_msg("%s: %s", txt, err);
}

static void
parse_bad(const char *txt, const char *want)
{
	struct dmarc_record	 r;
	char			 err[128] = "";

	if (dmarc_parse(txt, &r, err, sizeof(err)) != -1)
		fail_msg("accepted: %s", txt);
	assert_string_equal(err, want);
}

static void
test_parse_good(void **state)
{
	struct dmarc_record	 r;

	(void)state;
	parse_ok("v=DMARC1; p=reject", &r);
	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_int_equal(r.sp, DMARC_P_REJECT);
	assert_int_equal(r.np, DMARC_P_REJECT);
	assert_int_equal(r.pct, 100);
	assert_false(r.adkim_strict || r.aspf_strict || r.testing);
	assert_false(r.p_from_rua);

	parse_ok("v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=50;t=y;"
	    "np=reject", &r);
	assert_int_equal(r.p, DMARC_P_QUARANTINE);
	assert_int_equal(r.sp, DMARC_P_NONE);
	assert_int_equal(r.np, DMARC_P_REJECT);
	assert_true(r.adkim_strict && r.aspf_strict && r.testing);
	assert_int_equal(r.pct, 50);

	/* spaces around ';' and '=', tabs, folding, an empty last tag */
	parse_ok("  v = DMARC1 ;\t p = none ; adkim= r ;aspf =r; pct = 050 ;",
	    &r);
	assert_int_equal(r.p, DMARC_P_NONE);
	assert_int_equal(r.pct, 50);
	parse_ok("v=DMARC1;\r\n\tp=reject;;", &r);
	assert_int_equal(r.p, DMARC_P_REJECT);

	/* unknown and reporting tags are ignored, even repeated */
	parse_ok("v=DMARC1; p=none; foo=bar; foo=baz; rua=mailto:d@example.com;"
	    " ruf=junk junk; ri=86400; fo=1; rf=afrf; psd=n; x_1=", &r);
	assert_int_equal(r.p, DMARC_P_NONE);

	/* keyword values without case (ABNF literals); bad np= ignored */
	parse_ok("v=DMARC1; p=REJECT; sp=Quarantine; adkim=S; aspf=R; t=N; "
	    "np=maybe", &r);
	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_int_equal(r.sp, DMARC_P_QUARANTINE);
	assert_int_equal(r.np, DMARC_P_QUARANTINE);
	assert_true(r.adkim_strict);
	assert_false(r.aspf_strict || r.testing);

	parse_ok("v=DMARC1; p=reject; pct=0", &r);
	assert_int_equal(r.pct, 0);
	parse_ok("v=DMARC1; p=reject; pct=100", &r);
	assert_int_equal(r.pct, 100);
}

static void
test_parse_rua_rule(void **state)
{
	struct dmarc_record	 r;

	(void)state;
	/* RFC 7489 6.6.3: no valid p= but a valid rua= reads as p=none */
	parse_ok("v=DMARC1; rua=mailto:d@example.com", &r);
	assert_int_equal(r.p, DMARC_P_NONE);
	assert_int_equal(r.sp, DMARC_P_NONE);
	assert_true(r.p_from_rua);
	parse_ok("v=DMARC1; p=bogus; rua=junk, mailto:d@example.com!10m", &r);
	assert_int_equal(r.p, DMARC_P_NONE);
	parse_ok("v=DMARC1; p=reject; sp=bogus; rua=https://r.example/x", &r);
	assert_int_equal(r.p, DMARC_P_NONE);
	assert_int_equal(r.sp, DMARC_P_NONE);
	parse_bad("v=DMARC1; rua=not a uri", "no valid p=");
	parse_bad("v=DMARC1; p=bogus; rua=mailto:", "no valid p=");
	parse_bad("v=DMARC1; p=bogus; rua=1mailto:a@b", "no valid p=");
	parse_bad("v=DMARC1; p=reject; sp=bogus", "bad sp= value");
}

static void
test_parse_bad(void **state)
{
	(void)state;
	/* not DMARC records at all */
	parse_bad("", "not a DMARC record");
	parse_bad("p=reject", "not a DMARC record");
	parse_bad("p=reject; v=DMARC1", "not a DMARC record");
	parse_bad("V=DMARC1; p=reject", "not a DMARC record");
	parse_bad("v=dmarc1; p=reject", "not a DMARC record");
	parse_bad("v=DMARC10; p=reject", "not a DMARC record");
	parse_bad("v=DMARC1 p=reject", "not a DMARC record");
	parse_bad("v=spf1 -all", "not a DMARC record");
	parse_bad("v=", "not a DMARC record");
	/* DMARC records with errors */
	parse_bad("v=DMARC1", "no valid p=");
	parse_bad("v=DMARC1;", "no valid p=");
	parse_bad("v=DMARC1; P=reject", "no valid p=");
	parse_bad("v=DMARC1; p=rejects", "no valid p=");
	parse_bad("v=DMARC1; p=re ject", "no valid p=");
	parse_bad("v=DMARC1; p=", "no valid p=");
	parse_bad("v=DMARC1; p=reject; pct=101", "bad pct= value");
	parse_bad("v=DMARC1; p=reject; pct=1000", "bad pct= value");
	parse_bad("v=DMARC1; p=reject; pct=-1", "bad pct= value");
	parse_bad("v=DMARC1; p=reject; pct=5x", "bad pct= value");
	parse_bad("v=DMARC1; p=reject; pct=", "bad pct= value");
	parse_bad("v=DMARC1; p=reject; adkim=x", "bad adkim= value");
	parse_bad("v=DMARC1; p=reject; aspf=strict", "bad aspf= value");
	parse_bad("v=DMARC1; p=reject; t=maybe", "bad t= value");
	parse_bad("v=DMARC1; p=reject; p=none", "repeated p=");
	parse_bad("v=DMARC1; p=reject; v=DMARC1", "repeated v=");
	parse_bad("v=DMARC1; p=reject; junk", "syntax error");
	parse_bad("v=DMARC1; p=reject; =x", "syntax error");
	parse_bad("v=DMARC1; p=reject; 1x=y", "syntax error");
	parse_bad("v=DMARC1; p=reject; a b=y", "syntax error");

	assert_true(dmarc_is_record("v=DMARC1"));
	assert_true(dmarc_is_record(" v =DMARC1 ;p=x"));
	assert_false(dmarc_is_record("v=DMARC1x"));
	assert_false(dmarc_is_record("x v=DMARC1"));
}

/* ---- organizational domains ---- */

static void
org_is(const char *in, const char *want)
{
	char	 out[256];

	if (dmarc_org_domain(in, out, sizeof(out)) != 0)
		fail_msg("refused: %s", in);
	assert_string_equal(out, want);
}

static void
test_org_domain(void **state)
{
	char	 out[256], big[300];

	(void)state;
	org_is("example.co.uk", "example.co.uk");
	org_is("a.b.example.co.uk", "example.co.uk");
	org_is("a.b.example.com", "example.com");
	org_is("example.com", "example.com");
	org_is("far.test", "far.test");		/* not in the list: "*" */
	org_is("x.y.far.test", "far.test");
	org_is("co.uk", "co.uk");		/* a public suffix itself */
	org_is("com", "com");
	org_is("A.B.Example.COM.", "example.com");	/* trailing dot */
	org_is("_dmarc.example.com", "example.com");

	assert_int_equal(dmarc_org_domain(NULL, out, sizeof(out)), -1);
	assert_int_equal(dmarc_org_domain("", out, sizeof(out)), -1);
	assert_int_equal(dmarc_org_domain(".", out, sizeof(out)), -1);
	assert_int_equal(dmarc_org_domain("a..b", out, sizeof(out)), -1);
	assert_int_equal(dmarc_org_domain(".example.com", out, sizeof(out)),
	    -1);
	assert_int_equal(dmarc_org_domain("example.com..", out, sizeof(out)),
	    -1);
	assert_int_equal(dmarc_org_domain("exa mple.com", out, sizeof(out)),
	    -1);
	assert_int_equal(dmarc_org_domain("user@example.com", out,
	    sizeof(out)), -1);
	assert_int_equal(dmarc_org_domain("[192.0.2.1]", out, sizeof(out)),
	    -1);
	assert_int_equal(dmarc_org_domain("ex\xc3\xa4mple.com", out,
	    sizeof(out)), -1);
	memset(big, 'a', 64);
	memcpy(big + 64, ".com", 5);
	assert_int_equal(dmarc_org_domain(big, out, sizeof(out)), -1);
	for (size_t i = 0; i < 254; i += 2)	/* 254 octets: too long */
		memcpy(big + i, "a.", 2);
	big[253] = 'a';
	big[254] = '\0';
	assert_int_equal(dmarc_org_domain(big, out, sizeof(out)), -1);
	big[253] = '\0';			/* 253: fine */
	big[252] = 'a';
	org_is(big, "a.a");
	/* the output must fit */
	assert_int_equal(dmarc_org_domain("example.com", out, 11), -1);
	assert_int_equal(dmarc_org_domain("example.com", out, 12), 0);
}

/* ---- discovery ---- */

static void
test_discovery(void **state)
{
	struct dmarc_query	 q;
	struct dmarc_outcome	 o;

	(void)state;
	/* at the From domain: one DNS round, p= */
	q = query("example.com", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_int_equal(o.policy, DMARC_P_REJECT);
	assert_string_equal(o.record_domain, "example.com");
	assert_string_equal(o.reason, "no aligned identifier");

	/* a subdomain without a record: two rounds, then sp= */
	q = query("Sub.Example.COM.", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 2);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_int_equal(o.policy, DMARC_P_QUARANTINE);
	assert_string_equal(o.record_domain, "example.com");
	/* deep subdomains go straight to the organizational domain */
	q = query("a.b.c.example.com", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 2);
	assert_int_equal(o.policy, DMARC_P_QUARANTINE);
	/* TXT records that are not DMARC do not count */
	q = query("other.example.com", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 2);
	assert_string_equal(o.record_domain, "example.com");
	assert_int_equal(o.policy, DMARC_P_QUARANTINE);
	/* a record of its own: p= of that record */
	q = query("sub2.example.com", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_string_equal(o.record_domain, "sub2.example.com");
	assert_int_equal(o.policy, DMARC_P_NONE);
	/* sp= defaults to p= */
	q = query("x.nosp.test", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 2);
	assert_int_equal(o.policy, DMARC_P_REJECT);
	/* NODATA is no record as well */
	q = query("x.empty.test", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 2);
	assert_int_equal(o.result, DMARC_NONE);

	/* a public suffix as the From domain: one lookup */
	q = query("co.uk", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.policy, DMARC_P_QUARANTINE);
	q = query("www.example.co.uk", "", 0, "example.co.uk", 1);
	assert_int_equal(run(&q, &o), 2);
	assert_int_equal(o.result, DMARC_PASS);
	assert_int_equal(o.policy, DMARC_P_REJECT);
}

/* the rounds one by one: each call asks one question, from the start */
static void
test_rounds(void **state)
{
	struct dmarc_query	 q = query("sub.example.com", "", 0, NULL, 0);
	struct dmarc_outcome	 o;
	struct dns_cache	*c = dns_cache_new();
	enum dns_rr		 t;
	const char		*name;
	const char		*rec[] = { "v=DMARC1; p=reject; sp=none" };

	(void)state;
	assert_non_null(c);
	assert_int_equal(dmarc_check(&q, c, &o), 0);
	assert_int_equal(dmarc_check(&q, c, &o), 0);	/* asked once */
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 1);
	assert_int_equal(t, DNS_RR_TXT);
	assert_string_equal(name, "_dmarc.sub.example.com");
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 0);
	dns_cache_put(c, DNS_RR_TXT, "_dmarc.sub.example.com", DNS_R_OK,
	    NULL, 0);
	assert_int_equal(dmarc_check(&q, c, &o), 0);
	assert_int_equal(dns_cache_next_wanted(c, &t, &name), 1);
	assert_string_equal(name, "_dmarc.example.com");
	dns_cache_put(c, DNS_RR_TXT, "_dmarc.example.com.", DNS_R_OK, rec, 1);
	assert_int_equal(dmarc_check(&q, c, &o), 1);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_int_equal(o.policy, DMARC_P_NONE);
	assert_false(dmarc_enforceable(&o));
	dns_cache_free(c);
}

static void
test_no_record(void **state)
{
	struct dmarc_query	 q;
	struct dmarc_outcome	 o;

	(void)state;
	/* NXDOMAIN at both names */
	q = query("www.nowhere.test", "nowhere.test", 1, "nowhere.test", 1);
	assert_int_equal(run(&q, &o), 2);
	assert_int_equal(o.result, DMARC_NONE);
	assert_int_equal(o.policy, DMARC_P_UNSET);
	assert_string_equal(o.record_domain, "");
	assert_string_equal(o.reason, "no DMARC record");
	assert_false(dmarc_enforceable(&o));
	q = query("nowhere.test", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.result, DMARC_NONE);

	/* several records at one name: none, and no fallback */
	q = query("multi.test", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.result, DMARC_NONE);
	assert_string_equal(o.reason, "multiple DMARC records");
	q = query("a.multi.test", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.result, DMARC_NONE);
	assert_int_equal(o.policy, DMARC_P_UNSET);

	/* no usable From domain */
	q = query("exa mple.com", "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 0);
	assert_int_equal(o.result, DMARC_NONE);
	assert_string_equal(o.reason, "no valid From domain");
	q = query(NULL, "", 0, NULL, 0);
	assert_int_equal(run(&q, &o), 0);
	assert_int_equal(o.result, DMARC_NONE);
}

static void
test_errors(void **state)
{
	struct dmarc_query	 q;
	struct dmarc_outcome	 o;

	(void)state;
	/* DNS_R_TEMP on the first and on the second lookup */
	q = query("temp.test", "temp.test", 1, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.result, DMARC_TEMPERROR);
	assert_string_equal(o.reason, "DNS timeout");
	assert_int_equal(o.policy, DMARC_P_UNSET);
	q = query("x.temp.test", "temp.test", 1, NULL, 0);
	assert_int_equal(run(&q, &o), 2);
	assert_int_equal(o.result, DMARC_TEMPERROR);

	/* an invalid record: permerror, no fallback to the org domain */
	q = query("bad.test", "bad.test", 1, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.result, DMARC_PERMERROR);
	assert_int_equal(o.policy, DMARC_P_UNSET);
	assert_string_equal(o.record_domain, "bad.test");
	assert_string_equal(o.reason, "bad record: no valid p=");
	assert_false(dmarc_enforceable(&o));
	q = query("sub.bad.test", "bad.test", 1, NULL, 0);
	assert_int_equal(run(&q, &o), 1);
	assert_int_equal(o.result, DMARC_PERMERROR);
	assert_string_equal(o.record_domain, "sub.bad.test");
	assert_string_equal(o.reason, "bad record: bad pct= value");
}

/* ---- alignment ---- */

static void
test_align_dkim(void **state)
{
	struct dmarc_query	 q;
	struct dmarc_outcome	 o;

	(void)state;
	/* relaxed: organizational domains equal */
	q = query("example.com", "", 0, "Mail.Example.com.", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_PASS);
	assert_true(o.dkim_aligned);
	assert_false(o.spf_aligned);
	assert_string_equal(o.reason, "aligned DKIM mail.example.com");
	q = query("sub.example.com", "", 0, "example.com", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_PASS);
	/* a failed signature does not count */
	q = query("example.com", "", 0, "example.com", 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_false(o.dkim_aligned);
	/* other organizations, also under one public suffix */
	q = query("example.com", "", 0, "example.net", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("example.co.uk", "", 0, "co.uk", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("example.co.uk", "", 0, "other.co.uk", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("example.com", "", 0, "badexample.com", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("example.com", "", 0, "bad name.example.com", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);

	/* strict: the same name */
	q = query("strict.test", "", 0, "mail.strict.test", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("strict.test", "", 0, "STRICT.test.", 1);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_PASS);
	assert_string_equal(o.reason, "aligned DKIM strict.test");

	/* any of several signatures; the first aligned one is named */
	q = query("example.com", "", 0, "example.net", 1);
	q.ndkim = 4;
	q.dkim[1].d = "a.example.com";
	q.dkim[1].pass = 0;
	q.dkim[2].d = NULL;
	q.dkim[2].pass = 1;
	q.dkim[3].d = "b.example.com";
	q.dkim[3].pass = 1;
	run(&q, &o);
	assert_int_equal(o.result, DMARC_PASS);
	assert_string_equal(o.reason, "aligned DKIM b.example.com");
	/* ndkim past DMARC_DKIM_MAX is clamped */
	q = query("example.com", "", 0, "example.net", 1);
	q.ndkim = 1000;
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
}

static void
test_align_spf(void **state)
{
	struct dmarc_query	 q;
	struct dmarc_outcome	 o;

	(void)state;
	q = query("example.com", "bounces.example.com", 1, NULL, 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_PASS);
	assert_true(o.spf_aligned);
	assert_string_equal(o.reason, "aligned SPF");
	q = query("example.com", "bounces.example.com", 0, NULL, 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("example.com", "example.org", 1, NULL, 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	/* the null sender never aligns */
	q = query("example.com", "", 1, NULL, 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("example.com", NULL, 1, NULL, 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	/* strict */
	q = query("strict.test", "mail.strict.test", 1, NULL, 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	q = query("strict.test", "Strict.Test", 1, NULL, 0);
	run(&q, &o);
	assert_int_equal(o.result, DMARC_PASS);
	/* both: DKIM is named, both flags set */
	q = query("example.com", "example.com", 1, "example.com", 1);
	run(&q, &o);
	assert_true(o.dkim_aligned && o.spf_aligned);
	assert_string_equal(o.reason, "aligned DKIM example.com");
}

/*
 * An aligned identifier whose check failed on DNS (SPF or DKIM temperror)
 * might have passed: the result is temperror, never fail, so that no
 * message is rejected because a DNS answer was late.
 */
static void
test_align_temp(void **state)
{
	struct dmarc_query	 q;
	struct dmarc_outcome	 o;

	(void)state;
	q = query("example.com", "bounces.example.com", 0, NULL, 0);
	q.spf_temp = 1;
	run(&q, &o);
	assert_int_equal(o.result, DMARC_TEMPERROR);
	assert_int_equal(o.policy, DMARC_P_REJECT);
	q = query("example.com", "example.org", 0, "mail.example.com", 0);
	q.dkim[0].temp = 1;
	run(&q, &o);
	assert_int_equal(o.result, DMARC_TEMPERROR);
	/* a temporary error of an identifier that cannot align: fail */
	q = query("example.com", "example.org", 0, "example.net", 0);
	q.spf_temp = 1;
	q.dkim[0].temp = 1;
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	/* strict: a subdomain does not align, its error does not count */
	q = query("strict.test", "mail.strict.test", 0, NULL, 0);
	q.spf_temp = 1;
	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	/* an aligned pass wins over another identifier's error */
	q = query("example.com", "example.com", 0, "example.com", 1);
	q.spf_temp = 1;
	run(&q, &o);
	assert_int_equal(o.result, DMARC_PASS);
}

/* ---- enforcement ---- */

static int
enforce(const char *from)
{
	struct dmarc_query	 q = query(from, "", 0, NULL, 0);
	struct dmarc_outcome	 o;

	run(&q, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	return dmarc_enforceable(&o);
}

static void
test_enforceable(void **state)
{
	(void)state;
	assert_false(enforce("none.test"));
	assert_true(enforce("q.test"));
	assert_true(enforce("nosp.test"));
	assert_false(enforce("pct0.test"));
	assert_true(enforce("pct1.test"));	/* no sampling */
	assert_false(enforce("testing.test"));
	assert_false(enforce("sub2.example.com"));	/* own p=none */

	assert_string_equal(dmarc_result_name(DMARC_NONE), "none");
	assert_string_equal(dmarc_result_name(DMARC_PASS), "pass");
	assert_string_equal(dmarc_result_name(DMARC_FAIL), "fail");
	assert_string_equal(dmarc_result_name(DMARC_TEMPERROR), "temperror");
	assert_string_equal(dmarc_result_name(DMARC_PERMERROR), "permerror");
	assert_string_equal(dmarc_policy_name(DMARC_P_UNSET), "none");
	assert_string_equal(dmarc_policy_name(DMARC_P_NONE), "none");
	assert_string_equal(dmarc_policy_name(DMARC_P_QUARANTINE),
	    "quarantine");
	assert_string_equal(dmarc_policy_name(DMARC_P_REJECT), "reject");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_rua_rule),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_org_domain),
		cmocka_unit_test(test_discovery),
		cmocka_unit_test(test_rounds),
		cmocka_unit_test(test_no_record),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_align_dkim),
		cmocka_unit_test(test_align_spf),
		cmocka_unit_test(test_align_temp),
		cmocka_unit_test(test_enforceable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
