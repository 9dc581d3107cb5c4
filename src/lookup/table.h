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
/*
 * The alias rows whose target is this address (compared without case),
 * cols: address, target, owner, created. table_account_del also deletes
 * them (and the account's reset token).
 */
int	table_alias_list_target(struct table *, const char *target,
	    table_row_cb, void *, char *err, size_t);

/*
 * accounts, schema 3: a recovery address ("" none) and send_as, the extra
 * sender patterns the account may use in MAIL FROM and From:, separated
 * by single spaces ("*@example.test", "*" = anything; "" = only its own
 * address and the addresses that deliver to it). created is a Unix time
 * (0 when the backend does not know it: files).
 */
#define TABLE_HASH_MAX		255
#define TABLE_RECOVERY_MAX	256
#define TABLE_SEND_AS_MAX	1023

struct table_account {
	char		 hash[TABLE_HASH_MAX + 1];
	char		 recovery[TABLE_RECOVERY_MAX + 1];
	char		 send_as[TABLE_SEND_AS_MAX + 1];
	long long	 created;
};

enum table_res	 table_account_get(struct table *, const char *local,
		    const char *domain, struct table_account *out);
/* NULL leaves a field unchanged; 0 ok, -1 with err ("no such account") */
int	table_account_set(struct table *, const char *local,
	    const char *domain, const char *recovery, const char *send_as,
	    char *err, size_t);

/*
 * Password reset tokens, schema 3: only a hash of the token is stored
 * (hex SHA-256, at most 128 characters), one per account; put replaces an
 * earlier one. take is TABLE_FOUND only if the hash matches and
 * expires > now, and then deletes the token (it works once); an expired
 * token is deleted too. A wrong hash leaves a valid token in place.
 */
#define TABLE_TOKEN_HASH_MAX	128
int	table_reset_put(struct table *, const char *local, const char *domain,
	    const char *token_hash, long long expires, char *err, size_t);
enum table_res	 table_reset_take(struct table *, const char *local,
		    const char *domain, const char *token_hash, long long now);

#endif
