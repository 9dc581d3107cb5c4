/*
 * cmd_domain - `sluice domain add DOMAIN | del DOMAIN | list [--json]`.
 *
 * A domain is a hostname (LDH labels; checked here with cli_hostname_valid,
 * address literals are not mail domains we host), stored lower-cased.
 * Exit: 0 ok; 64 usage; 65 EX_DATAERR bad name, already exists, or del of a
 * domain that still has accounts; 67 EX_NOUSER unknown domain; 75
 * EX_TEMPFAIL / 69 EX_UNAVAILABLE database trouble.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

static const char usage_domain[] =
    "usage: sluice [-c FILE] domain add DOMAIN\n"
    "       sluice [-c FILE] domain del DOMAIN\n"
    "       sluice [-c FILE] domain list [--json]\n"
    "\n"
    "Manage the domains whose mail is delivered to local mailboxes.\n"
    "del refuses a domain that still has accounts.\n"
    "exit: 0 ok, 64 usage, 65 invalid or duplicate domain or domain in use,\n"
    "      67 unknown domain, 69/75 database unavailable\n";

struct domain_list {
	int	 json;
	size_t	 n;
};

static int
domain_add(struct table *t, const char *d)
{
	char	 err[512];

	switch (table_domain_local(t, d)) {
	case TABLE_FOUND:
		cli_err("%s: domain already exists", d);
		return EX_DATAERR;
	case TABLE_TEMPFAIL:
		cli_err("%s: database lookup failed", d);
		return EX_TEMPFAIL;
	case TABLE_NOTFOUND:
		break;
	}
	if (table_domain_add(t, d, err, sizeof(err)) == -1) {
		cli_err("%s: %s", d, err);
		return strstr(err, "already") ? EX_DATAERR : EX_TEMPFAIL;
	}
	printf("domain %s added\n", d);
	return EX_OK;
}

static int
domain_del(struct cli *cli, struct table *t, const char *d)
{
	char		 err[512], dir[PATH_MAX];
	unsigned long	 n;

	switch (table_domain_local(t, d)) {
	case TABLE_NOTFOUND:
		cli_err("%s: no such domain", d);
		return EX_NOUSER;
	case TABLE_TEMPFAIL:
		cli_err("%s: database lookup failed", d);
		return EX_TEMPFAIL;
	case TABLE_FOUND:
		break;
	}
	if (table_domain_accounts(t, d, &n, err, sizeof(err)) == -1) {
		cli_err("%s: %s", d, err);
		return EX_TEMPFAIL;
	}
	if (n > 0) {
		cli_err("%s: domain still has %lu account%s: delete %s first "
		    "(sluice account list %s)", d, n, n == 1 ? "" : "s",
		    n == 1 ? "it" : "them", d);
		return EX_DATAERR;
	}
	if (table_domain_del(t, d, err, sizeof(err)) == -1) {
		cli_err("%s: %s", d, err);
		return strstr(err, "accounts") ? EX_DATAERR : EX_TEMPFAIL;
	}
	/* its (now empty) mailbox directory; leave it if anything is left */
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", cli->cfg.mailboxes,
	    d) < sizeof(dir))
		(void)rmdir(dir);
	printf("domain %s deleted\n", d);
	return EX_OK;
}

static void
domain_row(void *arg, const char **cols, size_t ncols)
{
	struct domain_list	*l = arg;
	char			 when[64];
	long long		 created;

	if (ncols < 2)
		return;
	created = strtoll(cols[1], NULL, 10);
	if (l->json) {
		fputs(l->n ? ",\n  " : "\n  ", stdout);
		fputs("{\"domain\": ", stdout);
		cli_json_str(stdout, cols[0]);
		printf(", \"created\": %lld}", created);
	} else {
		cli_time_str(created, when, sizeof(when));
		printf("%s  %s\n", cols[0], when);
	}
	l->n++;
}

static int
domain_list(struct table *t, int json)
{
	struct domain_list	 l = { json, 0 };
	char			 err[512];

	if (json)
		fputs("[", stdout);
	if (table_domain_list(t, domain_row, &l, err, sizeof(err)) == -1) {
		if (json)
			fputs("]\n", stdout);
		cli_err("%s", err);
		return EX_TEMPFAIL;
	}
	if (json)
		fputs(l.n ? "\n]\n" : "]\n", stdout);
	return EX_OK;
}

/* split argv into the subcommand, one optional operand and --json */
static int
domain_args(int argc, char **argv, const char **sub, char **arg, int *json)
{
	int	 i, n = 0, dashdash = 0;

	for (i = 1; i < argc; i++) {
		if (!dashdash && strcmp(argv[i], "--json") == 0)
			*json = 1;
		else if (!dashdash && strcmp(argv[i], "--") == 0)
			dashdash = 1;
		else if (!dashdash && argv[i][0] == '-') {
			cli_err("domain: unknown option %s", argv[i]);
			return -1;
		} else if (n == 0) {
			*sub = argv[i];
			n++;
		} else if (n == 1) {
			*arg = argv[i];
			n++;
		} else {
			cli_err("domain: too many arguments");
			return -1;
		}
	}
	if (*sub == NULL)
		return -1;
	return 0;
}

int
cmd_domain(struct cli *cli, int argc, char **argv)
{
	const char	*sub = NULL;
	char		*d = NULL;
	struct table	*t;
	int		 json = 0, rc, list;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_domain, 1);
	if (domain_args(argc, argv, &sub, &d, &json) == -1)
		return cli_usage(usage_domain, 0);
	list = strcmp(sub, "list") == 0;
	if (!list && strcmp(sub, "add") != 0 && strcmp(sub, "del") != 0) {
		cli_err("domain: unknown subcommand \"%s\"", sub);
		return cli_usage(usage_domain, 0);
	}
	if ((list && d != NULL) || (!list && (d == NULL || json)))
		return cli_usage(usage_domain, 0);
	if (d != NULL) {
		cli_lower(d);
		if (!cli_hostname_valid(d)) {
			cli_err("\"%s\" is not a valid domain name", d);
			return EX_DATAERR;
		}
	}
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if ((t = cli_table(cli)) == NULL)
		return EX_UNAVAILABLE;
	if (list)
		rc = domain_list(t, json);
	else if (strcmp(sub, "add") == 0)
		rc = domain_add(t, d);
	else
		rc = domain_del(cli, t, d);
	table_close(t);
	return rc;
}
