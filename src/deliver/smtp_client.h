/*
 * smtp_client - one outbound SMTP connection on libevent (RFC 5321, 3207,
 * 4954, 2920, 1870, 6152, 6531).
 *
 * The caller resolves names (this module never does DNS), owns the
 * concurrency limits and the queue. It creates a client for one address,
 * hands it a message with smtp_client_send(), and gets:
 *  - on_msg: once per handed message, with a result per recipient
 *    (delivered / temp / perm, the sanitised remote reply, the relay).
 *    Inside on_msg the caller may hand the next message; if it does not,
 *    the client says QUIT, or with idle_ms waits that long for one
 *    (smtp_client_send() on an idle client starts it at once).
 *  - on_conn: once, when the connection is over; the client frees itself
 *    after on_conn returns, so the pointer is dead from then on.
 * Callbacks never run inside smtp_client_new() or smtp_client_send().
 *
 * Error policy: anything that goes wrong with the connection (refused,
 * banner not 220, dropped, timeout, garbage, TLS) makes every recipient
 * of the current transaction not yet answered temporary (P3); only a
 * 5xx reply to MAIL, RCPT, DATA or the final dot, and the message-level
 * checks SIZE (5.3.4) and SMTPUTF8 (5.6.7), are permanent. An opportunistic
 * STARTTLS whose handshake fails ends with SMTP_CONN_TLS_FAILED so the
 * caller can retry the address without TLS.
 *
 * The message data file (LF line ends, without the queue's header lines)
 * is read with pread() from msg->offset (the caller may have replaced the
 * file's header section in the blob), so the caller may share the fd; the
 * header blob (lines ending in LF) is sent first. Both go out as canonical
 * CRLF with dot-stuffing (P6). With lmtp (RFC 2033) the client says LHLO
 * (no HELO fallback) and reads one reply per accepted recipient after the
 * final dot, each that recipient's outcome. The caller keeps the message, its strings
 * and the fd alive until on_msg for it.
 */
#ifndef SLUICE_SMTP_CLIENT_H
#define SLUICE_SMTP_CLIENT_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#define SMTP_CLIENT_TEXT_MAX	512	/* reply text kept per recipient */

enum smtp_tls_policy {
	SMTP_TLS_NONE,		/* never STARTTLS */
	SMTP_TLS_OPPORTUNISTIC,	/* when offered; certificate not checked */
	SMTP_TLS_REQUIRED,	/* must be offered and verify */
};

/* milliseconds; RFC 5321 4.5.3.2 by smtp_timeouts_default() */
struct smtp_timeouts {
	unsigned	 connect;
	unsigned	 banner;	/* initial 220: 5 min */
	unsigned	 helo;		/* EHLO, STARTTLS, TLS, AUTH, RSET */
	unsigned	 mail;		/* 5 min */
	unsigned	 rcpt;		/* 5 min */
	unsigned	 data_init;	/* DATA -> 354: 2 min */
	unsigned	 data_block;	/* each write of the body: 3 min */
	unsigned	 data_end;	/* final dot -> reply: 10 min */
	unsigned	 quit;
};

struct smtp_client_params {
	const struct sockaddr	*sa;
	socklen_t		 salen;
	const char		*relay_name;	/* host name for logs; NULL: addr */
	const char		*tls_name;	/* name the cert must carry;
						   NULL: relay_name */
	const char		*helo;		/* our host name */
	enum smtp_tls_policy	 tls;
	SSL_CTX			*tls_ctx;	/* smtp_client_tls_ctx(); may be
						   NULL with SMTP_TLS_NONE */
	const char		*auth_user;	/* NULL: no AUTH */
	const char		*auth_pass;
	struct smtp_timeouts	 timeouts;
	const char		*log_id;	/* prefix for log lines */
	int			 lmtp;		/* RFC 2033: LHLO, and a reply
						   per accepted recipient after
						   the dot; sa may be AF_UNIX */
	unsigned		 idle_ms;	/* after a message, wait this
						   long for the next before QUIT
						   (a connection cache); 0: QUIT
						   at once */
};

#define SMTP_MSG_8BITMIME	0x01
#define SMTP_MSG_SMTPUTF8	0x02

struct smtp_msg {
	const char	*from;		/* reverse path, "" for <> */
	const char	*const *rcpts;	/* forward paths, without <> */
	size_t		 nrcpts;
	int		 fd;		/* data file, LF line ends */
	const char	*headers;	/* prepended lines, LF ended */
	size_t		 headerslen;
	uint64_t	 offset;	/* of the file's first byte to send */
	uint64_t	 size;		/* for SIZE=; 0: headers + file size */
	unsigned	 flags;		/* SMTP_MSG_* */
	void		*arg;		/* the caller's */
};

enum smtp_status { SMTP_ST_DELIVERED, SMTP_ST_TEMP, SMTP_ST_PERM };

struct smtp_rcpt_result {
	enum smtp_status status;
	int		 code;		/* the reply's, 0 if none (local) */
	char		 text[SMTP_CLIENT_TEXT_MAX];	/* sanitised */
};

struct smtp_msg_result {
	struct smtp_rcpt_result	*rcpts;		/* msg->nrcpts entries */
	const char		*relay;		/* "name[addr]:port" */
	int			 tls;		/* sent over TLS */
};

enum smtp_conn_status {
	SMTP_CONN_OK,		/* QUIT after the last message */
	SMTP_CONN_FAILED,	/* see text */
	SMTP_CONN_TLS_FAILED,	/* opportunistic handshake failed: the
				   caller may retry without TLS */
};

struct smtp_conn_result {
	enum smtp_conn_status	 status;
	const char		*relay;
	char			 text[SMTP_CLIENT_TEXT_MAX];
	unsigned		 nmsgs;		/* messages finished */
};

struct smtp_client;

struct smtp_client_cbs {
	void	(*on_msg)(struct smtp_client *, struct smtp_msg *,
		    const struct smtp_msg_result *, void *);
	void	(*on_conn)(struct smtp_client *,
		    const struct smtp_conn_result *, void *);
};

void	smtp_timeouts_default(struct smtp_timeouts *);
SSL_CTX	*smtp_client_tls_ctx(const char *cafile);
struct smtp_client *smtp_client_new(struct event_base *,
	    const struct smtp_client_params *, const struct smtp_client_cbs *,
	    void *);
int	smtp_client_send(struct smtp_client *, struct smtp_msg *);
/* may the client still take a message (not failed, not closing)? */
int	smtp_client_alive(const struct smtp_client *);
/* no idle wait for this client: QUIT as soon as it has nothing to send */
void	smtp_client_no_idle(struct smtp_client *);
void	smtp_client_free(struct smtp_client *);

#endif
