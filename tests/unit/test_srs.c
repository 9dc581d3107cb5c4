/* srs: forward, reverse, SRS1, rotation, expiry, limits (srs.h) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "srs.h"

#define SECRET	"0123456789abcdef0123"
#define OLD	"an older secret, still honoured"
#define NOW	((time_t)1700000000)	/* day 19675: stamp "G3" */
#define DAY	86400

static const char *const one[] = { SECRET };

/* A vector computed outside sluice (Python hmac, the same definition). */
static void
test_vector(void **state)
{
	char	 out[400];

	(void)state;
	assert_int_equal(srs_forward(SECRET, NOW, "Alice@sender.test",
	    "fwd.test", out, sizeof(out)), SRS_OK);
	assert_string_equal(out, "SRS0=EELCBQ=G3=sender.test=Alice@fwd.test");
}

static void
test_round_trip(void **state)
{
	char	 out[400], back[400];

	(void)state;
	assert_int_equal(srs_forward(SECRET, NOW, "bob.smith+x@b.example",
	    "mx.fwd.test", out, sizeof(out)), SRS_OK);
	assert_int_equal(srs_reverse(one, 1, 21, NOW, out, back,
	    sizeof(back)), SRS_OK);
	assert_string_equal(back, "bob.smith+x@b.example");
	/* a local part with '=' in it stays whole */
	assert_int_equal(srs_forward(SECRET, NOW, "a=b=c@b.example",
	    "f.test", out, sizeof(out)), SRS_OK);
	assert_int_equal(srs_reverse(one, 1, 21, NOW, out, back,
	    sizeof(back)), SRS_OK);
	assert_string_equal(back, "a=b=c@b.example");
}

/* mail systems may change case: the hash and prefix do not care */
static void
test_case(void **state)
{
	char	 out[400], back[400];

	(void)state;
	assert_int_equal(srs_forward(SECRET, NOW, "Alice@sender.test",
	    "fwd.test", out, sizeof(out)), SRS_OK);
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	assert_int_equal(srs_reverse(one, 1, 21, NOW, out, back,
	    sizeof(back)), SRS_OK);
	assert_string_equal(back, "alice@sender.test");
}

static void
test_bad_hash(void **state)
{
	char	 out[400], back[400];

	(void)state;
	assert_int_equal(srs_forward(SECRET, NOW, "alice@sender.test",
	    "fwd.test", out, sizeof(out)), SRS_OK);
	out[5] = out[5] == 'A' ? 'B' : 'A';
	assert_int_equal(srs_reverse(one, 1, 21, NOW, out, back,
	    sizeof(back)), SRS_BADHASH);
	assert_string_equal(back, "");
	/* the signed fields are covered too */
	assert_int_equal(srs_reverse(one, 1, 21, NOW,
	    "SRS0=EELCBQ=G3=sender.test=Alicf@fwd.test", back, sizeof(back)),
	    SRS_BADHASH);
	assert_int_equal(srs_reverse(one, 1, 21, NOW,
	    "SRS0=EELCBQ=G3=sender.tesu=Alice@fwd.test", back, sizeof(back)),
	    SRS_BADHASH);
	/* no secrets: nothing verifies */
	assert_int_equal(srs_reverse(one, 0, 21, NOW,
	    "SRS0=EELCBQ=G3=sender.test=Alice@fwd.test", back, sizeof(back)),
	    SRS_BADHASH);
}

static void
test_expiry(void **state)
{
	char	 out[400], back[400];

	(void)state;
	assert_int_equal(srs_forward(SECRET, NOW, "alice@sender.test",
	    "fwd.test", out, sizeof(out)), SRS_OK);
	assert_int_equal(srs_reverse(one, 1, 21, NOW + 21 * DAY, out, back,
	    sizeof(back)), SRS_OK);
	assert_int_equal(srs_reverse(one, 1, 21, NOW + 22 * DAY, out, back,
	    sizeof(back)), SRS_EXPIRED);
	assert_int_equal(srs_reverse(one, 1, 1, NOW + 3 * DAY, out, back,
	    sizeof(back)), SRS_EXPIRED);
	/* the stamp wraps at 1024 days: still just a day old */
	assert_int_equal(srs_forward(SECRET, (time_t)1023 * DAY, "a@b.test",
	    "f.test", out, sizeof(out)), SRS_OK);
	assert_int_equal(srs_reverse(one, 1, 21, (time_t)1024 * DAY, out,
	    back, sizeof(back)), SRS_OK);
	/* a stamp from the future is no better than an old one */
	assert_int_equal(srs_reverse(one, 1, 21, (time_t)1020 * DAY, out,
	    back, sizeof(back)), SRS_EXPIRED);
}

static void
test_rotation(void **state)
{
	const char *const	 two[] = { SECRET, OLD };
	char			 out[400], back[400];

	(void)state;
	assert_int_equal(srs_forward(OLD, NOW, "alice@sender.test",
	    "fwd.test", out, sizeof(out)), SRS_OK);
	assert_int_equal(srs_reverse(one, 1, 21, NOW, out, back,
	    sizeof(back)), SRS_BADHASH);
	assert_int_equal(srs_reverse(two, 2, 21, NOW, out, back,
	    sizeof(back)), SRS_OK);
	assert_string_equal(back, "alice@sender.test");
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"SRS0=@fwd.test",
		"SRS0=EELCBQ@fwd.test",
		"SRS0=EELCB=G3=sender.test=Alice@fwd.test",	/* short hash */
		"SRS0=EELCB1=G3=sender.test=Alice@fwd.test",	/* not b32 */
		"SRS0=EELCBQ=G=sender.test=Alice@fwd.test",
		"SRS0=EELCBQ=G1=sender.test=Alice@fwd.test",
		"SRS0=EELCBQ=G3==Alice@fwd.test",		/* no domain */
		"SRS0=EELCBQ=G3=sender.test=@fwd.test",		/* no local */
		"SRS0=EELCBQ=G3=sender.test@fwd.test",
		"SRS0+EELCBQ=G3=sender.test=Alice@fwd.test",	/* not ours */
		"SRS1=EELCBQ=host.test@fwd.test",
		"SRS1=EELCBQ=host.test=x@fwd.test",		/* no sep */
		"SRS1=EELCBQ==X@fwd.test",
		"SRS1=EELCBQ=host.test==@fwd.test",
		"SRS0=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@f.test",
	};
	char	 back[400];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (srs_reverse(one, 1, 21, NOW, bad[i], back, sizeof(back)) !=
		    SRS_MALFORMED)
			fail_msg("%s: not malformed", bad[i]);
	assert_int_equal(srs_reverse(one, 1, 21, NOW, "alice@fwd.test", back,
	    sizeof(back)), SRS_NOTSRS);
	assert_int_equal(srs_reverse(one, 1, 21, NOW, "SRS2=x@fwd.test", back,
	    sizeof(back)), SRS_NOTSRS);
	assert_int_equal(srs_reverse(one, 1, 21, NOW, "srs0", back,
	    sizeof(back)), SRS_NOTSRS);
	/* forward: what cannot be wrapped stays as it was */
	assert_int_equal(srs_forward(SECRET, NOW, "", "f.test", back,
	    sizeof(back)), SRS_MALFORMED);
	assert_int_equal(srs_forward(SECRET, NOW, "nodomain", "f.test", back,
	    sizeof(back)), SRS_MALFORMED);
	assert_int_equal(srs_forward(SECRET, NOW, "\"a b\"@x.test", "f.test",
	    back, sizeof(back)), SRS_MALFORMED);
	assert_int_equal(srs_forward(SECRET, NOW, "a@x.test", "", back,
	    sizeof(back)), SRS_MALFORMED);
}

/* 64 octets at most in the local part, and out must hold the result */
static void
test_lengths(void **state)
{
	char	 out[400], back[400], sender[200];
	size_t	 fits;

	(void)state;
	/* "SRS0=" 6 "=" 2 "=" domain "=" local: 16 octets + the domain */
	snprintf(sender, sizeof(sender), "%s@b.test",
	    "abcdefghijabcdefghijabcdefghijabcdefghijab");	/* 42 */
	assert_int_equal(srs_forward(SECRET, NOW, sender, "f.test", out,
	    sizeof(out)), SRS_OK);
	assert_int_equal(strlen(strchr(out, '@') + 1), 6);
	assert_int_equal((size_t)(strchr(out, '@') - out), 64);
	assert_int_equal(srs_reverse(one, 1, 21, NOW, out, back,
	    sizeof(back)), SRS_OK);
	assert_string_equal(back, sender);
	snprintf(sender, sizeof(sender), "%s@b.test",
	    "abcdefghijabcdefghijabcdefghijabcdefghijabc");	/* 43 */
	assert_int_equal(srs_forward(SECRET, NOW, sender, "f.test", out,
	    sizeof(out)), SRS_TOOLONG);
	assert_string_equal(out, "");
	/* a buffer too small for the result */
	assert_int_equal(srs_forward(SECRET, NOW, "a@b.test", "f.test", out,
	    10), SRS_TOOLONG);
	fits = strlen("SRS0=EELCBQ=G3=sender.test=Alice@fwd.test") + 1;
	assert_int_equal(srs_forward(SECRET, NOW, "Alice@sender.test",
	    "fwd.test", out, fits), SRS_OK);
	assert_int_equal(srs_forward(SECRET, NOW, "Alice@sender.test",
	    "fwd.test", out, fits - 1), SRS_TOOLONG);
	assert_int_equal(srs_reverse(one, 1, 21, NOW,
	    "SRS0=EELCBQ=G3=sender.test=Alice@fwd.test", back, 5),
	    SRS_TOOLONG);
}

/* an SRS address of another forwarder becomes SRS1, and back */
static void
test_srs1(void **state)
{
	char	 first[400], second[400], third[400], back[400];
	const char *const other[] = { "the first forwarder's secret" };

	(void)state;
	assert_int_equal(srs_forward(other[0], NOW, "alice@sender.test",
	    "first.test", first, sizeof(first)), SRS_OK);
	assert_int_equal(srs_forward(SECRET, NOW, first, "fwd.test", second,
	    sizeof(second)), SRS_OK);
	assert_true(strncmp(second, "SRS1=", 5) == 0);
	assert_non_null(strstr(second, "=first.test=="));
	assert_string_equal(strchr(second, '@'), "@fwd.test");
	/* a third hop keeps the first forwarder, with its own hash */
	assert_int_equal(srs_forward("a third hop's secret", NOW, second,
	    "third.test", third, sizeof(third)), SRS_OK);
	assert_true(strncmp(third, "SRS1=", 5) == 0);
	assert_int_equal(strlen(third) - strlen("third.test"),
	    strlen(second) - strlen("fwd.test"));
	/* back: the SRS0 address at the first forwarder, which it reverses */
	assert_int_equal(srs_reverse(one, 1, 21, NOW, second, back,
	    sizeof(back)), SRS_OK);
	assert_string_equal(back, first);
	assert_int_equal(srs_reverse(other, 1, 21, NOW, back, third,
	    sizeof(third)), SRS_OK);
	assert_string_equal(third, "alice@sender.test");
	/* SRS1 has no stamp: it does not expire here */
	assert_int_equal(srs_reverse(one, 1, 21, NOW + 500 * DAY, second, back,
	    sizeof(back)), SRS_OK);
	second[5] = second[5] == 'A' ? 'B' : 'A';
	assert_int_equal(srs_reverse(one, 1, 21, NOW, second, back,
	    sizeof(back)), SRS_BADHASH);
}

static void
test_strres(void **state)
{
	(void)state;
	for (int r = SRS_OK; r <= SRS_ERROR; r++)
		assert_string_not_equal(srs_strres((enum srs_res)r), "unknown");
	assert_true(srs_is_srs("SRS0=x@y"));
	assert_true(srs_is_srs("srs1-x"));
	assert_true(srs_is_srs("SRS0="));
	assert_false(srs_is_srs("SRS0"));
	assert_false(srs_is_srs("SRS0x=y"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_case),
		cmocka_unit_test(test_bad_hash),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_srs1),
		cmocka_unit_test(test_strres),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
