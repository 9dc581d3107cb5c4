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

static const struct ipc_handler lookup_handlers[] = {
	{ SMTP_RCPT_RESULT, smtpd_on_rcpt_result },
	{ 0, NULL }
};

static const struct ipc_handler queue_handlers[] = {
	{ SMTP_MSG_OPENED, smtpd_on_opened },
	{ SMTP_MSG_COMMITTED, smtpd_on_committed },
	{ 0, NULL }
};

/* A peer died: fail what sessions were waiting for from it. */
static void
smtpd_peer_down(struct proc *p, enum ipc_role r)
{
	struct smtp_session	*s, *next;

	(void)p;
	for (s = TAILQ_FIRST(&smtpd.sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if ((r == ROLE_LOOKUP && s->wait == SMTP_W_RCPT) ||
		    (r == ROLE_QUEUE && s->wait != SMTP_W_RCPT)) {
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
	(void)p;
	log_info("configuration reloaded");
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
	p->on_shutdown = smtpd_shutdown;
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
