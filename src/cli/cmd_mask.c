/*
 * cmd_mask - `sluice mask`: the services of the masked relay (issue 6,
 * docs/masks.md), their pairs and their statistics.
 *
 *	mask service add REAL [--label TEXT] [--expires DATE] [--json]
 *	mask service del|disable|enable SERVICE [--yes]
 *	mask list [--json]
 *	mask pairs SERVICE [--json]
 *	mask stats [SERVICE] [--since DATE] [--json]
 *
 * SERVICE is service-CODE@DOMAIN, service-CODE or CODE. New codes are
 * signed with the first mask-key; a REAL address in the mask domain is
 * refused (a mask never forwards to a mask). DATE is YYYY-MM-DD or
 * YYYY-MM-DDTHH:MM:SSZ, UTC. Exit: 0 ok, 64 usage, 65 invalid input,
 * 67 no such service, 75 database trouble, 78 no mask-domain (or a
 * files: database, which holds no masks).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "cli.h"
#include "mask.h"
#include "mask_stats.h"

static const char usage_mask[] =
    "usage: sluice [-c FILE] mask service add REAL-ADDR [--label TEXT]\n"
    "                                [--expires DATE] [--json]\n"
    "       sluice [-c FILE] mask service del SERVICE [--yes]\n"
    "       sluice [-c FILE] mask service disable|enable SERVICE\n"
    "       sluice [-c FILE] mask list [--json]\n"
    "       sluice [-c FILE] mask pairs SERVICE [--json]\n"
    "       sluice [-c FILE] mask pair disable|enable PAIR\n"
    "       sluice [-c FILE] mask stats [SERVICE] [--since DATE] [--json]\n"
    "\n"
    "The masked relay (needs mask-domain and mask-key in the config).\n"
    "`service add` prints the new service-CODE@MASK-DOMAIN, which stands\n"
    "for REAL-ADDR; SERVICE is that address, service-CODE or CODE.\n"
    "PAIR is a user address from `mask pairs`, user-CODE or CODE.\n"
    "--label: printable text, at most 255 octets. DATE: YYYY-MM-DD or\n"
    "YYYY-MM-DDTHH:MM:SSZ (UTC); --expires must be in the future.\n"
    "stats: messages in, people, human replies, reply rate and the\n"
    "median and 90th percentile of the time to the first reply.\n"
    "exit: 0 ok, 64 usage, 65 invalid, 67 no such service or pair,\n"
    "      75 database trouble, 78 no mask-domain\n";

#define M_JSON		0x01
#define M_YES		0x02
#define M_LABEL		0x04
#define M_EXPIRES	0x08
#define M_SINCE		0x10

struct mask_opts {
	unsigned	 seen;
	const char	*label, *expires, *since;
	const char	*pos[4];	/* words after "mask" */
	int		 npos;
};

/* 0, or -1 after a message (a usage error) */
static int
mask_args(int argc, char **argv, struct mask_opts *o)
{
	int	 i;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		const char	*s = argv[i], **dst = NULL;
		unsigned	 bit = 0;

		if (strcmp(s, "--json") == 0)
			o->seen |= M_JSON;
		else if (strcmp(s, "--yes") == 0 || strcmp(s, "-y") == 0)
			o->seen |= M_YES;
		else if (strcmp(s, "--label") == 0)
			dst = &o->label, bit = M_LABEL;
		else if (strcmp(s, "--expires") == 0)
			dst = &o->expires, bit = M_EXPIRES;
		else if (strcmp(s, "--since") == 0)
			dst = &o->since, bit = M_SINCE;
		else if (s[0] == '-' && s[1] != '\0') {
			cli_err("mask: unknown option %s", s);
			return -1;
		} else if (o->npos < 4)
			o->pos[o->npos++] = s;
		else {
			cli_err("mask: too many arguments");
			return -1;
		}
		if (dst != NULL) {
			if (i + 1 >= argc) {
				cli_err("mask: %s needs a value", s);
				return -1;
			}
			*dst = argv[++i];
			o->seen |= bit;
		}
	}
	return 0;
}

/* Is the word list and option set one of the commands? */
static int
mask_usage_ok(const struct mask_opts *o)
{
	const char	*v = o->npos > 0 ? o->pos[0] : "";
	const char	*w = o->npos > 1 ? o->pos[1] : "";
	unsigned	 allowed;

	if (strcmp(v, "service") == 0 && strcmp(w, "add") == 0) {
		allowed = M_JSON | M_LABEL | M_EXPIRES;
		if (o->npos != 3)
			return 0;
	} else if (strcmp(v, "service") == 0 && (strcmp(w, "del") == 0 ||
	    strcmp(w, "disable") == 0 || strcmp(w, "enable") == 0)) {
		allowed = strcmp(w, "del") == 0 ? M_YES : 0;
		if (o->npos != 3)
			return 0;
	} else if (strcmp(v, "list") == 0) {
		allowed = M_JSON;
		if (o->npos != 1)
			return 0;
	} else if (strcmp(v, "pair") == 0 && (strcmp(w, "disable") == 0 ||
	    strcmp(w, "enable") == 0)) {
		allowed = 0;
		if (o->npos != 3)
			return 0;
	} else if (strcmp(v, "pairs") == 0) {
		allowed = M_JSON;
		if (o->npos != 2)
			return 0;
	} else if (strcmp(v, "stats") == 0) {
		allowed = M_JSON | M_SINCE;
		if (o->npos > 2)
			return 0;
	} else
		return 0;
	return (o->seen & ~allowed) == 0;
}

/* digits s[0..n) as a number; -1 if one is not a digit */
static long
mask_digits(const char *s, size_t n)
{
	long	 v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC) to *t; 0 or -1 */
static int
mask_date(const char *s, long long *t)
{
	struct tm	 tm, back;
	size_t		 n = strlen(s);
	time_t		 tt;
	long		 y, mo, d, h = 0, mi = 0, se = 0;

	if ((n != 10 && n != 20) || s[4] != '-' || s[7] != '-')
		return -1;
	if (n == 20 && (s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[19] != 'Z'))
		return -1;
	y = mask_digits(s, 4);
	mo = mask_digits(s + 5, 2);
	d = mask_digits(s + 8, 2);
	if (n == 20) {
		h = mask_digits(s + 11, 2);
		mi = mask_digits(s + 14, 2);
		se = mask_digits(s + 17, 2);
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)y - 1900;
	tm.tm_mon = (int)mo - 1;
	tm.tm_mday = (int)d;
	tm.tm_hour = (int)h;
	tm.tm_min = (int)mi;
	tm.tm_sec = (int)se;
	if ((tt = timegm(&tm)) == (time_t)-1 || gmtime_r(&tt, &back) ==
	    NULL || back.tm_mday != (int)d || back.tm_mon != (int)mo - 1)
		return -1;	/* 2026-02-30 */
	*t = (long long)tt;
	return 0;
}

/* printable UTF-8 without control characters (C0, DEL, C1) */
static int
mask_label_ok(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 n = strlen(s);

	if (n > TABLE_MASK_LABEL_MAX || !addr_utf8_valid(s, n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return 0;
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

/*
 * SERVICE (service-CODE@DOMAIN, service-CODE or CODE) or, for kind
 * MASK_USER, PAIR (user-CODE@DOMAIN, user-CODE or CODE) to its code
 */
static int
mask_code_arg(struct cli *cli, const char *in, enum mask_kind kind,
    char *code, size_t len)
{
	char		 local[ADDR_LOCAL_MAX + 16];
	const char	*at = strrchr(in, '@');
	const char	*prefix = kind == MASK_USER ? "user-" : "service-";
	const char	*noun = kind == MASK_USER ? "pair" : "service";
	size_t		 n = at ? (size_t)(at - in) : strlen(in), i;

	code[0] = '\0';
	if (at != NULL && strcasecmp(at + 1, cli->cfg.mask_domain) != 0) {
		cli_err("%s: not in the mask domain %s", in,
		    cli->cfg.mask_domain);
		return EX_NOUSER;
	}
	if (n == 0 || n >= sizeof(local))
		goto bad;
	memcpy(local, in, n);
	local[n] = '\0';
	if (strncasecmp(local, prefix, strlen(prefix)) == 0) {
		if (mask_local_parse(local, code, len) != kind)
			goto bad;
	} else if (at == NULL && n < len) {
		memcpy(code, local, n + 1);
		cli_lower(code);
	} else
		goto bad;
	if (strlen(code) != MASK_CODE_LEN)
		goto bad;
	for (i = 0; code[i] != '\0'; i++)
		if (!((code[i] >= 'a' && code[i] <= 'z') ||
		    (code[i] >= '2' && code[i] <= '7')))
			goto bad;
	return EX_OK;
bad:
	cli_err("%s: no such %s", in, noun);
	return EX_NOUSER;
}

static int
mask_service_arg(struct cli *cli, const char *in, char *code, size_t len)
{
	return mask_code_arg(cli, in, MASK_SERVICE, code, len);
}

/* the service of code, or the exit status after a message */
static int
mask_service_find(struct table *t, const char *in, const char *code,
    struct table_mask_service *s)
{
	switch (table_mask_service_get(t, code, s)) {
	case TABLE_FOUND:
		return EX_OK;
	case TABLE_NOTFOUND:
		cli_err("%s: no such service", in);
		return EX_NOUSER;
	default:
		cli_err("%s: database lookup failed", in);
		return EX_TEMPFAIL;
	}
}

static const char *
mask_state(int disabled, long long expires, long long now)
{
	if (disabled == 1)
		return "disabled";
	if (disabled == 2)
		return "disabled (bounces)";
	if (expires > 0 && expires <= now)
		return "expired";
	return "active";
}

/* a time for JSON: the ISO string, or null for 0 (never) */
static void
mask_json_time(long long t)
{
	char	 buf[32];

	if (t <= 0) {
		fputs("null", stdout);
		return;
	}
	cli_time_str(t, buf, sizeof(buf));
	cli_json_str(stdout, buf);
}

static int
mask_service_add(struct cli *cli, const struct mask_opts *o)
{
	struct table	*t;
	struct mailaddr	 a;
	char		 real[ADDR_STR_MAX + 1], code[MASK_CODE_LEN + 1];
	char		 err[512];
	const char	*in = o->pos[2], *label = o->label ? o->label : "";
	size_t		 n = strlen(in);
	long long	 expires = 0;
	int		 rc, tries;

	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (addr_parse(in, n, ADDR_F_UTF8, &a) != ADDR_OK ||
	    a.domain[0] == '\0' || a.domain[0] == '[') {
		cli_err("%s: not a valid address", o->pos[2]);
		return EX_DATAERR;
	}
	if (strcasecmp(a.domain, cli->cfg.mask_domain) == 0) {
		cli_err("%s: in the mask domain: a mask never forwards to a "
		    "mask", o->pos[2]);
		return EX_DATAERR;
	}
	addr_format(&a, real, sizeof(real));
	cli_lower(real);
	if (!mask_label_ok(label)) {
		cli_err("--label: want printable UTF-8 without control "
		    "characters, at most %d octets", TABLE_MASK_LABEL_MAX);
		return EX_DATAERR;
	}
	if (o->expires != NULL && (mask_date(o->expires, &expires) == -1 ||
	    expires <= (long long)time(NULL))) {
		cli_err("--expires %s: want a future YYYY-MM-DD or "
		    "YYYY-MM-DDTHH:MM:SSZ (UTC)", o->expires);
		return EX_DATAERR;
	}
	if ((t = cli_table(cli)) == NULL)
		return EX_TEMPFAIL;
	/* a code taken already is astronomically unlikely: draw again once */
	for (tries = 0, rc = -1; tries < 2 && rc == -1; tries++) {
		if (mask_code_new(MASK_SERVICE, cli->cfg.mask_keys[0], code,
		    sizeof(code)) == -1) {
			cli_err("cannot make a code (mask-key, randomness)");
			table_close(t);
			return EX_SOFTWARE;
		}
		rc = table_mask_service_add(t, code, real, label, expires, err,
		    sizeof(err));
		if (rc == -1 && strstr(err, "already exists") == NULL)
			break;
	}
	table_close(t);
	if (rc == -1) {
		cli_err("%s", err);
		/* the files backend: the relay needs a database (config) */
		return strstr(err, "read-only") ? EX_CONFIG : EX_TEMPFAIL;
	}
	if (!(o->seen & M_JSON)) {
		printf("service-%s@%s\n", code, cli->cfg.mask_domain);
		return EX_OK;
	}
	snprintf(err, sizeof(err), "service-%s@%s", code, cli->cfg.mask_domain);
	fputs("{\"address\": ", stdout);
	cli_json_str(stdout, err);
	fputs(", \"code\": ", stdout);
	cli_json_str(stdout, code);
	fputs(", \"real\": ", stdout);
	cli_json_str(stdout, real);
	fputs(", \"label\": ", stdout);
	cli_json_str(stdout, label);
	fputs(", \"expires\": ", stdout);
	mask_json_time(expires);
	fputs("}\n", stdout);
	return EX_OK;
}

/* Ask on the terminal; 0 yes, else the exit status. */
static int
mask_confirm(const char *who)
{
	char	 q[512];

	snprintf(q, sizeof(q), "Delete %s, its pairs and its statistics?", who);
	return cli_confirm(q, who);
}

/* pair disable|enable: one person's user address, the service stays */
static int
mask_pair_change(struct cli *cli, const struct mask_opts *o)
{
	struct table	*t;
	char		 code[TABLE_MASK_CODE_MAX + 1];
	char		 err[512], addr[512];
	int		 enable = strcmp(o->pos[1], "enable") == 0, rc;

	if ((rc = mask_code_arg(cli, o->pos[2], MASK_USER, code,
	    sizeof(code))) != EX_OK)
		return rc;
	snprintf(addr, sizeof(addr), "user-%s@%s", code, cli->cfg.mask_domain);
	if ((t = cli_table(cli)) == NULL)
		return EX_TEMPFAIL;
	if (table_mask_pair_set(t, code, !enable, err, sizeof(err)) == -1) {
		cli_err("%s: %s", addr, err);
		rc = strstr(err, "no such") ? EX_NOUSER : EX_TEMPFAIL;
	} else {
		printf("%s %s\n", addr, enable ? "enabled" : "disabled");
		rc = EX_OK;
	}
	table_close(t);
	return rc;
}

/* service del|disable|enable */
static int
mask_service_change(struct cli *cli, const struct mask_opts *o)
{
	struct table			*t;
	struct table_mask_service	 s;
	char				 code[TABLE_MASK_CODE_MAX + 1];
	char				 err[512], addr[512];
	const char			*verb = o->pos[1];
	int				 rc;

	if ((rc = mask_service_arg(cli, o->pos[2], code, sizeof(code))) !=
	    EX_OK)
		return rc;
	snprintf(addr, sizeof(addr), "service-%s@%s", code,
	    cli->cfg.mask_domain);
	if ((t = cli_table(cli)) == NULL)
		return EX_TEMPFAIL;
	if ((rc = mask_service_find(t, o->pos[2], code, &s)) != EX_OK)
		goto out;
	if (strcmp(verb, "del") == 0) {
		if (!(o->seen & M_YES) && (rc = mask_confirm(addr)) != 0)
			goto out;
		rc = table_mask_service_del(t, code, err, sizeof(err));
	} else
		rc = table_mask_service_set(t, code, strcmp(verb, "enable") ==
		    0 ? 0 : 1, err, sizeof(err));
	if (rc == -1) {
		cli_err("%s: %s", addr, err);
		rc = strstr(err, "no such") ? EX_NOUSER : EX_TEMPFAIL;
		goto out;
	}
	printf("%s %s\n", addr, strcmp(verb, "del") == 0 ? "deleted" :
	    strcmp(verb, "enable") == 0 ? "enabled" : "disabled");
	rc = EX_OK;
out:
	table_close(t);
	return rc;
}

struct mask_list {
	struct cli	*cli;
	int		 json;
	size_t		 n;
	long long	 now;
};

/* cols: code, real, label, created, expires, disabled, bounces, pairs */
static void
mask_list_row(void *arg, const char **c, size_t n)
{
	struct mask_list	*l = arg;
	char			 addr[512];
	long long		 expires;
	const char		*state;

	if (n < 8)
		return;
	expires = strtoll(c[4], NULL, 10);
	state = mask_state((int)strtol(c[5], NULL, 10), expires, l->now);
	snprintf(addr, sizeof(addr), "service-%s@%s", c[0],
	    l->cli->cfg.mask_domain);
	if (!l->json) {
		printf("%s -> %s  %s  pairs=%s bounces=%s", addr, c[1], state,
		    c[7], c[6]);
		if (expires > 0) {
			char	 buf[32];
			cli_time_str(expires, buf, sizeof(buf));
			printf(" expires=%s", buf);
		}
		if (c[2][0] != '\0')
			printf("  %s", c[2]);
		putchar('\n');
		l->n++;
		return;
	}
	fputs(l->n ? ",\n  {\"address\": " : "\n  {\"address\": ", stdout);
	cli_json_str(stdout, addr);
	fputs(", \"code\": ", stdout);
	cli_json_str(stdout, c[0]);
	fputs(", \"real\": ", stdout);
	cli_json_str(stdout, c[1]);
	fputs(", \"label\": ", stdout);
	cli_json_str(stdout, c[2]);
	fputs(", \"state\": ", stdout);
	cli_json_str(stdout, state);
	fputs(", \"created\": ", stdout);
	mask_json_time(strtoll(c[3], NULL, 10));
	fputs(", \"expires\": ", stdout);
	mask_json_time(expires);
	printf(", \"pairs\": %lu, \"bounces\": %lu}", strtoul(c[7], NULL, 10),
	    strtoul(c[6], NULL, 10));
	l->n++;
}

/* cols: code, service, person, created, disabled, bounces */
static void
mask_pair_row(void *arg, const char **c, size_t n)
{
	struct mask_list	*l = arg;
	char			 addr[512];
	const char		*state;

	if (n < 6)
		return;
	state = mask_state((int)strtol(c[4], NULL, 10), 0, l->now);
	snprintf(addr, sizeof(addr), "user-%s@%s", c[0],
	    l->cli->cfg.mask_domain);
	if (!l->json) {
		printf("%s -> %s  %s  bounces=%s\n", addr, c[2], state, c[5]);
		l->n++;
		return;
	}
	fputs(l->n ? ",\n  {\"address\": " : "\n  {\"address\": ", stdout);
	cli_json_str(stdout, addr);
	fputs(", \"code\": ", stdout);
	cli_json_str(stdout, c[0]);
	fputs(", \"person\": ", stdout);
	cli_json_str(stdout, c[2]);
	fputs(", \"state\": ", stdout);
	cli_json_str(stdout, state);
	fputs(", \"created\": ", stdout);
	mask_json_time(strtoll(c[3], NULL, 10));
	printf(", \"bounces\": %lu}", strtoul(c[5], NULL, 10));
	l->n++;
}

/* mask list, mask pairs SERVICE */
static int
mask_listing(struct cli *cli, const struct mask_opts *o)
{
	struct table			*t;
	struct table_mask_service	 s;
	struct mask_list		 l;
	char				 code[TABLE_MASK_CODE_MAX + 1];
	char				 err[512];
	int				 rc = EX_OK, pairs, r;

	pairs = strcmp(o->pos[0], "pairs") == 0;
	if (pairs && (rc = mask_service_arg(cli, o->pos[1], code,
	    sizeof(code))) != EX_OK)
		return rc;
	if ((t = cli_table(cli)) == NULL)
		return EX_TEMPFAIL;
	if (pairs && (rc = mask_service_find(t, o->pos[1], code, &s)) !=
	    EX_OK) {
		table_close(t);
		return rc;
	}
	memset(&l, 0, sizeof(l));
	l.cli = cli;
	l.json = (o->seen & M_JSON) != 0;
	l.now = (long long)time(NULL);
	if (l.json)
		fputs("[", stdout);
	r = pairs ? table_mask_pair_list(t, code, mask_pair_row, &l, err,
	    sizeof(err)) : table_mask_service_list(t, mask_list_row, &l, err,
	    sizeof(err));
	if (l.json)
		fputs(l.n ? "\n]\n" : "]\n", stdout);
	if (r == -1) {
		cli_err("%s", err);
		rc = EX_TEMPFAIL;
	}
	table_close(t);
	return rc;
}

/* ---- stats ---- */

struct ev_row {
	char		 service[TABLE_MASK_CODE_MAX + 1];
	char		 pair[TABLE_MASK_CODE_MAX + 1];
	char		 kind[TABLE_MASK_CODE_MAX + 1];
	long long	 at;
};

struct svc_row {
	char		 code[TABLE_MASK_CODE_MAX + 1];
	char		 label[TABLE_MASK_LABEL_MAX + 1];
};

struct mask_collect {
	void		*v;		/* ev_row or svc_row */
	size_t		 n, cap, size;
	int		 nomem;
};

/* room for one more row; NULL (and nomem) when out of memory */
static void *
collect_next(struct mask_collect *c)
{
	void	*nv;
	size_t	 ncap;

	if (c->nomem)
		return NULL;
	if (c->n == c->cap) {
		ncap = c->cap ? c->cap * 2 : 64;
		if (ncap > SIZE_MAX / c->size ||
		    (nv = realloc(c->v, ncap * c->size)) == NULL) {
			c->nomem = 1;
			return NULL;
		}
		c->v = nv;
		c->cap = ncap;
	}
	return (char *)c->v + c->n++ * c->size;
}

/* cols: service, pair, kind, at */
static void
collect_event(void *arg, const char **c, size_t n)
{
	struct ev_row	*e;

	if (n < 4 || (e = collect_next(arg)) == NULL)
		return;
	snprintf(e->service, sizeof(e->service), "%s", c[0]);
	snprintf(e->pair, sizeof(e->pair), "%s", c[1]);
	snprintf(e->kind, sizeof(e->kind), "%s", c[2]);
	e->at = strtoll(c[3], NULL, 10);
}

/* cols: code, real, label, ... */
static void
collect_service(void *arg, const char **c, size_t n)
{
	struct svc_row	*s;

	if (n < 3 || (s = collect_next(arg)) == NULL)
		return;
	snprintf(s->code, sizeof(s->code), "%s", c[0]);
	snprintf(s->label, sizeof(s->label), "%s", c[2]);
}

static void
stat_text(const char *who, const char *label, const struct mask_stat *s)
{
	char	 med[32], p90[32];

	mask_stats_duration(s->median, med, sizeof(med));
	mask_stats_duration(s->p90, p90, sizeof(p90));
	printf("%s: in=%lu people=%lu replies=%lu replied=%lu rate=%.1f%%",
	    who, s->messages, s->people, s->replies, s->replied,
	    s->reply_rate * 100.0);
	if (s->median >= 0)
		printf(" median=%llds (%s) p90=%llds (%s)", s->median, med,
		    s->p90, p90);
	else
		fputs(" median=- p90=-", stdout);
	if (label != NULL && label[0] != '\0')
		printf("  %s", label);
	putchar('\n');
}

static void
stat_json(const struct mask_stat *s)
{
	char	 med[32], p90[32];

	mask_stats_duration(s->median, med, sizeof(med));
	mask_stats_duration(s->p90, p90, sizeof(p90));
	printf("\"messages\": %lu, \"people\": %lu, \"replies\": %lu, "
	    "\"replied\": %lu, \"reply_rate\": %.6g, ", s->messages, s->people,
	    s->replies, s->replied, s->reply_rate);
	if (s->median >= 0)
		printf("\"median\": %lld, \"p90\": %lld, ", s->median, s->p90);
	else
		fputs("\"median\": null, \"p90\": null, ", stdout);
	fputs("\"median_human\": ", stdout);
	cli_json_str(stdout, med);
	fputs(", \"p90_human\": ", stdout);
	cli_json_str(stdout, p90);
}

/* print the statistics of every service in svc and of all of ev */
static int
mask_stats_print(struct cli *cli, const struct mask_opts *o,
    const struct mask_ev *ev, size_t nev, const struct svc_row *svc,
    size_t nsvc, long long since)
{
	struct mask_stat	 st;
	char			 addr[512];
	int			 json = (o->seen & M_JSON) != 0;

	if (json) {
		fputs("{\"since\": ", stdout);
		mask_json_time(since);
		fputs(", \"services\": [", stdout);
	}
	for (size_t i = 0; i < nsvc; i++) {
		if (mask_stats_compute(ev, nev, svc[i].code, &st) == -1)
			return -1;
		snprintf(addr, sizeof(addr), "service-%s@%s", svc[i].code,
		    cli->cfg.mask_domain);
		if (!json) {
			stat_text(addr, svc[i].label, &st);
			continue;
		}
		fputs(i ? ",\n  {\"address\": " : "\n  {\"address\": ", stdout);
		cli_json_str(stdout, addr);
		fputs(", \"code\": ", stdout);
		cli_json_str(stdout, svc[i].code);
		fputs(", \"label\": ", stdout);
		cli_json_str(stdout, svc[i].label);
		fputs(", ", stdout);
		stat_json(&st);
		fputs("}", stdout);
	}
	if (mask_stats_compute(ev, nev, NULL, &st) == -1)
		return -1;
	if (!json) {
		stat_text("all", NULL, &st);
		return 0;
	}
	fputs(nsvc ? "\n], \"all\": {" : "], \"all\": {", stdout);
	stat_json(&st);
	fputs("}}\n", stdout);
	return 0;
}

static int
mask_stats(struct cli *cli, const struct mask_opts *o)
{
	struct table			*t;
	struct table_mask_service	 s;
	struct mask_collect		 evc, svc;
	struct mask_ev			*ev = NULL;
	struct svc_row			*one;
	char				 code[TABLE_MASK_CODE_MAX + 1];
	char				 err[512];
	long long			 since = 0;
	int				 rc = EX_OK;

	if (o->since != NULL && mask_date(o->since, &since) == -1) {
		cli_err("--since %s: want YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ "
		    "(UTC)", o->since);
		return EX_DATAERR;
	}
	if (o->npos == 2 && (rc = mask_service_arg(cli, o->pos[1], code,
	    sizeof(code))) != EX_OK)
		return rc;
	if ((t = cli_table(cli)) == NULL)
		return EX_TEMPFAIL;
	memset(&evc, 0, sizeof(evc));
	memset(&svc, 0, sizeof(svc));
	evc.size = sizeof(struct ev_row);
	svc.size = sizeof(struct svc_row);
	if (o->npos == 2) {
		if ((rc = mask_service_find(t, o->pos[1], code, &s)) != EX_OK)
			goto out;
		if ((one = collect_next(&svc)) != NULL) {
			memcpy(one->code, s.code, sizeof(one->code));
			memcpy(one->label, s.label, sizeof(one->label));
		}
	} else if (table_mask_service_list(t, collect_service, &svc, err,
	    sizeof(err)) == -1)
		goto dberr;
	if (table_mask_events(t, o->npos == 2 ? code : NULL, since,
	    collect_event, &evc, err, sizeof(err)) == -1)
		goto dberr;
	if (evc.nomem || svc.nomem || (evc.n > 0 &&
	    (ev = calloc(evc.n, sizeof(*ev))) == NULL))
		goto nomem;
	for (size_t i = 0; i < evc.n; i++) {
		const struct ev_row *r = (const struct ev_row *)evc.v + i;
		ev[i].service = r->service;
		ev[i].pair = r->pair;
		ev[i].kind = r->kind;
		ev[i].at = r->at;
	}
	if (mask_stats_print(cli, o, ev, evc.n, svc.v, svc.n, since) == -1)
		goto nomem;
	goto out;
dberr:
	cli_err("%s", err);
	rc = EX_TEMPFAIL;
	goto out;
nomem:
	cli_err("out of memory");
	rc = EX_OSERR;
out:
	free(ev);
	free(evc.v);
	free(svc.v);
	table_close(t);
	return rc;
}

int
cmd_mask(struct cli *cli, int argc, char **argv)
{
	struct mask_opts	 o;
	int			 rc;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_mask, 1);
	if (mask_args(argc, argv, &o) == -1 || !mask_usage_ok(&o))
		return cli_usage(usage_mask, 0);
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if (cli->cfg.mask_domain[0] == '\0' || cli->cfg.nmask_keys == 0) {
		cli_err("the masked relay is off: set mask-domain and mask-key "
		    "in %s", cli->cfgpath);
		return EX_CONFIG;
	}
	if (strcmp(o.pos[0], "service") == 0)
		return strcmp(o.pos[1], "add") == 0 ? mask_service_add(cli, &o) :
		    mask_service_change(cli, &o);
	if (strcmp(o.pos[0], "pair") == 0)
		return mask_pair_change(cli, &o);
	if (strcmp(o.pos[0], "stats") == 0)
		return mask_stats(cli, &o);
	return mask_listing(cli, &o);
}
