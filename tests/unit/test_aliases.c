/*
 * test_aliases - the aliases file (aliases.h): every syntax feature,
 * includes and their owners, each error at its FILE:LINE, lookups, the
 * wildcard's longest prefix, change detection and 100,000 entries.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aliases.h"

static char	 dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sluice-aliases-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	DIR		*d;
	struct dirent	*de;

	(void)state;
	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return rmdir(dir);
}

/* dir/name with the text; the path in a static buffer per slot */
static const char *
put(const char *name, const char *text)
{
	static char	 paths[4][PATH_MAX];
	static int	 slot;
	char		*p = paths[slot++ % 4];
	FILE		*fp;

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	if ((fp = fopen(p, "w")) == NULL)
		fail_msg("%s: %s", p, strerror(errno));
	fputs(text, fp);
	fclose(fp);
	return p;
}

static struct aliases *
load_ok(const char *text)
{
	struct aliases	*a;
	char		 err[512];

	a = aliases_load_mem("t", text, strlen(text), 42, NULL, NULL, err,
	    sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	return a;
}

/* loading text fails with exactly this message */
static void
load_err(const char *text, size_t len, const char *want)
{
	struct aliases	*a;
	char		 err[512];

	a = aliases_load_mem("t", text, len, 42, NULL, NULL, err, sizeof(err));
	if (a != NULL) {
		aliases_free(a);
		fail_msg("no error for \"%s\" (want %s)", text, want);
	}
	if (strcmp(err, want) != 0)
		fail_msg("\"%s\": got \"%s\", want \"%s\"", text, err, want);
}

static void
target_is(const struct alias_entry *e, size_t i, enum alias_kind kind,
    const char *text, uid_t owner)
{
	assert_non_null(e);
	if (i >= e->ntargets)
		fail_msg("%s: no target %zu (has %zu)", e->key, i, e->ntargets);
	assert_int_equal(e->targets[i].kind, kind);
	assert_string_equal(e->targets[i].text, text);
	assert_int_equal(e->targets[i].owner, owner);
}

static void
test_syntax(void **state)
{
	struct aliases			*a;
	const struct alias_entry	*e;

	char				 text[4096];

	(void)state;
	snprintf(text, sizeof(text),
	    "# a comment\n"
	    "Postmaster: root\n"
	    "root: admin@Example.TEST, <boss@example.test> ,"
	    "\"|/usr/bin/robot --flag x\", /var/mail/archive\n"
	    "\n"
	    "List@Example.test: a,\n"
	    "   b,   # a comment in a continuation\n"
	    "# a comment line between\n"
	    "\n"
	    "\tc\n"
	    "robot-*: \"|/bin/robot\"\n"
	    "robot-*@x.test: | /bin/xrobot arg \n"
	    "@x.test: catchall\n"
	    "hash: a#b, \"d #e\"@x.test, c #comment, x\n"
	    "quoted: \"|/bin/echo \\\"a, b\\\" \\\\ z\", \"/var/log/with space\"\n"
	    "inc-name.x_y=z+w: \":include:%s\"\n"
	    "crlf: x\r\n"
	    "last: \"<y@x.test>\"", put("empty", ""));
	a = load_ok(text);
	assert_int_equal(aliases_count(a), 11);
	assert_string_equal(aliases_path(a), "t");

	e = aliases_get(a, "postmaster");
	assert_non_null(e);
	assert_string_equal(e->key, "postmaster");
	assert_int_equal(e->line, 2);
	target_is(e, 0, ALIAS_ADDR, "root", 42);
	assert_null(aliases_get(a, "Postmaster"));	/* caller lower-cases */

	e = aliases_get(a, "root");
	assert_int_equal(e->ntargets, 4);
	target_is(e, 0, ALIAS_ADDR, "admin@Example.TEST", 42);
	target_is(e, 1, ALIAS_ADDR, "boss@example.test", 42);
	target_is(e, 2, ALIAS_PIPE, "/usr/bin/robot --flag x", 42);
	target_is(e, 3, ALIAS_FILE, "/var/mail/archive", 42);

	e = aliases_get(a, "list@example.test");
	assert_int_equal(e->line, 5);
	assert_int_equal(e->ntargets, 3);
	target_is(e, 0, ALIAS_ADDR, "a", 42);
	target_is(e, 1, ALIAS_ADDR, "b", 42);
	target_is(e, 2, ALIAS_ADDR, "c", 42);

	e = aliases_get(a, "robot-*");
	target_is(e, 0, ALIAS_PIPE, "/bin/robot", 42);
	assert_true(aliases_key_wildcard(e->key));
	e = aliases_get(a, "robot-*@x.test");
	target_is(e, 0, ALIAS_PIPE, "/bin/xrobot arg", 42);
	assert_true(aliases_key_wildcard(e->key));
	e = aliases_get(a, "@x.test");
	target_is(e, 0, ALIAS_ADDR, "catchall", 42);
	assert_false(aliases_key_wildcard(e->key));

	e = aliases_get(a, "hash");
	assert_int_equal(e->ntargets, 3);
	target_is(e, 0, ALIAS_ADDR, "a#b", 42);
	target_is(e, 1, ALIAS_ADDR, "\"d #e\"@x.test", 42);
	target_is(e, 2, ALIAS_ADDR, "c", 42);

	e = aliases_get(a, "quoted");
	target_is(e, 0, ALIAS_PIPE, "/bin/echo \"a, b\" \\ z", 42);
	target_is(e, 1, ALIAS_FILE, "/var/log/with space", 42);

	/* an empty include: an entry without targets */
	e = aliases_get(a, "inc-name.x_y=z+w");
	assert_non_null(e);
	assert_int_equal(e->ntargets, 0);

	target_is(aliases_get(a, "crlf"), 0, ALIAS_ADDR, "x", 42);
	target_is(aliases_get(a, "last"), 0, ALIAS_ADDR, "y@x.test", 42);
	assert_string_equal(aliases_entry(a, 0)->key, "postmaster");
	assert_string_equal(aliases_entry(a, 10)->key, "last");
	assert_null(aliases_entry(a, 11));
	assert_null(aliases_get(a, "nobody"));
	aliases_free(a);

	/* nothing at all, and comments only */
	a = load_ok("");
	assert_int_equal(aliases_count(a), 0);
	assert_null(aliases_get(a, "x"));
	assert_null(aliases_wildcard(a, "x", "y", NULL));
	aliases_free(a);
	a = load_ok("# only\n\n   \n#\n");
	assert_int_equal(aliases_count(a), 0);
	aliases_free(a);
}

static void
test_errors(void **state)
{
	char	*big;
	size_t	 i, k;

	(void)state;
	load_err("nocolon\n", 8, "t:1: missing ':' after the name");
	load_err("a: b\n\n# c\nnocolon x\n", 20, "t:4: missing ':' after the name");
	load_err(": a\n", 4, "t:1: empty name");
	load_err("  \t: a\n", 7, "t:1: continuation line without an entry "
	    "before it");
	load_err("a b: c\n", 7, "t:1: bad character ' ' in name");
	load_err("a\"b\": c\n", 8, "t:1: bad character '\"' in name");
	load_err("a\x01: c\n", 6, "t:1: bad character \\x01 in name");
	load_err("caf\xc3\xa9: c\n", 9, "t:1: bad character \\xc3 in name");
	load_err("a/b: c\n", 7, "t:1: bad character '/' in name");
	load_err("a*b: c\n", 7, "t:1: '*' only at the end of the local part");
	load_err("a**: c\n", 7, "t:1: '*' only at the end of the local part");
	load_err("*: c\n", 5, "t:1: '*' needs a prefix (\"@domain\" is the "
	    "catch-all)");
	load_err("*@x.test: c\n", 12, "t:1: '*' needs a prefix (\"@domain\" is "
	    "the catch-all)");
	load_err("a@b@c: d\n", 9, "t:1: more than one '@' in name");
	load_err("a@: b\n", 6, "t:1: no domain after '@' in name");
	load_err("@: b\n", 5, "t:1: no domain after '@' in name");
	load_err("a@b*: c\n", 8, "t:1: bad character in the domain of name");
	load_err("a..b: c\n", 8, "t:1: bad name (not an address)");
	load_err("a: b,,c\n", 8, "t:1: empty target");
	load_err("a: b,\n", 6, "t:1: empty target");
	load_err("a:\n", 3, "t:1: empty target");
	load_err("a: \"\"\n", 6, "t:1: empty target");
	load_err("a: <>\n", 6, "t:1: empty target");
	load_err("a: b\nc: \"|x\n", 12, "t:2: unterminated quote");
	load_err("a: \"|x\\\"\n", 9, "t:1: unterminated quote");
	load_err("a: mbox/file\n", 13, "t:1: relative path \"mbox/file\" (a "
	    "file needs an absolute path)");
	load_err("a: ./file\n", 10, "t:1: relative path \"./file\" (a file "
	    "needs an absolute path)");
	load_err("a: ~/file\n", 10, "t:1: relative path \"~/file\" (a file "
	    "needs an absolute path)");
	load_err("a: :include:rel/x\n", 18, "t:1: :include: needs an absolute "
	    "path");
	load_err("a: :include:\n", 13, "t:1: :include: needs an absolute path");
	load_err("a: b\nb: c\nA: d\n", 15, "t:3: duplicate alias \"a\" (first at "
	    "line 1)");
	load_err("x@Y.test: b\n\nx@y.TEST: c\n", 25, "t:3: duplicate alias "
	    "\"x@y.test\" (first at line 1)");
	load_err("a: b\0c\n", 7, "t:1: NUL byte");
	load_err("a: |\n", 5, "t:1: empty command");
	load_err("a: \"|  \"\n", 9, "t:1: empty command");
	load_err("a: /var/mail/\n", 14, "t:1: path \"/var/mail/\" ends in '/' "
	    "(a file, not a directory)");
	load_err("a: bad..dots\n", 13, "t:1: bad address \"bad..dots\"");
	load_err("a: <b@x.test\n", 13, "t:1: bad address \"<b@x.test\"");
	load_err("a: x@@y\n", 8, "t:1: bad address \"x@@y\"");
	load_err("a: b c\n", 7, "t:1: bad address \"b c\"");
	load_err("a: \"|x\x01\"\n", 9, "t:1: control character in command");
	load_err("a: \"/x\ty\"\n", 10, "t:1: control character in path");
	/* continuation: the error names the line of the target */
	load_err("list: a,\n  b,\n  c d,\n  e\n", 25, "t:3: bad address "
	    "\"c d\"");
	load_err("list: a,\n  b,\n\n# x\n  ,e\n", 23, "t:5: empty target");

	/* a line of 64 KB is fine, one byte more is not */
	big = malloc(ALIASES_LINE_MAX + 64);
	assert_non_null(big);
	k = (size_t)snprintf(big, 64, "a: \"|");
	while (k < ALIASES_LINE_MAX - 1)
		big[k++] = 'x';
	big[k++] = '"';
	big[k++] = '\n';
	load_err(big, k, "t:1: command longer than 1023 bytes");
	big[k - 2] = 'x';
	big[k - 1] = '"';
	big[k++] = '\n';
	load_err(big, k, "t:1: line longer than 65536 bytes");
	free(big);

	/* a path of 1023 bytes is fine, 1024 is not */
	big = malloc(2048);
	assert_non_null(big);
	k = (size_t)snprintf(big, 64, "a: /");
	for (i = 1; i < ALIASES_TEXT_MAX; i++)
		big[k++] = 'p';
	big[k] = '\0';
	aliases_free(load_ok(big));
	big[k++] = 'p';
	big[k] = '\0';
	load_err(big, k, "t:1: path longer than 1023 bytes");
	free(big);

	/* names: 64 bytes of local part */
	load_err("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    ": b\n", 69, "t:1: name too long");
	aliases_free(load_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    ": b\n"));
}

static void
test_many_targets(void **state)
{
	struct aliases	*a;
	char		*t, err[256];
	size_t		 k = 0, cap = 16 + (size_t)ALIASES_TARGETS_MAX * 16;
	int		 i;

	(void)state;
	t = malloc(cap);
	assert_non_null(t);
	k += (size_t)snprintf(t + k, cap - k, "big: u0");
	for (i = 1; i < ALIASES_TARGETS_MAX; i++)
		k += (size_t)snprintf(t + k, cap - k, ",%s u%d",
		    i % 100 ? "" : "\n", i);
	a = aliases_load_mem("t", t, k, 0, NULL, NULL, err, sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	assert_int_equal(aliases_get(a, "big")->ntargets, ALIASES_TARGETS_MAX);
	aliases_free(a);
	k += (size_t)snprintf(t + k, cap - k, ", one-more");
	load_err(t, k, "t:1000: more than 100000 targets for \"big\"");
	free(t);
}

/* includes from disk: order, nesting, owner, errors at their lines */
static void
test_include(void **state)
{
	struct aliases			*a;
	const struct alias_entry	*e;
	char				 main[PATH_MAX * 2], inc1[PATH_MAX];
	char				 inc2[PATH_MAX], err[1024], want[1024];
	uid_t				 me = getuid();

	(void)state;
	snprintf(inc2, sizeof(inc2), "%s", put("inc2", "/var/inc2-file\n"));
	snprintf(main, sizeof(main), "x, y  # members\n\n"
	    "  # comment\n|/bin/inc-robot\n \":include:%s\"\n", inc2);
	snprintf(inc1, sizeof(inc1), "%s", put("inc1", main));
	snprintf(main, sizeof(main), "list: a, :include:%s, b\n"
	    "other: :INCLUDE: %s\n", inc1, inc2);
	a = aliases_load(put("aliases", main), err, sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	e = aliases_get(a, "list");
	assert_int_equal(e->ntargets, 6);
	target_is(e, 0, ALIAS_ADDR, "a", me);
	target_is(e, 1, ALIAS_ADDR, "x", me);
	target_is(e, 2, ALIAS_ADDR, "y", me);
	target_is(e, 3, ALIAS_PIPE, "/bin/inc-robot", me);
	target_is(e, 4, ALIAS_FILE, "/var/inc2-file", me);
	target_is(e, 5, ALIAS_ADDR, "b", me);
	target_is(aliases_get(a, "other"), 0, ALIAS_FILE, "/var/inc2-file", me);
	assert_int_equal(aliases_changed(a, put("aliases", main)) >= 0, 1);
	aliases_free(a);

	/* an error in an include is at the include's line */
	snprintf(inc1, sizeof(inc1), "%s", put("bad", "ok\n\nnot ok\n"));
	snprintf(main, sizeof(main), "a: b\nlist: a,\n  :include:%s\n", inc1);
	snprintf(want, sizeof(want), "%s:3: bad address \"not ok\"", inc1);
	load_err(main, strlen(main), want);

	/* one that cannot be read: at the line of the :include: */
	snprintf(main, sizeof(main), "a: b\nlist: a,\n  :include:%s/none\n",
	    dir);
	snprintf(want, sizeof(want), "t:3: :include:%s/none: No such file or "
	    "directory", dir);
	load_err(main, strlen(main), want);
	snprintf(main, sizeof(main), "list: :include:%s\n", dir);
	snprintf(want, sizeof(want), "t:1: :include:%s: not a regular file",
	    dir);
	load_err(main, strlen(main), want);

	/* including itself: stopped at the sixth level */
	snprintf(inc1, sizeof(inc1), "%s/self", dir);
	snprintf(main, sizeof(main), "x\n:include:%s\n", inc1);
	put("self", main);
	snprintf(main, sizeof(main), "list: :include:%s\n", inc1);
	snprintf(want, sizeof(want), "%s:2: :include:%s: nested more than 5 "
	    "deep", inc1, inc1);
	load_err(main, strlen(main), want);

	/* the main file itself */
	snprintf(main, sizeof(main), "%s/none", dir);
	assert_null(aliases_load(main, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s/none: No such file or directory", dir);
	assert_string_equal(err, want);
	assert_null(aliases_load(dir, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: not a regular file", dir);
	assert_string_equal(err, want);
	a = aliases_load(put("errs", "a: b\nb c: d\n"), err, sizeof(err));
	assert_null(a);
	snprintf(want, sizeof(want), "%s/errs:2: bad character ' ' in name",
	    dir);
	assert_string_equal(err, want);
}

/* a reader for load_mem: "/inc/N" is text N, owned by 1000 + N */
static const char *inc_texts[] = {
	"i0a, \"|/bin/zero\"\n:include:/inc/1\n",
	"/var/one\n",
};

static int
reader(void *arg, const char *path, char **data, size_t *len, uid_t *owner)
{
	unsigned	 i;

	(*(int *)arg)++;
	if (strncmp(path, "/inc/", 5) != 0 || path[5] < '0' || path[5] > '1' ||
	    path[6] != '\0') {
		errno = ENOENT;
		return -1;
	}
	i = (unsigned)(path[5] - '0');
	if ((*data = strdup(inc_texts[i])) == NULL)
		return -1;
	*len = strlen(*data);
	*owner = 1000 + i;
	return 0;
}

static void
test_include_owner(void **state)
{
	struct aliases			*a;
	const struct alias_entry	*e;
	const char			*t = "list: m, :include:/inc/0, /var/m\n";
	char				 err[256];
	int				 calls = 0;

	(void)state;
	a = aliases_load_mem("t", t, strlen(t), 42, reader, &calls, err,
	    sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	assert_int_equal(calls, 2);
	e = aliases_get(a, "list");
	assert_int_equal(e->ntargets, 5);
	target_is(e, 0, ALIAS_ADDR, "m", 42);
	target_is(e, 1, ALIAS_ADDR, "i0a", 1000);
	target_is(e, 2, ALIAS_PIPE, "/bin/zero", 1000);
	target_is(e, 3, ALIAS_FILE, "/var/one", 1001);
	target_is(e, 4, ALIAS_FILE, "/var/m", 42);
	/* nothing to stat: a table from memory changes with its includes */
	assert_int_equal(aliases_changed(a, "/nonexistent"), 0);
	aliases_free(a);
	t = "list: :include:/inc/9\n";
	assert_null(aliases_load_mem("t", t, strlen(t), 42, reader, &calls,
	    err, sizeof(err)));
	assert_string_equal(err, "t:1: :include:/inc/9: No such file or "
	    "directory");
}

/* exact and wildcard lookups, longest prefix, domain first */
static void
test_lookup(void **state)
{
	struct aliases			*a;
	const struct alias_entry	*e;
	const char			*rest;

	(void)state;
	a = load_ok("r*: r\nro*: ro\nrobot-*: bare\nrobot-*@x.test: dom\n"
	    "rob*@x.test: rob\nrobot-ab*: ab\nplain: p\nplain@x.test: px\n");
	assert_string_equal(aliases_get(a, "plain")->key, "plain");
	assert_string_equal(aliases_get(a, "plain@x.test")->key, "plain@x.test");
	assert_null(aliases_get(a, "plain@y.test"));
	assert_null(aliases_get(a, ""));

	e = aliases_wildcard(a, "robot-abc", "x.test", &rest);
	assert_string_equal(e->key, "robot-*@x.test");	/* domain first */
	assert_string_equal(rest, "abc");
	e = aliases_wildcard(a, "robot-abc", "y.test", &rest);
	assert_string_equal(e->key, "robot-ab*");	/* longest bare */
	assert_string_equal(rest, "c");
	e = aliases_wildcard(a, "robot-x", "y.test", &rest);
	assert_string_equal(e->key, "robot-*");
	assert_string_equal(rest, "x");
	e = aliases_wildcard(a, "rox", "x.test", &rest);
	assert_string_equal(e->key, "ro*");
	assert_string_equal(rest, "x");
	e = aliases_wildcard(a, "robin", "x.test", &rest);
	assert_string_equal(e->key, "rob*@x.test");
	assert_string_equal(rest, "in");
	e = aliases_wildcard(a, "robot-", "x.test", &rest);
	assert_string_equal(e->key, "robot-*@x.test");
	assert_string_equal(rest, "");
	e = aliases_wildcard(a, "ROBOT-Q", "X.TEST", &rest);
	assert_string_equal(e->key, "robot-*@x.test");
	assert_string_equal(rest, "Q");
	e = aliases_wildcard(a, "r", NULL, &rest);
	assert_string_equal(e->key, "r*");
	assert_string_equal(rest, "");
	assert_null(aliases_wildcard(a, "zzz", "x.test", &rest));
	assert_null(aliases_wildcard(a, "", "x.test", &rest));
	assert_null(aliases_wildcard(a, "plain", "x.test", &rest));
	aliases_free(a);

	a = load_ok("plain: p\n");
	assert_null(aliases_wildcard(a, "plain", "x.test", &rest));
	aliases_free(a);
}

static void
test_changed(void **state)
{
	struct aliases	*a;
	char		 path[PATH_MAX], inc[PATH_MAX], text[PATH_MAX + 64];
	char		 err[512];

	(void)state;
	snprintf(inc, sizeof(inc), "%s", put("members", "m1\n"));
	snprintf(text, sizeof(text), "a: b\nl: :include:%s\n", inc);
	snprintf(path, sizeof(path), "%s", put("watch", text));
	a = aliases_load(path, err, sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	assert_int_equal(aliases_changed(a, path), 0);
	put("members", "m1, m2\n");
	assert_int_equal(aliases_changed(a, path), 1);
	aliases_free(a);

	a = aliases_load(path, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(aliases_changed(a, path), 0);
	put("watch", "a: b, c\n");
	assert_int_equal(aliases_changed(a, path), 1);
	snprintf(text, sizeof(text), "%s/gone", dir);
	assert_int_equal(aliases_changed(a, text), -1);
	aliases_free(a);
}

static int
big_reader(void *arg, const char *path, char **data, size_t *len,
    uid_t *owner)
{
	(void)path;
	(*(int *)arg)++;
	if ((*data = strdup("x\n")) == NULL)
		return -1;
	*len = ALIASES_FILES_MAX;	/* with the main file: one byte too many */
	*owner = 0;
	return 0;
}

static void
test_limits(void **state)
{
	const char	*t = "a: b\n";
	char		 err[256];
	int		 calls = 0;

	(void)state;
	/* the length is refused before anything is read */
	assert_null(aliases_load_mem("t", t, ALIASES_FILES_MAX + 1, 0, NULL,
	    NULL, err, sizeof(err)));
	assert_string_equal(err, "t: over the limit for alias files (64 MB "
	    "in all)");
	/* an include counts against the same budget (its length is checked
	   before it is parsed) */
	t = "a: :include:/big\n";
	assert_null(aliases_load_mem("t", t, strlen(t), 0, big_reader, &calls,
	    err, sizeof(err)));
	assert_string_equal(err, "t:1: :include:/big: over the limit for "
	    "alias files (64 MB in all)");
	assert_int_equal(calls, 1);
}

/* 100,000 entries: loaded, each found, in well under a second each way */
static void
test_100k(void **state)
{
	struct aliases	*a;
	char		*t, key[32], err[256];
	size_t		 k = 0, cap = 100000 * 40;
	clock_t		 c0;
	int		 i;

	(void)state;
	t = malloc(cap);
	assert_non_null(t);
	for (i = 0; i < 100000; i++)
		k += (size_t)snprintf(t + k, cap - k, "user%d%s: t%d@x.test\n",
		    i, i % 3 ? "" : "@x.test", i);
	c0 = clock();
	a = aliases_load_mem("t", t, k, 0, NULL, NULL, err, sizeof(err));
	if (a == NULL)
		fail_msg("%s", err);
	assert_int_equal(aliases_count(a), 100000);
	for (i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "user%d%s", i, i % 3 ? "" :
		    "@x.test");
		assert_non_null(aliases_get(a, key));
		snprintf(key, sizeof(key), "nouser%d", i);
		assert_null(aliases_get(a, key));
	}
	/* and `sluice check` walks them all */
	assert_int_equal(aliases_check_loops(a, err, sizeof(err)), 0);
	assert_true((double)(clock() - c0) / CLOCKS_PER_SEC < 10.0);
	aliases_free(a);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_many_targets),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_include_owner),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_changed),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_100k),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
