/*
 * smtp_parse - pure parsers for SMTP command lines (RFC 5321, 1869, 3030,
 * 6152, 6531). No I/O: they read a line the caller already split off.
 */
#ifndef SLUICE_SMTP_PARSE_H
#define SLUICE_SMTP_PARSE_H

#include <stddef.h>
#include "addr.h"

#define SMTP_LINE_MAX	1000	/* command line including CRLF (4.5.3.1.4) */

enum smtp_verb {
	SMTP_V_UNKNOWN = 0,
	SMTP_V_HELO, SMTP_V_EHLO, SMTP_V_MAIL, SMTP_V_RCPT, SMTP_V_DATA,
	SMTP_V_BDAT, SMTP_V_RSET, SMTP_V_NOOP, SMTP_V_QUIT, SMTP_V_VRFY,
	SMTP_V_EXPN, SMTP_V_HELP, SMTP_V_STARTTLS, SMTP_V_AUTH,
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*arg;	/* after the verb and one space; not NUL-ended */
	size_t		 arglen;	/* trailing spaces trimmed */
};

/* results of the argument parsers; mapped to replies by the session */
enum smtp_perr {
	SMTP_P_OK = 0,
	SMTP_P_SYNTAX,		/* 501 5.5.4 */
	SMTP_P_NUL,		/* 500 5.5.2 NUL in command */
	SMTP_P_ADDR,		/* 501/553: see addr_err in the result */
	SMTP_P_PARAM,		/* 555 5.5.4 unknown or bad MAIL/RCPT param */
	SMTP_P_SIZE,		/* 552 5.3.4 declared SIZE too large (caller) */
};

enum smtp_body { SMTP_BODY_7BIT = 0, SMTP_BODY_8BITMIME, SMTP_BODY_BINARY };

struct smtp_mail_args {
	struct mailaddr	 from;
	unsigned long long size;	/* SIZE=, 0 if absent */
	enum smtp_body	 body;
	int		 smtputf8;
	enum addr_err	 addr_err;
};

struct smtp_rcpt_args {
	struct mailaddr	 to;
	enum addr_err	 addr_err;
};

struct smtp_bdat_args {
	unsigned long long size;
	int		 last;
};

/*
 * Split a command line (CRLF or LF already removed) into verb and argument.
 * Verbs are case-insensitive. Returns SMTP_P_NUL if the line holds a NUL
 * byte, SMTP_P_SYNTAX if the verb is not followed by end or a space,
 * else SMTP_P_OK (verb may be SMTP_V_UNKNOWN).
 */
enum smtp_perr	smtp_parse_cmd(const char *line, size_t len,
		    struct smtp_cmd *cmd);
/* "FROM:<path> [params]" -> args (8-bit addresses need the SMTPUTF8 param) */
enum smtp_perr	smtp_parse_mail(const char *arg, size_t len,
		    struct smtp_mail_args *out);
/* "TO:<path> [params]"; smtputf8: the transaction declared SMTPUTF8 */
enum smtp_perr	smtp_parse_rcpt(const char *arg, size_t len, int smtputf8,
		    struct smtp_rcpt_args *out);
/* "SIZE [LAST]" */
enum smtp_perr	smtp_parse_bdat(const char *arg, size_t len,
		    struct smtp_bdat_args *out);
/* HELO/EHLO argument: a domain or address literal, printable, no spaces */
enum smtp_perr	smtp_parse_helo(const char *arg, size_t len);

#endif
