/*
 * fuzz_rewrite - libFuzzer target for src/deliver/rewrite.c (From:
 * rewriting of a route, on message headers: untrusted input).
 *
 * Input: raw message bytes. Invariants:
 *  - header_section_len() is 0 or within the input and ends on "\n\n"
 *    (or is the 1 of a message that starts with its empty line);
 *  - rewrite_from() of the header section grows it by at most the new
 *    address and a "From: <>\n" frame, and is idempotent;
 *  - every field but the first From: is copied unchanged (the output with
 *    that field taken out equals the input with it taken out);
 *  - header_addresses() (the submission From: check) stays in its bounds
 *    and gives NUL-terminated, non-empty addresses on one line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rewrite.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ADDR	"me@isp.test"

/* text without its first From: field (and its folded lines) */
static size_t
drop_from(const char *t, size_t len, char *out)
{
	size_t	 p = 0, o = 0, e;
	int	 done = 0;

	while (p < len) {
		e = p;
		for (;;) {
			const char *nl = memchr(t + e, '\n', len - e);
			if (nl == NULL) {
				e = len;
				break;
			}
			e = (size_t)(nl - t) + 1;
			if (e >= len || (t[e] != ' ' && t[e] != '\t'))
				break;
		}
		if (!done && e - p >= 5 && strncasecmp(t + p, "From:", 5) == 0)
			done = 1;
		else {
			memcpy(out + o, t + p, e - p);
			o += e - p;
		}
		p = e;
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*t = (const char *)data;
	struct buf	 a, b;
	size_t		 hs, la, lb;
	char		*x, *y;

	hs = header_section_len(t, size);
	if (hs > size || (hs > 1 && (t[hs - 1] != '\n' || t[hs - 2] != '\n')) ||
	    (hs == 1 && t[0] != '\n'))
		abort();
	if (hs == 0)
		hs = size;
	buf_init(&a, 0x7fffffff);
	buf_init(&b, 0x7fffffff);
	if (rewrite_from(t, hs, ADDR, &a) == -1 ||
	    rewrite_from(a.data ? a.data : "", a.len, ADDR, &b) == -1)
		abort();
	if (a.len > hs + strlen(ADDR) + 16 || a.len != b.len ||
	    (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();
	if ((x = malloc(hs + 1)) == NULL || (y = malloc(a.len + 1)) == NULL)
		abort();
	la = drop_from(t, hs, x);
	lb = drop_from(a.data ? a.data : "", a.len, y);
	if (la != lb || memcmp(x, y, la) != 0)
		abort();
	free(x);
	free(y);
	{
		static char	 got[8][HEADER_ADDR_MAX];
		int		 n = header_addresses(t, hs, "From", got, 8);
		if (n < -1 || n > 8)
			abort();
		for (int i = 0; i < n; i++) {
			size_t l = strnlen(got[i], HEADER_ADDR_MAX);
			if (l == 0 || l == HEADER_ADDR_MAX ||
			    strchr(got[i], '\n') != NULL)
				abort();
		}
	}
	buf_free(&a);
	buf_free(&b);
	return 0;
}
