/*
 * table_sqlite - the SQLite backend of table.h ("sqlite:/path/file.db").
 *
 * Schema (docs/database.md; kept readable by Dovecot's sql driver):
 *	meta(key, value)		schema_version = 4
 *	domains(name, created)
 *	accounts(local, domain -> domains, password, created)
 *	aliases(address, target, owner, created)	(version 2)
 *	accounts.recovery, accounts.send_as, reset_tokens(address,
 *	    token_hash, expires)			(version 3)
 *	mask_services, mask_pairs, mask_events		(version 4)
 * table_init_schema() creates it or migrates an older one, one version a
 * transaction, at start and by `sluice db migrate`.
 * Names are stored lower-cased (ASCII) and compared NOCASE. Every statement
 * is prepared with bound parameters (P7). Lookups map any SQLite error to
 * TABLE_TEMPFAIL, never TABLE_NOTFOUND (P3). Admin functions return 0 or -1
 * with a message in err. The connection uses WAL, a 5 s busy timeout and
 * enforced foreign keys. A handle is not shared between threads. table.c
 * dispatches to it through table_sqlite_ops (table_backend.h).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "table.h"
#include "table_backend.h"

#define TABLE_SCHEMA_VERSION	4
#define TABLE_NAME_MAX		255	/* longest domain or local we store */

#define TABLE_CACHE	8	/* prepared lookup statements kept */

struct table_be {
	sqlite3		*db;
	char		 path[4096];
	struct {
		const char	*sql;	/* a string literal: compared by address */
		sqlite3_stmt	*st;
	} cache[TABLE_CACHE];
};

/* migrations[v - 1] takes the schema from version v - 1 to v */
static const char *const migrations[TABLE_SCHEMA_VERSION] = {
	"CREATE TABLE IF NOT EXISTS domains ("
	" name TEXT PRIMARY KEY COLLATE NOCASE,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS accounts ("
	" local TEXT NOT NULL COLLATE NOCASE,"
	" domain TEXT NOT NULL COLLATE NOCASE REFERENCES domains(name),"
	" password TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" PRIMARY KEY (local, domain));"
	"CREATE INDEX IF NOT EXISTS accounts_domain ON accounts(domain);",
	/* 2: aliases that scripts and web forms can change */
	"CREATE TABLE aliases ("
	" address TEXT NOT NULL COLLATE NOCASE,"
	" target TEXT NOT NULL,"
	" owner TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" PRIMARY KEY (address, target));",
	/* 3: recovery address, extra sender patterns, reset tokens */
	"ALTER TABLE accounts ADD COLUMN recovery TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE accounts ADD COLUMN send_as TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE reset_tokens ("
	" address TEXT PRIMARY KEY COLLATE NOCASE,"
	" token_hash TEXT NOT NULL,"
	" expires INTEGER NOT NULL);"
	"CREATE INDEX aliases_target ON aliases (lower(target));",
	/* 4: the masked relay (docs/masks.md) */
	"CREATE TABLE mask_services ("
	" code TEXT PRIMARY KEY COLLATE NOCASE,"
	" real TEXT NOT NULL COLLATE NOCASE,"
	" label TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" expires INTEGER NOT NULL DEFAULT 0,"
	" disabled INTEGER NOT NULL DEFAULT 0,"
	" bounces INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE mask_pairs ("
	" code TEXT PRIMARY KEY COLLATE NOCASE,"
	" service TEXT NOT NULL COLLATE NOCASE REFERENCES mask_services(code),"
	" person TEXT NOT NULL COLLATE NOCASE,"
	" created INTEGER NOT NULL,"
	" disabled INTEGER NOT NULL DEFAULT 0,"
	" bounces INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (service, person));"
	"CREATE TABLE mask_events ("
	" service TEXT NOT NULL COLLATE NOCASE,"
	" pair TEXT NOT NULL DEFAULT '' COLLATE NOCASE,"
	" kind TEXT NOT NULL,"
	" at INTEGER NOT NULL);"
	"CREATE INDEX mask_events_service ON mask_events (service, at);",
};

static struct table_be *
sq_open(const char *dsn, char *err, size_t errlen)
{
	struct table_be	*t;
	const char	*path;
	int		 rc;

	if (strncmp(dsn, "sqlite:", 7) != 0 || dsn[7] == '\0') {
		snprintf(err, errlen, "unknown database \"%.200s\" "
		    "(want sqlite:/path/file.db)", dsn);
		return NULL;
	}
	path = dsn + 7;
	if (strlen(path) >= sizeof(t->path)) {
		snprintf(err, errlen, "database path too long");
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(t->path, path, strlen(path) + 1);
	rc = sqlite3_open_v2(path, &t->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(t->db, 1);
	if ((rc = sqlite3_busy_timeout(t->db, 5000)) != SQLITE_OK ||
	    (rc = sqlite3_exec(t->db, "PRAGMA journal_mode=WAL;"
	    "PRAGMA foreign_keys=ON;", NULL, NULL, NULL)) != SQLITE_OK)
		goto fail;
	return t;
fail:
	snprintf(err, errlen, "%s: %s", path, t->db ? sqlite3_errmsg(t->db) :
	    sqlite3_errstr(rc));
	sqlite3_close(t->db);
	free(t);
	return NULL;
}

static void
sq_close(struct table_be *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < TABLE_CACHE; i++)
		sqlite3_finalize(t->cache[i].st);
	sqlite3_close(t->db);
	free(t);
}

static void
table_error(struct table_be *t, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", t->path, sqlite3_errmsg(t->db));
}

/* Prepare sql; NULL with err set on failure. */
static sqlite3_stmt *
table_prepare(struct table_be *t, const char *sql, char *err, size_t errlen)
{
	sqlite3_stmt	*st = NULL;

	if (sqlite3_prepare_v2(t->db, sql, -1, &st, NULL) != SQLITE_OK) {
		table_error(t, err, errlen);
		return NULL;
	}
	return st;
}

/* Bind name, lower-cased, at position i; -1 if too long or on error. */
static int
table_bind_name(sqlite3_stmt *st, int i, const char *name)
{
	char	 low[TABLE_NAME_MAX + 1];
	size_t	 n, k;

	if ((n = strlen(name)) > TABLE_NAME_MAX)
		return -1;
	for (k = 0; k < n; k++)
		low[k] = (char)tolower((unsigned char)name[k]);
	return sqlite3_bind_text(st, i, low, (int)n, SQLITE_TRANSIENT) ==
	    SQLITE_OK ? 0 : -1;
}

/* The schema version of the database: 0 for an empty one; -1 on error. */
static int
table_version(struct table_be *t, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc, v;

	if (sqlite3_exec(t->db, "CREATE TABLE IF NOT EXISTS meta ("
	    " key TEXT PRIMARY KEY, value TEXT NOT NULL);", NULL, NULL,
	    NULL) != SQLITE_OK) {
		table_error(t, err, errlen);
		return -1;
	}
	if ((st = table_prepare(t, "SELECT value FROM meta WHERE key = ?1",
	    err, errlen)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, "schema_version", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		table_error(t, err, errlen);
		return -1;
	}
	return v;
}

static int
sq_init_schema(struct table_be *t, char *err, size_t errlen)
{
	char	 sql[128];
	int	 v;

	if ((v = table_version(t, err, errlen)) == -1)
		return -1;
	if (v > TABLE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than this "
		    "sluice (version %d)", t->path, v, TABLE_SCHEMA_VERSION);
		return -1;
	}
	for (; v < TABLE_SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO meta (key, "
		    "value) VALUES ('schema_version', '%d');", v + 1);
		if (sqlite3_exec(t->db, "BEGIN IMMEDIATE;", NULL, NULL,
		    NULL) != SQLITE_OK ||
		    sqlite3_exec(t->db, migrations[v], NULL, NULL, NULL) !=
		    SQLITE_OK ||
		    sqlite3_exec(t->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(t->db, "COMMIT;", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			table_error(t, err, errlen);
			sqlite3_exec(t->db, "ROLLBACK;", NULL, NULL, NULL);
			return -1;
		}
	}
	return 0;
}

static int
sq_schema_version(struct table_be *t)
{
	char	 err[256];

	return table_version(t, err, sizeof(err));
}

/*
 * A prepared statement for a lookup, kept across calls (the lookup process
 * asks the same few questions for every recipient); reset and unbound.
 */
static sqlite3_stmt *
table_cached(struct table_be *t, const char *sql)
{
	char	 err[256];
	size_t	 i;

	for (i = 0; i < TABLE_CACHE && t->cache[i].sql != NULL; i++)
		if (t->cache[i].sql == sql) {
			sqlite3_reset(t->cache[i].st);
			sqlite3_clear_bindings(t->cache[i].st);
			return t->cache[i].st;
		}
	if (i == TABLE_CACHE)
		return NULL;	/* a bug: more kinds of lookup than slots */
	if ((t->cache[i].st = table_prepare(t, sql, err, sizeof(err))) == NULL)
		return NULL;
	t->cache[i].sql = sql;
	return t->cache[i].st;
}

/* Run a lookup whose answer is "a row exists". */
static enum table_res
table_exists(struct table_be *t, const char *sql, const char *a, const char *b)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (strlen(a) > TABLE_NAME_MAX || (b && strlen(b) > TABLE_NAME_MAX))
		return TABLE_NOTFOUND;
	if ((st = table_cached(t, sql)) == NULL)
		return TABLE_TEMPFAIL;
	if (table_bind_name(st, 1, a) == -1 ||
	    (b && table_bind_name(st, 2, b) == -1))
		return TABLE_TEMPFAIL;
	rc = sqlite3_step(st);
	sqlite3_reset(st);	/* end the read transaction now */
	if (rc == SQLITE_ROW)
		return TABLE_FOUND;
	if (rc == SQLITE_DONE)
		return TABLE_NOTFOUND;
	return TABLE_TEMPFAIL;
}

static enum table_res
sq_domain_local(struct table_be *t, const char *domain)
{
	return table_exists(t, "SELECT 1 FROM domains WHERE name = ?1",
	    domain, NULL);
}

static enum table_res
sq_account_exists(struct table_be *t, const char *local, const char *domain)
{
	return table_exists(t, "SELECT 1 FROM accounts "
	    "WHERE local = ?1 AND domain = ?2", local, domain);
}

static enum table_res
sq_account_password(struct table_be *t, const char *local,
    const char *domain, char *hash, size_t hashlen)
{
	sqlite3_stmt		*st;
	const unsigned char	*h;
	char			 err[256];
	int			 rc, n;

	if (strlen(local) > TABLE_NAME_MAX || strlen(domain) > TABLE_NAME_MAX)
		return TABLE_NOTFOUND;
	if ((st = table_prepare(t, "SELECT password FROM accounts "
	    "WHERE local = ?1 AND domain = ?2", err, sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	if (table_bind_name(st, 1, local) == -1 ||
	    table_bind_name(st, 2, domain) == -1) {
		sqlite3_finalize(st);
		return TABLE_TEMPFAIL;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? TABLE_NOTFOUND : TABLE_TEMPFAIL;
	}
	h = sqlite3_column_text(st, 0);
	n = sqlite3_column_bytes(st, 0);
	if (h == NULL || n < 0 || (size_t)n >= hashlen) {
		sqlite3_finalize(st);
		return TABLE_TEMPFAIL;
	}
	memcpy(hash, h, (size_t)n + 1);
	sqlite3_finalize(st);
	return TABLE_FOUND;
}

/*
 * Run a statement that changes rows. Binds up to three names (NULL ends the
 * list) then, if hash is set, the hash, then the time when `when` is set.
 * Returns the number of rows changed or -1 with err set.
 */
static int
table_change(struct table_be *t, const char *sql, const char *names[3],
    const char *hash, int when, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 i = 0, rc;

	if ((st = table_prepare(t, sql, err, errlen)) == NULL)
		return -1;
	for (i = 0; i < 3 && names[i] != NULL; i++)
		if (table_bind_name(st, i + 1, names[i]) == -1) {
			snprintf(err, errlen, "name too long");
			sqlite3_finalize(st);
			return -1;
		}
	if (hash != NULL)
		sqlite3_bind_text(st, ++i, hash, -1, SQLITE_STATIC);
	if (when)
		sqlite3_bind_int64(st, ++i, (sqlite3_int64)time(NULL));
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		if ((rc & 0xff) == SQLITE_CONSTRAINT)
			snprintf(err, errlen, "%s", sqlite3_errmsg(t->db));
		else
			table_error(t, err, errlen);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return sqlite3_changes(t->db);
}

static int
sq_domain_add(struct table_be *t, const char *domain, char *err,
    size_t errlen)
{
	const char	*n[3] = { domain, NULL, NULL };
	int		 rc;

	rc = table_change(t, "INSERT INTO domains (name, created) "
	    "VALUES (?1, ?2)", n, NULL, 1, err, errlen);
	if (rc == -1 && strstr(err, "UNIQUE") != NULL)
		snprintf(err, errlen, "domain already exists");
	return rc == -1 ? -1 : 0;
}

static int
sq_domain_del(struct table_be *t, const char *domain, char *err,
    size_t errlen)
{
	const char	*n[3] = { domain, NULL, NULL };
	int		 rc;

	rc = table_change(t, "DELETE FROM domains WHERE name = ?1", n, NULL, 0,
	    err, errlen);
	if (rc == -1 && strstr(err, "FOREIGN KEY") != NULL)
		snprintf(err, errlen, "domain still has accounts");
	if (rc == 0)
		snprintf(err, errlen, "no such domain");
	return rc <= 0 ? -1 : 0;
}

static int
sq_account_add(struct table_be *t, const char *local, const char *domain,
    const char *hash, char *err, size_t errlen)
{
	const char	*n[3] = { local, domain, NULL };
	int		 rc;

	rc = table_change(t, "INSERT INTO accounts (local, domain, password, "
	    "created) VALUES (?1, ?2, ?3, ?4)", n, hash, 1, err, errlen);
	if (rc == -1 && strstr(err, "UNIQUE") != NULL)
		snprintf(err, errlen, "account already exists");
	else if (rc == -1 && strstr(err, "FOREIGN KEY") != NULL)
		snprintf(err, errlen, "no such domain");
	return rc == -1 ? -1 : 0;
}

/*
 * The account, the alias rows that point at it and its reset token, in one
 * transaction.
 */
static int
sq_account_del(struct table_be *t, const char *local, const char *domain,
    char *err, size_t errlen)
{
	const char	*n[3] = { local, domain, NULL };
	int		 rc;

	if (sqlite3_exec(t->db, "BEGIN IMMEDIATE;", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		table_error(t, err, errlen);
		return -1;
	}
	rc = table_change(t, "DELETE FROM accounts WHERE local = ?1 AND "
	    "domain = ?2", n, NULL, 0, err, errlen);
	if (rc > 0 && (table_change(t, "DELETE FROM aliases WHERE "
	    "lower(target) = ?1 || '@' || ?2", n, NULL, 0, err, errlen) == -1 ||
	    table_change(t, "DELETE FROM reset_tokens WHERE "
	    "address = ?1 || '@' || ?2", n, NULL, 0, err, errlen) == -1))
		rc = -1;
	if (rc == 0)
		snprintf(err, errlen, "no such account");
	if (rc <= 0) {
		sqlite3_exec(t->db, "ROLLBACK;", NULL, NULL, NULL);
		return -1;
	}
	if (sqlite3_exec(t->db, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK) {
		table_error(t, err, errlen);
		sqlite3_exec(t->db, "ROLLBACK;", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

static int
sq_account_passwd(struct table_be *t, const char *local, const char *domain,
    const char *hash, char *err, size_t errlen)
{
	const char	*n[3] = { local, domain, NULL };
	int		 rc;

	rc = table_change(t, "UPDATE accounts SET password = ?3 "
	    "WHERE local = ?1 AND domain = ?2", n, hash, 0, err, errlen);
	if (rc == 0)
		snprintf(err, errlen, "no such account");
	return rc <= 0 ? -1 : 0;
}

/* Step through st, handing each row's columns as strings to cb. */
static int
table_rows(struct table_be *t, sqlite3_stmt *st, table_row_cb cb, void *arg,
    char *err, size_t errlen)
{
	const char	*cols[8];
	int		 rc, n, i;

	n = sqlite3_column_count(st);
	if (n > 8)
		n = 8;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (i = 0; i < n; i++) {
			cols[i] = (const char *)sqlite3_column_text(st, i);
			if (cols[i] == NULL)
				cols[i] = "";
		}
		cb(arg, cols, (size_t)n);
	}
	if (rc != SQLITE_DONE) {
		table_error(t, err, errlen);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

static int
sq_domain_list(struct table_be *t, table_row_cb cb, void *arg, char *err,
    size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = table_prepare(t, "SELECT name, created FROM domains "
	    "ORDER BY name", err, errlen)) == NULL)
		return -1;
	return table_rows(t, st, cb, arg, err, errlen);
}

static int
sq_account_list(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = table_prepare(t, "SELECT local || '@' || domain, domain, "
	    "created FROM accounts WHERE ?1 IS NULL OR domain = ?1 "
	    "ORDER BY domain, local", err, errlen)) == NULL)
		return -1;
	if (domain != NULL && table_bind_name(st, 1, domain) == -1) {
		snprintf(err, errlen, "domain name too long");
		sqlite3_finalize(st);
		return -1;
	}
	return table_rows(t, st, cb, arg, err, errlen);
}

static int
sq_domain_accounts(struct table_be *t, const char *domain,
    unsigned long *count, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	*count = 0;
	if ((st = table_prepare(t, "SELECT count(*) FROM accounts "
	    "WHERE domain = ?1", err, errlen)) == NULL)
		return -1;
	if (table_bind_name(st, 1, domain) == -1) {
		sqlite3_finalize(st);
		return 0;	/* too long to exist */
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		table_error(t, err, errlen);
		sqlite3_finalize(st);
		return -1;
	}
	*count = (unsigned long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* ---- aliases (schema 2) ---- */

static enum table_res
sq_alias_get(struct table_be *t, const char *key, table_row_cb cb,
    void *arg)
{
	sqlite3_stmt	*st;
	const char	*cols[2];
	int		 rc, found = 0;

	if (strlen(key) > 2 * TABLE_NAME_MAX)
		return TABLE_NOTFOUND;
	if ((st = table_cached(t, "SELECT target, owner FROM aliases "
	    "WHERE address = ?1 ORDER BY rowid")) == NULL)
		return TABLE_TEMPFAIL;
	if (sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		return TABLE_TEMPFAIL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cols[0] = (const char *)sqlite3_column_text(st, 0);
		cols[1] = (const char *)sqlite3_column_text(st, 1);
		if (cols[0] == NULL)
			continue;
		if (cols[1] == NULL)
			cols[1] = "";
		cb(arg, cols, 2);
		found = 1;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return TABLE_TEMPFAIL;
	return found ? TABLE_FOUND : TABLE_NOTFOUND;
}

static enum table_res
sq_alias_wildcards(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg)
{
	sqlite3_stmt	*st;
	const char	*cols[1];
	int		 rc, found = 0;

	if (strlen(domain) > TABLE_NAME_MAX)
		return TABLE_NOTFOUND;
	if ((st = table_cached(t, "SELECT DISTINCT address FROM aliases "
	    "WHERE address LIKE '%*@' || ?1")) == NULL)
		return TABLE_TEMPFAIL;
	if (table_bind_name(st, 1, domain) == -1)
		return TABLE_TEMPFAIL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((cols[0] = (const char *)sqlite3_column_text(st, 0)) ==
		    NULL)
			continue;
		cb(arg, cols, 1);
		found = 1;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return TABLE_TEMPFAIL;
	return found ? TABLE_FOUND : TABLE_NOTFOUND;
}

static int
sq_alias_add(struct table_be *t, const char *key, const char *target,
    const char *owner, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = table_prepare(t, "INSERT INTO aliases (address, target, "
	    "owner, created) VALUES (?1, ?2, ?3, ?4)", err, errlen)) == NULL)
		return -1;
	if (table_bind_name(st, 1, key) == -1) {
		sqlite3_finalize(st);
		snprintf(err, errlen, "address too long");
		return -1;
	}
	sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		if ((rc & 0xff) == SQLITE_CONSTRAINT)
			snprintf(err, errlen, "%s already has target %s", key,
			    target);
		else
			table_error(t, err, errlen);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

static int
sq_alias_del(struct table_be *t, const char *key, const char *target,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = table_prepare(t, "DELETE FROM aliases WHERE address = ?1 "
	    "AND (?2 IS NULL OR target = ?2)", err, errlen)) == NULL)
		return -1;
	if (table_bind_name(st, 1, key) == -1) {
		sqlite3_finalize(st);
		snprintf(err, errlen, "address too long");
		return -1;
	}
	if (target != NULL)
		sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		table_error(t, err, errlen);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (sqlite3_changes(t->db) == 0) {
		snprintf(err, errlen, "no such alias%s%s", target ? " target " :
		    "", target ? target : "");
		return -1;
	}
	return 0;
}

/* cols: address, target, owner, created */
static int
sq_alias_list(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = table_prepare(t, "SELECT address, target, owner, created "
	    "FROM aliases WHERE ?1 IS NULL OR address LIKE '%@' || ?1 "
	    "ORDER BY address, rowid", err, errlen)) == NULL)
		return -1;
	if (domain != NULL && table_bind_name(st, 1, domain) == -1) {
		snprintf(err, errlen, "domain name too long");
		sqlite3_finalize(st);
		return -1;
	}
	return table_rows(t, st, cb, arg, err, errlen);
}

/* cols: address, target, owner, created */
static int
sq_alias_list_target(struct table_be *t, const char *target,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = table_prepare(t, "SELECT address, target, owner, created "
	    "FROM aliases WHERE lower(target) = ?1 ORDER BY address, rowid",
	    err, errlen)) == NULL)
		return -1;
	if (table_bind_name(st, 1, target) == -1) {
		snprintf(err, errlen, "address too long");
		sqlite3_finalize(st);
		return -1;
	}
	return table_rows(t, st, cb, arg, err, errlen);
}

/* ---- schema 3: account details, reset tokens ---- */

/* Copy column i of st into dst; -1 if it does not fit. */
static int
sq_column(sqlite3_stmt *st, int i, char *dst, size_t dstlen)
{
	const unsigned char	*v = sqlite3_column_text(st, i);
	int			 n = sqlite3_column_bytes(st, i);

	if (v == NULL) {
		dst[0] = '\0';
		return 0;
	}
	if (n < 0 || (size_t)n >= dstlen)
		return -1;
	memcpy(dst, v, (size_t)n + 1);
	return 0;
}

/* A statement with the lower-cased local and domain bound as ?1, ?2. */
static sqlite3_stmt *
sq_prepare_addr(struct table_be *t, const char *sql, const char *local,
    const char *domain, char *err, size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = table_prepare(t, sql, err, errlen)) == NULL)
		return NULL;
	if (table_bind_name(st, 1, local) == -1 ||
	    table_bind_name(st, 2, domain) == -1) {
		snprintf(err, errlen, "address too long");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static enum table_res
sq_account_get(struct table_be *t, const char *local, const char *domain,
    struct table_account *out)
{
	sqlite3_stmt	*st;
	char		 err[256];
	int		 rc;

	if (strlen(local) > TABLE_NAME_MAX || strlen(domain) > TABLE_NAME_MAX)
		return TABLE_NOTFOUND;
	if ((st = sq_prepare_addr(t, "SELECT password, recovery, send_as, "
	    "created FROM accounts WHERE local = ?1 AND domain = ?2", local,
	    domain, err, sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? TABLE_NOTFOUND : TABLE_TEMPFAIL;
	}
	if (sq_column(st, 0, out->hash, sizeof(out->hash)) == -1 ||
	    sq_column(st, 1, out->recovery, sizeof(out->recovery)) == -1 ||
	    sq_column(st, 2, out->send_as, sizeof(out->send_as)) == -1) {
		sqlite3_finalize(st);
		return TABLE_TEMPFAIL;
	}
	out->created = (long long)sqlite3_column_int64(st, 3);
	sqlite3_finalize(st);
	return TABLE_FOUND;
}

static int
sq_account_set(struct table_be *t, const char *local, const char *domain,
    const char *recovery, const char *send_as, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = sq_prepare_addr(t, "UPDATE accounts SET "
	    "recovery = coalesce(?3, recovery), send_as = coalesce(?4, send_as) "
	    "WHERE local = ?1 AND domain = ?2", local, domain, err,
	    errlen)) == NULL)
		return -1;
	if (recovery != NULL)
		sqlite3_bind_text(st, 3, recovery, -1, SQLITE_STATIC);
	if (send_as != NULL)
		sqlite3_bind_text(st, 4, send_as, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		table_error(t, err, errlen);
		return -1;
	}
	if (sqlite3_changes(t->db) == 0) {
		snprintf(err, errlen, "no such account");
		return -1;
	}
	return 0;
}

static int
sq_reset_put(struct table_be *t, const char *local, const char *domain,
    const char *token_hash, long long expires, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = sq_prepare_addr(t, "INSERT OR REPLACE INTO reset_tokens "
	    "(address, token_hash, expires) VALUES (?1 || '@' || ?2, ?3, ?4)",
	    local, domain, err, errlen)) == NULL)
		return -1;
	sqlite3_bind_text(st, 3, token_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)expires);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		table_error(t, err, errlen);
		return -1;
	}
	return 0;
}

/*
 * One DELETE both checks and consumes the token, so two concurrent
 * callers cannot both use it; then an expired one is removed.
 */
static enum table_res
sq_reset_take(struct table_be *t, const char *local, const char *domain,
    const char *token_hash, long long now)
{
	sqlite3_stmt	*st;
	char		 err[256];
	int		 rc, found;

	if ((st = sq_prepare_addr(t, "DELETE FROM reset_tokens WHERE "
	    "address = ?1 || '@' || ?2 AND token_hash = ?3 AND expires > ?4",
	    local, domain, err, sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	sqlite3_bind_text(st, 3, token_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return TABLE_TEMPFAIL;
	found = sqlite3_changes(t->db) > 0;
	if ((st = sq_prepare_addr(t, "DELETE FROM reset_tokens WHERE "
	    "address = ?1 || '@' || ?2 AND expires <= ?3", local, domain, err,
	    sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && !found)
		return TABLE_TEMPFAIL;
	return found ? TABLE_FOUND : TABLE_NOTFOUND;
}

/* ---- schema 4: the masked relay ---- */

#define SQ_TEXT_MAX	1024	/* longest text bound by sq_prepf */

/*
 * Prepare sql and bind its parameters ?1, ?2... by types: 'l' text
 * lower-cased (ASCII), 't' text as is, 'i' a long long; a NULL text is
 * SQL NULL. NULL with err set on failure.
 */
static sqlite3_stmt *
sq_prepf(struct table_be *t, char *err, size_t errlen, const char *sql,
    const char *types, ...)
{
	sqlite3_stmt	*st;
	va_list		 ap;
	char		 low[SQ_TEXT_MAX + 1];
	const char	*s;
	size_t		 n, k;
	int		 i, rc = SQLITE_OK;

	if ((st = table_prepare(t, sql, err, errlen)) == NULL)
		return NULL;
	va_start(ap, types);
	for (i = 1; types[i - 1] != '\0' && rc == SQLITE_OK; i++) {
		if (types[i - 1] == 'i') {
			rc = sqlite3_bind_int64(st, i,
			    (sqlite3_int64)va_arg(ap, long long));
			continue;
		}
		if ((s = va_arg(ap, const char *)) == NULL)
			continue;
		if (types[i - 1] == 't') {
			rc = sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
			continue;
		}
		if ((n = strlen(s)) > SQ_TEXT_MAX) {
			rc = SQLITE_TOOBIG;
			break;
		}
		for (k = 0; k < n; k++)
			low[k] = (char)tolower((unsigned char)s[k]);
		rc = sqlite3_bind_text(st, i, low, (int)n, SQLITE_TRANSIENT);
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot bind a value", t->path);
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Step a changing statement and finalize it; rows changed or -1. */
static int
sq_done(struct table_be *t, sqlite3_stmt *st, char *err, size_t errlen)
{
	int	 rc;

	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		table_error(t, err, errlen);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? sqlite3_changes(t->db) : -1;
}

static int
sq_begin(struct table_be *t, char *err, size_t errlen)
{
	if (sqlite3_exec(t->db, "BEGIN IMMEDIATE;", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		table_error(t, err, errlen);
		return -1;
	}
	return 0;
}

/* commit (ok) or roll back; 0 or -1 with err set */
static int
sq_end(struct table_be *t, int ok, char *err, size_t errlen)
{
	if (ok && sqlite3_exec(t->db, "COMMIT;", NULL, NULL, NULL) ==
	    SQLITE_OK)
		return 0;
	if (ok)
		table_error(t, err, errlen);
	sqlite3_exec(t->db, "ROLLBACK;", NULL, NULL, NULL);
	return -1;
}

/* One row from a statement already stepped to SQLITE_ROW */
static int
sq_service_row(sqlite3_stmt *st, struct table_mask_service *s)
{
	if (sq_column(st, 0, s->code, sizeof(s->code)) == -1 ||
	    sq_column(st, 1, s->real, sizeof(s->real)) == -1 ||
	    sq_column(st, 2, s->label, sizeof(s->label)) == -1)
		return -1;
	s->created = (long long)sqlite3_column_int64(st, 3);
	s->expires = (long long)sqlite3_column_int64(st, 4);
	s->disabled = sqlite3_column_int(st, 5);
	s->bounces = (unsigned)sqlite3_column_int64(st, 6);
	return 0;
}

static int
sq_pair_row(sqlite3_stmt *st, struct table_mask_pair *p)
{
	if (sq_column(st, 0, p->code, sizeof(p->code)) == -1 ||
	    sq_column(st, 1, p->service, sizeof(p->service)) == -1 ||
	    sq_column(st, 2, p->person, sizeof(p->person)) == -1)
		return -1;
	p->created = (long long)sqlite3_column_int64(st, 3);
	p->disabled = sqlite3_column_int(st, 4);
	p->bounces = (unsigned)sqlite3_column_int64(st, 5);
	return 0;
}

/* step st (finalized here) for at most one row through fill */
static enum table_res
sq_get_one(sqlite3_stmt *st, int (*fill)(sqlite3_stmt *, void *), void *out)
{
	int		 rc;
	enum table_res	 res;

	if (st == NULL)
		return TABLE_TEMPFAIL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		res = fill(st, out) == 0 ? TABLE_FOUND : TABLE_TEMPFAIL;
	else
		res = rc == SQLITE_DONE ? TABLE_NOTFOUND : TABLE_TEMPFAIL;
	sqlite3_finalize(st);
	return res;
}

static int
sq_fill_service(sqlite3_stmt *st, void *out)
{
	return sq_service_row(st, out);
}

static int
sq_fill_pair(sqlite3_stmt *st, void *out)
{
	return sq_pair_row(st, out);
}

#define SQ_SERVICE_COLS	"code, real, label, created, expires, disabled, " \
	"bounces"
#define SQ_PAIR_COLS	"code, service, person, created, disabled, bounces"

static enum table_res
sq_mask_service_get(struct table_be *t, const char *code,
    struct table_mask_service *out)
{
	char	 err[256];

	return sq_get_one(sq_prepf(t, err, sizeof(err), "SELECT "
	    SQ_SERVICE_COLS " FROM mask_services WHERE code = ?1", "l", code),
	    sq_fill_service, out);
}

static int
sq_mask_service_add(struct table_be *t, const char *code, const char *real,
    const char *label, long long expires, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = sq_prepf(t, err, errlen, "INSERT INTO mask_services (code, "
	    "real, label, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
	    "llti" "i", code, real, label, (long long)time(NULL),
	    expires)) == NULL)
		return -1;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		snprintf(err, errlen, "service code already exists");
	else
		table_error(t, err, errlen);
	return -1;
}

/* UPDATE a service or pair's disabled; enabling clears the bounces */
static int
sq_mask_set(struct table_be *t, const char *sql, const char *code,
    int disabled, const char *what, char *err, size_t errlen)
{
	int	 rc;

	rc = sq_done(t, sq_prepf(t, err, errlen, sql, "li", code,
	    (long long)disabled), err, errlen);
	if (rc == 0)
		snprintf(err, errlen, "no such %s", what);
	return rc <= 0 ? -1 : 0;
}

static int
sq_mask_service_set(struct table_be *t, const char *code, int disabled,
    char *err, size_t errlen)
{
	return sq_mask_set(t, "UPDATE mask_services SET disabled = ?2, "
	    "bounces = CASE WHEN ?2 = 0 THEN 0 ELSE bounces END "
	    "WHERE code = ?1", code, disabled, "service", err, errlen);
}

static int
sq_mask_service_del(struct table_be *t, const char *code, char *err,
    size_t errlen)
{
	int	 rc;

	if (sq_begin(t, err, errlen) == -1)
		return -1;
	rc = sq_done(t, sq_prepf(t, err, errlen, "DELETE FROM mask_events "
	    "WHERE service = ?1", "l", code), err, errlen);
	if (rc != -1)
		rc = sq_done(t, sq_prepf(t, err, errlen, "DELETE FROM "
		    "mask_pairs WHERE service = ?1", "l", code), err, errlen);
	if (rc != -1)
		rc = sq_done(t, sq_prepf(t, err, errlen, "DELETE FROM "
		    "mask_services WHERE code = ?1", "l", code), err, errlen);
	if (rc == 0)
		snprintf(err, errlen, "no such service");
	return sq_end(t, rc > 0, err, errlen);
}

static int
sq_mask_service_list(struct table_be *t, table_row_cb cb, void *arg,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = table_prepare(t, "SELECT s.code, s.real, s.label, "
	    "s.created, s.expires, s.disabled, s.bounces, (SELECT count(*) "
	    "FROM mask_pairs p WHERE p.service = s.code) FROM mask_services s "
	    "ORDER BY s.created, s.code", err, errlen)) == NULL)
		return -1;
	return table_rows(t, st, cb, arg, err, errlen);
}

static enum table_res
sq_mask_pair_get(struct table_be *t, const char *code,
    struct table_mask_pair *out)
{
	char	 err[256];

	return sq_get_one(sq_prepf(t, err, sizeof(err), "SELECT "
	    SQ_PAIR_COLS " FROM mask_pairs WHERE code = ?1", "l", code),
	    sq_fill_pair, out);
}

static enum table_res
sq_mask_pair_find(struct table_be *t, const char *service,
    const char *person, struct table_mask_pair *out)
{
	char	 err[256];

	return sq_get_one(sq_prepf(t, err, sizeof(err), "SELECT "
	    SQ_PAIR_COLS " FROM mask_pairs WHERE service = ?1 AND "
	    "person = ?2", "ll", service, person), sq_fill_pair, out);
}

/*
 * Race-safe: the INSERT does nothing when (service, person) - or, far less
 * likely, the code - exists; the SELECT then returns the pair that is there.
 * A code taken by another pair leaves nothing to find: TEMPFAIL.
 */
static enum table_res
sq_mask_pair_add(struct table_be *t, const char *code, const char *service,
    const char *person, struct table_mask_pair *out)
{
	char		 err[256];
	enum table_res	 res;

	if (sq_done(t, sq_prepf(t, err, sizeof(err), "INSERT INTO mask_pairs "
	    "(code, service, person, created) VALUES (?1, ?2, ?3, ?4) "
	    "ON CONFLICT DO NOTHING", "llli", code, service, person,
	    (long long)time(NULL)), err, sizeof(err)) == -1)
		return TABLE_TEMPFAIL;
	res = sq_mask_pair_find(t, service, person, out);
	return res == TABLE_FOUND ? TABLE_FOUND : TABLE_TEMPFAIL;
}

static int
sq_mask_pair_set(struct table_be *t, const char *code, int disabled,
    char *err, size_t errlen)
{
	return sq_mask_set(t, "UPDATE mask_pairs SET disabled = ?2, "
	    "bounces = CASE WHEN ?2 = 0 THEN 0 ELSE bounces END "
	    "WHERE code = ?1", code, disabled, "pair", err, errlen);
}

static int
sq_mask_pair_list(struct table_be *t, const char *service, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = sq_prepf(t, err, errlen, "SELECT " SQ_PAIR_COLS
	    " FROM mask_pairs WHERE service = ?1 ORDER BY created, code", "l",
	    service)) == NULL)
		return -1;
	return table_rows(t, st, cb, arg, err, errlen);
}

static int
sq_mask_event(struct table_be *t, const char *service, const char *pair,
    const char *kind, long long at)
{
	char	 err[256];

	return sq_done(t, sq_prepf(t, err, sizeof(err), "INSERT INTO "
	    "mask_events (service, pair, kind, at) VALUES (?1, ?2, ?3, ?4)",
	    "llti", service, pair ? pair : "", kind, at), err,
	    sizeof(err)) == -1 ? -1 : 0;
}

static int
sq_mask_bounce(struct table_be *t, const char *kind, const char *code,
    unsigned limit)
{
	char	 err[256];

	return sq_done(t, sq_prepf(t, err, sizeof(err), strcmp(kind,
	    "service") == 0 ? "UPDATE mask_services SET bounces = bounces + 1, "
	    "disabled = CASE WHEN disabled = 0 AND ?2 > 0 AND "
	    "bounces + 1 >= ?2 THEN 2 ELSE disabled END WHERE code = ?1" :
	    "UPDATE mask_pairs SET bounces = bounces + 1, "
	    "disabled = CASE WHEN disabled = 0 AND ?2 > 0 AND "
	    "bounces + 1 >= ?2 THEN 2 ELSE disabled END WHERE code = ?1",
	    "li", code, (long long)limit), err, sizeof(err)) == -1 ? -1 : 0;
}

static int
sq_mask_ok(struct table_be *t, const char *kind, const char *code)
{
	char	 err[256];

	return sq_done(t, sq_prepf(t, err, sizeof(err), strcmp(kind,
	    "service") == 0 ? "UPDATE mask_services SET bounces = 0 "
	    "WHERE code = ?1 AND bounces <> 0" : "UPDATE mask_pairs SET "
	    "bounces = 0 WHERE code = ?1 AND bounces <> 0", "l", code), err,
	    sizeof(err)) == -1 ? -1 : 0;
}

static int
sq_mask_events(struct table_be *t, const char *service, long long since,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt	*st;

	if ((st = sq_prepf(t, err, errlen, "SELECT service, pair, kind, at "
	    "FROM mask_events WHERE (?1 IS NULL OR service = ?1) AND "
	    "at >= ?2 ORDER BY at, rowid", "li", service, since)) == NULL)
		return -1;
	return table_rows(t, st, cb, arg, err, errlen);
}

const struct table_ops table_sqlite_ops = {
	.prefix = "sqlite:",
	.open = sq_open,
	.close = sq_close,
	.init_schema = sq_init_schema,
	.schema_version = sq_schema_version,
	.domain_local = sq_domain_local,
	.account_exists = sq_account_exists,
	.account_password = sq_account_password,
	.domain_add = sq_domain_add,
	.domain_del = sq_domain_del,
	.domain_list = sq_domain_list,
	.domain_accounts = sq_domain_accounts,
	.account_add = sq_account_add,
	.account_del = sq_account_del,
	.account_passwd = sq_account_passwd,
	.account_list = sq_account_list,
	.alias_get = sq_alias_get,
	.alias_wildcards = sq_alias_wildcards,
	.alias_add = sq_alias_add,
	.alias_del = sq_alias_del,
	.alias_list = sq_alias_list,
	.alias_list_target = sq_alias_list_target,
	.account_get = sq_account_get,
	.account_set = sq_account_set,
	.reset_put = sq_reset_put,
	.reset_take = sq_reset_take,
	.mask_service_get = sq_mask_service_get,
	.mask_service_add = sq_mask_service_add,
	.mask_service_set = sq_mask_service_set,
	.mask_service_del = sq_mask_service_del,
	.mask_service_list = sq_mask_service_list,
	.mask_pair_get = sq_mask_pair_get,
	.mask_pair_find = sq_mask_pair_find,
	.mask_pair_add = sq_mask_pair_add,
	.mask_pair_set = sq_mask_pair_set,
	.mask_pair_list = sq_mask_pair_list,
	.mask_event = sq_mask_event,
	.mask_bounce = sq_mask_bounce,
	.mask_ok = sq_mask_ok,
	.mask_events = sq_mask_events,
};
