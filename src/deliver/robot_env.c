/*
 * robot_env - a robot's environment, built from scratch (robot_env.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "robot_env.h"

int
robot_user(unsigned owner, const char *robot_user, uid_t *uid, gid_t *gid,
    struct passwd **pwp)
{
	struct passwd	*pw = NULL;

	if (geteuid() != 0) {
		*uid = geteuid();
		*gid = getegid();
		*pwp = getpwuid(*uid);
		return 0;
	}
	if (owner != 0)
		pw = getpwuid((uid_t)owner);
	if (pw == NULL || pw->pw_uid == 0)
		pw = getpwnam(robot_user);
	if (pw == NULL || pw->pw_uid == 0)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	*pwp = pw;
	return 0;
}

void
robot_delivery_id(const char *qid, const char *rcpt, const char *target,
    char *out, size_t outlen)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	EVP_MD_CTX	*ctx;

	if (outlen > 0)
		out[0] = '\0';
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, qid, strlen(qid) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, rcpt, strlen(rcpt) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, target, strlen(target)) == 1)
		EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (size_t i = 0; i < mdlen && i < 16 && 2 * i + 2 < outlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void
robot_env_build(struct robot_env *e, const char *qid, const char *sender,
    const char *rcpt, const char *orig, const char *ext, const char *target,
    const struct passwd *pw)
{
	const char	*at = strrchr(rcpt, '@');
	char		 did[40];
	size_t		 n = 0;

	robot_delivery_id(qid, rcpt, target, did, sizeof(did));
#define ENV(...) do {							\
	snprintf(e->buf[n], sizeof(e->buf[n]), __VA_ARGS__);		\
	e->env[n] = e->buf[n];						\
	n++;								\
} while (0)
	ENV("PATH=/usr/local/bin:/usr/bin:/bin");
	ENV("SENDER=%s", sender);
	ENV("RECIPIENT=%s", rcpt);
	ENV("LOCAL=%.*s", at ? (int)(at - rcpt) : (int)strlen(rcpt), rcpt);
	ENV("DOMAIN=%s", at ? at + 1 : "");
	ENV("EXTENSION=%s", ext);
	ENV("ORIGINAL_RECIPIENT=%s", orig);
	ENV("QUEUE_ID=%s", qid);
	ENV("DELIVERY_ID=%s", did);
	ENV("HOME=%s", pw && pw->pw_dir ? pw->pw_dir : "/");
	ENV("USER=%s", pw && pw->pw_name ? pw->pw_name : "");
	ENV("LOGNAME=%s", pw && pw->pw_name ? pw->pw_name : "");
#undef ENV
	e->env[n] = NULL;
}

int
robot_prefix(struct buf *b, const char *sender, const char *rcpt,
    const char *hdrs, size_t hdrslen)
{
	buf_addf(b, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);
	buf_add(b, hdrs, hdrslen);
	return b->err ? -1 : 0;
}
