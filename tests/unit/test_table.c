/* table: the backend dispatch, table_dsn_safe, schema 3 on SQLite */
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
	assert_int_equal(table_schema_version(t), 3);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn_safe),
		cmocka_unit_test(test_open_dispatch),
		cmocka_unit_test(test_sqlite_schema3),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
