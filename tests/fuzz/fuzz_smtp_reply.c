/*
 * fuzz_smtp_reply - libFuzzer target for src/deliver/smtp_reply.c.
 *
 * Input: a chunking seed byte, then raw server bytes, parsed as a stream
 * of replies (reset after each). Invariants:
 *  - one-shot, byte-by-byte and random chunking agree on every reply
 *    (state, error, code, enhanced code, text) and on bytes consumed;
 *  - a finished reply ends on an LF, has a code in 200..559 and a text
 *    within SMTP_REPLY_TEXT_MAX; a line over the cap is never taken in;
 *  - the formatted form holds no control character;
 *  - EHLO keyword parsing of any finished reply does not misbehave.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct trace {
	struct buf	 t;	/* a summary of every reply */
	size_t		 used;
};

static void
check_reply(const struct smtp_reply_parser *p, const char *end)
{
	char		 out[600];
	struct smtp_ext	 e;
	size_t		 i;

	if (end[-1] != '\n' || p->reply.code < 200 || p->reply.code > 559 ||
	    p->reply.text.len > SMTP_REPLY_TEXT_MAX || p->reply.nlines == 0 ||
	    p->reply.nlines > SMTP_REPLY_LINES_MAX)
		abort();
	smtp_reply_format(&p->reply, out, sizeof(out));
	for (i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			abort();
	smtp_ehlo_parse(&p->reply, &e);
	if (e.auth && !(e.flags & SMTP_EXT_AUTH))
		abort();
}

/* Parse the whole input as replies, chunked by `chunk` (0: random). */
static void
run(const char *in, size_t len, size_t chunk, unsigned seed,
    struct trace *tr)
{
	struct smtp_reply_parser	 p;
	size_t				 pos = 0, n, used;

	buf_init(&tr->t, 1 << 24);
	smtp_reply_init(&p);
	while (pos < len) {
		seed = seed * 1103515245u + 12345u;
		n = chunk ? chunk : 1 + (seed >> 16) % 300;
		if (n > len - pos)
			n = len - pos;
		used = smtp_reply_feed(&p, in + pos, n);
		if (used > n || (used < n && p.state == SMTP_R_MORE))
			abort();
		pos += used;
		if (p.state == SMTP_R_ERROR) {
			buf_addf(&tr->t, "E%d@%zu", p.err, pos);
			break;
		}
		if (p.state == SMTP_R_DONE) {
			check_reply(&p, in + pos);
			buf_addf(&tr->t, "R%d %s %zu@%zu|", p.reply.code,
			    p.reply.enh, p.reply.nlines, pos);
			buf_add(&tr->t, p.reply.text.data ? p.reply.text.data :
			    "", p.reply.text.len);
			smtp_reply_reset(&p);
		}
		if (p.linelen > SMTP_REPLY_LINE_MAX)
			abort();
	}
	tr->used = pos;
	smtp_reply_free(&p);
}

static void
same(const struct trace *a, const struct trace *b)
{
	if (a->t.len != b->t.len || a->used != b->used ||
	    (a->t.len && memcmp(a->t.data, b->t.data, a->t.len)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace	 one, bytes, rnd;
	const char	*in;
	size_t		 len;

	if (size < 1)
		return 0;
	in = (const char *)data + 1;
	len = size - 1;
	run(in, len, len + 1, 0, &one);
	run(in, len, 1, 0, &bytes);
	run(in, len, 0, data[0], &rnd);
	same(&one, &bytes);
	same(&one, &rnd);
	buf_free(&one.t);
	buf_free(&bytes.t);
	buf_free(&rnd.t);
	return 0;
}
