/*
 * sluiced - the master process.
 *
 * Reads the configuration, prepares the spool, opens the listening sockets
 * (as root if needed), starts the children (smtp, queue, lookup, deliver)
 * and wires them together: every pair of processes that talks gets a fresh
 * SOCK_SEQPACKET socket pair, handed over with CHILD_PEER_SET. A child that
 * dies is started again and its peers get new channels (P10). SIGHUP
 * re-reads the configuration and tells the children; SIGTERM stops them all.
 */
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "sluiced.h"
#include "sluice_version.h"
#include "spool.h"

#define RESTART_DELAY	1	/* seconds, for a child that died young */

struct child {
	pid_t		 pid;
	struct ipc	*ctl;
	time_t		 started;
	struct event	*restart;
};

static const struct { enum ipc_role a, b; } edges[] = {
	{ ROLE_SMTP, ROLE_QUEUE },
	{ ROLE_SMTP, ROLE_LOOKUP },
	{ ROLE_QUEUE, ROLE_LOOKUP },
	{ ROLE_QUEUE, ROLE_DELIVER },
	{ ROLE_QUEUE, ROLE_RELAY },
	{ ROLE_QUEUE, ROLE_PIPE },
};

static struct config	 conf;
static struct event_base *base;
static struct child	 children[ROLE_MAX];
static struct listener	 listeners[CONFIG_LISTEN_MAX + 1];
static size_t		 nlisteners;
static int		 shutting_down;
static char		 pidfile[PATH_MAX + 16];
static char		 sockpath[PATH_MAX + 32];
static int		 foreground;

static const struct ipc_handler no_handlers[] = { { 0, NULL } };

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: sluiced [-c FILE] [-F] [-v]\n"
	    "  -c FILE  configuration (default $SLUICE_CONFIG, else %s)\n"
	    "  -F       stay in the foreground, log on stderr\n"
	    "  -v       verbose (debug) logging\n", CONFIG_DEFAULT_PATH);
	exit(64);
}

static int
listen_inet(const struct listen_cfg *l)
{
	struct addrinfo	 hints, *res, *ai;
	int		 fd = -1, on = 1, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(l->host, l->port, &hints, &res)) != 0)
		log_fatalx("listen %s:%s: %s", l->host, l->port,
		    gai_strerror(r));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
			    sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 511) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		log_fatal("listen %s:%s", l->host, l->port);
	return fd;
}

static int
listen_local(const char *path, uid_t uid, gid_t gid)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		log_fatalx("%s: path too long for a socket", path);
	memcpy(sun.sun_path, path, strlen(path));
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, 0666) == -1 || listen(fd, 511) == -1)
		log_fatal("local socket %s", path);
	if (geteuid() == 0 && chown(path, uid, gid) == -1)
		log_warn("chown %s", path);
	return fd;
}

static void
open_listeners(uid_t uid, gid_t gid)
{
	size_t	 i;
	static const char *const kinds[] = { "smtp", "submission",
	    "submissions" };

	for (i = 0; i < conf.nlisten; i++) {
		listeners[i].fd = listen_inet(&conf.listen[i]);
		listeners[i].kind = conf.listen[i].kind;
		snprintf(listeners[i].name, sizeof(listeners[i].name),
		    "%s:%s %s", conf.listen[i].host, conf.listen[i].port,
		    kinds[conf.listen[i].kind]);
	}
	snprintf(sockpath, sizeof(sockpath), "%s/public/submit.sock",
	    conf.spool);
	listeners[i].fd = listen_local(sockpath, uid, gid);
	listeners[i].kind = LISTEN_SUBMISSION;
	listeners[i].local = 1;
	snprintf(listeners[i].name, sizeof(listeners[i].name), "local");
	nlisteners = i + 1;
}

/* In a new child: keep only what it needs, drop privileges, run. */
static void __attribute__((noreturn))
child_run(enum ipc_role role, int ctlfd)
{
	struct proc	 p;
	int		 keep_listeners = role == ROLE_SMTP;
	int		 r = 1;

	for (int fd = 3; fd < 1024; fd++) {
		int keep = fd == ctlfd;
		for (size_t i = 0; keep_listeners && i < nlisteners; i++)
			keep |= fd == listeners[i].fd;
		if (!keep)
			close(fd);
	}
	memset(&p, 0, sizeof(p));
	p.role = role;
	p.name = proc_role_name(role);
	p.conf = &conf;
	if (log_init(p.name, foreground ? "stderr" : conf.log,
	    conf.log_json) == -1)
		log_init(p.name, "stderr", conf.log_json);
	signal(SIGCHLD, SIG_DFL);
	proc_init(&p, ctlfd);
	switch (role) {
	case ROLE_SMTP:
		/* TLS keys are read before the chroot (smtpd_main) */
		r = smtpd_main(&p, listeners, nlisteners);
		break;
	case ROLE_QUEUE:
		if (privsep_drop(conf.user, NULL) == -1)
			exit(1);
		r = queue_main(&p);
		break;
	case ROLE_LOOKUP:
		if (privsep_drop(conf.user, NULL) == -1)
			exit(1);
		r = lookup_main(&p);
		break;
	case ROLE_DELIVER:
		if (privsep_drop(conf.user, NULL) == -1)
			exit(1);
		r = deliver_main(&p);
		break;
	case ROLE_RELAY:
		if (privsep_drop(conf.user, NULL) == -1)
			exit(1);
		r = relay_main(&p);
		break;
	case ROLE_PIPE:
		/* keeps root, to run each robot as its own user (like
		   Postfix's local); it has no socket but its queue channel */
		r = pipe_main(&p);
		break;
	default:
		break;
	}
	exit(r);
}

static int
child_start(enum ipc_role role)
{
	int	 sv[2];
	pid_t	 pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("fork");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		/* the epoll instance is shared with the parent: detach first */
		event_reinit(base);
		event_base_free(base);	/* the child makes its own */
		base = NULL;
		child_run(role, sv[1]);
	}
	close(sv[1]);
	children[role].pid = pid;
	children[role].started = time(NULL);
	children[role].ctl = ipc_new(base, sv[0], proc_role_name(role),
	    no_handlers, NULL, NULL, NULL);
	if (children[role].ctl == NULL)
		log_fatalx("ipc_new");
	log_info("started %s process (pid %ld)", proc_role_name(role),
	    (long)pid);
	return 0;
}

/* Give both ends of each edge of `role` a fresh channel. */
static void
wire(enum ipc_role role)
{
	struct buf	 b;
	int		 sv[2];

	buf_init(&b, 64);
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		enum ipc_role a = edges[i].a, z = edges[i].b;
		if (role != ROLE_MAX && a != role && z != role)
			continue;
		if (children[a].pid <= 0 || children[z].pid <= 0)
			continue;
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    sv) == -1) {
			log_warn("socketpair");
			continue;
		}
		buf_reset(&b);
		ipc_put_u32(&b, z);
		ipc_send_buf(children[a].ctl, CHILD_PEER_SET, 0, sv[0], &b);
		buf_reset(&b);
		ipc_put_u32(&b, a);
		ipc_send_buf(children[z].ctl, CHILD_PEER_SET, 0, sv[1], &b);
	}
	buf_free(&b);
}

static void
on_restart(int fd, short ev, void *arg)
{
	enum ipc_role	 role = (enum ipc_role)(long)arg;

	(void)fd;
	(void)ev;
	if (shutting_down)
		return;
	if (child_start(role) == 0)
		wire(role);
	else
		event_add(children[role].restart,
		    &(struct timeval){ RESTART_DELAY, 0 });
}

static void
on_sigchld(int sig, short ev, void *arg)
{
	pid_t	 pid;
	int	 status, alive = 0;

	(void)sig;
	(void)ev;
	(void)arg;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int r = ROLE_SMTP; r < ROLE_MAX; r++) {
			if (children[r].pid != pid)
				continue;
			if (WIFSIGNALED(status))
				log_warnx("%s process (pid %ld) killed by "
				    "signal %d", proc_role_name(r), (long)pid,
				    WTERMSIG(status));
			else if (!shutting_down || WEXITSTATUS(status))
				log_warnx("%s process (pid %ld) exited with "
				    "status %d", proc_role_name(r), (long)pid,
				    WEXITSTATUS(status));
			children[r].pid = 0;
			ipc_free(children[r].ctl);
			children[r].ctl = NULL;
			if (shutting_down)
				break;
			event_add(children[r].restart, &(struct timeval){
			    time(NULL) - children[r].started < 5 ?
			    RESTART_DELAY : 0, 0 });
		}
	}
	for (int r = ROLE_SMTP; r < ROLE_MAX; r++)
		alive |= children[r].pid > 0;
	if (shutting_down && !alive)
		event_base_loopexit(base, NULL);
}

static void
on_kill_timeout(int fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	for (int r = ROLE_SMTP; r < ROLE_MAX; r++)
		if (children[r].pid > 0) {
			log_warnx("%s process did not stop, killing it",
			    proc_role_name(r));
			kill(children[r].pid, SIGKILL);
		}
}

static void
on_sigterm(int sig, short ev, void *arg)
{
	static struct event	*killer;
	int			 alive = 0;

	(void)ev;
	(void)arg;
	if (shutting_down)
		return;
	log_info("received signal %d, shutting down", sig);
	shutting_down = 1;
	/* the queue stops last: it may still be committing */
	for (int r = ROLE_SMTP; r < ROLE_MAX; r++)
		if (children[r].pid > 0) {
			kill(children[r].pid, SIGTERM);
			alive = 1;
		}
	if (!alive) {
		event_base_loopexit(base, NULL);
		return;
	}
	if (killer == NULL)
		killer = evtimer_new(base, on_kill_timeout, NULL);
	if (killer)
		event_add(killer, &(struct timeval){ 10, 0 });
}

/*
 * The smtp process is chrooted and unprivileged: on SIGHUP we open the
 * certificate and key for it (it re-reads them, and keeps the running
 * pair if the new one does not load).
 */
static void
send_tls_files(void)
{
	const char	*path[2] = { conf.tls_cert, conf.tls_key };
	struct buf	 b;
	int		 fd[2];

	if (conf.tls_cert[0] == '\0' || children[ROLE_SMTP].ctl == NULL)
		return;
	for (int i = 0; i < 2; i++)
		if ((fd[i] = open(path[i], O_RDONLY | O_CLOEXEC)) == -1) {
			log_warn("TLS: %s (keeping the running certificate)",
			    path[i]);
			if (i)
				close(fd[0]);
			return;
		}
	for (uint32_t i = 0; i < 2; i++) {
		buf_init(&b, 8);
		ipc_put_u32(&b, i);
		ipc_send_buf(children[ROLE_SMTP].ctl, SMTP_TLS_FILE, 0, fd[i],
		    &b);
		buf_free(&b);
	}
}

static void
on_sighup(int sig, short ev, void *arg)
{
	struct config	 nc;
	char		 err[1024];

	(void)sig;
	(void)ev;
	(void)arg;
	if (config_load(&nc, conf.path, err, sizeof(err)) == -1) {
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		return;
	}
	conf = nc;	/* listeners and spool need a restart to change */
	log_info("reloading configuration");
	/* each child gets the file open (own offset): smtp is chrooted */
	for (int r = ROLE_SMTP; r < ROLE_MAX; r++)
		if (children[r].ctl)
			ipc_send(children[r].ctl, CHILD_CONF_RELOAD, 0,
			    open(conf.path, O_RDONLY | O_CLOEXEC), NULL, 0);
	send_tls_files();
}

/* mkdir -p; what we create belongs to the unprivileged user */
static void
ensure_dir(const char *path, uid_t uid, gid_t gid)
{
	char	 tmp[PATH_MAX];
	size_t	 len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(tmp, 0755) == 0) {
			if (geteuid() == 0 && chown(tmp, uid, gid) == -1)
				log_warn("chown %s", tmp);
		} else if (errno != EEXIST)
			log_warn("mkdir %s", tmp);
		*p = c;
		if (c == '\0')
			break;
	}
}

static int
write_pidfile(void)
{
	char	 line[32];
	int	 fd;

	snprintf(pidfile, sizeof(pidfile), "%s/sluiced.pid", conf.spool);
	if ((fd = open(pidfile, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1)
		log_fatal("%s", pidfile);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1)
		log_fatalx("another sluiced is running on spool %s", conf.spool);
	snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		log_fatal("%s", pidfile);
	return fd;	/* kept open: the lock lives as long as we do */
}

/* The spool, the Maildir base and the database directory, as the user. */
static void
prepare_dirs(uid_t uid, gid_t gid)
{
	struct spool	 sp;
	char		 err[1024], dir[PATH_MAX], *slash;

	if (spool_open(&sp, conf.spool, 1, uid, gid, err, sizeof(err)) == -1)
		log_fatalx("spool: %s", err);
	if (spool_check_fsync(&sp, err, sizeof(err)) == -1)
		log_fatalx("%s: %s", conf.spool, err);
	spool_close(&sp);
	ensure_dir(conf.mailboxes, uid, gid);
	if (strncmp(conf.database, "sqlite:", 7) == 0) {
		snprintf(dir, sizeof(dir), "%s", conf.database + 7);
		if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
			*slash = '\0';
			ensure_dir(dir, uid, gid);
		}
	}
}

/* Signals, then every child, then the channels between them. */
static void
start_children(void)
{
	static struct event	*sigs[4];
	static const int	 signo[4] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };
	static void		(*const fn[4])(int, short, void *) = {
	    on_sigchld, on_sigterm, on_sigterm, on_sighup };

	if ((base = event_base_new()) == NULL)
		log_fatalx("event_base_new");
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < 4; i++)
		if ((sigs[i] = evsignal_new(base, signo[i], fn[i], NULL)) ==
		    NULL || evsignal_add(sigs[i], NULL) == -1)
			log_fatalx("signal events");
	for (int r = ROLE_SMTP; r < ROLE_MAX; r++) {
		children[r].restart = evtimer_new(base, on_restart,
		    (void *)(long)r);
		if (child_start((enum ipc_role)r) == -1)
			log_fatalx("cannot start the %s process",
			    proc_role_name((enum ipc_role)r));
	}
	wire(ROLE_MAX);
}

int
main(int argc, char *argv[])
{
	const char	*cpath = NULL;
	char		 err[1024];
	uid_t		 uid;
	gid_t		 gid;
	int		 ch;

	while ((ch = getopt(argc, argv, "c:Fvh")) != -1) {
		switch (ch) {
		case 'c': cpath = optarg; break;
		case 'F': foreground = 1; break;
		case 'v': log_verbose = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("master", "stderr", 0);
	if (config_load(&conf, config_path(cpath), err, sizeof(err)) == -1) {
		fprintf(stderr, "sluiced: %s\n", err);
		return 78;
	}
	if (log_init("master", foreground ? "stderr" : conf.log,
	    conf.log_json) == -1) {
		fprintf(stderr, "sluiced: log %s: %s\n", conf.log,
		    strerror(errno));
		return 73;
	}
	if (privsep_ids(conf.user, &uid, &gid) == -1)
		log_fatalx("user %s: no such user (see `user` in %s)",
		    conf.user, conf.path);
	prepare_dirs(uid, gid);
	if (!foreground && daemon(0, 0) == -1)
		log_fatal("daemon");
	write_pidfile();
	open_listeners(uid, gid);
	start_children();
	log_info("sluiced %s ready: hostname %s, spool %s", SLUICE_VERSION,
	    conf.hostname, conf.spool);
	event_base_dispatch(base);
	unlink(sockpath);
	unlink(pidfile);
	log_info("stopped");
	return 0;
}
