/*
 * queue - the queue process.
 *
 * queue-in: the smtp process asks for a data file (QUEUE_MSG_OPEN: we create
 * data/<id> and pass it a descriptor), writes the message into it, and asks
 * for a commit. Commits that arrive in one pass of the event loop form a
 * batch: envelopes written, one syncfs, renames into data/ and incoming/,
 * the directories fsync'ed, and only then the answers that make the smtp
 * process say 250 (P1, group commit).
 *
 * Then each message is scanned (scanner.c), its recipients resolved by the
 * lookup process and handed to the delivery process. When every recipient
 * has an outcome for this pass, the message is removed (all done) or its
 * envelope is stored in outgoing/ with the deferred recipients and retried
 * later; bounced recipients get one DSN (bounce.c).
 *
 * The queue files are documented as a table of states in docs/queue.md.
 */
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "queue.h"
#include "sluiced.h"
#include "srs.h"
#include "mask.h"
#include "maskq.h"

#define QBUCKETS	4096

/* a message being received: between QUEUE_MSG_OPEN and the commit */
struct qopen {
	LIST_ENTRY(qopen)	 entry;
	TAILQ_ENTRY(qopen)	 batch;
	uint32_t		 session;	/* 0: internal (bounce, maildrop) */
	int			 fd;
	char			 maildrop[256];	/* imported from this file */
	int			 failed;	/* this commit did not happen */
	struct qmsg		*parent;	/* a DSN: the bounced message */
	size_t			 parent_rcpt;	/* a mask copy: for this one */
	struct envelope		 env;
};

/* a request in flight to the lookup or delivery process */
struct qreq {
	LIST_ENTRY(qreq)	 entry;
	uint32_t		 id;
	enum ipc_role		 peer;
	struct qmsg		*m;
	size_t			 rcpt;		/* a lookup: its recipient */
	size_t			 rcpts[DELIVER_RCPTS_MAX];	/* a delivery */
	size_t			 nrcpts;
	struct qtarget		*targets;	/* an expansion, as it comes */
	size_t			 ntargets, captargets;
};

/* qreq.rcpt of the lookup that asks whether the sender's domain is ours */
#define QREQ_SENDER	SIZE_MAX

/* one target of an alias expansion, from QUEUE_RCPT_TARGETS */
struct qtarget {
	enum rcpt_via	 via;
	char		 addr[ADDR_STR_MAX + 1];
	char		*target;
	unsigned	 owner;
	char		 ext[ADDR_LOCAL_MAX + 1];
};

struct spool			 queue_spool;
static struct proc		*qp;
static LIST_HEAD(, qopen)	 opens;
static TAILQ_HEAD(, qopen)	 batch = TAILQ_HEAD_INITIALIZER(batch);
static LIST_HEAD(, qmsg)	 msgs[QBUCKETS];
static TAILQ_HEAD(, qmsg)	 deferred = TAILQ_HEAD_INITIALIZER(deferred);
static LIST_HEAD(, qreq)	 reqs;
static uint32_t			 next_req;
static struct event		*ev_flush, *ev_retry;
static int			 started;

typedef void (*dir_fn)(const char *name);
static void	dir_walk(int, dir_fn);
static void	qmsg_start(struct qmsg *);
static void	qmsg_done(struct qmsg *);
static void	qmsg_finish(struct qmsg *);
static void	qmsg_dsn_done(struct qmsg *, int);
static void	qmsg_mask_done(struct qmsg *, size_t, const char *);
static void	queue_on_retry(int, short, void *);
static void	qmsg_idle(struct qmsg *);
static void	qmsg_unidle(struct qmsg *);
static time_t	wake_at;	/* when ev_retry fires; 0: not armed */
static void	queue_recover(void);
struct lmtp_dest;
static void	qmsg_send_chunk_to(struct qmsg *, enum ipc_role, const char *,
		    const struct route *, const char *, const size_t *, size_t,
		    const struct lmtp_dest *);
static void	qmsg_send_local(struct qmsg *, const size_t *, size_t);
static void	qmsg_sequence_next(struct qmsg *, size_t, int);

double
queue_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned
qhash(const char *id)
{
	unsigned	 h = 5381;

	while (*id)
		h = h * 33 + (unsigned char)*id++;
	return h % QBUCKETS;
}

struct qmsg *
qmsg_find(const char *id)
{
	struct qmsg	*m;

	LIST_FOREACH(m, &msgs[qhash(id)], hash)
		if (strcmp(m->env.id, id) == 0)
			return m;
	return NULL;
}

static struct qmsg *
qmsg_new(struct envelope *env, enum qwhere where)
{
	struct qmsg	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->env = *env;		/* takes over the allocations */
	envelope_init(env);
	m->where = where;
	m->datafd = -1;
	LIST_INSERT_HEAD(&msgs[qhash(m->env.id)], m, hash);
	return m;
}

static void
qmsg_free(struct qmsg *m)
{
	LIST_REMOVE(m, hash);
	if (m->datafd != -1)
		close(m->datafd);
	envelope_free(&m->env);
	free(m->fresh);
	free(m->mbox);
	free(m->dto);
	free(m);
}

static struct qopen *
qopen_find(const char *id)
{
	struct qopen	*o;

	LIST_FOREACH(o, &opens, entry)
		if (strcmp(o->env.id, id) == 0)
			return o;
	return NULL;
}

static void
qopen_free(struct qopen *o, int unlink_data)
{
	if (unlink_data)
		unlinkat(queue_spool.data, o->env.id, 0);
	if (o->fd != -1)
		close(o->fd);
	envelope_free(&o->env);
	free(o);
}

/* ---- queue-in ---- */

/* Is there room for another message? (452 rather than a failed write) */
static int
queue_has_room(void)
{
	struct statvfs	 sv;
	unsigned long long free_bytes;

	if (fstatvfs(queue_spool.root, &sv) == -1)
		return 1;
	free_bytes = (unsigned long long)sv.f_bavail * sv.f_frsize;
	return free_bytes > qp->conf->max_message_size + 16 * 1024 * 1024;
}

static void
queue_on_open(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct qopen	*o;
	struct buf	 b;
	int		 sfd = -1;

	(void)arg;
	buf_init(&b, 256);
	if (m->fd != -1)
		close(m->fd);
	if (!queue_has_room() || (o = calloc(1, sizeof(*o))) == NULL)
		goto fail;
	envelope_init(&o->env);
	queue_id_new(o->env.id, sizeof(o->env.id));
	o->session = m->id;
	o->fd = openat(queue_spool.data, o->env.id,
	    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o->fd == -1 || (sfd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		log_warn("%s: cannot create data/%s", o->env.id, o->env.id);
		qopen_free(o, o->fd != -1);
		goto fail;
	}
	LIST_INSERT_HEAD(&opens, o, entry);
	ipc_put_u32(&b, 1);
	ipc_put_str(&b, o->env.id);
	ipc_send_buf(c, SMTP_MSG_OPENED, m->id, sfd, &b);
	buf_free(&b);
	return;
fail:
	ipc_put_u32(&b, 0);
	ipc_put_str(&b, "");
	ipc_send_buf(c, SMTP_MSG_OPENED, m->id, -1, &b);
	buf_free(&b);
}

static void
queue_on_rcpt(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd	 rd;
	struct qopen	*o;
	char		 id[QUEUE_ID_LEN + 1], rcpt[ADDR_STR_MAX + 1];

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, id, sizeof(id));
	ipc_get_str(&rd, rcpt, sizeof(rcpt));
	if (ipc_get_end(&rd) == -1 || (o = qopen_find(id)) == NULL ||
	    o->session != m->id) {
		log_warnx("bad QUEUE_MSG_RCPT");
		return;
	}
	/* the same recipient twice gets the message once (XXX: quadratic) */
	for (size_t i = 0; i < o->env.nrcpts; i++)
		if (strcasecmp(o->env.rcpts[i].addr, rcpt) == 0)
			return;
	if (envelope_add_rcpt(&o->env, rcpt, rcpt) == -1)
		log_warnx("%s: cannot add recipient", id);
}

static void
queue_on_abort(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd	 rd;
	struct qopen	*o;
	char		 id[QUEUE_ID_LEN + 1];

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, id, sizeof(id));
	if (ipc_get_end(&rd) == -1 || (o = qopen_find(id)) == NULL)
		return;
	LIST_REMOVE(o, entry);
	qopen_free(o, 1);
}

static void
queue_commit_reply(struct qopen *o, int ok, const char *text)
{
	struct buf	 b;

	if (o->session == 0)
		return;
	buf_init(&b, 1024);
	ipc_put_u32(&b, ok ? 0 : 1);
	ipc_put_str(&b, text);
	ipc_send_buf(qp->peer[ROLE_SMTP], SMTP_MSG_COMMITTED, o->session, -1,
	    &b);
	buf_free(&b);
}

static void
queue_on_commit(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd		 rd;
	struct qopen		*o;
	struct envelope		 e;
	char			 id[QUEUE_ID_LEN + 1];
	const char		*mh;
	size_t			 mhlen = 0;

	(void)c;
	(void)arg;
	envelope_init(&e);
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, id, sizeof(id));
	ipc_get_str(&rd, e.from, sizeof(e.from));
	ipc_get_str(&rd, e.helo, sizeof(e.helo));
	ipc_get_str(&rd, e.client_addr, sizeof(e.client_addr));
	ipc_get_str(&rd, e.proto, sizeof(e.proto));
	ipc_get_str(&rd, e.tls, sizeof(e.tls));
	ipc_get_str(&rd, e.auth, sizeof(e.auth));
	/* ENV_F_HELD: a milter or DMARC quarantined it */
	e.flags = ipc_get_u32(&rd) & (ENV_F_LOCAL | ENV_F_SMTPUTF8 |
	    ENV_F_8BITMIME | ENV_F_HELD);
	e.size = ipc_get_u64(&rd);
	/* header lines added by milters: LF-ended lines, no CR or NUL */
	mh = ipc_get_mem(&rd, &mhlen);
	if (mh != NULL && mhlen > 0 && (memchr(mh, '\r', mhlen) ||
	    memchr(mh, '\0', mhlen) || mh[mhlen - 1] != '\n' ||
	    mh[0] == '\n' || memmem(mh, mhlen, "\n\n", 2) ||
	    buf_add(&e.hdrs, mh, mhlen) == -1))
		mh = NULL;
	if (mh == NULL || ipc_get_end(&rd) == -1 ||
	    (o = qopen_find(id)) == NULL || o->session != m->id) {
		log_warnx("bad QUEUE_MSG_COMMIT");
		envelope_free(&e);
		return;
	}
	LIST_REMOVE(o, entry);
	memcpy(e.id, o->env.id, sizeof(e.id));
	e.created = time(NULL);
	e.rcpts = o->env.rcpts;
	e.nrcpts = o->env.nrcpts;
	e.rcptcap = o->env.rcptcap;
	o->env.rcpts = NULL;
	o->env.nrcpts = o->env.rcptcap = 0;
	envelope_free(&o->env);
	o->env = e;
	TAILQ_INSERT_TAIL(&batch, o, batch);
	event_active(ev_flush, EV_TIMEOUT, 0);
}

/*
 * A message the queue made itself (bounce, maildrop, mask copy): commit it
 * too. A mask copy names the recipient of parent it stands for. -1: not
 * queued (no memory; the data file goes at the next start).
 */
static int
queue_commit_add(struct envelope *env, int datafd, const char *maildrop,
    struct qmsg *parent, size_t parent_rcpt)
{
	struct qopen	*o;

	if ((o = calloc(1, sizeof(*o))) == NULL) {
		log_warnx("%s: out of memory, data/%s removed at next start",
		    env->id, env->id);
		close(datafd);
		envelope_free(env);
		return -1;
	}
	o->env = *env;
	envelope_init(env);
	o->fd = datafd;
	o->session = 0;
	o->parent = parent;
	o->parent_rcpt = parent_rcpt;
	snprintf(o->maildrop, sizeof(o->maildrop), "%s", maildrop ? maildrop : "");
	TAILQ_INSERT_TAIL(&batch, o, batch);
	event_active(ev_flush, EV_TIMEOUT, 0);
	return 0;
}

void
queue_commit_internal(struct envelope *env, int datafd, const char *maildrop,
    struct qmsg *parent)
{
	queue_commit_add(env, datafd, maildrop, parent, SIZE_MAX);
}

/* Check and write one envelope of the batch; -1: refuse this one. */
static int
queue_commit_prepare(struct qopen *o)
{
	struct stat	 st;

	if (fstat(o->fd, &st) == -1 || (unsigned long long)st.st_size !=
	    o->env.size) {
		log_warnx("%s: data file size does not match (%lld != %llu)",
		    o->env.id, (long long)st.st_size, o->env.size);
		return -1;
	}
	if (o->env.nrcpts == 0) {
		log_warnx("%s: no recipients", o->env.id);
		return -1;
	}
	if (spool_env_write_tmp(&queue_spool, &o->env, 0) == -1) {
		log_warn("%s: cannot write envelope", o->env.id);
		return -1;
	}
	return 0;
}

/*
 * Group commit: envelopes written, one syncfs for the batch (the data
 * files and their names in data/ with it), the envelopes renamed into
 * incoming/ (the commit point), incoming/ fsync'ed, then the answers.
 */
static void
queue_flush(int fd, short ev, void *arg)
{
	TAILQ_HEAD(, qopen)	 todo = TAILQ_HEAD_INITIALIZER(todo);
	struct qopen		*o;
	struct qmsg		*m;
	int			 failed = 0;
	char			 name[QUEUE_ID_LEN + 8];

	(void)fd;
	(void)ev;
	(void)arg;
	TAILQ_CONCAT(&todo, &batch, batch);
	TAILQ_FOREACH(o, &todo, batch)
		o->failed = queue_commit_prepare(o) == -1;
	if (spool_sync(&queue_spool) == -1) {
		log_warn("syncfs on the spool");
		failed = 1;
	}
	TAILQ_FOREACH(o, &todo, batch) {
		if (failed || o->failed)
			continue;
		if (spool_env_install(&queue_spool, o->env.id,
		    queue_spool.incoming) == -1) {
			log_warn("%s: commit rename", o->env.id);
			o->failed = 1;
		}
	}
	if (!failed && fsync(queue_spool.incoming) == -1) {
		log_warn("fsync of incoming/");
		failed = 1;
	}
	while ((o = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, o, batch);
		if (failed || o->failed) {
			/* never acknowledged: nothing is lost by removing it */
			snprintf(name, sizeof(name), "%s.env", o->env.id);
			unlinkat(queue_spool.tmp, name, 0);
			unlinkat(queue_spool.incoming, o->env.id, 0);
			unlinkat(queue_spool.data, o->env.id, 0);
			queue_commit_reply(o, 0, "451 4.3.0 Queue write error, "
			    "try again later");
			if (o->parent && o->parent_rcpt != SIZE_MAX)
				qmsg_mask_done(o->parent, o->parent_rcpt, NULL);
			else if (o->parent)
				qmsg_dsn_done(o->parent, 0);
			qopen_free(o, 1);
			continue;
		}
		if (o->parent && o->parent_rcpt != SIZE_MAX)
			qmsg_mask_done(o->parent, o->parent_rcpt, o->env.id);
		else if (o->parent)
			qmsg_dsn_done(o->parent, 1);
		queue_commit_reply(o, 1, "");
		log_info("%s: queued from=<%s> size=%llu nrcpt=%zu proto=%s "
		    "client=%s%s%s", o->env.id, o->env.from, o->env.size,
		    o->env.nrcpts, o->env.proto, o->env.client_addr,
		    o->env.auth[0] ? " auth=" : "", o->env.auth);
		if (o->maildrop[0] &&
		    unlinkat(queue_spool.maildrop, o->maildrop, 0) == -1)
			log_warn("%s: cannot remove maildrop/%s", o->env.id,
			    o->maildrop);
		if (o->env.flags & ENV_F_HELD)
			log_info("%s: held (quarantined by a milter or DMARC), "
			    "sluice queue release %s delivers it", o->env.id,
			    o->env.id);
		if ((m = qmsg_new(&o->env, Q_INCOMING)) != NULL) {
			/* held: scanned and delivered after a release */
			if (started && !(m->env.flags & ENV_F_HELD))
				qmsg_start(m);
			else
				qmsg_idle(m);
		}
		qopen_free(o, 0);
	}
}

/* ---- scanning and delivery ---- */

static struct qreq *
qreq_new(struct qmsg *m, size_t rcpt, enum ipc_role peer)
{
	struct qreq	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->id = ++next_req ? next_req : ++next_req;
	r->m = m;
	r->rcpt = rcpt;
	r->peer = peer;
	LIST_INSERT_HEAD(&reqs, r, entry);
	m->outstanding++;
	return r;
}

static struct qreq *
qreq_take(uint32_t id, enum ipc_role peer)
{
	struct qreq	*r;

	LIST_FOREACH(r, &reqs, entry)
		if (r->id == id && r->peer == peer) {
			LIST_REMOVE(r, entry);
			return r;
		}
	return NULL;
}

/* The per-recipient arrays cover every recipient (expansions add some). */
static int
qmsg_fit(struct qmsg *m)
{
	size_t		 n = m->env.nrcpts;
	struct qmbox	*mb;
	unsigned char	*f;

	if (m->mbox != NULL && m->nmbox >= n)
		return 0;
	if ((mb = reallocarray(m->mbox, n, sizeof(*mb))) == NULL)
		return -1;
	memset(mb + m->nmbox, 0, (n - m->nmbox) * sizeof(*mb));
	m->mbox = mb;
	if (m->fresh != NULL) {
		if ((f = realloc(m->fresh, n)) == NULL)
			return -1;
		memset(f + m->nmbox, 0, n - m->nmbox);
		m->fresh = f;
	}
	m->nmbox = n;
	return 0;
}

/*
 * A relayed copy of the masked relay (its sender is our VERP address
 * bounce-…@MASK-DOMAIN) was delivered: the lookup process restarts the
 * bounce count of the real address it went to. Best effort, no answer:
 * a lost notice only leaves the count where it was.
 */
static void
queue_mask_delivered(const struct qmsg *m)
{
	const char	*at = strrchr(m->env.from, '@');
	struct buf	 b;

	if (at == NULL || qp->conf->mask_domain[0] == '\0' ||
	    strcasecmp(at + 1, qp->conf->mask_domain) != 0 ||
	    strncasecmp(m->env.from, "bounce-", 7) != 0)
		return;
	buf_init(&b, ADDR_STR_MAX + 16);
	ipc_put_str(&b, m->env.from);
	if (ipc_send_buf(qp->peer[ROLE_LOOKUP], LOOKUP_MASK_DELIVERED, 0, -1,
	    &b) == -1)
		log_warnx("%s: mask: lookup process unavailable, bounce count "
		    "not reset", m->env.id);
	buf_free(&b);
}

static void
rcpt_outcome(struct qmsg *m, size_t i, enum rcpt_state st, const char *relay,
    const char *text)
{
	struct env_rcpt	*r = &m->env.rcpts[i];

	r->state = st;
	if (st == RCPT_DELIVERED)
		r->error[0] = '\0';
	else
		log_sanitize(r->error, sizeof(r->error), text, strlen(text));
	if (st == RCPT_BOUNCED) {
		if (m->fresh == NULL)
			m->fresh = calloc(m->nmbox ? m->nmbox : m->env.nrcpts,
			    1);
		if (m->fresh)
			m->fresh[i] = 1;
		m->newly_bounced = 1;
	}
	if (st == RCPT_DELIVERED)
		queue_mask_delivered(m);
	log_info("%s: to=<%s>%s%s%s relay=%s delay=%.2f status=%s (%s)",
	    m->env.id, r->addr, strcmp(r->orig, r->addr) ? " orig_to=<" : "",
	    strcmp(r->orig, r->addr) ? r->orig : "",
	    strcmp(r->orig, r->addr) ? ">" : "", relay,
	    queue_now() - (double)m->env.created,
	    st == RCPT_DELIVERED ? "sent" : st == RCPT_BOUNCED ? "bounced" :
	    st == RCPT_EXPANDED ? "expanded" : "deferred",
	    st == RCPT_DELIVERED ? (text && text[0] ? text : "delivered") :
	    r->error);
}

static void
qreq_finish(struct qreq *r)
{
	struct qmsg	*m = r->m;

	free(r);
	if (--m->outstanding == 0)
		qmsg_done(m);
}

/*
 * Send up to DELIVER_RCPTS_MAX recipients in one request with the data
 * file: local ones to the deliver process (DELIVER_MAILDIR, with their
 * mailboxes), those of one other domain to the relay (DELIVER_SMTP).
 */
static void
qmsg_send_chunk(struct qmsg *m, enum ipc_role peer, const char *domain,
    const struct route *rt, const char *srs, const size_t *idx, size_t n)
{
	qmsg_send_chunk_to(m, peer, domain, rt, srs, idx, n, NULL);
}

/* mailbox-transport lmtp:..., read once per delivery */
struct lmtp_dest {
	int	 kind;		/* MBOX_LMTP_UNIX or MBOX_LMTP_INET */
	char	 host[128], port[16];
};

/* as qmsg_send_chunk(); lmtp: local recipients to the relay over LMTP */
static void
qmsg_send_chunk_to(struct qmsg *m, enum ipc_role peer, const char *domain,
    const struct route *rt, const char *srs, const size_t *idx, size_t n,
    const struct lmtp_dest *lmtp)
{
	struct qreq	*r;
	struct buf	 b;
	int		 fd;
	size_t		 i;
	char		 addr[ADDR_STR_MAX + 1];

	if ((r = qreq_new(m, 0, peer)) == NULL) {
		for (i = 0; i < n; i++)
			rcpt_outcome(m, idx[i], RCPT_DEFERRED, "none",
			    "4.3.0 out of memory");
		return;
	}
	memcpy(r->rcpts, idx, n * sizeof(*idx));
	r->nrcpts = n;
	buf_init(&b, IPC_FRAME_MAX);
	ipc_put_str(&b, m->env.id);
	/* a route may send as another address, never a bounce; forwarded
	   mail goes as its SRS address (qmsg_srs_class) */
	ipc_put_str(&b, rt && rt->rewrite_sender[0] && m->env.from[0] ?
	    rt->rewrite_sender : srs ? srs : m->env.from);
	if (srs)
		log_info("%s: from=<%s> srs=<%s> nrcpt=%zu", m->env.id,
		    m->env.from, srs, n);
	ipc_put_mem(&b, m->env.hdrs.data ? m->env.hdrs.data : "",
	    m->env.hdrs.len);
	if (peer == ROLE_RELAY) {
		ipc_put_u32(&b, m->env.flags);
		ipc_put_u64(&b, m->env.size + m->env.hdrs.len);
		ipc_put_str(&b, domain);
		/* the route: the relay needs no config of its own for it;
		   2 and 3: LMTP to a unix socket or to IP:PORT */
		ipc_put_u32(&b, lmtp ? (lmtp->kind == MBOX_LMTP_UNIX ? 2 : 3) :
		    rt && rt->kind == ROUTE_HOST);
		ipc_put_str(&b, lmtp ? lmtp->host : rt ? rt->host : "");
		ipc_put_str(&b, lmtp ? lmtp->port : rt ? rt->port : "");
		ipc_put_u32(&b, rt ? rt->tls : ROUTE_TLS_OPPORTUNISTIC);
		ipc_put_str(&b, rt ? rt->auth : "");
		ipc_put_str(&b, rt ? rt->rewrite_from : "");
	}
	ipc_put_u32(&b, (uint32_t)n);
	for (i = 0; i < n; i++) {
		/* LMTP: the account's address (the mailbox), as for Maildir */
		if (lmtp != NULL) {
			snprintf(addr, sizeof(addr), "%s@%s",
			    m->mbox[idx[i]].user, m->mbox[idx[i]].domain);
			ipc_put_str(&b, addr);
		} else
			ipc_put_str(&b, m->env.rcpts[idx[i]].addr);
		if (peer == ROLE_DELIVER) {
			ipc_put_str(&b, m->mbox[idx[i]].domain);
			ipc_put_str(&b, m->mbox[idx[i]].user);
		}
	}
	fd = fcntl(m->datafd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1 || ipc_send_buf(qp->peer[peer], peer == ROLE_RELAY ?
	    DELIVER_SMTP : DELIVER_MAILDIR, r->id, fd, &b) == -1) {
		LIST_REMOVE(r, entry);
		m->outstanding--;
		free(r);
		for (i = 0; i < n; i++)
			rcpt_outcome(m, idx[i], RCPT_DEFERRED, "none",
			    peer == ROLE_RELAY ? "4.3.0 relay process "
			    "unavailable" : "4.3.0 delivery process unavailable");
	}
	buf_free(&b);
}

#define ROUTE_DEFAULT	(-1)	/* no route matched: by MX */
#define ROUTE_NONE	(-2)	/* not for the relay, or waiting */

/* Which way each remote recipient goes now; ri[i] is a route index. */
static void
qmsg_route(struct qmsg *m, int *ri)
{
	const struct config	*c = qp->conf;
	const struct route	*rt;
	char			 why[256];
	int			 wait;

	for (size_t i = 0; i < m->env.nrcpts; i++) {
		ri[i] = ROUTE_NONE;
		if (!m->mbox[i].remote || m->mbox[i].later)
			continue;
		rt = route_select(c->routes, c->nroutes, online_has_source(),
		    online_state(), m->env.from, m->env.rcpts[i].addr, &wait);
		if (wait) {
			m->mbox[i].remote = 0;
			snprintf(why, sizeof(why), "4.4.0 waiting for a route "
			    "(online state %s)", online_state());
			rcpt_outcome(m, i, RCPT_WAITING, "none", why);
			continue;
		}
		ri[i] = rt ? (int)(rt - c->routes) : ROUTE_DEFAULT;
	}
}

static const char *
rcpt_domain(const struct qmsg *m, size_t i)
{
	const char	*at = strrchr(m->env.rcpts[i].addr, '@');

	return at ? at + 1 : "";
}

/* is the sender rewritten with SRS (srs.h) for the offsite target i? */
static int
qmsg_srs_wanted(const struct qmsg *m, size_t i)
{
	return qp->conf->nsrs_secrets > 0 && m->env.from[0] != '\0' &&
	    m->env.rcpts[i].via == VIA_REMOTE && !(m->env.flags & ENV_F_DOUBLE);
}

/*
 * The sender of each offsite recipient: cls[i] 1 for the SRS address
 * (into srs, made once), 0 for the envelope's; a recipient whose answer
 * is missing (the lookup of the sender's domain failed) is deferred.
 * A route's rewrite-sender wins over SRS.
 */
static void
qmsg_srs_class(struct qmsg *m, int *ri, unsigned char *cls, char *srs,
    size_t srslen)
{
	const struct config	*c = qp->conf;
	enum srs_res		 r = SRS_NOTSRS;
	int			 made = 0;

	for (size_t i = 0; i < m->env.nrcpts; i++) {
		cls[i] = 0;
		if (ri[i] == ROUTE_NONE || !qmsg_srs_wanted(m, i) ||
		    (ri[i] >= 0 && c->routes[ri[i]].rewrite_sender[0]) ||
		    m->srs_sender == QSRS_OURS)
			continue;
		if (m->srs_sender != QSRS_FOREIGN) {
			ri[i] = ROUTE_NONE;
			m->mbox[i].remote = 0;
			rcpt_outcome(m, i, RCPT_DEFERRED, "none", "4.3.0 "
			    "temporary failure looking up the sender's domain "
			    "(sender rewriting)");
			continue;
		}
		if (!made) {
			made = 1;
			r = srs_forward(c->srs_secrets[0], time(NULL),
			    m->env.from, config_srs_domain(c), srs, srslen);
			if (r != SRS_OK)
				log_info("%s: from=<%s> srs=none (%s: sent as "
				    "it is)", m->env.id, m->env.from,
				    srs_strres(r));
		}
		cls[i] = r == SRS_OK;
	}
}

/*
 * The remote recipients, one request per route and, for MX delivery, per
 * domain (and per 50), and per sender (SRS or not).
 */
static void
qmsg_relay_all(struct qmsg *m)
{
	size_t			 idx[DELIVER_RCPTS_MAX], n;
	const struct route	*rt;
	const char		*dom;
	int			*ri;
	unsigned char		*cls;
	char			 srs[ADDR_STR_MAX + 1];

	if ((ri = calloc(m->env.nrcpts, sizeof(*ri))) == NULL ||
	    (cls = calloc(m->env.nrcpts, 1)) == NULL) {
		free(ri);
		for (size_t i = 0; i < m->env.nrcpts; i++)
			if (m->mbox[i].remote && !m->mbox[i].later) {
				m->mbox[i].remote = 0;
				rcpt_outcome(m, i, RCPT_DEFERRED, "none",
				    "4.3.0 out of memory");
			}
		return;
	}
	qmsg_route(m, ri);
	qmsg_srs_class(m, ri, cls, srs, sizeof(srs));
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		if (ri[i] == ROUTE_NONE)
			continue;
		rt = ri[i] >= 0 ? &qp->conf->routes[ri[i]] : NULL;
		dom = rcpt_domain(m, i);
		n = 0;
		for (size_t k = i; k < m->env.nrcpts; k++) {
			if (ri[k] != ri[i] || cls[k] != cls[i] ||
			    ((rt == NULL || rt->kind == ROUTE_MX) &&
			    strcasecmp(rcpt_domain(m, k), dom) != 0))
				continue;
			m->mbox[k].remote = 0;
			if (k != i)
				ri[k] = ROUTE_NONE;
			idx[n++] = k;
			if (n == DELIVER_RCPTS_MAX) {
				qmsg_send_chunk(m, ROLE_RELAY, dom, rt,
				    cls[i] ? srs : NULL, idx, n);
				n = 0;
			}
		}
		ri[i] = ROUTE_NONE;
		if (n)
			qmsg_send_chunk(m, ROLE_RELAY, dom, rt,
			    cls[i] ? srs : NULL, idx, n);
	}
	free(ri);
	free(cls);
}

/*
 * Local recipients to their mailboxes: by default the deliver process
 * writes the Maildir files; with mailbox-transport lmtp:... the relay
 * process hands them to an LMTP server (Dovecot). The relay, not the
 * deliver process, because it already has the SMTP client (event loop,
 * timeouts, dot-stuffing, per-recipient results, a connection cache)
 * and runs unprivileged and not chrooted, as `user`, which owns
 * Dovecot's socket (dovecot-config --lmtp). One recipient per LMTP
 * transaction: Dovecot writes Return-Path always but Delivered-To only
 * when a transaction has a single recipient, and every mailbox must get
 * its own Delivered-To (P8) as with Maildir delivery; the connection is
 * reused for the next one. The Delivered-To loop check that the deliver
 * process makes is made here.
 */
static void
qmsg_send_local(struct qmsg *m, const size_t *idx, size_t n)
{
	struct lmtp_dest	 d;
	char			 why[256], acct[ADDR_STR_MAX + 1];

	d.kind = config_mailbox_transport(qp->conf->mailbox_transport, d.host,
	    sizeof(d.host), d.port, sizeof(d.port), why, sizeof(why));
	if (d.kind == MBOX_MAILDIR || d.kind == -1) {
		qmsg_send_chunk(m, ROLE_DELIVER, NULL, NULL, NULL, idx, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		/* the LMTP server writes the account's address: both count */
		snprintf(acct, sizeof(acct), "%s@%s", m->mbox[idx[i]].user,
		    m->mbox[idx[i]].domain);
		if (scanner_delivered_to(m, m->env.rcpts[idx[i]].addr) ||
		    scanner_delivered_to(m, acct)) {
			rcpt_outcome(m, idx[i], RCPT_BOUNCED, "none", "5.4.6 "
			    "mail loop: message already delivered to this "
			    "mailbox");
			qmsg_sequence_next(m, idx[i], 0);  /* as on a result */
			continue;
		}
		qmsg_send_chunk_to(m, ROLE_RELAY, "", NULL, NULL, &idx[i], 1,
		    &d);
	}
}

/* An expanded recipient: where it goes needs no lookup. */
static void
qmsg_route_target(struct qmsg *m, size_t i)
{
	struct env_rcpt	*rc = &m->env.rcpts[i];
	struct qmbox	*mb = &m->mbox[i];
	const char	*at;

	if (rc->via != VIA_REMOTE && scanner_delivered_to(m, rc->addr)) {
		rcpt_outcome(m, i, RCPT_BOUNCED, "none", "5.4.6 mail loop: "
		    "the message was already delivered to this address "
		    "(Delivered-To:)");
		return;
	}
	switch (rc->via) {
	case VIA_MAILBOX:
		if ((at = strrchr(rc->addr, '@')) == NULL ||
		    (size_t)(at - rc->addr) >= sizeof(mb->user)) {
			rcpt_outcome(m, i, RCPT_BOUNCED, "none", "5.1.3 bad "
			    "mailbox address");
			return;
		}
		snprintf(mb->user, sizeof(mb->user), "%.*s",
		    (int)(at - rc->addr), rc->addr);
		snprintf(mb->domain, sizeof(mb->domain), "%s", at + 1);
		mb->local = 1;
		break;
	case VIA_REMOTE:
		mb->remote = 1;
		break;
	case VIA_PIPE:
	case VIA_FILE:
		mb->pipe = 1;
		break;
	default:
		break;
	}
}

/*
 * The targets of an alias that has a robot run in the alias's order, one
 * at a time (a robot's exit 99 stops the rest): all but the first due one
 * wait (later) for the one before them.
 */
static void
qmsg_sequence(struct qmsg *m)
{
	struct env_rcpt	*r = m->env.rcpts;
	size_t		 n = m->env.nrcpts, p, q, k;

	/* from the robots' side: most messages have none, and a big alias
	   without one costs nothing here */
	for (p = 0; p < n; p++) {
		int first = 1;
		if (r[p].via != VIA_PIPE)
			continue;
		for (q = 0; q < p; q++)		/* its alias, once */
			if (r[q].via == VIA_PIPE &&
			    strcmp(r[q].orig, r[p].orig) == 0)
				break;
		if (q < p)
			continue;
		for (k = 0; k < n; k++) {
			struct qmbox *mk = &m->mbox[k];
			if (r[k].via == VIA_NONE ||
			    strcmp(r[k].orig, r[p].orig) != 0 ||
			    !(mk->local || mk->remote || mk->pipe))
				continue;
			if (!first)
				mk->later = 1;
			first = 0;
		}
	}
}

/* Hand one pipe or file target to the pipe process. */
static void
qmsg_send_pipe(struct qmsg *m, size_t i)
{
	struct env_rcpt	*rc = &m->env.rcpts[i];
	struct qreq	*r;
	struct buf	 b;
	int		 fd;

	m->mbox[i].pipe = 0;
	if ((r = qreq_new(m, i, ROLE_PIPE)) == NULL) {
		rcpt_outcome(m, i, RCPT_DEFERRED, "none", "4.3.0 out of memory");
		return;
	}
	r->rcpts[0] = i;
	r->nrcpts = 1;
	buf_init(&b, IPC_FRAME_MAX);
	ipc_put_str(&b, m->env.id);
	ipc_put_str(&b, m->env.from);
	ipc_put_mem(&b, m->env.hdrs.data ? m->env.hdrs.data : "",
	    m->env.hdrs.len);
	ipc_put_str(&b, rc->addr);
	ipc_put_str(&b, rc->orig);
	ipc_put_u32(&b, rc->via);
	ipc_put_str(&b, rc->target ? rc->target : "");
	ipc_put_u32(&b, rc->owner);
	ipc_put_str(&b, rc->ext);
	ipc_put_u32(&b, m->released);
	fd = fcntl(m->datafd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1 || b.err || ipc_send_buf(qp->peer[ROLE_PIPE],
	    DELIVER_PIPE, r->id, fd, &b) == -1) {
		LIST_REMOVE(r, entry);
		m->outstanding--;
		free(r);
		rcpt_outcome(m, i, RCPT_DEFERRED, "none", "4.3.0 pipe process "
		    "unavailable");
	}
	buf_free(&b);
}

/*
 * A target of a sequential alias is done: start the next one of its
 * alias, or (a robot said stop) close them all as delivered.
 */
static void
qmsg_sequence_next(struct qmsg *m, size_t done, int stop)
{
	const char	*orig = m->env.rcpts[done].orig;

	for (size_t k = 0; k < m->env.nrcpts; k++) {
		struct qmbox *mk = &m->mbox[k];
		if (!mk->later || strcmp(m->env.rcpts[k].orig, orig) != 0)
			continue;
		mk->later = 0;
		if (stop) {
			mk->local = mk->remote = mk->pipe = 0;
			rcpt_outcome(m, k, RCPT_DELIVERED, "none", "skipped: "
			    "a robot before it exited 99");
			continue;
		}
		if (mk->pipe)
			qmsg_send_pipe(m, k);
		else if (mk->local) {
			mk->local = 0;
			qmsg_send_local(m, &k, 1);
		} else
			qmsg_relay_all(m);
		return;
	}
}

/*
 * Every lookup of this pass is answered: hand the local recipients to the
 * delivery process together, so that it reads the message once for all,
 * and the others to the relay, a request per domain.
 */
static void
qmsg_deliver_all(struct qmsg *m)
{
	size_t	 idx[DELIVER_RCPTS_MAX], n = 0;

	if (m->mbox == NULL)
		return;
	qmsg_sequence(m);
	for (size_t i = 0; i < m->env.nrcpts; i++)
		if (m->mbox[i].pipe && !m->mbox[i].later)
			qmsg_send_pipe(m, i);
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		if (!m->mbox[i].local || m->mbox[i].later)
			continue;
		m->mbox[i].local = 0;
		idx[n++] = i;
		if (n == DELIVER_RCPTS_MAX) {
			qmsg_send_local(m, idx, n);
			n = 0;
		}
	}
	if (n)
		qmsg_send_local(m, idx, n);
	qmsg_relay_all(m);
}

/* A lookup of m is over (answered or failed). */
static void
qmsg_lookup_done(struct qmsg *m)
{
	if (--m->lookups == 0)
		qmsg_deliver_all(m);
}

/*
 * With sender rewriting on, ask once per message (the answer is kept in
 * memory) whether the sender's domain is ours: the lookup of the sender
 * as a recipient says "not a local domain" when it is not. The hostname
 * and srs-domain need no question.
 */
static void
qmsg_ask_sender(struct qmsg *m, struct buf *b)
{
	const struct config	*c = qp->conf;
	const char		*at = strrchr(m->env.from, '@');
	struct qreq		*r;

	if (m->srs_sender != QSRS_UNKNOWN || c->nsrs_secrets == 0)
		return;
	if (at == NULL || strcasecmp(at + 1, c->hostname) == 0 ||
	    strcasecmp(at + 1, config_srs_domain(c)) == 0) {
		m->srs_sender = QSRS_OURS;	/* also the null sender */
		return;
	}
	if ((r = qreq_new(m, QREQ_SENDER, ROLE_LOOKUP)) == NULL)
		return;		/* unknown: forwarded recipients wait */
	buf_reset(b);
	ipc_put_str(b, m->env.from);
	if (ipc_send_buf(qp->peer[ROLE_LOOKUP], LOOKUP_RCPT_RESOLVE, r->id,
	    -1, b) == -1) {
		LIST_REMOVE(r, entry);
		m->outstanding--;
		free(r);
	} else
		m->lookups++;
}

/* Scan (once) and ask the lookup process about each recipient due now. */
static void
qmsg_start(struct qmsg *m)
{
	char		 err[256];
	time_t		 now = time(NULL);
	size_t		 i;
	struct buf	 b;
	struct qreq	*r;
	uint16_t	 type;
	int		 automatic = -1;

	m->active = 1;
	m->newly_bounced = 0;
	m->started = queue_now();
	m->outstanding = 1;	/* held until all requests are out */
	if (m->datafd == -1 &&
	    (m->datafd = openat(queue_spool.data, m->env.id,
	    O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, sizeof(err), "data file: %s", strerror(errno));
		m->outstanding = 0;
		m->active = 0;
		spool_quarantine(&queue_spool, m->where == Q_INCOMING ?
		    queue_spool.incoming : queue_spool.outgoing, m->env.id, err);
		qmsg_free(m);
		return;
	}
	if (scanner_run(m, qp->conf->hostname, qp->conf->max_hops, err,
	    sizeof(err)) == -1)
		log_warnx("%s: scanner: %s", m->env.id, err);
	if (qmsg_fit(m) == -1) {
		log_warnx("%s: out of memory", m->env.id);
		m->outstanding = 0;
		m->active = 0;
		qmsg_idle(m);
		return;
	}
	memset(m->mbox, 0, m->nmbox * sizeof(*m->mbox));	/* a new pass */
	m->lookups = 1;		/* held until all lookups are out */
	buf_init(&b, 1024);
	for (i = 0; i < m->env.nrcpts; i++) {
		struct env_rcpt *rc = &m->env.rcpts[i];
		if (rc->state == RCPT_DELIVERED || rc->state == RCPT_BOUNCED ||
		    rc->state == RCPT_EXPANDED || rc->state == RCPT_WAITING ||
		    (rc->state == RCPT_DEFERRED && rc->next_try > now))
			continue;
		if (m->env.hops > qp->conf->max_hops) {
			rcpt_outcome(m, i, RCPT_BOUNCED, "none", "5.4.6 mail "
			    "loop: too many Received: headers");
			continue;
		}
		if (rc->via != VIA_NONE) {	/* expanded: no lookup */
			qmsg_route_target(m, i);
			continue;
		}
		if ((r = qreq_new(m, i, ROLE_LOOKUP)) == NULL) {
			rcpt_outcome(m, i, RCPT_DEFERRED, "none",
			    "4.3.0 out of memory");
			continue;
		}
		buf_reset(&b);
		ipc_put_str(&b, rc->addr);
		type = LOOKUP_RCPT_RESOLVE;
		if (mask_domain_of(qp->conf, rc->addr)) {
			/* the masked relay: who writes, and is it a human? */
			if (automatic == -1)
				automatic = (int)maskq_flags(m);
			ipc_put_str(&b, m->env.from);
			ipc_put_u32(&b, (uint32_t)automatic);
			type = LOOKUP_MASK_RESOLVE;
		}
		if (ipc_send_buf(qp->peer[ROLE_LOOKUP], type,
		    r->id, -1, &b) == -1) {
			LIST_REMOVE(r, entry);
			m->outstanding--;
			free(r);
			rcpt_outcome(m, i, RCPT_DEFERRED, "none",
			    "4.3.0 lookup process unavailable");
		} else
			m->lookups++;
	}
	qmsg_ask_sender(m, &b);
	buf_free(&b);
	qmsg_lookup_done(m);
	if (--m->outstanding == 0)
		qmsg_done(m);
}

static void
qreq_free_targets(struct qreq *r)
{
	for (size_t i = 0; i < r->ntargets; i++)
		free(r->targets[i].target);
	free(r->targets);
	r->targets = NULL;
	r->ntargets = r->captargets = 0;
}

/* Part of an expansion: keep the targets until the answer ends it. */
static void
queue_on_targets(struct ipc *c, struct ipc_msg *msg, void *arg)
{
	struct ipc_rd	 rd;
	struct qreq	*r;
	struct qtarget	*t;
	char		 target[ENV_TARGET_MAX + 1];
	uint32_t	 n;

	(void)c;
	(void)arg;
	LIST_FOREACH(r, &reqs, entry)
		if (r->id == msg->id && r->peer == ROLE_LOOKUP)
			break;
	if (r == NULL) {
		log_warnx("unexpected QUEUE_RCPT_TARGETS");
		return;
	}
	ipc_rd_init(&rd, msg);
	n = ipc_get_u32(&rd);
	for (uint32_t i = 0; i < n && !rd.err; i++) {
		if (r->ntargets == r->captargets) {
			size_t cap = r->captargets ? r->captargets * 2 : 16;
			if (cap > ENV_RCPT_MAX ||
			    (t = reallocarray(r->targets, cap,
			    sizeof(*t))) == NULL) {
				rd.err = 1;
				break;
			}
			r->targets = t;
			r->captargets = cap;
		}
		t = &r->targets[r->ntargets];
		memset(t, 0, sizeof(*t));
		t->via = (enum rcpt_via)ipc_get_u32(&rd);
		ipc_get_str(&rd, t->addr, sizeof(t->addr));
		ipc_get_str(&rd, target, sizeof(target));
		t->owner = ipc_get_u32(&rd);
		ipc_get_str(&rd, t->ext, sizeof(t->ext));
		if (rd.err)
			break;
		if (target[0] && (t->target = strdup(target)) == NULL) {
			rd.err = 1;
			break;
		}
		r->ntargets++;
	}
	if (rd.err || ipc_get_end(&rd) == -1) {
		log_warnx("%s: bad QUEUE_RCPT_TARGETS (or out of memory)",
		    r->m->env.id);
		r->ntargets = SIZE_MAX;		/* the answer defers it */
	}
}

/*
 * The recipient is an alias (or had an extension): it is done as such
 * (state expanded), and its targets become recipients of their own,
 * delivered in this pass and remembered in the envelope.
 */
static void
qmsg_expand(struct qmsg *m, size_t i, struct qreq *r)
{
	size_t	 first = m->env.nrcpts, k;
	char	 why[128], orig[ADDR_STR_MAX + 1];

	if (r->ntargets == SIZE_MAX || r->ntargets == 0) {
		rcpt_outcome(m, i, RCPT_DEFERRED, "none", "4.3.0 alias "
		    "expansion incomplete");
		return;
	}
	if (scanner_delivered_to(m, m->env.rcpts[i].addr)) {
		rcpt_outcome(m, i, RCPT_BOUNCED, "none", "5.4.6 mail loop: "
		    "the message was already delivered to this address "
		    "(Delivered-To:)");
		return;
	}
	if (m->env.nrcpts + r->ntargets > ENV_RCPT_MAX) {
		rcpt_outcome(m, i, RCPT_BOUNCED, "none", "5.3.3 alias expands "
		    "to more recipients than one message may have");
		return;
	}
	/* a copy: adding recipients moves the array */
	snprintf(orig, sizeof(orig), "%s", m->env.rcpts[i].orig);
	for (k = 0; k < r->ntargets; k++) {
		struct qtarget *t = &r->targets[k];
		if (envelope_add_target(&m->env, t->addr, orig, t->via,
		    t->owner, t->ext, t->target) == -1)
			break;
	}
	if (k < r->ntargets || qmsg_fit(m) == -1) {
		while (m->env.nrcpts > first)
			free(m->env.rcpts[--m->env.nrcpts].target);
		rcpt_outcome(m, i, RCPT_DEFERRED, "none", "4.3.0 out of memory "
		    "expanding the alias");
		return;
	}
	snprintf(why, sizeof(why), "alias to %zu target%s", r->ntargets,
	    r->ntargets == 1 ? "" : "s");
	rcpt_outcome(m, i, RCPT_EXPANDED, "none", why);
	for (k = first; k < m->env.nrcpts; k++)
		qmsg_route_target(m, k);
}

static void
queue_on_resolved(struct ipc *c, struct ipc_msg *msg, void *arg)
{
	struct ipc_rd	 rd;
	struct qreq	*r;
	uint32_t	 res, ntargets;
	char		 domain[ADDR_DOMAIN_MAX + 1], user[ADDR_LOCAL_MAX + 1];
	char		 text[ENV_TEXT_MAX];

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, msg);
	res = ipc_get_u32(&rd);
	ipc_get_str(&rd, domain, sizeof(domain));
	ipc_get_str(&rd, user, sizeof(user));
	ipc_get_str(&rd, text, sizeof(text));
	ntargets = ipc_get_u32(&rd);
	if ((r = qreq_take(msg->id, ROLE_LOOKUP)) == NULL) {
		log_warnx("unexpected QUEUE_RCPT_RESOLVED");
		return;
	}
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad QUEUE_RCPT_RESOLVED");
		res = LOOKUP_TEMPFAIL;
		text[0] = '\0';
	}
	if (r->rcpt == QREQ_SENDER) {
		/* any answer but these means the domain is local */
		r->m->srs_sender = res == LOOKUP_REMOTE ? QSRS_FOREIGN :
		    res == LOOKUP_TEMPFAIL ? QSRS_UNKNOWN : QSRS_OURS;
		goto done;
	}
	switch (res) {
	case LOOKUP_LOCAL:
		r->m->mbox[r->rcpt].local = 1;
		snprintf(r->m->mbox[r->rcpt].domain,
		    sizeof(r->m->mbox[r->rcpt].domain), "%s", domain);
		snprintf(r->m->mbox[r->rcpt].user,
		    sizeof(r->m->mbox[r->rcpt].user), "%s", user);
		break;
	case LOOKUP_EXPANDED:
		if (r->ntargets != ntargets)
			r->ntargets = SIZE_MAX;
		qmsg_expand(r->m, r->rcpt, r);
		break;
	case LOOKUP_NOUSER:
	case LOOKUP_FAILED:
		rcpt_outcome(r->m, r->rcpt, RCPT_BOUNCED, "none", text[0] ?
		    text : "5.1.1 user unknown");
		break;
	case LOOKUP_REMOTE:
		r->m->mbox[r->rcpt].remote = 1;
		break;
	default:
		rcpt_outcome(r->m, r->rcpt, RCPT_DEFERRED, "none", text[0] ?
		    text : "4.3.0 temporary lookup failure");
		break;
	}
done:
	qreq_free_targets(r);
	qmsg_lookup_done(r->m);
	qreq_finish(r);
}

/*
 * QUEUE_MASK_RESOLVED: where the masked copy goes (lookup.c has the
 * format). The copy is written and committed now; its recipient here is
 * delivered when the copy is on disk (qmsg_mask_done).
 */
static void
queue_on_mask_resolved(struct ipc *c, struct ipc_msg *msg, void *arg)
{
	struct ipc_rd		 rd;
	struct qreq		*r;
	struct mask_route	 mr;
	struct envelope		 copy;
	char			 why[256], text[ENV_TEXT_MAX];
	uint32_t		 res;
	int			 fd;

	(void)c;
	(void)arg;
	memset(&mr, 0, sizeof(mr));
	ipc_rd_init(&rd, msg);
	res = ipc_get_u32(&rd);
	ipc_get_str(&rd, why, sizeof(why));
	if (res == MASK_R_OK || res == MASK_R_BOUNCE) {
		mr.dir = ipc_get_u32(&rd) ? MASK_DIR_REPLY : MASK_DIR_IN;
		ipc_get_str(&rd, mr.service, sizeof(mr.service));
		ipc_get_str(&rd, mr.pair, sizeof(mr.pair));
		ipc_get_str(&rd, mr.target, sizeof(mr.target));
		ipc_get_str(&rd, mr.verp, sizeof(mr.verp));
		ipc_get_str(&rd, mr.from_mask, sizeof(mr.from_mask));
		ipc_get_str(&rd, mr.reply_to, sizeof(mr.reply_to));
		ipc_get_str(&rd, mr.person, sizeof(mr.person));
		ipc_get_str(&rd, mr.service_real, sizeof(mr.service_real));
		ipc_get_str(&rd, mr.user_mask, sizeof(mr.user_mask));
		ipc_get_str(&rd, mr.service_mask, sizeof(mr.service_mask));
	}
	if ((r = qreq_take(msg->id, ROLE_LOOKUP)) == NULL) {
		log_warnx("unexpected QUEUE_MASK_RESOLVED");
		return;
	}
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad QUEUE_MASK_RESOLVED");
		res = MASK_R_TEMPFAIL;
		snprintf(why, sizeof(why), "bad answer from the lookup process");
	}
	switch (res) {
	case MASK_R_OK:
	case MASK_R_BOUNCE:
		break;
	case MASK_R_DROP:
		/* accepted at RCPT, not relayed now: said in the log */
		snprintf(text, sizeof(text), "2.0.0 not relayed: %s", why);
		rcpt_outcome(r->m, r->rcpt, RCPT_DELIVERED, "mask", text);
		goto done;
	case MASK_R_NOUSER:
	case MASK_R_DENIED:
	case MASK_R_NOTMASK:
		/* changed since RCPT (disabled, deleted): a bounce */
		snprintf(text, sizeof(text), "5.1.1 %s", why[0] ? why :
		    "no such mask address");
		rcpt_outcome(r->m, r->rcpt, RCPT_BOUNCED, "mask", text);
		goto done;
	default:
		snprintf(text, sizeof(text), "4.3.0 %s", why[0] ? why :
		    "temporary lookup failure");
		rcpt_outcome(r->m, r->rcpt, RCPT_DEFERRED, "mask", text);
		goto done;
	}
	switch (res == MASK_R_BOUNCE ? maskq_notice(r->m, &mr,
	    qp->conf->hostname, &copy, &fd, why, sizeof(why)) :
	    maskq_build(r->m, &mr, qp->conf->hostname, &copy, &fd, why,
	    sizeof(why))) {
	case MASKQ_OK:
		break;
	case MASKQ_DROP:
		log_warnx("%s: to=<%s> mask copy dropped: %s", r->m->env.id,
		    r->m->env.rcpts[r->rcpt].addr, why);
		snprintf(text, sizeof(text), "2.0.0 not relayed: %s", why);
		rcpt_outcome(r->m, r->rcpt, RCPT_DELIVERED, "mask", text);
		goto done;
	default:
		snprintf(text, sizeof(text), "4.3.0 %s", why);
		rcpt_outcome(r->m, r->rcpt, RCPT_DEFERRED, "mask", text);
		goto done;
	}
	if (res == MASK_R_BOUNCE)
		log_info("%s: mask bounce notice %s to=<%s> about=<%s>",
		    r->m->env.id, copy.id, mr.target, mr.from_mask);
	else
		log_info("%s: mask copy %s from=<%s> to=<%s> pair=%s dir=%s",
		    r->m->env.id, copy.id, mr.verp, mr.target, mr.pair,
		    mr.dir == MASK_DIR_IN ? "in" : "reply");
	if (queue_commit_add(&copy, fd, NULL, r->m, r->rcpt) == -1)
		rcpt_outcome(r->m, r->rcpt, RCPT_DEFERRED, "mask", "4.3.0 out "
		    "of memory");
	else
		r->m->outstanding++;	/* until the copy is committed */
done:
	qmsg_lookup_done(r->m);
	qreq_finish(r);
}

/* The mask copy for recipient i is committed (id) or not (NULL). */
static void
qmsg_mask_done(struct qmsg *m, size_t i, const char *id)
{
	char	 text[ENV_TEXT_MAX];

	if (id) {
		snprintf(text, sizeof(text), "2.0.0 relayed as %s", id);
		rcpt_outcome(m, i, RCPT_DELIVERED, "mask", text);
	} else
		rcpt_outcome(m, i, RCPT_DEFERRED, "mask", "4.3.0 the masked "
		    "copy could not be queued");
	if (--m->outstanding == 0)
		qmsg_done(m);
}

/*
 * The outcome of a delivery request (deliver or relay process): u32 n,
 * then n x (u32 state; str relay; str text), in the request's order.
 */
static void
queue_on_result(struct ipc *c, struct ipc_msg *msg, void *arg)
{
	struct ipc_rd	 rd;
	struct qreq	*r;
	enum ipc_role	 peer = msg->type == QUEUE_RELAY_RESULT ? ROLE_RELAY :
			    ROLE_DELIVER;
	uint32_t	 n, st[DELIVER_RCPTS_MAX];
	char		 text[DELIVER_RCPTS_MAX][ENV_TEXT_MAX];
	char		 relay[DELIVER_RCPTS_MAX][300];
	size_t		 i;

	(void)c;
	(void)arg;
	if ((r = qreq_take(msg->id, peer)) == NULL) {
		log_warnx("unexpected %s", ipc_type_name(msg->type));
		return;
	}
	ipc_rd_init(&rd, msg);
	n = ipc_get_u32(&rd);
	for (i = 0; i < n && i < r->nrcpts; i++) {
		st[i] = ipc_get_u32(&rd);
		ipc_get_str(&rd, relay[i], sizeof(relay[i]));
		ipc_get_str(&rd, text[i], sizeof(text[i]));
	}
	if (n != r->nrcpts || ipc_get_end(&rd) == -1) {
		log_warnx("%s: bad answer from the %s process", r->m->env.id,
		    proc_role_name(peer));
		for (i = 0; i < r->nrcpts; i++) {
			st[i] = RCPT_DEFERRED;
			snprintf(relay[i], sizeof(relay[i]), "none");
			snprintf(text[i], sizeof(text[i]), "4.3.0 bad answer "
			    "from the %s process", proc_role_name(peer));
		}
	}
	for (i = 0; i < r->nrcpts; i++) {
		rcpt_outcome(r->m, r->rcpts[i], st[i] == RCPT_DELIVERED ?
		    RCPT_DELIVERED : st[i] == RCPT_BOUNCED ? RCPT_BOUNCED :
		    RCPT_DEFERRED, relay[i], text[i]);
		qmsg_sequence_next(r->m, r->rcpts[i], 0);
	}
	qreq_finish(r);
}

/* A robot or mbox delivery is over: u32 1; u32 state; str relay; str text;
   u32 stop (exit 99). */
static void
queue_on_pipe_result(struct ipc *c, struct ipc_msg *msg, void *arg)
{
	struct ipc_rd	 rd;
	struct qreq	*r;
	uint32_t	 n, st, stop, hold;
	char		 text[ENV_TEXT_MAX], relay[300];

	(void)c;
	(void)arg;
	if ((r = qreq_take(msg->id, ROLE_PIPE)) == NULL) {
		log_warnx("unexpected QUEUE_PIPE_RESULT");
		return;
	}
	ipc_rd_init(&rd, msg);
	n = ipc_get_u32(&rd);
	st = ipc_get_u32(&rd);
	ipc_get_str(&rd, relay, sizeof(relay));
	ipc_get_str(&rd, text, sizeof(text));
	stop = ipc_get_u32(&rd);
	hold = ipc_get_u32(&rd);
	if (n != 1 || ipc_get_end(&rd) == -1) {
		log_warnx("%s: bad answer from the pipe process", r->m->env.id);
		st = RCPT_DEFERRED;
		stop = hold = 0;
		snprintf(relay, sizeof(relay), "pipe");
		snprintf(text, sizeof(text), "4.3.0 bad answer from the pipe "
		    "process");
	}
	rcpt_outcome(r->m, r->rcpts[0], st == RCPT_DELIVERED ? RCPT_DELIVERED :
	    st == RCPT_BOUNCED ? RCPT_BOUNCED : RCPT_DEFERRED, relay, text);
	qmsg_sequence_next(r->m, r->rcpts[0], st == RCPT_DELIVERED && stop);
	if (hold && st == RCPT_DEFERRED && !(r->m->env.flags & ENV_F_HELD)) {
		/* a broken robot does not spin: its mail waits for a human */
		r->m->env.flags |= ENV_F_HELD;
		log_warnx("%s: held: the robot of <%s> keeps failing (sluice "
		    "queue release %s)", r->m->env.id,
		    r->m->env.rcpts[r->rcpts[0]].addr, r->m->env.id);
	}
	qreq_finish(r);
}

/*
 * Queue a DSN for the recipients bounced in this pass. 1: it is in the
 * commit batch and m waits for it (qmsg_dsn_done); 0: no DSN is due.
 */
static int
qmsg_bounce(struct qmsg *m)
{
	struct envelope	 dsn;
	struct buf	 data;
	int		 fd, r = -1;

	const char	*to = m->env.from;

	if (to[0] == '\0') {
		/* a bounce bounced: to the postmaster once, never again */
		if (qp->conf->double_bounce[0] == '\0' ||
		    (m->env.flags & ENV_F_DOUBLE)) {
			log_info("%s: double bounce dropped (null sender)",
			    m->env.id);
			return 0;
		}
		to = qp->conf->double_bounce;
	}
	buf_init(&data, 1024 * 1024);
	if (bounce_build(m, qp->conf->hostname, to, 0, &dsn, &data) == -1) {
		log_warnx("%s: cannot build DSN", m->env.id);
		goto out;
	}
	fd = openat(queue_spool.data, dsn.id, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
	if (fd == -1 || write_all(fd, data.data, data.len) == -1) {
		log_warn("%s: cannot write DSN", m->env.id);
		if (fd != -1) {
			close(fd);
			unlinkat(queue_spool.data, dsn.id, 0);
		}
		goto out;
	}
	dsn.size = data.len;
	if (to != m->env.from)
		dsn.flags |= ENV_F_DOUBLE;
	log_info("%s: %s non-delivery notification: %s", m->env.id,
	    to != m->env.from ? "double-bounce" : "sender", dsn.id);
	queue_commit_internal(&dsn, fd, NULL, m);
	r = 1;
out:
	envelope_free(&dsn);
	buf_free(&data);
	if (r == -1)
		qmsg_dsn_done(m, 0);	/* try the DSN again later */
	return 1;
}

/*
 * The DSN for m's bounced recipients is committed (ok) or not: only now
 * may m be removed. Without a DSN, its bounced recipients are deferred
 * again so that a later pass bounces them and tries the DSN once more.
 */
static void
qmsg_dsn_done(struct qmsg *m, int ok)
{
	time_t	 now = time(NULL);

	if (!ok && m->fresh) {
		for (size_t i = 0; i < m->env.nrcpts; i++)
			if (m->fresh[i]) {
				m->env.rcpts[i].state = RCPT_DEFERRED;
				m->env.rcpts[i].next_try = now +
				    qp->conf->retry_interval;
			}
		log_warnx("%s: DSN not queued; bounced recipients retried "
		    "later", m->env.id);
	}
	free(m->fresh);
	m->fresh = NULL;
	qmsg_finish(m);
}

/* Exponential backoff: base, 2 base, 4 base, ... up to max. */
static time_t
retry_delay(unsigned attempts, unsigned base, unsigned max)
{
	time_t	 d = base;

	while (attempts-- > 1 && d < (time_t)max)
		d *= 2;
	return d > (time_t)max ? (time_t)max : d;
}

/*
 * delay-warning: tell the sender, once, that some recipients are still
 * being retried. Nothing waits for it (the message stays queued anyway);
 * a crash before the flag is stored may warn twice, never lose mail.
 */
static void
qmsg_delay_warning(struct qmsg *m)
{
	struct envelope	 dsn;
	struct buf	 data;
	int		 fd = -1;

	buf_init(&data, 1024 * 1024);
	if (bounce_build(m, qp->conf->hostname, m->env.from, 1, &dsn,
	    &data) == -1 || (fd = openat(queue_spool.data, dsn.id, O_RDWR |
	    O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1 ||
	    write_all(fd, data.data, data.len) == -1) {
		log_warnx("%s: cannot write the delay warning (next pass)",
		    m->env.id);
		if (fd != -1) {
			close(fd);
			unlinkat(queue_spool.data, dsn.id, 0);
		}
	} else {
		dsn.size = data.len;
		m->env.flags |= ENV_F_WARNED;
		log_info("%s: sender delay notification: %s", m->env.id,
		    dsn.id);
		queue_commit_internal(&dsn, fd, NULL, NULL);
	}
	envelope_free(&dsn);
	buf_free(&data);
}

/*
 * Every recipient has an outcome for this pass: schedule the deferred ones,
 * bounce the expired ones, send one DSN for this pass's bounces, then
 * remove or store the message (qmsg_finish, after the DSN is committed).
 */
static void
qmsg_done(struct qmsg *m)
{
	time_t		 now = time(NULL);
	size_t		 i;

	m->active = 0;
	m->released = 0;	/* that pass was the operator's */
	for (i = 0; i < m->env.nrcpts; i++) {
		struct env_rcpt *r = &m->env.rcpts[i];
		if (r->state != RCPT_DEFERRED && r->state != RCPT_PENDING &&
		    r->state != RCPT_WAITING)
			continue;
		if (now - m->env.created > (time_t)qp->conf->max_queue_lifetime) {
			char why[ENV_TEXT_MAX];
			snprintf(why, sizeof(why), "5.4.7 delivery time expired: "
			    "%.400s", r->error);
			rcpt_outcome(m, i, RCPT_BOUNCED, "none", why);
			continue;
		}
		if (r->state == RCPT_WAITING)
			continue;	/* no attempt was made */
		r->state = RCPT_DEFERRED;
		r->attempts++;
		r->next_try = now + retry_delay(r->attempts,
		    qp->conf->retry_interval, qp->conf->retry_max);
	}
	if (qp->conf->delay_warning && !(m->env.flags & ENV_F_WARNED) &&
	    m->env.from[0] && now - m->env.created >=
	    (time_t)qp->conf->delay_warning && envelope_pending(&m->env))
		qmsg_delay_warning(m);
	if (m->newly_bounced) {
		m->newly_bounced = 0;
		if (qmsg_bounce(m))
			return;		/* qmsg_dsn_done goes on */
	}
	free(m->fresh);
	m->fresh = NULL;
	qmsg_finish(m);
}

/* Remove a message that is done, or store its state and wait. */
static void
qmsg_finish(struct qmsg *m)
{
	size_t	 left;
	int	 dirfd;

	left = envelope_pending(&m->env);
	dirfd = m->where == Q_INCOMING ? queue_spool.incoming :
	    queue_spool.outgoing;
	if (left == 0) {
		/* P2: a crash before this unlink redelivers (counted) */
		unlinkat(dirfd, m->env.id, 0);
		unlinkat(queue_spool.data, m->env.id, 0);
		log_info("%s: removed", m->env.id);
		qmsg_free(m);
		return;
	}
	if (spool_env_store(&queue_spool, &m->env, queue_spool.outgoing) == -1)
		log_warn("%s: cannot store state in outgoing/ (will retry "
		    "from %s)", m->env.id, m->where == Q_INCOMING ?
		    "incoming/" : "the old state");
	else if (m->where == Q_INCOMING) {
		unlinkat(queue_spool.incoming, m->env.id, 0);
		m->where = Q_OUTGOING;
	}
	close(m->datafd);
	m->datafd = -1;
	qmsg_idle(m);
}

#define QUEUE_TICK	5	/* seconds: maildrop/ is looked at this often */

/* Arm the retry timer for the first due message, or the next tick. */
static void
sched_arm(void)
{
	struct qmsg	*top = sched_top();
	time_t		 now = time(NULL), at = now + QUEUE_TICK;
	struct timeval	 tv = { 0, 0 };

	if (top != NULL && top->due < at)
		at = top->due > now ? top->due : now;
	if (wake_at != 0 && wake_at <= at)
		return;		/* already due to wake up sooner */
	wake_at = at;
	tv.tv_sec = at - now;
	evtimer_add(ev_retry, &tv);
}

/* m waits: on the list of idle messages, in the heap if it will be due. */
static void
qmsg_idle(struct qmsg *m)
{
	TAILQ_INSERT_TAIL(&deferred, m, entry);
	if (sched_update(m) == -1)
		log_warnx("%s: out of memory for the schedule, waiting for a "
		    "flush", m->env.id);
	else if (ev_retry != NULL)
		sched_arm();
}

static void
qmsg_unidle(struct qmsg *m)
{
	TAILQ_REMOVE(&deferred, m, entry);
	sched_del(m);
}

/* Something about an idle message changed (flush, release, routes). */
static void
qmsg_rescheduled(struct qmsg *m)
{
	if (sched_update(m) == -1)
		log_warnx("%s: out of memory for the schedule", m->env.id);
}

/* Timer, or a request: start the messages that are due now. */
static void
queue_on_retry(int fd, short ev, void *arg)
{
	TAILQ_HEAD(, qmsg)	 due = TAILQ_HEAD_INITIALIZER(due);
	struct qmsg		*m;
	time_t			 now = time(NULL);

	(void)fd;
	(void)ev;
	(void)arg;
	wake_at = 0;
	if (!started || !qp->peer[ROLE_LOOKUP] || !qp->peer[ROLE_DELIVER] ||
	    !qp->peer[ROLE_RELAY] || !qp->peer[ROLE_PIPE]) {
		/* a peer is restarting: look again at the next tick */
		struct timeval tv = { QUEUE_TICK, 0 };
		wake_at = now + QUEUE_TICK;
		evtimer_add(ev_retry, &tv);
		return;
	}
	{
		/* take them all first: a start may put one straight back */
		while ((m = sched_top()) != NULL && m->due <= now) {
			qmsg_unidle(m);
			TAILQ_INSERT_TAIL(&due, m, entry);
		}
		while ((m = TAILQ_FIRST(&due)) != NULL) {
			TAILQ_REMOVE(&due, m, entry);
			qmsg_start(m);
		}
		if (TAILQ_EMPTY(&batch))
			dir_walk(queue_spool.maildrop, maildrop_import);
	}
	sched_arm();
}

/*
 * The online state or the routes changed: recipients waiting for a route
 * are pending again, and routed afresh on their next pass (now).
 */
static void
queue_routes_changed(void)
{
	struct qmsg	*m;
	int		 n = 0;

	TAILQ_FOREACH(m, &deferred, entry) {
		int w = 0;
		for (size_t i = 0; i < m->env.nrcpts; i++)
			if (m->env.rcpts[i].state == RCPT_WAITING) {
				m->env.rcpts[i].state = RCPT_PENDING;
				w = 1;
			}
		if (w) {
			qmsg_rescheduled(m);
			n++;
		}
	}
	if (n)
		queue_on_retry(-1, 0, NULL);
}

/* A peer went away: what it owed us is a temporary failure. */
static void
queue_peer_down(struct proc *p, enum ipc_role role)
{
	struct qreq	*r, *next;

	(void)p;
	for (r = LIST_FIRST(&reqs); r; r = next) {
		next = LIST_NEXT(r, entry);
		if (r->peer != role)
			continue;
		LIST_REMOVE(r, entry);
		if (role == ROLE_DELIVER || role == ROLE_RELAY ||
		    role == ROLE_PIPE) {
			for (size_t i = 0; i < r->nrcpts; i++)
				rcpt_outcome(r->m, r->rcpts[i], RCPT_DEFERRED,
				    "none", role == ROLE_RELAY ?
				    "4.3.0 relay process died" : role ==
				    ROLE_PIPE ? "4.3.0 pipe process died" :
				    "4.3.0 delivery process died");
		} else {
			qreq_free_targets(r);
			if (r->rcpt != QREQ_SENDER)
				rcpt_outcome(r->m, r->rcpt, RCPT_DEFERRED,
				    "none", "4.3.0 lookup process died");
			qmsg_lookup_done(r->m);
		}
		qreq_finish(r);
	}
	if (role == ROLE_SMTP) {
		struct qopen *o;
		while ((o = LIST_FIRST(&opens)) != NULL) {
			LIST_REMOVE(o, entry);
			qopen_free(o, 1);
		}
		/* committed anyway, but nobody is left to hear about it */
		TAILQ_FOREACH(o, &batch, batch)
			o->session = 0;
	}
}

static void
queue_peer_up(struct proc *p, enum ipc_role role)
{
	(void)role;
	if (!started && p->peer[ROLE_LOOKUP] && p->peer[ROLE_DELIVER] &&
	    p->peer[ROLE_RELAY] && p->peer[ROLE_PIPE]) {
		started = 1;
		queue_on_retry(-1, 0, NULL);
	}
}


static void
queue_shutdown(struct proc *p)
{
	(void)p;
	/* commit what is complete: those clients are waiting for a 250 */
	if (!TAILQ_EMPTY(&batch))
		queue_flush(-1, 0, NULL);
	if (p->peer[ROLE_SMTP])
		ipc_flush(p->peer[ROLE_SMTP]);
}

static const struct ipc_handler smtp_handlers[] = {
	{ QUEUE_MSG_OPEN, queue_on_open },
	{ QUEUE_MSG_RCPT, queue_on_rcpt },
	{ QUEUE_MSG_COMMIT, queue_on_commit },
	{ QUEUE_MSG_ABORT, queue_on_abort },
	{ 0, NULL }
};
static const struct ipc_handler lookup_handlers[] = {
	{ QUEUE_RCPT_TARGETS, queue_on_targets },
	{ QUEUE_RCPT_RESOLVED, queue_on_resolved },
	{ QUEUE_MASK_RESOLVED, queue_on_mask_resolved },
	{ 0, NULL }
};
static const struct ipc_handler deliver_handlers[] = {
	{ QUEUE_DELIVER_RESULT, queue_on_result },
	{ 0, NULL }
};
static const struct ipc_handler relay_handlers[] = {
	{ QUEUE_RELAY_RESULT, queue_on_result },
	{ 0, NULL }
};
static const struct ipc_handler pipe_handlers[] = {
	{ QUEUE_PIPE_RESULT, queue_on_pipe_result },
	{ 0, NULL }
};

/* ---- operator requests (control.c) ---- */

/* Does m have a deferred recipient in domain (case-insensitive)? */
static int
qmsg_has_domain(const struct qmsg *m, const char *domain)
{
	const char	*at;

	for (size_t i = 0; i < m->env.nrcpts; i++)
		if ((m->env.rcpts[i].state == RCPT_DEFERRED ||
		    m->env.rcpts[i].state == RCPT_WAITING) &&
		    (at = strrchr(m->env.rcpts[i].addr, '@')) != NULL &&
		    strcasecmp(at + 1, domain) == 0)
			return 1;
	return 0;
}

/* Deferred recipients are due now; those waiting for a route, pending. */
static void
qmsg_due_now(struct qmsg *m)
{
	for (size_t i = 0; i < m->env.nrcpts; i++)
		if (m->env.rcpts[i].state == RCPT_DEFERRED)
			m->env.rcpts[i].next_try = 0;
		else if (m->env.rcpts[i].state == RCPT_WAITING)
			m->env.rcpts[i].state = RCPT_PENDING;
	qmsg_rescheduled(m);
}

/* flush [ID|DOMAIN]: deferred recipients are due now. */
static int
queue_flush_some(const char *arg)
{
	struct qmsg	*m;
	int		 n = 0, byid = queue_id_valid(arg);

	if (!byid)
		online_check();		/* the state may have changed */
	TAILQ_FOREACH(m, &deferred, entry) {
		if (m->env.flags & ENV_F_HELD)
			continue;
		if ((byid && strcmp(m->env.id, arg) != 0) ||
		    (!byid && arg[0] && !qmsg_has_domain(m, arg)))
			continue;
		qmsg_due_now(m);
		n++;
	}
	if (n)
		queue_on_retry(-1, 0, NULL);
	return n;
}

/* Store the state of a waiting message in outgoing/ (hold, release). */
static int
qmsg_store(struct qmsg *m, char *err, size_t errlen)
{
	if (spool_env_store(&queue_spool, &m->env, queue_spool.outgoing) ==
	    -1) {
		snprintf(err, errlen, "cannot store the envelope: %s",
		    strerror(errno));
		return -1;
	}
	if (m->where == Q_INCOMING) {
		unlinkat(queue_spool.incoming, m->env.id, 0);
		m->where = Q_OUTGOING;
	}
	return 1;
}

int
queue_control(const char *verb, const char *arg, char *err, size_t errlen)
{
	struct qmsg	*m;

	if (strcmp(verb, "flush") == 0)
		return queue_flush_some(arg);
	if (strcmp(verb, "hold") != 0 && strcmp(verb, "release") != 0 &&
	    strcmp(verb, "delete") != 0) {
		snprintf(err, errlen, "unknown request");
		return -1;
	}
	if (!queue_id_valid(arg) || (m = qmsg_find(arg)) == NULL) {
		snprintf(err, errlen, "no such message: %.40s", arg);
		return -1;
	}
	if (m->active) {
		snprintf(err, errlen, "%s is being delivered now, try again "
		    "in a moment", m->env.id);
		return -1;
	}
	if (strcmp(verb, "hold") == 0) {
		m->env.flags |= ENV_F_HELD;
		qmsg_rescheduled(m);
		return qmsg_store(m, err, errlen);
	}
	if (strcmp(verb, "release") == 0) {
		m->env.flags &= ~ENV_F_HELD;
		m->released = 1;
		qmsg_due_now(m);
		if (qmsg_store(m, err, errlen) == -1)
			return -1;
		queue_on_retry(-1, 0, NULL);
		return 1;
	}
	/* delete: no DSN, the operator decided */
	qmsg_unidle(m);
	unlinkat(m->where == Q_INCOMING ? queue_spool.incoming :
	    queue_spool.outgoing, m->env.id, 0);
	unlinkat(queue_spool.data, m->env.id, 0);
	log_info("%s: deleted by the operator", m->env.id);
	qmsg_free(m);
	return 1;
}

/* SIGHUP: routes or the online source may have changed. */
static void
queue_reload(struct proc *p)
{
	online_start(p, queue_routes_changed);
	queue_routes_changed();
}

int
queue_main(struct proc *p)
{
	char	 err[1024];

	qp = p;
	if (spool_open(&queue_spool, p->conf->spool, 0, 0, 0, err,
	    sizeof(err)) == -1)
		log_fatalx("spool: %s", err);
	p->handlers[ROLE_SMTP] = smtp_handlers;
	p->handlers[ROLE_LOOKUP] = lookup_handlers;
	p->handlers[ROLE_DELIVER] = deliver_handlers;
	p->handlers[ROLE_RELAY] = relay_handlers;
	p->handlers[ROLE_PIPE] = pipe_handlers;
	p->on_peer_up = queue_peer_up;
	p->on_peer_down = queue_peer_down;
	p->on_shutdown = queue_shutdown;
	p->on_reload = queue_reload;
	ev_flush = event_new(p->base, -1, 0, queue_flush, NULL);
	ev_retry = evtimer_new(p->base, queue_on_retry, NULL);
	if (ev_flush == NULL || ev_retry == NULL)
		log_fatalx("event_new");
	event_priority_set(ev_flush, 1);	/* after all reads of a pass */
	queue_recover();
	control_listen(p->base, p->conf->spool);
	online_start(p, queue_routes_changed);
	return proc_run(p);
}

/* ---- recovery at start ---- */

static void
dir_walk(int dirfd, dir_fn fn)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		log_warn("opendir");
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			fn(de->d_name);
	closedir(d);
}

static void
recover_tmp(const char *name)
{
	unlinkat(queue_spool.tmp, name, 0);
}

static void
recover_env(int dirfd, enum qwhere where, const char *name)
{
	struct envelope	 env;
	char		 err[256];
	int		 corrupt;

	if (!queue_id_valid(name)) {
		spool_quarantine(&queue_spool, dirfd, name, "bad file name");
		return;
	}
	if (qmsg_find(name)) {	/* in incoming/ and outgoing/: keep newest */
		unlinkat(queue_spool.incoming, name, 0);
		return;
	}
	envelope_init(&env);
	if (spool_env_load(&queue_spool, dirfd, name, &env, &corrupt, err,
	    sizeof(err)) == -1) {
		envelope_free(&env);
		if (corrupt)
			spool_quarantine(&queue_spool, dirfd, name, err);
		else
			log_warnx("%s: cannot read envelope: %s", name, err);
		return;
	}
	struct qmsg *m = qmsg_new(&env, where);
	if (m == NULL)
		log_fatalx("out of memory in recovery");
	qmsg_idle(m);
}

static void
recover_outgoing(const char *name)
{
	recover_env(queue_spool.outgoing, Q_OUTGOING, name);
}

static void
recover_incoming(const char *name)
{
	recover_env(queue_spool.incoming, Q_INCOMING, name);
}

static void
recover_data(const char *name)
{
	if (qmsg_find(name) == NULL) {
		/* a crash between the two commit renames: never acknowledged */
		log_info("%s: removing data file without envelope", name);
		unlinkat(queue_spool.data, name, 0);
	}
}

static void
queue_recover(void)
{
	size_t	 n = 0;
	struct qmsg *m;

	dir_walk(queue_spool.tmp, recover_tmp);
	dir_walk(queue_spool.outgoing, recover_outgoing);
	dir_walk(queue_spool.incoming, recover_incoming);
	dir_walk(queue_spool.data, recover_data);
	TAILQ_FOREACH(m, &deferred, entry)
		n++;
	if (n)
		log_info("recovered %zu messages from the spool", n);
}
