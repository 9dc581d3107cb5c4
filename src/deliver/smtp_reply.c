/*
 * smtp_reply - parse SMTP replies and EHLO keywords; see smtp_reply.h.
 *
 * Leniency: a bare LF ends a line as well as CRLF (servers that get this
 * wrong still deliver mail), and "250" alone is a valid last line. Anything
 * else that does not look like a reply is a protocol error: the client
 * cannot know what the server meant, so it gives up on the connection.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_reply.h"

void
smtp_reply_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->reply.text, SMTP_REPLY_TEXT_MAX);
}

/* Ready for the next reply; the text buffer's memory is kept. */
void
smtp_reply_reset(struct smtp_reply_parser *p)
{
	p->state = SMTP_R_MORE;
	p->err = SMTP_RE_NONE;
	p->linelen = 0;
	p->reply.code = 0;
	p->reply.enh[0] = '\0';
	p->reply.nlines = 0;
	buf_reset(&p->reply.text);
}

void
smtp_reply_free(struct smtp_reply_parser *p)
{
	buf_free(&p->reply.text);
}

const char *
smtp_reply_strerror(enum smtp_reply_err e)
{
	switch (e) {
	case SMTP_RE_NONE:
		return "no error";
	case SMTP_RE_TOO_LONG:
		return "reply line too long";
	case SMTP_RE_TOO_MANY:
		return "too many reply lines";
	case SMTP_RE_SYNTAX:
		return "malformed reply";
	case SMTP_RE_MISMATCH:
		return "reply codes differ between lines";
	case SMTP_RE_NOMEM:
		return "out of memory";
	}
	return "unknown error";
}

/*
 * Length of an RFC 3463 code "c.sss.ddd" of class `cls` at s, followed by
 * a space or the end; 0 if there is none.
 */
static size_t
enh_code_len(const char *s, size_t len, char cls)
{
	size_t	 i = 0, n, part;

	if (len < 5 || s[0] != cls || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && isdigit((unsigned char)s[i]) && n < 4;
		    n++)
			i++;
		if (n == 0 || n > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

/* Parse one complete line (without its line end); sets state and err. */
static void
reply_line(struct smtp_reply_parser *p, const char *l, size_t len)
{
	struct smtp_reply	*r = &p->reply;
	int			 code, last;
	size_t			 n;

	if (len < 3 || memchr(l, '\0', len) != NULL ||
	    l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' ||
	    !isdigit((unsigned char)l[2]) ||
	    (len > 3 && l[3] != ' ' && l[3] != '-')) {
		p->err = SMTP_RE_SYNTAX;
		goto fail;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	last = len == 3 || l[3] == ' ';
	if (r->nlines > 0 && code != r->code) {
		p->err = SMTP_RE_MISMATCH;
		goto fail;
	}
	if (++r->nlines > SMTP_REPLY_LINES_MAX) {
		p->err = SMTP_RE_TOO_MANY;
		goto fail;
	}
	r->code = code;
	l += len > 3 ? 4 : 3;
	len -= len > 3 ? 4 : 3;
	if ((n = enh_code_len(l, len, (char)('0' + code / 100))) > 0) {
		if (r->nlines == 1 && n < sizeof(r->enh))
			snprintf(r->enh, sizeof(r->enh), "%.*s", (int)n, l);
		l += n;
		len -= n;
		if (len > 0)	/* the space after the code */
			l++, len--;
	}
	if (r->nlines > 1)
		buf_addc(&r->text, '\n');
	buf_add(&r->text, l, len);
	if (r->text.err != BUF_OK) {
		p->err = r->text.err == BUF_ENOMEM ? SMTP_RE_NOMEM :
		    SMTP_RE_TOO_LONG;
		goto fail;
	}
	if (last)
		p->state = SMTP_R_DONE;
	return;
fail:
	p->state = SMTP_R_ERROR;
}

/*
 * Eat bytes up to the end of one reply; returns how many were used. The
 * state says whether the reply is complete, incomplete or broken.
 */
size_t
smtp_reply_feed(struct smtp_reply_parser *p, const char *data, size_t len)
{
	const char	*lf;
	size_t		 used = 0, n, l;

	while (p->state == SMTP_R_MORE && used < len) {
		lf = memchr(data + used, '\n', len - used);
		n = lf ? (size_t)(lf - (data + used)) + 1 : len - used;
		if (n > sizeof(p->line) - p->linelen) {
			p->err = SMTP_RE_TOO_LONG;
			p->state = SMTP_R_ERROR;
			return used;
		}
		memcpy(p->line + p->linelen, data + used, n);
		p->linelen += n;
		used += n;
		if (lf == NULL)
			break;
		l = p->linelen - 1;
		if (l > 0 && p->line[l - 1] == '\r')
			l--;
		reply_line(p, p->line, l);
		p->linelen = 0;
	}
	return used;
}

/* "550 5.1.1 text text2", control characters replaced (P7). */
void
smtp_reply_format(const struct smtp_reply *r, char *dst, size_t dstlen)
{
	char	 head[32];
	size_t	 o, i;

	if (dstlen == 0)
		return;
	snprintf(head, sizeof(head), "%03d%s%s", r->code, r->enh[0] ? " " : "",
	    r->enh);
	snprintf(dst, dstlen, "%s%s", head, r->text.len ? " " : "");
	o = strlen(dst);
	log_sanitize(dst + o, dstlen - o, r->text.data ? r->text.data : "",
	    r->text.len);
	/* line breaks become spaces, not '?'; a reply is ASCII (RFC 5321
	   4.2): other bytes become '?' too, for the logs, JSON and DSNs */
	for (i = o; dst[i] != '\0'; i++)
		if (r->text.data[i - o] == '\n')
			dst[i] = ' ';
		else if ((unsigned char)dst[i] >= 0x80)
			dst[i] = '?';
}

/* Mechanism names, space separated, into SMTP_AUTH_* bits. */
static unsigned
auth_mechs(const char *s, size_t len)
{
	unsigned	 bits = 0;
	size_t		 i = 0, n;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		for (n = 0; i + n < len && s[i + n] != ' '; n++)
			;
		if (n == 5 && strncasecmp(s + i, "PLAIN", 5) == 0)
			bits |= SMTP_AUTH_PLAIN;
		else if (n == 5 && strncasecmp(s + i, "LOGIN", 5) == 0)
			bits |= SMTP_AUTH_LOGIN;
		else if (n > 0)
			bits |= SMTP_AUTH_OTHER;
		i += n;
	}
	return bits;
}

/* SIZE's parameter; 0 (no limit declared) if absent or not a number. */
static uint64_t
size_param(const char *s, size_t len)
{
	uint64_t	 v = 0;
	size_t		 i;

	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]) ||
		    v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static const struct {
	const char	*kw;
	unsigned	 flag;
} ehlo_kws[] = {
	{ "PIPELINING", SMTP_EXT_PIPELINING },
	{ "SIZE", SMTP_EXT_SIZE },
	{ "STARTTLS", SMTP_EXT_STARTTLS },
	{ "8BITMIME", SMTP_EXT_8BITMIME },
	{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
	{ "AUTH", SMTP_EXT_AUTH },
	{ "CHUNKING", SMTP_EXT_CHUNKING },
	{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
	{ "DSN", SMTP_EXT_DSN },
};

static void
ehlo_line(const char *l, size_t len, struct smtp_ext *e)
{
	size_t	 kl, i;

	for (kl = 0; kl < len && l[kl] != ' ' && l[kl] != '='; kl++)
		;
	for (i = 0; i < sizeof(ehlo_kws) / sizeof(ehlo_kws[0]); i++) {
		if (strlen(ehlo_kws[i].kw) != kl ||
		    strncasecmp(l, ehlo_kws[i].kw, kl) != 0)
			continue;
		e->flags |= ehlo_kws[i].flag;
		/* skip the separator: "SIZE 100", old "AUTH=PLAIN LOGIN" */
		if (kl < len)
			kl++;
		if (ehlo_kws[i].flag == SMTP_EXT_SIZE)
			e->size = size_param(l + kl, len - kl);
		else if (ehlo_kws[i].flag == SMTP_EXT_AUTH)
			e->auth |= auth_mechs(l + kl, len - kl);
		return;
	}
}

/* The keywords of a 250 reply to EHLO; the first line is the greeting. */
void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *e)
{
	const char	*s = r->text.data, *nl;
	size_t		 left = r->text.len, n;

	memset(e, 0, sizeof(*e));
	if (s == NULL)
		return;
	for (;;) {
		nl = memchr(s, '\n', left);
		if (nl == NULL)
			break;
		left -= (size_t)(nl - s) + 1;
		s = nl + 1;
		nl = memchr(s, '\n', left);
		n = nl ? (size_t)(nl - s) : left;
		ehlo_line(s, n, e);
	}
}
