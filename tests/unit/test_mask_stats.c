/* mask_stats: the masked relay's statistics on a scripted conversation */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mask_stats.h"

#define A	"aaaaaaaaaaaaaaaaaaaa"
#define B	"bbbbbbbbbbbbbbbbbbbb"

/* not in time order, as a test of the sort */
static const struct mask_ev conv[] = {
	{ A, "p1", "in", 1000 },
	{ A, "p1", "reply", 2000 },
	{ A, "p1", "reply", 1600 },	/* p1: 600 s */
	{ A, "p1", "in", 1500 },
	{ A, "p2", "in", 2000 },
	{ A, "p2", "auto-reply", 2100 },	/* not a human reply */
	{ A, "p2", "reply", 5600 },	/* p2: 3600 s */
	{ A, "p3", "in", 3000 },
	{ A, "p3", "auto-in", 3100 },	/* p3: no reply */
	{ A, "p4", "reply", 100 },	/* before its first in: ignored */
	{ A, "p4", "in", 4000 },
	{ A, "p4", "reply", 4060 },	/* p4: 60 s */
	{ A, "", "bounce-in", 4100 },
	{ B, "p5", "in", 0 },
	{ B, "p5", "reply", 86400 },	/* p5: 1 day */
	{ B, "p6", "auto-in", 50 },	/* only automatic: no person */
};
#define NCONV	(sizeof(conv) / sizeof(conv[0]))

static void
test_one_service(void **state)
{
	struct mask_stat	 s;

	(void)state;
	assert_int_equal(mask_stats_compute(conv, NCONV, A, &s), 0);
	assert_int_equal(s.messages, 6);
	assert_int_equal(s.people, 4);
	assert_int_equal(s.replies, 5);
	assert_int_equal(s.replied, 3);
	assert_true(s.reply_rate > 0.7499 && s.reply_rate < 0.7501);
	assert_int_equal(s.median, 600);	/* of 60, 600, 3600 */
	assert_int_equal(s.p90, 3600);
	/* any case */
	assert_int_equal(mask_stats_compute(conv, NCONV,
	    "BBBBBBBBBBBBBBBBBBBB", &s), 0);
	assert_int_equal(s.messages, 2);
	assert_int_equal(s.people, 1);
	assert_int_equal(s.median, 86400);
	assert_int_equal(s.p90, 86400);
}

static void
test_all(void **state)
{
	struct mask_stat	 s;

	(void)state;
	assert_int_equal(mask_stats_compute(conv, NCONV, NULL, &s), 0);
	assert_int_equal(s.messages, 8);
	assert_int_equal(s.people, 5);
	assert_int_equal(s.replies, 6);
	assert_int_equal(s.replied, 4);
	assert_true(s.reply_rate > 0.7999 && s.reply_rate < 0.8001);
	assert_int_equal(s.median, 600);	/* 60 600 3600 86400: 2nd */
	assert_int_equal(s.p90, 86400);		/* ceil(3.6) = 4th */
}

static void
test_empty(void **state)
{
	struct mask_stat	 s;

	(void)state;
	assert_int_equal(mask_stats_compute(NULL, 0, NULL, &s), 0);
	assert_int_equal(s.messages, 0);
	assert_int_equal(s.median, -1);
	assert_int_equal(s.p90, -1);
	assert_true(s.reply_rate == 0.0);
	assert_int_equal(mask_stats_compute(conv, NCONV,
	    "cccccccccccccccccccc", &s), 0);
	assert_int_equal(s.people, 0);
	assert_int_equal(s.median, -1);
}

static void
test_percentile_duration(void **state)
{
	long long	 v[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	char		 buf[32];

	(void)state;
	assert_int_equal(mask_stats_percentile(v, 10, 50), 5);
	assert_int_equal(mask_stats_percentile(v, 10, 90), 9);
	assert_int_equal(mask_stats_percentile(v, 10, 91), 10);
	assert_int_equal(mask_stats_percentile(v, 1, 90), 1);
	assert_int_equal(mask_stats_percentile(v, 0, 50), -1);
	mask_stats_duration(-1, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	mask_stats_duration(45, buf, sizeof(buf));
	assert_string_equal(buf, "45s");
	mask_stats_duration(725, buf, sizeof(buf));
	assert_string_equal(buf, "12m 5s");
	mask_stats_duration(3600 * 3 + 1200, buf, sizeof(buf));
	assert_string_equal(buf, "3h 20m");
	mask_stats_duration(86400 * 2 + 3600 * 4 + 5, buf, sizeof(buf));
	assert_string_equal(buf, "2d 4h");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_service),
		cmocka_unit_test(test_all),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_percentile_duration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
