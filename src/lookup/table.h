/*
 * table - the lookup tables behind sluice: domains, accounts, aliases.
 *
 * One interface, several backends (table.c dispatches on the DSN's prefix,
 * table_backend.h): the `database` directive is a DSN,
 * "sqlite:/path/to/file.db" (table_sqlite.c) or
 * "postgresql://user:password@host:port/dbname" (table_pgsql.c). Every query
 * uses bound parameters (P7). A backend failure is TABLE_TEMPFAIL, never
 * "not found" (P3).
 */
#ifndef SLUICE_TABLE_H
#define SLUICE_TABLE_H

#include <stddef.h>

enum table_res { TABLE_FOUND = 0, TABLE_NOTFOUND, TABLE_TEMPFAIL };

struct table;

struct table	*table_open(const char *dsn, char *err, size_t errlen);
void		 table_close(struct table *);
/* the DSN for logs and messages: a password in it becomes "***"; buf */
const char	*table_dsn_safe(const char *dsn, char *buf, size_t buflen);
/* create the schema or migrate it to this version (CLI and daemon) */
int		 table_init_schema(struct table *, char *err, size_t errlen);
/* the database's schema version (0: empty), -1 on error */
int		 table_schema_version(struct table *);

/* lookups (the lookup process) */
enum table_res	 table_domain_local(struct table *, const char *domain);
enum table_res	 table_account_exists(struct table *, const char *local,
		    const char *domain);

/* administration (the `sluice` command); 0 ok, -1 with err set */
typedef void (*table_row_cb)(void *arg, const char **cols, size_t ncols);
int	table_domain_add(struct table *, const char *domain, char *err, size_t);
int	table_domain_del(struct table *, const char *domain, char *err, size_t);
int	table_domain_list(struct table *, table_row_cb, void *, char *err,
	    size_t);
int	table_account_add(struct table *, const char *local, const char *domain,
	    const char *hash, char *err, size_t);
int	table_account_del(struct table *, const char *local, const char *domain,
	    char *err, size_t);
int	table_account_passwd(struct table *, const char *local,
	    const char *domain, const char *hash, char *err, size_t);
/* cols: address, domain, created */
int	table_account_list(struct table *, const char *domain, table_row_cb,
	    void *, char *err, size_t);

/*
 * --- added for the `sluice` command (src/cli) ---
 * Number of accounts in a domain (for "domain del" refusal); 0 ok, -1 with
 * err set. Lookups of a missing name give *count = 0.
 */
int	table_domain_accounts(struct table *, const char *domain,
	    unsigned long *count, char *err, size_t);
/* the stored password hash of an account (AUTH checks, via lookup) */
enum table_res	 table_account_password(struct table *, const char *local,
		    const char *domain, char *hash, size_t hashlen);

/*
 * aliases (schema 2): address is a key as in the aliases file but always
 * with its domain ("name@domain", "prefix*@domain", "@domain"); target is
 * one target ("addr", "|command", "/path"); owner a user name or "".
 * table_alias_get: cb receives (target, owner) for each row, in insertion
 * order. table_alias_wildcards: cb receives each "prefix*@domain" key.
 */
enum table_res	 table_alias_get(struct table *, const char *key,
		    table_row_cb, void *);
enum table_res	 table_alias_wildcards(struct table *, const char *domain,
		    table_row_cb, void *);
int	table_alias_add(struct table *, const char *key, const char *target,
	    const char *owner, char *err, size_t);
int	table_alias_del(struct table *, const char *key, const char *target,
	    char *err, size_t);
/* cols: address, target, owner, created */
int	table_alias_list(struct table *, const char *domain, table_row_cb,
	    void *, char *err, size_t);

#endif
