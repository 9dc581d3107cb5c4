/*
 * scanner - what happens between incoming/ and outgoing/: count the hops,
 * add the Received: header, and for locally submitted mail the Date:,
 * Message-ID: and From: a message is missing. The added lines are stored
 * as `hdr` records in the envelope and prepended at delivery, so the data
 * file is never rewritten.
 */
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"

#define HEADER_SCAN_MAX	(256 * 1024)

struct hdr_seen {
	unsigned	 received;
	int		 date, msgid, from;
};

static int
hdr_is(const char *line, size_t len, const char *name)
{
	size_t	 n = strlen(name);

	return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

/* Look through the header section of the data file. */
static int
scan_headers(int fd, struct hdr_seen *h)
{
	char		 buf[8192], line[128];
	size_t		 ll = 0;
	off_t		 off = 0;
	ssize_t		 n;
	int		 bol = 1;

	memset(h, 0, sizeof(*h));
	while (off < HEADER_SCAN_MAX &&
	    (n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n') {
				if (bol)	/* empty line: end of header */
					return 0;
				if (hdr_is(line, ll, "Received"))
					h->received++;
				else if (hdr_is(line, ll, "Date"))
					h->date = 1;
				else if (hdr_is(line, ll, "Message-ID"))
					h->msgid = 1;
				else if (hdr_is(line, ll, "From"))
					h->from = 1;
				ll = 0;
				bol = 1;
				continue;
			}
			if (bol && c == '\r' && i + 1 < n && buf[i + 1] == '\n')
				continue;
			bol = 0;
			if (ll < sizeof(line))
				line[ll++] = c;
		}
		off += n;
	}
	return n < 0 ? -1 : 0;
}

static void
rfc5322_date(time_t t, char *dst, size_t len)
{
	struct tm	 tm;

	localtime_r(&t, &tm);
	strftime(dst, len, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static int
add_hdr(struct envelope *env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
add_hdr(struct envelope *env, const char *fmt, ...)
{
	char	 line[1024], clean[1024];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	/* values come from the client: keep them on one line (P7) */
	log_sanitize(clean, sizeof(clean), line, strlen(line));
	if (line[0] == '\t')
		clean[0] = '\t';	/* our own folding */
	return envelope_add_hdr(env, clean, strlen(clean));
}

/* The smtp process (chrooted) knows a local sender by uid only. */
static const char *
local_user(const char *uid)
{
	struct passwd	*pw;
	char		*end;
	unsigned long	 u;

	u = strtoul(uid, &end, 10);
	if (*uid == '\0' || *end != '\0' || (pw = getpwuid((uid_t)u)) == NULL)
		return uid;
	return pw->pw_name;
}

int
scanner_run(struct qmsg *m, const char *hostname, unsigned max_hops,
    char *err, size_t errlen)
{
	struct envelope	*env = &m->env;
	struct hdr_seen	 h;
	char		 date[64], with[128];
	int		 local = (env->flags & ENV_F_LOCAL) != 0;
	struct buf	 milter_hdrs;

	if (scan_headers(m->datafd, &h) == -1) {
		snprintf(err, errlen, "cannot read message: %m");
		return -1;
	}
	env->hops = h.received + 1;
	if (env->flags & ENV_F_SCANNED)
		return 0;
	/* milter headers came with the commit: Received goes above them */
	milter_hdrs = env->hdrs;
	buf_init(&env->hdrs, ENV_HDRS_MAX);
	rfc5322_date(env->created, date, sizeof(date));
	snprintf(with, sizeof(with), "%s%s%s%s", env->proto,
	    env->tls[0] ? " (" : "", env->tls, env->tls[0] ? ")" : "");
	if (strcmp(env->proto, "LOCAL") == 0) {
		if (add_hdr(env, "Received: by %s (sluice, from userid %s)",
		    hostname, local_user(env->client_addr)) == -1)
			goto toolong;
	} else if (add_hdr(env, "Received: from %s (%s [%s])", env->helo,
	    env->client_name[0] ? env->client_name : "unknown",
	    env->client_addr) == -1 ||
	    add_hdr(env, "\tby %s (sluice) with %s", hostname, with) == -1)
		goto toolong;
	if (env->nrcpts == 1) {
		if (add_hdr(env, "\tid %s", env->id) == -1 ||
		    add_hdr(env, "\tfor <%s>; %s", env->rcpts[0].orig, date) ==
		    -1)
			goto toolong;
	} else if (add_hdr(env, "\tid %s; %s", env->id, date) == -1)
		goto toolong;
	if (local && !h.date && add_hdr(env, "Date: %s", date) == -1)
		goto toolong;
	if (local && !h.msgid &&
	    add_hdr(env, "Message-ID: <%s@%s>", env->id, hostname) == -1)
		goto toolong;
	if (local && !h.from && add_hdr(env, "From: %s%s%s",
	    env->from[0] ? "<" : "", env->from[0] ? env->from :
	    "MAILER-DAEMON", env->from[0] ? ">" : "") == -1)
		goto toolong;
	if (milter_hdrs.len && buf_add(&env->hdrs, milter_hdrs.data,
	    milter_hdrs.len) == -1)
		goto toolong;
	buf_free(&milter_hdrs);
	env->flags |= ENV_F_SCANNED;
	(void)max_hops;
	return 0;
toolong:
	/* as it was: the next run starts again from the milter's lines */
	buf_free(&env->hdrs);
	env->hdrs = milter_hdrs;
	snprintf(err, errlen, "cannot add headers");
	return -1;
}

/*
 * The Delivered-To: lines of the message (lower-cased, at most
 * SCAN_DTO_MAX), read once when first needed: mail that already went
 * through an address here has looped back (P8, like Postfix and qmail).
 */
#define SCAN_DTO_MAX	64

static void
scan_delivered_to(struct qmsg *m)
{
	char		 buf[8192], line[ADDR_STR_MAX + 32];
	size_t		 ll = 0, skip = 0;
	off_t		 off = 0;
	ssize_t		 n;
	int		 bol = 1, done = 0;

	m->dto_scanned = 1;
	if ((m->dto = calloc(SCAN_DTO_MAX, sizeof(*m->dto))) == NULL)
		return;
	while (!done && off < HEADER_SCAN_MAX &&
	    (n = pread(m->datafd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n && !done; i++) {
			char c = buf[i];
			if (c != '\n') {
				bol = 0;
				if (ll < sizeof(line) - 1)
					line[ll++] = c;
				else
					skip = 1;	/* too long: not ours */
				continue;
			}
			if (bol) {
				done = 1;	/* end of the header */
				break;
			}
			line[ll] = '\0';
			if (!skip && hdr_is(line, ll, "Delivered-To") &&
			    m->ndto < SCAN_DTO_MAX) {
				char *v = line + 13;
				while (*v == ' ' || *v == '\t')
					v++;
				for (char *e = v + strlen(v); e > v &&
				    (e[-1] == ' ' || e[-1] == '\t' ||
				    e[-1] == '\r'); e--)
					e[-1] = '\0';
				for (char *p = v; *p; p++)
					if (*p >= 'A' && *p <= 'Z')
						*p = (char)(*p - 'A' + 'a');
				snprintf(m->dto[m->ndto++], sizeof(m->dto[0]),
				    "%s", v);
			}
			ll = 0;
			skip = 0;
			bol = 1;
		}
		off += n;
	}
}

int
scanner_delivered_to(struct qmsg *m, const char *addr)
{
	if (!m->dto_scanned)
		scan_delivered_to(m);
	for (size_t i = 0; i < m->ndto; i++)
		if (strcasecmp(m->dto[i], addr) == 0)
			return 1;
	return 0;
}
