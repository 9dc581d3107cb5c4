/*
 * resolve - expand.c over sluice's tables: the database (domains,
 * accounts) and the aliases file. Shared by the lookup process and
 * `sluice robot test`, so a dry run resolves exactly as delivery does.
 */
#ifndef SLUICE_RESOLVE_H
#define SLUICE_RESOLVE_H

#include <time.h>

#include "aliases.h"
#include "config.h"
#include "expand.h"
#include "table.h"

/* the most targets one recipient may expand to */
#define RESOLVE_TARGETS_MAX	10000

struct dbent {
	struct alias_entry	 ent;
	char			 key[600];
	size_t			 cap;
	struct dbent		*next;
};

struct resolver {
	struct table		*tbl;		/* NULL: lookups fail for now */
	const struct aliases	*aliases;	/* NULL: none */
	const char		*hostname;	/* always a local domain */
	int			 db_commands;	/* pipes and files allowed in
						   database aliases */
	/* SRS addresses (srs.h): none without secrets */
	const char		*srs_secrets[SRS_SECRETS_MAX];
	size_t			 nsrs_secrets;
	unsigned		 srs_max_age;
	const char		*srs_domain;	/* also a local domain */
	time_t			 now;		/* 0: time(NULL) */
	/* database aliases read during one expansion: they stay valid until
	   resolver_free() (expand() walks one while it looks up others) */
	struct dbent		*dbents;
	struct dbent		*dbcur;		/* being filled */
	int			 dberr;
	char			 dbwild[600];	/* best wildcard key so far */
	size_t			 dbwildlen;
	const char		*dblocal;
};

/* fill src with callbacks over r (delim: the recipient delimiter) */
void	resolver_src(struct expand_src *, struct resolver *, char delim,
	    size_t max_targets);
/* The address a robot or file target stands for, into buf: its alias
   (a bare key takes rcpt's domain), or rcpt itself for a wildcard or a
   catch-all. Delivery and `sluice robot test` both use it. */
const char *resolver_rcpt_of(const char *key, const char *rcpt, char *buf,
	    size_t len);
/* take the SRS settings of c (pointers into it) */
void	resolver_srs(struct resolver *, const struct config *c);
/* free what the database lookups kept */
void	resolver_free(struct resolver *);

#endif
