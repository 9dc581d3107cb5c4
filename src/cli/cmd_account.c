/*
 * cmd_account - `sluice account add|del|passwd|list`: mail accounts.
 *
 *	account add ADDR [--password-stdin]	row + Maildir <mailboxes>/<d>/<l>/
 *	account del ADDR [--yes]		row + Maildir (recursively)
 *	account passwd ADDR [--password-stdin]
 *	account list [DOMAIN] [--json]
 *
 * ADDR is local@domain with a dot-atom local part that is also safe as a
 * path component, in a local domain; both are stored lower-cased. Passwords
 * come from one line of stdin or the terminal (twice, echo off), are at
 * least ACCOUNT_PW_MIN characters, and are stored as yescrypt hashes
 * (libxcrypt), which Dovecot reads. The Maildir is removed with
 * openat/unlinkat and O_NOFOLLOW: a symlink inside is removed, never
 * followed. Exit: 0 ok; 64 usage or no terminal; 65 bad address or
 * password, duplicate; 67 unknown domain or account; 73 Maildir not
 * created; 74 Maildir not removed; 75 database trouble.
 */
#include <sys/stat.h>

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

#define ACCOUNT_PW_MIN		8
#define ACCOUNT_PW_MAX		1024
#define ACCOUNT_LOCAL_MAX	64
#define ACCOUNT_DOMAIN_MAX	253
#define ACCOUNT_RM_DEPTH	32

static const char usage_account[] =
    "usage: sluice [-c FILE] account add ADDR [--password-stdin]\n"
    "       sluice [-c FILE] account del ADDR [--yes]\n"
    "       sluice [-c FILE] account passwd ADDR [--password-stdin]\n"
    "       sluice [-c FILE] account list [DOMAIN] [--json]\n"
    "\n"
    "ADDR is local@domain in a local domain (see `sluice domain add`).\n"
    "The password is read twice from the terminal, or once from stdin\n"
    "with --password-stdin; at least 8 characters; stored as yescrypt.\n"
    "add creates the Maildir, del removes it with all its mail.\n"
    "exit: 0 ok, 64 usage, 65 invalid address or password or duplicate,\n"
    "      67 unknown domain or account, 73/74 Maildir not created/removed,\n"
    "      75 database unavailable\n";

struct account_opts {
	const char	*sub;
	char		*arg;
	int		 pwstdin;
	int		 yes;
	int		 json;
};

struct account_addr {
	char	 local[ACCOUNT_LOCAL_MAX + 1];
	char	 domain[ACCOUNT_DOMAIN_MAX + 1];
	char	 full[ACCOUNT_LOCAL_MAX + ACCOUNT_DOMAIN_MAX + 2];
};

/* RFC 5322 atext */
static int
account_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Split and check "local@domain": local a dot-atom and a safe path
 * component (not "", ".", "..", no '/', no leading '.'), domain a hostname.
 * XXX: addr_parse (addr.c) was a placeholder when this was written; this is
 * stricter than RFC 5321 anyway (no quoted locals for accounts).
 */
static int
account_parse(const char *s, struct account_addr *a)
{
	const char	*at = strrchr(s, '@');
	size_t		 ll, i;

	if (at == NULL || (ll = (size_t)(at - s)) == 0) {
		cli_err("\"%s\" is not an address of the form local@domain", s);
		return -1;
	}
	if (ll > ACCOUNT_LOCAL_MAX || strlen(at + 1) > ACCOUNT_DOMAIN_MAX) {
		cli_err("\"%s\": address too long", s);
		return -1;
	}
	memcpy(a->local, s, ll);
	a->local[ll] = '\0';
	for (i = 0; i < ll; i++)
		if (!account_atext((unsigned char)s[i]) && s[i] != '.')
			break;
	if (i < ll || s[0] == '.' || s[ll - 1] == '.' ||
	    strstr(a->local, "..") != NULL || strchr(a->local, '/') != NULL) {
		cli_err("\"%s\": the local part must be letters, digits and "
		    "!#$%%&'*+-=?^_`{|}~ separated by single dots, not "
		    "starting with a dot, without '/'", s);
		return -1;
	}
	memcpy(a->domain, at + 1, strlen(at + 1) + 1);
	cli_lower(a->local);
	cli_lower(a->domain);
	if (!cli_hostname_valid(a->domain)) {
		cli_err("\"%s\": \"%s\" is not a valid domain name", s,
		    a->domain);
		return -1;
	}
	snprintf(a->full, sizeof(a->full), "%s@%s", a->local, a->domain);
	return 0;
}

/* Is the domain local? 0 yes, else the exit status after a message. */
static int
account_domain_check(struct table *t, const char *domain)
{
	switch (table_domain_local(t, domain)) {
	case TABLE_FOUND:
		return 0;
	case TABLE_NOTFOUND:
		cli_err("%s is not a local domain: add it with `sluice domain "
		    "add %s`", domain, domain);
		return EX_NOUSER;
	case TABLE_TEMPFAIL:
		break;
	}
	cli_err("%s: database lookup failed", domain);
	return EX_TEMPFAIL;
}

/* Read one line into buf without echo on the terminal fd. */
static int
account_tty_line(int fd, const char *prompt, char *buf, size_t len)
{
	struct termios	 old, noecho;
	size_t		 n = 0;
	ssize_t		 r;
	char		 c;
	int		 ok = 0;

	if (tcgetattr(fd, &old) == -1)
		return -1;
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	noecho.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &noecho) == -1)
		return -1;
	(void)!write(fd, prompt, strlen(prompt));
	while ((r = read(fd, &c, 1)) == 1 && c != '\n') {
		if (n + 1 < len)
			buf[n] = c;
		n++;
	}
	ok = r == 1 && n < len;
	buf[n < len ? n : len - 1] = '\0';
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	(void)!write(fd, "\n", 1);
	return ok ? 0 : -1;
}

/* The password from the terminal, asked twice; exit status or 0. */
static int
account_pw_tty(const char *who, char *pw, size_t len)
{
	char	 again[ACCOUNT_PW_MAX + 2], prompt[512];
	int	 fd, rc = 0;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1) {
		cli_err("no terminal to ask for the password: use "
		    "--password-stdin");
		return EX_USAGE;
	}
	snprintf(prompt, sizeof(prompt), "New password for %s: ", who);
	if (account_tty_line(fd, prompt, pw, len) == -1 ||
	    account_tty_line(fd, "Retype new password: ", again,
	    sizeof(again)) == -1) {
		cli_err("could not read the password from the terminal");
		rc = EX_DATAERR;
	} else if (strcmp(pw, again) != 0) {
		cli_err("the passwords do not match");
		rc = EX_DATAERR;
	}
	explicit_bzero(again, sizeof(again));
	close(fd);
	return rc;
}

/* One line of stdin, CR/LF stripped; exit status or 0. */
static int
account_pw_stdin(char *pw, size_t len)
{
	size_t	 n;

	if (fgets(pw, (int)len, stdin) == NULL) {
		pw[0] = '\0';
		return 0;	/* empty: refused by the caller */
	}
	n = strlen(pw);
	if (n == len - 1 && pw[n - 1] != '\n') {
		cli_err("password longer than %d characters", ACCOUNT_PW_MAX);
		return EX_DATAERR;
	}
	while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
		pw[--n] = '\0';
	return 0;
}

/* Read, check and hash a password into hash; exit status or 0. */
static int
account_password(const char *who, int pwstdin, char *hash, size_t hashlen)
{
	char	 pw[ACCOUNT_PW_MAX + 2], *setting = NULL, *h;
	void	*data = NULL;
	int	 size = 0, rc;

	rc = pwstdin ? account_pw_stdin(pw, sizeof(pw)) :
	    account_pw_tty(who, pw, sizeof(pw));
	if (rc == 0 && pw[0] == '\0') {
		cli_err("empty password refused");
		rc = EX_DATAERR;
	} else if (rc == 0 && strlen(pw) < ACCOUNT_PW_MIN) {
		cli_err("password too short: at least %d characters",
		    ACCOUNT_PW_MIN);
		rc = EX_DATAERR;
	}
	if (rc == 0) {
		if ((setting = crypt_gensalt_ra("$y$", 0, NULL, 0)) == NULL ||
		    (h = crypt_ra(pw, setting, &data, &size)) == NULL ||
		    strncmp(h, "$y$", 3) != 0 ||
		    (size_t)snprintf(hash, hashlen, "%s", h) >= hashlen) {
			cli_err("password hashing failed: %s", strerror(errno));
			rc = EX_SOFTWARE;
		}
	}
	explicit_bzero(pw, sizeof(pw));
	if (data != NULL)
		explicit_bzero(data, (size_t)size);
	free(data);
	free(setting);
	return rc;
}

/* mkdir that accepts an existing directory */
static int
account_mkdir(const char *path)
{
	struct stat	 st;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST)
		errno = ENOTDIR;
	return -1;
}

/* <mailboxes>/<domain>/<local>/{cur,new,tmp}, parents as needed */
static int
account_maildir_create(const char *mailboxes, const struct account_addr *a)
{
	char		 p[PATH_MAX];
	const char	*sub[] = { "", "/cur", "/new", "/tmp" };
	size_t		 i, n;

	if ((n = strlen(mailboxes)) >= sizeof(p))
		return -1;
	memcpy(p, mailboxes, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (account_mkdir(p) == -1)
			return -1;
		p[i] = mailboxes[i];
	}
	if ((size_t)snprintf(p, sizeof(p), "%s/%s", mailboxes, a->domain) >=
	    sizeof(p) || account_mkdir(p) == -1)
		return -1;
	for (i = 0; i < 4; i++)
		if ((size_t)snprintf(p, sizeof(p), "%s/%s/%s%s", mailboxes,
		    a->domain, a->local, sub[i]) >= sizeof(p) ||
		    account_mkdir(p) == -1)
			return -1;
	return 0;
}

/* Remove name under dfd and everything below it, never following links. */
static int
account_rm_at(int dfd, const char *name, int depth)
{
	struct stat	 st;
	struct dirent	*e;
	DIR		*d;
	int		 fd, rc = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0);
	if (depth > ACCOUNT_RM_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		rc = account_rm_at(dirfd(d), e->d_name, depth + 1);
	}
	closedir(d);
	if (rc == -1)
		return -1;
	return unlinkat(dfd, name, AT_REMOVEDIR);
}

static int
account_maildir_remove(const char *mailboxes, const struct account_addr *a)
{
	char	 p[PATH_MAX];
	int	 dfd, rc, saved;

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", mailboxes, a->domain) >=
	    sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return errno == ENOENT ? 0 : -1;
	rc = account_rm_at(dfd, a->local, 0);
	saved = errno;
	close(dfd);
	errno = saved;
	return rc;
}

/* Does the account exist as expected? 0, or an exit status (printed). */
static int
account_expect(struct table *t, const struct account_addr *a, int exists)
{
	switch (table_account_exists(t, a->local, a->domain)) {
	case TABLE_FOUND:
		if (exists)
			return 0;
		cli_err("%s: account already exists", a->full);
		return EX_DATAERR;
	case TABLE_NOTFOUND:
		if (!exists)
			return 0;
		cli_err("%s: no such account", a->full);
		return EX_NOUSER;
	case TABLE_TEMPFAIL:
		break;
	}
	cli_err("%s: database lookup failed", a->full);
	return EX_TEMPFAIL;
}

static int
account_add(struct cli *cli, struct table *t, const struct account_addr *a,
    int pwstdin)
{
	char	 hash[CRYPT_OUTPUT_SIZE], err[512];
	int	 rc;

	if ((rc = account_expect(t, a, 0)) != 0 ||
	    (rc = account_password(a->full, pwstdin, hash, sizeof(hash))) != 0)
		return rc;
	if (table_account_add(t, a->local, a->domain, hash, err,
	    sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		return strstr(err, "exists") ? EX_DATAERR : EX_TEMPFAIL;
	}
	if (account_maildir_create(cli->cfg.mailboxes, a) == -1) {
		cli_err("%s: cannot create the Maildir under %s: %s", a->full,
		    cli->cfg.mailboxes, strerror(errno));
		(void)table_account_del(t, a->local, a->domain, err,
		    sizeof(err));
		return EX_CANTCREAT;
	}
	printf("account %s added\n", a->full);
	return EX_OK;
}

/* Ask on the terminal; 0 yes, else the exit status. */
static int
account_confirm(const char *who)
{
	char	 prompt[512], ans[16];
	ssize_t	 r;
	int	 fd;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1) {
		cli_err("no terminal to confirm the deletion of %s: pass --yes",
		    who);
		return EX_USAGE;
	}
	snprintf(prompt, sizeof(prompt), "Delete account %s and all its "
	    "mail? [y/N] ", who);
	(void)!write(fd, prompt, strlen(prompt));
	r = read(fd, ans, sizeof(ans) - 1);
	close(fd);
	ans[r > 0 ? r : 0] = '\0';
	if (ans[0] == 'y' || ans[0] == 'Y')
		return 0;
	cli_err("%s not deleted", who);
	return EXIT_FAILURE;
}

static int
account_del(struct cli *cli, struct table *t, const struct account_addr *a,
    int yes)
{
	char	 err[512];
	int	 rc;

	switch (table_account_exists(t, a->local, a->domain)) {
	case TABLE_NOTFOUND:
		cli_err("%s: no such account", a->full);
		return EX_NOUSER;
	case TABLE_TEMPFAIL:
		cli_err("%s: database lookup failed", a->full);
		return EX_TEMPFAIL;
	case TABLE_FOUND:
		break;
	}
	if (!yes && (rc = account_confirm(a->full)) != 0)
		return rc;
	if (table_account_del(t, a->local, a->domain, err, sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		return strstr(err, "no such") ? EX_NOUSER : EX_TEMPFAIL;
	}
	if (account_maildir_remove(cli->cfg.mailboxes, a) == -1) {
		cli_err("%s: account deleted, but its Maildir %s/%s/%s was not "
		    "removed: %s", a->full, cli->cfg.mailboxes, a->domain,
		    a->local, strerror(errno));
		return EX_IOERR;
	}
	printf("account %s deleted\n", a->full);
	return EX_OK;
}

static int
account_passwd(struct table *t, const struct account_addr *a, int pwstdin)
{
	char	 hash[CRYPT_OUTPUT_SIZE], err[512];
	int	 rc;

	if ((rc = account_expect(t, a, 1)) != 0 ||
	    (rc = account_password(a->full, pwstdin, hash, sizeof(hash))) != 0)
		return rc;
	if (table_account_passwd(t, a->local, a->domain, hash, err,
	    sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		return strstr(err, "no such") ? EX_NOUSER : EX_TEMPFAIL;
	}
	printf("password of %s changed\n", a->full);
	return EX_OK;
}

struct account_rows {
	int	 json;
	size_t	 n;
};

static void
account_row(void *arg, const char **cols, size_t ncols)
{
	struct account_rows	*l = arg;
	char			 when[64];
	long long		 created;

	if (ncols < 3)
		return;
	created = strtoll(cols[2], NULL, 10);
	if (l->json) {
		fputs(l->n ? ",\n  {\"address\": " : "\n  {\"address\": ",
		    stdout);
		cli_json_str(stdout, cols[0]);
		fputs(", \"domain\": ", stdout);
		cli_json_str(stdout, cols[1]);
		printf(", \"created\": %lld}", created);
	} else {
		cli_time_str(created, when, sizeof(when));
		printf("%s  %s\n", cols[0], when);
	}
	l->n++;
}

static int
account_list(struct table *t, char *domain, int json)
{
	struct account_rows	 l = { json, 0 };
	char			 err[512];
	int			 rc;

	if (domain != NULL) {
		cli_lower(domain);
		if (!cli_hostname_valid(domain)) {
			cli_err("\"%s\" is not a valid domain name", domain);
			return EX_DATAERR;
		}
		if ((rc = account_domain_check(t, domain)) != 0)
			return rc;
	}
	if (json)
		fputs("[", stdout);
	rc = table_account_list(t, domain, account_row, &l, err, sizeof(err));
	if (json)
		fputs(l.n ? "\n]\n" : "]\n", stdout);
	if (rc == -1) {
		cli_err("%s", err);
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

static int
account_args(int argc, char **argv, struct account_opts *o)
{
	int	 i, n = 0, dashdash = 0;

	for (i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (!dashdash && strcmp(s, "--password-stdin") == 0)
			o->pwstdin = 1;
		else if (!dashdash && (strcmp(s, "--yes") == 0 ||
		    strcmp(s, "-y") == 0))
			o->yes = 1;
		else if (!dashdash && strcmp(s, "--json") == 0)
			o->json = 1;
		else if (!dashdash && strcmp(s, "--") == 0)
			dashdash = 1;
		else if (!dashdash && s[0] == '-') {
			cli_err("account: unknown option %s", s);
			return -1;
		} else if (n == 0 && ++n)
			o->sub = s;
		else if (n == 1 && ++n)
			o->arg = argv[i];
		else {
			cli_err("account: too many arguments");
			return -1;
		}
	}
	return o->sub == NULL ? -1 : 0;
}

/* Do the options fit the subcommand? */
static int
account_args_ok(const struct account_opts *o)
{
	if (strcmp(o->sub, "list") == 0)
		return !o->pwstdin && !o->yes;
	if (o->arg == NULL || o->json)
		return 0;
	if (strcmp(o->sub, "add") == 0 || strcmp(o->sub, "passwd") == 0)
		return !o->yes;
	if (strcmp(o->sub, "del") == 0)
		return !o->pwstdin;
	return 0;
}

int
cmd_account(struct cli *cli, int argc, char **argv)
{
	struct account_opts	 o;
	struct account_addr	 a;
	struct table		*t;
	int			 rc;

	memset(&o, 0, sizeof(o));
	if (cli_wants_help(argc, argv))
		return cli_usage(usage_account, 1);
	if (account_args(argc, argv, &o) == -1 || !account_args_ok(&o))
		return cli_usage(usage_account, 0);
	if (strcmp(o.sub, "list") != 0 && account_parse(o.arg, &a) == -1)
		return EX_DATAERR;
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if ((t = cli_table(cli)) == NULL)
		return EX_UNAVAILABLE;
	if (strcmp(o.sub, "list") == 0)
		rc = account_list(t, o.arg, o.json);
	else if ((rc = account_domain_check(t, a.domain)) != 0)
		;
	else if (strcmp(o.sub, "add") == 0)
		rc = account_add(cli, t, &a, o.pwstdin);
	else if (strcmp(o.sub, "del") == 0)
		rc = account_del(cli, t, &a, o.yes);
	else
		rc = account_passwd(t, &a, o.pwstdin);
	table_close(t);
	return rc;
}
