/*
 * config - parse the configuration file from one parameter table.
 *
 * Each directive is a row of `params`: its name, how to parse the value,
 * where it goes in struct config, its limits and its default. Everything
 * else (check mode, dump, defaults) is driven from that table.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "config.h"
#include "table.h"

enum ptype { P_STR, P_PATH, P_SIZE, P_UINT, P_TIME, P_LISTEN, P_NETS, P_FMT,
	P_ROUTE, P_RELAYHOST, P_ONLINE, P_BOOL, P_SRS, P_MASKKEY,
	P_DKIM, P_DNSBL, P_MILTER, P_CHOICE, P_MBOXTR };

struct param {
	const char	*name;
	enum ptype	 type;
	size_t		 off;
	size_t		 size;		/* field size for strings */
	unsigned long long min, max;	/* numbers */
	const char	*def;		/* default, as written in a config */
	int		 reload;	/* takes effect on SIGHUP */
};

/* P_CHOICE: the words of a directive, by value */
static const char *const dmarc_choices[] = { "off", "header", "enforce",
	NULL };
static const char *const from_choices[] = { "reject", "tag", NULL };
static const struct {
	const char		*name;
	const char *const	*words;
} choices[] = {
	{ "dmarc",		dmarc_choices },
	{ "multiple-from",	from_choices },
};

#define S(f)	offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define N(f)	offsetof(struct config, f), 0

static const struct param params[] = {
	{ "hostname",	P_STR,	S(hostname),	0, 0, NULL, 1 },
	{ "spool",	P_PATH,	S(spool),	0, 0, "/var/spool/sluice", 0 },
	{ "mailboxes",	P_PATH,	S(mailboxes),	0, 0, "/var/mail/vhosts", 1 },
	{ "database",	P_STR,	S(database),	0, 0,
	    "sqlite:/var/lib/sluice/sluice.db", 0 },
	{ "aliases",	P_PATH,	S(aliases),	0, 0, NULL, 1 },
	{ "user",	P_STR,	S(user),	0, 0, "_sluice", 0 },
	{ "listen",	P_LISTEN, N(listen),	0, 0, NULL, 0 },
	{ "tls-cert",	P_PATH,	S(tls_cert),	0, 0, NULL, 1 },
	{ "tls-key",	P_PATH,	S(tls_key),	0, 0, NULL, 1 },
	{ "trusted-networks", P_NETS, N(trusted), 0, 0, NULL, 1 },
	{ "resolver",	P_STR,	S(resolver),	0, 0, NULL, 1 },
	{ "relay-host",	P_RELAYHOST, N(routes),	0, 0, NULL, 1 },
	{ "route",	P_ROUTE, N(routes),	0, 0, NULL, 1 },
	{ "online-state", P_ONLINE, N(online),	0, 0, NULL, 1 },
	{ "online-check-interval", P_TIME, N(online_check), 5, 86400, "1m", 1 },
	{ "relay-ca-file", P_PATH, S(relay_ca),	0, 0, NULL, 1 },
	{ "relay-connections", P_UINT, N(relay_conns), 1, 10000, "100", 1 },
	{ "relay-destination-connections", P_UINT, N(relay_dest_conns), 1,
	    1000, "10", 1 },
	{ "relay-idle-time", P_TIME, N(relay_idle), 0, 300, "2s", 1 },
	{ "relay-messages-per-connection", P_UINT, N(relay_reuse), 1, 100000,
	    "100", 1 },
	{ "double-bounce-to", P_STR, S(double_bounce), 0, 0, NULL, 1 },
	{ "robot-user",	P_STR,	S(robot_user),	0, 0, "nobody", 1 },
	{ "alias-database-commands", P_BOOL, N(alias_db_commands), 0, 0, "no",
	    1 },
	{ "robot-timeout", P_TIME, N(robot_timeout), 1, 86400, "5m", 1 },
	{ "robot-concurrency", P_UINT, N(robot_concurrency), 1, 1000, "4", 1 },
	{ "robot-max-failures", P_UINT, N(robot_max_failures), 1, 10000, "5",
	    1 },
	{ "mailbox-transport", P_MBOXTR, S(mailbox_transport), 0, 0, "maildir",
	    1 },
	{ "recipient-delimiter", P_STR, S(recipient_delimiter), 0, 0, "+", 1 },
	{ "srs-secret",	P_SRS,	N(srs_secrets),	0, 0, NULL, 1 },
	{ "srs-domain",	P_STR,	S(srs_domain),	0, 0, NULL, 1 },
	{ "srs-max-age", P_UINT, N(srs_max_age), 1, 1000, "21", 1 },
	{ "mask-domain", P_STR,	S(mask_domain),	0, 0, NULL, 1 },
	{ "mask-key",	P_MASKKEY, N(mask_keys), 0, 0, NULL, 1 },
	{ "mask-bounce-limit", P_UINT, N(mask_bounce_limit), 1, 1000, "3", 1 },
	{ "delay-warning", P_TIME, N(delay_warning), 0, 30 * 86400, "0", 1 },
	{ "smtp-out-timeout", P_TIME, N(smtp_out_timeout), 1, 3600, "10m", 1 },
	{ "smtp-out-port", P_UINT, N(smtp_out_port), 1, 65535, "25", 1 },
	{ "log",	P_STR,	S(log),		0, 0, "syslog", 0 },
	{ "log-format",	P_FMT,	N(log_json),	0, 0, "text", 0 },
	{ "max-message-size", P_SIZE, N(max_message_size),
	    65536, 1ULL << 34, "35M", 1 },
	{ "max-recipients", P_UINT, N(max_recipients), 100, 100000, "100", 1 },
	{ "smtp-timeout", P_TIME, N(smtp_timeout), 30, 86400, "300s", 1 },
	{ "max-errors",	P_UINT,	N(max_errors),	1, 1000, "10", 1 },
	{ "auth-max-failures", P_UINT, N(auth_max_failures), 1, 1000, "5", 1 },
	{ "auth-lockout", P_TIME, N(auth_lockout), 1, 86400, "15m", 1 },
	{ "auth-failure-delay", P_TIME, N(auth_failure_delay), 0, 60, "1s", 1 },
	{ "max-sessions", P_UINT, N(max_sessions), 1, 100000, "1000", 0 },
	{ "client-connections", P_UINT, N(client_connections), 0, 100000,
	    "50", 1 },
	{ "client-messages-per-minute", P_UINT, N(client_msg_rate), 0,
	    1000000, "0", 1 },
	{ "user-messages-per-hour", P_UINT, N(user_msg_rate), 0, 1000000,
	    "1000", 1 },
	{ "pregreet-wait", P_TIME, N(pregreet_wait), 0, 60, "0", 1 },
	{ "dnsbl",	P_DNSBL, N(dnsbl),	0, 0, NULL, 1 },
	{ "authserv-id", P_STR,	S(authserv_id),	0, 0, NULL, 1 },
	{ "spf-verify",	P_BOOL,	N(spf_verify),	0, 0, "yes", 1 },
	{ "dkim-verify", P_BOOL, N(dkim_verify), 0, 0, "yes", 1 },
	{ "dmarc",	P_CHOICE, N(dmarc),	0, 0, "header", 1 },
	{ "multiple-from", P_CHOICE, N(multiple_from), 0, 0, "reject", 1 },
	{ "max-hops",	P_UINT,	N(max_hops),	10, 1000, "50", 1 },
	{ "retry-interval", P_TIME, N(retry_interval), 1, 86400, "5m", 1 },
	{ "retry-max",	P_TIME,	N(retry_max),	1, 7 * 86400, "1h", 1 },
	{ "max-queue-lifetime", P_TIME, N(max_queue_lifetime), 1,
	    365 * 86400, "5d", 1 },
	{ "delivery-batch", P_UINT, N(delivery_batch), 1, 10000, "64", 1 },
	{ "dkim-sign",	P_DKIM,	N(dkim),	0, 0, NULL, 1 },
	{ "milter",	P_MILTER, N(milters),	0, 0, NULL, 1 },
};
#define NPARAMS	(sizeof(params) / sizeof(params[0]))

static int	set_param(struct config *, const struct param *, char *,
		    char *, size_t);

static const char *const *
param_choices(const struct param *p)
{
	for (size_t i = 0; i < sizeof(choices) / sizeof(choices[0]); i++)
		if (strcmp(choices[i].name, p->name) == 0)
			return choices[i].words;
	return from_choices;	/* not reached: every P_CHOICE is listed */
}

const char *
config_path(const char *opt)
{
	const char	*env;

	if (opt != NULL)
		return opt;
	if ((env = getenv("SLUICE_CONFIG")) != NULL && *env)
		return env;
	return CONFIG_DEFAULT_PATH;
}

void
config_defaults(struct config *c)
{
	size_t	 i;
	char	 tmp[CONFIG_STR_MAX], err[256];

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NPARAMS; i++) {
		if (params[i].def == NULL)
			continue;
		snprintf(tmp, sizeof(tmp), "%s", params[i].def);
		if (set_param(c, &params[i], tmp, err, sizeof(err)) == -1)
			abort();	/* a bad default is a bug */
	}
	if (gethostname(c->hostname, sizeof(c->hostname)) == -1)
		snprintf(c->hostname, sizeof(c->hostname), "localhost");
	c->hostname[sizeof(c->hostname) - 1] = '\0';
}

static int
parse_number(const char *v, unsigned long long *out)
{
	char			*end;
	unsigned long long	 n;

	if (!isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno)
		return -1;
	*out = n;
	return (int)(end - v);
}

/* "35M", "1024k", "100000" */
static int
parse_size(const char *v, unsigned long long *out)
{
	unsigned long long	 n, mul = 1;
	int			 k;

	if ((k = parse_number(v, &n)) == -1)
		return -1;
	switch (tolower((unsigned char)v[k])) {
	case '\0': break;
	case 'k': mul = 1024ULL; k++; break;
	case 'm': mul = 1024ULL * 1024; k++; break;
	case 'g': mul = 1024ULL * 1024 * 1024; k++; break;
	default: return -1;
	}
	if (v[k] != '\0' || (n && mul > ~0ULL / n))
		return -1;
	*out = n * mul;
	return 0;
}

/* "300", "300s", "5m", "2h", "5d" */
static int
parse_time(const char *v, unsigned long long *out)
{
	unsigned long long	 n, mul = 1;
	int			 k;

	if ((k = parse_number(v, &n)) == -1)
		return -1;
	switch (v[k]) {
	case '\0': break;
	case 's': k++; break;
	case 'm': mul = 60; k++; break;
	case 'h': mul = 3600; k++; break;
	case 'd': mul = 86400; k++; break;
	default: return -1;
	}
	if (v[k] != '\0' || (n && mul > ~0ULL / n))
		return -1;
	*out = n * mul;
	return 0;
}

int
netmask_parse(const char *s, struct netmask *m)
{
	char			 host[INET6_ADDRSTRLEN + 1];
	const char		*slash;
	size_t			 hl;
	unsigned long long	 bits = 0;
	unsigned		 maxbits;

	memset(m, 0, sizeof(*m));
	slash = strchr(s, '/');
	hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, m->addr) == 1) {
		m->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, m->addr) == 1) {
		m->family = AF_INET6;
		maxbits = 128;
	} else
		return -1;
	m->bits = maxbits;
	if (slash) {
		if (parse_number(slash + 1, &bits) != (int)strlen(slash + 1) ||
		    bits > maxbits)
			return -1;
		m->bits = (unsigned)bits;
	}
	return 0;
}

int
netmask_match(const struct netmask *m, const struct sockaddr *sa)
{
	const unsigned char	*a;
	unsigned char		 mapped[4];
	unsigned		 full, rest;

	if (sa->sa_family == AF_INET && m->family == AF_INET)
		a = (const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6 && m->family == AF_INET6)
		a = (const unsigned char *)
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else if (sa->sa_family == AF_INET6 && m->family == AF_INET) {
		const struct in6_addr *in6 =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(in6))
			return 0;
		memcpy(mapped, in6->s6_addr + 12, 4);
		a = mapped;
	} else
		return 0;
	full = m->bits / 8;
	rest = m->bits % 8;
	if (memcmp(a, m->addr, full) != 0)
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((a[full] & mask) != (m->addr[full] & mask))
			return 0;
	}
	return 1;
}

int
config_trusted(const struct config *c, const struct sockaddr *sa)
{
	size_t	 i;

	for (i = 0; i < c->ntrusted; i++)
		if (netmask_match(&c->trusted[i], sa))
			return 1;
	return 0;
}

/* split "HOST:PORT" or "[v6]:PORT" */
int
hostport_parse(const char *v, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char		*colon;
	size_t			 hl;
	unsigned long long	 p = 0;

	if (*v == '[') {
		const char *close = strchr(v, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		hl = (size_t)(close - v - 1);
		v++;
		colon = close + 1;
	} else {
		if ((colon = strrchr(v, ':')) == NULL)
			return -1;
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, v, hl);
	host[hl] = '\0';
	if (parse_number(colon + 1, &p) != (int)strlen(colon + 1) ||
	    p == 0 || p > 65535 || strlen(colon + 1) >= portlen)
		return -1;
	snprintf(port, portlen, "%llu", p);
	return 0;
}

/* Split value into words (spaces/tabs); returns count, max + 1 if more. */
size_t
config_split_words(char *v, char **w, size_t max)
{
	size_t	 n = 0;

	while (*v) {
		while (*v == ' ' || *v == '\t')
			*v++ = '\0';
		if (*v == '\0')
			break;
		if (n == max)
			return max + 1;
		w[n++] = v;
		while (*v && *v != ' ' && *v != '\t')
			v++;
	}
	return n;
}

/* listen HOST:PORT smtp|submission|submissions */
static int
set_listen(struct config *c, char *v, char *err, size_t errlen)
{
	struct listen_cfg	*l;
	char			*w[3];
	size_t			 nw;

	nw = config_split_words(v, w, 2);
	if (nw != 2) {
		snprintf(err, errlen, "listen: ADDRESS:PORT "
		    "smtp|submission|submissions");
		return -1;
	}
	if (c->nlisten == CONFIG_LISTEN_MAX) {
		snprintf(err, errlen, "listen: at most %d listeners",
		    CONFIG_LISTEN_MAX);
		return -1;
	}
	l = &c->listen[c->nlisten];
	if (hostport_parse(w[0], l->host, sizeof(l->host), l->port,
	    sizeof(l->port)) == -1) {
		snprintf(err, errlen, "listen: bad address \"%s\" "
		    "(want HOST:PORT or [V6]:PORT)", w[0]);
		return -1;
	}
	if (strcmp(w[1], "smtp") == 0)
		l->kind = LISTEN_SMTP;
	else if (strcmp(w[1], "submission") == 0)
		l->kind = LISTEN_SUBMISSION;
	else if (strcmp(w[1], "submissions") == 0)
		l->kind = LISTEN_SUBMISSIONS;
	else {
		snprintf(err, errlen, "listen: unknown kind \"%s\" "
		    "(smtp, submission or submissions)", w[1]);
		return -1;
	}
	c->nlisten++;
	return 0;
}

/* trusted-networks CIDR... (repeatable: they add up) */
static int
set_nets(struct config *c, const struct param *p, char *v, char *err,
    size_t errlen)
{
	char	*w[CONFIG_NETS_MAX + 1];
	size_t	 nw, i;

	nw = config_split_words(v, w, CONFIG_NETS_MAX);
	if (nw == 0 || nw > CONFIG_NETS_MAX ||
	    c->ntrusted + nw > CONFIG_NETS_MAX) {
		snprintf(err, errlen, "%s: between 1 and %d networks",
		    p->name, CONFIG_NETS_MAX);
		return -1;
	}
	for (i = 0; i < nw; i++)
		if (netmask_parse(w[i], &c->trusted[c->ntrusted++]) ==
		    -1) {
			snprintf(err, errlen, "%s: bad network \"%s\"",
			    p->name, w[i]);
			return -1;
		}
	return 0;
}

/*
 * srs-secret / mask-key SECRET...: once, the first signs, the others still
 * verify (rotation). arr has SRS_SECRETS_MAX rows of SRS_SECRET_MAX + 1.
 */
static int
set_secrets(const char *name, char (*arr)[SRS_SECRET_MAX + 1], size_t *n,
    char *v, char *err, size_t errlen)
{
	char	*w[SRS_SECRETS_MAX + 1];
	size_t	 nw, i, l;

	if (*n) {
		snprintf(err, errlen, "%s: only once (list every secret on "
		    "one line, the signing one first)", name);
		return -1;
	}
	nw = config_split_words(v, w, SRS_SECRETS_MAX);
	if (nw == 0 || nw > SRS_SECRETS_MAX) {
		snprintf(err, errlen, "%s: between 1 and %d secrets", name,
		    SRS_SECRETS_MAX);
		return -1;
	}
	for (i = 0; i < nw; i++) {
		/* never the secret itself in a message: logs keep those */
		if ((l = strlen(w[i])) < SRS_SECRET_MIN || l > SRS_SECRET_MAX) {
			snprintf(err, errlen, "%s: secret %zu is %zu "
			    "characters (%d to %d, random: openssl rand -hex "
			    "16)", name, i + 1, l, SRS_SECRET_MIN,
			    SRS_SECRET_MAX);
			return -1;
		}
		snprintf(arr[i], SRS_SECRET_MAX + 1, "%s", w[i]);
	}
	*n = nw;
	return 0;
}

static int
set_srs(struct config *c, char *v, char *err, size_t errlen)
{
	return set_secrets("srs-secret", c->srs_secrets, &c->nsrs_secrets, v,
	    err, errlen);
}

const char *
config_srs_domain(const struct config *c)
{
	return c->srs_domain[0] ? c->srs_domain : c->hostname;
}

/* route ... / relay-host ...: in order; relay-host goes last (validate) */
static int
set_route(struct config *c, const struct param *p, char *v, char *err,
    size_t errlen)
{
	struct route	 r;
	char		 spec[sizeof(r.spec)];
	int		 rh = p->type == P_RELAYHOST;

	if (strlen(v) >= sizeof(spec)) {
		snprintf(err, errlen, "%s: too long", p->name);
		return -1;
	}
	snprintf(spec, sizeof(spec), "%s", v);
	if (route_parse(&r, v, rh, err, errlen) == -1)
		return -1;
	snprintf(r.spec, sizeof(r.spec), "%s", spec);
	r.relay_host = rh;
	r.line = c->lineno;
	if (rh) {
		if (c->has_relay_host) {
			snprintf(err, errlen, "relay-host: only one (use route "
			    "for more)");
			return -1;
		}
		c->has_relay_host = 1;
		c->routes[ROUTE_MAX] = r;	/* moved last by validate */
		return 0;
	}
	if (c->nroutes == ROUTE_MAX) {
		snprintf(err, errlen, "route: at most %d routes", ROUTE_MAX);
		return -1;
	}
	c->routes[c->nroutes++] = r;
	return 0;
}

/* dkim-sign DOMAIN SELECTOR KEYFILE: repeatable, one per selector */
#define DKIM_NAME_CHARS	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
	"0123456789-."

static int
set_dkim(struct config *c, char *v, char *err, size_t errlen)
{
	struct dkim_sign_cfg	*d;
	char			*w[4];

	if (config_split_words(v, w, 3) != 3) {
		snprintf(err, errlen, "dkim-sign: DOMAIN SELECTOR KEYFILE");
		return -1;
	}
	if (c->ndkim == CONFIG_DKIM_MAX) {
		snprintf(err, errlen, "dkim-sign: at most %d", CONFIG_DKIM_MAX);
		return -1;
	}
	if (strlen(w[0]) > 253 || strspn(w[0], DKIM_NAME_CHARS) !=
	    strlen(w[0]) || w[0][0] == '.' || strlen(w[1]) >=
	    sizeof(d->selector) || strspn(w[1], DKIM_NAME_CHARS "_") !=
	    strlen(w[1]) || w[2][0] != '/' ||
	    strlen(w[2]) >= sizeof(d->keyfile)) {
		snprintf(err, errlen, "dkim-sign: a domain, a selector (letters, "
		    "digits, - _ .) and the absolute path of the key");
		return -1;
	}
	for (size_t i = 0; i < c->ndkim; i++)
		if (strcasecmp(c->dkim[i].domain, w[0]) == 0 &&
		    strcasecmp(c->dkim[i].selector, w[1]) == 0) {
			snprintf(err, errlen, "dkim-sign: %s %s twice", w[0],
			    w[1]);
			return -1;
		}
	d = &c->dkim[c->ndkim++];
	snprintf(d->domain, sizeof(d->domain), "%s", w[0]);
	snprintf(d->selector, sizeof(d->selector), "%s", w[1]);
	snprintf(d->keyfile, sizeof(d->keyfile), "%s", w[2]);
	d->line = c->lineno;
	return 0;
}

/* dnsbl ZONE [reject|tag]: repeatable, looked up in order */
static int
set_dnsbl(struct config *c, char *v, char *err, size_t errlen)
{
	char		*w[3];
	size_t		 nw = config_split_words(v, w, 2), len = 0, label = 0;
	struct dnsbl_cfg *d;

	if (nw < 1 || nw > 2 || (nw == 2 && strcmp(w[1], "reject") != 0 &&
	    strcmp(w[1], "tag") != 0)) {
		snprintf(err, errlen, "dnsbl: ZONE [reject|tag]");
		return -1;
	}
	for (const char *p = w[0]; *p; p++, len++) {
		if (*p == '.') {
			if (label == 0)
				break;
			label = 0;
		} else if ((isalnum((unsigned char)*p) || *p == '-' ||
		    *p == '_') && ++label <= 63)
			continue;
		else
			break;
	}
	if (w[0][len] != '\0' || label == 0 || len >= CONFIG_DNSBL_ZONE_MAX) {
		snprintf(err, errlen, "dnsbl: \"%.64s\" is not a zone name "
		    "(at most %d characters)", w[0], CONFIG_DNSBL_ZONE_MAX - 1);
		return -1;
	}
	if (c->ndnsbl == CONFIG_DNSBL_MAX) {
		snprintf(err, errlen, "dnsbl: at most %d zones",
		    CONFIG_DNSBL_MAX);
		return -1;
	}
	d = &c->dnsbl[c->ndnsbl++];
	snprintf(d->zone, sizeof(d->zone), "%s", w[0]);
	d->tag = nw == 2 && strcmp(w[1], "tag") == 0;
	return 0;
}

/*
 * milter NAME inet:HOST:PORT [timeout DURATION] [on-failure accept|
 * tempfail|reject]: in order. unix: sockets are refused: the smtp process
 * that connects is chrooted into an empty directory (docs/filtering.md).
 */
static int
set_milter(struct config *c, char *v, char *err, size_t errlen)
{
	struct milter_cfg	*m;
	char			*w[7], spec[sizeof(m->spec)];
	size_t			 nw, i;
	unsigned long long	 t;
	unsigned char		 a[16];

	if (c->nmilters == CONFIG_MILTER_MAX) {
		snprintf(err, errlen, "milter: at most %d", CONFIG_MILTER_MAX);
		return -1;
	}
	if (strlen(v) >= sizeof(spec)) {
		snprintf(err, errlen, "milter: too long");
		return -1;
	}
	snprintf(spec, sizeof(spec), "%s", v);
	m = &c->milters[c->nmilters];
	memset(m, 0, sizeof(*m));
	m->timeout = 10;
	m->on_failure = MILTER_FAIL_TEMPFAIL;
	nw = config_split_words(v, w, 6);
	if (nw < 2 || nw > 6 || nw % 2) {
		snprintf(err, errlen, "milter: NAME inet:HOST:PORT [timeout "
		    "DURATION] [on-failure accept|tempfail|reject]");
		return -1;
	}
	if (strlen(w[0]) >= sizeof(m->name) || strspn(w[0],
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	    "-_.") != strlen(w[0])) {
		snprintf(err, errlen, "milter: bad name \"%.64s\" (letters, "
		    "digits, - _ .)", w[0]);
		return -1;
	}
	snprintf(m->name, sizeof(m->name), "%s", w[0]);
	if (strncmp(w[1], "unix:", 5) == 0) {
		snprintf(err, errlen, "milter: unix: sockets cannot be reached "
		    "from the chrooted smtp process; use inet:HOST:PORT");
		return -1;
	}
	if (strncmp(w[1], "inet:", 5) != 0 || hostport_parse(w[1] + 5,
	    m->host, sizeof(m->host), m->port, sizeof(m->port)) == -1 ||
	    (inet_pton(AF_INET, m->host, a) != 1 &&
	    inet_pton(AF_INET6, m->host, a) != 1) ||
	    parse_number(m->port, &t) != (int)strlen(m->port) || t == 0 ||
	    t > 65535) {
		snprintf(err, errlen, "milter: \"%.128s\" is not inet:IP:PORT "
		    "(an address, not a name: the smtp process cannot resolve)",
		    w[1]);
		return -1;
	}
	for (i = 2; i < nw; i += 2) {
		if (strcmp(w[i], "timeout") == 0) {
			if (parse_time(w[i + 1], &t) == -1 || t < 1 ||
			    t > 3600) {
				snprintf(err, errlen, "milter: timeout: 1s to "
				    "1h");
				return -1;
			}
			m->timeout = (unsigned)t;
		} else if (strcmp(w[i], "on-failure") == 0) {
			if (strcmp(w[i + 1], "accept") == 0)
				m->on_failure = MILTER_FAIL_ACCEPT;
			else if (strcmp(w[i + 1], "tempfail") == 0)
				m->on_failure = MILTER_FAIL_TEMPFAIL;
			else if (strcmp(w[i + 1], "reject") == 0)
				m->on_failure = MILTER_FAIL_REJECT;
			else {
				snprintf(err, errlen, "milter: on-failure: "
				    "accept, tempfail or reject");
				return -1;
			}
		} else {
			snprintf(err, errlen, "milter: unknown option \"%.64s\" "
			    "(timeout, on-failure)", w[i]);
			return -1;
		}
	}
	for (i = 0; i < c->nmilters; i++)
		if (strcmp(c->milters[i].name, m->name) == 0) {
			snprintf(err, errlen, "milter: %s defined twice",
			    m->name);
			return -1;
		}
	snprintf(m->spec, sizeof(m->spec), "%s", spec);
	c->nmilters++;
	return 0;
}

/*
 * mailbox-transport: "maildir" (sluice writes the files), "lmtp:unix:/PATH"
 * or "lmtp:IP:PORT" (an LMTP server such as Dovecot's does). The kind, or
 * -1 with why; host (the path or the address) and port when asked for.
 */
int
config_mailbox_transport(const char *spec, char *host, size_t hostlen,
    char *port, size_t portlen, char *err, size_t errlen)
{
	char			 h[128], pt[16];
	unsigned char		 a[sizeof(struct in6_addr)];
	unsigned long long	 n;
	const char		*p;

	if (strcmp(spec, "maildir") == 0)
		return MBOX_MAILDIR;
	if (strncmp(spec, "lmtp:unix:", 10) == 0) {
		p = spec + 10;
		/* sockaddr_un's sun_path holds 108 bytes with the NUL */
		if (p[0] != '/' || strlen(p) >= 108) {
			snprintf(err, errlen, "mailbox-transport: lmtp:unix: "
			    "needs an absolute socket path (at most 107 "
			    "bytes)");
			return -1;
		}
		if (host != NULL)
			snprintf(host, hostlen, "%s", p);
		if (port != NULL)
			snprintf(port, portlen, "%s", "");
		return MBOX_LMTP_UNIX;
	}
	if (strncmp(spec, "lmtp:", 5) == 0 && hostport_parse(spec + 5, h,
	    sizeof(h), pt, sizeof(pt)) == 0 &&
	    (inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1) &&
	    parse_number(pt, &n) == (int)strlen(pt) && n > 0 && n <= 65535) {
		if (host != NULL)
			snprintf(host, hostlen, "%s", h);
		if (port != NULL)
			snprintf(port, portlen, "%s", pt);
		return MBOX_LMTP_INET;
	}
	snprintf(err, errlen, "mailbox-transport: \"%.128s\" is not maildir, "
	    "lmtp:unix:/PATH or lmtp:IP:PORT (an address, not a name)", spec);
	return -1;
}

static int
set_param(struct config *c, const struct param *p, char *v, char *err,
    size_t errlen)
{
	char			*base = (char *)c;
	unsigned long long	 n;

	switch (p->type) {
	case P_MBOXTR:
		if (config_mailbox_transport(v, NULL, 0, NULL, 0, err,
		    errlen) == -1)
			return -1;
		/* FALLTHROUGH */
	case P_STR:
	case P_PATH:
		if (strlen(v) >= p->size) {
			snprintf(err, errlen, "%s: value too long", p->name);
			return -1;
		}
		if (p->type == P_PATH && v[0] != '/') {
			snprintf(err, errlen, "%s: must be an absolute path",
			    p->name);
			return -1;
		}
		snprintf(base + p->off, p->size, "%s", v);
		return 0;
	case P_SIZE:
	case P_UINT:
	case P_TIME:
		if ((p->type == P_SIZE ? parse_size(v, &n) :
		    p->type == P_TIME ? parse_time(v, &n) :
		    (parse_number(v, &n) == (int)strlen(v) ? 0 : -1)) == -1) {
			snprintf(err, errlen, "%s: invalid %s \"%s\"", p->name,
			    p->type == P_SIZE ? "size" : p->type == P_TIME ?
			    "duration" : "number", v);
			return -1;
		}
		if (n < p->min || n > p->max) {
			snprintf(err, errlen, "%s: %llu is out of range "
			    "(%llu to %llu)", p->name, n, p->min, p->max);
			return -1;
		}
		if (p->type == P_SIZE)
			*(unsigned long long *)(void *)(base + p->off) = n;
		else
			*(unsigned *)(void *)(base + p->off) = (unsigned)n;
		return 0;
	case P_FMT:
		if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0) {
			snprintf(err, errlen, "log-format: text or json");
			return -1;
		}
		c->log_json = strcmp(v, "json") == 0;
		return 0;
	case P_LISTEN:
		return set_listen(c, v, err, errlen);
	case P_NETS:
		return set_nets(c, p, v, err, errlen);
	case P_ROUTE:
	case P_RELAYHOST:
		return set_route(c, p, v, err, errlen);
	case P_ONLINE:
		return online_parse(&c->online, v, err, errlen);
	case P_SRS:
		return set_srs(c, v, err, errlen);
	case P_MASKKEY:
		return set_secrets("mask-key", c->mask_keys, &c->nmask_keys, v,
		    err, errlen);
	case P_DKIM:
		return set_dkim(c, v, err, errlen);
	case P_DNSBL:
		return set_dnsbl(c, v, err, errlen);
	case P_MILTER:
		return set_milter(c, v, err, errlen);
	case P_CHOICE: {
		const char *const *w = param_choices(p);
		for (size_t i = 0; w[i] != NULL; i++)
			if (strcmp(v, w[i]) == 0) {
				*(unsigned *)(void *)(base + p->off) =
				    (unsigned)i;
				return 0;
			}
		snprintf(err, errlen, "%s: \"%s\" is not one of", p->name, v);
		for (size_t i = 0; w[i] != NULL; i++)
			snprintf(err + strlen(err), errlen - strlen(err),
			    "%s %s", i ? (w[i + 1] ? "," : " or") : "", w[i]);
		return -1;
	}
	case P_BOOL:
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
			snprintf(err, errlen, "%s: yes or no", p->name);
			return -1;
		}
		*(int *)(void *)(base + p->off) = strcmp(v, "yes") == 0;
		return 0;
	}
	return -1;
}

static const struct param *
find_param(const char *name)
{
	size_t	 i;

	for (i = 0; i < NPARAMS; i++)
		if (strcmp(params[i].name, name) == 0)
			return &params[i];
	return NULL;
}

/* Check the settings together, after the whole file is read. */
static int
config_validate(struct config *c, char *err, size_t errlen)
{
	if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
		snprintf(err, errlen, "%s: tls-cert and tls-key go together",
		    c->path);
		return -1;
	}
	for (size_t i = 0; i < c->nlisten; i++)
		if (c->listen[i].kind != LISTEN_SMTP && c->tls_cert[0] == '\0') {
			snprintf(err, errlen, "%s: listener %s:%s needs "
			    "tls-cert and tls-key", c->path, c->listen[i].host,
			    c->listen[i].port);
			return -1;
		}
	if (c->resolver[0]) {
		char		 host[256], port[16];
		unsigned char	 a[16];
		if (hostport_parse(c->resolver, host, sizeof(host), port,
		    sizeof(port)) == -1 || (inet_pton(AF_INET, host, a) != 1 &&
		    inet_pton(AF_INET6, host, a) != 1)) {
			snprintf(err, errlen, "%s: resolver: \"%s\" is not "
			    "IP:PORT or [IPv6]:PORT", c->path, c->resolver);
			return -1;
		}
	}
	if (c->has_relay_host)
		c->routes[c->nroutes++] = c->routes[ROUTE_MAX];
	if (strlen(c->recipient_delimiter) != 1 ||
	    strchr("+-=_.", c->recipient_delimiter[0]) == NULL) {
		snprintf(err, errlen, "%s: recipient-delimiter: one of + - = "
		    "_ .", c->path);
		return -1;
	}
	if (c->double_bounce[0]) {
		struct mailaddr a;
		if (addr_parse(c->double_bounce, strlen(c->double_bounce),
		    ADDR_F_UTF8, &a) != ADDR_OK || a.domain[0] == '\0') {
			snprintf(err, errlen, "%s: double-bounce-to: \"%s\" is "
			    "not an address", c->path, c->double_bounce);
			return -1;
		}
	}
	if (c->mask_domain[0]) {
		struct mailaddr a;
		char		t[ADDR_STR_MAX + 1];
		snprintf(t, sizeof(t), "mask@%s", c->mask_domain);
		if (addr_parse(t, strlen(t), 0, &a) != ADDR_OK ||
		    a.domain[0] == '[') {
			snprintf(err, errlen, "%s: mask-domain: \"%s\" is not "
			    "a domain name", c->path, c->mask_domain);
			return -1;
		}
		if (c->nmask_keys == 0) {
			snprintf(err, errlen, "%s: mask-domain needs mask-key "
			    "(the key of the codes' MACs: openssl rand -hex 16)",
			    c->path);
			return -1;
		}
	}
	if (c->srs_domain[0]) {
		struct mailaddr a;
		char		t[ADDR_STR_MAX + 1];
		snprintf(t, sizeof(t), "srs@%s", c->srs_domain);
		if (addr_parse(t, strlen(t), 0, &a) != ADDR_OK ||
		    a.domain[0] == '[') {
			snprintf(err, errlen, "%s: srs-domain: \"%s\" is not a "
			    "domain name", c->path, c->srs_domain);
			return -1;
		}
	}
	if (strncmp(c->database, "sqlite:", 7) != 0 &&
	    strncmp(c->database, "postgresql://", 13) != 0 &&
	    strncmp(c->database, "files:/", 7) != 0) {
		snprintf(err, errlen, "%s: database: unknown kind \"%s\" "
		    "(sqlite:PATH, postgresql://... or files:/DIR)", c->path,
		    c->database);
		return -1;
	}
	return 0;
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE	*fp;
	char	 copy[PATH_MAX];

	/* path may point into c itself, which config_defaults() clears */
	snprintf(copy, sizeof(copy), "%s", path);
	if ((fp = fopen(copy, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", copy, strerror(errno));
		return -1;
	}
	return config_load_fp(c, fp, copy, err, errlen);
}

/* One logical line: "name value..." (comments and ends already cut). */
static int
config_line(struct config *c, char *line, unsigned lineno, char *err,
    size_t errlen)
{
	const struct param	*pm;
	char			 msg[512], *name, *val;

	c->lineno = lineno;
	for (name = line; isspace((unsigned char)*name); name++)
		;
	for (val = name; *val && !isspace((unsigned char)*val); val++)
		;
	if (*val)
		*val++ = '\0';
	while (isspace((unsigned char)*val))
		val++;
	if ((pm = find_param(name)) == NULL) {
		snprintf(err, errlen, "%s:%u: unknown directive \"%.64s\"",
		    c->path, lineno, name);
		return -1;
	}
	if (*val == '\0') {
		snprintf(err, errlen, "%s:%u: %s: missing value", c->path,
		    lineno, name);
		return -1;
	}
	if (set_param(c, pm, val, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "%s:%u: %s", c->path, lineno, msg);
		return -1;
	}
	return 0;
}

/*
 * Parse an open config file (closed here); path names it in messages.
 * As in Postfix's main.cf, a line that starts with white space continues
 * the directive above it (a long route reads better over several lines).
 */
int
config_load_fp(struct config *c, FILE *fp, const char *path, char *err,
    size_t errlen)
{
	char		 line[4096], logical[4096], *p, *e;
	unsigned	 lineno = 0, start = 0;
	size_t		 ll = 0, n;

	config_defaults(c);
	snprintf(c->path, sizeof(c->path), "%s", path);
	path = c->path;
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%u: line too long", path,
			    lineno);
			goto fail;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (e = line + strlen(line); e > line &&
		    isspace((unsigned char)e[-1]); e--)
			e[-1] = '\0';
		for (p = line; isspace((unsigned char)*p); p++)
			;
		if (*p == '\0')
			continue;
		n = strlen(p);
		if (p != line && ll > 0) {	/* a continuation */
			if (ll + 1 + n >= sizeof(logical)) {
				snprintf(err, errlen, "%s:%u: directive too "
				    "long", path, start);
				goto fail;
			}
			logical[ll++] = ' ';
			memcpy(logical + ll, p, n + 1);
			ll += n;
			continue;
		}
		if (ll > 0 && config_line(c, logical, start, err, errlen) == -1)
			goto fail;
		memcpy(logical, p, n + 1);
		ll = n;
		start = lineno;
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	if (ll > 0 && config_line(c, logical, start, err, errlen) == -1)
		goto fail;
	fclose(fp);
	return config_validate(c, err, errlen);
fail:
	fclose(fp);
	return -1;
}

void
config_dump(const struct config *c, int fd)
{
	struct config	 def;
	size_t		 i;
	const char	*b = (const char *)c, *d = (const char *)&def;

	config_defaults(&def);
	for (i = 0; i < NPARAMS; i++) {
		const struct param *p = &params[i];
		switch (p->type) {
		case P_MBOXTR:
		case P_STR:
		case P_PATH: {
			char safe[CONFIG_STR_MAX];
			if (strcmp(b + p->off, d + p->off) != 0)
				/* never a database password on a screen */
				dprintf(fd, "%s %s\n", p->name,
				    p->off == offsetof(struct config, database) ?
				    table_dsn_safe(b + p->off, safe,
				    sizeof(safe)) : b + p->off);
			break;
		}
		case P_SIZE:
			if (c->max_message_size != def.max_message_size)
				dprintf(fd, "%s %llu\n", p->name,
				    c->max_message_size);
			break;
		case P_UINT:
		case P_TIME: {
			unsigned v = *(const unsigned *)(const void *)(b + p->off);
			if (v != *(const unsigned *)(const void *)(d + p->off))
				dprintf(fd, "%s %u%s\n", p->name, v,
				    p->type == P_TIME ? "s" : "");
			break;
		}
		case P_MILTER:
			for (size_t j = 0; j < c->nmilters; j++)
				dprintf(fd, "milter %s\n", c->milters[j].spec);
			break;
		case P_ROUTE:
			for (size_t j = 0; j < c->nroutes; j++)
				if (!c->routes[j].relay_host)
					dprintf(fd, "route %s\n",
					    c->routes[j].spec);
			break;
		case P_RELAYHOST:
			for (size_t j = 0; j < c->nroutes; j++)
				if (c->routes[j].relay_host)
					dprintf(fd, "relay-host %s\n",
					    c->routes[j].spec);
			break;
		case P_ONLINE:
			if (c->online.kind == ONLINE_FILE)
				dprintf(fd, "online-state file %s\n",
				    c->online.path);
			else if (c->online.kind == ONLINE_COMMAND) {
				const char *av[ONLINE_ARGV_MAX + 1];
				online_argv(&c->online, av);
				dprintf(fd, "online-state command");
				for (size_t j = 0; av[j]; j++)
					dprintf(fd, " %s", av[j]);
				dprintf(fd, "\n");
			}
			break;
		case P_CHOICE: {
			unsigned v = *(const unsigned *)(const void *)(b + p->off);
			if (v != *(const unsigned *)(const void *)(d + p->off))
				dprintf(fd, "%s %s\n", p->name,
				    param_choices(p)[v]);
			break;
		}
		case P_BOOL:
			if (*(const int *)(const void *)(b + p->off) !=
			    *(const int *)(const void *)(d + p->off))
				dprintf(fd, "%s %s\n", p->name,
				    *(const int *)(const void *)(b + p->off) ?
				    "yes" : "no");
			break;
		case P_SRS:
		case P_MASKKEY: {
			/* secrets are never shown: how many there are is */
			size_t n = p->type == P_SRS ? c->nsrs_secrets :
			    c->nmask_keys;
			if (n) {
				dprintf(fd, "%s", p->name);
				for (size_t j = 0; j < n; j++)
					dprintf(fd, " ********");
				dprintf(fd, "\n");
			}
			break;
		}
		case P_DKIM:
			for (size_t j = 0; j < c->ndkim; j++)
				dprintf(fd, "dkim-sign %s %s %s\n",
				    c->dkim[j].domain, c->dkim[j].selector,
				    c->dkim[j].keyfile);
			break;
		case P_DNSBL:
			for (size_t j = 0; j < c->ndnsbl; j++)
				dprintf(fd, "dnsbl %s %s\n", c->dnsbl[j].zone,
				    c->dnsbl[j].tag ? "tag" : "reject");
			break;
		case P_FMT:
			if (c->log_json)
				dprintf(fd, "log-format json\n");
			break;
		case P_LISTEN:
			for (size_t j = 0; j < c->nlisten; j++)
				dprintf(fd, "listen %s%s%s:%s %s\n",
				    strchr(c->listen[j].host, ':') ? "[" : "",
				    c->listen[j].host,
				    strchr(c->listen[j].host, ':') ? "]" : "",
				    c->listen[j].port,
				    c->listen[j].kind == LISTEN_SMTP ? "smtp" :
				    c->listen[j].kind == LISTEN_SUBMISSION ?
				    "submission" : "submissions");
			break;
		case P_NETS:
			for (size_t j = 0; j < c->ntrusted; j++) {
				char a[INET6_ADDRSTRLEN];
				inet_ntop(c->trusted[j].family,
				    c->trusted[j].addr, a, sizeof(a));
				dprintf(fd, "trusted-networks %s/%u\n", a,
				    c->trusted[j].bits);
			}
			break;
		}
	}
}
