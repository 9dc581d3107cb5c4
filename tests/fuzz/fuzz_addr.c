/*
 * fuzz_addr - libFuzzer target for src/common/addr.c.
 *
 * Input: one byte of ADDR_F_* flags, then the text. Invariants checked on
 * every accepted address: limits hold, the domain is lower-case (unless a
 * literal), no control bytes, no 8-bit without ADDR_F_UTF8, and the
 * formatted text parses back to the same address, bare and bracketed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_fields(const struct mailaddr *a, int flags, int literal)
{
	const unsigned char	*p;

	if (strlen(a->local) > ADDR_LOCAL_MAX ||
	    strlen(a->domain) > ADDR_DOMAIN_MAX)
		abort();
	for (p = (const unsigned char *)a->local; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 &&
		    !(flags & ADDR_F_UTF8)))
			abort();
	for (p = (const unsigned char *)a->domain; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || (*p >= 0x80 &&
		    !(flags & ADDR_F_UTF8)) ||
		    (!literal && *p >= 'A' && *p <= 'Z'))
			abort();
	if (!addr_utf8_valid(a->local, strlen(a->local)) ||
	    !addr_utf8_valid(a->domain, strlen(a->domain)))
		abort();
}

/* Format, parse back both ways, compare. */
static void
round_trip(const struct mailaddr *a, int flags)
{
	struct mailaddr	 b;
	char		 s[ADDR_STR_MAX + 3];
	size_t		 n, used;

	check_fields(a, flags, a->domain[0] == '[');
	n = addr_format(a, s + 1, sizeof(s) - 1);
	if (n >= sizeof(s) - 2 || n != strlen(s + 1))
		abort();
	flags &= ~ADDR_F_NO_BRACKETS;
	if (addr_parse(s + 1, n, flags, &b) != ADDR_OK ||
	    memcmp(a, &b, sizeof(b)) != 0)
		abort();
	s[0] = '<';
	s[n + 1] = '>';
	/* addr_parse allows up to 64@255, a path is held to 256 in all. */
	if (n + 2 > ADDR_PATH_MAX) {
		if (addr_parse_path(s, n + 2, flags, &b, &used) !=
		    ADDR_ETOOLONG)
			abort();
	} else if (addr_parse_path(s, n + 2, flags, &b, &used) != ADDR_OK ||
	    used != n + 2 || memcmp(a, &b, sizeof(b)) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mailaddr	 a;
	const char	*s;
	size_t		 used = (size_t)-1;
	int		 flags;

	if (size < 1)
		return 0;
	flags = data[0] & 0x0f;
	s = (const char *)data + 1;
	size--;
	if (addr_parse_path(s, size, flags, &a, &used) == ADDR_OK) {
		if (used > size || used > ADDR_PATH_MAX)
			abort();
		round_trip(&a, flags);
	} else if (!addr_is_null(&a))
		abort();
	if (addr_parse(s, size, flags, &a) == ADDR_OK)
		round_trip(&a, flags);
	(void)addr_utf8_valid(s, size);
	(void)addr_strerror((enum addr_err)(data[0] >> 4));
	return 0;
}
