/*
 * deliver - the local delivery process: a long-lived worker that writes
 * messages into Maildirs, many messages without a fork each. It gets the
 * data file as a descriptor (it needs no access to the spool) and answers
 * with each recipient's outcome.
 *
 * One request carries a message and the local recipients it has in this
 * pass: the header section is read once for the Delivered-To: loop check
 * (P8) of all of them, and the message is read once, each chunk written to
 * every recipient's Maildir file.
 *
 * Group commit: the requests that arrive in one pass of the event loop are
 * written into the tmp/ of their Maildirs, one syncfs makes them durable,
 * they are renamed into new/, each new/ involved is fsync'ed once, and only
 * then are the answers sent (P1 for local delivery).
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

#define DELIVER_CHUNK	(64 * 1024)

struct drcpt {
	char			 addr[ADDR_STR_MAX + 1];
	char			 domain[ADDR_DOMAIN_MAX + 1];
	char			 user[ADDR_LOCAL_MAX + 1];
	struct maildir_tx	 tx;
	int			 open;		/* tx holds a file */
	int			 published;	/* renamed into new/ */
	enum rcpt_state		 state;		/* outcome, once known */
	char			 text[300];
};

struct dreq {
	TAILQ_ENTRY(dreq)	 entry;
	struct ipc		*c;		/* NULL: that queue is gone */
	uint32_t		 id;
	size_t			 n;
	struct drcpt		*r;
};

static struct proc	*dp;
static TAILQ_HEAD(, dreq) batch = TAILQ_HEAD_INITIALIZER(batch);
static size_t		 nbatch;
static struct event	*ev_flush;

static void	deliver_flush(int, short, void *);

static void
rcpt_fail(struct drcpt *r, enum rcpt_state st, const char *code,
    const char *why)
{
	r->state = st;
	snprintf(r->text, sizeof(r->text), "%s %s", code, why);
}

/* The outcome of every recipient of a request, in request order. */
static void
deliver_answer(struct dreq *q)
{
	struct buf	 b;

	if (q->c == NULL)
		return;
	buf_init(&b, IPC_FRAME_MAX);
	ipc_put_u32(&b, (uint32_t)q->n);
	for (size_t i = 0; i < q->n; i++) {
		ipc_put_u32(&b, q->r[i].state);
		ipc_put_str(&b, "maildir");
		ipc_put_str(&b, q->r[i].text);
	}
	if (ipc_send_buf(q->c, QUEUE_DELIVER_RESULT, q->id, -1, &b) == -1)
		log_warnx("cannot answer delivery request %u", q->id);
	buf_free(&b);
}

static void
dreq_free(struct dreq *q)
{
	for (size_t i = 0; i < q->n; i++)
		if (q->r[i].open)
			maildir_abort(&q->r[i].tx);
	free(q->r);
	free(q);
}

/* Parse a DELIVER_MAILDIR request; NULL if malformed. */
static struct dreq *
dreq_parse(struct ipc_msg *m, char *from, size_t fromlen, const char **hdrs,
    size_t *hlen)
{
	struct ipc_rd	 rd;
	struct dreq	*q;
	char		 id[QUEUE_ID_LEN + 1];
	uint32_t	 n;

	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, id, sizeof(id));
	ipc_get_str(&rd, from, fromlen);
	*hdrs = ipc_get_mem(&rd, hlen);
	n = ipc_get_u32(&rd);
	if (rd.err || n == 0 || n > DELIVER_RCPTS_MAX ||
	    (q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->r = calloc(n, sizeof(*q->r))) == NULL) {
		free(q);
		return NULL;
	}
	q->n = n;
	for (size_t i = 0; i < n; i++) {
		ipc_get_str(&rd, q->r[i].addr, sizeof(q->r[i].addr));
		ipc_get_str(&rd, q->r[i].domain, sizeof(q->r[i].domain));
		ipc_get_str(&rd, q->r[i].user, sizeof(q->r[i].user));
		q->r[i].state = RCPT_DELIVERED;
	}
	if (ipc_get_end(&rd) == -1) {
		dreq_free(q);
		return NULL;
	}
	return q;
}

/* Loop check and Maildir file for each recipient; the prefix lines. */
static void
deliver_open_all(struct dreq *q, int fd, const char *from, const char *hdrs,
    size_t hlen)
{
	char		*hdr, line[ADDR_STR_MAX * 2 + 64];
	size_t		 hl;
	int		 havehdr;

	havehdr = maildir_read_header(fd, &hdr, &hl) == 0;
	for (size_t i = 0; i < q->n; i++) {
		struct drcpt *r = &q->r[i];
		if (!havehdr) {
			rcpt_fail(r, RCPT_DEFERRED, "4.3.0", "cannot read "
			    "message");
			continue;
		}
		if (maildir_header_delivered_to(hdr, hl, r->addr)) {
			rcpt_fail(r, RCPT_BOUNCED, "5.4.6", "mail loop: message "
			    "already delivered to this mailbox");
			continue;
		}
		if (maildir_open(&r->tx, dp->conf->mailboxes, r->domain,
		    r->user, dp->conf->hostname) == -1) {
			rcpt_fail(r, r->tx.temp ? RCPT_DEFERRED : RCPT_BOUNCED,
			    r->tx.temp ? "4.2.0 maildir:" : "5.2.0 maildir:",
			    r->tx.error);
			continue;
		}
		r->open = 1;
		snprintf(line, sizeof(line), "Return-Path: <%s>\n"
		    "Delivered-To: %s\n", from, r->addr);
		maildir_write(&r->tx, line, strlen(line));
		maildir_write(&r->tx, hdrs, hlen);
	}
	if (havehdr)
		free(hdr);
}

/* Read the message once, writing each chunk to every open Maildir file. */
static void
deliver_copy_all(struct dreq *q, int fd)
{
	char	*b;
	off_t	 off = 0;
	ssize_t	 n;

	if ((b = malloc(DELIVER_CHUNK)) == NULL) {
		for (size_t i = 0; i < q->n; i++)
			if (q->r[i].open)
				rcpt_fail(&q->r[i], RCPT_DEFERRED, "4.3.0",
				    "out of memory");
		return;
	}
	for (;;) {
		n = pread(fd, b, DELIVER_CHUNK, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (size_t i = 0; i < q->n; i++)
			if (q->r[i].open && q->r[i].state == RCPT_DELIVERED)
				maildir_write(&q->r[i].tx, b, (size_t)n);
		off += n;
	}
	free(b);
	if (n == -1)
		for (size_t i = 0; i < q->n; i++)
			if (q->r[i].open)
				rcpt_fail(&q->r[i], RCPT_DEFERRED, "4.3.0",
				    "cannot read message");
}

static void
deliver_on_maildir(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct dreq	*q;
	char		 from[ADDR_STR_MAX + 1];
	const char	*hdrs;
	size_t		 hlen;

	(void)arg;
	if (m->fd == -1 || (q = dreq_parse(m, from, sizeof(from), &hdrs,
	    &hlen)) == NULL) {
		struct buf b;
		/* an answer for no recipient: the queue defers them all */
		log_warnx("bad DELIVER_MAILDIR, refused");
		if (m->fd != -1)
			close(m->fd);
		buf_init(&b, 16);
		ipc_put_u32(&b, 0);
		ipc_send_buf(c, QUEUE_DELIVER_RESULT, m->id, -1, &b);
		buf_free(&b);
		return;
	}
	q->c = c;
	q->id = m->id;
	deliver_open_all(q, m->fd, from, hdrs, hlen);
	deliver_copy_all(q, m->fd);
	close(m->fd);
	for (size_t i = 0; i < q->n; i++) {
		struct drcpt *r = &q->r[i];
		if (!r->open)
			continue;
		if (r->state != RCPT_DELIVERED ||
		    maildir_close(&r->tx, 0) == -1) {
			if (r->state == RCPT_DELIVERED)
				rcpt_fail(r, RCPT_DEFERRED, "4.2.0 maildir:",
				    r->tx.error);
			maildir_abort(&r->tx);
			r->open = 0;
		}
	}
	TAILQ_INSERT_TAIL(&batch, q, entry);
	nbatch += q->n;
	if (nbatch >= dp->conf->delivery_batch)
		deliver_flush(-1, 0, NULL);
	else
		event_active(ev_flush, EV_TIMEOUT, 0);
}

/* fsync new/ of each Maildir the batch published into, once each. */
static int
deliver_sync_dirs(void)
{
	struct dreq	*q;
	struct stat	*seen = NULL, st;
	size_t		 nseen = 0, k;
	int		 r = 0;

	if ((seen = calloc(nbatch ? nbatch : 1, sizeof(*seen))) == NULL)
		return -1;
	TAILQ_FOREACH(q, &batch, entry)
		for (size_t i = 0; i < q->n; i++) {
			struct drcpt *d = &q->r[i];
			if (!d->published || fstat(d->tx.dirfd, &st) == -1)
				continue;
			for (k = 0; k < nseen; k++)
				if (seen[k].st_dev == st.st_dev &&
				    seen[k].st_ino == st.st_ino)
					break;
			if (k < nseen)
				continue;
			seen[nseen++] = st;
			if (maildir_sync_new(&d->tx) == -1) {
				log_warn("fsync of a Maildir's new/");
				r = -1;
			}
		}
	free(seen);
	return r;
}

/* Publish the batch's files (after one syncfs), sync the names, answer. */
static void
deliver_flush(int fd, short ev, void *arg)
{
	struct dreq	*q;
	int		 synced = 0, any = -1;

	(void)fd;
	(void)ev;
	(void)arg;
	TAILQ_FOREACH(q, &batch, entry)
		for (size_t i = 0; i < q->n && any == -1; i++)
			if (q->r[i].open)
				any = q->r[i].tx.dirfd;
	if (any == -1 || syncfs(any) == 0) {
		TAILQ_FOREACH(q, &batch, entry)
			for (size_t i = 0; i < q->n; i++)
				if (q->r[i].open)
					q->r[i].published = maildir_publish(
					    &q->r[i].tx, 0) == 0;
		synced = deliver_sync_dirs() == 0;
	} else
		log_warn("syncfs of the mailboxes");
	while ((q = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, q, entry);
		for (size_t i = 0; i < q->n; i++) {
			struct drcpt *r = &q->r[i];
			if (!r->open)
				continue;
			if (r->published && synced) {
				snprintf(r->text, sizeof(r->text),
				    "delivered to maildir");
				maildir_abort(&r->tx);	/* closes it */
			} else {
				rcpt_fail(r, RCPT_DEFERRED, "4.2.0 maildir:",
				    r->tx.error[0] ? r->tx.error :
				    "sync failed");
				if (r->published)
					maildir_unpublish(&r->tx);
				else
					maildir_abort(&r->tx);
			}
			r->open = 0;
		}
		deliver_answer(q);
		dreq_free(q);
	}
	nbatch = 0;
}

/* The queue died: its channel is freed; what it asked for gets no answer. */
static void
deliver_peer_down(struct proc *p, enum ipc_role role)
{
	struct dreq	*q;

	(void)p;
	if (role != ROLE_QUEUE)
		return;
	TAILQ_FOREACH(q, &batch, entry)
		q->c = NULL;
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
