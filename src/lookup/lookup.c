/*
 * lookup - the lookup process: answers questions about addresses from the
 * tables (SQLite by default). It is the only process that opens the
 * database; the smtp process only ever sees the answers (P4).
 *
 * A table failure is LOOKUP_TEMPFAIL, which becomes 451 at RCPT time or a
 * deferral in the queue, never a bounce (P3).
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>


#include <event2/event.h>

#include "addr.h"
#include "aliases.h"
#include "authpool.h"
#include "mask_lookup.h"
#include "envelope.h"
#include "expand.h"
#include "resolve.h"
#include "rewrite.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "table.h"

static struct table	*tbl;
static struct proc	*lp;

/* Open (or reopen after a failure) the table. */
static struct table *
lookup_table(void)
{
	char	 err[512], dsn[sizeof(lp->conf->database)];

	if (tbl == NULL && (tbl = table_open(lp->conf->database, err,
	    sizeof(err))) == NULL)
		log_warnx("database %s: %s", table_dsn_safe(lp->conf->database,
		    dsn, sizeof(dsn)), err);
	return tbl;
}

/*
 * The aliases file: loaded at start and on SIGHUP, and again when it
 * changes (looked at once a second at most); a file that does not load
 * leaves the previous table in use (logged).
 */
static struct aliases	*aliases;
static time_t		 aliases_failed;	/* last failed load */

static void
aliases_reload(int force)
{
	struct aliases	*na;
	char		 err[512];
	time_t		 now = time(NULL);

	if (lp->conf->aliases[0] == '\0') {
		if (aliases) {
			aliases_free(aliases);
			aliases = NULL;
		}
		return;
	}
	/* one stat(2) a lookup: a change is seen by the next message */
	if (!force && aliases && aliases_changed(aliases, lp->conf->aliases) ==
	    0)
		return;
	if (!force && aliases == NULL && now == aliases_failed)
		return;		/* a broken file: retry once a second */
	if ((na = aliases_load(lp->conf->aliases, err, sizeof(err))) == NULL) {
		if (now != aliases_failed || force)
			log_warnx("aliases: %s (%s)", err, aliases ? "keeping "
			    "the previous table" : "no aliases until it is "
			    "fixed");
		aliases_failed = now;
		return;
	}
	if (aliases)
		aliases_free(aliases);
	aliases = na;
	log_info("aliases: %zu entries from %s", aliases_count(aliases),
	    lp->conf->aliases);
}

/*
 * Resolve one address: expand() over the tables. A table failure is
 * temporary; reopen the table next time (it may have been replaced).
 */
static enum expand_res
lookup_expand(const char *addrstr, struct xtarget **t, size_t *n, char *err,
    size_t errlen)
{
	struct expand_src	 src;
	struct resolver		 res;
	enum expand_res		 r;

	aliases_reload(0);
	memset(&res, 0, sizeof(res));
	res.tbl = lookup_table();
	res.aliases = aliases;
	res.hostname = lp->conf->hostname;
	res.db_commands = lp->conf->alias_db_commands;
	resolver_srs(&res, lp->conf);
	resolver_src(&src, &res, lp->conf->recipient_delimiter[0],
	    RESOLVE_TARGETS_MAX);
	*t = NULL;
	*n = 0;
	r = expand(&src, addrstr, t, n, err, errlen);
	resolver_free(&res);
	if (r == EXPAND_TEMPFAIL && tbl != NULL) {
		table_close(tbl);
		tbl = NULL;
	}
	return r;
}

static uint32_t	lookup_addr(const char *, struct xtarget **, size_t *, char *,
		    size_t);

/*
 * Read the address of a request and resolve it: LOOKUP_EXPANDED means the
 * targets are in *t (also for a plain account), LOOKUP_FAILED an alias
 * error (loop...), the others as their names say; err has the reason.
 */
static uint32_t
lookup_request(struct ipc_msg *m, char *addr, struct xtarget **t, size_t *n,
    char *err, size_t errlen)
{
	struct ipc_rd	 rd;

	*t = NULL;
	*n = 0;
	err[0] = '\0';
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, addr, ADDR_STR_MAX + 1);
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad %s", ipc_type_name(m->type));
		return LOOKUP_TEMPFAIL;
	}
	return lookup_addr(addr, t, n, err, errlen);
}

static uint32_t
lookup_addr(const char *addr, struct xtarget **t, size_t *n, char *err,
    size_t errlen)
{
	switch (lookup_expand(addr, t, n, err, errlen)) {
	case EXPAND_REMOTE:
		return LOOKUP_REMOTE;
	case EXPAND_NOUSER:
		return LOOKUP_NOUSER;
	case EXPAND_TEMPFAIL:
		return LOOKUP_TEMPFAIL;
	case EXPAND_OK:
		return LOOKUP_EXPANDED;
	default:	/* loop, too deep, too many: the text says */
		return LOOKUP_FAILED;
	}
}

/*
 * The SMTP-time check: does the recipient exist (or is it remote)? str
 * addr; str sender (the mask rules depend on who writes).
 */
static void
lookup_on_check(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct buf	 b;
	struct xtarget	*t = NULL;
	struct ipc_rd	 rd;
	struct table	*tb;
	char		 addr[ADDR_STR_MAX + 1], err[ENV_TEXT_MAX];
	char		 sender[ADDR_STR_MAX + 1];
	size_t		 n = 0;
	uint32_t	 res;

	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, addr, sizeof(addr));
	ipc_get_str(&rd, sender, sizeof(sender));
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad LOOKUP_RCPT_CHECK");
		res = LOOKUP_TEMPFAIL;
	} else if (mask_domain_of(lp->conf, addr)) {
		if ((tb = lookup_table()) == NULL)
			res = LOOKUP_TEMPFAIL;
		else switch (mask_check(tb, lp->conf, addr, sender, err,
		    sizeof(err))) {
		case MASK_R_OK:
			res = LOOKUP_LOCAL;
			break;
		case MASK_R_DENIED:
			log_info("mask: refused from=<%s> to=<%s>: %s", sender,
			    addr, err);
			res = LOOKUP_DENIED;
			break;
		case MASK_R_TEMPFAIL:
			res = LOOKUP_TEMPFAIL;
			break;
		default:
			res = LOOKUP_NOUSER;
			break;
		}
	} else {
		res = lookup_addr(addr, &t, &n, err, sizeof(err));
		if (res == LOOKUP_FAILED || res == LOOKUP_EXPANDED)
			res = LOOKUP_LOCAL; /* it exists; a loop bounces later */
	}
	free(t);
	buf_init(&b, 64);
	ipc_put_u32(&b, res);
	ipc_send_buf(c, SMTP_RCPT_RESULT, m->id, -1, &b);
	buf_free(&b);
}

static const uint32_t via_of[] = {
	[XT_MAILBOX] = VIA_MAILBOX, [XT_REMOTE] = VIA_REMOTE,
	[XT_PIPE] = VIA_PIPE, [XT_FILE] = VIA_FILE,
};

/* Send targets in frames that fit; -1 if the queue is gone. */
static int
lookup_send_targets(struct ipc *c, uint32_t id, const char *rcpt,
    const struct xtarget *t, size_t n)
{
	struct buf	 b;
	size_t		 i = 0, k, size;
	char		 name[ADDR_STR_MAX + 1];

	while (i < n) {
		/* as many as fit in a frame, with room for the count */
		for (k = i, size = 64; k < n; k++) {
			size_t one = 64 + strlen(t[k].addr) +
			    strlen(t[k].text) + strlen(t[k].ext);
			if (size + one > IPC_FRAME_MAX - 256)
				break;
			size += one;
		}
		buf_init(&b, IPC_FRAME_MAX);
		ipc_put_u32(&b, (uint32_t)(k - i));
		for (; i < k; i++) {
			ipc_put_u32(&b, via_of[t[i].kind]);
			/* a pipe or file stands for the alias that named it */
			ipc_put_str(&b, t[i].addr[0] ? t[i].addr :
			    resolver_rcpt_of(t[i].via, rcpt, name,
			    sizeof(name)));
			ipc_put_str(&b, t[i].text);
			ipc_put_u32(&b, (uint32_t)t[i].owner);
			ipc_put_str(&b, t[i].ext);
		}
		if (b.err || ipc_send_buf(c, QUEUE_RCPT_TARGETS, id, -1,
		    &b) == -1) {
			buf_free(&b);
			return -1;
		}
		buf_free(&b);
	}
	return 0;
}

/*
 * The queue's question: where does this recipient's mail go? An account
 * is LOOKUP_LOCAL with its mailbox (the hot path); an alias, an extension
 * or a wildcard is LOOKUP_EXPANDED after its targets.
 */
static void
lookup_on_resolve(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct buf	 b;
	struct xtarget	*t = NULL;
	char		 addr[ADDR_STR_MAX + 1], err[ENV_TEXT_MAX];
	char		 d[ADDR_DOMAIN_MAX + 1] = "", u[ADDR_LOCAL_MAX + 1] = "";
	const char	*at;
	size_t		 n = 0;
	uint32_t	 res;

	(void)arg;
	res = lookup_request(m, addr, &t, &n, err, sizeof(err));
	if (res == LOOKUP_EXPANDED) {
		if (n == 1 && t[0].kind == XT_MAILBOX && t[0].ext[0] == '\0' &&
		    t[0].via[0] == '\0' && (at = strrchr(t[0].addr, '@')) &&
		    (size_t)(at - t[0].addr) < sizeof(u)) {
			res = LOOKUP_LOCAL;	/* an account, as written */
			snprintf(u, sizeof(u), "%.*s", (int)(at - t[0].addr),
			    t[0].addr);
			snprintf(d, sizeof(d), "%s", at + 1);
		} else if (lookup_send_targets(c, m->id, addr, t, n) == -1)
			res = LOOKUP_TEMPFAIL;
	}
	free(t);
	buf_init(&b, 2048);
	ipc_put_u32(&b, res);
	ipc_put_str(&b, d);
	ipc_put_str(&b, u);
	ipc_put_str(&b, err);
	ipc_put_u32(&b, res == LOOKUP_EXPANDED ? (uint32_t)n : 0);
	ipc_send_buf(c, QUEUE_RCPT_RESOLVED, m->id, -1, &b);
	buf_free(&b);
}

/* ---- SMTP AUTH: passwords and the addresses a user may send as ---- */

#define AUTH_USER_MAX	255
#define AUTH_PASS_MAX	1024

/* "Local@Domain" -> "local@domain" in local/domain; -1 if not an address */
static int
auth_split(const char *user, char *local, size_t llen, char *domain,
    size_t dlen)
{
	const char	*at = strrchr(user, '@');
	size_t		 n;

	if (at == NULL || at == user || at[1] == '\0' ||
	    (n = (size_t)(at - user)) >= llen || strlen(at + 1) >= dlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		local[i] = (char)tolower((unsigned char)user[i]);
	local[n] = '\0';
	for (n = 0; at[1 + n]; n++)
		domain[n] = (char)tolower((unsigned char)at[1 + n]);
	domain[n] = '\0';
	return 0;
}

static void
lookup_auth_reply(struct ipc *c, uint16_t type, uint32_t id, uint32_t res,
    const char *text)
{
	struct buf	 b;

	buf_init(&b, 600);
	ipc_put_u32(&b, res);
	ipc_put_str(&b, text);
	ipc_send_buf(c, type, id, -1, &b);
	buf_free(&b);
}

/*
 * Answers to the smtp process name a session by id; a restarted smtp
 * process reuses ids, so checks begun for the old one are dropped.
 */
static uint64_t	smtp_gen;

static void
lookup_auth_done(uint32_t id, uint64_t gen, int ok, const char *user,
    void *arg)
{
	(void)arg;
	if (gen != smtp_gen || lp->peer[ROLE_SMTP] == NULL)
		return;
	lookup_auth_reply(lp->peer[ROLE_SMTP], SMTP_AUTH_RESULT, id,
	    ok ? AUTH_OK : AUTH_DENIED, ok ? user : "");
}

static void
lookup_peer_down(struct proc *p, enum ipc_role r)
{
	(void)p;
	if (r == ROLE_SMTP)
		smtp_gen++;
}

/*
 * LOOKUP_AUTH: str user; str password. The account's hash is read here;
 * the hash function (yescrypt: slow on purpose) runs in authpool's
 * threads, which answer later. No such account: a dummy check of the same
 * cost, so the answer's timing does not tell which accounts exist.
 */
static void
lookup_on_auth(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd	 rd;
	char		 user[AUTH_USER_MAX + 1], pass[AUTH_PASS_MAX + 1];
	char		 local[ADDR_LOCAL_MAX + 1], domain[ADDR_DOMAIN_MAX + 1];
	char		 hash[512] = "", canon[AUTH_USER_MAX + 1] = "";
	struct table	*t;

	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, user, sizeof(user));
	ipc_get_str(&rd, pass, sizeof(pass));
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad LOOKUP_AUTH");
		goto tempfail;
	}
	if (auth_split(user, local, sizeof(local), domain,
	    sizeof(domain)) == 0) {
		if ((t = lookup_table()) == NULL)
			goto tempfail;
		switch (table_account_password(t, local, domain, hash,
		    sizeof(hash))) {
		case TABLE_FOUND:
			snprintf(canon, sizeof(canon), "%s@%s", local, domain);
			break;
		case TABLE_NOTFOUND:
			hash[0] = '\0';
			break;
		default:
			table_close(tbl);
			tbl = NULL;
			goto tempfail;
		}
	}
	if (authpool_submit(m->id, smtp_gen, canon, hash, pass) == -1) {
		log_warnx("auth: too many password checks waiting");
		goto tempfail;
	}
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(hash, sizeof(hash));
	return;
tempfail:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(hash, sizeof(hash));
	lookup_auth_reply(c, SMTP_AUTH_RESULT, m->id, AUTH_TEMPFAIL, "");
}

/* the account's send-as patterns ("*@example.test *"): AUTH_OK if one
   matches addr (case-insensitive globs) */
static uint32_t
lookup_send_as(const char *user, const char *addr)
{
	struct table_account	 a;
	struct table		*t;
	char			 local[ADDR_LOCAL_MAX + 1];
	char			 domain[ADDR_DOMAIN_MAX + 1], *p, *w;

	if (auth_split(user, local, sizeof(local), domain,
	    sizeof(domain)) == -1)
		return AUTH_DENIED;
	if ((t = lookup_table()) == NULL)
		return AUTH_TEMPFAIL;
	switch (table_account_get(t, local, domain, &a)) {
	case TABLE_FOUND:
		break;
	case TABLE_NOTFOUND:
		return AUTH_DENIED;	/* deleted since it logged in */
	default:
		table_close(tbl);
		tbl = NULL;
		return AUTH_TEMPFAIL;
	}
	explicit_bzero(a.hash, sizeof(a.hash));
	for (p = a.send_as; (w = strsep(&p, " ")) != NULL; )
		if (*w && fnmatch(w, addr, FNM_CASEFOLD) == 0)
			return AUTH_OK;
	return AUTH_DENIED;
}

/*
 * May user send as addr? Its own address; an address that delivers to it
 * (an alias or an extension of it); or one of its send-as patterns.
 */
static uint32_t
lookup_owns(const char *user, const char *addr)
{
	struct mailaddr	 a;
	struct xtarget	*t = NULL;
	char		 canon[ADDR_STR_MAX + 1], err[256];
	size_t		 n = 0;
	uint32_t	 res = AUTH_DENIED;
	enum expand_res	 r;

	if (addr_parse(addr, strlen(addr), ADDR_F_UTF8, &a) != ADDR_OK)
		return AUTH_DENIED;
	addr_format(&a, canon, sizeof(canon));
	if (strcasecmp(canon, user) == 0)
		return AUTH_OK;
	if ((res = lookup_send_as(user, canon)) != AUTH_DENIED)
		return res;
	switch ((r = lookup_expand(canon, &t, &n, err, sizeof(err)))) {
	case EXPAND_TEMPFAIL:
		res = AUTH_TEMPFAIL;
		break;
	case EXPAND_OK:
		for (size_t i = 0; i < n; i++)
			if (t[i].kind == XT_MAILBOX &&
			    strcasecmp(t[i].addr, user) == 0)
				res = AUTH_OK;
		break;
	default:
		break;
	}
	free(t);
	return res;
}

/* LOOKUP_SENDER_CHECK: str user; u32 n; n x str address */
static void
lookup_on_sender(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd	 rd;
	char		 user[AUTH_USER_MAX + 1], addr[HEADER_ADDR_MAX];
	char		 refused[HEADER_ADDR_MAX] = "";
	uint32_t	 n, res = AUTH_OK, r;

	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, user, sizeof(user));
	n = ipc_get_u32(&rd);
	if (n > 64) {
		log_warnx("bad LOOKUP_SENDER_CHECK");
		lookup_auth_reply(c, SMTP_SENDER_RESULT, m->id, AUTH_TEMPFAIL,
		    "");
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		ipc_get_str(&rd, addr, sizeof(addr));
		if (rd.err)
			break;
		if (res != AUTH_OK)
			continue;
		if ((r = lookup_owns(user, addr)) != AUTH_OK) {
			res = r;
			snprintf(refused, sizeof(refused), "%s", addr);
		}
	}
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad LOOKUP_SENDER_CHECK");
		res = AUTH_TEMPFAIL;
	}
	lookup_auth_reply(c, SMTP_SENDER_RESULT, m->id, res, refused);
}

static const struct ipc_handler smtp_handlers[] = {
	{ LOOKUP_RCPT_CHECK, lookup_on_check },
	{ LOOKUP_AUTH, lookup_on_auth },
	{ LOOKUP_SENDER_CHECK, lookup_on_sender },
	{ 0, NULL }
};
/*
 * LOOKUP_MASK_RESOLVE: str rcpt; str sender; u32 automatic. Answer
 * QUEUE_MASK_RESOLVED: u32 mask_res; str why; and with MASK_R_OK the
 * route: u32 dir; str service, pair, target, verp, from_mask, reply_to,
 * person, service_real, user_mask, service_mask.
 */
static void
lookup_on_mask(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd		 rd;
	struct buf		 b;
	struct mask_route	 mr;
	struct table		*tb;
	char			 rcpt[ADDR_STR_MAX + 1], sender[ADDR_STR_MAX + 1];
	char			 why[256] = "";
	uint32_t		 automatic, res;	/* MASK_F_* */

	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, rcpt, sizeof(rcpt));
	ipc_get_str(&rd, sender, sizeof(sender));
	automatic = ipc_get_u32(&rd);
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad LOOKUP_MASK_RESOLVE");
		res = MASK_R_TEMPFAIL;
	} else if ((tb = lookup_table()) == NULL)
		res = MASK_R_TEMPFAIL;
	else
		res = mask_resolve(tb, lp->conf, rcpt, sender, automatic,
		    &mr, why, sizeof(why));
	buf_init(&b, 4096);
	ipc_put_u32(&b, res);
	ipc_put_str(&b, why);
	if (res == MASK_R_OK || res == MASK_R_BOUNCE) {
		ipc_put_u32(&b, mr.dir);
		ipc_put_str(&b, mr.service);
		ipc_put_str(&b, mr.pair);
		ipc_put_str(&b, mr.target);
		ipc_put_str(&b, mr.verp);
		ipc_put_str(&b, mr.from_mask);
		ipc_put_str(&b, mr.reply_to);
		ipc_put_str(&b, mr.person);
		ipc_put_str(&b, mr.service_real);
		ipc_put_str(&b, mr.user_mask);
		ipc_put_str(&b, mr.service_mask);
	}
	ipc_send_buf(c, QUEUE_MASK_RESOLVED, m->id, -1, &b);
	buf_free(&b);
}

/*
 * LOOKUP_MASK_DELIVERED: str sender. A copy sent with this VERP sender
 * was delivered: the bounce count of the address it went to restarts.
 * No answer (nothing waits for it).
 */
static void
lookup_on_mask_delivered(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd	 rd;
	struct table	*tb;
	char		 sender[ADDR_STR_MAX + 1];

	(void)c;
	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, sender, sizeof(sender));
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad LOOKUP_MASK_DELIVERED");
		return;
	}
	if ((tb = lookup_table()) == NULL ||
	    mask_delivered(tb, lp->conf, sender) == -1)
		log_warnx("mask: cannot reset the bounce count of <%s>",
		    sender);
}

static const struct ipc_handler queue_handlers[] = {
	{ LOOKUP_RCPT_RESOLVE, lookup_on_resolve },
	{ LOOKUP_MASK_RESOLVE, lookup_on_mask },
	{ LOOKUP_MASK_DELIVERED, lookup_on_mask_delivered },
	{ 0, NULL }
};

/* The config changed (proc.c loaded it): reopen the table lazily, reload
   the aliases. */
static void
lookup_reload(struct proc *p)
{
	(void)p;
	if (tbl) {
		table_close(tbl);
		tbl = NULL;
	}
	aliases_reload(1);
}

int
lookup_main(struct proc *p)
{
	char	 err[512], dsn[sizeof(p->conf->database)];

	lp = p;
	p->handlers[ROLE_SMTP] = smtp_handlers;
	p->handlers[ROLE_QUEUE] = queue_handlers;
	p->on_reload = lookup_reload;
	if ((tbl = table_open(p->conf->database, err, sizeof(err))) == NULL)
		log_warnx("database %s: %s (lookups fail temporarily)",
		    table_dsn_safe(p->conf->database, dsn, sizeof(dsn)), err);
	else if (table_init_schema(tbl, err, sizeof(err)) == -1)
		log_warnx("database schema: %s", err);
	aliases_reload(1);
	p->on_peer_down = lookup_peer_down;
	if (authpool_init(p->base, lookup_auth_done, NULL) == -1)
		log_fatalx("cannot start the password check threads");
	return proc_run(p);
}
