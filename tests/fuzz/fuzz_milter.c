/*
 * fuzz_milter - libFuzzer target for src/smtpd/milter_proto.c.
 *
 * Input: a stream of filter replies as they come off the socket (4-byte
 * length, command, data), read the way milter.c reads them. Invariants:
 *  - a frame length over MILTER_REPLY_MAX or 0 is refused before any
 *    buffering;
 *  - a parsed reply points only inside its packet; a REPLYCODE text is
 *    a printable line starting 4xx/5xx within MILTER_TEXT_MAX;
 *  - an accepted header becomes "Name: value\n" lines, each continuation
 *    starting with a blank, no CR, NUL, control byte or empty line; a
 *    refused one leaves the buffer as it was;
 *  - body text becomes one SMFIC_BODY of at most MILTER_CHUNK_MAX bytes
 *    without a bare LF;
 *  - a change-header or insert-header applied to a header section
 *    leaves well-formed fields (check_lines) and changes the length by
 *    at most the new line's, and removes at most one field.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_lines(const struct buf *b)
{
	const char	*p = b->data, *end = b->data + b->len;

	if (b->len == 0)
		return;
	if (end[-1] != '\n' || memchr(p, '\r', b->len) ||
	    memchr(p, '\0', b->len))
		abort();
	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
			abort();
		if (c == '\n' && i + 1 < b->len && (p[i + 1] == '\n'))
			abort();
	}
}

static void
check_reply(const char *pkt, size_t len, const struct milter_reply *r)
{
	struct buf	 b;
	size_t		 before;

	if (r->value && (r->value < pkt || r->value + r->valuelen > pkt + len))
		abort();
	if (r->str && (r->str < pkt || r->str + r->strlen > pkt + len))
		abort();
	if (r->cmd == MILTER_R_REPLYCODE) {
		size_t n = strlen(r->text);
		if (n < 3 || n > MILTER_TEXT_MAX || (r->text[0] != '4' &&
		    r->text[0] != '5'))
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)r->text[i] < 0x20 ||
			    (unsigned char)r->text[i] >= 0x7f)
				abort();
	}
	if (r->cmd == MILTER_R_ADDHEADER || r->cmd == MILTER_R_INSHEADER) {
		buf_init(&b, 1 << 20);
		milter_hdr_line(&b, "X-Before", "x", 1);
		before = b.len;
		if (milter_hdr_line(&b, r->name, r->value, r->valuelen) == -1 &&
		    b.len != before)
			abort();
		check_lines(&b);
		buf_free(&b);
	}
}

/* the reply as a header change on a small section, and on its result */
static void
check_edit(struct buf *sec, const struct milter_reply *r)
{
	struct buf	 line, tmp;
	size_t		 before = sec->len;
	int		 del = r->cmd == MILTER_R_CHGHEADER && r->valuelen == 0;
	int		 rc;

	buf_init(&line, 1 << 20);
	buf_init(&tmp, 1 << 16);
	if (del || milter_hdr_line(&line, r->name, r->value,
	    r->valuelen) == 0) {
		rc = milter_hdr_edit(sec, &tmp, r->cmd == MILTER_R_INSHEADER,
		    del, r->name, r->index, line.data, line.len);
		if (rc == -1 && sec->len != before)
			abort();
		if (rc == 0 && sec->len != before)
			abort();
		if (!del && rc == 1 && sec->len > before + line.len)
			abort();
		check_lines(sec);
	}
	buf_free(&line);
	buf_free(&tmp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*in = (const char *)data;
	struct milter_reply	 r;
	struct buf		 sec;
	size_t			 pos = 0, nl, vo;
	long			 len;

	buf_init(&sec, 1 << 16);
	buf_adds(&sec, "Received: from a\n\tby b\nSubject: hi\n"
	    "X-Spam: yes\nx-spam: no\n");

	while (size - pos >= 4) {
		if ((len = milter_frame_len(data + pos)) == -1)
			break;
		if (len <= 0 || len > MILTER_REPLY_MAX)
			abort();
		pos += 4;
		if ((size_t)len > size - pos)
			break;
		if (milter_reply_parse(in + pos, (size_t)len, &r) == MILTER_OK) {
			check_reply(in + pos, (size_t)len, &r);
			if (r.cmd == MILTER_R_CHGHEADER ||
			    r.cmd == MILTER_R_INSHEADER)
				check_edit(&sec, &r);
		}
		/* the same bytes as body text: CRLF only, within a chunk */
		{
			struct buf	 b;
			size_t		 n = (size_t)len < MILTER_BODY_IN ?
			    (size_t)len : MILTER_BODY_IN;
			buf_init(&b, MILTER_CHUNK_MAX + 5);
			milter_put_body(&b, in + pos, n);
			if (b.err || b.len > MILTER_CHUNK_MAX + 4)
				abort();
			for (size_t i = 5; i < b.len; i++)
				if (b.data[i] == '\n' && b.data[i - 1] != '\r')
					abort();
			buf_free(&b);
		}
		/* the same bytes as one of our header fields */
		if (milter_hdr_split(in + pos, (size_t)len, &nl, &vo) == 0 &&
		    (nl == 0 || vo > (size_t)len || nl >= vo))
			abort();
		pos += (size_t)len;
	}
	buf_free(&sec);
	return 0;
}
