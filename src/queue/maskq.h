/*
 * maskq - the queue's side of the masked relay: reading a message's header
 * section and writing the masked copy. See maskq.c.
 */
#ifndef SLUICE_MASKQ_H
#define SLUICE_MASKQ_H

#include <sys/types.h>

#include "buf.h"
#include "envelope.h"
#include "mask_lookup.h"

struct qmsg;

enum { MASKQ_OK = 0, MASKQ_TEMP, MASKQ_DROP };

/* env.hdrs + the data file's header section; *body: where the body is */
int	maskq_header(const struct qmsg *, struct buf *out, off_t *body);
/*
 * Write the copy of m for route mr: data/<copy->id> (open in *fd, for
 * queue_commit_internal) and its envelope. MASKQ_OK; MASKQ_TEMP (try
 * again later) or MASKQ_DROP (a loop, an unrelayable header) with why.
 */
int	maskq_build(const struct qmsg *, const struct mask_route *,
	    const char *hostname, struct envelope *copy, int *fd, char *why,
	    size_t whylen);

/* MASK_F_* (mask_lookup.h) of a message to the mask domain */
unsigned maskq_flags(const struct qmsg *);
/* the notice to the other side when a relayed copy bounced (null sender) */
int	maskq_notice(const struct qmsg *, const struct mask_route *,
	    const char *hostname, struct envelope *dsn, int *fd, char *why,
	    size_t whylen);

#endif
