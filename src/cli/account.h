/*
 * account - what cmd_account.c (the row and password commands) and
 * account_archive.c (export and import) share.
 */
#ifndef SLUICE_ACCOUNT_H
#define SLUICE_ACCOUNT_H

#include "cli.h"

#define ACCOUNT_LOCAL_MAX	64
#define ACCOUNT_DOMAIN_MAX	253

struct account_addr {
	char	 local[ACCOUNT_LOCAL_MAX + 1];
	char	 domain[ACCOUNT_DOMAIN_MAX + 1];
	char	 full[ACCOUNT_LOCAL_MAX + ACCOUNT_DOMAIN_MAX + 2];
};

/* split and check "local@domain", lower-cased; -1 after a message */
int	account_parse(const char *s, struct account_addr *a);
/* is the domain local? 0 yes, else the exit status after a message */
int	account_domain_check(struct table *, const char *domain);
/* <mailboxes>/<domain>/<local>/{cur,new,tmp}; -1 with errno */
int	account_maildir_create(const char *mailboxes,
	    const struct account_addr *a);
/*
 * Check and normalise a recovery address ("" clears) or a send-as list
 * (patterns separated by single spaces, lower-cased) into out; 0 or -1
 * after a message naming `what`.
 */
int	account_recovery_norm(const char *in, char *out, size_t outlen);
int	account_send_as_norm(const char *in, char *out, size_t outlen);

/* account_archive.c: exit statuses */
int	account_export(struct cli *, struct table *,
	    const struct account_addr *, const char *file);
/* fd: the archive, opened by the caller (before privileges are dropped) */
int	account_import(struct cli *, int fd, const char *file,
	    const char *as, int force);

#endif
