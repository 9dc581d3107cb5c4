/*
 * fuzz_authres - libFuzzer target for src/common/authres.c: incoming
 * Authentication-Results values (anyone's) and our own field built from
 * message values (anyone's).
 *
 * Input: raw bytes. Invariants:
 *  - authres_is_ours() on the bytes does not read past them, and a
 *    "yes" stays a "yes" when bytes are added after them (the id is
 *    decided by a prefix ending in ';');
 *  - authres_format() with the bytes (up to a NUL) as a header.from
 *    value, as a comment and as the authserv-id always succeeds and
 *    gives one field: the name first, then lines that start with a TAB,
 *    no CR, NUL or non-ASCII, none over 998 octets, LF at the end; and
 *    authres_is_ours() recognises that field by its id whenever the id
 *    is printable ASCII.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_field(const struct buf *b)
{
	if (b->len < 25 || memcmp(b->data, "Authentication-Results: ", 24) ||
	    b->data[b->len - 1] != '\n')
		abort();
	for (size_t i = 0, col = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];
		if (c == '\r' || c == '\0' || c >= 0x7f)
			abort();
		if (c == '\n' && i + 1 < b->len && b->data[i + 1] != '\t')
			abort();
		col = c == '\n' ? 0 : col + 1;
		if (col > 998)
			abort();
	}
}

static void
check_format(const char *s)
{
	struct authres_entry	 e[2] = {
		{ "dmarc", "fail", s, { { "header.from", s },
		    { "policy.dmarc", "reject" } }, 2 },
		{ "spf", "pass", NULL, { { "smtp.mailfrom", s } }, 1 },
	};
	const char		*id = s;
	struct buf		 b;
	int			 plain = *s != '\0' && strlen(s) < 200;

	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
			plain = 0;
	if (!plain)
		id = "mx.example.org";
	buf_init(&b, 1 << 20);
	if (authres_format(&b, id, e, 2) == -1)
		abort();
	check_field(&b);
	if (!authres_is_ours(b.data + 23, b.len - 23, id))
		abort();
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*id = "mx.example.org";
	char		*s;
	int		 r;

	if (size > 16384 || (s = malloc(size + 2)) == NULL)
		return 0;
	memcpy(s, data, size);	/* exactly size bytes for ASan */
	r = authres_is_ours(s, size, id);
	s[size] = ';';
	if (r && !authres_is_ours(s, size + 1, id))
		abort();
	s[size] = '\0';
	check_format(s);
	free(s);
	return 0;
}
