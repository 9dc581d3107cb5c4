/*
 * milter_proto - milter packets: builders for our commands, a checking
 * reader for the filter's replies (see milter_proto.h).
 */
#include <string.h>
#include <strings.h>

#include "milter_proto.h"

long
milter_frame_len(const unsigned char hdr[4])
{
	uint32_t	 n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];

	if (n == 0 || n > MILTER_REPLY_MAX)
		return -1;
	return (long)n;
}

const char *
milter_strerror(enum milter_perr e)
{
	switch (e) {
	case MILTER_OK:
		return "ok";
	case MILTER_E_LEN:
		return "bad packet length";
	case MILTER_E_CMD:
		return "unknown reply";
	case MILTER_E_SHORT:
		return "reply too short";
	case MILTER_E_EXTRA:
		return "bytes left over in reply";
	case MILTER_E_STR:
		return "string not terminated";
	case MILTER_E_CODE:
		return "reply code is not 4xx or 5xx";
	case MILTER_E_HDR:
		return "header name or value refused";
	case MILTER_E_VERSION:
		return "option negotiation refused";
	}
	return "?";
}

static uint32_t
get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
	    (uint32_t)u[2] << 8 | u[3];
}

/* one NUL-terminated string at *p (within end); advances *p */
static int
get_str(const char **p, const char *end, const char **s, size_t *len)
{
	const char	*nul = memchr(*p, '\0', (size_t)(end - *p));

	if (nul == NULL)
		return -1;
	*s = *p;
	*len = (size_t)(nul - *p);
	*p = nul + 1;
	return 0;
}

/* SMFIR_REPLYCODE: "[45]xx[ -]text", kept as one printable line */
static enum milter_perr
parse_code(const char *s, size_t len, struct milter_reply *r)
{
	size_t	 i, n = 0;

	if (len < 3 || (s[0] != '4' && s[0] != '5') ||
	    s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' ||
	    (len > 3 && s[3] != ' ' && s[3] != '-'))
		return MILTER_E_CODE;
	for (i = 0; i < len && n < MILTER_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n')
			break;		/* the first line only */
		r->text[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (n > 3)
		r->text[3] = ' ';	/* "550-..." becomes "550 ..." */
	r->text[n] = '\0';
	return MILTER_OK;
}

/* a header name: printable ASCII without ':' and blanks (RFC 5322) */
static int
hdr_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > MILTER_HDR_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
		    s[i] == ':')
			return 0;
	return 1;
}

static enum milter_perr
parse_hdr(const char *p, const char *end, struct milter_reply *r, int indexed)
{
	const char	*name;
	size_t		 nlen;

	if (indexed) {
		if (end - p < 4)
			return MILTER_E_SHORT;
		r->index = get32(p);
		p += 4;
	}
	if (get_str(&p, end, &name, &nlen) == -1 ||
	    get_str(&p, end, &r->value, &r->valuelen) == -1)
		return MILTER_E_STR;
	if (p != end)
		return MILTER_E_EXTRA;
	if (!hdr_name_ok(name, nlen))
		return MILTER_E_HDR;
	memcpy(r->name, name, nlen);
	r->name[nlen] = '\0';
	return MILTER_OK;
}

enum milter_perr
milter_reply_parse(const char *pkt, size_t len, struct milter_reply *r)
{
	const char	*p, *end, *s;
	size_t		 slen;

	memset(r, 0, sizeof(*r));
	if (len == 0 || len > MILTER_REPLY_MAX)
		return MILTER_E_LEN;
	r->cmd = pkt[0];
	p = pkt + 1;
	end = pkt + len;
	switch (r->cmd) {
	case MILTER_R_ACCEPT:
	case MILTER_R_CONTINUE:
	case MILTER_R_DISCARD:
	case MILTER_R_REJECT:
	case MILTER_R_TEMPFAIL:
	case MILTER_R_PROGRESS:
	case MILTER_R_SKIP:
	case MILTER_R_CONN_FAIL:
	case MILTER_R_SHUTDOWN:
		return p == end ? MILTER_OK : MILTER_E_EXTRA;
	case MILTER_R_OPTNEG:
		/* version, actions, protocol; v6 may add macro lists */
		if (end - p < 12)
			return MILTER_E_SHORT;
		r->version = get32(p);
		r->actions = get32(p + 4);
		r->protocol = get32(p + 8);
		if (r->version < 2 || r->version > MILTER_VERSION)
			return MILTER_E_VERSION;
		return MILTER_OK;
	case MILTER_R_REPLYCODE:
		if (get_str(&p, end, &s, &slen) == -1)
			return MILTER_E_STR;
		if (p != end)
			return MILTER_E_EXTRA;
		return parse_code(s, slen, r);
	case MILTER_R_ADDHEADER:
		return parse_hdr(p, end, r, 0);
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		return parse_hdr(p, end, r, 1);
	case MILTER_R_QUARANTINE:
	case MILTER_R_ADDRCPT:
	case MILTER_R_DELRCPT:
		if (get_str(&p, end, &r->str, &r->strlen) == -1)
			return MILTER_E_STR;
		return p == end ? MILTER_OK : MILTER_E_EXTRA;
	case MILTER_R_CHGFROM:
	case MILTER_R_ADDRCPT_PAR:
		/* address, then optional ESMTP arguments */
		if (get_str(&p, end, &r->str, &r->strlen) == -1)
			return MILTER_E_STR;
		if (p != end && memchr(p, '\0', (size_t)(end - p)) == NULL)
			return MILTER_E_STR;
		return MILTER_OK;
	case MILTER_R_REPLBODY:
		r->str = p;
		r->strlen = (size_t)(end - p);
		return MILTER_OK;
	case MILTER_R_SETSYMLIST:
		return end - p >= 4 ? MILTER_OK : MILTER_E_SHORT;
	}
	return MILTER_E_CMD;
}

/* ---- builders ---- */

static void
put32(struct buf *b, uint32_t v)
{
	unsigned char	 c[4] = { v >> 24, v >> 16 & 0xff, v >> 8 & 0xff,
	    v & 0xff };

	buf_add(b, c, 4);
}

/* start a packet: a length placeholder and the command; its offset */
static size_t
pkt_begin(struct buf *b, char cmd)
{
	size_t	 off = b->len;

	put32(b, 0);
	buf_addc(b, cmd);
	return off;
}

static void
pkt_end(struct buf *b, size_t off)
{
	size_t		 n;
	unsigned char	*p;

	if (b->err || b->len < off + 5)
		return;
	n = b->len - off - 4;
	if (n > UINT32_MAX) {
		b->err = BUF_ETOOBIG;
		return;
	}
	p = (unsigned char *)b->data + off;
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
}

void
milter_put_optneg(struct buf *b, uint32_t actions, uint32_t protocol)
{
	size_t	 off = pkt_begin(b, MILTER_C_OPTNEG);

	put32(b, MILTER_VERSION);
	put32(b, actions);
	put32(b, protocol);
	pkt_end(b, off);
}

void
milter_put_cmd(struct buf *b, char cmd, const void *data, size_t len)
{
	size_t	 off = pkt_begin(b, cmd);

	if (len)
		buf_add(b, data, len);
	pkt_end(b, off);
}

void
milter_put_strs(struct buf *b, char cmd, const char *const *strs, size_t n)
{
	size_t	 off = pkt_begin(b, cmd);

	for (size_t i = 0; i < n; i++)
		buf_add(b, strs[i], strlen(strs[i]) + 1);
	pkt_end(b, off);
}

void
milter_put_connect(struct buf *b, const char *host, char family,
    uint16_t port, const char *addr)
{
	size_t		 off = pkt_begin(b, MILTER_C_CONNECT);
	unsigned char	 pt[2] = { port >> 8, port & 0xff };

	buf_add(b, host, strlen(host) + 1);
	buf_addc(b, family);
	if (family != 'U') {
		buf_add(b, pt, 2);
		buf_add(b, addr, strlen(addr) + 1);
	}
	pkt_end(b, off);
}

void
milter_put_body(struct buf *b, const char *p, size_t len)
{
	size_t		 off = pkt_begin(b, MILTER_C_BODY);
	const char	*nl;

	if (len > MILTER_BODY_IN)
		len = MILTER_BODY_IN;	/* a caller's bug: never over a chunk */
	while (len > 0 && (nl = memchr(p, '\n', len)) != NULL) {
		buf_add(b, p, (size_t)(nl - p));
		buf_add(b, "\r\n", 2);
		len -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	if (len)
		buf_add(b, p, len);
	pkt_end(b, off);
}

void
milter_put_macros(struct buf *b, char cmd, const char *const *nv,
    size_t npairs)
{
	size_t	 off = pkt_begin(b, MILTER_C_MACRO);

	buf_addc(b, cmd);
	for (size_t i = 0; i < npairs * 2; i++)
		buf_add(b, nv[i], strlen(nv[i]) + 1);
	pkt_end(b, off);
}

/* ---- header fields ---- */

int
milter_hdr_split(const char *p, size_t len, size_t *namelen, size_t *valoff)
{
	const char	*colon = memchr(p, ':', len);
	size_t		 n, v;

	if (colon == NULL)
		return -1;
	n = (size_t)(colon - p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;		/* "Subject : x" (obsolete syntax) */
	if (n == 0)
		return -1;
	v = (size_t)(colon - p) + 1;
	if (v < len && (p[v] == ' ' || p[v] == '\t'))
		v++;
	*namelen = n;
	*valoff = v;
	return 0;
}

int
milter_hdr_line(struct buf *out, const char *name, const char *value,
    size_t valuelen)
{
	size_t	 start = out->len, nl = strlen(name), i;
	int	 at_break = 0, empty = 1;

	if (!hdr_name_ok(name, nl) || out->err)
		return -1;
	buf_add(out, name, nl);
	buf_add(out, ": ", 2);
	for (i = 0; i < valuelen; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '\r')
			continue;
		if (c == '\n') {
			if (at_break || empty)
				goto bad;	/* an empty line ends headers */
			at_break = 1;
			buf_addc(out, '\n');
			continue;
		}
		if (at_break && c != ' ' && c != '\t')
			goto bad;		/* would start a new field */
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			goto bad;
		at_break = 0;
		empty = 0;
		buf_addc(out, (char)c);
	}
	if (at_break)
		goto bad;
	buf_addc(out, '\n');
	if (out->err)
		goto bad;
	return 0;
bad:
	/* take back what this header added; a sticky error stays */
	if (!out->err)
		out->len = start;
	if (out->data)
		out->data[out->len] = '\0';
	return -1;
}

/* where the field at p ends in sec (after its folded lines) */
static size_t
field_end(const char *sec, size_t len, size_t p)
{
	const char	*nl;

	for (;;) {
		if ((nl = memchr(sec + p, '\n', len - p)) == NULL)
			return len;
		p = (size_t)(nl - sec) + 1;
		if (p >= len || (sec[p] != ' ' && sec[p] != '\t'))
			return p;
	}
}

int
milter_hdr_edit(struct buf *sec, struct buf *tmp, int ins, int del,
    const char *name, uint32_t index, const char *line, size_t linelen)
{
	size_t		 off = 0, end, nl = strlen(name), at = sec->len, cut = 0;
	uint32_t	 seen = 0, fields = 0;
	int		 found = 0;
	struct buf	 swap;

	while (off < sec->len) {
		end = field_end(sec->data, sec->len, off);
		if (ins && fields++ == index) {
			at = off;
			found = 1;
			break;
		}
		if (!ins && end - off > nl && sec->data[off + nl] == ':' &&
		    strncasecmp(sec->data + off, name, nl) == 0 &&
		    ++seen == index) {
			at = off;
			cut = end - off;
			found = 1;
			break;
		}
		off = end;
	}
	if (!found && del)
		return 0;	/* no such field to remove */
	buf_reset(tmp);
	buf_add(tmp, sec->data, at);
	if (!del)
		buf_add(tmp, line, linelen);
	buf_add(tmp, sec->data + at + cut, sec->len - at - cut);
	if (tmp->err)
		return -1;
	swap = *sec;		/* the result becomes sec, sec scratch */
	*sec = *tmp;
	*tmp = swap;
	return 1;
}
