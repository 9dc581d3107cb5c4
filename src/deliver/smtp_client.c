/*
 * smtp_client - one outbound SMTP connection; contract in smtp_client.h.
 *
 * Mirrors the server: each command has send_X, which writes it and says
 * which reply is awaited (expect), and on_X_reply, which acts on that
 * reply; one table maps the awaited state to its on_X_reply. With
 * PIPELINING, MAIL, the RCPTs and DATA go out in one write and the same
 * handlers consume the replies in order; without it they are sent one by
 * one from the handlers. Every connection-level failure goes through
 * client_fail(), the one place that turns an error into outcomes.
 *
 * Callbacks into the caller may end the client; `busy` counts nested
 * libevent callbacks so the memory is freed only when the outermost one
 * returns.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "smtp_client.h"
#include "smtp_reply.h"

#define NAME_MAX_LEN	255
#define PATH_MAX_LEN	256		/* RFC 5321 4.5.3.1.3 */
#define CMD_MAX		1024
#define BODY_CHUNK	(16 * 1024)
#define BODY_HIWAT	(256 * 1024)	/* encode more below this ... */
#define BODY_LOWAT	(64 * 1024)	/* ... woken up below this */

enum cstate {
	CS_INIT, CS_CONNECT, CS_BANNER, CS_EHLO, CS_HELO, CS_STARTTLS, CS_TLS,
	CS_AUTH_LOGIN, CS_AUTH_USER, CS_AUTH, CS_READY, CS_RSET, CS_MAIL,
	CS_RCPT, CS_DATA, CS_BODY, CS_DOT, CS_DOT_IGNORE, CS_QUIT, CS_DONE,
};

static const char *const cstate_names[] = {
	"start", "connect", "banner", "EHLO", "HELO", "STARTTLS",
	"TLS handshake", "AUTH LOGIN", "AUTH LOGIN", "AUTH", "idle", "RSET",
	"MAIL FROM", "RCPT TO", "DATA", "message body", "end of data",
	"end of data", "QUIT", "done",
};

enum cerr {
	CE_CONNECT, CE_TIMEOUT, CE_DROPPED, CE_PROTOCOL, CE_REPLY,
	CE_TLS_UNAVAIL, CE_TLS_FAILED, CE_AUTH, CE_AUTH_NO_TLS, CE_LOCAL,
};

/* the one table of connection-level errors: all temporary (P3) */
static const struct {
	const char	*enh;
	const char	*what;
} cerrs[] = {
	[CE_CONNECT] = { "4.4.1", "connection failed" },
	[CE_TIMEOUT] = { "4.4.2", "timeout" },
	[CE_DROPPED] = { "4.4.2", "connection lost" },
	[CE_PROTOCOL] = { "4.5.0", "protocol error" },
	[CE_REPLY] = { "", "" },	/* the server's own words */
	[CE_TLS_UNAVAIL] = { "4.7.4", "TLS required but not available" },
	[CE_TLS_FAILED] = { "4.7.5", "TLS handshake failed" },
	[CE_AUTH] = { "4.7.8", "authentication failed" },
	[CE_AUTH_NO_TLS] = { "4.7.11", "AUTH not attempted without TLS" },
	[CE_LOCAL] = { "4.3.0", "local error" },
};

/* per recipient of the transaction */
#define RS_ACCEPTED	0x01	/* 250 to RCPT, outcome from DATA or the dot */
#define RS_FINAL	0x02	/* outcome known */
#define RS_SKIP		0x04	/* never sent (invalid address) */

struct smtp_client {
	struct event_base		*base;
	struct bufferevent		*bev;
	struct event			*kick;
	enum cstate			 state;
	int				 busy, dead;
	struct smtp_client_params	 p;
	char				 helo[NAME_MAX_LEN + 1];
	char				 tls_name[NAME_MAX_LEN + 1];
	char				 user[NAME_MAX_LEN + 1];
	char				 pass[NAME_MAX_LEN + 1];
	char				 relay[2 * NAME_MAX_LEN + 64];
	char				 log_id[64];
	struct sockaddr_storage		 ss;
	struct smtp_client_cbs		 cbs;
	void				*arg;
	struct smtp_reply_parser	 rp;
	struct smtp_ext			 ext;
	int				 tls, tls_tried, esmtp, pipelining;
	int				 need_rset, in_msg_cb;
	int				 idling;
	unsigned			 nmsgs;
	/* the transaction */
	struct smtp_msg			*msg, *next;
	struct smtp_rcpt_result		*res;
	unsigned char			*rst;		/* RS_* */
	size_t				 cur, naccepted;
	int				 mail_ok, utf8;
	/* the body */
	size_t				 hdr_off;
	off_t				 off;
	int				 bol, cr;
	char				 rbuf[BODY_CHUNK];
	char				 ebuf[2 * BODY_CHUNK + 8];
};

static void	on_read(struct bufferevent *, void *);
static void	on_write(struct bufferevent *, void *);
static void	on_event(struct bufferevent *, short, void *);
static void	on_kick(evutil_socket_t, short, void *);
static void	client_fail(struct smtp_client *, enum cerr, const char *);
static void	client_ready(struct smtp_client *);
static void	send_ehlo(struct smtp_client *);
static void	send_mail(struct smtp_client *);
static void	send_rcpt(struct smtp_client *);
static void	send_data(struct smtp_client *);
static void	send_quit(struct smtp_client *);
static void	tx_finish(struct smtp_client *);

void
smtp_timeouts_default(struct smtp_timeouts *t)
{
	t->connect = 30 * 1000;
	t->banner = 5 * 60 * 1000;
	t->helo = 5 * 60 * 1000;
	t->mail = 5 * 60 * 1000;
	t->rcpt = 5 * 60 * 1000;
	t->data_init = 2 * 60 * 1000;
	t->data_block = 3 * 60 * 1000;
	t->data_end = 10 * 60 * 1000;
	t->quit = 5 * 60 * 1000;
}

SSL_CTX *
smtp_client_tls_ctx(const char *cafile)
{
	SSL_CTX	*ctx;
	int	 ok;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (cafile != NULL)
		ok = SSL_CTX_load_verify_locations(ctx, cafile, NULL);
	else
		ok = SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		log_warnx("TLS: cannot load CA %s: %s", cafile ? cafile :
		    "store", ERR_error_string(ERR_get_error(), NULL));
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* opportunistic TLS takes any certificate (RFC 7435) */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* ---- small helpers ---- */

static struct timeval *
ms_tv(struct timeval *tv, unsigned ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
	return tv;
}

/* Await the reply for state s, within ms. */
static void
expect(struct smtp_client *c, enum cstate s, unsigned ms)
{
	struct timeval	 tv;

	c->state = s;
	bufferevent_set_timeouts(c->bev, ms_tv(&tv, ms), &tv);
}

/* A string we may put on a command line: bounded, no CR, LF, <, >. */
static int
path_ok(const char *s)
{
	size_t	 n = strlen(s);

	return n <= PATH_MAX_LEN && strcspn(s, "\r\n<>") == n;
}

static int
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int
copy_param(char *dst, size_t dstlen, const char *src)
{
	if (src == NULL) {
		dst[0] = '\0';
		return 0;
	}
	if (strlen(src) >= dstlen || strcspn(src, "\r\n") != strlen(src))
		return -1;
	snprintf(dst, dstlen, "%s", src);
	return 0;
}

/* Write one command line; AUTH lines are not logged (secrets). */
static int
send_cmd(struct smtp_client *c, const char *fmt, ...)
{
	char	 line[CMD_MAX];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		client_fail(c, CE_LOCAL, "command too long");
		return -1;
	}
	if (strncmp(line, "AUTH", 4) != 0 && c->state != CS_AUTH_LOGIN &&
	    c->state != CS_AUTH_USER)
		log_debug("%s: >>> %s", c->log_id, line);
	memcpy(line + n, "\r\n", 2);
	if (evbuffer_add(bufferevent_get_output(c->bev), line,
	    (size_t)n + 2) == -1) {
		client_fail(c, CE_LOCAL, "out of memory");
		return -1;
	}
	return 0;
}

static void
set_rcpt(struct smtp_client *c, size_t i, enum smtp_status st, int code,
    const char *text)
{
	c->res[i].status = st;
	c->res[i].code = code;
	log_sanitize(c->res[i].text, sizeof(c->res[i].text), text,
	    strlen(text));
}

static void
set_rcpt_reply(struct smtp_client *c, size_t i, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	smtp_reply_format(r, text, sizeof(text));
	set_rcpt(c, i, r->code / 100 == 2 ? SMTP_ST_DELIVERED :
	    r->code / 100 == 5 ? SMTP_ST_PERM : SMTP_ST_TEMP, r->code, text);
	c->rst[i] |= RS_FINAL;
}

/* ---- life cycle ---- */

static void
client_release(struct smtp_client *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->kick)
		event_free(c->kick);
	smtp_reply_free(&c->rp);
	free(c->res);
	free(c->rst);
	explicit_bzero(c->pass, sizeof(c->pass));
	free(c);
}

/* Leave a libevent callback; the last one out frees a finished client. */
static void
leave(struct smtp_client *c)
{
	if (--c->busy == 0 && c->dead)
		client_release(c);
}

/* The connection is over: tell the caller once, then go away. */
static void
client_done(struct smtp_client *c, enum smtp_conn_status st,
    const char *text)
{
	struct smtp_conn_result	 r;

	c->state = CS_DONE;
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	memset(&r, 0, sizeof(r));
	r.status = st;
	r.relay = c->relay;
	r.nmsgs = c->nmsgs;
	snprintf(r.text, sizeof(r.text), "%s", text);
	if (c->cbs.on_conn)
		c->cbs.on_conn(c, &r, c->arg);
	if (c->busy)
		c->dead = 1;
	else
		client_release(c);
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->busy) {
		c->state = CS_DONE;
		c->dead = 1;
		return;
	}
	client_release(c);
}

/* A message that cannot even be started on this connection. */
static void
msg_fail_all(struct smtp_client *c, struct smtp_msg *m,
    enum smtp_status st, const char *text)
{
	struct smtp_msg_result	 mr;
	size_t			 i;

	if ((mr.rcpts = calloc(m->nrcpts ? m->nrcpts : 1,
	    sizeof(*mr.rcpts))) == NULL)
		log_panic("smtp_client: out of memory for results");
	for (i = 0; i < m->nrcpts; i++) {
		mr.rcpts[i].status = st;
		log_sanitize(mr.rcpts[i].text, sizeof(mr.rcpts[i].text), text,
		    strlen(text));
	}
	mr.relay = c->relay;
	mr.tls = c->tls;
	if (c->cbs.on_msg)
		c->cbs.on_msg(c, m, &mr, c->arg);
	free(mr.rcpts);
}

/*
 * The one place a connection-level error becomes outcomes: every
 * recipient not yet answered for good is temporary, and so is a message
 * handed but not started. Then the connection ends.
 */
static void
client_fail(struct smtp_client *c, enum cerr e, const char *detail)
{
	char			 text[SMTP_CLIENT_TEXT_MAX];
	struct smtp_msg		*next = c->next;
	enum smtp_conn_status	 st = SMTP_CONN_FAILED;
	size_t			 i;

	if (c->state == CS_DONE)
		return;
	if (e == CE_REPLY)
		snprintf(text, sizeof(text), "%s (in reply to %s)", detail,
		    cstate_names[c->state]);
	else
		snprintf(text, sizeof(text), "%s %s (%s)%s%s", cerrs[e].enh,
		    cerrs[e].what, cstate_names[c->state], detail ? ": " : "",
		    detail ? detail : "");
	log_debug("%s: relay=%s failed: %s", c->log_id, c->relay, text);
	if (e == CE_TLS_FAILED && c->p.tls == SMTP_TLS_OPPORTUNISTIC)
		st = SMTP_CONN_TLS_FAILED;
	c->state = CS_DONE;	/* smtp_client_send() refuses from now on */
	c->next = NULL;
	if (c->msg) {
		for (i = 0; i < c->msg->nrcpts; i++)
			if (!(c->rst[i] & RS_FINAL))
				set_rcpt(c, i, SMTP_ST_TEMP, 0, text);
		tx_finish(c);
	}
	if (next)
		msg_fail_all(c, next, SMTP_ST_TEMP, text);
	client_done(c, st, text);
}

/* ---- connecting ---- */

static void
format_relay(struct smtp_client *c)
{
	char		 host[INET6_ADDRSTRLEN] = "?";
	unsigned	 port = 0;

	if (c->ss.ss_family == AF_UNIX) {
		struct sockaddr_un *un = (struct sockaddr_un *)&c->ss;
		snprintf(c->relay, sizeof(c->relay), "%sunix:%.*s", c->p.lmtp ?
		    "lmtp:" : "", (int)sizeof(un->sun_path), un->sun_path);
		snprintf(c->tls_name, sizeof(c->tls_name), "localhost");
		return;
	}
	if (c->ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&c->ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (c->ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	if (c->p.lmtp)
		snprintf(c->relay, sizeof(c->relay), "lmtp:%s%s%s:%u",
		    c->ss.ss_family == AF_INET6 ? "[" : "", host,
		    c->ss.ss_family == AF_INET6 ? "]" : "", port);
	else
		snprintf(c->relay, sizeof(c->relay), "%s[%s]:%u",
		    c->p.relay_name ? c->p.relay_name : host, host, port);
	if (c->tls_name[0] == '\0')
		snprintf(c->tls_name, sizeof(c->tls_name), "%s",
		    c->p.relay_name ? c->p.relay_name : host);
}

struct smtp_client *
smtp_client_new(struct event_base *base, const struct smtp_client_params *p,
    const struct smtp_client_cbs *cbs, void *arg)
{
	struct smtp_client	*c;
	struct timeval		 tv;

	if (p->salen > sizeof(c->ss) || (p->tls != SMTP_TLS_NONE &&
	    p->tls_ctx == NULL) || p->helo == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	c->p = *p;
	c->cbs = *cbs;
	c->arg = arg;
	memcpy(&c->ss, p->sa, p->salen);
	if (copy_param(c->helo, sizeof(c->helo), p->helo) == -1 ||
	    copy_param(c->tls_name, sizeof(c->tls_name), p->tls_name) == -1 ||
	    copy_param(c->user, sizeof(c->user), p->auth_user) == -1 ||
	    copy_param(c->pass, sizeof(c->pass), p->auth_pass) == -1 ||
	    (p->relay_name && strlen(p->relay_name) > NAME_MAX_LEN)) {
		free(c);
		errno = EINVAL;
		return NULL;
	}
	/* the copies are ours; the caller's strings may go away */
	c->p.helo = c->p.tls_name = c->p.auth_user = c->p.auth_pass = NULL;
	snprintf(c->log_id, sizeof(c->log_id), "%s",
	    p->log_id ? p->log_id : "smtp");
	c->p.log_id = NULL;
	format_relay(c);
	c->p.relay_name = NULL;
	smtp_reply_init(&c->rp);
	if ((c->kick = evtimer_new(base, on_kick, c)) == NULL ||
	    evtimer_add(c->kick, ms_tv(&tv, 0)) == -1) {
		client_release(c);
		return NULL;
	}
	return c;
}

int
smtp_client_send(struct smtp_client *c, struct smtp_msg *m)
{
	/* before the first message, or from on_msg for the next one */
	if (c->dead || c->state == CS_DONE || c->next != NULL ||
	    (c->state > CS_READY && !c->in_msg_cb)) {
		errno = EBUSY;
		return -1;
	}
	c->next = m;
	if (c->idling && !c->in_msg_cb) {
		struct timeval tv;
		evtimer_add(c->kick, ms_tv(&tv, 0));	/* wake up now */
	}
	return 0;
}

int
smtp_client_alive(const struct smtp_client *c)
{
	return !c->dead && c->state != CS_DONE;
}

void
smtp_client_no_idle(struct smtp_client *c)
{
	struct timeval	 tv;

	c->p.idle_ms = 0;
	if (c->idling)		/* already waiting: stop now */
		evtimer_add(c->kick, ms_tv(&tv, 0));
}

static void
client_connect(struct smtp_client *c)
{
	int	 fd;

	fd = socket(c->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		client_fail(c, CE_CONNECT, strerror(errno));
		return;
	}
	if ((c->bev = bufferevent_socket_new(c->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		client_fail(c, CE_LOCAL, "out of memory");
		return;
	}
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	expect(c, CS_CONNECT, c->p.timeouts.connect);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->ss,
	    c->p.salen) == -1) {
		client_fail(c, CE_CONNECT,
		    strerror(EVUTIL_SOCKET_ERROR() ? EVUTIL_SOCKET_ERROR() :
		    ECONNREFUSED));
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Between messages: the next one if the caller handed it, else QUIT. */
static void
client_ready(struct smtp_client *c)
{
	struct timeval	 tv;

	if (c->state == CS_DONE)
		return;
	c->state = CS_READY;
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	evtimer_add(c->kick, ms_tv(&tv, 0));
}

/* ---- the session up to the first MAIL ---- */

static void
on_banner_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	if (r->code != 220) {
		smtp_reply_format(r, text, sizeof(text));
		client_fail(c, CE_REPLY, text);
		return;
	}
	send_ehlo(c);
}

static void
send_ehlo(struct smtp_client *c)
{
	memset(&c->ext, 0, sizeof(c->ext));
	c->esmtp = c->pipelining = 0;
	if (send_cmd(c, "%s %s", c->p.lmtp ? "LHLO" : "EHLO", c->helo) == 0)
		expect(c, CS_EHLO, c->p.timeouts.helo);
}

static void
send_helo(struct smtp_client *c)
{
	if (send_cmd(c, "HELO %s", c->helo) == 0)
		expect(c, CS_HELO, c->p.timeouts.helo);
}

static void
send_starttls(struct smtp_client *c)
{
	c->tls_tried = 1;
	if (send_cmd(c, "STARTTLS") == 0)
		expect(c, CS_STARTTLS, c->p.timeouts.helo);
}

/* base64 of the bytes; 0 on success */
static int
b64(char *dst, size_t dstlen, const void *src, size_t len)
{
	if (dstlen < 4 * ((len + 2) / 3) + 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
	return 0;
}

static void
send_auth_plain(struct smtp_client *c)
{
	char	 raw[2 * NAME_MAX_LEN + 2], enc[sizeof(raw) * 4 / 3 + 8];
	size_t	 ul = strlen(c->user), pl = strlen(c->pass);

	/* authzid empty, authcid, password (RFC 4616) */
	raw[0] = '\0';
	memcpy(raw + 1, c->user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, c->pass, pl);
	if (b64(enc, sizeof(enc), raw, 2 + ul + pl) == -1) {
		client_fail(c, CE_LOCAL, "credentials too long");
		return;
	}
	explicit_bzero(raw, sizeof(raw));
	if (send_cmd(c, "AUTH PLAIN %s", enc) == 0)
		expect(c, CS_AUTH, c->p.timeouts.helo);
	explicit_bzero(enc, sizeof(enc));
}

static void
send_auth_login(struct smtp_client *c)
{
	if (send_cmd(c, "AUTH LOGIN") == 0)
		expect(c, CS_AUTH_LOGIN, c->p.timeouts.helo);
}

/* "334 VXNlcm5hbWU6": answer with the user name, then the password */
static void
on_auth_login_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char		 enc[NAME_MAX_LEN * 4 / 3 + 8], text[SMTP_CLIENT_TEXT_MAX];
	const char	*secret = c->state == CS_AUTH_LOGIN ? c->user : c->pass;

	if (r->code != 334) {
		smtp_reply_format(r, text, sizeof(text));
		client_fail(c, CE_AUTH, text);
		return;
	}
	if (b64(enc, sizeof(enc), secret, strlen(secret)) == -1) {
		client_fail(c, CE_LOCAL, "credentials too long");
		return;
	}
	if (send_cmd(c, "%s", enc) == 0)
		expect(c, c->state == CS_AUTH_LOGIN ? CS_AUTH_USER : CS_AUTH,
		    c->p.timeouts.helo);
	explicit_bzero(enc, sizeof(enc));
}

static void
on_auth_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	/* 535 is about our credentials, not the mail: defer, not bounce */
	if (r->code != 235) {
		smtp_reply_format(r, text, sizeof(text));
		client_fail(c, CE_AUTH, text);
		return;
	}
	client_ready(c);
}

/* After EHLO/HELO: STARTTLS, then AUTH, as policy and offer say. */
static void
after_helo(struct smtp_client *c)
{
	if (!c->tls && !c->tls_tried && c->p.tls != SMTP_TLS_NONE) {
		if (c->ext.flags & SMTP_EXT_STARTTLS) {
			send_starttls(c);
			return;
		}
		if (c->p.tls == SMTP_TLS_REQUIRED) {
			client_fail(c, CE_TLS_UNAVAIL, "STARTTLS not offered");
			return;
		}
	}
	if (c->user[0] && (c->ext.flags & SMTP_EXT_AUTH)) {
		/* never credentials in clear text */
		if (!c->tls)
			client_fail(c, CE_AUTH_NO_TLS, NULL);
		else if (c->ext.auth & SMTP_AUTH_PLAIN)
			send_auth_plain(c);
		else if (c->ext.auth & SMTP_AUTH_LOGIN)
			send_auth_login(c);
		else
			client_fail(c, CE_AUTH, "no PLAIN or LOGIN offered");
		return;
	}
	if (c->user[0])
		log_info("%s: relay=%s does not offer AUTH, sending without",
		    c->log_id, c->relay);
	client_ready(c);
}

static void
on_ehlo_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	if (r->code / 100 == 2) {
		smtp_ehlo_parse(r, &c->ext);
		c->esmtp = 1;
		c->pipelining = (c->ext.flags & SMTP_EXT_PIPELINING) != 0;
		after_helo(c);
	} else if (r->code / 100 == 5 && !c->p.lmtp)
		send_helo(c);		/* an old server: try HELO */
	else {
		smtp_reply_format(r, text, sizeof(text));
		client_fail(c, CE_REPLY, text);
	}
}

static void
on_helo_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	if (r->code / 100 != 2) {
		smtp_reply_format(r, text, sizeof(text));
		client_fail(c, CE_REPLY, text);
		return;
	}
	memset(&c->ext, 0, sizeof(c->ext));
	after_helo(c);
}

/* The peer's 220 to STARTTLS is in: the next bytes are TLS. */
static void
start_tls(struct smtp_client *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct bufferevent	*tb;
	SSL			*ssl;
	unsigned char		 ip[sizeof(struct in6_addr)];
	int			 literal;

	/* plain text after the 220 would be an injection (CVE-2011-0411) */
	evbuffer_drain(in, evbuffer_get_length(in));
	if ((ssl = SSL_new(c->p.tls_ctx)) == NULL) {
		client_fail(c, CE_LOCAL, "SSL_new failed");
		return;
	}
	literal = inet_pton(AF_INET, c->tls_name, ip) == 1 ||
	    inet_pton(AF_INET6, c->tls_name, ip) == 1;
	if (!literal)
		SSL_set_tlsext_host_name(ssl, c->tls_name);
	if (c->p.tls == SMTP_TLS_REQUIRED) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		if (literal)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			    c->tls_name);
		else
			SSL_set1_host(ssl, c->tls_name);
	}
	tb = bufferevent_openssl_socket_new(c->base, bufferevent_getfd(c->bev),
	    ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		client_fail(c, CE_LOCAL, "cannot start TLS");
		return;
	}
	bufferevent_setfd(c->bev, -1);	/* the TLS bufferevent owns it */
	bufferevent_free(c->bev);
	c->bev = tb;
	bufferevent_setcb(tb, on_read, on_write, on_event, c);
	expect(c, CS_TLS, c->p.timeouts.helo);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

static void
on_starttls_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	if (r->code == 220) {
		start_tls(c);
		return;
	}
	if (c->p.tls == SMTP_TLS_REQUIRED) {
		smtp_reply_format(r, text, sizeof(text));
		client_fail(c, CE_TLS_UNAVAIL, text);
		return;
	}
	after_helo(c);		/* opportunistic: go on in clear text */
}

/* Why the handshake failed, for the log and the DSN. */
static const char *
tls_error(struct smtp_client *c, char *buf, size_t len)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long	 e;
	long		 v;

	if (c->p.tls == SMTP_TLS_REQUIRED && ssl != NULL &&
	    (v = SSL_get_verify_result(ssl)) != X509_V_OK)
		return X509_verify_cert_error_string(v);
	if ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		ERR_error_string_n(e, buf, len);
		return buf;
	}
	return "connection closed during handshake";
}

/* ---- transactions ---- */

/* The caller hears about the message; the transaction is forgotten. */
static void
tx_finish(struct smtp_client *c)
{
	struct smtp_msg_result	 mr;
	struct smtp_msg		*m = c->msg;

	mr.rcpts = c->res;
	mr.relay = c->relay;
	mr.tls = c->tls;
	c->msg = NULL;
	c->in_msg_cb = 1;
	if (c->cbs.on_msg)
		c->cbs.on_msg(c, m, &mr, c->arg);
	c->in_msg_cb = 0;
	free(c->res);
	free(c->rst);
	c->res = NULL;
	c->rst = NULL;
}

static void
tx_end(struct smtp_client *c)
{
	tx_finish(c);
	client_ready(c);
}

/* Every recipient without an outcome gets this one. */
static void
tx_all(struct smtp_client *c, enum smtp_status st, const char *text)
{
	size_t	 i;

	for (i = 0; i < c->msg->nrcpts; i++)
		if (!(c->rst[i] & RS_FINAL)) {
			set_rcpt(c, i, st, 0, text);
			c->rst[i] |= RS_FINAL;
		}
}

static size_t
next_rcpt(const struct smtp_client *c, size_t i)
{
	while (i < c->msg->nrcpts && (c->rst[i] & RS_SKIP))
		i++;
	return i;
}

static uint64_t
msg_size(const struct smtp_msg *m)
{
	struct stat	 st;

	if (m->size)
		return m->size;
	if (fstat(m->fd, &st) == -1 || (uint64_t)st.st_size < m->offset)
		return m->headerslen;
	return m->headerslen + (uint64_t)st.st_size - m->offset;
}

static int
tx_rcpts_8bit(const struct smtp_msg *m)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		if (has_8bit(m->rcpts[i]))
			return 1;
	return 0;
}

/*
 * Checks that need no round trip: addresses we may write on a command
 * line, SMTPUTF8 and SIZE. 0 if the message goes on to MAIL.
 */
static int
tx_check(struct smtp_client *c)
{
	struct smtp_msg	*m = c->msg;
	char		 text[SMTP_CLIENT_TEXT_MAX];
	uint64_t	 size;
	size_t		 i;

	c->utf8 = (m->flags & SMTP_MSG_SMTPUTF8) || has_8bit(m->from);
	for (i = 0; i < m->nrcpts; i++) {
		c->utf8 |= has_8bit(m->rcpts[i]);
		if (!path_ok(m->rcpts[i])) {
			set_rcpt(c, i, SMTP_ST_PERM, 0,
			    "5.1.3 invalid recipient address");
			c->rst[i] = RS_FINAL | RS_SKIP;
		}
	}
	if (!path_ok(m->from)) {
		tx_all(c, SMTP_ST_PERM, "5.1.7 invalid sender address");
		return -1;
	}
	/*
	 * LMTP to our own mailbox server (Dovecot 2.3 offers no SMTPUTF8):
	 * a message flagged SMTPUTF8 with ASCII addresses is stored as it
	 * is, as Maildir delivery would; only 8-bit addresses need it.
	 */
	if (c->utf8 && c->p.lmtp && !(c->ext.flags & SMTP_EXT_SMTPUTF8) &&
	    !has_8bit(m->from) && !tx_rcpts_8bit(m))
		c->utf8 = 0;
	if (c->utf8 && !(c->ext.flags & SMTP_EXT_SMTPUTF8)) {
		tx_all(c, SMTP_ST_PERM, "5.6.7 the relay does not support "
		    "SMTPUTF8, which this message needs");
		return -1;
	}
	size = msg_size(m);
	if ((c->ext.flags & SMTP_EXT_SIZE) && c->ext.size && size >
	    c->ext.size) {
		snprintf(text, sizeof(text), "5.3.4 message size %llu exceeds "
		    "the relay's limit of %llu", (unsigned long long)size,
		    (unsigned long long)c->ext.size);
		tx_all(c, SMTP_ST_PERM, text);
		return -1;
	}
	return next_rcpt(c, 0) < m->nrcpts ? 0 : -1;
}

static void
tx_start(struct smtp_client *c)
{
	struct smtp_msg	*m = c->next;

	c->next = NULL;
	c->msg = m;
	c->res = calloc(m->nrcpts ? m->nrcpts : 1, sizeof(*c->res));
	c->rst = calloc(m->nrcpts ? m->nrcpts : 1, 1);
	if (c->res == NULL || c->rst == NULL) {
		free(c->res);
		free(c->rst);
		c->res = NULL;
		c->rst = NULL;
		c->msg = NULL;
		c->in_msg_cb = 1;
		msg_fail_all(c, m, SMTP_ST_TEMP, "4.3.0 out of memory");
		c->in_msg_cb = 0;
		client_ready(c);
		return;
	}
	c->naccepted = 0;
	c->mail_ok = 0;
	c->cur = 0;
	if (tx_check(c) == -1) {
		tx_end(c);
		return;
	}
	if (c->need_rset) {
		if (send_cmd(c, "RSET") == 0)
			expect(c, CS_RSET, c->p.timeouts.helo);
	} else
		send_mail(c);
}

static void
on_rset_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	if (r->code / 100 != 2) {
		smtp_reply_format(r, text, sizeof(text));
		client_fail(c, CE_REPLY, text);
		return;
	}
	c->need_rset = 0;
	send_mail(c);
}

/* MAIL; with PIPELINING also every RCPT and DATA in the same write. */
static void
send_mail(struct smtp_client *c)
{
	struct smtp_msg	*m = c->msg;
	char		 params[96] = "";
	size_t		 n = 0, i;

	if (c->ext.flags & SMTP_EXT_SIZE)
		n += (size_t)snprintf(params + n, sizeof(params) - n,
		    " SIZE=%llu", (unsigned long long)msg_size(m));
	if ((m->flags & SMTP_MSG_8BITMIME) &&
	    (c->ext.flags & SMTP_EXT_8BITMIME))
		n += (size_t)snprintf(params + n, sizeof(params) - n,
		    " BODY=8BITMIME");
	if (c->utf8)
		snprintf(params + n, sizeof(params) - n, " SMTPUTF8");
	if (send_cmd(c, "MAIL FROM:<%s>%s", m->from, params) == -1)
		return;
	c->cur = next_rcpt(c, 0);
	if (c->pipelining) {
		for (i = c->cur; i < m->nrcpts; i = next_rcpt(c, i + 1))
			if (send_cmd(c, "RCPT TO:<%s>", m->rcpts[i]) == -1)
				return;
		if (send_cmd(c, "DATA") == -1)
			return;
	}
	expect(c, CS_MAIL, c->p.timeouts.mail);
}

static void
send_rcpt(struct smtp_client *c)
{
	if (send_cmd(c, "RCPT TO:<%s>", c->msg->rcpts[c->cur]) == 0)
		expect(c, CS_RCPT, c->p.timeouts.rcpt);
}

static void
send_data(struct smtp_client *c)
{
	if (send_cmd(c, "DATA") == 0)
		expect(c, CS_DATA, c->p.timeouts.data_init);
}

static void
on_mail_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	size_t	 i;

	c->mail_ok = r->code / 100 == 2;
	if (!c->mail_ok) {
		/* the RCPT replies that follow (503) would hide the reason */
		for (i = 0; i < c->msg->nrcpts; i++)
			if (!(c->rst[i] & RS_FINAL))
				set_rcpt_reply(c, i, r);
		c->need_rset = 1;
	}
	if (c->pipelining)
		expect(c, CS_RCPT, c->p.timeouts.rcpt);
	else if (!c->mail_ok)
		tx_end(c);
	else
		send_rcpt(c);
}

static void
on_rcpt_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	if (c->mail_ok) {
		if (r->code / 100 == 2) {
			c->rst[c->cur] |= RS_ACCEPTED;
			c->naccepted++;
		} else
			set_rcpt_reply(c, c->cur, r);
	}
	c->cur = next_rcpt(c, c->cur + 1);
	if (c->cur < c->msg->nrcpts) {
		if (c->pipelining)
			expect(c, CS_RCPT, c->p.timeouts.rcpt);
		else
			send_rcpt(c);
	} else if (c->pipelining)
		expect(c, CS_DATA, c->p.timeouts.data_init);
	else if (c->naccepted)
		send_data(c);
	else {
		c->need_rset = 1;
		tx_end(c);
	}
}

static void	body_start(struct smtp_client *);

static void
on_data_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];
	size_t	 i;

	if (r->code == 354) {
		if (c->mail_ok && c->naccepted) {
			body_start(c);
			return;
		}
		/* RFC 2920 3.1: DATA accepted with no recipient: end it */
		if (send_cmd(c, ".") == 0)
			expect(c, CS_DOT_IGNORE, c->p.timeouts.data_end);
		return;
	}
	if (c->mail_ok && c->naccepted) {
		if (r->code / 100 == 2) {
			smtp_reply_format(r, text, sizeof(text));
			client_fail(c, CE_PROTOCOL, text);
			return;
		}
		for (i = 0; i < c->msg->nrcpts; i++)
			if ((c->rst[i] & (RS_ACCEPTED | RS_FINAL)) ==
			    RS_ACCEPTED)
				set_rcpt_reply(c, i, r);
	}
	c->need_rset = 1;
	tx_end(c);
}

/* RFC 2033 4.2: one reply per accepted recipient, in RCPT order. */
static void
on_lmtp_dot_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	size_t	 i;

	for (i = 0; i < c->msg->nrcpts; i++)
		if ((c->rst[i] & (RS_ACCEPTED | RS_FINAL)) == RS_ACCEPTED) {
			set_rcpt_reply(c, i, r);
			break;
		}
	for (; i < c->msg->nrcpts; i++)
		if ((c->rst[i] & (RS_ACCEPTED | RS_FINAL)) == RS_ACCEPTED) {
			expect(c, CS_DOT, c->p.timeouts.data_end);
			return;		/* more replies are due */
		}
	c->nmsgs++;
	tx_end(c);
}

static void
on_dot_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	size_t	 i;

	if (c->p.lmtp) {
		on_lmtp_dot_reply(c, r);
		return;
	}
	for (i = 0; i < c->msg->nrcpts; i++)
		if ((c->rst[i] & (RS_ACCEPTED | RS_FINAL)) == RS_ACCEPTED)
			set_rcpt_reply(c, i, r);
	c->nmsgs++;
	tx_end(c);
}

static void
on_dot_ignore_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	(void)r;
	c->need_rset = 1;
	tx_end(c);
}

static void
send_quit(struct smtp_client *c)
{
	if (send_cmd(c, "QUIT") == 0)
		expect(c, CS_QUIT, c->p.timeouts.quit);
}

static void
on_quit_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	(void)r;
	client_done(c, SMTP_CONN_OK, "");
}

/* ---- the message body ---- */

/* LF-ended text to CRLF with dot-stuffing; a bare CR is a line end. */
static int
body_encode(struct smtp_client *c, struct evbuffer *out, const char *p,
    size_t n)
{
	char	*e = c->ebuf;
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (c->cr) {
			*e++ = '\r';
			*e++ = '\n';
			c->cr = 0;
			c->bol = 1;
			if (p[i] == '\n')
				continue;	/* that was a CRLF */
		}
		if (p[i] == '\r') {
			c->cr = 1;
			continue;
		}
		if (p[i] == '\n') {
			*e++ = '\r';
			*e++ = '\n';
			c->bol = 1;
			continue;
		}
		if (c->bol && p[i] == '.')
			*e++ = '.';
		*e++ = p[i];
		c->bol = 0;
	}
	return evbuffer_add(out, c->ebuf, (size_t)(e - c->ebuf));
}

/* Terminate the last line if needed, then CRLF.CRLF (P6). */
static void
body_end(struct smtp_client *c, struct evbuffer *out)
{
	struct timeval	 rt, wt;
	int		 r = 0;

	if (c->cr || !c->bol)
		r = evbuffer_add(out, "\r\n", 2);
	if (r == -1 || evbuffer_add(out, ".\r\n", 3) == -1) {
		client_fail(c, CE_LOCAL, "out of memory");
		return;
	}
	c->state = CS_DOT;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, ms_tv(&rt, c->p.timeouts.data_end),
	    ms_tv(&wt, c->p.timeouts.data_block));
}

/* Encode more of the message while the output is short. */
static void
body_fill(struct smtp_client *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	const char	*p;
	ssize_t		 n;

	while (c->state == CS_BODY && evbuffer_get_length(out) < BODY_HIWAT) {
		if (c->hdr_off < c->msg->headerslen) {
			n = (ssize_t)(c->msg->headerslen - c->hdr_off);
			if (n > BODY_CHUNK)
				n = BODY_CHUNK;
			p = c->msg->headers + c->hdr_off;
			c->hdr_off += (size_t)n;
		} else {
			n = pread(c->msg->fd, c->rbuf, sizeof(c->rbuf), c->off);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1) {
				/* drop the connection: no dot after a
				 * message we could not read whole */
				client_fail(c, CE_LOCAL, strerror(errno));
				return;
			}
			if (n == 0) {
				body_end(c, out);
				return;
			}
			p = c->rbuf;
			c->off += n;
		}
		if (body_encode(c, out, p, (size_t)n) == -1) {
			client_fail(c, CE_LOCAL, "out of memory");
			return;
		}
	}
}

static void
body_start(struct smtp_client *c)
{
	struct timeval	 tv;

	c->hdr_off = 0;
	c->off = (off_t)c->msg->offset;
	c->bol = 1;
	c->cr = 0;
	c->state = CS_BODY;
	/* no reply is due while we write: only writes are timed */
	bufferevent_set_timeouts(c->bev, NULL,
	    ms_tv(&tv, c->p.timeouts.data_block));
	bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOWAT, 0);
	body_fill(c);
}

/* ---- libevent glue ---- */

static void (*const on_reply[])(struct smtp_client *,
    const struct smtp_reply *) = {
	[CS_BANNER] = on_banner_reply,
	[CS_EHLO] = on_ehlo_reply,
	[CS_HELO] = on_helo_reply,
	[CS_STARTTLS] = on_starttls_reply,
	[CS_AUTH_LOGIN] = on_auth_login_reply,
	[CS_AUTH_USER] = on_auth_login_reply,
	[CS_AUTH] = on_auth_reply,
	[CS_RSET] = on_rset_reply,
	[CS_MAIL] = on_mail_reply,
	[CS_RCPT] = on_rcpt_reply,
	[CS_DATA] = on_data_reply,
	[CS_DOT] = on_dot_reply,
	[CS_DOT_IGNORE] = on_dot_ignore_reply,
	[CS_QUIT] = on_quit_reply,
};

/* A complete reply: 421 ends everything, else the awaited handler. */
static void
handle_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	char	 text[SMTP_CLIENT_TEXT_MAX];

	smtp_reply_format(r, text, sizeof(text));
	log_debug("%s: <<< %s", c->log_id, text);
	if (c->state == CS_QUIT) {
		on_quit_reply(c, r);
		return;
	}
	if (r->code == 421) {
		client_fail(c, CE_REPLY, text);
		return;
	}
	if (c->state >= sizeof(on_reply) / sizeof(on_reply[0]) ||
	    on_reply[c->state] == NULL) {
		client_fail(c, CE_PROTOCOL, "unexpected reply");
		return;
	}
	on_reply[c->state](c, r);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_client	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_iovec	 v;
	size_t			 used;

	c->busy++;
	/* the banner can be read before the connect event is reported */
	if (c->state == CS_CONNECT)
		expect(c, CS_BANNER, c->p.timeouts.banner);
	/* stop when the client ends or STARTTLS replaced the bufferevent */
	while (c->state != CS_DONE && c->bev == bev &&
	    evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		used = smtp_reply_feed(&c->rp, v.iov_base, v.iov_len);
		evbuffer_drain(in, used);
		if (c->rp.state == SMTP_R_ERROR) {
			if (c->state == CS_QUIT)
				client_done(c, SMTP_CONN_OK, "");
			else
				client_fail(c, CE_PROTOCOL,
				    smtp_reply_strerror(c->rp.err));
			break;
		}
		if (c->rp.state == SMTP_R_DONE) {
			handle_reply(c, &c->rp.reply);
			smtp_reply_reset(&c->rp);
		}
	}
	leave(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_client	*c = arg;

	(void)bev;
	c->busy++;
	if (c->state == CS_BODY)
		body_fill(c);
	leave(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client	*c = arg;
	char			 buf[256];

	(void)bev;
	c->busy++;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_CONNECT)
			expect(c, CS_BANNER, c->p.timeouts.banner);
		else if (c->state == CS_TLS) {
			c->tls = 1;
			send_ehlo(c);	/* RFC 3207: start over */
		}
	} else if (c->state == CS_QUIT)
		client_done(c, SMTP_CONN_OK, "");
	else if (c->state == CS_TLS)
		client_fail(c, CE_TLS_FAILED, what & BEV_EVENT_TIMEOUT ?
		    "timeout" : tls_error(c, buf, sizeof(buf)));
	else if (what & BEV_EVENT_TIMEOUT)
		client_fail(c, CE_TIMEOUT, NULL);
	else if (c->state == CS_CONNECT)
		client_fail(c, CE_CONNECT, strerror(EVUTIL_SOCKET_ERROR()));
	else if (what & BEV_EVENT_EOF)
		client_fail(c, CE_DROPPED, NULL);
	else
		client_fail(c, CE_DROPPED, strerror(EVUTIL_SOCKET_ERROR()));
	leave(c);
}

static void
on_kick(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_client	*c = arg;

	(void)fd;
	(void)ev;
	c->busy++;
	if (c->state == CS_INIT)
		client_connect(c);
	else if (c->state == CS_READY) {
		struct timeval tv;
		if (c->next) {
			c->idling = 0;
			tx_start(c);
		} else if (c->p.idle_ms && !c->idling) {
			c->idling = 1;	/* the connection cache */
			evtimer_add(c->kick, ms_tv(&tv, c->p.idle_ms));
		} else
			send_quit(c);
	}
	leave(c);
}
