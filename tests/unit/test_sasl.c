/* sasl: strict base64, PLAIN, mechanisms; authlimit: failed logins */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "authlimit.h"
#include "sasl.h"

static int
dec(const char *in, char *out, size_t max)
{
	size_t	 n;

	if (sasl_b64_decode(in, strlen(in), (unsigned char *)out, max, &n) ==
	    -1)
		return -1;
	out[n] = '\0';
	return (int)n;
}

static void
test_b64_decode(void **state)
{
	char	 out[64];

	(void)state;
	assert_int_equal(dec("YWJj", out, 63), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(dec("YWI=", out, 63), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(dec("YQ==", out, 63), 1);
	assert_string_equal(out, "a");
	assert_int_equal(dec("=", out, 63), 0);		/* empty response */
	/* refused: junk, spaces, bad length, padding in the middle, extra
	   padding, non-zero bits under the padding */
	const char *bad[] = { "", "Y", "YW", "YWJ", "YWJjZ", "YW=j", "YW Jj",
	    "YWJj\n", "!!!!", "YQ=", "YQ===", "YWI==", "Y===", "====",
	    "YR==", "YWJ=YWJj", "YWJj=", "\xff\xff\xff\xff" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dec(bad[i], out, 63) != -1)
			fail_msg("\"%s\" decoded", bad[i]);
	/* the output limit holds */
	assert_int_equal(dec("YWJjZGVm", out, 5), -1);
	assert_int_equal(dec("YWJjZGVm", out, 6), 6);
}

static void
test_b64_roundtrip(void **state)
{
	unsigned char	 in[256] = { 0 }, back[256];
	char		 enc[400];
	size_t		 n;

	(void)state;
	for (size_t len = 0; len < sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 37 + len);
		size_t el = sasl_b64_encode(in, len, enc, sizeof(enc));
		assert_int_equal(el, 4 * ((len + 2) / 3));
		if (len == 0)
			continue;
		assert_int_equal(sasl_b64_decode(enc, el, back, sizeof(back),
		    &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(in, back, len);
	}
	assert_int_equal(sasl_b64_encode(in, 3, enc, 4), 0);	/* no room */
}

static enum sasl_err
plain(const char *msg, size_t len, char *z, char *c, char *p)
{
	return sasl_plain_parse((const unsigned char *)msg, len, z, c, p);
}

static void
test_plain(void **state)
{
	char	 z[SASL_ID_MAX + 1], c[SASL_ID_MAX + 1], p[SASL_PASS_MAX + 1];
	char	 big[2048];

	(void)state;
	assert_int_equal(plain("\0ann@x.test\0pw", 14, z, c, p), SASL_OK);
	assert_string_equal(z, "");
	assert_string_equal(c, "ann@x.test");
	assert_string_equal(p, "pw");
	assert_int_equal(plain("boss\0ann\0p w\xc3\xa9", 14, z, c, p),
	    SASL_OK);
	assert_string_equal(z, "boss");
	assert_string_equal(p, "p w\xc3\xa9");
	assert_int_equal(plain("ann\0pw", 6, z, c, p), SASL_E_FORMAT);
	assert_int_equal(plain("annpw", 5, z, c, p), SASL_E_FORMAT);
	assert_int_equal(plain("\0a\0b\0c", 6, z, c, p), SASL_E_FORMAT);
	assert_int_equal(plain("\0\0pw", 4, z, c, p), SASL_E_EMPTY);
	assert_int_equal(plain("\0ann\0", 5, z, c, p), SASL_E_EMPTY);
	assert_int_equal(plain("\0a\x01n\0pw", 7, z, c, p), SASL_E_IDENTITY);
	assert_int_equal(plain("\0a\xffn\0pw", 7, z, c, p), SASL_E_IDENTITY);
	memset(big, 'a', sizeof(big));
	big[0] = '\0';
	big[300] = '\0';	/* a 299-octet user name */
	assert_int_equal(plain(big, 310, z, c, p), SASL_E_TOO_LONG);
	big[300] = 'a';
	big[10] = '\0';		/* a password of 2037 octets */
	assert_int_equal(plain(big, sizeof(big), z, c, p), SASL_E_TOO_LONG);
	assert_int_equal(sasl_mech_parse("plain", 5), SASL_M_PLAIN);
	assert_int_equal(sasl_mech_parse("LOGIN", 5), SASL_M_LOGIN);
	assert_int_equal(sasl_mech_parse("CRAM-MD5", 8), SASL_M_NONE);
	assert_int_equal(sasl_mech_parse("PLAINX", 6), SASL_M_NONE);
}

static void
test_authlimit(void **state)
{
	struct authlimit	*a = authlimit_new(3);
	time_t			 t = 1000;

	(void)state;
	assert_non_null(a);
	assert_int_equal(authlimit_locked(a, "192.0.2.1", t), 0);
	assert_int_equal(authlimit_fail(a, "192.0.2.1", t, 3, 600), 1);
	assert_int_equal(authlimit_fail(a, "192.0.2.1", t + 1, 3, 600), 2);
	assert_int_equal(authlimit_locked(a, "192.0.2.1", t + 1), 0);
	assert_int_equal(authlimit_fail(a, "192.0.2.1", t + 2, 3, 600), 3);
	assert_int_equal(authlimit_locked(a, "192.0.2.1", t + 2), 600);
	assert_int_equal(authlimit_locked(a, "192.0.2.2", t + 2), 0);
	assert_int_equal(authlimit_locked(a, "192.0.2.1", t + 602), 0);
	/* old failures are forgiven after the lockout time */
	assert_int_equal(authlimit_fail(a, "192.0.2.3", t, 3, 600), 1);
	assert_int_equal(authlimit_fail(a, "192.0.2.3", t + 700, 3, 600), 1);
	/* success forgets */
	authlimit_fail(a, "192.0.2.4", t, 3, 600);
	authlimit_success(a, "192.0.2.4");
	assert_int_equal(authlimit_fail(a, "192.0.2.4", t + 1, 3, 600), 1);
	/* bounded: the one idle longest goes */
	assert_int_equal(authlimit_count(a), 3);
	authlimit_fail(a, "192.0.2.5", t + 800, 3, 600);
	assert_int_equal(authlimit_count(a), 3);
	authlimit_free(a);
}

static void
test_authlimit_key(void **state)
{
	struct sockaddr_in6	 s6;
	struct sockaddr_in	 s4;
	char			 k[AUTHLIMIT_KEY_MAX];

	(void)state;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &s6.sin6_addr);
	authlimit_key((struct sockaddr *)&s6, k, sizeof(k));
	assert_string_equal(k, "2001:db8:1:2::/64");
	inet_pton(AF_INET6, "::ffff:192.0.2.9", &s6.sin6_addr);
	authlimit_key((struct sockaddr *)&s6, k, sizeof(k));
	assert_string_equal(k, "192.0.2.9");
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.7", &s4.sin_addr);
	authlimit_key((struct sockaddr *)&s4, k, sizeof(k));
	assert_string_equal(k, "198.51.100.7");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_decode),
		cmocka_unit_test(test_b64_roundtrip),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_authlimit),
		cmocka_unit_test(test_authlimit_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
