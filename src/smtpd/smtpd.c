/*
 * smtpd - the smtp process: accepts connections on the listeners the master
 * opened, runs sessions, and routes answers from the queue and lookup
 * processes back to the session that asked (request id = session id).
 *
 * Runs unprivileged; when started as root it is chrooted into an empty
 * directory, so it cannot open the spool or the database (P4). It never
 * holds database credentials.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "smtpd.h"

#define SESSION_BUCKETS	1024

struct smtpd		 smtpd;
static LIST_HEAD(, smtp_session) buckets[SESSION_BUCKETS];
static struct event	*accept_ev[CONFIG_LISTEN_MAX + 1];
static size_t		 naccept;
static int		 accepting;	/* 1: listening, -1: shutting down */

void
smtpd_session_register(struct smtp_session *s)
{
	LIST_INSERT_HEAD(&buckets[s->id % SESSION_BUCKETS], s, hash);
	TAILQ_INSERT_TAIL(&smtpd.sessions, s, entry);
	smtpd.nsessions++;
}

void
smtpd_session_unregister(struct smtp_session *s)
{
	LIST_REMOVE(s, hash);
	TAILQ_REMOVE(&smtpd.sessions, s, entry);
	smtpd.nsessions--;
}

static struct smtp_session *
smtpd_session_find(uint32_t id)
{
	struct smtp_session	*s;

	LIST_FOREACH(s, &buckets[id % SESSION_BUCKETS], hash)
		if (s->id == id)
			return s;
	return NULL;
}

int
smtpd_request(struct smtp_session *s, int peer, uint16_t type,
    const struct buf *b)
{
	return ipc_send_buf(smtpd.proc->peer[peer], type, s->id, -1, b);
}

static void
smtpd_on_accept(int lfd, short ev, void *arg)
{
	const struct listener	*l = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 fd, n;

	(void)ev;
	for (n = 0; n < 64; n++) {
		sslen = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ECONNABORTED && errno != EINTR)
				log_warn("accept on %s", l->name);
			return;
		}
		smtp_session_new(fd, l, (struct sockaddr *)&ss, sslen);
	}
}

/* ---- answers from the lookup and queue processes ---- */

static struct smtp_session *
smtpd_answer_session(struct ipc_msg *m, enum smtp_wait want)
{
	struct smtp_session	*s = smtpd_session_find(m->id);

	if (s == NULL || (s->wait != want &&
	    !(want == SMTP_W_OPEN && s->wait == SMTP_W_OPEN_BDAT))) {
		if (m->fd != -1)
			close(m->fd);
		return NULL;	/* the session is gone; the queue cleans up */
	}
	return s;
}

static void
smtpd_on_rcpt_result(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct smtp_session	*s;
	struct ipc_rd		 rd;
	uint32_t		 res;

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, m);
	res = ipc_get_u32(&rd);
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad SMTP_RCPT_RESULT");
		res = LOOKUP_TEMPFAIL;
	}
	if ((s = smtpd_answer_session(m, SMTP_W_RCPT)) == NULL)
		return;
	s->wait = SMTP_W_NONE;
	smtp_rcpt_answer(s, res);
	smtp_answered(s);
}

static void
smtpd_on_opened(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct smtp_session	*s;
	struct ipc_rd		 rd;
	uint32_t		 ok;
	char			 id[QUEUE_ID_LEN + 1];

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, m);
	ok = ipc_get_u32(&rd);
	ipc_get_str(&rd, id, sizeof(id));
	if (ipc_get_end(&rd) == -1 || (ok && (m->fd == -1 ||
	    !queue_id_valid(id)))) {
		log_warnx("bad SMTP_MSG_OPENED");
		ok = 0;
	}
	if ((s = smtpd_answer_session(m, SMTP_W_OPEN)) == NULL) {
		if (ok && queue_id_valid(id)) {
			/* nobody wants it any more: give it back */
			struct buf b;
			buf_init(&b, 64);
			ipc_put_str(&b, id);
			ipc_send_buf(smtpd.proc->peer[ROLE_QUEUE],
			    QUEUE_MSG_ABORT, 0, -1, &b);
			buf_free(&b);
		}
		return;
	}
	if (s->state == SMTP_S_CLOSING) {
		s->wait = SMTP_W_NONE;
		if (m->fd != -1)
			close(m->fd);
		if (ok) {
			snprintf(s->qid, sizeof(s->qid), "%s", id);
		}
		smtp_answered(s);
		return;
	}
	smtp_open_answer(s, ok != 0, id, ok ? m->fd : -1);
	if (!ok && m->fd != -1)
		close(m->fd);
	smtp_answered(s);
}

static void
smtpd_on_committed(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct smtp_session	*s;
	struct ipc_rd		 rd;
	uint32_t		 res;
	char			 text[512];

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, m);
	res = ipc_get_u32(&rd);
	ipc_get_str(&rd, text, sizeof(text));
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad SMTP_MSG_COMMITTED");
		res = 1;
		text[0] = '\0';
	}
	if ((s = smtpd_answer_session(m, SMTP_W_COMMIT)) == NULL)
		return;
	smtp_commit_answer(s, res, text);
	smtp_answered(s);
}

/* SMTP_AUTH_RESULT and SMTP_SENDER_RESULT: u32 auth_res; str */
static void
smtpd_on_auth_result(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct smtp_session	*s;
	struct ipc_rd		 rd;
	uint32_t		 res;
	char			 text[SASL_ID_MAX + 1 > ADDR_STR_MAX + 1 ?
				    SASL_ID_MAX + 1 : ADDR_STR_MAX + 1];
	int			 auth = m->type == SMTP_AUTH_RESULT;

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, m);
	res = ipc_get_u32(&rd);
	ipc_get_str(&rd, text, sizeof(text));
	if (ipc_get_end(&rd) == -1 || res > AUTH_TEMPFAIL) {
		log_warnx("bad %s", ipc_type_name(m->type));
		res = AUTH_TEMPFAIL;
		text[0] = '\0';
	}
	if ((s = smtpd_session_find(m->id)) == NULL ||
	    (auth && s->wait != SMTP_W_AUTH) || (!auth &&
	    s->wait != SMTP_W_SENDER && s->wait != SMTP_W_FROM_HDR))
		return;		/* the session is gone */
	if (s->state == SMTP_S_CLOSING) {
		s->wait = SMTP_W_NONE;
		smtp_answered(s);
		return;
	}
	if (auth)
		smtp_auth_answer(s, res, text);
	else
		smtp_sender_answer(s, res, text);
	smtp_answered(s);
}

static const struct ipc_handler lookup_handlers[] = {
	{ SMTP_RCPT_RESULT, smtpd_on_rcpt_result },
	{ SMTP_AUTH_RESULT, smtpd_on_auth_result },
	{ SMTP_SENDER_RESULT, smtpd_on_auth_result },
	{ 0, NULL }
};

static const struct ipc_handler queue_handlers[] = {
	{ SMTP_MSG_OPENED, smtpd_on_opened },
	{ SMTP_MSG_COMMITTED, smtpd_on_committed },
	{ 0, NULL }
};

/* Which process a session waits for, -1 none. */
static int
smtp_wait_peer(enum smtp_wait w)
{
	switch (w) {
	case SMTP_W_RCPT:
	case SMTP_W_AUTH:
	case SMTP_W_SENDER:
	case SMTP_W_FROM_HDR:
		return ROLE_LOOKUP;
	case SMTP_W_OPEN:
	case SMTP_W_OPEN_BDAT:
	case SMTP_W_COMMIT:
		return ROLE_QUEUE;
	case SMTP_W_NONE:
	case SMTP_W_AUTH_DELAY:
	case SMTP_W_DNSBL:
	case SMTP_W_MILTER:
	case SMTP_W_VERIFY:
		break;
	}
	return -1;
}

/* A peer died: fail what sessions were waiting for from it. */
static void
smtpd_peer_down(struct proc *p, enum ipc_role r)
{
	struct smtp_session	*s, *next;

	(void)p;
	for (s = TAILQ_FIRST(&smtpd.sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (smtp_wait_peer(s->wait) == (int)r) {
			smtp_peer_lost(s, r);
		}
		if (r == ROLE_QUEUE && s->qid[0]) {
			/* its data file belongs to a dead queue process */
			s->qid[0] = '\0';
			s->tx_failed = 1;
		}
	}
}

/* proc.c has loaded the new config into p->conf already. */
static void
smtpd_reload(struct proc *p)
{
	smtp_policy_reload(p);
	log_info("configuration reloaded");
}

#define TLS_FILE_MAX	(1024 * 1024)	/* a PEM file we read */

/* read an open file (closed here) into b; -1 on error or too big */
static int
smtpd_read_fd(int fd, struct buf *b)
{
	char	 chunk[8192];
	ssize_t	 n;

	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (b->len + (size_t)n > TLS_FILE_MAX ||
		    buf_add(b, chunk, (size_t)n) == -1) {
			n = -1;
			break;
		}
	}
	close(fd);
	return n == 0 ? 0 : -1;
}

/*
 * SIGHUP: the master (root) opened the certificate and the key for us,
 * chrooted and unprivileged as we are. A pair that does not load leaves
 * the running one in use; sessions under way keep theirs.
 */
static struct buf	 tls_cert_pem;
static int		 tls_cert_ok;

static void
smtpd_tls_file(struct proc *p, uint32_t which, int fd)
{
	struct buf		 key;
	struct ssl_ctx_st	*ctx;

	(void)p;
	if (which == 0) {
		buf_free(&tls_cert_pem);
		buf_init(&tls_cert_pem, 8192);
		tls_cert_ok = smtpd_read_fd(fd, &tls_cert_pem) == 0;
		return;
	}
	buf_init(&key, 4096);
	if (!tls_cert_ok || smtpd_read_fd(fd, &key) == -1)
		log_warnx("TLS: cannot read the certificate or key, keeping "
		    "the running ones");
	else if ((ctx = tls_server_ctx_mem(tls_cert_pem.data,
	    tls_cert_pem.len, key.data, key.len)) == NULL)
		log_warnx("TLS: the new certificate and key do not load, "
		    "keeping the running ones");
	else {
		if (smtpd.tls_ctx)
			SSL_CTX_free(smtpd.tls_ctx);
		smtpd.tls_ctx = ctx;
		log_info("TLS: certificate and key reloaded");
	}
	if (key.data)
		explicit_bzero(key.data, key.cap);
	buf_free(&key);
	buf_free(&tls_cert_pem);
	tls_cert_ok = 0;
}

/*
 * Accept only once the lookup and queue processes are connected: a client
 * that gets our banner must not get 451s because we are still starting.
 * A peer that dies later is restarted; meanwhile requests fail with 4xx.
 */
static void
smtpd_peer_up(struct proc *p, enum ipc_role r)
{
	(void)r;
	if (accepting != 0 || p->peer[ROLE_LOOKUP] == NULL ||
	    p->peer[ROLE_QUEUE] == NULL)
		return;
	for (size_t i = 0; i < naccept; i++)
		if (event_add(accept_ev[i], NULL) == -1)
			log_fatalx("listener event");
	accepting = 1;
}

static void
smtpd_shutdown(struct proc *p)
{
	(void)p;
	for (size_t i = 0; i < naccept; i++)
		event_del(accept_ev[i]);
	accepting = -1;
}

int
smtpd_main(struct proc *p, struct listener *ls, size_t nls)
{
	size_t	 i;

	memset(&smtpd, 0, sizeof(smtpd));
	TAILQ_INIT(&smtpd.sessions);
	smtpd.proc = p;
	smtpd.conf = p->conf;
	if (p->conf->tls_cert[0] &&
	    (smtpd.tls_ctx = tls_server_ctx(p->conf->tls_cert,
	    p->conf->tls_key)) == NULL)
		log_fatalx("TLS: cannot load %s / %s", p->conf->tls_cert,
		    p->conf->tls_key);
	smtp_policy_init(p);	/* its resolver reads resolv.conf */
	{
		/* P4: no spool, no database, no root from here on */
		char empty[PATH_MAX + 8];
		snprintf(empty, sizeof(empty), "%s/empty", p->conf->spool);
		if (privsep_drop(p->conf->user, empty) == -1)
			log_fatalx("cannot drop privileges");
	}
	p->handlers[ROLE_LOOKUP] = lookup_handlers;
	p->handlers[ROLE_QUEUE] = queue_handlers;
	p->on_peer_up = smtpd_peer_up;
	p->on_peer_down = smtpd_peer_down;
	p->on_reload = smtpd_reload;
	p->on_tls_file = smtpd_tls_file;
	p->on_shutdown = smtpd_shutdown;
	if ((smtpd.authlimit = authlimit_new(AUTHLIMIT_MAX)) == NULL)
		log_fatalx("out of memory");
	for (i = 0; i < nls; i++) {
		accept_ev[naccept] = event_new(p->base, ls[i].fd,
		    EV_READ | EV_PERSIST, smtpd_on_accept, &ls[i]);
		if (accept_ev[naccept] == NULL)
			log_fatalx("listener event");
		naccept++;
	}
	smtpd_peer_up(p, ROLE_MASTER);	/* in case both are there already */
	return proc_run(p);
}
