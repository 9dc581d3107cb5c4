/*
 * dns-mx - print the mail exchangers of a domain as sluice's resolver
 * (src/common/dns.c) sees them. For the integration tests.
 *
 * usage: dns-mx [--server IP:PORT] [--seed N] [--timeout MS] [--tries N]
 *               [--prefer-ipv4] [--self ADDR]... [--cancel]
 *               [--cancel-after MS] DOMAIN...
 *
 * Output per domain: "status NAME", then "error TEXT" unless OK, then one
 * "PREF HOST ADDRESS" line per address in the order to try, then "end".
 * --self marks ADDR as one of ours (loop detection, dns_mx_prune_self);
 * --cancel frees the resolver with the lookups in flight, at once or
 * after MS milliseconds of the event loop (--cancel-after).
 * Exit: 0 all OK, 1 some status not OK, 2 usage or setup error.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

struct job {
	const char		*domain;
	const struct dns_self	*self;
	int			 done;
	enum dns_status		 status;
	int			*left;
	struct event_base	*base;
};

static void
usage(void)
{
	fprintf(stderr, "usage: dns-mx [--server IP:PORT] [--seed N] "
	    "[--timeout MS] [--tries N] [--prefer-ipv4] [--self ADDR]... "
	    "[--cancel] [--cancel-after MS] DOMAIN...\n");
	exit(2);
}

static unsigned long long
number(const char *s)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0)
		usage();
	return v;
}

static void
add_self(struct dns_self *self, const char *s)
{
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, s, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		if (dns_self_add(self, (struct sockaddr *)&s4) == 0)
			return;
	} else if (inet_pton(AF_INET6, s, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		if (dns_self_add(self, (struct sockaddr *)&s6) == 0)
			return;
	}
	fprintf(stderr, "dns-mx: bad --self %s\n", s);
	exit(2);
}

static void
print_result(const char *domain, const struct dns_mx_result *res)
{
	char	 a[INET6_ADDRSTRLEN];
	size_t	 i;

	printf("domain %s\nstatus %s\n", domain, dns_status_name(res->status));
	if (res->status != DNS_OK)
		printf("error %s\n", res->error);
	printf("records %zu skipped %zu tempfail %zu implicit %d\n",
	    res->mx_records, res->mx_skipped, res->mx_tempfail, res->implicit);
	for (i = 0; i < res->count; i++) {
		const struct dns_host	*h = &res->hosts[i];
		const void		*p;

		if (h->family == AF_INET)
			p = &((const struct sockaddr_in *)&h->addr)->sin_addr;
		else
			p = &((const struct sockaddr_in6 *)&h->addr)->sin6_addr;

		if (inet_ntop(h->family, p, a, sizeof(a)) == NULL)
			snprintf(a, sizeof(a), "?");
		printf("%u %s %s\n", h->pref, h->name, a);
	}
	printf("end\n");
	fflush(stdout);
}

static void
on_result(void *arg, const struct dns_mx_result *res)
{
	struct job		*j = arg;
	struct dns_mx_result	 copy;

	copy = *res;
	dns_mx_prune_self(&copy, j->self);
	print_result(j->domain, &copy);
	j->status = copy.status;
	j->done++;
	if (--*j->left == 0)
		event_base_loopexit(j->base, NULL);
}

/* Options into conf/self/flags; returns the index of the first domain. */
static int
options(int argc, char **argv, struct dns_conf *conf, struct dns_self *self,
    long *cancel_ms, int *seeded, unsigned long long *seed)
{
	int	 i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--prefer-ipv4") == 0)
			conf->prefer_ipv4 = 1;
		else if (strcmp(argv[i], "--cancel") == 0)
			*cancel_ms = 0;
		else if (i + 1 >= argc)
			usage();
		else if (strcmp(argv[i], "--server") == 0)
			conf->server = argv[++i];
		else if (strcmp(argv[i], "--seed") == 0) {
			*seed = number(argv[++i]);
			*seeded = 1;
		} else if (strcmp(argv[i], "--timeout") == 0)
			conf->timeout_ms = (unsigned)number(argv[++i]);
		else if (strcmp(argv[i], "--cancel-after") == 0)
			*cancel_ms = (long)(number(argv[++i]) % 1000000);
		else if (strcmp(argv[i], "--tries") == 0)
			conf->tries = (unsigned)number(argv[++i]);
		else if (strcmp(argv[i], "--self") == 0)
			add_self(self, argv[++i]);
		else
			usage();
	}
	if (i >= argc)
		usage();
	return i;
}

/* Every callback exactly once; the exit code says how it went. */
static int
check_jobs(const struct job *jobs, int n)
{
	int	 k, rc = 0;

	for (k = 0; k < n; k++) {
		if (jobs[k].done != 1) {
			fprintf(stderr, "dns-mx: %s: %d callbacks\n",
			    jobs[k].domain, jobs[k].done);
			rc = 2;
		} else if (jobs[k].status != DNS_OK && rc == 0)
			rc = 1;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct dns_conf		 conf;
	struct dns_self		 self;
	struct event_base	*base;
	struct dns		*d;
	struct job		*jobs;
	char			 err[256];
	unsigned long long	 seed = 0;
	struct timeval		 tv;
	long			 cancel_ms = -1;
	int			 i, k, n, left, seeded = 0, rc;

	memset(&conf, 0, sizeof(conf));
	dns_self_init(&self);
	i = options(argc, argv, &conf, &self, &cancel_ms, &seeded, &seed);
	n = argc - i;
	if ((base = event_base_new()) == NULL ||
	    (jobs = calloc((size_t)n, sizeof(*jobs))) == NULL) {
		fprintf(stderr, "dns-mx: out of memory\n");
		return 2;
	}
	if ((d = dns_new(base, &conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dns-mx: %s\n", err);
		return 2;
	}
	if (seeded)
		dns_set_seed(d, seed);
	left = n;
	for (k = 0; k < n; k++) {
		jobs[k] = (struct job){ argv[i + k], &self, 0, DNS_OK, &left,
		    base };
		if (dns_mx(d, argv[i + k], on_result, &jobs[k]) == -1) {
			fprintf(stderr, "dns-mx: cannot start lookup\n");
			return 2;
		}
	}
	if (cancel_ms > 0) {
		tv.tv_sec = cancel_ms / 1000;
		tv.tv_usec = (cancel_ms % 1000) * 1000;
		event_base_loopexit(base, &tv);
	}
	if (cancel_ms != 0)
		event_base_dispatch(base);
	dns_free(d);
	rc = check_jobs(jobs, n);
	free(jobs);
	dns_self_free(&self);
	event_base_free(base);
	return rc;
}
