/*
 * route - parse the route directives and pick a recipient's route.
 * See route.h for the language.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "config.h"
#include "route.h"

#define WORDS_MAX	24

/* A comma list of patterns: non-empty items, each a sane length. */
static int
check_list(const char *what, const char *v, int states, char *err,
    size_t errlen)
{
	const char	*p = v, *c;
	size_t		 len;

	if (strlen(v) >= ROUTE_LIST_MAX) {
		snprintf(err, errlen, "%s: list too long", what);
		return -1;
	}
	do {
		c = strchr(p, ',');
		len = c ? (size_t)(c - p) : strlen(p);
		if (len == 0 || (len == 1 && *p == '!')) {
			snprintf(err, errlen, "%s: empty item in \"%s\"", what,
			    v);
			return -1;
		}
		if (states) {
			for (size_t i = 0; i < len; i++)
				if (!isalnum((unsigned char)p[i]) &&
				    strchr("._-*", p[i]) == NULL) {
					snprintf(err, errlen, "%s: bad state "
					    "\"%.*s\" (letters, digits, . _ -)",
					    what, (int)len, p);
					return -1;
				}
			if (len > ROUTE_STATE_MAX) {
				snprintf(err, errlen, "%s: state too long",
				    what);
				return -1;
			}
		} else if (len > ROUTE_ADDR_MAX) {
			snprintf(err, errlen, "%s: pattern too long", what);
			return -1;
		}
		p = c ? c + 1 : NULL;
	} while (p);
	return 0;
}

static int
set_addr(char *dst, const char *what, const char *v, char *err,
    size_t errlen)
{
	struct mailaddr	 a;

	if (addr_parse(v, strlen(v), ADDR_F_UTF8, &a) != ADDR_OK ||
	    a.domain[0] == '\0') {
		snprintf(err, errlen, "%s: \"%s\" is not an address", what, v);
		return -1;
	}
	snprintf(dst, ROUTE_ADDR_MAX, "%s", v);
	return 0;
}

int
route_parse(struct route *r, char *value, int relay_host, char *err,
    size_t errlen)
{
	char	*w[WORDS_MAX + 1], *dest;
	size_t	 n, i;
	int	 tls_set = 0;

	memset(r, 0, sizeof(*r));
	n = config_split_words(value, w, WORDS_MAX);
	if (n > WORDS_MAX) {
		snprintf(err, errlen, "too many words");
		return -1;
	}
	if (relay_host) {
		if (n < 1) {
			snprintf(err, errlen, "relay-host: HOST:PORT [options]");
			return -1;
		}
		snprintf(r->rcpts, sizeof(r->rcpts), "*");
		dest = w[0];
		i = 1;
	} else {
		if (n < 2 || (strcmp(w[1], "wait") != 0 && (n < 3 ||
		    strcmp(w[1], "via") != 0))) {
			snprintf(err, errlen, "route: PATTERNS via mx|HOST:PORT "
			    "[options] or PATTERNS wait [options]");
			return -1;
		}
		if (check_list("route", w[0], 0, err, errlen) == -1)
			return -1;
		snprintf(r->rcpts, sizeof(r->rcpts), "%s", w[0]);
		if (strcmp(w[1], "wait") == 0) {
			r->kind = ROUTE_WAIT;
			dest = NULL;
			i = 2;
		} else {
			dest = w[2];
			i = 3;
		}
	}
	if (dest != NULL && strcmp(dest, "mx") == 0 && !relay_host)
		r->kind = ROUTE_MX;
	else if (dest != NULL) {
		r->kind = ROUTE_HOST;
		if (hostport_parse(dest, r->host, sizeof(r->host), r->port,
		    sizeof(r->port)) == -1) {
			snprintf(err, errlen, "bad destination \"%s\" (want "
			    "HOST:PORT or [IPv6]:PORT%s)", dest,
			    relay_host ? "" : " or mx");
			return -1;
		}
	}
	for (; i < n; i++) {
		const char *opt = w[i], *v = i + 1 < n ? w[i + 1] : NULL;
		int waitok = strcmp(opt, "when") == 0 ||
		    strcmp(opt, "senders") == 0;

		if (v == NULL) {
			snprintf(err, errlen, "%s: missing value", opt);
			return -1;
		}
		if (r->kind == ROUTE_WAIT && !waitok) {
			snprintf(err, errlen, "%s: not for a route that waits",
			    opt);
			return -1;
		}
		i++;
		if (strcmp(opt, "tls") == 0) {
			tls_set = 1;
			if (strcmp(v, "required") == 0)
				r->tls = ROUTE_TLS_REQUIRED;
			else if (strcmp(v, "optional") == 0)
				r->tls = ROUTE_TLS_OPPORTUNISTIC;
			else if (strcmp(v, "none") == 0)
				r->tls = ROUTE_TLS_NONE;
			else {
				snprintf(err, errlen, "tls: required, optional "
				    "or none, not \"%s\"", v);
				return -1;
			}
		} else if (strcmp(opt, "auth") == 0) {
			if (v[0] != '/' || strlen(v) >= sizeof(r->auth)) {
				snprintf(err, errlen, "auth: an absolute path "
				    "to a file with \"USER PASSWORD\"");
				return -1;
			}
			snprintf(r->auth, sizeof(r->auth), "%s", v);
		} else if (strcmp(opt, "when") == 0) {
			if (check_list("when", v, 1, err, errlen) == -1)
				return -1;
			snprintf(r->when, sizeof(r->when), "%s", v);
		} else if (strcmp(opt, "senders") == 0) {
			if (check_list("senders", v, 0, err, errlen) == -1)
				return -1;
			snprintf(r->senders, sizeof(r->senders), "%s", v);
		} else if (strcmp(opt, "rewrite-sender") == 0) {
			if (set_addr(r->rewrite_sender, opt, v, err,
			    errlen) == -1)
				return -1;
		} else if (strcmp(opt, "rewrite-from") == 0) {
			if (set_addr(r->rewrite_from, opt, v, err,
			    errlen) == -1)
				return -1;
		} else {
			snprintf(err, errlen, "unknown option \"%s\" (tls, auth, "
			    "when, senders, rewrite-sender, rewrite-from)", opt);
			return -1;
		}
	}
	if (r->auth[0]) {
		if (r->kind != ROUTE_HOST) {
			snprintf(err, errlen, "auth: only for a HOST:PORT route");
			return -1;
		}
		if (!tls_set)
			r->tls = ROUTE_TLS_REQUIRED;
		else if (r->tls == ROUTE_TLS_NONE) {
			snprintf(err, errlen, "auth: never without TLS (tls "
			    "required or optional)");
			return -1;
		}
	}
	return 0;
}

int
online_parse(struct online_cfg *o, char *value, char *err, size_t errlen)
{
	char	*w[ONLINE_ARGV_MAX + 2];
	size_t	 n, i;

	memset(o, 0, sizeof(*o));
	n = config_split_words(value, w, ONLINE_ARGV_MAX + 1);
	if (n == 1 && strcmp(w[0], "always") == 0)
		return 0;
	if (n == 2 && strcmp(w[0], "file") == 0)
		o->kind = ONLINE_FILE;
	else if (n >= 2 && n <= ONLINE_ARGV_MAX + 1 &&
	    strcmp(w[0], "command") == 0)
		o->kind = ONLINE_COMMAND;
	else {
		snprintf(err, errlen, "online-state: always, file PATH or "
		    "command PROGRAM [ARGS] (at most %d arguments)",
		    ONLINE_ARGV_MAX - 1);
		return -1;
	}
	if (w[1][0] != '/' || strlen(w[1]) >= sizeof(o->path)) {
		snprintf(err, errlen, "online-state: %s must be an absolute "
		    "path", o->kind == ONLINE_FILE ? "the file" : "the program");
		return -1;
	}
	snprintf(o->path, sizeof(o->path), "%s", w[1]);
	for (i = 1; i < n; i++) {
		size_t len = strlen(w[i]) + 1;
		if (o->argslen + len > sizeof(o->args)) {
			snprintf(err, errlen, "online-state: command too long");
			return -1;
		}
		memcpy(o->args + o->argslen, w[i], len);
		o->argslen += len;
		o->argc++;
	}
	return 0;
}

size_t
online_argv(const struct online_cfg *o, const char **argv)
{
	size_t		 n = 0;
	const char	*p = o->args;

	while (n < o->argc && n < ONLINE_ARGV_MAX && p < o->args + o->argslen) {
		argv[n++] = p;
		p += strlen(p) + 1;
	}
	argv[n] = NULL;
	return n;
}

/* one pattern against an address ("" is the null sender) */
static int
pattern_match(const char *pat, size_t len, const char *addr)
{
	char		 p[ROUTE_ADDR_MAX + 1];
	const char	*at;

	if (len > ROUTE_ADDR_MAX)
		return 0;
	memcpy(p, pat, len);
	p[len] = '\0';
	if (strcmp(p, "<>") == 0)
		return addr[0] == '\0';
	if (strchr(p, '@') != NULL)
		return addr[0] != '\0' && fnmatch(p, addr, FNM_CASEFOLD) == 0;
	if (strcmp(p, "*") == 0)
		return 1;
	at = strrchr(addr, '@');
	return at != NULL && fnmatch(p, at + 1, FNM_CASEFOLD) == 0;
}

int
route_list_match(const char *list, const char *addr)
{
	const char	*p = list, *c;
	size_t		 len;
	int		 yes = 0, positives = 0;

	while (p && *p) {
		c = strchr(p, ',');
		len = c ? (size_t)(c - p) : strlen(p);
		if (*p == '!') {
			if (len > 1 && pattern_match(p + 1, len - 1, addr))
				return 0;
		} else {
			positives++;
			if (!yes && len > 0 && pattern_match(p, len, addr))
				yes = 1;
		}
		p = c ? c + 1 : NULL;
	}
	return yes || positives == 0;
}

int
route_state_match(const char *list, const char *state)
{
	const char	*p = list, *c;
	size_t		 len;

	if (list[0] == '\0')
		return strcmp(state, "offline") != 0;
	while (p) {
		c = strchr(p, ',');
		len = c ? (size_t)(c - p) : strlen(p);
		if ((len == 1 && *p == '*') || (len == strlen(state) &&
		    strncasecmp(p, state, len) == 0))
			return 1;
		p = c ? c + 1 : NULL;
	}
	return 0;
}

void
route_state_word(const char *buf, size_t len, char *out)
{
	size_t	 i = 0, k = 0;

	while (i < len && isspace((unsigned char)buf[i]))
		i++;
	while (i < len && k < ROUTE_STATE_MAX && (isalnum((unsigned char)
	    buf[i]) || buf[i] == '.' || buf[i] == '_' || buf[i] == '-'))
		out[k++] = buf[i++];
	/* a word with anything else in it is not a state */
	if (k == 0 || (i < len && !isspace((unsigned char)buf[i])))
		k = 0;
	out[k] = '\0';
	if (k == 0)
		snprintf(out, ROUTE_STATE_MAX + 1, "offline");
}

const struct route *
route_select(const struct route *routes, size_t n, int online_source,
    const char *state, const char *sender, const char *rcpt, int *wait)
{
	size_t	 i;

	*wait = 0;
	for (i = 0; i < n; i++) {
		const struct route *r = &routes[i];
		if (!route_list_match(r->rcpts, rcpt) ||
		    (r->senders[0] && !route_list_match(r->senders, sender)) ||
		    !route_state_match(r->when, state))
			continue;
		if (r->kind == ROUTE_WAIT) {
			*wait = 1;
			return NULL;
		}
		return r;
	}
	if (online_source)
		*wait = 1;
	return NULL;
}
