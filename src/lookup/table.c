/*
 * table - one interface (table.h), several backends (table_backend.h):
 * the DSN's prefix picks SQLite ("sqlite:/path") or PostgreSQL
 * ("postgresql://user:password@host:port/dbname"); every call goes to that
 * backend's function, with the same meaning whichever it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"
#include "table_backend.h"

struct table {
	const struct table_ops	*ops;
	struct table_be		*be;
};

static const struct table_ops *const backends[] = {
	&table_sqlite_ops,
	&table_pgsql_ops,
	&table_files_ops,
};

struct table *
table_open(const char *dsn, char *err, size_t errlen)
{
	const struct table_ops	*ops = NULL;
	struct table		*t;
	size_t			 i;

	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strncmp(dsn, backends[i]->prefix,
		    strlen(backends[i]->prefix)) == 0) {
			ops = backends[i];
			break;
		}
	if (ops == NULL) {
		snprintf(err, errlen, "unknown database \"%.200s\" "
		    "(want sqlite:/path/file.db, postgresql://... or "
		    "files:/dir)", dsn);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->ops = ops;
	if ((t->be = ops->open(dsn, err, errlen)) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

/*
 * "scheme://user:password@host..." -> "scheme://user:***@host...": the
 * userinfo ends at the last '@' before the path.
 */
const char *
table_dsn_safe(const char *dsn, char *buf, size_t buflen)
{
	const char	*u, *end, *at = NULL, *colon = NULL, *p;

	if ((u = strstr(dsn, "://")) == NULL) {
		snprintf(buf, buflen, "%s", dsn);
		return buf;
	}
	u += 3;
	end = u + strcspn(u, "/?#");
	for (p = u; p < end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL)
		colon = memchr(u, ':', (size_t)(at - u));
	if (colon == NULL)
		snprintf(buf, buflen, "%s", dsn);
	else
		snprintf(buf, buflen, "%.*s***%s", (int)(colon + 1 - dsn), dsn,
		    at);
	return buf;
}

void
table_close(struct table *t)
{
	if (t == NULL)
		return;
	t->ops->close(t->be);
	free(t);
}

int
table_init_schema(struct table *t, char *err, size_t errlen)
{
	return t->ops->init_schema(t->be, err, errlen);
}

int
table_schema_version(struct table *t)
{
	return t->ops->schema_version(t->be);
}

enum table_res
table_domain_local(struct table *t, const char *domain)
{
	return t->ops->domain_local(t->be, domain);
}

enum table_res
table_account_exists(struct table *t, const char *local, const char *domain)
{
	return t->ops->account_exists(t->be, local, domain);
}

enum table_res
table_account_password(struct table *t, const char *local,
    const char *domain, char *hash, size_t hashlen)
{
	return t->ops->account_password(t->be, local, domain, hash, hashlen);
}

int
table_domain_add(struct table *t, const char *domain, char *err,
    size_t errlen)
{
	return t->ops->domain_add(t->be, domain, err, errlen);
}

int
table_domain_del(struct table *t, const char *domain, char *err,
    size_t errlen)
{
	return t->ops->domain_del(t->be, domain, err, errlen);
}

int
table_domain_list(struct table *t, table_row_cb cb, void *arg, char *err,
    size_t errlen)
{
	return t->ops->domain_list(t->be, cb, arg, err, errlen);
}

int
table_domain_accounts(struct table *t, const char *domain,
    unsigned long *count, char *err, size_t errlen)
{
	return t->ops->domain_accounts(t->be, domain, count, err, errlen);
}

int
table_account_add(struct table *t, const char *local, const char *domain,
    const char *hash, char *err, size_t errlen)
{
	return t->ops->account_add(t->be, local, domain, hash, err, errlen);
}

int
table_account_del(struct table *t, const char *local, const char *domain,
    char *err, size_t errlen)
{
	return t->ops->account_del(t->be, local, domain, err, errlen);
}

int
table_account_passwd(struct table *t, const char *local, const char *domain,
    const char *hash, char *err, size_t errlen)
{
	return t->ops->account_passwd(t->be, local, domain, hash, err, errlen);
}

int
table_account_list(struct table *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	return t->ops->account_list(t->be, domain, cb, arg, err, errlen);
}

enum table_res
table_alias_get(struct table *t, const char *key, table_row_cb cb,
    void *arg)
{
	return t->ops->alias_get(t->be, key, cb, arg);
}

enum table_res
table_alias_wildcards(struct table *t, const char *domain, table_row_cb cb,
    void *arg)
{
	return t->ops->alias_wildcards(t->be, domain, cb, arg);
}

int
table_alias_add(struct table *t, const char *key, const char *target,
    const char *owner, char *err, size_t errlen)
{
	return t->ops->alias_add(t->be, key, target, owner, err, errlen);
}

int
table_alias_del(struct table *t, const char *key, const char *target,
    char *err, size_t errlen)
{
	return t->ops->alias_del(t->be, key, target, err, errlen);
}

int
table_alias_list(struct table *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	return t->ops->alias_list(t->be, domain, cb, arg, err, errlen);
}

int
table_alias_list_target(struct table *t, const char *target,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	return t->ops->alias_list_target(t->be, target, cb, arg, err, errlen);
}

enum table_res
table_account_get(struct table *t, const char *local, const char *domain,
    struct table_account *out)
{
	memset(out, 0, sizeof(*out));
	return t->ops->account_get(t->be, local, domain, out);
}

int
table_account_set(struct table *t, const char *local, const char *domain,
    const char *recovery, const char *send_as, char *err, size_t errlen)
{
	if ((recovery != NULL && strlen(recovery) > TABLE_RECOVERY_MAX) ||
	    (send_as != NULL && strlen(send_as) > TABLE_SEND_AS_MAX)) {
		snprintf(err, errlen, "recovery address or send-as too long");
		return -1;
	}
	return t->ops->account_set(t->be, local, domain, recovery, send_as,
	    err, errlen);
}

int
table_reset_put(struct table *t, const char *local, const char *domain,
    const char *token_hash, long long expires, char *err, size_t errlen)
{
	if (strlen(token_hash) > TABLE_TOKEN_HASH_MAX) {
		snprintf(err, errlen, "token hash too long");
		return -1;
	}
	return t->ops->reset_put(t->be, local, domain, token_hash, expires,
	    err, errlen);
}

enum table_res
table_reset_take(struct table *t, const char *local, const char *domain,
    const char *token_hash, long long now)
{
	if (strlen(token_hash) > TABLE_TOKEN_HASH_MAX)
		return TABLE_NOTFOUND;
	return t->ops->reset_take(t->be, local, domain, token_hash, now);
}

/*
 * The masked relay (schema 4). Arguments are checked here, once for every
 * backend: a code or address too long to be stored is "not found" for a
 * look-up and an error for a change.
 */
#define MASK_ADDR_MAX	256	/* struct table_mask_service.real */

static int
mask_code_ok(const char *code)
{
	return code != NULL && code[0] != '\0' &&
	    strlen(code) <= TABLE_MASK_CODE_MAX;
}

static int
mask_addr_ok(const char *addr)
{
	return addr != NULL && addr[0] != '\0' &&
	    strlen(addr) <= MASK_ADDR_MAX;
}

static int
mask_kind_ok(const char *kind)
{
	return kind != NULL && (strcmp(kind, "service") == 0 ||
	    strcmp(kind, "pair") == 0);
}

static int
mask_bad(const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", what);
	return -1;
}

enum table_res
table_mask_service_get(struct table *t, const char *code,
    struct table_mask_service *out)
{
	memset(out, 0, sizeof(*out));
	if (!mask_code_ok(code))
		return TABLE_NOTFOUND;
	return t->ops->mask_service_get(t->be, code, out);
}

int
table_mask_service_add(struct table *t, const char *code, const char *real,
    const char *label, long long expires, char *err, size_t errlen)
{
	if (!mask_code_ok(code))
		return mask_bad("bad service code", err, errlen);
	if (!mask_addr_ok(real))
		return mask_bad("bad real address", err, errlen);
	if (label == NULL)
		label = "";
	if (strlen(label) > TABLE_MASK_LABEL_MAX)
		return mask_bad("label too long", err, errlen);
	if (expires < 0)
		return mask_bad("bad expiry time", err, errlen);
	return t->ops->mask_service_add(t->be, code, real, label, expires, err,
	    errlen);
}

int
table_mask_service_set(struct table *t, const char *code, int disabled,
    char *err, size_t errlen)
{
	if (disabled < 0 || disabled > 2)
		return mask_bad("bad disabled state", err, errlen);
	if (!mask_code_ok(code))
		return mask_bad("no such service", err, errlen);
	return t->ops->mask_service_set(t->be, code, disabled, err, errlen);
}

int
table_mask_service_del(struct table *t, const char *code, char *err,
    size_t errlen)
{
	if (!mask_code_ok(code))
		return mask_bad("no such service", err, errlen);
	return t->ops->mask_service_del(t->be, code, err, errlen);
}

int
table_mask_service_list(struct table *t, table_row_cb cb, void *arg,
    char *err, size_t errlen)
{
	return t->ops->mask_service_list(t->be, cb, arg, err, errlen);
}

enum table_res
table_mask_pair_get(struct table *t, const char *code,
    struct table_mask_pair *out)
{
	memset(out, 0, sizeof(*out));
	if (!mask_code_ok(code))
		return TABLE_NOTFOUND;
	return t->ops->mask_pair_get(t->be, code, out);
}

enum table_res
table_mask_pair_find(struct table *t, const char *service,
    const char *person, struct table_mask_pair *out)
{
	memset(out, 0, sizeof(*out));
	if (!mask_code_ok(service) || !mask_addr_ok(person))
		return TABLE_NOTFOUND;
	return t->ops->mask_pair_find(t->be, service, person, out);
}

/* a pair that cannot be stored cannot be made: TEMPFAIL is all it may say */
enum table_res
table_mask_pair_add(struct table *t, const char *code, const char *service,
    const char *person, struct table_mask_pair *out)
{
	memset(out, 0, sizeof(*out));
	if (!mask_code_ok(code) || !mask_code_ok(service) ||
	    !mask_addr_ok(person))
		return TABLE_TEMPFAIL;
	return t->ops->mask_pair_add(t->be, code, service, person, out);
}

int
table_mask_pair_set(struct table *t, const char *code, int disabled,
    char *err, size_t errlen)
{
	if (disabled < 0 || disabled > 2)
		return mask_bad("bad disabled state", err, errlen);
	if (!mask_code_ok(code))
		return mask_bad("no such pair", err, errlen);
	return t->ops->mask_pair_set(t->be, code, disabled, err, errlen);
}

int
table_mask_pair_list(struct table *t, const char *service, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	if (!mask_code_ok(service))
		return 0;	/* no pairs can be stored under it */
	return t->ops->mask_pair_list(t->be, service, cb, arg, err, errlen);
}

int
table_mask_event(struct table *t, const char *service, const char *pair,
    const char *kind, long long at)
{
	if (!mask_code_ok(service) || (pair != NULL && pair[0] != '\0' &&
	    !mask_code_ok(pair)) || kind == NULL || kind[0] == '\0' ||
	    strlen(kind) > 32)
		return -1;
	return t->ops->mask_event(t->be, service, pair, kind, at);
}

int
table_mask_bounce(struct table *t, const char *kind, const char *code,
    unsigned limit)
{
	if (!mask_kind_ok(kind) || !mask_code_ok(code))
		return -1;
	return t->ops->mask_bounce(t->be, kind, code, limit);
}

int
table_mask_ok(struct table *t, const char *kind, const char *code)
{
	if (!mask_kind_ok(kind) || !mask_code_ok(code))
		return -1;
	return t->ops->mask_ok(t->be, kind, code);
}

int
table_mask_events(struct table *t, const char *service, long long since,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	if (service != NULL && !mask_code_ok(service))
		return 0;
	return t->ops->mask_events(t->be, service, since, cb, arg, err,
	    errlen);
}
