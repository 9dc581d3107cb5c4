/*
 * bounce - the delivery status notification (RFC 3464) for recipients that
 * failed permanently in this pass (m->fresh), or (delayed) the warning
 * for those still being retried. One DSN per pass, none to the null
 * sender (P8): the caller checks that before asking.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"

#define BOUNCE_HEADERS_MAX	(64 * 1024)

/* Copy the original message's header section (LF ends) into data. */
static void
bounce_copy_headers(int fd, struct buf *data)
{
	char	 buf[8192];
	ssize_t	 n;
	off_t	 off = 0;
	int	 nl = 1;

	while (off < BOUNCE_HEADERS_MAX &&
	    (n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && nl)
				return;
			nl = buf[i] == '\n';
			buf_addc(data, buf[i]);
		}
		off += n;
	}
}

/* Status code from a "5.1.1 text" error, else a generic one; class 4
   (delayed) or 5 (failed). */
static void
bounce_status(const char *error, unsigned cls, char *dst, size_t len)
{
	unsigned	 a, b, c;

	/* a remote reply: "550 5.1.1 text" */
	if (strlen(error) > 4 && error[3] == ' ' &&
	    strspn(error, "0123456789") == 3)
		error += 4;
	if (sscanf(error, "%1u.%3u.%3u", &a, &b, &c) == 3 && (a == 5 || a == 4))
		snprintf(dst, len, "%u.%u.%u", cls, b, c);
	else
		snprintf(dst, len, "%u.0.0", cls);
}

/* Is recipient i in this DSN? */
static int
bounce_has(const struct qmsg *m, size_t i, int delayed)
{
	enum rcpt_state	 st = m->env.rcpts[i].state;

	if (delayed)
		return st == RCPT_DEFERRED || st == RCPT_WAITING;
	return m->fresh != NULL && m->fresh[i];
}

/* "550 5.1.1 text": the text of a remote server's reply */
static int
bounce_is_reply(const char *e)
{
	return e[0] >= '2' && e[0] <= '5' && isdigit((unsigned char)e[1]) &&
	    isdigit((unsigned char)e[2]) && (e[3] == ' ' || e[3] == '\0');
}

int
bounce_build(const struct qmsg *m, const char *hostname, const char *to,
    int delayed, struct envelope *dsn, struct buf *data)
{
	const struct envelope	*env = &m->env;
	char			 date[64], status[16];
	struct tm		 tm;
	time_t			 now = time(NULL);
	size_t			 i;

	envelope_init(dsn);
	queue_id_new(dsn->id, sizeof(dsn->id));
	dsn->created = now;
	dsn->from[0] = '\0';
	snprintf(dsn->helo, sizeof(dsn->helo), "%s", hostname);
	snprintf(dsn->client_addr, sizeof(dsn->client_addr), "MAILER-DAEMON");
	snprintf(dsn->proto, sizeof(dsn->proto), "LOCAL");
	dsn->flags = ENV_F_LOCAL;
	if (envelope_add_rcpt(dsn, to, to) == -1)
		return -1;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_addf(data, "From: MAILER-DAEMON@%s (Mail Delivery System)\n"
	    "To: <%s>\nSubject: %s\n"
	    "Date: %s\nMessage-ID: <%s@%s>\nAuto-Submitted: auto-replied\n"
	    "MIME-Version: 1.0\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s/%s\"\n\n",
	    hostname, to, delayed ? "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender", date, dsn->id, hostname,
	    dsn->id, hostname);
	buf_addf(data, "--%s/%s\nContent-Type: text/plain; charset=utf-8\n\n"
	    "This is the mail system at host %s.\n\n%s", dsn->id, hostname,
	    hostname, delayed ? "Your message could not be delivered to one "
	    "or more recipients yet.\nIt is still being retried; you need not "
	    "send it again.\nIts headers are attached below.\n\n" :
	    "Your message could not be delivered to one or more recipients.\n"
	    "It is attached below.\n\n");
	for (i = 0; i < env->nrcpts; i++)
		if (bounce_has(m, i, delayed))
			buf_addf(data, "<%s>: %s\n", env->rcpts[i].orig,
			    env->rcpts[i].error);
	buf_addf(data, "\n--%s/%s\nContent-Type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; %s\nX-Sluice-Queue-ID: %s\n\n",
	    dsn->id, hostname, hostname, env->id);
	for (i = 0; i < env->nrcpts; i++) {
		if (!bounce_has(m, i, delayed))
			continue;
		const char *e = env->rcpts[i].error;
		bounce_status(e, delayed ? 4 : 5, status, sizeof(status));
		/* a remote server's reply ("550 5.1.1 ...") is an smtp code */
		buf_addf(data, "Final-Recipient: rfc822; %s\nOriginal-Recipient:"
		    " rfc822; %s\nAction: %s\nStatus: %s\n"
		    "Diagnostic-Code: %s; %s\n\n", env->rcpts[i].addr,
		    env->rcpts[i].orig, delayed ? "delayed" : "failed", status,
		    bounce_is_reply(e) ? "smtp" : "x-sluice", e);
	}
	buf_addf(data, "--%s/%s\nContent-Type: text/rfc822-headers\n\n",
	    dsn->id, hostname);
	bounce_copy_headers(m->datafd, data);
	buf_addf(data, "\n--%s/%s--\n", dsn->id, hostname);
	return data->err ? -1 : 0;
}
