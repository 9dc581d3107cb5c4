/*
 * authlimit - failed logins per client (P5): each failure makes the next
 * answer slower, and too many within the lockout time lock the client out
 * of AUTH for that time. IPv6 clients are counted per /64 (one host owns
 * a whole /64). Bounded: AUTHLIMIT_MAX clients are tracked; when full,
 * the one idle the longest is forgotten. Pure: time is passed in.
 */
#ifndef SLUICE_AUTHLIMIT_H
#define SLUICE_AUTHLIMIT_H

#include <sys/socket.h>

#include <stddef.h>
#include <time.h>

#define AUTHLIMIT_MAX		4096
#define AUTHLIMIT_KEY_MAX	64

struct authlimit;

struct authlimit *authlimit_new(size_t capacity);
void	authlimit_free(struct authlimit *);
/* the key a client is counted under ("192.0.2.1", "2001:db8:1:2::/64") */
void	authlimit_key(const struct sockaddr *, char *key, size_t keylen);
/* seconds the client is still locked out for, 0 if it is not */
time_t	authlimit_locked(struct authlimit *, const char *key, time_t now);
/*
 * Count a failure: the client's failures within `lockout` seconds (this
 * one included). At max_failures it is locked out for `lockout` seconds.
 */
unsigned authlimit_fail(struct authlimit *, const char *key, time_t now,
	    unsigned max_failures, time_t lockout);
/* a successful login forgets the client's failures */
void	authlimit_success(struct authlimit *, const char *key);
size_t	authlimit_count(const struct authlimit *);

#endif
