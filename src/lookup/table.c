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
