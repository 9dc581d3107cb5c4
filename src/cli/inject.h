/*
 * inject - `sluice inject`: compose a MIME message (GMime, cmd_inject.c)
 * and send it through `sluice sendmail` or an SMTP server (inject_smtp.c).
 * The helpers of inject_util.c are pure functions over buffers, without
 * GMime, sockets or files, so that tests/unit/test_inject.c drives them.
 */
#ifndef SLUICE_INJECT_H
#define SLUICE_INJECT_H

#include <stddef.h>

#include "buf.h"

#define INJECT_HDR_NAME_MAX	76	/* a --header field name */
#define INJECT_HDR_VALUE_MAX	4096	/* a --header value (GMime folds it) */
#define INJECT_REPLY_MAX	4096	/* an SMTP reply, all lines, as text */
#define INJECT_HOST_MAX		255

/* a content type found by inject_sniff(); charset NULL unless text */
struct inject_type {
	const char	*type;
	const char	*subtype;
	const char	*charset;
};

/*
 * The Content-Type of p[0..n) from its first bytes: PDF, PNG, JPEG, GIF,
 * ZIP, gzip; text/plain (us-ascii or utf-8) for valid UTF-8 without
 * control characters other than TAB, LF, FF and CR; else
 * application/octet-stream.
 */
void	inject_sniff(const unsigned char *p, size_t n, struct inject_type *);
/* is p[0..n) UTF-8 text (see inject_sniff)? 2 if all ASCII, 1 if not */
int	inject_is_text(const unsigned char *p, size_t n);

/*
 * Split a --header argument "Name: value": the name into name[namelen]
 * (RFC 5322 ftext, not one of the fields inject sets itself), *value
 * pointing into arg past the colon and white space. NULL, or why not.
 */
const char *inject_header_check(const char *arg, char *name, size_t namelen,
	    const char **value);

/*
 * One line of an SMTP reply without its line end: *code (200..599) and
 * *more (1 for "NNN-"). 0, or -1 if it is not a reply line.
 */
int	inject_reply_line(const char *line, size_t len, int *code, int *more);

/*
 * The DATA payload for p[0..n): every line end (CRLF, LF or a lone CR)
 * as CRLF, a leading "." doubled, a final CRLF if missing, then ".\r\n".
 * Appended to out; -1 if out's cap was reached.
 */
int	inject_data_stuff(const char *p, size_t n, struct buf *out);

/*
 * "HOST:PORT" or "[v6]:PORT" into host and port (1..65535); -1 if
 * malformed or too long.
 */
int	inject_hostport(const char *s, char *host, size_t hostlen,
	    char *port, size_t portlen);

/* how inject_smtp_send() reaches the server */
enum inject_tls { INJECT_TLS_NONE, INJECT_TLS_STARTTLS, INJECT_TLS_IMPLICIT };

struct inject_smtp {
	const char	*host, *port;	/* from --server */
	const char	*tls_name;	/* the name to verify, NULL: host */
	enum inject_tls	 tls;
	const char	*ca_file;	/* NULL: the system store */
	int		 insecure;	/* no certificate verification */
	const char	*user;		/* AUTH PLAIN, NULL: none */
	const char	*password;
	const char	*helo;		/* our name for EHLO */
	int		 timeout;	/* seconds, every step */
};

/*
 * Send msg[0..len) (any line ends) from `from` to rcpts over SMTP
 * (inject_smtp.c): all recipients or none. An exit status from
 * <sysexits.h>; the reason, with the server's reply, is on stderr.
 */
int	inject_smtp_send(const struct inject_smtp *, const char *from,
	    const char *const *rcpts, size_t nrcpts, const char *msg,
	    size_t len);

#endif
