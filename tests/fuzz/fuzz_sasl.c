/*
 * fuzz_sasl - libFuzzer target for src/smtpd/sasl.c: an AUTH response as
 * a client sends it (base64), decoded strictly, re-encoded (must give the
 * same text: one encoding per byte string), then read as a PLAIN message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char	 dec[SASL_LINE_MAX];
	static char		 enc[SASL_LINE_MAX + 8];
	char			 z[SASL_ID_MAX + 1], c[SASL_ID_MAX + 1];
	char			 p[SASL_PASS_MAX + 1];
	size_t			 n;

	if (size > SASL_LINE_MAX)
		return 0;
	if (sasl_b64_decode((const char *)data, size, dec, sizeof(dec),
	    &n) == 0) {
		if (n > size)
			abort();
		if (n > 0 && (sasl_b64_encode(dec, n, enc, sizeof(enc)) !=
		    size || memcmp(enc, data, size) != 0))
			abort();
		if (sasl_plain_parse(dec, n, z, c, p) == SASL_OK &&
		    (c[0] == '\0' || p[0] == '\0' || strlen(c) > SASL_ID_MAX))
			abort();
	}
	sasl_plain_parse(data, size, z, c, p);
	sasl_mech_parse((const char *)data, size);
	return 0;
}
