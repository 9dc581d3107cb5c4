/*
 * dissect_names - safe file names and shell quoting (see dissect_names.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dissect_names.h"

size_t
dissect_utf8_seq(const unsigned char *s, size_t len, unsigned *cp)
{
	unsigned	 c, min;
	size_t		 n, i;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* control characters and the marks that reorder what a name shows */
static int
names_dropped(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
	    cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029 ||
	    cp == 0xfeff;
}

/* the largest cut <= want that does not split a UTF-8 sequence of s */
static size_t
names_boundary(const char *s, size_t want)
{
	while (want > 0 && ((unsigned char)s[want] & 0xc0) == 0x80)
		want--;
	return want;
}

/* length of the ".ext" of s[0..len) kept when cutting, 0 if none */
static size_t
names_ext(const char *s, size_t len)
{
	size_t	 i = len;

	while (i > 1 && s[i - 1] != '.')
		i--;
	if (i <= 1 || len - (i - 1) > DISSECT_EXT_MAX)
		return 0;
	return len - (i - 1);
}

size_t
dissect_name_safe(const char *in, size_t inlen, char *out, size_t outsz)
{
	const unsigned char	*s = (const unsigned char *)in;
	size_t			 start, end, i, n, o = 0, ext, keep;
	unsigned		 cp;
	char			*tmp;

	if (outsz <= DISSECT_NAME_MAX)
		return 0;
	out[0] = '\0';
	/* the last non-empty path component */
	end = inlen;
	while (end > 0 && (s[end - 1] == '/' || s[end - 1] == '\\'))
		end--;
	start = end;
	while (start > 0 && s[start - 1] != '/' && s[start - 1] != '\\')
		start--;
	/* cleaning never makes it longer: invalid bytes become one '_' */
	if ((tmp = malloc(end - start + 1)) == NULL)
		return 0;
	for (i = start; i < end; i += n) {
		if ((n = dissect_utf8_seq(s + i, end - i, &cp)) == 0) {
			tmp[o++] = '_';
			n = 1;
			continue;
		}
		/* dots after dropped controls ("\x01.x") are leading too */
		if (names_dropped(cp) || (o == 0 && cp == '.'))
			continue;
		memcpy(tmp + o, s + i, n);
		o += n;
	}
	tmp[o] = '\0';
	if (o <= DISSECT_NAME_MAX) {
		memcpy(out, tmp, o + 1);
		free(tmp);
		return o;
	}
	ext = names_ext(tmp, o);
	keep = names_boundary(tmp, DISSECT_NAME_MAX - ext);
	memcpy(out, tmp, keep);
	memcpy(out + keep, tmp + o - ext, ext);
	out[keep + ext] = '\0';
	free(tmp);
	return keep + ext;
}

size_t
dissect_name_numbered(const char *name, unsigned n, char *out, size_t outsz)
{
	char	 suffix[16];
	size_t	 len = strlen(name), ext, base, sl;

	if (outsz <= DISSECT_NAME_MAX || len > DISSECT_NAME_MAX)
		return 0;
	sl = (size_t)snprintf(suffix, sizeof(suffix), " (%u)", n);
	ext = names_ext(name, len);
	base = len - ext;
	if (base + sl + ext > DISSECT_NAME_MAX)
		base = names_boundary(name, DISSECT_NAME_MAX - sl - ext);
	memcpy(out, name, base);
	memcpy(out + base, suffix, sl);
	memcpy(out + base + sl, name + len - ext, ext);
	out[base + sl + ext] = '\0';
	return base + sl + ext;
}

char *
dissect_shell_quote(const char *s)
{
	size_t	 len = strlen(s), q = 0, i, o = 0;
	char	*out;

	for (i = 0; i < len; i++)
		if (s[i] == '\'')
			q++;
	if (len > (SIZE_MAX - 3) / 4 || (out = malloc(len + 3 * q + 3)) == NULL)
		return NULL;
	out[o++] = '\'';
	for (i = 0; i < len; i++) {
		if (s[i] == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else
			out[o++] = s[i];
	}
	out[o++] = '\'';
	out[o] = '\0';
	return out;
}

char *
dissect_command(const char *tmpl, const char *path)
{
	char		*q, *out;
	const char	*p;
	size_t		 ql, tl = strlen(tmpl), holes = 0, len, o = 0;

	if ((q = dissect_shell_quote(path)) == NULL)
		return NULL;
	ql = strlen(q);
	for (p = tmpl; (p = strstr(p, "{}")) != NULL; p += 2)
		holes++;
	if (holes == 0)
		holes = 1;	/* appended after a space */
	if (holes > (SIZE_MAX - tl - 2) / (ql + 1)) {
		free(q);
		return NULL;
	}
	len = tl + holes * ql + 2;
	if ((out = malloc(len)) == NULL) {
		free(q);
		return NULL;
	}
	if (strstr(tmpl, "{}") == NULL) {
		memcpy(out, tmpl, tl);
		o = tl;
		out[o++] = ' ';
		memcpy(out + o, q, ql);
		o += ql;
	} else {
		for (p = tmpl; *p != '\0';) {
			if (p[0] == '{' && p[1] == '}') {
				memcpy(out + o, q, ql);
				o += ql;
				p += 2;
			} else
				out[o++] = *p++;
		}
	}
	out[o] = '\0';
	free(q);
	return out;
}

const char *
dissect_type_ext(const char *type, const char *subtype)
{
	static const struct {
		const char	*type, *subtype, *ext;
	} map[] = {
		{ "text", "plain", "txt" },
		{ "text", "html", "html" },
		{ "text", "csv", "csv" },
		{ "text", "calendar", "ics" },
		{ "text", "xml", "xml" },
		{ "text", "enriched", "txt" },
		{ "application", "pdf", "pdf" },
		{ "application", "zip", "zip" },
		{ "application", "json", "json" },
		{ "application", "xml", "xml" },
		{ "application", "gzip", "gz" },
		{ "application", "msword", "doc" },
		{ "application", "pgp-signature", "asc" },
		{ "application", "pkcs7-signature", "p7s" },
		{ "image", "png", "png" },
		{ "image", "jpeg", "jpg" },
		{ "image", "gif", "gif" },
		{ "image", "webp", "webp" },
		{ "image", "svg+xml", "svg" },
		{ "audio", "mpeg", "mp3" },
		{ "video", "mp4", "mp4" },
		{ "message", "rfc822", "eml" },
		{ "message", "delivery-status", "txt" },
	};
	size_t	 i;

	if (type == NULL || subtype == NULL)
		return "bin";
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(type, map[i].type) == 0 &&
		    strcasecmp(subtype, map[i].subtype) == 0)
			return map[i].ext;
	return strcasecmp(type, "text") == 0 ? "txt" : "bin";
}
