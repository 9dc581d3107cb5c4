/*
 * smtp-load - SMTP load generator that measures accept latency.
 *
 * Opens SESSIONS parallel SMTP sessions to HOST:PORT and sends MESSAGES
 * messages of SIZE bytes in total, PERCONN messages per connection (a new
 * connection replaces a finished one until all are sent).  For every message
 * it records the time from writing the last byte of the final "." to reading
 * the 250 reply: the time the server takes to make the message durable and
 * say so.  Prints one line: msgs/s (250 replies per second of wall time) and
 * latency percentiles in milliseconds.
 *
 * Plain poll(2) and nonblocking sockets; no PIPELINING, one command at a time,
 * like smtp-source.  Loopback benchmarks only: no TLS, no AUTH.
 *
 * usage: smtp-load [-s sessions] [-m messages] [-l size] [-r per-connection]
 *            [-b banner-wait] [-f from] [-t to] [-H helo] [-T timeout] host:port
 * Exit status 0 when every message got its 250.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXSESSIONS	1024
#define RBUFSZ		4096

enum state {
	S_IDLE,		/* no connection */
	S_CONNECT,	/* connect(2) in progress */
	S_BANNER,	/* waiting for 220 */
	S_EHLO,
	S_MAIL,
	S_RCPT,
	S_DATA,		/* waiting for 354 */
	S_BODY,		/* writing the message, then waiting for 250 */
	S_QUIT,
};

struct session {
	int		 fd;
	enum state	 state;
	const char	*wp;		/* pending output */
	size_t		 wlen;
	char		 cmd[512];
	char		 rbuf[RBUFSZ];
	size_t		 rlen;
	int		 sent_here;	/* messages sent on this connection */
	int		 msg_started;	/* a message is in flight */
	struct timespec	 dot;		/* when the final "." was written */
	struct timespec	 opened;	/* when connect(2) was called */
};

struct options {
	int		 sessions;
	int		 messages;
	size_t		 size;
	int		 perconn;
	int		 timeout;
	int		 banner_wait;
	const char	*from;
	const char	*to;
	const char	*helo;
	const char	*target;
};

static struct options	 opt = {
	.sessions = 10, .messages = 1000, .size = 4096, .perconn = 1,
	.timeout = 600, .banner_wait = 5, .from = "bench@client.test", .to = "u@bench.test",
	.helo = "client.test",
};
static struct addrinfo	*srv;
static char		*message;	/* body incl. "\r\n.\r\n" */
static size_t		 message_len;
static double		*lat;		/* ms, one per accepted message */
static int		 started, accepted, failed, retried;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list	ap;

	fputs("smtp-load: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: smtp-load [-s sessions] [-m messages] "
	    "[-l size] [-r per-connection]\n"
	    "                 [-b banner-wait] [-f from] [-t to] [-H helo] "
	    "[-T timeout] host:port\n");
	exit(2);
}

static long
parse_num(const char *s, long min, long max, const char *what)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		die("%s: must be a number from %ld to %ld: %s", what, min, max,
		    s);
	return v;
}

static double
ms_since(const struct timespec *t0, const struct timespec *t1)
{
	return (double)(t1->tv_sec - t0->tv_sec) * 1e3 +
	    (double)(t1->tv_nsec - t0->tv_nsec) / 1e6;
}

/* Resolve "host:port" (the last colon separates the port). */
static void
resolve(const char *target)
{
	struct addrinfo	 hints;
	char		 host[256];
	const char	*colon;
	size_t		 hlen;
	int		 rc;

	if ((colon = strrchr(target, ':')) == NULL || colon[1] == '\0')
		die("target must be host:port: %s", target);
	hlen = (size_t)(colon - target);
	if (hlen == 0 || hlen >= sizeof(host))
		die("bad host in %s", target);
	memcpy(host, target, hlen);
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &srv)) != 0)
		die("%s: %s", target, gai_strerror(rc));
}

/*
 * Build one message of exactly opt.size bytes (at least the headers):
 * CRLF lines of printable text, none starting with ".", then the end of data.
 */
static void
build_message(void)
{
	static const char	 line[] = "abcdefghijklmnopqrstuvwxyz0123456789"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef";
	size_t			 len, n;
	int			 hl;

	if ((message = malloc(opt.size + 1024)) == NULL)
		die("out of memory");
	hl = snprintf(message, 1024, "From: <%s>\r\nTo: <%s>\r\n"
	    "Subject: smtp-load benchmark\r\n"
	    "Message-ID: <smtp-load@client.test>\r\n\r\n", opt.from, opt.to);
	if (hl < 0 || hl >= 1024)
		die("addresses too long");
	len = (size_t)hl;
	while (len + 2 < opt.size) {
		n = opt.size - len - 2;
		if (n > sizeof(line) - 1)
			n = sizeof(line) - 1;
		memcpy(message + len, line, n);
		len += n;
		memcpy(message + len, "\r\n", 2);
		len += 2;
	}
	memcpy(message + len, ".\r\n", 3);
	message_len = len + 3;
}

static void
queue_cmd(struct session *s, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(s->cmd, sizeof(s->cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->cmd))
		die("command too long");
	s->wp = s->cmd;
	s->wlen = (size_t)n;
}

static void	session_connect(struct session *);

static void
session_close(struct session *s)
{
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	s->state = S_IDLE;
	s->wlen = 0;
	s->rlen = 0;
	if (s->msg_started) {
		failed++;
		s->msg_started = 0;
	}
}

/*
 * Open a connection if there is still a message to send, and reserve that
 * message for it: never more connections than messages left (a connection
 * in a full listen queue may wait for its banner for a long time).
 */
static void
session_open(struct session *s)
{
	if (started >= opt.messages)
		return;
	started++;
	s->msg_started = 1;
	session_connect(s);
}

/* Start connect(2); the session's reserved message is kept. */
static void
session_connect(struct session *s)
{
	int	one = 1;

	clock_gettime(CLOCK_MONOTONIC, &s->opened);
	s->fd = socket(srv->ai_family, srv->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, srv->ai_protocol);
	if (s->fd == -1)
		die("socket: %s", strerror(errno));
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->sent_here = 0;
	s->rlen = 0;
	s->wlen = 0;
	if (connect(s->fd, srv->ai_addr, srv->ai_addrlen) == 0)
		s->state = S_BANNER;
	else if (errno == EINPROGRESS)
		s->state = S_CONNECT;
	else
		die("connect %s: %s", opt.target, strerror(errno));
}

/* Start the next message on this connection, or say goodbye. */
static void
next_message(struct session *s)
{
	if (s->sent_here == 0 ||
	    (started < opt.messages && s->sent_here < opt.perconn)) {
		if (s->sent_here > 0) {
			started++;
			s->msg_started = 1;
		}
		s->sent_here++;
		queue_cmd(s, "MAIL FROM:<%s>\r\n", opt.from);
		s->state = S_MAIL;
	} else {
		queue_cmd(s, "QUIT\r\n");
		s->state = S_QUIT;
	}
}

/* One complete reply with code `code` arrived. */
static void
on_reply(struct session *s, int code)
{
	struct timespec	now;

	switch (s->state) {
	case S_BANNER:
		if (code != 220)
			goto bad;
		queue_cmd(s, "EHLO %s\r\n", opt.helo);
		s->state = S_EHLO;
		break;
	case S_EHLO:
		if (code != 250)
			goto bad;
		next_message(s);
		break;
	case S_MAIL:
		if (code != 250)
			goto bad;
		queue_cmd(s, "RCPT TO:<%s>\r\n", opt.to);
		s->state = S_RCPT;
		break;
	case S_RCPT:
		if (code != 250 && code != 251)
			goto bad;
		queue_cmd(s, "DATA\r\n");
		s->state = S_DATA;
		break;
	case S_DATA:
		if (code != 354)
			goto bad;
		s->wp = message;
		s->wlen = message_len;
		s->state = S_BODY;
		break;
	case S_BODY:
		if (s->wlen != 0 || code != 250)
			goto bad;
		clock_gettime(CLOCK_MONOTONIC, &now);
		lat[accepted++] = ms_since(&s->dot, &now);
		s->msg_started = 0;
		next_message(s);
		break;
	case S_QUIT:
		session_close(s);
		session_open(s);
		break;
	default:
		goto bad;
	}
	return;
bad:
	fprintf(stderr, "smtp-load: unexpected reply %d in state %d\n", code,
	    (int)s->state);
	session_close(s);
	session_open(s);
}

/* Take complete replies out of the read buffer; multi-line ones whole. */
static void
parse_replies(struct session *s)
{
	char	*nl, *line;
	size_t	 used;
	int	 code, more;

	while (s->fd != -1 && (nl = memchr(s->rbuf, '\n', s->rlen)) != NULL) {
		line = s->rbuf;
		used = (size_t)(nl - line) + 1;
		code = -1;
		if (used >= 4 && line[0] >= '2' && line[0] <= '5' &&
		    line[1] >= '0' && line[1] <= '9' &&
		    line[2] >= '0' && line[2] <= '9')
			code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
			    (line[2] - '0');
		more = code != -1 && line[3] == '-';
		memmove(s->rbuf, s->rbuf + used, s->rlen - used);
		s->rlen -= used;
		if (more)
			continue;	/* continuation line */
		on_reply(s, code);
	}
	if (s->fd != -1 && s->rlen == sizeof(s->rbuf)) {
		fprintf(stderr, "smtp-load: reply line too long\n");
		session_close(s);
		session_open(s);
	}
}

static void
on_readable(struct session *s)
{
	ssize_t	n;

	n = read(s->fd, s->rbuf + s->rlen, sizeof(s->rbuf) - s->rlen);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (s->state != S_QUIT)
			fprintf(stderr, "smtp-load: connection closed in "
			    "state %d: %s\n", (int)s->state,
			    n == 0 ? "EOF" : strerror(errno));
		session_close(s);
		session_open(s);
		return;
	}
	s->rlen += (size_t)n;
	parse_replies(s);
}

static void
on_writable(struct session *s)
{
	ssize_t	n;
	int	err;
	socklen_t elen = sizeof(err);

	if (s->state == S_CONNECT) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			err = errno;
		if (err != 0)
			die("connect %s: %s", opt.target, strerror(err));
		s->state = S_BANNER;
		return;
	}
	n = send(s->fd, s->wp, s->wlen, MSG_NOSIGNAL);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		fprintf(stderr, "smtp-load: write: %s\n", strerror(errno));
		session_close(s);
		session_open(s);
		return;
	}
	s->wp += n;
	s->wlen -= (size_t)n;
	if (s->wlen == 0 && s->state == S_BODY)
		clock_gettime(CLOCK_MONOTONIC, &s->dot);
}

/*
 * A connection without a banner after banner_wait seconds is given up and
 * made again.  With a full listen queue (OpenSMTPD's backlog is 5) the kernel
 * may complete the handshake on our side only (SYN cookies): the server never
 * sees the connection and, speaking first, never sends a banner.
 */
static void
banner_check(struct session *s, const struct timespec *now)
{
	if (s->fd == -1 || (s->state != S_CONNECT && s->state != S_BANNER) ||
	    ms_since(&s->opened, now) < opt.banner_wait * 1e3)
		return;
	close(s->fd);
	s->fd = -1;
	retried++;
	session_connect(s);
}

static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted latencies. */
static double
percentile(double p)
{
	size_t	i;

	if (accepted == 0)
		return 0;
	i = (size_t)((p / 100.0) * accepted + 0.999999);
	if (i < 1)
		i = 1;
	if (i > (size_t)accepted)
		i = (size_t)accepted;
	return lat[i - 1];
}

static void
run(void)
{
	struct session	*ss;
	struct pollfd	*pfd;
	struct timespec	 t0, t1;
	int		 i, n, live;

	if ((ss = calloc((size_t)opt.sessions, sizeof(*ss))) == NULL ||
	    (pfd = calloc((size_t)opt.sessions, sizeof(*pfd))) == NULL)
		die("out of memory");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < opt.sessions; i++) {
		ss[i].fd = -1;
		session_open(&ss[i]);
	}
	for (;;) {
		live = 0;
		for (i = 0; i < opt.sessions; i++) {
			pfd[i].fd = ss[i].fd;
			pfd[i].events = 0;
			pfd[i].revents = 0;
			if (ss[i].fd == -1)
				continue;
			live++;
			if (ss[i].state == S_CONNECT || ss[i].wlen > 0)
				pfd[i].events |= POLLOUT;
			else
				pfd[i].events |= POLLIN;
		}
		if (live == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		for (i = 0; i < opt.sessions; i++)
			banner_check(&ss[i], &t1);
		if (ms_since(&t0, &t1) > opt.timeout * 1e3) {
			fprintf(stderr, "smtp-load: timeout after %d s; "
			    "sessions still open, by state:", opt.timeout);
			for (i = 0; i < opt.sessions; i++)
				if (ss[i].fd != -1)
					fprintf(stderr, " %d", (int)ss[i].state);
			fputc('\n', stderr);
			break;
		}
		if ((n = poll(pfd, (nfds_t)opt.sessions, 1000)) == -1) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		for (i = 0; i < opt.sessions && n > 0; i++) {
			if (pfd[i].revents == 0 || ss[i].fd != pfd[i].fd)
				continue;
			n--;
			if (pfd[i].revents & POLLOUT)
				on_writable(&ss[i]);
			else if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				on_readable(&ss[i]);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	qsort(lat, (size_t)accepted, sizeof(*lat), cmp_double);
	printf("smtp-load target=%s sessions=%d messages=%d size=%zu "
	    "per-conn=%d accepted=%d failed=%d reconnects=%d seconds=%.2f "
	    "msgs/s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
	    opt.target, opt.sessions, opt.messages, opt.size, opt.perconn,
	    accepted, failed, retried, ms_since(&t0, &t1) / 1e3,
	    accepted / (ms_since(&t0, &t1) / 1e3), percentile(50),
	    percentile(90), percentile(99), percentile(100));
	free(pfd);
	free(ss);
}

int
main(int argc, char *argv[])
{
	int	ch;

	while ((ch = getopt(argc, argv, "b:f:H:l:m:r:s:t:T:")) != -1) {
		switch (ch) {
		case 'b':
			opt.banner_wait = (int)parse_num(optarg, 1, 3600,
			    "-b banner-wait");
			break;
		case 'f':
			opt.from = optarg;
			break;
		case 'H':
			opt.helo = optarg;
			break;
		case 'l':
			opt.size = (size_t)parse_num(optarg, 256, 64L << 20,
			    "-l size");
			break;
		case 'm':
			opt.messages = (int)parse_num(optarg, 1, 10000000,
			    "-m messages");
			break;
		case 'r':
			opt.perconn = (int)parse_num(optarg, 1, INT_MAX,
			    "-r per-connection");
			break;
		case 's':
			opt.sessions = (int)parse_num(optarg, 1, MAXSESSIONS,
			    "-s sessions");
			break;
		case 't':
			opt.to = optarg;
			break;
		case 'T':
			opt.timeout = (int)parse_num(optarg, 1, 86400,
			    "-T timeout");
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1)
		usage();
	opt.target = argv[optind];
	signal(SIGPIPE, SIG_IGN);
	resolve(opt.target);
	build_message();
	if ((lat = calloc((size_t)opt.messages, sizeof(*lat))) == NULL)
		die("out of memory");
	run();
	freeaddrinfo(srv);
	free(message);
	free(lat);
	return accepted == opt.messages ? 0 : 1;
}
