/*
 * ipc - typed, versioned frames between sluice processes.
 *
 * Channels are SOCK_SEQPACKET socket pairs: one frame is one datagram, so
 * frame boundaries and the descriptor passed with a frame (SCM_RIGHTS, at
 * most one) can never get out of step. A frame is a fixed header (version,
 * type, request id, payload length) and a payload built with ipc_put_* and
 * read back with the checking ipc_get_* reader: every length is checked and
 * ipc_get_end() fails if bytes are left over (P10).
 *
 * Incoming frames are dispatched through a table of handlers, one per type.
 * Outgoing frames are queued and written when the socket is writable.
 */
#ifndef SLUICE_IPC_H
#define SLUICE_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define IPC_VERSION	1
#define IPC_FRAME_MAX	(60 * 1024)
#define DELIVER_RCPTS_MAX	50	/* recipients in one DELIVER_MAILDIR */

enum ipc_role {
	ROLE_MASTER = 0,
	ROLE_SMTP,
	ROLE_QUEUE,
	ROLE_LOOKUP,
	ROLE_DELIVER,
	ROLE_RELAY,
	ROLE_PIPE,
	ROLE_MAX
};

/* message types, ROLE_OBJECT_VERB by the process that handles them */
enum ipc_type {
	IMSG_NONE = 0,
	/* master -> any child */
	CHILD_PEER_SET,		/* u32 role; fd: the channel to that peer */
	CHILD_CONF_RELOAD,	/* (empty): re-read the config file */
	/* smtp -> lookup, and the answer */
	LOOKUP_RCPT_CHECK,	/* str addr; str sender */
	SMTP_RCPT_RESULT,	/* u32 table_res-like code (lookup_rcpt) */
	/* smtp -> queue, and the answers */
	QUEUE_MSG_OPEN,		/* (empty) */
	SMTP_MSG_OPENED,	/* u32 ok; str id; fd: data file (write) */
	QUEUE_MSG_RCPT,		/* str id; str rcpt */
	QUEUE_MSG_COMMIT,	/* str id; envelope fields (queue.c) */
	SMTP_MSG_COMMITTED,	/* u32 result; str text */
	QUEUE_MSG_ABORT,	/* str id */
	/* queue -> lookup, and the answer */
	LOOKUP_RCPT_RESOLVE,	/* str addr */
	QUEUE_RCPT_TARGETS,	/* u32 n; n x (u32 rcpt_via; str addr;
				   str target; u32 owner; str ext): part of
				   an expansion, before its RESOLVED */
	QUEUE_RCPT_RESOLVED,	/* u32 lookup_rcpt; str domain; str user;
				   str text; u32 ntargets (LOOKUP_EXPANDED) */
	/* queue -> deliver, and the answer */
	DELIVER_MAILDIR,	/* str id; str from; mem hdrs; u32 n;
				   n x (str rcpt; str domain; str user);
				   fd: data file (read) */
	QUEUE_DELIVER_RESULT,	/* as QUEUE_RELAY_RESULT */
	/* queue -> relay (SMTP out), and the answer */
	DELIVER_SMTP,		/* str id; str from; mem hdrs; u32 flags;
				   u64 size; str domain; u32 n; n x str rcpt;
				   fd: data file (read) */
	QUEUE_RELAY_RESULT,	/* u32 n; n x (u32 rcpt_state; str relay;
				   str text) */
	/* queue -> pipe (robots, mbox files), and the answer */
	DELIVER_PIPE,		/* str id; str from; mem hdrs; str rcpt;
				   str orig; u32 via; str target; u32 owner;
				   str ext; u32 force (released by the
				   operator); fd: data file (read) */
	QUEUE_PIPE_RESULT,	/* as QUEUE_RELAY_RESULT, n = 1, then u32
				   stop (exit 99: no further targets), u32
				   hold (the robot keeps failing) */
	/* smtp -> lookup: SMTP AUTH and the sender's ownership */
	LOOKUP_AUTH,		/* str user; str password */
	SMTP_AUTH_RESULT,	/* u32 auth_res; str canonical user */
	LOOKUP_SENDER_CHECK,	/* str user; u32 n; n x str address */
	SMTP_SENDER_RESULT,	/* u32 auth_res; str the address refused */
	/* master -> smtp: the TLS files, opened as root (SIGHUP) */
	SMTP_TLS_FILE,		/* u32 0 cert, 1 key; fd: the file */
	/* queue -> lookup: a recipient in the mask domain (lookup.c) */
	LOOKUP_MASK_RESOLVE,	/* str rcpt; str sender; u32 automatic */
	QUEUE_MASK_RESOLVED,	/* u32 mask_res; str why; [route] */
	/* queue -> lookup: a relayed copy was delivered (no answer) */
	LOOKUP_MASK_DELIVERED,	/* str sender (the VERP address) */
	IMSG_MAX
};

/* answers to LOOKUP_AUTH and LOOKUP_SENDER_CHECK */
enum auth_res {
	AUTH_OK = 0,
	AUTH_DENIED,		/* wrong password, not the user's address */
	AUTH_TEMPFAIL,		/* the table failed: 454 / 451 (P3) */
};

/* answers of the lookup process about one recipient */
enum lookup_rcpt {
	LOOKUP_LOCAL = 0,	/* a mailbox here */
	LOOKUP_NOUSER,		/* local domain, no such user */
	LOOKUP_REMOTE,		/* not a local domain */
	LOOKUP_TEMPFAIL,	/* the table failed: try later (P3) */
	LOOKUP_EXPANDED,	/* an alias (or extension): targets sent */
	LOOKUP_FAILED,		/* permanent (alias loop...): text says */
	LOOKUP_DENIED,		/* this sender may not write to it (masks) */
};

struct ipc;

struct ipc_msg {
	uint16_t	 type;
	uint32_t	 id;		/* request id, echoed in the answer */
	const unsigned char *data;
	size_t		 len;
	int		 fd;		/* -1, or passed descriptor (owned by
					   the handler: close it or keep it) */
};

typedef void (*ipc_handler_fn)(struct ipc *, struct ipc_msg *, void *arg);

struct ipc_handler {
	uint16_t	 type;
	ipc_handler_fn	 fn;
};

struct event_base;

/* wrap a connected SOCK_SEQPACKET fd; handlers end with {0, NULL} */
struct ipc	*ipc_new(struct event_base *, int fd, const char *peer,
		    const struct ipc_handler *, void *arg,
		    void (*on_close)(struct ipc *, void *), void *closearg);
void		 ipc_free(struct ipc *);
/* queue a frame; fd (or -1) is closed once sent. -1 on error. */
int		 ipc_send(struct ipc *, uint16_t type, uint32_t id, int fd,
		    const void *data, size_t len);
int		 ipc_send_buf(struct ipc *, uint16_t type, uint32_t id, int fd,
		    const struct buf *);
/* blocking: write everything queued (used before exit) */
void		 ipc_flush(struct ipc *);
const char	*ipc_peer(const struct ipc *);
const char	*ipc_type_name(uint16_t);

/* payload builders (sticky errors in the buf) */
void	ipc_put_u32(struct buf *, uint32_t);
void	ipc_put_u64(struct buf *, uint64_t);
void	ipc_put_str(struct buf *, const char *);
void	ipc_put_mem(struct buf *, const void *, size_t);

/* checking reader: any defect sets err; values are then zero/empty */
struct ipc_rd {
	const unsigned char *p;
	size_t		 left;
	int		 err;
};
void		 ipc_rd_init(struct ipc_rd *, const struct ipc_msg *);
uint32_t	 ipc_get_u32(struct ipc_rd *);
uint64_t	 ipc_get_u64(struct ipc_rd *);
/* copy a string into dst (NUL-terminated); err if too long or holds NUL */
void		 ipc_get_str(struct ipc_rd *, char *dst, size_t dstlen);
/* a string with its length, not copied (may hold any bytes) */
const char	*ipc_get_mem(struct ipc_rd *, size_t *len);
/* 0 if the frame was read exactly and without defect */
int		 ipc_get_end(struct ipc_rd *);

#endif
