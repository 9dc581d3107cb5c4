/*
 * test_dissect_names - the safe file names and shell quoting of
 * `sluice dissect` (src/cli/dissect_names.c), one test per rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dissect_names.h"

static char out[DISSECT_NAME_MAX + 1];

static const char *
safe(const char *in)
{
	dissect_name_safe(in, strlen(in), out, sizeof(out));
	return out;
}

static void
test_plain_names_kept(void **state)
{
	(void)state;
	assert_string_equal(safe("report.pdf"), "report.pdf");
	assert_string_equal(safe("Résumé 2024 (final).docx"),
	    "Résumé 2024 (final).docx");
	assert_string_equal(safe("a..b"), "a..b");
	assert_string_equal(safe("trailing."), "trailing.");
}

static void
test_last_component(void **state)
{
	(void)state;
	assert_string_equal(safe("/etc/passwd"), "passwd");
	assert_string_equal(safe("../../etc/passwd"), "passwd");
	assert_string_equal(safe("C:\\Windows\\system32\\evil.dll"),
	    "evil.dll");
	assert_string_equal(safe("dir/sub/"), "sub");
	assert_string_equal(safe("a\\b/c\\d.txt"), "d.txt");
}

static void
test_nothing_left(void **state)
{
	size_t	 n;

	(void)state;
	assert_int_equal(dissect_name_safe("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(dissect_name_safe(".", 1, out, sizeof(out)), 0);
	assert_int_equal(dissect_name_safe("..", 2, out, sizeof(out)), 0);
	assert_int_equal(dissect_name_safe("../..", 5, out, sizeof(out)), 0);
	assert_int_equal(dissect_name_safe("///", 3, out, sizeof(out)), 0);
	assert_int_equal(dissect_name_safe("\\", 1, out, sizeof(out)), 0);
	assert_int_equal(dissect_name_safe("\x01\x02\x7f", 3, out,
	    sizeof(out)), 0);
	n = dissect_name_safe("a/..", 4, out, sizeof(out));
	assert_int_equal(n, 0);
	/* the output buffer must hold a whole name */
	assert_int_equal(dissect_name_safe("x", 1, out, DISSECT_NAME_MAX), 0);
}

static void
test_leading_dots(void **state)
{
	(void)state;
	assert_string_equal(safe(".bashrc"), "bashrc");
	assert_string_equal(safe("...hidden.txt"), "hidden.txt");
	assert_string_equal(safe("\x01.x"), "x");
	assert_string_equal(safe("dir/.profile"), "profile");
}

static void
test_controls_dropped(void **state)
{
	size_t	 n;

	(void)state;
	assert_string_equal(safe("a\tb\nc\rd\x1b[31m.txt"), "abcd[31m.txt");
	assert_string_equal(safe("del\x7f.txt"), "del.txt");
	/* C1 controls (U+0085) and the bidi override trick (U+202E) */
	assert_string_equal(safe("x\xc2\x85y"), "xy");
	assert_string_equal(safe("invoice\xe2\x80\xaegpj.exe"),
	    "invoicegpj.exe");
	/* a NUL inside the name is a control character too */
	n = dissect_name_safe("a\0b.txt", 7, out, sizeof(out));
	assert_int_equal(n, 6);
	assert_string_equal(out, "ab.txt");
}

static void
test_invalid_utf8(void **state)
{
	(void)state;
	/* latin-1 bytes, overlong '/', a surrogate, a lone continuation */
	assert_string_equal(safe("caf\xe9.txt"), "caf_.txt");
	assert_string_equal(safe("a\xc0\xaf" "b"), "a__b");
	assert_string_equal(safe("s\xed\xa0\x80"), "s___");
	assert_string_equal(safe("\x80x"), "_x");
}

static void
test_separators_never_survive(void **state)
{
	const char	*bad[] = { "a/b", "a\\b", "/", "x/../y", "../",
	    "..\\..\\boot.ini", "\xef\xbc\x8f" /* fullwidth solidus: kept */ };
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		safe(bad[i]);
		assert_null(strchr(out, '/'));
		assert_null(strchr(out, '\\'));
		assert_true(out[0] != '.');
	}
	assert_string_equal(safe("\xef\xbc\x8f"), "\xef\xbc\x8f");
}

static void
test_length_cut_keeps_extension(void **state)
{
	char	 in[600];
	size_t	 n;

	(void)state;
	memset(in, 'a', 300);
	memcpy(in + 300, ".pdf", 5);
	n = dissect_name_safe(in, strlen(in), out, sizeof(out));
	assert_int_equal(n, DISSECT_NAME_MAX);
	assert_string_equal(out + DISSECT_NAME_MAX - 4, ".pdf");
	/* exactly the limit stays as it is */
	memset(in, 'b', DISSECT_NAME_MAX);
	in[DISSECT_NAME_MAX] = '\0';
	assert_int_equal(dissect_name_safe(in, DISSECT_NAME_MAX, out,
	    sizeof(out)), DISSECT_NAME_MAX);
	/* an "extension" longer than DISSECT_EXT_MAX is not kept */
	memset(in, 'c', 150);
	in[150] = '.';
	memset(in + 151, 'd', 100);
	in[251] = '\0';
	n = dissect_name_safe(in, strlen(in), out, sizeof(out));
	assert_int_equal(n, DISSECT_NAME_MAX);
	assert_int_equal(out[199], 'd');
}

static void
test_length_cut_on_utf8_boundary(void **state)
{
	char	 in[700];
	size_t	 i, n, o = 0;
	unsigned cp;

	(void)state;
	/* 3-octet characters: 200 - 4 = 196 is not a multiple of 3 */
	for (i = 0; i < 150; i++) {
		memcpy(in + o, "\xe2\x82\xac", 3);	/* euro sign */
		o += 3;
	}
	memcpy(in + o, ".txt", 5);
	n = dissect_name_safe(in, strlen(in), out, sizeof(out));
	assert_true(n <= DISSECT_NAME_MAX);
	assert_int_equal(n, 195 + 4);
	assert_string_equal(out + n - 4, ".txt");
	for (i = 0; i < n; i += o)
		assert_int_not_equal((o = dissect_utf8_seq(
		    (unsigned char *)out + i, n - i, &cp)), 0);
}

static void
test_numbered(void **state)
{
	char	 name[DISSECT_NAME_MAX + 1];
	size_t	 n;

	(void)state;
	dissect_name_numbered("report.pdf", 2, out, sizeof(out));
	assert_string_equal(out, "report (2).pdf");
	dissect_name_numbered("README", 13, out, sizeof(out));
	assert_string_equal(out, "README (13)");
	dissect_name_numbered("archive.tar.gz", 3, out, sizeof(out));
	assert_string_equal(out, "archive.tar (3).gz");
	/* a full-length name is cut before the number, not the extension */
	memset(name, 'x', DISSECT_NAME_MAX - 4);
	memcpy(name + DISSECT_NAME_MAX - 4, ".pdf", 5);
	n = dissect_name_numbered(name, 999, out, sizeof(out));
	assert_int_equal(n, DISSECT_NAME_MAX);
	assert_string_equal(out + n - 10, " (999).pdf");
	assert_int_equal(dissect_name_numbered("a", 2, out, 10), 0);
}

static void
test_shell_quote(void **state)
{
	char	*q;

	(void)state;
	q = dissect_shell_quote("plain.pdf");
	assert_string_equal(q, "'plain.pdf'");
	free(q);
	q = dissect_shell_quote("it's here.pdf");
	assert_string_equal(q, "'it'\\''s here.pdf'");
	free(q);
	q = dissect_shell_quote("");
	assert_string_equal(q, "''");
	free(q);
	q = dissect_shell_quote("$(rm -rf ~) `x` \"y\" ; | & *");
	assert_string_equal(q, "'$(rm -rf ~) `x` \"y\" ; | & *'");
	free(q);
	q = dissect_shell_quote("''");
	assert_string_equal(q, "''\\'''\\'''");
	free(q);
}

static void
test_command(void **state)
{
	char	*c;

	(void)state;
	c = dissect_command("lp {}", "out/it's.pdf");
	assert_string_equal(c, "lp 'out/it'\\''s.pdf'");
	free(c);
	c = dissect_command("cp {} {}.bak", "a b");
	assert_string_equal(c, "cp 'a b' 'a b'.bak");
	free(c);
	c = dissect_command("xdg-open", "x.pdf");
	assert_string_equal(c, "xdg-open 'x.pdf'");
	free(c);
	c = dissect_command("echo { } {", "x");
	assert_string_equal(c, "echo { } { 'x'");
	free(c);
}

static void
test_type_ext(void **state)
{
	(void)state;
	assert_string_equal(dissect_type_ext("text", "plain"), "txt");
	assert_string_equal(dissect_type_ext("TEXT", "HTML"), "html");
	assert_string_equal(dissect_type_ext("text", "x-whatever"), "txt");
	assert_string_equal(dissect_type_ext("application", "pdf"), "pdf");
	assert_string_equal(dissect_type_ext("image", "jpeg"), "jpg");
	assert_string_equal(dissect_type_ext("message", "rfc822"), "eml");
	assert_string_equal(dissect_type_ext("application", "x-foo"), "bin");
	assert_string_equal(dissect_type_ext(NULL, NULL), "bin");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_names_kept),
		cmocka_unit_test(test_last_component),
		cmocka_unit_test(test_nothing_left),
		cmocka_unit_test(test_leading_dots),
		cmocka_unit_test(test_controls_dropped),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_separators_never_survive),
		cmocka_unit_test(test_length_cut_keeps_extension),
		cmocka_unit_test(test_length_cut_on_utf8_boundary),
		cmocka_unit_test(test_numbered),
		cmocka_unit_test(test_shell_quote),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_type_ext),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
