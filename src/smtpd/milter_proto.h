/*
 * milter_proto - the Sendmail/Postfix milter protocol (version 6), the
 * MTA side: building commands and parsing a filter's replies. Pure
 * functions over buffers (no sockets), so unit tests and a fuzzer drive
 * them; milter.c does the I/O.
 *
 * A packet is a 4-byte big-endian length (counting the command byte),
 * one command byte, then the data. A filter's reply is untrusted input:
 * every length is checked, strings must be NUL-terminated inside the
 * packet, nothing is left over.
 */
#ifndef SLUICE_MILTER_PROTO_H
#define SLUICE_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MILTER_VERSION		6
#define MILTER_REPLY_MAX	(64 * 1024)	/* a reply packet, bytes */
#define MILTER_CHUNK_MAX	65535		/* one SMFIC_BODY chunk */
#define MILTER_TEXT_MAX		400		/* a SMFIR_REPLYCODE text */
#define MILTER_HDR_NAME_MAX	128		/* an added header's name */

/* commands, MTA to filter (SMFIC_*) */
#define MILTER_C_ABORT		'A'
#define MILTER_C_BODY		'B'
#define MILTER_C_CONNECT	'C'
#define MILTER_C_MACRO		'D'
#define MILTER_C_BODYEOB	'E'
#define MILTER_C_HELO		'H'
#define MILTER_C_HEADER		'L'
#define MILTER_C_MAIL		'M'
#define MILTER_C_EOH		'N'
#define MILTER_C_OPTNEG		'O'
#define MILTER_C_QUIT		'Q'
#define MILTER_C_RCPT		'R'
#define MILTER_C_DATA		'T'

/* replies, filter to MTA (SMFIR_*) */
#define MILTER_R_ADDRCPT	'+'
#define MILTER_R_DELRCPT	'-'
#define MILTER_R_ADDRCPT_PAR	'2'
#define MILTER_R_SHUTDOWN	'4'
#define MILTER_R_ACCEPT		'a'
#define MILTER_R_REPLBODY	'b'
#define MILTER_R_CONTINUE	'c'
#define MILTER_R_DISCARD	'd'
#define MILTER_R_CHGFROM	'e'
#define MILTER_R_CONN_FAIL	'f'
#define MILTER_R_ADDHEADER	'h'
#define MILTER_R_INSHEADER	'i'
#define MILTER_R_SETSYMLIST	'l'
#define MILTER_R_CHGHEADER	'm'
#define MILTER_R_PROGRESS	'p'
#define MILTER_R_QUARANTINE	'q'
#define MILTER_R_REJECT		'r'
#define MILTER_R_SKIP		's'
#define MILTER_R_TEMPFAIL	't'
#define MILTER_R_REPLYCODE	'y'
#define MILTER_R_OPTNEG		'O'

/* actions (SMFIF_*) */
#define MILTER_A_ADDHDRS	0x01
#define MILTER_A_CHGBODY	0x02
#define MILTER_A_ADDRCPT	0x04
#define MILTER_A_DELRCPT	0x08
#define MILTER_A_CHGHDRS	0x10
#define MILTER_A_QUARANTINE	0x20
#define MILTER_A_CHGFROM	0x40
#define MILTER_A_ADDRCPT_PAR	0x80
/*
 * Offered: libmilter filters (spamass-milter, clamav-milter) give up when
 * an action they registered is not offered. Applied: add/insert header,
 * quarantine, change sender, add/delete recipient; change header and
 * replace body are logged and not applied (milter.c).
 */
#define MILTER_ACTIONS		(MILTER_A_ADDHDRS | MILTER_A_CHGBODY | \
	MILTER_A_ADDRCPT | MILTER_A_DELRCPT | MILTER_A_CHGHDRS | \
	MILTER_A_QUARANTINE | MILTER_A_CHGFROM | MILTER_A_ADDRCPT_PAR)

/* protocol flags (SMFIP_*) */
#define MILTER_P_NOCONNECT	0x01
#define MILTER_P_NOHELO		0x02
#define MILTER_P_NOMAIL		0x04
#define MILTER_P_NORCPT		0x08
#define MILTER_P_NOBODY		0x10
#define MILTER_P_NOHDRS		0x20
#define MILTER_P_NOEOH		0x40
#define MILTER_P_NR_HDR		0x80
#define MILTER_P_NOUNKNOWN	0x100
#define MILTER_P_NODATA		0x200
#define MILTER_P_SKIP		0x400
#define MILTER_P_RCPT_REJ	0x800
#define MILTER_P_NR_CONN	0x1000
#define MILTER_P_NR_HELO	0x2000
#define MILTER_P_NR_MAIL	0x4000
#define MILTER_P_NR_RCPT	0x8000
#define MILTER_P_NR_DATA	0x10000
#define MILTER_P_NR_UNKN	0x20000
#define MILTER_P_NR_EOH		0x40000
#define MILTER_P_NR_BODY	0x80000
/* the steps a filter may skip or not answer; we never send UNKNOWN */
#define MILTER_PROTOCOL		(MILTER_P_NOCONNECT | MILTER_P_NOHELO | \
	MILTER_P_NOMAIL | MILTER_P_NORCPT | MILTER_P_NOBODY | \
	MILTER_P_NOHDRS | MILTER_P_NOEOH | MILTER_P_NR_HDR | \
	MILTER_P_NOUNKNOWN | MILTER_P_NODATA | MILTER_P_SKIP | \
	MILTER_P_NR_CONN | MILTER_P_NR_HELO | MILTER_P_NR_MAIL | \
	MILTER_P_NR_RCPT | MILTER_P_NR_DATA | MILTER_P_NR_UNKN | \
	MILTER_P_NR_EOH | MILTER_P_NR_BODY)

enum milter_perr {
	MILTER_OK = 0,
	MILTER_E_LEN,		/* length 0 or over MILTER_REPLY_MAX */
	MILTER_E_CMD,		/* unknown reply command */
	MILTER_E_SHORT,		/* data too short for the command */
	MILTER_E_EXTRA,		/* bytes left over */
	MILTER_E_STR,		/* a string without its NUL */
	MILTER_E_CODE,		/* a reply code that is not 4xx/5xx */
	MILTER_E_HDR,		/* a header name or value we refuse */
	MILTER_E_VERSION,	/* option negotiation we cannot accept */
};

struct milter_reply {
	char		 cmd;		/* MILTER_R_* */
	/* OPTNEG */
	uint32_t	 version, actions, protocol;
	/* REPLYCODE: "4xx x.y.z text", sanitised, one line */
	char		 text[MILTER_TEXT_MAX + 1];
	/* ADDHEADER/INSHEADER/CHGHEADER; value points into the packet */
	uint32_t	 index;
	char		 name[MILTER_HDR_NAME_MAX + 1];
	const char	*value;
	size_t		 valuelen;
	/* QUARANTINE reason, ADDRCPT/DELRCPT/CHGFROM address (raw) */
	const char	*str;
	size_t		 strlen;
};

/* the length of a packet from its 4-byte prefix, or -1 if refused */
long	milter_frame_len(const unsigned char hdr[4]);
/* parse one reply packet (command byte + data, without the prefix) */
enum milter_perr milter_reply_parse(const char *pkt, size_t len,
	    struct milter_reply *);
const char *milter_strerror(enum milter_perr);

/* commands, appended to b (errors are sticky in b) */
void	milter_put_optneg(struct buf *b, uint32_t actions, uint32_t protocol);
void	milter_put_cmd(struct buf *b, char cmd, const void *data, size_t len);
/* cmd followed by n NUL-terminated strings */
void	milter_put_strs(struct buf *b, char cmd, const char *const *strs,
	    size_t n);
/* SMFIC_CONNECT: host, family '4' '6' or 'U' (unknown), port, address */
void	milter_put_connect(struct buf *b, const char *host, char family,
	    uint16_t port, const char *addr);
/*
 * SMFIC_BODY from spool text (LF line ends): sent with CRLF, as on the
 * wire. At most MILTER_BODY_IN bytes of input fit one chunk.
 */
#define MILTER_BODY_IN		(MILTER_CHUNK_MAX / 2)
void	milter_put_body(struct buf *b, const char *p, size_t len);
/* SMFIC_MACRO for the command cmd: n pairs name, value */
void	milter_put_macros(struct buf *b, char cmd, const char *const *nv,
	    size_t npairs);

/*
 * A header field of the message (name: value, folded lines LF or CRLF)
 * split for SMFIC_HEADER: name and value (leading space dropped, line
 * ends as LF). p..len is one whole field without its final line end.
 * -1 if it has no colon or an empty name.
 */
int	milter_hdr_split(const char *p, size_t len, size_t *namelen,
	    size_t *valoff);
/*
 * An added header as a line for the envelope: "Name: value\n", folded
 * lines kept with LF and a leading blank, CR dropped. -1 (nothing
 * appended) when the name or value is not acceptable (control bytes, an
 * empty continuation line, a line break not followed by a blank).
 */
int	milter_hdr_line(struct buf *out, const char *name, const char *value,
	    size_t valuelen);
/*
 * A change-header or insert-header (SMFIR_CHGHEADER, SMFIR_INSHEADER)
 * applied to a header section, the way libmilter's smfi_chgheader and
 * smfi_insheader define them:
 *   - change (ins 0): the index-th field named name (1-based, any case)
 *     is replaced by line, or removed when del is set; an index past the
 *     last such field adds line at the end (del: nothing to do);
 *   - insert (ins 1): line goes before the index-th field (0-based,
 *     counting every field); past the end, at the end.
 * sec holds whole fields with LF line ends and no empty line; line is
 * one field as milter_hdr_line() makes it. The result replaces sec's
 * contents (tmp is scratch space). 1 changed, 0 nothing to do, -1 a buf
 * error (sec is then unchanged).
 */
int	milter_hdr_edit(struct buf *sec, struct buf *tmp, int ins, int del,
	    const char *name, uint32_t index, const char *line, size_t linelen);

#endif
