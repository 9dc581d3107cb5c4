/*
 * robot_env - the environment and input prefix of a robot run, shared by
 * the pipe process and `sluice robot test` so the dry run is exactly what
 * delivery does (docs/robots.md).
 */
#ifndef SLUICE_ROBOT_ENV_H
#define SLUICE_ROBOT_ENV_H

#include <pwd.h>
#include <stddef.h>

#include "buf.h"

#define ROBOT_ENV_MAX	16
#define ROBOT_VAR_MAX	1100

struct robot_env {
	char		 buf[ROBOT_ENV_MAX][ROBOT_VAR_MAX];
	const char	*env[ROBOT_ENV_MAX + 1];	/* NULL-terminated */
};

/* who runs a target written by owner: owner, or robot_user for root or
   an unknown uid; never root. Not started as root: ourselves. -1 if
   robot_user is unknown or root. */
int	robot_user(unsigned owner, const char *robot_user, uid_t *, gid_t *,
	    struct passwd **);
/* a key the same on every delivery of this message to this target */
void	robot_delivery_id(const char *qid, const char *rcpt,
	    const char *target, char *out, size_t outlen);
void	robot_env_build(struct robot_env *, const char *qid,
	    const char *sender, const char *rcpt, const char *orig,
	    const char *ext, const char *target, const struct passwd *);
/* "Return-Path: <sender>\nDelivered-To: rcpt\n" then hdrs; -1 no memory */
int	robot_prefix(struct buf *, const char *sender, const char *rcpt,
	    const char *hdrs, size_t hdrslen);

#endif
