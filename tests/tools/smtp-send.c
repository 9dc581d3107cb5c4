/*
 * smtp-send - send a message with sluice's SMTP client (src/deliver/
 * smtp_client.c), for the integration tests.
 *
 * usage: smtp-send --connect IP:PORT [--tls none|opportunistic|required]
 *            [--cafile F] [--name HOST] [--auth USER:PASS] [--helo NAME]
 *            [--8bitmime] [--smtputf8] [--size N] [--lmtp] [-v]
 *            --from A --to B [--to C]... [--headers FILE] --data FILE
 *            [--repeat N] [--timeout S]
 *
 * The message (--data, LF line ends) is sent N times over one connection,
 * after the header lines of --headers. One line per recipient per message:
 *   msg=1 to=<b@example.test> status=delivered|temp|perm relay=... tls=0|1
 *   reply=250 2.0.0 Ok
 * With --tls opportunistic a failed handshake is retried once without TLS
 * (as the queue will), noted by a "tls-failed ..." line.
 * Exit: 0 all delivered, 75 any temporary, else 65 any permanent, 64 usage.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "log.h"
#include "smtp_client.h"

#define MAX_RCPTS	1000

struct run {
	struct event_base		*base;
	struct smtp_client_params	 p;
	struct smtp_msg			 msg;
	unsigned			 repeat, handed, done;
	int				 any_temp, any_perm, retried;
	struct buf			 out;	/* lines of this attempt */
};

static const char *const status_names[] = {
	[SMTP_ST_DELIVERED] = "delivered",
	[SMTP_ST_TEMP] = "temp",
	[SMTP_ST_PERM] = "perm",
};

static void
usage(void)
{
	fprintf(stderr, "usage: smtp-send --connect IP:PORT [--tls none|"
	    "opportunistic|required] [--cafile F] [--name HOST]\n"
	    "    [--auth USER:PASS] [--helo NAME] [--8bitmime] [--smtputf8] "
	    "[--size N] [--lmtp] [-v]\n"
	    "    --from A --to B [--to C]... [--headers FILE] --data FILE "
	    "[--repeat N] [--timeout S]\n");
	exit(64);
}

static unsigned long long
number(const char *s, unsigned long long max)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end != '\0' || v > max || *s == '-')
		usage();
	return v;
}

/* "127.0.0.1:25" or "[::1]:25" */
static socklen_t
parse_addr(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*in = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*in6 = (struct sockaddr_in6 *)ss;
	char			 host[64];
	const char		*colon = strrchr(s, ':');
	size_t			 n = 0;

	if (colon == NULL || (n = (size_t)(colon - s)) >= sizeof(host))
		usage();
	memcpy(host, s, n);
	host[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)number(colon + 1, 65535));
		return sizeof(*in);
	}
	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)number(colon + 1,
			    65535));
			return sizeof(*in6);
		}
	}
	usage();
	return 0;
}

static char *
slurp(const char *path, size_t *lenp)
{
	struct buf	 b;
	char		 chunk[8192];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		log_fatal("%s", path);
	buf_init(&b, 64 << 20);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	if (n == -1 || b.err != BUF_OK)
		log_fatalx("%s: cannot read", path);
	close(fd);
	*lenp = b.len;
	return b.data ? b.data : strdup("");
}

static void
on_msg(struct smtp_client *c, struct smtp_msg *m,
    const struct smtp_msg_result *r, void *arg)
{
	struct run	*run = arg;
	size_t		 i;

	run->done++;
	for (i = 0; i < m->nrcpts; i++)
		buf_addf(&run->out, "msg=%u to=<%s> status=%s relay=%s tls=%d "
		    "reply=%s\n", run->done, m->rcpts[i],
		    status_names[r->rcpts[i].status], r->relay, r->tls,
		    r->rcpts[i].text);
	if (run->handed < run->repeat && smtp_client_send(c, m) == 0)
		run->handed++;
}

static void	start(struct run *);

static void
on_conn(struct smtp_client *c, const struct smtp_conn_result *r, void *arg)
{
	struct run	*run = arg;
	unsigned	 i;
	size_t		 j;

	(void)c;
	if (r->status == SMTP_CONN_TLS_FAILED && !run->retried) {
		printf("tls-failed relay=%s reason=%s\n", r->relay, r->text);
		run->retried = 1;
		run->p.tls = SMTP_TLS_NONE;
		run->done = run->handed = 0;
		buf_reset(&run->out);
		start(run);
		return;
	}
	/* messages never handed: the connection ended first */
	for (i = run->done; i < run->repeat; i++)
		for (j = 0; j < run->msg.nrcpts; j++)
			buf_addf(&run->out, "msg=%u to=<%s> status=temp "
			    "relay=%s tls=0 reply=not attempted: %s\n", i + 1,
			    run->msg.rcpts[j], r->relay, r->text);
	fwrite(run->out.data ? run->out.data : "", 1, run->out.len, stdout);
	printf("conn status=%s nmsgs=%u%s%s\n", r->status == SMTP_CONN_OK ?
	    "ok" : "failed", r->nmsgs, r->text[0] ? " reason=" : "", r->text);
}

static void
start(struct run *run)
{
	static const struct smtp_client_cbs cbs = { on_msg, on_conn };
	struct smtp_client	*c;

	if ((c = smtp_client_new(run->base, &run->p, &cbs, run)) == NULL)
		log_fatal("smtp_client_new");
	if (smtp_client_send(c, &run->msg) == -1)
		log_fatal("smtp_client_send");
	run->handed = 1;
}

/* Tally the printed outcomes for the exit status. */
static int
exit_code(const struct buf *out)
{
	int	 temp = 0, perm = 0;

	if (out->data == NULL)
		return 75;
	temp = strstr(out->data, " status=temp ") != NULL;
	perm = strstr(out->data, " status=perm ") != NULL;
	return temp ? 75 : perm ? 65 : 0;
}

static void
set_timeouts(struct smtp_timeouts *t, const char *s)
{
	char		*end;
	double		 v;
	unsigned	 ms;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || v <= 0 || v > 86400)
		usage();
	ms = (unsigned)(v * 1000);
	t->connect = t->banner = t->helo = t->mail = t->rcpt = ms;
	t->data_init = t->data_block = t->data_end = t->quit = ms;
}

struct opts {
	struct sockaddr_storage	 ss;
	const char		*data, *cafile, *tls;
	char			*auth;
};

static void
parse_args(int argc, char *argv[], struct run *run, struct opts *o,
    const char **rcpts)
{
	int	 i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-v") == 0) {
			log_verbose = 1;
			continue;
		}
		if (strcmp(a, "--8bitmime") == 0) {
			run->msg.flags |= SMTP_MSG_8BITMIME;
			continue;
		}
		if (strcmp(a, "--lmtp") == 0) {
			run->p.lmtp = 1;	/* RFC 2033 */
			continue;
		}
		if (strcmp(a, "--smtputf8") == 0) {
			run->msg.flags |= SMTP_MSG_SMTPUTF8;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--connect") == 0) {
			run->p.salen = parse_addr(v, &o->ss);
			run->p.sa = (struct sockaddr *)&o->ss;
		} else if (strcmp(a, "--tls") == 0)
			o->tls = v;
		else if (strcmp(a, "--cafile") == 0)
			o->cafile = v;
		else if (strcmp(a, "--name") == 0)
			run->p.relay_name = v;
		else if (strcmp(a, "--auth") == 0)
			o->auth = strdup(v);
		else if (strcmp(a, "--helo") == 0)
			run->p.helo = v;
		else if (strcmp(a, "--from") == 0)
			run->msg.from = v;
		else if (strcmp(a, "--to") == 0 && run->msg.nrcpts < MAX_RCPTS)
			rcpts[run->msg.nrcpts++] = v;
		else if (strcmp(a, "--headers") == 0)
			run->msg.headers = slurp(v, &run->msg.headerslen);
		else if (strcmp(a, "--data") == 0)
			o->data = v;
		else if (strcmp(a, "--repeat") == 0)
			run->repeat = (unsigned)number(v, 100000);
		else if (strcmp(a, "--size") == 0)
			run->msg.size = number(v, UINT64_MAX);
		else if (strcmp(a, "--timeout") == 0)
			set_timeouts(&run->p.timeouts, v);
		else
			usage();
	}
}

/* Policy, TLS context and credentials from the options. */
static void
setup(struct run *run, struct opts *o)
{
	char	*colon;

	if (strcmp(o->tls, "none") == 0)
		run->p.tls = SMTP_TLS_NONE;
	else if (strcmp(o->tls, "opportunistic") == 0)
		run->p.tls = SMTP_TLS_OPPORTUNISTIC;
	else if (strcmp(o->tls, "required") == 0)
		run->p.tls = SMTP_TLS_REQUIRED;
	else
		usage();
	if (run->p.tls != SMTP_TLS_NONE &&
	    (run->p.tls_ctx = smtp_client_tls_ctx(o->cafile)) == NULL)
		log_fatalx("cannot set up TLS");
	if (o->auth != NULL) {
		if ((colon = strchr(o->auth, ':')) == NULL)
			usage();
		*colon = '\0';
		run->p.auth_user = o->auth;
		run->p.auth_pass = colon + 1;
	}
	if ((run->msg.fd = open(o->data, O_RDONLY | O_CLOEXEC)) == -1)
		log_fatal("%s", o->data);
}

int
main(int argc, char *argv[])
{
	static const char	*rcpts[MAX_RCPTS];
	struct run		 run;
	struct opts		 o;
	int			 rc;

	memset(&run, 0, sizeof(run));
	memset(&o, 0, sizeof(o));
	o.tls = "none";
	smtp_timeouts_default(&run.p.timeouts);
	run.p.helo = "client.sluice.test";
	run.repeat = 1;
	buf_init(&run.out, 16 << 20);
	log_init("smtp-send", "stderr", 0);
	parse_args(argc, argv, &run, &o, rcpts);
	if (run.p.sa == NULL || run.msg.from == NULL || run.msg.nrcpts == 0 ||
	    o.data == NULL || run.repeat == 0)
		usage();
	run.msg.rcpts = rcpts;
	setup(&run, &o);
	if ((run.base = event_base_new()) == NULL)
		log_fatalx("event_base_new");
	start(&run);
	event_base_dispatch(run.base);
	fflush(stdout);
	rc = exit_code(&run.out);
	if (run.p.tls_ctx)
		SSL_CTX_free(run.p.tls_ctx);
	event_base_free(run.base);
	close(run.msg.fd);
	free(o.auth);
	free((char *)run.msg.headers);
	buf_free(&run.out);
	return rc;
}
