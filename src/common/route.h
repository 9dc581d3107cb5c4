/*
 * route - which way mail for a non-local recipient leaves (queue-out).
 *
 * The config lists routes in order; the first that accepts a recipient
 * is its route (route_select):
 *
 *   route PATTERNS via mx|HOST:PORT [tls none|optional|required]
 *         [auth FILE] [when STATE,...] [senders PATTERNS]
 *         [rewrite-sender ADDR] [rewrite-from ADDR]
 *   route PATTERNS wait [when STATE,...] [senders PATTERNS]
 *   relay-host HOST:PORT [options]     = "route * via HOST:PORT", last
 *
 * PATTERNS is a comma-separated list. A pattern with '@' is a glob on the
 * whole address ("*@example.org", "robot-*@*"), one without is a glob on
 * the domain ("example.org", "*.example.org", "*"); "<>" is the null
 * sender; a leading '!' refuses what it matches. A list accepts an
 * address that one positive pattern matches (a list of refusals only
 * starts from "*") and no refusal matches. Case does not matter.
 *
 * Online state (masqmail): "online-state file PATH" (the first word of the
 * file), "online-state command PROGRAM [ARGS]" (the first word it prints;
 * run without a shell), or "always" (the default: the state is "online").
 * Nothing, an unreadable file or a failing command is the state "offline".
 * A route without "when" is usable in every state but "offline"; "when *"
 * includes "offline". When no route accepts a recipient, it goes by MX
 * unless an online-state source is configured: then it waits (state
 * "waiting for route") until the state changes.
 *
 * This module is pure (no I/O) so the unit tests and the fuzzer drive it.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <limits.h>
#include <stddef.h>

#define ROUTE_MAX		32
#define ROUTE_LIST_MAX		512	/* a pattern or state list */
#define ROUTE_ADDR_MAX		320
#define ROUTE_STATE_MAX		63	/* an online-state word */

enum route_kind { ROUTE_MX = 0, ROUTE_HOST, ROUTE_WAIT };
enum route_tls { ROUTE_TLS_OPPORTUNISTIC = 0, ROUTE_TLS_REQUIRED,
	ROUTE_TLS_NONE };

struct route {
	unsigned	 line;			/* in the config, for messages */
	int		 relay_host;		/* written as relay-host */
	char		 spec[1024];		/* as written, for dumps */
	enum route_kind	 kind;
	char		 host[256];		/* ROUTE_HOST */
	char		 port[16];
	enum route_tls	 tls;
	char		 auth[1024];		/* "user password" file */
	char		 rcpts[ROUTE_LIST_MAX];
	char		 senders[ROUTE_LIST_MAX];	/* "": any */
	char		 when[ROUTE_LIST_MAX];		/* "": any but offline */
	char		 rewrite_sender[ROUTE_ADDR_MAX];
	char		 rewrite_from[ROUTE_ADDR_MAX];
};

enum online_kind { ONLINE_ALWAYS = 0, ONLINE_FILE, ONLINE_COMMAND };

#define ONLINE_ARGV_MAX	16

struct online_cfg {
	enum online_kind kind;
	char		 path[PATH_MAX];	/* file, or the program */
	char		 args[1024];		/* command: argv, NUL separated */
	size_t		 argslen;
	size_t		 argc;
};

/* "route" (relay_host 0) or "relay-host" (1) value; 0 or -1 with err */
int	route_parse(struct route *, char *value, int relay_host,
	    char *err, size_t errlen);
/* "online-state" value */
int	online_parse(struct online_cfg *, char *value, char *err,
	    size_t errlen);
/* the argv of a command source, into argv[ONLINE_ARGV_MAX + 1] */
size_t	online_argv(const struct online_cfg *, const char **argv);

/* does the comma list of patterns accept addr ("" is the null sender) */
int	route_list_match(const char *list, const char *addr);
/* is state one of the list ("": every state but "offline"; "*": all) */
int	route_state_match(const char *list, const char *state);
/* the first word of buf as a state, "offline" if none; out has
   ROUTE_STATE_MAX + 1 bytes */
void	route_state_word(const char *buf, size_t len, char *out);

/*
 * The route for one recipient: a route of the table, or NULL for direct
 * MX delivery when nothing matched and online is 0 (no online-state
 * source); with a source, nothing matching means *wait (set to 1).
 */
const struct route *route_select(const struct route *, size_t n,
	    int online_source, const char *state, const char *sender,
	    const char *rcpt, int *wait);

#endif
