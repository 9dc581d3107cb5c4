/*
 * cmd_alias - `sluice alias add ADDR TARGET... [--owner USER]`,
 * `alias del ADDR [TARGET]`, `alias list [DOMAIN] [--json]`: the aliases
 * of the database, which take effect at once (the lookup process reads
 * them at each delivery). `sluice db migrate` brings the schema up to date.
 *
 * ADDR is "name@domain", "prefix*@domain" (a wildcard) or "@domain" (the
 * catch-all) of a local domain; a TARGET is an address, "|command" or
 * "/path/file" — the last two only with `alias-database-commands yes`,
 * so that a web form writing rows cannot make sluice run commands unless
 * the administrator decided it may. Exit: 0 ok, 64 usage, 65 bad input,
 * 67 no such alias or domain, 77 commands not allowed, 69/75 database.
 */
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "addr.h"
#include "cli.h"

static const char usage_alias[] =
    "usage: sluice [-c FILE] alias add ADDR TARGET... [--owner USER]\n"
    "       sluice [-c FILE] alias del ADDR [TARGET]\n"
    "       sluice [-c FILE] alias list [DOMAIN] [--json]\n"
    "\n"
    "Aliases in the database (changes apply at once, no reload).\n"
    "ADDR: name@domain, prefix*@domain (wildcard) or @domain (catch-all).\n"
    "TARGET: an address, \"|/path/robot args\" or /path/file (commands and\n"
    "files need `alias-database-commands yes`); --owner: the user they run\n"
    "as (default: robot-user).\n"
    "exit: 0 ok, 64 usage, 65 invalid, 67 no such alias or domain,\n"
    "      77 commands not allowed, 69/75 database unavailable\n";

static const char usage_db[] =
    "usage: sluice [-c FILE] db migrate\n"
    "\n"
    "Create the database schema or migrate it to this version of sluice\n"
    "(sluiced also does it at start). Prints the schema version.\n";

/* Lower-case ADDR and check it is a key with a local domain. */
static int
alias_key(struct table *t, const char *in, char *key, size_t keylen)
{
	const char	*at = strrchr(in, '@'), *star;
	size_t		 n = strlen(in);
	struct mailaddr	 a;

	if (n == 0 || n >= keylen || at == NULL || at[1] == '\0') {
		cli_err("%s: want name@domain, prefix*@domain or @domain", in);
		return EX_DATAERR;
	}
	for (size_t i = 0; i <= n; i++)
		key[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' +
		    'a' : in[i]);
	star = strchr(key, '*');
	if (star != NULL && (star + 1 != key + (at - in) ||
	    strchr(star + 1, '*'))) {
		cli_err("%s: a wildcard is one '*' at the end of the name", in);
		return EX_DATAERR;
	}
	/* the name part (without its '*') must be a valid local part */
	if (at != in && (star == NULL || star != key)) {
		char probe[ADDR_STR_MAX + 8];
		snprintf(probe, sizeof(probe), "%.*s%s@%s",
		    (int)((star ? star : key + (at - in)) - key), key,
		    star ? "x" : "", at + 1);
		if (addr_parse(probe, strlen(probe), ADDR_F_UTF8, &a) !=
		    ADDR_OK) {
			cli_err("%s: not a valid address", in);
			return EX_DATAERR;
		}
	}
	switch (table_domain_local(t, at + 1)) {
	case TABLE_FOUND:
		return EX_OK;
	case TABLE_NOTFOUND:
		cli_err("%s: no such domain here (sluice domain add %s)", at + 1,
		    at + 1);
		return EX_NOUSER;
	default:
		cli_err("%s: database lookup failed", in);
		return EX_TEMPFAIL;
	}
}

/* Check one target and put it in its stored form. */
static int
alias_target(struct cli *cli, const char *in, char *out, size_t outlen)
{
	struct mailaddr	 a;
	size_t		 n = strlen(in);

	if (n == 0 || n >= outlen || strpbrk(in, "\r\n") != NULL) {
		cli_err("\"%s\": empty, too long or several lines", in);
		return EX_DATAERR;
	}
	if (in[0] == '|' || in[0] == '/') {
		if (!cli->cfg.alias_db_commands) {
			cli_err("%s: commands and files in database aliases "
			    "need `alias-database-commands yes` in %s", in,
			    cli->cfgpath);
			return EX_NOPERM;
		}
		if (in[0] == '|' && in[1] != '/') {
			cli_err("%s: the robot must be an absolute path", in);
			return EX_DATAERR;
		}
		snprintf(out, outlen, "%s", in);
		return EX_OK;
	}
	if (in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (addr_parse(in, n, ADDR_F_UTF8, &a) != ADDR_OK ||
	    a.domain[0] == '\0') {
		cli_err("%s: not an address, |command or /path", in);
		return EX_DATAERR;
	}
	snprintf(out, outlen, "%.*s", (int)n, in);
	return EX_OK;
}

struct alias_list {
	int	 json;
	size_t	 n;
};

static void
alias_row(void *arg, const char **cols, size_t n)
{
	struct alias_list	*l = arg;

	if (n < 4)
		return;
	if (l->json) {
		fputs(l->n ? ",\n  {\"address\": " : "\n  {\"address\": ",
		    stdout);
		cli_json_str(stdout, cols[0]);
		fputs(", \"target\": ", stdout);
		cli_json_str(stdout, cols[1]);
		fputs(", \"owner\": ", stdout);
		cli_json_str(stdout, cols[2]);
		printf(", \"created\": %s}", cols[3]);
	} else
		printf("%s: %s%s%s%s\n", cols[0], cols[1], cols[2][0] ?
		    "  (as " : "", cols[2], cols[2][0] ? ")" : "");
	l->n++;
}

int
cmd_alias(struct cli *cli, int argc, char **argv)
{
	struct table		*t;
	struct alias_list	 l;
	struct passwd		*pw = NULL;
	char			 key[ADDR_STR_MAX + 8], tg[1100], err[512];
	const char		*owner = "", *verb;
	int			 rc = EX_OK, first = 2, last = argc;

	if (cli_wants_help(argc, argv) || argc < 2)
		return cli_usage(usage_alias, argc >= 2);
	verb = argv[1];
	if (argc >= 4 && strcmp(argv[argc - 2], "--owner") == 0) {
		owner = argv[argc - 1];
		last = argc - 2;
	}
	if ((strcmp(verb, "add") == 0 && last < 4) ||
	    (strcmp(verb, "del") == 0 && (last < 3 || last > 4)) ||
	    (strcmp(verb, "list") == 0 && last > 4) ||
	    (strcmp(verb, "add") && strcmp(verb, "del") && strcmp(verb, "list")))
		return cli_usage(usage_alias, 0);
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if (owner[0] && (pw = getpwnam(owner)) == NULL) {
		cli_err("--owner %s: no such user", owner);
		return EX_NOUSER;
	}
	if (owner[0] && pw->pw_uid == 0) {
		cli_err("--owner %s: never root", owner);
		return EX_DATAERR;
	}
	if ((t = cli_table(cli)) == NULL)
		return EX_UNAVAILABLE;
	if (strcmp(verb, "list") == 0) {
		memset(&l, 0, sizeof(l));
		const char *dom = NULL;
		for (int i = first; i < last; i++)
			if (strcmp(argv[i], "--json") == 0)
				l.json = 1;
			else
				dom = argv[i];
		if (l.json)
			fputs("[", stdout);
		if (table_alias_list(t, dom, alias_row, &l, err,
		    sizeof(err)) == -1) {
			cli_err("%s", err);
			rc = EX_TEMPFAIL;
		}
		if (l.json)
			fputs(l.n ? "\n]\n" : "]\n", stdout);
		table_close(t);
		return rc;
	}
	if ((rc = alias_key(t, argv[first], key, sizeof(key))) != EX_OK)
		goto out;
	if (strcmp(verb, "del") == 0) {
		tg[0] = '\0';
		if (last == 4 && (rc = alias_target(cli, argv[3], tg,
		    sizeof(tg))) != EX_OK && rc != EX_NOPERM)
			goto out;
		if (table_alias_del(t, key, tg[0] ? tg : NULL, err,
		    sizeof(err)) == -1) {
			cli_err("%s", err);
			rc = strstr(err, "no such") ? EX_NOUSER : EX_TEMPFAIL;
			goto out;
		}
		printf("alias %s%s%s deleted\n", key, tg[0] ? " -> " : "", tg);
		rc = EX_OK;
		goto out;
	}
	for (int i = first + 1; i < last; i++)
		if ((rc = alias_target(cli, argv[i], tg, sizeof(tg))) != EX_OK)
			goto out;
	for (int i = first + 1; i < last; i++) {
		alias_target(cli, argv[i], tg, sizeof(tg));
		if (table_alias_add(t, key, tg, owner, err, sizeof(err)) ==
		    -1) {
			cli_err("%s", err);
			rc = strstr(err, "already") ? EX_DATAERR : EX_TEMPFAIL;
			goto out;
		}
		printf("alias %s -> %s added\n", key, tg);
	}
out:
	table_close(t);
	return rc;
}

int
cmd_db(struct cli *cli, int argc, char **argv)
{
	struct table	*t;
	char		 dsn[sizeof(cli->cfg.database)];
	int		 rc;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_db, 1);
	if (argc != 2 || strcmp(argv[1], "migrate") != 0)
		return cli_usage(usage_db, 0);
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if ((t = cli_table(cli)) == NULL)	/* migrates */
		return EX_UNAVAILABLE;
	printf("%s: schema version %d\n", table_dsn_safe(cli->cfg.database,
	    dsn, sizeof(dsn)), table_schema_version(t));
	table_close(t);
	return EX_OK;
}
