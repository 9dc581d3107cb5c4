/*
 * cmd_account - `sluice account`: mail accounts.
 *
 *	account add ADDR [--password-stdin] [--recovery ADDR]
 *						row + Maildir <mailboxes>/<d>/<l>/
 *	account set ADDR [--recovery ADDR|''] [--send-as 'PATTERNS']
 *	account del ADDR [--yes]		row, aliases pointing at it,
 *						reset token, Maildir
 *	account passwd ADDR [--password-stdin] [--token TOKEN]
 *	account reset ADDR [--ttl SECONDS] [--mail]
 *	account list [DOMAIN] [--json]
 *	account export ADDR FILE | import FILE [--as ADDR] [--force]
 *						(account_archive.c)
 *
 * ADDR is local@domain with a dot-atom local part that is also safe as a
 * path component, in a local domain; both are stored lower-cased. Passwords
 * come from one line of stdin or the terminal (twice, echo off), are at
 * least ACCOUNT_PW_MIN characters, and are stored as yescrypt hashes
 * (libxcrypt), which Dovecot reads. The Maildir is removed with
 * openat/unlinkat and O_NOFOLLOW: a symlink inside is removed, never
 * followed. A reset token is ACCOUNT_TOKEN_BYTES from getrandom(2) in
 * lower-case base32; only its SHA-256 (hex) is stored, with an expiry.
 * Exit: 0 ok; 64 usage or no terminal; 65 bad address, pattern, password
 * or archive, duplicate; 67 unknown domain or account, no recovery
 * address; 73 Maildir or file not created; 74 Maildir not removed, I/O
 * error; 75 database trouble or mail not submitted; 77 invalid or expired
 * reset token.
 */
#include <sys/random.h>
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
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "account.h"
#include "buf.h"

#define ACCOUNT_PW_MIN		8
#define ACCOUNT_PW_MAX		1024
#define ACCOUNT_RM_DEPTH	32
#define ACCOUNT_TOKEN_BYTES	20	/* 160 bits: 32 base32 characters */
#define ACCOUNT_TOKEN_LEN	32
#define ACCOUNT_TTL_DEFAULT	3600
#define ACCOUNT_TTL_MIN		60
#define ACCOUNT_TTL_MAX		(7 * 24 * 3600)
#define ACCOUNT_PATTERN_MAX	255	/* one send-as pattern */
#define ACCOUNT_PATTERNS_MAX	64	/* patterns per account */
#define ACCOUNT_MAIL_MAX	8192	/* the reset message */

static const char usage_account[] =
    "usage: sluice [-c FILE] account add ADDR [--password-stdin] "
    "[--recovery ADDR]\n"
    "       sluice [-c FILE] account set ADDR [--recovery ADDR|''] "
    "[--send-as 'PATTERNS']\n"
    "       sluice [-c FILE] account del ADDR [--yes]\n"
    "       sluice [-c FILE] account passwd ADDR [--password-stdin] "
    "[--token TOKEN]\n"
    "       sluice [-c FILE] account reset ADDR [--ttl SECONDS] [--mail]\n"
    "       sluice [-c FILE] account list [DOMAIN] [--json]\n"
    "       sluice [-c FILE] account export ADDR FILE\n"
    "       sluice [-c FILE] account import FILE [--as ADDR] [--force]\n"
    "\n"
    "ADDR is local@domain in a local domain (see `sluice domain add`).\n"
    "The password is read twice from the terminal, or once from stdin\n"
    "with --password-stdin; at least 8 characters; stored as yescrypt.\n"
    "add creates the Maildir; del removes it with all its mail, the\n"
    "aliases pointing at the account and its reset token.\n"
    "set: --recovery is where `reset --mail` sends the token ('' none);\n"
    "--send-as lists extra sender patterns (\"*@example.test\", \"*\").\n"
    "reset prints a one-time token (valid --ttl seconds, 60..604800,\n"
    "default 3600), or mails it to the recovery address with --mail;\n"
    "passwd --token TOKEN uses it.\n"
    "export writes a tar of the account's rows and Maildir (FILE - is\n"
    "stdout); import restores one, skipping messages already present.\n"
    "exit: 0 ok, 64 usage, 65 invalid address, pattern, password or\n"
    "      archive, or duplicate, 67 unknown domain or account or no\n"
    "      recovery address, 73/74 Maildir or file not created/removed,\n"
    "      75 database unavailable or mail not submitted, 77 invalid or\n"
    "      expired reset token\n";

/* the options, as bits of account_opts.seen */
#define O_PWSTDIN	0x001
#define O_YES		0x002
#define O_JSON		0x004
#define O_RECOVERY	0x008
#define O_SENDAS	0x010
#define O_TOKEN		0x020
#define O_TTL		0x040
#define O_MAIL		0x080
#define O_FORCE		0x100
#define O_AS		0x200

struct account_opts {
	const char	*sub;
	char		*arg;		/* ADDR (FILE for import) */
	char		*arg2;		/* export's FILE */
	unsigned	 seen;		/* O_* */
	const char	*recovery, *send_as, *token, *as, *ttl;
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
int
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
int
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
int
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
    int pwstdin, const char *recovery)
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
	if (recovery != NULL && table_account_set(t, a->local, a->domain,
	    recovery, NULL, err, sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		(void)table_account_del(t, a->local, a->domain, err,
		    sizeof(err));
		return EX_TEMPFAIL;
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
	char	 q[512];

	snprintf(q, sizeof(q), "Delete account %s and all its mail?", who);
	return cli_confirm(q, who);
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

/* "0123456789abcdef..." of the SHA-256 of s; 0 or -1 */
static int
account_sha256_hex(const char *s, char *hex, size_t hexlen)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 n = 0, i;

	if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 ||
	    hexlen < 2 * (size_t)n + 1)
		return -1;
	for (i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static const char account_b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* A fresh token: ACCOUNT_TOKEN_BYTES from getrandom(2) in base32. */
static int
account_token_new(char *tok, size_t toklen)
{
	unsigned char	 raw[ACCOUNT_TOKEN_BYTES];
	size_t		 got = 0, bit, i;
	ssize_t		 r;

	if (toklen < ACCOUNT_TOKEN_LEN + 1)
		return -1;
	while (got < sizeof(raw)) {
		if ((r = getrandom(raw + got, sizeof(raw) - got, 0)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	for (i = 0; i < ACCOUNT_TOKEN_LEN; i++) {
		unsigned v = 0;
		for (bit = i * 5; bit < i * 5 + 5; bit++)
			v = (v << 1) | ((raw[bit / 8] >> (7 - bit % 8)) & 1u);
		tok[i] = account_b32[v];
	}
	tok[ACCOUNT_TOKEN_LEN] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* Is s shaped like one of our tokens? (checked before it is hashed) */
static int
account_token_shape(const char *s)
{
	size_t	 n = strlen(s);

	return n == ACCOUNT_TOKEN_LEN && strspn(s, account_b32) == n;
}

static int
account_passwd(struct table *t, const struct account_addr *a, int pwstdin,
    const char *token)
{
	char	 hash[CRYPT_OUTPUT_SIZE], err[512], th[65];
	int	 rc;

	if ((rc = account_expect(t, a, 1)) != 0 ||
	    (rc = account_password(a->full, pwstdin, hash, sizeof(hash))) != 0)
		return rc;
	if (token != NULL) {
		if (!account_token_shape(token) ||
		    account_sha256_hex(token, th, sizeof(th)) == -1)
			rc = EX_NOPERM;
		else
			switch (table_reset_take(t, a->local, a->domain, th,
			    (long long)time(NULL))) {
			case TABLE_FOUND:
				break;
			case TABLE_NOTFOUND:
				rc = EX_NOPERM;
				break;
			case TABLE_TEMPFAIL:
				cli_err("%s: database lookup failed", a->full);
				return EX_TEMPFAIL;
			}
		if (rc != 0) {
			cli_err("%s: invalid or expired reset token", a->full);
			return rc;
		}
	}
	if (table_account_passwd(t, a->local, a->domain, hash, err,
	    sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		return strstr(err, "no such") ? EX_NOUSER : EX_TEMPFAIL;
	}
	printf("password of %s changed\n", a->full);
	return EX_OK;
}

int
account_recovery_norm(const char *in, char *out, size_t outlen)
{
	struct account_addr	 r;

	if (in[0] == '\0') {
		out[0] = '\0';
		return 0;
	}
	if (account_parse(in, &r) == -1)
		return -1;
	if (strlen(r.full) > TABLE_RECOVERY_MAX ||
	    (size_t)snprintf(out, outlen, "%s", r.full) >= outlen) {
		cli_err("\"%s\": recovery address too long", in);
		return -1;
	}
	return 0;
}

/* one pattern: "*" or LOCAL@DOMAIN of atext, '.', '*'; -1 after a message */
static int
account_pattern_ok(const char *p, size_t n)
{
	const char	*at = memchr(p, '@', n);
	size_t		 i;

	if (n > ACCOUNT_PATTERN_MAX) {
		cli_err("send-as pattern \"%.*s...\" longer than %d", 40, p,
		    ACCOUNT_PATTERN_MAX);
		return -1;
	}
	if (n == 1 && p[0] == '*')
		return 0;
	for (i = 0; i < n; i++)
		if (!(account_atext((unsigned char)p[i]) || p[i] == '.' ||
		    p[i] == '@'))
			break;
	if (i < n || at == NULL || at == p || at == p + n - 1 ||
	    memchr(at + 1, '@', (size_t)(p + n - at - 1)) != NULL) {
		cli_err("bad send-as pattern \"%.*s\": want \"*\" or "
		    "local@domain, where * matches anything", (int)n, p);
		return -1;
	}
	return 0;
}

int
account_send_as_norm(const char *in, char *out, size_t outlen)
{
	size_t	 n, len = 0, count = 0;

	for (n = 0; in[n] != '\0'; n++)
		if ((unsigned char)in[n] < 0x20 || in[n] == 0x7f) {
			cli_err("send-as: control character refused");
			return -1;
		}
	while (*in != '\0') {
		in += strspn(in, " ");
		if ((n = strcspn(in, " ")) == 0)
			break;
		if (account_pattern_ok(in, n) == -1)
			return -1;
		if (++count > ACCOUNT_PATTERNS_MAX || len + n + 2 > outlen ||
		    len + n + 1 > TABLE_SEND_AS_MAX + 1) {
			cli_err("send-as: too many patterns (at most %d "
			    "characters, %d patterns)", TABLE_SEND_AS_MAX,
			    ACCOUNT_PATTERNS_MAX);
			return -1;
		}
		if (len > 0)
			out[len++] = ' ';
		memcpy(out + len, in, n);
		len += n;
		in += n;
	}
	out[len] = '\0';
	cli_lower(out);
	return 0;
}

static int
account_set(struct table *t, const struct account_addr *a,
    const char *recovery, const char *send_as)
{
	char	 rec[TABLE_RECOVERY_MAX + 1], sa[TABLE_SEND_AS_MAX + 1];
	char	 err[512];
	int	 rc;

	if ((recovery != NULL && account_recovery_norm(recovery, rec,
	    sizeof(rec)) == -1) || (send_as != NULL &&
	    account_send_as_norm(send_as, sa, sizeof(sa)) == -1))
		return EX_DATAERR;
	if ((rc = account_expect(t, a, 1)) != 0)
		return rc;
	if (table_account_set(t, a->local, a->domain, recovery ? rec : NULL,
	    send_as ? sa : NULL, err, sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		return strstr(err, "no such") ? EX_NOUSER : EX_TEMPFAIL;
	}
	printf("account %s updated\n", a->full);
	return EX_OK;
}

/*
 * Hand the reset message to `sluice sendmail` (the same binary, run from
 * an argument vector: it submits to sluiced or leaves it in the maildrop).
 * The token goes through the pipe, never on a command line.
 */
static int
account_reset_mail(struct cli *cli, const struct account_addr *a,
    const char *to, const char *token, long long expires)
{
	char		 date[64], when[64];
	struct buf	 m;
	struct tm	 tm;
	time_t		 now = time(NULL);
	int		 rc;

	buf_init(&m, ACCOUNT_MAIL_MAX);
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000",
	    &tm) == 0)
		date[0] = '\0';
	cli_time_str(expires, when, sizeof(when));
	buf_addf(&m, "From: postmaster@%s\nTo: %s\nDate: %s\n"
	    "Subject: Password reset for %s\nAuto-Submitted: auto-generated\n"
	    "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
	    "A password reset was requested for the mail account %s.\n\n"
	    "The reset token is:\n\n    %s\n\n"
	    "It works once and expires at %s. To set a new password:\n\n"
	    "    sluice account passwd %s --token %s\n\n"
	    "If you did not ask for this, ignore this message.\n",
	    cli->cfg.hostname, to, date, a->full, a->full, token, when,
	    a->full, token);
	if (m.err != BUF_OK) {
		buf_free(&m);
		cli_err("cannot build the reset message: %s", strerror(ENOMEM));
		return EX_OSERR;
	}
	rc = cli_sendmail_pipe(cli->cfgpath, "<>", &to, 1, m.data, m.len);
	explicit_bzero(m.data, m.len);
	buf_free(&m);
	if (rc != EX_OK)
		cli_err("%s: the reset message to %s was not submitted", a->full,
		    to);
	return rc;
}

static int
account_reset(struct cli *cli, struct table *t, const struct account_addr *a,
    const char *ttlopt, int mail)
{
	struct table_account	 acc;
	char			 tok[ACCOUNT_TOKEN_LEN + 1], th[65], err[512];
	char			*end;
	long long		 ttl = ACCOUNT_TTL_DEFAULT, expires;
	int			 rc = EX_OK;

	if (ttlopt != NULL) {
		errno = 0;
		ttl = strtoll(ttlopt, &end, 10);
		if (errno != 0 || end == ttlopt || *end != '\0' ||
		    ttl < ACCOUNT_TTL_MIN || ttl > ACCOUNT_TTL_MAX) {
			cli_err("--ttl %s: want seconds from %d to %d", ttlopt,
			    ACCOUNT_TTL_MIN, ACCOUNT_TTL_MAX);
			return EX_USAGE;
		}
	}
	switch (table_account_get(t, a->local, a->domain, &acc)) {
	case TABLE_FOUND:
		break;
	case TABLE_NOTFOUND:
		cli_err("%s: no such account", a->full);
		return EX_NOUSER;
	case TABLE_TEMPFAIL:
		cli_err("%s: database lookup failed", a->full);
		return EX_TEMPFAIL;
	}
	if (mail && acc.recovery[0] == '\0') {
		cli_err("%s has no recovery address: set one with `sluice "
		    "account set %s --recovery ADDR`", a->full, a->full);
		return EX_NOUSER;
	}
	expires = (long long)time(NULL) + ttl;
	if (account_token_new(tok, sizeof(tok)) == -1 ||
	    account_sha256_hex(tok, th, sizeof(th)) == -1) {
		cli_err("cannot make a token: %s", strerror(errno));
		return EX_OSERR;
	}
	if (table_reset_put(t, a->local, a->domain, th, expires, err,
	    sizeof(err)) == -1) {
		cli_err("%s: %s", a->full, err);
		rc = strstr(err, "read-only") ? EX_UNAVAILABLE : EX_TEMPFAIL;
	} else if (mail) {
		if ((rc = account_reset_mail(cli, a, acc.recovery, tok,
		    expires)) == EX_OK)
			fprintf(stderr, "sluice: reset token for %s mailed to "
			    "%s\n", a->full, acc.recovery);
	} else
		printf("%s\n", tok);
	explicit_bzero(tok, sizeof(tok));
	return rc;
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

/* the options that take a value, and where it goes */
static const char **
account_optval(struct account_opts *o, const char *s, unsigned *bit)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
	} vals[] = {
		{ "--recovery", O_RECOVERY }, { "--send-as", O_SENDAS },
		{ "--token", O_TOKEN }, { "--as", O_AS }, { "--ttl", O_TTL },
	};
	const char	**dst[] = { &o->recovery, &o->send_as, &o->token,
	    &o->as, &o->ttl };
	size_t		 i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (strcmp(s, vals[i].name) == 0) {
			*bit = vals[i].bit;
			return dst[i];
		}
	return NULL;
}

static int
account_args(int argc, char **argv, struct account_opts *o)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
	} flags[] = {
		{ "--password-stdin", O_PWSTDIN }, { "--yes", O_YES },
		{ "-y", O_YES }, { "--json", O_JSON }, { "--mail", O_MAIL },
		{ "--force", O_FORCE },
	};
	const char	**dst;
	unsigned	 bit;
	size_t		 f;
	int		 i, n = 0, dashdash = 0;

	for (i = 1; i < argc; i++) {
		const char *s = argv[i];
		for (f = 0; !dashdash && f < sizeof(flags) / sizeof(flags[0]);
		    f++)
			if (strcmp(s, flags[f].name) == 0)
				break;
		if (!dashdash && f < sizeof(flags) / sizeof(flags[0]))
			o->seen |= flags[f].bit;
		else if (!dashdash && (dst = account_optval(o, s, &bit)) !=
		    NULL) {
			if (i + 1 >= argc) {
				cli_err("account: %s needs a value", s);
				return -1;
			}
			*dst = argv[++i];
			o->seen |= bit;
		} else if (!dashdash && strcmp(s, "--") == 0)
			dashdash = 1;
		else if (!dashdash && s[0] == '-' && s[1] != '\0') {
			cli_err("account: unknown option %s", s);
			return -1;
		} else if (n == 0 && ++n)
			o->sub = s;
		else if (n == 1 && ++n)
			o->arg = argv[i];
		else if (n == 2 && ++n)
			o->arg2 = argv[i];
		else {
			cli_err("account: too many arguments");
			return -1;
		}
	}
	return o->sub == NULL ? -1 : 0;
}

/* each subcommand: the options it takes, whether it wants ADDR and FILE */
static const struct {
	const char	*sub;
	unsigned	 opts;
	int		 arg;		/* 0 optional, 1 required */
	int		 arg2;
} account_subs[] = {
	{ "list", O_JSON, 0, 0 },
	{ "add", O_PWSTDIN | O_RECOVERY, 1, 0 },
	{ "set", O_RECOVERY | O_SENDAS, 1, 0 },
	{ "del", O_YES, 1, 0 },
	{ "passwd", O_PWSTDIN | O_TOKEN, 1, 0 },
	{ "reset", O_TTL | O_MAIL, 1, 0 },
	{ "export", 0, 1, 1 },
	{ "import", O_AS | O_FORCE, 1, 0 },
};

/* Do the options fit the subcommand? */
static int
account_args_ok(const struct account_opts *o)
{
	size_t	 i;

	for (i = 0; i < sizeof(account_subs) / sizeof(account_subs[0]); i++) {
		if (strcmp(o->sub, account_subs[i].sub) != 0)
			continue;
		if ((o->seen & ~account_subs[i].opts) != 0 ||
		    (account_subs[i].arg && o->arg == NULL) ||
		    (account_subs[i].arg2 != (o->arg2 != NULL)))
			return 0;
		if (strcmp(o->sub, "set") == 0 &&
		    (o->seen & (O_RECOVERY | O_SENDAS)) == 0)
			return 0;
		return 1;
	}
	return 0;
}

/* the subcommands that take ADDR, once the table is open */
static int
account_run(struct cli *cli, struct table *t, const struct account_opts *o,
    const struct account_addr *a)
{
	char	 rec[TABLE_RECOVERY_MAX + 1];
	int	 rc;

	if ((rc = account_domain_check(t, a->domain)) != 0)
		return rc;
	if (strcmp(o->sub, "add") == 0) {
		if (o->recovery != NULL && account_recovery_norm(o->recovery,
		    rec, sizeof(rec)) == -1)
			return EX_DATAERR;
		return account_add(cli, t, a, o->seen & O_PWSTDIN,
		    o->recovery ? rec : NULL);
	}
	if (strcmp(o->sub, "set") == 0)
		return account_set(t, a, o->recovery, o->send_as);
	if (strcmp(o->sub, "del") == 0)
		return account_del(cli, t, a, o->seen & O_YES);
	if (strcmp(o->sub, "reset") == 0)
		return account_reset(cli, t, a, o->ttl, o->seen & O_MAIL);
	if (strcmp(o->sub, "export") == 0)
		return account_export(cli, t, a, o->arg2);
	return account_passwd(t, a, o->seen & O_PWSTDIN, o->token);
}

/* import reads its archive before privileges are dropped (root's backup) */
static int
account_import_cmd(struct cli *cli, const struct account_opts *o)
{
	int	 fd, rc;

	if (strcmp(o->arg, "-") == 0) {
		cli_err("import: the archive is read twice: give a file, "
		    "not -");
		return EX_USAGE;
	}
	if ((fd = open(o->arg, O_RDONLY | O_CLOEXEC)) == -1) {
		cli_err("import: %s: %s", o->arg, strerror(errno));
		return EX_NOINPUT;
	}
	rc = account_import(cli, fd, o->arg, o->as, o->seen & O_FORCE);
	close(fd);
	return rc;
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
	if (strcmp(o.sub, "list") != 0 && strcmp(o.sub, "import") != 0 &&
	    account_parse(o.arg, &a) == -1)
		return EX_DATAERR;
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if (strcmp(o.sub, "import") == 0)
		return account_import_cmd(cli, &o);
	if ((t = cli_table(cli)) == NULL)
		return EX_UNAVAILABLE;
	if (strcmp(o.sub, "list") == 0)
		rc = account_list(t, o.arg, o.seen & O_JSON);
	else
		rc = account_run(cli, t, &o, &a);
	table_close(t);
	return rc;
}
