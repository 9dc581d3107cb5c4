/*
 * table_files - the files backend of table.h ("files:/etc/sluice/tables"):
 * domains and accounts in two plain files of a directory, for a small
 * server configured by hand or by a configuration-management tool.
 *
 *	DIR/domains	one domain a line
 *	DIR/accounts	"local@domain [PASSWORD-HASH]" a line (a yescrypt
 *			hash as `sluice account` writes; none: no AUTH)
 *
 * '#' starts a comment, blank lines are skipped, names are compared
 * without case. The files are read again when they change (a stat(2) of
 * each per lookup), so an edit applies to the next message. Aliases come
 * from the aliases file (the `aliases` directive); this backend has none
 * of its own, nor masks (reads find none, writes fail). It is read-only: the `sluice domain|account|alias` commands
 * that would change it say so and change nothing. A file that cannot be
 * read is a temporary failure (P3), never "no such user".
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "table_backend.h"

#define FILES_LINE_MAX	1024
#define FILES_NAME_MAX	320

struct fentry {
	char	*name;		/* lower-cased: "domain" or "local@domain" */
	char	*hash;		/* accounts: "" if none */
};

struct flist {
	struct fentry	*e;
	size_t		 n;
	struct stat	 st;	/* of the file when read; st_ino 0: never */
};

struct table_be {
	char		 dir[4096];
	struct flist	 domains, accounts;
};

static void
flist_free(struct flist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->e[i].name);
		free(l->e[i].hash);
	}
	free(l->e);
	memset(l, 0, sizeof(*l));
}

static int
fentry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fentry *)a)->name,
	    ((const struct fentry *)b)->name);
}

/* Read DIR/name into l if it changed; 0 ok, -1 with err. */
static int
flist_load(struct table_be *t, const char *name, struct flist *l,
    char *err, size_t errlen)
{
	char		 path[4200], line[FILES_LINE_MAX + 2], *p, *w, *h;
	struct flist	 nl;
	struct stat	 st;
	unsigned	 lineno = 0;
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	if (stat(path, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (l->st.st_ino != 0 && st.st_ino == l->st.st_ino &&
	    st.st_size == l->st.st_size &&
	    st.st_mtim.tv_sec == l->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == l->st.st_mtim.tv_nsec)
		return 0;
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	memset(&nl, 0, sizeof(nl));
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%u: line too long", path,
			    lineno);
			goto fail;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (w = line; isspace((unsigned char)*w); w++)
			;
		for (p = w; *p && !isspace((unsigned char)*p); p++)
			*p = (char)tolower((unsigned char)*p);
		if (p == w)
			continue;
		h = *p ? p + 1 : p;
		*p = '\0';
		while (isspace((unsigned char)*h))
			h++;
		for (p = h; *p && !isspace((unsigned char)*p); p++)
			;
		*p = '\0';
		if (strlen(w) > FILES_NAME_MAX || (l == &t->accounts &&
		    strchr(w, '@') == NULL)) {
			snprintf(err, errlen, "%s:%u: bad %s \"%.64s\"", path,
			    lineno, l == &t->accounts ? "account" : "domain",
			    w);
			goto fail;
		}
		if ((nl.n & (nl.n - 1)) == 0) {	/* 0, 1, 2, 4, ... */
			struct fentry *ne = reallocarray(nl.e,
			    nl.n ? nl.n * 2 : 16, sizeof(*ne));
			if (ne == NULL)
				goto nomem;
			nl.e = ne;
		}
		nl.e[nl.n].name = strdup(w);
		nl.e[nl.n].hash = strdup(h);
		if (nl.e[nl.n].name == NULL || nl.e[nl.n].hash == NULL) {
			free(nl.e[nl.n].name);
			free(nl.e[nl.n].hash);
			goto nomem;
		}
		nl.n++;
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(fp);
	if (nl.n > 1)
		qsort(nl.e, nl.n, sizeof(*nl.e), fentry_cmp);
	nl.st = st;
	flist_free(l);
	*l = nl;
	return 0;
nomem:
	snprintf(err, errlen, "%s: out of memory", path);
fail:
	fclose(fp);
	flist_free(&nl);
	return -1;
}

static const struct fentry *
flist_find(const struct flist *l, const char *name)
{
	struct fentry	 key;
	char		 low[FILES_NAME_MAX + 1];
	size_t		 i;

	for (i = 0; name[i] && i < FILES_NAME_MAX; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	if (name[i] != '\0')
		return NULL;
	low[i] = '\0';
	key.name = low;
	return bsearch(&key, l->e, l->n, sizeof(*l->e), fentry_cmp);
}

static int
files_refresh(struct table_be *t)
{
	char	 err[512];

	return flist_load(t, "domains", &t->domains, err, sizeof(err)) == -1 ||
	    flist_load(t, "accounts", &t->accounts, err, sizeof(err)) == -1 ?
	    -1 : 0;
}

static struct table_be *
files_open(const char *dsn, char *err, size_t errlen)
{
	struct table_be	*t;
	const char	*dir = dsn + strlen("files:");

	if (dir[0] != '/' || strlen(dir) >= sizeof(t->dir)) {
		snprintf(err, errlen, "files: want files:/absolute/directory");
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(t->dir, sizeof(t->dir), "%s", dir);
	if (flist_load(t, "domains", &t->domains, err, errlen) == -1 ||
	    flist_load(t, "accounts", &t->accounts, err, errlen) == -1) {
		flist_free(&t->domains);
		free(t);
		return NULL;
	}
	return t;
}

static void
files_close(struct table_be *t)
{
	if (t == NULL)
		return;
	flist_free(&t->domains);
	flist_free(&t->accounts);
	free(t);
}

static int
files_init_schema(struct table_be *t, char *err, size_t errlen)
{
	(void)t;
	(void)err;
	(void)errlen;
	return 0;		/* nothing to create: the files are the schema */
}

static int
files_schema_version(struct table_be *t)
{
	(void)t;
	return 0;
}

static enum table_res
files_domain_local(struct table_be *t, const char *domain)
{
	if (files_refresh(t) == -1)
		return TABLE_TEMPFAIL;
	return flist_find(&t->domains, domain) ? TABLE_FOUND : TABLE_NOTFOUND;
}

static enum table_res
files_account(struct table_be *t, const char *local, const char *domain,
    const struct fentry **e)
{
	char	 addr[FILES_NAME_MAX + 2];

	if (files_refresh(t) == -1)
		return TABLE_TEMPFAIL;
	if ((size_t)snprintf(addr, sizeof(addr), "%s@%s", local, domain) >=
	    sizeof(addr))
		return TABLE_NOTFOUND;
	*e = flist_find(&t->accounts, addr);
	return *e ? TABLE_FOUND : TABLE_NOTFOUND;
}

static enum table_res
files_account_exists(struct table_be *t, const char *local,
    const char *domain)
{
	const struct fentry	*e;

	return files_account(t, local, domain, &e);
}

static enum table_res
files_account_password(struct table_be *t, const char *local,
    const char *domain, char *hash, size_t hashlen)
{
	const struct fentry	*e;
	enum table_res		 r;

	if ((r = files_account(t, local, domain, &e)) != TABLE_FOUND)
		return r;
	if (strlen(e->hash) >= hashlen)
		return TABLE_TEMPFAIL;
	snprintf(hash, hashlen, "%s", e->hash);
	return TABLE_FOUND;
}

/* the commands that would change the files */
static int
files_readonly(struct table_be *t, const char *file, char *err,
    size_t errlen)
{
	snprintf(err, errlen, "the files backend is read-only: edit %s/%s "
	    "(sluiced sees the change at once)", t->dir, file);
	return -1;
}

static int
files_domain_add(struct table_be *t, const char *d, char *err, size_t len)
{
	(void)d;
	return files_readonly(t, "domains", err, len);
}

static int
files_domain_del(struct table_be *t, const char *d, char *err, size_t len)
{
	(void)d;
	return files_readonly(t, "domains", err, len);
}

static int
files_account_add(struct table_be *t, const char *l, const char *d,
    const char *h, char *err, size_t len)
{
	(void)l;
	(void)d;
	(void)h;
	return files_readonly(t, "accounts", err, len);
}

static int
files_account_del(struct table_be *t, const char *l, const char *d,
    char *err, size_t len)
{
	(void)l;
	(void)d;
	return files_readonly(t, "accounts", err, len);
}

static int
files_account_passwd(struct table_be *t, const char *l, const char *d,
    const char *h, char *err, size_t len)
{
	(void)l;
	(void)d;
	(void)h;
	return files_readonly(t, "accounts", err, len);
}

static int
files_alias_add(struct table_be *t, const char *k, const char *tg,
    const char *o, char *err, size_t len)
{
	(void)t;
	(void)k;
	(void)tg;
	(void)o;
	snprintf(err, len, "the files backend has no aliases of its own: "
	    "use the aliases file (the `aliases` directive)");
	return -1;
}

static int
files_alias_del(struct table_be *t, const char *k, const char *tg,
    char *err, size_t len)
{
	return files_alias_add(t, k, tg, "", err, len);
}

static enum table_res
files_alias_none(struct table_be *t, const char *k, table_row_cb cb,
    void *arg)
{
	(void)t;
	(void)k;
	(void)cb;
	(void)arg;
	return TABLE_NOTFOUND;
}

static int
files_domain_list(struct table_be *t, table_row_cb cb, void *arg,
    char *err, size_t errlen)
{
	const char	*cols[2];

	if (flist_load(t, "domains", &t->domains, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < t->domains.n; i++) {
		cols[0] = t->domains.e[i].name;
		cols[1] = "";
		cb(arg, cols, 2);
	}
	return 0;
}

static int
files_account_list(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	const char	*cols[3], *at;

	if (flist_load(t, "accounts", &t->accounts, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < t->accounts.n; i++) {
		at = strrchr(t->accounts.e[i].name, '@');
		if (domain != NULL && (at == NULL || strcasecmp(at + 1,
		    domain) != 0))
			continue;
		cols[0] = t->accounts.e[i].name;
		cols[1] = at ? at + 1 : "";
		cols[2] = "";
		cb(arg, cols, 3);
	}
	return 0;
}

static int
files_domain_accounts(struct table_be *t, const char *domain,
    unsigned long *count, char *err, size_t errlen)
{
	const char	*at;

	*count = 0;
	if (flist_load(t, "accounts", &t->accounts, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < t->accounts.n; i++)
		if ((at = strrchr(t->accounts.e[i].name, '@')) != NULL &&
		    strcasecmp(at + 1, domain) == 0)
			(*count)++;
	return 0;
}

static int
files_alias_list(struct table_be *t, const char *domain, table_row_cb cb,
    void *arg, char *err, size_t errlen)
{
	(void)t;
	(void)domain;
	(void)cb;
	(void)arg;
	(void)err;
	(void)errlen;
	return 0;
}

static int
files_alias_list_target(struct table_be *t, const char *target,
    table_row_cb cb, void *arg, char *err, size_t errlen)
{
	return files_alias_list(t, target, cb, arg, err, errlen);
}

/* the hash from the accounts file; no recovery, send_as or time */
static enum table_res
files_account_get(struct table_be *t, const char *local, const char *domain,
    struct table_account *out)
{
	const struct fentry	*e;
	enum table_res		 r;

	if ((r = files_account(t, local, domain, &e)) != TABLE_FOUND)
		return r;
	if (strlen(e->hash) >= sizeof(out->hash))
		return TABLE_TEMPFAIL;
	snprintf(out->hash, sizeof(out->hash), "%s", e->hash);
	out->recovery[0] = out->send_as[0] = '\0';
	out->created = 0;
	return TABLE_FOUND;
}

static int
files_account_set(struct table_be *t, const char *l, const char *d,
    const char *r, const char *s, char *err, size_t len)
{
	(void)l;
	(void)d;
	(void)r;
	(void)s;
	return files_readonly(t, "accounts", err, len);
}

static int
files_reset_put(struct table_be *t, const char *l, const char *d,
    const char *h, long long ex, char *err, size_t len)
{
	(void)l;
	(void)d;
	(void)h;
	(void)ex;
	return files_readonly(t, "accounts", err, len);
}

/* no tokens are ever stored here */
static enum table_res
files_reset_take(struct table_be *t, const char *l, const char *d,
    const char *h, long long now)
{
	(void)t;
	(void)l;
	(void)d;
	(void)h;
	(void)now;
	return TABLE_NOTFOUND;
}

/*
 * The masked relay needs a database: here there are no services, pairs or
 * events, and the commands that would make them say it is read-only.
 */
static int
files_mask_ro(struct table_be *t, char *err, size_t errlen)
{
	(void)t;
	snprintf(err, errlen, "the files backend is read-only and holds no "
	    "masks: the masked relay needs a sqlite: or postgresql: database");
	return -1;
}

static enum table_res
files_mask_service_get(struct table_be *t, const char *c,
    struct table_mask_service *out)
{
	(void)t;
	(void)c;
	(void)out;
	return TABLE_NOTFOUND;
}

static int
files_mask_service_add(struct table_be *t, const char *c, const char *r,
    const char *l, long long ex, char *err, size_t len)
{
	(void)c;
	(void)r;
	(void)l;
	(void)ex;
	return files_mask_ro(t, err, len);
}

static int
files_mask_set(struct table_be *t, const char *c, int d, char *err,
    size_t len)
{
	(void)c;
	(void)d;
	return files_mask_ro(t, err, len);
}

static int
files_mask_service_del(struct table_be *t, const char *c, char *err,
    size_t len)
{
	(void)c;
	return files_mask_ro(t, err, len);
}

static int
files_mask_service_list(struct table_be *t, table_row_cb cb, void *arg,
    char *err, size_t len)
{
	(void)t;
	(void)cb;
	(void)arg;
	(void)err;
	(void)len;
	return 0;
}

static enum table_res
files_mask_pair_get(struct table_be *t, const char *c,
    struct table_mask_pair *out)
{
	(void)t;
	(void)c;
	(void)out;
	return TABLE_NOTFOUND;
}

static enum table_res
files_mask_pair_find(struct table_be *t, const char *s, const char *p,
    struct table_mask_pair *out)
{
	(void)s;
	return files_mask_pair_get(t, p, out);
}

/* a pair cannot be stored: temporary, so that mail is not refused for it */
static enum table_res
files_mask_pair_add(struct table_be *t, const char *c, const char *s,
    const char *p, struct table_mask_pair *out)
{
	(void)t;
	(void)c;
	(void)s;
	(void)p;
	(void)out;
	return TABLE_TEMPFAIL;
}

static int
files_mask_list(struct table_be *t, const char *s, table_row_cb cb,
    void *arg, char *err, size_t len)
{
	(void)s;
	return files_mask_service_list(t, cb, arg, err, len);
}

static int
files_mask_event(struct table_be *t, const char *s, const char *p,
    const char *k, long long at)
{
	(void)t;
	(void)s;
	(void)p;
	(void)k;
	(void)at;
	return -1;
}

static int
files_mask_bounce(struct table_be *t, const char *k, const char *c,
    unsigned limit)
{
	(void)t;
	(void)k;
	(void)c;
	(void)limit;
	return -1;
}

static int
files_mask_ok(struct table_be *t, const char *k, const char *c)
{
	return files_mask_bounce(t, k, c, 0);
}

static int
files_mask_events(struct table_be *t, const char *s, long long since,
    table_row_cb cb, void *arg, char *err, size_t len)
{
	(void)since;
	return files_mask_list(t, s, cb, arg, err, len);
}

const struct table_ops table_files_ops = {
	.prefix = "files:",
	.open = files_open,
	.close = files_close,
	.init_schema = files_init_schema,
	.schema_version = files_schema_version,
	.domain_local = files_domain_local,
	.account_exists = files_account_exists,
	.account_password = files_account_password,
	.domain_add = files_domain_add,
	.domain_del = files_domain_del,
	.domain_list = files_domain_list,
	.domain_accounts = files_domain_accounts,
	.account_add = files_account_add,
	.account_del = files_account_del,
	.account_passwd = files_account_passwd,
	.account_list = files_account_list,
	.alias_get = files_alias_none,
	.alias_wildcards = files_alias_none,
	.alias_add = files_alias_add,
	.alias_del = files_alias_del,
	.alias_list = files_alias_list,
	.alias_list_target = files_alias_list_target,
	.account_get = files_account_get,
	.account_set = files_account_set,
	.reset_put = files_reset_put,
	.reset_take = files_reset_take,
	.mask_service_get = files_mask_service_get,
	.mask_service_add = files_mask_service_add,
	.mask_service_set = files_mask_set,
	.mask_service_del = files_mask_service_del,
	.mask_service_list = files_mask_service_list,
	.mask_pair_get = files_mask_pair_get,
	.mask_pair_find = files_mask_pair_find,
	.mask_pair_add = files_mask_pair_add,
	.mask_pair_set = files_mask_set,
	.mask_pair_list = files_mask_list,
	.mask_event = files_mask_event,
	.mask_bounce = files_mask_bounce,
	.mask_ok = files_mask_ok,
	.mask_events = files_mask_events,
};
