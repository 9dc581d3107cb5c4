/*
 * smtp_data - the DATA / BDAT byte decoder (a state machine over raw bytes).
 *
 * Input: the raw bytes a client sends after DATA (or inside BDAT chunks).
 * Output: the message with LF line ends (the spool's canonical form), dot
 * stuffing removed. Only CR LF '.' CR LF on the raw bytes ends DATA (P6);
 * a bare CR or LF is noted in `errors` and, in strict mode, output goes on
 * (the message is rejected after the real end of data), otherwise it is
 * taken as a line end. Lines longer than `maxline` octets (CRLF included)
 * and NUL bytes are noted in `errors` too.
 */
#ifndef SLUICE_SMTP_DATA_H
#define SLUICE_SMTP_DATA_H

#include <stddef.h>
#include "buf.h"

enum smtp_data_mode { SMTP_DATA_DOT, SMTP_DATA_BDAT };

#define SMTP_DATA_E_BARE_LF	0x01
#define SMTP_DATA_E_BARE_CR	0x02
#define SMTP_DATA_E_LONG_LINE	0x04
#define SMTP_DATA_E_NUL		0x08

struct smtp_data_dec {
	enum smtp_data_mode mode;
	int		 strict;	/* reject (flag) bare CR/LF: smtp */
	size_t		 maxline;	/* 1000 per RFC 5321 */
	int		 state;		/* private */
	size_t		 linelen;	/* private */
	unsigned	 errors;	/* SMTP_DATA_E_* seen so far */
	int		 done;		/* DOT mode: end of data seen */
	unsigned long long inbytes;	/* raw bytes consumed */
	unsigned long long outbytes;	/* decoded bytes produced */
};

void	smtp_data_init(struct smtp_data_dec *, enum smtp_data_mode,
	    int strict, size_t maxline);
/*
 * Decode in[0..len) appending to out. In DOT mode stops right after the
 * terminating CRLF.CRLF and returns the bytes consumed (the rest belongs to
 * the next command); sets done. In BDAT mode consumes everything.
 * A call appends at most len + 1 bytes to out; the caller drains out (to the
 * spool file) between calls and enforces the message size on outbytes.
 */
size_t	smtp_data_feed(struct smtp_data_dec *, const char *in, size_t len,
	    struct buf *out);
/* BDAT LAST: flush a pending CR and end an unterminated last line. */
void	smtp_data_finish(struct smtp_data_dec *, struct buf *out);

#endif
