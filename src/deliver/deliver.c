/*
 * deliver - the local delivery process: a long-lived worker that writes
 * messages into Maildirs, many messages without a fork each. It gets the
 * data file as a descriptor (it needs no access to the spool) and answers
 * with the recipient's outcome.
 *
 * The Delivered-To: loop check (P8) runs here, on the message as stored.
 *
 * Group commit: the requests that arrive in one pass of the event loop are
 * written into the tmp/ of their Maildirs, then one syncfs makes them all
 * durable, they are renamed into new/, a second syncfs makes the names
 * durable, and only then are the answers sent (P1 for local delivery).
 */
#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
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

struct pending {
	TAILQ_ENTRY(pending)	 entry;
	struct maildir_tx	 tx;
	struct ipc		*c;
	uint32_t		 id;
	int			 ok;
};

static struct proc	*dp;
static TAILQ_HEAD(, pending) batch = TAILQ_HEAD_INITIALIZER(batch);
static size_t		 nbatch;
static struct event	*ev_flush;

static void	deliver_flush(int, short, void *);

static void
deliver_answer(struct ipc *c, uint32_t id, enum rcpt_state st,
    const char *text)
{
	struct buf	 b;

	if (c == NULL)
		return;		/* that queue process is gone */
	buf_init(&b, 1024);
	ipc_put_u32(&b, st);
	ipc_put_str(&b, text);
	ipc_send_buf(c, QUEUE_DELIVER_RESULT, id, -1, &b);
	buf_free(&b);
}

static void
deliver_enqueue(struct ipc *c, uint32_t id, const struct maildir_tx *tx)
{
	struct pending	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		struct maildir_tx t = *tx;
		maildir_abort(&t);
		deliver_answer(c, id, RCPT_DEFERRED, "4.3.0 out of memory");
		return;
	}
	p->tx = *tx;
	p->c = c;
	p->id = id;
	TAILQ_INSERT_TAIL(&batch, p, entry);
	if (++nbatch >= dp->conf->delivery_batch)
		deliver_flush(-1, 0, NULL);
	else
		event_active(ev_flush, EV_TIMEOUT, 0);
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
	if (maildir_close(&tx, 0) == -1) {
		snprintf(text, sizeof(text), "%s maildir: %s",
		    tx.temp ? "4.2.0" : "5.2.0", tx.error);
		deliver_answer(c, m->id, tx.temp ? RCPT_DEFERRED :
		    RCPT_BOUNCED, text);
		goto out;
	}
	deliver_enqueue(c, m->id, &tx);
out:
	if (m->fd != -1)
		close(m->fd);
}

/* fsync new/ of each Maildir the batch published into, once each. */
static int
deliver_sync_dirs(void)
{
	struct pending	*p, *q;
	struct stat	 st, st2;
	int		 r = 0, seen;

	TAILQ_FOREACH(p, &batch, entry) {
		if (!p->ok || fstat(p->tx.dirfd, &st) == -1)
			continue;
		seen = 0;
		for (q = TAILQ_FIRST(&batch); q != p && !seen;
		    q = TAILQ_NEXT(q, entry))
			seen = q->ok && fstat(q->tx.dirfd, &st2) == 0 &&
			    st.st_dev == st2.st_dev && st.st_ino == st2.st_ino;
		if (!seen && maildir_sync_new(&p->tx) == -1) {
			log_warn("fsync of a Maildir's new/");
			r = -1;
		}
	}
	return r;
}

/*
 * Make the batch durable: one syncfs for the files, then, once renamed,
 * an fsync of each new/ they went to; then answer for each message.
 */
static void
deliver_flush(int fd, short ev, void *arg)
{
	struct pending	*p;
	int		 synced = 0;
	char		 text[512];

	(void)fd;
	(void)ev;
	(void)arg;
	if ((p = TAILQ_FIRST(&batch)) == NULL)
		return;
	if (syncfs(p->tx.dirfd) == 0) {
		TAILQ_FOREACH(p, &batch, entry)
			p->ok = maildir_publish(&p->tx, 0) == 0;
		synced = deliver_sync_dirs() == 0;
	} else
		log_warn("syncfs of the mailboxes");
	while ((p = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, p, entry);
		if (p->ok && synced) {
			maildir_abort(&p->tx);	/* closes the Maildir */
			deliver_answer(p->c, p->id, RCPT_DELIVERED,
			    "delivered to maildir");
		} else {
			snprintf(text, sizeof(text), "4.2.0 maildir: %s",
			    p->tx.error[0] ? p->tx.error : "sync failed");
			if (p->ok)
				maildir_unpublish(&p->tx);
			else
				maildir_abort(&p->tx);
			deliver_answer(p->c, p->id, RCPT_DEFERRED, text);
		}
		free(p);
	}
	nbatch = 0;
}

/* The queue died: its channel is freed; what it asked for gets no answer. */
static void
deliver_peer_down(struct proc *p, enum ipc_role role)
{
	struct pending	*pd;

	(void)p;
	if (role != ROLE_QUEUE)
		return;
	TAILQ_FOREACH(pd, &batch, entry)
		pd->c = NULL;
}

static const struct ipc_handler queue_handlers[] = {
	{ DELIVER_MAILDIR, deliver_on_maildir },
	{ 0, NULL }
};


int
deliver_main(struct proc *p)
{
	dp = p;
	p->handlers[ROLE_QUEUE] = queue_handlers;
	p->on_peer_down = deliver_peer_down;
	if ((ev_flush = event_new(p->base, -1, 0, deliver_flush, NULL)) == NULL)
		log_fatalx("event_new");
	event_priority_set(ev_flush, 1);	/* after all reads of a pass */
	return proc_run(p);
}
