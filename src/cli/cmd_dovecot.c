/*
 * cmd_dovecot - `sluice dovecot-config`: a Dovecot 2.3 configuration that
 * serves sluice's accounts and Maildirs over IMAP (docs/imap.md).
 *
 * dovecot.conf goes to stdout; the SQL settings (driver, connect string,
 * queries) go to a second file, --sql-file, written mode 0600 because it
 * may hold the database password (Dovecot's passdb/userdb `args` is the
 * path of such a file). Both are built in memory first: on any error
 * nothing is written.
 *
 * What Dovecot is told:
 *   - passdb and userdb are SQL against sluice's own database (sqlite or
 *     pgsql); logins are local@domain, matched lower-cased, and the
 *     password is the yescrypt hash sluice stores, checked with CRYPT
 *     (libc crypt(3), libxcrypt on Debian);
 *   - mail_location is the contract's Maildir <mailboxes>/%d/%n, accessed
 *     as the mailbox owner (sluice's `user`); only that uid/gid is valid;
 *   - TLS from sluice's tls-cert/tls-key; without them plaintext IMAP is
 *     generated only for a loopback listener;
 *   - --user NAME: Dovecot is started by NAME instead of root, so every
 *     Dovecot process runs as NAME (no chroot, NAME owns the Maildirs).
 *
 * Every value from sluice's config or the options is quoted for Dovecot
 * ("...", backslash escapes; '%' doubled where Dovecot expands variables)
 * and control characters (a newline could start a new directive) are
 * refused, as are ':' in the Maildir path (mail_location's separator).
 * Exit: 0 ok; 64 usage; 67 unknown user; 69 database missing; 73 cannot
 * write the SQL file; 78 configuration Dovecot cannot use (files: backend,
 * unsafe value, plaintext on a public address).
 */
#include <sys/stat.h>

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"

#define DC_OUT_MAX		(64 * 1024)
#define DC_DEFAULT_LISTEN	"127.0.0.1:143"
#define DC_DEFAULT_SQL_FILE	"/etc/dovecot/sluice-sql.conf.ext"
/* user and group names we put into the config (useradd's, and '$') */
#define DC_NAME_CHARS	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
			"0123456789._-$"

static const char usage_dovecot[] =
    "usage: sluice [-c FILE] dovecot-config [--imap-listen ADDR:PORT]\n"
    "           [--sql-file PATH] [--base-dir DIR] [--log FILE]\n"
    "           [--user NAME] [--lmtp]\n"
    "\n"
    "Print a Dovecot 2.3 configuration (dovecot.conf) on stdout that serves\n"
    "sluice's accounts and Maildirs over IMAP, and write the SQL settings\n"
    "it refers to (mode 0600: they may hold the database password).\n"
    "  --imap-listen ADDR:PORT  IMAP listener (default " DC_DEFAULT_LISTEN
    ");\n"
    "                           without tls-cert only a loopback address\n"
    "  --sql-file PATH          the SQL settings file (default\n"
    "                           " DC_DEFAULT_SQL_FILE ")\n"
    "  --base-dir DIR           Dovecot's runtime directory (state in DIR/state)\n"
    "  --log FILE               Dovecot's log file (default: syslog)\n"
    "  --user NAME              Dovecot is started by NAME, not root; all of\n"
    "                           it runs as NAME, the owner of the Maildirs\n"
    "  --lmtp                   also an LMTP socket, DIR/lmtp, for delivery\n"
    "\n"
    "Start it with: dovecot -c FILE (see docs/imap.md).\n"
    "exit: 0 ok, 64 usage, 67 unknown user, 69 database missing,\n"
    "      73 cannot write the SQL file, 78 configuration Dovecot cannot use\n";

struct dc_opts {
	const char	*listen;
	const char	*sql_file;
	const char	*base_dir;
	const char	*log;
	const char	*user;
	int		 lmtp;
};

/* what the generated files need to know, resolved from config and options */
struct dc_ctx {
	const struct config *cfg;
	const char	*cfgpath;
	struct dc_opts	 o;
	char		 host[256], port[16];
	int		 loopback;
	char		 owner[64];	/* the Maildirs' owner */
	char		 group[64];
	unsigned long	 uid, gid;
	struct buf	 conf, sql;
};

/* Append "PREFIX s SUFFIX" quoted for a Dovecot config value: s escaped
   (and its '%' doubled if pct: a value Dovecot expands variables in),
   prefix and suffix are ours and go as they are. -1 on a control
   character in s. */
static int
dc_quote(struct buf *b, const char *prefix, const char *s,
    const char *suffix, int pct)
{
	const unsigned char	*p = (const unsigned char *)s;

	buf_addc(b, '"');
	buf_adds(b, prefix);
	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return -1;
		if (*p == '"' || *p == '\\')
			buf_addc(b, '\\');
		else if (*p == '%' && pct)
			buf_addc(b, '%');
		buf_addc(b, *p);
	}
	buf_adds(b, suffix);
	buf_addc(b, '"');
	return 0;
}

/* indent name = "prefix value suffix"; -1 (message printed) if it cannot */
static int
dc_setx(struct buf *b, const char *indent, const char *name,
    const char *prefix, const char *v, const char *suffix, int pct)
{
	buf_addf(b, "%s%s = ", indent, name);
	if (dc_quote(b, prefix, v, suffix, pct) == -1) {
		cli_err("dovecot-config: %s: the value contains a control "
		    "character", name);
		return -1;
	}
	buf_addc(b, '\n');
	return 0;
}

static int
dc_set(struct buf *b, const char *indent, const char *name, const char *v)
{
	return dc_setx(b, indent, name, "", v, "", 0);
}

/* Decode %XX escapes of a URI part; -1 on a bad escape, a control
   character in the result, or no room. */
static int
dc_unescape(const char *s, size_t n, char *dst, size_t dstlen)
{
	size_t	 i, o = 0;
	char	 hex[3] = { 0 };

	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];
		char		*end;

		if (c == '%') {
			if (n - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]))
				return -1;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			c = (unsigned char)strtoul(hex, &end, 16);
			if (end != hex + 2)
				return -1;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= dstlen)
			return -1;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return 0;
}

/* key='value' for a libpq connect string (its quoting: \\ and \') */
static void
dc_conninfo_add(struct buf *b, const char *key, const char *v)
{
	if (b->len > 0)
		buf_addc(b, ' ');
	buf_addf(b, "%s=", key);
	if (*v != '\0' && strpbrk(v, " '\\\t") == NULL) {
		buf_adds(b, v);
		return;
	}
	buf_addc(b, '\'');
	for (; *v; v++) {
		if (*v == '\'' || *v == '\\')
			buf_addc(b, '\\');
		buf_addc(b, *v);
	}
	buf_addc(b, '\'');
}

/* one "key=value" of a URI's query string into the connect string */
static int
dc_pg_param(struct buf *b, const char *s, size_t n)
{
	const char	*eq = memchr(s, '=', n);
	char		 key[64], val[CONFIG_STR_MAX];
	size_t		 i;

	if (eq == NULL || dc_unescape(s, (size_t)(eq - s), key,
	    sizeof(key)) == -1 || dc_unescape(eq + 1, n - (size_t)(eq - s) - 1,
	    val, sizeof(val)) == -1 || key[0] == '\0')
		return -1;
	for (i = 0; key[i]; i++)
		if (!(key[i] == '_' || (key[i] >= 'a' && key[i] <= 'z')))
			return -1;
	dc_conninfo_add(b, key, val);
	return 0;
}

/*
 * postgresql://[user[:password]@][host][:port][/dbname][?k=v&...] as a
 * libpq key=value connect string (what Dovecot's pgsql `connect` is).
 */
static int
dc_pg_conninfo(const char *dsn, struct buf *b)
{
	const char	*p = dsn + strlen("postgresql://"), *end, *at, *c;
	char		 v[CONFIG_STR_MAX];
	size_t		 n;

	end = p + strcspn(p, "/?");
	if ((at = memchr(p, '@', (size_t)(end - p))) != NULL) {
		c = memchr(p, ':', (size_t)(at - p));
		n = (size_t)((c ? c : at) - p);
		if (dc_unescape(p, n, v, sizeof(v)) == -1)
			return -1;
		if (*v)
			dc_conninfo_add(b, "user", v);
		if (c != NULL) {
			if (dc_unescape(c + 1, (size_t)(at - c - 1), v,
			    sizeof(v)) == -1)
				return -1;
			dc_conninfo_add(b, "password", v);
		}
		p = at + 1;
	}
	/* host: a name, an address, [v6] or a %-escaped socket directory */
	if (*p == '[') {
		if ((c = memchr(p, ']', (size_t)(end - p))) == NULL)
			return -1;
		if (dc_unescape(p + 1, (size_t)(c - p - 1), v, sizeof(v)) == -1)
			return -1;
		c++;
	} else {
		c = memchr(p, ':', (size_t)(end - p));
		if (c == NULL)
			c = end;
		if (dc_unescape(p, (size_t)(c - p), v, sizeof(v)) == -1)
			return -1;
	}
	if (*v)
		dc_conninfo_add(b, "host", v);
	if (c < end && *c == ':') {
		if (dc_unescape(c + 1, (size_t)(end - c - 1), v,
		    sizeof(v)) == -1 || strspn(v, "0123456789") != strlen(v))
			return -1;
		if (*v)
			dc_conninfo_add(b, "port", v);
	} else if (c != end)
		return -1;
	p = end;
	if (*p == '/') {
		p++;
		n = strcspn(p, "?");
		if (dc_unescape(p, n, v, sizeof(v)) == -1)
			return -1;
		if (*v)
			dc_conninfo_add(b, "dbname", v);
		p += n;
	}
	if (*p == '?') {
		for (p++; *p; p += n + (p[n] == '&')) {
			n = strcspn(p, "&");
			if (n > 0 && dc_pg_param(b, p, n) == -1)
				return -1;
		}
	}
	return b->err ? -1 : 0;
}

/* driver and connect string of the SQL file; *match: the WHERE clause */
static int
dc_sql_connect(struct dc_ctx *x, const char **match)
{
	const char	*db = x->cfg->database;
	struct buf	 ci;
	struct stat	 st;
	int		 rc;

	if (strncmp(db, "sqlite:", 7) == 0) {
		db += 7;
		if (db[0] != '/') {
			cli_err("dovecot-config: database %s: Dovecot needs an "
			    "absolute path", db);
			return EX_CONFIG;
		}
		if (stat(db, &st) == -1) {
			cli_err("dovecot-config: database %s: %s%s", db,
			    strerror(errno), errno == ENOENT ? " (create it "
			    "first: sluice domain add DOMAIN)" : "");
			return EX_UNAVAILABLE;
		}
		buf_adds(&x->sql, "driver = sqlite\n");
		/* the columns are COLLATE NOCASE: the primary key is used */
		*match = "local = '%Ln' AND domain = '%Ld'";
		return dc_set(&x->sql, "", "connect", db) == -1 ? EX_CONFIG : 0;
	}
	if (strncmp(db, "postgresql://", 13) == 0) {
		buf_init(&ci, CONFIG_STR_MAX * 4);
		if (dc_pg_conninfo(db, &ci) == -1) {
			buf_free(&ci);
			cli_err("dovecot-config: database: cannot read the "
			    "postgresql:// address (see docs/database.md)");
			return EX_CONFIG;
		}
		buf_adds(&x->sql, "driver = pgsql\n");
		rc = dc_set(&x->sql, "", "connect", ci.data);
		buf_free(&ci);
		/* sluice's unique index is on lower(local), lower(domain) */
		*match = "lower(local) = '%Ln' AND lower(domain) = '%Ld'";
		return rc == -1 ? EX_CONFIG : 0;
	}
	cli_err("dovecot-config: database %s: Dovecot cannot read the files "
	    "backend's accounts file (it is not a passwd-file); use sqlite: "
	    "or postgresql:// (docs/imap.md)", db);
	return EX_CONFIG;
}

/* the SQL settings file: driver, connect string, the three queries */
static int
dc_sql(struct dc_ctx *x)
{
	const char	*match = NULL;
	int		 rc;

	buf_adds(&x->sql, "# Dovecot SQL settings for sluice, written by "
	    "`sluice dovecot-config`\n# from ");
	if (dc_quote(&x->sql, "", x->cfgpath, "", 0) == -1) {
		cli_err("dovecot-config: the config path contains a control "
		    "character");
		return EX_CONFIG;
	}
	buf_adds(&x->sql, ". Mode 0600: it may hold the database password."
	    "\n");
	if ((rc = dc_sql_connect(x, &match)) != 0)
		return rc;
	buf_adds(&x->sql, "# sluice stores yescrypt hashes ($y$...): libc "
	    "crypt(3) checks them\ndefault_pass_scheme = CRYPT\n");
	buf_addf(&x->sql, "password_query = SELECT lower(local) || '@' || "
	    "lower(domain) AS user, password FROM accounts WHERE %s AND "
	    "password <> ''\n", match);
	buf_addf(&x->sql, "user_query = SELECT lower(local) || '@' || "
	    "lower(domain) AS user, %lu AS uid, %lu AS gid FROM accounts "
	    "WHERE %s\n", x->uid, x->gid, match);
	buf_adds(&x->sql, "iterate_query = SELECT lower(local) || '@' || "
	    "lower(domain) AS user FROM accounts\n");
	return 0;
}

/* the Maildir path of the contract, for mail_location and mail_home */
static int
dc_mail(struct dc_ctx *x)
{
	struct buf	*b = &x->conf;
	const char	*m = x->cfg->mailboxes;

	if (m[0] != '/' || strchr(m, ':') != NULL) {
		cli_err("dovecot-config: mailboxes %s: Dovecot needs an "
		    "absolute path without ':'", m);
		return EX_CONFIG;
	}
	buf_addf(b, "\n# the Maildirs sluice delivers to, <mailboxes>/<domain>/"
	    "<local>/, used as\n# their owner %s: no other uid may log in\n",
	    x->owner);
	if (dc_setx(b, "", "mail_location", "maildir:", m, "/%d/%n", 1) == -1 ||
	    dc_setx(b, "", "mail_home", "", m, "/%d/%n", 1) == -1)
		return EX_CONFIG;
	buf_addf(b, "first_valid_uid = %lu\nlast_valid_uid = %lu\n"
	    "first_valid_gid = %lu\nlast_valid_gid = %lu\n", x->uid, x->uid,
	    x->gid, x->gid);
	return 0;
}

/* logins against the SQL file, and the users Dovecot's processes run as */
static int
dc_auth(struct dc_ctx *x)
{
	struct buf	*b = &x->conf;

	buf_adds(b, "\n# logins: sluice's accounts table (local@domain and "
	    "the account's password)\nauth_mechanisms = plain login\n"
	    "passdb {\n  driver = sql\n");
	if (dc_set(b, "  ", "args", x->o.sql_file) == -1)
		return EX_CONFIG;
	buf_adds(b, "}\nuserdb {\n  driver = sql\n");
	dc_set(b, "  ", "args", x->o.sql_file);
	buf_adds(b, "}\n\n");
	if (x->o.user != NULL) {
		buf_adds(b, "# started by this user, not root: every process "
		    "runs as it, without chroot\n");
		dc_set(b, "", "default_login_user", x->owner);
		dc_set(b, "", "default_internal_user", x->owner);
		dc_set(b, "", "default_internal_group", x->group);
		buf_adds(b, "service anvil {\n  chroot =\n}\n");
	} else {
		buf_adds(b, "# started as root; Debian's package creates these "
		    "users\ndefault_login_user = dovenull\n"
		    "default_internal_user = dovecot\n");
	}
	buf_adds(b, "# the password lookups read the database as its owner\n"
	    "service auth-worker {\n");
	dc_set(b, "  ", "user", x->owner);
	buf_adds(b, "}\n");
	return 0;
}

/*
 * name = <PATH: Dovecot reads the file only from an unquoted '<' (a quoted
 * "<PATH" is taken as the PEM text itself), so the path cannot be quoted:
 * only characters that mean nothing to Dovecot's parser are accepted.
 */
static int
dc_set_file(struct buf *b, const char *what, const char *name,
    const char *path)
{
	const char	*ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789/._-+,@=~:";

	if (path[0] != '/' || strspn(path, ok) != strlen(path)) {
		cli_err("dovecot-config: %s %s: Dovecot reads it from an "
		    "unquoted <PATH; use an absolute path of letters, digits "
		    "and / . _ - + , @ = ~ :", what, path);
		return -1;
	}
	buf_addf(b, "%s = <%s\n", name, path);
	return 0;
}

/* TLS from sluice's certificate, or plaintext on loopback only */
static int
dc_tls(struct dc_ctx *x)
{
	struct buf		*b = &x->conf;
	const struct config	*c = x->cfg;

	if (c->tls_cert[0] != '\0' && c->tls_key[0] != '\0') {
		buf_adds(b, "\n# TLS with sluice's certificate (STARTTLS on the "
		    "IMAP port); passwords\n# only inside TLS, or from this "
		    "host (Dovecot counts loopback as secure)\nssl = yes\n");
		if (dc_set_file(b, "tls-cert", "ssl_cert", c->tls_cert) == -1 ||
		    dc_set_file(b, "tls-key", "ssl_key", c->tls_key) == -1)
			return EX_CONFIG;
		buf_adds(b, "ssl_min_protocol = TLSv1.2\n"
		    "disable_plaintext_auth = yes\n");
		return 0;
	}
	if (!x->loopback) {
		cli_err("dovecot-config: %s has no tls-cert/tls-key: IMAP "
		    "without TLS is generated only for a loopback address "
		    "(passwords would cross the network in the clear)",
		    x->cfgpath);
		return EX_CONFIG;
	}
	buf_adds(b, "\n# no tls-cert in sluice's config: plaintext, which is "
	    "safe only because\n# the listener is on loopback (see "
	    "docs/imap.md)\nssl = no\ndisable_plaintext_auth = no\n");
	return 0;
}

/* the IMAP listener, and LMTP if asked for */
static void
dc_listen(struct dc_ctx *x)
{
	struct buf	*b = &x->conf;

	buf_addf(b, "\nservice imap-login {\n");
	if (x->o.user != NULL)
		buf_adds(b, "  chroot =\n");
	buf_addf(b, "  inet_listener imap {\n    address = %s\n    port = %s\n"
	    "  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n", x->host,
	    x->port);
	if (!x->o.lmtp)
		return;
	buf_adds(b, "\n# LMTP for delivery by sluice, on base_dir/lmtp; "
	    "only the mailbox owner may use it\nservice lmtp {\n"
	    "  unix_listener lmtp {\n    mode = 0600\n");
	dc_set(b, "    ", "user", x->owner);
	buf_adds(b, "  }\n}\n");
	if (x->cfg->recipient_delimiter[0] != '\0')
		dc_set(b, "", "recipient_delimiter",
		    x->cfg->recipient_delimiter);
}

/* dovecot.conf, top to bottom */
static int
dc_conf(struct dc_ctx *x)
{
	struct buf	*b = &x->conf;
	int		 rc;

	buf_adds(b, "# Dovecot 2.3 configuration for sluice, written by "
	    "`sluice dovecot-config`\n# from ");
	if (dc_quote(b, "", x->cfgpath, "", 0) == -1) {
		cli_err("dovecot-config: the config path contains a control "
		    "character");
		return EX_CONFIG;
	}
	buf_adds(b, "; run it with: dovecot -c THIS-FILE (docs/imap.md)\n"
	    "# Generate it again after changing sluice's config.\n");
	buf_addf(b, "protocols = imap%s\nlisten = %s\n", x->o.lmtp ? " lmtp" :
	    "", x->host);
	if (x->o.base_dir != NULL &&
	    (dc_set(b, "", "base_dir", x->o.base_dir) == -1 ||
	    dc_setx(b, "", "state_dir", "", x->o.base_dir, "/state", 0) == -1))
		return EX_CONFIG;
	if (x->o.log != NULL && dc_set(b, "", "log_path", x->o.log) == -1)
		return EX_CONFIG;
	if ((rc = dc_mail(x)) != 0 || (rc = dc_auth(x)) != 0 ||
	    (rc = dc_tls(x)) != 0)
		return rc;
	dc_listen(x);
	return 0;
}

/*
 * The listen address must be numeric (or "*" / "::" for all): no name
 * lookups, nothing to quote. Notes whether it is loopback.
 */
static int
dc_parse_listen(struct dc_ctx *x)
{
	struct in_addr	 a4;
	struct in6_addr	 a6;

	if (hostport_parse(x->o.listen, x->host, sizeof(x->host), x->port,
	    sizeof(x->port)) == -1) {
		cli_err("dovecot-config: --imap-listen %s: want ADDR:PORT or "
		    "[V6]:PORT", x->o.listen);
		return EX_USAGE;
	}
	if (inet_pton(AF_INET, x->host, &a4) == 1)
		x->loopback = (ntohl(a4.s_addr) >> 24) == 127;
	else if (inet_pton(AF_INET6, x->host, &a6) == 1)
		x->loopback = IN6_IS_ADDR_LOOPBACK(&a6);
	else if (strcmp(x->host, "*") != 0) {
		cli_err("dovecot-config: --imap-listen %s: the address must be "
		    "numeric (or *)", x->o.listen);
		return EX_USAGE;
	}
	return 0;
}

/* The owner of the Maildirs: --user, else sluice's `user`. */
static int
dc_owner(struct dc_ctx *x)
{
	const char	*name = x->o.user ? x->o.user : x->cfg->user;
	struct passwd	*pw;
	struct group	*gr;

	if ((pw = getpwnam(name)) == NULL) {
		cli_err("dovecot-config: no such user %s%s", name, x->o.user ?
		    "" : " (`user` in the sluice config)");
		return EX_NOUSER;
	}
	if (x->o.user != NULL && strcmp(x->o.user, x->cfg->user) != 0)
		cli_err("warning: the Maildirs belong to %s (`user` in %s); "
		    "Dovecot running as %s may not read them", x->cfg->user,
		    x->cfgpath, x->o.user);
	if (pw->pw_uid == 0)
		cli_err("warning: the Maildirs' owner %s is root: Dovecot "
		    "will do mail access as root", name);
	if (strlen(pw->pw_name) >= sizeof(x->owner) ||
	    strspn(pw->pw_name, DC_NAME_CHARS) != strlen(pw->pw_name)) {
		cli_err("dovecot-config: user name %s: not a plain name", name);
		return EX_NOUSER;
	}
	snprintf(x->owner, sizeof(x->owner), "%s", pw->pw_name);
	x->uid = pw->pw_uid;
	x->gid = pw->pw_gid;
	if ((gr = getgrgid(pw->pw_gid)) == NULL ||
	    strlen(gr->gr_name) >= sizeof(x->group) ||
	    strspn(gr->gr_name, DC_NAME_CHARS) != strlen(gr->gr_name)) {
		cli_err("dovecot-config: user %s: no name for group %lu", name,
		    x->gid);
		return EX_NOUSER;
	}
	snprintf(x->group, sizeof(x->group), "%s", gr->gr_name);
	return 0;
}

/*
 * Dovecot's master replaces base_dir/dovecot.conf with a symlink to the
 * config it was started with: a config written there destroys itself.
 */
static int
dc_check_stdout(struct dc_ctx *x)
{
	struct stat	 out, there;
	char		 path[PATH_MAX];

	if (x->o.base_dir == NULL || fstat(STDOUT_FILENO, &out) == -1 ||
	    (size_t)snprintf(path, sizeof(path), "%s/dovecot.conf",
	    x->o.base_dir) >= sizeof(path) || lstat(path, &there) == -1 ||
	    !S_ISREG(there.st_mode))
		return 0;	/* Dovecot's own symlink to the config is fine */
	if (out.st_dev == there.st_dev && out.st_ino == there.st_ino) {
		cli_err("dovecot-config: do not write the config to %s: "
		    "Dovecot replaces that file with a symlink (put it "
		    "outside --base-dir)", path);
		return EX_USAGE;
	}
	return 0;
}

/* Write the SQL file: a new file beside it (0600), fsync, rename. */
static int
dc_write_sql(struct dc_ctx *x)
{
	char	 tmp[PATH_MAX];
	int	 fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp%ld", x->o.sql_file,
	    (long)getpid()) >= sizeof(tmp)) {
		cli_err("dovecot-config: --sql-file: path too long");
		return EX_USAGE;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		cli_err("dovecot-config: %s: %s", tmp, strerror(errno));
		return EX_CANTCREAT;
	}
	/* run by root for a Dovecot started by --user: it must read it */
	if (x->o.user != NULL && geteuid() == 0 &&
	    fchown(fd, (uid_t)x->uid, (gid_t)x->gid) == -1)
		goto fail;
	if (write_all(fd, x->sql.data, x->sql.len) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, x->o.sql_file) == -1) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	cli_err("dovecot-config: %s: %s", x->o.sql_file, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return EX_CANTCREAT;
}

static int
dc_args(int argc, char **argv, struct dc_opts *o)
{
	const char	**dst;
	int		  i;

	for (i = 1; i < argc; i++) {
		dst = NULL;
		if (strcmp(argv[i], "--imap-listen") == 0)
			dst = &o->listen;
		else if (strcmp(argv[i], "--sql-file") == 0)
			dst = &o->sql_file;
		else if (strcmp(argv[i], "--base-dir") == 0)
			dst = &o->base_dir;
		else if (strcmp(argv[i], "--log") == 0)
			dst = &o->log;
		else if (strcmp(argv[i], "--user") == 0)
			dst = &o->user;
		else if (strcmp(argv[i], "--lmtp") == 0) {
			o->lmtp = 1;
			continue;
		} else {
			cli_err("dovecot-config: unknown argument %s", argv[i]);
			return -1;
		}
		if (i + 1 >= argc || argv[i + 1][0] == '\0') {
			cli_err("dovecot-config: %s needs a value", argv[i]);
			return -1;
		}
		*dst = argv[++i];
	}
	if ((o->base_dir && o->base_dir[0] != '/') ||
	    (o->log && o->log[0] != '/') || o->sql_file[0] != '/') {
		cli_err("dovecot-config: --sql-file, --base-dir and --log "
		    "need absolute paths (Dovecot changes directory)");
		return -1;
	}
	if (o->lmtp && o->base_dir == NULL) {
		cli_err("dovecot-config: --lmtp needs --base-dir (the socket "
		    "is DIR/lmtp)");
		return -1;
	}
	return 0;
}

int
cmd_dovecot(struct cli *cli, int argc, char **argv)
{
	struct dc_ctx	 x;
	int		 rc;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_dovecot, 1);
	memset(&x, 0, sizeof(x));
	x.o.listen = DC_DEFAULT_LISTEN;
	x.o.sql_file = DC_DEFAULT_SQL_FILE;
	if (dc_args(argc, argv, &x.o) == -1)
		return cli_usage(usage_dovecot, 0);
	if ((rc = dc_parse_listen(&x)) != 0)
		return rc == EX_USAGE ? cli_usage(usage_dovecot, 0) : rc;
	if ((rc = cli_config(cli)) != 0)
		return rc;
	x.cfg = &cli->cfg;
	x.cfgpath = cli->cfgpath;
	if ((rc = dc_owner(&x)) != 0 || (rc = dc_check_stdout(&x)) != 0)
		return rc;
	buf_init(&x.conf, DC_OUT_MAX);
	buf_init(&x.sql, DC_OUT_MAX);
	if ((rc = dc_sql(&x)) == 0 && (rc = dc_conf(&x)) == 0) {
		if (x.conf.err || x.sql.err) {
			cli_err("dovecot-config: out of memory");
			rc = EX_OSERR;
		} else if ((rc = dc_write_sql(&x)) == 0) {
			fwrite(x.conf.data, 1, x.conf.len, stdout);
			if (fflush(stdout) == EOF || ferror(stdout)) {
				cli_err("dovecot-config: stdout: %s",
				    strerror(errno));
				rc = EX_IOERR;
			}
		}
	}
	buf_free(&x.conf);
	buf_free(&x.sql);
	return rc;
}
