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
size_t
header_field_end(const char *hdr, size_t len, size_t p)
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
		e = header_field_end(hdr, len, p);
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

/* one mailbox of a field: [display] <addr> or addr (comments dropped) */
static int
mailbox_addr(const char *m, size_t mlen, char *out)
{
	size_t	 n = 0, i, a = 0, b = 0;
	int	 q = 0, depth = 0, angle = 0;

	/* an angle-addr: the text between the last top-level '<' and '>' */
	for (i = 0; i < mlen; i++) {
		char c = m[i];
		if (c == '\\' && (q || depth) && i + 1 < mlen) {
			i++;
			continue;
		}
		if (q) {
			q = c != '"';
			continue;
		}
		if (depth) {
			depth += c == '(' ? 1 : c == ')' ? -1 : 0;
			continue;
		}
		if (c == '"')
			q = 1;
		else if (c == '(')
			depth = 1;
		else if (c == '<') {
			angle = 1;
			a = i + 1;
		} else if (c == '>' && angle == 1) {
			angle = 2;
			b = i;
		}
	}
	if (angle == 1)
		return -1;
	if (angle == 2) {
		m += a;
		mlen = b - a;
		/* obsolete source route "@a,@b:" */
		const char *colon = memchr(m, ':', mlen);
		if (mlen && m[0] == '@' && colon) {
			mlen -= (size_t)(colon + 1 - m);
			m = colon + 1;
		}
	}
	/* copy without comments and white space, quotes kept */
	q = depth = 0;
	for (i = 0; i < mlen; i++) {
		char c = m[i];
		if (depth) {
			if (c == '\\')
				i++;
			else
				depth += c == '(' ? 1 : c == ')' ? -1 : 0;
			continue;
		}
		if (!q && c == '(') {
			depth = 1;
			continue;
		}
		if (!q && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
			continue;
		if ((unsigned char)c < 0x20 || c == 0x7f)
			return -1;	/* NUL or controls: not an address */
		if (c == '"')
			q = !q;
		if (n + 1 >= HEADER_ADDR_MAX)
			return -1;
		out[n++] = c;
		if (q && c == '\\' && i + 1 < mlen) {
			if (n + 1 >= HEADER_ADDR_MAX ||
			    (unsigned char)m[i + 1] < 0x20 || m[i + 1] == 0x7f)
				return -1;
			out[n++] = m[++i];
		}
	}
	out[n] = '\0';
	return 0;
}

int
header_addresses(const char *hdr, size_t len, const char *name,
    char (*out)[HEADER_ADDR_MAX], size_t max)
{
	size_t	 p = 0, e, nlen = strlen(name), found = 0;

	while (p < len) {
		e = header_field_end(hdr, len, p);
		if (e - p > nlen && hdr[p + nlen] == ':' &&
		    strncasecmp(hdr + p, name, nlen) == 0) {
			const char *v = hdr + p + nlen + 1;
			size_t vlen = e - p - nlen - 1, start = 0, i;
			int q = 0, depth = 0, angle = 0;
			for (i = 0; i <= vlen; i++) {
				char c = i < vlen ? v[i] : ',';
				if (i < vlen && c == '\\' && (q || depth)) {
					i++;
					continue;
				}
				if (q) {
					q = c != '"';
					continue;
				}
				if (depth) {
					depth += c == '(' ? 1 : c == ')' ? -1 :
					    0;
					continue;
				}
				if (c == '"')
					q = 1;
				else if (c == '(')
					depth = 1;
				else if (c == '<')
					angle = 1;
				else if (c == '>')
					angle = 0;
				else if (c == ':' && !angle)
					start = i + 1;	/* a group's name */
				else if ((c == ',' || c == ';') && !angle) {
					char one[HEADER_ADDR_MAX];
					if (mailbox_addr(v + start, i - start,
					    one) == -1)
						return -1;
					start = i + 1;
					if (one[0] == '\0')
						continue;
					if (found == max)
						return -1;
					memcpy(out[found++], one,
					    strlen(one) + 1);
				}
			}
			if (q || depth || angle)
				return -1;
		}
		p = e;
	}
	return (int)found;
}
