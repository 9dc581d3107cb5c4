/*
 * spool - the spool directories and the atomic steps on them.
 * docs/queue.md is the table of states; this is the code for its arrows.
 *
 * Every step that makes a state durable is: write to tmp/, fsync (or one
 * syncfs for a batch), rename into the target directory, fsync that
 * directory. A file that does not parse goes to corrupt/ (P9).
 */
#ifndef SLUICE_SPOOL_H
#define SLUICE_SPOOL_H

#include <sys/types.h>

#include "envelope.h"

struct spool {
	int	 root;
	int	 tmp;
	int	 data;
	int	 incoming;
	int	 outgoing;
	int	 corrupt;
	int	 maildrop;
	int	 public;
	int	 empty;	/* chroot of the smtp process */
};

/* create (when create != 0) and open the spool; -1 with err */
int	spool_open(struct spool *, const char *path, int create, uid_t, gid_t,
	    char *err, size_t errlen);
void	spool_close(struct spool *);
/* P1: can this filesystem fsync a directory? -1 with err if not */
int	spool_check_fsync(const struct spool *, char *err, size_t errlen);
/* write env into tmp/<id>.env; fsync it when sync != 0. -1 sets errno */
int	spool_env_write_tmp(const struct spool *, const struct envelope *,
	    int sync);
/* rename tmp/<id>.env to <dir>/<id> */
int	spool_env_install(const struct spool *, const char *id, int dirfd);
/* both of the above and an fsync of dirfd: one durable state change */
int	spool_env_store(const struct spool *, const struct envelope *,
	    int dirfd);
/* read and parse <dir>/<id>; -1 with err (parse errors: *corrupt = 1) */
int	spool_env_load(const struct spool *, int dirfd, const char *id,
	    struct envelope *, int *corrupt, char *err, size_t errlen);
/* move <dir>/<id> and data/<id> into corrupt/ and log why */
void	spool_quarantine(const struct spool *, int dirfd, const char *id,
	    const char *why);
/* flush everything written on the spool's filesystem (group commit) */
int	spool_sync(const struct spool *);

#endif
