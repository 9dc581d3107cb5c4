/*
 * proc - child process frame and the privilege prologue. See proc.h.
 */
#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "proc.h"

struct proc	*proc_self;

static const char *const role_names[ROLE_MAX] = {
	"master", "smtp", "queue", "lookup", "deliver", "relay", "pipe"
};

const char *
proc_role_name(enum ipc_role r)
{
	return r < ROLE_MAX ? role_names[r] : "?";
}

static void
proc_peer_closed(struct ipc *c, void *arg)
{
	struct proc	*p = proc_self;
	enum ipc_role	 r = (enum ipc_role)(long)arg;

	if (r == ROLE_MASTER) {
		/* the master is gone: nobody supervises us any more */
		log_warnx("master went away, exiting");
		if (p->on_shutdown)
			p->on_shutdown(p);
		exit(0);
	}
	if (p->peer[r] != c)
		return;
	p->peer[r] = NULL;
	if (p->on_peer_down)
		p->on_peer_down(p, r);
	ipc_free(c);
}

static void
proc_on_peer_set(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct proc	*p = arg;
	struct ipc_rd	 rd;
	uint32_t	 r;

	(void)c;
	ipc_rd_init(&rd, m);
	r = ipc_get_u32(&rd);
	if (ipc_get_end(&rd) == -1 || m->fd == -1 || r == ROLE_MASTER ||
	    r >= ROLE_MAX || p->handlers[r] == NULL) {
		log_warnx("bad CHILD_PEER_SET from master");
		if (m->fd != -1)
			close(m->fd);
		return;
	}
	if (p->peer[r]) {
		struct ipc *old = p->peer[r];
		p->peer[r] = NULL;
		if (p->on_peer_down)
			p->on_peer_down(p, (enum ipc_role)r);
		ipc_free(old);
	}
	p->peer[r] = ipc_new(p->base, m->fd, role_names[r], p->handlers[r], p,
	    proc_peer_closed, (void *)(long)r);
	if (p->peer[r] == NULL)
		log_fatal("ipc_new");
	if (p->on_peer_up)
		p->on_peer_up(p, (enum ipc_role)r);
}

/* Re-read the config; a bad file leaves the running one untouched. */
static void
proc_on_reload(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct proc	*p = arg;
	struct config	*nc;
	char		 err[1024];
	int		 r;

	(void)c;
	if ((nc = malloc(sizeof(*nc))) == NULL) {
		log_warnx("reload: out of memory");
		if (m->fd != -1)
			close(m->fd);
		return;
	}
	/*
	 * The master passes the file open: a chrooted child (smtp) could
	 * not open the path itself.
	 */
	if (m->fd != -1) {
		FILE *fp = fdopen(m->fd, "r");
		if (fp == NULL) {
			close(m->fd);
			log_warn("reload: fdopen");
			free(nc);
			return;
		}
		r = config_load_fp(nc, fp, p->conf->path, err, sizeof(err));
	} else
		r = config_load(nc, p->conf->path, err, sizeof(err));
	if (r == -1)
		log_warnx("reload refused: %s", err);
	else {
		*p->conf = *nc;
		if (p->on_reload)
			p->on_reload(p);
	}
	free(nc);
}

/* A file the master opened for us (the smtp process's TLS files). */
static void
proc_on_tls_file(struct ipc *c, struct ipc_msg *m, void *arg)
{
	struct proc	*p = arg;
	struct ipc_rd	 rd;
	uint32_t	 which;

	(void)c;
	ipc_rd_init(&rd, m);
	which = ipc_get_u32(&rd);
	if (ipc_get_end(&rd) == -1 || m->fd == -1 || which > 1 ||
	    p->on_tls_file == NULL) {
		log_warnx("bad SMTP_TLS_FILE");
		if (m->fd != -1)
			close(m->fd);
		return;
	}
	p->on_tls_file(p, which, m->fd);
}

static const struct ipc_handler master_handlers[] = {
	{ CHILD_PEER_SET, proc_on_peer_set },
	{ CHILD_CONF_RELOAD, proc_on_reload },
	{ SMTP_TLS_FILE, proc_on_tls_file },
	{ 0, NULL }
};

/*
 * An event base that folds the changes made during one loop pass into one
 * epoll_ctl per descriptor (sessions enable and disable writing around
 * every reply).
 */
struct event_base *
proc_event_base(void)
{
	struct event_config	*cfg;
	struct event_base	*base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static void
proc_on_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct proc	*p = arg;

	(void)ev;
	if (sig == SIGTERM || sig == SIGINT) {
		if (p->on_shutdown)
			p->on_shutdown(p);
		event_base_loopexit(p->base, NULL);
	}
}

void
proc_init(struct proc *p, int ctlfd)
{
	static struct event	*sigs[3];

	proc_self = p;
	log_settag(p->name);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);	/* the master tells us to reload */
	if ((p->base = proc_event_base()) == NULL)
		log_fatalx("event_base_new");
	event_base_priority_init(p->base, 2);
	sigs[0] = evsignal_new(p->base, SIGTERM, proc_on_signal, p);
	sigs[1] = evsignal_new(p->base, SIGINT, proc_on_signal, p);
	event_add(sigs[0], NULL);
	event_add(sigs[1], NULL);
	p->peer[ROLE_MASTER] = ipc_new(p->base, ctlfd, "master",
	    master_handlers, p, proc_peer_closed, (void *)(long)ROLE_MASTER);
	if (p->peer[ROLE_MASTER] == NULL)
		log_fatalx("control channel");
}

int
proc_run(struct proc *p)
{
	event_base_dispatch(p->base);
	return 0;
}

int
privsep_ids(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd	*pw;

	if (geteuid() != 0) {
		*uid = geteuid();
		*gid = getegid();
		return 0;
	}
	if ((pw = getpwnam(user)) == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

int
privsep_drop(const char *user, const char *chroot_dir)
{
	uid_t	 uid;
	gid_t	 gid;

	if (geteuid() != 0)
		return 0;
	if (privsep_ids(user, &uid, &gid) == -1) {
		log_warnx("unknown user \"%s\"", user);
		return -1;
	}
	if (uid == 0) {
		log_warnx("refusing to run as root (user %s)", user);
		return -1;
	}
	if (chroot_dir) {
		if (chroot(chroot_dir) == -1 || chdir("/") == -1) {
			log_warn("chroot %s", chroot_dir);
			return -1;
		}
	}
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		log_warn("dropping privileges to %s", user);
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1)
		log_panic("could regain root after dropping privileges");
	return 0;
}
