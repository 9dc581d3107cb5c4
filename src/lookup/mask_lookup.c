/*
 * mask_lookup - the masked relay's decisions. See mask_lookup.h.
 *
 * A guessed code fails its MAC before any table is read. Every refusal
 * is decided here at RCPT time where it can be (P8: no late bounces);
 * mask_resolve repeats the checks because the tables may have changed
 * between RCPT and the queue.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "mask.h"
#include "mask_lookup.h"

static unsigned long long verp_counter;

int
mask_domain_of(const struct config *c, const char *addr)
{
	const char	*at = strrchr(addr, '@');

	return c->mask_domain[0] && at && strcasecmp(at + 1,
	    c->mask_domain) == 0;
}

static void
lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static const char *const *
keys_of(const struct config *c)
{
	static const char	*k[SRS_SECRETS_MAX];

	for (size_t i = 0; i < c->nmask_keys; i++)
		k[i] = c->mask_keys[i];
	return k;
}

/* split a mask address: kind and code, or MASK_NONE */
static enum mask_kind
mask_split(const char *addr, char *local, size_t llen, char *code,
    size_t clen)
{
	const char	*at = strrchr(addr, '@');
	size_t		 n;

	if (at == NULL || (n = (size_t)(at - addr)) >= llen)
		return MASK_NONE;
	memcpy(local, addr, n);
	local[n] = '\0';
	return mask_local_parse(local, code, clen);
}

static enum mask_res
tres(enum table_res r)
{
	return r == TABLE_FOUND ? MASK_R_OK : r == TABLE_NOTFOUND ?
	    MASK_R_NOUSER : MASK_R_TEMPFAIL;
}

static int
service_live(const struct table_mask_service *s)
{
	return s->disabled == 0 && (s->expires == 0 ||
	    s->expires > (long long)time(NULL));
}

/* the code's MAC: a guessed code ends here, before any table */
static enum mask_res
code_valid(const struct config *c, enum mask_kind kind, const char *code,
    char *why, size_t whylen)
{
	int	 v = mask_code_valid(kind, code, keys_of(c), c->nmask_keys);

	if (v == 1)
		return MASK_R_OK;
	snprintf(why, whylen, v == -1 ? "MAC check failed" :
	    "not a valid %s code", kind == MASK_SERVICE ? "service" : "user");
	return v == -1 ? MASK_R_TEMPFAIL : MASK_R_NOUSER;
}

/* the service of a service code, if it may be written to */
static enum mask_res
service_of(struct table *t, const struct config *c, const char *code,
    struct table_mask_service *s, char *why, size_t whylen)
{
	enum mask_res	 r;

	if ((r = code_valid(c, MASK_SERVICE, code, why, whylen)) != MASK_R_OK)
		return r;
	if ((r = tres(table_mask_service_get(t, code, s))) != MASK_R_OK) {
		snprintf(why, whylen, "no such service");
		return r;
	}
	if (!service_live(s)) {
		snprintf(why, whylen, "service %s", s->disabled ? "disabled" :
		    "expired");
		return MASK_R_NOUSER;
	}
	return MASK_R_OK;
}

/* the pair of a user code and its service, if it may be written to */
static enum mask_res
pair_of(struct table *t, const struct config *c, const char *code,
    struct table_mask_pair *p, struct table_mask_service *s, char *why,
    size_t whylen)
{
	enum mask_res	 r;

	if ((r = code_valid(c, MASK_USER, code, why, whylen)) != MASK_R_OK)
		return r;
	if ((r = tres(table_mask_pair_get(t, code, p))) != MASK_R_OK) {
		snprintf(why, whylen, "no such user address");
		return r;
	}
	if ((r = tres(table_mask_service_get(t, p->service, s))) !=
	    MASK_R_OK) {
		snprintf(why, whylen, "no such service");
		return r;
	}
	if (p->disabled || !service_live(s)) {
		snprintf(why, whylen, "user address disabled");
		return MASK_R_NOUSER;
	}
	return MASK_R_OK;
}

/* what mask_decide found, for mask_resolve to go on with */
struct mask_hit {
	enum mask_kind			 kind;
	char				 code[TABLE_MASK_CODE_MAX + 1];
	struct table_mask_service	 s;
	struct table_mask_pair		 p;	/* MASK_USER */
	char				 pc[TABLE_MASK_CODE_MAX + 1];	/* VERP */
	unsigned long long		 no;	/* VERP */
};

/* The RCPT-time rules; h has the rows (or VERP fields) they looked at. */
static enum mask_res
mask_decide(struct table *t, const struct config *c, const char *rcpt,
    const char *sender, struct mask_hit *h, char *why, size_t whylen)
{
	char		 local[ADDR_LOCAL_MAX + 1];
	enum mask_res	 r;

	why[0] = '\0';
	memset(h, 0, sizeof(*h));
	if (!mask_domain_of(c, rcpt))
		return MASK_R_NOTMASK;
	switch ((h->kind = mask_split(rcpt, local, sizeof(local), h->code,
	    sizeof(h->code)))) {
	case MASK_SERVICE:
		if ((r = service_of(t, c, h->code, &h->s, why, whylen)) !=
		    MASK_R_OK)
			return r;
		if (sender[0] == '\0' || mask_domain_of(c, sender)) {
			snprintf(why, whylen, sender[0] ? "a mask address "
			    "cannot write to a service" : "the null sender "
			    "cannot write to a service");
			return MASK_R_DENIED;
		}
		return MASK_R_OK;
	case MASK_USER:
		if ((r = pair_of(t, c, h->code, &h->p, &h->s, why, whylen)) !=
		    MASK_R_OK)
			return r;
		if (strcasecmp(sender, h->s.real) != 0) {
			snprintf(why, whylen, "only the service may write to "
			    "this address");
			return MASK_R_DENIED;
		}
		return MASK_R_OK;
	case MASK_NONE:
		break;
	}
	/* a bounce of a relayed copy: only from the null sender */
	if (mask_verp_parse(local, keys_of(c), c->nmask_keys, h->pc,
	    sizeof(h->pc), &h->no) == 0) {
		if (sender[0] == '\0')
			return MASK_R_OK;
		snprintf(why, whylen, "this address takes bounces only");
		return MASK_R_DENIED;
	}
	snprintf(why, whylen, "not a mask address");
	return MASK_R_NOUSER;
}

enum mask_res
mask_check(struct table *t, const struct config *c, const char *rcpt,
    const char *sender, char *why, size_t whylen)
{
	struct mask_hit	 h;

	return mask_decide(t, c, rcpt, sender, &h, why, whylen);
}

static int
mkaddr(char *dst, size_t len, const char *prefix, const char *code,
    const char *domain)
{
	return (size_t)snprintf(dst, len, "%s%s@%s", prefix, code, domain) >=
	    len ? -1 : 0;
}

static enum mask_res
verp_for(const struct config *c, struct mask_route *mr)
{
	char	 local[ADDR_LOCAL_MAX + 1];

	/* the low bit says which side the copy went to */
	verp_counter = verp_counter ? verp_counter + 1 :
	    (unsigned long long)time(NULL) << 8;
	if (mask_verp_new(c->mask_keys[0], mr->pair, verp_counter << 1 |
	    (unsigned)mr->dir, local, sizeof(local)) == -1 ||
	    mkaddr(mr->verp, sizeof(mr->verp), "", local, c->mask_domain) == -1)
		return MASK_R_TEMPFAIL;
	return MASK_R_OK;
}

int
mask_delivered(struct table *t, const struct config *c, const char *sender)
{
	struct table_mask_pair	 p;
	char			 local[ADDR_LOCAL_MAX + 1], pc[MASK_CODE_LEN + 1];
	const char		*at = strrchr(sender, '@');
	unsigned long long	 no;
	size_t			 n;

	if (at == NULL || !mask_domain_of(c, sender) ||
	    (n = (size_t)(at - sender)) >= sizeof(local))
		return 0;
	memcpy(local, sender, n);
	local[n] = '\0';
	if (mask_verp_parse(local, keys_of(c), c->nmask_keys, pc, sizeof(pc),
	    &no) == -1)
		return 0;
	switch (table_mask_pair_get(t, pc, &p)) {
	case TABLE_FOUND:
		break;
	case TABLE_NOTFOUND:
		return 0;
	default:
		return -1;
	}
	/* the low bit of NO: the copy went to the person (1) or the
	   service's real address (0), as in mask_bounce() */
	return table_mask_ok(t, (no & 1) ? "pair" : "service",
	    (no & 1) ? p.code : p.service) == -1 ? -1 : 1;
}

/*
 * A bounce to bounce-PAIR-NO-MAC@: the copy of pair PAIR that went to the
 * service (low bit of NO 0) or to the person (1) came back. The real
 * address that failed gets a count (disabled at mask-bounce-limit); the
 * other side is told, naming only the mask address it wrote to.
 */
static enum mask_res
mask_bounce(struct table *t, const struct config *c, const char *pc,
    unsigned long long no, unsigned flags, struct mask_route *mr, char *why,
    size_t whylen)
{
	struct table_mask_service	 s;
	struct table_mask_pair		 p;
	const char			*d = c->mask_domain;

	if (flags & MASK_F_DELAYED) {
		snprintf(why, whylen, "delay notice for pair %s", pc);
		return MASK_R_DROP;
	}
	switch (table_mask_pair_get(t, pc, &p)) {
	case TABLE_FOUND:
		break;
	case TABLE_NOTFOUND:
		snprintf(why, whylen, "bounce for a pair that is gone");
		return MASK_R_DROP;
	default:
		return MASK_R_TEMPFAIL;
	}
	if (tres(table_mask_service_get(t, p.service, &s)) != MASK_R_OK) {
		snprintf(why, whylen, "bounce for a service that is gone");
		return MASK_R_DROP;
	}
	mr->dir = (no & 1) ? MASK_DIR_REPLY : MASK_DIR_IN;
	snprintf(mr->service, sizeof(mr->service), "%s", s.code);
	snprintf(mr->pair, sizeof(mr->pair), "%s", p.code);
	snprintf(mr->person, sizeof(mr->person), "%s", p.person);
	snprintf(mr->service_real, sizeof(mr->service_real), "%s", s.real);
	if (mkaddr(mr->user_mask, sizeof(mr->user_mask), "user-", p.code,
	    d) == -1 || mkaddr(mr->service_mask, sizeof(mr->service_mask),
	    "service-", s.code, d) == -1)
		return MASK_R_TEMPFAIL;
	if (mr->dir == MASK_DIR_IN) {
		/* the service's real address failed: tell the person */
		if (table_mask_bounce(t, "service", s.code,
		    c->mask_bounce_limit) == -1)
			return MASK_R_TEMPFAIL;
		snprintf(mr->target, sizeof(mr->target), "%s", p.person);
		snprintf(mr->from_mask, sizeof(mr->from_mask), "%s",
		    mr->service_mask);
	} else {
		if (table_mask_bounce(t, "pair", p.code,
		    c->mask_bounce_limit) == -1)
			return MASK_R_TEMPFAIL;
		snprintf(mr->target, sizeof(mr->target), "%s", s.real);
		snprintf(mr->from_mask, sizeof(mr->from_mask), "%s",
		    mr->user_mask);
	}
	if (table_mask_event(t, s.code, p.code, mr->dir == MASK_DIR_IN ?
	    "bounce-in" : "bounce-reply", (long long)time(NULL)) == -1)
		log_warnx("mask: cannot record the bounce of pair %s", p.code);
	log_info("mask: bounce of a copy to the %s of pair %s",
	    mr->dir == MASK_DIR_IN ? "service" : "person", p.code);
	return MASK_R_BOUNCE;
}

enum mask_res
mask_resolve(struct table *t, const struct config *c, const char *rcpt,
    const char *sender, unsigned flags, struct mask_route *mr, char *why,
    size_t whylen)
{
	int				 automatic = (flags & MASK_F_AUTO) != 0;

	struct mask_hit			 h;
	struct table_mask_service	*s = &h.s;
	struct table_mask_pair		 p;
	const char			*code = h.code;
	char				 person[ADDR_STR_MAX + 1];
	char				 ncode[TABLE_MASK_CODE_MAX + 1];
	enum mask_res			 r;
	const char			*d = c->mask_domain;

	memset(mr, 0, sizeof(*mr));
	/* the RCPT-time rules again (the tables may have changed since),
	   with the rows they read */
	if ((r = mask_decide(t, c, rcpt, sender, &h, why, whylen)) !=
	    MASK_R_OK)
		return r;
	if (h.kind == MASK_NONE)
		return mask_bounce(t, c, h.pc, h.no, flags, mr, why, whylen);
	if (h.kind == MASK_SERVICE) {
		snprintf(person, sizeof(person), "%s", sender);
		lower(person);
		switch (table_mask_pair_find(t, code, person, &p)) {
		case TABLE_FOUND:
			break;
		case TABLE_NOTFOUND:
			if (automatic) {
				/* an auto-reply never makes a pair */
				snprintf(why, whylen, "automatic message from "
				    "a new correspondent");
				return MASK_R_DROP;
			}
			if (mask_code_new(MASK_USER, c->mask_keys[0],
			    ncode, sizeof(ncode)) == -1 ||
			    table_mask_pair_add(t, ncode, code, person,
			    &p) != TABLE_FOUND) {
				snprintf(why, whylen, "cannot store the pair");
				return MASK_R_TEMPFAIL;
			}
			log_info("mask: new pair user-%s for service-%s", p.code,
			    code);
			break;
		default:
			snprintf(why, whylen, "table failure");
			return MASK_R_TEMPFAIL;
		}
		if (p.disabled) {
			snprintf(why, whylen, "user address disabled");
			return MASK_R_DROP;
		}
		mr->dir = MASK_DIR_IN;
		snprintf(mr->target, sizeof(mr->target), "%s", s->real);
		snprintf(mr->person, sizeof(mr->person), "%s", person);
	} else {
		p = h.p;
		mr->dir = MASK_DIR_REPLY;
		snprintf(mr->target, sizeof(mr->target), "%s", p.person);
		snprintf(mr->person, sizeof(mr->person), "%s", p.person);
	}
	snprintf(mr->service, sizeof(mr->service), "%s", s->code);
	snprintf(mr->pair, sizeof(mr->pair), "%s", p.code);
	snprintf(mr->service_real, sizeof(mr->service_real), "%s", s->real);
	if (mkaddr(mr->user_mask, sizeof(mr->user_mask), "user-", p.code,
	    d) == -1 || mkaddr(mr->service_mask, sizeof(mr->service_mask),
	    "service-", s->code, d) == -1)
		return MASK_R_TEMPFAIL;
	if (mr->dir == MASK_DIR_IN) {
		snprintf(mr->from_mask, sizeof(mr->from_mask), "%s",
		    mr->user_mask);
		snprintf(mr->reply_to, sizeof(mr->reply_to), "%s",
		    mr->user_mask);
	} else
		snprintf(mr->from_mask, sizeof(mr->from_mask), "%s",
		    mr->service_mask);
	if (mask_domain_of(c, mr->target)) {
		snprintf(why, whylen, "a mask never forwards to a mask address");
		return MASK_R_DROP;
	}
	if ((r = verp_for(c, mr)) != MASK_R_OK)
		return r;
	if (table_mask_event(t, s->code, p.code, mr->dir == MASK_DIR_IN ?
	    (automatic ? "auto-in" : "in") : (automatic ? "auto-reply" :
	    "reply"), (long long)time(NULL)) == -1)
		log_warnx("mask: cannot record the event of pair %s", p.code);
	return MASK_R_OK;
}
