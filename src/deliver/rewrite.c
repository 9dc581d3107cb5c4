/*
 * rewrite - replace the From: address of a header section (rewrite.h).
 */
#include <string.h>
#include <strings.h>

#include "rewrite.h"

size_t
header_section_len(const char *text, size_t len)
{
	size_t	 i;

	if (len > 0 && text[0] == '\n')
		return 1;		/* no header at all */
	for (i = 0; i + 1 < len; i++)
		if (text[i] == '\n' && text[i + 1] == '\n')
			return i + 2;
	return 0;
}

/* the end of the field that starts at p (after its folded lines) */
static size_t
field_end(const char *hdr, size_t len, size_t p)
{
	for (;;) {
		const char *nl = memchr(hdr + p, '\n', len - p);
		if (nl == NULL)
			return len;
		p = (size_t)(nl - hdr) + 1;
		if (p >= len || (hdr[p] != ' ' && hdr[p] != '\t'))
			return p;
	}
}

/* the display name before the last '<' of the field's value, trimmed */
static void
display_name(const char *v, size_t vlen, const char **dn, size_t *dnlen)
{
	const char	*lt = NULL;

	for (size_t i = 0; i < vlen; i++)
		if (v[i] == '<')
			lt = v + i;
	*dn = v;
	*dnlen = 0;
	if (lt == NULL || memchr(lt, '>', vlen - (size_t)(lt - v)) == NULL)
		return;
	*dnlen = (size_t)(lt - v);
	while (*dnlen > 0 && (**dn == ' ' || **dn == '\t' || **dn == '\n')) {
		(*dn)++;
		(*dnlen)--;
	}
	while (*dnlen > 0 && ((*dn)[*dnlen - 1] == ' ' ||
	    (*dn)[*dnlen - 1] == '\t' || (*dn)[*dnlen - 1] == '\n'))
		(*dnlen)--;
}

int
rewrite_from(const char *hdr, size_t len, const char *addr, struct buf *out)
{
	size_t		 p = 0, e, dnlen;
	const char	*dn;
	int		 done = 0;

	while (p < len) {
		e = field_end(hdr, len, p);
		if (!done && e - p >= 5 && strncasecmp(hdr + p, "From:", 5) ==
		    0) {
			display_name(hdr + p + 5, e - p - 5, &dn, &dnlen);
			if (buf_adds(out, "From: ") == -1 ||
			    (dnlen && (buf_add(out, dn, dnlen) == -1 ||
			    buf_addc(out, ' ') == -1)) ||
			    buf_addf(out, "<%s>\n", addr) == -1)
				return -1;
			done = 1;
		} else if (buf_add(out, hdr + p, e - p) == -1)
			return -1;
		p = e;
	}
	return 0;
}
