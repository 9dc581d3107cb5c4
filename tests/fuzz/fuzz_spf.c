/*
 * fuzz_spf - libFuzzer target for src/common/spf.c (SPF records and DNS
 * answers are untrusted input).
 *
 * Input: a first octet of flags (bit 0: IPv6 client, bit 1: v4-mapped
 * client, bit 2: null sender), then lines. The first line is the TXT
 * record of example.com; each further line is a fake DNS answer
 * "<type><name>=<value>" with type T (TXT), A, 6 (AAAA), M (MX), P (PTR);
 * "E<name>=" makes every question about name a temporary failure,
 * "Z<name>=" an empty answer. Lines for the same type and name add
 * records; anything else is NXDOMAIN.
 *
 * Invariants: the evaluation ends (a bounded number of DNS rounds), the
 * outcome is a known result with a short printable reason, the counters
 * stay within one of their limits, a run over the finished cache gives
 * the same outcome, and spf_expand() of the record text stays in bounds.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spf.h"

#define FZ_LINES	64
#define FZ_RR		16

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct fz_line {
	char	 type;
	char	*name;
	char	*value;
};

static size_t
fz_split(char *text, struct fz_line *l)
{
	size_t	 n = 0;
	char	*p = text, *nl, *eq;

	while (p != NULL && n < FZ_LINES) {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		if (*p != '\0' && (eq = strchr(p + 1, '=')) != NULL) {
			*eq = '\0';
			l[n].type = p[0];
			l[n].name = p + 1;
			l[n++].value = eq + 1;
		}
		p = nl;
	}
	return n;
}

static char
fz_code(enum dns_rr t)
{
	switch (t) {
	case DNS_RR_TXT:	return 'T';
	case DNS_RR_A:		return 'A';
	case DNS_RR_AAAA:	return '6';
	case DNS_RR_MX:		return 'M';
	case DNS_RR_PTR:	return 'P';
	}
	return '?';
}

static void
fz_answer(struct dns_cache *dc, const char *rec, const struct fz_line *l,
    size_t nl, enum dns_rr t, const char *name)
{
	const char		*rr[FZ_RR];
	size_t			 n = 0;
	enum dns_rstatus	 st = DNS_R_NXDOMAIN;

	if (t == DNS_RR_TXT && strcasecmp(name, "example.com") == 0) {
		rr[n++] = rec;
		st = DNS_R_OK;
	}
	for (size_t i = 0; i < nl; i++) {
		if (strcasecmp(l[i].name, name) != 0)
			continue;
		if (l[i].type == 'E') {
			st = DNS_R_TEMP;
			break;
		}
		if (l[i].type == 'Z' && n == 0)
			st = DNS_R_OK;
		if (l[i].type == fz_code(t) && n < FZ_RR) {
			rr[n++] = l[i].value;
			st = DNS_R_OK;
		}
	}
	dns_cache_put(dc, t, name, st, rr, st == DNS_R_OK ? n : 0);
}

static void
fz_check_outcome(const struct spf_outcome *o)
{
	size_t	 len = strnlen(o->reason, sizeof(o->reason));

	if (o->result > SPF_PERMERROR || len == 0 || len == sizeof(o->reason))
		abort();
	for (size_t i = 0; i < len; i++)
		if (o->reason[i] < 0x20 || o->reason[i] > 0x7e)
			abort();
	if (o->lookups > SPF_LOOKUP_MAX + 1 ||
	    o->void_lookups > SPF_VOID_MAX + 1)
		abort();
}

static void
fz_expand(const struct spf_query *q, const char *macro)
{
	char	 out[300];

	if (spf_expand(q, "example.com", macro, 0, out, sizeof(out)) == 0 &&
	    strlen(out) > SPF_DOMAIN_MAX)
		abort();
	if (spf_expand(q, "example.com", macro, 1, out, 16) == 0 &&
	    strlen(out) >= 16)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	struct spf_query	 q = { (struct sockaddr *)&ss,
				    "strong-bad@example.com", "mx.example.org",
				    "example.com", "mx.receiver.example", 42 };
	struct fz_line		 l[FZ_LINES];
	struct spf_outcome	 o, o2;
	struct dns_cache	*dc;
	char			*text, *rec, *nl;
	const char		*name;
	enum dns_rr		 t;
	size_t			 n;
	int			 rounds;

	if (size < 1 || size > 16384)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (data[0] & 1) {
		sin6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, data[0] & 2 ? "::ffff:192.0.2.3" :
		    "2001:db8::cb01", &sin6->sin6_addr);
	} else {
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, "192.0.2.3", &sin->sin_addr);
	}
	if (data[0] & 4)
		q.sender = "";
	if ((text = malloc(size)) == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	rec = text;
	if ((nl = strchr(text, '\n')) != NULL)
		*nl++ = '\0';
	n = nl != NULL ? fz_split(nl, l) : 0;

	fz_expand(&q, rec);
	if ((dc = dns_cache_new()) == NULL) {
		free(text);
		return 0;
	}
	for (rounds = 0; spf_check(&q, dc, &o) == 0; rounds++) {
		if (rounds > DNS_CACHE_MAX + 2 || dns_cache_pending(dc) == 0)
			abort();
		while (dns_cache_next_wanted(dc, &t, &name))
			fz_answer(dc, rec, l, n, t, name);
	}
	fz_check_outcome(&o);
	if (spf_check(&q, dc, &o2) != 1 || o2.result != o.result ||
	    strcmp(o2.reason, o.reason) != 0 || o2.lookups != o.lookups)
		abort();
	dns_cache_free(dc);
	free(text);
	return 0;
}
