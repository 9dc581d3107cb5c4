/*
 * test_buf - the capped buffer: growth, the cap, sticky errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void
test_add_and_terminate(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 100);
	assert_int_equal(buf_adds(&b, "hello"), 0);
	assert_int_equal(buf_addc(&b, ' '), 0);
	assert_int_equal(buf_addf(&b, "%d-%s", 42, "x"), 0);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "hello 42-x");
	assert_int_equal(buf_add(&b, "\0z", 2), 0);	/* binary safe */
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.data + 10, "\0z", 2);
	buf_free(&b);
}

static void
test_cap_is_sticky(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_adds(&b, "12345678"), 0);	/* exactly the cap */
	assert_int_equal(b.err, BUF_OK);
	assert_int_equal(buf_addc(&b, '9'), -1);
	assert_int_equal(b.err, BUF_ETOOBIG);
	assert_int_equal(buf_adds(&b, ""), -1);		/* sticky */
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	buf_reset(&b);
	assert_int_equal(b.err, BUF_OK);
	assert_int_equal(buf_addf(&b, "%s", "123456789"), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
test_overflow_sizes(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, (size_t)-1);
	assert_int_equal(buf_adds(&b, "ab"), 0);
	/* a length that would wrap around must fail, not corrupt */
	assert_int_equal(buf_reserve(&b, (size_t)-1), -1);
	assert_int_equal(b.err, BUF_ETOOBIG);
	buf_free(&b);
}

static void
test_consume(void **state)
{
	struct buf	 b;

	(void)state;
	buf_init(&b, 64);
	buf_adds(&b, "line one\nline two\n");
	buf_consume(&b, 9);
	assert_string_equal(b.data, "line two\n");
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_free(&b);
}

static void
test_growth_keeps_content(void **state)
{
	struct buf	 b;
	char		 expect[5000];

	(void)state;
	buf_init(&b, sizeof(expect));
	for (size_t i = 0; i < sizeof(expect); i++) {
		expect[i] = (char)('a' + i % 26);
		assert_int_equal(buf_addc(&b, expect[i]), 0);
	}
	assert_int_equal(b.len, sizeof(expect));
	assert_memory_equal(b.data, expect, sizeof(expect));
	assert_true(b.cap <= sizeof(expect) + 1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_terminate),
		cmocka_unit_test(test_cap_is_sticky),
		cmocka_unit_test(test_overflow_sizes),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_growth_keeps_content),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
