/*
 * inject_util - the pure helpers of `sluice inject` (inject.h): content
 * sniffing, --header checking, SMTP reply lines, dot-stuffing, HOST:PORT.
 *
 * Content types come from a small table of magic numbers, not libmagic:
 * a mail injector needs a handful of types, the answer must not depend on
 * the magic database installed, and a table is a pure function a unit
 * test can pin down (docs/robots.md).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "inject.h"

static const struct {
	const char	*magic;
	size_t		 len;
	const char	*type, *subtype;
} inject_magic[] = {
	{ "%PDF-", 5, "application", "pdf" },
	{ "\x89PNG\r\n\x1a\n", 8, "image", "png" },
	{ "\xff\xd8\xff", 3, "image", "jpeg" },
	{ "GIF87a", 6, "image", "gif" },
	{ "GIF89a", 6, "image", "gif" },
	{ "PK\x03\x04", 4, "application", "zip" },
	{ "PK\x05\x06", 4, "application", "zip" },	/* empty archive */
	{ "PK\x07\x08", 4, "application", "zip" },	/* spanned */
	{ "\x1f\x8b\x08", 3, "application", "gzip" },
};

int
inject_is_text(const unsigned char *p, size_t n)
{
	size_t	 i;
	int	 ascii = 1;

	for (i = 0; i < n; i++) {
		if (p[i] >= 0x80)
			ascii = 0;
		else if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' &&
		    p[i] != '\r' && p[i] != '\f') || p[i] == 0x7f)
			return 0;
	}
	if (ascii)
		return 2;
	return addr_utf8_valid((const char *)p, n) ? 1 : 0;
}

void
inject_sniff(const unsigned char *p, size_t n, struct inject_type *t)
{
	size_t	 i;
	int	 text;

	for (i = 0; i < sizeof(inject_magic) / sizeof(inject_magic[0]); i++)
		if (n >= inject_magic[i].len && memcmp(p, inject_magic[i].magic,
		    inject_magic[i].len) == 0) {
			t->type = inject_magic[i].type;
			t->subtype = inject_magic[i].subtype;
			t->charset = NULL;
			return;
		}
	if ((text = inject_is_text(p, n)) != 0) {
		t->type = "text";
		t->subtype = "plain";
		t->charset = text == 2 ? "us-ascii" : "utf-8";
		return;
	}
	t->type = "application";
	t->subtype = "octet-stream";
	t->charset = NULL;
}

/* the fields inject writes itself: a second copy would be ambiguous */
static int
inject_header_reserved(const char *name)
{
	static const char *const reserved[] = { "From", "To", "Cc", "Bcc",
	    "Date", "Message-ID", "MIME-Version", "Subject" };
	size_t	 i;

	if (strncasecmp(name, "Content-", 8) == 0)
		return 1;
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return 1;
	return 0;
}

const char *
inject_header_check(const char *arg, char *name, size_t namelen,
    const char **value)
{
	const char	*colon = strchr(arg, ':');
	size_t		 n, i;

	if (colon == NULL)
		return "not \"Name: value\"";
	n = (size_t)(colon - arg);
	if (n == 0)
		return "empty field name";
	if (n > INJECT_HDR_NAME_MAX || n >= namelen)
		return "field name too long";
	for (i = 0; i < n; i++)
		/* RFC 5322 ftext: printable US-ASCII except ":" */
		if ((unsigned char)arg[i] < 33 || (unsigned char)arg[i] > 126)
			return "field name is not RFC 5322 ftext";
	memcpy(name, arg, n);
	name[n] = '\0';
	if (inject_header_reserved(name))
		return "inject sets this field itself (see --help)";
	for (colon++; *colon == ' ' || *colon == '\t'; colon++)
		;
	if (strpbrk(colon, "\r\n") != NULL)
		return "CR or LF in the value";
	if ((n = strlen(colon)) > INJECT_HDR_VALUE_MAX)
		return "value too long";
	if (!addr_utf8_valid(colon, n))
		return "value is not UTF-8";
	for (i = 0; i < n; i++)
		if (((unsigned char)colon[i] < 0x20 && colon[i] != '\t') ||
		    colon[i] == 0x7f)
			return "control character in the value";
	*value = colon;
	return NULL;
}

int
inject_reply_line(const char *line, size_t len, int *code, int *more)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*more = len > 3 && line[3] == '-';
	return 0;
}

int
inject_data_stuff(const char *p, size_t n, struct buf *out)
{
	size_t	 i, start = 0;
	int	 bol = 1;

	/* generous reservation: the common case then never grows */
	if (n < out->max / 2 && n + n / 32 + 8 <= out->max - out->len)
		(void)buf_reserve(out, n + n / 32 + 8);
	for (i = 0; i < n; i++) {
		if (bol && p[i] == '.')
			buf_addc(out, '.');
		bol = 0;
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		buf_add(out, p + start, i - start);
		buf_add(out, "\r\n", 2);
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			i++;
		start = i + 1;
		bol = 1;
	}
	buf_add(out, p + start, n - start);
	if (!bol)
		buf_add(out, "\r\n", 2);
	buf_add(out, ".\r\n", 3);
	return out->err == BUF_OK ? 0 : -1;
}

int
inject_hostport(const char *s, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char	*h = s, *colon;
	size_t		 hl, i, pl;
	unsigned long	 v = 0;

	if (*s == '[') {
		if ((colon = strchr(s, ']')) == NULL || colon[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(colon - h);
		colon++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL ||
		    memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		hl = (size_t)(colon - s);
	}
	pl = strlen(colon + 1);
	if (hl == 0 || hl >= hostlen || hl > INJECT_HOST_MAX || pl == 0 ||
	    pl > 5 || pl >= portlen)
		return -1;
	for (i = 0; i < pl; i++) {
		if (!isdigit((unsigned char)colon[1 + i]))
			return -1;
		v = v * 10 + (unsigned long)(colon[1 + i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	for (i = 0; i < hl; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == 0x7f)
			return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memcpy(port, colon + 1, pl + 1);
	return 0;
}
