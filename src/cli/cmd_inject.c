/*
 * cmd_inject - `sluice inject`: compose a MIME message and send it.
 *
 *	inject --from ADDR --to|--cc|--bcc ADDR... [--subject TEXT]
 *	    [--body FILE|-] [--attach FILE]... [--header 'Name: value']...
 *	    [--dry-run | --server HOST:PORT [--starttls|--tls] ...]
 *
 * The message is built with GMime 3: Date, Message-ID (random, @ the host
 * name), MIME-Version 1.0, an RFC 2047 Subject, a text/plain body
 * (us-ascii or utf-8, 7bit or quoted-printable) and, with attachments,
 * multipart/mixed of the body and one base64 part per file, its type
 * sniffed from the content (inject_util.c), its name the path's last
 * component (RFC 2231 when not ASCII). Bcc addresses are envelope only.
 * Sent by `sluice sendmail` (cli_submit.c) or, with --server, by the SMTP
 * client of inject_smtp.c. Every input is checked before anything is
 * sent; GLib aborts on memory exhaustion (its policy), our buffers have
 * caps. Exit: sysexits, listed in the usage.
 */
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "addr.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "inject.h"

#define INJECT_INPUT_MAX	((size_t)64 << 20)	/* body + attachments */
#define INJECT_LIST_MAX		1000	/* of each repeatable option */
#define INJECT_SUBJECT_MAX	998
#define INJECT_PASS_MAX		1024
#define INJECT_TIMEOUT		60

static const char usage_inject[] =
    "usage: sluice [-c FILE] inject --from ADDR --to ADDR [options]\n"
    "\n"
    "Compose a MIME message and send it, through `sluice sendmail` (the\n"
    "running sluiced, or its maildrop) or with --server over SMTP.\n"
    "  --from ADDR            envelope sender and From: (required)\n"
    "  --to ADDR, --cc ADDR   recipients, repeatable (in To:/Cc:)\n"
    "  --bcc ADDR             recipient, repeatable, envelope only\n"
    "  --subject TEXT         Subject: (UTF-8; RFC 2047 if not ASCII)\n"
    "  --body FILE            UTF-8 text of the body; - is stdin\n"
    "                         (without --body the body is empty)\n"
    "  --attach FILE          attach FILE (base64, type from its content:\n"
    "                         PDF, PNG, JPEG, GIF, ZIP, gzip, UTF-8 text,\n"
    "                         else application/octet-stream), repeatable\n"
    "  --header 'Name: value' add a header field, repeatable; not From,\n"
    "                         To, Cc, Bcc, Subject, Date, Message-ID,\n"
    "                         MIME-Version or Content-*\n"
    "  --dry-run              print the message on stdout, send nothing\n"
    "SMTP:\n"
    "  --server HOST:PORT     send to this server ([v6]:PORT for IPv6)\n"
    "  --starttls | --tls     STARTTLS, or TLS from the start (port 465)\n"
    "  --ca-file FILE         trust these CA certificates, not the system's\n"
    "  --tls-name NAME        the name the certificate must carry\n"
    "                         (default HOST)\n"
    "  --insecure             do not verify the certificate (a warning)\n"
    "  --auth-user USER       AUTH PLAIN, only over TLS; the password is\n"
    "  --password-file FILE   the first line of FILE (mode 0600 or less)\n"
    "                         or $SLUICE_PASSWORD\n"
    "  --timeout SECONDS      for each step (default 60)\n"
    "exit: 0 sent (or printed), 64 usage, 65 bad address, header, text\n"
    "      or password file, 66 a file cannot be read, 67 recipient\n"
    "      unknown, 68 unknown host, 69 refused (5xx), no connection,\n"
    "      certificate not trusted, 71/74 system or output error,\n"
    "      75 try again later (4xx, timeout), 76 not an SMTP server,\n"
    "      77 authentication failed, 78 config (sendmail path)\n";

struct inject_list {
	const char	**v;
	size_t		  n;
};

struct inject_opts {
	const char		*from, *subject, *body, *server, *tls_name;
	const char		*ca_file, *auth_user, *password_file, *timeout;
	struct inject_list	 to, cc, bcc, attach, header;
	int			 dry_run, starttls, tls, insecure;
};

enum { OPT_FLAG, OPT_ONE, OPT_LIST };

static const struct {
	const char	*name;
	int		 kind;
	size_t		 off;
} inject_optab[] = {
	{ "--from", OPT_ONE, offsetof(struct inject_opts, from) },
	{ "--subject", OPT_ONE, offsetof(struct inject_opts, subject) },
	{ "--body", OPT_ONE, offsetof(struct inject_opts, body) },
	{ "--server", OPT_ONE, offsetof(struct inject_opts, server) },
	{ "--tls-name", OPT_ONE, offsetof(struct inject_opts, tls_name) },
	{ "--ca-file", OPT_ONE, offsetof(struct inject_opts, ca_file) },
	{ "--auth-user", OPT_ONE, offsetof(struct inject_opts, auth_user) },
	{ "--password-file", OPT_ONE,
	    offsetof(struct inject_opts, password_file) },
	{ "--timeout", OPT_ONE, offsetof(struct inject_opts, timeout) },
	{ "--to", OPT_LIST, offsetof(struct inject_opts, to) },
	{ "--cc", OPT_LIST, offsetof(struct inject_opts, cc) },
	{ "--bcc", OPT_LIST, offsetof(struct inject_opts, bcc) },
	{ "--attach", OPT_LIST, offsetof(struct inject_opts, attach) },
	{ "--header", OPT_LIST, offsetof(struct inject_opts, header) },
	{ "--dry-run", OPT_FLAG, offsetof(struct inject_opts, dry_run) },
	{ "--starttls", OPT_FLAG, offsetof(struct inject_opts, starttls) },
	{ "--tls", OPT_FLAG, offsetof(struct inject_opts, tls) },
	{ "--insecure", OPT_FLAG, offsetof(struct inject_opts, insecure) },
};

/* one option with its value (next argument, or after "=") */
static int
inject_opt(struct inject_opts *o, int argc, char **argv, int *i)
{
	const char	*arg = argv[*i], *eq = strchr(arg, '='), *val = NULL;
	size_t		 n = eq ? (size_t)(eq - arg) : strlen(arg), k;
	char		*base = (char *)o;
	struct inject_list *l;

	for (k = 0; k < sizeof(inject_optab) / sizeof(inject_optab[0]); k++)
		if (strlen(inject_optab[k].name) == n &&
		    strncmp(arg, inject_optab[k].name, n) == 0)
			break;
	if (k == sizeof(inject_optab) / sizeof(inject_optab[0])) {
		cli_err("inject: unknown option %s", arg);
		return -1;
	}
	if (inject_optab[k].kind == OPT_FLAG) {
		if (eq != NULL) {
			cli_err("inject: %s takes no value", inject_optab[k].name);
			return -1;
		}
		*(int *)(void *)(base + inject_optab[k].off) = 1;
		return 0;
	}
	if (eq != NULL)
		val = eq + 1;
	else if (*i + 1 < argc)
		val = argv[++*i];
	else {
		cli_err("inject: %s needs a value", arg);
		return -1;
	}
	if (inject_optab[k].kind == OPT_ONE) {
		*(const char **)(void *)(base + inject_optab[k].off) = val;
		return 0;
	}
	l = (struct inject_list *)(void *)(base + inject_optab[k].off);
	if (l->n >= INJECT_LIST_MAX) {
		cli_err("inject: more than %d %s", INJECT_LIST_MAX,
		    inject_optab[k].name);
		return -1;
	}
	l->v[l->n++] = val;
	return 0;
}

static int
inject_args(struct inject_opts *o, int argc, char **argv)
{
	struct inject_list	*lists[] = { &o->to, &o->cc, &o->bcc,
	    &o->attach, &o->header };
	size_t			 k;
	int			 i;

	for (k = 0; k < sizeof(lists) / sizeof(lists[0]); k++)
		if ((lists[k]->v = calloc((size_t)argc, sizeof(char *))) ==
		    NULL) {
			cli_err("inject: %s", strerror(errno));
			return EX_OSERR;
		}
	for (i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0') {
			cli_err("inject: unexpected argument \"%s\" (recipients "
			    "go with --to)", argv[i]);
			return EX_USAGE;
		}
		if (inject_opt(o, argc, argv, &i) == -1)
			return EX_USAGE;
	}
	return 0;
}

static void
inject_args_free(struct inject_opts *o)
{
	free(o->to.v);
	free(o->cc.v);
	free(o->bcc.v);
	free(o->attach.v);
	free(o->header.v);
}

static int
inject_addr_ok(const char *what, const char *s)
{
	struct mailaddr	 a;
	enum addr_err	 e;

	if ((e = addr_parse(s, strlen(s), 0, &a)) != ADDR_OK ||
	    addr_is_null(&a)) {
		cli_err("inject: %s \"%s\": %s", what, s, e != ADDR_OK ?
		    addr_strerror(e) : "not a mailbox");
		return 0;
	}
	return 1;
}

/* the combinations that make no sense, before any file or socket */
static int
inject_check_usage(const struct inject_opts *o, int *timeout)
{
	char	*end;
	long	 t;

	if (o->from == NULL)
		return cli_err("inject: --from is required"), EX_USAGE;
	if (o->to.n + o->cc.n + o->bcc.n == 0)
		return cli_err("inject: no recipient (--to, --cc, --bcc)"),
		    EX_USAGE;
	if (o->starttls && o->tls)
		return cli_err("inject: --starttls or --tls, not both"),
		    EX_USAGE;
	if (o->server == NULL && (o->starttls || o->tls || o->auth_user ||
	    o->ca_file || o->tls_name || o->insecure || o->password_file ||
	    o->timeout))
		return cli_err("inject: SMTP options need --server"), EX_USAGE;
	if (o->auth_user != NULL && !o->starttls && !o->tls)
		return cli_err("inject: AUTH without TLS is refused: add "
		    "--starttls or --tls"), EX_USAGE;
	if (o->password_file != NULL && o->auth_user == NULL)
		return cli_err("inject: --password-file needs --auth-user"),
		    EX_USAGE;
	if ((o->ca_file || o->tls_name || o->insecure) && !o->starttls &&
	    !o->tls)
		return cli_err("inject: certificate options need --starttls "
		    "or --tls"), EX_USAGE;
	if (o->ca_file != NULL && o->insecure)
		return cli_err("inject: --ca-file or --insecure, not both"),
		    EX_USAGE;
	*timeout = INJECT_TIMEOUT;
	if (o->timeout != NULL) {
		errno = 0;
		t = strtol(o->timeout, &end, 10);
		if (errno != 0 || end == o->timeout || *end != '\0' || t < 1 ||
		    t > 3600)
			return cli_err("inject: --timeout: 1 to 3600 seconds"),
			    EX_USAGE;
		*timeout = (int)t;
	}
	return 0;
}

/* addresses, subject and header fields, as data */
static int
inject_check_data(const struct inject_opts *o)
{
	const struct inject_list *lists[] = { &o->to, &o->cc, &o->bcc };
	const char	*why, *val;
	char		 name[INJECT_HDR_NAME_MAX + 1];
	size_t		 k, i, n;

	if (!inject_addr_ok("--from", o->from))
		return EX_DATAERR;
	for (k = 0; k < sizeof(lists) / sizeof(lists[0]); k++)
		for (i = 0; i < lists[k]->n; i++)
			if (!inject_addr_ok("recipient", lists[k]->v[i]))
				return EX_DATAERR;
	if (o->subject != NULL && ((n = strlen(o->subject)) >
	    INJECT_SUBJECT_MAX || inject_is_text((const unsigned char *)
	    o->subject, n) == 0 || strpbrk(o->subject, "\r\n\f") != NULL)) {
		cli_err("inject: --subject: not one line of UTF-8 up to %d "
		    "bytes", INJECT_SUBJECT_MAX);
		return EX_DATAERR;
	}
	for (i = 0; i < o->header.n; i++)
		if ((why = inject_header_check(o->header.v[i], name,
		    sizeof(name), &val)) != NULL) {
			cli_err("inject: --header \"%s\": %s", o->header.v[i],
			    why);
			return EX_DATAERR;
		}
	return 0;
}

/*
 * All of path (or stdin for "-") into b, within b's cap. secret: refuse a
 * file group or others may use (checked on the open descriptor).
 */
static int
inject_read(const char *path, struct buf *b, int secret)
{
	struct stat	 st;
	ssize_t		 r;
	size_t		 chunk;
	int		 fd, err = EX_NOINPUT;

	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		cli_err("inject: %s: %s", path, strerror(errno));
		return EX_NOINPUT;
	}
	if (fstat(fd, &st) == -1 || S_ISDIR(st.st_mode)) {
		cli_err("inject: %s: %s", path, S_ISDIR(st.st_mode) ?
		    "is a directory" : strerror(errno));
		goto out;
	}
	if (secret && S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG |
	    S_IRWXO))) {
		cli_err("inject: %s: group or others may read it (chmod 600)",
		    path);
		err = EX_DATAERR;
		goto out;
	}
	for (;;) {
		if ((chunk = b->max - b->len) > 65536)
			chunk = 65536;
		if (chunk == 0 || buf_reserve(b, chunk) == -1) {
			cli_err("inject: %s: over %zu bytes", path, b->max);
			err = EX_DATAERR;
			goto out;
		}
		if ((r = read(fd, b->data + b->len, chunk)) == -1) {
			if (errno == EINTR)
				continue;
			cli_err("inject: %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
	}
	err = 0;
out:
	if (fd != STDIN_FILENO)
		close(fd);
	return err;
}

/* the body: UTF-8 text, line ends made LF (GMime writes LF; SMTP CRLF) */
static int
inject_body(const char *path, struct buf *b)
{
	size_t	 i, j;
	int	 rc;

	if (path == NULL)
		return 0;
	if ((rc = inject_read(path, b, 0)) != 0)
		return rc;
	if (memchr(b->data, '\0', b->len) != NULL ||
	    !addr_utf8_valid(b->data, b->len)) {
		cli_err("inject: %s: the body is not UTF-8 text", path);
		return EX_DATAERR;
	}
	for (i = j = 0; i < b->len; i++) {
		if (b->data[i] == '\r') {
			b->data[j++] = '\n';
			if (i + 1 < b->len && b->data[i + 1] == '\n')
				i++;
		} else
			b->data[j++] = b->data[i];
	}
	b->len = j;
	return 0;
}

/* a GMime leaf part with a copy of p[0..n) as its content */
static void
inject_set_content(GMimePart *part, const char *p, size_t n)
{
	GMimeStream		*st;
	GMimeDataWrapper	*w;

	st = g_mime_stream_mem_new_with_buffer(p, n);
	w = g_mime_data_wrapper_new_with_stream(st,
	    GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(part, w);
	g_object_unref(w);
	g_object_unref(st);
}

static GMimeObject *
inject_text_part(const struct buf *b)
{
	GMimeTextPart	*t = g_mime_text_part_new_with_subtype("plain");
	GMimePart	*p = GMIME_PART(t);

	g_mime_text_part_set_charset(t, inject_is_text((const unsigned char *)
	    (b->data ? b->data : ""), b->len) == 2 ? "us-ascii" : "utf-8");
	inject_set_content(p, b->data ? b->data : "", b->len);
	g_mime_part_set_content_encoding(p,
	    g_mime_part_get_best_content_encoding(p,
	    GMIME_ENCODING_CONSTRAINT_7BIT));
	return GMIME_OBJECT(t);
}

/* name="" and filename="" in UTF-8, RFC 2231 (never RFC 2047 words) */
static void
inject_param_utf8(GMimeParamList *l, const char *name)
{
	GMimeParam	*p;

	if (l != NULL && (p = g_mime_param_list_get_parameter(l, name)) !=
	    NULL) {
		g_mime_param_set_charset(p, "utf-8");
		g_mime_param_set_encoding_method(p,
		    GMIME_PARAM_ENCODING_METHOD_RFC2231);
	}
}

/* one attachment part, or NULL and *rc after saying why */
static GMimeObject *
inject_attachment(const char *path, size_t *left, int *rc)
{
	struct inject_type	 t;
	struct buf		 b;
	const char		*name = strrchr(path, '/');
	GMimePart		*p;

	name = name ? name + 1 : path;
	if (*name == '\0' || !inject_is_text((const unsigned char *)name,
	    strlen(name)) || strpbrk(name, "\t\r\n\f") != NULL) {
		cli_err("inject: --attach %s: the file name is empty, not UTF-8 "
		    "or holds control characters", path);
		*rc = EX_DATAERR;
		return NULL;
	}
	buf_init(&b, *left);
	if ((*rc = inject_read(path, &b, 0)) != 0) {
		buf_free(&b);
		return NULL;
	}
	*left -= b.len;
	inject_sniff((const unsigned char *)(b.data ? b.data : ""), b.len, &t);
	p = g_mime_part_new_with_type(t.type, t.subtype);
	if (t.charset != NULL)
		g_mime_object_set_content_type_parameter(GMIME_OBJECT(p),
		    "charset", t.charset);
	g_mime_object_set_disposition(GMIME_OBJECT(p),
	    GMIME_DISPOSITION_ATTACHMENT);
	g_mime_part_set_filename(p, name);
	inject_param_utf8(g_mime_content_type_get_parameters(
	    g_mime_object_get_content_type(GMIME_OBJECT(p))), "name");
	inject_param_utf8(g_mime_content_disposition_get_parameters(
	    g_mime_object_get_content_disposition(GMIME_OBJECT(p))),
	    "filename");
	inject_set_content(p, b.data ? b.data : "", b.len);
	g_mime_part_set_content_encoding(p, GMIME_CONTENT_ENCODING_BASE64);
	buf_free(&b);
	return GMIME_OBJECT(p);
}

/* "<random hex>@host" (GMime adds the angle brackets) */
static int
inject_msgid(const char *host, char *dst, size_t dstlen)
{
	unsigned char	 r[16];
	size_t		 i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	for (i = 0; i < sizeof(r) && 2 * i + 2 < dstlen; i++)
		snprintf(dst + 2 * i, 3, "%02x", r[i]);
	if ((size_t)snprintf(dst + 2 * i, dstlen - 2 * i, "@%s", host) >=
	    dstlen - 2 * i)
		return -1;
	return 0;
}

/* the headers of m from the options */
static int
inject_headers(GMimeMessage *m, const struct inject_opts *o,
    const char *host)
{
	char		 id[64 + INJECT_HOST_MAX], name[INJECT_HDR_NAME_MAX + 1];
	const char	*val;
	GDateTime	*now;
	size_t		 i;

	g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM, NULL, o->from);
	for (i = 0; i < o->to.n; i++)
		g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_TO, NULL,
		    o->to.v[i]);
	for (i = 0; i < o->cc.n; i++)
		g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_CC, NULL,
		    o->cc.v[i]);
	if (o->subject != NULL)
		g_mime_message_set_subject(m, o->subject, "utf-8");
	now = g_date_time_new_now_local();
	g_mime_message_set_date(m, now);
	g_date_time_unref(now);
	if (inject_msgid(host, id, sizeof(id)) == -1) {
		cli_err("inject: no Message-ID: %s", strerror(errno));
		return EX_OSERR;
	}
	g_mime_message_set_message_id(m, id);
	g_mime_object_set_header(GMIME_OBJECT(m), "MIME-Version", "1.0", NULL);
	for (i = 0; i < o->header.n; i++)
		if (inject_header_check(o->header.v[i], name, sizeof(name),
		    &val) == NULL)
			g_mime_object_append_header(GMIME_OBJECT(m), name, val,
			    "utf-8");
	return 0;
}

/* the whole message as bytes (LF line ends) into out */
static int
inject_compose(const struct inject_opts *o, const struct buf *body,
    const char *host, struct buf *out)
{
	GMimeMessage		*m = g_mime_message_new(TRUE);
	GMimeMultipart		*mp = NULL;
	GMimeObject		*part;
	GMimeStream		*st;
	GMimeFormatOptions	*fo;
	GByteArray		*ba;
	size_t			 i, left = INJECT_INPUT_MAX - body->len;
	int			 rc;

	if ((rc = inject_headers(m, o, host)) != 0)
		goto done;
	part = inject_text_part(body);
	if (o->attach.n > 0) {
		mp = g_mime_multipart_new_with_subtype("mixed");
		g_mime_multipart_add(mp, part);
		g_object_unref(part);
		for (i = 0; i < o->attach.n; i++) {
			if ((part = inject_attachment(o->attach.v[i], &left,
			    &rc)) == NULL)
				goto done;
			g_mime_multipart_add(mp, part);
			g_object_unref(part);
		}
		part = GMIME_OBJECT(mp);
		mp = NULL;
	}
	g_mime_message_set_mime_part(m, part);
	g_object_unref(part);
	st = g_mime_stream_mem_new();
	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_UNIX);
	g_mime_format_options_set_param_encoding_method(fo,
	    GMIME_PARAM_ENCODING_METHOD_RFC2231);
	if (g_mime_object_write_to_stream(GMIME_OBJECT(m), fo, st) == -1) {
		cli_err("inject: the message could not be written");
		rc = EX_SOFTWARE;
	} else {
		ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(st));
		if (buf_add(out, ba->data, ba->len) == -1) {
			cli_err("inject: the message is too big");
			rc = EX_DATAERR;
		}
	}
	g_mime_format_options_free(fo);
	g_object_unref(st);
done:
	if (mp != NULL)
		g_object_unref(mp);
	g_object_unref(m);
	return rc;
}

/* the AUTH password: first line of --password-file, or $SLUICE_PASSWORD */
static int
inject_password(const char *path, char *pw, size_t pwlen)
{
	struct buf	 b;
	const char	*env;
	size_t		 n;
	int		 rc;

	if (path == NULL) {
		if ((env = getenv("SLUICE_PASSWORD")) == NULL || *env == '\0') {
			cli_err("inject: --auth-user needs --password-file or "
			    "$SLUICE_PASSWORD");
			return EX_USAGE;
		}
		if ((size_t)snprintf(pw, pwlen, "%s", env) >= pwlen)
			return cli_err("inject: $SLUICE_PASSWORD too long"),
			    EX_DATAERR;
		return 0;
	}
	buf_init(&b, pwlen * 4);
	if ((rc = inject_read(path, &b, 1)) == 0) {
		n = strcspn(b.data ? b.data : "", "\r\n");
		if (n == 0 || n >= pwlen || memchr(b.data, '\0', n) != NULL) {
			cli_err("inject: %s: no password on its first line, or "
			    "too long", path);
			rc = EX_DATAERR;
		} else {
			memcpy(pw, b.data, n);
			pw[n] = '\0';
		}
	}
	if (b.data != NULL)
		explicit_bzero(b.data, b.cap);
	buf_free(&b);
	return rc;
}

/* the local host name, if it is one, else fallback */
static void
inject_hostname(char *dst, size_t dstlen, const char *fallback)
{
	if (gethostname(dst, dstlen) == -1 || memchr(dst, '\0', dstlen) ==
	    NULL || !cli_hostname_valid(dst))
		snprintf(dst, dstlen, "%s", fallback);
}

static int
inject_send(struct cli *cli, const struct inject_opts *o, int timeout,
    const char *host, const struct buf *msg)
{
	struct inject_smtp	 s;
	char			 h[INJECT_HOST_MAX + 1], port[8];
	char			 pw[INJECT_PASS_MAX + 1];
	const char		**rcpts;
	size_t			 n = 0, i;
	int			 rc;

	if ((rcpts = calloc(o->to.n + o->cc.n + o->bcc.n, sizeof(*rcpts))) ==
	    NULL)
		return cli_err("inject: %s", strerror(errno)), EX_OSERR;
	for (i = 0; i < o->to.n; i++)
		rcpts[n++] = o->to.v[i];
	for (i = 0; i < o->cc.n; i++)
		rcpts[n++] = o->cc.v[i];
	for (i = 0; i < o->bcc.n; i++)
		rcpts[n++] = o->bcc.v[i];
	if (o->server == NULL) {
		rc = cli_sendmail_pipe(config_path(cli->cfgopt), o->from, rcpts,
		    n, msg->data, msg->len);
		if (rc != 0)
			cli_err("inject: `sluice sendmail` did not take the "
			    "message (exit %d)", rc);
		free(rcpts);
		return rc;
	}
	memset(&s, 0, sizeof(s));
	pw[0] = '\0';
	s.host = h;
	s.port = port;
	s.tls = o->tls ? INJECT_TLS_IMPLICIT : o->starttls ?
	    INJECT_TLS_STARTTLS : INJECT_TLS_NONE;
	s.tls_name = o->tls_name;
	s.ca_file = o->ca_file;
	s.insecure = o->insecure;
	s.user = o->auth_user;
	s.password = pw;
	s.helo = host;
	s.timeout = timeout;
	if (inject_hostport(o->server, h, sizeof(h), port, sizeof(port)) ==
	    -1) {
		cli_err("inject: --server %s: not HOST:PORT", o->server);
		rc = EX_USAGE;
	} else if (o->auth_user == NULL || (rc = inject_password(
	    o->password_file, pw, sizeof(pw))) == 0) {
		if (o->insecure)
			cli_err("inject: WARNING: --insecure: the server's "
			    "certificate is NOT verified; anyone in between "
			    "can read and change the message%s",
			    o->auth_user ? " and steal the password" : "");
		rc = inject_smtp_send(&s, o->from, rcpts, n, msg->data,
		    msg->len);
	}
	explicit_bzero(pw, sizeof(pw));
	free(rcpts);
	return rc;
}

static int
inject_run(struct cli *cli, const struct inject_opts *o, int timeout)
{
	struct buf	 body, msg;
	char		 host[INJECT_HOST_MAX + 1];
	const char	*at = strrchr(o->from, '@');
	int		 rc;

	inject_hostname(host, sizeof(host), at ? at + 1 : "localhost");
	buf_init(&body, INJECT_INPUT_MAX);
	buf_init(&msg, INJECT_INPUT_MAX * 2);
	if ((rc = inject_body(o->body, &body)) == 0 &&
	    (rc = inject_compose(o, &body, host, &msg)) == 0) {
		if (o->dry_run) {
			if (fwrite(msg.data, 1, msg.len, stdout) != msg.len ||
			    fflush(stdout) == EOF) {
				cli_err("inject: stdout: %s", strerror(errno));
				rc = EX_IOERR;
			}
		} else
			rc = inject_send(cli, o, timeout, host, &msg);
	}
	buf_free(&body);
	buf_free(&msg);
	return rc;
}

int
cmd_inject(struct cli *cli, int argc, char **argv)
{
	struct inject_opts	 o;
	int			 rc, timeout = INJECT_TIMEOUT;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_inject, 1);
	memset(&o, 0, sizeof(o));
	if ((rc = inject_args(&o, argc, argv)) != 0 ||
	    (rc = inject_check_usage(&o, &timeout)) != 0) {
		inject_args_free(&o);
		return rc == EX_USAGE ? cli_usage(usage_inject, 0) : rc;
	}
	if ((rc = inject_check_data(&o)) == 0) {
		signal(SIGPIPE, SIG_IGN);
		g_mime_init();
		rc = inject_run(cli, &o, timeout);
		g_mime_shutdown();
	}
	inject_args_free(&o);
	return rc;
}
