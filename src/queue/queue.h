/*
 * queue - the queue process: queue-in (group commit), scanner, scheduler,
 * bounces. Internal interface between queue.c, scanner.c and bounce.c.
 */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <sys/queue.h>

#include <stdint.h>
#include <time.h>

struct event_base;

#include "buf.h"
#include "envelope.h"
#include "spool.h"

enum qwhere { Q_NONE = 0, Q_INCOMING, Q_OUTGOING };

/* where the lookup process said a recipient's mail goes (this pass) */
struct qmbox {
	int	 local;				/* resolved, not yet sent */
	int	 remote;			/* for the relay, not yet sent */
	int	 pipe;				/* for the pipe process */
	int	 later;				/* after the one before it in
						   its alias (sequential) */
	char	 domain[ADDR_DOMAIN_MAX + 1];
	char	 user[ADDR_LOCAL_MAX + 1];
};

struct qmsg {
	TAILQ_ENTRY(qmsg)	 entry;		/* active or deferred list */
	LIST_ENTRY(qmsg)	 hash;
	struct envelope		 env;
	enum qwhere		 where;
	int			 datafd;	/* data/<id>, read-only */
	unsigned		 outstanding;	/* lookups and deliveries */
	int			 active;
	int			 newly_bounced;
	unsigned char		*fresh;		/* rcpts bounced this pass */
	struct qmbox		*mbox;		/* per rcpt: its mailbox */
	size_t			 nmbox;		/* entries in mbox and fresh */
	int			 released;	/* by the operator: robots run
						   even if they keep failing */
	char			(*dto)[ADDR_STR_MAX + 1];	/* Delivered-To: */
	size_t			 ndto;
	int			 dto_scanned;
	unsigned		 lookups;	/* in flight this pass */
	int			 srs_sender;	/* QSRS_*: is the sender rewritten
						   for forwarded recipients */
	double			 started;	/* for delay= */
	size_t			 hidx;		/* sched heap index + 1, 0: out */
	time_t			 due;		/* its key there */
};

/* what the sender of a message forwarded offsite becomes (SRS, srs.h) */
#define QSRS_UNKNOWN	0	/* not asked yet, or the answer failed */
#define QSRS_FOREIGN	1	/* not our domain: rewritten */
#define QSRS_OURS	2	/* ours (or null): kept */

/* queue.c */
struct qmsg	*qmsg_find(const char *id);
/* add a finished message (data in tmp/<id>) to the next commit batch */
void		 queue_commit_internal(struct envelope *, int datafd,
		    const char *maildrop, struct qmsg *parent);
double		 queue_now(void);
extern struct spool queue_spool;

/* sched.c: the retry heap of waiting messages */
#define SCHED_NEVER	((time_t)INT64_MAX)
time_t		 sched_due(const struct qmsg *);
int		 sched_update(struct qmsg *);
void		 sched_del(struct qmsg *);
struct qmsg	*sched_top(void);

/* online.c: the online state for routes */
struct proc;
void		 online_start(struct proc *, void (*changed)(void));
void		 online_check(void);
const char	*online_state(void);
int		 online_has_source(void);

/* scanner.c: headers the queue adds; hop count */
int	scanner_run(struct qmsg *, const char *hostname, unsigned max_hops,
	    char *err, size_t errlen);
/* does the message already carry "Delivered-To: addr"? (a loop) */
int	scanner_delivered_to(struct qmsg *, const char *addr);

/* operator requests: messages affected, or -1 with err */
int	queue_control(const char *verb, const char *arg, char *err,
	    size_t errlen);
/* control.c: <spool>/control.sock */
int	control_listen(struct event_base *, const char *spool);

/* maildrop.c: import a file `sluice sendmail` left while we were down */
void	maildrop_import(const char *name);

/* bounce.c: build the DSN for rcpts bounced in this pass */
int	bounce_build(const struct qmsg *, const char *hostname,
	    const char *to, int delayed, struct envelope *dsn,
	    struct buf *data);

#endif
