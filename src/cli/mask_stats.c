/*
 * mask_stats - the masked relay's statistics from a list of events
 * (mask_stats.h). The events are sorted by (pair, time) in a copy of
 * their indices; each pair is then one run of the sorted list.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mask_stats.h"

/* qsort_r (glibc) comparison of two indices into the events arg */
static int
by_pair_time(const void *a, const void *b, void *arg)
{
	const struct mask_ev	*ev = arg;
	const struct mask_ev	*x = &ev[*(const size_t *)a];
	const struct mask_ev	*y = &ev[*(const size_t *)b];
	int			 c;

	if ((c = strcasecmp(x->service, y->service)) != 0 ||
	    (c = strcasecmp(x->pair, y->pair)) != 0)
		return c;
	return x->at < y->at ? -1 : x->at > y->at;
}

static int
by_value(const void *a, const void *b)
{
	long long	 x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

long long
mask_stats_percentile(const long long *v, size_t n, unsigned p)
{
	size_t	 rank;

	if (n == 0 || p == 0 || p > 100)
		return -1;
	rank = (p * n + 99) / 100;	/* ceil(p / 100 * n), at least 1 */
	return v[rank - 1];
}

/* One pair's run ev[idx[0..k)] (sorted by time) into *out and times. */
static void
pair_run(const struct mask_ev *ev, const size_t *idx, size_t k,
    struct mask_stat *out, long long *times, size_t *ntimes)
{
	long long	 first_in = -1, first_reply = -1;
	size_t		 i;

	for (i = 0; i < k; i++) {
		const struct mask_ev *e = &ev[idx[i]];

		if (strcmp(e->kind, "in") == 0 || strcmp(e->kind,
		    "auto-in") == 0)
			out->messages++;
		if (strcmp(e->kind, "reply") == 0)
			out->replies++;
		if (strcmp(e->kind, "in") == 0 && first_in == -1)
			first_in = e->at;
		else if (strcmp(e->kind, "reply") == 0 && first_in != -1 &&
		    first_reply == -1)
			first_reply = e->at;
	}
	if (first_in == -1 || ev[idx[0]].pair[0] == '\0')
		return;
	out->people++;
	if (first_reply != -1) {
		out->replied++;
		times[(*ntimes)++] = first_reply - first_in;
	}
}

int
mask_stats_compute(const struct mask_ev *ev, size_t n, const char *service,
    struct mask_stat *out)
{
	size_t		*idx, *same, k = 0, i, j, ntimes = 0;
	long long	*times;

	memset(out, 0, sizeof(*out));
	out->median = out->p90 = -1;
	if (n == 0)
		return 0;
	idx = calloc(n, sizeof(*idx));
	times = calloc(n, sizeof(*times));
	if (idx == NULL || times == NULL) {
		free(idx);
		free(times);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (service == NULL || strcasecmp(ev[i].service, service) == 0)
			idx[k++] = i;
	qsort_r(idx, k, sizeof(*idx), by_pair_time, (void *)(uintptr_t)ev);
	for (i = 0; i < k; i = j) {
		same = &idx[i];
		for (j = i + 1; j < k && strcasecmp(ev[idx[j]].service,
		    ev[same[0]].service) == 0 && strcasecmp(ev[idx[j]].pair,
		    ev[same[0]].pair) == 0; j++)
			;
		pair_run(ev, same, j - i, out, times, &ntimes);
	}
	qsort(times, ntimes, sizeof(*times), by_value);
	out->median = mask_stats_percentile(times, ntimes, 50);
	out->p90 = mask_stats_percentile(times, ntimes, 90);
	out->reply_rate = out->people ? (double)out->replied /
	    (double)out->people : 0.0;
	free(idx);
	free(times);
	return 0;
}

void
mask_stats_duration(long long s, char *buf, size_t buflen)
{
	if (s < 0)
		snprintf(buf, buflen, "-");
	else if (s < 60)
		snprintf(buf, buflen, "%llds", s);
	else if (s < 3600)
		snprintf(buf, buflen, "%lldm %llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, buflen, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, buflen, "%lldd %lldh", s / 86400,
		    s % 86400 / 3600);
}
