/*
 * smtp_verify - SPF, DKIM and DMARC for inbound mail. See smtp_verify.h.
 *
 * One struct smtp_verify per transaction holds the DNS cache the three
 * evaluators share. verify_run() runs whatever is not finished yet, from
 * the start, over the cache; every question it leaves wanted is asked on
 * the resolver, and each answer runs it again. A question in flight has
 * a small context that outlives the transaction if need be: the
 * transaction forgets (points away from) its questions when it ends, and
 * a late answer then only frees its context.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "authres.h"
#include "buf.h"
#include "dkim_verify.h"
#include "dmarc.h"
#include "dns.h"
#include "dns_cache.h"
#include "log.h"
#include "rewrite.h"
#include "smtp_verify.h"
#include "sluiced.h"
#include "smtpd.h"
#include "spf.h"

#define VERIFY_FROM_MAX		8	/* From: addresses read */
#define VERIFY_HDR_MAX		4096	/* the field we add */
#define FORGED_NAME		"X-Spoofed-Auth-Results"
#define AR_NAME			"Authentication-Results"

struct verify_q {
	struct verify_q		*next;
	struct smtp_verify	*v;	/* NULL: the transaction ended */
	enum dns_rr		 type;
	char			 name[DNS_CACHE_NAME_MAX + 1];
};

struct smtp_verify {
	struct smtp_session	*s;
	struct dns_cache	*cache;
	struct dkimv		*dkim;
	struct verify_q		*qs;		/* asked, not answered */
	int			 ended;		/* end of data reached */
	int			 waiting;	/* the session waits for us */
	int			 finished;	/* verify_finish() ran */
	enum verify_verdict	 verdict;	/* what it said */
	/* SPF */
	int			 spf_done;
	char			 sender[ADDR_STR_MAX + 1];
	char			 spf_domain[DNS_CACHE_NAME_MAX + 1];
	struct spf_outcome	 spf;
	/* DKIM */
	int			 dkim_done;
	/* From: and DMARC */
	int			 nfrom;		/* From: addresses, -1 unreadable */
	const char		*hdr;		/* the header section (dkimv's) */
	size_t			 hl;		/* its length, set at the end */
	char			 from_domain[DNS_CACHE_NAME_MAX + 1];
	int			 dmarc_done;
	struct dmarc_outcome	 dmarc;
	/* the outcome */
	char			 reply[256];
	struct buf		 field;
};

static void	verify_ask(struct smtp_verify *);
static enum verify_verdict verify_run(struct smtp_verify *);

/* Which sessions are checked: see smtp_verify.h. */
static int
verify_applies(const struct smtp_session *s)
{
	const struct config	*c = smtpd.conf;

	if (s->listener->local || s->listener->kind != LISTEN_SMTP ||
	    s->trusted ||
	    s->auth_user[0])
		return 0;
	return c->spf_verify || c->dkim_verify || c->dmarc != DMARC_ACT_OFF;
}

static const char *
verify_authserv_id(void)
{
	return smtpd.conf->authserv_id[0] ? smtpd.conf->authserv_id :
	    smtpd.conf->hostname;
}

static void
verify_forget(struct smtp_verify *v)
{
	for (struct verify_q *q = v->qs; q != NULL; q = q->next)
		q->v = NULL;
	v->qs = NULL;
}

void
smtp_verify_reset(struct smtp_session *s)
{
	struct smtp_verify	*v = s->verify;

	if (v == NULL)
		return;
	verify_forget(v);
	dns_cache_free(v->cache);
	dkimv_free(v->dkim);
	buf_free(&v->field);
	free(v);
	s->verify = NULL;
}

void
smtp_verify_mail(struct smtp_session *s)
{
	struct smtp_verify	*v;
	const char		*at;

	smtp_verify_reset(s);
	if (!verify_applies(s))
		return;
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v->cache = dns_cache_new()) == NULL ||
	    (v->dkim = dkimv_new(time(NULL))) == NULL) {
		if (v != NULL)
			dns_cache_free(v->cache);
		free(v);
		log_warnx("%u: verify: out of memory, no SPF/DKIM/DMARC "
		    "checks for this message", s->id);
		return;
	}
	v->s = s;
	buf_init(&v->field, VERIFY_HDR_MAX);
	s->verify = v;
	snprintf(v->sender, sizeof(v->sender), "%s", s->from);
	/* RFC 7208 2.4: the null sender is checked as postmaster@HELO */
	at = strrchr(s->from, '@');
	snprintf(v->spf_domain, sizeof(v->spf_domain), "%s",
	    at != NULL ? at + 1 : s->helo);
	if (!smtpd.conf->spf_verify)
		v->spf_done = 1;
	if (!smtpd.conf->dkim_verify)
		v->dkim_done = 1;
	verify_run(v);
}

void
smtp_verify_feed(struct smtp_session *s, const void *p, size_t len)
{
	if (s->verify != NULL && len > 0)
		dkimv_feed(s->verify->dkim, p, len);
}

/* ---- DNS ---- */

static void
verify_answer(void *arg, enum dns_rstatus st, const char *const *rr,
    size_t n, int cancelled)
{
	struct verify_q		*q = arg, **qp;
	struct smtp_verify	*v = q->v;
	enum verify_verdict	 vd;

	if (v == NULL) {	/* the transaction is gone */
		free(q);
		return;
	}
	for (qp = &v->qs; *qp != NULL; qp = &(*qp)->next)
		if (*qp == q) {
			*qp = q->next;
			break;
		}
	if (cancelled)
		st = DNS_R_TEMP;
	if (dns_cache_put(v->cache, q->type, q->name, st, rr, n) == -1)
		log_warnx("%u: verify: out of memory storing %s %s",
		    v->s->id, dns_rr_name(q->type), q->name);
	free(q);
	vd = verify_run(v);
	if (v->waiting && vd != VERIFY_PENDING) {
		v->waiting = 0;
		smtp_verify_done(v->s, vd);
	}
}

/* Ask every question the evaluators left wanted. */
static void
verify_ask(struct smtp_verify *v)
{
	struct dns		*dns = smtp_policy_dns();
	struct verify_q		*q;
	enum dns_rr		 type;
	const char		*name;

	while (dns_cache_next_wanted(v->cache, &type, &name)) {
		if (dns == NULL || (q = calloc(1, sizeof(*q))) == NULL) {
			dns_cache_put(v->cache, type, name, DNS_R_TEMP, NULL,
			    0);
			continue;
		}
		q->v = v;
		q->type = type;
		snprintf(q->name, sizeof(q->name), "%s", name);
		q->next = v->qs;
		v->qs = q;
		if (dns_rr(dns, type, q->name, verify_answer, q) == -1) {
			v->qs = q->next;
			free(q);
			dns_cache_put(v->cache, type, name, DNS_R_TEMP, NULL,
			    0);
		}
	}
}

/* ---- the checks ---- */

static void
verify_spf(struct smtp_verify *v)
{
	struct smtp_session	*s = v->s;
	struct spf_query	 q;

	memset(&q, 0, sizeof(q));
	q.ip = (const struct sockaddr *)&s->ss;
	q.sender = v->sender;
	q.helo = s->helo;
	q.domain = v->spf_domain;
	q.receiver = smtpd.conf->hostname;
	q.now = time(NULL);
	v->spf_done = spf_check(&q, v->cache, &v->spf);
}

/* The From: addresses of the header section: how many, and the domain. */
static void
verify_from(struct smtp_verify *v)
{
	char		 (*addrs)[HEADER_ADDR_MAX];
	const char	*at;

	if ((addrs = calloc(VERIFY_FROM_MAX, sizeof(*addrs))) == NULL) {
		v->nfrom = -1;
		return;
	}
	v->nfrom = header_addresses(v->hdr, v->hl, "From", addrs,
	    VERIFY_FROM_MAX);
	if (v->nfrom == 1 && (at = strrchr(addrs[0], '@')) != NULL)
		snprintf(v->from_domain, sizeof(v->from_domain), "%s",
		    at + 1);
	else if (v->nfrom == 1)
		v->nfrom = -1;	/* no domain: nothing to align with */
	free(addrs);
}

static void
verify_dmarc(struct smtp_verify *v, int prefetch)
{
	struct dmarc_query	 q;
	size_t			 i, n;

	memset(&q, 0, sizeof(q));
	q.from_domain = v->from_domain;
	q.spf_domain = strchr(v->sender, '@') != NULL ? v->spf_domain : "";
	q.spf_pass = v->spf_done && v->spf.result == SPF_PASS;
	q.spf_temp = v->spf_done && v->spf.result == SPF_TEMPERROR;
	n = smtpd.conf->dkim_verify ? dkimv_count(v->dkim) : 0;
	for (i = 0; i < n && i < DMARC_DKIM_MAX; i++) {
		const struct dkimv_sig *sig = dkimv_sig(v->dkim, i);
		q.dkim[i].d = sig->d;
		/* RFC 6376 3.6.1: a key in testing mode (t=y) signs like
		   no signature at all */
		q.dkim[i].pass = sig->result == DKIMV_PASS && !sig->testing;
		q.dkim[i].temp = sig->result == DKIMV_TEMPERROR;
	}
	q.ndkim = i;
	if (dmarc_check(&q, v->cache, &v->dmarc) && !prefetch)
		v->dmarc_done = 1;
}

/* ---- the outcome ---- */

/* "a@b" as smtp.mailfrom; the HELO name when the sender is null */
static void
verify_field(struct smtp_verify *v)
{
	struct authres_entry	 e[3 + DKIMV_SIGS_MAX];
	char			 dcomment[DKIMV_SIGS_MAX][160];
	char			 mcomment[192];
	size_t			 n = 0, i, nsig;

	memset(e, 0, sizeof(e));
	if (smtpd.conf->spf_verify) {
		e[n].method = "spf";
		e[n].result = spf_result_name(v->spf.result);
		e[n].comment = v->spf.reason;
		if (strchr(v->sender, '@') != NULL) {
			e[n].props[0].name = "smtp.mailfrom";
			e[n].props[0].value = v->sender;
		} else {
			e[n].props[0].name = "smtp.helo";
			e[n].props[0].value = v->s->helo;
		}
		e[n++].nprops = 1;
	}
	if (smtpd.conf->dkim_verify) {
		nsig = dkimv_count(v->dkim);
		if (nsig == 0) {
			e[n].method = "dkim";
			e[n++].result = "none";
		}
		for (i = 0; i < nsig; i++) {
			const struct dkimv_sig *sig = dkimv_sig(v->dkim, i);
			snprintf(dcomment[i], sizeof(dcomment[i]), "%s%s%s%s",
			    sig->alg, sig->reason[0] ? ": " : "",
			    sig->reason, sig->testing ? ", testing key" : "");
			e[n].method = "dkim";
			e[n].result = dkimv_result_name(sig->result);
			e[n].comment = dcomment[i];
			e[n].props[0].name = "header.d";
			e[n].props[0].value = sig->d;
			e[n].props[1].name = "header.s";
			e[n].props[1].value = sig->s;
			e[n].props[2].name = "header.b";
			e[n].props[2].value = sig->b8;
			e[n++].nprops = 3;
		}
	}
	if (v->nfrom > 1) {
		e[n].method = "dmarc";
		e[n].result = "permerror";
		snprintf(mcomment, sizeof(mcomment), "%d From: addresses",
		    v->nfrom);
		e[n++].comment = mcomment;
	} else if (v->nfrom <= 0 && smtpd.conf->dmarc != DMARC_ACT_OFF) {
		e[n].method = "dmarc";
		e[n].result = "none";
		e[n++].comment = "no From: domain";
	} else if (smtpd.conf->dmarc != DMARC_ACT_OFF) {
		if (v->dmarc.policy == DMARC_P_UNSET)	/* no record */
			snprintf(mcomment, sizeof(mcomment), "%s",
			    v->dmarc.reason);
		else
			snprintf(mcomment, sizeof(mcomment), "%s%sp=%s",
			    v->dmarc.reason, v->dmarc.reason[0] ? ", " : "",
			    dmarc_policy_name(v->dmarc.policy));
		e[n].method = "dmarc";
		e[n].result = dmarc_result_name(v->dmarc.result);
		e[n].comment = mcomment;
		e[n].props[0].name = "header.from";
		e[n].props[0].value = v->from_domain;
		e[n++].nprops = 1;
	}
	buf_reset(&v->field);
	if (authres_format(&v->field, verify_authserv_id(), e, n) == -1) {
		log_warnx("%u: verify: Authentication-Results too long",
		    v->s->id);
		buf_reset(&v->field);
	}
}

/*
 * Fields in the message that claim our authserv-id are renamed in the
 * data file (same length, so nothing moves): only we may say what we
 * found. Fields past what the verifier kept (256 KB) are not seen.
 */
static void
verify_unforge(struct smtp_verify *v)
{
	struct smtp_session	*s = v->s;
	const char		*hdr = v->hdr, *f, *colon;
	size_t			 hl = v->hl, off = 0, end;

	while (off < hl) {
		end = header_field_end(hdr, hl, off);
		f = hdr + off;
		colon = NULL;
		if (end - off >= sizeof(AR_NAME) &&
		    strncasecmp(f, AR_NAME, sizeof(AR_NAME) - 1) == 0) {
			/* "Name :" is the obsolete syntax, still read */
			colon = f + sizeof(AR_NAME) - 1;
			while (colon < hdr + end &&
			    (*colon == ' ' || *colon == '\t'))
				colon++;
			if (colon == hdr + end || *colon++ != ':')
				colon = NULL;
		}
		if (colon != NULL) {
			if (authres_is_ours(colon, hdr + end - colon,
			    verify_authserv_id())) {
				if (pwrite(s->datafd, FORGED_NAME,
				    sizeof(FORGED_NAME) - 1, (off_t)off) !=
				    (ssize_t)(sizeof(FORGED_NAME) - 1))
					log_warnx("%s: verify: cannot rename "
					    "a forged Authentication-Results",
					    s->qid);
				else
					log_info("%s: renamed an "
					    "Authentication-Results: claiming "
					    "to be ours", s->qid);
			}
		}
		if (end <= off)
			break;
		off = end;
	}
}

static void
verify_log(struct smtp_verify *v)
{
	char	 dk[256];
	size_t	 i, n = dkimv_count(v->dkim), l = 0;

	dk[0] = '\0';
	for (i = 0; i < n && l < sizeof(dk); i++) {
		const struct dkimv_sig *sig = dkimv_sig(v->dkim, i);
		int w = snprintf(dk + l, sizeof(dk) - l, "%s%s(d=%s)",
		    i ? "," : "", dkimv_result_name(sig->result), sig->d);
		if (w < 0)
			break;
		l += (size_t)w;
	}
	if (dkimv_seen(v->dkim) > n)
		log_info("%s: verify: %zu DKIM signatures, the first %zu "
		    "checked", v->s->qid, dkimv_seen(v->dkim), n);
	log_info("%s: verify client=%s spf=%s dkim=%s dmarc=%s from=%s",
	    v->s->qid, v->s->addr,
	    smtpd.conf->spf_verify ? spf_result_name(v->spf.result) : "off",
	    !smtpd.conf->dkim_verify ? "off" : n ? dk : "none",
	    v->nfrom > 1 ? "permerror(multiple From)" :
	    smtpd.conf->dmarc == DMARC_ACT_OFF || v->nfrom <= 0 ? "none" :
	    dmarc_result_name(v->dmarc.result),
	    v->from_domain[0] ? v->from_domain : "-");
}

/* Everything is known: the field, and what to do. */
static enum verify_verdict
verify_finish(struct smtp_verify *v)
{
	const struct config	*c = smtpd.conf;

	verify_field(v);
	verify_unforge(v);
	verify_log(v);
	if (v->nfrom > 1 && c->multiple_from == FROM_ACT_REJECT) {
		snprintf(v->reply, sizeof(v->reply), "550 5.7.1 Message "
		    "rejected: more than one From: address");
		return VERIFY_REJECT;
	}
	if (c->dmarc != DMARC_ACT_ENFORCE || v->nfrom != 1 ||
	    v->dmarc.result != DMARC_FAIL || !dmarc_enforceable(&v->dmarc))
		return VERIFY_ACCEPT;
	if (v->dmarc.policy == DMARC_P_REJECT) {
		snprintf(v->reply, sizeof(v->reply), "550 5.7.1 Message "
		    "rejected: DMARC policy of %.200s", v->from_domain);
		return VERIFY_REJECT;
	}
	return VERIFY_HOLD;
}

/*
 * Run what is not finished over the cache and ask what it wants. A
 * question that cannot be asked (no resolver, no memory) is answered
 * DNS_R_TEMP at once; then no answer will come to run us again, so we
 * run again here (each round answers at least one question, and the
 * cache is bounded).
 */
static enum verify_verdict
verify_run(struct smtp_verify *v)
{
	if (v->finished)	/* a late answer nobody needs any more */
		return v->verdict;
	for (size_t round = 0; round <= DNS_CACHE_MAX + 1; round++) {
		if (!v->spf_done)
			verify_spf(v);
		if (v->ended) {
			if (!v->dkim_done)
				v->dkim_done = dkimv_verify(v->dkim, v->cache);
			if (!v->dmarc_done && v->nfrom == 1 &&
			    smtpd.conf->dmarc != DMARC_ACT_OFF)
				/* fetched while SPF and DKIM wait */
				verify_dmarc(v, !v->spf_done || !v->dkim_done);
			else
				v->dmarc_done = 1;
		}
		verify_ask(v);
		if (v->ended && v->spf_done && v->dkim_done &&
		    v->dmarc_done) {
			v->verdict = verify_finish(v);
			v->finished = 1;
			return v->verdict;
		}
		if (dns_cache_pending(v->cache) > 0 || !v->ended)
			return VERIFY_PENDING;	/* answers will come */
	}
	log_warnx("%s: verify: no end in sight, accepted unchecked",
	    v->s->qid);
	v->finished = 1;
	return v->verdict = VERIFY_ACCEPT;
}

enum verify_verdict
smtp_verify_end(struct smtp_session *s)
{
	struct smtp_verify	*v = s->verify;
	enum verify_verdict	 vd;
	size_t			 len;
	int			 trunc;

	if (v == NULL)
		return VERIFY_ACCEPT;
	v->ended = 1;
	/* the header section the verifier kept, without what follows it */
	v->hdr = dkimv_header(v->dkim, &len, &trunc);
	if ((v->hl = header_section_len(v->hdr, len)) == 0)
		v->hl = len;
	verify_from(v);
	if ((vd = verify_run(v)) == VERIFY_PENDING)
		v->waiting = 1;
	return vd;
}

const char *
smtp_verify_reply(struct smtp_session *s)
{
	return s->verify != NULL && s->verify->reply[0] ? s->verify->reply :
	    "451 4.3.0 Message not checked, try again later";
}

const struct buf *
smtp_verify_header(struct smtp_session *s)
{
	return s->verify != NULL && s->verify->field.len > 0 ?
	    &s->verify->field : NULL;
}
