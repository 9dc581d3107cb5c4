/*
 * resolve - the table callbacks of expand() (resolve.h).
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "resolve.h"
#include "srs.h"

static int
src_domain(void *arg, const char *domain)
{
	struct resolver	*r = arg;
	enum table_res	 res;

	/* the host name is always ours (postmaster@, RFC 5321 4.5.1) */
	if (r->hostname && strcasecmp(domain, r->hostname) == 0)
		return 1;
	/* so is the domain of our rewritten senders, for their bounces */
	if (r->nsrs_secrets && r->srs_domain &&
	    strcasecmp(domain, r->srs_domain) == 0)
		return 1;
	if (r->tbl == NULL)
		return -1;
	res = table_domain_local(r->tbl, domain);
	return res == TABLE_TEMPFAIL ? -1 : res == TABLE_FOUND;
}

static int
src_account(void *arg, const char *local, const char *domain)
{
	struct resolver	*r = arg;
	enum table_res	 res;

	if (r->tbl == NULL)
		return -1;
	res = table_account_exists(r->tbl, local, domain);
	return res == TABLE_TEMPFAIL ? -1 : res == TABLE_FOUND;
}

static void
dbent_free(struct dbent *d)
{
	for (size_t i = 0; i < d->ent.ntargets; i++)
		free(d->ent.targets[i].text);
	free(d->ent.targets);
	free(d);
}

void
resolver_free(struct resolver *r)
{
	struct dbent	*d;

	while ((d = r->dbents) != NULL) {
		r->dbents = d->next;
		dbent_free(d);
	}
}

/* One database row (target, owner) into the entry being read. */
static void
db_row(void *arg, const char **cols, size_t n)
{
	struct resolver		*r = arg;
	struct dbent		*d = r->dbcur;
	struct alias_target	*t;
	struct passwd		*pw;
	const char		*v = cols[0];
	enum alias_kind		 kind = ALIAS_ADDR;

	if (n < 2 || r->dberr)
		return;
	if (v[0] == '|' || v[0] == '/') {
		kind = v[0] == '|' ? ALIAS_PIPE : ALIAS_FILE;
		if (!r->db_commands) {
			/* a row a web form wrote: never a command unless the
			   administrator said so (alias-database-commands) */
			log_warnx("alias %s: target \"%.100s\" ignored: "
			    "commands and files in database aliases need "
			    "alias-database-commands yes", d->key, v);
			return;
		}
		if (kind == ALIAS_PIPE)
			v++;
	}
	if (d->ent.ntargets == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		if (cap > ALIASES_TARGETS_MAX || (t = reallocarray(
		    d->ent.targets, cap, sizeof(*t))) == NULL) {
			r->dberr = 1;
			return;
		}
		d->ent.targets = t;
		d->cap = cap;
	}
	t = &d->ent.targets[d->ent.ntargets];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	if ((t->text = strdup(v)) == NULL) {
		r->dberr = 1;
		return;
	}
	/* the owner is a user name: "" or unknown runs as robot-user */
	t->owner = cols[1][0] && (pw = getpwnam(cols[1])) != NULL ?
	    pw->pw_uid : 0;
	d->ent.ntargets++;
}

/* key's database alias: 1 (in *out, valid until resolver_free), 0 none,
   -1 temporary failure */
static int
db_alias(struct resolver *r, const char *key, const struct alias_entry **out)
{
	struct dbent	*d;
	enum table_res	 res;

	if (r->tbl == NULL || (d = calloc(1, sizeof(*d))) == NULL)
		return -1;
	snprintf(d->key, sizeof(d->key), "%s", key);
	d->ent.key = d->key;
	r->dbcur = d;
	r->dberr = 0;
	res = table_alias_get(r->tbl, key, db_row, r);
	r->dbcur = NULL;
	if (res == TABLE_TEMPFAIL || r->dberr) {
		dbent_free(d);
		return -1;
	}
	if (res == TABLE_NOTFOUND || d->ent.ntargets == 0) {
		dbent_free(d);
		return 0;
	}
	d->next = r->dbents;
	r->dbents = d;
	*out = &d->ent;
	return 1;
}

static int
src_alias(void *arg, const char *key, const struct alias_entry **out)
{
	struct resolver	*r = arg;

	*out = r->aliases ? aliases_get(r->aliases, key) : NULL;
	if (*out != NULL)
		return 1;
	/* the database holds only keys with a domain */
	if (strchr(key, '@') == NULL)
		return 0;
	return db_alias(r, key, out);
}

/* each "prefix*@domain" key: keep the longest prefix of r->dblocal */
static void
db_wild_row(void *arg, const char **cols, size_t n)
{
	struct resolver	*r = arg;
	const char	*star;
	size_t		 plen;

	if (n < 1 || (star = strchr(cols[0], '*')) == NULL)
		return;
	plen = (size_t)(star - cols[0]);
	if (strncasecmp(cols[0], r->dblocal, plen) == 0 &&
	    (r->dbwild[0] == '\0' || plen > r->dbwildlen)) {
		snprintf(r->dbwild, sizeof(r->dbwild), "%s", cols[0]);
		r->dbwildlen = plen;
	}
}

static int
src_wildcard(void *arg, const char *local, const char *domain,
    const struct alias_entry **out, const char **rest)
{
	struct resolver	*r = arg;
	enum table_res	 res;
	int		 rc;

	*out = r->aliases ? aliases_wildcard(r->aliases, local, domain, rest) :
	    NULL;
	if (*out != NULL)
		return 1;
	if (r->tbl == NULL)
		return -1;
	r->dbwild[0] = '\0';
	r->dbwildlen = 0;
	r->dblocal = local;
	if ((res = table_alias_wildcards(r->tbl, domain, db_wild_row, r)) ==
	    TABLE_TEMPFAIL)
		return -1;
	if (res == TABLE_NOTFOUND || r->dbwild[0] == '\0')
		return 0;
	if ((rc = db_alias(r, r->dbwild, out)) == 1)
		*rest = local + r->dbwildlen;
	return rc;
}

/* an SRS address: reversed if one of our secrets signed it (expand.h) */
static int
src_srs(void *arg, const char *local, const char *domain, char *out,
    size_t outlen, char *why, size_t whylen)
{
	struct resolver	*r = arg;
	char		 a[ADDR_STR_MAX + 1];
	enum srs_res	 res;

	if (r->nsrs_secrets == 0)
		return 0;
	snprintf(a, sizeof(a), "%s@%s", local, domain);
	res = srs_reverse(r->srs_secrets, r->nsrs_secrets, r->srs_max_age,
	    r->now ? r->now : time(NULL), a, out, outlen);
	switch (res) {
	case SRS_OK:
		return 1;
	case SRS_NOTSRS:
		return 0;
	case SRS_ERROR:
		log_warnx("srs: <%s>: %s", a, srs_strres(res));
		return -1;
	default:
		snprintf(why, whylen, "%s", srs_strres(res));
		log_info("srs: <%s> refused: %s", a, srs_strres(res));
		return -2;
	}
}

void
resolver_srs(struct resolver *r, const struct config *c)
{
	r->nsrs_secrets = 0;
	for (size_t i = 0; i < c->nsrs_secrets && i < SRS_SECRETS_MAX; i++)
		r->srs_secrets[r->nsrs_secrets++] = c->srs_secrets[i];
	r->srs_max_age = c->srs_max_age;
	r->srs_domain = config_srs_domain(c);
}

const char *
resolver_rcpt_of(const char *key, const char *rcpt, char *buf, size_t len)
{
	const char	*at = strrchr(rcpt, '@');

	if (key[0] == '\0' || key[0] == '@' || strchr(key, '*') != NULL)
		snprintf(buf, len, "%s", rcpt);
	else if (strchr(key, '@') != NULL)
		snprintf(buf, len, "%s", key);
	else
		snprintf(buf, len, "%s@%s", key, at ? at + 1 : "");
	return buf;
}

void
resolver_src(struct expand_src *src, struct resolver *r, char delim,
    size_t max_targets)
{
	memset(src, 0, sizeof(*src));
	src->local_domain = src_domain;
	src->account = src_account;
	src->alias = src_alias;
	src->wildcard = src_wildcard;
	src->srs = src_srs;
	src->arg = r;
	src->delim = delim;
	src->max_targets = max_targets;
	src->max_depth = 20;
}
