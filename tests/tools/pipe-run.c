/*
 * pipe-run - run one robot or mbox append with src/deliver/pipe_run.c on
 * an event loop, for the integration tests.
 *
 * usage: pipe-run [--uid U --gid G] [--timeout-ms N] [--env K=V]...
 *            [--prefix TEXT] [--sender S] [--log-id ID] [--parallel N]
 *            [--shutdown-after-ms N] (--cmd CMDLINE | --mbox PATH) DATAFILE
 *
 * Prints one JSON object per request, in the order they finish:
 *   {"index": 0, "status": "ok|ok_stop|temp|perm", "exit_code": 0,
 *    "text": "...", "err": "...", "errlen": 0, "maxrss_kb": 1234}
 * (err is raw bytes: each byte above 0x7f is written as \u00XX, so
 * json.loads(...)["err"].encode("latin-1") gives them back), or
 *   {"index": 0, "start_error": "...", "errno": 1}
 * when pipe_run() refused to start it. With --shutdown-after-ms, after that
 * long pipe_shutdown() is called and {"shutdown": true, "pending": K} is
 * printed (no results follow). Ids default to ours.
 * Exit: 0, 1 if a request could not start, 64 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "pipe_run.h"

#define MAX_ENV		64
#define MAX_PARALLEL	1000

static const char *const status_names[] = {
	[PIPE_OK] = "ok",
	[PIPE_OK_STOP] = "ok_stop",
	[PIPE_TEMP] = "temp",
	[PIPE_PERM] = "perm",
};

struct slot {
	unsigned	 index;
	unsigned	*pending;
};

static void
usage(void)
{
	fprintf(stderr, "usage: pipe-run [--uid U --gid G] [--timeout-ms N] "
	    "[--env K=V]... [--prefix TEXT]\n"
	    "    [--sender S] [--log-id ID] [--parallel N] "
	    "[--shutdown-after-ms N]\n"
	    "    (--cmd CMDLINE | --mbox PATH) DATAFILE\n");
	exit(64);
}

static unsigned long
number(const char *s, unsigned long max)
{
	unsigned long	 v;
	char		*end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end != '\0' || v > max || *s == '-')
		usage();
	return v;
}

static void
json_str(const char *s, size_t n)
{
	size_t	 i;

	putchar('"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* The peak resident size of this program (VmHWM: unlike ru_maxrss it does
   not include what the process was before exec, e.g. a forked pytest). */
static long
maxrss_kb(void)
{
	char	 line[256];
	long	 kb = -1;
	FILE	*f;

	if ((f = fopen("/proc/self/status", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static void
on_done(void *arg, const struct pipe_result *r)
{
	struct slot	*s = arg;

	printf("{\"index\": %u, \"status\": \"%s\", \"exit_code\": %d, "
	    "\"text\": ", s->index, status_names[r->status], r->exit_code);
	json_str(r->text, strlen(r->text));
	printf(", \"err\": ");
	json_str(r->err, r->errlen);
	printf(", \"errlen\": %zu, \"maxrss_kb\": %ld}\n", r->errlen,
	    maxrss_kb());
	fflush(stdout);
	(*s->pending)--;
}

static void
on_shutdown(evutil_socket_t fd, short ev, void *arg)
{
	unsigned	*pending = arg;

	(void)fd;
	(void)ev;
	pipe_shutdown();
	printf("{\"shutdown\": true, \"pending\": %u}\n", *pending);
	fflush(stdout);
}

struct opts {
	struct pipe_req	 req;
	const char	*env[MAX_ENV + 1];
	size_t		 nenv;
	const char	*data;
	unsigned long	 parallel, shutdown_ms;
};

static void
parse_args(int argc, char *argv[], struct opts *o)
{
	int	 i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL) {
			if (a[0] == '-' || o->data != NULL)
				usage();
			o->data = a;
			continue;
		}
		i++;
		if (strcmp(a, "--uid") == 0)
			o->req.uid = (uid_t)number(v, 0xfffffffeUL);
		else if (strcmp(a, "--gid") == 0)
			o->req.gid = (gid_t)number(v, 0xfffffffeUL);
		else if (strcmp(a, "--timeout-ms") == 0)
			o->req.timeout_ms = (unsigned)number(v, 86400000UL);
		else if (strcmp(a, "--env") == 0 && o->nenv < MAX_ENV)
			o->env[o->nenv++] = v;
		else if (strcmp(a, "--prefix") == 0) {
			o->req.prefix = v;
			o->req.prefixlen = strlen(v);
		} else if (strcmp(a, "--sender") == 0)
			o->req.sender = v;
		else if (strcmp(a, "--log-id") == 0)
			o->req.log_id = v;
		else if (strcmp(a, "--parallel") == 0)
			o->parallel = number(v, MAX_PARALLEL);
		else if (strcmp(a, "--shutdown-after-ms") == 0)
			o->shutdown_ms = number(v, 86400000UL);
		else if (strcmp(a, "--cmd") == 0)
			o->req.command = v;
		else if (strcmp(a, "--mbox") == 0)
			o->req.mbox = v;
		else
			usage();
	}
	if (o->data == NULL || (o->req.command == NULL) ==
	    (o->req.mbox == NULL) || o->parallel == 0)
		usage();
}

int
main(int argc, char *argv[])
{
	static struct opts	 o;
	struct event_base	*base;
	struct event		*ev_stop = NULL;
	struct slot		*slots;
	unsigned		 i, pending = 0;
	int			 rc = 0;

	o.req.uid = geteuid();
	o.req.gid = getegid();
	o.parallel = 1;
	log_init("pipe-run", "stderr", 0);
	parse_args(argc, argv, &o);
	o.req.env = o.env;
	if ((o.req.fd = open(o.data, O_RDONLY | O_CLOEXEC)) == -1)
		log_fatal("%s", o.data);
	if ((base = event_base_new()) == NULL ||
	    (slots = calloc(o.parallel, sizeof(*slots))) == NULL)
		log_fatalx("out of memory");
	for (i = 0; i < o.parallel; i++) {
		slots[i].index = i;
		slots[i].pending = &pending;
		if (pipe_run(base, &o.req, on_done, &slots[i]) == -1) {
			printf("{\"index\": %u, \"start_error\": ", i);
			json_str(strerror(errno), strlen(strerror(errno)));
			printf(", \"errno\": %d}\n", errno);
			rc = 1;
		} else
			pending++;
	}
	fflush(stdout);
	close(o.req.fd);	/* pipe_run() keeps its own copy */
	if (o.shutdown_ms > 0) {
		struct timeval tv = { (time_t)(o.shutdown_ms / 1000),
		    (suseconds_t)(o.shutdown_ms % 1000) * 1000 };
		if ((ev_stop = evtimer_new(base, on_shutdown, &pending)) ==
		    NULL || evtimer_add(ev_stop, &tv) == -1)
			log_fatalx("evtimer");
	}
	while (pending > 0 && (ev_stop == NULL ||
	    evtimer_pending(ev_stop, NULL)))
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			log_fatalx("event loop: nothing left to wait for");
	if (ev_stop != NULL)
		event_free(ev_stop);
	pipe_shutdown();
	event_base_free(base);
	free(slots);
	return rc;
}
