/*
 * expand - recursive expansion of one recipient (expand.h), and the loop
 * check of an aliases file (aliases.h).
 *
 * A depth-first walk over addresses. Each address (lower-cased local part
 * and domain) has a memo node: on the path while its alias is being
 * expanded (reaching it again is a loop), done afterwards (reaching it
 * again adds nothing: the walk is the same wherever the address comes
 * from, so it is skipped). Final targets go into a growing array with a
 * hash set of indices beside it for the duplicates. An alias entry from a
 * source is copied before anything else is asked (the callee may reuse
 * its memory), and the answers about domains are kept for the call.
 * A NULL callback answers "no".
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "aliases.h"
#include "expand.h"
#include "srs.h"

#define DOMAINS_CACHED	16
#define CHECK_DOMAIN	"alias-check.invalid"

enum { M_NEW, M_PATH, M_DONE };

struct mnode {
	int	 state;
	char	 key[];		/* lower(local)@domain */
};

struct tcopy {
	enum alias_kind	 kind;
	uid_t		 owner;
	const char	*text;
};

struct xs {
	const struct expand_src	*src;
	const char		*top;		/* the recipient, for messages */
	const char		*hide;		/* domain left out of messages */
	int			 collect;	/* 0: the loop check */
	unsigned		 maxdepth;
	size_t			 maxtargets, work, maxwork;
	struct xtarget		*out;
	size_t			 n, cap;
	size_t			*dset;		/* index + 1 into out */
	size_t			 dcap;
	struct mnode		**memo;
	size_t			 mn, mcap;
	const char		*path[EXPAND_DEPTH_LIMIT + 1];
	unsigned		 depth;
	struct {
		char	 name[ADDR_DOMAIN_MAX + 1];
		int	 local;
	}			 doms[DOMAINS_CACHED];
	size_t			 ndoms;
	enum expand_res		 res;
	char			*err;
	size_t			 errlen;
};

static int	resolve(struct xs *, const struct mailaddr *, const char *,
		    int);

static int	xfail(struct xs *, enum expand_res, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Record the first failure; always -1. */
static int
xfail(struct xs *x, enum expand_res r, const char *fmt, ...)
{
	va_list	 ap;

	if (x->res != EXPAND_OK)
		return -1;
	x->res = r;
	va_start(ap, fmt);
	vsnprintf(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
nomem(struct xs *x)
{
	return xfail(x, EXPAND_TEMPFAIL, "4.3.0 out of memory expanding <%s>",
	    x->top);
}

static uint64_t
hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char	*s = p;

	while (n--) {
		h ^= *s++;
		h *= 1099511628211ULL;
	}
	return h;
}

#define HASH_INIT	14695981039346656037ULL

static void
lower(char *dst, const char *src, size_t dstlen)
{
	size_t	 i;

	for (i = 0; src[i] && i + 1 < dstlen; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ?
		    (char)(src[i] - 'A' + 'a') : src[i];
	dst[i] = '\0';
}

/* Append to err an address of the path (the check hides its domain). */
static void
err_addr(struct xs *x, size_t *k, const char *a)
{
	size_t	 al = strlen(a), hl;

	if (x->hide && al > (hl = strlen(x->hide)) && a[al - hl - 1] == '@' &&
	    strcmp(a + al - hl, x->hide) == 0)
		al -= hl + 1;
	if (*k < x->errlen)
		*k += (size_t)snprintf(x->err + *k, x->errlen - *k, "%.*s",
		    (int)al, a);
}

static void
err_str(struct xs *x, size_t *k, const char *s)
{
	if (*k < x->errlen)
		*k += (size_t)snprintf(x->err + *k, x->errlen - *k, "%s", s);
}

/* "CODE what: a -> b -> ... -> last", from path[from] */
static int
path_fail(struct xs *x, enum expand_res r, const char *what, unsigned from,
    const char *last)
{
	size_t	 k = 0;

	if (x->res != EXPAND_OK)
		return -1;
	x->res = r;
	if (x->errlen == 0)
		return -1;
	x->err[0] = '\0';
	err_str(x, &k, what);
	for (unsigned i = from; i < x->depth; i++) {
		err_addr(x, &k, x->path[i]);
		err_str(x, &k, " -> ");
	}
	err_addr(x, &k, last);
	return -1;
}

/* --- the memo of addresses --- */

static size_t
memo_slot(const struct xs *x, const char *key)
{
	size_t	 mask = x->mcap - 1;
	size_t	 i = (size_t)hash(HASH_INIT, key, strlen(key)) & mask;

	while (x->memo[i] != NULL && strcmp(x->memo[i]->key, key) != 0)
		i = (i + 1) & mask;
	return i;
}

/* the node of key, created if new; NULL on no memory */
static struct mnode *
memo_get(struct xs *x, const char *key)
{
	struct mnode	*m, **old;
	size_t		 s, len = strlen(key), oldcap = x->mcap, i;

	if ((x->mn + 1) * 2 > x->mcap) {
		size_t ncap = x->mcap ? x->mcap * 2 : 64;
		if (ncap > SIZE_MAX / sizeof(*x->memo))
			return NULL;
		old = x->memo;
		if ((x->memo = calloc(ncap, sizeof(*x->memo))) == NULL) {
			x->memo = old;
			return NULL;
		}
		x->mcap = ncap;
		for (i = 0; i < oldcap; i++)
			if (old[i] != NULL)
				x->memo[memo_slot(x, old[i]->key)] = old[i];
		free(old);
	}
	s = memo_slot(x, key);
	if (x->memo[s] != NULL)
		return x->memo[s];
	if ((m = malloc(sizeof(*m) + len + 1)) == NULL)
		return NULL;
	m->state = M_NEW;
	memcpy(m->key, key, len + 1);
	x->memo[s] = m;
	x->mn++;
	return m;
}

/* --- final targets --- */

static uint64_t
target_hash(enum xtarget_kind kind, const char *addr, const char *text,
    uid_t owner)
{
	uint64_t	 h = hash(HASH_INIT, &kind, sizeof(kind));

	h = hash(h, addr, strlen(addr) + 1);
	h = hash(h, text, strlen(text) + 1);
	if (kind == XT_PIPE || kind == XT_FILE)
		h = hash(h, &owner, sizeof(owner));
	return h;
}

static int
target_same(const struct xtarget *t, enum xtarget_kind kind,
    const char *addr, const char *text, uid_t owner)
{
	return t->kind == kind && strcmp(t->addr, addr) == 0 &&
	    strcmp(t->text, text) == 0 && ((kind != XT_PIPE &&
	    kind != XT_FILE) || t->owner == owner);
}

static int
dset_grow(struct xs *x)
{
	size_t	 ncap = x->dcap ? x->dcap * 2 : 64, *nd, i, s;

	if (ncap > SIZE_MAX / sizeof(*nd) ||
	    (nd = calloc(ncap, sizeof(*nd))) == NULL)
		return -1;
	for (i = 0; i < x->n; i++) {
		const struct xtarget *t = &x->out[i];
		s = (size_t)target_hash(t->kind, t->addr, t->text, t->owner) &
		    (ncap - 1);
		while (nd[s])
			s = (s + 1) & (ncap - 1);
		nd[s] = i + 1;
	}
	free(x->dset);
	x->dset = nd;
	x->dcap = ncap;
	return 0;
}

/* Add a final target unless it is there already. */
static int
add_final(struct xs *x, enum xtarget_kind kind, const char *addr,
    const char *text, uid_t owner, const char *ext, const char *via)
{
	struct xtarget	*t;
	size_t		 s;

	if (!x->collect)
		return 0;
	if ((x->n + 1) * 2 > x->dcap && dset_grow(x) == -1)
		return nomem(x);
	s = (size_t)target_hash(kind, addr, text, owner) & (x->dcap - 1);
	for (; x->dset[s]; s = (s + 1) & (x->dcap - 1))
		if (target_same(&x->out[x->dset[s] - 1], kind, addr, text,
		    owner))
			return 0;
	if (x->n >= x->maxtargets)
		return xfail(x, EXPAND_TOOMANY, "5.5.3 <%s>: alias expansion "
		    "over %zu targets", x->top, x->maxtargets);
	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 8;
		struct xtarget *no;
		if (ncap > SIZE_MAX / sizeof(*no) ||
		    (no = realloc(x->out, ncap * sizeof(*no))) == NULL)
			return nomem(x);
		x->out = no;
		x->cap = ncap;
	}
	t = &x->out[x->n];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	snprintf(t->addr, sizeof(t->addr), "%s", addr);
	snprintf(t->text, sizeof(t->text), "%s", text);
	if (kind == XT_PIPE || kind == XT_FILE)
		t->owner = owner;
	snprintf(t->ext, sizeof(t->ext), "%s", ext);
	snprintf(t->via, sizeof(t->via), "%s", via);
	x->dset[s] = ++x->n;
	return 0;
}

static int
add_mailbox(struct xs *x, const char *lo, const char *domain,
    const char *ext, const char *via)
{
	char	 a[ADDR_STR_MAX + 1];

	snprintf(a, sizeof(a), "%s@%s", lo, domain);
	return add_final(x, XT_MAILBOX, a, "", 0, ext, via);
}

/* --- the sources --- */

static int
is_local(struct xs *x, const char *domain)
{
	int	 r;

	for (size_t i = 0; i < x->ndoms; i++)
		if (strcmp(x->doms[i].name, domain) == 0)
			return x->doms[i].local;
	r = x->src->local_domain ? x->src->local_domain(x->src->arg, domain) :
	    0;
	if (r == -1)
		return xfail(x, EXPAND_TEMPFAIL, "4.3.0 <%s>: temporary failure "
		    "looking up the domain %s", x->top, domain);
	r = r != 0;
	if (x->ndoms < DOMAINS_CACHED) {
		snprintf(x->doms[x->ndoms].name, sizeof(x->doms[0].name), "%s",
		    domain);
		x->doms[x->ndoms++].local = r;
	}
	return r;
}

static int
account(struct xs *x, const char *lo, const char *domain)
{
	int	 r;

	if (x->src->account == NULL)
		return 0;
	if ((r = x->src->account(x->src->arg, lo, domain)) == -1)
		return xfail(x, EXPAND_TEMPFAIL, "4.3.0 <%s>: temporary failure "
		    "looking up the account %s@%s", x->top, lo, domain);
	return r != 0;
}

static int
alias(struct xs *x, const char *key, const struct alias_entry **e)
{
	int	 r;

	*e = NULL;
	if (x->src->alias == NULL)
		return 0;
	if ((r = x->src->alias(x->src->arg, key, e)) == -1)
		return xfail(x, EXPAND_TEMPFAIL, "4.3.0 <%s>: temporary failure "
		    "looking up the alias %s", x->top, key);
	return r == 1 && *e != NULL;
}

/* the alias "local@domain", else the bare "local" */
static int
alias2(struct xs *x, const char *lo, const char *domain,
    const struct alias_entry **e)
{
	char	 key[ADDR_STR_MAX + 1];
	int	 r;

	snprintf(key, sizeof(key), "%s@%s", lo, domain);
	if ((r = alias(x, key, e)) != 0)
		return r;
	return alias(x, lo, e);
}

/* --- the walk --- */

/*
 * An address target of an alias, the domain of the address being
 * expanded for one without; *m, or -1 when it is no address.
 */
static int
target_addr(struct xs *x, const char *text, const char *domain,
    const char *via, struct mailaddr *m)
{
	char		 buf[ADDR_STR_MAX + 2];
	size_t		 n = strlen(text), i;
	int		 q = 0, at = 0;

	if (n >= 2 && text[0] == '<' && text[n - 1] == '>') {
		text++;
		n -= 2;
	}
	for (i = 0; i < n; i++) {
		if (q && text[i] == '\\' && i + 1 < n)
			i++;
		else if (text[i] == '"')
			q = !q;
		else if (!q && text[i] == '@')
			at = 1;
	}
	if (n > 0 && n < sizeof(buf)) {
		if (at && addr_parse(text, n, ADDR_F_UTF8, m) == ADDR_OK)
			return 0;
		if (!at && (size_t)snprintf(buf, sizeof(buf), "%.*s@%s",
		    (int)n, text, domain) < sizeof(buf) &&
		    addr_parse(buf, strlen(buf), ADDR_F_UTF8, m) == ADDR_OK)
			return 0;
	}
	return xfail(x, EXPAND_TEMPFAIL, "4.3.5 <%s>: alias %s: bad address "
	    "\"%.*s\"", x->top, via, (int)(n > 80 ? 80 : n), text);
}

static void
free_copy(struct tcopy *t, char *texts)
{
	free(t);
	free(texts);
}

/* Copy an entry's targets: the source may reuse its memory. */
static int
copy_entry(struct xs *x, const struct alias_entry *e, struct tcopy **tp,
    char **texts)
{
	size_t	 total = 0, i, k = 0, l;

	*tp = NULL;
	*texts = NULL;
	if (e->ntargets == 0)
		return 0;
	if (e->targets == NULL)
		return xfail(x, EXPAND_TEMPFAIL, "4.3.5 <%s>: alias %s: no "
		    "targets", x->top, e->key);
	for (i = 0; i < e->ntargets; i++) {
		l = e->targets[i].text ? strlen(e->targets[i].text) : 0;
		if (l >= SIZE_MAX - total - 1)
			return nomem(x);
		total += l + 1;
	}
	if (e->ntargets > SIZE_MAX / sizeof(**tp) ||
	    (*tp = malloc(e->ntargets * sizeof(**tp))) == NULL ||
	    (*texts = malloc(total)) == NULL) {
		free_copy(*tp, NULL);
		*tp = NULL;
		return nomem(x);
	}
	for (i = 0; i < e->ntargets; i++) {
		const char *s = e->targets[i].text ? e->targets[i].text : "";
		l = strlen(s);
		memcpy(*texts + k, s, l + 1);
		(*tp)[i].kind = e->targets[i].kind;
		(*tp)[i].owner = e->targets[i].owner;
		(*tp)[i].text = *texts + k;
		k += l + 1;
	}
	return 0;
}

/* One target of the alias key being expanded for self (lo@domain). */
static int
one_target(struct xs *x, const struct tcopy *t, const char *self_lo,
    const char *domain, const char *ext, const char *via)
{
	struct mailaddr	 m;
	char		 lo[ADDR_LOCAL_MAX + 1];
	size_t		 l = strlen(t->text);
	int		 r;

	if (t->kind == ALIAS_PIPE || t->kind == ALIAS_FILE) {
		if (l == 0 || l >= sizeof(x->out->text) ||
		    (t->kind == ALIAS_FILE && t->text[0] != '/'))
			return xfail(x, EXPAND_TEMPFAIL, "4.3.5 <%s>: alias %s: "
			    "%s empty, too long or relative", x->top, via,
			    t->kind == ALIAS_PIPE ? "command" : "path");
		return add_final(x, t->kind == ALIAS_PIPE ? XT_PIPE : XT_FILE,
		    "", t->text, t->owner, ext, via);
	}
	if (t->kind != ALIAS_ADDR)
		return xfail(x, EXPAND_TEMPFAIL, "4.3.5 <%s>: alias %s: bad "
		    "target", x->top, via);
	if (target_addr(x, t->text, domain, via, &m) == -1)
		return -1;
	lower(lo, m.local, sizeof(lo));
	if (strcmp(lo, self_lo) != 0 || strcmp(m.domain, domain) != 0)
		return resolve(x, &m, via, 0);
	/* "bob: bob, ...": the account, without its aliases */
	if ((r = account(x, lo, domain)) == -1)
		return -1;
	if (r == 0)
		return xfail(x, EXPAND_NOUSER, "5.1.1 <%s@%s>: no such user "
		    "(alias %s)", lo, domain, via);
	return add_mailbox(x, lo, domain, ext, via);
}

/* Expand the targets of e, an alias of the address node (for self). */
static int
expand_entry(struct xs *x, struct mnode *node, const struct alias_entry *e,
    const char *self_lo, const char *domain, const char *ext)
{
	char		 via[ADDR_STR_MAX + 1], ext_copy[ADDR_LOCAL_MAX + 1];
	struct tcopy	*t;
	char		*texts;
	size_t		 i;
	int		 r = 0;

	if (x->depth >= x->maxdepth) {
		char what[64];
		snprintf(what, sizeof(what), "5.4.6 alias expansion deeper "
		    "than %u levels: ", x->maxdepth);
		return path_fail(x, EXPAND_TOODEEP, what, 0, node->key);
	}
	snprintf(via, sizeof(via), "%s", e->key ? e->key : "");
	snprintf(ext_copy, sizeof(ext_copy), "%s", ext);
	if (x->work > x->maxwork || e->ntargets > x->maxwork - x->work)
		return xfail(x, EXPAND_TOOMANY, "5.5.3 <%s>: alias expansion "
		    "too large", x->top);
	x->work += e->ntargets;
	if (copy_entry(x, e, &t, &texts) == -1)
		return -1;
	node->state = M_PATH;
	x->path[x->depth++] = node->key;
	for (i = 0; i < e->ntargets && r == 0; i++)
		r = one_target(x, &t[i], self_lo, domain, ext_copy, via);
	x->depth--;
	free_copy(t, texts);
	return r;
}

/* Rules c to f for the address lo@domain (local as written). */
static int
rules_cdef(struct xs *x, struct mnode *node, const char *lo,
    const char *local, const char *domain, const char *via, int top)
{
	const struct alias_entry	*e;
	const char			*p, *rest = NULL;
	char				 base[ADDR_LOCAL_MAX + 1];
	char				 ext[ADDR_LOCAL_MAX + 1], key[ADDR_STR_MAX + 2];
	size_t				 ll = strlen(lo);
	int				 r;

	p = x->src->delim && lo[0] != '"' ? strchr(lo, x->src->delim) : NULL;
	if (p != NULL && p > lo) {
		snprintf(base, sizeof(base), "%.*s", (int)(p - lo), lo);
		snprintf(ext, sizeof(ext), "%s", local + (p - lo) + 1);
		if ((r = alias2(x, base, domain, &e)) == 1)
			return expand_entry(x, node, e, base, domain, ext);
		if (r == -1 || (r = account(x, base, domain)) == -1)
			return -1;
		if (r == 1)
			return add_mailbox(x, base, domain, ext, via);
	}
	if (x->src->wildcard && lo[0] != '"') {
		e = NULL;
		if ((r = x->src->wildcard(x->src->arg, lo, domain, &e, &rest)) ==
		    -1)
			return xfail(x, EXPAND_TEMPFAIL, "4.3.0 <%s>: temporary "
			    "failure looking up wildcard aliases", x->top);
		if (r == 1 && e != NULL) {
			/* rest points into lo: the same offset, as written */
			if ((uintptr_t)rest >= (uintptr_t)lo &&
			    (uintptr_t)rest <= (uintptr_t)(lo + ll))
				snprintf(ext, sizeof(ext), "%s",
				    local + (rest - lo));
			else
				snprintf(ext, sizeof(ext), "%s",
				    rest ? rest : "");
			return expand_entry(x, node, e, lo, domain, ext);
		}
	}
	snprintf(key, sizeof(key), "@%s", domain);
	if ((r = alias(x, key, &e)) == 1)
		return expand_entry(x, node, e, lo, domain, "");
	if (r == -1)
		return -1;
	if (top)
		return xfail(x, EXPAND_NOUSER, "5.1.1 <%s>: no such user",
		    x->top);
	return xfail(x, EXPAND_NOUSER, "5.1.1 <%s@%s>: no such user (alias %s)",
	    local, domain, via);
}

/*
 * An SRS address of ours: what it stands for (expanded like an alias
 * target, so a loop through SRS addresses is seen), or no such user;
 * 1 when the callback says it is none.
 */
static int
srs_target(struct xs *x, struct mnode *node, const struct mailaddr *m)
{
	struct mailaddr	 o;
	char		 orig[ADDR_STR_MAX + 1], why[128] = "";
	int		 r;

	r = x->src->srs(x->src->arg, m->local, m->domain, orig, sizeof(orig),
	    why, sizeof(why));
	if (r == 0)
		return 1;
	if (r == -1)
		return xfail(x, EXPAND_TEMPFAIL, "4.3.0 <%s>: temporary failure "
		    "checking the SRS address", x->top);
	if (r != 1 || addr_parse(orig, strlen(orig), ADDR_F_UTF8, &o) !=
	    ADDR_OK)
		return xfail(x, EXPAND_NOUSER, "5.1.1 <%s>: no such user (%s)",
		    x->top, why[0] ? why : "malformed SRS address");
	if (x->depth >= x->maxdepth)
		return path_fail(x, EXPAND_TOODEEP, "5.4.6 alias expansion too "
		    "deep: ", 0, node->key);
	node->state = M_PATH;
	x->path[x->depth++] = node->key;
	r = resolve(x, &o, node->key, 0);
	x->depth--;
	return r;
}

/* One address: a remote target, or rules a to f. */
static int
resolve(struct xs *x, const struct mailaddr *m, const char *via, int top)
{
	const struct alias_entry	*e;
	struct mnode			*node;
	char				 lo[ADDR_LOCAL_MAX + 1];
	char				 key[ADDR_STR_MAX + 1];
	int				 r;

	if ((r = is_local(x, m->domain)) == -1)
		return -1;
	if (r == 0) {
		if (top)
			return xfail(x, EXPAND_REMOTE, "5.1.2 <%s>: %s is not a "
			    "local domain", x->top, m->domain);
		snprintf(key, sizeof(key), "%s@%s", m->local, m->domain);
		return add_final(x, XT_REMOTE, key, "", 0, "", via);
	}
	lower(lo, m->local, sizeof(lo));
	snprintf(key, sizeof(key), "%s@%s", lo, m->domain);
	if ((node = memo_get(x, key)) == NULL)
		return nomem(x);
	if (node->state == M_DONE)
		return 0;
	if (node->state == M_PATH) {
		unsigned i = 0;
		while (i < x->depth && x->path[i] != node->key)
			i++;
		return path_fail(x, EXPAND_LOOP, "5.4.6 alias loop: ", i,
		    node->key);
	}
	if (x->src->srs && srs_is_srs(m->local) &&
	    (r = srs_target(x, node, m)) != 1)
		;	/* an SRS address: done, or refused */
	else if ((r = alias2(x, lo, m->domain, &e)) == 1)
		r = expand_entry(x, node, e, lo, m->domain, "");
	else if (r == 0 && (r = account(x, lo, m->domain)) == 1)
		r = add_mailbox(x, lo, m->domain, "", via);
	else if (r == 0)
		r = rules_cdef(x, node, lo, m->local, m->domain, via, top);
	node->state = M_DONE;
	return r == -1 ? -1 : 0;
}

static void
xs_init(struct xs *x, const struct expand_src *src, const char *top,
    char *err, size_t errlen)
{
	memset(x, 0, sizeof(*x));
	x->src = src;
	x->top = top;
	x->collect = 1;
	x->maxtargets = src->max_targets ? src->max_targets :
	    EXPAND_TARGETS_DEFAULT;
	x->maxdepth = src->max_depth ? src->max_depth : EXPAND_DEPTH_DEFAULT;
	if (x->maxdepth > EXPAND_DEPTH_LIMIT)
		x->maxdepth = EXPAND_DEPTH_LIMIT;
	/* bounds the work of diamonds and repeated lists */
	x->maxwork = x->maxtargets > SIZE_MAX / 16 ? SIZE_MAX :
	    x->maxtargets * 16 + 1024;
	x->err = err;
	x->errlen = errlen;
	if (errlen)
		err[0] = '\0';
}

static void
xs_free(struct xs *x)
{
	for (size_t i = 0; i < x->mcap; i++)
		free(x->memo[i]);
	free(x->memo);
	free(x->dset);
}

enum expand_res
expand(const struct expand_src *src, const char *addr, struct xtarget **out,
    size_t *n, char *err, size_t errlen)
{
	struct xs	 x;
	struct mailaddr	 m;
	char		 top[ADDR_STR_MAX + 1];

	*out = NULL;
	*n = 0;
	snprintf(top, sizeof(top), "%s", addr ? addr : "");
	xs_init(&x, src, top, err, errlen);
	if (addr == NULL || addr_parse(addr, strlen(addr), ADDR_F_UTF8, &m) !=
	    ADDR_OK) {
		snprintf(err, errlen, "5.1.3 <%s>: bad address syntax", top);
		return EXPAND_NOUSER;
	}
	if (resolve(&x, &m, "", 1) == 0 && x.n == 0)
		xfail(&x, EXPAND_NOUSER, "5.1.1 <%s>: aliased to nothing",
		    top);
	xs_free(&x);
	if (x.res != EXPAND_OK) {
		free(x.out);
		return x.res;
	}
	*out = x.out;
	*n = x.n;
	return EXPAND_OK;
}

const char *
expand_strres(enum expand_res r)
{
	switch (r) {
	case EXPAND_OK:		return "ok";
	case EXPAND_NOUSER:	return "no such user";
	case EXPAND_TEMPFAIL:	return "temporary failure";
	case EXPAND_LOOP:	return "alias loop";
	case EXPAND_TOOMANY:	return "too many targets";
	case EXPAND_TOODEEP:	return "alias expansion too deep";
	case EXPAND_REMOTE:	return "not a local domain";
	}
	return "unknown";
}

/* --- the loop check of `sluice check` --- */

static int
ck_yes(void *arg, const char *a)
{
	(void)arg;
	(void)a;
	return 1;
}

static int
ck_account(void *arg, const char *local, const char *domain)
{
	(void)arg;
	(void)local;
	(void)domain;
	return 1;
}

static int
ck_alias(void *arg, const char *key, const struct alias_entry **out)
{
	*out = aliases_get(arg, key);
	return *out != NULL;
}

int
aliases_check_loops(const struct aliases *a, char *err, size_t errlen)
{
	struct expand_src	 src;
	struct xs		 x;
	struct mailaddr		 m;
	char			 addr[ADDR_STR_MAX + 1], msg[1024];
	const char		*text;
	size_t			 i;

	addr[0] = '\0';
	memset(&src, 0, sizeof(src));
	src.local_domain = ck_yes;
	src.account = ck_account;
	src.alias = ck_alias;
	src.arg = (void *)(uintptr_t)a;
	src.delim = '+';
	xs_init(&x, &src, addr, msg, sizeof(msg));
	x.collect = 0;
	x.maxwork = SIZE_MAX;
	x.hide = CHECK_DOMAIN;
	for (i = 0; i < aliases_count(a); i++) {
		const struct alias_entry *e = aliases_entry(a, i);
		if (e->key[0] == '@' || aliases_key_wildcard(e->key))
			continue;
		snprintf(addr, sizeof(addr), "%s%s", e->key,
		    strchr(e->key, '@') ? "" : "@" CHECK_DOMAIN);
		if (addr_parse(addr, strlen(addr), ADDR_F_UTF8, &m) != ADDR_OK)
			continue;
		if (resolve(&x, &m, "", 1) == -1) {
			text = strchr(msg, ' ');
			snprintf(err, errlen, "%s:%u: %s", aliases_path(a),
			    e->line, text ? text + 1 : msg);
			xs_free(&x);
			return -1;
		}
	}
	xs_free(&x);
	return 0;
}
