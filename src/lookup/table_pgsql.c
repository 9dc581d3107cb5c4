/*
 * table_pgsql - the PostgreSQL backend of table.h
 * ("postgresql://user:password@host:port/dbname"), for several sluice
 * servers sharing one database.
 *
 * The same schema and versions as table_sqlite.c (docs/database.md, now
 * version 4: accounts.recovery and send_as, reset_tokens (3); the mask_*
 * tables of the masked relay (4)), in
 * TEXT and BIGINT columns. Names are stored lower-cased and compared with
 * lower() on both sides (a row a script wrote in capitals is still found);
 * unique indexes on lower() keep them unique whatever their case. aliases
 * has one more column, seq (an identity), for the insertion order SQLite
 * gets from its rowid. Listings sort on lower() in bytewise order ("C"),
 * as SQLite's NOCASE does.
 *
 * libpq: the DSN is handed to PQconnectdbParams as a URI (expand_dbname,
 * with a 10 s connect_timeout the DSN can override); every query is
 * PQexecParams with its values as bound parameters, never in the SQL text
 * (P7). Before each call a broken connection (PQstatus) is PQreset; a
 * lookup that fails for any reason is TABLE_TEMPFAIL (P3), and the lookup
 * process then closes and reopens the table. Admin functions return 0 or
 * -1 with a message in err. Notices are not printed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "table.h"
#include "table_backend.h"

#define PG_SCHEMA_VERSION	4
#define PG_NAME_MAX		255	/* longest domain or local we store */

/* SQLSTATEs we turn into words */
#define PG_UNIQUE_VIOLATION	"23505"
#define PG_FK_VIOLATION		"23503"

struct table_be {
	PGconn	*conn;
};

/* migrations[v - 1] takes the schema from version v - 1 to v */
static const char *const migrations[PG_SCHEMA_VERSION] = {
	"CREATE TABLE IF NOT EXISTS domains ("
	" name TEXT PRIMARY KEY,"
	" created BIGINT NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS domains_lower"
	" ON domains (lower(name));"
	"CREATE TABLE IF NOT EXISTS accounts ("
	" local TEXT NOT NULL,"
	" domain TEXT NOT NULL REFERENCES domains(name),"
	" password TEXT NOT NULL,"
	" created BIGINT NOT NULL,"
	" PRIMARY KEY (local, domain));"
	"CREATE UNIQUE INDEX IF NOT EXISTS accounts_lower"
	" ON accounts (lower(local), lower(domain));"
	"CREATE INDEX IF NOT EXISTS accounts_domain"
	" ON accounts (lower(domain));",
	/* 2: aliases that scripts and web forms can change */
	"CREATE TABLE aliases ("
	" address TEXT NOT NULL,"
	" target TEXT NOT NULL,"
	" owner TEXT NOT NULL DEFAULT '',"
	" created BIGINT NOT NULL,"
	" seq BIGINT GENERATED ALWAYS AS IDENTITY,"
	" PRIMARY KEY (address, target));"
	"CREATE INDEX aliases_lower ON aliases (lower(address));",
	/* 3: recovery address, extra sender patterns, reset tokens */
	"ALTER TABLE accounts ADD COLUMN recovery TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE accounts ADD COLUMN send_as TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE reset_tokens ("
	" address TEXT PRIMARY KEY,"
	" token_hash TEXT NOT NULL,"
	" expires BIGINT NOT NULL);"
	"CREATE INDEX aliases_target ON aliases (lower(target));",
	/* 4: the masked relay (docs/masks.md) */
	"CREATE TABLE mask_services ("
	" code TEXT PRIMARY KEY,"
	" real TEXT NOT NULL,"
	" label TEXT NOT NULL DEFAULT '',"
	" created BIGINT NOT NULL,"
	" expires BIGINT NOT NULL DEFAULT 0,"
	" disabled INTEGER NOT NULL DEFAULT 0,"
	" bounces INTEGER NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX mask_services_lower ON mask_services (lower(code));"
	"CREATE TABLE mask_pairs ("
	" code TEXT PRIMARY KEY,"
	" service TEXT NOT NULL REFERENCES mask_services(code),"
	" person TEXT NOT NULL,"
	" created BIGINT NOT NULL,"
	" disabled INTEGER NOT NULL DEFAULT 0,"
	" bounces INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (service, person));"
	"CREATE UNIQUE INDEX mask_pairs_lower ON mask_pairs (lower(code));"
	"CREATE UNIQUE INDEX mask_pairs_person"
	" ON mask_pairs (lower(service), lower(person));"
	"CREATE TABLE mask_events ("
	" service TEXT NOT NULL,"
	" pair TEXT NOT NULL DEFAULT '',"
	" kind TEXT NOT NULL,"
	" at BIGINT NOT NULL,"
	" seq BIGINT GENERATED ALWAYS AS IDENTITY);"
	"CREATE INDEX mask_events_service"
	" ON mask_events (lower(service), at);",
};

static void
pg_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* err = libpq's last message, without its newline */
static void
pg_error(struct table_be *t, const PGresult *r, char *err, size_t errlen)
{
	const char	*m = NULL;
	size_t		 n;

	if (r != NULL)
		m = PQresultErrorMessage(r);
	if (m == NULL || *m == '\0')
		m = t->conn ? PQerrorMessage(t->conn) : "no connection";
	if (m == NULL || *m == '\0')
		m = "database error";
	n = strcspn(m, "\n");
	snprintf(err, errlen, "postgresql: %.*s", (int)n, m);
}

static int
pg_sqlstate_is(const PGresult *r, const char *state)
{
	const char	*s;

	return r != NULL && (s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) !=
	    NULL && strcmp(s, state) == 0;
}

static struct table_be *
pg_open(const char *dsn, char *err, size_t errlen)
{
	static const char *const keys[] = { "connect_timeout", "dbname",
	    NULL };
	const char		*vals[] = { "10", dsn, NULL };
	struct table_be		*t;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* the DSN is a URI: expand_dbname parses it, its values win */
	t->conn = PQconnectdbParams(keys, vals, 1);
	if (t->conn == NULL) {
		snprintf(err, errlen, "postgresql: out of memory");
		free(t);
		return NULL;
	}
	if (PQstatus(t->conn) != CONNECTION_OK) {
		pg_error(t, NULL, err, errlen);
		PQfinish(t->conn);
		free(t);
		return NULL;
	}
	PQsetNoticeProcessor(t->conn, pg_quiet, NULL);
	return t;
}

static void
pg_close(struct table_be *t)
{
	if (t == NULL)
		return;
	PQfinish(t->conn);
	free(t);
}

/*
 * A usable connection: a broken one is reset (the server may be back); a
 * transaction left open by a failure is rolled back. 0 or -1 with err set.
 */
static int
pg_ready(struct table_be *t, char *err, size_t errlen)
{
	PGresult	*r;

	if (PQstatus(t->conn) != CONNECTION_OK) {
		PQreset(t->conn);
		if (PQstatus(t->conn) != CONNECTION_OK) {
			pg_error(t, NULL, err, errlen);
			return -1;
		}
		PQsetNoticeProcessor(t->conn, pg_quiet, NULL);
	}
	if (PQtransactionStatus(t->conn) != PQTRANS_IDLE) {
		if ((r = PQexec(t->conn, "ROLLBACK")) == NULL ||
		    PQresultStatus(r) != PGRES_COMMAND_OK) {
			pg_error(t, r, err, errlen);
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

/*
 * Run sql with n text parameters (NULL is SQL NULL). Returns the result
 * when its status is want, else NULL with err set; *res_err, if not NULL,
 * gets the failed result (for its SQLSTATE; the caller clears it). With
 * ready, the connection is made ready first (not inside a transaction).
 */
static PGresult *
pg_run(struct table_be *t, int ready, const char *sql, int n,
    const char *const *params, ExecStatusType want, PGresult **res_err,
    char *err, size_t errlen)
{
	PGresult	*r;

	if (res_err != NULL)
		*res_err = NULL;
	if (ready && pg_ready(t, err, errlen) == -1)
		return NULL;
	r = PQexecParams(t->conn, sql, n, NULL, params, NULL, NULL, 0);
	if (r != NULL && PQresultStatus(r) == want)
		return r;
	pg_error(t, r, err, errlen);
	if (res_err != NULL && r != NULL)
		*res_err = r;
	else
		PQclear(r);
	return NULL;
}

#define pg_exec(t, sql, n, p, want, fail, err, errlen) \
	pg_run((t), 1, (sql), (n), (p), (want), (fail), (err), (errlen))

/* Lower-case name into low (PG_NAME_MAX + 1 at least); -1 if too long. */
static int
pg_lower(const char *name, char *low, size_t lowlen)
{
	size_t	 n, k;

	if ((n = strlen(name)) >= lowlen)
		return -1;
	for (k = 0; k < n; k++)
		low[k] = (char)tolower((unsigned char)name[k]);
	low[n] = '\0';
	return 0;
}

/* the number of rows a command changed */
static int
pg_rows(PGresult *r)
{
	long	 n = strtol(PQcmdTuples(r), NULL, 10);

	return n < 0 ? 0 : n > 1000000000 ? 1000000000 : (int)n;
}

/*
 * The schema version: 0 for an empty database; -1 with err set. Runs on
 * the connection as it is (also inside the migration's transaction).
 */
static int
pg_version(struct table_be *t, char *err, size_t errlen)
{
	const char *const	 p[1] = { "schema_version" };
	PGresult		*r, *fail;
	long			 v;

	r = pg_run(t, 0, "SELECT value FROM meta WHERE key = $1::text", 1, p,
	    PGRES_TUPLES_OK, &fail, err, errlen);
	if (r == NULL) {
		if (pg_sqlstate_is(fail, "42P01")) {	/* no meta: empty */
			PQclear(fail);
			return 0;
		}
		PQclear(fail);
		return -1;
	}
	v = PQntuples(r) > 0 ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	if (v < 0 || v > 1000000) {
		snprintf(err, errlen, "postgresql: bad schema_version");
		return -1;
	}
	return (int)v;
}

/* run one statement that returns no rows, without parameters */
static int
pg_command(struct table_be *t, const char *sql, char *err, size_t errlen)
{
	PGresult	*r;

	if ((r = PQexec(t->conn, sql)) == NULL ||
	    PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_error(t, r, err, errlen);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

/*
 * Create or migrate the schema, one version a transaction. meta is locked
 * in each transaction and the version read again, so that several sluice
 * servers starting at once migrate each step once.
 */
static int
pg_init_schema(struct table_be *t, char *err, size_t errlen)
{
	char		 ver[16];
	const char	*p[1] = { ver };
	PGresult	*r;
	int		 v;

	if (pg_ready(t, err, errlen) == -1)
		return -1;
	if ((v = pg_version(t, err, errlen)) == -1)
		return -1;
	if (v == 0 && pg_command(t, "CREATE TABLE IF NOT EXISTS meta ("
	    " key TEXT PRIMARY KEY, value TEXT NOT NULL)", err, errlen) == -1)
		return -1;
	for (;;) {
		if (pg_command(t, "BEGIN", err, errlen) == -1)
			return -1;
		if (pg_command(t, "LOCK TABLE meta IN EXCLUSIVE MODE", err,
		    errlen) == -1 || (v = pg_version(t, err, errlen)) == -1)
			goto fail;
		if (v > PG_SCHEMA_VERSION) {
			snprintf(err, errlen, "postgresql: schema version %d is "
			    "newer than this sluice (version %d)", v,
			    PG_SCHEMA_VERSION);
			goto fail;
		}
		if (v == PG_SCHEMA_VERSION)
			return pg_command(t, "COMMIT", err, errlen);
		snprintf(ver, sizeof(ver), "%d", v + 1);
		if (pg_command(t, migrations[v], err, errlen) == -1)
			goto fail;
		r = PQexecParams(t->conn, "INSERT INTO meta (key, value) "
		    "VALUES ('schema_version', $1::text) ON CONFLICT (key) "
		    "DO UPDATE SET value = EXCLUDED.value", 1, NULL, p, NULL,
		    NULL, 0);
		if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
			pg_error(t, r, err, errlen);
			PQclear(r);
			goto fail;
		}
		PQclear(r);
		if (pg_command(t, "COMMIT", err, errlen) == -1)
			goto fail;
	}
fail:
	if (PQstatus(t->conn) == CONNECTION_OK &&
	    PQtransactionStatus(t->conn) != PQTRANS_IDLE)
		PQclear(PQexec(t->conn, "ROLLBACK"));
	return -1;
}

static int
pg_schema_version(struct table_be *t)
{
	char	 err[256];

	if (pg_ready(t, err, sizeof(err)) == -1)
		return -1;
	return pg_version(t, err, sizeof(err));
}

/* A lookup whose answer is "a row exists". */
static enum table_res
pg_exists(struct table_be *t, const char *sql, const char *a, const char *b)
{
	char		 la[PG_NAME_MAX + 1], lb[PG_NAME_MAX + 1], err[256];
	const char	*p[2] = { la, lb };
	PGresult	*r;
	enum table_res	 res;

	if (pg_lower(a, la, sizeof(la)) == -1 ||
	    (b != NULL && pg_lower(b, lb, sizeof(lb)) == -1))
		return TABLE_NOTFOUND;	/* too long to exist */
	if ((r = pg_exec(t, sql, b ? 2 : 1, p, PGRES_TUPLES_OK, NULL, err,
	    sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	res = PQntuples(r) > 0 ? TABLE_FOUND : TABLE_NOTFOUND;
	PQclear(r);
	return res;
}

static enum table_res
pg_domain_local(struct table_be *t, const char *domain)
{
	return pg_exists(t, "SELECT 1 FROM domains "
	    "WHERE lower(name) = $1::text", domain, NULL);
}

static enum table_res
pg_account_exists(struct table_be *t, const char *local, const char *domain)
{
	return pg_exists(t, "SELECT 1 FROM accounts "
	    "WHERE lower(local) = $1::text AND lower(domain) = $2::text",
	    local, domain);
}

static enum table_res
pg_account_password(struct table_be *t, const char *local,
    const char *domain, char *hash, size_t hashlen)
{
	char		 ll[PG_NAME_MAX + 1], ld[PG_NAME_MAX + 1], err[256];
	const char	*p[2] = { ll, ld };
	PGresult	*r;
	size_t		 n;

	if (pg_lower(local, ll, sizeof(ll)) == -1 ||
	    pg_lower(domain, ld, sizeof(ld)) == -1)
		return TABLE_NOTFOUND;
	if ((r = pg_exec(t, "SELECT password FROM accounts "
	    "WHERE lower(local) = $1::text AND lower(domain) = $2::text", 2,
	    p, PGRES_TUPLES_OK, NULL, err, sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return TABLE_NOTFOUND;
	}
	n = strlen(PQgetvalue(r, 0, 0));
	if (PQgetisnull(r, 0, 0) || n >= hashlen) {
		PQclear(r);
		return TABLE_TEMPFAIL;
	}
	memcpy(hash, PQgetvalue(r, 0, 0), n + 1);
	PQclear(r);
	return TABLE_FOUND;
}

/*
 * Run a statement that changes rows: up to three names (lower-cased; NULL
 * ends the list), then the hash if set, then the time if `when`, as $1...
 * Returns the number of rows changed or -1 with err set; *state gets the
 * SQLSTATE's meaning: 'u' unique, 'f' foreign key, 0 other.
 */
static int
pg_change(struct table_be *t, const char *sql, const char *names[3],
    const char *hash, int when, int *state, char *err, size_t errlen)
{
	char		 low[3][PG_NAME_MAX + 1], now[32];
	const char	*p[5];
	PGresult	*r, *fail;
	int		 n = 0, i, rows;

	*state = 0;
	for (i = 0; i < 3 && names[i] != NULL; i++) {
		if (pg_lower(names[i], low[i], sizeof(low[i])) == -1) {
			snprintf(err, errlen, "name too long");
			return -1;
		}
		p[n++] = low[i];
	}
	if (hash != NULL)
		p[n++] = hash;
	if (when) {
		snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
		p[n++] = now;
	}
	if ((r = pg_exec(t, sql, n, p, PGRES_COMMAND_OK, &fail, err,
	    errlen)) == NULL) {
		if (pg_sqlstate_is(fail, PG_UNIQUE_VIOLATION))
			*state = 'u';
		else if (pg_sqlstate_is(fail, PG_FK_VIOLATION))
			*state = 'f';
		PQclear(fail);
		return -1;
	}
	rows = pg_rows(r);
	PQclear(r);
	return rows;
}

static int
pg_domain_add(struct table_be *t, const char *domain, char *err,
    size_t errlen)
{
	const char	*n[3] = { domain, NULL, NULL };
	int		 st;

	if (pg_change(t, "INSERT INTO domains (name, created) "
	    "VALUES ($1::text, $2::bigint)", n, NULL, 1, &st, err,
	    errlen) == -1) {
		if (st == 'u')
			snprintf(err, errlen, "domain already exists");
		return -1;
	}
	return 0;
}

static int
pg_domain_del(struct table_be *t, const char *domain, char *err,
    size_t errlen)
{
	const char	*n[3] = { domain, NULL, NULL };
	int		 rc, st;

	rc = pg_change(t, "DELETE FROM domains WHERE lower(name) = $1::text",
	    n, NULL, 0, &st, err, errlen);
	if (rc == -1 && st == 'f')
		snprintf(err, errlen, "domain still has accounts");
	if (rc == 0)
		snprintf(err, errlen, "no such domain");
	return rc <= 0 ? -1 : 0;
}

static int
pg_account_add(struct table_be *t, const char *local, const char *domain,
    const char *hash, char *err, size_t errlen)
{
	const char	*n[3] = { local, domain, NULL };
	int		 st;

	if (pg_change(t, "INSERT INTO accounts (local, domain, password, "
	    "created) VALUES ($1::text, $2::text, $3::text, $4::bigint)", n,
	    hash, 1, &st, err, errlen) == -1) {
		if (st == 'u')
			snprintf(err, errlen, "account already exists");
		else if (st == 'f')
			snprintf(err, errlen, "no such domain");
		return -1;
	}
	return 0;
}

/* run sql with n parameters inside the open transaction; rows or -1 */
static int
pg_tx_change(struct table_be *t, const char *sql, int n,
    const char *const *p, char *err, size_t errlen)
{
	PGresult	*r;
	int		 rows;

	if ((r = pg_run(t, 0, sql, n, p, PGRES_COMMAND_OK, NULL, err,
	    errlen)) == NULL)
		return -1;
	rows = pg_rows(r);
	PQclear(r);
	return rows;
}

/*
 * The account, the alias rows that point at it and its reset token, in one
 * transaction.
 */
static int
pg_account_del(struct table_be *t, const char *local, const char *domain,
    char *err, size_t errlen)
{
	char		 ll[PG_NAME_MAX + 1], ld[PG_NAME_MAX + 1];
	const char	*p[2] = { ll, ld };
	int		 rc;

	if (pg_lower(local, ll, sizeof(ll)) == -1 ||
	    pg_lower(domain, ld, sizeof(ld)) == -1) {
		snprintf(err, errlen, "name too long");
		return -1;
	}
	if (pg_ready(t, err, errlen) == -1 ||
	    pg_command(t, "BEGIN", err, errlen) == -1)
		return -1;
	rc = pg_tx_change(t, "DELETE FROM accounts WHERE lower(local) = "
	    "$1::text AND lower(domain) = $2::text", 2, p, err, errlen);
	if (rc > 0 && (pg_tx_change(t, "DELETE FROM aliases WHERE "
	    "lower(target) = $1::text || '@' || $2::text", 2, p, err,
	    errlen) == -1 || pg_tx_change(t, "DELETE FROM reset_tokens WHERE "
	    "address = $1::text || '@' || $2::text", 2, p, err, errlen) == -1))
		rc = -1;
	if (rc == 0)
		snprintf(err, errlen, "no such account");
	if (rc > 0 && pg_command(t, "COMMIT", err, errlen) == 0)
		return 0;
	if (PQtransactionStatus(t->conn) != PQTRANS_IDLE)
		PQclear(PQexec(t->conn, "ROLLBACK"));
	return -1;
}

static int
pg_account_passwd(struct table_be *t, const char *local, const char *domain,
    const char *hash, char *err, size_t errlen)
{
	const char	*n[3] = { local, domain, NULL };
	int		 rc, st;

	rc = pg_change(t, "UPDATE accounts SET password = $3::text "
	    "WHERE lower(local) = $1::text AND lower(domain) = $2::text", n,
	    hash, 0, &st, err, errlen);
	if (rc == 0)
		snprintf(err, errlen, "no such account");
	return rc <= 0 ? -1 : 0;
}

/* Hand each row of r (text columns, NULL as "") to cb; clears r. */
static void
pg_rows_cb(PGresult *r, table_row_cb cb, void *arg)
{
	const char	*cols[8];
	int		 nr, nc, i, j;

	nr = PQntuples(r);
	if ((nc = PQnfields(r)) > 8)
		nc = 8;
	for (i = 0; i < nr; i++) {
		for (j = 0; j < nc; j++)
			cols[j] = PQgetisnull(r, i, j) ? "" :
			    PQgetvalue(r, i, j);
		cb(arg, cols, (size_t)nc);
	}
	PQclear(r);
}

/* A listing, optionally limited to one domain ($1, lower-cased). */
static int
pg_list(struct table_be *t, const char *sql, const char *domain,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	char		 ld[PG_NAME_MAX + 1];
	const char	*p[1] = { NULL };
	PGresult	*r;

	if (domain != NULL) {
		if (pg_lower(domain, ld, sizeof(ld)) == -1) {
			snprintf(err, errlen, "domain name too long");
			return -1;
		}
		p[0] = ld;
	}
	if ((r = pg_exec(t, sql, 1, p, PGRES_TUPLES_OK, NULL, err,
	    errlen)) == NULL)
		return -1;
	pg_rows_cb(r, cb, arg);
	return 0;
}

static int
pg_domain_list(struct table_be *t, table_row_cb cb, void *arg, char *err,
    size_t errlen)
{
	PGresult	*r;

	if ((r = pg_exec(t, "SELECT name, created::text FROM domains "
	    "ORDER BY lower(name) COLLATE \"C\"", 0, NULL, PGRES_TUPLES_OK, NULL,
	    err, errlen)) == NULL)
		return -1;
	pg_rows_cb(r, cb, arg);
	return 0;
}

static int
pg_account_list(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	return pg_list(t, "SELECT local || '@' || domain, domain, "
	    "created::text FROM accounts "
	    "WHERE $1::text IS NULL OR lower(domain) = $1::text "
	    "ORDER BY lower(domain) COLLATE \"C\", lower(local) COLLATE \"C\"",
	    domain, cb, arg, err, errlen);
}

static int
pg_domain_accounts(struct table_be *t, const char *domain,
    unsigned long *count, char *err, size_t errlen)
{
	char		 ld[PG_NAME_MAX + 1];
	const char	*p[1] = { ld };
	PGresult	*r;

	*count = 0;
	if (pg_lower(domain, ld, sizeof(ld)) == -1)
		return 0;	/* too long to exist */
	if ((r = pg_exec(t, "SELECT count(*) FROM accounts "
	    "WHERE lower(domain) = $1::text", 1, p, PGRES_TUPLES_OK, NULL,
	    err, errlen)) == NULL)
		return -1;
	if (PQntuples(r) == 1)
		*count = strtoul(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

/* ---- aliases (schema 2) ---- */

static enum table_res
pg_alias_get(struct table_be *t, const char *key, table_row_cb cb,
    void *arg)
{
	char		 lk[2 * PG_NAME_MAX + 2], err[256];
	const char	*p[1] = { lk };
	const char	*cols[2];
	PGresult	*r;
	int		 i, nr, found = 0;

	if (pg_lower(key, lk, sizeof(lk)) == -1)
		return TABLE_NOTFOUND;
	if ((r = pg_exec(t, "SELECT target, owner FROM aliases "
	    "WHERE lower(address) = $1::text ORDER BY seq", 1, p,
	    PGRES_TUPLES_OK, NULL, err, sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	nr = PQntuples(r);
	for (i = 0; i < nr; i++) {
		if (PQgetisnull(r, i, 0))
			continue;
		cols[0] = PQgetvalue(r, i, 0);
		cols[1] = PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1);
		cb(arg, cols, 2);
		found = 1;
	}
	PQclear(r);
	return found ? TABLE_FOUND : TABLE_NOTFOUND;
}

static enum table_res
pg_alias_wildcards(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg)
{
	char		 ld[PG_NAME_MAX + 1], err[256];
	const char	*p[1] = { ld };
	const char	*cols[1];
	PGresult	*r;
	int		 i, nr, found = 0;

	if (pg_lower(domain, ld, sizeof(ld)) == -1)
		return TABLE_NOTFOUND;
	if ((r = pg_exec(t, "SELECT DISTINCT address FROM aliases "
	    "WHERE right(lower(address), length($1::text) + 2) = "
	    "'*@' || $1::text", 1, p, PGRES_TUPLES_OK, NULL, err,
	    sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	nr = PQntuples(r);
	for (i = 0; i < nr; i++) {
		if (PQgetisnull(r, i, 0))
			continue;
		cols[0] = PQgetvalue(r, i, 0);
		cb(arg, cols, 1);
		found = 1;
	}
	PQclear(r);
	return found ? TABLE_FOUND : TABLE_NOTFOUND;
}

static int
pg_alias_add(struct table_be *t, const char *key, const char *target,
    const char *owner, char *err, size_t errlen)
{
	char		 lk[2 * PG_NAME_MAX + 2], now[32];
	const char	*p[4] = { lk, target, owner, now };
	PGresult	*r, *fail;

	if (pg_lower(key, lk, sizeof(lk)) == -1) {
		snprintf(err, errlen, "address too long");
		return -1;
	}
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	if ((r = pg_exec(t, "INSERT INTO aliases (address, target, owner, "
	    "created) VALUES ($1::text, $2::text, $3::text, $4::bigint)", 4, p,
	    PGRES_COMMAND_OK, &fail, err, errlen)) == NULL) {
		if (pg_sqlstate_is(fail, PG_UNIQUE_VIOLATION))
			snprintf(err, errlen, "%s already has target %s", key,
			    target);
		PQclear(fail);
		return -1;
	}
	PQclear(r);
	return 0;
}

static int
pg_alias_del(struct table_be *t, const char *key, const char *target,
    char *err, size_t errlen)
{
	char		 lk[2 * PG_NAME_MAX + 2];
	const char	*p[2] = { lk, target };
	PGresult	*r;
	int		 rows;

	if (pg_lower(key, lk, sizeof(lk)) == -1) {
		snprintf(err, errlen, "address too long");
		return -1;
	}
	if ((r = pg_exec(t, "DELETE FROM aliases WHERE lower(address) = "
	    "$1::text AND ($2::text IS NULL OR target = $2::text)", 2, p,
	    PGRES_COMMAND_OK, NULL, err, errlen)) == NULL)
		return -1;
	rows = pg_rows(r);
	PQclear(r);
	if (rows == 0) {
		snprintf(err, errlen, "no such alias%s%s", target ? " target " :
		    "", target ? target : "");
		return -1;
	}
	return 0;
}

/* cols: address, target, owner, created */
static int
pg_alias_list(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	return pg_list(t, "SELECT address, target, owner, created::text "
	    "FROM aliases WHERE $1::text IS NULL OR "
	    "right(lower(address), length($1::text) + 1) = '@' || $1::text "
	    "ORDER BY lower(address) COLLATE \"C\", seq", domain, cb, arg, err,
	    errlen);
}

/* cols: address, target, owner, created */
static int
pg_alias_list_target(struct table_be *t, const char *target,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	char		 lt[2 * PG_NAME_MAX + 2];
	const char	*p[1] = { lt };
	PGresult	*r;

	if (pg_lower(target, lt, sizeof(lt)) == -1) {
		snprintf(err, errlen, "address too long");
		return -1;
	}
	if ((r = pg_exec(t, "SELECT address, target, owner, created::text "
	    "FROM aliases WHERE lower(target) = $1::text "
	    "ORDER BY lower(address) COLLATE \"C\", seq", 1, p,
	    PGRES_TUPLES_OK, NULL, err, errlen)) == NULL)
		return -1;
	pg_rows_cb(r, cb, arg);
	return 0;
}

/* ---- schema 3: account details, reset tokens ---- */

/* field (i, j) of r into dst; -1 if it does not fit */
static int
pg_field(PGresult *r, int i, int j, char *dst, size_t dstlen)
{
	const char	*v = PQgetisnull(r, i, j) ? "" : PQgetvalue(r, i, j);
	size_t		 n = strlen(v);

	if (n >= dstlen)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

static enum table_res
pg_account_get(struct table_be *t, const char *local, const char *domain,
    struct table_account *out)
{
	char		 ll[PG_NAME_MAX + 1], ld[PG_NAME_MAX + 1], err[256];
	const char	*p[2] = { ll, ld };
	PGresult	*r;
	enum table_res	 res = TABLE_FOUND;

	if (pg_lower(local, ll, sizeof(ll)) == -1 ||
	    pg_lower(domain, ld, sizeof(ld)) == -1)
		return TABLE_NOTFOUND;
	if ((r = pg_exec(t, "SELECT password, recovery, send_as, "
	    "created::text FROM accounts WHERE lower(local) = $1::text AND "
	    "lower(domain) = $2::text", 2, p, PGRES_TUPLES_OK, NULL, err,
	    sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	if (PQntuples(r) == 0)
		res = TABLE_NOTFOUND;
	else if (pg_field(r, 0, 0, out->hash, sizeof(out->hash)) == -1 ||
	    pg_field(r, 0, 1, out->recovery, sizeof(out->recovery)) == -1 ||
	    pg_field(r, 0, 2, out->send_as, sizeof(out->send_as)) == -1)
		res = TABLE_TEMPFAIL;
	else
		out->created = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	PQclear(r);
	return res;
}

static int
pg_account_set(struct table_be *t, const char *local, const char *domain,
    const char *recovery, const char *send_as, char *err, size_t errlen)
{
	char		 ll[PG_NAME_MAX + 1], ld[PG_NAME_MAX + 1];
	const char	*p[4] = { ll, ld, recovery, send_as };
	PGresult	*r;
	int		 rows;

	if (pg_lower(local, ll, sizeof(ll)) == -1 ||
	    pg_lower(domain, ld, sizeof(ld)) == -1) {
		snprintf(err, errlen, "name too long");
		return -1;
	}
	if ((r = pg_exec(t, "UPDATE accounts SET "
	    "recovery = coalesce($3::text, recovery), "
	    "send_as = coalesce($4::text, send_as) "
	    "WHERE lower(local) = $1::text AND lower(domain) = $2::text", 4, p,
	    PGRES_COMMAND_OK, NULL, err, errlen)) == NULL)
		return -1;
	rows = pg_rows(r);
	PQclear(r);
	if (rows == 0) {
		snprintf(err, errlen, "no such account");
		return -1;
	}
	return 0;
}

static int
pg_reset_put(struct table_be *t, const char *local, const char *domain,
    const char *token_hash, long long expires, char *err, size_t errlen)
{
	char		 ll[PG_NAME_MAX + 1], ld[PG_NAME_MAX + 1], ex[32];
	const char	*p[4] = { ll, ld, token_hash, ex };
	PGresult	*r;

	if (pg_lower(local, ll, sizeof(ll)) == -1 ||
	    pg_lower(domain, ld, sizeof(ld)) == -1) {
		snprintf(err, errlen, "name too long");
		return -1;
	}
	snprintf(ex, sizeof(ex), "%lld", expires);
	if ((r = pg_exec(t, "INSERT INTO reset_tokens (address, token_hash, "
	    "expires) VALUES ($1::text || '@' || $2::text, $3::text, "
	    "$4::bigint) ON CONFLICT (address) DO UPDATE SET "
	    "token_hash = EXCLUDED.token_hash, expires = EXCLUDED.expires", 4,
	    p, PGRES_COMMAND_OK, NULL, err, errlen)) == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/*
 * One DELETE both checks and consumes the token, so two concurrent
 * callers cannot both use it; then an expired one is removed.
 */
static enum table_res
pg_reset_take(struct table_be *t, const char *local, const char *domain,
    const char *token_hash, long long now)
{
	char		 ll[PG_NAME_MAX + 1], ld[PG_NAME_MAX + 1], nw[32];
	char		 err[256];
	const char	*p[4] = { ll, ld, token_hash, nw };
	const char	*q[3] = { ll, ld, nw };
	PGresult	*r;
	int		 found;

	if (pg_lower(local, ll, sizeof(ll)) == -1 ||
	    pg_lower(domain, ld, sizeof(ld)) == -1)
		return TABLE_NOTFOUND;
	snprintf(nw, sizeof(nw), "%lld", now);
	if ((r = pg_exec(t, "DELETE FROM reset_tokens WHERE address = "
	    "$1::text || '@' || $2::text AND token_hash = $3::text AND "
	    "expires > $4::bigint", 4, p, PGRES_COMMAND_OK, NULL, err,
	    sizeof(err))) == NULL)
		return TABLE_TEMPFAIL;
	found = pg_rows(r) > 0;
	PQclear(r);
	if ((r = pg_exec(t, "DELETE FROM reset_tokens WHERE address = "
	    "$1::text || '@' || $2::text AND expires <= $3::bigint", 3, q,
	    PGRES_COMMAND_OK, NULL, err, sizeof(err))) == NULL)
		return found ? TABLE_FOUND : TABLE_TEMPFAIL;
	PQclear(r);
	return found ? TABLE_FOUND : TABLE_NOTFOUND;
}

/* ---- schema 4: the masked relay ---- */

#define PG_TEXT_MAX	1024	/* longest text given to pg_lowers */

/*
 * Lower-case up to four values into low[] for parameters; a NULL stays
 * NULL. -1 if one is too long.
 */
static int
pg_lowers(char low[][PG_TEXT_MAX + 1], const char **p, int n)
{
	for (int i = 0; i < n; i++) {
		if (p[i] == NULL)
			continue;
		if (pg_lower(p[i], low[i], PG_TEXT_MAX + 1) == -1)
			return -1;
		p[i] = low[i];
	}
	return 0;
}

#define PG_SERVICE_COLS	"code, real, label, created::text, " \
	"expires::text, disabled::text, bounces::text"
#define PG_PAIR_COLS	"code, service, person, created::text, " \
	"disabled::text, bounces::text"

static int
pg_service_row(PGresult *r, int i, struct table_mask_service *s)
{
	if (pg_field(r, i, 0, s->code, sizeof(s->code)) == -1 ||
	    pg_field(r, i, 1, s->real, sizeof(s->real)) == -1 ||
	    pg_field(r, i, 2, s->label, sizeof(s->label)) == -1)
		return -1;
	s->created = strtoll(PQgetvalue(r, i, 3), NULL, 10);
	s->expires = strtoll(PQgetvalue(r, i, 4), NULL, 10);
	s->disabled = (int)strtol(PQgetvalue(r, i, 5), NULL, 10);
	s->bounces = (unsigned)strtoul(PQgetvalue(r, i, 6), NULL, 10);
	return 0;
}

static int
pg_pair_row(PGresult *r, int i, struct table_mask_pair *p)
{
	if (pg_field(r, i, 0, p->code, sizeof(p->code)) == -1 ||
	    pg_field(r, i, 1, p->service, sizeof(p->service)) == -1 ||
	    pg_field(r, i, 2, p->person, sizeof(p->person)) == -1)
		return -1;
	p->created = strtoll(PQgetvalue(r, i, 3), NULL, 10);
	p->disabled = (int)strtol(PQgetvalue(r, i, 4), NULL, 10);
	p->bounces = (unsigned)strtoul(PQgetvalue(r, i, 5), NULL, 10);
	return 0;
}

/* a query for at most one row, its parameters lower-cased */
static PGresult *
pg_query_lower(struct table_be *t, const char *sql, int n, const char **p,
    enum table_res *res)
{
	char		 low[4][PG_TEXT_MAX + 1], err[256];
	PGresult	*r;

	*res = TABLE_TEMPFAIL;
	if (pg_lowers(low, p, n) == -1) {
		*res = TABLE_NOTFOUND;
		return NULL;
	}
	if ((r = pg_exec(t, sql, n, p, PGRES_TUPLES_OK, NULL, err,
	    sizeof(err))) == NULL)
		return NULL;
	if (PQntuples(r) == 0) {
		*res = TABLE_NOTFOUND;
		PQclear(r);
		return NULL;
	}
	*res = TABLE_FOUND;
	return r;
}

static enum table_res
pg_mask_service_get(struct table_be *t, const char *code,
    struct table_mask_service *out)
{
	const char	*p[1] = { code };
	PGresult	*r;
	enum table_res	 res;

	if ((r = pg_query_lower(t, "SELECT " PG_SERVICE_COLS " FROM "
	    "mask_services WHERE lower(code) = $1::text", 1, p, &res)) == NULL)
		return res;
	res = pg_service_row(r, 0, out) == 0 ? TABLE_FOUND : TABLE_TEMPFAIL;
	PQclear(r);
	return res;
}

/*
 * A change with n parameters of which the first nlow are lower-cased.
 * Rows changed or -1 with err set; *unique is set on a unique violation.
 */
static int
pg_mask_change(struct table_be *t, int tx, const char *sql, int n, int nlow,
    const char **p, int *unique, char *err, size_t errlen)
{
	char		 low[4][PG_TEXT_MAX + 1];
	PGresult	*r, *fail;
	int		 rows;

	if (unique != NULL)
		*unique = 0;
	if (pg_lowers(low, p, nlow) == -1) {
		snprintf(err, errlen, "value too long");
		return -1;
	}
	if ((r = pg_run(t, !tx, sql, n, p, PGRES_COMMAND_OK, &fail, err,
	    errlen)) == NULL) {
		if (unique != NULL && pg_sqlstate_is(fail, PG_UNIQUE_VIOLATION))
			*unique = 1;
		PQclear(fail);
		return -1;
	}
	rows = pg_rows(r);
	PQclear(r);
	return rows;
}

static int
pg_mask_service_add(struct table_be *t, const char *code, const char *real,
    const char *label, long long expires, char *err, size_t errlen)
{
	char		 now[32], ex[32];
	const char	*p[5] = { code, real, label, now, ex };
	int		 unique;

	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	snprintf(ex, sizeof(ex), "%lld", expires);
	if (pg_mask_change(t, 0, "INSERT INTO mask_services (code, real, "
	    "label, created, expires) VALUES ($1::text, $2::text, $3::text, "
	    "$4::bigint, $5::bigint)", 5, 2, p, &unique, err, errlen) == -1) {
		if (unique)
			snprintf(err, errlen, "service code already exists");
		return -1;
	}
	return 0;
}

static int
pg_mask_set(struct table_be *t, const char *sql, const char *code,
    int disabled, const char *what, char *err, size_t errlen)
{
	char		 d[16];
	const char	*p[2] = { code, d };
	int		 rc;

	snprintf(d, sizeof(d), "%d", disabled);
	rc = pg_mask_change(t, 0, sql, 2, 1, p, NULL, err, errlen);
	if (rc == 0)
		snprintf(err, errlen, "no such %s", what);
	return rc <= 0 ? -1 : 0;
}

static int
pg_mask_service_set(struct table_be *t, const char *code, int disabled,
    char *err, size_t errlen)
{
	return pg_mask_set(t, "UPDATE mask_services SET disabled = $2::int, "
	    "bounces = CASE WHEN $2::int = 0 THEN 0 ELSE bounces END "
	    "WHERE lower(code) = $1::text", code, disabled, "service", err,
	    errlen);
}

static int
pg_mask_service_del(struct table_be *t, const char *code, char *err,
    size_t errlen)
{
	const char	*p[1];
	int		 rc;

	if (pg_ready(t, err, errlen) == -1 ||
	    pg_command(t, "BEGIN", err, errlen) == -1)
		return -1;
	p[0] = code;
	rc = pg_mask_change(t, 1, "DELETE FROM mask_events WHERE "
	    "lower(service) = $1::text", 1, 1, p, NULL, err, errlen);
	p[0] = code;
	if (rc != -1)
		rc = pg_mask_change(t, 1, "DELETE FROM mask_pairs WHERE "
		    "lower(service) = $1::text", 1, 1, p, NULL, err, errlen);
	p[0] = code;
	if (rc != -1)
		rc = pg_mask_change(t, 1, "DELETE FROM mask_services WHERE "
		    "lower(code) = $1::text", 1, 1, p, NULL, err, errlen);
	if (rc == 0)
		snprintf(err, errlen, "no such service");
	if (rc > 0 && pg_command(t, "COMMIT", err, errlen) == 0)
		return 0;
	if (PQtransactionStatus(t->conn) != PQTRANS_IDLE)
		PQclear(PQexec(t->conn, "ROLLBACK"));
	return -1;
}

static int
pg_mask_service_list(struct table_be *t, table_row_cb cb, void *arg,
    char *err, size_t errlen)
{
	PGresult	*r;

	if ((r = pg_exec(t, "SELECT s.code, s.real, s.label, s.created::text, "
	    "s.expires::text, s.disabled::text, s.bounces::text, "
	    "(SELECT count(*) FROM mask_pairs p WHERE lower(p.service) = "
	    "lower(s.code))::text FROM mask_services s "
	    "ORDER BY s.created, lower(s.code) COLLATE \"C\"", 0, NULL,
	    PGRES_TUPLES_OK, NULL, err, errlen)) == NULL)
		return -1;
	pg_rows_cb(r, cb, arg);
	return 0;
}

static enum table_res
pg_mask_pair_get(struct table_be *t, const char *code,
    struct table_mask_pair *out)
{
	const char	*p[1] = { code };
	PGresult	*r;
	enum table_res	 res;

	if ((r = pg_query_lower(t, "SELECT " PG_PAIR_COLS " FROM mask_pairs "
	    "WHERE lower(code) = $1::text", 1, p, &res)) == NULL)
		return res;
	res = pg_pair_row(r, 0, out) == 0 ? TABLE_FOUND : TABLE_TEMPFAIL;
	PQclear(r);
	return res;
}

static enum table_res
pg_mask_pair_find(struct table_be *t, const char *service,
    const char *person, struct table_mask_pair *out)
{
	const char	*p[2] = { service, person };
	PGresult	*r;
	enum table_res	 res;

	if ((r = pg_query_lower(t, "SELECT " PG_PAIR_COLS " FROM mask_pairs "
	    "WHERE lower(service) = $1::text AND lower(person) = $2::text", 2,
	    p, &res)) == NULL)
		return res;
	res = pg_pair_row(r, 0, out) == 0 ? TABLE_FOUND : TABLE_TEMPFAIL;
	PQclear(r);
	return res;
}

/*
 * Race-safe: ON CONFLICT DO NOTHING covers both unique keys; the SELECT
 * then finds the pair another message made. If the code was taken by
 * another pair there is nothing to find: TEMPFAIL (the next try draws a
 * new code).
 */
static enum table_res
pg_mask_pair_add(struct table_be *t, const char *code, const char *service,
    const char *person, struct table_mask_pair *out)
{
	char		 now[32], err[256];
	const char	*p[4] = { code, service, person, now };

	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	if (pg_mask_change(t, 0, "INSERT INTO mask_pairs (code, service, "
	    "person, created) VALUES ($1::text, $2::text, $3::text, "
	    "$4::bigint) ON CONFLICT DO NOTHING", 4, 3, p, NULL, err,
	    sizeof(err)) == -1)
		return TABLE_TEMPFAIL;
	return pg_mask_pair_find(t, service, person, out) == TABLE_FOUND ?
	    TABLE_FOUND : TABLE_TEMPFAIL;
}

static int
pg_mask_pair_set(struct table_be *t, const char *code, int disabled,
    char *err, size_t errlen)
{
	return pg_mask_set(t, "UPDATE mask_pairs SET disabled = $2::int, "
	    "bounces = CASE WHEN $2::int = 0 THEN 0 ELSE bounces END "
	    "WHERE lower(code) = $1::text", code, disabled, "pair", err,
	    errlen);
}

static int
pg_mask_pair_list(struct table_be *t, const char *service, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	char		 low[1][PG_TEXT_MAX + 1];
	const char	*p[1] = { service };
	PGresult	*r;

	if (pg_lowers(low, p, 1) == -1)
		return 0;
	if ((r = pg_exec(t, "SELECT " PG_PAIR_COLS " FROM mask_pairs "
	    "WHERE lower(service) = $1::text ORDER BY mask_pairs.created, "
	    "lower(code) COLLATE \"C\"", 1, p, PGRES_TUPLES_OK, NULL, err,
	    errlen)) == NULL)
		return -1;
	pg_rows_cb(r, cb, arg);
	return 0;
}

static int
pg_mask_event(struct table_be *t, const char *service, const char *pair,
    const char *kind, long long at)
{
	char		 when[32], err[256];
	const char	*p[4] = { service, pair ? pair : "", kind, when };

	snprintf(when, sizeof(when), "%lld", at);
	return pg_mask_change(t, 0, "INSERT INTO mask_events (service, pair, "
	    "kind, at) VALUES ($1::text, $2::text, $3::text, $4::bigint)", 4,
	    2, p, NULL, err, sizeof(err)) == -1 ? -1 : 0;
}

static int
pg_mask_bounce(struct table_be *t, const char *kind, const char *code,
    unsigned limit)
{
	char		 lim[16], err[256];
	const char	*p[2] = { code, lim };

	snprintf(lim, sizeof(lim), "%u", limit);
	return pg_mask_change(t, 0, strcmp(kind, "service") == 0 ?
	    "UPDATE mask_services SET bounces = bounces + 1, "
	    "disabled = CASE WHEN disabled = 0 AND $2::int > 0 AND "
	    "bounces + 1 >= $2::int THEN 2 ELSE disabled END "
	    "WHERE lower(code) = $1::text" :
	    "UPDATE mask_pairs SET bounces = bounces + 1, "
	    "disabled = CASE WHEN disabled = 0 AND $2::int > 0 AND "
	    "bounces + 1 >= $2::int THEN 2 ELSE disabled END "
	    "WHERE lower(code) = $1::text", 2, 1, p, NULL, err,
	    sizeof(err)) == -1 ? -1 : 0;
}

static int
pg_mask_ok(struct table_be *t, const char *kind, const char *code)
{
	char		 err[256];
	const char	*p[1] = { code };

	return pg_mask_change(t, 0, strcmp(kind, "service") == 0 ?
	    "UPDATE mask_services SET bounces = 0 WHERE "
	    "lower(code) = $1::text AND bounces <> 0" :
	    "UPDATE mask_pairs SET bounces = 0 WHERE "
	    "lower(code) = $1::text AND bounces <> 0", 1, 1, p, NULL, err,
	    sizeof(err)) == -1 ? -1 : 0;
}

static int
pg_mask_events(struct table_be *t, const char *service, long long since,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	char		 low[1][PG_TEXT_MAX + 1], s[32];
	const char	*p[2] = { service, s };
	PGresult	*r;

	if (pg_lowers(low, p, 1) == -1)
		return 0;
	snprintf(s, sizeof(s), "%lld", since);
	if ((r = pg_exec(t, "SELECT service, pair, kind, at::text "
	    "FROM mask_events WHERE ($1::text IS NULL OR "
	    "lower(service) = $1::text) AND at >= $2::bigint "
	    "ORDER BY mask_events.at, seq", 2, p, PGRES_TUPLES_OK, NULL, err,
	    errlen)) == NULL)
		return -1;
	pg_rows_cb(r, cb, arg);
	return 0;
}

const struct table_ops table_pgsql_ops = {
	.prefix = "postgresql://",
	.open = pg_open,
	.close = pg_close,
	.init_schema = pg_init_schema,
	.schema_version = pg_schema_version,
	.domain_local = pg_domain_local,
	.account_exists = pg_account_exists,
	.account_password = pg_account_password,
	.domain_add = pg_domain_add,
	.domain_del = pg_domain_del,
	.domain_list = pg_domain_list,
	.domain_accounts = pg_domain_accounts,
	.account_add = pg_account_add,
	.account_del = pg_account_del,
	.account_passwd = pg_account_passwd,
	.account_list = pg_account_list,
	.alias_get = pg_alias_get,
	.alias_wildcards = pg_alias_wildcards,
	.alias_add = pg_alias_add,
	.alias_del = pg_alias_del,
	.alias_list = pg_alias_list,
	.alias_list_target = pg_alias_list_target,
	.account_get = pg_account_get,
	.account_set = pg_account_set,
	.reset_put = pg_reset_put,
	.reset_take = pg_reset_take,
	.mask_service_get = pg_mask_service_get,
	.mask_service_add = pg_mask_service_add,
	.mask_service_set = pg_mask_service_set,
	.mask_service_del = pg_mask_service_del,
	.mask_service_list = pg_mask_service_list,
	.mask_pair_get = pg_mask_pair_get,
	.mask_pair_find = pg_mask_pair_find,
	.mask_pair_add = pg_mask_pair_add,
	.mask_pair_set = pg_mask_pair_set,
	.mask_pair_list = pg_mask_pair_list,
	.mask_event = pg_mask_event,
	.mask_bounce = pg_mask_bounce,
	.mask_ok = pg_mask_ok,
	.mask_events = pg_mask_events,
};
