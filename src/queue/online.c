/*
 * online - the machine's online state, for routes (masqmail's idea).
 *
 * The source is the config's online-state: always (the state "online"),
 * a file (its first word), or a command (the first word it prints). The
 * queue checks it at start, on reload, on `sluice queue flush` and every
 * online-check-interval; when the word changes, the recipients waiting for
 * a route are tried again.
 *
 * The command runs as the queue's user, from an argument vector (never a
 * shell), with an empty environment but PATH, stdin from /dev/null, its
 * stdout read through a pipe on the event loop (at most 4 KB kept), and a
 * 10 s limit after which it is killed. A command that fails, prints
 * nothing or is killed means "offline".
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "proc.h"
#include "queue.h"
#include "route.h"

#define ONLINE_OUT_MAX		4096
#define ONLINE_CMD_TIMEOUT	10	/* seconds */

static struct proc	*op;
static void		(*on_change)(void);
static char		 state[ROUTE_STATE_MAX + 1] = "online";
static struct event	*ev_tick, *ev_read, *ev_wait;
static pid_t		 child = -1;
static int		 child_fd = -1;
static char		 out[ONLINE_OUT_MAX];
static size_t		 outlen;
static time_t		 child_started;
static int		 again;		/* a check was asked meanwhile */

static void	online_tick(int, short, void *);

const char *
online_state(void)
{
	return state;
}

int
online_has_source(void)
{
	return op != NULL && op->conf->online.kind != ONLINE_ALWAYS;
}

static void
set_state(const char *buf, size_t len)
{
	char	 w[ROUTE_STATE_MAX + 1];

	route_state_word(buf, len, w);
	if (strcmp(w, state) == 0)
		return;
	log_info("online state: %s (was %s)", w, state);
	snprintf(state, sizeof(state), "%s", w);
	if (on_change)
		on_change();
}

static void
check_file(const char *path)
{
	char	 buf[512];
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		if (errno != ENOENT)
			log_warn("online-state file %s", path);
		set_state("", 0);
		return;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	set_state(buf, n > 0 ? (size_t)n : 0);
}

/* The command's output is in and it exited (or was killed). */
static void
child_done(int status)
{
	int	 ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (!ok)
		log_warnx("online-state command %s: %s %d, state offline",
		    op->conf->online.path, WIFEXITED(status) ? "exit" :
		    "signal", WIFEXITED(status) ? WEXITSTATUS(status) :
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	set_state(out, ok ? outlen : 0);
	child = -1;
	if (again) {
		again = 0;
		online_check();
	}
}

/* Reap the command: it closed its output; give it the rest of its time. */
static void
child_reap(int fd, short ev, void *arg)
{
	struct timeval	 tv = { 0, 50000 };
	int		 status;
	pid_t		 r;

	(void)fd;
	(void)ev;
	(void)arg;
	if (child == -1)
		return;
	r = waitpid(child, &status, WNOHANG);
	if (r == child) {
		child_done(status);
		return;
	}
	if (r == -1) {		/* cannot happen: it is our child */
		child_done(1 << 8);
		return;
	}
	if (time(NULL) - child_started >= ONLINE_CMD_TIMEOUT) {
		log_warnx("online-state command %s: timed out, killed",
		    op->conf->online.path);
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		child_done(status);
		return;
	}
	evtimer_add(ev_wait, &tv);
}

static void
child_read(int fd, short ev, void *arg)
{
	ssize_t	 n;
	char	 sink[512];

	(void)ev;
	(void)arg;
	if ((ev & EV_TIMEOUT) ||
	    time(NULL) - child_started >= ONLINE_CMD_TIMEOUT)
		n = 0;		/* it keeps its output open too long */
	else if (outlen < sizeof(out))
		n = read(fd, out + outlen, sizeof(out) - outlen);
	else
		n = read(fd, sink, sizeof(sink));
	if (n > 0) {
		if (outlen < sizeof(out))
			outlen += (size_t)n;
		return;		/* EV_PERSIST */
	}
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	event_del(ev_read);
	event_free(ev_read);
	ev_read = NULL;
	close(child_fd);
	child_fd = -1;
	child_reap(-1, 0, NULL);
}

static void
check_command(const struct online_cfg *o)
{
	const char	*argv[ONLINE_ARGV_MAX + 1];
	char *const	 envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct timeval	 tv = { ONLINE_CMD_TIMEOUT, 0 };
	int		 p[2], devnull;

	if (child != -1) {
		again = 1;
		return;
	}
	online_argv(o, argv);
	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn("online-state: pipe");
		return;
	}
	switch ((child = fork())) {
	case -1:
		log_warn("online-state: fork");
		close(p[0]);
		close(p[1]);
		return;
	case 0:
		devnull = open("/dev/null", O_RDWR);
		if (devnull == -1 || dup2(devnull, 0) == -1 ||
		    dup2(p[1], 1) == -1 || dup2(devnull, 2) == -1)
			_exit(71);
		execve(o->path, (char *const *)(uintptr_t)argv, envp);
		_exit(127);
	}
	close(p[1]);
	child_fd = p[0];
	outlen = 0;
	child_started = time(NULL);
	fcntl(child_fd, F_SETFL, O_NONBLOCK);
	if ((ev_read = event_new(op->base, child_fd, EV_READ | EV_PERSIST,
	    child_read, NULL)) == NULL || event_add(ev_read, &tv) == -1)
		log_panic("online-state: event_new");
}

void
online_check(void)
{
	const struct online_cfg	*o = &op->conf->online;

	switch (o->kind) {
	case ONLINE_ALWAYS:
		set_state("online", 6);
		break;
	case ONLINE_FILE:
		check_file(o->path);
		break;
	case ONLINE_COMMAND:
		check_command(o);
		break;
	}
}

static void
online_tick(int fd, short ev, void *arg)
{
	struct timeval	 tv = { op->conf->online_check, 0 };

	(void)fd;
	(void)ev;
	(void)arg;
	online_check();
	if (online_has_source())
		evtimer_add(ev_tick, &tv);
	else
		evtimer_del(ev_tick);
}

/* Start (or, after a reload, restart) checking. */
void
online_start(struct proc *p, void (*changed)(void))
{
	/* with a source, nothing leaves before its first answer */
	if (op == NULL && p->conf->online.kind != ONLINE_ALWAYS)
		snprintf(state, sizeof(state), "offline");
	op = p;
	on_change = changed;
	if (ev_tick == NULL && ((ev_tick = evtimer_new(p->base, online_tick,
	    NULL)) == NULL || (ev_wait = evtimer_new(p->base, child_reap,
	    NULL)) == NULL))
		log_panic("online-state: evtimer_new");
	online_tick(-1, 0, NULL);
}
