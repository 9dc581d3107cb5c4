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

/*
 * The masked relay, schema 4 (docs/masks.md). Codes are the 20-character
 * lower-case CODE of mask.h (without "service-"/"user-"); addresses are
 * stored lower-case. A service stands for a real address; a pair is one
 * person's user address for one service. Times are Unix seconds; expires
 * 0 = never. An event is one relayed message: kind "in" (person to
 * service), "reply" (service to person), "auto-in"/"auto-reply" (the same,
 * automatic: not counted as human), "bounce-in"/"bounce-reply".
 */
#define TABLE_MASK_CODE_MAX	32
#define TABLE_MASK_LABEL_MAX	255

struct table_mask_service {
	char		 code[TABLE_MASK_CODE_MAX + 1];
	char		 real[256 + 1];
	char		 label[TABLE_MASK_LABEL_MAX + 1];
	long long	 created;
	long long	 expires;
	int		 disabled;	/* 0 on, 1 by the operator, 2 bounces */
	unsigned	 bounces;	/* permanent bounces of real, in a row */
};

struct table_mask_pair {
	char		 code[TABLE_MASK_CODE_MAX + 1];
	char		 service[TABLE_MASK_CODE_MAX + 1];
	char		 person[256 + 1];
	long long	 created;
	int		 disabled;	/* as for services */
	unsigned	 bounces;
};

enum table_res	 table_mask_service_get(struct table *, const char *code,
		    struct table_mask_service *);
int	table_mask_service_add(struct table *, const char *code,
	    const char *real, const char *label, long long expires, char *err,
	    size_t);
/* disabled: 0, 1 or 2; -1 with err ("no such service") */
int	table_mask_service_set(struct table *, const char *code, int disabled,
	    char *err, size_t);
/* the service and its pairs and events */
int	table_mask_service_del(struct table *, const char *code, char *err,
	    size_t);
/* cols: code, real, label, created, expires, disabled, bounces, pairs */
int	table_mask_service_list(struct table *, table_row_cb, void *,
	    char *err, size_t);

enum table_res	 table_mask_pair_get(struct table *, const char *code,
		    struct table_mask_pair *);
/* the pair of (service, person), if there is one */
enum table_res	 table_mask_pair_find(struct table *, const char *service,
		    const char *person, struct table_mask_pair *);
/*
 * Add the pair (service, person) with code, unless it exists: then *out is
 * the existing one (two messages raced). FOUND with *out, or TEMPFAIL.
 */
enum table_res	 table_mask_pair_add(struct table *, const char *code,
		    const char *service, const char *person,
		    struct table_mask_pair *out);
int	table_mask_pair_set(struct table *, const char *code, int disabled,
	    char *err, size_t);
/* cols: code, service, person, created, disabled, bounces */
int	table_mask_pair_list(struct table *, const char *service,
	    table_row_cb, void *, char *err, size_t);

/* one relayed message; at is its time; 0 ok, -1 */
int	table_mask_event(struct table *, const char *service,
	    const char *pair, const char *kind, long long at);
/*
 * A permanent bounce from a real address (kind "service" or "pair"):
 * counts it; at limit in a row the row is disabled (2). 0 ok, -1. A
 * successful relay resets the count (table_mask_ok).
 */
int	table_mask_bounce(struct table *, const char *kind, const char *code,
	    unsigned limit);
int	table_mask_ok(struct table *, const char *kind, const char *code);
/* events since (and of one service, or NULL: all), oldest first; cols:
   service, pair, kind, at */
int	table_mask_events(struct table *, const char *service, long long since,
	    table_row_cb, void *, char *err, size_t);

#endif
