/*
 * inject_smtp - the SMTP client of `sluice inject`: one blocking session
 * on a TCP socket, OpenSSL straight on the descriptor for STARTTLS or
 * implicit TLS. One message, so no event loop: every read and write has
 * the --timeout (SO_RCVTIMEO/SO_SNDTIMEO), connect() too (poll).
 *
 *	greeting → EHLO → [STARTTLS → EHLO] → [AUTH PLAIN] → MAIL → RCPT…
 *	→ DATA → payload → QUIT
 *
 * AUTH is never sent without TLS. Certificates are verified against the
 * system store or --ca-file, with the host name (or --tls-name) checked,
 * unless --insecure. All recipients are accepted or nothing is sent. A
 * refusal is printed with the server's reply (control bytes replaced) and
 * mapped to sysexits: 4xx 75; 5xx 69, at RCPT 550/551/553 67, at AUTH 77;
 * no connection 69; unknown host 68; broken replies 76.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "inject.h"

#define ISM_LINE_MAX	2048		/* RFC 5321 says 512 */
#define ISM_LINES_MAX	100		/* lines of one reply */
#define ISM_CMD_MAX	2300		/* AUTH PLAIN with the longest secret */
#define ISM_USER_MAX	512
#define ISM_PASS_MAX	1024
#define ISM_DATA_MAX	((size_t)512 << 20)

#define ISM_EXT_STARTTLS	0x1
#define ISM_EXT_AUTH_PLAIN	0x2

struct ism {
	const struct inject_smtp *o;
	int		 fd;
	int		 broken;	/* I/O failed: no QUIT */
	int		 quiet;		/* at QUIT: failures are not news */
	SSL_CTX		*ctx;
	SSL		*ssl;
	char		 in[4096];
	size_t		 inlen, inoff;
	int		 code;		/* of the last reply */
	char		 text[INJECT_REPLY_MAX];
	size_t		 textlen;
	unsigned	 ext;		/* ISM_EXT_*, from the last EHLO */
	int		 ehlo;		/* parsing an EHLO reply */
};

static void
ism_ssl_errors(void)
{
	unsigned long	 e;
	char		 buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		cli_err("inject: %s", buf);
	}
}

/* an I/O failure: timeouts and lost connections are temporary */
static int
ism_io_fail(struct ism *s, const char *what, int err)
{
	s->broken = 1;
	if (s->quiet) {
		ERR_clear_error();
		return EX_TEMPFAIL;
	}
	if (err == EAGAIN || err == EWOULDBLOCK || err == ETIMEDOUT)
		cli_err("inject: %s: timed out after %d s", what, s->o->timeout);
	else if (err == 0)
		cli_err("inject: %s: the server closed the connection", what);
	else
		cli_err("inject: %s: %s", what, strerror(err));
	ism_ssl_errors();
	return EX_TEMPFAIL;
}

static int
ism_write(struct ism *s, const char *p, size_t n, const char *what)
{
	ssize_t	 r;
	int	 w;

	while (n > 0) {
		if (s->ssl != NULL) {
			w = SSL_write(s->ssl, p, n > (1 << 30) ? 1 << 30 :
			    (int)n);
			r = w;
			if (w <= 0)
				return ism_io_fail(s, what, errno);
		} else if ((r = send(s->fd, p, n, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			return ism_io_fail(s, what, errno);
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
ism_fill(struct ism *s)
{
	ssize_t	 r;

	errno = 0;
	if (s->ssl != NULL) {
		r = SSL_read(s->ssl, s->in, sizeof(s->in));
		if (r <= 0 && SSL_get_error(s->ssl, (int)r) ==
		    SSL_ERROR_ZERO_RETURN)
			errno = 0;
	} else
		do
			r = recv(s->fd, s->in, sizeof(s->in), 0);
		while (r == -1 && errno == EINTR);
	if (r <= 0)
		return ism_io_fail(s, "reading the reply", r == 0 ? 0 : errno);
	s->inlen = (size_t)r;
	s->inoff = 0;
	return 0;
}

/* one line without its line end into line[ISM_LINE_MAX + 1] */
static int
ism_getline(struct ism *s, char *line, size_t *len)
{
	int	 rc;
	char	 c;

	*len = 0;
	for (;;) {
		if (s->inoff == s->inlen && (rc = ism_fill(s)) != 0)
			return rc;
		c = s->in[s->inoff++];
		if (c == '\n')
			break;
		if (*len >= ISM_LINE_MAX) {
			s->broken = 1;
			if (!s->quiet)
				cli_err("inject: a reply line over %d bytes",
				    ISM_LINE_MAX);
			return EX_PROTOCOL;
		}
		line[(*len)++] = c;
	}
	if (*len > 0 && line[*len - 1] == '\r')
		(*len)--;
	line[*len] = '\0';
	return 0;
}

/* keep a printable copy of the reply, lines joined by newlines */
static void
ism_text_add(struct ism *s, const char *line, size_t len)
{
	size_t	 i;

	if (s->textlen > 0 && s->textlen + 1 < sizeof(s->text))
		s->text[s->textlen++] = '\n';
	for (i = 0; i < len && s->textlen + 1 < sizeof(s->text); i++)
		s->text[s->textlen++] = (unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] >= 0x7f ? '?' : line[i];
	s->text[s->textlen] = '\0';
}

/* an EHLO keyword line "AUTH PLAIN LOGIN", "STARTTLS", … */
static void
ism_ext_line(struct ism *s, const char *p)
{
	char	 kw[64];
	size_t	 n = strcspn(p, " ");

	if (n >= sizeof(kw))
		return;
	memcpy(kw, p, n);
	kw[n] = '\0';
	if (strcasecmp(kw, "STARTTLS") == 0)
		s->ext |= ISM_EXT_STARTTLS;
	else if (strcasecmp(kw, "AUTH") == 0)
		for (p += n; *p != '\0'; p += n) {
			p += strspn(p, " ");
			n = strcspn(p, " ");
			if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
				s->ext |= ISM_EXT_AUTH_PLAIN;
		}
}

static int
ism_reply(struct ism *s)
{
	char	 line[ISM_LINE_MAX + 1];
	size_t	 len;
	int	 n, code, more, first = 0, rc;

	s->textlen = 0;
	s->text[0] = '\0';
	for (n = 0;; n++) {
		if ((rc = ism_getline(s, line, &len)) != 0)
			return rc;
		if (inject_reply_line(line, len, &code, &more) == -1 ||
		    (n > 0 && code != first) || n >= ISM_LINES_MAX) {
			s->broken = 1;
			ism_text_add(s, line, len);
			if (!s->quiet)
				cli_err("inject: not an SMTP reply: %s",
				    s->text);
			return EX_PROTOCOL;
		}
		first = code;
		ism_text_add(s, line, len);
		if (s->ehlo && n > 0 && len > 4)
			ism_ext_line(s, line + 4);
		if (!more)
			break;
	}
	s->code = code;
	return 0;
}

/* the status for a refusal at stage, after printing the reply */
static int
ism_refused(struct ism *s, const char *stage)
{
	cli_err("inject: the server refused %s:\n%s", stage, s->text);
	if (s->code < 400 || s->code >= 600)
		return EX_PROTOCOL;
	if (s->code < 500)
		return EX_TEMPFAIL;
	if (strcmp(stage, "AUTH") == 0)
		return EX_NOPERM;
	if (strncmp(stage, "RCPT", 4) == 0 && (s->code == 550 ||
	    s->code == 551 || s->code == 553))
		return EX_NOUSER;
	return EX_UNAVAILABLE;
}

/* read a reply; 0 if its class is want (2, 3), else the exit status */
static int
ism_expect(struct ism *s, const char *stage, int want)
{
	int	 rc;

	if ((rc = ism_reply(s)) != 0)
		return rc;
	return s->code / 100 == want ? 0 : ism_refused(s, stage);
}

/* send one command line (CRLF added; wiped after: it may be AUTH) */
static int
ism_cmd(struct ism *s, const char *stage, int want, const char *fmt, ...)
{
	char	 line[ISM_CMD_MAX];
	va_list	 ap;
	int	 n, rc;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n + 2 >= sizeof(line)) {
		cli_err("inject: the %s command is too long", stage);
		return EX_DATAERR;
	}
	memcpy(line + n, "\r\n", 3);
	rc = ism_write(s, line, (size_t)n + 2, stage);
	explicit_bzero(line, sizeof(line));
	return rc != 0 ? rc : ism_expect(s, stage, want);
}

static int
ism_ehlo(struct ism *s)
{
	int	 rc;

	s->ext = 0;
	s->ehlo = 1;
	rc = ism_cmd(s, "EHLO", 2, "EHLO %s", s->o->helo);
	s->ehlo = 0;
	return rc;
}

/* one non-blocking connect() bounded by the timeout; the fd or -1 */
static int
ism_try(const struct addrinfo *ai, int timeout, int *err)
{
	struct pollfd	 pfd;
	socklen_t	 sl = sizeof(*err);
	int		 fd, r, fl;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, ai->ai_protocol);
	if (fd == -1) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		if (errno != EINPROGRESS)
			goto fail;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		while ((r = poll(&pfd, 1, timeout * 1000)) == -1 &&
		    errno == EINTR)
			;
		if (r == 0)
			errno = ETIMEDOUT;
		if (r <= 0)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &sl) == -1)
			goto fail;
		if (*err != 0) {
			errno = *err;
			goto fail;
		}
	}
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		goto fail;
	return fd;
fail:
	*err = errno;
	close(fd);
	return -1;
}

static int
ism_connect(struct ism *s)
{
	struct addrinfo	 hints, *res, *ai;
	struct timeval	 tv;
	int		 rc, err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(s->o->host, s->o->port, &hints, &res)) != 0) {
		cli_err("inject: %s: %s", s->o->host, gai_strerror(rc));
		return rc == EAI_AGAIN ? EX_TEMPFAIL : EX_NOHOST;
	}
	for (ai = res; ai != NULL && s->fd == -1; ai = ai->ai_next)
		s->fd = ism_try(ai, s->o->timeout, &err);
	freeaddrinfo(res);
	if (s->fd == -1) {
		cli_err("inject: cannot connect to %s port %s: %s", s->o->host,
		    s->o->port, strerror(err));
		return EX_UNAVAILABLE;
	}
	tv.tv_sec = s->o->timeout;
	tv.tv_usec = 0;
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ==
	    -1 || setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
	    sizeof(tv)) == -1) {
		cli_err("inject: setsockopt: %s", strerror(errno));
		return EX_OSERR;
	}
	return 0;
}

/* the TLS context, before connecting: a bad --ca-file costs no session */
static int
ism_tls_ctx(struct ism *s)
{
	const struct inject_smtp *o = s->o;

	if ((s->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION) != 1) {
		ism_ssl_errors();
		return EX_SOFTWARE;
	}
	if (o->insecure)
		return 0;
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	if (o->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(s->ctx, o->ca_file, NULL) !=
		    1) {
			cli_err("inject: %s: no CA certificates loaded",
			    o->ca_file);
			ism_ssl_errors();
			return EX_NOINPUT;
		}
	} else if (SSL_CTX_set_default_verify_paths(s->ctx) != 1) {
		cli_err("inject: the system's CA certificates are missing");
		ism_ssl_errors();
		return EX_CONFIG;
	}
	return 0;
}

static int
ism_tls(struct ism *s)
{
	const char	*name = s->o->tls_name ? s->o->tls_name : s->o->host;
	unsigned char	 ip[16];
	long		 v;
	int		 isip;

	isip = inet_pton(AF_INET, name, ip) == 1 ||
	    inet_pton(AF_INET6, name, ip) == 1;
	if ((s->ssl = SSL_new(s->ctx)) == NULL ||
	    SSL_set_fd(s->ssl, s->fd) != 1 ||
	    (!isip && SSL_set_tlsext_host_name(s->ssl, name) != 1) ||
	    (!s->o->insecure && (isip ? X509_VERIFY_PARAM_set1_ip_asc(
	    SSL_get0_param(s->ssl), name) : SSL_set1_host(s->ssl, name)) !=
	    1)) {
		ism_ssl_errors();
		return EX_SOFTWARE;
	}
	ERR_clear_error();
	if (SSL_connect(s->ssl) == 1)
		return 0;
	s->broken = 1;
	if ((v = SSL_get_verify_result(s->ssl)) != X509_V_OK) {
		cli_err("inject: the certificate of %s is not trusted: %s "
		    "(see --ca-file, --tls-name)", name,
		    X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else {
		cli_err("inject: TLS handshake with %s failed", s->o->host);
		ism_ssl_errors();
	}
	return EX_UNAVAILABLE;
}

static int
ism_auth(struct ism *s)
{
	unsigned char	 raw[ISM_USER_MAX + ISM_PASS_MAX + 2];
	unsigned char	 b64[((sizeof(raw) + 2) / 3) * 4 + 1];
	size_t		 ul = strlen(s->o->user), pl = strlen(s->o->password);
	int		 rc;

	if (s->ssl == NULL) {	/* cmd_inject refuses it first */
		cli_err("inject: no AUTH without TLS");
		return EX_USAGE;
	}
	if (!(s->ext & ISM_EXT_AUTH_PLAIN)) {
		cli_err("inject: the server does not offer AUTH PLAIN");
		return EX_UNAVAILABLE;
	}
	if (ul == 0 || ul > ISM_USER_MAX || pl == 0 || pl > ISM_PASS_MAX) {
		cli_err("inject: the user name or password is empty or too "
		    "long");
		return EX_DATAERR;
	}
	raw[0] = '\0';
	memcpy(raw + 1, s->o->user, ul);
	raw[ul + 1] = '\0';
	memcpy(raw + ul + 2, s->o->password, pl);
	EVP_EncodeBlock(b64, raw, (int)(ul + pl + 2));
	rc = ism_cmd(s, "AUTH", 2, "AUTH PLAIN %s", (char *)b64);
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(b64, sizeof(b64));
	return rc;
}

static int
ism_envelope(struct ism *s, const char *from, const char *const *rcpts,
    size_t n)
{
	size_t	 i;
	int	 rc;

	if ((rc = ism_cmd(s, "MAIL FROM", 2, "MAIL FROM:<%s>", from)) != 0)
		return rc;
	for (i = 0; i < n; i++)
		if ((rc = ism_cmd(s, "RCPT TO", 2, "RCPT TO:<%s>", rcpts[i])) !=
		    0) {
			cli_err("inject: recipient %s refused: nothing sent",
			    rcpts[i]);
			return rc;
		}
	return 0;
}

/* everything up to QUIT, once connected */
static int
ism_session(struct ism *s, const char *from, const char *const *rcpts,
    size_t nrcpts, const struct buf *data)
{
	int	 rc;

	if (s->o->tls == INJECT_TLS_IMPLICIT && (rc = ism_tls(s)) != 0)
		return rc;
	if ((rc = ism_expect(s, "the connection", 2)) != 0 ||
	    (rc = ism_ehlo(s)) != 0)
		return rc;
	if (s->o->tls == INJECT_TLS_STARTTLS) {
		if (!(s->ext & ISM_EXT_STARTTLS)) {
			cli_err("inject: the server does not offer STARTTLS");
			return EX_UNAVAILABLE;
		}
		if ((rc = ism_cmd(s, "STARTTLS", 2, "STARTTLS")) != 0)
			return rc;
		if (s->inoff < s->inlen) {	/* CVE-2011-0411 */
			s->broken = 1;
			cli_err("inject: plain text after the STARTTLS reply");
			return EX_PROTOCOL;
		}
		if ((rc = ism_tls(s)) != 0 || (rc = ism_ehlo(s)) != 0)
			return rc;
	}
	if (s->o->user != NULL && (rc = ism_auth(s)) != 0)
		return rc;
	if ((rc = ism_envelope(s, from, rcpts, nrcpts)) != 0 ||
	    (rc = ism_cmd(s, "DATA", 3, "DATA")) != 0 ||
	    (rc = ism_write(s, data->data, data->len, "DATA")) != 0)
		return rc;
	return ism_expect(s, "the message", 2);
}

int
inject_smtp_send(const struct inject_smtp *o, const char *from,
    const char *const *rcpts, size_t nrcpts, const char *msg, size_t len)
{
	struct ism	 s;
	struct buf	 data;
	int		 rc;

	memset(&s, 0, sizeof(s));
	s.o = o;
	s.fd = -1;
	buf_init(&data, ISM_DATA_MAX);
	if (inject_data_stuff(msg, len, &data) == -1) {
		cli_err("inject: the message is too big");
		rc = EX_DATAERR;
	} else if ((o->tls == INJECT_TLS_NONE || (rc = ism_tls_ctx(&s)) ==
	    0) && (rc = ism_connect(&s)) == 0)
		rc = ism_session(&s, from, rcpts, nrcpts, &data);
	if (s.fd != -1 && !s.broken) {
		/* polite, and its reply does not matter */
		s.quiet = 1;
		if (ism_write(&s, "QUIT\r\n", 6, "QUIT") == 0)
			(void)ism_reply(&s);
	}
	if (s.ssl != NULL)
		SSL_free(s.ssl);
	if (s.ctx != NULL)
		SSL_CTX_free(s.ctx);
	if (s.fd != -1)
		close(s.fd);
	buf_free(&data);
	return rc;
}
