/*
 * cmd_robot - `sluice robot test ADDRESS [--sender ADDR] < MESSAGE`: a dry
 * run of delivery to ADDRESS. The address is resolved as the lookup
 * process would (accounts, the aliases file, extensions, wildcards,
 * catch-all); every robot among its targets is run exactly as the pipe
 * process runs it (its user, its environment, the message on stdin with
 * Return-Path:/Delivered-To: first, the timeout); mailboxes, offsite
 * addresses and mbox files are only listed. Nothing is queued or written.
 *
 * Exit: 0 every robot delivered, 75 one deferred, 69 one failed for good,
 * 67 no such address, 65 an alias error (loop), 78 configuration.
 */
#include <sys/mman.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "addr.h"
#include "cli.h"
#include "envelope.h"
#include "pipe_run.h"
#include "resolve.h"
#include "robot_env.h"

static const char usage_robot[] =
    "usage: sluice [-c FILE] robot test ADDRESS [--sender ADDR] < MESSAGE\n"
    "\n"
    "Resolve ADDRESS as delivery would and run its robots on MESSAGE, as\n"
    "their user and with their environment; print each target and each\n"
    "robot's outcome. Nothing is queued, no mailbox or file is written.\n"
    "exit: 0 delivered, 75 deferred, 69 bounced, 67 no such address,\n"
    "      65 alias error, 78 configuration error, 64 usage\n";

struct run {
	struct event_base	*base;
	int			 pending;
	int			 worst;		/* exit status so far */
	const char		*target;
};

static void
robot_done(void *arg, const struct pipe_result *res)
{
	struct run	*r = arg;
	static const char *const names[] = { "delivered",
	    ("delivered (exit 99: stop)"), "deferred", "bounced" };
	int		 rc;

	printf("  outcome: %s, exit %d: %s\n", names[res->status],
	    res->exit_code, res->text);
	if (res->errlen > 0)
		printf("  stderr: %.*s%s", (int)res->errlen, res->err,
		    res->err[res->errlen - 1] == '\n' ? "" : "\n");
	rc = res->status == PIPE_TEMP ? EX_TEMPFAIL : res->status ==
	    PIPE_PERM ? EX_UNAVAILABLE : EX_OK;
	if (rc == EX_UNAVAILABLE || (rc == EX_TEMPFAIL && r->worst == EX_OK))
		r->worst = rc;
	if (--r->pending == 0)
		event_base_loopbreak(r->base);
}

/* The message from stdin into an anonymous file (robots read it there). */
static int
read_message(void)
{
	char	 buf[65536];
	ssize_t	 n;
	int	 fd;

	if ((fd = memfd_create("sluice-robot-test", MFD_CLOEXEC)) == -1)
		return -1;
	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (write_all(fd, buf, (size_t)n) == -1) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* Run one robot target the way the pipe process would; 0 if started. */
static int
run_robot(struct cli *cli, struct run *r, const struct xtarget *t,
    const char *rcpt, const char *orig, const char *sender, const char *qid,
    int fd)
{
	struct robot_env	 env;
	struct pipe_req		 req;
	struct passwd		*pw;
	struct buf		 pre;
	uid_t			 uid;
	gid_t			 gid;
	int			 rc;

	if (robot_user(t->owner, cli->cfg.robot_user, &uid, &gid, &pw) == -1) {
		cli_err("robot-user %s is unknown or root", cli->cfg.robot_user);
		return -1;
	}
	printf("  runs as %s (uid %u)\n", pw && pw->pw_name ? pw->pw_name :
	    "?", (unsigned)uid);
	robot_env_build(&env, qid, sender, rcpt, orig, t->ext, t->text, pw);
	buf_init(&pre, 4096);
	if (robot_prefix(&pre, sender, rcpt, "", 0) == -1) {
		buf_free(&pre);
		return -1;
	}
	memset(&req, 0, sizeof(req));
	req.command = t->text;
	req.uid = uid;
	req.gid = gid;
	req.env = env.env;
	req.fd = fd;
	req.prefix = pre.data;
	req.prefixlen = pre.len;
	req.sender = sender;
	req.timeout_ms = cli->cfg.robot_timeout * 1000;
	req.log_id = qid;
	rc = pipe_run(r->base, &req, robot_done, r);	/* it copies req */
	buf_free(&pre);
	if (rc == -1) {
		cli_err("cannot start the robot: %s", strerror(errno));
		return -1;
	}
	r->pending++;
	return 0;
}

static int
robot_test(struct cli *cli, const char *addr, const char *sender)
{
	struct resolver		 res;
	struct expand_src	 src;
	struct aliases		*al = NULL;
	struct xtarget		*t = NULL;
	struct run		 r;
	char			 err[1024], qid[QUEUE_ID_LEN + 1], name[512];
	size_t			 n = 0;
	int			 fd = -1, rc = EX_OK;

	if (cli->cfg.aliases[0] && (al = aliases_load(cli->cfg.aliases, err,
	    sizeof(err))) == NULL) {
		cli_err("%s", err);
		return EX_CONFIG;
	}
	memset(&r, 0, sizeof(r));
	r.worst = EX_OK;
	memset(&res, 0, sizeof(res));
	/*
	 * Not cli_table(): that becomes the daemon's user for good, and the
	 * robots must run as theirs. Only an existing database is opened
	 * (as root nothing may be created).
	 */
	if (strncmp(cli->cfg.database, "sqlite:", 7) == 0 &&
	    access(cli->cfg.database + 7, R_OK) == -1) {
		cli_err("database %s: %s", cli->cfg.database + 7,
		    strerror(errno));
		aliases_free(al);
		return EX_UNAVAILABLE;
	}
	if ((res.tbl = table_open(cli->cfg.database, err, sizeof(err))) ==
	    NULL) {
		cli_err("database: %s", err);
		aliases_free(al);
		return EX_UNAVAILABLE;
	}
	res.aliases = al;
	res.hostname = cli->cfg.hostname;
	res.db_commands = cli->cfg.alias_db_commands;
	resolver_srs(&res, &cli->cfg);
	resolver_src(&src, &res, cli->cfg.recipient_delimiter[0],
	    RESOLVE_TARGETS_MAX);
	switch (expand(&src, addr, &t, &n, err, sizeof(err))) {
	case EXPAND_OK:
		break;
	case EXPAND_REMOTE:
		printf("%s: not a local domain: relayed (no robot)\n", addr);
		goto out;
	case EXPAND_NOUSER:
		printf("%s: %s\n", addr, err);
		rc = EX_NOUSER;
		goto out;
	case EXPAND_TEMPFAIL:
		printf("%s: %s\n", addr, err);
		rc = EX_TEMPFAIL;
		goto out;
	default:
		printf("%s: %s\n", addr, err);
		rc = EX_DATAERR;
		goto out;
	}
	queue_id_new(qid, sizeof(qid));
	for (size_t i = 0; i < n; i++) {
		switch (t[i].kind) {
		case XT_MAILBOX:
			printf("%s -> mailbox %s%s%s (not written: dry run)\n",
			    addr, t[i].addr, t[i].ext[0] ? " EXTENSION=" : "",
			    t[i].ext);
			break;
		case XT_REMOTE:
			printf("%s -> offsite %s (not sent: dry run)\n", addr,
			    t[i].addr);
			break;
		case XT_FILE:
			printf("%s -> file %s (not written: dry run)\n", addr,
			    t[i].text);
			break;
		case XT_PIPE:
			printf("%s -> robot \"%s\"%s%s\n", addr, t[i].text,
			    t[i].ext[0] ? " EXTENSION=" : "", t[i].ext);
			if (fd == -1 && (fd = read_message()) == -1) {
				cli_err("cannot read the message: %s",
				    strerror(errno));
				rc = EX_IOERR;
				goto out;
			}
			if (r.base == NULL && (r.base = event_base_new()) ==
			    NULL) {
				rc = EX_OSERR;
				goto out;
			}
			/* the robot stands for its alias, as in delivery */
			resolver_rcpt_of(t[i].via, addr, name, sizeof(name));
			if (run_robot(cli, &r, &t[i], name, addr, sender, qid,
			    fd) == -1) {
				rc = EX_OSERR;
				goto out;
			}
			/* one at a time, in order, as delivery does */
			event_base_dispatch(r.base);
			break;
		}
	}
	rc = r.worst;
out:
	if (r.base)
		event_base_free(r.base);
	if (fd != -1)
		close(fd);
	free(t);
	resolver_free(&res);
	aliases_free(al);
	table_close(res.tbl);
	return rc;
}

int
cmd_robot(struct cli *cli, int argc, char **argv)
{
	const char	*addr = NULL, *sender = "";
	int		 rc;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_robot, 1);
	if (argc < 3 || strcmp(argv[1], "test") != 0)
		return cli_usage(usage_robot, 0);
	addr = argv[2];
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--sender") == 0 && i + 1 < argc)
			sender = argv[++i];
		else {
			cli_err("robot test: unexpected argument \"%s\"",
			    argv[i]);
			return cli_usage(usage_robot, 0);
		}
	}
	if ((rc = cli_config(cli)) != 0)
		return rc;
	return robot_test(cli, addr, sender);
}
