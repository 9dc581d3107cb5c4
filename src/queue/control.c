/*
 * control - the queue's control socket: `sluice queue flush|hold|release|
 * delete` act on the live queue through it, never on files behind the
 * queue process's back.
 *
 * <spool>/control.sock, mode 0600, owned by the spool owner (root can
 * connect too). One request a connection: a line "VERB [ARG]", one answer
 * line "ok N" (N messages affected) or "error TEXT", then close.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "queue.h"

#define CONTROL_LINE_MAX	512

static struct event	*ev_accept;

static void
control_answer(struct bufferevent *bev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
control_answer(struct bufferevent *bev, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(bev), "\n", 1);
	bufferevent_disable(bev, EV_READ);
}

static void
control_on_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_free(bev);
}

static void
control_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
control_on_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line, *verb, *sp, err[256];
	size_t		 len;
	int		 n;

	(void)arg;
	if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			control_answer(bev, "error request too long");
		return;
	}
	verb = line;
	if ((sp = strchr(line, ' ')) != NULL)
		*sp++ = '\0';
	if (len > CONTROL_LINE_MAX)
		n = -1, snprintf(err, sizeof(err), "request too long");
	else
		n = queue_control(verb, sp ? sp : "", err, sizeof(err));
	if (n == -1) {
		log_info("control: %s %s: %s", verb, sp ? sp : "", err);
		control_answer(bev, "error %s", err);
	} else {
		log_info("control: %s %s: %d message(s)", verb, sp ? sp : "",
		    n);
		control_answer(bev, "ok %d", n);
	}
	free(line);
}

static void
control_on_accept(int lfd, short ev, void *arg)
{
	struct event_base	*base = arg;
	struct bufferevent	*bev;
	int			 fd;

	(void)ev;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1)
		return;
	if ((bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)) ==
	    NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, control_on_read, control_on_write,
	    control_on_event, NULL);
	bufferevent_set_timeouts(bev, &(struct timeval){ 30, 0 }, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Listen on <spool>/control.sock; -1 (logged) if that is impossible. */
int
control_listen(struct event_base *base, const char *spool)
{
	struct sockaddr_un	 sun;
	int			 fd;
	mode_t			 old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/control.sock", spool) >= sizeof(sun.sun_path)) {
		log_warnx("control socket: spool path too long");
		return -1;
	}
	unlink(sun.sun_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return -1;
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 16) == -1) {
		umask(old);
		log_warn("control socket %s", sun.sun_path);
		close(fd);
		return -1;
	}
	umask(old);
	ev_accept = event_new(base, fd, EV_READ | EV_PERSIST,
	    control_on_accept, base);
	if (ev_accept == NULL || event_add(ev_accept, NULL) == -1) {
		close(fd);
		return -1;
	}
	return 0;
}
