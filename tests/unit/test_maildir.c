/*
 * test_maildir - Maildir delivery into a mkdtemp() base, unique names,
 * unsafe components, error classes, and the Delivered-To loop check.
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
#include <unistd.h>

#include <cmocka.h>

#include "maildir.h"

struct fixture {
	char	 base[64];
	char	 path[PATH_MAX];	/* scratch */
};

static int
rm_rf_at(int parent, const char *name)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
	    == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rm_rf_at(dirfd(d), de->d_name);
	closedir(d);
	return unlinkat(parent, name, AT_REMOVEDIR);
}

static int
setup(void **state)
{
	struct fixture	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	snprintf(f->base, sizeof(f->base), "/tmp/sluice-maildir-XXXXXX");
	if (mkdtemp(f->base) == NULL) {
		free(f);
		return -1;
	}
	umask(022);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	rm_rf_at(AT_FDCWD, f->base);
	free(f);
	return 0;
}

/* Number of entries in base/rel; the name of the first into name. */
static int
count_dir(struct fixture *f, const char *rel, char *name, size_t namelen)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	snprintf(f->path, sizeof(f->path), "%s/%s", f->base, rel);
	if ((d = opendir(f->path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n++ == 0 && name != NULL)
			snprintf(name, namelen, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

/* A scratch file holding s, its offset left at off. */
static int
tmpfile_with(const char *s, off_t off)
{
	char	 path[] = "/tmp/sluice-data-XXXXXX";
	int	 fd;

	assert_true((fd = mkstemp(path)) != -1);
	unlink(path);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(lseek(fd, off, SEEK_SET), off);
	return fd;
}

static char *
slurp(const char *path, size_t *len)
{
	struct stat	 st;
	char		*b;
	int		 fd;

	assert_true((fd = open(path, O_RDONLY)) != -1);
	assert_int_equal(fstat(fd, &st), 0);
	assert_non_null(b = malloc((size_t)st.st_size + 1));
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	b[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* "<sec>.M<usec>P<pid>Q<n>.<host>" with an optional ",S=<size>" */
static void
check_name(const char *name, const char *host, long long size)
{
	char		 tail[300];
	long long	 sec, usec, pid, q, s;
	int		 n = 0;

	assert_int_equal(sscanf(name, "%lld.M%6lldP%lldQ%lld.%n", &sec, &usec,
	    &pid, &q, &n), 4);
	assert_true(n > 0);
	assert_int_equal(pid, getpid());
	assert_true(usec >= 0 && usec < 1000000);
	assert_true(sec > 1700000000);
	if (size < 0) {
		assert_string_equal(name + n, host);
		return;
	}
	snprintf(tail, sizeof(tail), "%s,S=%lld", host, size);
	assert_string_equal(name + n, tail);
	assert_int_equal(sscanf(strrchr(name, ',') + 1, "S=%lld", &s), 1);
}

static void
test_deliver(void **state)
{
	struct fixture		*f = *state;
	struct maildir_tx	 tx;
	static const char	 hdr[] = "Return-Path: <alice@example.org>\n"
	    "Delivered-To: bob@example.test\n";
	static const char	 msg[] = "Subject: hi\n\nhello\n";
	struct stat		 st;
	char			 name[300], *got;
	size_t			 len;
	int			 fd;

	(void)state;
	fd = tmpfile_with(msg, 5);
	assert_int_equal(maildir_open(&tx, f->base, "example.test", "bob",
	    "mx.example.test"), 0);
	assert_true(tx.fd >= 0 && tx.dirfd >= 0);
	assert_int_equal(count_dir(f, "example.test/bob/tmp", name,
	    sizeof(name)), 1);
	assert_string_equal(name, tx.name);
	check_name(tx.name, "mx.example.test", -1);
	maildir_write(&tx, hdr, strlen(hdr));
	maildir_copy_fd(&tx, fd);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 5);	/* offset untouched */
	assert_int_equal(maildir_commit(&tx), 0);
	assert_int_equal(tx.fd, -1);
	assert_int_equal(tx.dirfd, -1);
	close(fd);

	assert_int_equal(count_dir(f, "example.test/bob/tmp", NULL, 0), 0);
	assert_int_equal(count_dir(f, "example.test/bob/cur", NULL, 0), 0);
	assert_int_equal(count_dir(f, "example.test/bob/new", name,
	    sizeof(name)), 1);
	check_name(name, "mx.example.test", (long long)(strlen(hdr) +
	    strlen(msg)));
	snprintf(f->path, sizeof(f->path), "%s/example.test/bob/new/%s",
	    f->base, name);
	got = slurp(f->path, &len);
	assert_int_equal(len, strlen(hdr) + strlen(msg));
	assert_memory_equal(got, hdr, strlen(hdr));
	assert_memory_equal(got + strlen(hdr), msg, strlen(msg));
	free(got);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(f->path, sizeof(f->path), "%s/example.test/bob", f->base);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	/* a second delivery gets another name */
	assert_int_equal(maildir_open(&tx, f->base, "example.test", "bob",
	    "mx.example.test"), 0);
	maildir_write(&tx, "x\n", 2);
	assert_int_equal(maildir_commit(&tx), 0);
	assert_int_equal(count_dir(f, "example.test/bob/new", NULL, 0), 2);
	assert_int_equal(count_dir(f, "example.test/bob/tmp", NULL, 0), 0);
}

static void
test_empty_and_big(void **state)
{
	struct fixture		*f = *state;
	struct maildir_tx	 tx;
	char			*big, name[300];
	size_t			 n = 300 * 1000 + 7, len;
	int			 fd;

	/* an empty message is still a message */
	assert_int_equal(maildir_open(&tx, f->base, "d", "u", "h"), 0);
	assert_int_equal(maildir_commit(&tx), 0);
	assert_int_equal(count_dir(f, "d/u/new", name, sizeof(name)), 1);
	assert_non_null(strstr(name, ".h,S=0"));
	snprintf(f->path, sizeof(f->path), "%s/d/u/new/%s", f->base, name);
	unlink(f->path);
	/* bigger than the copy buffer */
	assert_non_null(big = malloc(n + 1));
	for (len = 0; len < n; len++)
		big[len] = (char)('a' + len % 26);
	big[n] = '\0';
	fd = tmpfile_with(big, 0);
	assert_int_equal(maildir_open(&tx, f->base, "d", "u", "h"), 0);
	maildir_copy_fd(&tx, fd);
	assert_int_equal(maildir_commit(&tx), 0);
	close(fd);
	assert_int_equal(count_dir(f, "d/u/new", name, sizeof(name)), 1);
	snprintf(f->path, sizeof(f->path), "%s/d/u/new/%s", f->base, name);
	free(big);
	big = slurp(f->path, &len);
	assert_int_equal(len, n);
	assert_int_equal(big[n - 1], 'a' + (n - 1) % 26);
	free(big);
}

static void
test_abort(void **state)
{
	struct fixture		*f = *state;
	struct maildir_tx	 tx;

	assert_int_equal(maildir_open(&tx, f->base, "example.test", "bob",
	    NULL), 0);
	maildir_write(&tx, "partial", 7);
	maildir_abort(&tx);
	maildir_abort(&tx);	/* idempotent */
	assert_int_equal(count_dir(f, "example.test/bob/tmp", NULL, 0), 0);
	assert_int_equal(count_dir(f, "example.test/bob/new", NULL, 0), 0);
}

/* A write error is sticky, temporary, and the tmp file goes away. */
static void
test_sticky_errors(void **state)
{
	struct fixture		*f = *state;
	struct maildir_tx	 tx;
	int			 full;

	if ((full = open("/dev/full", O_WRONLY)) == -1)
		skip();
	assert_int_equal(maildir_open(&tx, f->base, "d", "u", "h"), 0);
	assert_true(dup2(full, tx.fd) != -1);
	close(full);
	maildir_write(&tx, "abc", 3);
	maildir_write(&tx, "def", 3);
	assert_true(tx.failed);
	assert_int_equal(maildir_commit(&tx), -1);
	assert_true(tx.temp);
	assert_non_null(strstr(tx.error, "write"));
	assert_int_equal(count_dir(f, "d/u/tmp", NULL, 0), 0);
	assert_int_equal(count_dir(f, "d/u/new", NULL, 0), 0);

	/* an unreadable source is temporary too */
	assert_int_equal(maildir_open(&tx, f->base, "d", "u", "h"), 0);
	maildir_copy_fd(&tx, -1);
	assert_int_equal(maildir_commit(&tx), -1);
	assert_true(tx.temp);
	assert_int_equal(count_dir(f, "d/u/tmp", NULL, 0), 0);
	assert_int_equal(count_dir(f, "d/u/new", NULL, 0), 0);
}

static void
test_unsafe(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "..x", "a/b", "/", "a\nb", "a\rb",
		"a\tb", "\x7f", "x\x01",
	};
	struct fixture		*f = *state;
	struct maildir_tx	 tx;
	char			 longname[NAME_MAX + 2];
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(maildir_safe_component(bad[i]));
		assert_int_equal(maildir_open(&tx, f->base, bad[i], "bob",
		    "h"), -1);
		assert_false(tx.temp);
		assert_string_equal(tx.error, "invalid mailbox name");
		assert_int_equal(maildir_open(&tx, f->base, "example.test",
		    bad[i], "h"), -1);
		assert_false(tx.temp);
		maildir_abort(&tx);	/* safe after a failed open */
	}
	assert_false(maildir_safe_component(NULL));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(maildir_safe_component(longname));
	longname[NAME_MAX] = '\0';
	assert_true(maildir_safe_component(longname));
	assert_true(maildir_safe_component("bob"));
	assert_true(maildir_safe_component("b.o-b+ext"));
	assert_true(maildir_safe_component("j\xc3\xb6rg"));
	/* nothing was created for a refused name */
	assert_int_equal(count_dir(f, "", NULL, 0), 0);
}

/* Environment problems defer: never a permanent failure (P3). */
static void
test_temporary(void **state)
{
	struct fixture		*f = *state;
	struct maildir_tx	 tx;
	char			 missing[PATH_MAX];

	snprintf(missing, sizeof(missing), "%s/nonexistent", f->base);
	assert_int_equal(maildir_open(&tx, missing, "d", "u", "h"), -1);
	assert_true(tx.temp);
	assert_true(tx.failed);
	maildir_abort(&tx);

	/* a symlinked user directory is refused (ELOOP), temporarily */
	snprintf(f->path, sizeof(f->path), "%s/d", f->base);
	assert_int_equal(mkdir(f->path, 0755), 0);
	snprintf(f->path, sizeof(f->path), "%s/d/u", f->base);
	assert_int_equal(symlink("/tmp", f->path), 0);
	assert_int_equal(maildir_open(&tx, f->base, "d", "u", "h"), -1);
	assert_true(tx.temp);
	maildir_abort(&tx);

	/* a file where a directory should be (ENOTDIR) */
	snprintf(f->path, sizeof(f->path), "%s/d/v", f->base);
	close(open(f->path, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(maildir_open(&tx, f->base, "d", "v", "h"), -1);
	assert_true(tx.temp);

	/* a host name that cannot fit a Maildir name */
	{
		char	 host[300];

		memset(host, 'h', sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		assert_int_equal(maildir_open(&tx, f->base, "d", "w", host),
		    -1);
		assert_true(tx.temp);
		assert_int_equal(count_dir(f, "d/w/tmp", NULL, 0), 0);
	}

	if (geteuid() == 0)
		return;	/* root ignores the mode bits below */
	snprintf(f->path, sizeof(f->path), "%s/ro", f->base);
	assert_int_equal(mkdir(f->path, 0500), 0);
	assert_int_equal(maildir_open(&tx, f->path, "d", "u", "h"), -1);
	assert_true(tx.temp);
	assert_non_null(strstr(tx.error, "Permission denied"));
}

static void
test_unique(void **state)
{
	char	 a[256], b[256], small[16];

	(void)state;
	assert_int_equal(maildir_unique(a, sizeof(a), "mx/a:b,c\\d"), 0);
	check_name(a, "mx\\057a\\072b\\054c\\134d", -1);
	assert_int_equal(maildir_unique(b, sizeof(b), "mx/a:b,c\\d"), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(maildir_unique(a, sizeof(a), NULL), 0);
	assert_null(strchr(a, '/'));
	assert_int_equal(maildir_unique(small, sizeof(small), "h"), -1);
}

static int
dt(const char *text, const char *addr)
{
	int	 fd, r;

	fd = tmpfile_with(text, 3);
	r = maildir_delivered_to(fd, addr);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 3);
	close(fd);
	return r;
}

static void
test_delivered_to(void **state)
{
	const char	*a = "bob@example.test";
	char		*big;
	size_t		 n;

	(void)state;
	assert_int_equal(dt("Delivered-To: bob@example.test\n\nbody\n", a), 1);
	assert_int_equal(dt("Subject: x\nDELIVERED-TO:   BOB@Example.TEST  \n"
	    "\nbody\n", a), 1);
	assert_int_equal(dt("delivered-to:bob@example.test\r\nX: y\r\n\r\n", a),
	    1);
	assert_int_equal(dt("Delivered-To: <bob@example.test>\n\n", a), 1);
	assert_int_equal(dt("Delivered-To:\n\tbob@example.test\n\n", a), 1);
	assert_int_equal(dt("Delivered-To: carol@example.test\nDelivered-To: "
	    "bob@example.test\n\n", a), 1);
	/* header section only, no final newline */
	assert_int_equal(dt("Delivered-To: bob@example.test", a), 1);

	assert_int_equal(dt("Delivered-To: carol@example.test\n\n", a), 0);
	assert_int_equal(dt("Delivered-To: bob@example.test.evil\n\n", a), 0);
	assert_int_equal(dt("Delivered-To: xbob@example.test\n\n", a), 0);
	assert_int_equal(dt("X-Delivered-To: bob@example.test\n\n", a), 0);
	assert_int_equal(dt("Delivered-To: bob@example.test, c@d\n\n", a), 0);
	assert_int_equal(dt("Subject: x\n\nDelivered-To: bob@example.test\n",
	    a), 0);
	assert_int_equal(dt("Subject: x\r\n\r\nDelivered-To: bob@example.test"
	    "\r\n", a), 0);
	assert_int_equal(dt("", a), 0);
	assert_int_equal(dt("\nDelivered-To: bob@example.test\n", a), 0);
	assert_int_equal(maildir_delivered_to(-1, a), -1);

	/* far down a long header section, within the cap */
	n = 200 * 1000;
	assert_non_null(big = malloc(n + 64));
	memset(big, 'X', n);
	for (size_t i = 70; i < n; i += 72) {
		big[i] = '\n';
		big[i + 1] = ' ';
	}
	big[0] = 'X';
	big[1] = ':';
	memcpy(big + n, "\nDelivered-To: bob@example.test\n\n", 34);
	assert_int_equal(dt(big, a), 1);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_big, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unsafe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_temporary, setup,
		    teardown),
		cmocka_unit_test(test_unique),
		cmocka_unit_test(test_delivered_to),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
