/*
 * smtp_reply - a pure, incremental parser for SMTP server replies
 * (RFC 5321 4.2, enhanced status codes RFC 3463) and the EHLO keywords.
 *
 * Bytes are fed in any chunking; the parser copies at most one line
 * (SMTP_REPLY_LINE_MAX octets) into its own storage, so a 10 MB line is
 * refused with SMTP_RE_TOO_LONG as soon as it passes the cap, never
 * buffered. smtp_reply_feed() stops right after the last line of a reply:
 * what follows belongs to the next reply (PIPELINING) or to TLS (STARTTLS)
 * and stays with the caller. After SMTP_R_DONE the reply is in p->reply
 * until smtp_reply_reset(); after SMTP_R_ERROR the parser is dead (the
 * connection cannot be resynchronised) until reset.
 *
 * The reply text is kept raw (lines joined by '\n', without code and
 * enhanced code); smtp_reply_format() gives the sanitised one-line form for
 * logs and DSNs (P7).
 */
#ifndef SLUICE_SMTP_REPLY_H
#define SLUICE_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_REPLY_LINE_MAX	2048	/* CRLF included; RFC minimum 512 */
#define SMTP_REPLY_LINES_MAX	100
#define SMTP_REPLY_TEXT_MAX	(SMTP_REPLY_LINE_MAX * SMTP_REPLY_LINES_MAX)

enum smtp_reply_state { SMTP_R_MORE, SMTP_R_DONE, SMTP_R_ERROR };

enum smtp_reply_err {
	SMTP_RE_NONE,
	SMTP_RE_TOO_LONG,	/* one line over SMTP_REPLY_LINE_MAX */
	SMTP_RE_TOO_MANY,	/* more than SMTP_REPLY_LINES_MAX lines */
	SMTP_RE_SYNTAX,		/* bad code, separator, NUL byte */
	SMTP_RE_MISMATCH,	/* lines of one reply with different codes */
	SMTP_RE_NOMEM,
};

struct smtp_reply {
	int		 code;		/* 200..599 */
	char		 enh[16];	/* "2.1.5", "" if none */
	struct buf	 text;		/* lines joined by '\n', raw */
	size_t		 nlines;
};

struct smtp_reply_parser {
	enum smtp_reply_state	 state;
	enum smtp_reply_err	 err;
	struct smtp_reply	 reply;
	size_t			 linelen;
	char			 line[SMTP_REPLY_LINE_MAX];
};

void	smtp_reply_init(struct smtp_reply_parser *);
void	smtp_reply_reset(struct smtp_reply_parser *);
void	smtp_reply_free(struct smtp_reply_parser *);
size_t	smtp_reply_feed(struct smtp_reply_parser *, const char *, size_t);
const char *smtp_reply_strerror(enum smtp_reply_err);
void	smtp_reply_format(const struct smtp_reply *, char *, size_t);

/* EHLO keywords (RFC 5321 4.1.1.1 and the extensions' RFCs) */
#define SMTP_EXT_PIPELINING	0x0001
#define SMTP_EXT_SIZE		0x0002
#define SMTP_EXT_STARTTLS	0x0004
#define SMTP_EXT_8BITMIME	0x0008
#define SMTP_EXT_SMTPUTF8	0x0010
#define SMTP_EXT_AUTH		0x0020
#define SMTP_EXT_CHUNKING	0x0040
#define SMTP_EXT_ENHANCED	0x0080
#define SMTP_EXT_DSN		0x0100

#define SMTP_AUTH_PLAIN		0x01
#define SMTP_AUTH_LOGIN		0x02
#define SMTP_AUTH_OTHER		0x04

struct smtp_ext {
	unsigned	 flags;
	unsigned	 auth;		/* SMTP_AUTH_* offered */
	uint64_t	 size;		/* SIZE limit, 0: none declared */
};

void	smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ext *);

#endif
