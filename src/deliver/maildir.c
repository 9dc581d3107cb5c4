/*
 * maildir - deliver one message into a Maildir. See maildir.h.
 *
 * Contract:
 * - maildir_open() creates <base>/<domain>/<user>/{tmp,new,cur} as needed
 *   (base itself must exist) and opens tmp/<unique> exclusively, mode 0600.
 *   Every directory it creates is fsync'ed into its parent, so a Maildir
 *   that received a committed message survives a crash.
 * - maildir_write()/maildir_copy_fd() remember the first error (sticky);
 *   maildir_commit() reports it, unlinks the tmp file and returns -1.
 * - maildir_commit() and maildir_abort() close every descriptor the
 *   transaction holds; both may be called after a failed maildir_open().
 * - Error classes (P3): only an unsafe domain or user ("invalid mailbox
 *   name") is permanent. Every system error -- full disk, quota, I/O,
 *   missing base, permissions, symlinks -- is temporary: a misconfigured or
 *   full mailbox filesystem must defer mail, never bounce it.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"

#define MAILDIR_OPEN_TRIES	5
#define MAILDIR_COPY_BUF	(64 * 1024)
#define MAILDIR_HDR_MAX		(256 * 1024)	/* header bytes read by loop check */
#define MAILDIR_SIZE_ROOM	24		/* ",S=" and up to 20 digits */
#define MAILDIR_PATH_MAX	(4 + sizeof(((struct maildir_tx *)0)->name) + \
				    MAILDIR_SIZE_ROOM)

static void	tx_fail(struct maildir_tx *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Remember the first error; later ones are consequences of it. */
static void
tx_fail(struct maildir_tx *tx, int temp, const char *fmt, ...)
{
	va_list	 ap;

	if (tx->failed)
		return;
	tx->failed = 1;
	tx->temp = temp;
	va_start(ap, fmt);
	/* a truncated diagnostic is harmless */
	(void)vsnprintf(tx->error, sizeof(tx->error), fmt, ap);
	va_end(ap);
}

/* A system error: always temporary (P3), with strerror appended. */
static void
tx_syserr(struct maildir_tx *tx, const char *what)
{
	tx_fail(tx, 1, "%s: %s", what, strerror(errno));
}

int
maildir_safe_component(const char *s)
{
	const unsigned char	*p;

	if (s == NULL || s[0] == '\0' || s[0] == '.')
		return 0;	/* also ".", ".." and Maildir++ folders */
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return 0;
	return (size_t)(p - (const unsigned char *)s) <= NAME_MAX;
}

/* Host part of a unique name: '/', ':', ',', '\' and controls as \ooo. */
static int
add_host(char *dst, size_t dstlen, size_t pos, const char *host)
{
	const unsigned char	*p;
	int			 n;

	for (p = (const unsigned char *)host; *p != '\0'; p++) {
		if (*p == '/' || *p == ':' || *p == ',' || *p == '\\' ||
		    *p < 0x20 || *p >= 0x7f) {
			n = snprintf(dst + pos, dstlen - pos, "\\%03o", *p);
			if (n < 0 || (size_t)n >= dstlen - pos)
				return -1;
			pos += (size_t)n;
		} else {
			if (pos + 1 >= dstlen)
				return -1;
			dst[pos++] = (char)*p;
		}
	}
	dst[pos] = '\0';
	return 0;
}

int
maildir_unique(char *dst, size_t dstlen, const char *host)
{
	static _Atomic unsigned long	 counter;
	struct timespec			 ts;
	char				 hbuf[256];
	int				 n;

	if (host == NULL || *host == '\0') {
		if (gethostname(hbuf, sizeof(hbuf)) == -1 || hbuf[0] == '\0')
			memcpy(hbuf, "localhost", sizeof("localhost"));
		hbuf[sizeof(hbuf) - 1] = '\0';
		host = hbuf;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(dst, dstlen, "%lld.M%06ldP%ldQ%lu.", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000, (long)getpid(), ++counter);
	if (n < 0 || (size_t)n >= dstlen)
		return -1;
	return add_host(dst, dstlen, (size_t)n, host);
}

/* fsync a directory given relative to dirfd ("." for dirfd itself). */
static int
fsync_dir(int dirfd, const char *path)
{
	int	 fd, r, saved;

	if ((fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/*
 * mkdir name under parent (EEXIST is fine: another delivery may race us),
 * make a new entry durable, then open it refusing symlinks.
 */
static int
mkdir_open(struct maildir_tx *tx, int parent, const char *name, mode_t mode)
{
	int	 fd;

	if (mkdirat(parent, name, mode) == 0) {
		if (fsync(parent) == -1) {
			tx_syserr(tx, "fsync after mkdir");
			return -1;
		}
	} else if (errno != EEXIST) {
		tx_fail(tx, 1, "mkdir %s: %s", name, strerror(errno));
		return -1;
	}
	fd = openat(parent, name,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		tx_fail(tx, 1, "open %s: %s", name, strerror(errno));
	return fd;
}

/* Open an existing directory below parent, refusing symlinks. */
static int
open_dir(int parent, const char *name)
{
	return openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
}

/*
 * <base>/<domain>/<user> with tmp, new and cur; its fd, or -1. The usual
 * case, a Maildir that exists, costs three opens; with create, every level
 * is made (and made durable) as needed.
 */
static int
make_maildir(struct maildir_tx *tx, const char *base, const char *domain,
    const char *user, int create)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	int	 basefd, domfd, ufd, fd;
	size_t	 i;

	if ((basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		tx_fail(tx, 1, "mailbox base %s: %s", base, strerror(errno));
		return -1;
	}
	if (!create) {
		ufd = -1;
		if ((domfd = open_dir(basefd, domain)) != -1) {
			ufd = open_dir(domfd, user);
			close(domfd);
		}
		close(basefd);
		return ufd;	/* -1: the caller retries with create */
	}
	domfd = mkdir_open(tx, basefd, domain, 0755);
	close(basefd);
	if (domfd == -1)
		return -1;
	ufd = mkdir_open(tx, domfd, user, 0700);
	close(domfd);
	if (ufd == -1)
		return -1;
	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		if ((fd = mkdir_open(tx, ufd, sub[i], 0700)) == -1) {
			close(ufd);
			return -1;
		}
		close(fd);
	}
	return ufd;
}

int
maildir_open(struct maildir_tx *tx, const char *base, const char *domain,
    const char *user, const char *host)
{
	char	 path[MAILDIR_PATH_MAX];
	int	 i, created = 0;

	memset(tx, 0, sizeof(*tx));
	tx->fd = tx->dirfd = -1;
	if (!maildir_safe_component(domain) || !maildir_safe_component(user)) {
		tx_fail(tx, 0, "invalid mailbox name");
		return -1;
	}
	if ((tx->dirfd = make_maildir(tx, base, domain, user, 0)) == -1 &&
	    (tx->dirfd = make_maildir(tx, base, domain, user, 1)) == -1)
		return -1;
	for (i = 0; i < MAILDIR_OPEN_TRIES; i++) {
		if (maildir_unique(tx->name,
		    sizeof(tx->name) - MAILDIR_SIZE_ROOM, host) == -1) {
			tx_fail(tx, 1, "host name too long for a Maildir name");
			break;
		}
		snprintf(path, sizeof(path), "tmp/%s", tx->name);
		tx->fd = openat(tx->dirfd, path, O_CREAT | O_EXCL | O_WRONLY |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
		if (tx->fd != -1)
			return 0;
		if (errno == ENOENT && !created) {
			/* tmp/ is missing: make the whole Maildir, once */
			created = 1;
			close(tx->dirfd);
			if ((tx->dirfd = make_maildir(tx, base, domain, user,
			    1)) == -1)
				return -1;
			continue;
		}
		if (errno != EEXIST) {
			tx_syserr(tx, "create tmp file");
			break;
		}
	}
	tx_fail(tx, 1, "create tmp file: no unique name");
	tx->name[0] = '\0';	/* not ours: abort must not unlink it */
	maildir_abort(tx);
	return -1;
}

void
maildir_write(struct maildir_tx *tx, const void *p, size_t n)
{
	const char	*c = p;
	ssize_t		 w;

	if (tx->failed)
		return;
	while (n > 0) {
		if ((w = write(tx->fd, c, n)) == -1) {
			if (errno == EINTR)
				continue;
			tx_syserr(tx, "write");
			return;
		}
		c += w;
		n -= (size_t)w;
		tx->size += (size_t)w;
	}
}

void
maildir_copy_fd(struct maildir_tx *tx, int fd)
{
	char	*b;
	off_t	 off = 0;
	ssize_t	 r;

	if (tx->failed)
		return;
	if ((b = malloc(MAILDIR_COPY_BUF)) == NULL) {
		tx_syserr(tx, "copy");
		return;
	}
	/* pread: the descriptor is shared, its offset is not ours to move */
	while (!tx->failed) {
		if ((r = pread(fd, b, MAILDIR_COPY_BUF, off)) == -1) {
			if (errno == EINTR)
				continue;
			tx_syserr(tx, "read message");
			break;
		}
		if (r == 0)
			break;
		maildir_write(tx, b, (size_t)r);
		off += r;
	}
	free(b);
}

void
maildir_abort(struct maildir_tx *tx)
{
	char	 path[MAILDIR_PATH_MAX];

	if (tx->fd != -1) {
		close(tx->fd);
		tx->fd = -1;
	}
	if (tx->dirfd != -1) {
		if (tx->name[0] != '\0') {
			snprintf(path, sizeof(path), "tmp/%s", tx->name);
			(void)unlinkat(tx->dirfd, path, 0);
		}
		close(tx->dirfd);
		tx->dirfd = -1;
	}
	tx->name[0] = '\0';
}

/* Finish writing: fsync (unless the caller syncs a batch) and close. */
int
maildir_close(struct maildir_tx *tx, int sync)
{
	int	 fd;

	if (tx->failed || tx->fd == -1 || tx->dirfd == -1) {
		tx_fail(tx, 1, "commit without an open delivery");
		goto fail;
	}
	if (sync && fsync(tx->fd) == -1) {
		tx_syserr(tx, "fsync");
		goto fail;
	}
	fd = tx->fd;
	tx->fd = -1;
	if (close(fd) == -1) {
		tx_syserr(tx, "close");
		goto fail;
	}
	return 0;
 fail:
	maildir_abort(tx);
	return -1;
}

/*
 * Rename a closed delivery into new/; with sync, fsync new/ too (without:
 * the caller syncs the filesystem for the whole batch afterwards).
 */
int
maildir_publish(struct maildir_tx *tx, int sync)
{
	char	 from[MAILDIR_PATH_MAX], to[MAILDIR_PATH_MAX];

	if (tx->fd != -1 || tx->dirfd == -1 || tx->name[0] == '\0') {
		tx_fail(tx, 1, "publish without a closed delivery");
		goto fail;
	}
	snprintf(from, sizeof(from), "tmp/%s", tx->name);
	snprintf(to, sizeof(to), "new/%s,S=%zu", tx->name, tx->size);
	if (renameat(tx->dirfd, from, tx->dirfd, to) == -1) {
		tx_syserr(tx, "rename into new");
		goto fail;
	}
	snprintf(tx->published, sizeof(tx->published), "%s", to);
	if (sync && fsync_dir(tx->dirfd, "new") == -1) {
		tx_syserr(tx, "fsync new");
		(void)unlinkat(tx->dirfd, to, 0);
		goto fail;
	}
	tx->name[0] = '\0';
	if (sync)
		maildir_abort(tx);	/* closes dirfd; nothing left to unlink */
	return 0;
 fail:
	maildir_abort(tx);
	return -1;
}

/*
 * Make the file durable, then name it in new/ and make the name durable.
 * Once renamed, a failure to fsync new/ also removes the new/ entry: the
 * caller will retry, and one copy is better than two (a crash may still
 * leave one: that is duplicate window 1 of P2).
 */
/* fsync the new/ of a published (not yet closed) delivery. */
int
maildir_sync_new(struct maildir_tx *tx)
{
	if (tx->dirfd == -1 || fsync_dir(tx->dirfd, "new") == -1) {
		tx_syserr(tx, "fsync new");
		return -1;
	}
	return 0;
}

/* The batch sync after publish failed: take the message out of new/. */
void
maildir_unpublish(struct maildir_tx *tx)
{
	if (tx->dirfd != -1 && tx->published[0] != '\0')
		(void)unlinkat(tx->dirfd, tx->published, 0);
	tx->published[0] = '\0';
	maildir_abort(tx);
}

int
maildir_commit(struct maildir_tx *tx)
{
	if (maildir_close(tx, 1) == -1)
		return -1;
	return maildir_publish(tx, 1);
}

/*
 * Length of the header section of p[0..n): up to the first empty line
 * (LF or CRLF). *done says whether that empty line was seen.
 */
static size_t
header_len(const char *p, size_t n, int *done)
{
	const char	*nl;
	size_t		 pos = 0;

	*done = 0;
	while (pos < n) {
		if (p[pos] == '\n' ||
		    (p[pos] == '\r' && pos + 1 < n && p[pos + 1] == '\n')) {
			*done = 1;
			return pos;
		}
		if ((nl = memchr(p + pos, '\n', n - pos)) == NULL)
			break;
		pos = (size_t)(nl - p) + 1;
	}
	return pos;
}

/* Read the header section from offset 0 into *bp (NUL-terminated). */
static int
read_header(int fd, char **bp, size_t *lenp, int *eof)
{
	char	*b = NULL, *nb;
	size_t	 len = 0, cap = 0;
	ssize_t	 r;
	int	 done = 0;

	*eof = 0;
	while (!done && len < MAILDIR_HDR_MAX) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16 * 1024;
			if ((nb = realloc(b, cap + 1)) == NULL) {
				free(b);
				return -1;
			}
			b = nb;
		}
		if ((r = pread(fd, b + len, cap - len, (off_t)len)) == -1) {
			if (errno == EINTR)
				continue;
			free(b);
			return -1;
		}
		if (r == 0) {
			*eof = 1;
			break;
		}
		len += (size_t)r;
		(void)header_len(b, len, &done);
	}
	if (b == NULL)
		return -1;
	b[len] = '\0';
	*bp = b;
	*lenp = len;
	return 0;
}

/* Does one unfolded Delivered-To value name addr? */
static int
value_matches(const char *v, size_t n, const char *addr)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v++;
		n -= 2;
	}
	return n == strlen(addr) && strncasecmp(v, addr, n) == 0;
}

/* Append one physical line b[pos..end) minus a CR to val; -1 if too long. */
static int
add_segment(char *val, size_t vsize, size_t *vl, const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n >= vsize - *vl)
		return -1;
	memcpy(val + *vl, s, n);
	*vl += n;
	return 0;
}

/* End of the physical line starting at pos within b[0..n). */
static size_t
line_end(const char *b, size_t n, size_t pos)
{
	const char	*nl = memchr(b + pos, '\n', n - pos);

	return nl ? (size_t)(nl - b) : n;
}

/*
 * Look at the header lines of b[0..n) for "Delivered-To:" naming addr,
 * unfolding continuation lines.
 */
static int
scan_delivered_to(const char *b, size_t n, const char *addr)
{
	static const char	 name[] = "Delivered-To:";
	const size_t		 nlen = sizeof(name) - 1;
	char			 val[1024];
	size_t			 pos = 0, end, vl;
	int			 bad;

	while (pos < n) {
		end = line_end(b, n, pos);
		if (end - pos < nlen || strncasecmp(b + pos, name, nlen) != 0) {
			pos = end + 1;
			continue;
		}
		vl = 0;
		bad = add_segment(val, sizeof(val), &vl, b + pos + nlen,
		    end - pos - nlen);
		for (pos = end + 1; pos < n && (b[pos] == ' ' || b[pos] == '\t');
		    pos = end + 1) {
			end = line_end(b, n, pos);
			if (add_segment(val, sizeof(val), &vl, b + pos,
			    end - pos) == -1)
				bad = -1;
		}
		if (bad == 0 && value_matches(val, vl, addr))
			return 1;
	}
	return 0;
}

int
maildir_read_header(int fd, char **hdr, size_t *hlen)
{
	char	*b;
	size_t	 len;
	int	 done, eof;

	if (read_header(fd, &b, &len, &eof) == -1)
		return -1;
	*hlen = header_len(b, len, &done);
	/* a last line without LF counts only if the file ends there */
	if (!done && eof)
		*hlen = len;
	*hdr = b;
	return 0;
}

int
maildir_header_delivered_to(const char *hdr, size_t hlen, const char *addr)
{
	return scan_delivered_to(hdr, hlen, addr);
}

int
maildir_delivered_to(int fd, const char *addr)
{
	char	*b;
	size_t	 hlen;
	int	 r;

	if (maildir_read_header(fd, &b, &hlen) == -1)
		return -1;
	r = scan_delivered_to(b, hlen, addr);
	free(b);
	return r;
}
