/*
 * account_archive - `sluice account export ADDR FILE` and
 * `sluice account import FILE [--as ADDR] [--force]`: an account as a tar
 * (libarchive, POSIX pax/ustar) for backups and moves between servers.
 *
 *	sluice-account.txt	the record: tab-separated lines, versioned
 *	Maildir/		cur/ new/ tmp/, regular files (dovecot-uidlist,
 *				subscriptions, ...), Maildir++ folders .Name/
 *				with their cur/ new/ tmp/ and files
 *
 * The record ("sluice-account\t1" first, "end" last):
 *	address	local@domain
 *	password	HASH
 *	recovery	ADDR-OR-EMPTY
 *	send_as	PATTERNS-OR-EMPTY
 *	created	UNIX-TIME
 *	alias	ADDRESS	TARGET	OWNER	CREATED	(the rows whose target is it)
 *
 * Export skips symlinks, special files, names import would refuse, and
 * the files in tmp/. Import reads the archive twice: the first pass checks
 * every entry (types, paths, sizes, counts, the record) and writes
 * nothing, so a hostile or corrupt archive changes nothing (exit 65); the
 * second creates the account if needed, re-adds the alias rows and copies
 * the messages: tmp/ with O_EXCL|O_NOFOLLOW, fsync, rename without
 * replacing into cur/ or new/, directory fsync, the way delivery does. A
 * message whose base name (before ":2,") is already in its folder's cur/
 * or new/ is skipped, so importing twice duplicates nothing.
 */
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"

#define AR_RECORD_NAME	"sluice-account.txt"
#define AR_RECORD_VER	1
#define AR_RECORD_MAX	(1024 * 1024)		/* the record file */
#define AR_ENTRY_MAX	(256LL * 1024 * 1024)	/* one file */
#define AR_TOTAL_MAX	(64LL * 1024 * 1024 * 1024)	/* all files */
#define AR_ENTRIES_MAX	1000000
#define AR_PATH_MAX	1024
#define AR_DEPTH_MAX	4	/* Maildir/.Folder/cur/NAME */
#define AR_ALIASES_MAX	10000
#define AR_FIELD_MAX	1024
#define AR_IO		65536

struct ar_alias {
	char	*address, *target, *owner;
};

struct ar_record {
	char		 address[ACCOUNT_LOCAL_MAX + ACCOUNT_DOMAIN_MAX + 2];
	char		 hash[TABLE_HASH_MAX + 1];
	char		 recovery[TABLE_RECOVERY_MAX + 1];
	char		 send_as[TABLE_SEND_AS_MAX + 1];
	long long	 created;
	struct ar_alias	*aliases;
	size_t		 naliases;
};

/* what an entry is, once checked */
enum ar_kind { AR_RECORD, AR_DIR, AR_META, AR_MESSAGE };

struct ar_entry {
	enum ar_kind	 kind;
	char		 path[AR_PATH_MAX + 1];	/* without a trailing '/' */
	char		*comp[AR_DEPTH_MAX];	/* into path */
	size_t		 ncomp;
	size_t		 folder;	/* comps of the folder: 1 or 2 */
	long long	 size;
};

/* ---- export ---- */

struct ar_out {
	struct archive	*a;
	const char	*file;
	unsigned long	 files;
	int		 failed;
};

/* a field of the record must not break its lines */
static int
ar_field_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void
ar_alias_row(void *arg, const char **cols, size_t ncols)
{
	struct buf	*b = arg;

	if (ncols < 4)
		return;
	if (!ar_field_ok(cols[0]) || !ar_field_ok(cols[1]) ||
	    !ar_field_ok(cols[2]) || strlen(cols[1]) > AR_FIELD_MAX) {
		cli_err("export: alias %s skipped: control characters",
		    cols[0]);
		return;
	}
	buf_addf(b, "alias\t%s\t%s\t%s\t%s\n", cols[0], cols[1], cols[2],
	    cols[3]);
}

static int
ar_write_entry(struct ar_out *o, const char *path, int dir, long long size,
    time_t mtime)
{
	struct archive_entry	*e;
	int			 rc;

	if ((e = archive_entry_new()) == NULL)
		return -1;
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(e, dir ? 0700 : 0600);
	archive_entry_set_size(e, dir ? 0 : size);
	archive_entry_set_mtime(e, mtime, 0);
	rc = archive_write_header(o->a, e);
	archive_entry_free(e);
	return rc == ARCHIVE_OK ? 0 : -1;
}

/* is name a file or folder import would take? (no dot, no controls) */
static int
ar_name_ok(const char *name, int folder)
{
	size_t	 n = strlen(name);

	if (n == 0 || n > NAME_MAX || !ar_field_ok(name))
		return 0;
	if (folder)
		return name[0] == '.' && n > 1 && strcmp(name, "..") != 0;
	return name[0] != '.';
}

/* Copy the regular file name (under dfd) into the archive as path. */
static int
ar_export_file(struct ar_out *o, int dfd, const char *name, const char *path)
{
	char		 buf[AR_IO];
	struct stat	 st;
	long long	 left;
	ssize_t		 r;
	int		 fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK)) == -1) {
		if (errno == ELOOP)
			cli_err("export: %s skipped (a symbolic link)", path);
		/* ENOENT: moved meanwhile (new/ to cur/) */
		return errno == ENOENT || errno == ELOOP ? 0 : -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		cli_err("export: %s skipped (not a regular file)", path);
		close(fd);
		return 0;
	}
	if (st.st_size > AR_ENTRY_MAX) {
		cli_err("export: %s: larger than %lld bytes, import would "
		    "refuse it", path, AR_ENTRY_MAX);
		close(fd);
		errno = EFBIG;
		return -1;
	}
	if (ar_write_entry(o, path, 0, st.st_size, st.st_mtime) == -1) {
		close(fd);
		return -1;
	}
	for (left = st.st_size; left > 0; left -= r) {
		r = read(fd, buf, left < (long long)sizeof(buf) ? (size_t)left :
		    sizeof(buf));
		if (r <= 0 || archive_write_data(o->a, buf, (size_t)r) != r) {
			if (r == 0)
				errno = EIO;	/* shrank while read */
			close(fd);
			return -1;
		}
	}
	close(fd);
	o->files++;
	return 0;
}

/* the entry of a directory: "path/" */
static int
ar_export_dir(struct ar_out *o, const char *path, time_t mtime)
{
	char	 p[AR_PATH_MAX + 2];

	if ((size_t)snprintf(p, sizeof(p), "%s/", path) >= sizeof(p))
		return -1;
	return ar_write_entry(o, p, 1, 0, mtime);
}

/* cur/ or new/: the directory and its regular files (the messages) */
static int
ar_export_box(struct ar_out *o, int dfd, const char *path, time_t mtime)
{
	char		 p[AR_PATH_MAX + 1], **names;
	size_t		 n, i;
	int		 rc;

	if ((names = cli_dir_names(dfd, 0, SIZE_MAX, &n)) == NULL)
		return -1;
	rc = ar_export_dir(o, path, mtime);
	for (i = 0; rc == 0 && i < n; i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", path, names[i]) >=
		    sizeof(p) || !ar_name_ok(names[i], 0)) {
			cli_err("export: %s/%s skipped (a name import would "
			    "refuse)", path, names[i]);
			continue;
		}
		rc = ar_export_file(o, dfd, names[i], p);
	}
	cli_names_free(names, n);
	return rc;
}

/*
 * One Maildir folder (the root, path "Maildir", or a Maildir++ folder):
 * its cur/ new/ tmp/ (files of tmp/ left out), its regular files, and at
 * the root its .Name folders.
 */
static int
ar_export_folder(struct ar_out *o, int dfd, const char *path, int root)
{
	char		 p[AR_PATH_MAX + 1], **names;
	struct stat	 st;
	size_t		 n, i;
	int		 sub, rc = 0, box;

	if ((names = cli_dir_names(dfd, 0, SIZE_MAX, &n)) == NULL)
		return -1;
	if (fstat(dfd, &st) == -1 || ar_export_dir(o, path, st.st_mtime) == -1)
		rc = -1;
	for (i = 0; rc == 0 && i < n; i++) {
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    (size_t)snprintf(p, sizeof(p), "%s/%s", path, names[i]) >=
		    sizeof(p))
			continue;
		box = strcmp(names[i], "cur") == 0 ||
		    strcmp(names[i], "new") == 0 || strcmp(names[i], "tmp") == 0;
		if (S_ISREG(st.st_mode) && ar_name_ok(names[i], 0))
			rc = ar_export_file(o, dfd, names[i], p);
		else if (!S_ISDIR(st.st_mode) || (!box && !(root &&
		    ar_name_ok(names[i], 1))))
			cli_err("export: %s skipped (not a regular file, "
			    "cur/new/tmp or a Maildir++ folder)", p);
		else if ((sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) == -1)
			rc = -1;
		else {
			if (!box)
				rc = ar_export_folder(o, sub, p, 0);
			else if (strcmp(names[i], "tmp") == 0)
				rc = ar_export_dir(o, p, st.st_mtime);
			else
				rc = ar_export_box(o, sub, p, st.st_mtime);
			close(sub);
		}
	}
	cli_names_free(names, n);
	return rc;
}

/* The record of the account; 0, or an exit status after a message. */
static int
ar_record_build(struct table *t, const struct account_addr *a,
    struct buf *b)
{
	struct table_account	 acc;
	char			 err[512];

	switch (table_account_get(t, a->local, a->domain, &acc)) {
	case TABLE_FOUND:
		break;
	case TABLE_NOTFOUND:
		cli_err("%s: no such account", a->full);
		return EX_NOUSER;
	case TABLE_TEMPFAIL:
		cli_err("%s: database lookup failed", a->full);
		return EX_TEMPFAIL;
	}
	if (!ar_field_ok(acc.hash) || !ar_field_ok(acc.recovery) ||
	    !ar_field_ok(acc.send_as)) {
		cli_err("%s: control characters in the account's row",
		    a->full);
		return EX_DATAERR;
	}
	buf_addf(b, "sluice-account\t%d\naddress\t%s\npassword\t%s\n"
	    "recovery\t%s\nsend_as\t%s\ncreated\t%lld\n", AR_RECORD_VER,
	    a->full, acc.hash, acc.recovery, acc.send_as, acc.created);
	if (table_alias_list_target(t, a->full, ar_alias_row, b, err,
	    sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		return EX_TEMPFAIL;
	}
	buf_adds(b, "end\n");
	if (b->err != BUF_OK) {
		cli_err("%s: the record is too large", a->full);
		return EX_SOFTWARE;
	}
	return 0;
}

/* Write the archive on fd; 0 or -1 (message printed). */
static int
ar_export_to(struct ar_out *o, int fd, int mdfd, const struct buf *rec)
{
	int	 rc = -1;

	if ((o->a = archive_write_new()) == NULL)
		return -1;
	if (archive_write_set_format_pax_restricted(o->a) != ARCHIVE_OK ||
	    archive_write_open_fd(o->a, fd) != ARCHIVE_OK)
		goto out;
	if (ar_write_entry(o, AR_RECORD_NAME, 0, (long long)rec->len,
	    time(NULL)) == -1 || archive_write_data(o->a, rec->data,
	    rec->len) != (la_ssize_t)rec->len)
		goto out;
	if (ar_export_folder(o, mdfd, "Maildir", 1) == -1)
		goto out;
	if (archive_write_close(o->a) == ARCHIVE_OK)
		rc = 0;
out:
	if (rc == -1)
		cli_err("export: %s: %s", o->file, archive_errno(o->a) ?
		    archive_error_string(o->a) : strerror(errno));
	archive_write_free(o->a);
	o->a = NULL;
	return rc;
}

int
account_export(struct cli *cli, struct table *t,
    const struct account_addr *a, const char *file)
{
	struct ar_out	 o = { .file = file };
	struct buf	 rec;
	char		 md[PATH_MAX], tmp[PATH_MAX];
	int		 rc, fd = STDOUT_FILENO, mdfd;

	buf_init(&rec, AR_RECORD_MAX);
	if ((rc = ar_record_build(t, a, &rec)) != 0) {
		buf_free(&rec);
		return rc;
	}
	if ((size_t)snprintf(md, sizeof(md), "%s/%s/%s", cli->cfg.mailboxes,
	    a->domain, a->local) >= sizeof(md) || (mdfd = open(md, O_RDONLY |
	    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		cli_err("export: %s: the Maildir %s: %s", a->full, md,
		    strerror(errno));
		buf_free(&rec);
		return EX_NOINPUT;
	}
	if (strcmp(file, "-") != 0 && ((size_t)snprintf(tmp, sizeof(tmp),
	    "%s.tmp", file) >= sizeof(tmp) || (fd = open(tmp, O_WRONLY |
	    O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)) {
		cli_err("export: %s: %s", tmp, strerror(errno));
		close(mdfd);
		buf_free(&rec);
		return EX_CANTCREAT;
	}
	rc = ar_export_to(&o, fd, mdfd, &rec);
	close(mdfd);
	buf_free(&rec);
	if (fd == STDOUT_FILENO)
		return rc == 0 ? EX_OK : EX_IOERR;
	if (rc == 0 && (fsync(fd) == -1 || rename(tmp, file) == -1)) {
		cli_err("export: %s: %s", file, strerror(errno));
		rc = -1;
	}
	close(fd);
	if (rc == -1) {
		(void)unlink(tmp);
		return EX_IOERR;
	}
	fprintf(stderr, "sluice: %s exported to %s (%lu files)\n", a->full,
	    file, o.files);
	return EX_OK;
}

/* ---- import, pass 1: check everything, write nothing ---- */

struct ar_in {
	const char		*file;
	struct archive		*a;
	struct ar_record	 rec;
	int			 have_record;
	size_t			 entries;
	long long		 total;
	char			 why[256];	/* the reason an entry is refused */
};

static void
ar_record_free(struct ar_record *r)
{
	for (size_t i = 0; i < r->naliases; i++) {
		free(r->aliases[i].address);
		free(r->aliases[i].target);
		free(r->aliases[i].owner);
	}
	free(r->aliases);
	r->aliases = NULL;
	r->naliases = 0;
}

/* Split line at tabs into f (at most nf); the number of fields. */
static size_t
ar_split(char *line, char **f, size_t nf)
{
	size_t	 n = 0;

	while (n < nf) {
		f[n++] = line;
		if ((line = strchr(line, '\t')) == NULL)
			break;
		*line++ = '\0';
	}
	return line == NULL ? n : nf + 1;	/* nf + 1: too many */
}

static int
ar_copy(char *dst, size_t dstlen, const char *src)
{
	return (size_t)snprintf(dst, dstlen, "%s", src) < dstlen ? 0 : -1;
}

/* One line of the record; NULL or the reason it is refused. */
static const char *
ar_record_line(struct ar_record *r, char *line, int *end)
{
	struct account_addr	 ad;
	struct ar_alias		*na;
	char			*f[6], *e;
	size_t			 n;

	n = ar_split(line, f, 5);
	if (n == 1 && strcmp(f[0], "end") == 0) {
		*end = 1;
		return NULL;
	}
	if (strcmp(f[0], "alias") == 0) {
		if (n != 5 || r->naliases >= AR_ALIASES_MAX ||
		    strlen(f[1]) > AR_FIELD_MAX || strlen(f[3]) > AR_FIELD_MAX ||
		    strchr(f[1], '@') == NULL || strcasecmp(f[2],
		    r->address) != 0)
			return "bad alias line";
		if ((na = reallocarray(r->aliases, r->naliases + 1,
		    sizeof(*na))) == NULL)
			return "out of memory";
		r->aliases = na;
		na += r->naliases;
		na->address = strdup(f[1]);
		na->target = strdup(f[2]);
		na->owner = strdup(f[3]);
		r->naliases++;
		return na->address && na->target && na->owner ? NULL :
		    "out of memory";
	}
	if (n != 2)
		return "a line without exactly one tab";
	if (strcmp(f[0], "address") == 0)
		return account_parse(f[1], &ad) == -1 || ar_copy(r->address,
		    sizeof(r->address), ad.full) == -1 ? "bad address" : NULL;
	if (strcmp(f[0], "password") == 0)
		return f[1][0] != '$' || strchr(f[1], ' ') != NULL ||
		    ar_copy(r->hash, sizeof(r->hash), f[1]) == -1 ?
		    "bad password hash" : NULL;
	if (strcmp(f[0], "recovery") == 0)
		return account_recovery_norm(f[1], r->recovery,
		    sizeof(r->recovery)) == -1 ? "bad recovery address" : NULL;
	if (strcmp(f[0], "send_as") == 0)
		return account_send_as_norm(f[1], r->send_as,
		    sizeof(r->send_as)) == -1 ? "bad send_as" : NULL;
	if (strcmp(f[0], "created") == 0) {
		errno = 0;
		r->created = strtoll(f[1], &e, 10);
		return errno || e == f[1] || *e ? "bad created time" : NULL;
	}
	return "unknown line";
}

/* Parse the record in b; NULL or the reason. */
static const char *
ar_record_parse(struct ar_record *r, struct buf *b)
{
	char		*line, *nl, *nl2;
	const char	*why;
	char		 head[32];
	int		 end = 0, first = 1;

	if (memchr(b->data, '\0', b->len) != NULL)
		return "NUL byte in the record";
	snprintf(head, sizeof(head), "sluice-account\t%d", AR_RECORD_VER);
	for (line = b->data; *line != '\0'; line = nl + 1) {
		if ((nl = strchr(line, '\n')) == NULL)
			return "the last line has no newline";
		*nl = '\0';
		if (end)
			return "lines after \"end\"";
		if (first) {
			if (strcmp(line, head) != 0)
				return "not a sluice-account record of "
				    "version 1";
			first = 0;
			continue;
		}
		for (nl2 = line; *nl2 != '\0'; nl2++)
			if (((unsigned char)*nl2 < 0x20 && *nl2 != '\t') ||
			    *nl2 == 0x7f)
				return "control characters";
		if ((why = ar_record_line(r, line, &end)) != NULL)
			return why;
	}
	if (!end)
		return "no \"end\" line (truncated)";
	if (r->address[0] == '\0' || r->hash[0] == '\0')
		return "no address or password";
	for (size_t i = 0; i < r->naliases; i++)
		if (strcasecmp(r->aliases[i].target, r->address) != 0)
			return "an alias that does not point at the account";
	return NULL;
}

static int
ar_is_box(const char *s)
{
	return strcmp(s, "cur") == 0 || strcmp(s, "new") == 0 ||
	    strcmp(s, "tmp") == 0;
}

/*
 * Where an entry under Maildir/ may be: the folder (Maildir or .Name),
 * its cur/ new/ tmp/ and regular files, messages in cur/ and new/. Sets
 * x->folder; NULL or the reason.
 */
static const char *
ar_entry_place(struct ar_entry *x, int dir)
{
	size_t	 f;

	if (strcmp(x->comp[0], "Maildir") != 0)
		return "outside Maildir/ and not " AR_RECORD_NAME;
	f = x->folder = x->ncomp > 1 && x->comp[1][0] == '.' ? 2 : 1;
	if (x->ncomp == f)
		return dir ? NULL : "a folder that is not a directory";
	if (x->ncomp == f + 1)
		return dir && !ar_is_box(x->comp[f]) ? "a directory other "
		    "than cur, new, tmp or a Maildir++ folder" :
		    !dir && ar_is_box(x->comp[f]) ? "cur/new/tmp not a "
		    "directory" : NULL;
	if (x->ncomp == f + 2)
		return dir ? "a directory inside cur, new or tmp" :
		    strcmp(x->comp[f], "tmp") == 0 ? "a file in tmp/" :
		    !ar_is_box(x->comp[f]) ? "a file below a directory other "
		    "than cur or new" : NULL;
	return "too deep";
}

/*
 * Check one entry's type, name and size and say what it is (x); NULL or
 * the reason it is refused.
 */
static const char *
ar_entry_check(struct ar_in *in, struct archive_entry *e, struct ar_entry *x)
{
	const char	*name = archive_entry_pathname(e), *why;
	char		*p, *c;
	size_t		 n, i;
	int		 dir;

	if (name == NULL || *name == '\0')
		return "no name";
	if ((n = strlen(name)) > AR_PATH_MAX)
		return "name too long";
	if (archive_entry_hardlink(e) != NULL)
		return "a hard link";
	if (archive_entry_symlink(e) != NULL ||
	    archive_entry_filetype(e) == AE_IFLNK)
		return "a symbolic link";
	if (archive_entry_filetype(e) != AE_IFREG &&
	    archive_entry_filetype(e) != AE_IFDIR)
		return "not a regular file or directory (device, fifo...)";
	dir = archive_entry_filetype(e) == AE_IFDIR;
	if (name[0] == '/')
		return "an absolute path";
	memcpy(x->path, name, n + 1);
	if (n > 1 && x->path[n - 1] == '/') {
		if (!dir)
			return "a file name ending in '/'";
		x->path[--n] = '\0';
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)x->path[i] < 0x20 || x->path[i] == 0x7f)
			return "control character in the name";
	x->size = dir ? 0 : archive_entry_size(e);
	if (!dir && (!archive_entry_size_is_set(e) || x->size < 0))
		return "no size";
	if (strcmp(x->path, AR_RECORD_NAME) == 0 && !dir) {
		x->kind = AR_RECORD;
		return x->size > AR_RECORD_MAX ? "record file too large" :
		    in->have_record ? "a second record file" : NULL;
	}
	x->ncomp = 0;
	for (p = x->path; p != NULL; ) {
		c = p;
		if ((p = strchr(p, '/')) != NULL)
			*p++ = '\0';
		if (*c == '\0')
			return "an empty path component";
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0)
			return "a \".\" or \"..\" component";
		if (strlen(c) > NAME_MAX)
			return "a path component too long";
		if (x->ncomp == AR_DEPTH_MAX)
			return "too deep";
		x->comp[x->ncomp++] = c;
	}
	for (i = 0; i < x->ncomp; i++) {
		if (x->comp[i][0] == '.' && (i != 1 || (x->ncomp == 2 && !dir)))
			return "a name starting with '.' (only Maildir++ "
			    "folders directly under Maildir/ may)";
	}
	if ((why = ar_entry_place(x, dir)) != NULL)
		return why;
	x->kind = dir ? AR_DIR : x->ncomp == x->folder + 2 ? AR_MESSAGE :
	    AR_META;
	if (x->size > AR_ENTRY_MAX)
		return "file larger than the limit (AR_ENTRY_MAX)";
	if ((in->total += x->size) > AR_TOTAL_MAX)
		return "archive larger than the limit (AR_TOTAL_MAX)";
	return NULL;
}

/*
 * A reader of the tar on fd from its start; NULL with errno. *ok is 0 if
 * the archive could not be opened (not a tar: archive_error_string).
 */
static struct archive *
ar_read_open(int fd, int *ok)
{
	struct archive	*a;

	if (lseek(fd, 0, SEEK_SET) == -1 || (a = archive_read_new()) == NULL)
		return NULL;
	*ok = archive_read_support_format_tar(a) == ARCHIVE_OK &&
	    archive_read_open_fd(a, fd, 16384) == ARCHIVE_OK;
	return a;
}

/* Read an entry's data: into b if set, else only counted. -1 if short. */
static int
ar_read_data(struct archive *a, long long size, struct buf *b)
{
	char		 buf[AR_IO];
	long long	 got = 0;
	la_ssize_t	 r;

	while ((r = archive_read_data(a, buf, sizeof(buf))) > 0) {
		got += r;
		if (b != NULL && buf_add(b, buf, (size_t)r) == -1)
			return -1;
	}
	return r < 0 || got != size ? -1 : 0;
}

/* Pass 1; 0 or EX_DATAERR after `import: FILE: entry "...": reason`. */
static int
ar_check(struct ar_in *in, int fd)
{
	struct archive_entry	*e;
	struct ar_entry		 x;
	struct buf		 rec;
	const char		*why = NULL;
	char			 name[AR_PATH_MAX + 1] = "";
	int			 r, ok;

	if ((in->a = ar_read_open(fd, &ok)) == NULL) {
		cli_err("import: %s: cannot read: %s", in->file,
		    strerror(errno));
		return EX_NOINPUT;
	}
	buf_init(&rec, AR_RECORD_MAX);
	r = ok ? ARCHIVE_OK : ARCHIVE_FATAL;
	while (why == NULL && r == ARCHIVE_OK && (r =
	    archive_read_next_header(in->a, &e)) == ARCHIVE_OK) {
		snprintf(name, sizeof(name), "%s", archive_entry_pathname(e) ?
		    archive_entry_pathname(e) : "");
		if (++in->entries > AR_ENTRIES_MAX)
			why = "too many entries (AR_ENTRIES_MAX)";
		else if ((why = ar_entry_check(in, e, &x)) != NULL)
			;
		else if (ar_read_data(in->a, x.size, x.kind == AR_RECORD ?
		    &rec : NULL) == -1)
			why = "truncated or unreadable data";
		else if (x.kind == AR_RECORD) {
			in->have_record = 1;
			why = ar_record_parse(&in->rec, &rec);
		}
	}
	if (why == NULL && r != ARCHIVE_EOF) {
		cli_err("import: %s: not a readable tar archive%s%s%s: %s",
		    in->file, name[0] ? " (after \"" : "", name,
		    name[0] ? "\")" : "", archive_error_string(in->a) ?
		    archive_error_string(in->a) : "error");
		why = "";
	} else if (why != NULL)
		cli_err("import: %s: entry \"%s\": %s", in->file, name, why);
	else if (!in->have_record) {
		cli_err("import: %s: entry \"%s\": missing (not a sluice "
		    "account archive)", in->file, AR_RECORD_NAME);
		why = "";
	}
	buf_free(&rec);
	archive_read_free(in->a);
	in->a = NULL;
	return why == NULL ? 0 : EX_DATAERR;
}

/* ---- import, pass 2: write ---- */

/* the base names (before ":2,") of a folder's cur/ and new/, sorted */
struct ar_seen {
	char		 folder[NAME_MAX + 1];	/* "" the root */
	char		**v;
	size_t		 n, cap;
};

struct ar_write {
	int		 root;		/* the account's Maildir */
	struct ar_seen	*seen;
	size_t		 nseen;
	unsigned long	 added, present, counter;
};

static size_t
ar_base_len(const char *name)
{
	const char	*c = strstr(name, ":2,");

	return c ? (size_t)(c - name) : strlen(name);
}

/* the index where base would go in s->v; *found if it is there */
static size_t
ar_seen_find(const struct ar_seen *s, const char *base, size_t blen,
    int *found)
{
	size_t	 lo = 0, hi = s->n, mid;
	int	 c;

	*found = 0;
	while (lo < hi) {
		mid = (lo + hi) / 2;
		c = strncmp(s->v[mid], base, blen);
		if (c == 0 && s->v[mid][blen] != '\0')
			c = 1;
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
ar_seen_add(struct ar_seen *s, const char *name)
{
	size_t	 blen = ar_base_len(name), at;
	char	**nv;
	int	 found;

	at = ar_seen_find(s, name, blen, &found);
	if (found)
		return 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		if ((nv = reallocarray(s->v, s->cap, sizeof(*nv))) == NULL)
			return -1;
		s->v = nv;
	}
	memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof(*s->v));
	if ((s->v[at] = strndup(name, blen)) == NULL) {
		memmove(s->v + at, s->v + at + 1, (s->n - at) * sizeof(*s->v));
		return -1;
	}
	s->n++;
	return 0;
}

/* The seen-set of folder (fd: the folder), read on first use. */
static struct ar_seen *
ar_seen_get(struct ar_write *w, const char *folder, int fd)
{
	static const char *const boxes[] = { "cur", "new" };
	struct ar_seen	*s, *ns;
	char		**names;
	size_t		 i, n, k;
	int		 bfd;

	for (i = 0; i < w->nseen; i++)
		if (strcmp(w->seen[i].folder, folder) == 0)
			return &w->seen[i];
	if ((ns = reallocarray(w->seen, w->nseen + 1, sizeof(*ns))) == NULL)
		return NULL;
	w->seen = ns;
	s = &w->seen[w->nseen++];
	memset(s, 0, sizeof(*s));
	snprintf(s->folder, sizeof(s->folder), "%s", folder);
	for (k = 0; k < 2; k++) {
		if ((bfd = openat(fd, boxes[k], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) == -1)
			return NULL;
		names = cli_dir_names(bfd, 0, SIZE_MAX, &n);
		close(bfd);
		if (names == NULL)
			return NULL;
		for (i = 0; i < n; i++)
			if (ar_seen_add(s, names[i]) == -1) {
				cli_names_free(names, n);
				return NULL;
			}
		cli_names_free(names, n);
	}
	return s;
}

/* mkdir name under dfd (0700, an existing directory is fine); open it */
static int
ar_subdir(int dfd, const char *name)
{
	if (mkdirat(dfd, name, 0700) == -1 && errno != EEXIST)
		return -1;
	return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
}

/* The folder of x (created with cur/ new/ tmp/), opened; -1 with errno. */
static int
ar_folder(struct ar_write *w, const struct ar_entry *x)
{
	static const char *const boxes[] = { "cur", "new", "tmp" };
	int	 fd, b, i;

	if (x->folder == 1)
		return dup(w->root);
	if ((fd = ar_subdir(w->root, x->comp[1])) == -1)
		return -1;
	for (i = 0; i < 3; i++) {
		if ((b = ar_subdir(fd, boxes[i])) == -1) {
			close(fd);
			return -1;
		}
		close(b);
	}
	return fd;
}

/*
 * The entry's data into dfd/name through tmp/ of the folder: O_EXCL,
 * fsync, rename without replacing, directory fsync. 1 written, 0 already
 * there, -1 error.
 */
static int
ar_put_file(struct ar_write *w, struct archive *a, struct archive_entry *e,
    int folder, int dfd, const char *name)
{
	struct timespec	 ts[2];
	char		 tmp[128], buf[AR_IO];
	la_ssize_t	 r;
	int		 tfd, fd, rc = -1, saved;

	if ((tfd = openat(folder, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	snprintf(tmp, sizeof(tmp), "%lld.import%ld_%lu.sluice",
	    (long long)time(NULL), (long)getpid(), ++w->counter);
	if ((fd = openat(tfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		close(tfd);
		return -1;
	}
	while ((r = archive_read_data(a, buf, sizeof(buf))) > 0)
		if (write_all(fd, buf, (size_t)r) == -1)
			break;
	ts[0].tv_sec = ts[1].tv_sec = archive_entry_mtime(e);
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (r == 0 && futimens(fd, ts) == 0 && fsync(fd) == 0) {
		if (renameat2(tfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
			rc = fsync(dfd) == 0 ? 1 : -1;
		else if (errno == EEXIST)
			rc = 0;
	}
	saved = errno;
	close(fd);
	if (rc != 1)
		(void)unlinkat(tfd, tmp, 0);
	close(tfd);
	errno = saved;
	return rc;
}

/* Write one checked entry of pass 2; 0 or -1 with errno. */
static int
ar_write_entry_in(struct ar_write *w, struct archive *a,
    struct archive_entry *e, const struct ar_entry *x)
{
	struct ar_seen	*s;
	struct stat	 st;
	int		 folder, dfd = -1, rc = 0, found;

	if (x->kind == AR_RECORD)
		return 0;
	if ((folder = ar_folder(w, x)) == -1)
		return -1;
	if (x->kind == AR_DIR) {
		if (x->ncomp > x->folder && (dfd = ar_subdir(folder,
		    x->comp[x->folder])) == -1)
			rc = -1;
	} else if (x->kind == AR_META) {
		/* dovecot-uidlist, subscriptions...: never replace ours */
		if (fstatat(folder, x->comp[x->folder], &st,
		    AT_SYMLINK_NOFOLLOW) == 0)
			w->present++;
		else if ((rc = ar_put_file(w, a, e, folder, folder,
		    x->comp[x->folder])) != -1)
			rc = 0;
	} else if ((s = ar_seen_get(w, x->folder == 1 ? "" : x->comp[1],
	    folder)) == NULL)
		rc = -1;
	else {
		const char *name = x->comp[x->folder + 1];

		(void)ar_seen_find(s, name, ar_base_len(name), &found);
		if (found)
			w->present++;
		else if ((dfd = ar_subdir(folder, x->comp[x->folder])) == -1 ||
		    (rc = ar_put_file(w, a, e, folder, dfd, name)) == -1)
			rc = -1;
		else if (rc == 0) {
			w->present++;	/* the same name appeared meanwhile */
		} else if ((rc = ar_seen_add(s, name)) == 0)
			w->added++;
	}
	if (dfd != -1)
		close(dfd);
	close(folder);
	return rc;
}

/* Pass 2 over the archive; 0 or an exit status after a message. */
static int
ar_restore(struct ar_in *in, int fd, int root, unsigned long *added,
    unsigned long *present)
{
	struct archive_entry	*e;
	struct ar_entry		 x;
	struct ar_write		 w = { .root = root };
	const char		*why = NULL;
	int			 r, rc = 0;

	in->total = 0;
	in->have_record = 0;
	if ((in->a = ar_read_open(fd, &r)) == NULL || !r) {
		cli_err("import: %s: cannot read it again: %s", in->file,
		    in->a ? archive_error_string(in->a) : strerror(errno));
		archive_read_free(in->a);
		return EX_IOERR;
	}
	while (rc == 0 && (r = archive_read_next_header(in->a, &e)) ==
	    ARCHIVE_OK) {
		/* XXX: the file could change between the passes; refuse
		 * the entry then (what was written stays, and is kept) */
		if ((why = ar_entry_check(in, e, &x)) != NULL) {
			cli_err("import: %s: entry \"%s\" changed after the "
			    "check: %s", in->file, archive_entry_pathname(e),
			    why);
			rc = EX_DATAERR;
		} else if (ar_write_entry_in(&w, in->a, e, &x) == -1) {
			cli_err("import: %s: entry \"%s\": %s", in->file,
			    archive_entry_pathname(e), strerror(errno));
			rc = EX_IOERR;
		}
		else if (x.kind == AR_RECORD)
			in->have_record = 1;
	}
	if (rc == 0 && r != ARCHIVE_EOF) {
		cli_err("import: %s: %s", in->file,
		    archive_error_string(in->a));
		rc = EX_DATAERR;
	}
	archive_read_free(in->a);
	in->a = NULL;
	for (size_t i = 0; i < w.nseen; i++)
		cli_names_free(w.seen[i].v, w.seen[i].n);
	free(w.seen);
	*added = w.added;
	*present = w.present;
	return rc;
}

/* The account row: created from the record, or kept with --force. */
static int
ar_account(struct table *t, const struct account_addr *a,
    const struct ar_record *r, int force, int *created)
{
	char	 err[512];

	*created = 0;
	switch (table_account_exists(t, a->local, a->domain)) {
	case TABLE_FOUND:
		if (force)
			return 0;
		cli_err("import: %s: account exists (--force keeps it and "
		    "adds the missing messages)", a->full);
		return EX_DATAERR;
	case TABLE_NOTFOUND:
		break;
	case TABLE_TEMPFAIL:
		cli_err("%s: database lookup failed", a->full);
		return EX_TEMPFAIL;
	}
	if (table_account_add(t, a->local, a->domain, r->hash, err,
	    sizeof(err)) == -1 || table_account_set(t, a->local, a->domain,
	    r->recovery, r->send_as, err, sizeof(err)) == -1) {
		cli_err("import: %s: %s", a->full, err);
		return strstr(err, "exists") ? EX_DATAERR : EX_TEMPFAIL;
	}
	*created = 1;
	return 0;
}

/* The alias rows, now pointing at a; duplicates are fine. */
static int
ar_aliases(struct table *t, const struct account_addr *a,
    const struct ar_record *r)
{
	const char	*dom;
	char		 err[512];
	size_t		 i;
	int		 rc = 0;

	for (i = 0; i < r->naliases; i++) {
		dom = strrchr(r->aliases[i].address, '@') + 1;
		if (table_domain_local(t, dom) != TABLE_FOUND) {
			cli_err("import: alias %s skipped: %s is not a local "
			    "domain", r->aliases[i].address, dom);
			continue;
		}
		if (table_alias_add(t, r->aliases[i].address, a->full,
		    r->aliases[i].owner, err, sizeof(err)) == -1 &&
		    strstr(err, "already has") == NULL) {
			cli_err("import: alias %s: %s", r->aliases[i].address,
			    err);
			rc = EX_TEMPFAIL;
		}
	}
	return rc;
}

int
account_import(struct cli *cli, int fd, const char *file, const char *as,
    int force)
{
	struct ar_in		 in = { .file = file };
	struct account_addr	 a;
	struct table		*t = NULL;
	unsigned long		 added = 0, present = 0;
	char			 md[PATH_MAX], err[512];
	int			 rc, created = 0, root = -1, arc;

	if ((rc = ar_check(&in, fd)) != 0)
		goto out;
	if (account_parse(as ? as : in.rec.address, &a) == -1) {
		rc = EX_DATAERR;
		goto out;
	}
	if ((t = cli_table(cli)) == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if ((rc = account_domain_check(t, a.domain)) != 0 ||
	    (rc = ar_account(t, &a, &in.rec, force, &created)) != 0)
		goto out;
	arc = ar_aliases(t, &a, &in.rec);
	if (account_maildir_create(cli->cfg.mailboxes, &a) == -1 ||
	    (size_t)snprintf(md, sizeof(md), "%s/%s/%s", cli->cfg.mailboxes,
	    a.domain, a.local) >= sizeof(md) || (root = open(md, O_RDONLY |
	    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		cli_err("import: %s: cannot create the Maildir under %s: %s",
		    a.full, cli->cfg.mailboxes, strerror(errno));
		if (created)
			(void)table_account_del(t, a.local, a.domain, err,
			    sizeof(err));
		rc = EX_CANTCREAT;
		goto out;
	}
	rc = ar_restore(&in, fd, root, &added, &present);
	if (rc == 0)
		rc = arc;
	printf("account %s %s: %lu files restored, %lu already present\n",
	    a.full, created ? "imported" : "kept", added, present);
out:
	if (root != -1)
		close(root);
	table_close(t);
	ar_record_free(&in.rec);
	return rc;
}
