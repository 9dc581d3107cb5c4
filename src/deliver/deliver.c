/*
 * deliver - the local delivery process: a long-lived worker that writes
 * messages into Maildirs, many messages without a fork each. It gets the
 * data file as a descriptor (it needs no access to the spool) and answers
 * with the recipient's outcome.
 *
 * The Delivered-To: loop check (P8) runs here, on the message as stored.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "envelope.h"
#include "ipc.h"
#include "log.h"
#include "maildir.h"
#include "proc.h"
#include "sluiced.h"

static struct proc	*dp;

static void
deliver_answer(struct ipc *c, uint32_t id, enum rcpt_state st,
    const char *text)
{
	struct buf	 b;

	buf_init(&b, 1024);
	ipc_put_u32(&b, st);
	ipc_put_str(&b, text);
	ipc_send_buf(c, QUEUE_DELIVER_RESULT, id, -1, &b);
	buf_free(&b);
}

static void
deliver_on_maildir(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd		 rd;
	struct maildir_tx	 tx;
	char			 id[QUEUE_ID_LEN + 1], from[ADDR_STR_MAX + 1];
	char			 rcpt[ADDR_STR_MAX + 1], text[512];
	char			 domain[ADDR_DOMAIN_MAX + 1];
	char			 user[ADDR_LOCAL_MAX + 1];
	const char		*hdrs;
	size_t			 hlen;
	int			 loop;

	(void)arg;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, id, sizeof(id));
	ipc_get_str(&rd, from, sizeof(from));
	ipc_get_str(&rd, rcpt, sizeof(rcpt));
	ipc_get_str(&rd, domain, sizeof(domain));
	ipc_get_str(&rd, user, sizeof(user));
	hdrs = ipc_get_mem(&rd, &hlen);
	if (ipc_get_end(&rd) == -1 || m->fd == -1) {
		log_warnx("bad DELIVER_MAILDIR");
		deliver_answer(c, m->id, RCPT_DEFERRED,
		    "4.3.0 malformed delivery request");
		goto out;
	}
	if ((loop = maildir_delivered_to(m->fd, rcpt)) == 1) {
		deliver_answer(c, m->id, RCPT_BOUNCED, "5.4.6 mail loop: "
		    "message already delivered to this mailbox");
		goto out;
	} else if (loop == -1) {
		deliver_answer(c, m->id, RCPT_DEFERRED, "4.3.0 cannot read "
		    "message");
		goto out;
	}
	if (maildir_open(&tx, dp->conf->mailboxes, domain, user,
	    dp->conf->hostname) == -1) {
		snprintf(text, sizeof(text), "%s maildir: %s",
		    tx.temp ? "4.2.0" : "5.2.0", tx.error);
		deliver_answer(c, m->id, tx.temp ? RCPT_DEFERRED :
		    RCPT_BOUNCED, text);
		goto out;
	}
	snprintf(text, sizeof(text), "Return-Path: <%s>\nDelivered-To: %s\n",
	    from, rcpt);
	maildir_write(&tx, text, strlen(text));
	maildir_write(&tx, hdrs, hlen);
	maildir_copy_fd(&tx, m->fd);
	if (maildir_commit(&tx) == -1) {
		snprintf(text, sizeof(text), "%s maildir: %s",
		    tx.temp ? "4.2.0" : "5.2.0", tx.error);
		deliver_answer(c, m->id, tx.temp ? RCPT_DEFERRED :
		    RCPT_BOUNCED, text);
		goto out;
	}
	deliver_answer(c, m->id, RCPT_DELIVERED, "delivered to maildir");
out:
	if (m->fd != -1)
		close(m->fd);
}

static const struct ipc_handler queue_handlers[] = {
	{ DELIVER_MAILDIR, deliver_on_maildir },
	{ 0, NULL }
};

static void
deliver_reload(struct proc *p)
{
	char	 err[1024];

	if (config_load(p->conf, p->conf->path, err, sizeof(err)) == -1)
		log_warnx("reload: %s", err);
}

int
deliver_main(struct proc *p)
{
	dp = p;
	p->handlers[ROLE_QUEUE] = queue_handlers;
	p->on_reload = deliver_reload;
	return proc_run(p);
}
