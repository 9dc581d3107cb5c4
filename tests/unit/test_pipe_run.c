/*
 * test_pipe_run - the pure parts of src/deliver/pipe_run.c: splitting a
 * robot's command line (quotes, escapes, nothing expanded, errors) and the
 * exit contract (every exit class, enhanced status codes on stdout and
 * stderr, signals). The processes themselves are tested through
 * tests/tools/pipe-run in tests/integration/test_pipe_run.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pipe_run.h"

#define NARGS	16

/* Split s; check the words against the NULL-terminated want[]. */
static void
split_ok(const char *s, const char *const *want)
{
	char	*argv[NARGS], buf[256];
	int	 n, i;

	n = pipe_split(s, argv, NARGS, buf, sizeof(buf));
	for (i = 0; want[i] != NULL; i++) {
		assert_true(i < n);
		assert_string_equal(argv[i], want[i]);
	}
	assert_int_equal(n, i);
	assert_null(argv[n]);
}

static void
split_err(const char *s, int err)
{
	char	*argv[NARGS], buf[256];

	errno = 0;
	assert_int_equal(pipe_split(s, argv, NARGS, buf, sizeof(buf)), -1);
	assert_int_equal(errno, err);
}

#define W(...)	((const char *const[]){ __VA_ARGS__, NULL })

static void
test_split_words(void **state)
{
	(void)state;
	split_ok("/usr/bin/robot", W("/usr/bin/robot"));
	split_ok("  /bin/echo \t a   b\t", W("/bin/echo", "a", "b"));
	split_ok("", (const char *const[]){ NULL });
	split_ok(" \t \n ", (const char *const[]){ NULL });
	split_ok("a\nb\r\nc", W("a", "b", "c"));	/* unquoted: blanks */
}

static void
test_split_quotes(void **state)
{
	(void)state;
	split_ok("/r 'a b' \"c d\"", W("/r", "a b", "c d"));
	split_ok("/r a\"b c\"d", W("/r", "ab cd"));
	split_ok("/r '' \"\"", W("/r", "", ""));
	split_ok("/r 'say \"hi\"' \"it's\"", W("/r", "say \"hi\"", "it's"));
	split_ok("/r \"line1\nline2\"", W("/r", "line1\nline2"));
	split_ok("/r 'tab\there'", W("/r", "tab\there"));
}

static void
test_split_escapes(void **state)
{
	(void)state;
	split_ok("/r a\\ b", W("/r", "a b"));
	split_ok("/r \\\"x\\'", W("/r", "\"x'"));
	split_ok("/r \"a\\\"b\\\\c\"", W("/r", "a\"b\\c"));
	/* no escapes inside single quotes */
	split_ok("/r 'a\\b' 'c\\'", W("/r", "a\\b", "c\\"));
	split_ok("/r 'it'\\''s'", W("/r", "it's"));
	split_ok("/r \\n\\$", W("/r", "n$"));
}

static void
test_split_no_expansion(void **state)
{
	(void)state;
	split_ok("/r $(id) `id` * ~ ~root $HOME ${X} ; | & > < %s %n",
	    W("/r", "$(id)", "`id`", "*", "~", "~root", "$HOME", "${X}", ";",
	    "|", "&", ">", "<", "%s", "%n"));
	split_ok("/r a;b&&c||d", W("/r", "a;b&&c||d"));
	split_ok("/r \"$(rm -rf /)\"", W("/r", "$(rm -rf /)"));
}

static void
test_split_errors(void **state)
{
	char	*argv[4], buf[6];

	(void)state;
	split_err("/r 'abc", EINVAL);
	split_err("/r \"abc", EINVAL);
	split_err("/r \"a'b", EINVAL);
	split_err("/r abc\\", EINVAL);
	split_err("\\", EINVAL);
	/* argv holds maxargs pointers, the NULL included */
	assert_int_equal(pipe_split("a b c", argv, 4, buf, sizeof(buf)), 3);
	assert_null(argv[3]);
	errno = 0;
	assert_int_equal(pipe_split("a b c d", argv, 4, buf, sizeof(buf)), -1);
	assert_int_equal(errno, E2BIG);
	/* "a\0b\0c\0" is 6 bytes: one more does not fit */
	errno = 0;
	assert_int_equal(pipe_split("a b cd", argv, 4, buf, sizeof(buf)), -1);
	assert_int_equal(errno, E2BIG);
	assert_int_equal(pipe_split("a b c", argv, 0, buf, sizeof(buf)), -1);
	assert_int_equal(pipe_split("", argv, 1, buf, sizeof(buf)), 0);
	assert_null(argv[0]);
	assert_int_equal(pipe_split("a", argv, 1, buf, sizeof(buf)), -1);
}

/* strlen(cmdline) + 1 bytes always suffice */
static void
test_split_bound(void **state)
{
	static const char *const lines[] = { "a b c", "''", "'' '' ''",
	    "\"\"x", "a\\ b", "  x  ", "'a'\"b\"c" };
	char	*argv[NARGS], buf[64];
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_true(pipe_split(lines[i], argv, NARGS, buf,
		    strlen(lines[i]) + 1) >= 0);
}

/* ---- pipe_classify ---- */

static enum pipe_status
classify(int code, const char *out, const char *err, char *text)
{
	enum pipe_status	 st = (enum pipe_status)-1;

	assert_int_equal(pipe_classify(code, out, err, &st, text,
	    PIPE_TEXT_MAX), 0);
	return st;
}

static void
test_classify_exit_codes(void **state)
{
	static const int	 perm[] = { 1, 2, 64, 65, 74, 76, 77, 78, 100,
				    110, 112, 126, 127, 255 };
	char			 t[PIPE_TEXT_MAX];
	size_t			 i;

	(void)state;
	assert_int_equal(classify(0, NULL, NULL, t), PIPE_OK);
	assert_string_equal(t, "2.0.0 robot exited 0");
	assert_int_equal(classify(99, NULL, NULL, t), PIPE_OK_STOP);
	assert_int_equal(strncmp(t, "2.0.0 ", 6), 0);
	assert_int_equal(classify(75, "", "try later\nmore", t), PIPE_TEMP);
	assert_string_equal(t, "4.3.0 robot exited 75: try later");
	assert_int_equal(classify(111, NULL, NULL, t), PIPE_TEMP);
	assert_string_equal(t, "4.3.0 robot exited 111");
	for (i = 0; i < sizeof(perm) / sizeof(perm[0]); i++) {
		assert_int_equal(classify(perm[i], NULL,
		    "no such list\nZZZ", t), PIPE_PERM);
		assert_int_equal(strncmp(t, "5.3.0 robot exited ", 19), 0);
		assert_non_null(strstr(t, ": no such list"));
		assert_null(strstr(t, "ZZZ"));
	}
	/* output ignored when it carries no code */
	assert_int_equal(classify(0, "hello", "warning: x", t), PIPE_OK);
	/* stderr empty: the first line of stdout explains */
	assert_int_equal(classify(2, "usage: robot LIST", "", t), PIPE_PERM);
	assert_string_equal(t, "5.3.0 robot exited 2: usage: robot LIST");
	assert_int_equal(classify(2, "usage", "\nsecond", t), PIPE_PERM);
	assert_string_equal(t, "5.3.0 robot exited 2: usage");
}

static void
test_classify_signals(void **state)
{
	char	 t[PIPE_TEXT_MAX];

	(void)state;
	assert_int_equal(classify(-11, NULL, "Segmentation", t), PIPE_TEMP);
	assert_string_equal(t, "4.3.0 robot killed by signal 11 (SIGSEGV): "
	    "Segmentation");
	assert_int_equal(classify(-9, NULL, NULL, t), PIPE_TEMP);
	assert_string_equal(t, "4.3.0 robot killed by signal 9 (SIGKILL)");
	assert_int_equal(classify(-15, NULL, NULL, t), PIPE_TEMP);
	assert_int_equal(classify(-1, NULL, NULL, t), PIPE_TEMP);
	/* a crash is never a bounce, whatever it printed before */
	assert_int_equal(classify(-6, "5.1.1 no such user", NULL, t),
	    PIPE_TEMP);
	assert_int_equal(strncmp(t, "4.3.0 ", 6), 0);
}

static void
test_classify_enhanced(void **state)
{
	char	 t[PIPE_TEXT_MAX];

	(void)state;
	/* on stdout, whatever the exit code */
	assert_int_equal(classify(0, "5.1.1 no such user here", NULL, t),
	    PIPE_PERM);
	assert_string_equal(t, "5.1.1 no such user here");
	assert_int_equal(classify(75, "5.7.1 refused\nmore", NULL, t),
	    PIPE_PERM);
	assert_string_equal(t, "5.7.1 refused");
	assert_int_equal(classify(99, "4.2.2 over quota", NULL, t), PIPE_TEMP);
	assert_int_equal(classify(2, "4.2.1 later", NULL, t), PIPE_TEMP);
	/* on stderr */
	assert_int_equal(classify(1, NULL, "4.2.2 mailbox full\nx", t),
	    PIPE_TEMP);
	assert_string_equal(t, "4.2.2 mailbox full");
	assert_int_equal(classify(0, "ok", "5.2.3 too big", t), PIPE_PERM);
	assert_string_equal(t, "5.2.3 too big");
	/* both: stdout's wins */
	assert_int_equal(classify(0, "4.0.0 a", "5.0.0 b", t), PIPE_TEMP);
	assert_string_equal(t, "4.0.0 a");
	/* the code alone, and line ends */
	assert_int_equal(classify(0, "5.1.1", NULL, t), PIPE_PERM);
	assert_int_equal(classify(0, "5.1.1\nx", NULL, t), PIPE_PERM);
	assert_int_equal(classify(0, "5.123.123 x\r\n", NULL, t), PIPE_PERM);
	assert_string_equal(t, "5.123.123 x");
	/* only 4 and 5 matter; not codes */
	assert_int_equal(classify(1, "2.0.0 fine", NULL, t), PIPE_PERM);
	assert_string_equal(t, "5.3.0 robot exited 1: 2.0.0 fine");
	assert_int_equal(classify(0, "2.0.0 fine", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "5.1 x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "5.1.1x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "5.1234.1 x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "5.1.1234 x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "6.1.1 x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "5..1 x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, " 5.1.1 x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "x\n5.1.1 x", NULL, t), PIPE_OK);
	assert_int_equal(classify(0, "5.1.1\tx", NULL, t), PIPE_OK);
}

static void
test_classify_text(void **state)
{
	char	 t[PIPE_TEXT_MAX], big[2000], small[12];
	enum pipe_status st;

	(void)state;
	/* controls, DEL and 8-bit bytes become '?'; CR and blanks cut */
	assert_int_equal(classify(1, NULL, "bad\x01\x7f\xc3\xa9 \t\r\n", t),
	    PIPE_PERM);
	assert_string_equal(t, "5.3.0 robot exited 1: bad????");
	assert_int_equal(classify(0, "5.1.1 caf\xc3\xa9\x1b[31m", NULL, t),
	    PIPE_PERM);
	assert_string_equal(t, "5.1.1 caf???[31m");
	/* a long line is cut to the text size */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(classify(1, NULL, big, t), PIPE_PERM);
	assert_int_equal(strlen(t), PIPE_TEXT_MAX - 1);
	memcpy(big, "5.0.0 ", 6);
	assert_int_equal(classify(1, big, NULL, t), PIPE_PERM);
	assert_int_equal(strlen(t), PIPE_TEXT_MAX - 1);
	/* a small buffer: truncated, terminated */
	assert_int_equal(pipe_classify(1, NULL, "long explanation", &st,
	    small, sizeof(small)), 0);
	assert_int_equal(st, PIPE_PERM);
	assert_string_equal(small, "5.3.0 robot");
	/* no room at all */
	errno = 0;
	assert_int_equal(pipe_classify(0, NULL, NULL, &st, small, 0), -1);
	assert_int_equal(errno, EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_words),
		cmocka_unit_test(test_split_quotes),
		cmocka_unit_test(test_split_escapes),
		cmocka_unit_test(test_split_no_expansion),
		cmocka_unit_test(test_split_errors),
		cmocka_unit_test(test_split_bound),
		cmocka_unit_test(test_classify_exit_codes),
		cmocka_unit_test(test_classify_signals),
		cmocka_unit_test(test_classify_enhanced),
		cmocka_unit_test(test_classify_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
