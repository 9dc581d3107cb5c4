/*
 * fuzz_mask - libFuzzer target for src/common/mask.c (the masked relay:
 * headers of untrusted mail, local parts of untrusted addresses).
 *
 * Input: a header section (or anything). Invariants:
 *  - map_addr is called with addresses addr_parse() accepts only;
 *  - mask_rewrite() with every address mapped to MAPPED succeeds or fails
 *    only for a limit (too many addresses, too big);
 *  - its output has no NUL or CR, no line over 998 octets, ends with LF,
 *    starts with a field, and has only fields of the allow-list plus the
 *    Reply-To: and X-Sluice-Mask: it writes; one From:, one Reply-To:,
 *    one X-Sluice-Mask: (the last field); an empty line only at the end;
 *  - in From:, To:, Cc: and Reply-To: every '@' is one of an address we
 *    gave it ("...@mask.test>"): no address of the input survives there;
 *  - every other field is a field of the input, byte for byte;
 *  - mask_mark_present() finds the mark in the output;
 *  - mask_local_parse() gives a lower-case code, empty with MASK_NONE;
 *  - mask_verp_parse() accepts only the canonical form mask_verp_new()
 *    writes, and mask_verp_new() output parses back to its input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "mask.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define KEY	"0123456789abcdef0123"
#define MAPPED	"x@mask.test"

static int
map_all(void *arg, const char *addr, char *out, size_t outlen)
{
	struct mailaddr	 a;

	(void)arg;
	/* the callback only ever sees addresses */
	if (addr_parse(addr, strlen(addr), ADDR_F_UTF8, &a) != ADDR_OK)
		abort();
	/* drop some, so that fields vanish too */
	if (addr[0] == 'd')
		return MASK_ADDR_DROP;
	snprintf(out, outlen, "%s", MAPPED);
	return MASK_ADDR_KEEP;
}

static size_t
count(const char *s, size_t n, const char *w)
{
	size_t	 c = 0, wl = strlen(w);

	for (size_t i = 0; i + wl <= n; i++)
		if (memcmp(s + i, w, wl) == 0)
			c++;
	return c;
}

static int
named(const char *f, size_t n, const char *name)
{
	size_t	 l = strlen(name);

	return n > l && f[l] == ':' && strncasecmp(f, name, l) == 0;
}

/* does f[0..n) occur in the input at the start of a line? */
static int
input_field(const char *in, size_t inlen, const char *f, size_t n)
{
	for (size_t i = 0; i + n <= inlen; i++)
		if ((i == 0 || in[i - 1] == '\n') && memcmp(in + i, f, n) == 0)
			return 1;
	return 0;
}

/* one output field f[0..n) (with its LF and folded lines) */
static void
check_field(const char *in, size_t inlen, const char *f, size_t n,
    int *from, int *reply, int *mark)
{
	static const char *const copied[] = { "Subject", "Date",
	    "Message-ID", "References", "In-Reply-To", "MIME-Version",
	    "Auto-Submitted" };
	int	 ok = 0;

	if (named(f, n, "From") || named(f, n, "To") || named(f, n, "Cc") ||
	    named(f, n, "Reply-To")) {
		if (count(f, n, "@") != count(f, n, "@mask.test>"))
			abort();
		*from += named(f, n, "From");
		*reply += named(f, n, "Reply-To");
		return;
	}
	if (named(f, n, "X-Sluice-Mask")) {
		(*mark)++;
		return;
	}
	for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
		ok |= named(f, n, copied[i]);
	ok |= (n > 8 && strncasecmp(f, "Content-", 8) == 0 &&
	    memchr(f, ':', n) != NULL);
	ok |= (n > 5 && strncasecmp(f, "List-", 5) == 0 &&
	    memchr(f, ':', n) != NULL);
	if (!ok)
		abort();
	/* the input's last field may have had no LF */
	if (!input_field(in, inlen, f, n) && !input_field(in, inlen, f, n - 1))
		abort();
}

static void
check_output(const char *in, size_t inlen, const char *o, size_t n)
{
	size_t	 p = 0, col = 0, e, last = 0;
	int	 from = 0, reply = 0, mark = 0;

	if (n == 0 || strlen(o) != n || o[n - 1] != '\n' || o[0] == ' ' ||
	    o[0] == '\t' || o[0] == '\n')
		abort();
	for (size_t i = 0; i < n; i++) {
		if (o[i] == '\r')
			abort();
		col = o[i] == '\n' ? 0 : col + 1;
		if (col > MASK_LINE_MAX)
			abort();
	}
	while (p < n) {
		if (o[p] == '\n') {
			if (p + 1 != n)
				abort();	/* an empty line inside */
			break;
		}
		for (e = p;;) {
			const char *nl = memchr(o + e, '\n', n - e);
			e = (size_t)(nl - o) + 1;
			if (e >= n || (o[e] != ' ' && o[e] != '\t'))
				break;
		}
		check_field(in, inlen, o + p, e - p, &from, &reply, &mark);
		last = p;
		p = e;
	}
	if (from != 1 || reply != 1 || mark != 1 ||
	    !named(o + last, n - last, "X-Sluice-Mask"))
		abort();
	if (mask_mark_present(o, n, "m1") != 1)
		abort();
}

static void
fuzz_rewrite(const char *t, size_t size)
{
	struct mask_map	 map = { "mask.test", "user-f@mask.test",
	    "user-r@mask.test", "m1", map_all, NULL };
	struct buf	 out;
	enum mask_err	 why = MASK_OK;

	buf_init(&out, 1 << 24);
	if (mask_rewrite(t, size, &map, &out, &why) == 0) {
		if (why != MASK_OK)
			abort();
		check_output(t, size, out.data, out.len);
	} else if (why != MASK_ERR_ADDRS && why != MASK_ERR_TOOBIG &&
	    why != MASK_ERR_NOMEM)
		abort();
	buf_free(&out);
	if (mask_auto_submitted(t, size) > 1 ||
	    mask_auto_submitted(t, size) < 0 ||
	    mask_mark_present(t, size, "m1") > 1)
		abort();
}

static void
fuzz_locals(const char *t, size_t size)
{
	static const char *const keys[] = { KEY, "another key, rotated out" };
	char			 local[128], code[64], pc[MASK_CODE_LEN + 1];
	char			 again[128];
	unsigned long long	 no;
	enum mask_kind		 kind;
	size_t			 n = size < sizeof(local) - 1 ? size :
				    sizeof(local) - 1;

	memcpy(local, t, n);
	local[n] = '\0';
	kind = mask_local_parse(local, code, sizeof(code));
	for (char *c = code; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			abort();
	if (kind == MASK_NONE && code[0] != '\0')
		abort();
	if (mask_code_valid(kind, code, keys, 2) == 1 &&
	    strlen(code) != MASK_CODE_LEN)
		abort();
	if (mask_verp_parse(local, keys, 2, pc, sizeof(pc), &no) == 0) {
		if (mask_verp_new(keys[0], pc, no, again, sizeof(again)) ==
		    -1 || (strcasecmp(again, local) != 0 &&
		    mask_verp_new(keys[1], pc, no, again, sizeof(again)) ==
		    -1) || strcasecmp(again, local) != 0)
			abort();
	}
	/* a VERP address made of the input parses back */
	if (n >= 8) {
		char pair[MASK_CODE_LEN + 1];
		unsigned long long m = 0;
		size_t pl = 1 + (unsigned char)t[0] % MASK_CODE_LEN;
		for (size_t i = 0; i < 8; i++)
			m = m << 8 | (unsigned char)t[i];
		for (size_t i = 0; i < pl; i++)
			pair[i] = "abcdefghijklmnopqrstuvwxyz234567"
			    [(unsigned char)t[(i + 1) % n] % 32];
		pair[pl] = '\0';
		if (mask_verp_new(KEY, pair, m, again, sizeof(again)) == -1 ||
		    mask_verp_parse(again, keys, 2, pc, sizeof(pc), &no) ==
		    -1 || strcmp(pc, pair) != 0 || no != m)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*t = (const char *)data;

	fuzz_rewrite(t, size);
	fuzz_locals(t, size);
	return 0;
}
