/*
 * ratelimit - bounded counting tables. See ratelimit.h.
 *
 * A plain array searched linearly, like authlimit: it is consulted once
 * per connection and once per MAIL, and a few thousand string compares
 * cost microseconds. What matters is the bound.
 */
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

struct entry {
	char		 key[RATELIMIT_KEY_MAX];
	unsigned	 conns;		/* open connections */
	time_t		 win_start;	/* of the current fixed window */
	unsigned	 cur, prev;	/* events in it and the one before */
	time_t		 last;		/* last activity */
};

struct ratelimit {
	struct entry	*e;
	size_t		 n, cap;
};

struct ratelimit *
ratelimit_new(size_t capacity)
{
	struct ratelimit	*r;

	if (capacity == 0 || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->e = calloc(capacity, sizeof(*r->e))) == NULL) {
		free(r);
		return NULL;
	}
	r->cap = capacity;
	return r;
}

void
ratelimit_free(struct ratelimit *r)
{
	if (r == NULL)
		return;
	free(r->e);
	free(r);
}

size_t
ratelimit_count(const struct ratelimit *r)
{
	return r->n;
}

static struct entry *
rl_find(struct ratelimit *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->e[i].key, key) == 0)
			return &r->e[i];
	return NULL;
}

/* The key's entry, made if need be; full: the idlest one is reused. */
static struct entry *
rl_get(struct ratelimit *r, const char *key)
{
	struct entry	*e = rl_find(r, key), *idle = NULL, *any = NULL;

	if (e != NULL)
		return e;
	if (r->n < r->cap)
		e = &r->e[r->n++];
	else {
		/* prefer one without open connections: counts stay right */
		for (size_t i = 0; i < r->n; i++) {
			struct entry *x = &r->e[i];
			if (any == NULL || x->last < any->last)
				any = x;
			if (x->conns == 0 && (idle == NULL ||
			    x->last < idle->last))
				idle = x;
		}
		e = idle ? idle : any;
	}
	memset(e, 0, sizeof(*e));
	snprintf(e->key, sizeof(e->key), "%s", key);
	return e;
}

static void
rl_remove(struct ratelimit *r, struct entry *e)
{
	*e = r->e[--r->n];
}

unsigned
ratelimit_conn_open(struct ratelimit *r, const char *key, time_t now)
{
	struct entry	*e = rl_get(r, key);

	e->last = now;
	return ++e->conns;
}

void
ratelimit_conn_close(struct ratelimit *r, const char *key, time_t now)
{
	struct entry	*e = rl_find(r, key);

	if (e == NULL)
		return;		/* forgotten while full: nothing to undo */
	e->last = now;
	if (e->conns > 0)
		e->conns--;
	if (e->conns == 0 && e->cur == 0 && e->prev == 0)
		rl_remove(r, e);
}

int
ratelimit_hit(struct ratelimit *r, const char *key, time_t now,
    unsigned limit, time_t window)
{
	struct entry		*e;
	time_t			 ws, elapsed;
	unsigned long long	 weighted;

	if (limit == 0 || window <= 0)
		return 1;
	e = rl_get(r, key);
	ws = now - now % window;
	if (e->win_start != ws) {
		/* the window moved: one step keeps the last count, more not */
		e->prev = e->win_start + window == ws ? e->cur : 0;
		e->cur = 0;
		e->win_start = ws;
	}
	e->last = now;
	elapsed = now - ws;
	/* prev * (part of the old window still inside) + cur, times window */
	weighted = (unsigned long long)e->prev *
	    (unsigned long long)(window - elapsed) +
	    (unsigned long long)e->cur * (unsigned long long)window;
	if (weighted >= (unsigned long long)limit * (unsigned long long)window)
		return 0;
	e->cur++;
	return 1;
}

int
dnsbl_name(const struct sockaddr *sa, const char *zone, char *out,
    size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*b;
	char			 rev[64 + 1];
	size_t			 n = 0;
	int			 len;

	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr;
		b = a6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6))
			len = snprintf(out, outlen, "%u.%u.%u.%u.%s", b[15],
			    b[14], b[13], b[12], zone);
		else {
			for (int i = 15; i >= 0; i--) {
				rev[n++] = hex[b[i] & 0xf];
				rev[n++] = '.';
				rev[n++] = hex[b[i] >> 4];
				rev[n++] = '.';
			}
			rev[n - 1] = '\0';
			len = snprintf(out, outlen, "%s.%s", rev, zone);
		}
	} else if (sa->sa_family == AF_INET) {
		b = (const unsigned char *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
		len = snprintf(out, outlen, "%u.%u.%u.%u.%s", b[3], b[2], b[1],
		    b[0], zone);
	} else
		return -1;
	if (len < 0 || (size_t)len >= outlen || (size_t)len > DNSBL_NAME_MAX)
		return -1;
	return 0;
}

int
dnsbl_listed_addr(const struct sockaddr *sa)
{
	const unsigned char	*b;

	if (sa->sa_family != AF_INET)
		return 0;
	b = (const unsigned char *)&((const struct sockaddr_in *)
	    (const void *)sa)->sin_addr;
	return b[0] == 127 && !(b[1] == 255 && b[2] == 255);
}
