/*
 * milter - the milter client of an SMTP session (see milter.h).
 *
 * One step (MAIL, RCPT, DATA) walks the milters in order. For the
 * current milter, next_cmd() builds the next command of the step; the
 * answer is awaited unless the filter asked for no reply (SMFIP_NR_*).
 * Replies are read in on_read(): a frame is taken only when complete and
 * within MILTER_REPLY_MAX (a larger one is a failure, never buffered).
 * Read is enabled only while a reply is due, so the per-milter timeout
 * is a bufferevent read timeout.
 *
 * The body is re-read from the data file (the queue opens it O_RDWR) at
 * the end of data, with CRLF line ends as on the wire (the spool's are LF), after our own checks passed: nothing is streamed to a
 * filter for a message we would reject anyway, and each milter reads it
 * from the start.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "milter.h"
#include "milter_proto.h"
#include "proc.h"
#include "rewrite.h"
#include "sluiced.h"
#include "smtpd.h"

#define MILTER_HDRS_MAX		(32 * 1024)	/* added header lines */
#define MILTER_HDRSEC_MAX	(256 * 1024)	/* header section sent */
#define MILTER_OUT_HIGH		(256 * 1024)	/* then wait for a drain */
#define MILTER_PROGRESS_MAX	10	/* SMFIR_PROGRESS: at most this many
					   timeouts for one command */
#define MILTER_EDITS_MAX	64	/* header changes per message */
#define MILTER_EDIT_HDR_MAX	(1024 * 1024)	/* header section edited */
#define MILTER_MOVE_CHUNK	(64 * 1024)	/* body moved in steps of */

/* a change-header, or an insert-header below the top (milter_hdr_edit) */
struct milter_edit {
	int		 ins, del;
	uint32_t	 index;
	char		 name[MILTER_HDR_NAME_MAX + 1];
	size_t		 off, len;	/* the new field in edit_lines */
};

enum mc_state { MC_NEW = 0, MC_CONNECTING, MC_OPEN, MC_DEAD };

/* the steps of one stage, in order */
enum mc_cmd {
	CMD_OPTNEG, CMD_CONNECT, CMD_HELO, CMD_MAIL, CMD_RCPT, CMD_DATA,
	CMD_HEADER, CMD_EOH, CMD_BODY, CMD_EOB, CMD_DONE,
};

struct milter_conn {
	struct milter_session	*ms;
	struct milter_cfg	 cfg;
	struct bufferevent	*bev;
	enum mc_state		 state;
	uint32_t		 version, actions, protocol;
	int			 greeted;	/* CONNECT and HELO sent */
	int			 conn_accepted;	/* no more questions */
	int			 in_msg;	/* MAIL sent, EOB not answered */
	int			 msg_accepted;
};

struct milter_session {
	struct smtp_session	*s;
	size_t			 n, cur;
	struct milter_conn	 c[CONFIG_MILTER_MAX];
	enum milter_stage	 stage;
	char			 arg[ADDR_STR_MAX + 1];
	enum mc_cmd		 cmd;		/* the last command sent */
	int			 waiting;	/* a reply is due */
	int			 draining;	/* waiting for output to go */
	int			 busy;		/* inside milter_step() */
	int			 running;	/* a step is under way */
	time_t			 asked;		/* when the reply was due */
	/* the data step */
	struct buf		 hdrsec;	/* header section read */
	size_t			 hdr_pos, hdr_end;
	off_t			 body_off;
	int			 body_done;
	char			*chunk;
	/* outcome */
	enum milter_verdict	 verdict;
	char			 reply[MILTER_TEXT_MAX + 1];
	enum milter_verdict	 conn_verdict;	/* at CONNECT/HELO: sticky */
	char			 conn_reply[MILTER_TEXT_MAX + 1];
	int			 held, discard;
	struct buf		 hdrs;
	struct buf		 pkt;
	struct milter_edit	 edits[MILTER_EDITS_MAX];
	size_t			 nedits;
	struct buf		 edit_lines;
	/* a replaced body (SMFIR_REPLBODY), LF line ends, in a memfd */
	int			 body_fd;	/* -1: none */
	unsigned long long	 body_len;
	size_t			 body_from;	/* the milter writing it */
	int			 body_cr;	/* a CR not yet written */
};

static void	advance(struct milter_session *);
static void	on_read(struct bufferevent *, void *);
static void	on_write(struct bufferevent *, void *);
static void	on_event(struct bufferevent *, short, void *);

static const char *
qid_or_id(const struct milter_session *ms, char *tmp, size_t len)
{
	if (ms->s->qid[0])
		return ms->s->qid;
	snprintf(tmp, len, "%u", ms->s->id);
	return tmp;
}

static struct milter_session *
ms_get(struct smtp_session *s)
{
	struct milter_session	*ms;

	if (s->milter)
		return s->milter;
	if ((ms = calloc(1, sizeof(*ms))) == NULL)
		return NULL;
	ms->s = s;
	ms->n = smtpd.conf->nmilters;
	for (size_t i = 0; i < ms->n; i++) {
		ms->c[i].ms = ms;
		ms->c[i].cfg = smtpd.conf->milters[i];
	}
	buf_init(&ms->hdrs, MILTER_HDRS_MAX);
	buf_init(&ms->hdrsec, MILTER_HDRSEC_MAX);
	buf_init(&ms->pkt, MILTER_CHUNK_MAX + 64);
	buf_init(&ms->edit_lines, MILTER_HDRS_MAX);
	ms->body_fd = -1;
	s->milter = ms;
	return ms;
}

static void
conn_close(struct milter_conn *mc)
{
	if (mc->bev) {
		bufferevent_free(mc->bev);
		mc->bev = NULL;
	}
}

void
milter_session_free(struct smtp_session *s)
{
	struct milter_session	*ms = s->milter;
	static const char	 quit[5] = { 0, 0, 0, 1, MILTER_C_QUIT };

	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *mc = &ms->c[i];
		if (mc->bev && mc->state == MC_OPEN)
			/* best effort: the socket closes right after */
			(void)write(bufferevent_getfd(mc->bev), quit,
			    sizeof(quit));
		conn_close(mc);
	}
	buf_free(&ms->hdrs);
	buf_free(&ms->hdrsec);
	buf_free(&ms->pkt);
	buf_free(&ms->edit_lines);
	if (ms->body_fd != -1)
		close(ms->body_fd);
	free(ms->chunk);
	free(ms);
	s->milter = NULL;
}

const char *
milter_reply_text(const struct smtp_session *s)
{
	return s->milter ? s->milter->reply : "451 4.3.0 Filter error";
}

const struct buf *
milter_headers(const struct smtp_session *s)
{
	return s->milter ? &s->milter->hdrs : NULL;
}

int
milter_held(const struct smtp_session *s)
{
	return s->milter ? s->milter->held : 0;
}

void
milter_tx_reset(struct smtp_session *s)
{
	struct milter_session	*ms = s->milter;
	struct buf		 b;

	if (ms == NULL)
		return;
	buf_init(&b, 16);
	milter_put_cmd(&b, MILTER_C_ABORT, NULL, 0);
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *mc = &ms->c[i];
		if (mc->in_msg && mc->state == MC_OPEN && mc->bev)
			bufferevent_write(mc->bev, b.data, b.len);
		mc->in_msg = 0;
		mc->msg_accepted = 0;
	}
	buf_free(&b);
	buf_reset(&ms->hdrs);
	buf_reset(&ms->hdrsec);
	buf_reset(&ms->edit_lines);
	ms->nedits = 0;
	if (ms->body_fd != -1)
		close(ms->body_fd);
	ms->body_fd = -1;
	ms->held = ms->discard = 0;
}

/* set the verdict and its reply line */
static void
set_verdict(struct milter_session *ms, enum milter_verdict v, const char *text)
{
	ms->verdict = v;
	snprintf(ms->reply, sizeof(ms->reply), "%s", text);
}

/* The step is over (verdict set): tell the session, unless synchronous. */
static void
finish(struct milter_session *ms)
{
	struct smtp_session	*s = ms->s;

	ms->waiting = ms->draining = 0;
	ms->running = 0;
	if (ms->verdict == MILTER_V_CONTINUE && ms->stage == MILTER_S_DATA &&
	    (ms->discard || s->nrcpts == 0))
		ms->verdict = MILTER_V_DISCARD;	/* or every recipient gone */
	if (ms->busy)
		return;		/* milter_step returns the verdict itself */
	smtp_milter_done(s, ms->stage, ms->verdict);	/* may free ms */
}

/* The current milter failed: drop it, then its on-failure policy. */
static void
conn_fail(struct milter_conn *mc, const char *why)
{
	struct milter_session	*ms = mc->ms;
	char			 tmp[16];
	int			 current = ms->running && ms->cur < ms->n &&
	    &ms->c[ms->cur] == mc;

	log_info("%s: milter=%s failed: %s, on-failure %s",
	    qid_or_id(ms, tmp, sizeof(tmp)), mc->cfg.name, why,
	    mc->cfg.on_failure == MILTER_FAIL_ACCEPT ? "accept" :
	    mc->cfg.on_failure == MILTER_FAIL_REJECT ? "reject" : "tempfail");
	conn_close(mc);
	mc->state = MC_DEAD;
	mc->in_msg = 0;
	if (!current)
		return;		/* idle: its policy applies at the next step */
	ms->waiting = ms->draining = 0;
	advance(ms);
}

/* A dead milter's policy for this step; 1 if the step ends here. */
static int
dead_policy(struct milter_session *ms, struct milter_conn *mc)
{
	if (mc->cfg.on_failure == MILTER_FAIL_ACCEPT)
		return 0;
	if (mc->cfg.on_failure == MILTER_FAIL_REJECT)
		set_verdict(ms, MILTER_V_REJECT,
		    "550 5.7.1 Message rejected: content filter unavailable");
	else
		set_verdict(ms, MILTER_V_TEMPFAIL,
		    "451 4.7.1 Service unavailable - try again later");
	return 1;
}

static void
conn_start(struct milter_conn *mc)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)&ss;
	struct timeval		 tv = { mc->cfg.timeout, 0 };
	unsigned long		 port = strtoul(mc->cfg.port, NULL, 10);
	int			 one = 1;

	mc->ms->waiting = 1;	/* a failure from here on is this step's */
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, mc->cfg.host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sl = sizeof(*sin);
	} else if (inet_pton(AF_INET6, mc->cfg.host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*sin6);
	} else {
		conn_fail(mc, "bad address");
		return;
	}
	/* deferred callbacks: never re-entered from inside a call here */
	mc->bev = bufferevent_socket_new(smtpd.proc->base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (mc->bev == NULL) {
		conn_fail(mc, "out of memory");
		return;
	}
	bufferevent_setcb(mc->bev, on_read, on_write, on_event, mc);
	bufferevent_set_timeouts(mc->bev, &tv, &tv);
	mc->state = MC_CONNECTING;
	if (bufferevent_socket_connect(mc->bev, (struct sockaddr *)&ss,
	    (int)sl) == -1) {
		conn_fail(mc, "cannot connect");
		return;
	}
	/*
	 * Commands the filter asked not to answer (SMFIP_NR_*, as rspamd
	 * does) get no ACK piggybacked on a reply: without this, Nagle
	 * holds the end of data until the filter's delayed ACK, ~40 ms.
	 */
	if (setsockopt(bufferevent_getfd(mc->bev), IPPROTO_TCP, TCP_NODELAY,
	    &one, sizeof(one)) == -1)
		log_warnx("milter=%s: TCP_NODELAY: %s", mc->cfg.name,
		    strerror(errno));
}

/* ---- building the commands ---- */

static uint32_t
nr_flag(enum mc_cmd c)
{
	switch (c) {
	case CMD_CONNECT:	return MILTER_P_NR_CONN;
	case CMD_HELO:		return MILTER_P_NR_HELO;
	case CMD_MAIL:		return MILTER_P_NR_MAIL;
	case CMD_RCPT:		return MILTER_P_NR_RCPT;
	case CMD_DATA:		return MILTER_P_NR_DATA;
	case CMD_HEADER:	return MILTER_P_NR_HDR;
	case CMD_EOH:		return MILTER_P_NR_EOH;
	case CMD_BODY:		return MILTER_P_NR_BODY;
	default:		return 0;
	}
}

/* read the header section of the data file once per data step */
static int
read_headers(struct milter_session *ms)
{
	char	 tmp[8192];
	ssize_t	 r = 0;
	off_t	 off = 0;
	size_t	 hl, p, e;

	buf_reset(&ms->hdrsec);
	while (ms->hdrsec.len < MILTER_HDRSEC_MAX) {
		size_t want = MILTER_HDRSEC_MAX - ms->hdrsec.len;
		if ((r = pread(ms->s->datafd, tmp, want < sizeof(tmp) ? want :
		    sizeof(tmp), off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0 || buf_add(&ms->hdrsec, tmp, (size_t)r) == -1)
			break;
		off += r;
		if (header_section_len(ms->hdrsec.data, ms->hdrsec.len))
			break;
	}
	if (ms->hdrsec.err)
		return -1;
	if ((hl = header_section_len(ms->hdrsec.data, ms->hdrsec.len))) {
		/* fields end before the empty line */
		ms->hdr_end = hl - (hl >= 2 && ms->hdrsec.data[hl - 2] ==
		    '\r' ? 2 : 1);
		ms->body_off = (off_t)hl;
	} else if (r == 0 || ms->hdrsec.len < MILTER_HDRSEC_MAX) {
		ms->hdr_end = ms->hdrsec.len;	/* headers only */
		ms->body_off = (off_t)ms->hdrsec.len;
	} else {
		/* XXX: an endless header section: the fields that fit */
		for (p = 0, e = 0; p < ms->hdrsec.len; p = e) {
			e = header_field_end(ms->hdrsec.data, ms->hdrsec.len, p);
			if (e <= p || e >= ms->hdrsec.len)
				break;
			ms->hdr_end = e;
		}
		ms->body_off = (off_t)ms->hdr_end;
	}
	ms->hdr_pos = 0;
	return 0;
}

/* the next header field as SMFIC_HEADER into pkt; 0 when none is left */
static int
next_header(struct milter_session *ms)
{
	const char	*d = ms->hdrsec.data;
	size_t		 e, len, nl, vo;
	struct buf	 v;
	const char	*strs[2];
	char		 name[256];

	while (ms->hdr_pos < ms->hdr_end) {
		e = header_field_end(d, ms->hdr_end, ms->hdr_pos);
		if (e <= ms->hdr_pos)
			e = ms->hdr_end;
		len = e - ms->hdr_pos;
		while (len && (d[ms->hdr_pos + len - 1] == '\n' ||
		    d[ms->hdr_pos + len - 1] == '\r'))
			len--;
		if (milter_hdr_split(d + ms->hdr_pos, len, &nl, &vo) == -1 ||
		    nl >= sizeof(name)) {
			ms->hdr_pos = e;	/* not a field: skipped */
			continue;
		}
		memcpy(name, d + ms->hdr_pos, nl);
		name[nl] = '\0';
		/* a longer field is not sent: the packet must fit a chunk */
		buf_init(&v, MILTER_CHUNK_MAX - sizeof(name) - 16);
		for (size_t i = vo; i < len; i++)
			if (d[ms->hdr_pos + i] != '\r')
				buf_addc(&v, d[ms->hdr_pos + i]);
		ms->hdr_pos = e;
		strs[0] = name;
		strs[1] = v.data ? v.data : "";
		if (!v.err && memchr(strs[1], '\0', v.len) == NULL)
			milter_put_strs(&ms->pkt, MILTER_C_HEADER, strs, 2);
		buf_free(&v);
		if (ms->pkt.len)
			return 1;
	}
	return 0;
}

/* the next body chunk into pkt; 0 at the end, -1 on a read error */
static int
next_body(struct milter_session *ms)
{
	ssize_t	 r;

	if (ms->body_done)
		return 0;
	if (ms->chunk == NULL && (ms->chunk = malloc(MILTER_BODY_IN)) == NULL)
		return -1;
	while ((r = pread(ms->s->datafd, ms->chunk, MILTER_BODY_IN,
	    ms->body_off)) == -1 && errno == EINTR)
		;
	if (r == -1)
		return -1;
	if (r == 0) {
		ms->body_done = 1;
		return 0;
	}
	ms->body_off += r;
	milter_put_body(&ms->pkt, ms->chunk, (size_t)r);	/* LF -> CRLF */
	return 1;
}

static void
put_connect(struct milter_session *ms)
{
	const struct smtp_session *s = ms->s;
	const char	*mac[4] = { "j", smtpd.conf->hostname,
	    "{daemon_name}", "sluice" };
	char		 host[80];
	uint16_t	 port = 0;
	char		 fam = 'U';

	if (s->ss.ss_family == AF_INET) {
		fam = '4';
		port = ntohs(((const struct sockaddr_in *)(const void *)
		    &s->ss)->sin_port);
	} else if (s->ss.ss_family == AF_INET6) {
		fam = '6';
		port = ntohs(((const struct sockaddr_in6 *)(const void *)
		    &s->ss)->sin6_port);
	}
	snprintf(host, sizeof(host), "[%s]", s->addr);
	milter_put_macros(&ms->pkt, MILTER_C_CONNECT, mac, 2);
	milter_put_connect(&ms->pkt, host, fam, port, s->addr);
}

/* the command that follows c in this stage */
static enum mc_cmd
successor(const struct milter_session *ms, const struct milter_conn *mc,
    enum mc_cmd c)
{
	switch (c) {
	case CMD_OPTNEG:
		if (ms->stage == MILTER_S_MAIL)
			return mc->greeted ? CMD_MAIL : CMD_CONNECT;
		return ms->stage == MILTER_S_RCPT ? CMD_RCPT : CMD_DATA;
	case CMD_CONNECT:	return CMD_HELO;
	case CMD_HELO:		return CMD_MAIL;
	case CMD_DATA:		return CMD_HEADER;
	case CMD_HEADER:	return CMD_HEADER;	/* until none is left */
	case CMD_EOH:		return CMD_BODY;
	case CMD_BODY:		return CMD_BODY;	/* until the end */
	default:		return CMD_DONE;
	}
}

/*
 * The data step's next command from *c on (DATA, headers, EOH, body
 * chunks, BODYEOB) into ms->pkt, skipping what the filter does not want;
 * *c is the one built. -1: the data file cannot be read.
 */
static int
next_data_cmd(struct milter_session *ms, struct milter_conn *mc,
    enum mc_cmd *cp)
{
	const char	*mac[2] = { "i", ms->s->qid };
	uint32_t	 p = mc->protocol;
	enum mc_cmd	 c = *cp;
	int		 r;

	for (;;) {
		switch (c) {
		case CMD_DATA:
			ms->body_done = 0;
			if (read_headers(ms) == -1)
				return -1;
			if ((p & MILTER_P_NODATA) || mc->version < 4) {
				c = CMD_HEADER;
				continue;
			}
			milter_put_macros(&ms->pkt, MILTER_C_DATA, mac, 1);
			milter_put_cmd(&ms->pkt, MILTER_C_DATA, NULL, 0);
			break;
		case CMD_HEADER:
			if (!(p & MILTER_P_NOHDRS) && next_header(ms))
				break;
			c = CMD_EOH;
			continue;
		case CMD_EOH:
			if (p & MILTER_P_NOEOH) {
				c = CMD_BODY;
				continue;
			}
			milter_put_cmd(&ms->pkt, MILTER_C_EOH, NULL, 0);
			break;
		case CMD_BODY:
			if (!(p & MILTER_P_NOBODY) &&
			    (r = next_body(ms)) != 0) {
				if (r == -1)
					return -1;
				break;
			}
			c = CMD_EOB;
			continue;
		case CMD_EOB:
			milter_put_macros(&ms->pkt, MILTER_C_BODYEOB, mac, 1);
			milter_put_cmd(&ms->pkt, MILTER_C_BODYEOB, NULL, 0);
			break;
		default:
			c = CMD_DONE;
			break;
		}
		*cp = c;
		return 0;
	}
}

/*
 * Build the next command of this stage for milter mc into ms->pkt
 * (CMD_DONE when the stage is over for it); steps the filter does not
 * want are skipped. -1: the data file cannot be read.
 */
static int
next_cmd(struct milter_session *ms, struct milter_conn *mc, enum mc_cmd *out)
{
	const struct smtp_session *s = ms->s;
	enum mc_cmd	 c = successor(ms, mc, ms->cmd);
	char		 addr[ADDR_STR_MAX + 3];
	const char	*strs[1] = { addr }, *mac[2];
	uint32_t	 p = mc->protocol;
	int		 r;

	buf_reset(&ms->pkt);
	for (;;) {
		switch (c) {
		case CMD_OPTNEG:
		case CMD_DONE:
			*out = CMD_DONE;
			return 0;
		case CMD_CONNECT:
			if (p & MILTER_P_NOCONNECT) {
				c = CMD_HELO;
				continue;
			}
			put_connect(ms);
			break;
		case CMD_HELO:
			mc->greeted = 1;
			if (p & MILTER_P_NOHELO) {
				c = CMD_MAIL;
				continue;
			}
			strs[0] = s->helo;
			milter_put_strs(&ms->pkt, MILTER_C_HELO, strs, 1);
			break;
		case CMD_MAIL:
			mc->in_msg = 1;
			if (p & MILTER_P_NOMAIL) {
				c = CMD_DONE;
				continue;
			}
			if (s->auth_user[0]) {
				mac[0] = "{auth_authen}";
				mac[1] = s->auth_user;
				milter_put_macros(&ms->pkt, MILTER_C_MAIL, mac,
				    1);
			}
			snprintf(addr, sizeof(addr), "<%s>", ms->arg);
			milter_put_strs(&ms->pkt, MILTER_C_MAIL, strs, 1);
			break;
		case CMD_RCPT:
			if (p & MILTER_P_NORCPT) {
				c = CMD_DONE;
				continue;
			}
			snprintf(addr, sizeof(addr), "<%s>", ms->arg);
			milter_put_strs(&ms->pkt, MILTER_C_RCPT, strs, 1);
			break;
		default:
			if ((r = next_data_cmd(ms, mc, &c)) != 0)
				return r;	/* -1: read error */
			if (c != CMD_DONE)
				break;
			*out = CMD_DONE;
			return 0;
		}
		*out = c;
		return 0;
	}
}

/* ---- driving a stage ---- */

/*
 * Send commands to the current milter until one needs an answer; go to
 * the next milter when a milter is through; finish() at the end.
 */
static void
advance(struct milter_session *ms)
{
	struct milter_conn	*mc;
	enum mc_cmd		 c;

	while (ms->cur < ms->n) {
		mc = &ms->c[ms->cur];
		if (mc->state == MC_DEAD) {
			if (dead_policy(ms, mc)) {
				finish(ms);
				return;
			}
			goto next;
		}
		if (mc->conn_accepted || mc->msg_accepted ||
		    (ms->stage != MILTER_S_MAIL && !mc->in_msg))
			goto next;
		if (mc->state == MC_NEW) {
			conn_start(mc);	/* OPTNEG when connected */
			return;
		}
		if (mc->state == MC_CONNECTING)
			return;
		if (next_cmd(ms, mc, &c) == -1) {
			log_warn("%s: milter=%s: reading the data file",
			    ms->s->qid, mc->cfg.name);
			set_verdict(ms, MILTER_V_TEMPFAIL,
			    "451 4.3.0 Local error in processing");
			finish(ms);
			return;
		}
		if (c == CMD_DONE)
			goto next;
		ms->cmd = c;
		if (ms->pkt.err) {
			conn_fail(mc, "command too big");
			return;
		}
		if (bufferevent_write(mc->bev, ms->pkt.data, ms->pkt.len) ==
		    -1) {
			conn_fail(mc, "out of memory");
			return;
		}
		if (c == CMD_EOB || !(mc->protocol & nr_flag(c))) {
			ms->waiting = 1;
			ms->asked = time(NULL);
			bufferevent_enable(mc->bev, EV_READ);
			return;
		}
		if (evbuffer_get_length(bufferevent_get_output(mc->bev)) >
		    MILTER_OUT_HIGH) {
			ms->draining = 1;
			return;		/* on_write goes on */
		}
		continue;
next:
		ms->cur++;
		ms->cmd = CMD_OPTNEG;
	}
	finish(ms);
}

enum milter_verdict
milter_step(struct smtp_session *s, enum milter_stage st, const char *arg)
{
	struct milter_session	*ms;

	if (smtpd.conf->nmilters == 0 && s->milter == NULL)
		return MILTER_V_CONTINUE;
	if (s->listener->local)
		return MILTER_V_CONTINUE;	/* the sendmail command */
	if ((ms = ms_get(s)) == NULL) {
		log_warnx("%u: milter: out of memory", s->id);
		return MILTER_V_TEMPFAIL;
	}
	if (st == MILTER_S_MAIL && ms->conn_verdict != MILTER_V_CONTINUE) {
		set_verdict(ms, ms->conn_verdict, ms->conn_reply);
		return ms->verdict;
	}
	if (st == MILTER_S_DATA && ms->discard)
		return MILTER_V_DISCARD;
	ms->stage = st;
	snprintf(ms->arg, sizeof(ms->arg), "%s", arg ? arg : "");
	ms->cur = 0;
	ms->cmd = CMD_OPTNEG;
	set_verdict(ms, MILTER_V_CONTINUE, "");
	ms->busy = 1;
	ms->running = 1;
	advance(ms);
	ms->busy = 0;
	if (ms->waiting || ms->draining) {
		s->wait = SMTP_W_MILTER;
		return MILTER_V_PENDING;
	}
	return ms->verdict;
}

/* ---- replies ---- */

/* an address from a filter, "<a@b>" or "a@b"; "<>" only if null_ok */
static int
filter_addr(const char *p, size_t len, int null_ok, char *out, size_t outlen)
{
	struct mailaddr	 a;
	size_t		 used;

	if (len >= 2 && p[0] == '<') {
		if (addr_parse_path(p, len, ADDR_F_UTF8 | (null_ok ?
		    ADDR_F_NULL_OK : 0), &a, &used) != ADDR_OK || used != len)
			return -1;
	} else if (addr_parse(p, len, ADDR_F_UTF8, &a) != ADDR_OK)
		return -1;
	if (!null_ok && (a.domain[0] == '\0' || addr_is_null(&a)))
		return -1;
	addr_format(&a, out, outlen);
	return 0;
}

/* SMFIR_ADDRCPT, SMFIR_DELRCPT: the session's recipients change */
static int
change_rcpt(struct milter_session *ms, int add, const char *addr)
{
	struct smtp_session	*s = ms->s;
	size_t			 i;
	void			*p;

	for (i = 0; i < s->nrcpts; i++)
		if (strcasecmp(s->rcpts[i], addr) == 0)
			break;
	if (!add) {
		if (i == s->nrcpts)
			return 0;	/* not a recipient: nothing to do */
		memmove(s->rcpts[i], s->rcpts[i + 1], (s->nrcpts - i - 1) *
		    sizeof(*s->rcpts));
		s->nrcpts--;
		return 0;
	}
	if (i < s->nrcpts)
		return 0;		/* already one */
	if (s->nrcpts >= smtpd.conf->max_recipients)
		return -1;
	if ((p = reallocarray(s->rcpts, s->nrcpts + 1,
	    sizeof(*s->rcpts))) == NULL)
		return -1;
	s->rcpts = p;
	snprintf(s->rcpts[s->nrcpts++], sizeof(*s->rcpts), "%s", addr);
	return 0;
}

/*
 * A change-header or an insert-header below the top: kept, and applied
 * to the data file once every milter has answered (milter_apply_edits).
 * 0 ok (a bad value is logged and skipped), -1 fail the milter.
 */
static int
record_edit(struct milter_session *ms, struct milter_conn *mc,
    const struct milter_reply *r)
{
	struct milter_edit	*e;
	char			 tmp[16];
	const char		*id = qid_or_id(ms, tmp, sizeof(tmp));
	size_t			 off = ms->edit_lines.len;

	if (ms->nedits == MILTER_EDITS_MAX) {
		log_info("%s: milter=%s: more than %d header changes", id,
		    mc->cfg.name, MILTER_EDITS_MAX);
		return -1;
	}
	e = &ms->edits[ms->nedits];
	memset(e, 0, sizeof(*e));
	e->ins = r->cmd == MILTER_R_INSHEADER;
	e->del = !e->ins && r->valuelen == 0;
	e->index = r->index;
	snprintf(e->name, sizeof(e->name), "%s", r->name);
	if (!e->del && milter_hdr_line(&ms->edit_lines, r->name, r->value,
	    r->valuelen) == -1) {
		if (ms->edit_lines.err) {
			log_info("%s: milter=%s: changed headers over %d "
			    "bytes", id, mc->cfg.name, MILTER_HDRS_MAX);
			return -1;
		}
		log_info("%s: milter=%s: header %s refused (bad value)", id,
		    mc->cfg.name, r->name);
		return 0;
	}
	e->off = off;
	e->len = ms->edit_lines.len - off;
	ms->nedits++;
	return 0;
}

/*
 * A piece of a new body (SMFIR_REPLBODY, CRLF line ends as on the wire):
 * kept in a memfd with LF line ends, as the spool has them, and put in
 * place of the body by milter_apply_edits(). A later milter's new body
 * replaces an earlier one's. 0 ok, -1 fail the milter.
 */
static int
replace_body(struct milter_session *ms, struct milter_conn *mc,
    const struct milter_reply *r)
{
	char		 out[MILTER_CHUNK_MAX + 2], tmp[16];
	size_t		 n = 0, from = (size_t)(mc - ms->c);
	const char	*id = qid_or_id(ms, tmp, sizeof(tmp));

	if (ms->body_fd != -1 && ms->body_from != from) {
		close(ms->body_fd);	/* this milter's body wins */
		ms->body_fd = -1;
	}
	if (ms->body_fd == -1) {
		if ((ms->body_fd = memfd_create("milter-body",
		    MFD_CLOEXEC)) == -1) {
			log_warnx("%s: milter=%s: new body: %s", id,
			    mc->cfg.name, strerror(errno));
			return -1;
		}
		ms->body_from = from;
		ms->body_len = 0;
		ms->body_cr = 0;
	}
	if (r->strlen > MILTER_CHUNK_MAX)
		return -1;	/* milter_frame_len() keeps packets smaller */
	for (size_t i = 0; i < r->strlen; i++) {
		char c = r->str[i];
		if (ms->body_cr && c != '\n')
			out[n++] = '\r';	/* a bare CR stays */
		ms->body_cr = c == '\r';
		if (!ms->body_cr)
			out[n++] = c;
	}
	if (ms->body_len + n > smtpd.conf->max_message_size) {
		log_info("%s: milter=%s: new body over max-message-size", id,
		    mc->cfg.name);
		return -1;
	}
	if (write_all(ms->body_fd, out, n) == -1) {
		log_warnx("%s: milter=%s: new body: %s", id, mc->cfg.name,
		    strerror(errno));
		return -1;
	}
	ms->body_len += n;
	return 0;
}

/* a modification at the end of the body; 0 ok, -1 fail the milter */
static int
modify(struct milter_session *ms, struct milter_conn *mc,
    const struct milter_reply *r)
{
	char	 safe[128], tmp[16], addr[ADDR_STR_MAX + 1];
	const char *id = qid_or_id(ms, tmp, sizeof(tmp));

	switch (r->cmd) {
	case MILTER_R_REPLBODY:
		return replace_body(ms, mc, r);
	case MILTER_R_CHGHEADER:
		return record_edit(ms, mc, r);
	case MILTER_R_INSHEADER:
		if (r->index > 0)
			return record_edit(ms, mc, r);
		/* at the top is where added ones go */
		/* FALLTHROUGH */
	case MILTER_R_ADDHEADER:
		if (milter_hdr_line(&ms->hdrs, r->name, r->value,
		    r->valuelen) == 0)
			return 0;
		if (ms->hdrs.err) {
			log_info("%s: milter=%s: added headers over %d bytes",
			    id, mc->cfg.name, MILTER_HDRS_MAX);
			return -1;
		}
		log_info("%s: milter=%s: header %s refused (bad value)", id,
		    mc->cfg.name, r->name);
		return 0;
	case MILTER_R_CHGFROM:
	case MILTER_R_ADDRCPT:
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_DELRCPT:
		log_sanitize(safe, sizeof(safe), r->str, r->strlen);
		if (filter_addr(r->str, r->strlen, r->cmd == MILTER_R_CHGFROM,
		    addr, sizeof(addr)) == -1) {
			log_info("%s: milter=%s: bad address <%s> refused", id,
			    mc->cfg.name, safe);
			return -1;
		}
		if (r->cmd == MILTER_R_CHGFROM) {
			log_info("%s: milter=%s: sender <%s> changed to <%s>",
			    id, mc->cfg.name, ms->s->from, addr);
			snprintf(ms->s->from, sizeof(ms->s->from), "%s", addr);
			return 0;
		}
		if (change_rcpt(ms, r->cmd != MILTER_R_DELRCPT, addr) == -1) {
			log_info("%s: milter=%s: cannot add recipient <%s>", id,
			    mc->cfg.name, addr);
			return -1;
		}
		log_info("%s: milter=%s: recipient <%s> %s", id, mc->cfg.name,
		    addr, r->cmd == MILTER_R_DELRCPT ? "removed" : "added");
		return 0;
	case MILTER_R_QUARANTINE:
		log_sanitize(safe, sizeof(safe), r->str, r->strlen);
		log_info("%s: milter=%s: quarantine (%s): held", id,
		    mc->cfg.name, safe);
		ms->held = 1;
		return 0;
	default:
		log_info("%s: milter=%s: action '%c' not supported, ignored",
		    id, mc->cfg.name, r->cmd);
		return 0;
	}
}

/* The answer to OPTNEG: what this filter wants, then its first step. */
static void
on_optneg(struct milter_session *ms, struct milter_conn *mc,
    const struct milter_reply *r)
{
	if (r->cmd != MILTER_R_OPTNEG) {
		conn_fail(mc, "no option negotiation");
		return;
	}
	mc->version = r->version;
	mc->actions = r->actions & MILTER_ACTIONS;
	mc->protocol = r->protocol & MILTER_PROTOCOL;
	mc->state = MC_OPEN;
	ms->waiting = 0;
	bufferevent_disable(mc->bev, EV_READ);
	advance(ms);
}

/* reject, tempfail, a reply code: the step ends with it */
static void
on_refusal(struct milter_session *ms, struct milter_conn *mc,
    const struct milter_reply *r, int conn_stage)
{
	char	 text[MILTER_TEXT_MAX + 1], tmp[16];

	if (r->cmd == MILTER_R_REPLYCODE)
		snprintf(text, sizeof(text), "%s", r->text);
	else if (r->cmd == MILTER_R_REJECT)
		snprintf(text, sizeof(text), "%s", ms->stage == MILTER_S_DATA ?
		    "550 5.7.1 Message content rejected" :
		    "550 5.7.1 Command rejected");
	else
		snprintf(text, sizeof(text), "451 4.7.1 Service unavailable - "
		    "try again later");
	set_verdict(ms, text[0] == '5' ? MILTER_V_REJECT : MILTER_V_TEMPFAIL,
	    text);
	log_info("%s: milter=%s: %s at %s: %s", qid_or_id(ms, tmp,
	    sizeof(tmp)), mc->cfg.name, ms->verdict == MILTER_V_REJECT ?
	    "reject" : "tempfail", conn_stage ? "connect" :
	    ms->stage == MILTER_S_MAIL ? "mail" :
	    ms->stage == MILTER_S_RCPT ? "rcpt" : "data", ms->reply);
	if (conn_stage) {	/* every MAIL of the session gets it */
		ms->conn_verdict = ms->verdict;
		snprintf(ms->conn_reply, sizeof(ms->conn_reply), "%s",
		    ms->reply);
	}
	finish(ms);
}

/*
 * One reply to the current milter's last command. 1: still waiting for
 * this milter; 0: it moved on (ms may be gone: touch nothing).
 */
static int
on_reply(struct milter_session *ms, struct milter_conn *mc,
    const struct milter_reply *r)
{
	int	 conn_stage = ms->cmd == CMD_CONNECT || ms->cmd == CMD_HELO;

	if (ms->cmd == CMD_OPTNEG) {
		on_optneg(ms, mc, r);
		return 0;
	}
	switch (r->cmd) {
	case MILTER_R_PROGRESS:
		/* still working: keep waiting, but not for ever (P5) */
		if (time(NULL) - ms->asked > (time_t)mc->cfg.timeout *
		    MILTER_PROGRESS_MAX) {
			conn_fail(mc, "progress for too long");
			return 0;
		}
		return 1;
	case MILTER_R_ADDHEADER:
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
	case MILTER_R_QUARANTINE:
	case MILTER_R_CHGFROM:
	case MILTER_R_ADDRCPT:
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_DELRCPT:
	case MILTER_R_REPLBODY:
		if (ms->cmd != CMD_EOB)
			conn_fail(mc, "modification before end of message");
		else if (modify(ms, mc, r) == -1)
			conn_fail(mc, "modification refused");
		else
			return 1;
		return 0;
	case MILTER_R_SETSYMLIST:
		conn_fail(mc, "unexpected reply");
		return 0;
	}
	ms->waiting = 0;
	bufferevent_disable(mc->bev, EV_READ);
	if (ms->cmd == CMD_EOB)
		mc->in_msg = 0;
	switch (r->cmd) {
	case MILTER_R_CONTINUE:
		break;
	case MILTER_R_SKIP:
		if (ms->cmd == CMD_BODY)
			ms->body_done = 1;
		break;
	case MILTER_R_ACCEPT:
		if (conn_stage)
			mc->conn_accepted = 1;
		else
			mc->msg_accepted = 1;
		ms->cur++;
		ms->cmd = CMD_OPTNEG;
		break;
	case MILTER_R_DISCARD:
		if (conn_stage)
			break;	/* not for a connection */
		ms->discard = 1;
		mc->msg_accepted = 1;
		ms->cur++;
		ms->cmd = CMD_OPTNEG;
		break;
	case MILTER_R_REJECT:
	case MILTER_R_TEMPFAIL:
	case MILTER_R_REPLYCODE:
	case MILTER_R_CONN_FAIL:
	case MILTER_R_SHUTDOWN:
		on_refusal(ms, mc, r, conn_stage);
		return 0;
	default:
		conn_fail(mc, "unexpected reply");
		return 0;
	}
	advance(ms);
	return 0;
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	static char		 pkt[MILTER_REPLY_MAX];
	struct milter_conn	*mc = arg;
	struct milter_session	*ms = mc->ms;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct milter_reply	 r;
	unsigned char		 hdr[4];
	long			 len;
	enum milter_perr	 e;
	char			 why[96];

	while (ms->waiting && &ms->c[ms->cur] == mc &&
	    evbuffer_copyout(in, hdr, 4) == 4) {
		if ((len = milter_frame_len(hdr)) == -1) {
			/* a 1 MB header is refused here, never buffered */
			snprintf(why, sizeof(why), "reply of %lu bytes refused",
			    (unsigned long)((uint32_t)hdr[0] << 24 |
			    (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
			    hdr[3]));
			conn_fail(mc, why);
			return;
		}
		if (evbuffer_get_length(in) < (size_t)len + 4)
			return;
		evbuffer_drain(in, 4);
		evbuffer_remove(in, pkt, (size_t)len);
		if ((e = milter_reply_parse(pkt, (size_t)len, &r)) !=
		    MILTER_OK) {
			snprintf(why, sizeof(why), "bad reply: %s",
			    milter_strerror(e));
			conn_fail(mc, why);
			return;
		}
		if (!on_reply(ms, mc, &r))
			return;		/* ms may be gone */
	}
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct milter_conn	*mc = arg;
	struct milter_session	*ms = mc->ms;

	(void)bev;
	if (ms->draining && &ms->c[ms->cur] == mc) {
		ms->draining = 0;
		advance(ms);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct milter_conn	*mc = arg;
	struct milter_session	*ms = mc->ms;
	struct buf		 b;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		buf_init(&b, 64);
		milter_put_optneg(&b, MILTER_ACTIONS, MILTER_PROTOCOL);
		ms->cmd = CMD_OPTNEG;
		if (bufferevent_write(mc->bev, b.data, b.len) == -1) {
			buf_free(&b);
			conn_fail(mc, "out of memory");
			return;
		}
		buf_free(&b);
		bufferevent_enable(mc->bev, EV_READ);
		return;
	}
	/* idle (not asked now): its policy applies at the next step */
	conn_fail(mc, what & BEV_EVENT_TIMEOUT ? "timeout" :
	    what & BEV_EVENT_EOF ? "connection closed" : mc->state ==
	    MC_CONNECTING ? "cannot connect" : "connection error");
}

/* ---- header changes, applied to the data file ---- */

/*
 * Move [from, size) of the file to start at to (the header section
 * grew or shrank): forwards when moving down, backwards when moving up,
 * so nothing is overwritten before it is read.
 */
static int
move_body(int fd, off_t from, off_t to, off_t size, char *chunk)
{
	off_t	 left = size - from, pos;
	size_t	 n;

	if (from == to || left == 0)
		return 0;
	while (left > 0) {
		n = left > MILTER_MOVE_CHUNK ? MILTER_MOVE_CHUNK : (size_t)left;
		pos = to < from ? size - left : from + left - (off_t)n;
		if (pread(fd, chunk, n, pos) != (ssize_t)n ||
		    pwrite(fd, chunk, n, pos - from + to) != (ssize_t)n)
			return -1;
		left -= (off_t)n;
	}
	return 0;
}

/*
 * The fields were old_len bytes and are now sec: put them in place, the
 * rest of the file (empty line, body) moved to follow them.
 */
static int
rewrite_fields(struct smtp_session *s, const struct buf *sec, size_t old_len,
    off_t size, char *chunk)
{
	off_t	 oldf = (off_t)old_len, newf = (off_t)sec->len;

	if (newf > oldf && move_body(s->datafd, oldf, newf, size, chunk) == -1)
		return -1;
	if (pwrite(s->datafd, sec->data, sec->len, 0) != (ssize_t)sec->len)
		return -1;
	if (newf < oldf && (move_body(s->datafd, oldf, newf, size,
	    chunk) == -1 || ftruncate(s->datafd, size - (oldf - newf)) == -1))
		return -1;
	/* the size the queue is told (the DNSBL tags are not in it) */
	s->dec.outbytes = (unsigned long long)((off_t)s->dec.outbytes +
	    newf - oldf);
	return 0;
}

/*
 * The milter's body goes after the fields, which end at fields (the
 * file was size octets): the empty line, then the new body. The old
 * body is dropped, never moved.
 */
static int
replace_body_apply(struct smtp_session *s, off_t fields, off_t size,
    char *chunk)
{
	struct milter_session	*ms = s->milter;
	off_t			 body = fields + 1, off = 0;
	ssize_t			 n;

	if (ms->body_cr && write_all(ms->body_fd, "\r", 1) == -1)
		return -1;
	ms->body_cr = 0;
	if (pwrite(s->datafd, "\n", 1, fields) != 1 ||
	    ftruncate(s->datafd, body) == -1)
		return -1;
	while ((n = pread(ms->body_fd, chunk, MILTER_MOVE_CHUNK, off)) > 0) {
		if (pwrite(s->datafd, chunk, (size_t)n, body + off) != n)
			return -1;
		off += n;
	}
	if (n == -1)
		return -1;
	s->dec.outbytes = (unsigned long long)((off_t)s->dec.outbytes +
	    body + off - size);
	log_info("%s: milter=%s: body replaced (%lld bytes)", s->qid,
	    ms->c[ms->body_from].cfg.name, (long long)off);
	return 0;
}

int
milter_apply_edits(struct smtp_session *s)
{
	struct milter_session	*ms = s->milter;
	struct buf		 sec, tmp;
	off_t			 size, hl;
	ssize_t			 n;
	struct stat		 st;
	size_t			 i, changed = 0, old_len;
	char			*chunk = NULL;
	int			 rc = -1;

	if (ms == NULL || (ms->nedits == 0 && ms->body_fd == -1))
		return 0;
	if (fstat(s->datafd, &st) == -1)
		return -1;
	size = st.st_size;
	buf_init(&sec, MILTER_EDIT_HDR_MAX + MILTER_HDRS_MAX);
	buf_init(&tmp, MILTER_EDIT_HDR_MAX + MILTER_HDRS_MAX);
	if (buf_reserve(&sec, MILTER_EDIT_HDR_MAX) == -1 ||
	    (chunk = malloc(MILTER_MOVE_CHUNK)) == NULL)
		goto done;
	n = pread(s->datafd, sec.data, MILTER_EDIT_HDR_MAX, 0);
	if (n < 0)
		goto done;
	sec.len = (size_t)n;
	if ((hl = (off_t)header_section_len(sec.data, sec.len)) == 0) {
		/* no end of the header section in reach: a message of
		   headers only, or more than MILTER_EDIT_HDR_MAX of them */
		if (n == size && n < MILTER_EDIT_HDR_MAX)
			hl = n;
		else {
			log_info("%s: milter header and body changes ignored: "
			    "header section over %d bytes", s->qid,
			    MILTER_EDIT_HDR_MAX);
			rc = 0;
			goto done;
		}
	}
	/* the fields only: the empty line (if any) stays in the file */
	sec.len = (size_t)hl;
	if (sec.len > 0 && sec.data[sec.len - 1] == '\n' &&
	    (sec.len == 1 || sec.data[sec.len - 2] == '\n'))
		sec.len--;
	old_len = sec.len;
	for (i = 0; i < ms->nedits; i++) {
		const struct milter_edit *e = &ms->edits[i];
		int r = milter_hdr_edit(&sec, &tmp, e->ins, e->del, e->name,
		    e->index, ms->edit_lines.data + e->off, e->len);
		if (r == -1)
			goto done;
		changed += (size_t)r;
	}
	if (ms->body_fd != -1) {
		/* a new body: the fields in place, nothing to move */
		if ((changed && pwrite(s->datafd, sec.data, sec.len, 0) !=
		    (ssize_t)sec.len) || replace_body_apply(s, (off_t)sec.len,
		    size, chunk) == -1)
			goto done;
	} else if (changed && rewrite_fields(s, &sec, old_len, size,
	    chunk) == -1)
		goto done;
	if (changed)
		log_info("%s: milter header changes applied: %zu", s->qid,
		    changed);
	rc = 0;
done:
	if (rc == -1)
		log_warnx("%s: milter changes: %s", s->qid,
		    sec.err || tmp.err ? "out of memory" : strerror(errno));
	free(chunk);
	buf_free(&sec);
	buf_free(&tmp);
	return rc;
}
