/*
 * relay - the outbound SMTP process (the smtp transport): delivers mail for
 * other domains to their mail exchangers or to the route's host, on one
 * event loop, unprivileged.
 *
 * A job is one DELIVER_SMTP request: a message and its recipients that
 * take one route (for MX delivery: of one domain). The request carries
 * the route (queue-out chose it): MX of the domain, or HOST:PORT with its
 * TLS policy, AUTH file and From: rewriting. Addresses come from the
 * resolver (dns.c): MX hosts (ours pruned: a loop is permanent, 5.4.6) or
 * the route host's own addresses. Each address is tried in order with the
 * recipients still undecided: a 250 or a 5xx is final, a 4xx or a failed
 * connection moves them on to the next address, and what is left when the
 * addresses run out is deferred (P3). An opportunistic STARTTLS that fails
 * is retried once in clear on the same address.
 *
 * Connections belong to a destination (the domain for MX delivery, the
 * host and port for a route, with the TLS policy and credentials): at
 * most relay-destination-connections each and relay-connections in all;
 * jobs beyond that wait in their destination's queue. A connection that
 * finishes a message takes the next waiting job of its destination
 * (up to relay-messages-per-connection), or stays open for
 * relay-idle-time in case one comes (a connection cache), so a stream of
 * messages to one destination shares a few connections instead of one
 * per message.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "envelope.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "relay_dkim.h"
#include "rewrite.h"
#include "route.h"
#include "sluiced.h"
#include "smtp_client.h"

#define HEADER_SECTION_MAX	(1024 * 1024)	/* read for rewrite-from */
#define AUTH_FILE_MAX		4096

struct rjob_rcpt {
	char		 addr[ADDR_STR_MAX + 1];
	int		 done;		/* final outcome below */
	int		 replied;	/* text is a server's reply */
	enum rcpt_state	 state;
	char		 relay[300];
	char		 text[SMTP_CLIENT_TEXT_MAX];
};

struct rdest;

struct rjob {
	TAILQ_ENTRY(rjob)	 wait;		/* in its destination's queue */
	LIST_ENTRY(rjob)	 all;		/* for peer_down */
	struct ipc		*c;	/* NULL once that queue is gone */
	uint32_t		 id;
	struct rdest		*d;
	char			 qid[QUEUE_ID_LEN + 1];
	char			 from[ADDR_STR_MAX + 1];
	char			 domain[ADDR_DOMAIN_MAX + 1];
	/* the route */
	int			 viahost;
	int			 lmtp;		/* 1: unix socket, 2: IP:PORT */
	char			 host[256];
	char			 port[16];
	enum route_tls		 tls;
	char			 auth[1024];
	char			 rewrite_from[ROUTE_ADDR_MAX];
	int			 hdr_whole;	/* rewritten: all of it */
	char			*hdrs;
	size_t			 hlen;
	uint64_t		 offset;	/* of the body in the file */
	unsigned		 flags;
	uint64_t		 size;
	int			 fd;
	size_t			 n;
	struct rjob_rcpt	*r;
	struct dns_mx_result	*mx;
	size_t			 next;		/* next address to try */
	int			 notls;		/* retry this address in clear */
	int			 tried;		/* an attempt was made */
	const char		*cur[DELIVER_RCPTS_MAX];
	size_t			 curidx[DELIVER_RCPTS_MAX];
	size_t			 ncur;
	struct smtp_msg		 msg;
};

/* where connections go: jobs share them and their limits */
struct rconn;

struct rdest {
	LIST_ENTRY(rdest)	 entry;
	LIST_HEAD(, rconn)	 idle;		/* connections between messages */
	TAILQ_ENTRY(rdest)	 pending;	/* has jobs over the limit */
	int			 on_pending;
	char			 key[1400];
	TAILQ_HEAD(, rjob)	 wait;
	unsigned		 nconn;
	unsigned		 refs;		/* jobs and connections */
};

struct rconn {
	LIST_ENTRY(rconn)	 idle;
	int			 is_idle;
	int			 released;	/* its slot is free: closing */
	struct smtp_client	*cl;
	struct rdest		*d;
	struct rjob		*cur;		/* its message is on the wire */
	struct rjob		*ended;		/* finished; fate decided when
						   the connection ends */
	unsigned		 nmsgs;
};

static struct proc	*rp;
static struct dns	*resolver;
static struct dns_self	 self;
static SSL_CTX		*tls_ctx, *tls_ctx_verify;
static LIST_HEAD(, rjob) jobs;
static LIST_HEAD(, rdest) dests;
static TAILQ_HEAD(, rdest) pending = TAILQ_HEAD_INITIALIZER(pending);
static unsigned		 nconns;

static void	rjob_dispatch(struct rjob *);
static void	relay_pump(void);

/* ---- destinations ---- */

static struct rdest *
rdest_get(const struct rjob *j)
{
	struct rdest	*d;
	char		 key[sizeof(d->key)];

	if (j->lmtp)
		snprintf(key, sizeof(key), "lmtp %s %s", j->host, j->port);
	else if (j->viahost)
		snprintf(key, sizeof(key), "host %s %s %d %s", j->host,
		    j->port, j->tls, j->auth);
	else
		snprintf(key, sizeof(key), "mx %s %d", j->domain, j->tls);
	LIST_FOREACH(d, &dests, entry)
		if (strcasecmp(d->key, key) == 0) {
			d->refs++;
			return d;
		}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	snprintf(d->key, sizeof(d->key), "%s", key);
	TAILQ_INIT(&d->wait);
	LIST_INIT(&d->idle);
	d->refs = 1;
	LIST_INSERT_HEAD(&dests, d, entry);
	return d;
}

static void
rdest_unref(struct rdest *d)
{
	if (d == NULL || --d->refs > 0)
		return;
	if (d->on_pending)
		TAILQ_REMOVE(&pending, d, pending);
	LIST_REMOVE(d, entry);
	free(d);
}

static int
rdest_has_room(const struct rdest *d)
{
	return nconns < rp->conf->relay_conns &&
	    d->nconn < rp->conf->relay_dest_conns;
}

/* ---- jobs ---- */

static void
rjob_free(struct rjob *j)
{
	LIST_REMOVE(j, all);
	rdest_unref(j->d);
	if (j->fd != -1)
		close(j->fd);
	free(j->hdrs);
	free(j->r);
	free(j->mx);
	free(j);
}

/* Every recipient has its outcome: answer the queue, forget the job. */
static void
rjob_finish(struct rjob *j)
{
	struct buf	 b;

	if (j->c != NULL) {
		buf_init(&b, IPC_FRAME_MAX);
		ipc_put_u32(&b, (uint32_t)j->n);
		for (size_t i = 0; i < j->n; i++) {
			ipc_put_u32(&b, j->r[i].state);
			ipc_put_str(&b, j->r[i].relay);
			ipc_put_str(&b, j->r[i].text);
		}
		if (ipc_send_buf(j->c, QUEUE_RELAY_RESULT, j->id, -1, &b) == -1)
			log_warnx("%s: cannot answer the queue", j->qid);
		buf_free(&b);
	}
	rjob_free(j);
}

/* Decide every undecided recipient the same way. */
static void
rjob_settle(struct rjob *j, enum rcpt_state st, const char *relay,
    const char *text)
{
	for (size_t i = 0; i < j->n; i++) {
		if (j->r[i].done)
			continue;
		j->r[i].done = 1;
		j->r[i].state = st;
		snprintf(j->r[i].relay, sizeof(j->r[i].relay), "%s", relay);
		snprintf(j->r[i].text, sizeof(j->r[i].text), "%s", text);
	}
	rjob_finish(j);
}

/* The recipients still undecided, into j->cur; how many. */
static size_t
rjob_current(struct rjob *j)
{
	j->ncur = 0;
	for (size_t i = 0; i < j->n && j->ncur < DELIVER_RCPTS_MAX; i++)
		if (!j->r[i].done) {
			j->cur[j->ncur] = j->r[i].addr;
			j->curidx[j->ncur++] = i;
		}
	return j->ncur;
}

static void
rjob_prepare_msg(struct rjob *j)
{
	memset(&j->msg, 0, sizeof(j->msg));
	j->msg.from = j->from;
	j->msg.rcpts = j->cur;
	j->msg.nrcpts = j->ncur;
	j->msg.fd = j->fd;
	j->msg.headers = j->hdrs;
	j->msg.headerslen = j->hlen;
	j->msg.offset = j->offset;
	j->msg.size = j->offset ? 0 : j->size;
	j->msg.flags = ((j->flags & ENV_F_8BITMIME) ? SMTP_MSG_8BITMIME : 0) |
	    ((j->flags & ENV_F_SMTPUTF8) ? SMTP_MSG_SMTPUTF8 : 0);
	j->msg.arg = j;
	j->tried = 1;
}

/* One attempt of j is over: the next address (or the same in clear). */
static void
rjob_attempted(struct rjob *j, const struct smtp_conn_result *res)
{
	if (res && res->status == SMTP_CONN_TLS_FAILED && !j->notls) {
		log_info("%s: relay=%s STARTTLS failed (%s), trying again "
		    "without TLS", j->qid, res->relay, res->text);
		j->notls = 1;		/* same address, without TLS */
	} else {
		j->notls = 0;
		j->next++;
	}
	if (res && res->status != SMTP_CONN_OK)
		for (size_t k = 0; k < j->ncur; k++) {
			struct rjob_rcpt *r = &j->r[j->curidx[k]];
			if (!r->done && !r->replied && res->text[0])
				snprintf(r->text, sizeof(r->text), "%s",
				    res->text);
		}
	rjob_dispatch(j);
}

/* What the log says for an undecided recipient: none, or the LMTP server. */
static void
rjob_relay_name(const struct rjob *j, char *buf, size_t len)
{
	if (j->lmtp == 1)
		snprintf(buf, len, "lmtp:unix:%s", j->host);
	else if (j->lmtp == 2)
		snprintf(buf, len, "lmtp:%s%s%s:%s", strchr(j->host, ':') ?
		    "[" : "", j->host, strchr(j->host, ':') ? "]" : "",
		    j->port);
	else
		snprintf(buf, len, "none");
}

/* ---- connections ---- */

/* A connection no longer counts against the limits (closing or gone). */
static void
rconn_release(struct rconn *cn)
{
	struct rdest	*d = cn->d;

	if (cn->released)
		return;
	cn->released = 1;
	nconns--;
	d->nconn--;
	if (!TAILQ_EMPTY(&d->wait) && !d->on_pending) {
		TAILQ_INSERT_HEAD(&pending, d, pending);	/* its slot */
		d->on_pending = 1;
	}
}

static void
relay_on_msg(struct smtp_client *cl, struct smtp_msg *msg,
    const struct smtp_msg_result *res, void *arg)
{
	struct rconn	*cn = arg;
	struct rjob	*j = msg->arg, *nj;

	for (size_t k = 0; k < j->ncur; k++) {
		struct rjob_rcpt *r = &j->r[j->curidx[k]];
		const struct smtp_rcpt_result *rr = &res->rcpts[k];
		if (rr->status == SMTP_ST_TEMP && rr->code == 0 && r->replied)
			continue;	/* keep the earlier server's reason */
		snprintf(r->relay, sizeof(r->relay), "%s", res->relay);
		snprintf(r->text, sizeof(r->text), "%s", rr->text);
		r->replied = rr->code != 0;
		if (rr->status == SMTP_ST_TEMP)
			continue;	/* the next address may take it */
		r->done = 1;
		r->state = rr->status == SMTP_ST_DELIVERED ? RCPT_DELIVERED :
		    RCPT_BOUNCED;
	}
	cn->cur = NULL;
	cn->nmsgs++;
	/* reuse: the next fresh job of this destination, same connection */
	if (cn->nmsgs < rp->conf->relay_reuse)
		TAILQ_FOREACH(nj, &cn->d->wait, wait) {
			if (nj->tried || rjob_current(nj) == 0)
				continue;
			rjob_prepare_msg(nj);
			if (smtp_client_send(cl, &nj->msg) == -1)
				break;		/* the connection is ending */
			TAILQ_REMOVE(&cn->d->wait, nj, wait);
			cn->cur = nj;
			rjob_attempted(j, NULL);	/* it is alive */
			return;
		}
	if (rp->conf->relay_idle && cn->nmsgs < rp->conf->relay_reuse &&
	    smtp_client_alive(cl)) {
		/* cached for relay-idle-time: the next job may come soon */
		cn->is_idle = 1;
		LIST_INSERT_HEAD(&cn->d->idle, cn, idle);
		rjob_attempted(j, NULL);
		return;
	}
	/*
	 * Done with it: QUIT now (no idle wait), and give its slot to a
	 * waiting job at once; j's fate waits for the end (a failed STARTTLS
	 * is retried in clear).
	 */
	smtp_client_no_idle(cl);
	cn->ended = j;
	rconn_release(cn);
	relay_pump();
}

static void
relay_on_conn(struct smtp_client *cl, const struct smtp_conn_result *res,
    void *arg)
{
	struct rconn	*cn = arg;
	struct rdest	*d = cn->d;

	(void)cl;
	if (cn->is_idle)
		LIST_REMOVE(cn, idle);
	rconn_release(cn);
	if (cn->cur != NULL)		/* cannot happen: on_msg came first */
		rjob_attempted(cn->cur, res);
	if (cn->ended != NULL)
		rjob_attempted(cn->ended, res);
	free(cn);
	rdest_unref(d);
	relay_pump();
}

static const struct smtp_client_cbs relay_cbs = {
	relay_on_msg, relay_on_conn
};

/* Read the "USER PASSWORD" line of a route's auth file; -1 with why. */
static int
read_auth(const char *path, char *user, size_t ulen, char *pass,
    size_t plen, char *why, size_t whylen)
{
	struct stat	 st;
	char		 buf[AUTH_FILE_MAX];
	ssize_t		 n;
	char		*sp, *nl;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(why, whylen, "4.7.0 auth file %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		snprintf(why, whylen, "4.7.0 auth file %s must belong to the "
		    "queue's user and be readable by it alone (chmod 600)",
		    path);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	if ((nl = strchr(buf, '\n')) != NULL)
		*nl = '\0';
	if ((sp = strchr(buf, ' ')) == NULL || sp == buf || sp[1] == '\0' ||
	    (size_t)(sp - buf) >= ulen || strlen(sp + 1) >= plen) {
		explicit_bzero(buf, sizeof(buf));
		snprintf(why, whylen, "4.7.0 auth file %s: want one line "
		    "\"USER PASSWORD\"", path);
		return -1;
	}
	*sp = '\0';
	snprintf(user, ulen, "%s", buf);
	snprintf(pass, plen, "%s", sp + 1);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* RFC 5321's timeouts, none longer than smtp-out-timeout. */
static void
relay_timeouts(struct smtp_timeouts *t)
{
	unsigned	 cap = rp->conf->smtp_out_timeout * 1000;
	unsigned	*v[] = { &t->connect, &t->banner, &t->helo, &t->mail,
		&t->rcpt, &t->data_init, &t->data_block, &t->data_end,
		&t->quit };

	smtp_timeouts_default(t);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (*v[i] > cap)
			*v[i] = cap;
}

/* Open a connection to j's current address and hand it j; -1 if not. */
static int
rconn_open(struct rjob *j)
{
	struct smtp_client_params	 cp;
	struct sockaddr_storage		 ss;
	const struct dns_host		*h = &j->mx->hosts[j->next];
	struct smtp_client		*cl;
	struct rconn			*cn;
	char				 user[256], pass[512], why[512];
	unsigned			 port;

	memset(&cp, 0, sizeof(cp));
	if (j->tls == ROUTE_TLS_REQUIRED && tls_ctx_verify == NULL) {
		rjob_settle(j, RCPT_DEFERRED, "none", "4.7.5 TLS is required "
		    "but no CA certificates could be loaded");
		return 0;	/* j is gone */
	}
	if (j->auth[0]) {
		if (read_auth(j->auth, user, sizeof(user), pass, sizeof(pass),
		    why, sizeof(why)) == -1) {
			log_warnx("%s: %s", j->qid, why);
			rjob_settle(j, RCPT_DEFERRED, "none", why);
			return 0;	/* j is gone */
		}
		cp.auth_user = user;
		cp.auth_pass = pass;
	}
	if ((cn = calloc(1, sizeof(*cn))) == NULL)
		return -1;
	port = j->viahost ? (unsigned)strtoul(j->port, NULL, 10) :
	    rp->conf->smtp_out_port;
	memcpy(&ss, &h->addr, h->addrlen);
	if (ss.ss_family == AF_UNIX)
		;			/* LMTP to a socket: no port */
	else if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	cp.sa = (struct sockaddr *)&ss;
	cp.salen = h->addrlen;
	cp.relay_name = h->name;
	cp.helo = rp->conf->hostname;
	if (j->tls == ROUTE_TLS_REQUIRED) {
		cp.tls = SMTP_TLS_REQUIRED;
		cp.tls_ctx = tls_ctx_verify;
	} else {
		cp.tls = j->notls || j->tls == ROUTE_TLS_NONE ||
		    tls_ctx == NULL ? SMTP_TLS_NONE : SMTP_TLS_OPPORTUNISTIC;
		cp.tls_ctx = tls_ctx;
	}
	cp.log_id = j->qid;
	if (j->lmtp) {
		cp.lmtp = 1;
		cp.tls = SMTP_TLS_NONE;
		cp.relay_name = NULL;
	}
	cp.idle_ms = rp->conf->relay_idle * 1000;
	relay_timeouts(&cp.timeouts);
	rjob_prepare_msg(j);
	cn->d = j->d;
	cn->cur = j;
	cl = smtp_client_new(rp->base, &cp, &relay_cbs, cn);
	explicit_bzero(pass, sizeof(pass));
	if (cl == NULL || smtp_client_send(cl, &j->msg) == -1) {
		if (cl)
			smtp_client_free(cl);
		free(cn);
		return -1;
	}
	cn->cl = cl;
	cn->d->refs++;
	cn->d->nconn++;
	nconns++;
	return 0;
}

/* A fresh job takes a cached connection of its destination; 0 if so. */
static int
rconn_reuse_idle(struct rjob *j)
{
	struct rconn	*cn;

	while (!j->tried && (cn = LIST_FIRST(&j->d->idle)) != NULL) {
		LIST_REMOVE(cn, idle);
		cn->is_idle = 0;
		rjob_prepare_msg(j);
		if (smtp_client_send(cn->cl, &j->msg) == 0) {
			cn->cur = j;
			return 0;
		}
		j->tried = 0;	/* that one was closing: not an attempt */
	}
	return -1;
}

/*
 * j has recipients to send: to its next address now, or into its
 * destination's queue when the limits are reached; deferred when the
 * addresses are used up.
 */
static void
rjob_dispatch(struct rjob *j)
{
	for (;;) {
		if (rjob_current(j) == 0) {
			rjob_finish(j);
			return;
		}
		if (j->next >= j->mx->count) {
			/* out of addresses: deferred, each with its reply */
			for (size_t i = 0; i < j->n; i++) {
				struct rjob_rcpt *r = &j->r[i];
				if (r->done)
					continue;
				r->done = 1;
				r->state = RCPT_DEFERRED;
				if (r->text[0] == '\0')
					snprintf(r->text, sizeof(r->text),
					    "4.4.1 no %s %s reachable",
					    j->lmtp ? "LMTP server" :
					    "mail exchanger of", j->viahost ?
					    j->host : j->domain);
				if (r->relay[0] == '\0')
					rjob_relay_name(j, r->relay,
					    sizeof(r->relay));
			}
			rjob_finish(j);
			return;
		}
		if (rconn_reuse_idle(j) == 0)
			return;
		if (!rdest_has_room(j->d)) {
			TAILQ_INSERT_TAIL(&j->d->wait, j, wait);
			if (!j->d->on_pending) {
				TAILQ_INSERT_TAIL(&pending, j->d, pending);
				j->d->on_pending = 1;
			}
			return;
		}
		if (rconn_open(j) == 0)
			return;
		j->next++;	/* this address cannot even be tried */
		j->notls = 0;
	}
}

/* Connections were freed: start waiting jobs, destinations in turn. */
static void
relay_pump(void)
{
	struct rdest	*d;
	struct rjob	*j;

	while (nconns < rp->conf->relay_conns &&
	    (d = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, d, pending);
		d->on_pending = 0;
		if ((j = TAILQ_FIRST(&d->wait)) == NULL)
			continue;
		if (d->nconn >= rp->conf->relay_dest_conns)
			continue;	/* its own connections will take them */
		TAILQ_REMOVE(&d->wait, j, wait);
		if (!TAILQ_EMPTY(&d->wait)) {
			TAILQ_INSERT_TAIL(&pending, d, pending);
			d->on_pending = 1;
		}
		d->refs++;		/* j may free d */
		rjob_dispatch(j);
		rdest_unref(d);
	}
}

/* ---- requests ---- */

static void
relay_on_addrs(void *arg, const struct dns_mx_result *res)
{
	struct rjob	*j = arg;
	char		 why[SMTP_CLIENT_TEXT_MAX];

	if ((j->mx = malloc(sizeof(*j->mx))) == NULL) {
		rjob_settle(j, RCPT_DEFERRED, "none", "4.3.0 out of memory");
		return;
	}
	memcpy(j->mx, res, sizeof(*j->mx));
	if (j->viahost) {
		/* the route's host: whatever fails is ours, not theirs */
		if (j->mx->status != DNS_OK) {
			snprintf(why, sizeof(why), "4.4.3 route host %s: %s",
			    j->host, j->mx->error);
			rjob_settle(j, RCPT_DEFERRED, "none", why);
			return;
		}
		rjob_dispatch(j);
		return;
	}
	if (j->mx->status == DNS_OK)
		dns_mx_prune_self(j->mx, &self);
	switch (j->mx->status) {
	case DNS_OK:
		rjob_dispatch(j);
		return;
	case DNS_TEMPFAIL:
	case DNS_CANCELLED:
		rjob_settle(j, RCPT_DEFERRED, "none", j->mx->error);
		return;
	default:	/* null MX, no such domain, loop: permanent */
		rjob_settle(j, RCPT_BOUNCED, "none", j->mx->error);
		return;
	}
}

/*
 * The file's header section, read from its start: *hs is its length with
 * the empty line; *whole says it was found (or the file ended), not cut
 * at HEADER_SECTION_MAX. The caller frees *text.
 */
static int
rjob_read_header(struct rjob *j, char **text, size_t *hs, int *whole)
{
	size_t		 have = 0;
	ssize_t		 n = 0;

	*hs = 0;
	if ((*text = malloc(HEADER_SECTION_MAX)) == NULL)
		return -1;
	while (have < HEADER_SECTION_MAX && (*hs = header_section_len(*text,
	    have)) == 0) {
		n = pread(j->fd, *text + have, HEADER_SECTION_MAX - have,
		    (off_t)have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	*whole = *hs != 0 || n == 0;
	if (*hs == 0)
		*hs = have;	/* all header, or a huge one: all of it */
	return 0;
}

/*
 * rewrite-from: the file's header section goes into the header blob,
 * rewritten, and the body is sent from after it.
 */
static int
rjob_rewrite_from(struct rjob *j, char *why, size_t whylen)
{
	struct buf	 b;
	char		*text;
	size_t		 hs;
	int		 whole;

	if (rjob_read_header(j, &text, &hs, &whole) == -1) {
		snprintf(why, whylen, "4.3.0 out of memory");
		return -1;
	}
	buf_init(&b, j->hlen + hs + ROUTE_ADDR_MAX + 64);
	if (buf_add(&b, j->hdrs, j->hlen) == -1 ||
	    rewrite_from(text, hs, j->rewrite_from, &b) == -1) {
		free(text);
		buf_free(&b);
		snprintf(why, whylen, "4.3.0 out of memory");
		return -1;
	}
	free(text);
	free(j->hdrs);
	j->hdrs = b.data;	/* the buffer is ours now */
	j->hlen = b.len;
	j->offset = hs;
	j->hdr_whole = whole;
	return 0;
}

/*
 * DKIM: the signatures go first in the header blob. The signed header
 * section is the blob and the file's header section (or, rewritten, the
 * blob alone); the body is the file after it. Any failure: unsigned.
 */
static void
rjob_dkim(struct rjob *j)
{
	struct buf	 view, sigs;
	char		*text = NULL;
	size_t		 hs = 0;
	uint64_t	 body = j->offset;
	int		 whole = j->hdr_whole;

	buf_init(&view, j->hlen + HEADER_SECTION_MAX + 1);
	buf_init(&sigs, 256 * 1024);
	if (j->rewrite_from[0])
		buf_add(&view, j->hdrs, j->hlen);
	else if (rjob_read_header(j, &text, &hs, &whole) == 0) {
		buf_add(&view, j->hdrs, j->hlen);
		buf_add(&view, text, hs);
		body = hs;
	} else
		view.err = BUF_ENOMEM;
	free(text);
	if (view.err || !whole) {
		log_warnx("%s: dkim: %s, sent unsigned", j->qid, view.err ?
		    "out of memory" : "no end of the header section");
		goto done;
	}
	if (relay_dkim_sign(j->qid, j->from, view.data ? view.data : "",
	    view.len, j->fd, body, &sigs) == 0)
		goto done;
	if (buf_add(&sigs, j->hdrs, j->hlen) == -1) {
		log_warnx("%s: dkim: out of memory, sent unsigned", j->qid);
		goto done;
	}
	free(j->hdrs);
	j->hdrs = sigs.data;	/* the buffer is ours now */
	j->size += sigs.len - j->hlen;
	j->hlen = sigs.len;
	buf_free(&view);
	return;
done:
	buf_free(&view);
	buf_free(&sigs);
}

/* Parse a DELIVER_SMTP request into a job; NULL if malformed. */
static struct rjob *
rjob_parse(struct ipc_msg *m)
{
	struct ipc_rd	 rd;
	struct rjob	*j;
	const char	*h;
	uint32_t	 n;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->fd = -1;
	LIST_INSERT_HEAD(&jobs, j, all);
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, j->qid, sizeof(j->qid));
	ipc_get_str(&rd, j->from, sizeof(j->from));
	h = ipc_get_mem(&rd, &j->hlen);
	j->flags = ipc_get_u32(&rd);
	j->size = ipc_get_u64(&rd);
	ipc_get_str(&rd, j->domain, sizeof(j->domain));
	n = ipc_get_u32(&rd);	/* 0 MX, 1 host, 2/3 LMTP unix/inet */
	j->viahost = n != 0;
	j->lmtp = n >= 2 ? (int)n - 1 : 0;
	ipc_get_str(&rd, j->host, sizeof(j->host));
	ipc_get_str(&rd, j->port, sizeof(j->port));
	j->tls = (enum route_tls)ipc_get_u32(&rd);
	ipc_get_str(&rd, j->auth, sizeof(j->auth));
	ipc_get_str(&rd, j->rewrite_from, sizeof(j->rewrite_from));
	n = ipc_get_u32(&rd);
	if (rd.err || n == 0 || n > DELIVER_RCPTS_MAX || j->lmtp > 2 ||
	    j->tls >
	    ROUTE_TLS_NONE || (j->viahost && j->host[0] == '\0') ||
	    (j->r = calloc(n, sizeof(*j->r))) == NULL ||
	    (j->hdrs = malloc(j->hlen + 1)) == NULL) {
		rjob_free(j);
		return NULL;
	}
	memcpy(j->hdrs, h, j->hlen);
	j->n = n;
	for (size_t i = 0; i < n; i++)
		ipc_get_str(&rd, j->r[i].addr, sizeof(j->r[i].addr));
	if (ipc_get_end(&rd) == -1) {
		rjob_free(j);
		return NULL;
	}
	return j;
}

/* LMTP to a unix socket: its one "address" is the path. */
static void
rjob_resolve_unix(struct rjob *j)
{
	struct dns_mx_result	*res;
	struct sockaddr_un	*sun;
	struct dns_host		*h;

	if ((res = malloc(sizeof(*res))) == NULL ||
	    strlen(j->host) >= sizeof(sun->sun_path)) {
		free(res);
		rjob_settle(j, RCPT_DEFERRED, "none", res ? "4.3.5 LMTP "
		    "socket path too long" : "4.3.0 out of memory");
		return;
	}
	dns_result_init(res, j->host);
	h = &res->hosts[0];
	memset(h, 0, sizeof(*h));
	sun = (struct sockaddr_un *)&h->addr;
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", j->host);
	h->family = AF_UNIX;
	h->addrlen = sizeof(*sun);
	snprintf(h->name, sizeof(h->name), "unix");
	res->count = 1;
	relay_on_addrs(j, res);
	free(res);
}

/* The addresses of the route host or the MX of the domain. */
static void
rjob_resolve(struct rjob *j)
{
	struct dns_mx_result	*res;
	struct addrinfo		 hints, *ai;

	if (j->lmtp == 1) {
		rjob_resolve_unix(j);
		return;
	}
	if (j->viahost) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_flags = AI_NUMERICHOST;
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(j->host, NULL, &hints, &ai) == 0) {
			if ((res = malloc(sizeof(*res))) == NULL) {
				freeaddrinfo(ai);
				rjob_settle(j, RCPT_DEFERRED, "none",
				    "4.3.0 out of memory");
				return;
			}
			dns_result_init(res, j->host);
			dns_result_add(res, 0, j->host, ai->ai_addr,
			    ai->ai_addrlen);
			freeaddrinfo(ai);
			relay_on_addrs(j, res);
			free(res);
			return;
		}
	}
	if (resolver == NULL || (j->viahost ? dns_host(resolver, j->host,
	    relay_on_addrs, j) : dns_mx(resolver, j->domain, relay_on_addrs,
	    j)) == -1)
		rjob_settle(j, RCPT_DEFERRED, "none",
		    "4.4.3 cannot start a DNS lookup");
}

static void
relay_on_request(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct rjob	*j;
	struct buf	 b;
	char		 why[256];

	(void)arg;
	if (m->fd == -1 || (j = rjob_parse(m)) == NULL) {
		log_warnx("bad DELIVER_SMTP, refused");
		if (m->fd != -1)
			close(m->fd);
		buf_init(&b, 16);
		ipc_put_u32(&b, 0);	/* the queue defers them all */
		ipc_send_buf(c, QUEUE_RELAY_RESULT, m->id, -1, &b);
		buf_free(&b);
		return;
	}
	j->c = c;
	j->id = m->id;
	j->fd = m->fd;
	if ((j->d = rdest_get(j)) == NULL) {
		rjob_settle(j, RCPT_DEFERRED, "none", "4.3.0 out of memory");
		return;
	}
	if (j->rewrite_from[0] &&
	    rjob_rewrite_from(j, why, sizeof(why)) == -1) {
		rjob_settle(j, RCPT_DEFERRED, "none", why);
		return;
	}
	if (relay_dkim_nkeys() && !j->lmtp)	/* local mail: not signed */
		rjob_dkim(j);		/* after rewriting; unsigned if not */
	rjob_resolve(j);
}

/* The queue died: the jobs finish, but nobody hears about them. */
static void
relay_peer_down(struct proc *p, enum ipc_role role)
{
	struct rjob	*j;

	(void)p;
	if (role == ROLE_QUEUE)
		LIST_FOREACH(j, &jobs, all)
			j->c = NULL;
}

/* Our own addresses, from the listeners: an MX pointing at us is a loop. */
static void
relay_self(const struct config *conf)
{
	struct addrinfo	 hints, *res;

	dns_self_free(&self);
	dns_self_init(&self);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	for (size_t i = 0; i < conf->nlisten; i++) {
		if (getaddrinfo(conf->listen[i].host, NULL, &hints, &res) != 0)
			continue;
		dns_self_add(&self, res->ai_addr);
		freeaddrinfo(res);
	}
}

static void
relay_setup(struct proc *p)
{
	struct dns_conf	 dc;
	char		 err[512];

	if (resolver)
		dns_free(resolver);
	memset(&dc, 0, sizeof(dc));
	dc.server = p->conf->resolver[0] ? p->conf->resolver : NULL;
	if ((resolver = dns_new(p->base, &dc, err, sizeof(err))) == NULL)
		log_warnx("resolver: %s (outbound mail is deferred)", err);
	relay_self(p->conf);
	relay_dkim_load(p->conf);
	/* required TLS verifies against relay-ca-file or the system store;
	   connections in flight keep their reference */
	if (tls_ctx_verify)
		SSL_CTX_free(tls_ctx_verify);
	if ((tls_ctx_verify = smtp_client_tls_ctx(p->conf->relay_ca[0] ?
	    p->conf->relay_ca : NULL)) == NULL)
		log_warnx("TLS: cannot load %s: routes with tls required are "
		    "deferred", p->conf->relay_ca[0] ? p->conf->relay_ca :
		    "the system CA store");
	relay_pump();		/* the limits may have grown */
}

static const struct ipc_handler queue_handlers[] = {
	{ DELIVER_SMTP, relay_on_request },
	{ 0, NULL }
};

int
relay_main(struct proc *p)
{
	rp = p;
	p->handlers[ROLE_QUEUE] = queue_handlers;
	p->on_peer_down = relay_peer_down;
	p->on_reload = relay_setup;
	dns_self_init(&self);
	if ((tls_ctx = smtp_client_tls_ctx(NULL)) == NULL)
		log_warnx("TLS: no client context, STARTTLS is not used");
	relay_setup(p);
	return proc_run(p);
}
