/*
 * smtp_session - one SMTP server session (RFC 5321, 2920, 3030, 1869, 6531).
 *
 * Each verb goes check -> proceed: smtp_check_X validates state and syntax
 * and answers errors itself; the proceed part acts (possibly asking another
 * process and waiting). Replies for errors come from one table
 * (smtp_errors) so codes and enhanced codes live in one place.
 *
 * Input is parsed from the bufferevent's buffer: command lines up to
 * SMTP_LINE_MAX octets (LF or CRLF ended, P6), DATA through the byte decoder
 * (smtp_data.c), BDAT chunks by count. The decoded message goes to the data
 * file the queue opened for us (we cannot open spool files ourselves).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "ipc.h"
#include "log.h"
#include "milter.h"
#include "rewrite.h"
#include "proc.h"
#include "sluiced.h"
#include "smtpd.h"
#include "smtp_verify.h"

#define DATA_FLUSH	(64 * 1024)	/* write decoded data in chunks */
#define RCPT_OVERSHOOT_MAX 1000	/* refused RCPTs over the limit, per session */
#define HDR_CAPTURE_MAX	(64 * 1024)	/* header section read for From: */
#define FROM_ADDRS_MAX	32		/* From: addresses checked */
#define AUTH_DELAY_MAX	30		/* seconds a failed login waits, at most */

enum smtp_error {
	E_LINE_TOO_LONG, E_NUL, E_UNKNOWN, E_SYNTAX, E_HELO_FIRST,
	E_NESTED_MAIL, E_NEED_MAIL, E_NEED_RCPT, E_TOO_MANY_RCPTS,
	E_RELAY, E_NOUSER, E_TEMPFAIL, E_PARAM, E_SIZE, E_SIZE_DECLARED,
	E_BARE_EOL, E_LONG_DATA_LINE, E_DATA_NUL, E_STORAGE, E_IO,
	E_BDAT_FAILED, E_NO_TLS, E_TLS_ACTIVE, E_8BIT, E_NOT_IMPL,
	E_AUTH_NEEDED, E_AUTH_TLS, E_AUTH_PORT, E_AUTH_TWICE, E_AUTH_IN_TX,
	E_AUTH_MECH, E_AUTH_ABORTED, E_AUTH_BASE64, E_AUTH_INVALID,
	E_AUTH_TEMP, E_AUTH_LOCKED, E_SENDER_TEMP, E_MASK_DENIED,
};

static const struct {
	const char	*reply;
} smtp_errors[] = {
	[E_LINE_TOO_LONG] = { "500 5.5.2 Line too long" },
	[E_NUL] = { "500 5.5.2 NUL byte in command" },
	[E_UNKNOWN] = { "500 5.5.1 Command unrecognized" },
	[E_SYNTAX] = { "501 5.5.4 Syntax error in parameters or arguments" },
	[E_HELO_FIRST] = { "503 5.5.1 Send HELO/EHLO first" },
	[E_NESTED_MAIL] = { "503 5.5.1 Nested MAIL command" },
	[E_NEED_MAIL] = { "503 5.5.1 Need MAIL command first" },
	[E_NEED_RCPT] = { "503 5.5.1 Need RCPT command first" },
	[E_TOO_MANY_RCPTS] = { "452 4.5.3 Too many recipients" },
	[E_RELAY] = { "554 5.7.1 Relay access denied" },
	[E_NOUSER] = { "550 5.1.1 Recipient address rejected: user unknown" },
	[E_TEMPFAIL] = { "451 4.3.0 Temporary lookup failure, try again later" },
	[E_PARAM] = { "555 5.5.4 Unsupported or malformed parameter" },
	[E_SIZE] = { "552 5.3.4 Message size exceeds fixed limit" },
	[E_SIZE_DECLARED] = { "552 5.3.4 Message size exceeds fixed limit" },
	[E_BARE_EOL] = { "550 5.5.2 Message rejected: bare CR or LF in "
	    "message (only CRLF line ends are allowed)" },
	[E_LONG_DATA_LINE] = { "550 5.6.0 Message rejected: line longer "
	    "than 998 characters" },
	[E_DATA_NUL] = { "550 5.6.0 Message rejected: NUL byte in message" },
	[E_STORAGE] = { "452 4.3.1 Insufficient system storage" },
	[E_IO] = { "451 4.3.0 Local error in processing, try again later" },
	[E_BDAT_FAILED] = { "554 5.5.0 Transaction failed, chunk discarded" },
	[E_NO_TLS] = { "454 4.7.0 TLS not available" },
	[E_TLS_ACTIVE] = { "503 5.5.1 TLS already active" },
	[E_8BIT] = { "553 5.6.7 Non-ASCII address needs SMTPUTF8" },
	[E_NOT_IMPL] = { "502 5.5.1 Command not implemented" },
	[E_AUTH_NEEDED] = { "530 5.7.0 Authentication required" },
	[E_AUTH_TLS] = { "530 5.7.0 Must issue a STARTTLS command first" },
	[E_AUTH_PORT] = { "502 5.5.1 AUTH is not offered on this port; "
	    "use submission (587 or 465)" },
	[E_AUTH_TWICE] = { "503 5.5.1 Already authenticated" },
	[E_AUTH_IN_TX] = { "503 5.5.1 AUTH not allowed during a mail "
	    "transaction" },
	[E_AUTH_MECH] = { "504 5.5.4 Unrecognized authentication type "
	    "(use PLAIN or LOGIN)" },
	[E_AUTH_ABORTED] = { "501 5.0.0 Authentication aborted" },
	[E_AUTH_BASE64] = { "501 5.5.2 Cannot decode the response "
	    "(base64 expected)" },
	[E_AUTH_INVALID] = { "535 5.7.8 Authentication credentials invalid" },
	[E_AUTH_TEMP] = { "454 4.7.0 Temporary authentication failure, try "
	    "again later" },
	[E_AUTH_LOCKED] = { "454 4.7.0 Too many failed logins from your "
	    "address, try again later" },
	[E_SENDER_TEMP] = { "451 4.3.0 Temporary failure checking the "
	    "sender, try again later" },
	[E_MASK_DENIED] = { "550 5.7.1 Recipient address rejected: this "
	    "sender may not write to this address" },
};

static void	smtp_on_read(struct bufferevent *, void *);
static void	smtp_on_event(struct bufferevent *, short, void *);
static void	smtp_on_write(struct bufferevent *, void *);
static void	smtp_process(struct smtp_session *);
static void	smtp_tx_reset(struct smtp_session *);
static void	smtp_close_after(struct smtp_session *);
static void	smtp_start_tls(struct smtp_session *);
static void	smtp_resume(struct smtp_session *);
static void	smtp_commit(struct smtp_session *);
static void	smtp_check_from_hdr(struct smtp_session *);
static void	smtp_greet(struct smtp_session *, int);
static void	smtp_mail_ok(struct smtp_session *);
static void	smtp_mail_verdict(struct smtp_session *, int);
static void	smtp_rcpt_verdict(struct smtp_session *, int);
static void	smtp_data_verdict(struct smtp_session *, int);
static void	smtp_data_milters(struct smtp_session *);

/* submission listeners: AUTH (after TLS) before any mail */
static int
smtp_needs_auth(const struct smtp_session *s)
{
	return !s->listener->local && s->listener->kind != LISTEN_SMTP;
}

static int
smtp_auth_offered(const struct smtp_session *s)
{
	return smtp_needs_auth(s) && s->tls;
}

/* a client-chosen string, fit for a log line: printable ASCII, bounded */
static const char *
smtp_log_safe(const char *in, char *out, size_t outlen)
{
	size_t	 n = 0;

	for (; *in && n + 1 < outlen && n < 100; in++)
		out[n++] = (unsigned char)*in >= 0x20 &&
		    (unsigned char)*in < 0x7f ? *in : '?';
	out[n] = '\0';
	return out;
}

/*
 * Queue one reply line. Every 4xx/5xx reply but the closing 421 counts as
 * an error, whoever sends it (P5); past max-errors the session gets a 421
 * and is closed. Nothing is written after the closing reply.
 */
static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;
	char		 line[1024];
	int		 n;

	if (s->state == SMTP_S_CLOSING)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	evbuffer_add(out, line, (size_t)n);
	evbuffer_add(out, "\r\n", 2);
	log_debug("%u: >>> %s", s->id, line);
	if ((line[0] != '4' && line[0] != '5') || strncmp(line, "421", 3) == 0 ||
	    s->not_an_error)
		return;
	if (++s->errors > smtpd.conf->max_errors && smtpd.conf->max_errors) {
		log_info("%u: too many errors from %s, disconnecting", s->id,
		    s->addr);
		smtp_reply(s, "421 4.7.0 %s Error: too many errors",
		    smtpd.conf->hostname);
		smtp_close_after(s);
	}
}

/* Close after the reply is written. */
static void
smtp_close_after(struct smtp_session *s)
{
	s->state = SMTP_S_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		smtp_session_free(s);
}

static void
smtp_error(struct smtp_session *s, enum smtp_error e)
{
	smtp_reply(s, "%s", smtp_errors[e].reply);
}

void
smtp_session_new(int fd, const struct listener *l, const struct sockaddr *sa,
    socklen_t salen)
{
	struct smtp_session	*s;
	char			 reply[512];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return;
	}
	s->id = ++smtpd.next_id ? smtpd.next_id : ++smtpd.next_id;
	s->fd = fd;
	s->datafd = -1;
	s->listener = l;
	memcpy(&s->ss, sa, salen < sizeof(s->ss) ? salen : sizeof(s->ss));
	buf_init(&s->out, DATA_FLUSH * 2);
	buf_init(&s->hdr, 4096);
	if (l->local) {
		struct ucred	 cr;
		socklen_t	 crlen = sizeof(cr);
		snprintf(s->addr, sizeof(s->addr), "local");
		/* chrooted without /etc/passwd: the queue names the uid */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0)
			snprintf(s->peer_user, sizeof(s->peer_user), "%lu",
			    (unsigned long)cr.uid);
		s->trusted = 1;
	} else {
		char	 host[INET6_ADDRSTRLEN] = "?";
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)
			    (const void *)sa)->sin_addr, host, sizeof(host));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
			    (const void *)sa)->sin6_addr, host, sizeof(host));
		snprintf(s->addr, sizeof(s->addr), "%s", host);
		s->trusted = config_trusted(smtpd.conf, sa);
		authlimit_key(sa, s->limit_key, sizeof(s->limit_key));
	}
	s->bev = bufferevent_socket_new(smtpd.proc->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		close(fd);
		buf_free(&s->out);
		buf_free(&s->hdr);
		free(s);
		return;
	}
	if (l->kind == LISTEN_SUBMISSIONS && !l->local) {
		struct bufferevent *tb = tls_wrap(s->bev, fd, s->tls_info,
		    sizeof(s->tls_info));
		if (tb == NULL) {
			bufferevent_free(s->bev);
			buf_free(&s->out);
			buf_free(&s->hdr);
			free(s);
			return;
		}
		s->bev = tb;
		s->tls = 1;
	}
	smtpd_session_register(s);
	bufferevent_setcb(s->bev, smtp_on_read, smtp_on_write, smtp_on_event, s);
	{
		struct timeval tv = { smtpd.conf->smtp_timeout, 0 };
		bufferevent_set_timeouts(s->bev, &tv, &tv);
	}
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	log_info("%u: connect from %s%s%s (%s)", s->id, s->addr,
	    s->peer_user[0] ? " user=" : "", s->peer_user, l->name);
	if (smtpd.nsessions > smtpd.conf->max_sessions) {
		smtp_reply(s, "421 4.3.2 %s Too many connections, try later",
		    smtpd.conf->hostname);
		smtp_close_after(s);
		return;
	}
	if (smtp_policy_connect(s, reply, sizeof(reply)) == -1) {
		smtp_reply(s, "%s", reply);
		smtp_close_after(s);
		return;
	}
	if (!smtp_policy_pregreet(s, smtp_greet))
		smtp_reply(s, "220 %s ESMTP sluice", smtpd.conf->hostname);
}

/* The banner after pregreet-wait (smtp_policy.c). */
static void
smtp_greet(struct smtp_session *s, int talked)
{
	if (talked < 0) {
		smtp_session_free(s);	/* it hung up */
		return;
	}
	if (talked) {
		smtp_reply(s, "554 5.7.1 Protocol error: talked before the "
		    "greeting");
		smtp_close_after(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	smtp_reply(s, "220 %s ESMTP sluice", smtpd.conf->hostname);
}

void
smtp_session_free(struct smtp_session *s)
{
	log_info("%u: disconnect from %s", s->id, s->addr);
	smtp_tx_reset(s);
	smtp_policy_end(s);
	smtpd_session_unregister(s);
	milter_session_free(s);
	if (s->delay_ev)
		event_free(s->delay_ev);
	bufferevent_free(s->bev);
	buf_free(&s->out);
	buf_free(&s->hdr);
	explicit_bzero(s->auth_login, sizeof(s->auth_login));
	free(s);
}

/* Forget the transaction; an open data file is given back to the queue. */
static void
smtp_tx_reset(struct smtp_session *s)
{
	if (s->qid[0]) {
		struct buf b;
		buf_init(&b, 256);
		ipc_put_str(&b, s->qid);
		smtpd_request(s, ROLE_QUEUE, QUEUE_MSG_ABORT, &b);
		buf_free(&b);
	}
	if (s->datafd != -1)
		close(s->datafd);
	s->datafd = -1;
	s->qid[0] = '\0';
	s->in_tx = 0;
	s->from[0] = '\0';
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->too_big = 0;
	s->write_errno = 0;
	s->tx_failed = 0;
	buf_reset(&s->out);
	buf_reset(&s->hdr);
	s->hdr_done = 0;
	memset(&s->mail, 0, sizeof(s->mail));
	milter_tx_reset(s);
	smtp_verify_reset(s);
	s->verify_hold = 0;
}

static void
smtp_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("%u: timeout from %s", s->id, s->addr);
		smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    smtpd.conf->hostname);
		smtp_close_after(s);
		return;
	}
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_ERROR && s->tls)
		log_info("%u: TLS or connection error from %s", s->id, s->addr);
	if (s->wait != SMTP_W_NONE) {
		/* an answer is due: drop it when it comes */
		s->state = SMTP_S_CLOSING;
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	smtp_session_free(s);
}

static void
smtp_on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	(void)bev;
	if (s->state == SMTP_S_CLOSING && s->wait == SMTP_W_NONE)
		smtp_session_free(s);
	else if (s->state == SMTP_S_STARTTLS)
		smtp_start_tls(s);
}

static void
smtp_on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	smtp_process(arg);
}

/* ---- the verbs ---- */

static void
smtp_cmd_helo(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (c->arglen == 0 ||
	    smtp_parse_helo(c->arg, c->arglen) != SMTP_P_OK) {
		smtp_reply(s, "501 5.5.4 Syntax: %s hostname",
		    c->verb == SMTP_V_EHLO ? "EHLO" : "HELO");
		return;
	}
	smtp_tx_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%.*s", (int)c->arglen, c->arg);
	s->esmtp = c->verb == SMTP_V_EHLO;
	if (!s->esmtp) {
		smtp_reply(s, "250 %s", smtpd.conf->hostname);
		return;
	}
	smtp_reply(s, "250-%s", smtpd.conf->hostname);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %llu", smtpd.conf->max_message_size);
	if (smtpd.tls_ctx && !s->tls && !s->listener->local)
		smtp_reply(s, "250-STARTTLS");
	if (smtp_auth_offered(s))
		smtp_reply(s, "250-AUTH PLAIN LOGIN");
	smtp_reply(s, "250-ENHANCEDSTATUSCODES");
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250 CHUNKING");
}

static void
smtp_cmd_mail(struct smtp_session *s, const struct smtp_cmd *c)
{
	enum smtp_perr	 r;
	char		 reply[256];

	if (s->helo[0] == '\0') {
		smtp_error(s, E_HELO_FIRST);
		return;
	}
	if (s->in_tx) {
		smtp_error(s, E_NESTED_MAIL);
		return;
	}
	if (smtp_needs_auth(s) && !s->auth_user[0]) {
		smtp_error(s, s->tls ? E_AUTH_NEEDED : E_AUTH_TLS);
		return;
	}
	r = smtp_parse_mail(c->arg, c->arglen, &s->mail);
	if (r == SMTP_P_ADDR) {
		smtp_reply(s, "%s Sender address rejected: %s",
		    s->mail.addr_err == ADDR_EUTF8 ? "553 5.6.7" :
		    "501 5.1.7", addr_strerror(s->mail.addr_err));
		return;
	}
	if (r == SMTP_P_PARAM) {
		smtp_error(s, E_PARAM);
		return;
	}
	if (r != SMTP_P_OK) {
		smtp_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (s->mail.size > smtpd.conf->max_message_size) {
		smtp_error(s, E_SIZE_DECLARED);
		return;
	}
	if (smtp_policy_mail(s, reply, sizeof(reply)) == -1) {
		smtp_reply(s, "%s", reply);
		return;
	}
	addr_format(&s->mail.from, s->from, sizeof(s->from));
	if (s->auth_user[0] && s->from[0]) {
		/* is the sender one of the user's addresses? */
		struct buf b;
		buf_init(&b, 1024);
		ipc_put_str(&b, s->auth_user);
		ipc_put_u32(&b, 1);
		ipc_put_str(&b, s->from);
		s->wait = SMTP_W_SENDER;
		if (smtpd_request(s, ROLE_LOOKUP, LOOKUP_SENDER_CHECK,
		    &b) == -1) {
			s->wait = SMTP_W_NONE;
			s->from[0] = '\0';
			smtp_error(s, E_SENDER_TEMP);
		}
		buf_free(&b);
		return;
	}
	smtp_mail_ok(s);
}

/*
 * The lookup process answered whether the user owns an address: the
 * envelope sender (MAIL) or a From: address (end of data).
 */
void
smtp_sender_answer(struct smtp_session *s, uint32_t res, const char *addr)
{
	enum smtp_wait	 w = s->wait;
	char		 safe[128];

	s->wait = SMTP_W_NONE;
	if (res == AUTH_OK) {
		if (w == SMTP_W_SENDER)
			smtp_mail_ok(s);
		else
			smtp_commit(s);
		return;
	}
	smtp_log_safe(addr, safe, sizeof(safe));
	if (res == AUTH_DENIED)
		log_info("%s%ssender not owned: user=%s %s=<%s> client=%s",
		    s->qid, s->qid[0] ? ": " : "", s->auth_user,
		    w == SMTP_W_SENDER ? "from" : "header_from", safe, s->addr);
	if (w == SMTP_W_SENDER)
		s->from[0] = '\0';
	else
		smtp_tx_reset(s);
	if (res == AUTH_DENIED)
		smtp_reply(s, "553 5.7.1 %s <%s> not owned by user %s",
		    w == SMTP_W_SENDER ? "Sender address" : "From: address",
		    safe, s->auth_user);
	else
		smtp_error(s, E_SENDER_TEMP);
}

static void
smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_cmd *c)
{
	struct smtp_rcpt_args	 ra;
	enum smtp_perr		 r;
	struct buf		 b;

	if (!s->in_tx) {
		smtp_error(s, s->helo[0] ? E_NEED_MAIL : E_HELO_FIRST);
		return;
	}
	r = smtp_parse_rcpt(c->arg, c->arglen, s->mail.smtputf8, &ra);
	if (r == SMTP_P_ADDR) {
		smtp_reply(s, "%s Recipient address rejected: %s",
		    ra.addr_err == ADDR_EUTF8 ? "553 5.6.7" : "501 5.1.3",
		    addr_strerror(ra.addr_err));
		return;
	}
	if (r == SMTP_P_PARAM) {
		smtp_error(s, E_PARAM);
		return;
	}
	if (r != SMTP_P_OK) {
		smtp_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (s->nrcpts >= smtpd.conf->max_recipients) {
		/*
		 * RFC 5321 4.5.3.1.10: a client is expected to send the rest
		 * later, so these refusals are not errors, up to a point.
		 */
		s->not_an_error = ++s->overshoot <= RCPT_OVERSHOOT_MAX;
		smtp_error(s, E_TOO_MANY_RCPTS);
		s->not_an_error = 0;
		return;
	}
	s->pending_postmaster = ra.to.domain[0] == '\0';
	if (s->pending_postmaster)
		snprintf(ra.to.domain, sizeof(ra.to.domain), "%s",
		    smtpd.conf->hostname);
	addr_format(&ra.to, s->pending_rcpt, sizeof(s->pending_rcpt));
	buf_init(&b, 1024);
	ipc_put_str(&b, s->pending_rcpt);
	ipc_put_str(&b, s->from);
	s->wait = SMTP_W_RCPT;
	if (smtpd_request(s, ROLE_LOOKUP, LOOKUP_RCPT_CHECK, &b) == -1) {
		s->wait = SMTP_W_NONE;
		smtp_error(s, E_TEMPFAIL);
	}
	buf_free(&b);
}

/* The lookup process answered about pending_rcpt. */
void
smtp_rcpt_answer(struct smtp_session *s, uint32_t res)
{
	int	 v;

	switch (res) {
	case LOOKUP_LOCAL:
		break;
	case LOOKUP_REMOTE:
		if (s->trusted || s->auth_user[0])
			break;
		log_info("%u: relay denied from=<%s> to=<%s> client=%s", s->id,
		    s->from, s->pending_rcpt, s->addr);
		smtp_error(s, E_RELAY);
		return;
	case LOOKUP_NOUSER:
		log_info("%u: unknown recipient from=<%s> to=<%s> client=%s",
		    s->id, s->from, s->pending_rcpt, s->addr);
		smtp_error(s, E_NOUSER);
		return;
	case LOOKUP_DENIED:
		log_info("%u: sender refused from=<%s> to=<%s> client=%s",
		    s->id, s->from, s->pending_rcpt, s->addr);
		smtp_error(s, E_MASK_DENIED);
		return;
	default:
		smtp_error(s, E_TEMPFAIL);
		return;
	}
	if ((v = milter_step(s, MILTER_S_RCPT, s->pending_rcpt)) !=
	    MILTER_V_PENDING)
		smtp_rcpt_verdict(s, v);
}

/* The milters had their say about pending_rcpt. */
static void
smtp_rcpt_verdict(struct smtp_session *s, int v)
{
	void	*p;

	if (v == MILTER_V_REJECT || v == MILTER_V_TEMPFAIL) {
		smtp_reply(s, "%s", milter_reply_text(s));
		return;
	}
	p = reallocarray(s->rcpts, s->nrcpts + 1, sizeof(*s->rcpts));
	if (p == NULL) {
		smtp_error(s, E_IO);
		return;
	}
	s->rcpts = p;
	memcpy(s->rcpts[s->nrcpts++], s->pending_rcpt, sizeof(*s->rcpts));
	smtp_reply(s, "250 2.1.5 Ok");
}

/* Ask the queue for a data file; DATA or the first BDAT then proceeds. */
static int
smtp_open_data(struct smtp_session *s, enum smtp_wait w)
{
	struct buf	 b;
	int		 r;

	buf_init(&b, 16);
	s->wait = w;
	r = smtpd_request(s, ROLE_QUEUE, QUEUE_MSG_OPEN, &b);
	buf_free(&b);
	if (r == -1)
		s->wait = SMTP_W_NONE;
	return r;
}

static void
smtp_start_data(struct smtp_session *s, enum smtp_data_mode mode)
{
	smtp_data_init(&s->dec, mode, !s->trusted &&
	    s->listener->kind == LISTEN_SMTP, SMTP_LINE_MAX);
	buf_reset(&s->out);
	/* bytes in the data file: the policy's header lines count too */
	s->dec.outbytes += smtp_policy_data(s, &s->out);
	s->too_big = 0;
	s->write_errno = 0;
}

static void
smtp_cmd_data(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (c->arglen) {
		smtp_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_tx) {
		smtp_error(s, s->helo[0] ? E_NEED_MAIL : E_HELO_FIRST);
		return;
	}
	if (s->nrcpts == 0) {
		smtp_error(s, E_NEED_RCPT);
		return;
	}
	if (s->qid[0]) {	/* BDAT already started this transaction */
		smtp_reply(s, "503 5.5.1 DATA not allowed after BDAT");
		return;
	}
	if (smtp_open_data(s, SMTP_W_OPEN) == -1)
		smtp_error(s, E_IO);
}

void
smtp_open_answer(struct smtp_session *s, int ok, const char *id, int fd)
{
	enum smtp_wait	 w = s->wait;

	s->wait = SMTP_W_NONE;
	if (!ok) {
		if (fd != -1)
			close(fd);
		if (w == SMTP_W_OPEN_BDAT) {
			s->tx_failed = 1;
			s->state = SMTP_S_BDAT;	/* still eat the chunk */
		}
		smtp_error(s, E_STORAGE);
		return;
	}
	snprintf(s->qid, sizeof(s->qid), "%s", id);
	s->datafd = fd;
	if (w == SMTP_W_OPEN) {
		smtp_start_data(s, SMTP_DATA_DOT);
		s->state = SMTP_S_DATA;
		smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	} else {
		smtp_start_data(s, SMTP_DATA_BDAT);
		s->state = SMTP_S_BDAT;
	}
}

static void
smtp_cmd_rset(struct smtp_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtp_tx_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_noop(struct smtp_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_quit(struct smtp_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtp_reply(s, "221 2.0.0 Bye");
	smtp_close_after(s);
}

static void
smtp_cmd_vrfy(struct smtp_session *s, const struct smtp_cmd *c)
{
	if (c->arglen == 0) {
		smtp_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	smtp_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

static void
smtp_cmd_help(struct smtp_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtp_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT VRFY HELP%s%s", smtpd.tls_ctx ? " STARTTLS" : "",
	    smtp_auth_offered(s) ? " AUTH" : "");
	smtp_reply(s, "214 2.0.0 See RFC 5321");
}

static void
smtp_cmd_starttls(struct smtp_session *s, const struct smtp_cmd *c)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);

	if (c->arglen) {
		smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls) {
		smtp_error(s, E_TLS_ACTIVE);
		return;
	}
	if (smtpd.tls_ctx == NULL || s->listener->local) {
		smtp_error(s, E_NO_TLS);
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* anything pipelined after STARTTLS is an injection: drop it */
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_disable(s->bev, EV_READ);
	s->state = SMTP_S_STARTTLS;	/* smtp_on_write goes on */
}

/* The "220" for STARTTLS is on the wire: the next bytes are TLS. */
static void
smtp_start_tls(struct smtp_session *s)
{
	struct bufferevent	*tb;
	struct timeval		 tv = { smtpd.conf->smtp_timeout, 0 };

	if ((tb = tls_wrap(s->bev, s->fd, s->tls_info,
	    sizeof(s->tls_info))) == NULL) {
		smtp_session_free(s);
		return;
	}
	s->bev = tb;
	s->tls = 1;
	s->state = SMTP_S_CMD;
	s->helo[0] = '\0';	/* RFC 3207: forget what we knew */
	smtp_tx_reset(s);
	bufferevent_setcb(s->bev, smtp_on_read, smtp_on_write, smtp_on_event, s);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* ---- AUTH (RFC 4954; PLAIN RFC 4616, LOGIN) ---- */

static void
smtp_auth_end(struct smtp_session *s)
{
	s->auth_mech = SASL_M_NONE;
	if (s->state == SMTP_S_AUTH)
		s->state = SMTP_S_CMD;
}

/* Ask the lookup process; the password is wiped by the caller. */
static void
smtp_auth_check(struct smtp_session *s, const char *user, const char *pass)
{
	struct buf	 b;

	smtp_auth_end(s);
	snprintf(s->auth_login, sizeof(s->auth_login), "%s", user);
	buf_init(&b, 2048);
	ipc_put_str(&b, user);
	ipc_put_str(&b, pass);
	s->wait = SMTP_W_AUTH;
	if (b.err || smtpd_request(s, ROLE_LOOKUP, LOOKUP_AUTH, &b) == -1) {
		s->wait = SMTP_W_NONE;
		smtp_error(s, E_AUTH_TEMP);
	}
	explicit_bzero(b.data, b.cap);
	buf_free(&b);
}

/* One client response: the initial one, or a line after a 334. */
static void
smtp_auth_response(struct smtp_session *s, const char *line, size_t len)
{
	unsigned char	 dec[SASL_LINE_MAX];
	char		 authz[SASL_ID_MAX + 1], authc[SASL_ID_MAX + 1];
	char		 pass[SASL_PASS_MAX + 1], safe[128];
	size_t		 dlen;
	enum sasl_err	 e;

	if (len == 1 && line[0] == '*') {
		smtp_auth_end(s);
		smtp_error(s, E_AUTH_ABORTED);
		return;
	}
	if (sasl_b64_decode(line, len, dec, sizeof(dec), &dlen) == -1) {
		smtp_auth_end(s);
		smtp_error(s, E_AUTH_BASE64);
		return;
	}
	if (s->auth_mech == SASL_M_LOGIN && s->auth_login[0] == '\0') {
		if ((e = sasl_identity_check(dec, dlen)) != SASL_OK ||
		    dlen == 0) {
			smtp_auth_end(s);
			smtp_reply(s, "501 5.5.2 Bad user name: %s",
			    sasl_strerror(dlen ? e : SASL_E_EMPTY));
			return;
		}
		memcpy(s->auth_login, dec, dlen);
		s->auth_login[dlen] = '\0';
		s->state = SMTP_S_AUTH;
		smtp_reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
		return;
	}
	if (s->auth_mech == SASL_M_LOGIN) {
		if (dlen == 0 || dlen > SASL_PASS_MAX ||
		    memchr(dec, '\0', dlen)) {
			explicit_bzero(dec, dlen);
			smtp_auth_end(s);
			smtp_reply(s, "501 5.5.2 Bad password: %s", dlen == 0 ?
			    "empty" : "too long or NUL in it");
			return;
		}
		memcpy(pass, dec, dlen);
		pass[dlen] = '\0';
		snprintf(authc, sizeof(authc), "%s", s->auth_login);
		smtp_auth_check(s, authc, pass);
	} else {
		e = sasl_plain_parse(dec, dlen, authz, authc, pass);
		if (e != SASL_OK) {
			smtp_auth_end(s);
			smtp_reply(s, "501 5.5.2 Cannot read the PLAIN "
			    "response: %s", sasl_strerror(e));
		} else if (authz[0] && strcasecmp(authz, authc) != 0) {
			/* acting as someone else: never (RFC 4616 2) */
			smtp_auth_end(s);
			log_info("%u: auth refused: user=%s wants to act as "
			    "%s client=%s", s->id, smtp_log_safe(authc, safe,
			    sizeof(safe)), "another identity", s->addr);
			authlimit_fail(smtpd.authlimit, s->limit_key,
			    time(NULL), smtpd.conf->auth_max_failures,
			    smtpd.conf->auth_lockout);
			smtp_reply(s, "535 5.7.8 Authentication credentials "
			    "invalid: authorization identity differs");
		} else
			smtp_auth_check(s, authc, pass);
	}
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(dec, sizeof(dec));
}

static void
smtp_cmd_auth(struct smtp_session *s, const struct smtp_cmd *c)
{
	const char	*sp;
	size_t		 mlen;

	if (!smtp_needs_auth(s)) {
		smtp_error(s, E_AUTH_PORT);
		return;
	}
	if (!s->tls) {
		smtp_error(s, E_AUTH_TLS);
		return;
	}
	if (s->helo[0] == '\0') {
		smtp_error(s, E_HELO_FIRST);
		return;
	}
	if (s->auth_user[0]) {
		smtp_error(s, E_AUTH_TWICE);
		return;
	}
	if (s->in_tx) {
		smtp_error(s, E_AUTH_IN_TX);
		return;
	}
	if (authlimit_locked(smtpd.authlimit, s->limit_key, time(NULL))) {
		log_info("%u: auth refused: client=%s locked out after failed "
		    "logins", s->id, s->addr);
		smtp_error(s, E_AUTH_LOCKED);
		return;
	}
	sp = memchr(c->arg, ' ', c->arglen);
	mlen = sp ? (size_t)(sp - c->arg) : c->arglen;
	if ((s->auth_mech = sasl_mech_parse(c->arg, mlen)) == SASL_M_NONE) {
		smtp_error(s, c->arglen ? E_AUTH_MECH : E_SYNTAX);
		return;
	}
	s->auth_login[0] = '\0';
	if (sp) {
		while (sp < c->arg + c->arglen && *sp == ' ')
			sp++;
		smtp_auth_response(s, sp, c->arglen - (size_t)(sp - c->arg));
		return;
	}
	s->state = SMTP_S_AUTH;
	smtp_reply(s, s->auth_mech == SASL_M_PLAIN ? "334 " :
	    "334 VXNlcm5hbWU6");		/* "Username:" */
}

static void
smtp_auth_delay_done(int fd, short ev, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)ev;
	s->wait = SMTP_W_NONE;
	smtp_reply(s, "%s", s->delayed_reply);
	smtp_resume(s);
}

/* The lookup process checked the password. */
void
smtp_auth_answer(struct smtp_session *s, uint32_t res, const char *user)
{
	char		 safe[128];
	unsigned	 n;
	struct timeval	 tv = { 0, 0 };

	s->wait = SMTP_W_NONE;
	smtp_log_safe(s->auth_login, safe, sizeof(safe));
	if (res == AUTH_OK && user[0] && strlen(user) <= SASL_ID_MAX) {
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
		authlimit_success(smtpd.authlimit, s->limit_key);
		log_info("%u: auth user=%s client=%s", s->id, s->auth_user,
		    s->addr);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	if (res != AUTH_DENIED) {
		log_info("%u: auth temporary failure: user=%s client=%s",
		    s->id, safe, s->addr);
		smtp_error(s, E_AUTH_TEMP);
		return;
	}
	n = authlimit_fail(smtpd.authlimit, s->limit_key, time(NULL),
	    smtpd.conf->auth_max_failures, smtpd.conf->auth_lockout);
	log_info("%u: auth failed: user=%s client=%s failures=%u%s", s->id,
	    safe, s->addr, n, n >= smtpd.conf->auth_max_failures ?
	    " (locked out)" : "");
	snprintf(s->delayed_reply, sizeof(s->delayed_reply), "%s",
	    smtp_errors[E_AUTH_INVALID].reply);
	/* each failure waits longer: guessing gets slow (P5) */
	tv.tv_sec = (time_t)smtpd.conf->auth_failure_delay * n;
	if (tv.tv_sec > AUTH_DELAY_MAX)
		tv.tv_sec = AUTH_DELAY_MAX;
	if (tv.tv_sec == 0 || (s->delay_ev == NULL && (s->delay_ev =
	    evtimer_new(smtpd.proc->base, smtp_auth_delay_done, s)) ==
	    NULL) || evtimer_add(s->delay_ev, &tv) == -1) {
		smtp_reply(s, "%s", s->delayed_reply);
		return;
	}
	s->wait = SMTP_W_AUTH_DELAY;
}

static void
smtp_cmd_bdat(struct smtp_session *s, const struct smtp_cmd *c)
{
	struct smtp_bdat_args	 ba;

	if (smtp_parse_bdat(c->arg, c->arglen, &ba) != SMTP_P_OK) {
		/* no size known: the chunk cannot be skipped; close */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_reply(s, "421 4.5.0 Closing: cannot resynchronize");
		smtp_close_after(s);
		return;
	}
	s->bdat_left = ba.size;
	s->bdat_last = ba.last;
	s->state = SMTP_S_BDAT;
	if (!s->in_tx || s->nrcpts == 0) {
		/* RFC 3030: a failed chunk fails the transaction, if any */
		s->tx_failed = s->in_tx;
		smtp_error(s, !s->in_tx ? E_NEED_MAIL : E_NEED_RCPT);
		s->bdat_ok = 0;
		return;
	}
	s->bdat_ok = 1;
	if (s->tx_failed || s->qid[0])
		return;
	s->state = SMTP_S_CMD;
	if (smtp_open_data(s, SMTP_W_OPEN_BDAT) == -1) {
		s->tx_failed = 1;
		s->state = SMTP_S_BDAT;
		smtp_error(s, E_IO);
	}
}

static const struct {
	enum smtp_verb	 verb;
	void		 (*fn)(struct smtp_session *, const struct smtp_cmd *);
} smtp_verbs[] = {
	{ SMTP_V_HELO, smtp_cmd_helo },
	{ SMTP_V_EHLO, smtp_cmd_helo },
	{ SMTP_V_MAIL, smtp_cmd_mail },
	{ SMTP_V_RCPT, smtp_cmd_rcpt },
	{ SMTP_V_DATA, smtp_cmd_data },
	{ SMTP_V_BDAT, smtp_cmd_bdat },
	{ SMTP_V_RSET, smtp_cmd_rset },
	{ SMTP_V_NOOP, smtp_cmd_noop },
	{ SMTP_V_QUIT, smtp_cmd_quit },
	{ SMTP_V_VRFY, smtp_cmd_vrfy },
	{ SMTP_V_HELP, smtp_cmd_help },
	{ SMTP_V_STARTTLS, smtp_cmd_starttls },
	{ SMTP_V_AUTH, smtp_cmd_auth },
};

/* Looks like HTTP or another protocol: hang up (cross-protocol attacks). */
static int
smtp_foreign_protocol(const char *line, size_t len)
{
	static const char *const words[] = { "GET ", "POST ", "PUT ",
	    "HEAD ", "CONNECT ", "USER " };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i]);
		if (len >= n && strncasecmp(line, words[i], n) == 0)
			return 1;
	}
	return 0;
}

static void
smtp_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_cmd	 c;
	enum smtp_perr	 r;
	size_t		 i;

	log_debug("%u: <<< %.*s", s->id, (int)len, line);
	if ((r = smtp_parse_cmd(line, len, &c)) == SMTP_P_NUL) {
		smtp_error(s, E_NUL);
		return;
	}
	if (r != SMTP_P_OK || c.verb == SMTP_V_UNKNOWN) {
		if (smtp_foreign_protocol(line, len)) {
			smtp_reply(s, "421 4.7.0 %s This is an SMTP server",
			    smtpd.conf->hostname);
			smtp_close_after(s);
			return;
		}
		smtp_error(s, E_UNKNOWN);
		return;
	}
	for (i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++)
		if (smtp_verbs[i].verb == c.verb) {
			smtp_verbs[i].fn(s, &c);
			return;
		}
	smtp_error(s, E_NOT_IMPL);
}

/* ---- the message ---- */

/*
 * Keep the header section of an authenticated user's message: its From:
 * must name the user's own addresses (checked at the end of data).
 */
static void
smtp_hdr_capture(struct smtp_session *s)
{
	size_t	 n;

	if (s->hdr_done || !s->auth_user[0] || s->out.len == 0)
		return;
	n = HDR_CAPTURE_MAX - s->hdr.len;
	if (n > s->out.len)
		n = s->out.len;
	if (buf_add(&s->hdr, s->out.data, n) == -1 ||
	    header_section_len(s->hdr.data, s->hdr.len) ||
	    s->hdr.len >= HDR_CAPTURE_MAX)
		s->hdr_done = 1;
}

static void
smtp_data_drain(struct smtp_session *s)
{
	smtp_hdr_capture(s);
	if (!s->too_big && !s->write_errno && s->datafd != -1) {
		smtp_verify_feed(s, s->out.data, s->out.len);
		if (write_all(s->datafd, s->out.data, s->out.len) == -1)
			s->write_errno = errno;	/* sticky: answered at the end */
	}
	buf_reset(&s->out);
}

/* End of DATA or of the last chunk: reject, or ask the queue to commit. */
static void
smtp_data_end(struct smtp_session *s)
{
	unsigned	 e = s->dec.errors;
	int		 err = -1;

	smtp_data_drain(s);
	s->state = SMTP_S_CMD;
	if (s->too_big)
		err = E_SIZE;
	else if (s->dec.strict &&
	    (e & (SMTP_DATA_E_BARE_LF | SMTP_DATA_E_BARE_CR)))
		err = E_BARE_EOL;	/* P6; otherwise normalised */
	else if (e & SMTP_DATA_E_NUL)
		err = E_DATA_NUL;
	else if (e & SMTP_DATA_E_LONG_LINE)
		err = E_LONG_DATA_LINE;
	else if (s->write_errno)
		err = s->write_errno == ENOSPC || s->write_errno == EDQUOT ?
		    E_STORAGE : E_IO;
	else if (s->tx_failed || s->qid[0] == '\0' || s->hdr.err)
		err = E_IO;	/* the queue process died meanwhile */
	if (err != -1) {
		log_info("%s: rejected from=<%s> client=%s: %s", s->qid,
		    s->from, s->addr, smtp_errors[err].reply);
		smtp_tx_reset(s);
		smtp_error(s, err);
		return;
	}
	switch (smtp_verify_end(s)) {
	case VERIFY_PENDING:
		s->wait = SMTP_W_VERIFY;
		break;
	case VERIFY_REJECT:
		smtp_verify_done(s, VERIFY_REJECT);
		break;
	default:
		smtp_data_milters(s);
		break;
	}
}

/* SPF, DKIM and DMARC are done: reject, or on to the milters. */
static void
smtp_data_milters(struct smtp_session *s)
{
	int	 v;

	if ((v = milter_step(s, MILTER_S_DATA, NULL)) != MILTER_V_PENDING)
		smtp_data_verdict(s, v);
}

void
smtp_verify_done(struct smtp_session *s, enum verify_verdict vd)
{
	int	 waited = s->wait == SMTP_W_VERIFY;

	s->wait = SMTP_W_NONE;
	if (s->state == SMTP_S_CLOSING) {
		smtp_resume(s);		/* the client left meanwhile */
		return;
	}
	if (vd == VERIFY_REJECT) {
		log_info("%s: rejected from=<%s> client=%s: %s", s->qid,
		    s->from, s->addr, smtp_verify_reply(s));
		smtp_reply(s, "%s", smtp_verify_reply(s));
		smtp_tx_reset(s);
	} else {
		if (vd == VERIFY_HOLD)
			s->verify_hold = 1;
		smtp_data_milters(s);
	}
	if (waited)
		smtp_resume(s);
}

/* The milters read the message (the data file is still open for them). */
static void
smtp_data_verdict(struct smtp_session *s, int v)
{
	if (v != MILTER_V_REJECT && v != MILTER_V_TEMPFAIL &&
	    v != MILTER_V_DISCARD && !s->tx_failed && s->qid[0] &&
	    milter_apply_edits(s) == -1) {
		smtp_tx_reset(s);
		smtp_error(s, E_IO);
		return;
	}
	close(s->datafd);
	s->datafd = -1;
	if (s->tx_failed || s->qid[0] == '\0') {
		/* the queue process died while the milters read */
		smtp_tx_reset(s);
		smtp_error(s, E_IO);
		return;
	}
	if (v == MILTER_V_REJECT || v == MILTER_V_TEMPFAIL) {
		log_info("%s: rejected from=<%s> client=%s: milter: %s", s->qid,
		    s->from, s->addr, milter_reply_text(s));
		smtp_reply(s, "%s", milter_reply_text(s));
		smtp_tx_reset(s);
		return;
	}
	if (v == MILTER_V_DISCARD) {
		/* accepted, then dropped: the data file goes back */
		log_info("%s: discarded by milter from=<%s> nrcpt=%zu client=%s",
		    s->qid, s->from, s->nrcpts, s->addr);
		smtp_reply(s, "250 2.0.0 Ok");
		smtp_tx_reset(s);
		return;
	}
	if (s->auth_user[0])
		smtp_check_from_hdr(s);
	else
		smtp_commit(s);
}

/* MAIL passed our checks: the milters, then 250. */
static void
smtp_mail_ok(struct smtp_session *s)
{
	int	 v;

	if ((v = milter_step(s, MILTER_S_MAIL, s->from)) != MILTER_V_PENDING)
		smtp_mail_verdict(s, v);
}

static void
smtp_mail_verdict(struct smtp_session *s, int v)
{
	if (v == MILTER_V_REJECT || v == MILTER_V_TEMPFAIL) {
		s->from[0] = '\0';
		smtp_reply(s, "%s", milter_reply_text(s));
		milter_tx_reset(s);
		return;
	}
	s->in_tx = 1;
	smtp_verify_mail(s);
	smtp_reply(s, "250 2.1.0 Ok");
}

/* A milter step that had to wait is over: act on it, then go on. */
void
smtp_milter_done(struct smtp_session *s, int stage, int verdict)
{
	s->wait = SMTP_W_NONE;
	if (s->state == SMTP_S_CLOSING) {
		smtp_resume(s);		/* the client left meanwhile */
		return;
	}
	switch (stage) {
	case MILTER_S_MAIL:
		smtp_mail_verdict(s, verdict);
		break;
	case MILTER_S_RCPT:
		smtp_rcpt_verdict(s, verdict);
		break;
	default:
		smtp_data_verdict(s, verdict);
		break;
	}
	smtp_resume(s);
}

/*
 * An authenticated user's message: the addresses of its From: field(s)
 * must be the user's too, like the envelope sender (checked at MAIL).
 */
static void
smtp_check_from_hdr(struct smtp_session *s)
{
	char		 (*addrs)[HEADER_ADDR_MAX];
	struct buf	 b;
	int		 n;
	size_t		 hl;

	if ((addrs = calloc(FROM_ADDRS_MAX, sizeof(*addrs))) == NULL) {
		smtp_tx_reset(s);
		smtp_error(s, E_IO);
		return;
	}
	hl = header_section_len(s->hdr.data, s->hdr.len);
	n = header_addresses(s->hdr.data, hl ? hl : s->hdr.len, "From", addrs,
	    FROM_ADDRS_MAX);
	if (n <= 0) {
		free(addrs);
		if (n == 0) {	/* none: the scanner adds the sender's */
			smtp_commit(s);
			return;
		}
		log_info("%s: rejected from=<%s> client=%s: unreadable From:",
		    s->qid, s->from, s->addr);
		smtp_tx_reset(s);
		smtp_reply(s, "553 5.7.1 Message rejected: the From: header "
		    "cannot be read");
		return;
	}
	buf_init(&b, 4096);
	ipc_put_str(&b, s->auth_user);
	ipc_put_u32(&b, (uint32_t)n);
	for (int i = 0; i < n; i++)
		ipc_put_str(&b, addrs[i]);
	free(addrs);
	s->wait = SMTP_W_FROM_HDR;
	if (b.err || smtpd_request(s, ROLE_LOOKUP, LOOKUP_SENDER_CHECK,
	    &b) == -1) {
		s->wait = SMTP_W_NONE;
		smtp_tx_reset(s);
		smtp_error(s, E_SENDER_TEMP);
	}
	buf_free(&b);
}

/* The message is complete and allowed: ask the queue to commit it. */
static void
smtp_commit(struct smtp_session *s)
{
	struct buf	 b, hb;
	const struct buf *mh;
	size_t		 i;

	if (s->tls)
		tls_session_info(s->bev, s->tls_info, sizeof(s->tls_info));
	buf_init(&b, IPC_FRAME_MAX);
	for (i = 0; i < s->nrcpts; i++) {
		buf_reset(&b);
		ipc_put_str(&b, s->qid);
		ipc_put_str(&b, s->rcpts[i]);
		smtpd_request(s, ROLE_QUEUE, QUEUE_MSG_RCPT, &b);
	}
	buf_reset(&b);
	ipc_put_str(&b, s->qid);
	ipc_put_str(&b, s->from);
	ipc_put_str(&b, s->helo);
	ipc_put_str(&b, s->listener->local ? s->peer_user : s->addr);
	/* RFC 3848: ESMTPA, ESMTPSA for an authenticated session */
	ipc_put_str(&b, s->listener->local ? "LOCAL" : !s->esmtp ? "SMTP" :
	    s->auth_user[0] ? (s->tls ? "ESMTPSA" : "ESMTPA") :
	    s->tls ? "ESMTPS" : "ESMTP");
	ipc_put_str(&b, s->tls ? s->tls_info : "");
	ipc_put_str(&b, s->auth_user);	/* "" unless logged in */
	ipc_put_u32(&b, (s->listener->local ? ENV_F_LOCAL : 0) |
	    (s->mail.smtputf8 ? ENV_F_SMTPUTF8 : 0) |
	    (s->mail.body == SMTP_BODY_8BITMIME ? ENV_F_8BITMIME : 0) |
	    (milter_held(s) || s->verify_hold ? ENV_F_HELD : 0));
	ipc_put_u64(&b, s->dec.outbytes);
	/* header lines we and the milters added, prepended by the queue */
	buf_init(&hb, IPC_FRAME_MAX / 2);
	if ((mh = smtp_verify_header(s)) != NULL)
		buf_add(&hb, mh->data, mh->len);
	if ((mh = milter_headers(s)) != NULL && mh->len > 0)
		buf_add(&hb, mh->data, mh->len);
	ipc_put_mem(&b, hb.len ? hb.data : "", hb.len);
	buf_free(&hb);
	s->wait = SMTP_W_COMMIT;
	if (smtpd_request(s, ROLE_QUEUE, QUEUE_MSG_COMMIT, &b) == -1) {
		s->wait = SMTP_W_NONE;
		smtp_tx_reset(s);
		smtp_error(s, E_IO);
	}
	buf_free(&b);
}

void
smtp_commit_answer(struct smtp_session *s, uint32_t res, const char *text)
{
	s->wait = SMTP_W_NONE;
	if (res == 0) {
		log_info("%s: accepted from=<%s> nrcpt=%zu size=%llu client=%s",
		    s->qid, s->from, s->nrcpts, s->dec.outbytes, s->addr);
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
		s->qid[0] = '\0';	/* the queue owns it now */
	} else
		smtp_reply(s, "%s", text[0] ? text : smtp_errors[E_IO].reply);
	smtp_tx_reset(s);
}

/* Feed DATA bytes; 1 if the end was reached. */
static int
smtp_data_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v;
	size_t			 used;

	while (evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		used = smtp_data_feed(&s->dec, v.iov_base, v.iov_len, &s->out);
		evbuffer_drain(in, used);
		if (s->dec.outbytes > smtpd.conf->max_message_size)
			s->too_big = 1;
		if (s->out.len >= DATA_FLUSH)
			smtp_data_drain(s);
		if (s->dec.done)
			return 1;
	}
	return 0;
}

/* Feed the current BDAT chunk; 1 when the chunk is complete. */
static int
smtp_bdat_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	 v;
	size_t			 n;

	while (s->bdat_left > 0 && evbuffer_peek(in, -1, NULL, &v, 1) > 0 &&
	    v.iov_len > 0) {
		n = v.iov_len < s->bdat_left ? v.iov_len : s->bdat_left;
		if (s->bdat_ok && !s->tx_failed) {
			smtp_data_feed(&s->dec, v.iov_base, n, &s->out);
			if (s->dec.outbytes > smtpd.conf->max_message_size)
				s->too_big = 1;
			if (s->out.len >= DATA_FLUSH)
				smtp_data_drain(s);
		}
		evbuffer_drain(in, n);
		s->bdat_left -= n;
	}
	return s->bdat_left == 0;
}

static void
smtp_bdat_chunk_done(struct smtp_session *s)
{
	s->state = SMTP_S_CMD;
	if (!s->bdat_ok)
		return;		/* already answered */
	if (s->tx_failed) {
		smtp_error(s, E_BDAT_FAILED);
		if (s->bdat_last)
			smtp_tx_reset(s);
		return;
	}
	if (!s->bdat_last) {
		smtp_data_drain(s);
		smtp_reply(s, "250 2.0.0 Chunk accepted");
		return;
	}
	smtp_data_finish(&s->dec, &s->out);
	if (s->dec.outbytes > smtpd.conf->max_message_size)
		s->too_big = 1;
	smtp_data_end(s);
}

/*
 * How long the line at the start of the input may be: a command line is
 * SMTP_LINE_MAX, an AUTH command or a SASL response up to SASL_LINE_MAX
 * (RFC 4954 4).
 */
static size_t
smtp_line_max(struct smtp_session *s, struct evbuffer *in)
{
	char	 verb[5];

	if (s->state == SMTP_S_AUTH)
		return SASL_LINE_MAX;
	if (smtp_needs_auth(s) && evbuffer_copyout(in, verb, 5) == 5 &&
	    strncasecmp(verb, "AUTH ", 5) == 0)
		return SASL_LINE_MAX;
	return SMTP_LINE_MAX;
}

/* Read one command line; 1 handled one, 0 need more input. */
static int
smtp_line_input(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_ptr	 p;
	size_t			 len, avail = evbuffer_get_length(in);
	size_t			 max = smtp_line_max(s, in);
	char			 line[SASL_LINE_MAX + 1];

	p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (p.pos == -1) {
		if (avail > max) {
			/* over-long: discard until its end, then answer */
			s->skip_line = 1;
			evbuffer_drain(in, avail);
		}
		return 0;
	}
	len = (size_t)p.pos + 1;
	if (s->skip_line || len > max) {
		evbuffer_drain(in, len);
		s->skip_line = 0;
		if (s->state == SMTP_S_AUTH)
			smtp_auth_end(s);
		smtp_error(s, E_LINE_TOO_LONG);
		return 1;
	}
	evbuffer_remove(in, line, len);
	len--;				/* LF */
	if (len && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (s->state == SMTP_S_AUTH) {
		log_debug("%u: <<< (SASL response)", s->id);
		smtp_auth_response(s, line, len);
	} else
		smtp_command(s, line, len);
	explicit_bzero(line, len);
	return 1;
}

/*
 * After HELO, a command waits for the DNSBL answers; a client listed by a
 * reject list is refused there. 1: stop reading (waiting or closing).
 */
static int
smtp_dnsbl_gate(struct smtp_session *s, struct evbuffer *in)
{
	char	 reply[512];

	if (s->helo[0] == '\0' || evbuffer_get_length(in) == 0)
		return 0;
	switch (smtp_policy_dnsbl(s, reply, sizeof(reply))) {
	case POLICY_GO:
		break;
	case POLICY_WAIT:
		s->wait = SMTP_W_DNSBL;
		return 1;
	case POLICY_REFUSE:
		smtp_reply(s, "%s", reply);
		smtp_close_after(s);
		return 1;
	}
	return 0;
}

/* Work through buffered input as far as the session's state allows. */
static void
smtp_process(struct smtp_session *s)
{
	struct evbuffer	*in;

	while (s->wait == SMTP_W_NONE) {
		in = bufferevent_get_input(s->bev);
		switch (s->state) {
		case SMTP_S_CLOSING:
		case SMTP_S_STARTTLS:
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		case SMTP_S_DATA:
			if (!smtp_data_input(s, in))
				return;
			smtp_data_end(s);
			break;
		case SMTP_S_BDAT:
			if (!smtp_bdat_input(s, in))
				return;
			smtp_bdat_chunk_done(s);
			break;
		case SMTP_S_CMD:
		case SMTP_S_AUTH:
			if (s->state == SMTP_S_CMD && smtp_dnsbl_gate(s, in))
				return;
			if (!smtp_line_input(s, in))
				return;
			break;
		}
	}
}

/* Resume after an answer arrived. */
static void
smtp_resume(struct smtp_session *s)
{
	if (s->state == SMTP_S_CLOSING && !bufferevent_get_enabled(s->bev)) {
		smtp_session_free(s);	/* the client left meanwhile */
		return;
	}
	smtp_process(s);
}

void
smtp_peer_lost(struct smtp_session *s, int role)
{
	(void)role;
	switch (s->wait) {
	case SMTP_W_NONE:
		return;
	case SMTP_W_RCPT:
		s->wait = SMTP_W_NONE;
		smtp_error(s, E_TEMPFAIL);
		break;
	case SMTP_W_OPEN:
	case SMTP_W_OPEN_BDAT:
		smtp_open_answer(s, 0, "", -1);
		break;
	case SMTP_W_COMMIT:
		s->qid[0] = '\0';
		smtp_commit_answer(s, 1, "");
		break;
	case SMTP_W_AUTH:
		smtp_auth_answer(s, AUTH_TEMPFAIL, "");
		break;
	case SMTP_W_SENDER:
	case SMTP_W_FROM_HDR:
		smtp_sender_answer(s, AUTH_TEMPFAIL, "");
		break;
	case SMTP_W_AUTH_DELAY:
	case SMTP_W_DNSBL:
	case SMTP_W_MILTER:
	case SMTP_W_VERIFY:
		return;		/* not waiting for a peer */
	}
	smtp_resume(s);
}

/* An answer was handled: go on with the input. */
void
smtp_answered(struct smtp_session *s)
{
	smtp_resume(s);
}
