/*
 * smtpd - the smtp process: listeners, sessions, and their requests to the
 * queue and lookup processes.
 *
 * A session has at most one request in flight (a RCPT lookup, opening a
 * data file, a commit). While it waits, its input is not read further, so
 * pipelined commands are answered in order (RFC 2920). Answers are routed
 * back by request id, which is the session id.
 */
#ifndef SLUICE_SMTPD_H
#define SLUICE_SMTPD_H

#include <sys/socket.h>
#include <sys/queue.h>

#include <stdint.h>

#include "addr.h"
#include "authlimit.h"
#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "sasl.h"
#include "smtp_data.h"
#include "smtp_parse.h"
#include "smtp_policy.h"

struct bufferevent;
struct listener;
struct milter_session;
struct smtp_verify;
struct ssl_ctx_st;

enum smtp_state {
	SMTP_S_CMD = 0,		/* reading commands */
	SMTP_S_DATA,		/* reading DATA bytes */
	SMTP_S_BDAT,		/* reading a BDAT chunk */
	SMTP_S_STARTTLS,	/* "220" being flushed, then TLS */
	SMTP_S_AUTH,		/* reading a SASL response line */
	SMTP_S_CLOSING,		/* reply flushed, then close */
};

enum smtp_wait {
	SMTP_W_NONE = 0,
	SMTP_W_RCPT,		/* LOOKUP_RCPT_CHECK */
	SMTP_W_OPEN,		/* QUEUE_MSG_OPEN for DATA */
	SMTP_W_OPEN_BDAT,	/* QUEUE_MSG_OPEN for the first BDAT */
	SMTP_W_COMMIT,		/* QUEUE_MSG_COMMIT */
	SMTP_W_AUTH,		/* LOOKUP_AUTH */
	SMTP_W_AUTH_DELAY,	/* a failed login's answer is held back */
	SMTP_W_SENDER,		/* LOOKUP_SENDER_CHECK for MAIL FROM */
	SMTP_W_FROM_HDR,	/* LOOKUP_SENDER_CHECK for From: */
	SMTP_W_DNSBL,		/* DNSBL answers (smtp_policy.c) */
	SMTP_W_MILTER,		/* a milter's answer (milter.c) */
	SMTP_W_VERIFY,		/* SPF/DKIM/DMARC answers (smtp_verify.c) */
};

struct smtp_session {
	uint32_t		 id;
	LIST_ENTRY(smtp_session) hash;
	TAILQ_ENTRY(smtp_session) entry;
	struct bufferevent	*bev;
	int			 fd;
	const struct listener	*listener;
	struct sockaddr_storage	 ss;
	char			 addr[64];	/* client address, text */
	char			 peer_user[64];	/* local socket: user name */
	int			 trusted;	/* may relay, lax line ends */
	int			 tls;		/* TLS is up */
	char			 tls_info[64];
	enum smtp_state		 state;
	enum smtp_wait		 wait;
	int			 esmtp;
	char			 helo[256];
	unsigned		 errors;
	unsigned		 overshoot;	/* RCPTs refused over the limit */
	int			 not_an_error;	/* this reply does not count */
	int			 skip_line;	/* discarding an over-long line */

	/* SMTP AUTH (RFC 4954) */
	char			 auth_user[SASL_ID_MAX + 1];	/* logged in */
	enum sasl_mech		 auth_mech;	/* exchange under way */
	char			 auth_login[SASL_ID_MAX + 1];	/* LOGIN's */
	char			 limit_key[AUTHLIMIT_KEY_MAX];
	struct event		*delay_ev;
	char			 delayed_reply[128];

	struct smtp_policy	 policy;	/* rate limits, DNSBL */

	/* the transaction */
	int			 in_tx;
	struct smtp_mail_args	 mail;
	char			 from[ADDR_STR_MAX + 1];
	char			(*rcpts)[ADDR_STR_MAX + 1];
	size_t			 nrcpts;
	char			 pending_rcpt[ADDR_STR_MAX + 1];
	int			 pending_postmaster;
	char			 qid[QUEUE_ID_LEN + 1];
	int			 datafd;
	struct smtp_data_dec	 dec;
	struct buf		 out;		/* decoded data to write */
	int			 too_big;
	int			 write_errno;
	int			 tx_failed;	/* BDAT: later chunks fail too */
	unsigned long long	 bdat_left;	/* bytes of this chunk to read */
	int			 bdat_last;
	int			 bdat_ok;	/* the BDAT command was valid */
	struct buf		 hdr;		/* header section, for From: */
	int			 hdr_done;
	char			 pending_from[ADDR_STR_MAX + 1];
	struct milter_session	*milter;	/* milter.c, NULL if none */
	struct smtp_verify	*verify;	/* smtp_verify.c, NULL if none */
	int			 verify_hold;	/* DMARC quarantine */
};

/* smtpd.c */
struct smtpd {
	struct proc		*proc;
	struct config		*conf;
	struct ssl_ctx_st	*tls_ctx;
	struct authlimit	*authlimit;	/* failed logins per client */
	unsigned		 nsessions;
	uint32_t		 next_id;
	TAILQ_HEAD(, smtp_session) sessions;
};
extern struct smtpd smtpd;

int	smtpd_request(struct smtp_session *, int peer, uint16_t type,
	    const struct buf *);
void	smtpd_session_register(struct smtp_session *);
void	smtpd_session_unregister(struct smtp_session *);

/* smtp_session.c */
void	smtp_session_new(int fd, const struct listener *,
	    const struct sockaddr *, socklen_t);
void	smtp_session_free(struct smtp_session *);
void	smtp_rcpt_answer(struct smtp_session *, uint32_t res);
void	smtp_open_answer(struct smtp_session *, int ok, const char *id, int fd);
void	smtp_commit_answer(struct smtp_session *, uint32_t res,
	    const char *text);
void	smtp_peer_lost(struct smtp_session *, int role);
void	smtp_answered(struct smtp_session *);
void	smtp_auth_answer(struct smtp_session *, uint32_t res,
	    const char *user);
void	smtp_sender_answer(struct smtp_session *, uint32_t res,
	    const char *addr);
/* the milters' verdict on a step (milter.h) */
void	smtp_milter_done(struct smtp_session *, int stage, int verdict);

/* tls.c */
struct ssl_ctx_st *tls_server_ctx(const char *cert, const char *key);
/* the same from PEM text (cert chain, key) the master read for us */
struct ssl_ctx_st *tls_server_ctx_mem(const char *cert, size_t certlen,
	    const char *key, size_t keylen);
struct bufferevent *tls_wrap(struct bufferevent *, int fd, char *info,
	    size_t infolen);
void	tls_session_info(struct bufferevent *, char *info, size_t infolen);

#endif
