/*
 * config - the sluice configuration file, driven by one parameter table
 * (config.c): name, type, default, limits, whether SIGHUP reloads it.
 *
 * Syntax: one directive a line, "name value...", '#' starts a comment; a
 * line that starts with white space continues the directive above it.
 * Errors name FILE:LINE. config_load() fills a struct config with defaults
 * first, so every field is always set.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <netinet/in.h>

#include "route.h"
#include "srs.h"

#define CONFIG_DEFAULT_PATH	"/etc/sluice/sluice.conf"
#define CONFIG_LISTEN_MAX	16
#define CONFIG_NETS_MAX		64
#define CONFIG_STR_MAX		1024
#define CONFIG_DNSBL_MAX	8
#define CONFIG_DNSBL_ZONE_MAX	192	/* + a reversed IPv6 address <= 255 */

enum listen_kind { LISTEN_SMTP = 0, LISTEN_SUBMISSION, LISTEN_SUBMISSIONS };

struct listen_cfg {
	char		 host[256];
	char		 port[16];
	enum listen_kind kind;
};

struct dnsbl_cfg {
	char		 zone[CONFIG_DNSBL_ZONE_MAX];
	int		 tag;		/* 1: tag the mail, 0: reject */
};

/* milter NAME inet:HOST:PORT [timeout DURATION] [on-failure ...] */
#define CONFIG_MILTER_MAX	8
enum milter_failure { MILTER_FAIL_TEMPFAIL = 0, MILTER_FAIL_ACCEPT,
	MILTER_FAIL_REJECT };

struct milter_cfg {
	char		 name[64];
	char		 host[64];		/* an IP address */
	char		 port[8];
	unsigned	 timeout;		/* seconds, per reply */
	enum milter_failure on_failure;
	char		 spec[256];		/* as written, for the dump */
};

struct netmask {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];
	unsigned	 bits;
};

#define CONFIG_DKIM_MAX		64

/* dkim-sign DOMAIN SELECTOR KEYFILE (dkim.h, docs/dkim.md) */
struct dkim_sign_cfg {
	char		 domain[256];
	char		 selector[64];
	char		 keyfile[PATH_MAX];
	unsigned	 line;
};

struct config {
	char		 path[PATH_MAX];
	unsigned	 lineno;		/* while loading */
	char		 hostname[256];
	char		 spool[PATH_MAX];
	char		 mailboxes[PATH_MAX];
	char		 database[CONFIG_STR_MAX];
	char		 aliases[PATH_MAX];
	char		 user[64];
	struct listen_cfg listen[CONFIG_LISTEN_MAX];
	size_t		 nlisten;
	char		 tls_cert[PATH_MAX];
	char		 tls_key[PATH_MAX];
	struct netmask	 trusted[CONFIG_NETS_MAX];
	size_t		 ntrusted;
	char		 resolver[CONFIG_STR_MAX];
	struct route	 routes[ROUTE_MAX + 1];	/* relay-host is the last */
	size_t		 nroutes;
	int		 has_relay_host;
	struct online_cfg online;
	unsigned	 online_check;		/* seconds between checks */
	char		 relay_ca[PATH_MAX];	/* CA file for tls required */
	unsigned	 relay_conns;		/* outbound connections, all */
	unsigned	 relay_dest_conns;	/* per destination */
	unsigned	 relay_reuse;		/* messages per connection */
	unsigned	 relay_idle;		/* seconds a connection waits
						   for the next message */
	unsigned	 smtp_out_timeout;	/* seconds, caps every client
						   timeout (RFC 5321 4.5.3.2) */
	char		 double_bounce[CONFIG_STR_MAX];	/* "": drop them */
	unsigned	 smtp_out_port;		/* port of MX hosts */
	char		 log[PATH_MAX];
	int		 log_json;
	/* limits (P5) */
	unsigned long long max_message_size;
	unsigned	 max_recipients;
	unsigned	 smtp_timeout;		/* seconds idle */
	unsigned	 max_errors;		/* per session, then 421 */
	unsigned	 auth_max_failures;	/* failed logins, then lockout */
	unsigned	 auth_lockout;		/* seconds locked out */
	unsigned	 auth_failure_delay;	/* seconds, times the failures */
	unsigned	 max_sessions;		/* concurrent SMTP sessions */
	/* connection policy (smtpd/smtp_policy.c); 0: off */
	unsigned	 client_connections;	/* concurrent, per client */
	unsigned	 client_msg_rate;	/* messages a minute, per client */
	unsigned	 user_msg_rate;		/* messages an hour, per user */
	unsigned	 pregreet_wait;		/* seconds before the banner */
	struct dnsbl_cfg dnsbl[CONFIG_DNSBL_MAX];
	size_t		 ndnsbl;
	/* inbound authenticity (smtpd/smtp_verify.c, docs/filtering.md) */
	char		 authserv_id[256];	/* "": the hostname */
	int		 spf_verify;
	int		 dkim_verify;
	unsigned	 dmarc;			/* DMARC_ACT_* */
	unsigned	 multiple_from;		/* FROM_ACT_* */
	unsigned	 max_hops;		/* Received: headers */
	unsigned	 retry_interval;	/* seconds, first deferral */
	unsigned	 retry_max;		/* seconds, backoff cap */
	unsigned	 max_queue_lifetime;	/* seconds, then bounce */
	unsigned	 delay_warning;		/* seconds, 0: no warning */
	char		 robot_user[64];	/* robots owned by root run as */
	int		 alias_db_commands;	/* pipes/files in db aliases */
	unsigned	 robot_timeout;		/* seconds */
	unsigned	 robot_concurrency;	/* runs of one robot at once */
	unsigned	 robot_max_failures;	/* temporary failures in a row,
						   then its mail is held */
	char		 recipient_delimiter[8];	/* "+", "" for none */
	char		 mailbox_transport[160];	/* maildir | lmtp:... */
	unsigned	 delivery_batch;	/* messages per delivery batch */
	/* sender rewriting (srs.h): off without a secret; the first signs */
	char		 srs_secrets[SRS_SECRETS_MAX][SRS_SECRET_MAX + 1];
	size_t		 nsrs_secrets;
	char		 srs_domain[256];	/* "": the hostname */
	unsigned	 srs_max_age;		/* days */
	/* the masked relay (mask.h): off without mask-domain */
	char		 mask_domain[256];
	char		 mask_keys[SRS_SECRETS_MAX][SRS_SECRET_MAX + 1];
	size_t		 nmask_keys;		/* the first signs */
	unsigned	 mask_bounce_limit;	/* hard bounces, then disabled */
	struct dkim_sign_cfg dkim[CONFIG_DKIM_MAX];	/* in config order */
	size_t		 ndkim;
	/* milters (milter.c), asked in this order */
	struct milter_cfg milters[CONFIG_MILTER_MAX];
	size_t		 nmilters;
};

/* 0 ok; -1 with "FILE:LINE: message" in err */
int	config_load(struct config *, const char *path, char *err, size_t errlen);
/* the same from an open file (closed by it); path is for messages */
int	config_load_fp(struct config *, FILE *, const char *path, char *err,
	    size_t errlen);
void	config_defaults(struct config *);
/* -c FILE, else $SLUICE_CONFIG, else the default path */
const char *config_path(const char *opt);
/* is the address (sockaddr) inside one of the trusted networks? */
int	config_trusted(const struct config *, const struct sockaddr *);
/* split value (in place) into words at spaces and tabs; the count, or
   max + 1 when there are more than max (then only max are in w) */
size_t	config_split_words(char *value, char **w, size_t max);
/* split "HOST:PORT" or "[V6]:PORT"; 0 or -1 */
int	hostport_parse(const char *, char *host, size_t hostlen, char *port,
	    size_t portlen);
/* parse "a.b.c.d/n" or "x::y/n" (no /n: a host) */
int	netmask_parse(const char *s, struct netmask *);
int	netmask_match(const struct netmask *, const struct sockaddr *);
/* the domain of rewritten senders: srs-domain, else the hostname */
const char *config_srs_domain(const struct config *);
/* write the non-default settings, "name value" a line */
void	config_dump(const struct config *, int fd);

/* `dmarc`: what a failing message whose domain asks for it gets */
enum { DMARC_ACT_OFF = 0, DMARC_ACT_HEADER, DMARC_ACT_ENFORCE };
/* `multiple-from`: a message with more than one From: address */
enum { FROM_ACT_REJECT = 0, FROM_ACT_TAG };

/* mailbox-transport: where local mailboxes are written */
enum mbox_transport { MBOX_MAILDIR, MBOX_LMTP_UNIX, MBOX_LMTP_INET };
int	config_mailbox_transport(const char *spec, char *host, size_t hostlen,
	    char *port, size_t portlen, char *err, size_t errlen);

#endif
