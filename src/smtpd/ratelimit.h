/*
 * ratelimit - bounded counting tables for the connection policy (P5):
 * concurrent connections per key, and events (messages) per key in a
 * sliding window. A key is a client (authlimit_key: an IPv4 address or an
 * IPv6 /64) or an authenticated user name.
 *
 * Bounded: a table holds at most the capacity given at creation; when it
 * is full, the entry idle the longest is forgotten, preferring entries
 * without open connections. Forgetting only ever under-counts: a client
 * can get more than its share, never less. Pure: time is passed in.
 *
 * The window is the usual two-bucket approximation of a sliding window:
 * the count of the current fixed window plus the previous window's count
 * weighted by how much of it still overlaps the sliding one. Memory is two
 * counters per key, and a burst at a window edge cannot double the rate.
 *
 * dnsbl_name() builds the DNSBL query name of an address (RFC 5782).
 */
#ifndef SLUICE_RATELIMIT_H
#define SLUICE_RATELIMIT_H

#include <sys/socket.h>

#include <stddef.h>
#include <time.h>

#define RATELIMIT_MAX		8192	/* keys per table */
#define RATELIMIT_KEY_MAX	256	/* a user name (SASL_ID_MAX) fits */

struct ratelimit;

struct ratelimit *ratelimit_new(size_t capacity);
void	ratelimit_free(struct ratelimit *);
/* a connection opens: the key's open connections, this one included */
unsigned ratelimit_conn_open(struct ratelimit *, const char *key, time_t now);
/* a connection counted by ratelimit_conn_open closes */
void	ratelimit_conn_close(struct ratelimit *, const char *key, time_t now);
/*
 * One event for key, limited to `limit` per `window` seconds: 1 if it is
 * allowed (and counted), 0 if it is over the limit (not counted, so a
 * client that keeps trying is not locked out for longer). limit 0: always
 * allowed, nothing counted.
 */
int	ratelimit_hit(struct ratelimit *, const char *key, time_t now,
	    unsigned limit, time_t window);
size_t	ratelimit_count(const struct ratelimit *);

#define DNSBL_NAME_MAX	255

/*
 * The name to look up for sa under zone: "2.0.0.127.zone" for 127.0.0.2,
 * the 32 nibbles reversed for IPv6 (a v4-mapped address as IPv4).
 * 0, or -1 when it does not fit or the family is not an IP one.
 */
int	dnsbl_name(const struct sockaddr *, const char *zone, char *out,
	    size_t outlen);
/* does an answer address mean "listed"? 127.0.0.0/8 except the error
   codes 127.255.255.0/24 some lists return (RFC 5782 2.1, Spamhaus) */
int	dnsbl_listed_addr(const struct sockaddr *);

#endif
