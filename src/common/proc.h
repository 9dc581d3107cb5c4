/*
 * proc - the frame every sluice child process runs in.
 *
 * A child has a control channel to the master and, per peer role, a channel
 * that the master hands it (CHILD_PEER_SET, a fresh socket pair each time
 * that peer is (re)started). proc.c owns those channels; the role's code
 * gives the handlers for each peer and is told when a peer comes or goes, so
 * requests in flight to a dead peer can be failed (P10).
 *
 * privsep_drop() is the one privilege prologue: when running as root it
 * chroots where asked, then setgroups, setresgid, setresuid to the user and
 * checks that root cannot be regained (P4). Not root: nothing to drop.
 */
#ifndef SLUICE_PROC_H
#define SLUICE_PROC_H

#include <stdint.h>

#include "config.h"
#include "ipc.h"

struct event_base;

struct proc {
	enum ipc_role		 role;
	const char		*name;
	struct event_base	*base;
	struct config		*conf;
	struct ipc		*peer[ROLE_MAX];	/* [ROLE_MASTER]: control */
	const struct ipc_handler *handlers[ROLE_MAX];
	void			 (*on_peer_up)(struct proc *, enum ipc_role);
	void			 (*on_peer_down)(struct proc *, enum ipc_role);
	void			 (*on_reload)(struct proc *);
	void			 (*on_shutdown)(struct proc *);
	/* smtp: SMTP_TLS_FILE, the certificate (0) or key (1), fd owned */
	void			 (*on_tls_file)(struct proc *, uint32_t, int);
	void			*arg;		/* the role's state */
};

extern struct proc *proc_self;

/* set up the event base, signals and the control channel; then run */
void		 proc_init(struct proc *, int ctlfd);
int		 proc_run(struct proc *);
struct event_base *proc_event_base(void);
const char	*proc_role_name(enum ipc_role);

int	privsep_drop(const char *user, const char *chroot_dir);
/* uid/gid of the configured user, or of the caller when not root */
int	privsep_ids(const char *user, uid_t *uid, gid_t *gid);

#endif
