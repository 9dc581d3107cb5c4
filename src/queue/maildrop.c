/*
 * maildrop - import messages that `sluice sendmail` left in maildrop/ while
 * the daemon was not running. The file is removed only after its message
 * is committed to the queue (queue.c), so a crash imports it again.
 *
 * Format: "sluice-maildrop 1", "from ADDR", "rcpt ADDR"..., "uid N", "end",
 * each a line, then the message with LF line ends.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"

#define MAILDROP_HEAD_MAX	(1024 * 1024)

/* Parse the header lines; returns the offset of the message or -1. */
static long
maildrop_parse(FILE *fp, struct envelope *env, char *err, size_t errlen)
{
	char		 line[ADDR_STR_MAX + 16];
	size_t		 len;
	int		 first = 1, ended = 0;
	unsigned long	 uid;
	struct passwd	*pw;

	while (!ended && fgets(line, sizeof(line), fp) != NULL) {
		if ((len = strlen(line)) == 0 || line[len - 1] != '\n') {
			snprintf(err, errlen, "line too long");
			return -1;
		}
		line[--len] = '\0';
		if (first) {
			if (strcmp(line, "sluice-maildrop 1") != 0) {
				snprintf(err, errlen, "not a maildrop file");
				return -1;
			}
			first = 0;
		} else if (strncmp(line, "from ", 5) == 0)
			snprintf(env->from, sizeof(env->from), "%s", line + 5);
		else if (strncmp(line, "rcpt ", 5) == 0) {
			if (envelope_add_rcpt(env, line + 5, line + 5) == -1) {
				snprintf(err, errlen, "bad recipient");
				return -1;
			}
		} else if (strncmp(line, "uid ", 4) == 0) {
			uid = strtoul(line + 4, NULL, 10);
			pw = getpwuid((uid_t)uid);
			snprintf(env->client_addr, sizeof(env->client_addr),
			    "%s", pw ? pw->pw_name : line + 4);
		} else if (strcmp(line, "end") == 0)
			ended = 1;
		else {
			snprintf(err, errlen, "unknown record");
			return -1;
		}
		if (ftell(fp) > MAILDROP_HEAD_MAX) {
			snprintf(err, errlen, "header too long");
			return -1;
		}
	}
	if (!ended || env->nrcpts == 0) {
		snprintf(err, errlen, ended ? "no recipients" : "truncated");
		return -1;
	}
	return ftell(fp);
}

void
maildrop_import(const char *name)
{
	struct envelope	 env;
	char		 err[128], buf[65536];
	FILE		*fp = NULL;
	long		 off;
	int		 fd = -1, in;
	size_t		 n, size = 0;

	if (strncmp(name, "tmp.", 4) == 0)
		return;		/* sendmail is still writing it */
	envelope_init(&env);
	if ((in = openat(queue_spool.maildrop, name, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1 || (fp = fdopen(in, "r")) == NULL) {
		if (in != -1)
			close(in);
		log_warn("maildrop/%s", name);
		goto out;
	}
	if ((off = maildrop_parse(fp, &env, err, sizeof(err))) == -1) {
		log_warnx("maildrop/%s: %s: moved to corrupt/", name, err);
		renameat(queue_spool.maildrop, name, queue_spool.corrupt, name);
		goto out;
	}
	queue_id_new(env.id, sizeof(env.id));
	env.created = time(NULL);
	snprintf(env.proto, sizeof(env.proto), "LOCAL");
	snprintf(env.helo, sizeof(env.helo), "localhost");
	env.flags = ENV_F_LOCAL;
	fd = openat(queue_spool.data, env.id, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		goto werr;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
		if (write_all(fd, buf, n) == -1)
			goto werr;
		size += n;
	}
	if (ferror(fp))
		goto werr;
	env.size = size;
	log_info("%s: imported from maildrop/%s", env.id, name);
	queue_commit_internal(&env, fd, name, NULL);
	fd = -1;
	goto out;
werr:
	log_warn("%s: cannot import maildrop/%s (left for later)", env.id, name);
	if (fd != -1) {
		close(fd);
		unlinkat(queue_spool.data, env.id, 0);
	}
out:
	if (fp)
		fclose(fp);
	envelope_free(&env);
}
