/*
 * ipc - framed messages over SOCK_SEQPACKET socket pairs. See ipc.h.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"

struct ipc_hdr {
	uint16_t	 version;
	uint16_t	 type;
	uint32_t	 id;
	uint32_t	 len;
};

struct ipc_out {
	TAILQ_ENTRY(ipc_out) entry;
	int		 fd;
	size_t		 len;
	unsigned char	 frame[];
};

struct ipc {
	int			 fd;
	char			 peer[16];
	struct event		*ev_read;
	struct event		*ev_write;
	const struct ipc_handler *handlers;
	void			*arg;
	void			(*on_close)(struct ipc *, void *);
	void			*closearg;
	TAILQ_HEAD(, ipc_out)	 out;
	int			 dead;
	int			*in_dispatch;	/* freed while dispatching? */
};

static const char *const type_names[IMSG_MAX] = {
	[IMSG_NONE] = "NONE",
	[CHILD_PEER_SET] = "CHILD_PEER_SET",
	[CHILD_CONF_RELOAD] = "CHILD_CONF_RELOAD",
	[LOOKUP_RCPT_CHECK] = "LOOKUP_RCPT_CHECK",
	[SMTP_RCPT_RESULT] = "SMTP_RCPT_RESULT",
	[QUEUE_MSG_OPEN] = "QUEUE_MSG_OPEN",
	[SMTP_MSG_OPENED] = "SMTP_MSG_OPENED",
	[QUEUE_MSG_RCPT] = "QUEUE_MSG_RCPT",
	[QUEUE_MSG_COMMIT] = "QUEUE_MSG_COMMIT",
	[SMTP_MSG_COMMITTED] = "SMTP_MSG_COMMITTED",
	[QUEUE_MSG_ABORT] = "QUEUE_MSG_ABORT",
	[LOOKUP_RCPT_RESOLVE] = "LOOKUP_RCPT_RESOLVE",
	[QUEUE_RCPT_RESOLVED] = "QUEUE_RCPT_RESOLVED",
	[DELIVER_MAILDIR] = "DELIVER_MAILDIR",
	[QUEUE_DELIVER_RESULT] = "QUEUE_DELIVER_RESULT",
	[DELIVER_SMTP] = "DELIVER_SMTP",
	[QUEUE_RELAY_RESULT] = "QUEUE_RELAY_RESULT",
	[QUEUE_RCPT_TARGETS] = "QUEUE_RCPT_TARGETS",
	[DELIVER_PIPE] = "DELIVER_PIPE",
	[QUEUE_PIPE_RESULT] = "QUEUE_PIPE_RESULT",
	[LOOKUP_AUTH] = "LOOKUP_AUTH",
	[SMTP_AUTH_RESULT] = "SMTP_AUTH_RESULT",
	[LOOKUP_SENDER_CHECK] = "LOOKUP_SENDER_CHECK",
	[SMTP_SENDER_RESULT] = "SMTP_SENDER_RESULT",
	[SMTP_TLS_FILE] = "SMTP_TLS_FILE",
	[LOOKUP_MASK_RESOLVE] = "LOOKUP_MASK_RESOLVE",
	[QUEUE_MASK_RESOLVED] = "QUEUE_MASK_RESOLVED",
};

const char *
ipc_type_name(uint16_t t)
{
	return t < IMSG_MAX && type_names[t] ? type_names[t] : "UNKNOWN";
}

const char *
ipc_peer(const struct ipc *c)
{
	return c->peer;
}

static void	ipc_on_read(int, short, void *);
static void	ipc_on_write(int, short, void *);

struct ipc *
ipc_new(struct event_base *base, int fd, const char *peer,
    const struct ipc_handler *handlers, void *arg,
    void (*on_close)(struct ipc *, void *), void *closearg)
{
	struct ipc	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->handlers = handlers;
	c->arg = arg;
	c->on_close = on_close;
	c->closearg = closearg;
	TAILQ_INIT(&c->out);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		goto fail;
	c->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, ipc_on_read, c);
	c->ev_write = event_new(base, fd, EV_WRITE, ipc_on_write, c);
	if (c->ev_read == NULL || c->ev_write == NULL ||
	    event_add(c->ev_read, NULL) == -1)
		goto fail;
	return c;
fail:
	if (c->ev_read)
		event_free(c->ev_read);
	if (c->ev_write)
		event_free(c->ev_write);
	free(c);
	return NULL;
}

void
ipc_free(struct ipc *c)
{
	struct ipc_out	*o;

	if (c == NULL)
		return;
	if (c->in_dispatch) {
		/* freed by a handler: the read loop finishes the job */
		*c->in_dispatch = 1;
		c->in_dispatch = NULL;
	}
	while ((o = TAILQ_FIRST(&c->out)) != NULL) {
		TAILQ_REMOVE(&c->out, o, entry);
		if (o->fd != -1)
			close(o->fd);
		free(o);
	}
	event_free(c->ev_read);
	event_free(c->ev_write);
	close(c->fd);
	free(c);
}

int
ipc_send(struct ipc *c, uint16_t type, uint32_t id, int fd, const void *data,
    size_t len)
{
	struct ipc_out	*o;
	struct ipc_hdr	 h;

	if (c == NULL || c->dead || len > IPC_FRAME_MAX - sizeof(h)) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	if ((o = malloc(sizeof(*o) + sizeof(h) + len)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	h.version = IPC_VERSION;
	h.type = type;
	h.id = id;
	h.len = (uint32_t)len;
	memcpy(o->frame, &h, sizeof(h));
	if (len)
		memcpy(o->frame + sizeof(h), data, len);
	o->len = sizeof(h) + len;
	o->fd = fd;
	TAILQ_INSERT_TAIL(&c->out, o, entry);
	ipc_on_write(c->fd, EV_WRITE, c);
	return 0;
}

int
ipc_send_buf(struct ipc *c, uint16_t type, uint32_t id, int fd,
    const struct buf *b)
{
	if (b->err) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	return ipc_send(c, type, id, fd, b->data, b->len);
}

/* Send one frame; 1 sent, 0 would block, -1 error. */
static int
ipc_write_one(struct ipc *c, struct ipc_out *o)
{
	struct msghdr	 mh;
	struct iovec	 iov;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr	*cmp;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = o->frame;
	iov.iov_len = o->len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (o->fd != -1) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		cmp = CMSG_FIRSTHDR(&mh);
		cmp->cmsg_level = SOL_SOCKET;
		cmp->cmsg_type = SCM_RIGHTS;
		cmp->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmp), &o->fd, sizeof(int));
	}
	for (;;) {
		if (sendmsg(c->fd, &mh, MSG_NOSIGNAL) != -1)
			return 1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return 0;
		return -1;
	}
}

static void
ipc_on_write(int fd, short ev, void *arg)
{
	struct ipc	*c = arg;
	struct ipc_out	*o;
	int		 r;

	(void)fd;
	(void)ev;
	while ((o = TAILQ_FIRST(&c->out)) != NULL) {
		if ((r = ipc_write_one(c, o)) == 0) {
			event_add(c->ev_write, NULL);
			return;
		}
		if (r == -1 && !c->dead) {
			log_warn("ipc: send to %s", c->peer);
			c->dead = 1;
		}
		TAILQ_REMOVE(&c->out, o, entry);
		if (o->fd != -1)
			close(o->fd);
		free(o);
	}
}

void
ipc_flush(struct ipc *c)
{
	int	 fl = fcntl(c->fd, F_GETFL);

	fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
	ipc_on_write(c->fd, EV_WRITE, c);
	fcntl(c->fd, F_SETFL, fl);
}

/* Find the handler for a frame and run it; unknown types are refused. */
static void
ipc_dispatch(struct ipc *c, struct ipc_msg *m)
{
	const struct ipc_handler	*h;

	for (h = c->handlers; h->fn != NULL; h++)
		if (h->type == m->type) {
			h->fn(c, m, c->arg);
			return;
		}
	log_warnx("ipc: unexpected %s (%u) from %s, dropped",
	    ipc_type_name(m->type), m->type, c->peer);
	if (m->fd != -1)
		close(m->fd);
}

/* Read one datagram; 1 got a frame, 0 nothing more now, -1 closed/error. */
static int
ipc_read_one(struct ipc *c, unsigned char *frame, size_t *len, int *fd)
{
	struct msghdr	 mh;
	struct iovec	 iov;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct cmsghdr	*cmp;
	ssize_t		 n;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = frame;
	iov.iov_len = IPC_FRAME_MAX;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	*fd = -1;
	do
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0)
		return -1;
	for (cmp = CMSG_FIRSTHDR(&mh); cmp; cmp = CMSG_NXTHDR(&mh, cmp)) {
		if (cmp->cmsg_level != SOL_SOCKET ||
		    cmp->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cmp->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cmp) + i * sizeof(int), sizeof(f));
			if (*fd == -1)
				*fd = f;
			else
				close(f);	/* at most one per frame */
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		log_warnx("ipc: truncated frame from %s", c->peer);
		if (*fd != -1)
			close(*fd);
		*fd = -1;
		*len = 0;
		return 1;
	}
	*len = (size_t)n;
	return 1;
}

static void
ipc_on_read(int fd, short ev, void *arg)
{
	struct ipc	*c = arg;
	unsigned char	*frame;
	struct ipc_msg	 m;
	struct ipc_hdr	 h;
	size_t		 len;
	int		 r, freed = 0;

	(void)fd;
	(void)ev;
	if ((frame = malloc(IPC_FRAME_MAX)) == NULL)
		return;		/* try again on the next event */
	c->in_dispatch = &freed;
	while (!freed && (r = ipc_read_one(c, frame, &len, &m.fd)) == 1) {
		memcpy(&h, frame, len >= sizeof(h) ? sizeof(h) : 0);
		if (len < sizeof(h) || h.version != IPC_VERSION ||
		    h.len != len - sizeof(h)) {
			log_warnx("ipc: malformed frame from %s, dropped",
			    c->peer);
			if (m.fd != -1)
				close(m.fd);
			continue;
		}
		m.type = h.type;
		m.id = h.id;
		m.data = frame + sizeof(h);
		m.len = h.len;
		ipc_dispatch(c, &m);
	}
	free(frame);
	if (freed)
		return;
	c->in_dispatch = NULL;
	if (r == -1) {
		c->dead = 1;
		event_del(c->ev_read);
		if (c->on_close)
			c->on_close(c, c->closearg);
	}
}

void
ipc_put_u32(struct buf *b, uint32_t v)
{
	buf_add(b, &v, sizeof(v));
}

void
ipc_put_u64(struct buf *b, uint64_t v)
{
	buf_add(b, &v, sizeof(v));
}

void
ipc_put_mem(struct buf *b, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		b->err = BUF_ETOOBIG;
		return;
	}
	ipc_put_u32(b, (uint32_t)n);
	buf_add(b, p, n);
}

void
ipc_put_str(struct buf *b, const char *s)
{
	ipc_put_mem(b, s, strlen(s));
}

void
ipc_rd_init(struct ipc_rd *r, const struct ipc_msg *m)
{
	r->p = m->data;
	r->left = m->len;
	r->err = 0;
}

static int
ipc_take(struct ipc_rd *r, void *dst, size_t n)
{
	if (r->err || r->left < n) {
		r->err = 1;
		memset(dst, 0, n);
		return -1;
	}
	memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
	return 0;
}

uint32_t
ipc_get_u32(struct ipc_rd *r)
{
	uint32_t	 v;

	ipc_take(r, &v, sizeof(v));
	return v;
}

uint64_t
ipc_get_u64(struct ipc_rd *r)
{
	uint64_t	 v;

	ipc_take(r, &v, sizeof(v));
	return v;
}

const char *
ipc_get_mem(struct ipc_rd *r, size_t *len)
{
	uint32_t	 n = ipc_get_u32(r);
	const char	*p;

	*len = 0;
	if (r->err || r->left < n) {
		r->err = 1;
		return "";
	}
	p = (const char *)r->p;
	r->p += n;
	r->left -= n;
	*len = n;
	return p;
}

void
ipc_get_str(struct ipc_rd *r, char *dst, size_t dstlen)
{
	size_t		 n;
	const char	*p = ipc_get_mem(r, &n);

	if (r->err || n >= dstlen || memchr(p, '\0', n) != NULL) {
		r->err = 1;
		if (dstlen)
			dst[0] = '\0';
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

int
ipc_get_end(struct ipc_rd *r)
{
	return r->err || r->left != 0 ? -1 : 0;
}
