/*
 * dns_cache - answers seen and questions wanted by one message's checks.
 * See dns_cache.h.
 *
 * A small array searched linearly: a message's checks ask a few dozen
 * questions at most (SPF's limit of 10 lookups with up to 10 MX hosts
 * each is the worst case), well under DNS_CACHE_MAX.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns_cache.h"

enum dce_state { DCE_WANTED, DCE_ASKED, DCE_ANSWERED };

struct dns_cache_entry {
	enum dns_rr		 type;
	enum dce_state		 state;
	char			 name[DNS_CACHE_NAME_MAX + 1];
	struct dns_rrset	 ans;
};

struct dns_cache {
	struct dns_cache_entry	*e;
	size_t			 n;
};

const struct dns_rrset dns_cache_full = { DNS_R_TEMP, 0, NULL };
static const struct dns_rrset dns_cache_badname = { DNS_R_NXDOMAIN, 0, NULL };

struct dns_cache *
dns_cache_new(void)
{
	struct dns_cache	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->e = calloc(DNS_CACHE_MAX, sizeof(*c->e))) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static void
dns_rrset_clear(struct dns_rrset *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->rr[i]);
	free(a->rr);
	a->rr = NULL;
	a->n = 0;
}

void
dns_cache_free(struct dns_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		dns_rrset_clear(&c->e[i].ans);
	free(c->e);
	free(c);
}

/* The name without its trailing dot, checked; -1 if not a domain. */
static int
dns_cache_norm(const char *name, char *out)
{
	size_t	 len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_CACHE_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (++label > 63)
			return -1;
	}
	if (label == 0)
		return -1;
	memcpy(out, name, len);
	out[len] = '\0';
	return 0;
}

static struct dns_cache_entry *
dns_cache_find(struct dns_cache *c, enum dns_rr type, const char *norm)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].type == type &&
		    strcasecmp(c->e[i].name, norm) == 0)
			return &c->e[i];
	return NULL;
}

const struct dns_rrset *
dns_cache_get(struct dns_cache *c, enum dns_rr type, const char *name)
{
	struct dns_cache_entry	*e;
	char			 norm[DNS_CACHE_NAME_MAX + 1];

	if (dns_cache_norm(name, norm) == -1)
		return &dns_cache_badname;
	if ((e = dns_cache_find(c, type, norm)) != NULL)
		return e->state == DCE_ANSWERED ? &e->ans : NULL;
	if (c->n == DNS_CACHE_MAX)
		return &dns_cache_full;
	e = &c->e[c->n++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->state = DCE_WANTED;
	memcpy(e->name, norm, sizeof(norm));
	return NULL;
}

int
dns_cache_next_wanted(struct dns_cache *c, enum dns_rr *type,
    const char **name)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].state == DCE_WANTED) {
			c->e[i].state = DCE_ASKED;
			*type = c->e[i].type;
			*name = c->e[i].name;
			return 1;
		}
	return 0;
}

size_t
dns_cache_pending(const struct dns_cache *c)
{
	size_t	 n = 0;

	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].state != DCE_ANSWERED)
			n++;
	return n;
}

int
dns_cache_put(struct dns_cache *c, enum dns_rr type, const char *name,
    enum dns_rstatus st, const char *const *rr, size_t n)
{
	struct dns_cache_entry	*e;
	char			 norm[DNS_CACHE_NAME_MAX + 1];

	if (dns_cache_norm(name, norm) == -1)
		return 0;	/* never asked: get answers it itself */
	if ((e = dns_cache_find(c, type, norm)) == NULL) {
		if (c->n == DNS_CACHE_MAX)
			return 0;
		e = &c->e[c->n++];
		memset(e, 0, sizeof(*e));
		e->type = type;
		memcpy(e->name, norm, sizeof(norm));
	}
	dns_rrset_clear(&e->ans);
	e->state = DCE_ANSWERED;
	e->ans.status = st;
	if (st != DNS_R_OK || n == 0)
		return 0;
	if (n > DNS_CACHE_RR_MAX)
		n = DNS_CACHE_RR_MAX;
	if ((e->ans.rr = calloc(n, sizeof(char *))) == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		size_t	 len = strnlen(rr[i], DNS_CACHE_TXT_MAX);

		if ((e->ans.rr[i] = malloc(len + 1)) == NULL)
			goto nomem;
		memcpy(e->ans.rr[i], rr[i], len);
		e->ans.rr[i][len] = '\0';
		e->ans.n++;
	}
	return 0;
nomem:
	dns_rrset_clear(&e->ans);
	e->ans.status = DNS_R_TEMP;
	return -1;
}

const char *
dns_rr_name(enum dns_rr t)
{
	switch (t) {
	case DNS_RR_A:		return "A";
	case DNS_RR_AAAA:	return "AAAA";
	case DNS_RR_MX:		return "MX";
	case DNS_RR_TXT:	return "TXT";
	case DNS_RR_PTR:	return "PTR";
	}
	return "?";
}
