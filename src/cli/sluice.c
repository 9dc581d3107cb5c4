/*
 * sluice - the administration command: main, option parsing, dispatch and
 * the helpers the subcommands share (cli.h).
 *
 *	sluice [-c FILE] [-v] COMMAND [ARGS...]
 *
 * Also answers to argv[0] `sendmail`, `mailq` and `newaliases`. The config
 * is -c FILE, else $SLUICE_CONFIG, else /etc/sluice/sluice.conf; it is
 * loaded by the command that needs it, so `--help` works without one.
 * Exit statuses are from <sysexits.h>.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "proc.h"
#include "sluice_version.h"

static const char usage_main[] =
    "usage: sluice [-c FILE] [-v] COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
    "  check [--dump]                 validate the configuration\n"
    "  domain add|del|list            manage local domains\n"
    "  account add|del|passwd|list    manage mail accounts\n"
    "  queue [list|show|flush|hold|release|delete]  inspect and control the queue\n"
    "  sendmail [OPTIONS] [RCPT...]   submit a message read from stdin\n"
    "  alias add|del|list             aliases in the database\n"
    "  db migrate                     create or update the database schema\n"
    "  robot test ADDRESS < MESSAGE   dry run of delivery to a robot\n"
    "  dovecot-config [OPTIONS]       a Dovecot configuration for IMAP\n"
    "  mask service|list|pairs|stats  the masked relay\n"
    "  inject --from A --to B [...]   compose and send a MIME message\n"
    "  dissect [OPTIONS] [FILE]       a message's MIME tree, its attachments\n"
    "  dkim keygen DOMAIN [OPTIONS]   a DKIM signing key and its DNS record\n"
    "\n"
    "options:\n"
    "  -c FILE    configuration file (default $SLUICE_CONFIG, then "
    CONFIG_DEFAULT_PATH ")\n"
    "  -v         verbose\n"
    "  --version  print the version\n"
    "\n"
    "`sluice COMMAND --help` describes a command.\n";

static const struct cli_cmd cli_cmds[] = {
	{ "check",	cmd_check },
	{ "domain",	cmd_domain },
	{ "account",	cmd_account },
	{ "queue",	cmd_queue },
	{ "sendmail",	cmd_sendmail },
	{ "robot",	cmd_robot },
	{ "alias",	cmd_alias },
	{ "db",		cmd_db },
	{ "dovecot-config", cmd_dovecot },
	{ "mask",	cmd_mask },
	{ "inject",	cmd_inject },
	{ "dissect",	cmd_dissect },
	{ "dkim",	cmd_dkim },
};

int
cli_confirm(const char *question, const char *what)
{
	char	 prompt[512], ans[16];
	ssize_t	 r;
	int	 fd;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1) {
		cli_err("no terminal to confirm the deletion of %s: pass --yes",
		    what);
		return EX_USAGE;
	}
	snprintf(prompt, sizeof(prompt), "%s [y/N] ", question);
	(void)!write(fd, prompt, strlen(prompt));
	r = read(fd, ans, sizeof(ans) - 1);
	close(fd);
	ans[r > 0 ? r : 0] = '\0';
	if (ans[0] == 'y' || ans[0] == 'Y')
		return 0;
	cli_err("%s not deleted", what);
	return EXIT_FAILURE;
}

void
cli_err(const char *fmt, ...)
{
	va_list	 ap;

	fputs("sluice: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_usage(const char *usage, int help)
{
	fputs(usage, help ? stdout : stderr);
	return help ? EX_OK : EX_USAGE;
}

int
cli_wants_help(int argc, char **argv)
{
	int	 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

int
cli_config(struct cli *cli)
{
	char	 err[1024];

	if (cli->loaded)
		return 0;
	cli->cfgpath = config_path(cli->cfgopt);
	if (config_load(&cli->cfg, cli->cfgpath, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	cli->loaded = 1;
	return 0;
}

struct table *
cli_table(struct cli *cli)
{
	struct table	*t;
	char		 err[1024];

	/*
	 * The database and the mailboxes belong to the unprivileged user the
	 * daemon runs as: run as root, the admin commands become that user
	 * so that what they create stays readable and writable by sluiced.
	 */
	if (privsep_drop(cli->cfg.user, NULL) == -1) {
		cli_err("cannot become user %s (see `user` in %s)",
		    cli->cfg.user, cli->cfgpath);
		return NULL;
	}
	if ((t = table_open(cli->cfg.database, err, sizeof(err))) == NULL) {
		cli_err("database: %s", err);
		return NULL;
	}
	if (table_init_schema(t, err, sizeof(err)) == -1) {
		cli_err("database: %s", err);
		table_close(t);
		return NULL;
	}
	return t;
}

int
cli_hostname_valid(const char *s)
{
	size_t	 n = strlen(s), label = 0, i;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && !(c == '-' && label > 0))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

void
cli_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

void
cli_json_str(FILE *fp, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;

	fputc('"', fp);
	for (; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(fp, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\u%04x", *p);
		else
			fputc(*p, fp);
	}
	fputc('"', fp);
}

void
cli_time_str(long long t, char *dst, size_t dstlen)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(dst, dstlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(dst, dstlen, "%lld", t);
}

/* the command named by argv[0]'s basename, if it is one of ours */
static int
sluice_alias(struct cli *cli, int argc, char **argv, int *status)
{
	const char	*base = strrchr(argv[0], '/');

	base = base ? base + 1 : argv[0];
	if (strcmp(base, "sendmail") == 0) {
		*status = cmd_sendmail(cli, argc, argv);
		return 1;
	}
	if (strcmp(base, "mailq") == 0) {
		*status = cmd_queue(cli, argc, argv);	/* mailq [--json] */
		return 1;
	}
	if (strcmp(base, "newaliases") == 0) {
		printf("newaliases: nothing to do (sluice reads aliases "
		    "itself)\n");
		*status = EX_OK;
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli	 cli;
	size_t		 i;
	int		 status, k;

	memset(&cli, 0, sizeof(cli));
	if (argc < 1)
		return EX_USAGE;
	if (sluice_alias(&cli, argc, argv, &status))
		return status;
	for (k = 1; k < argc && argv[k][0] == '-'; k++) {
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0)
			return cli_usage(usage_main, 1);
		if (strcmp(argv[k], "--version") == 0) {
			printf("sluice %s\n", SLUICE_VERSION);
			return EX_OK;
		}
		if (strcmp(argv[k], "-v") == 0)
			cli.verbose++;
		else if (strcmp(argv[k], "-c") == 0 && k + 1 < argc)
			cli.cfgopt = argv[++k];
		else if (strncmp(argv[k], "-c", 2) == 0 && argv[k][2] != '\0')
			cli.cfgopt = argv[k] + 2;
		else {
			cli_err(strcmp(argv[k], "-c") == 0 ? "option %s needs a "
			    "FILE" : "unknown option %s", argv[k]);
			return cli_usage(usage_main, 0);
		}
	}
	if (k == argc)
		return cli_usage(usage_main, 0);
	for (i = 0; i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++)
		if (strcmp(argv[k], cli_cmds[i].name) == 0)
			return cli_cmds[i].run(&cli, argc - k, argv + k);
	cli_err("unknown command \"%s\"", argv[k]);
	return cli_usage(usage_main, 0);
}

static int
cli_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **
cli_dir_names(int dfd, int skip_hidden, size_t max, size_t *n)
{
	struct dirent	*e;
	char		**v = NULL, **nv;
	size_t		 cap = 0;
	DIR		*d;
	int		 fd, saved;

	*n = 0;
	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return NULL;
	}
	rewinddir(d);	/* a dup shares the offset of an earlier reader */
	while (*n < max && (e = readdir(d)) != NULL) {
		if (skip_hidden ? e->d_name[0] == '.' :
		    strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL)
				goto fail;
			v = nv;
		}
		if ((v[*n] = strdup(e->d_name)) == NULL)
			goto fail;
		(*n)++;
	}
	closedir(d);
	if (*n == 0) {
		free(v);
		return calloc(1, sizeof(*v));	/* empty, not an error */
	}
	qsort(v, *n, sizeof(*v), cli_name_cmp);
	return v;
fail:
	saved = errno;
	closedir(d);
	cli_names_free(v, *n);
	*n = 0;
	errno = saved;
	return NULL;
}

void
cli_names_free(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}
