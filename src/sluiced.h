/*
 * sluiced - entry points of the processes the master starts.
 *
 * Each child gets its struct proc (control channel to the master set up by
 * proc_init) and runs its own event loop until SIGTERM or the master exits.
 */
#ifndef SLUICE_SLUICED_H
#define SLUICE_SLUICED_H

#include "config.h"
#include "proc.h"

struct listener {
	int		 fd;
	enum listen_kind kind;
	int		 local;		/* the sendmail socket (unix) */
	char		 name[300];
};

int	smtpd_main(struct proc *, struct listener *, size_t);
int	queue_main(struct proc *);
int	lookup_main(struct proc *);
int	deliver_main(struct proc *);
int	relay_main(struct proc *);
int	pipe_main(struct proc *);

#endif
