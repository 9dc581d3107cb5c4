/*
 * mask_stats - the statistics of the masked relay (`sluice mask stats`),
 * a pure function over a list of events (table_mask_events' rows): no
 * tables, no I/O, so a test can feed it a scripted conversation.
 *
 * For the events of one service (or all):
 *	messages	"in" and "auto-in" events
 *	people		pairs with at least one "in" (a human message)
 *	replies		"reply" events (human replies; "auto-reply" is not one)
 *	replied		pairs with a "reply" at or after their first "in"
 *	reply rate	replied / people
 *	response time	per replied pair: its first such reply minus its
 *			first "in"; the median and 90th percentile by
 *			nearest rank (the ceil(p * n)-th smallest).
 */
#ifndef SLUICE_MASK_STATS_H
#define SLUICE_MASK_STATS_H

#include <stddef.h>

struct mask_ev {
	const char	*service;
	const char	*pair;		/* "" for none */
	const char	*kind;
	long long	 at;
};

struct mask_stat {
	unsigned long	 messages;
	unsigned long	 people;
	unsigned long	 replies;
	unsigned long	 replied;
	double		 reply_rate;	/* 0..1; 0 without people */
	long long	 median;	/* seconds; -1: no response times */
	long long	 p90;
};

/*
 * The statistics of the events of service (a code, compared without
 * case; NULL: all) into *out. 0, or -1 when out of memory.
 */
int	mask_stats_compute(const struct mask_ev *ev, size_t n,
	    const char *service, struct mask_stat *out);
/* the nearest-rank percentile p (1..100) of sorted v[0..n); -1 if n = 0 */
long long mask_stats_percentile(const long long *v, size_t n, unsigned p);
/* seconds as "45s", "12m 5s", "3h 20m", "2d 4h"; "-" when negative */
void	mask_stats_duration(long long secs, char *buf, size_t buflen);

#endif
