/*
 * fuzz_srs - libFuzzer target for src/common/srs.c.
 *
 * Input: one byte (the day, and which secret signs), then an address.
 * Both directions run on it. Invariants: a forwarded address has a local
 * part of at most 64 octets and an SRS prefix, and reverses (with the
 * secret that made it among others) to an address; a plain sender comes
 * back exactly; a reversed address has an '@' and fits the limits; the
 * output is always NUL-terminated within its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "srs.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const secrets[] = {
	"first secret of sixteen", "the second, older secret",
};

static void
check_addr(const char *s, size_t cap)
{
	const char	*at;

	if (strnlen(s, cap) >= cap || (at = strrchr(s, '@')) == NULL ||
	    (size_t)(at - s) > ADDR_LOCAL_MAX || at == s || at[1] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		 in[1024], out[ADDR_STR_MAX + 1], back[ADDR_STR_MAX + 1];
	time_t		 now;
	const char	*sec;
	enum srs_res	 r;

	if (size < 1 || size > sizeof(in))
		return 0;
	now = (time_t)(data[0] & 0x7f) * 86400 * 9;
	sec = secrets[data[0] >> 7];
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	if (strlen(in) != size - 1)
		return 0;
	r = srs_reverse(secrets, 2, 21, now, in, back, sizeof(back));
	if (r == SRS_OK)
		check_addr(back, sizeof(back));
	else if (back[0] != '\0')
		abort();
	if ((r = srs_forward(sec, now, in, "fwd.test", out, sizeof(out))) !=
	    SRS_OK) {
		if (out[0] != '\0')
			abort();
		return 0;
	}
	check_addr(out, sizeof(out));
	if (!srs_is_srs(out) || strcmp(strrchr(out, '@'), "@fwd.test") != 0)
		abort();
	if (srs_reverse(secrets, 2, 21, now, out, back, sizeof(back)) !=
	    SRS_OK)
		abort();
	if (!srs_is_srs(in) && strcmp(back, in) != 0)
		abort();
	if (srs_is_srs(in) && strncasecmp(in, "SRS0", 4) == 0 &&
	    strcasecmp(back + 4, in + 4) != 0)
		abort();
	return 0;
}
