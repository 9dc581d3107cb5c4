/*
 * cmd_check - `sluice check [--dump]`: validate the configuration.
 *
 * Syntax errors come from config_load() as "FILE:LINE: message" (exit 78,
 * EX_CONFIG). Then the environment: the spool and mailboxes directories
 * (missing: a warning if their parent exists, since sluiced creates them),
 * files the config names (aliases, TLS certificate and key; a key readable
 * by others is refused; the routes' AUTH files, which must belong to the
 * queue's user alone; relay-ca-file; the online-state source; the
 * dkim-sign keys, which must parse and belong to the user alone), and the
 * database (opened; a SQLite file that does
 * not exist yet is a warning, it is created on first use; failure exits 69,
 * EX_UNAVAILABLE). On success prints "FILE: configuration ok"; --dump then
 * prints the settings that differ from the defaults.
 */
#include <sys/stat.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "aliases.h"
#include "cli.h"
#include "dkim.h"

static const char usage_check[] =
    "usage: sluice [-c FILE] check [--dump]\n"
    "\n"
    "Validate the configuration file and the directories, files and\n"
    "database it names. Errors are printed as FILE:LINE: message.\n"
    "  --dump   then print the settings that differ from the defaults\n"
    "exit: 0 ok, 78 configuration error, 69 database unusable, 64 usage\n";

/* a directory sluiced creates: warn when missing */
static void
check_dir(const char *what, const char *path)
{
	struct stat	 st;
	char		 tmp[PATH_MAX];

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			cli_err("warning: %s %s is not a directory", what, path);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s", path);
	if (stat(dirname(tmp), &st) == 0 && S_ISDIR(st.st_mode))
		cli_err("warning: %s %s does not exist yet (sluiced creates "
		    "it)", what, path);
	else
		cli_err("warning: %s %s does not exist, nor does its parent",
		    what, path);
}

/* The routes' AUTH files, the CA file, the online-state source. */
static int
check_routes(const struct config *c)
{
	struct stat	 st;
	struct passwd	*pw;
	uid_t		 owner = geteuid() == 0 && (pw = getpwnam(c->user)) ?
	    pw->pw_uid : geteuid();

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];
		if (r->auth[0] == '\0')
			continue;
		if (stat(r->auth, &st) == -1) {
			fprintf(stderr, "%s:%u: auth %s: %s\n", c->path,
			    r->line, r->auth, strerror(errno));
			return -1;
		}
		if (st.st_uid != owner || (st.st_mode & 077)) {
			fprintf(stderr, "%s:%u: auth %s must belong to %s and "
			    "be readable by it alone (chown %s; chmod 600)\n",
			    c->path, r->line, r->auth, c->user, c->user);
			return -1;
		}
	}
	if (c->relay_ca[0] && access(c->relay_ca, R_OK) == -1) {
		fprintf(stderr, "%s: relay-ca-file %s: %s\n", c->path,
		    c->relay_ca, strerror(errno));
		return -1;
	}
	if (c->online.kind == ONLINE_COMMAND &&
	    access(c->online.path, X_OK) == -1) {
		fprintf(stderr, "%s: online-state command %s: %s\n", c->path,
		    c->online.path, strerror(errno));
		return -1;
	}
	if (c->online.kind == ONLINE_FILE && access(c->online.path, F_OK) ==
	    -1)
		cli_err("warning: online-state file %s does not exist: the "
		    "state is \"offline\" until it does", c->online.path);
	return 0;
}

/*
 * The dkim-sign keys: the relay reads them after dropping privileges, so
 * they belong to the user (when checked as root) and to nobody else.
 */
static int
check_dkim(const struct config *c)
{
	struct stat	 st;
	struct passwd	*pw;
	struct dkim_key	*k;
	char		 err[PATH_MAX + 256];
	uid_t		 owner = geteuid() == 0 && (pw = getpwnam(c->user)) ?
	    pw->pw_uid : geteuid();

	for (size_t i = 0; i < c->ndkim; i++) {
		const struct dkim_sign_cfg *d = &c->dkim[i];
		if (stat(d->keyfile, &st) == -1) {
			fprintf(stderr, "%s:%u: dkim-sign %s: %s\n", c->path,
			    d->line, d->keyfile, strerror(errno));
			return -1;
		}
		if (!S_ISREG(st.st_mode) || st.st_uid != owner ||
		    (st.st_mode & 077)) {
			fprintf(stderr, "%s:%u: dkim-sign %s must be a file of "
			    "%s readable by it alone (chown %s; chmod 600)\n",
			    c->path, d->line, d->keyfile, c->user, c->user);
			return -1;
		}
		if ((k = dkim_key_load(d->keyfile, err, sizeof(err))) ==
		    NULL) {
			fprintf(stderr, "%s:%u: dkim-sign %s\n", c->path,
			    d->line, err);
			return -1;
		}
		dkim_key_free(k);
	}
	return 0;
}

/* files the config names: 0 ok, -1 after printing "FILE: message" */
static int
check_files(const struct config *c)
{
	struct stat	 st;

	if (c->aliases[0]) {
		struct aliases	*al;
		char		 err[1024];

		if ((al = aliases_load(c->aliases, err, sizeof(err))) == NULL) {
			fprintf(stderr, "%s\n", err);
			return -1;
		}
		if (aliases_check_loops(al, err, sizeof(err)) == -1) {
			fprintf(stderr, "%s\n", err);
			aliases_free(al);
			return -1;
		}
		aliases_free(al);
	}
	if (c->tls_cert[0] && access(c->tls_cert, R_OK) == -1) {
		fprintf(stderr, "%s: tls-cert %s: %s\n", c->path, c->tls_cert,
		    strerror(errno));
		return -1;
	}
	if (c->tls_key[0]) {
		if (stat(c->tls_key, &st) == -1 ||
		    access(c->tls_key, R_OK) == -1) {
			fprintf(stderr, "%s: tls-key %s: %s\n", c->path,
			    c->tls_key, strerror(errno));
			return -1;
		}
		if (st.st_mode & (S_IRWXG | S_IRWXO)) {
			fprintf(stderr, "%s: tls-key %s is readable by others "
			    "(chmod 600 it)\n", c->path, c->tls_key);
			return -1;
		}
	}
	return 0;
}

/* the database: 0 ok or EX_UNAVAILABLE after printing the error */
static int
check_database(struct cli *cli)
{
	struct table	*t;
	struct stat	 st;
	const char	*db = cli->cfg.database;
	char		 tmp[PATH_MAX];

	if (strncmp(db, "sqlite:", 7) == 0 && stat(db + 7, &st) == -1 &&
	    errno == ENOENT) {
		snprintf(tmp, sizeof(tmp), "%s", db + 7);
		if (stat(dirname(tmp), &st) == -1 || !S_ISDIR(st.st_mode)) {
			cli_err("database %s: its directory does not exist",
			    db + 7);
			return EX_UNAVAILABLE;
		}
		cli_err("warning: database %s does not exist yet (created "
		    "on first use)", db + 7);
		return 0;
	}
	if ((t = cli_table(cli)) == NULL)
		return EX_UNAVAILABLE;
	table_close(t);
	return 0;
}

int
cmd_check(struct cli *cli, int argc, char **argv)
{
	int	 dump = 0, i, rc;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_check, 1);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dump") == 0)
			dump = 1;
		else {
			cli_err("check: unexpected argument \"%s\"", argv[i]);
			return cli_usage(usage_check, 0);
		}
	}
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if (check_files(&cli->cfg) == -1 || check_routes(&cli->cfg) == -1 ||
	    check_dkim(&cli->cfg) == -1)
		return EX_CONFIG;
	check_dir("spool", cli->cfg.spool);
	check_dir("mailboxes", cli->cfg.mailboxes);
	if ((rc = check_database(cli)) != 0)
		return rc;
	printf("%s: configuration ok\n", cli->cfgpath);
	if (dump) {
		fflush(stdout);
		config_dump(&cli->cfg, STDOUT_FILENO);
	}
	return EX_OK;
}
