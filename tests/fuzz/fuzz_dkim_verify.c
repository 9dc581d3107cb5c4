/*
 * fuzz_dkim_verify - libFuzzer target for src/common/dkim_verify.c (DKIM
 * signatures, key records and messages: all untrusted).
 *
 * Input: one octet choosing the DNS answer (0: the record, 1: NXDOMAIN,
 * 2: a temporary error, 3: the record twice after a line of junk), the
 * key record up to the first LF, then the message. Invariants:
 *  - the results (every field of every signature) and the header seen
 *    are the same whether the message comes whole, one octet at a time
 *    or in pieces of a size the input chooses;
 *  - one round of answers is enough: dkimv_verify() returns 0 at most
 *    once, then 1, and again 1 with the same results;
 *  - at most DKIMV_SIGS_MAX signatures, no more than seen; each has a
 *    result other than none; d, s, i, alg, b8 and reason are NUL ended
 *    printable ASCII; the header kept is at most DKIMV_HDR_MAX.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_verify.h"
#include "dns_cache.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
printable(const char *s, size_t size)
{
	size_t	 n = strnlen(s, size);

	if (n == size)
		abort();
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			abort();
}

static void
answer(struct dns_cache *c, int mode, const char *rec)
{
	const char	*rr[3] = { "junk ; = ;", rec, rec };
	enum dns_rr	 type;
	const char	*name;

	while (dns_cache_next_wanted(c, &type, &name)) {
		if (type != DNS_RR_TXT)
			abort();
		if (mode == 0)
			dns_cache_put(c, type, name, DNS_R_OK, rr + 1, 1);
		else if (mode == 1)
			dns_cache_put(c, type, name, DNS_R_NXDOMAIN, NULL, 0);
		else if (mode == 2)
			dns_cache_put(c, type, name, DNS_R_TEMP, NULL, 0);
		else
			dns_cache_put(c, type, name, DNS_R_OK, rr, 3);
	}
}

static struct dkimv *
run(const char *m, size_t n, size_t step, int mode, const char *rec)
{
	struct dkimv		*v = dkimv_new(1700000000);
	struct dns_cache	*c = dns_cache_new();
	int			 done;

	if (v == NULL || c == NULL)
		abort();
	for (size_t i = 0; i < n; i += step)
		dkimv_feed(v, m + i, n - i < step ? n - i : step);
	if ((done = dkimv_verify(v, c)) == 0) {
		answer(c, mode, rec);
		done = dkimv_verify(v, c);
	}
	if (done != 1 || dkimv_verify(v, c) != 1)
		abort();
	dns_cache_free(c);
	return v;
}

static void
check(const struct dkimv *v)
{
	size_t	 len;
	int	 trunc;

	if (dkimv_count(v) > DKIMV_SIGS_MAX || dkimv_count(v) >
	    dkimv_seen(v) || dkimv_sig(v, dkimv_count(v)) != NULL)
		abort();
	for (size_t i = 0; i < dkimv_count(v); i++) {
		const struct dkimv_sig *s = dkimv_sig(v, i);
		if (s->result == DKIMV_NONE || s->result > DKIMV_PERMERROR)
			abort();
		printable(s->d, sizeof(s->d));
		printable(s->s, sizeof(s->s));
		printable(s->i, sizeof(s->i));
		printable(s->alg, sizeof(s->alg));
		printable(s->b8, sizeof(s->b8));
		printable(s->reason, sizeof(s->reason));
		if ((s->result == DKIMV_PASS) != (s->reason[0] == '\0'))
			abort();
	}
	dkimv_header(v, &len, &trunc);
	if (len > DKIMV_HDR_MAX)
		abort();
}

static void
same(const struct dkimv *a, const struct dkimv *b)
{
	const char	*ha, *hb;
	size_t		 la, lb;
	int		 ta, tb;

	if (dkimv_count(a) != dkimv_count(b) || dkimv_seen(a) !=
	    dkimv_seen(b))
		abort();
	for (size_t i = 0; i < dkimv_count(a); i++)
		if (memcmp(dkimv_sig(a, i), dkimv_sig(b, i),
		    sizeof(struct dkimv_sig)) != 0)
			abort();
	ha = dkimv_header(a, &la, &ta);
	hb = dkimv_header(b, &lb, &tb);
	if (la != lb || ta != tb || memcmp(ha, hb, la) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*t = (const char *)data, *nl;
	char		 rec[4096];
	size_t		 rlen, step;
	struct dkimv	*whole, *bytes, *pieces;
	int		 mode;

	if (size < 2 || size > 256 * 1024)
		return 0;
	mode = data[0] & 3;
	step = 1 + (data[0] >> 2);
	t++;
	size--;
	nl = memchr(t, '\n', size);
	rlen = nl ? (size_t)(nl - t) : size;
	if (rlen >= sizeof(rec))
		return 0;
	memcpy(rec, t, rlen);
	rec[rlen] = '\0';
	t += nl ? rlen + 1 : rlen;
	size -= nl ? rlen + 1 : rlen;
	whole = run(t, size, size ? size : 1, mode, rec);
	check(whole);
	bytes = run(t, size, 1, mode, rec);
	same(whole, bytes);
	pieces = run(t, size, step, mode, rec);
	same(whole, pieces);
	dkimv_free(whole);
	dkimv_free(bytes);
	dkimv_free(pieces);
	return 0;
}
