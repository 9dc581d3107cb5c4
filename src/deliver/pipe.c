/*
 * pipe - the pipe delivery process: runs mail robots (alias targets
 * "|command") and appends to mbox files (alias targets "/path"), each as
 * its own user (DESIGN.md, "Pipe delivery").
 *
 * This is the one child that keeps root when sluiced starts as root (like
 * Postfix's local): it must become the robot's user. It has no socket but
 * its channel to the queue, and it never runs anything as root: a target
 * owned by root (written in a root-owned aliases file) or by an unknown
 * uid runs as robot-user. Started by someone else, every robot runs as
 * that user.
 *
 * Each request is one target; pipe_run() (pipe_run.c) does the fork,
 * the user switch, the timeout and the exit-code contract. A robot (one
 * command line, or one mbox file) runs at most robot-concurrency times at
 * once, the other requests for it wait here in order. After
 * robot-max-failures temporary failures in a row, its mail is held (the
 * queue puts the message on hold, `sluice queue release` tries again):
 * a broken robot does not spin; a success ends the streak. The robot's
 * environment is built here from scratch: PATH, SENDER, RECIPIENT, LOCAL,
 * DOMAIN, EXTENSION, ORIGINAL_RECIPIENT, QUEUE_ID, DELIVERY_ID, HOME,
 * USER, LOGNAME; nothing of the daemon's own.
 */
#include <sys/types.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "envelope.h"
#include "ipc.h"
#include "log.h"
#include "pipe_run.h"
#include "proc.h"
#include "robot_env.h"
#include "sluiced.h"

struct pjob {
	struct ipc	*c;		/* NULL once the queue is gone */
	uint32_t	 id;
	char		 qid[QUEUE_ID_LEN + 1];
	char		 from[ADDR_STR_MAX + 1];
	char		 rcpt[ADDR_STR_MAX + 1];
	char		 orig[ADDR_STR_MAX + 1];
	char		 ext[ADDR_LOCAL_MAX + 1];
	char		 target[ENV_TARGET_MAX + 1];
	uint32_t	 via;
	uint32_t	 owner;
	uint32_t	 force;		/* released: run even if failing */
	struct robot	*rb;
	int		 running;
	int		 fd;
	char		*prefix;
	size_t		 prefixlen;
	struct robot_env env;
	struct pipe_req	 req;
	struct pjob	*next;		/* all jobs */
	struct pjob	*wnext;		/* waiting for its robot */
};

/* one robot (command line or mbox path): its runs and its failures */
struct robot {
	char		 key[ENV_TARGET_MAX + 2];
	unsigned	 running;
	unsigned	 failures;	/* temporary, in a row */
	struct pjob	*wait, **wtail;
	struct robot	*next;
};

static struct proc	*pp;
static struct pjob	*jobs;
static struct robot	*robots;

static void	pjob_start(struct pjob *);

static struct robot *
robot_get(const struct pjob *j)
{
	struct robot	*r;
	char		 key[sizeof(r->key)];

	snprintf(key, sizeof(key), "%c%s", j->via == VIA_PIPE ? '|' : '/',
	    j->target);
	for (r = robots; r; r = r->next)
		if (strcmp(r->key, key) == 0)
			return r;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->wtail = &r->wait;
	r->next = robots;
	robots = r;
	return r;
}

/* A run of r ended: start the next waiting job, forget an idle robot. */
static void
robot_done(struct robot *r)
{
	struct robot	**pr;
	struct pjob	*j;

	r->running--;
	if ((j = r->wait) != NULL) {
		if ((r->wait = j->wnext) == NULL)
			r->wtail = &r->wait;
		pjob_start(j);
		return;
	}
	if (r->running > 0 || r->failures > 0)
		return;
	for (pr = &robots; *pr; pr = &(*pr)->next)
		if (*pr == r) {
			*pr = r->next;
			break;
		}
	free(r);
}

static void
pjob_free(struct pjob *j)
{
	struct pjob	**pj;

	for (pj = &jobs; *pj; pj = &(*pj)->next)
		if (*pj == j) {
			*pj = j->next;
			break;
		}
	if (j->fd != -1)
		close(j->fd);
	free(j->prefix);
	free(j);
}

static void
pjob_answer(struct pjob *j, enum rcpt_state st, const char *text, int stop,
    int hold)
{
	struct buf	 b;
	struct robot	*rb = j->running ? j->rb : NULL;

	if (j->c != NULL) {
		buf_init(&b, 2048);
		ipc_put_u32(&b, 1);
		ipc_put_u32(&b, st);
		ipc_put_str(&b, j->via == VIA_PIPE ? "pipe" : "file");
		ipc_put_str(&b, text);
		ipc_put_u32(&b, stop);
		ipc_put_u32(&b, hold);
		if (ipc_send_buf(j->c, QUEUE_PIPE_RESULT, j->id, -1, &b) == -1)
			log_warnx("%s: cannot answer the queue", j->qid);
		buf_free(&b);
	}
	pjob_free(j);
	if (rb != NULL)
		robot_done(rb);
}

static void
pipe_on_done(void *arg, const struct pipe_result *res)
{
	struct pjob	*j = arg;
	char		 text[ENV_TEXT_MAX], err[300];
	enum rcpt_state	 st;

	st = res->status == PIPE_OK || res->status == PIPE_OK_STOP ?
	    RCPT_DELIVERED : res->status == PIPE_PERM ? RCPT_BOUNCED :
	    RCPT_DEFERRED;
	if (st == RCPT_DELIVERED)
		snprintf(text, sizeof(text), "delivered to %s %.300s%s",
		    j->via == VIA_PIPE ? "command" : "file", j->target,
		    res->status == PIPE_OK_STOP ? " (exit 99: stop)" : "");
	else
		snprintf(text, sizeof(text), "%s", res->text);
	if (res->errlen > 0) {
		log_sanitize(err, sizeof(err), res->err, res->errlen);
		log_info("%s: to=<%s> %s stderr: %s", j->qid, j->rcpt,
		    j->via == VIA_PIPE ? "robot" : "mbox", err);
	}
	if (st == RCPT_DEFERRED)
		j->rb->failures++;
	else
		j->rb->failures = 0;
	pjob_answer(j, st, text, res->status == PIPE_OK_STOP,
	    j->rb->failures >= pp->conf->robot_max_failures);
}

static void
pipe_on_request(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct ipc_rd	 rd;
	struct pjob	*j;
	struct pipe_req	*req;
	struct passwd	*pw;
	struct buf	 pre;
	const char	*h;
	size_t		 hlen;
	uid_t		 uid;
	gid_t		 gid;
	char		 text[ENV_TEXT_MAX];

	(void)arg;
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warnx("out of memory for a pipe request");
		if (m->fd != -1)
			close(m->fd);
		return;		/* the queue hears nothing: see peer_down */
	}
	j->c = c;
	j->id = m->id;
	j->fd = m->fd;
	j->next = jobs;
	jobs = j;
	ipc_rd_init(&rd, m);
	ipc_get_str(&rd, j->qid, sizeof(j->qid));
	ipc_get_str(&rd, j->from, sizeof(j->from));
	h = ipc_get_mem(&rd, &hlen);
	ipc_get_str(&rd, j->rcpt, sizeof(j->rcpt));
	ipc_get_str(&rd, j->orig, sizeof(j->orig));
	j->via = ipc_get_u32(&rd);
	ipc_get_str(&rd, j->target, sizeof(j->target));
	j->owner = ipc_get_u32(&rd);
	ipc_get_str(&rd, j->ext, sizeof(j->ext));
	j->force = ipc_get_u32(&rd);
	if (ipc_get_end(&rd) == -1 || j->fd == -1 || (j->via != VIA_PIPE &&
	    j->via != VIA_FILE) || j->target[0] == '\0') {
		log_warnx("bad DELIVER_PIPE, refused");
		pjob_answer(j, RCPT_DEFERRED, "4.3.0 bad request to the pipe "
		    "process", 0, 0);
		return;
	}
	if (robot_user(j->owner, pp->conf->robot_user, &uid, &gid,
	    &pw) == -1) {
		snprintf(text, sizeof(text), "4.3.0 robot-user %s is unknown "
		    "or root", pp->conf->robot_user);
		log_warnx("%s: %s", j->qid, text);
		pjob_answer(j, RCPT_DEFERRED, text, 0, 0);
		return;
	}
	robot_env_build(&j->env, j->qid, j->from, j->rcpt, j->orig, j->ext,
	    j->target, pw);
	buf_init(&pre, ENV_HDRS_MAX + 2 * ADDR_STR_MAX + 64);
	if (robot_prefix(&pre, j->from, j->rcpt, h, hlen) == -1) {
		buf_free(&pre);
		pjob_answer(j, RCPT_DEFERRED, "4.3.0 out of memory", 0, 0);
		return;
	}
	j->prefix = pre.data;		/* ours now */
	j->prefixlen = pre.len;
	req = &j->req;
	if (j->via == VIA_PIPE)
		req->command = j->target;
	else
		req->mbox = j->target;
	req->uid = uid;
	req->gid = gid;
	req->env = j->env.env;
	req->fd = j->fd;
	req->prefix = j->prefix;
	req->prefixlen = j->prefixlen;
	req->sender = j->from;
	req->timeout_ms = pp->conf->robot_timeout * 1000;
	req->log_id = j->qid;
	if ((j->rb = robot_get(j)) == NULL) {
		pjob_answer(j, RCPT_DEFERRED, "4.3.0 out of memory", 0, 0);
		return;
	}
	/* a robot that keeps failing is not run: its mail is held */
	if (j->rb->failures >= pp->conf->robot_max_failures && !j->force) {
		snprintf(text, sizeof(text), "4.3.0 robot failed %u times in a "
		    "row: held (sluice queue release)", j->rb->failures);
		pjob_answer(j, RCPT_DEFERRED, text, 0, 1);
		return;
	}
	if (j->rb->running >= pp->conf->robot_concurrency) {
		*j->rb->wtail = j;
		j->rb->wtail = &j->wnext;
		return;
	}
	pjob_start(j);
}

static void
pjob_start(struct pjob *j)
{
	char	 text[ENV_TEXT_MAX];

	j->running = 1;
	j->rb->running++;
	if (pipe_run(pp->base, &j->req, pipe_on_done, j) == -1) {
		snprintf(text, sizeof(text), "4.3.0 cannot start the %s: %s",
		    j->via == VIA_PIPE ? "robot" : "mbox delivery",
		    strerror(errno));
		log_warnx("%s: %s", j->qid, text);
		pjob_answer(j, RCPT_DEFERRED, text, 0, 0);
	}
}

/* The queue died: robots finish, nobody hears about them. */
static void
pipe_peer_down(struct proc *p, enum ipc_role role)
{
	(void)p;
	if (role == ROLE_QUEUE)
		for (struct pjob *j = jobs; j; j = j->next)
			j->c = NULL;
}

static void
pipe_on_shutdown(struct proc *p)
{
	(void)p;
	pipe_shutdown();
}

static const struct ipc_handler queue_handlers[] = {
	{ DELIVER_PIPE, pipe_on_request },
	{ 0, NULL }
};

int
pipe_main(struct proc *p)
{
	pp = p;
	p->handlers[ROLE_QUEUE] = queue_handlers;
	p->on_peer_down = pipe_peer_down;
	p->on_shutdown = pipe_on_shutdown;
	if (geteuid() != 0)
		log_info("not started as root: robots run as uid %u",
		    (unsigned)geteuid());
	return proc_run(p);
}
