/*
 * cmd_queue - `sluice queue [list] [--json] | show ID`, and `mailq`.
 *
 * Reads the spool directly (no daemon needed): the envelope files
 * <spool>/incoming/<ID> and <spool>/outgoing/<ID> (envelope.h) and, for
 * show, the first header lines of <spool>/data/<ID>. Read-only. A file that
 * does not parse is listed as "(corrupt: reason)"; the queue process moves
 * it to corrupt/ (P9), we only report. Names that are not queue ids
 * (temporary files and the like) are skipped.
 * Exit: 0 ok; 64 usage or malformed ID; 67 unknown ID; 74 spool unreadable.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "envelope.h"

#define QUEUE_ENV_MAX		(32UL * 1024 * 1024)
#define QUEUE_SHOW_LINES	50
#define QUEUE_LINE_MAX		998

static const char usage_queue[] =
    "usage: sluice [-c FILE] queue [list] [--json]\n"
    "       sluice [-c FILE] queue show ID\n"
    "       sluice [-c FILE] queue flush [ID|DOMAIN]\n"
    "       sluice [-c FILE] queue hold|release|delete ID\n"
    "\n"
    "list: one line per message, \"ID  SIZE  DATE  SENDER\", then its\n"
    "recipients with their state and last error; --json: a JSON array.\n"
    "show: every envelope field and the first header lines of the message.\n"
    "flush: retry deferred mail now (all, one message, or one domain).\n"
    "hold: keep a message from delivery until release; delete: remove it\n"
    "without a bounce. These act through the running sluiced.\n"
    "exit: 0 ok, 64 usage or malformed ID, 67 unknown ID, 69 sluiced not\n"
    "running, 74 spool error, 75 try again\n";

static const char *const queue_dirs[] = { "incoming", "outgoing" };

struct queue_ent {
	char	 id[QUEUE_ID_LEN + 1];
	int	 dir;		/* index in queue_dirs */
};

static const char *
queue_state(enum rcpt_state s)
{
	switch (s) {
	case RCPT_PENDING:	return "pending";
	case RCPT_DEFERRED:	return "deferred";
	case RCPT_DELIVERED:	return "delivered";
	case RCPT_BOUNCED:	return "bounced";
	case RCPT_WAITING:	return "waiting";
	case RCPT_EXPANDED:	return "expanded";
	}
	return "unknown";
}

/* Read a whole file (at most max bytes) into b; -1 with errno set. */
static int
queue_slurp(const char *path, struct buf *b, size_t max)
{
	char	 chunk[8192];
	ssize_t	 n;
	int	 fd;

	buf_init(b, max);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || buf_add(b, chunk, (size_t)n) == -1) {
			if (n != -1)
				errno = b->err == BUF_ENOMEM ? ENOMEM : EFBIG;
			close(fd);
			buf_free(b);
			return -1;
		}
	}
	close(fd);
	return 0;
}

/* Load and parse one envelope; -1 with the reason in err. */
/*
 * Load the envelope of q; -1 with err (corrupt, unreadable), or
 * QUEUE_GONE when the message left the queue meanwhile. The queue moves
 * messages from incoming/ to outgoing/ while we read: q->dir follows.
 */
#define QUEUE_GONE	(-2)
static int
queue_load(const char *spool, struct queue_ent *q, struct envelope *e,
    char *err, size_t errlen)
{
	char		 path[PATH_MAX];
	struct buf	 b;
	int		 rc;

	envelope_init(e);
	for (;;) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", spool,
		    queue_dirs[q->dir], q->id) >= sizeof(path)) {
			snprintf(err, errlen, "path too long");
			return -1;
		}
		if (queue_slurp(path, &b, QUEUE_ENV_MAX) == 0)
			break;
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		if (q->dir == 1)
			return QUEUE_GONE;
		q->dir = 1;
	}
	rc = envelope_parse(e, b.data ? b.data : "", b.len, err, errlen);
	buf_free(&b);
	return rc;
}

static int
queue_ent_cmp(const void *a, const void *b)
{
	const struct queue_ent *x = a, *y = b;
	int	 c = strcmp(x->id, y->id);

	return c ? c : x->dir - y->dir;
}

/* Collect the ids in incoming/ and outgoing/, sorted; -1 on error. */
static int
queue_scan(const char *spool, struct queue_ent **out, size_t *nout)
{
	char		 path[PATH_MAX];
	struct queue_ent *v = NULL, *nv;
	struct dirent	*e;
	DIR		*d;
	size_t		 n = 0, cap = 0;
	int		 i;

	for (i = 0; i < 2; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", spool,
		    queue_dirs[i]) >= sizeof(path) ||
		    (d = opendir(path)) == NULL) {
			if (errno == ENOENT)
				continue;
			cli_err("%s: %s", path, strerror(errno));
			free(v);
			return -1;
		}
		while ((e = readdir(d)) != NULL) {
			if (!queue_id_valid(e->d_name))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				if ((nv = reallocarray(v, cap, sizeof(*v))) ==
				    NULL) {
					cli_err("out of memory");
					closedir(d);
					free(v);
					return -1;
				}
				v = nv;
			}
			memcpy(v[n].id, e->d_name, QUEUE_ID_LEN + 1);
			v[n++].dir = i;
		}
		closedir(d);
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), queue_ent_cmp);
	/* moved between the two directory reads: listed once, as outgoing */
	for (size_t k = 0, w = 0; k < n; k++) {
		if (k + 1 < n && strcmp(v[k].id, v[k + 1].id) == 0)
			continue;
		v[w++] = v[k];
		if (k + 1 == n)
			n = w;
	}
	*out = v;
	*nout = n;
	return 0;
}

static void
queue_print_text(const struct queue_ent *q, const struct envelope *e)
{
	char	 when[64];
	size_t	 i;

	cli_time_str((long long)e->created, when, sizeof(when));
	printf("%s  %llu  %s  <%s>%s\n", q->id, e->size, when, e->from,
	    e->flags & ENV_F_HELD ? "  (held)" : "");
	for (i = 0; i < e->nrcpts; i++) {
		const struct env_rcpt *r = &e->rcpts[i];
		printf("    <%s>  %s", r->addr, r->state == RCPT_WAITING ?
		    "waiting for route" : queue_state(r->state));
		if (r->attempts)
			printf(" (%u attempt%s)", r->attempts,
			    r->attempts == 1 ? "" : "s");
		if (r->error[0])
			printf(": %s", r->error);
		putchar('\n');
	}
}

static void
queue_print_json(const struct queue_ent *q, const struct envelope *e)
{
	size_t	 i;

	printf("{\"id\": \"%s\", \"queue\": \"%s\", \"size\": %llu, "
	    "\"created\": %lld, \"held\": %s, \"sender\": ", q->id,
	    queue_dirs[q->dir], e->size, (long long)e->created,
	    e->flags & ENV_F_HELD ? "true" : "false");
	cli_json_str(stdout, e->from);
	fputs(", \"recipients\": [", stdout);
	for (i = 0; i < e->nrcpts; i++) {
		const struct env_rcpt *r = &e->rcpts[i];
		fputs(i ? ", {\"address\": " : "{\"address\": ", stdout);
		cli_json_str(stdout, r->addr);
		fputs(", \"original\": ", stdout);
		cli_json_str(stdout, r->orig);
		printf(", \"state\": \"%s\", \"attempts\": %u, "
		    "\"next_try\": %lld, \"error\": ", queue_state(r->state),
		    r->attempts, (long long)r->next_try);
		cli_json_str(stdout, r->error);
		fputs("}", stdout);
	}
	fputs("]}", stdout);
}

/* One message of the listing, corrupt or not. */
static int
queue_list_one(const char *spool, struct queue_ent *q, int json,
    size_t shown)
{
	struct envelope	 e;
	char		 err[512];
	int		 rc;

	rc = queue_load(spool, q, &e, err, sizeof(err));
	if (rc == QUEUE_GONE)
		return 0;
	if (json)
		fputs(shown ? ",\n  " : "\n  ", stdout);
	else if (shown)
		putchar('\n');
	if (rc == -1) {
		if (json) {
			printf("{\"id\": \"%s\", \"queue\": \"%s\", "
			    "\"corrupt\": ", q->id, queue_dirs[q->dir]);
			cli_json_str(stdout, err);
			fputs("}", stdout);
		} else
			printf("%s  (corrupt: %s)\n", q->id, err);
	} else if (json)
		queue_print_json(q, &e);
	else
		queue_print_text(q, &e);
	envelope_free(&e);
	return 1;
}

static int
queue_list(struct cli *cli, int json)
{
	struct queue_ent	*v;
	size_t			 n, i, shown = 0;

	if (queue_scan(cli->cfg.spool, &v, &n) == -1)
		return EX_IOERR;
	if (json)
		fputs("[", stdout);
	for (i = 0; i < n; i++)
		shown += queue_list_one(cli->cfg.spool, &v[i], json, shown);
	if (json)
		fputs(shown ? "\n]\n" : "]\n", stdout);
	else if (shown == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %zu messages\n", shown);
	free(v);
	return EX_OK;
}

/* print s with control characters (but TAB) shown as '?' */
static void
queue_put_safe(const char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		putchar((c < 0x20 && c != '\t') || c == 0x7f ? '?' : c);
	}
	putchar('\n');
}

/* The first header lines of data/<ID>, up to the blank line. */
static void
queue_show_data(const char *spool, const char *id)
{
	char	 path[PATH_MAX], line[QUEUE_LINE_MAX + 2];
	FILE	*fp;
	size_t	 n, k = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/data/%s", spool, id) >=
	    sizeof(path))
		return;
	printf("\n-- message (%s) --\n", path);
	if ((fp = fopen(path, "re")) == NULL) {
		printf("(data file: %s)\n", strerror(errno));
		return;
	}
	while (k < QUEUE_SHOW_LINES && fgets(line, sizeof(line), fp) != NULL) {
		n = strlen(line);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0)
			break;
		queue_put_safe(line, n);
		k++;
	}
	if (k == QUEUE_SHOW_LINES)
		printf("(more header lines not shown)\n");
	fclose(fp);
}

static void
queue_show_env(const struct queue_ent *q, const struct envelope *e)
{
	char	 when[64];
	size_t	 i;

	cli_time_str((long long)e->created, when, sizeof(when));
	printf("id: %s\nqueue: %s\ncreated: %s\nfrom: <%s>\n", q->id,
	    queue_dirs[q->dir], when, e->from);
	printf("helo: %s\nclient-addr: %s\nclient-name: %s\nproto: %s\n"
	    "tls: %s\nauth: %s\nflags: 0x%x\nsize: %llu\nhops: %u\n", e->helo,
	    e->client_addr, e->client_name, e->proto, e->tls, e->auth,
	    e->flags, e->size, e->hops);
	for (i = 0; i < e->nrcpts; i++) {
		const struct env_rcpt *r = &e->rcpts[i];
		if (r->next_try == 0)
			snprintf(when, sizeof(when), "now");
		else
			cli_time_str((long long)r->next_try, when,
			    sizeof(when));
		printf("rcpt: <%s> %s attempts=%u next=%s", r->addr,
		    queue_state(r->state), r->attempts, when);
		if (strcmp(r->orig, r->addr) != 0)
			printf(" orig=<%s>", r->orig);
		if (r->error[0])
			printf(" error=%s", r->error);
		putchar('\n');
	}
	for (i = 0; i < e->hdrs.len; ) {
		const char *p = e->hdrs.data + i;
		const char *nl = memchr(p, '\n', e->hdrs.len - i);
		size_t len = nl ? (size_t)(nl - p) : e->hdrs.len - i;
		fputs("hdr: ", stdout);
		queue_put_safe(p, len);
		i += len + 1;
	}
}

static int
queue_show(struct cli *cli, const char *id)
{
	struct queue_ent	 q;
	struct envelope		 e;
	struct stat		 st;
	char			 path[PATH_MAX], err[512];

	if (!queue_id_valid(id)) {
		cli_err("\"%s\" is not a queue id (%d hex digits)", id,
		    QUEUE_ID_LEN);
		return EX_USAGE;
	}
	memcpy(q.id, id, QUEUE_ID_LEN + 1);
	for (q.dir = 0; q.dir < 2; q.dir++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s",
		    cli->cfg.spool, queue_dirs[q.dir], id) < sizeof(path) &&
		    lstat(path, &st) == 0)
			break;
	}
	if (q.dir == 2) {
		cli_err("%s: no such message in the queue", id);
		return EX_NOUSER;
	}
	if (queue_load(cli->cfg.spool, &q, &e, err, sizeof(err)) == -1)
		printf("id: %s\nqueue: %s\n(corrupt: %s)\n", id,
		    queue_dirs[q.dir], err);
	else
		queue_show_env(&q, &e);
	envelope_free(&e);
	queue_show_data(cli->cfg.spool, id);
	return EX_OK;
}

/* Send one request to the running queue process; an exit status. */
static int
queue_request(struct cli *cli, const char *verb, const char *arg)
{
	struct sockaddr_un	 sun;
	char			 req[512], ans[512];
	FILE			*fp;
	int			 fd, n;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/control.sock", cli->cfg.spool) >= sizeof(sun.sun_path)) {
		cli_err("spool path too long");
		return EX_SOFTWARE;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		cli_err("cannot reach the queue (%s: %s): is sluiced running?",
		    sun.sun_path, strerror(errno));
		if (fd != -1)
			close(fd);
		return EX_UNAVAILABLE;
	}
	n = snprintf(req, sizeof(req), "%s%s%s\n", verb, arg[0] ? " " : "",
	    arg);
	if (n < 0 || (size_t)n >= sizeof(req) ||
	    write(fd, req, (size_t)n) != n || (fp = fdopen(fd, "r")) == NULL) {
		cli_err("queue: cannot send the request");
		close(fd);
		return EX_IOERR;
	}
	if (fgets(ans, sizeof(ans), fp) == NULL) {
		fclose(fp);
		cli_err("queue: no answer from sluiced");
		return EX_TEMPFAIL;
	}
	fclose(fp);
	ans[strcspn(ans, "\n")] = '\0';
	if (strncmp(ans, "ok ", 3) == 0) {
		printf("%s: %s message(s)\n", verb, ans + 3);
		return EX_OK;
	}
	cli_err("queue %s: %s", verb, strncmp(ans, "error ", 6) == 0 ?
	    ans + 6 : ans);
	return strstr(ans, "no such message") ? EX_NOUSER : EX_TEMPFAIL;
}

static int
queue_is_control(const char *verb)
{
	return strcmp(verb, "flush") == 0 || strcmp(verb, "hold") == 0 ||
	    strcmp(verb, "release") == 0 || strcmp(verb, "delete") == 0;
}

int
cmd_queue(struct cli *cli, int argc, char **argv)
{
	const char	*pos[2] = { NULL, NULL };
	int		 i, n = 0, json = 0, rc;

	if (cli_wants_help(argc, argv))
		return cli_usage(usage_queue, 1);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (argv[i][0] == '-' || n == 2)
			return cli_usage(usage_queue, 0);
		else
			pos[n++] = argv[i];
	}
	if (pos[0] != NULL && queue_is_control(pos[0])) {
		if (json || (pos[1] == NULL && strcmp(pos[0], "flush") != 0))
			return cli_usage(usage_queue, 0);
		if (pos[1] != NULL && strcmp(pos[0], "flush") != 0 &&
		    !queue_id_valid(pos[1])) {
			cli_err("queue: malformed queue ID \"%s\"", pos[1]);
			return EX_USAGE;
		}
		if ((rc = cli_config(cli)) != 0)
			return rc;
		return queue_request(cli, pos[0], pos[1] ? pos[1] : "");
	}
	if (pos[0] != NULL && strcmp(pos[0], "list") != 0 &&
	    strcmp(pos[0], "show") != 0) {
		cli_err("queue: unknown subcommand \"%s\"", pos[0]);
		return cli_usage(usage_queue, 0);
	}
	if (pos[0] == NULL || strcmp(pos[0], "list") == 0) {
		if (pos[1] != NULL)
			return cli_usage(usage_queue, 0);
	} else if (pos[1] == NULL || json)
		return cli_usage(usage_queue, 0);
	if ((rc = cli_config(cli)) != 0)
		return rc;
	if (pos[0] != NULL && strcmp(pos[0], "show") == 0)
		return queue_show(cli, pos[1]);
	return queue_list(cli, json);
}
