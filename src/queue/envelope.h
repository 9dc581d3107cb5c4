/*
 * envelope - the spool's envelope file: who sent a message, to whom, how it
 * arrived, the headers the queue adds, and the delivery state of each
 * recipient. The message bytes live in a separate, immutable data file.
 *
 * Format (text, one record a line, "name SP value LF"):
 *	sluice-envelope 1		first line: magic and format version
 *	id 0192AB...			queue id
 *	... one record per field (see envelope.c) ...
 *	rcpt STATE ATTEMPTS NEXT ADDR	one per recipient
 *	rcpt-error TEXT			optional, after its rcpt: last error
 *	hdr TEXT			a header line the queue prepends
 *	end				required last record
 * Every value is checked for CR, LF and NUL before it is written (P7); a file
 * without its end record or with an unknown record does not parse (P9: the
 * caller moves it to corrupt/).
 */
#ifndef SLUICE_ENVELOPE_H
#define SLUICE_ENVELOPE_H

#include <stddef.h>
#include <time.h>

#include "addr.h"
#include "buf.h"

#define ENVELOPE_VERSION	1
#define QUEUE_ID_LEN		20	/* hex chars, see queue_id_new() */
#define ENV_TEXT_MAX		512	/* helo, client names, errors */
#define ENV_RCPT_MAX		20000	/* with alias targets */
#define ENV_HDRS_MAX		(64 * 1024)

enum rcpt_state {
	RCPT_PENDING = 0,	/* not yet tried or to be tried now */
	RCPT_DEFERRED,		/* temporary failure: retry at next_try */
	RCPT_DELIVERED,
	RCPT_BOUNCED,		/* permanent failure, DSN due or sent */
	RCPT_WAITING,		/* no route usable in this online state */
	RCPT_EXPANDED,		/* an alias: its targets follow as recipients */
};

/* how an expanded recipient is delivered (rcpt-via) */
enum rcpt_via {
	VIA_NONE = 0,		/* an address as received: look it up */
	VIA_MAILBOX,		/* addr is the account's local@domain */
	VIA_REMOTE,		/* addr is remote */
	VIA_PIPE,		/* target is the command line of a robot */
	VIA_FILE,		/* target is an mbox file */
};
#define ENV_TARGET_MAX	4096

/* envelope flags */
#define ENV_F_LOCAL	0x01	/* submitted locally (sendmail) or AUTH */
#define ENV_F_SMTPUTF8	0x02
#define ENV_F_8BITMIME	0x04
#define ENV_F_SCANNED	0x08	/* scanner done: hdr records are complete */
#define ENV_F_HELD	0x10	/* on hold: not delivered until released */
#define ENV_F_DOUBLE	0x20	/* a double-bounce notice: never bounced */
#define ENV_F_WARNED	0x40	/* the sender was told of the delay */

struct env_rcpt {
	char		 addr[ADDR_STR_MAX + 1];	/* final recipient */
	char		 orig[ADDR_STR_MAX + 1];	/* as given at RCPT */
	enum rcpt_state	 state;
	unsigned	 attempts;
	time_t		 next_try;
	char		 error[ENV_TEXT_MAX];	/* last error, sanitised */
	/* alias expansion (rcpt-via, rcpt-target) */
	enum rcpt_via	 via;
	unsigned	 owner;			/* uid a pipe/file runs as */
	char		 ext[ADDR_LOCAL_MAX + 1];	/* EXTENSION */
	char		*target;		/* pipe/file, malloc'ed */
};

struct envelope {
	char		 id[QUEUE_ID_LEN + 1];
	time_t		 created;
	char		 from[ADDR_STR_MAX + 1];	/* "" is the null path */
	char		 helo[ENV_TEXT_MAX];
	char		 client_addr[64];	/* "127.0.0.1", "local" */
	char		 client_name[ENV_TEXT_MAX];
	char		 proto[16];		/* SMTP ESMTP ESMTPS ESMTPSA LOCAL */
	char		 tls[64];		/* "" or "TLSv1.3 cipher" */
	char		 auth[ADDR_STR_MAX + 1];	/* AUTH identity */
	unsigned	 flags;			/* ENV_F_* */
	unsigned long long size;		/* data file bytes */
	unsigned	 hops;			/* Received: count (scanner) */
	struct env_rcpt	*rcpts;
	size_t		 nrcpts;
	size_t		 rcptcap;
	struct buf	 hdrs;	/* header lines to prepend, each ending LF */
};

void	envelope_init(struct envelope *);
void	envelope_free(struct envelope *);
/* append a recipient in state PENDING; -1 on ENOMEM or too many */
int	envelope_add_rcpt(struct envelope *, const char *addr,
	    const char *orig);
/* an alias's target (state pending); target is the pipe's command line or
   the file's path, NULL otherwise; -1 when invalid or out of room */
int	envelope_add_target(struct envelope *, const char *addr,
	    const char *orig, enum rcpt_via, unsigned owner, const char *ext,
	    const char *target);
/* append one header line (without LF); -1 if it holds CR/LF/NUL or too big */
int	envelope_add_hdr(struct envelope *, const char *line, size_t len);
/* serialise into out; -1 with err filled if a field holds CR, LF or NUL */
int	envelope_write(const struct envelope *, struct buf *out,
	    char *err, size_t errlen);
/* parse data[0..len); -1 with err filled on any defect */
int	envelope_parse(struct envelope *, const char *data, size_t len,
	    char *err, size_t errlen);
/* same content, field by field (tests, fuzzing) */
int	envelope_equal(const struct envelope *, const struct envelope *);
/* recipients not yet delivered or bounced */
size_t	envelope_pending(const struct envelope *);

/* a new unique, time-sortable queue id (QUEUE_ID_LEN hex chars + NUL) */
void	queue_id_new(char *dst, size_t dstlen);
/* is s a well-formed queue id (QUEUE_ID_LEN hex chars)? */
int	queue_id_valid(const char *s);

#endif
