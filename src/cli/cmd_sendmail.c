/*
 * cmd_sendmail - the Sendmail-compatible submission command.
 *
 *	sendmail [-t] [-i] [-oi] [-f SENDER] [-F NAME] [-oX] [-bm|-bp|-bs]
 *	    [--] [RCPT...]
 *
 * Reads a message from stdin (LF or CRLF line ends; without -i/-oi a line
 * of a single "." ends it), refuses NUL bytes and messages over
 * max-message-size, removes the Bcc: field, and with -t adds the To:, Cc:
 * and Bcc: addresses to the recipients (RFC 5322 address lists: display
 * names, quoted strings, comments, groups). Unqualified addresses get
 * "@<hostname>". It then speaks ESMTP to sluiced on the unix socket
 * <spool>/public/submit.sock; if the daemon cannot be reached the message
 * goes to <spool>/maildrop/ (written to tmp.<unique>, fsync'ed, renamed,
 * directory fsync'ed) for the daemon to pick up later: it is never lost.
 * Exit (sysexits): 0 accepted or dropped; 64 usage, no recipients, -bs;
 * 65 bad address, NUL byte, too big, 5xx reply; 67 550 5.1.1 at RCPT;
 * 75 4xx reply, or the maildrop could not be written; 78 config.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "proc.h"
#include "spool.h"

#define SM_RCPT_MAX		10000
#define SM_REPLY_MAX		8192
#define SM_TIMEOUT		300	/* seconds per socket read/write */
#define SM_NAME_MAX		256

static const char usage_sendmail[] =
    "usage: sluice [-c FILE] sendmail [-t] [-i] [-f SENDER] [-F NAME] "
    "[-oX] [-bm|-bp] [--] [RCPT...]\n"
    "       sendmail [options] [RCPT...]\n"
    "\n"
    "Submit the message read from stdin.\n"
    "  -t         also send to the To:, Cc: and Bcc: addresses\n"
    "  -i, -oi    a line with a single \".\" does not end the message\n"
    "  -f SENDER  envelope sender (\"<>\" for the null sender)\n"
    "  -F NAME    full name for a From: field when the message has none\n"
    "  -bp        list the queue (like mailq); -bs is not supported\n"
    "  -oX        other -o options are ignored\n"
    "If sluiced is not running the message is kept in the maildrop.\n"
    "exit: 0 accepted, 64 usage or no recipients, 65 bad address or\n"
    "      message or rejected, 67 unknown user, 75 try again later\n";

struct sm {
	struct cli	*cli;
	int		 tflag, iflag, bp;
	const char	*from_opt;	/* -f, NULL if absent */
	const char	*fullname;	/* -F */
	char		 from[ADDR_STR_MAX + 1];
	char		**rcpts;
	size_t		 nrcpts;
	int		 utf8;		/* an address has 8-bit bytes */
	struct buf	 msg;		/* the message, LF line ends */
};

/* a buffered reader/writer on the submission socket */
struct sm_conn {
	int		 fd;
	char		 in[4096];
	size_t		 inlen, inoff;
	struct buf	 out;
	char		 reply[SM_REPLY_MAX];	/* last reply, lines joined */
	int		 code;
};

/*
 * Options.
 */

/* Take an option argument: the rest of argv[*i] after k, or the next one. */
static const char *
sm_optarg(int argc, char **argv, int *i, size_t k)
{
	if (argv[*i][k] != '\0')
		return argv[*i] + k;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

/* One option word (argv[*i] starts with '-'); 0, or an exit status. */
static int
sm_option(struct sm *s, int argc, char **argv, int *i)
{
	const char	*a = argv[*i];
	size_t		 k;

	for (k = 1; a[k] != '\0'; k++) {
		switch (a[k]) {
		case 't': s->tflag = 1; continue;
		case 'i': s->iflag = 1; continue;
		case 'v': case 'U': case 'n': case 'm': continue;
		case 'o':
			if (a[k + 1] == 'i' && a[k + 2] == '\0')
				s->iflag = 1;
			return 0;		/* other -oX: ignored */
		case 'b':
			if (strcmp(a + k, "bp") == 0) {
				s->bp = 1;
				return 0;
			}
			if (strcmp(a + k, "bm") == 0)
				return 0;
			cli_err("sendmail: -%s is not supported", a + k);
			return EX_USAGE;
		case 'f': case 'r': case 'F': case 'B': case 'N': case 'h':
		case 'R': case 'V': case 'X': case 'L': case 'O': {
			char o = a[k];
			const char *v = sm_optarg(argc, argv, i, k + 1);
			if (v == NULL) {
				cli_err("sendmail: -%c needs an argument", o);
				return EX_USAGE;
			}
			if (o == 'f' || o == 'r')
				s->from_opt = v;
			else if (o == 'F')
				s->fullname = v;
			return 0;
		}
		default:
			cli_err("sendmail: unknown option -%c", a[k]);
			return EX_USAGE;
		}
	}
	return 0;
}

/* Parse argv; *first is the index of the first recipient. */
static int
sm_args(struct sm *s, int argc, char **argv, int *first)
{
	int	 i, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (argv[i][0] != '-' || argv[i][1] == '\0')
			break;
		if ((rc = sm_option(s, argc, argv, &i)) != 0)
			return rc;
	}
	*first = i;
	return 0;
}

/*
 * Addresses.
 */

/*
 * Check an address and add it to the recipients unless already there.
 * Unqualified names get "@hostname". 0 or an exit status.
 */
static int
sm_add_rcpt(struct sm *s, const char *in, size_t len, const char *where)
{
	struct mailaddr	 a;
	struct buf	 b;
	char		 fmt[ADDR_STR_MAX + 1], **nv;
	enum addr_err	 e;
	size_t		 i;

	buf_init(&b, ADDR_STR_MAX + 1);
	buf_add(&b, in, len);
	if (memchr(in, '@', len) == NULL && len > 0 && in[0] != '"')
		buf_addf(&b, "@%s", s->cli->cfg.hostname);
	e = b.err ? ADDR_ETOOLONG : addr_parse(b.data, b.len, ADDR_F_UTF8, &a);
	buf_free(&b);
	if (e != ADDR_OK) {
		cli_err("%s: bad recipient address \"%.*s\": %s", where,
		    (int)(len > 300 ? 300 : len), in, addr_strerror(e));
		return EX_DATAERR;
	}
	if (addr_format(&a, fmt, sizeof(fmt)) >= sizeof(fmt))
		return EX_DATAERR;
	for (i = 0; i < s->nrcpts; i++)
		if (strcmp(s->rcpts[i], fmt) == 0)
			return 0;
	if (s->nrcpts == SM_RCPT_MAX) {
		cli_err("too many recipients (at most %d)", SM_RCPT_MAX);
		return EX_DATAERR;
	}
	if ((nv = reallocarray(s->rcpts, s->nrcpts + 1, sizeof(*nv))) == NULL)
		return EX_OSERR;
	s->rcpts = nv;
	if ((s->rcpts[s->nrcpts] = strdup(fmt)) == NULL)
		return EX_OSERR;
	s->nrcpts++;
	for (i = 0; fmt[i]; i++)
		if ((unsigned char)fmt[i] >= 0x80)
			s->utf8 = 1;
	return 0;
}

/* The envelope sender: -f, else the invoking user @ hostname. */
static int
sm_sender(struct sm *s)
{
	struct mailaddr	 a;
	struct passwd	*pw;
	char		 tmp[ADDR_STR_MAX + 2];
	const char	*f = s->from_opt;
	size_t		 n;
	enum addr_err	 e;

	if (f == NULL) {
		if ((pw = getpwuid(getuid())) == NULL) {
			cli_err("cannot find the name of uid %u: use -f",
			    (unsigned)getuid());
			return EX_NOUSER;
		}
		f = pw->pw_name;
	}
	n = strlen(f);
	if (n >= 2 && f[0] == '<' && f[n - 1] == '>') {
		f++;
		n -= 2;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)n, f,
	    n && memchr(f, '@', n) == NULL ? "@" : "",
	    n && memchr(f, '@', n) == NULL ? s->cli->cfg.hostname : "") >=
	    sizeof(tmp))
		e = ADDR_ETOOLONG;
	else
		e = addr_parse(tmp, strlen(tmp), ADDR_F_NULL_OK | ADDR_F_UTF8,
		    &a);
	if (e != ADDR_OK) {
		cli_err("bad sender address \"%s\": %s", f, addr_strerror(e));
		return EX_DATAERR;
	}
	addr_format(&a, s->from, sizeof(s->from));
	for (n = 0; s->from[n]; n++)
		if ((unsigned char)s->from[n] >= 0x80)
			s->utf8 = 1;
	return 0;
}

/*
 * RFC 5322 address lists.
 */

struct sm_alist {
	const char	*p;
	size_t		 n, i;
	struct buf	 item;		/* text outside <>, comments dropped */
	struct buf	 angle;		/* inside <> */
	int		 has_angle;	/* 1 inside <>, 2 after */
	int		 space;		/* white space after the last item char */
	int		 phrase;	/* words separated by spaces: a name */
};

/* Copy a "quoted string" or [literal] starting at p[i] into dst. */
static int
sm_alist_span(struct sm_alist *l, struct buf *dst, char close)
{
	buf_addc(dst, l->p[l->i++]);
	while (l->i < l->n) {
		char c = l->p[l->i++];
		if (c == '\\' && l->i < l->n) {
			buf_addc(dst, c);
			c = l->p[l->i++];
		} else if (c == close) {
			buf_addc(dst, c);
			return 0;
		}
		buf_addc(dst, c);
	}
	return -1;
}

/* Skip a (possibly nested) comment starting at p[i]. */
static int
sm_alist_comment(struct sm_alist *l)
{
	int	 depth = 0;

	while (l->i < l->n) {
		char c = l->p[l->i++];
		if (c == '\\')
			l->i++;
		else if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0)
			return 0;
	}
	return -1;
}

/* End of one list item: add its address, if any. */
static int
sm_alist_emit(struct sm *s, struct sm_alist *l, const char *field)
{
	const char	*a;
	size_t		 n;
	int		 rc = 0;

	if (l->item.err || l->angle.err) {
		cli_err("%s: header field too long", field);
		return EX_DATAERR;
	}
	a = l->has_angle ? l->angle.data : l->item.data;
	n = l->has_angle ? l->angle.len : l->item.len;
	if (l->has_angle && n > 0 && a[0] == '@') {	/* obs-route */
		const char *colon = memchr(a, ':', n);
		n = colon ? n - (size_t)(colon + 1 - a) : 0;
		a = colon ? colon + 1 : a;
	}
	if (!l->has_angle && l->phrase) {
		cli_err("%s: bad recipient address \"%.*s\": a name without "
		    "an <address>", field, (int)(n > 300 ? 300 : n), a);
		rc = EX_DATAERR;
	} else if (a != NULL && n > 0)
		rc = sm_add_rcpt(s, a, n, field);
	buf_reset(&l->item);
	buf_reset(&l->angle);
	l->has_angle = l->space = l->phrase = 0;
	return rc;
}

/* One character of the list outside quotes and comments. */
static int
sm_alist_char(struct sm *s, struct sm_alist *l, char c, const char *field)
{
	if (l->has_angle == 1) {		/* inside <...> */
		if (c == '>')
			l->has_angle = 2;
		else if (c != ' ' && c != '\t')
			buf_addc(&l->angle, c);
		return 0;
	}
	switch (c) {
	case '<':
		buf_reset(&l->angle);
		l->has_angle = 1;
		return 0;
	case ':':				/* group: drop its name */
		buf_reset(&l->item);
		l->space = l->phrase = 0;
		return 0;
	case ',':
	case ';':
		return sm_alist_emit(s, l, field);
	case ' ': case '\t': case '\r': case '\n':
		l->space = l->item.len > 0;
		return 0;
	}
	/* obsolete CFWS around '.' and '@' is fine; "John Doe" is not */
	if (l->space && c != '.' && c != '@' &&
	    l->item.data[l->item.len - 1] != '.' &&
	    l->item.data[l->item.len - 1] != '@')
		l->phrase = 1;
	l->space = 0;
	buf_addc(&l->item, c);
	return 0;
}

/* Add every address of an address-list field value. */
static int
sm_alist(struct sm *s, const char *v, size_t n, const char *field)
{
	struct sm_alist	 l;
	int		 rc = 0, bad = 0;

	memset(&l, 0, sizeof(l));
	l.p = v;
	l.n = n;
	buf_init(&l.item, ADDR_STR_MAX * 4);
	buf_init(&l.angle, ADDR_STR_MAX * 4);
	while (rc == 0 && !bad && l.i < n) {
		char c = v[l.i];
		struct buf *dst = l.has_angle == 1 ? &l.angle : &l.item;
		if (c == '(')
			bad = sm_alist_comment(&l) == -1;
		else if (c == '"')
			bad = sm_alist_span(&l, dst, '"') == -1;
		else if (c == '[')
			bad = sm_alist_span(&l, dst, ']') == -1;
		else {
			l.i++;
			rc = sm_alist_char(s, &l, c, field);
		}
	}
	if (rc == 0 && (bad || l.has_angle == 1)) {
		cli_err("%s: unterminated quote, comment or <address>", field);
		rc = EX_DATAERR;
	}
	if (rc == 0)
		rc = sm_alist_emit(s, &l, field);
	buf_free(&l.item);
	buf_free(&l.angle);
	return rc;
}

/*
 * The message.
 */

/*
 * If f[0..n) starts a header field ("Name:", optional WSP before the
 * colon), the length up to and including the colon; else 0.
 */
static size_t
sm_field_name(const char *f, size_t n)
{
	size_t	 i;

	for (i = 0; i < n && f[i] > ' ' && f[i] < 127 && f[i] != ':'; i++)
		;
	if (i == 0)
		return 0;
	while (i < n && (f[i] == ' ' || f[i] == '\t'))
		i++;
	return i < n && f[i] == ':' ? i + 1 : 0;
}

/* Is the field name (with its colon, nlen bytes) name? */
static int
sm_field_is(const char *f, size_t nlen, const char *name)
{
	size_t	 k = strlen(name), i;

	if (nlen < k + 1 || strncasecmp(f, name, k) != 0)
		return 0;
	for (i = k; i < nlen - 1; i++)
		if (f[i] != ' ' && f[i] != '\t')
			return 0;
	return 1;
}

/* Read stdin into s->msg with LF line ends; 0 or an exit status. */
static int
sm_read(struct sm *s)
{
	struct buf	 line;
	unsigned long long max = s->cli->cfg.max_message_size;
	int		 c, done = 0, rc = 0;

	buf_init(&s->msg, max + 1);
	buf_init(&line, max + 2);
	while (!done && rc == 0) {
		c = getc_unlocked(stdin);
		if (c == 0) {
			cli_err("the message contains a NUL byte: refused");
			rc = EX_DATAERR;
		} else if (c != EOF && c != '\n') {
			buf_addc(&line, c);
		} else if (c == EOF && line.len == 0) {
			done = 1;
		} else {
			if (line.len > 0 && line.data[line.len - 1] == '\r')
				line.len--;
			if (!s->iflag && line.len == 1 && line.data[0] == '.')
				break;
			buf_add(&s->msg, line.data ? line.data : "", line.len);
			buf_addc(&s->msg, '\n');
			buf_reset(&line);
			done = c == EOF;
		}
		if (rc == 0 && (line.err || s->msg.err))
			rc = line.err == BUF_ENOMEM || s->msg.err == BUF_ENOMEM ?
			    EX_OSERR : EX_DATAERR;
	}
	buf_free(&line);
	if (rc == 0 && ferror(stdin)) {
		cli_err("reading the message: %s", strerror(errno));
		rc = EX_IOERR;
	} else if (rc == EX_DATAERR && s->msg.err == BUF_ETOOBIG) {
		cli_err("message too big: the limit is %llu bytes", max);
	} else if (rc == EX_DATAERR && line.err == BUF_ETOOBIG)
		cli_err("message too big: the limit is %llu bytes", max);
	return rc;
}

/* Length of the header field starting at off, continuation lines included. */
static size_t
sm_field_len(const struct buf *m, size_t off)
{
	const char	*nl;
	size_t		 i = off;

	while (i < m->len) {
		nl = memchr(m->data + i, '\n', m->len - i);
		i = nl ? (size_t)(nl - m->data) + 1 : m->len;
		if (i >= m->len || (m->data[i] != ' ' && m->data[i] != '\t'))
			break;
	}
	return i - off;
}

/*
 * Walk the header: with -t collect To/Cc/Bcc recipients; always remove
 * Bcc fields; note whether a From: exists. 0 or an exit status.
 */
static int
sm_headers(struct sm *s, int *has_from)
{
	struct buf	*m = &s->msg;
	size_t		 off = 0, n, nl;
	const char	*names[] = { "To", "Cc", "Bcc" };
	int		 rc, k;

	*has_from = 0;
	while (off < m->len && m->data[off] != '\n') {
		const char *f = m->data + off;
		n = sm_field_len(m, off);
		if ((nl = sm_field_name(f, n)) == 0)
			break;			/* not a field: the body */
		for (k = 0; k < 3; k++)
			if (sm_field_is(f, nl, names[k]))
				break;
		if (sm_field_is(f, nl, "From"))
			*has_from = 1;
		if (k < 3 && s->tflag &&
		    (rc = sm_alist(s, f + nl, n - nl, names[k])) != 0)
			return rc;
		if (k == 2) {			/* Bcc: remove it */
			memmove(m->data + off, m->data + off + n,
			    m->len - off - n);
			m->len -= n;
			m->data[m->len] = '\0';
			continue;
		}
		off += n;
	}
	return 0;
}

/* With -F and no From: field, prepend "From: NAME <sender>". */
static int
sm_add_from(struct sm *s)
{
	struct buf	 h;
	const char	*p;
	int		 plain = 1;

	for (p = s->fullname; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			cli_err("-F: control characters in the name");
			return EX_USAGE;
		}
		if (!isalnum((unsigned char)*p) && *p != ' ' &&
		    strchr("!#$%&'*+-/=?^_`{|}~", *p) == NULL)
			plain = 0;
	}
	if (strlen(s->fullname) > SM_NAME_MAX) {
		cli_err("-F: name too long");
		return EX_USAGE;
	}
	buf_init(&h, s->msg.max);
	buf_adds(&h, "From: ");
	if (!plain)
		buf_addc(&h, '"');
	for (p = s->fullname; *p; p++) {
		if (!plain && (*p == '"' || *p == '\\'))
			buf_addc(&h, '\\');
		buf_addc(&h, *p);
	}
	buf_addf(&h, "%s <%s>\n", plain ? "" : "\"", s->from);
	buf_add(&h, s->msg.data ? s->msg.data : "", s->msg.len);
	if (h.err) {
		buf_free(&h);
		cli_err("message too big");
		return EX_DATAERR;
	}
	buf_free(&s->msg);
	s->msg = h;
	return 0;
}

/*
 * The maildrop: the daemon is down, keep the message for it.
 */

/* The maildrop file's header records. */
static int
sm_maildrop_head(const struct sm *s, struct buf *h)
{
	size_t	 i;

	buf_init(h, (size_t)(s->nrcpts + 4) * (ADDR_STR_MAX + 8));
	buf_addf(h, "sluice-maildrop 1\nfrom %s\n", s->from);
	for (i = 0; i < s->nrcpts; i++)
		buf_addf(h, "rcpt %s\n", s->rcpts[i]);
	buf_addf(h, "uid %u\nend\n", (unsigned)getuid());
	if (h->err || memchr(h->data, '\r', h->len) != NULL) {
		buf_free(h);
		return -1;
	}
	return 0;
}

/* Write, fsync, rename into place, fsync the directory; 0 or -1. */
static int
sm_maildrop_write(const struct sm *s, const char *dir, const char *tmp,
    const char *final)
{
	struct buf	 h;
	int		 fd, dfd, saved;

	if (sm_maildrop_head(s, &h) == -1) {
		errno = EINVAL;
		return -1;
	}
	/*
	 * XXX: the queue (running as the daemon user) must read the file,
	 * so it is world-readable inside a directory nobody else can list.
	 * A setgid drop helper like Postfix's postdrop would close this.
	 */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd == -1) {
		buf_free(&h);
		return -1;
	}
	if (write_all(fd, h.data, h.len) == -1 ||
	    write_all(fd, s->msg.data ? s->msg.data : "", s->msg.len) ==
	    -1 || fsync(fd) == -1 || close(fd) == -1) {
		saved = errno;
		close(fd);	/* may fail after close(): harmless EBADF */
		unlink(tmp);
		buf_free(&h);
		errno = saved;
		return -1;
	}
	buf_free(&h);
	if (rename(tmp, final) == -1) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		saved = errno;
		if (dfd != -1)
			close(dfd);
		errno = saved;
		return -1;
	}
	close(dfd);
	return 0;
}

/*
 * sluiced has never run here, so there is no spool yet: root makes it, as
 * sluiced would (owned by the daemon user); anyone else gets the error.
 */
static void
sm_make_spool(const struct sm *s)
{
	struct spool	 sp;
	uid_t		 uid;
	gid_t		 gid;
	char		 err[512];

	if (geteuid() != 0 || privsep_ids(s->cli->cfg.user, &uid, &gid) == -1)
		return;
	if (spool_open(&sp, s->cli->cfg.spool, 1, uid, gid, err,
	    sizeof(err)) == -1) {
		cli_err("%s", err);
		return;
	}
	spool_close(&sp);
}

static int
sm_maildrop(const struct sm *s)
{
	char		 dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
	char		 uniq[64];
	struct timeval	 tv;

	gettimeofday(&tv, NULL);
	snprintf(uniq, sizeof(uniq), "%lld.%06ld.%ld", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid());
	if ((size_t)snprintf(dir, sizeof(dir), "%s/maildrop",
	    s->cli->cfg.spool) >= sizeof(dir) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/tmp.%s", dir, uniq) >=
	    sizeof(tmp) ||
	    (size_t)snprintf(final, sizeof(final), "%s/%s", dir, uniq) >=
	    sizeof(final)) {
		cli_err("spool path too long");
		return EX_TEMPFAIL;
	}
	if (access(dir, F_OK) == -1 && errno == ENOENT)
		sm_make_spool(s);
	if (sm_maildrop_write(s, dir, tmp, final) == -1) {
		cli_err("sluiced is not running and the message could not be "
		    "kept in %s: %s", dir, strerror(errno));
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

/*
 * The submission session.
 */

/* Connect to the daemon; -1 with errno set. */
static int
sm_connect(const struct sm *s)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { SM_TIMEOUT, 0 };
	int			 fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/public/submit.sock", s->cli->cfg.spool) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
sm_flush(struct sm_conn *c)
{
	if (c->out.err || write_all(c->fd, c->out.data ? c->out.data : "",
	    c->out.len) == -1)
		return -1;
	buf_reset(&c->out);
	return 0;
}

/* One reply line (CRLF or LF stripped) into line; -1 on EOF or error. */
static int
sm_getline(struct sm_conn *c, char *line, size_t len)
{
	size_t	 n = 0;
	ssize_t	 r;
	char	 ch;

	for (;;) {
		if (c->inoff == c->inlen) {
			r = read(c->fd, c->in, sizeof(c->in));
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			c->inlen = (size_t)r;
			c->inoff = 0;
		}
		ch = c->in[c->inoff++];
		if (ch == '\n')
			break;
		if (n + 1 < len)
			line[n++] = ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return 0;
}

/* Read a (multi-line) reply into c->code and c->reply; -1 on error. */
static int
sm_reply(struct sm_conn *c)
{
	char	 line[1024];
	size_t	 used = 0, k;
	int	 more;

	c->reply[0] = '\0';
	do {
		if (sm_getline(c, line, sizeof(line)) == -1)
			return -1;
		if (strlen(line) < 3 || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
			return -1;
		more = line[3] == '-';
		c->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		for (k = 0; line[k]; k++)	/* remote text is data (P7) */
			if ((unsigned char)line[k] < 0x20 || line[k] == 0x7f)
				line[k] = '?';
		if (used < sizeof(c->reply) - 1)
			used += (size_t)snprintf(c->reply + used,
			    sizeof(c->reply) - used, "%s%s", used ? "\n" : "",
			    line);
		if (used >= sizeof(c->reply))
			used = sizeof(c->reply) - 1;
	} while (more);
	return 0;
}

/* Send a command and read the reply; -1 on an I/O error. */
static int
sm_cmd(struct sm_conn *c, const char *fmt, const char *arg, const char *ext)
{
	buf_addf(&c->out, fmt, arg);
	buf_addf(&c->out, "%s\r\n", ext);
	if (sm_flush(c) == -1)
		return -1;
	return sm_reply(c);
}

/* The exit status for a failed reply, after printing it. */
static int
sm_refused(const struct sm_conn *c, const char *what, int rcpt)
{
	fprintf(stderr, "sluice: %s refused by sluiced:\n%s\n", what,
	    c->reply);
	if (c->code >= 400 && c->code < 500)
		return EX_TEMPFAIL;
	if (rcpt && c->code == 550 && strstr(c->reply, "5.1.1") != NULL)
		return EX_NOUSER;
	return c->code >= 500 && c->code < 600 ? EX_DATAERR : EX_PROTOCOL;
}

/* The message, CRLF line ends, dot-stuffed, then ".". */
static int
sm_send_data(struct sm_conn *c, const struct buf *m)
{
	size_t	 off = 0, n;
	const char *nl;

	while (off < m->len) {
		nl = memchr(m->data + off, '\n', m->len - off);
		n = nl ? (size_t)(nl - (m->data + off)) : m->len - off;
		if (n > 0 && m->data[off] == '.')
			buf_addc(&c->out, '.');
		buf_add(&c->out, m->data + off, n);
		buf_add(&c->out, "\r\n", 2);
		off += n + 1;
		if (c->out.len >= 65536 && sm_flush(c) == -1)
			return -1;
	}
	buf_add(&c->out, ".\r\n", 3);
	if (sm_flush(c) == -1)
		return -1;
	return sm_reply(c);
}

/*
 * The ESMTP transaction. Returns an exit status, or -1 if the session broke
 * before the message was accepted (the caller then uses the maildrop).
 */
static int
sm_session(const struct sm *s, struct sm_conn *c)
{
	const char	*ext = s->utf8 ? " SMTPUTF8" : "";
	size_t		 i;

	if (sm_reply(c) == -1 || c->code != 220 ||
	    sm_cmd(c, "EHLO %s", "localhost", "") == -1 || c->code != 250)
		return -1;
	if (sm_cmd(c, "MAIL FROM:<%s>", s->from, ext) == -1)
		return -1;
	if (c->code != 250)
		return sm_refused(c, "sender", 0);
	for (i = 0; i < s->nrcpts; i++) {
		if (sm_cmd(c, "RCPT TO:<%s>", s->rcpts[i], "") == -1)
			return -1;
		if (c->code != 250 && c->code != 251)
			return sm_refused(c, s->rcpts[i], 1);
	}
	if (sm_cmd(c, "%s", "DATA", "") == -1)
		return -1;
	if (c->code != 354)
		return sm_refused(c, "DATA", 0);
	if (sm_send_data(c, &s->msg) == -1)
		return -1;
	if (c->code != 250)
		return sm_refused(c, "message", 0);
	(void)sm_cmd(c, "%s", "QUIT", "");
	return EX_OK;
}

/* Submit to sluiced, or keep the message in the maildrop. */
static int
sm_submit(const struct sm *s)
{
	struct sm_conn	 c;
	int		 rc;

	memset(&c, 0, sizeof(c));
	if ((c.fd = sm_connect(s)) == -1)
		return sm_maildrop(s);
	buf_init(&c.out, 1024 * 1024);
	rc = sm_session(s, &c);
	if (rc != EX_OK && rc != -1) {
		buf_reset(&c.out);
		(void)sm_cmd(&c, "%s", "QUIT", "");
	}
	buf_free(&c.out);
	close(c.fd);
	/*
	 * XXX: a session that broke after the final "." may have been
	 * accepted; the maildrop copy can then be a duplicate (P2:
	 * at-least-once), which is better than a lost message.
	 */
	return rc == -1 ? sm_maildrop(s) : rc;
}

static void
sm_free(struct sm *s)
{
	size_t	 i;

	for (i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	buf_free(&s->msg);
}

/* Everything after the options: read, check, address, submit. */
static int
sm_run(struct sm *s, int argc, char **argv, int first)
{
	int	 rc, i, has_from;

	for (i = first; i < argc; i++)
		if ((rc = sm_add_rcpt(s, argv[i], strlen(argv[i]),
		    "command line")) != 0)
			return rc;
	if ((rc = sm_sender(s)) != 0 || (rc = sm_read(s)) != 0 ||
	    (rc = sm_headers(s, &has_from)) != 0)
		return rc;
	if (s->nrcpts == 0) {
		cli_err("no recipients");
		return EX_USAGE;
	}
	if (s->fullname != NULL && !has_from && (rc = sm_add_from(s)) != 0)
		return rc;
	return sm_submit(s);
}

int
cmd_sendmail(struct cli *cli, int argc, char **argv)
{
	struct sm	 s;
	int		 rc, first;
	char		*mailq[] = { "queue", "list", NULL };

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_sendmail, 1);
	memset(&s, 0, sizeof(s));
	s.cli = cli;
	if ((rc = sm_args(&s, argc, argv, &first)) != 0)
		return rc == EX_USAGE ? cli_usage(usage_sendmail, 0) : rc;
	if (s.bp)
		return cmd_queue(cli, 2, mailq);
	if ((rc = cli_config(cli)) != 0)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	buf_init(&s.msg, 0);
	rc = sm_run(&s, argc, argv, first);
	sm_free(&s);
	return rc;
}
