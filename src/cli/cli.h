/*
 * cli - shared declarations of the `sluice` command and its subcommands.
 *
 * Each command is `int cmd_X(struct cli *, int argc, char **argv)` with
 * argv[0] the command's own name; it returns an exit status from
 * <sysexits.h>. Commands parse their arguments first (so --help and usage
 * errors need no config) and then call cli_config() to load the config.
 * Messages go to stderr prefixed "sluice: "; results go to stdout.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stdio.h>

#include "config.h"
#include "table.h"

struct cli {
	const char	*cfgopt;	/* -c FILE, or NULL */
	const char	*cfgpath;	/* resolved by cli_config() */
	int		 verbose;
	int		 loaded;
	struct config	 cfg;
};

/* the dispatch table of sluice.c */
struct cli_cmd {
	const char	*name;
	int		(*run)(struct cli *, int, char **);
};

int	cmd_check(struct cli *, int, char **);
int	cmd_domain(struct cli *, int, char **);
int	cmd_account(struct cli *, int, char **);
int	cmd_queue(struct cli *, int, char **);
int	cmd_sendmail(struct cli *, int, char **);
int	cmd_robot(struct cli *, int, char **);
int	cmd_alias(struct cli *, int, char **);
int	cmd_db(struct cli *, int, char **);
int	cmd_dovecot(struct cli *, int, char **);
int	cmd_mask(struct cli *, int, char **);
int	cmd_inject(struct cli *, int, char **);
int	cmd_dissect(struct cli *, int, char **);
int	cmd_dkim(struct cli *, int, char **);

/* load the config once; 0 or EX_CONFIG after printing the error */
int	cli_config(struct cli *);
/* open the database and create the schema; NULL after printing the error */
struct table *cli_table(struct cli *);
/* usage on stdout with status 0 (help) or on stderr with EX_USAGE */
int	cli_usage(const char *usage, int help);
/* does argv[1..] hold -h or --help (before any "--")? */
int	cli_wants_help(int argc, char **argv);
/* print "sluice: " + message on stderr */
void	cli_err(const char *, ...) __attribute__((format(printf, 1, 2)));
/*
 * Ask "question [y/N]" on the terminal before deleting what: 0 yes,
 * EX_USAGE without a terminal (pass --yes), EXIT_FAILURE for no.
 */
int	cli_confirm(const char *question, const char *what);
/* is s a hostname: LDH labels of 1..63 octets, 253 in all? */
int	cli_hostname_valid(const char *s);
/* lower-case ASCII in place */
void	cli_lower(char *s);
/*
 * The names in directory dfd (read through a dup, from the start),
 * sorted by strcmp, without "." and ".." (with skip_hidden: without any
 * name starting with a dot), at most max of them: an array (empty, not
 * NULL, for an empty directory) freed with cli_names_free(), or NULL
 * with errno set.
 */
char	**cli_dir_names(int dfd, int skip_hidden, size_t max, size_t *n);
void	  cli_names_free(char **, size_t n);
/* s as a JSON string (quoted, escaped) on fp */
void	cli_json_str(FILE *fp, const char *s);
/* ISO 8601 UTC time, "YYYY-MM-DDTHH:MM:SSZ" */
void	cli_time_str(long long t, char *dst, size_t dstlen);
/*
 * Submit msg[0..len) with `sluice -c CFG sendmail -i -f FROM -- RCPT...`
 * (cli_submit.c): 0, sendmail's own non-zero exit status, or EX_OSERR /
 * EX_TEMPFAIL when it could not run or was killed.
 */
int	cli_sendmail_pipe(const char *cfgpath, const char *from,
	    const char *const *rcpts, size_t nrcpts, const void *msg,
	    size_t len);

#endif
