/*
 * maildir - deliver one message into a Maildir (http://cr.yp.to/proto/maildir.html).
 *
 * The Maildir of user@domain is <base>/<domain>/<user>/{tmp,new,cur},
 * created on first delivery. A delivery writes tmp/<unique>, fsyncs it,
 * renames it into new/ and fsyncs new/ (P1 for local delivery). Unique names
 * are "<sec>.M<usec>P<pid>Q<counter>.<host>,S=<size>" with '/' and ':' in the
 * host replaced.
 */
#ifndef SLUICE_MAILDIR_H
#define SLUICE_MAILDIR_H

#include <limits.h>
#include <stddef.h>

struct maildir_tx {
	int	 fd;
	int	 dirfd;		/* the Maildir itself */
	char	 name[256];	/* unique name under tmp/ */
	size_t	 size;
	int	 failed;	/* sticky: an error happened */
	int	 temp;		/* that error is temporary */
	char	 error[256];
	char	 published[300];	/* new/<name> once renamed */
};

/* Is a local part / domain usable as a path component? (no '/', no "..") */
int	maildir_safe_component(const char *s);
/* Build a unique file name into dst (hostname sanitised). */
int	maildir_unique(char *dst, size_t dstlen, const char *host);
/*
 * Start a delivery: create the Maildir if needed and open tmp/<unique>.
 * Returns 0, or -1 with tx->error / tx->temp set.
 */
int	maildir_open(struct maildir_tx *, const char *base, const char *domain,
	    const char *user, const char *host);
/* append bytes; errors are sticky (checked at commit) */
void	maildir_write(struct maildir_tx *, const void *, size_t);
/* copy the rest of fd (from its offset 0) into the message */
void	maildir_copy_fd(struct maildir_tx *, int fd);
/* fsync, rename into new/, fsync new/. 0 ok, -1 with error/temp set. */
int	maildir_commit(struct maildir_tx *);
/*
 * The same in two steps for group commit: close (fsync only with sync),
 * then, after the caller synced the filesystem, publish (rename into new/;
 * fsync new/ only with sync). Without sync, the tx keeps its dirfd after
 * publish: the caller syncs again, then calls maildir_abort() to close it
 * (or maildir_unpublish() to take the message back if that sync failed).
 */
int	maildir_close(struct maildir_tx *, int sync);
int	maildir_publish(struct maildir_tx *, int sync);
void	maildir_unpublish(struct maildir_tx *);
/* fsync new/ of a delivery published without sync; -1 with error set */
int	maildir_sync_new(struct maildir_tx *);
/* discard a delivery in progress (unlinks the tmp file) */
void	maildir_abort(struct maildir_tx *);
/*
 * Loop check: does the header section of fd (read from offset 0) hold a
 * "Delivered-To:" naming addr (case-insensitive)? 1 yes, 0 no, -1 error.
 */
int	maildir_delivered_to(int fd, const char *addr);
/* the same in two steps, to check several addresses with one read */
int	maildir_read_header(int fd, char **hdr, size_t *hlen);	/* free() */
int	maildir_header_delivered_to(const char *hdr, size_t hlen,
	    const char *addr);

#endif
