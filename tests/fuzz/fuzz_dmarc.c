/*
 * fuzz_dmarc - libFuzzer target for src/common/dmarc.c (DMARC records
 * come from anyone's DNS; From domains from anyone's message).
 *
 * Input: the bytes up to the first NUL, read three ways. Invariants:
 *  - dmarc_parse() accepts only what dmarc_is_record() calls a record,
 *    and what it accepts has policies in range and pct <= 100; its error
 *    text is short printable ASCII;
 *  - as a domain, dmarc_org_domain() gives a lower-case tail of it;
 *  - as the TXT answers (one per line) at _dmarc.example.com, checking a
 *    From of sub.example.com ends within three DNS rounds, gives the same
 *    outcome when run again over the full cache, and a reason made of
 *    printable ASCII; pass only with an aligned identifier.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dmarc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f)
			abort();
}

static void
check_parse(const char *txt)
{
	struct dmarc_record	 r;
	char			 err[64];

	err[0] = '\0';
	if (dmarc_parse(txt, &r, err, sizeof(err)) == -1) {
		if (err[0] == '\0')
			abort();
		printable(err);
		return;
	}
	if (!dmarc_is_record(txt) || r.p < DMARC_P_NONE ||
	    r.p > DMARC_P_REJECT || r.sp < DMARC_P_NONE ||
	    r.sp > DMARC_P_REJECT || r.np < DMARC_P_NONE ||
	    r.np > DMARC_P_REJECT || r.pct > 100)
		abort();
}

static void
check_org(const char *name)
{
	char	 out[DMARC_NAME_MAX + 1];
	size_t	 nlen = strlen(name), olen;

	if (dmarc_org_domain(name, out, sizeof(out)) == -1)
		return;
	if (nlen > 0 && name[nlen - 1] == '.')
		nlen--;
	olen = strlen(out);
	if (olen == 0 || olen > nlen ||
	    strncasecmp(name + nlen - olen, out, olen) != 0)
		abort();
	for (size_t i = 0; i < olen; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			abort();
}

static void
answer(struct dns_cache *c, char *txt)
{
	const char	*rr[8];
	enum dns_rr	 t;
	const char	*name;
	size_t		 n = 0;

	for (char *p = txt, *nl; p != NULL && n < 8; p = nl) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		rr[n++] = p;
	}
	while (dns_cache_next_wanted(c, &t, &name)) {
		if (strcmp(name, "_dmarc.example.com") == 0)
			dns_cache_put(c, t, name, DNS_R_OK, rr, n);
		else
			dns_cache_put(c, t, name, DNS_R_NXDOMAIN, NULL, 0);
	}
}

static void
check_eval(char *txt)
{
	struct dmarc_query	 q = { "sub.example.com", "mail.example.com",
	    1, 2, { { "example.com", 0, 1 }, { "Example.NET", 1, 0 } }, 1 };
	struct dmarc_outcome	 o, o2;
	struct dns_cache	*c;
	int			 rounds = 0;

	if ((c = dns_cache_new()) == NULL)
		return;
	while (dmarc_check(&q, c, &o) == 0) {
		if (++rounds > 3)
			abort();
		answer(c, txt);
	}
	if (dmarc_check(&q, c, &o2) != 1 || memcmp(&o, &o2, sizeof(o)) != 0)
		abort();
	printable(o.reason);
	printable(o.record_domain);
	if ((o.result == DMARC_PASS) != o.spf_aligned || o.dkim_aligned)
		abort();
	if ((o.result == DMARC_PASS || o.result == DMARC_FAIL ||
	    (o.result == DMARC_TEMPERROR && o.record_domain[0] != '\0')) !=
	    (o.policy != DMARC_P_UNSET))
		abort();
	/* example.com's DKIM error aligns unless adkim=s: never a fail */
	if (o.result == DMARC_FAIL && !o.record.adkim_strict)
		abort();
	dns_cache_free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s;

	if (size > 8192 || (s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_parse(s);
	check_org(s);
	check_eval(s);
	free(s);
	return 0;
}
