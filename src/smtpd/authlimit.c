/*
 * authlimit - failed logins per client. See authlimit.h.
 *
 * A plain array searched linearly: it is consulted once per AUTH, not per
 * command, and AUTHLIMIT_MAX entries are a few microseconds to scan. The
 * bound matters more than the speed: a client rotating addresses can only
 * push out the entries idle the longest.
 */
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authlimit.h"

struct entry {
	char		 key[AUTHLIMIT_KEY_MAX];
	unsigned	 failures;
	time_t		 first;		/* of the failures counted */
	time_t		 last;
	time_t		 locked_until;
};

struct authlimit {
	struct entry	*e;
	size_t		 n, cap;
};

struct authlimit *
authlimit_new(size_t capacity)
{
	struct authlimit	*a;

	if (capacity == 0 || (a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if ((a->e = calloc(capacity, sizeof(*a->e))) == NULL) {
		free(a);
		return NULL;
	}
	a->cap = capacity;
	return a;
}

void
authlimit_free(struct authlimit *a)
{
	if (a == NULL)
		return;
	free(a->e);
	free(a);
}

void
authlimit_key(const struct sockaddr *sa, char *key, size_t keylen)
{
	char	 host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, host, sizeof(host));
		snprintf(key, keylen, "%s", host);
	} else if (sa->sa_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&a)) {
			inet_ntop(AF_INET, &a.s6_addr[12], host, sizeof(host));
			snprintf(key, keylen, "%s", host);
			return;
		}
		memset(&a.s6_addr[8], 0, 8);
		inet_ntop(AF_INET6, &a, host, sizeof(host));
		snprintf(key, keylen, "%s/64", host);
	} else
		snprintf(key, keylen, "local");
}

static struct entry *
find(struct authlimit *a, const char *key)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->e[i].key, key) == 0)
			return &a->e[i];
	return NULL;
}

time_t
authlimit_locked(struct authlimit *a, const char *key, time_t now)
{
	struct entry	*e = find(a, key);

	if (e == NULL || e->locked_until <= now)
		return 0;
	return e->locked_until - now;
}

unsigned
authlimit_fail(struct authlimit *a, const char *key, time_t now,
    unsigned max_failures, time_t lockout)
{
	struct entry	*e = find(a, key);

	if (e == NULL) {
		if (a->n < a->cap)
			e = &a->e[a->n++];
		else {
			/* full: forget the client idle the longest */
			e = &a->e[0];
			for (size_t i = 1; i < a->n; i++)
				if (a->e[i].last < e->last)
					e = &a->e[i];
		}
		memset(e, 0, sizeof(*e));
		snprintf(e->key, sizeof(e->key), "%s", key);
	}
	if (e->failures && now - e->first >= lockout && e->locked_until <= now)
		e->failures = 0;	/* old failures are forgiven */
	if (e->failures == 0)
		e->first = now;
	e->failures++;
	e->last = now;
	if (max_failures && e->failures >= max_failures) {
		e->locked_until = now + lockout;
		e->failures = 0;	/* counting starts again after it */
		e->first = now + lockout;
		return max_failures;
	}
	return e->failures;
}

void
authlimit_success(struct authlimit *a, const char *key)
{
	struct entry	*e = find(a, key);

	if (e == NULL)
		return;
	*e = a->e[--a->n];
}

size_t
authlimit_count(const struct authlimit *a)
{
	return a->n;
}
