/*
 * smtp_policy - rate limits, pregreet and DNSBL for SMTP sessions. See
 * smtp_policy.h.
 *
 * The tables are per process (the smtp process is one process). A DNSBL
 * answer may come after its session is gone: each lookup has a small
 * context the session forgets (points away from) when it ends; the
 * callback then only frees it.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/bufferevent.h>

#include "dns.h"
#include "log.h"
#include "proc.h"
#include "ratelimit.h"
#include "sluiced.h"
#include "smtpd.h"

#define POLICY_DNS_TIMEOUT_MS	2000	/* per try */
#define POLICY_DNS_TRIES	2
#define PREGREET_DRAIN_MAX	(64 * 1024)	/* bytes read, then close */

struct policy_dnsq {
	struct smtp_session	*s;	/* NULL once the session ended */
	unsigned		 slot;	/* in s->policy.dnsq */
	int			 tag;
	char			 zone[CONFIG_DNSBL_ZONE_MAX];
};

static struct {
	struct ratelimit	*conns;		/* open connections per client */
	struct ratelimit	*clients;	/* messages per client */
	struct ratelimit	*users;		/* messages per user */
	struct dns		*dns;		/* NULL: no DNSBL configured */
} pol;

/*
 * The resolver of the DNSBL lookups: made again when `resolver` changes.
 * Without one, c-ares reads /etc/resolv.conf, which is out of reach once
 * the process is chrooted: the resolver made at start is kept.
 */
static void
policy_dns_open(struct proc *p, int reload)
{
	static char	 server[CONFIG_STR_MAX];
	struct dns_conf	 dc;
	char		 err[256];

	if (p->conf->ndnsbl == 0 && !p->conf->spf_verify &&
	    !p->conf->dkim_verify && p->conf->dmarc == DMARC_ACT_OFF)
		return;		/* one made before stays, unused */
	if (pol.dns != NULL && (strcmp(server, p->conf->resolver) == 0 ||
	    p->conf->resolver[0] == '\0')) {
		if (strcmp(server, p->conf->resolver) != 0)
			log_warnx("smtp: resolver unset, keeping %s until a "
			    "restart", server);
		return;
	}
	if (reload && p->conf->resolver[0] == '\0')
		log_warnx("smtp: no resolver set; /etc/resolv.conf may be "
		    "out of reach (chroot): set resolver");
	if (pol.dns != NULL) {
		dns_free(pol.dns);	/* lookups in flight: not listed */
		pol.dns = NULL;
	}
	memset(&dc, 0, sizeof(dc));
	dc.server = p->conf->resolver[0] ? p->conf->resolver : NULL;
	dc.timeout_ms = POLICY_DNS_TIMEOUT_MS;
	dc.tries = POLICY_DNS_TRIES;
	if ((pol.dns = dns_new(p->base, &dc, err, sizeof(err))) == NULL)
		log_warnx("smtp: %s (no DNSBL, SPF, DKIM or DMARC lookups)", err);
	snprintf(server, sizeof(server), "%s", p->conf->resolver);
}

void
smtp_policy_init(struct proc *p)
{
	if ((pol.conns = ratelimit_new(RATELIMIT_MAX)) == NULL ||
	    (pol.clients = ratelimit_new(RATELIMIT_MAX)) == NULL ||
	    (pol.users = ratelimit_new(RATELIMIT_MAX)) == NULL)
		log_fatalx("out of memory");
	policy_dns_open(p, 0);
}

struct dns *
smtp_policy_dns(void)
{
	return pol.dns;
}

void
smtp_policy_reload(struct proc *p)
{
	policy_dns_open(p, 1);
}

/* Exempt from the client rules: the local listener, trusted networks. */
static int
policy_exempt(const struct smtp_session *s)
{
	return s->listener->local || s->trusted;
}

/* ---- DNSBL ---- */

static void
policy_dnsbl_listed(struct smtp_session *s, const struct policy_dnsq *q)
{
	struct smtp_policy	*pp = &s->policy;
	size_t			 used = strlen(pp->tags);

	log_info("%u: dnsbl client=%s listed by %s action=%s", s->id, s->addr,
	    q->zone, q->tag ? "tag" : "reject");
	if (!q->tag) {
		if (pp->reject[0] == '\0')
			snprintf(pp->reject, sizeof(pp->reject), "%s", q->zone);
		return;
	}
	/* XXX: a zone that does not fit any more is only logged */
	if (used + strlen(q->zone) + 3 < sizeof(pp->tags))
		snprintf(pp->tags + used, sizeof(pp->tags) - used, "%s%s",
		    used ? ", " : "", q->zone);
}

/* Is any answer address a listing? Error codes are logged, not listed. */
static int
policy_dnsbl_result(const struct policy_dnsq *q, uint32_t id,
    const struct dns_mx_result *res)
{
	int	 listed = 0;

	switch (res->status) {
	case DNS_OK:
		for (size_t i = 0; i < res->count; i++)
			if (dnsbl_listed_addr((const struct sockaddr *)
			    &res->hosts[i].addr))
				listed = 1;
		if (!listed)
			log_info("%u: dnsbl %s answered with no listing code "
			    "(an error code?): not listed", id, q->zone);
		return listed;
	case DNS_NXDOMAIN:
	case DNS_NOHOSTS:
		return 0;
	default:
		/* P3: a temporary failure is never a refusal */
		log_info("%u: dnsbl %s lookup failed (%s): not listed", id,
		    q->zone, res->error[0] ? res->error :
		    dns_status_name(res->status));
		return 0;
	}
}

static void
policy_dnsbl_answer(void *arg, const struct dns_mx_result *res)
{
	struct policy_dnsq	*q = arg;
	struct smtp_session	*s = q->s;

	if (s == NULL) {
		free(q);	/* the session is gone */
		return;
	}
	s->policy.dnsq[q->slot] = NULL;
	s->policy.pending--;
	if (policy_dnsbl_result(q, s->id, res))
		policy_dnsbl_listed(s, q);
	free(q);
	if (s->policy.pending == 0 && s->wait == SMTP_W_DNSBL) {
		s->wait = SMTP_W_NONE;
		smtp_answered(s);
	}
}

static void
policy_dnsbl_start(struct smtp_session *s)
{
	const struct config	*c = smtpd.conf;
	struct policy_dnsq	*q;
	char			 name[DNSBL_NAME_MAX + 1];

	if (pol.dns == NULL)
		return;
	for (size_t i = 0; i < c->ndnsbl && i < CONFIG_DNSBL_MAX; i++) {
		if (dnsbl_name((const struct sockaddr *)&s->ss,
		    c->dnsbl[i].zone, name, sizeof(name)) == -1)
			continue;
		if ((q = calloc(1, sizeof(*q))) == NULL) {
			log_warnx("%u: dnsbl %s: out of memory, not listed",
			    s->id, c->dnsbl[i].zone);
			continue;
		}
		q->s = s;
		q->slot = (unsigned)i;
		q->tag = c->dnsbl[i].tag;
		snprintf(q->zone, sizeof(q->zone), "%s", c->dnsbl[i].zone);
		if (dns_host(pol.dns, name, policy_dnsbl_answer, q) == -1) {
			log_warnx("%u: dnsbl %s: cannot start the lookup, not "
			    "listed", s->id, q->zone);
			free(q);
			continue;
		}
		s->policy.dnsq[i] = q;
		s->policy.pending++;
	}
}

enum policy_verdict
smtp_policy_dnsbl(struct smtp_session *s, char *reply, size_t len)
{
	struct smtp_policy	*pp = &s->policy;

	if (pp->pending)
		return POLICY_WAIT;
	if (pp->reject[0] == '\0')
		return POLICY_GO;
	log_info("%u: dnsbl reject client=%s listed by %s", s->id, s->addr,
	    pp->reject);
	snprintf(reply, len, "554 5.7.1 Service unavailable; client [%s] "
	    "listed by %s", s->addr, pp->reject);
	return POLICY_REFUSE;
}

size_t
smtp_policy_data(struct smtp_session *s, struct buf *out)
{
	size_t	 before = out->len;

	if (s->policy.tags[0] == '\0' || before != 0)
		return 0;
	if (buf_addf(out, "X-Sluice-DNSBL: %s\r\n", s->policy.tags) == -1) {
		/* out was empty: no tag rather than a sticky error */
		log_warnx("%u: out of memory, no DNSBL header", s->id);
		buf_reset(out);
		return 0;
	}
	return out->len - before;
}

/* ---- connections, pregreet ---- */

int
smtp_policy_connect(struct smtp_session *s, char *reply, size_t len)
{
	const struct config	*c = smtpd.conf;
	unsigned		 n;

	if (policy_exempt(s))
		return 0;
	if (c->client_connections) {
		n = ratelimit_conn_open(pol.conns, s->limit_key, time(NULL));
		s->policy.counted = 1;
		if (n > c->client_connections) {
			log_info("%u: too many connections from %s (limit %u)",
			    s->id, s->limit_key, c->client_connections);
			ratelimit_conn_close(pol.conns, s->limit_key,
			    time(NULL));
			s->policy.counted = 0;
			snprintf(reply, len, "421 4.7.0 Too many connections "
			    "from your address");
			return -1;
		}
	}
	if (s->listener->kind == LISTEN_SMTP)
		policy_dnsbl_start(s);
	return 0;
}

static void
policy_pregreet_done(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session	*s = arg;
	char			 b[4096];
	ssize_t			 n;
	size_t			 drained = 0;
	int			 talked = 0;

	(void)fd;
	(void)ev;
	n = recv(s->fd, b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0) {
		talked = 1;
		/* read what it sent: a close with unread input resets the
		   connection and the client might not see our reply */
		while (drained < PREGREET_DRAIN_MAX &&
		    (n = recv(s->fd, b, sizeof(b), MSG_DONTWAIT)) > 0)
			drained += (size_t)n;
		log_info("%u: pregreet from %s: talked before the greeting, "
		    "%zu bytes", s->id, s->addr, drained);
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR))
		talked = -1;
	s->policy.greet(s, talked);
}

int
smtp_policy_pregreet(struct smtp_session *s,
    void (*greet)(struct smtp_session *, int))
{
	struct timeval	 tv = { smtpd.conf->pregreet_wait, 0 };

	if (tv.tv_sec == 0 || policy_exempt(s) ||
	    s->listener->kind != LISTEN_SMTP || s->tls)
		return 0;
	s->policy.greet = greet;
	if ((s->policy.pregreet_ev = evtimer_new(smtpd.proc->base,
	    policy_pregreet_done, s)) == NULL ||
	    evtimer_add(s->policy.pregreet_ev, &tv) == -1) {
		log_warnx("%u: pregreet timer, greeting at once", s->id);
		return 0;
	}
	bufferevent_disable(s->bev, EV_READ);
	return 1;
}

/* ---- messages ---- */

int
smtp_policy_mail(struct smtp_session *s, char *reply, size_t len)
{
	const struct config	*c = smtpd.conf;
	time_t			 now = time(NULL);

	if (s->auth_user[0]) {
		if (ratelimit_hit(pol.users, s->auth_user, now,
		    c->user_msg_rate, 3600))
			return 0;
		log_info("%u: user=%s over its sending limit (%u an hour) "
		    "client=%s", s->id, s->auth_user, c->user_msg_rate,
		    s->addr);
		snprintf(reply, len, "451 4.7.1 Message rate exceeded: user "
		    "sending limit, try later");
		return -1;
	}
	if (policy_exempt(s) || ratelimit_hit(pol.clients, s->limit_key, now,
	    c->client_msg_rate, 60))
		return 0;
	log_info("%u: client %s over its message rate (%u a minute)", s->id,
	    s->limit_key, c->client_msg_rate);
	snprintf(reply, len, "451 4.7.1 Too many messages, slow down");
	return -1;
}

void
smtp_policy_end(struct smtp_session *s)
{
	struct smtp_policy	*pp = &s->policy;

	if (pp->pregreet_ev != NULL) {
		event_free(pp->pregreet_ev);
		pp->pregreet_ev = NULL;
	}
	for (size_t i = 0; i < CONFIG_DNSBL_MAX; i++)
		if (pp->dnsq[i] != NULL) {
			pp->dnsq[i]->s = NULL;	/* freed by its callback */
			pp->dnsq[i] = NULL;
		}
	pp->pending = 0;
	if (pp->counted) {
		ratelimit_conn_close(pol.conns, s->limit_key, time(NULL));
		pp->counted = 0;
	}
}
