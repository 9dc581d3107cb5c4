/*
 * lookup - the lookup process: answers questions about addresses from the
 * tables (SQLite by default). It is the only process that opens the
 * database; the smtp process only ever sees the answers (P4).
 *
 * A table failure is LOOKUP_TEMPFAIL, which becomes 451 at RCPT time or a
 * deferral in the queue, never a bounce (P3).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "addr.h"
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
	char	 err[512];

	if (tbl == NULL && (tbl = table_open(lp->conf->database, err,
	    sizeof(err))) == NULL)
		log_warnx("database %s: %s", lp->conf->database, err);
	return tbl;
}

/* Classify one address; fills mailbox domain/user for LOOKUP_LOCAL. */
static enum lookup_rcpt
lookup_rcpt(const char *addrstr, char *domain, size_t dlen, char *user,
    size_t ulen)
{
	struct mailaddr	 a;
	enum table_res	 r;

	domain[0] = user[0] = '\0';
	if (addr_parse(addrstr, strlen(addrstr), ADDR_F_UTF8, &a) != ADDR_OK)
		return LOOKUP_NOUSER;
	if (lookup_table() == NULL)
		return LOOKUP_TEMPFAIL;
	if ((r = table_domain_local(tbl, a.domain)) == TABLE_TEMPFAIL)
		goto tempfail;
	if (r == TABLE_NOTFOUND)
		return LOOKUP_REMOTE;
	if ((r = table_account_exists(tbl, a.local, a.domain)) ==
	    TABLE_TEMPFAIL)
		goto tempfail;
	if (r == TABLE_NOTFOUND)
		return LOOKUP_NOUSER;
	snprintf(domain, dlen, "%s", a.domain);
	snprintf(user, ulen, "%s", a.local);
	for (char *p = user; *p; p++)	/* mailboxes are lower case */
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return LOOKUP_LOCAL;
tempfail:
	/* reopen next time: the database may have been replaced */
	table_close(tbl);
	tbl = NULL;
	return LOOKUP_TEMPFAIL;
}

/*
 * Read the address of a LOOKUP_RCPT_CHECK or LOOKUP_RCPT_RESOLVE and
 * answer with `type`; the queue also gets the mailbox (domain, user).
 */
static void
lookup_answer(struct ipc *c, struct ipc_msg *m, uint16_t type, int mailbox)
{
	struct ipc_rd	 rd;
	struct buf	 b;
	char		 addr[ADDR_STR_MAX + 1], d[ADDR_DOMAIN_MAX + 1];
	char		 u[ADDR_LOCAL_MAX + 1];
	uint32_t	 res;

	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, addr, sizeof(addr));
	d[0] = u[0] = '\0';
	if (ipc_get_end(&rd) == -1) {
		log_warnx("bad %s", ipc_type_name(m->type));
		res = LOOKUP_TEMPFAIL;
	} else
		res = lookup_rcpt(addr, d, sizeof(d), u, sizeof(u));
	buf_init(&b, 1024);
	ipc_put_u32(&b, res);
	if (mailbox) {
		ipc_put_str(&b, d);
		ipc_put_str(&b, u);
	}
	ipc_send_buf(c, type, m->id, -1, &b);
	buf_free(&b);
}

static void
lookup_on_check(struct ipc *c, struct ipc_msg *m, void *arg)
{
	(void)arg;
	lookup_answer(c, m, SMTP_RCPT_RESULT, 0);
}

static void
lookup_on_resolve(struct ipc *c, struct ipc_msg *m, void *arg)
{
	(void)arg;
	lookup_answer(c, m, QUEUE_RCPT_RESOLVED, 1);
}

static const struct ipc_handler smtp_handlers[] = {
	{ LOOKUP_RCPT_CHECK, lookup_on_check },
	{ 0, NULL }
};
static const struct ipc_handler queue_handlers[] = {
	{ LOOKUP_RCPT_RESOLVE, lookup_on_resolve },
	{ 0, NULL }
};

/* The config changed (proc.c loaded it): reopen the table lazily. */
static void
lookup_reload(struct proc *p)
{
	(void)p;
	if (tbl) {
		table_close(tbl);
		tbl = NULL;
	}
}

int
lookup_main(struct proc *p)
{
	char	 err[512];

	lp = p;
	p->handlers[ROLE_SMTP] = smtp_handlers;
	p->handlers[ROLE_QUEUE] = queue_handlers;
	p->on_reload = lookup_reload;
	if ((tbl = table_open(p->conf->database, err, sizeof(err))) == NULL)
		log_warnx("database %s: %s (lookups fail temporarily)",
		    p->conf->database, err);
	else if (table_init_schema(tbl, err, sizeof(err)) == -1)
		log_warnx("database schema: %s", err);
	return proc_run(p);
}
