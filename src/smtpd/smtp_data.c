/*
 * smtp_data - the DATA / BDAT byte decoder. See smtp_data.h.
 *
 * Contract: a state machine fed raw client bytes in chunks of any size;
 * the result does not depend on where the chunks are cut. Output goes to
 * the caller's buf (sticky errors: if it fills up, decoding goes on so the
 * end of data is still found, and outbytes still counts what was decoded).
 *
 * The one message boundary (P6) is CR LF '.' CR LF on the raw bytes, where
 * the first CR LF may be the start of data. The machine tracks how much of
 * that pattern it has seen (ST_BOL, ST_DOT, ST_DOTCR); a bare LF or a bare
 * CR never enters those states, so "\n.\n", "\r\n.\n", "\n.\r\n",
 * "\r.\r\n" and "\r\n.\rX" can never end data, in either mode.
 *
 * Output line starts (where dot-unstuffing happens) are a separate notion:
 * after CR LF in both modes, and in non-strict mode also after a bare LF
 * or bare CR (ST_SOFTBOL), since a client that ends lines with bare LF
 * still dot-stuffs them. So in non-strict mode "x\n.\r\n" yields "x\n\n":
 * the dot is taken as stuffing and dropped, the line is empty, and data
 * goes on. In strict mode the same input yields "x\n.\n" (the bare LF is
 * kept as-is and is not a line start) and the message is rejected anyway.
 *
 * Line length counts raw octets, dot-stuffing and CR LF included.
 */
#include <string.h>

#include "buf.h"
#include "smtp_data.h"

enum {
	ST_BOL,		/* raw line start: data start or after CR LF */
	ST_DOT,		/* CR LF '.' (the dot is dropped) */
	ST_DOTCR,	/* CR LF '.' CR; the CR is pending */
	ST_SOFTBOL,	/* non-strict line start after a bare LF / CR */
	ST_TEXT,	/* inside a line */
	ST_CR,		/* a CR inside a line is pending */
	ST_DONE,	/* DOT mode: terminator seen */
};
#define ST_MASK		0xff
#define ST_LASTNL	0x100	/* last byte out was LF (or none yet) */

/* Output staging, so a chunk costs a few buf_add calls, not one a byte. */
struct out {
	struct buf	*buf;
	size_t		 n;
	char		 tmp[512];
};

static void
out_flush(struct out *o)
{
	if (o->n > 0)
		(void)buf_add(o->buf, o->tmp, o->n);	/* sticky error */
	o->n = 0;
}

static void
emit(struct smtp_data_dec *d, struct out *o, char c)
{
	if (o->n == sizeof(o->tmp))
		out_flush(o);
	o->tmp[o->n++] = c;
	d->outbytes++;
	if (c == '\n')
		d->state |= ST_LASTNL;
	else
		d->state &= ~ST_LASTNL;
}

/* Count one raw octet of the current line; saturates once over. */
static void
count(struct smtp_data_dec *d)
{
	if (d->maxline == 0 || d->linelen > d->maxline)
		return;
	if (++d->linelen > d->maxline)
		d->errors |= SMTP_DATA_E_LONG_LINE;
}

/* A pending CR turned out not to precede LF. Returns the next state. */
static int
bare_cr(struct smtp_data_dec *d, struct out *o)
{
	d->errors |= SMTP_DATA_E_BARE_CR;
	if (d->strict) {
		emit(d, o, '\r');
		return ST_TEXT;
	}
	emit(d, o, '\n');
	d->linelen = 0;
	return ST_SOFTBOL;
}

/* LF: ends a line after CR, ends DATA after CR LF '.' CR. */
static int
on_lf(struct smtp_data_dec *d, struct out *o, int st)
{
	if (st == ST_DOTCR)
		return ST_DONE;
	if (st == ST_CR) {
		emit(d, o, '\n');
		d->linelen = 0;
		return ST_BOL;
	}
	/* Bare LF: kept as the LF it is; a line end only if not strict. */
	d->errors |= SMTP_DATA_E_BARE_LF;
	emit(d, o, '\n');
	if (d->strict)
		return ST_TEXT;
	d->linelen = 0;
	return ST_SOFTBOL;
}

/* Feed one raw byte; returns the new state (without the flag bits). */
static int
step(struct smtp_data_dec *d, struct out *o, unsigned char c)
{
	int	 st = d->state & ST_MASK;

	if ((st == ST_CR || st == ST_DOTCR) && c != '\n')
		st = bare_cr(d, o);	/* then c is handled normally */
	count(d);
	switch (c) {
	case '\r':
		return st == ST_DOT ? ST_DOTCR : ST_CR;
	case '\n':
		return on_lf(d, o, st);
	case '.':
		if (d->mode == SMTP_DATA_DOT && st == ST_BOL)
			return ST_DOT;
		if (d->mode == SMTP_DATA_DOT && st == ST_SOFTBOL)
			return ST_TEXT;
		break;
	case '\0':
		d->errors |= SMTP_DATA_E_NUL;
		break;
	default:
		break;
	}
	emit(d, o, (char)c);
	return ST_TEXT;
}

void
smtp_data_init(struct smtp_data_dec *d, enum smtp_data_mode mode, int strict,
    size_t maxline)
{
	memset(d, 0, sizeof(*d));
	d->mode = mode;
	d->strict = strict;
	d->maxline = maxline;	/* 0: no limit */
	d->state = ST_BOL | ST_LASTNL;
}

size_t
smtp_data_feed(struct smtp_data_dec *d, const char *in, size_t len,
    struct buf *out)
{
	struct out	 o;
	size_t		 i;
	int		 st;

	if (d->done)
		return 0;
	o.buf = out;
	o.n = 0;
	for (i = 0; i < len; ) {
		st = step(d, &o, (unsigned char)in[i++]);
		d->state = (d->state & ~ST_MASK) | st;
		if (st == ST_DONE) {
			d->done = 1;
			break;
		}
	}
	out_flush(&o);
	d->inbytes += i;
	return i;
}

void
smtp_data_finish(struct smtp_data_dec *d, struct buf *out)
{
	struct out	 o;
	int		 st = d->state & ST_MASK;

	if (d->done)
		return;
	o.buf = out;
	o.n = 0;
	if (st == ST_CR || st == ST_DOTCR)
		(void)bare_cr(d, &o);
	if (!(d->state & ST_LASTNL))
		emit(d, &o, '\n');
	d->state = ST_BOL | ST_LASTNL;
	out_flush(&o);
}
