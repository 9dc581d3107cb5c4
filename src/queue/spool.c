/*
 * spool - spool directories and their atomic state changes. See spool.h.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "spool.h"

static const struct {
	const char	*name;
	size_t		 off;
	mode_t		 mode;
} spool_dirs[] = {
	{ "tmp", offsetof(struct spool, tmp), 0700 },
	{ "data", offsetof(struct spool, data), 0700 },
	{ "incoming", offsetof(struct spool, incoming), 0700 },
	{ "outgoing", offsetof(struct spool, outgoing), 0700 },
	{ "corrupt", offsetof(struct spool, corrupt), 0700 },
	{ "maildrop", offsetof(struct spool, maildrop), 01733 },
	{ "public", offsetof(struct spool, public), 0755 },
	{ "empty", offsetof(struct spool, empty), 0555 },
};
#define NDIRS	(sizeof(spool_dirs) / sizeof(spool_dirs[0]))

int
spool_open(struct spool *sp, const char *path, int create, uid_t uid,
    gid_t gid, char *err, size_t errlen)
{
	size_t	 i;
	int	*fdp;

	memset(sp, -1, sizeof(*sp));
	if (create && mkdir(path, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	if ((sp->root = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < NDIRS; i++) {
		fdp = (int *)(void *)((char *)sp + spool_dirs[i].off);
		if (create) {
			if (mkdirat(sp->root, spool_dirs[i].name,
			    spool_dirs[i].mode) == 0) {
				fchmodat(sp->root, spool_dirs[i].name,
				    spool_dirs[i].mode, 0);
				/* empty/ is the smtp chroot: root's */
				if (geteuid() == 0 && *spool_dirs[i].name != 'e' &&
				    fchownat(sp->root,
				    spool_dirs[i].name, uid, gid, 0) == -1)
					log_warn("chown %s", spool_dirs[i].name);
			} else if (errno != EEXIST) {
				snprintf(err, errlen, "mkdir %s/%s: %s", path,
				    spool_dirs[i].name, strerror(errno));
				spool_close(sp);
				return -1;
			}
		}
		*fdp = openat(sp->root, spool_dirs[i].name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*fdp == -1) {
			snprintf(err, errlen, "%s/%s: %s", path,
			    spool_dirs[i].name, strerror(errno));
			spool_close(sp);
			return -1;
		}
	}
	if (create && geteuid() == 0 && fchown(sp->root, uid, gid) == -1)
		log_warn("chown %s", path);
	return 0;
}

void
spool_close(struct spool *sp)
{
	int	*fds = (int *)sp;

	for (size_t i = 0; i < sizeof(*sp) / sizeof(int); i++)
		if (fds[i] != -1) {
			close(fds[i]);
			fds[i] = -1;
		}
}

int
spool_check_fsync(const struct spool *sp, char *err, size_t errlen)
{
	if (fsync(sp->incoming) == -1) {
		snprintf(err, errlen, "the spool's filesystem cannot fsync a "
		    "directory (%s): refusing to run, acknowledged mail could "
		    "be lost", strerror(errno));
		return -1;
	}
	return 0;
}

int
spool_sync(const struct spool *sp)
{
	if (syncfs(sp->root) == 0)
		return 0;
	return -1;
}

int
spool_env_write_tmp(const struct spool *sp, const struct envelope *env,
    int sync)
{
	struct buf	 b;
	char		 name[QUEUE_ID_LEN + 8], err[256];
	int		 fd, r = -1, saved;

	buf_init(&b, 64 * 1024 * 1024);
	if (envelope_write(env, &b, err, sizeof(err)) == -1) {
		log_warnx("%s: cannot write envelope: %s", env->id, err);
		buf_free(&b);
		errno = EINVAL;
		return -1;
	}
	snprintf(name, sizeof(name), "%s.env", env->id);
	fd = openat(sp->tmp, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd != -1) {
		if (write_all(fd, b.data, b.len) == 0 &&
		    (!sync || fdatasync(fd) == 0))
			r = 0;
		saved = errno;
		close(fd);
		if (r == -1)
			unlinkat(sp->tmp, name, 0);
		errno = saved;
	}
	buf_free(&b);
	return r;
}

int
spool_env_install(const struct spool *sp, const char *id, int dirfd)
{
	char	 name[QUEUE_ID_LEN + 8];

	snprintf(name, sizeof(name), "%s.env", id);
	return renameat(sp->tmp, name, dirfd, id);
}

int
spool_env_store(const struct spool *sp, const struct envelope *env,
    int dirfd)
{
	if (spool_env_write_tmp(sp, env, 1) == -1 ||
	    spool_env_install(sp, env->id, dirfd) == -1 || fsync(dirfd) == -1)
		return -1;
	return 0;
}

int
spool_env_load(const struct spool *sp, int dirfd, const char *id,
    struct envelope *env, int *corrupt, char *err, size_t errlen)
{
	struct buf	 b;
	char		 chunk[8192];
	ssize_t		 n;
	int		 fd, r;

	(void)sp;
	*corrupt = 0;
	if ((fd = openat(dirfd, id, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	buf_init(&b, 64 * 1024 * 1024);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (n == -1 || b.err) {
		snprintf(err, errlen, "read: %s", n == -1 ? strerror(errno) :
		    "too large");
		*corrupt = b.err == BUF_ETOOBIG;
		buf_free(&b);
		return -1;
	}
	r = envelope_parse(env, b.data ? b.data : "", b.len, err, errlen);
	if (r == -1)
		*corrupt = 1;
	else if (strcmp(env->id, id) != 0) {
		snprintf(err, errlen, "id record %s does not match file name",
		    env->id);
		*corrupt = 1;
		r = -1;
	}
	buf_free(&b);
	return r;
}

void
spool_quarantine(const struct spool *sp, int dirfd, const char *id,
    const char *why)
{
	char	 name[QUEUE_ID_LEN + 8];

	snprintf(name, sizeof(name), "%s.env", id);
	if (renameat(dirfd, id, sp->corrupt, name) == -1 && errno != ENOENT)
		log_warn("%s: cannot move envelope to corrupt/", id);
	if (renameat(sp->data, id, sp->corrupt, id) == -1 && errno != ENOENT)
		log_warn("%s: cannot move data to corrupt/", id);
	fsync(sp->corrupt);
	log_warnx("%s: quarantined in corrupt/: %s", id, why);
}
