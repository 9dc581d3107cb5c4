/*
 * dmarc - DMARC policy discovery, record parsing and identifier alignment
 * over the DNS answer cache (dmarc.h).
 *
 * Written from RFC 7489 (sections 3.1, 6.3, 6.6) and the DMARCbis draft
 * (t=, np=); nothing here talks to the network or keeps state between
 * calls, so dmarc_check() can run again from the start after each round
 * of DNS answers.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <libpsl.h>

#include "dmarc.h"

#define WSP(c)	((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')

enum dmarc_tag { T_V, T_P, T_SP, T_NP, T_ADKIM, T_ASPF, T_PCT, T_T, T_RUA,
	T_UNKNOWN };

static const char *const dmarc_tags[] = {
	"v", "p", "sp", "np", "adkim", "aspf", "pct", "t", "rua", NULL
};

/* one tag=value of the record, both trimmed, not NUL ended */
struct tagval {
	const char	*name, *val;
	size_t		 nlen, vlen;
};

struct parse_state {
	struct dmarc_record	*rec;
	unsigned		 seen;
	int			 p_bad, sp_bad, rua_ok;
};

/* ---- record syntax ---- */

static int
span_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && WSP(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && WSP((*s)[*len - 1]))
		(*len)--;
}

/* "none" / "quarantine" / "reject", or P_UNSET */
static enum dmarc_policy
policy_word(const char *s, size_t len)
{
	if (span_is(s, len, "none"))
		return DMARC_P_NONE;
	if (span_is(s, len, "quarantine"))
		return DMARC_P_QUARANTINE;
	if (span_is(s, len, "reject"))
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

/* one DMARC URI (RFC 7489 6.4): scheme ":" something [ "!" size ] */
static int
uri_ok(const char *s, size_t len)
{
	size_t	 i, bang;

	for (bang = len; bang > 0 && s[bang - 1] != '!'; bang--)
		;
	if (bang > 0)
		len = bang - 1;
	if (len == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z'))
		return 0;
	for (i = 1; i < len && s[i] != ':'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
		    !(c >= '0' && c <= '9') && c != '+' && c != '-' &&
		    c != '.')
			return 0;
	}
	if (i + 1 >= len)	/* no ':' or nothing after it */
		return 0;
	for (i++; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* 1 if a comma-separated list has at least one valid URI */
static int
urilist_ok(const char *s, size_t len)
{
	while (len > 0) {
		const char	*comma = memchr(s, ',', len);
		const char	*u = s;
		size_t		 ulen = comma ? (size_t)(comma - s) : len;

		s += ulen;
		len -= ulen;
		if (comma != NULL) {
			s++;
			len--;
		}
		trim(&u, &ulen);
		if (uri_ok(u, ulen))
			return 1;
	}
	return 0;
}

static int
pct_value(const char *s, size_t len, unsigned *pct)
{
	unsigned	 v = 0;

	if (len == 0 || len > 3)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 100)
		return -1;
	*pct = v;
	return 0;
}

static enum dmarc_tag
tag_lookup(const char *name, size_t len)
{
	for (size_t i = 0; dmarc_tags[i] != NULL; i++)	/* case sensitive */
		if (strlen(dmarc_tags[i]) == len &&
		    memcmp(dmarc_tags[i], name, len) == 0)
			return (enum dmarc_tag)i;
	return T_UNKNOWN;
}

/* 0, or -1 with err: one tag of the record */
static int
tag_apply(struct parse_state *ps, const struct tagval *tv, char *err,
    size_t errlen)
{
	struct dmarc_record	*r = ps->rec;
	enum dmarc_tag		 t = tag_lookup(tv->name, tv->nlen);
	const char		*v = tv->val;
	size_t			 vl = tv->vlen;

	if (t == T_UNKNOWN)
		return 0;
	if (ps->seen & (1u << t)) {
		snprintf(err, errlen, "repeated %s=", dmarc_tags[t]);
		return -1;
	}
	ps->seen |= 1u << t;
	switch (t) {
	case T_V:	/* marked seen by dmarc_parse: never here */
		break;
	case T_P:
		if ((r->p = policy_word(v, vl)) == DMARC_P_UNSET)
			ps->p_bad = 1;
		return 0;
	case T_SP:
		if ((r->sp = policy_word(v, vl)) == DMARC_P_UNSET)
			ps->sp_bad = 1;
		return 0;
	case T_NP:	/* DMARCbis; a bad value is ignored */
		r->np = policy_word(v, vl);
		return 0;
	case T_ADKIM:
	case T_ASPF:
		if (!span_is(v, vl, "r") && !span_is(v, vl, "s"))
			break;
		*(t == T_ADKIM ? &r->adkim_strict : &r->aspf_strict) =
		    span_is(v, vl, "s");
		return 0;
	case T_PCT:
		if (pct_value(v, vl, &r->pct) == -1)
			break;
		return 0;
	case T_T:
		if (!span_is(v, vl, "y") && !span_is(v, vl, "n"))
			break;
		r->testing = span_is(v, vl, "y");
		return 0;
	case T_RUA:
		ps->rua_ok = urilist_ok(v, vl);
		return 0;
	case T_UNKNOWN:
		break;
	}
	snprintf(err, errlen, "bad %s= value", dmarc_tags[t]);
	return -1;
}

/* split one ';'-separated segment into a trimmed tag and value */
static int
tag_split(const char *s, size_t len, struct tagval *tv)
{
	const char	*eq = memchr(s, '=', len);

	if (eq == NULL)
		return -1;
	tv->name = s;
	tv->nlen = (size_t)(eq - s);
	tv->val = eq + 1;
	tv->vlen = len - tv->nlen - 1;
	trim(&tv->name, &tv->nlen);
	trim(&tv->val, &tv->vlen);
	if (tv->nlen == 0 || !((tv->name[0] | 0x20) >= 'a' &&
	    (tv->name[0] | 0x20) <= 'z'))
		return -1;
	for (size_t i = 1; i < tv->nlen; i++) {
		unsigned char c = (unsigned char)tv->name[i];
		if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
		    !(c >= '0' && c <= '9') && c != '_')
			return -1;
	}
	return 0;
}

int
dmarc_is_record(const char *txt)
{
	const char	*s = txt;

	while (WSP(*s))
		s++;
	if (*s++ != 'v')
		return 0;
	while (WSP(*s))
		s++;
	if (*s++ != '=')
		return 0;
	while (WSP(*s))
		s++;
	if (strncmp(s, "DMARC1", 6) != 0)
		return 0;
	for (s += 6; WSP(*s); s++)
		;
	return *s == '\0' || *s == ';';
}

int
dmarc_parse(const char *txt, struct dmarc_record *r, char *err,
    size_t errlen)
{
	struct parse_state	 ps = { r, 1u << T_V, 0, 0, 0 };
	struct tagval		 tv;
	const char		*s;

	memset(r, 0, sizeof(*r));
	r->pct = 100;
	if (!dmarc_is_record(txt)) {
		snprintf(err, errlen, "not a DMARC record");
		return -1;
	}
	s = strchr(txt, ';');
	while (s != NULL) {
		const char	*seg = s + 1, *end = strchr(seg, ';');
		size_t		 len = end ? (size_t)(end - seg) : strlen(seg);

		s = end;
		trim(&seg, &len);
		if (len == 0)
			continue;
		if (tag_split(seg, len, &tv) == -1) {
			snprintf(err, errlen, "syntax error");
			return -1;
		}
		if (tag_apply(&ps, &tv, err, errlen) == -1)
			return -1;
	}
	if (r->p == DMARC_P_UNSET || ps.p_bad || ps.sp_bad) {
		if (!ps.rua_ok) {
			snprintf(err, errlen, ps.sp_bad && !ps.p_bad &&
			    r->p != DMARC_P_UNSET ? "bad sp= value" :
			    "no valid p=");
			return -1;
		}
		r->p = r->sp = DMARC_P_NONE;	/* RFC 7489 6.6.3 */
		r->p_from_rua = 1;
	}
	if (r->sp == DMARC_P_UNSET)
		r->sp = r->p;
	if (r->np == DMARC_P_UNSET)
		r->np = r->sp;
	return 0;
}

/* ---- names ---- */

/* a checked, lower-case copy of a domain without its trailing dot */
static int
name_norm(const char *in, char *out, size_t outlen)
{
	size_t	 len = strlen(in), label = 0;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > DMARC_NAME_MAX || len >= outlen)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (++label > 63 || !(((c | 0x20) >= 'a' &&
		    (c | 0x20) <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return -1;
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : (char)c;
	}
	if (label == 0)
		return -1;
	out[len] = '\0';
	return 0;
}

int
dmarc_org_domain(const char *domain, char *out, size_t outlen)
{
	const psl_ctx_t	*psl = psl_builtin();
	const char	*reg = NULL;
	char		 norm[DMARC_NAME_MAX + 1];
	size_t		 len;

	if (domain == NULL || name_norm(domain, norm, sizeof(norm)) == -1)
		return -1;
	/*
	 * XXX: a libpsl built without its list has no builtin context;
	 * then every domain is its own organizational domain (relaxed works
	 * as strict), which never aligns two different registrants.
	 */
	if (psl != NULL)
		reg = psl_registrable_domain(psl, norm);
	if (reg == NULL)
		reg = norm;
	if ((len = strlen(reg)) >= outlen)
		return -1;
	memcpy(out, reg, len + 1);
	return 0;
}

/* ---- evaluation ---- */

enum disc { DISC_NEED, DISC_FOUND, DISC_NONE, DISC_MULTI, DISC_TEMP,
	DISC_BAD };

/* the DMARC record at _dmarc.<domain>, if one */
static enum disc
discover(struct dns_cache *c, const char *domain, struct dmarc_record *r,
    char *err, size_t errlen)
{
	const struct dns_rrset	*a;
	char			 name[DMARC_NAME_MAX + 8];
	const char		*txt = NULL;
	size_t			 n = 0;

	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	if ((a = dns_cache_get(c, DNS_RR_TXT, name)) == NULL)
		return DISC_NEED;
	if (a->status == DNS_R_TEMP)
		return DISC_TEMP;
	if (a->status != DNS_R_OK)
		return DISC_NONE;
	for (size_t i = 0; i < a->n; i++)
		if (dmarc_is_record(a->rr[i])) {
			txt = a->rr[i];
			n++;
		}
	if (n == 0)
		return DISC_NONE;
	if (n > 1)
		return DISC_MULTI;
	return dmarc_parse(txt, r, err, errlen) == 0 ? DISC_FOUND : DISC_BAD;
}

/* 1 if the identifier id aligns with the From domain */
static int
aligned(const char *id, const char *from, const char *org, int strict)
{
	char	 n[DMARC_NAME_MAX + 1];

	if (id == NULL || name_norm(id, n, sizeof(n)) == -1)
		return 0;
	if (strict)
		return strcmp(n, from) == 0;
	return dmarc_org_domain(n, n, sizeof(n)) == 0 && strcmp(n, org) == 0;
}

/* 1 if an identifier that would align could not be checked (DNS) */
static int
align_temp(const struct dmarc_query *q, size_t nd, const char *from,
    const char *org, const struct dmarc_record *r)
{
	for (size_t i = 0; i < nd; i++)
		if (q->dkim[i].temp && aligned(q->dkim[i].d, from, org,
		    r->adkim_strict))
			return 1;
	return q->spf_temp && q->spf_domain != NULL &&
	    aligned(q->spf_domain, from, org, r->aspf_strict);
}

/* pass, fail or temperror once a valid record is known */
static void
align(const struct dmarc_query *q, const char *from, const char *org,
    struct dmarc_outcome *o)
{
	const struct dmarc_record	*r = &o->record;
	size_t				 nd = q->ndkim;
	char				 d[DMARC_NAME_MAX + 1];

	if (nd > DMARC_DKIM_MAX)
		nd = DMARC_DKIM_MAX;
	for (size_t i = 0; i < nd && !o->dkim_aligned; i++)
		if (q->dkim[i].pass && aligned(q->dkim[i].d, from, org,
		    r->adkim_strict)) {
			o->dkim_aligned = 1;
			if (name_norm(q->dkim[i].d, d, sizeof(d)) == -1)
				d[0] = '\0';
		}
	o->spf_aligned = q->spf_pass && q->spf_domain != NULL &&
	    aligned(q->spf_domain, from, org, r->aspf_strict);
	o->result = o->dkim_aligned || o->spf_aligned ? DMARC_PASS :
	    DMARC_FAIL;
	if (o->result == DMARC_FAIL && align_temp(q, nd, from, org, r)) {
		o->result = DMARC_TEMPERROR;
		snprintf(o->reason, sizeof(o->reason), "DNS timeout for an "
		    "identifier that would align");
		return;
	}
	if (o->dkim_aligned)
		snprintf(o->reason, sizeof(o->reason), "aligned DKIM %s", d);
	else if (o->spf_aligned)
		snprintf(o->reason, sizeof(o->reason), "aligned SPF");
	else
		snprintf(o->reason, sizeof(o->reason), "no aligned identifier");
}

int
dmarc_check(const struct dmarc_query *q, struct dns_cache *c,
    struct dmarc_outcome *o)
{
	char		 from[DMARC_NAME_MAX + 1], org[DMARC_NAME_MAX + 1];
	char		 err[96];
	const char	*at = from;
	enum disc	 d;

	memset(o, 0, sizeof(*o));
	if (q->from_domain == NULL ||
	    name_norm(q->from_domain, from, sizeof(from)) == -1 ||
	    dmarc_org_domain(from, org, sizeof(org)) == -1) {
		o->result = DMARC_NONE;	/* RFC 8601: no aligned identifier */
		snprintf(o->reason, sizeof(o->reason), "no valid From domain");
		return 1;
	}
	d = discover(c, from, &o->record, err, sizeof(err));
	if (d == DISC_NONE && strcmp(from, org) != 0) {
		at = org;
		d = discover(c, org, &o->record, err, sizeof(err));
	}
	switch (d) {
	case DISC_NEED:
		memset(o, 0, sizeof(*o));
		return 0;
	case DISC_TEMP:
		o->result = DMARC_TEMPERROR;
		snprintf(o->reason, sizeof(o->reason), "DNS timeout");
		return 1;
	case DISC_NONE:
	case DISC_MULTI:
		o->result = DMARC_NONE;
		snprintf(o->reason, sizeof(o->reason), d == DISC_NONE ?
		    "no DMARC record" : "multiple DMARC records");
		return 1;
	case DISC_BAD:
		memset(&o->record, 0, sizeof(o->record));
		o->result = DMARC_PERMERROR;
		snprintf(o->record_domain, sizeof(o->record_domain), "%s", at);
		snprintf(o->reason, sizeof(o->reason), "bad record: %s", err);
		return 1;
	case DISC_FOUND:
		break;
	}
	snprintf(o->record_domain, sizeof(o->record_domain), "%s", at);
	o->policy = at == org && strcmp(from, org) != 0 ? o->record.sp :
	    o->record.p;
	align(q, from, org, o);
	return 1;
}

int
dmarc_enforceable(const struct dmarc_outcome *o)
{
	return (o->policy == DMARC_P_QUARANTINE ||
	    o->policy == DMARC_P_REJECT) && o->record.pct > 0 &&
	    !o->record.testing;
}

const char *
dmarc_result_name(enum dmarc_result r)
{
	switch (r) {
	case DMARC_NONE:	return "none";
	case DMARC_PASS:	return "pass";
	case DMARC_FAIL:	return "fail";
	case DMARC_TEMPERROR:	return "temperror";
	case DMARC_PERMERROR:	return "permerror";
	}
	return "permerror";
}

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_QUARANTINE:	return "quarantine";
	case DMARC_P_REJECT:		return "reject";
	case DMARC_P_UNSET:
	case DMARC_P_NONE:
		break;
	}
	return "none";
}
