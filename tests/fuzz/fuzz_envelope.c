/*
 * fuzz_envelope - libFuzzer target for envelope_parse().
 *
 * Any input must parse or fail cleanly (no crash, no leak). Whatever
 * parses must be written back, and that text must parse to an equal
 * envelope and write to the same bytes again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "envelope.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct envelope	 e, e2;
	struct buf	 out, out2;
	char		 err[256];

	if (envelope_parse(&e, (const char *)data, len, err, sizeof(err)) == -1) {
		/* failure leaves the envelope empty */
		if (e.nrcpts != 0 || e.rcpts != NULL || e.hdrs.data != NULL)
			abort();
		return 0;
	}
	buf_init(&out, 64 * 1024 * 1024);
	buf_init(&out2, 64 * 1024 * 1024);
	if (envelope_write(&e, &out, err, sizeof(err)) == -1)
		abort();
	if (envelope_parse(&e2, out.data, out.len, err, sizeof(err)) == -1)
		abort();
	if (!envelope_equal(&e, &e2))
		abort();
	if (envelope_write(&e2, &out2, err, sizeof(err)) == -1 ||
	    out.len != out2.len || memcmp(out.data, out2.data, out.len) != 0)
		abort();
	envelope_free(&e);
	envelope_free(&e2);
	buf_free(&out);
	buf_free(&out2);
	return 0;
}
