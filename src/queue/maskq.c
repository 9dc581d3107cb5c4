/*
 * maskq - the masked relay's copies, made by the queue (docs/masks.md).
 *
 * A recipient in the mask domain is resolved by the lookup process into a
 * route (mask_lookup.h): the real address the copy goes to, its envelope
 * sender (a VERP bounce address), its From: and the addresses the copy's
 * To:/Cc: may show. The queue then writes the copy as a new message -
 * header section by allow-list (mask_rewrite), the body as it is - and
 * commits it like a bounce; the original recipient is delivered once the
 * copy is on disk (P1, P2: a crash in between makes a second copy).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mask.h"
#include "maskq.h"
#include "queue.h"
#include "rewrite.h"

#define MASKQ_HEADER_MAX	(256 * 1024)	/* header section read */

/*
 * The message's header section as delivered: the queue's own lines
 * (Received:, and Date:... for local submissions) then the data file's
 * header section. *body is where the body starts in the data file.
 */
int
maskq_header(const struct qmsg *m, struct buf *out, off_t *body)
{
	char	*p;
	ssize_t	 n;
	size_t	 hl;

	*body = 0;
	if (m->env.hdrs.len && buf_add(out, m->env.hdrs.data,
	    m->env.hdrs.len) == -1)
		return -1;
	if ((p = malloc(MASKQ_HEADER_MAX)) == NULL)
		return -1;
	if ((n = pread(m->datafd, p, MASKQ_HEADER_MAX, 0)) == -1) {
		free(p);
		return -1;
	}
	if ((hl = header_section_len(p, (size_t)n)) == 0) {
		if ((size_t)n == MASKQ_HEADER_MAX) {
			free(p);
			errno = EFBIG;
			return -1;	/* a header section we will not read */
		}
		hl = (size_t)n;		/* all header, no body */
	}
	if (buf_add(out, p, hl) == -1) {
		free(p);
		return -1;
	}
	free(p);
	*body = (off_t)hl;
	return 0;
}

/* To:/Cc: of the copy: only mask addresses, and the other side's masks */
static int
maskq_map(void *arg, const char *addr, char *out, size_t outlen)
{
	const struct mask_route	*mr = arg;
	const char		*at = strrchr(addr, '@');
	const char		*dom = strrchr(mr->user_mask, '@');
	const char		*to = NULL;

	if (mr->dir == MASK_DIR_IN) {
		/* person -> service: the person appears as its user mask */
		if (strcasecmp(addr, mr->person) == 0)
			to = mr->user_mask;
	} else {
		/* service -> person: the person sees its own address and
		   the service as its service mask */
		if (strcasecmp(addr, mr->user_mask) == 0)
			to = mr->person;
		else if (strcasecmp(addr, mr->service_real) == 0)
			to = mr->service_mask;
	}
	if (to == NULL && at && dom && strcasecmp(at, dom) == 0)
		to = addr;	/* a mask address: no one's real address */
	if (to == NULL)
		return MASK_ADDR_DROP;	/* a third party: got it directly */
	if ((size_t)snprintf(out, outlen, "%s", to) >= outlen)
		return -1;
	return MASK_ADDR_KEEP;
}

/* copy the data file from off to the end into fd */
static int
copy_body(int from, off_t off, int to, unsigned long long *size)
{
	char	 buf[65536];
	ssize_t	 n;

	while ((n = pread(from, buf, sizeof(buf), off)) > 0) {
		if (write_all(to, buf, (size_t)n) == -1)
			return -1;
		off += n;
		*size += (unsigned long long)n;
	}
	return n == 0 ? 0 : -1;
}

int
maskq_build(const struct qmsg *m, const struct mask_route *mr,
    const char *hostname, struct envelope *copy, int *fdp, char *why,
    size_t whylen)
{
	struct buf	 hdr, out;
	struct mask_map	 map;
	enum mask_err	 e;
	off_t		 body;
	int		 fd = -1, r = MASKQ_TEMP;
	const char	*at = strrchr(mr->user_mask, '@');

	*fdp = -1;
	envelope_init(copy);
	buf_init(&hdr, MASKQ_HEADER_MAX + m->env.hdrs.len + 1);
	buf_init(&out, MASK_OUT_MAX);
	if (maskq_header(m, &hdr, &body) == -1) {
		snprintf(why, whylen, "cannot read the header section: %s",
		    strerror(errno));
		goto done;
	}
	if (mask_mark_present(hdr.data, hdr.len, mr->pair)) {
		snprintf(why, whylen, "loop: the message already passed this "
		    "relay for pair %s", mr->pair);
		r = MASKQ_DROP;
		goto done;
	}
	memset(&map, 0, sizeof(map));
	map.domain = at ? at + 1 : "";
	map.from_mask = mr->from_mask;
	map.reply_to = mr->reply_to[0] ? mr->reply_to : NULL;
	map.mark = mr->pair;
	map.map_addr = maskq_map;
	map.arg = (void *)(uintptr_t)mr;
	if (mask_rewrite(hdr.data, hdr.len, &map, &out, &e) == -1) {
		snprintf(why, whylen, "header section not relayed: %s",
		    mask_strerr(e));
		r = e == MASK_ERR_NOMEM ? MASKQ_TEMP : MASKQ_DROP;
		goto done;
	}
	queue_id_new(copy->id, sizeof(copy->id));
	copy->created = time(NULL);
	snprintf(copy->from, sizeof(copy->from), "%s", mr->verp);
	snprintf(copy->helo, sizeof(copy->helo), "%s", hostname);
	snprintf(copy->client_addr, sizeof(copy->client_addr), "mask");
	snprintf(copy->proto, sizeof(copy->proto), "LOCAL");
	copy->flags = ENV_F_LOCAL | (m->env.flags & (ENV_F_8BITMIME |
	    ENV_F_SMTPUTF8));
	if (envelope_add_rcpt(copy, mr->target, mr->target) == -1) {
		snprintf(why, whylen, "bad target address");
		r = MASKQ_DROP;
		goto done;
	}
	fd = openat(queue_spool.data, copy->id, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
	if (fd == -1 || write_all(fd, out.data, out.len) == -1 ||
	    copy_body(m->datafd, body, fd, &copy->size) == -1) {
		snprintf(why, whylen, "cannot write the copy: %s",
		    strerror(errno));
		if (fd != -1) {
			close(fd);
			unlinkat(queue_spool.data, copy->id, 0);
			fd = -1;
		}
		goto done;
	}
	copy->size += out.len;
	*fdp = fd;
	r = MASKQ_OK;
done:
	if (r != MASKQ_OK)
		envelope_free(copy);
	buf_free(&hdr);
	buf_free(&out);
	return r;
}

/*
 * MASK_F_* of a message to the mask domain: automatic (auto-reply, bulk,
 * receipt), and for a DSN whether it only says "delayed" (RFC 3464: every
 * Action: field is delayed; read from the first MASKQ_HEADER_MAX octets).
 */
unsigned
maskq_flags(const struct qmsg *m)
{
	struct buf	 hdr;
	char		*p;
	off_t		 body;
	ssize_t		 n;
	unsigned	 f = 0;

	buf_init(&hdr, MASKQ_HEADER_MAX + m->env.hdrs.len + 1);
	if (maskq_header(m, &hdr, &body) == 0 &&
	    mask_auto_submitted(hdr.data ? hdr.data : "", hdr.len))
		f |= MASK_F_AUTO;
	buf_free(&hdr);
	if (m->env.from[0] != '\0' || (p = malloc(MASKQ_HEADER_MAX + 1)) ==
	    NULL)
		return f;
	if ((n = pread(m->datafd, p, MASKQ_HEADER_MAX, 0)) > 0) {
		p[n] = '\0';
		/* NULs end the text early: only ever less "delayed" */
		if (strcasestr(p, "\nAction: delayed") &&
		    !strcasestr(p, "\nAction: failed"))
			f |= MASK_F_DELAYED;
	}
	free(p);
	return f;
}

/*
 * A relayed copy bounced: tell the other side (mr->target), naming only
 * the mask address it wrote to (mr->from_mask); nothing of the bounce
 * itself is passed on (it names real addresses). From the null sender.
 */
int
maskq_notice(const struct qmsg *m, const struct mask_route *mr,
    const char *hostname, struct envelope *dsn, int *fdp, char *why,
    size_t whylen)
{
	struct buf	 data;
	struct tm	 tm;
	time_t		 now = time(NULL);
	char		 date[64];
	int		 fd;

	(void)m;
	*fdp = -1;
	envelope_init(dsn);
	queue_id_new(dsn->id, sizeof(dsn->id));
	dsn->created = now;
	snprintf(dsn->helo, sizeof(dsn->helo), "%s", hostname);
	snprintf(dsn->client_addr, sizeof(dsn->client_addr), "MAILER-DAEMON");
	snprintf(dsn->proto, sizeof(dsn->proto), "LOCAL");
	dsn->flags = ENV_F_LOCAL | ENV_F_DOUBLE;	/* never bounced back */
	if (envelope_add_rcpt(dsn, mr->target, mr->target) == -1) {
		snprintf(why, whylen, "bad notice address");
		envelope_free(dsn);
		return MASKQ_DROP;
	}
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_init(&data, 8192);
	/* RFC 3464, naming only the mask address that was written to */
	buf_addf(&data, "From: MAILER-DAEMON@%s (Mail Delivery System)\n"
	    "To: <%s>\nSubject: Undelivered Mail Returned to Sender\n"
	    "Date: %s\nMessage-ID: <%s@%s>\nAuto-Submitted: auto-replied\n"
	    "MIME-Version: 1.0\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s/%s\"\n\n",
	    hostname, mr->target, date, dsn->id, hostname, dsn->id, hostname);
	buf_addf(&data, "--%s/%s\nContent-Type: text/plain; charset=us-ascii\n"
	    "\nThis is the mail system at host %s.\n\n"
	    "Your message to <%s> could not be delivered: the address\n"
	    "behind it refused it permanently. Its own report is not passed\n"
	    "on (it would show addresses that are kept private).\n\n",
	    dsn->id, hostname, hostname, mr->from_mask);
	buf_addf(&data, "--%s/%s\nContent-Type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; %s\n\nFinal-Recipient: rfc822; %s\n"
	    "Action: failed\nStatus: 5.0.0\n\n--%s/%s--\n", dsn->id,
	    hostname, hostname, mr->from_mask, dsn->id, hostname);
	fd = openat(queue_spool.data, dsn->id, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
	if (data.err || fd == -1 || write_all(fd, data.data, data.len) == -1) {
		snprintf(why, whylen, "cannot write the notice: %s",
		    strerror(errno));
		if (fd != -1) {
			close(fd);
			unlinkat(queue_spool.data, dsn->id, 0);
		}
		buf_free(&data);
		envelope_free(dsn);
		return MASKQ_TEMP;
	}
	dsn->size = data.len;
	buf_free(&data);
	*fdp = fd;
	return MASKQ_OK;
}
