/* table: the backend dispatch, table_dsn_safe, schemas 3 and 4 on SQLite */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "table.h"

static void
safe(const char *in, const char *out)
{
	char	 buf[256];

	assert_string_equal(table_dsn_safe(in, buf, sizeof(buf)), out);
}

static void
test_dsn_safe(void **state)
{
	char	 small[16];

	(void)state;
	safe("postgresql://u:secret@127.0.0.1:5432/db",
	    "postgresql://u:***@127.0.0.1:5432/db");
	/* an encoded '@' and ':' in the password; the last '@' ends it */
	safe("postgresql://u:a%40b:c@host/db", "postgresql://u:***@host/db");
	safe("postgresql://u:p@ss@host/db?x=a@b", "postgresql://u:***@host/db?x=a@b");
	/* nothing to hide */
	safe("postgresql://u@host/db", "postgresql://u@host/db");
	safe("postgresql://host:5432/db", "postgresql://host:5432/db");
	safe("postgresql://host/db?password=x:y@z", "postgresql://host/db?password=x:y@z");
	safe("sqlite:/var/lib/sluice/sluice.db", "sqlite:/var/lib/sluice/sluice.db");
	/* truncated, never overflowing */
	assert_int_equal(strlen(table_dsn_safe("postgresql://user:secret@"
	    "a-long-host-name/db", small, sizeof(small))), sizeof(small) - 1);
}

static void
test_open_dispatch(void **state)
{
	char	 err[256];

	(void)state;
	assert_null(table_open("mysql://u@h/db", err, sizeof(err)));
	assert_non_null(strstr(err, "unknown database"));
	assert_null(table_open("sqlite:", err, sizeof(err)));
	/* a closed loopback port: the PostgreSQL backend reports libpq's error */
	assert_null(table_open("postgresql://u:pw@127.0.0.1:9/db", err,
	    sizeof(err)));
	assert_non_null(strstr(err, "postgresql: "));
	assert_null(strstr(err, "pw@"));
}

static void
count_row(void *arg, const char **cols, size_t ncols)
{
	size_t	*n = arg;

	assert_int_equal(ncols, 4);
	assert_string_equal(cols[1], "demo@example.test");
	(*n)++;
}

/* schema 3 on a fresh SQLite file: account details, tokens, deletion */
static void
test_sqlite_schema3(void **state)
{
	char			 dir[] = "/tmp/sluice-table-XXXXXX", dsn[128];
	char			 err[256], path[128];
	struct table		*t;
	struct table_account	 a;
	size_t			 n = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.db", dir);
	snprintf(dsn, sizeof(dsn), "sqlite:%s", path);
	assert_non_null(t = table_open(dsn, err, sizeof(err)));
	assert_int_equal(table_init_schema(t, err, sizeof(err)), 0);
	assert_int_equal(table_schema_version(t), 4);
	assert_int_equal(table_domain_add(t, "example.test", err,
	    sizeof(err)), 0);
	assert_int_equal(table_account_add(t, "demo", "example.test", "$y$h",
	    err, sizeof(err)), 0);
	assert_int_equal(table_account_get(t, "Demo", "example.test", &a),
	    TABLE_FOUND);
	assert_string_equal(a.hash, "$y$h");
	assert_string_equal(a.recovery, "");
	assert_true(a.created > 0);
	assert_int_equal(table_account_set(t, "demo", "example.test",
	    "r@remote.test", NULL, err, sizeof(err)), 0);
	assert_int_equal(table_account_set(t, "demo", "example.test", NULL,
	    "*@example.test", err, sizeof(err)), 0);
	assert_int_equal(table_account_get(t, "demo", "example.test", &a),
	    TABLE_FOUND);
	assert_string_equal(a.recovery, "r@remote.test");
	assert_string_equal(a.send_as, "*@example.test");
	assert_int_equal(table_account_set(t, "nobody", "example.test", "",
	    NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no such account"));
	assert_int_equal(table_account_get(t, "nobody", "example.test", &a),
	    TABLE_NOTFOUND);

	/* a token works once, before it expires; put replaces */
	assert_int_equal(table_reset_put(t, "demo", "example.test", "aa", 100,
	    err, sizeof(err)), 0);
	assert_int_equal(table_reset_take(t, "demo", "example.test", "bb", 50),
	    TABLE_NOTFOUND);
	assert_int_equal(table_reset_take(t, "demo", "example.test", "aa", 50),
	    TABLE_FOUND);
	assert_int_equal(table_reset_take(t, "demo", "example.test", "aa", 50),
	    TABLE_NOTFOUND);
	assert_int_equal(table_reset_put(t, "demo", "example.test", "cc", 100,
	    err, sizeof(err)), 0);
	assert_int_equal(table_reset_take(t, "demo", "example.test", "cc",
	    100), TABLE_NOTFOUND);	/* expired: and deleted */
	assert_int_equal(table_reset_put(t, "demo", "example.test", "dd", 100,
	    err, sizeof(err)), 0);

	/* deleting the account deletes the aliases pointing at it */
	assert_int_equal(table_alias_add(t, "info@example.test",
	    "demo@example.test", "", err, sizeof(err)), 0);
	assert_int_equal(table_alias_add(t, "team@example.test",
	    "demo@example.test", "", err, sizeof(err)), 0);
	assert_int_equal(table_alias_add(t, "team@example.test",
	    "bob@example.test", "", err, sizeof(err)), 0);
	assert_int_equal(table_alias_list_target(t, "Demo@example.test",
	    count_row, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(table_account_del(t, "demo", "example.test", err,
	    sizeof(err)), 0);
	n = 0;
	assert_int_equal(table_alias_list_target(t, "demo@example.test",
	    count_row, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(table_account_add(t, "demo", "example.test", "$y$h",
	    err, sizeof(err)), 0);
	assert_int_equal(table_reset_take(t, "demo", "example.test", "dd", 50),
	    TABLE_NOTFOUND);	/* the token went with the account */
	table_close(t);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-shm", dir);
	unlink(path);
	rmdir(dir);
}

/* a fresh SQLite database in dir; removed by db_drop */
static struct table *
db_new(char *dir, char *path, size_t pathlen)
{
	char		 dsn[160], err[256];
	struct table	*t;

	assert_non_null(mkdtemp(dir));
	snprintf(path, pathlen, "%s/t.db", dir);
	snprintf(dsn, sizeof(dsn), "sqlite:%s", path);
	assert_non_null(t = table_open(dsn, err, sizeof(err)));
	assert_int_equal(table_init_schema(t, err, sizeof(err)), 0);
	return t;
}

static void
db_drop(struct table *t, const char *dir)
{
	char	 path[160];

	table_close(t);
	snprintf(path, sizeof(path), "%s/t.db", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-shm", dir);
	unlink(path);
	rmdir(dir);
}

struct rows {
	size_t	 n;
	char	 first[4][64];	/* columns of the first row */
	char	 last[8][64];	/* and of the last */
};

static void
rows_cb(void *arg, const char **cols, size_t ncols)
{
	struct rows	*r = arg;

	for (size_t i = 0; i < ncols && i < 8; i++) {
		if (r->n == 0 && i < 4)
			snprintf(r->first[i], sizeof(r->first[i]), "%s",
			    cols[i]);
		snprintf(r->last[i], sizeof(r->last[i]), "%s", cols[i]);
	}
	r->n++;
}

#define SVC	"aaaaaaaaaaaaaaaaaaaa"
#define SVC2	"bbbbbbbbbbbbbbbbbbbb"
#define PAIR	"cccccccccccccccccccc"
#define PAIR2	"dddddddddddddddddddd"

/*
 * schema 4: services, pairs (race-safe add), bounces, events, on an empty
 * schema-4 database of any backend
 */
static void
mask_checks(struct table *t)
{
	char				 err[256];
	struct table_mask_service	 s;
	struct table_mask_pair		 p;
	struct rows			 r;

	assert_int_equal(table_mask_service_get(t, SVC, &s), TABLE_NOTFOUND);
	assert_int_equal(table_mask_service_add(t, SVC, "Shop@Example.ORG",
	    "listing 42", 0, err, sizeof(err)), 0);
	assert_int_equal(table_mask_service_add(t, SVC, "x@example.org", "",
	    0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
	assert_int_equal(table_mask_service_add(t, SVC2, "b@example.org",
	    NULL, 2000000000, err, sizeof(err)), 0);
	/* any case finds it; stored lower-case */
	assert_int_equal(table_mask_service_get(t, "AAAAAAAAAAAAAAAAAAAA", &s),
	    TABLE_FOUND);
	assert_string_equal(s.code, SVC);
	assert_string_equal(s.real, "shop@example.org");
	assert_string_equal(s.label, "listing 42");
	assert_true(s.created > 0);
	assert_int_equal(s.expires, 0);
	assert_int_equal(s.disabled, 0);
	/* too long to exist */
	assert_int_equal(table_mask_service_get(t, "aaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaa", &s), TABLE_NOTFOUND);

	/* a pair: added once, the second add returns the first */
	assert_int_equal(table_mask_pair_find(t, SVC, "ann@client.test", &p),
	    TABLE_NOTFOUND);
	assert_int_equal(table_mask_pair_add(t, PAIR, SVC, "Ann@Client.test",
	    &p), TABLE_FOUND);
	assert_string_equal(p.code, PAIR);
	assert_string_equal(p.person, "ann@client.test");
	assert_int_equal(table_mask_pair_add(t, PAIR2, SVC, "ann@client.TEST",
	    &p), TABLE_FOUND);
	assert_string_equal(p.code, PAIR);
	assert_int_equal(table_mask_pair_get(t, PAIR2, &p), TABLE_NOTFOUND);
	/* the code already taken by another pair: temporary */
	assert_int_equal(table_mask_pair_add(t, PAIR, SVC, "bob@client.test",
	    &p), TABLE_TEMPFAIL);
	/* no such service: the foreign key refuses it */
	assert_int_equal(table_mask_pair_add(t, PAIR2, "eeeeeeeeeeeeeeeeeeee",
	    "bob@client.test", &p), TABLE_TEMPFAIL);
	assert_int_equal(table_mask_pair_add(t, PAIR2, SVC, "bob@client.test",
	    &p), TABLE_FOUND);
	assert_int_equal(table_mask_pair_find(t, SVC, "BOB@client.test", &p),
	    TABLE_FOUND);
	assert_string_equal(p.code, PAIR2);
	assert_string_equal(p.service, SVC);

	/* bounces in a row to the limit disable (2); ok resets the count */
	assert_int_equal(table_mask_bounce(t, "pair", PAIR, 3), 0);
	assert_int_equal(table_mask_bounce(t, "pair", PAIR, 3), 0);
	assert_int_equal(table_mask_pair_get(t, PAIR, &p), TABLE_FOUND);
	assert_int_equal(p.bounces, 2);
	assert_int_equal(p.disabled, 0);
	assert_int_equal(table_mask_ok(t, "pair", PAIR), 0);
	assert_int_equal(table_mask_pair_get(t, PAIR, &p), TABLE_FOUND);
	assert_int_equal(p.bounces, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(table_mask_bounce(t, "pair", PAIR, 3), 0);
	assert_int_equal(table_mask_pair_get(t, PAIR, &p), TABLE_FOUND);
	assert_int_equal(p.bounces, 3);
	assert_int_equal(p.disabled, 2);
	assert_int_equal(table_mask_bounce(t, "service", SVC, 2), 0);
	assert_int_equal(table_mask_bounce(t, "service", SVC, 2), 0);
	assert_int_equal(table_mask_service_get(t, SVC, &s), TABLE_FOUND);
	assert_int_equal(s.disabled, 2);
	assert_int_equal(s.bounces, 2);
	assert_int_equal(table_mask_bounce(t, "nonsense", SVC, 2), -1);
	/* the operator's enable clears the count; disable (1) stays 1 */
	assert_int_equal(table_mask_service_set(t, SVC, 0, err, sizeof(err)),
	    0);
	assert_int_equal(table_mask_service_get(t, SVC, &s), TABLE_FOUND);
	assert_int_equal(s.disabled, 0);
	assert_int_equal(s.bounces, 0);
	assert_int_equal(table_mask_service_set(t, SVC, 1, err, sizeof(err)),
	    0);
	assert_int_equal(table_mask_bounce(t, "service", SVC, 1), 0);
	assert_int_equal(table_mask_service_get(t, SVC, &s), TABLE_FOUND);
	assert_int_equal(s.disabled, 1);
	assert_int_equal(table_mask_service_set(t, SVC, 3, err, sizeof(err)),
	    -1);
	assert_int_equal(table_mask_service_set(t, "ffffffffffffffffffff", 1,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no such service"));
	assert_int_equal(table_mask_pair_set(t, PAIR, 0, err, sizeof(err)), 0);
	assert_int_equal(table_mask_pair_get(t, PAIR, &p), TABLE_FOUND);
	assert_int_equal(p.disabled, 0);

	/* listings */
	memset(&r, 0, sizeof(r));
	assert_int_equal(table_mask_service_list(t, rows_cb, &r, err,
	    sizeof(err)), 0);
	assert_int_equal(r.n, 2);
	memset(&r, 0, sizeof(r));
	assert_int_equal(table_mask_pair_list(t, SVC, rows_cb, &r, err,
	    sizeof(err)), 0);
	assert_int_equal(r.n, 2);

	/* events: since, one service or all, oldest first */
	assert_int_equal(table_mask_event(t, SVC, PAIR, "in", 1000), 0);
	assert_int_equal(table_mask_event(t, SVC, PAIR, "reply", 1100), 0);
	assert_int_equal(table_mask_event(t, SVC2, NULL, "bounce-in", 900), 0);
	assert_int_equal(table_mask_event(t, SVC, PAIR2, "auto-in", 1200), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(table_mask_events(t, NULL, 0, rows_cb, &r, err,
	    sizeof(err)), 0);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.first[0], SVC2);
	assert_string_equal(r.first[1], "");
	assert_string_equal(r.first[3], "900");
	memset(&r, 0, sizeof(r));
	assert_int_equal(table_mask_events(t, SVC, 1100, rows_cb, &r, err,
	    sizeof(err)), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.first[2], "reply");
	assert_string_equal(r.last[2], "auto-in");
	assert_string_equal(r.last[1], PAIR2);

	/* deleting a service deletes its pairs and events, nothing else */
	assert_int_equal(table_mask_service_del(t, SVC, err, sizeof(err)), 0);
	assert_int_equal(table_mask_service_del(t, SVC, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no such service"));
	assert_int_equal(table_mask_pair_get(t, PAIR, &p), TABLE_NOTFOUND);
	memset(&r, 0, sizeof(r));
	assert_int_equal(table_mask_events(t, NULL, 0, rows_cb, &r, err,
	    sizeof(err)), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(table_mask_service_get(t, SVC2, &s), TABLE_FOUND);
	assert_int_equal(s.expires, 2000000000);
}

static void
test_sqlite_mask(void **state)
{
	char		 dir[] = "/tmp/sluice-table-XXXXXX", path[128];
	struct table	*t;

	(void)state;
	t = db_new(dir, path, sizeof(path));
	mask_checks(t);
	db_drop(t, dir);
}

/*
 * The same on PostgreSQL when SLUICE_TEST_PGSQL_DSN names an empty
 * database (tests/integration/test_mask_cli.py starts one); else skipped.
 */
static void
test_pgsql_mask(void **state)
{
	const char	*dsn = getenv("SLUICE_TEST_PGSQL_DSN");
	char		 err[256];
	struct table	*t;

	(void)state;
	if (dsn == NULL || *dsn == '\0')
		skip();
	t = table_open(dsn, err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	assert_int_equal(table_init_schema(t, err, sizeof(err)), 0);
	assert_int_equal(table_schema_version(t), 4);
	mask_checks(t);
	table_close(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn_safe),
		cmocka_unit_test(test_open_dispatch),
		cmocka_unit_test(test_sqlite_schema3),
		cmocka_unit_test(test_sqlite_mask),
		cmocka_unit_test(test_pgsql_mask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
