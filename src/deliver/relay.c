/*
 * relay - the outbound SMTP process (the smtp transport): delivers mail for
 * other domains to their mail exchangers, on one event loop, unprivileged.
 *
 * A job is one DELIVER_SMTP request: a message and the recipients it has
 * in one domain. The MX hosts come from the resolver (dns.c), ours pruned
 * (a loop is permanent, 5.4.6); each address is tried in order with the
 * recipients still undecided: a 250 or a 5xx is final, a 4xx or a failed
 * connection moves them on to the next address, and what is left when the
 * addresses run out is deferred (P3: never permanent). An opportunistic
 * STARTTLS that fails is retried once in clear on the same address.
 *
 * XXX: one connection per job; no connection reuse or per-destination
 * limits yet, and no relay-host or routes (issue 3).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "envelope.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "smtp_client.h"

struct rjob_rcpt {
	char		 addr[ADDR_STR_MAX + 1];
	int		 done;		/* final outcome below */
	int		 replied;	/* text is a server's reply */
	enum rcpt_state	 state;
	char		 relay[300];
	char		 text[SMTP_CLIENT_TEXT_MAX];
};

struct rjob {
	struct ipc		*c;	/* NULL once that queue is gone */
	uint32_t		 id;
	char			 qid[QUEUE_ID_LEN + 1];
	char			 from[ADDR_STR_MAX + 1];
	char			 domain[ADDR_DOMAIN_MAX + 1];
	char			*hdrs;
	size_t			 hlen;
	unsigned		 flags;
	uint64_t		 size;
	int			 fd;
	size_t			 n;
	struct rjob_rcpt	*r;
	struct dns_mx_result	*mx;
	size_t			 next;		/* next address to try */
	int			 notls;		/* retry this address in clear */
	const char		*cur[DELIVER_RCPTS_MAX];
	size_t			 curidx[DELIVER_RCPTS_MAX];
	size_t			 ncur;
	struct smtp_msg		 msg;
	struct rjob		*nextjob;	/* all jobs, for peer_down */
};

static struct proc	*rp;
static struct dns	*resolver;
static struct dns_self	 self;
static SSL_CTX		*tls_ctx;
static struct rjob	*jobs;

static void	rjob_try(struct rjob *);

static void
rjob_free(struct rjob *j)
{
	struct rjob	**pp;

	for (pp = &jobs; *pp; pp = &(*pp)->nextjob)
		if (*pp == j) {
			*pp = j->nextjob;
			break;
		}
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

static void
relay_on_msg(struct smtp_client *cl, struct smtp_msg *msg,
    const struct smtp_msg_result *res, void *arg)
{
	struct rjob	*j = arg;

	(void)cl;
	(void)msg;
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
}

static void
relay_on_conn(struct smtp_client *cl, const struct smtp_conn_result *res,
    void *arg)
{
	struct rjob	*j = arg;

	(void)cl;
	if (res->status == SMTP_CONN_TLS_FAILED && !j->notls) {
		j->notls = 1;		/* same address, without TLS */
	} else {
		j->notls = 0;
		j->next++;
	}
	if (res->status != SMTP_CONN_OK)
		for (size_t k = 0; k < j->ncur; k++) {
			struct rjob_rcpt *r = &j->r[j->curidx[k]];
			if (!r->done && !r->replied && res->text[0])
				snprintf(r->text, sizeof(r->text), "%s",
				    res->text);
		}
	rjob_try(j);
}

static const struct smtp_client_cbs relay_cbs = {
	relay_on_msg, relay_on_conn
};

/* Send the undecided recipients to the next address, or give up. */
static void
rjob_try(struct rjob *j)
{
	struct smtp_client_params	 cp;
	struct sockaddr_storage		 ss;
	const struct dns_host		*h;
	struct smtp_client		*cl;

	j->ncur = 0;
	for (size_t i = 0; i < j->n && j->ncur < DELIVER_RCPTS_MAX; i++)
		if (!j->r[i].done) {
			j->cur[j->ncur] = j->r[i].addr;
			j->curidx[j->ncur++] = i;
		}
	if (j->ncur == 0) {
		rjob_finish(j);
		return;
	}
	if (j->next >= j->mx->count) {
		/* out of addresses: deferred, each with its last reply */
		for (size_t i = 0; i < j->n; i++) {
			struct rjob_rcpt *r = &j->r[i];
			if (r->done)
				continue;
			r->done = 1;
			r->state = RCPT_DEFERRED;
			if (r->text[0] == '\0')
				snprintf(r->text, sizeof(r->text), "4.4.1 no "
				    "mail exchanger of %s reachable", j->domain);
			if (r->relay[0] == '\0')
				snprintf(r->relay, sizeof(r->relay), "none");
		}
		rjob_finish(j);
		return;
	}
	h = &j->mx->hosts[j->next];
	memcpy(&ss, &h->addr, h->addrlen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port =
		    htons((uint16_t)rp->conf->smtp_out_port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port =
		    htons((uint16_t)rp->conf->smtp_out_port);
	memset(&cp, 0, sizeof(cp));
	cp.sa = (struct sockaddr *)&ss;
	cp.salen = h->addrlen;
	cp.relay_name = h->name;
	cp.helo = rp->conf->hostname;
	cp.tls = j->notls || tls_ctx == NULL ? SMTP_TLS_NONE :
	    SMTP_TLS_OPPORTUNISTIC;
	cp.tls_ctx = tls_ctx;
	cp.log_id = j->qid;
	smtp_timeouts_default(&cp.timeouts);
	memset(&j->msg, 0, sizeof(j->msg));
	j->msg.from = j->from;
	j->msg.rcpts = j->cur;
	j->msg.nrcpts = j->ncur;
	j->msg.fd = j->fd;
	j->msg.headers = j->hdrs;
	j->msg.headerslen = j->hlen;
	j->msg.size = j->size;
	j->msg.flags = ((j->flags & ENV_F_8BITMIME) ? SMTP_MSG_8BITMIME : 0) |
	    ((j->flags & ENV_F_SMTPUTF8) ? SMTP_MSG_SMTPUTF8 : 0);
	j->msg.arg = j;
	if ((cl = smtp_client_new(rp->base, &cp, &relay_cbs, j)) == NULL ||
	    smtp_client_send(cl, &j->msg) == -1) {
		if (cl)
			smtp_client_free(cl);
		j->next++;
		rjob_try(j);	/* XXX: bounded by the address count */
	}
}

static void
relay_on_mx(void *arg, const struct dns_mx_result *res)
{
	struct rjob	*j = arg;

	if ((j->mx = malloc(sizeof(*j->mx))) == NULL) {
		rjob_settle(j, RCPT_DEFERRED, "none", "4.3.0 out of memory");
		return;
	}
	memcpy(j->mx, res, sizeof(*j->mx));
	if (j->mx->status == DNS_OK)
		dns_mx_prune_self(j->mx, &self);
	switch (j->mx->status) {
	case DNS_OK:
		rjob_try(j);
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
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, j->qid, sizeof(j->qid));
	ipc_get_str(&rd, j->from, sizeof(j->from));
	h = ipc_get_mem(&rd, &j->hlen);
	j->flags = ipc_get_u32(&rd);
	j->size = ipc_get_u64(&rd);
	ipc_get_str(&rd, j->domain, sizeof(j->domain));
	n = ipc_get_u32(&rd);
	if (rd.err || n == 0 || n > DELIVER_RCPTS_MAX ||
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

static void
relay_on_request(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct rjob	*j;
	struct buf	 b;

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
	j->nextjob = jobs;
	jobs = j;
	if (resolver == NULL || dns_mx(resolver, j->domain, relay_on_mx, j) ==
	    -1)
		rjob_settle(j, RCPT_DEFERRED, "none",
		    "4.4.3 cannot start a DNS lookup");
}

/* The queue died: the jobs finish, but nobody hears about them. */
static void
relay_peer_down(struct proc *p, enum ipc_role role)
{
	(void)p;
	if (role == ROLE_QUEUE)
		for (struct rjob *j = jobs; j; j = j->nextjob)
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
