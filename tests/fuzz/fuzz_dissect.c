/*
 * fuzz_dissect - libFuzzer target for `sluice dissect` (src/cli/dissect.c,
 * src/cli/dissect_names.c).
 *
 * Input: a message. GMime parses it, dissect_walk lists its parts, and
 * every file name (and every part path) goes through the name sanitizer.
 * Invariants: the walk does not fail; paths nest no deeper than
 * DISSECT_DEPTH_MAX and fit their buffer; a leaf has a size and a SHA-256;
 * a safe name is never empty when returned, never holds '/' or '\', never
 * starts with '.', is at most DISSECT_NAME_MAX octets and valid UTF-8,
 * holds no control character; a numbered name obeys the same; the shell
 * quoting of a name starts and ends with a quote.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dissect.h"
#include "dissect_names.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_safe(const char *s, size_t n)
{
	size_t		 i, k;
	unsigned	 cp;

	if (n == 0 || n > DISSECT_NAME_MAX || strlen(s) != n || s[0] == '.' ||
	    strchr(s, '/') != NULL || strchr(s, '\\') != NULL)
		abort();
	for (i = 0; i < n; i += k)
		if ((k = dissect_utf8_seq((const unsigned char *)s + i, n - i,
		    &cp)) == 0 || cp < 0x20 || cp == 0x7f)
			abort();
}

static void
check_name(const char *name)
{
	char	 safe[DISSECT_NAME_MAX + 1], num[DISSECT_NAME_MAX + 1], *q;
	size_t	 n;

	if ((n = dissect_name_safe(name, strlen(name), safe,
	    sizeof(safe))) == 0) {
		if (safe[0] != '\0')
			abort();
		return;
	}
	check_safe(safe, n);
	check_safe(num, dissect_name_numbered(safe, DISSECT_COLLIDE_MAX, num,
	    sizeof(num)));
	if ((q = dissect_shell_quote(safe)) != NULL) {
		if (q[0] != '\'' || q[strlen(q) - 1] != '\'')
			abort();
		free(q);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dissect_tree	 t;
	GMimeStream		*in;
	GMimeMessage		*msg;
	size_t			 i;

	dissect_init();
	in = g_mime_stream_mem_new_with_buffer((const char *)data, size);
	msg = dissect_parse(in);
	g_object_unref(in);
	if (msg == NULL)
		return 0;
	if (dissect_walk(msg, &t, 1) == -1)
		abort();
	for (i = 0; i < t.n; i++) {
		const struct dissect_part *p = &t.parts[i];
		if (p->depth > DISSECT_DEPTH_MAX ||
		    strlen(p->path) >= sizeof(p->path) ||
		    p->type[0] == '\0' || p->subtype[0] == '\0' ||
		    (p->leaf && (p->size < 0 || strlen(p->sha256) != 64)))
			abort();
		if (p->filename != NULL)
			check_name(p->filename);
		check_name(p->path);
	}
	dissect_tree_free(&t);
	g_object_unref(msg);
	return 0;
}
