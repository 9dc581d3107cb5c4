/* table: the backend dispatch and table_dsn_safe (table.h) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn_safe),
		cmocka_unit_test(test_open_dispatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
